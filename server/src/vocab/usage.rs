//! What model responses cost and how full the model's context is.

use serde::{Deserialize, Serialize};

/// Token counts (and cost) of one model response, or a session's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl TokenUsage {
    pub fn add(&mut self, other: &TokenUsage) {
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_usd += other.cost_usd;
    }
}

/// How full a session's conversation is: the tokens it holds (as the model last counted them,
/// or estimated after a compaction) and the model's context window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextUse {
    pub used_tokens: u64,
    pub window_tokens: u64,
}

impl ContextUse {
    /// The tokens a conversation of one response holds: all it was sent and all it said.
    pub fn of(usage: &TokenUsage, window_tokens: u64) -> Self {
        ContextUse {
            used_tokens: usage.input_tokens
                + usage.cache_read_tokens
                + usage.cache_write_tokens
                + usage.output_tokens,
            window_tokens,
        }
    }

    /// A rough count of the tokens `text` takes (four characters each).
    pub fn estimate(text: &str) -> u64 {
        (text.chars().count() as u64).div_ceil(4)
    }

    /// Whether it has reached `share` (0–1) of the window.
    pub fn reached(&self, share: f64) -> bool {
        self.window_tokens > 0 && self.used_tokens as f64 >= share * self.window_tokens as f64
    }
}

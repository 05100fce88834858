//! `[context]`: how large each model's context window is, and when a session's conversation
//! is compacted into a summary.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The window of a model Tether knows nothing of.
pub const UNKNOWN_MODEL_WINDOW: u64 = 128_000;

/// `[context]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextSettings {
    /// Context windows in tokens, by model name (the longest name a model's starts with
    /// counts: `claude-sonnet-4-5` covers `claude-sonnet-4-5-20250929`); built-in ones for
    /// common models.
    pub windows: BTreeMap<String, u64>,
    /// Compact the conversation into a summary when it fills this share of the window, before
    /// the next turn (0 turns it off; otherwise kept within 0.1–0.99).
    pub compact_at: f64,
}

impl Default for ContextSettings {
    fn default() -> Self {
        ContextSettings {
            windows: BTreeMap::new(),
            compact_at: 0.8,
        }
    }
}

impl ContextSettings {
    /// The context window of `model`, in tokens.
    pub fn window_of(&self, model: &str) -> u64 {
        if let Some(window) = self.windows.get(model) {
            return *window;
        }
        self.windows
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map_or(UNKNOWN_MODEL_WINDOW, |(_, window)| *window)
            .max(1)
    }

    /// The share of the window at which a conversation is compacted, if it ever is.
    pub fn compaction_share(&self) -> Option<f64> {
        (self.compact_at.is_finite() && self.compact_at > 0.0)
            .then(|| self.compact_at.clamp(0.1, 0.99))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_gets_its_window_or_its_family_s_or_the_default() {
        let settings = ContextSettings {
            windows: [
                ("claude-sonnet-4-5".to_owned(), 200_000),
                ("gpt-4o".to_owned(), 128_000),
                ("gpt-4o-mini".to_owned(), 64_000),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        assert_eq!(settings.window_of("claude-sonnet-4-5-20250929"), 200_000);
        assert_eq!(
            settings.window_of("gpt-4o-mini-2024"),
            64_000,
            "the longest name counts"
        );
        assert_eq!(settings.window_of("gpt-4o"), 128_000);
        assert_eq!(settings.window_of("mystery"), UNKNOWN_MODEL_WINDOW);
        assert_eq!(settings.compaction_share(), Some(0.8));
        for (set, share) in [
            (0.0, None),
            (-1.0, None),
            (f64::NAN, None),
            (2.0, Some(0.99)),
            (0.01, Some(0.1)),
        ] {
            let settings = ContextSettings {
                compact_at: set,
                ..Default::default()
            };
            assert_eq!(settings.compaction_share(), share, "{set}");
        }
    }
}

//! `[providers.<name>]`: one model API (`openai`, `anthropic`) or one agent over the Agent
//! Client Protocol (`acp`), as the settings configure it.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Acp,
}

/// One model back end, as `[providers.<name>]` configures it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub base_url: Option<String>,
    /// The name of the environment variable that holds the key: never the key itself.
    pub api_key_env: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Whether its models take images and PDFs (default yes; the bundled local model does
    /// not). A message with either to a provider that does not is refused.
    #[serde(default)]
    pub vision: Option<bool>,
    /// Seconds to wait for the response to start, and at most between two streamed chunks.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries on 429, 5xx and connection errors before the turn fails.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The first retry's delay; each next one doubles it (a `Retry-After` header wins).
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// `kind = "acp"`: the agent's program (found on PATH when it has no `/`).
    #[serde(default)]
    pub command: Option<String>,
    /// `kind = "acp"`: its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// `kind = "acp"`: variables set for it (`api_key_env` passes that one through too).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `kind = "acp"`: folders the agent keeps its own state in (`~` is the home folder),
    /// which its sandbox lets it write besides the worktree and its temp dir.
    #[serde(default)]
    pub state_dirs: Vec<String>,
    /// `kind = "acp"`: the agent's own session mode for each `session.permission_mode`
    /// (`ask`, `auto`, `read-only`), set after its session opens when it offers that mode.
    #[serde(default)]
    pub modes: BTreeMap<String, String>,
    /// The key itself, when the editor that started the session had `api_key_env` set in
    /// its environment and the session runs in the daemon (whose environment may predate
    /// it). Never parsed from a file, never written anywhere.
    #[serde(skip)]
    pub api_key_value: Option<SecretValue>,
}

/// A secret held in memory: printed as `[redacted]`, compared by nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

fn default_timeout_secs() -> u64 {
    120
}
fn default_max_retries() -> u32 {
    3
}
fn default_retry_backoff_ms() -> u64 {
    500
}

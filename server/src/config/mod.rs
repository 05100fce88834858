//! Settings, merged from (lowest to highest): built-in defaults, the user's
//! `$XDG_CONFIG_HOME/tether/config.toml`, the repository's `.tether/config.toml`, the editor's
//! `initializationOptions`, its latest `workspace/didChangeConfiguration`, and the command
//! line.
//!
//! Every source is turned into JSON and deep-merged before one typed parse, so each layer
//! may set any subset of keys and an error names the key at fault. The repository's layer is
//! the one untrusted source: it may only tighten the safety settings below it (see
//! [`repository`]), and never name key variables or redirect keys.

mod cache;
mod context;
mod daemon;
mod files;
pub mod hooks;
mod mcp;
mod providers;
mod refusals;
mod repository;

pub use cache::ProfileKeys;
pub use cache::{ConfigCache, EditorLayers, valid_profile_id};
pub use context::{ContextSettings, UNKNOWN_MODEL_WINDOW};
pub use daemon::{DaemonSettings, ScheduleConfig};
pub use mcp::McpServerConfig;
pub use providers::{ProviderConfig, ProviderKind, SecretValue};
pub use repository::{ConfigWarning, IgnoredBecause, REPOSITORY_FILE};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use files::{read_toml_if_present, user_config_path};
use refusals::{check_keys_stay_home, check_repository_layer, provider_urls};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error(
        "{path} sets `providers.{provider}.{key}`, which could send an API key elsewhere; only your own config file or the editor's settings may set it"
    )]
    UntrustedKey {
        path: PathBuf,
        provider: String,
        key: &'static str,
    },
    #[error(
        "{path} sets `providers.{provider}.{key}`, which chooses what program runs, where it may write or what it may do unasked; only your own config file or the editor's settings may set it"
    )]
    UntrustedProgram {
        path: PathBuf,
        provider: String,
        key: &'static str,
    },
    #[error(
        "no provider named {name:?} is configured (known: {known}); add [providers.{name}] to .tether/config.toml"
    )]
    UnknownProvider { name: String, known: String },
    /// A layer put something else where a table of settings belongs (`settings: []`,
    /// `session = 5`); taking it would replace everything below it.
    #[error("{source_name}{}", describe_not_a_table(key, found))]
    NotATable {
        source_name: String,
        /// Dotted; empty for the whole layer.
        key: String,
        found: &'static str,
    },
}

fn describe_not_a_table(key: &str, found: &str) -> String {
    if key.is_empty() {
        format!(": got {found} where an object of tether's settings belongs")
    } else {
        format!(" sets `{key}` to {found}, where a table of settings belongs")
    }
}

/// What a JSON value is, for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermissionMode {
    /// Commands and file changes wait for the user's approval, unless already granted.
    Ask,
    #[default]
    Auto,
    /// No file changes and no commands.
    ReadOnly,
}

/// What counts as a secret, besides the providers' keys (`[secrets]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSettings {
    /// Environment variables whose values are secrets (redacted, and hidden from commands).
    pub env: Vec<String>,
    /// Regular expressions for secrets (redacted).
    pub patterns: Vec<String>,
}

/// What a model costs, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cached input read; default: the input price.
    pub cache_read: Option<f64>,
    /// Cached input written; default: the input price.
    pub cache_write: Option<f64>,
}

impl Price {
    pub fn cost(&self, usage: &crate::vocab::TokenUsage) -> f64 {
        let per_token = |per_million: f64| per_million / 1_000_000.0;
        usage.input_tokens as f64 * per_token(self.input)
            + usage.output_tokens as f64 * per_token(self.output)
            + usage.cache_read_tokens as f64 * per_token(self.cache_read.unwrap_or(self.input))
            + usage.cache_write_tokens as f64 * per_token(self.cache_write.unwrap_or(self.input))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// How many sessions may work at once; the rest wait in `pending`, in order.
    pub max_working: usize,
    /// Where worktrees are made; default `$TETHER_HOME/worktrees` or the user's data dir.
    pub worktree_dir: Option<PathBuf>,
    /// `ask` (commands and writes need approval), `auto`, or `read-only`.
    pub permission_mode: PermissionMode,
    /// In `ask` mode, what needs no approval: permission scopes as the protocol names them
    /// (`"run_command: cargo test"`, `"edit_file"`, `"write_file"`…).
    pub allow: Vec<String>,
    /// Whether the agent gets its tools (read, search, edit, run…); off for models that
    /// cannot call tools.
    pub tools: bool,
    /// Model calls one turn may make (each tool round is one) before it ends `max_turns`.
    pub max_turns: usize,
    /// The longest a command the agent runs may take.
    pub command_timeout_secs: u64,
    /// A session's spending limit in USD; a turn that reaches it ends with `budget`.
    pub budget_usd: Option<f64>,
    /// The longest one turn may take before it ends with `timeout` (none by default).
    pub turn_timeout_secs: Option<u64>,
    /// The kernel sandbox for commands: `auto`, `required` or `off`.
    pub sandbox: SandboxMode,
    /// Whether the agent's commands may use the network.
    pub network: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            max_working: 4,
            worktree_dir: None,
            permission_mode: PermissionMode::Auto,
            allow: Vec::new(),
            tools: true,
            max_turns: 50,
            command_timeout_secs: 600,
            budget_usd: None,
            turn_timeout_secs: None,
            sandbox: Default::default(),
            network: true,
        }
    }
}

/// `[review]`: verification and code review of a session's changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewSettings {
    /// Run verification, then review, after each develop turn that changed files (a
    /// session's toggles `verification = false` / `review = false` skip one).
    pub auto: bool,
    /// The provider to ask; default the session's.
    pub provider: Option<String>,
    /// The model to ask; default the session's.
    pub model: Option<String>,
    /// The longest one run may take.
    pub timeout_secs: u64,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        ReviewSettings {
            auto: true,
            provider: None,
            model: None,
            timeout_secs: 30 * 60,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub default_provider: Option<String>,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub session: SessionSettings,
    /// Prices by model name (USD per million tokens); built-in ones for common models.
    pub prices: BTreeMap<String, Price>,
    /// Context windows, and when conversations are compacted.
    pub context: ContextSettings,
    pub secrets: SecretSettings,
    pub review: ReviewSettings,
    /// Lifecycle hooks; they run only in a trusted repository.
    pub hooks: hooks::HooksConfig,
    pub trust: TrustSettings,
    pub daemon: DaemonSettings,
    /// Sessions the daemon starts on time (`[[schedules]]`), from your own settings only.
    pub schedules: Vec<ScheduleConfig>,
    /// MCP servers from the user's own settings and the editor's (`[[mcp_servers]]`).
    pub mcp_servers: Vec<McpServerConfig>,
    /// MCP servers the repository's file names: used only in a trusted repository.
    #[serde(skip)]
    pub repository_mcp_servers: Vec<McpServerConfig>,
}

/// `[trust]`, from the user's own settings only (a repository cannot trust itself).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustSettings {
    /// Repositories whose hooks may run, besides those trusted with `tether.trust`.
    pub repositories: Vec<PathBuf>,
}

/// What an unpriced model on a keyed provider counts as under a budget (USD per million
/// tokens): the dearest built-in price.
pub const UNKNOWN_MODEL_PRICE: Price = Price {
    input: 15.0,
    output: 75.0,
    cache_read: None,
    cache_write: None,
};

/// Where `scripts/local-model.sh` serves the bundled local model by default.
pub const LOCAL_MODEL_URL: &str = "http://127.0.0.1:8011/v1";

/// The local model's URL: `$TETHER_LOCAL_MODEL_URL` when set (the script's `url` prints it),
/// else [`LOCAL_MODEL_URL`].
pub fn local_model_url() -> String {
    std::env::var("TETHER_LOCAL_MODEL_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| LOCAL_MODEL_URL.to_owned())
}

/// The built-in providers, as they are with no settings.
pub fn builtin_providers() -> Vec<(String, ProviderConfig)> {
    parse(builtin_defaults())
        .map(|config| config.providers.into_iter().collect())
        .unwrap_or_default()
}

/// Built-in providers: the local model (the default when nothing else is set up), and the
/// hosted APIs, used when their key is in the environment.
fn builtin_defaults() -> Value {
    json!({
        // Public list prices (USD per million tokens) as of 2026; override in `[prices]`.
        "prices": {
            "gpt-4o": {"input": 2.5, "output": 10.0, "cache_read": 1.25},
            "gpt-4o-mini": {"input": 0.15, "output": 0.6, "cache_read": 0.075},
            "gpt-4.1": {"input": 2.0, "output": 8.0, "cache_read": 0.5},
            "gpt-4.1-mini": {"input": 0.4, "output": 1.6, "cache_read": 0.1},
            "claude-sonnet-4-5": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
            "claude-opus-4-1": {"input": 15.0, "output": 75.0, "cache_read": 1.5, "cache_write": 18.75},
            "claude-haiku-4-5": {"input": 1.0, "output": 5.0, "cache_read": 0.1, "cache_write": 1.25}
        },
        // Context windows (tokens) of common models; override in `[context.windows]`.
        "context": {
            "windows": {
                "gpt-4o": 128_000, "gpt-4o-mini": 128_000, "gpt-4.1": 1_047_576,
                "gpt-5": 400_000, "o3": 200_000, "o4-mini": 200_000,
                "claude-": 200_000, "gemini-2.5": 1_048_576,
                // The bundled local model, as scripts/local-model.sh serves it (--n_ctx).
                "smollm2": 4_096
            }
        },
        "providers": {
            "local": { "kind": "openai", "base_url": local_model_url(), "model": "smollm2", "vision": false },
            "openai": {
                "kind": "openai",
                "base_url": "https://api.openai.com/v1",
                "api_key_env": "OPENAI_API_KEY",
                "model": "gpt-4o-mini"
            },
            "anthropic": {
                "kind": "anthropic",
                "base_url": "https://api.anthropic.com",
                "api_key_env": "ANTHROPIC_API_KEY",
                "model": "claude-sonnet-4-5"
            },
            // The agents people already run, over the Agent Client Protocol: usable with
            // no settings when their command is on PATH (`tether/providers/list` says).
            "claude": {
                "kind": "acp", "command": "claude-agent-acp", "state_dirs": ["~/.claude"],
                "modes": { "ask": "default", "auto": "acceptEdits", "read-only": "plan" }
            },
            "codex": { "kind": "acp", "command": "codex-acp", "state_dirs": ["~/.codex"] },
            "gemini": { "kind": "acp", "command": "gemini", "args": ["--acp"], "state_dirs": ["~/.gemini"] },
            "opencode": {
                "kind": "acp", "command": "opencode", "args": ["acp"],
                "state_dirs": ["~/.local/share/opencode", "~/.local/state/opencode", "~/.cache/opencode"]
            },
            "qwen": { "kind": "acp", "command": "qwen", "args": ["--acp"], "state_dirs": ["~/.qwen"] },
            "goose": {
                "kind": "acp", "command": "goose", "args": ["acp"],
                "state_dirs": ["~/.config/goose", "~/.local/share/goose", "~/.local/state/goose"]
            }
        }
    })
}

/// The layers that do not depend on the repository, held by the session manager.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// The editor's `initializationOptions`: an object, or null for none.
    pub initialization: Value,
    /// The latest valid `workspace/didChangeConfiguration`: it replaces the one before, so
    /// `null` or `{}` fall back to `initialization`.
    pub settings: Value,
    /// Overrides from the command line.
    pub command_line: Value,
}

/// The editor's two layers of settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditorLayer {
    /// `initializationOptions`, given once at `initialize`.
    Initialization,
    /// The latest `workspace/didChangeConfiguration`.
    Settings,
}

impl EditorLayer {
    /// How errors name the layer.
    pub fn describe(self) -> &'static str {
        match self {
            EditorLayer::Initialization => "the editor's initializationOptions",
            EditorLayer::Settings => "the editor's new settings",
        }
    }
}

/// A configuration and what was ignored on the way (a repository's attempts to loosen the
/// user's safety settings), for the user to see.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub config: Config,
    pub warnings: Vec<ConfigWarning>,
}

impl ConfigSources {
    /// Replaces one of the editor's layers. `value` must be an object of settings, or null
    /// for none; anything else is refused and the layer stays as it was.
    pub fn set_editor_layer(
        &mut self,
        layer: EditorLayer,
        value: Value,
    ) -> Result<(), ConfigError> {
        if !matches!(value, Value::Object(_) | Value::Null) {
            return Err(ConfigError::NotATable {
                source_name: layer.describe().to_owned(),
                key: String::new(),
                found: kind_of(&value),
            });
        }
        match layer {
            EditorLayer::Initialization => self.initialization = value,
            EditorLayer::Settings => self.settings = value,
        }
        Ok(())
    }

    /// The configuration that applies to sessions of `repo`.
    pub fn resolve(&self, repo: Option<&Path>) -> Result<Config, ConfigError> {
        self.resolve_with_warnings(repo)
            .map(|resolved| resolved.config)
    }

    /// The configuration that applies to sessions of `repo`, and the repository settings
    /// that were ignored because they would loosen the user's.
    pub fn resolve_with_warnings(&self, repo: Option<&Path>) -> Result<Resolved, ConfigError> {
        self.resolve_from(user_config_path().as_deref(), repo)
    }

    /// [`ConfigSources::resolve_with_warnings`] with the user's file named (tests name their
    /// own instead of reading the real one).
    fn resolve_from(
        &self,
        user_file: Option<&Path>,
        repo: Option<&Path>,
    ) -> Result<Resolved, ConfigError> {
        let mut merged = builtin_defaults();
        if let Some(user_file) = user_file {
            let layer = read_toml_if_present(user_file, None)?;
            merge_layer(&mut merged, layer, &user_file.display().to_string())?;
        }
        let mut warnings = Vec::new();
        let mut repository_urls = Vec::new();
        let mut repository_mcp_servers = Vec::new();
        if let Some(repo) = repo {
            let path = repo.join(REPOSITORY_FILE);
            let mut repo_layer = read_toml_if_present(&path, Some(repo))?;
            // The repository's MCP servers are kept apart: they run only once it is trusted.
            if let Some(servers) = repo_layer
                .as_object_mut()
                .and_then(|layer| layer.remove("mcp_servers"))
            {
                repository_mcp_servers =
                    serde_json::from_value(servers).map_err(|error| ConfigError::Invalid {
                        key: "mcp_servers".to_owned(),
                        message: format!("{}: {error}", path.display()),
                    })?;
            }
            if !repo_layer.is_null() {
                check_repository_layer(&path, &repo_layer, &merged)?;
                // What the repository is compared with: built-ins and the user's file.
                let below = parse(merged.clone())?;
                warnings = repository::tighten(&mut repo_layer, &below);
                repository_urls = provider_urls(&repo_layer);
            }
            merge_layer(&mut merged, repo_layer, &path.display().to_string())?;
        }
        let later = [
            (&self.initialization, EditorLayer::Initialization.describe()),
            (&self.settings, EditorLayer::Settings.describe()),
            (&self.command_line, "the command line"),
        ];
        for (layer, name) in later {
            merge_layer(&mut merged, layer.clone(), name)?;
        }
        if let Some(repo) = repo {
            let later_layers = later.map(|(layer, _)| layer);
            check_keys_stay_home(
                &repo.join(REPOSITORY_FILE),
                &repository_urls,
                &merged,
                &later_layers,
            )?;
        }
        let mut config = parse(merged)?;
        config.repository_mcp_servers = repository_mcp_servers;
        for servers in [&config.mcp_servers, &config.repository_mcp_servers] {
            mcp::check_all(servers).map_err(|message| ConfigError::Invalid {
                key: "mcp_servers".to_owned(),
                message,
            })?;
        }
        config
            .hooks
            .validate()
            .map_err(|message| ConfigError::Invalid {
                key: "hooks".to_owned(),
                message,
            })?;
        Ok(Resolved { config, warnings })
    }
}

/// Parses merged settings, naming the key at fault.
pub fn parse(value: Value) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|error| ConfigError::Invalid {
        key: error.path().to_string(),
        message: error.inner().to_string(),
    })
}

/// Deep-merges the layer `overlay` (named `source_name` in errors) into `base`: objects
/// merge key by key, null leaves the value below, anything else replaces it. A layer may not
/// put a non-table where a table of settings is (`session = []` would otherwise reset every
/// session setting below it, since serde reads a struct from an array too).
fn merge_layer(base: &mut Value, overlay: Value, source_name: &str) -> Result<(), ConfigError> {
    if !matches!(overlay, Value::Object(_) | Value::Null) {
        return Err(ConfigError::NotATable {
            source_name: source_name.to_owned(),
            key: String::new(),
            found: kind_of(&overlay),
        });
    }
    merge(base, overlay, "").map_err(|(key, found)| ConfigError::NotATable {
        source_name: source_name.to_owned(),
        key,
        found,
    })
}

/// Deep-merges `overlay` into `base` at the dotted `path`; fails with the key and what was
/// found when a non-null, non-object value would replace an object.
fn merge(base: &mut Value, overlay: Value, path: &str) -> Result<(), (String, &'static str)> {
    match (base, overlay) {
        (_, Value::Null) => Ok(()),
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                merge(base.entry(key).or_insert(Value::Null), value, &path)?;
            }
            Ok(())
        }
        (Value::Object(_), overlay) => Err((path.to_owned(), kind_of(&overlay))),
        (base, overlay) => {
            *base = overlay;
            Ok(())
        }
    }
}

impl Config {
    /// The provider a session uses when it names none: `default_provider`, else OpenAI when
    /// `OPENAI_API_KEY` is set, else Anthropic when `ANTHROPIC_API_KEY` is, else the bundled
    /// local model.
    pub fn default_provider_name(&self) -> String {
        if let Some(name) = &self.default_provider {
            return name.clone();
        }
        if std::env::var_os("OPENAI_API_KEY").is_some_and(|key| !key.is_empty()) {
            return "openai".to_owned();
        }
        if std::env::var_os("ANTHROPIC_API_KEY").is_some_and(|key| !key.is_empty()) {
            return "anthropic".to_owned();
        }
        "local".to_owned()
    }

    /// The environment variables that hold secrets: every provider's `api_key_env` and
    /// `[secrets] env`.
    pub fn secret_variables(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .providers
            .values()
            .filter_map(|provider| provider.api_key_env.clone())
            .chain(self.secrets.env.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The values of the secrets this configuration knows: its key variables' (from the
    /// environment) and the keys an editor passed along.
    pub fn secret_values(&self) -> Vec<String> {
        self.secret_variables()
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .chain(
                self.providers
                    .values()
                    .filter_map(|provider| provider.api_key_value.as_ref())
                    .map(|value| value.0.clone()),
            )
            .filter(|value| !value.is_empty())
            .collect()
    }

    /// What `model` on `provider` costs. Under a budget, a model Tether has no price for on a
    /// provider that sends a key is counted at [`UNKNOWN_MODEL_PRICE`] (the dearest built-in
    /// one): otherwise naming an unpriced model (a repository may choose models) would make
    /// every call free in the budget's eyes while the key pays. Keyless servers cost nothing.
    pub fn price_of(&self, provider: &str, model: &str) -> Option<Price> {
        if let Some(price) = self.prices.get(model) {
            return Some(*price);
        }
        let sends_a_key = self
            .providers
            .get(provider)
            .is_some_and(|provider| provider.api_key_env.is_some());
        (sends_a_key && self.session.budget_usd.is_some()).then_some(UNKNOWN_MODEL_PRICE)
    }

    pub fn provider(&self, name: &str) -> Result<&ProviderConfig, ConfigError> {
        self.providers
            .get(name)
            .ok_or_else(|| ConfigError::UnknownProvider {
                name: name.to_owned(),
                known: self
                    .providers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests;

/// What a session asks of the sandbox (`session.sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// Sandbox when the kernel can; otherwise run unsandboxed and say so.
    #[default]
    Auto,
    /// Refuse to run commands where the kernel cannot sandbox them.
    Required,
    /// Never sandbox.
    Off,
}

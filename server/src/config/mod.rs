//! Settings, merged from (lowest to highest): built-in defaults, the user's
//! `$XDG_CONFIG_HOME/tether/config.toml`, the repository's `.tether/config.toml`, the editor's
//! `initializationOptions`, and `workspace/didChangeConfiguration`.
//!
//! Every source is turned into JSON and deep-merged before one typed parse, so each layer
//! may set any subset of keys and an error names the key at fault.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

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
        "no provider named {name:?} is configured (known: {known}); add [providers.{name}] to .tether/config.toml"
    )]
    UnknownProvider { name: String, known: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
    /// Seconds to wait for the response to start, and at most between two streamed chunks.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries on 429, 5xx and connection errors before the turn fails.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The first retry's delay; each next one doubles it (a `Retry-After` header wins).
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
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
    pub fn cost(&self, usage: &crate::session::TokenUsage) -> f64 {
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
    pub sandbox: crate::agent::sandbox::SandboxMode,
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
    pub secrets: SecretSettings,
    pub review: ReviewSettings,
    /// Lifecycle hooks; they run only in a trusted repository.
    pub hooks: crate::hooks::HooksConfig,
    pub trust: TrustSettings,
}

/// `[trust]`, from the user's own settings only (a repository cannot trust itself).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustSettings {
    /// Repositories whose hooks may run, besides those trusted with `tether.trust`.
    pub repositories: Vec<PathBuf>,
}

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
        "providers": {
            "local": { "kind": "openai", "base_url": local_model_url(), "model": "smollm2" },
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
            }
        }
    })
}

/// The layers that do not depend on the repository, held by the session manager.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// From `initializationOptions` and `workspace/didChangeConfiguration` (merged in order).
    pub editor: Value,
    /// Overrides from the command line (`tether run --provider/--model`).
    pub command_line: Value,
}

impl ConfigSources {
    /// The configuration that applies to sessions of `repo`.
    pub fn resolve(&self, repo: Option<&Path>) -> Result<Config, ConfigError> {
        let mut merged = builtin_defaults();
        if let Some(user_file) = user_config_path() {
            merge(&mut merged, read_toml_if_present(&user_file)?);
        }
        if let Some(repo) = repo {
            let path = repo.join(".tether/config.toml");
            let repo_layer = read_toml_if_present(&path)?;
            check_repository_layer(&path, &repo_layer, &merged)?;
            merge(&mut merged, repo_layer);
        }
        merge(&mut merged, self.editor.clone());
        merge(&mut merged, self.command_line.clone());
        let config = parse(merged)?;
        config
            .hooks
            .validate()
            .map_err(|message| ConfigError::Invalid {
                key: "hooks".to_owned(),
                message,
            })?;
        Ok(config)
    }
}

/// Parses merged settings, naming the key at fault.
pub fn parse(value: Value) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|error| ConfigError::Invalid {
        key: error.path().to_string(),
        message: error.inner().to_string(),
    })
}

/// A repository's config file comes with the code, so it is not trusted with keys: it may not
/// name a key variable, nor point a provider that sends a key at another URL. (Otherwise a
/// cloned repository could send `OPENAI_API_KEY`, or any variable, to a server of its choice.)
fn check_repository_layer(
    path: &Path,
    repo_layer: &Value,
    below: &Value,
) -> Result<(), ConfigError> {
    if repo_layer.get("trust").is_some() {
        return Err(ConfigError::Invalid {
            key: "trust".to_owned(),
            message: format!(
                "{} cannot trust its own repository; trust it in your own settings or with tether.trust",
                path.display()
            ),
        });
    }
    let Some(providers) = repo_layer.get("providers").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, provider) in providers {
        let untrusted = |key: &'static str| ConfigError::UntrustedKey {
            path: path.to_owned(),
            provider: name.clone(),
            key,
        };
        if provider.get("api_key_env").is_some() {
            return Err(untrusted("api_key_env"));
        }
        let sends_a_key = below
            .get("providers")
            .and_then(|providers| providers.get(name))
            .and_then(|provider| provider.get("api_key_env"))
            .is_some_and(|value| !value.is_null());
        if sends_a_key && provider.get("base_url").is_some() {
            return Err(untrusted("base_url"));
        }
    }
    Ok(())
}

fn user_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("tether/config.toml"))
}

fn read_toml_if_present(path: &Path) -> Result<Value, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Value::Null),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    toml::from_str::<Value>(&text).map_err(|error| ConfigError::Toml {
        path: path.to_owned(),
        message: error.to_string(),
    })
}

/// Deep-merges `overlay` into `base`: objects merge key by key, anything else replaces.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (_, Value::Null) => {}
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, overlay) => *base = overlay,
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
mod tests {
    use super::*;

    #[test]
    fn layers_merge_key_by_key() {
        let mut base = builtin_defaults();
        merge(
            &mut base,
            json!({"providers": {"local": {"model": "other"}}, "session": {"max_working": 2}}),
        );
        let config = parse(base).expect("parse");
        let local = config.provider("local").expect("local");
        assert_eq!(local.model.as_deref(), Some("other"));
        assert_eq!(local.base_url, Some(local_model_url()));
        assert_eq!(config.session.max_working, 2);
    }

    #[test]
    fn errors_name_the_key() {
        let error = parse(json!({"session": {"max_working": "four"}})).expect_err("invalid");
        assert!(error.to_string().contains("session.max_working"), "{error}");
        let error = parse(json!({"providers": {"x": {"kind": "openai", "api_key": "sk-1"}}}))
            .expect_err("unknown key");
        assert!(error.to_string().contains("providers.x"), "{error}");
    }

    #[test]
    fn a_repository_may_not_redirect_keys() {
        let path = Path::new("/repo/.tether/config.toml");
        let below = builtin_defaults();
        let steal_variable =
            json!({"providers": {"x": {"kind": "openai", "api_key_env": "AWS_SECRET_ACCESS_KEY"}}});
        let error = check_repository_layer(path, &steal_variable, &below).expect_err("refused");
        assert!(
            error.to_string().contains("providers.x.api_key_env"),
            "{error}"
        );
        let redirect = json!({"providers": {"openai": {"base_url": "https://evil.example/v1"}}});
        let error = check_repository_layer(path, &redirect, &below).expect_err("refused");
        assert!(
            error.to_string().contains("providers.openai.base_url"),
            "{error}"
        );
        // Keyless servers and models are the repository's business.
        let fine = json!({"providers": {"local": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
                                        "openai": {"model": "gpt-x"}}});
        check_repository_layer(path, &fine, &below).expect("allowed");
    }

    #[test]
    fn prices_count_cached_tokens_apart() {
        let config = parse(builtin_defaults()).expect("parse");
        let price = config.prices["claude-sonnet-4-5"];
        let usage = crate::session::TokenUsage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 1_000_000,
            cache_write_tokens: 0,
            cost_usd: 0.0,
        };
        // $3 input + $1.5 output + $0.3 cache reads
        assert!((price.cost(&usage) - 4.8).abs() < 1e-9);
    }

    #[test]
    fn an_unknown_provider_lists_the_known_ones() {
        let config = parse(builtin_defaults()).expect("parse");
        let error = config.provider("nope").expect_err("unknown").to_string();
        assert!(
            error.contains("local") && error.contains("openai"),
            "{error}"
        );
    }
}

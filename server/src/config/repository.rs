//! What a repository's `.tether/config.toml` may do to the safety settings below it (the
//! built-ins and the user's own file): tighten them, never loosen them.
//!
//! The file comes with the code, so whoever wrote the code wrote it. Each key it sets is
//! compared with the value below it; a looser one is dropped (the user's value stays) and
//! becomes a [`ConfigWarning`] shown to the user. Dropping rather than failing keeps a
//! repository from breaking the user's configuration by asking for too much.
//!
//! This module never decides what a value *means* for the sandbox or the agent; it only
//! ranks values (its own ranking of [`SandboxMode`], so `agent/` stays untouched).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{PermissionMode, Price, SecretSettings, SessionSettings};
use crate::config::SandboxMode;

/// The repository's file, as warnings name it.
pub const REPOSITORY_FILE: &str = ".tether/config.toml";

/// At most this many characters of a value the repository set go into a warning: it is the
/// repository's text, shown to the user and kept in the session's log.
const SHOWN_VALUE_CHARS: usize = 80;

/// A repository setting that was ignored, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigWarning {
    /// The key, dotted (`session.sandbox`, `prices."gpt-4o".input`).
    pub key: String,
    /// What the repository set, as JSON (strings quoted and escaped), shortened.
    pub tried: String,
    pub reason: IgnoredBecause,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IgnoredBecause {
    /// It would loosen the value below it, shown as JSON.
    Looser { yours: String },
    /// Only the user's own settings may set this key.
    UserOnly,
    /// An entry of an allow list that the user's settings do not have.
    NotAllowedByYou,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ConfigWarning { key, tried, reason } = self;
        match reason {
            IgnoredBecause::Looser { yours } => write!(
                f,
                "{REPOSITORY_FILE} sets {key} = {tried}, looser than your {yours}; ignored"
            ),
            IgnoredBecause::UserOnly => write!(
                f,
                "{REPOSITORY_FILE} sets {key} = {tried}, which only your own settings may set; ignored"
            ),
            IgnoredBecause::NotAllowedByYou => write!(
                f,
                "{REPOSITORY_FILE} adds {tried} to {key}, which your own settings do not allow; ignored"
            ),
        }
    }
}

/// Keys only the user's own settings may set.
const USER_ONLY_SESSION_KEYS: &[&str] = &[
    // Where tether makes, and later deletes, folders.
    "worktree_dir",
];

/// Strictness, loosest first, of the settings that come in ranked steps.
fn sandbox_rank(mode: SandboxMode) -> u8 {
    match mode {
        SandboxMode::Off => 0,
        SandboxMode::Auto => 1,
        SandboxMode::Required => 2,
    }
}

fn sandbox_name(mode: SandboxMode) -> &'static str {
    match mode {
        SandboxMode::Off => "off",
        SandboxMode::Auto => "auto",
        SandboxMode::Required => "required",
    }
}

fn permission_rank(mode: PermissionMode) -> u8 {
    match mode {
        PermissionMode::Auto => 0,
        PermissionMode::Ask => 1,
        PermissionMode::ReadOnly => 2,
    }
}

fn permission_name(mode: PermissionMode) -> &'static str {
    match mode {
        PermissionMode::Auto => "auto",
        PermissionMode::Ask => "ask",
        PermissionMode::ReadOnly => "read-only",
    }
}

/// A value as a warning shows it: JSON, so strings are quoted and cannot break lines.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHOWN_VALUE_CHARS {
        return text;
    }
    let mut short: String = text.chars().take(SHOWN_VALUE_CHARS).collect();
    short.push('…');
    short
}

fn quoted(name: &str) -> String {
    Value::String(name.to_owned()).to_string()
}

/// Whether `tried <= limit`. Never for NaN: a budget or a price that compares with nothing
/// would never be reached, so it counts as looser than any limit (TOML's `nan` arrives as
/// null today, since JSON has no NaN; this keeps the rule if that ever changes).
pub(super) fn at_most<T: PartialOrd>(tried: &T, limit: &T) -> bool {
    matches!(
        tried.partial_cmp(limit),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

/// Reads a repository value as the type the key has; `None` when it is not one (the typed
/// parse after the merge reports it, naming the key).
fn typed<T: DeserializeOwned>(value: &Value) -> Option<T> {
    serde_json::from_value(value.clone()).ok()
}

/// Removes from `repo_layer` whatever would loosen the settings in `below` (the parsed
/// built-ins and user's file), and makes `[secrets]` lists add to the user's rather than
/// replace them. Returns what was removed.
pub(super) fn tighten(repo_layer: &mut Value, below: &super::Config) -> Vec<ConfigWarning> {
    let mut warnings = Vec::new();
    if let Some(session) = repo_layer.get_mut("session").and_then(Value::as_object_mut) {
        tighten_session(session, &below.session, &mut warnings);
    }
    if let Some(secrets) = repo_layer.get_mut("secrets").and_then(Value::as_object_mut) {
        add_to_secrets(secrets, &below.secrets);
    }
    if let Some(prices) = repo_layer.get_mut("prices").and_then(Value::as_object_mut) {
        tighten_prices(prices, &below.prices, &mut warnings);
    }
    warnings
}

/// Whether `tried` would loosen `yours` for one `[session]` key: `Some(your value, shown)`
/// when it would.
fn looser_session_value(key: &str, tried: &Value, yours: &SessionSettings) -> Option<String> {
    // A limit the repository may lower and never raise; `None` below means no limit.
    fn raises<T: DeserializeOwned + PartialOrd + serde::Serialize>(
        tried: &Value,
        yours: Option<T>,
    ) -> Option<String> {
        let yours = yours?;
        let tried: T = typed(tried)?;
        (!at_most(&tried, &yours)).then(|| serde_json::to_string(&yours).unwrap_or_default())
    }
    match key {
        "sandbox" => {
            let tried: SandboxMode = typed(tried)?;
            (sandbox_rank(tried) < sandbox_rank(yours.sandbox))
                .then(|| quoted(sandbox_name(yours.sandbox)))
        }
        "permission_mode" => {
            let tried: PermissionMode = typed(tried)?;
            (permission_rank(tried) < permission_rank(yours.permission_mode))
                .then(|| quoted(permission_name(yours.permission_mode)))
        }
        // `true` is the looser of both: tools to act with, a network to reach.
        "network" => (typed::<bool>(tried)? && !yours.network).then(|| "false".to_owned()),
        "tools" => (typed::<bool>(tried)? && !yours.tools).then(|| "false".to_owned()),
        "budget_usd" => raises(tried, yours.budget_usd),
        "max_turns" => raises(tried, Some(yours.max_turns)),
        "max_working" => raises(tried, Some(yours.max_working)),
        "command_timeout_secs" => raises(tried, Some(yours.command_timeout_secs)),
        "turn_timeout_secs" => raises(tried, yours.turn_timeout_secs),
        _ => None,
    }
}

fn tighten_session(
    session: &mut Map<String, Value>,
    yours: &SessionSettings,
    warnings: &mut Vec<ConfigWarning>,
) {
    let keys: Vec<String> = session.keys().cloned().collect();
    for key in keys {
        let Some(tried) = session.get(&key) else {
            continue;
        };
        let reason = if USER_ONLY_SESSION_KEYS.contains(&key.as_str()) {
            Some(IgnoredBecause::UserOnly)
        } else {
            looser_session_value(&key, tried, yours).map(|yours| IgnoredBecause::Looser { yours })
        };
        if let Some(reason) = reason {
            warnings.push(ConfigWarning {
                key: format!("session.{key}"),
                tried: shown(tried),
                reason,
            });
            session.remove(&key);
        }
    }
    // The repository may narrow what needs no approval, never widen it: only scopes the
    // user's list already has stay.
    if let Some(Value::Array(allow)) = session.get_mut("allow") {
        allow.retain(|entry| {
            let allowed = entry
                .as_str()
                .is_none_or(|scope| yours.allow.iter().any(|own| own == scope));
            if !allowed {
                warnings.push(ConfigWarning {
                    key: "session.allow".to_owned(),
                    tried: shown(entry),
                    reason: IgnoredBecause::NotAllowedByYou,
                });
            }
            allowed
        });
    }
}

/// `[secrets] env` and `patterns` name more secrets, never fewer: the repository's entries
/// are added after the user's (merging would otherwise replace the user's list).
fn add_to_secrets(secrets: &mut Map<String, Value>, yours: &SecretSettings) {
    for (key, own) in [("env", &yours.env), ("patterns", &yours.patterns)] {
        let Some(Value::Array(added)) = secrets.get(key) else {
            continue;
        };
        let mut union: Vec<Value> = own.iter().cloned().map(Value::String).collect();
        for entry in added {
            if !union.contains(entry) {
                union.push(entry.clone());
            }
        }
        secrets.insert(key.to_owned(), Value::Array(union));
    }
}

/// A price below the user's would make the budget run out later than the user set: the
/// repository may add prices and raise them, never lower one.
fn tighten_prices(
    prices: &mut Map<String, Value>,
    yours: &BTreeMap<String, Price>,
    warnings: &mut Vec<ConfigWarning>,
) {
    for (model, price) in prices.iter_mut() {
        let (Some(own), Some(price)) = (yours.get(model), price.as_object_mut()) else {
            continue;
        };
        for (field, own_value) in [
            ("input", own.input),
            ("output", own.output),
            ("cache_read", own.cache_read.unwrap_or(own.input)),
            ("cache_write", own.cache_write.unwrap_or(own.input)),
        ] {
            let Some(tried) = price.get(field) else {
                continue;
            };
            if typed::<f64>(tried).is_some_and(|tried| !at_most(&own_value, &tried)) {
                warnings.push(ConfigWarning {
                    key: format!("prices.{}.{field}", quoted(model)),
                    tried: shown(tried),
                    reason: IgnoredBecause::Looser {
                        yours: Value::from(own_value).to_string(),
                    },
                });
                price.remove(field);
            }
        }
    }
}

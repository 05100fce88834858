//! What a repository's `.tether/config.toml` may never do, refused outright rather than
//! dropped (see [`super::repository`] for settings that are only tightened): name a key
//! variable, send a key to a URL of its choosing, choose a program to run as an agent, trust
//! itself, or schedule sessions.

use std::path::Path;

use serde_json::Value;

use super::ConfigError;

/// A repository's config file comes with the code, so it is not trusted with keys: it may not
/// name a key variable, nor point a provider that sends a key at another URL. (Otherwise a
/// cloned repository could send `OPENAI_API_KEY`, or any variable, to a server of its choice.)
pub(super) fn check_repository_layer(
    path: &Path,
    repo_layer: &Value,
    below: &Value,
) -> Result<(), ConfigError> {
    if repo_layer.get("schedules").is_some() {
        return Err(ConfigError::Invalid {
            key: "schedules".to_owned(),
            message: format!(
                "{} cannot schedule sessions (they would run, and spend, without you); schedule them in your own settings",
                path.display()
            ),
        });
    }
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
        // The agent's program, its arguments and environment: a cloned repository choosing
        // them would run code of its own as soon as a session starts.
        for key in ["command", "args", "env", "state_dirs", "modes"] {
            if provider.get(key).is_some() {
                return Err(ConfigError::UntrustedProgram {
                    path: path.to_owned(),
                    provider: name.clone(),
                    key,
                });
            }
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

/// The providers whose `base_url` a layer sets.
pub(super) fn provider_urls(layer: &Value) -> Vec<String> {
    layer
        .get("providers")
        .and_then(Value::as_object)
        .map(|providers| {
            providers
                .iter()
                .filter(|(_, provider)| provider.get("base_url").is_some())
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A provider the repository pointed at a URL must not end up sending a key there, even when
/// the key variable comes from a later, trusted layer (the editor naming `api_key_env` for a
/// provider the repository set up would otherwise send that key to the repository's server).
pub(super) fn check_keys_stay_home(
    path: &Path,
    repository_urls: &[String],
    merged: &Value,
    later_layers: &[&Value],
) -> Result<(), ConfigError> {
    for name in repository_urls {
        let url_overridden = later_layers.iter().any(|layer| {
            layer
                .get("providers")
                .and_then(|providers| providers.get(name))
                .and_then(|provider| provider.get("base_url"))
                .is_some_and(|url| !url.is_null())
        });
        let sends_a_key = merged
            .get("providers")
            .and_then(|providers| providers.get(name))
            .and_then(|provider| provider.get("api_key_env"))
            .is_some_and(|value| !value.is_null());
        if sends_a_key && !url_overridden {
            return Err(ConfigError::UntrustedKey {
                path: path.to_owned(),
                provider: name.clone(),
                key: "base_url",
            });
        }
    }
    Ok(())
}

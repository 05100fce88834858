//! `tether/providers/list`: the providers a new session can use, for the editors' pickers —
//! the ones settings define and the built-in presets, and for each whether it can run on the
//! session host (an agent's program on PATH, an API's key variable set) and, if not, what to
//! do about it.

use std::path::PathBuf;

use super::{HostError, HostMethod};
use crate::acp::find_program;
use crate::api::{self, methods};
use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::session::SessionManager;

impl HostMethod for methods::Providers {
    async fn run(
        manager: SessionManager,
        params: api::ProvidersParams,
    ) -> Result<api::ProvidersResult, HostError> {
        let root = params.root.map(PathBuf::from);
        let profile = params.settings_profile.as_deref();
        let resolved = match manager.settings_for(root.as_deref(), profile) {
            Ok(resolved) => resolved,
            // A settings file that cannot be used is the user's to hear of.
            Err(error @ crate::session::SessionError::Config(_)) => return Err(error.into()),
            // A folder that is no repository: the user's and the editor's settings alone.
            Err(_) => manager.settings_for(None, profile)?,
        };
        let presets = crate::config::builtin_providers();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut providers = entries(&resolved.config, &presets, &path);
        // What agents said of their models, newest session last.
        let sessions = manager.list(&crate::session::ListFilter::default());
        for entry in &mut providers {
            if let Some(models) = sessions
                .iter()
                .filter(|session| session.provider == entry.name)
                .filter_map(|session| session.agent.as_ref())
                .filter(|facts| !facts.models.is_empty())
                .map(|facts| facts.models.clone())
                .next_back()
            {
                entry.models = models;
            }
        }
        Ok(api::ProvidersResult { providers })
    }
}

/// Every provider of `config`, the default first.
pub(crate) fn entries(
    config: &Config,
    presets: &[(String, ProviderConfig)],
    path: &std::ffi::OsStr,
) -> Vec<api::ProviderEntry> {
    let default = config.default_provider_name();
    let mut entries: Vec<api::ProviderEntry> = config
        .providers
        .iter()
        .map(|(name, provider)| {
            let preset = presets
                .iter()
                .any(|(preset, built_in)| preset == name && same_provider(built_in, provider));
            let mut entry = api::ProviderEntry {
                name: name.clone(),
                kind: provider.kind,
                preset,
                default: *name == default,
                model: provider.model.clone(),
                command: provider.command.clone(),
                path: None,
                available: true,
                missing: None,
                models: Vec::new(),
            };
            match provider.kind {
                ProviderKind::Acp => match provider.command.as_deref() {
                    Some(command) => match find_program(command, path) {
                        Some(found) => entry.path = Some(found),
                        None => {
                            entry.available = false;
                            let install = crate::acp::install_hint(name)
                                .map(|how| format!("; {how}"))
                                .unwrap_or_default();
                            entry.missing = Some(format!("`{command}` is not on PATH{install}"));
                        }
                    },
                    None => {
                        entry.available = false;
                        entry.missing = Some(format!("set `providers.{name}.command`"));
                    }
                },
                ProviderKind::Openai | ProviderKind::Anthropic => {
                    if let Some(variable) = &provider.api_key_env
                        && provider.api_key_value.is_none()
                        && std::env::var_os(variable).is_none_or(|value| value.is_empty())
                    {
                        entry.available = false;
                        entry.missing = Some(format!("set the environment variable {variable}"));
                    }
                }
            }
            entry
        })
        .collect();
    entries.sort_by(|a, b| b.default.cmp(&a.default).then_with(|| a.name.cmp(&b.name)));
    entries
}

/// Whether settings left a built-in provider as it was built.
fn same_provider(a: &ProviderConfig, b: &ProviderConfig) -> bool {
    a.kind == b.kind
        && a.base_url == b.base_url
        && a.api_key_env == b.api_key_env
        && a.model == b.model
        && a.command == b.command
        && a.args == b.args
        && a.env == b.env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn an_agent_is_found_on_path_and_a_missing_one_says_how_to_install_it() {
        let bin = tempfile::tempdir().expect("tempdir");
        let program = bin.path().join("codex-acp");
        std::fs::write(&program, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(
            &program,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        // Not executable: not found, as a shell would not run it.
        std::fs::write(bin.path().join("goose"), "").expect("write");
        let config = crate::config::ConfigSources::default()
            .resolve(None)
            .expect("built-ins");
        let presets = crate::config::builtin_providers();
        let path = std::env::join_paths([Path::new("relative/bin"), bin.path()]).expect("path");
        let entries = entries(&config, &presets, &path);
        let entry = |name: &str| {
            entries
                .iter()
                .find(|entry| entry.name == name)
                .unwrap_or_else(|| panic!("{name} listed"))
        };
        assert!(entries[0].default, "the default comes first");
        let codex = entry("codex");
        assert!(codex.available && codex.preset, "{codex:?}");
        assert_eq!(codex.path.as_deref(), Some(program.as_path()));
        let claude = entry("claude");
        assert!(!claude.available);
        let missing = claude.missing.as_deref().unwrap_or_default();
        assert!(missing.contains("claude-agent-acp"), "{missing}");
        assert!(missing.contains("npm install -g"), "{missing}");
        assert!(!entry("goose").available);
        assert_eq!(entry("local").kind, ProviderKind::Openai);
    }
}

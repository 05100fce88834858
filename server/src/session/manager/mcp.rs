//! A session's MCP servers: which of the settings' `[[mcp_servers]]` it may use (a
//! repository's only once the user trusts it), and the notes that tell the session when
//! one is left out or cannot start.

use super::SessionError;
use super::actor::SessionHandle;
use crate::agent;
use crate::config::{Config, McpServerConfig};
use crate::vocab::{Item, ItemPhase, MessageRole, SessionSpec};

/// The session's MCP servers: those of the user's and the editor's settings, and the
/// repository's when the user trusts it (else they are reported, not run).
pub(super) async fn servers(
    handle: &SessionHandle,
    spec: &SessionSpec,
    config: &Config,
) -> Result<Vec<McpServerConfig>, SessionError> {
    let mut servers = config.mcp_servers.clone();
    if !config.repository_mcp_servers.is_empty() {
        if super::hooks::trusted(&handle.store, config, &spec.repo) {
            servers.extend(config.repository_mcp_servers.iter().cloned());
        } else {
            let names: Vec<&str> = config
                .repository_mcp_servers
                .iter()
                .map(|server| server.name.as_str())
                .collect();
            report(handle, vec![format!(
                "the repository's MCP servers ({}) are not run: it is not trusted; run the command tether.trust, or list it under [trust] repositories in your own settings",
                names.join(", ")
            )])
            .await?;
        }
    }
    Ok(servers)
}

/// Tells the session (and so the agent) what went wrong outside a turn, as notes.
pub(super) async fn report(
    handle: &SessionHandle,
    problems: Vec<String>,
) -> Result<(), SessionError> {
    if problems.is_empty() {
        return Ok(());
    }
    handle
        .run(move |actor| {
            for problem in problems {
                actor.emit_item(
                    ItemPhase::Completed,
                    Item::Message {
                        id: agent::new_item_id(),
                        role: MessageRole::System,
                        text: problem,
                        interrupted: false,
                        attachments: Vec::new(),
                    },
                )?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

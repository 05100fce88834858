//! `[[mcp_servers]]`: Model Context Protocol servers whose tools a session's agent may use,
//! each run by its `command` (stdio) or reached at its `url` (streamable HTTP). The user's
//! own settings and the editor's may name them; a repository's file may too, but its servers
//! are used only once the user trusts the repository (as its hooks are).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One `[[mcp_servers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Letters, digits, `-` and `_`: its tools are offered as `mcp__<name>__<tool>`.
    pub name: String,
    /// Stdio: the program (found on PATH when it has no `/`), its arguments and variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Streamable HTTP: where it answers, and the headers to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl McpServerConfig {
    /// Why this entry cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "mcp_servers: {:?} is not a name (letters, digits, - and _)",
                self.name
            ));
        }
        match (&self.command, &self.url) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(format!(
                "mcp_servers.{}: give either `command` (a stdio server) or `url` (an HTTP one)",
                self.name
            )),
        }
    }
}

/// Checks every entry and that no two share a name.
pub fn check_all(servers: &[McpServerConfig]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for server in servers {
        server.check()?;
        if !seen.insert(server.name.as_str()) {
            return Err(format!(
                "mcp_servers: two servers are named {:?}",
                server.name
            ));
        }
    }
    Ok(())
}

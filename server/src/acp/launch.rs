//! Starting an agent's program: finding it on PATH, its environment, and its process group
//! in the session's sandbox (it may write its worktree, its temp dir and its own state
//! folders, and use the network for its model).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::config::ProviderConfig;
use crate::sandbox::{Jail, Spawned};

/// How to install each agent preset, for the picker and for a session whose agent is
/// missing.
const INSTALL: &[(&str, &str)] = &[
    (
        "claude",
        "npm install -g @agentclientprotocol/claude-agent-acp",
    ),
    ("codex", "npm install -g @zed-industries/codex-acp"),
    ("gemini", "npm install -g @google/gemini-cli"),
    ("opencode", "npm install -g opencode-ai"),
    ("qwen", "npm install -g @qwen-code/qwen-code"),
    (
        "goose",
        "install the goose CLI: https://block.github.io/goose",
    ),
];

/// How to install the preset `provider`'s agent, if it is one.
pub fn install_hint(provider: &str) -> Option<&'static str> {
    INSTALL
        .iter()
        .find(|(preset, _)| *preset == provider)
        .map(|(_, how)| *how)
}

/// `command` as an executable file: itself when it names a path, else the first match in
/// `path`'s absolute folders.
pub fn find_program(command: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |candidate: &Path| {
        std::fs::metadata(candidate)
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        let candidate = PathBuf::from(command);
        return executable(&candidate).then_some(candidate);
    }
    std::env::split_paths(path)
        .filter(|folder| folder.is_absolute())
        .map(|folder| folder.join(command))
        .find(|candidate| executable(candidate))
}

/// Everything needed to start one session's agent.
#[derive(Debug, Clone)]
pub struct AgentLaunch {
    /// The provider's name (`claude`), for messages.
    pub provider: String,
    pub command: String,
    pub args: Vec<String>,
    /// Set for the agent: the provider's `env`, and its key under `api_key_env` when an
    /// editor passed it along.
    pub env: BTreeMap<String, String>,
    /// The session's jail: the agent's group is confined as the session's commands are,
    /// with its state folders writable and the network on.
    pub jail: Jail,
    /// How long `initialize` and `session/new` may take.
    pub answer_timeout: std::time::Duration,
    /// The agent's session mode to set (`providers.<name>.modes` for the session's
    /// permission mode).
    pub mode: Option<String>,
    /// The model to choose through the agent's model selector (`None`: the agent's own).
    pub model: Option<String>,
    /// The session's MCP servers, handed to the agent when its session opens.
    pub mcp_servers: Vec<crate::config::McpServerConfig>,
}

impl AgentLaunch {
    /// The launch of `provider` for a session whose commands run in `jail`. The agent's own
    /// key variable is not hidden from it (it is the agent's to use); every other secret is.
    pub fn new(
        provider: &str,
        config: &ProviderConfig,
        mut jail: Jail,
        permission_mode: &str,
    ) -> Result<AgentLaunch, String> {
        let command = config.command.clone().ok_or_else(|| {
            format!("providers.{provider} is an ACP agent without a `command` to run")
        })?;
        let mut env = config.env.clone();
        // What the user's settings give the agent is the agent's, secrets included.
        jail.hidden_env.retain(|name| !env.contains_key(name));
        if let Some(variable) = &config.api_key_env {
            jail.hidden_env.retain(|name| name != variable);
            if let Some(key) = &config.api_key_value {
                env.insert(variable.clone(), key.0.clone());
            }
        }
        // `~` is the agent's home: the one its `env` gives it, else Tether's.
        let home = env
            .get("HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(PathBuf::from));
        jail.writable = config
            .state_dirs
            .iter()
            .filter_map(|folder| match (folder.strip_prefix("~/"), &home) {
                (Some(rest), Some(home)) => Some(home.join(rest)),
                (Some(_), None) => None,
                (None, _) => Some(PathBuf::from(folder)),
            })
            .collect();
        jail.network = true;
        // The agent's group is not the session's commands': ending a turn's commands must
        // not end the agent.
        jail.owner = format!("{}/agent", jail.owner).into();
        Ok(AgentLaunch {
            provider: provider.to_owned(),
            command,
            args: config.args.clone(),
            env,
            jail,
            answer_timeout: std::time::Duration::from_secs(config.timeout_secs.max(1)),
            mode: config.modes.get(permission_mode).cloned(),
            model: None,
            mcp_servers: Vec::new(),
        })
    }

    /// The session's model, unless it is the agent's own (`default`).
    pub fn with_model(mut self, model: &str) -> AgentLaunch {
        self.model = (model != "default" && !model.is_empty()).then(|| model.to_owned());
        self
    }

    /// The MCP servers to hand the agent.
    pub fn with_mcp_servers(mut self, servers: Vec<crate::config::McpServerConfig>) -> AgentLaunch {
        self.mcp_servers = servers;
        self
    }

    /// The command line, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.command.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What to tell the user when the program is not there.
    fn not_found(&self) -> String {
        let mut message = format!(
            "the agent `{}` of provider {} is not installed: `{}` is not on PATH",
            self.command_line(),
            self.provider,
            self.command
        );
        match install_hint(&self.provider) {
            Some(how) => message.push_str(&format!("; install it with `{how}`")),
            None => message.push_str(&format!(
                "; install it, or set providers.{}.command to its path",
                self.provider
            )),
        }
        message
    }

    /// Starts the agent in the worktree, in its own process group under the sandbox.
    pub fn spawn(&self) -> Result<Spawned, String> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let program = find_program(&self.command, &path).ok_or_else(|| self.not_found())?;
        for folder in &self.jail.writable {
            // Landlock rules name folders that exist.
            if let Err(error) = std::fs::create_dir_all(folder) {
                tracing::warn!(
                    "cannot create the agent's folder {}: {error}",
                    folder.display()
                );
            }
        }
        let mut command = std::process::Command::new(&program);
        command
            .args(&self.args)
            .current_dir(&self.jail.worktree)
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::sandbox::groups::spawn(&self.jail, command)
            .map_err(|error| format!("cannot start the agent `{}`: {error}", self.command_line()))
    }
}

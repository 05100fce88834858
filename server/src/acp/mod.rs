//! Agents over the Agent Client Protocol: Claude Code, Codex, Gemini CLI, OpenCode… run as a
//! session's agent, one process per session, Tether being their client.
//!
//! - [`launch`] finds the agent's program and starts it in the session's sandbox, in the
//!   worktree, in a process group of its own.
//! - [`connection`] speaks JSON-RPC to it through the `agent-client-protocol` SDK.
//! - [`AgentSession::start`] initializes it and opens its ACP session: the one a previous
//!   process had, through `session/load` or `session/resume` when the agent offers them, else
//!   a new one (primed with the transcript by the caller).
//! - [`turn`] runs a Tether turn as one `session/prompt`: [`translate`] turns the agent's
//!   updates into events, [`serve`] answers its file and terminal requests inside the
//!   worktree, permissions become `permission` items.
//!
//! This module knows the agent side of a session; the session manager decides when a
//! session's agent starts, which turn it runs and when it ends.

mod asks;
mod connection;
mod facts;
mod launch;
mod serve;
mod translate;
mod turn;

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema::{
    AgentNotification, ClientCapabilities, EnvVariable, FileSystemCapabilities, HttpHeader,
    Implementation, InitializeRequest, InitializeResponse, LoadSessionRequest, McpServer,
    McpServerHttp, McpServerStdio, NewSessionRequest, ResumeSessionRequest, SessionConfigOption,
    SessionConfigValueId, SessionId, SetSessionConfigOptionRequest, SetSessionModeRequest,
};

use crate::vocab::AgentFacts;

pub use connection::Connection;
pub use launch::{AgentLaunch, find_program, install_hint};
pub use turn::TurnContext;

use connection::Incoming;

/// How the agent's ACP session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new session: the agent knows nothing of the conversation so far.
    New,
    /// The previous process's session, through `session/load` or `session/resume`.
    Restored,
}

/// A running agent with its ACP session open.
pub struct AgentSession {
    launch: AgentLaunch,
    connection: Connection,
    session_id: SessionId,
    /// The worktree as the agent knows it, and the other spellings of it it may use.
    roots: Vec<PathBuf>,
    pub opened: Opened,
    /// The running cost the agent last reported.
    cost_reported: Option<f64>,
    terminals: serve::Terminals,
    /// What the agent says about its session, and what of it the session last recorded.
    facts: AgentFacts,
    facts_recorded: Option<AgentFacts>,
    /// What its prompts may carry besides text.
    prompts: PromptSupport,
}

/// What an agent's prompts may carry besides text, as it said in `initialize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptSupport {
    pub image: bool,
    pub embedded_context: bool,
}

impl AgentSession {
    /// Starts the agent in `worktree` and opens its session: `previous` (an ACP session id
    /// this session had) when the agent can restore it, else a new one.
    pub async fn start(
        launch: AgentLaunch,
        worktree: &Path,
        previous: Option<&str>,
    ) -> Result<AgentSession, String> {
        let mut connection = Connection::open(&launch).await?;
        let mut facts = AgentFacts::default();
        let mut prompts = PromptSupport::default();
        let started = open_session(
            &launch,
            &mut connection,
            worktree,
            previous,
            &mut facts,
            &mut prompts,
        )
        .await;
        let (session_id, opened) = match started {
            Ok(opened) => opened,
            Err(failure) => {
                let message = match failure {
                    Failure::Said(message) => message,
                    Failure::Gone => connection.gone_reason(&launch).await,
                };
                connection.kill();
                return Err(message);
            }
        };
        let mut roots = vec![worktree.to_owned()];
        if let Ok(canonical) = worktree.canonicalize()
            && canonical != worktree
        {
            roots.push(canonical);
        }
        Ok(AgentSession {
            launch,
            connection,
            session_id,
            roots,
            opened,
            cost_reported: None,
            terminals: serve::Terminals::default(),
            facts,
            facts_recorded: None,
            prompts,
        })
    }

    /// What the agent says about its session, when it changed since the last call.
    pub fn new_facts(&mut self) -> Option<AgentFacts> {
        if self.facts_recorded.as_ref() == Some(&self.facts)
            || (self.facts_recorded.is_none() && self.facts == AgentFacts::default())
        {
            return None;
        }
        self.facts_recorded = Some(self.facts.clone());
        Some(self.facts.clone())
    }

    /// The agent's id for the session, to log so that a restart can restore it.
    pub fn session_id(&self) -> &str {
        &self.session_id.0
    }

    /// Whether the agent is still running.
    pub fn is_alive(&self) -> bool {
        !self.connection.exited() && self.connection.closed.borrow().is_none()
    }

    /// Ends the agent and everything it started.
    pub fn kill(&mut self) {
        self.connection.kill();
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.launch.provider
    }
}

/// Why opening the session failed.
enum Failure {
    /// The agent answered with an error, or did not answer in time: the message says so.
    Said(String),
    /// The connection closed: the agent's exit says why.
    Gone,
}

async fn open_session(
    launch: &AgentLaunch,
    connection: &mut Connection,
    worktree: &Path,
    previous: Option<&str>,
    facts: &mut AgentFacts,
    prompts: &mut PromptSupport,
) -> Result<(SessionId, Opened), Failure> {
    let initialize = InitializeRequest::new(ProtocolVersion::V1)
        .client_capabilities(
            ClientCapabilities::new()
                .fs(FileSystemCapabilities::new()
                    .read_text_file(true)
                    .write_text_file(true))
                .terminal(true),
        )
        .client_info(Implementation::new("tether", env!("CARGO_PKG_VERSION")));
    let initialized: InitializeResponse = ask(
        launch,
        connection,
        "initialize",
        connection.cx.send_request(initialize).block_task(),
    )
    .await?;
    let servers = mcp_servers(launch, &initialized);
    let offered = &initialized.agent_capabilities.prompt_capabilities;
    *prompts = PromptSupport {
        image: offered.image,
        embedded_context: offered.embedded_context,
    };
    if let Some(previous) = previous {
        let id = SessionId::new(previous);
        let restored = if initialized.agent_capabilities.load_session {
            // The agent replays the conversation as updates: Tether has it already.
            let load = connection
                .cx
                .send_request(
                    LoadSessionRequest::new(id.clone(), worktree).mcp_servers(servers.clone()),
                )
                .block_task();
            discarding_updates(connection, launch.answer_timeout, load, facts)
                .await
                .map(|loaded| (loaded.modes, loaded.config_options))
        } else {
            let resume = connection
                .cx
                .send_request(
                    ResumeSessionRequest::new(id.clone(), worktree).mcp_servers(servers.clone()),
                )
                .block_task();
            discarding_updates(connection, launch.answer_timeout, resume, facts)
                .await
                .map(|resumed| (resumed.modes, resumed.config_options))
        };
        match restored {
            Ok((modes, options)) => {
                facts::opened(facts, modes.as_ref(), options.as_deref());
                set_mode(launch, connection, &id, None, facts).await;
                set_model(launch, connection, &id, options.as_deref(), facts).await;
                return Ok((id, Opened::Restored));
            }
            Err(reason) => {
                if matches!(&reason, Refused::Error(error) if gone(error)) {
                    return Err(Failure::Gone);
                }
                tracing::info!(
                    "agent {}: cannot restore its session {previous} ({reason}); starting a new one",
                    launch.provider
                );
            }
        }
    }
    let new = connection
        .cx
        .send_request(NewSessionRequest::new(worktree).mcp_servers(servers))
        .block_task();
    match discarding_updates(connection, launch.answer_timeout, new, facts).await {
        Ok(created) => {
            facts::opened(
                facts,
                created.modes.as_ref(),
                created.config_options.as_deref(),
            );
            let offered = created.modes.as_ref().map(|modes| {
                modes
                    .available_modes
                    .iter()
                    .map(|mode| mode.id.0.to_string())
                    .collect::<Vec<_>>()
            });
            let session = created.session_id.clone();
            set_mode(launch, connection, &session, offered.as_deref(), facts).await;
            set_model(
                launch,
                connection,
                &session,
                created.config_options.as_deref(),
                facts,
            )
            .await;
            Ok((session, Opened::New))
        }
        Err(Refused::Error(error)) if i32::from(error.code) == -32000 => Err(Failure::Said(
            login_message(launch, &initialized, &error.message),
        )),
        Err(Refused::Error(error)) if gone(&error) => Err(Failure::Gone),
        Err(Refused::Error(error)) => Err(Failure::Said(format!(
            "the agent `{}` refused to open a session: {error}",
            launch.command_line()
        ))),
        Err(Refused::Timeout) => Err(Failure::Said(format!(
            "the agent `{}` did not answer session/new within {} s{}",
            launch.command_line(),
            launch.answer_timeout.as_secs(),
            connection::lock(&connection.traces).describe()
        ))),
    }
}

/// The session's MCP servers as the agent takes them: every stdio one, and the HTTP ones
/// when it says it speaks HTTP.
fn mcp_servers(launch: &AgentLaunch, initialized: &InitializeResponse) -> Vec<McpServer> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    launch
        .mcp_servers
        .iter()
        .filter_map(|server| match (&server.command, &server.url) {
            (Some(command), _) => {
                let program = find_program(command, &path).unwrap_or_else(|| command.into());
                Some(McpServer::Stdio(
                    McpServerStdio::new(server.name.clone(), program)
                        .args(server.args.clone())
                        .env(
                            server
                                .env
                                .iter()
                                .map(|(name, value)| EnvVariable::new(name, value))
                                .collect(),
                        ),
                ))
            }
            (None, Some(url)) if initialized.agent_capabilities.mcp_capabilities.http => {
                Some(McpServer::Http(
                    McpServerHttp::new(server.name.clone(), url.clone()).headers(
                        server
                            .headers
                            .iter()
                            .map(|(name, value)| HttpHeader::new(name, value))
                            .collect(),
                    ),
                ))
            }
            _ => {
                tracing::info!(
                    "agent {} does not take the HTTP MCP server {}",
                    launch.provider,
                    server.name
                );
                None
            }
        })
        .collect()
}

/// Sets the agent's session mode the launch asks for, if the agent offers it (`None`: not
/// known, tried anyway). A refusal is logged: the agent keeps its own mode, and Tether's
/// sandbox and permission answers still hold.
async fn set_mode(
    launch: &AgentLaunch,
    connection: &mut Connection,
    session: &SessionId,
    offered: Option<&[String]>,
    facts: &mut AgentFacts,
) {
    let Some(mode) = &launch.mode else { return };
    if offered.is_some_and(|offered| !offered.contains(mode)) {
        tracing::info!("agent {} offers no mode {mode}", launch.provider);
        return;
    }
    let request = connection
        .cx
        .send_request(SetSessionModeRequest::new(session.clone(), mode.clone()))
        .block_task();
    match discarding_updates(connection, launch.answer_timeout, request, facts).await {
        Ok(_) => facts.mode = Some(mode.clone()),
        Err(error) => {
            tracing::info!(
                "agent {} did not take mode {mode}: {error}",
                launch.provider
            );
        }
    }
}

/// Chooses the session's model through the agent's model selector, when the session names
/// one the agent offers.
async fn set_model(
    launch: &AgentLaunch,
    connection: &mut Connection,
    session: &SessionId,
    options: Option<&[SessionConfigOption]>,
    facts: &mut AgentFacts,
) {
    let Some(model) = &launch.model else { return };
    let Some((config, current, values)) = options.and_then(facts::model_option) else {
        return;
    };
    if current == *model || !values.contains(model) {
        if current != *model {
            tracing::info!("agent {} offers no model {model}", launch.provider);
        }
        return;
    }
    let request = connection
        .cx
        .send_request(SetSessionConfigOptionRequest::new(
            session.clone(),
            config,
            SessionConfigValueId::new(model.as_str()),
        ))
        .block_task();
    match discarding_updates(connection, launch.answer_timeout, request, facts).await {
        Ok(answer) => facts::opened(facts, None, Some(&answer.config_options)),
        Err(error) => {
            tracing::info!(
                "agent {} did not take model {model}: {error}",
                launch.provider
            );
        }
    }
}

/// Whether `error` says the agent went away (its stdout closed, the connection ended).
pub(crate) fn gone(error: &agent_client_protocol::Error) -> bool {
    agent_client_protocol::is_incoming_transport_closed(error)
        || agent_client_protocol::is_connection_terminated(error)
}

/// Awaits the answer to `request` within the launch's timeout.
async fn ask<T>(
    launch: &AgentLaunch,
    connection: &Connection,
    method: &str,
    request: impl Future<Output = Result<T, agent_client_protocol::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(launch.answer_timeout, request).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) if gone(&error) || connection.exited() => Err(Failure::Gone),
        Ok(Err(error)) => Err(Failure::Said(format!(
            "the agent `{}` failed {method}: {error}",
            launch.command_line()
        ))),
        Err(_) => Err(Failure::Said(format!(
            "the agent `{}` did not answer {method} within {} s (providers.{}.timeout_secs){}",
            launch.command_line(),
            launch.answer_timeout.as_secs(),
            launch.provider,
            connection::lock(&connection.traces).describe()
        ))),
    }
}

enum Refused {
    Error(agent_client_protocol::Error),
    Timeout,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Error(error) => write!(f, "{error}"),
            Refused::Timeout => f.write_str("no answer in time"),
        }
    }
}

/// Awaits `request` while dropping the session updates that come meanwhile (a loaded
/// session's replay, the commands a new one offers); requests are refused.
async fn discarding_updates<T>(
    connection: &mut Connection,
    timeout: Duration,
    request: impl Future<Output = Result<T, agent_client_protocol::Error>>,
    facts: &mut AgentFacts,
) -> Result<T, Refused> {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline, request);
    let mut open = true;
    loop {
        tokio::select! {
            answer = &mut request => {
                // What the agent sent before its answer is in the channel already.
                while let Ok(incoming) = connection.incoming.try_recv() {
                    discard(incoming, facts);
                }
                return answer.map_err(Refused::Error);
            }
            () = &mut deadline => return Err(Refused::Timeout),
            incoming = connection.incoming.recv(), if open => match incoming {
                Some(incoming) => discard(incoming, facts),
                None => open = false,
            },
        }
    }
}

/// Drops what the agent sent while its session was being opened; a request is refused.
fn discard(incoming: Incoming, facts: &mut AgentFacts) {
    match incoming {
        Incoming::Notification(notification) => match *notification {
            AgentNotification::SessionNotification(notification) => {
                facts::update(facts, &notification.update);
            }
            _ => tracing::debug!("agent notification ignored while opening its session"),
        },
        Incoming::Request(request) => serve::answer::<()>(
            request.1,
            Err(serve::refusal("the session is not open yet")),
        ),
    }
}

/// What to tell a user whose agent wants them to log in.
fn login_message(launch: &AgentLaunch, initialized: &InitializeResponse, said: &str) -> String {
    let methods: Vec<String> = initialized
        .auth_methods
        .iter()
        .filter_map(|method| serde_json::to_value(method).ok())
        .map(|method| {
            let name = method["name"].as_str().unwrap_or("?").to_owned();
            match method["description"].as_str() {
                Some(description) => format!("{name} ({description})"),
                None => name,
            }
        })
        .collect();
    let mut message = format!(
        "the agent `{}` needs you to log in first ({said})",
        launch.command_line()
    );
    if !methods.is_empty() {
        message.push_str(&format!("; it offers: {}", methods.join("; ")));
    }
    message.push_str(&format!(
        "; log in with the agent's own CLI (for Claude Code: run `claude` and `/login`), or set its API key variable (providers.{}.api_key_env)",
        launch.provider
    ));
    message
}

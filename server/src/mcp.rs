//! Tether's own agent as an MCP client (the `rmcp` crate): the session's `[[mcp_servers]]`,
//! stdio ones started in the session's sandbox, in its worktree, HTTP ones reached at their
//! URL; their tools offered to the model as
//! `mcp__<server>__<tool>` and called with a timeout. A server that does not start is
//! reported, never a failed turn; one that hangs or answers nonsense is a tool error.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use tokio_util::sync::CancellationToken;

use crate::config::McpServerConfig;
use crate::provider::ToolDefinition;
use crate::sandbox::Jail;

/// How long a server has to start and list its tools.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// At most this much of a tool's answer is given to the model.
const RESULT_LIMIT: usize = 30_000;

/// The prefix of every MCP tool's name.
pub const TOOL_PREFIX: &str = "mcp__";

/// One server's tool, as offered to the model.
struct OfferedTool {
    /// `mcp__<server>__<tool>`.
    name: String,
    server: usize,
    /// The tool's own name on its server.
    tool: String,
    description: String,
    schema: serde_json::Value,
}

/// The MCP servers of one session activation and their tools.
pub struct McpTools {
    servers: Vec<RunningService<RoleClient, ()>>,
    tools: Vec<OfferedTool>,
    owner: Arc<str>,
}

impl std::fmt::Debug for McpTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTools")
            .field(
                "tools",
                &self.tools.iter().map(|tool| &tool.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Drop for McpTools {
    fn drop(&mut self) {
        crate::sandbox::end_owner(&self.owner);
    }
}

impl McpTools {
    /// Starts the stdio servers among `servers` in `jail` and lists their tools; what could
    /// not be started, as sentences for the session.
    pub async fn start(servers: &[McpServerConfig], jail: &Jail) -> (McpTools, Vec<String>) {
        let mut jail = jail.clone();
        jail.owner = format!("{}/mcp", jail.owner).into();
        jail.network = true;
        let mut started = McpTools {
            servers: Vec::new(),
            tools: Vec::new(),
            owner: jail.owner.clone(),
        };
        let mut problems = Vec::new();
        for server in servers {
            let starting = async {
                match &server.url {
                    Some(url) => connect_http(server, url).await,
                    None => start_one(server, &jail).await,
                }
            };
            match tokio::time::timeout(START_TIMEOUT, starting).await {
                Ok(Ok((running, tools))) => {
                    let index = started.servers.len();
                    started.servers.push(running);
                    for tool in tools {
                        started.tools.push(OfferedTool {
                            name: format!("{TOOL_PREFIX}{}__{}", server.name, tool.name),
                            server: index,
                            tool: tool.name.to_string(),
                            description: tool
                                .description
                                .map(|text| text.to_string())
                                .unwrap_or_default(),
                            schema: serde_json::Value::Object((*tool.input_schema).clone()),
                        });
                    }
                }
                Ok(Err(message)) => problems.push(format!("MCP server {}: {message}", server.name)),
                Err(_) => problems.push(format!(
                    "MCP server {} did not start within {} s",
                    server.name,
                    START_TIMEOUT.as_secs()
                )),
            }
        }
        (started, problems)
    }

    /// The tools, for the model.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.tools
            .iter()
            .map(|tool| ToolDefinition {
                name: tool.name.clone().into(),
                description: tool.description.clone().into(),
                parameters: tool.schema.clone(),
            })
            .collect()
    }

    /// Whether `name` is one of these tools.
    pub fn offers(&self, name: &str) -> bool {
        self.tools.iter().any(|tool| tool.name == name)
    }

    /// Calls the tool `name` with `arguments` (JSON text); its answer as text, or an error
    /// for the model.
    pub async fn call(
        &self,
        name: &str,
        arguments: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<String, String> {
        let tool = self
            .tools
            .iter()
            .find(|tool| tool.name == name)
            .ok_or_else(|| format!("there is no tool named {name:?}"))?;
        let arguments = match serde_json::from_str::<serde_json::Value>(arguments) {
            Ok(serde_json::Value::Object(arguments)) => Some(arguments),
            Ok(serde_json::Value::Null) => None,
            Ok(_) | Err(_) => {
                return Err(format!(
                    "the arguments of {name} must be a JSON object, not {arguments:?}"
                ));
            }
        };
        let mut params = CallToolRequestParams::new(tool.tool.clone());
        params.arguments = arguments;
        let call = self.servers[tool.server].call_tool(params);
        let result = tokio::select! {
            result = tokio::time::timeout(timeout, call) => result,
            () = cancel.cancelled() => return Err("the session was stopped".to_owned()),
        };
        let result = match result {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => return Err(format!("the MCP server failed the call: {error}")),
            Err(_) => {
                return Err(format!(
                    "the MCP server did not answer within {} s",
                    timeout.as_secs()
                ));
            }
        };
        let mut text = String::new();
        for block in &result.content {
            let value = serde_json::to_value(block).unwrap_or_default();
            let part = match value["text"].as_str() {
                Some(part) => part.to_owned(),
                None => format!("[{} content]", value["type"].as_str().unwrap_or("other")),
            };
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&part);
        }
        if text.is_empty()
            && let Some(structured) = &result.structured_content
        {
            text = structured.to_string();
        }
        if text.len() > RESULT_LIMIT {
            let cut = text.floor_char_boundary(RESULT_LIMIT);
            text.truncate(cut);
            text.push_str("\n[… cut]");
        }
        if result.is_error == Some(true) {
            return Err(text);
        }
        Ok(text)
    }
}

/// Connects to a streamable HTTP server and lists its tools.
async fn connect_http(
    server: &McpServerConfig,
    url: &str,
) -> Result<(RunningService<RoleClient, ()>, Vec<rmcp::model::Tool>), String> {
    let mut headers = std::collections::HashMap::new();
    for (name, value) in &server.headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|error| format!("the header name {name:?} is not valid: {error}"))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|error| format!("the value of header {name} is not valid: {error}"))?;
        headers.insert(name, value);
    }
    let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers);
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    let running = ()
        .serve(transport)
        .await
        .map_err(|error| format!("{url} did not answer as an MCP server: {error}"))?;
    let tools = running
        .list_all_tools()
        .await
        .map_err(|error| format!("{url} did not list its tools: {error}"))?;
    Ok((running, tools))
}

async fn start_one(
    server: &McpServerConfig,
    jail: &Jail,
) -> Result<(RunningService<RoleClient, ()>, Vec<rmcp::model::Tool>), String> {
    let Some(command) = &server.command else {
        return Err("it has no command".to_owned());
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    let program = crate::acp::find_program(command, &path)
        .ok_or_else(|| format!("`{command}` is not on PATH"))?;
    let mut process = std::process::Command::new(program);
    process
        .args(&server.args)
        .envs(&server.env)
        .current_dir(&jail.worktree)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut jail = jail.clone();
    // What the user's settings give the server is the server's, secrets included.
    jail.hidden_env
        .retain(|name| !server.env.contains_key(name));
    let mut spawned = crate::sandbox::groups::spawn(&jail, process)
        .map_err(|error| format!("cannot start `{command}`: {error}"))?;
    let (Some(stdin), Some(stdout)) = (spawned.stdin.take(), spawned.stdout.take()) else {
        return Err("its stdio could not be piped".to_owned());
    };
    let running = ()
        .serve((stdout, stdin))
        .await
        .map_err(|error| format!("`{command}` did not start as an MCP server: {error}"))?;
    let tools = running
        .list_all_tools()
        .await
        .map_err(|error| format!("`{command}` did not list its tools: {error}"))?;
    Ok((running, tools))
}

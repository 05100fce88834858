//! One turn of a session: send the conversation to the model, stream its reply into events,
//! stop the instant the user says so.
//!
//! The agent knows providers and events; it does not know where events go (the session
//! manager passes a sink that logs and announces them) and it never touches the store.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

mod command;
mod context;
mod files;
pub mod instructions;
mod interactive;
mod stream;
pub mod tools;

pub use crate::sandbox;
pub(crate) use command::{changes_between, restore_gitlink, take_snapshot};
pub(crate) use stream::{StreamingItem, push_text};

use crate::provider::{ChatMessage, ChatRequest, ChatRole, ModelProvider, ToolCallRequest};
use crate::vocab::{
    Answer, Event, Item, ItemPhase, PermissionDecision, PlanDecision, PlanPhase, Question,
    ToolCallStatus, TurnEndReason,
};
use interactive::{ask_permission, ask_user, propose_plan};
use stream::stream_reply;

/// Streamed text is sent at most about once per frame, so a fast model cannot flood the
/// editor with notifications.
pub const DELTA_FRAME: Duration = Duration::from_millis(16);

/// How a turn ended.
#[derive(Debug)]
pub struct TurnOutcome {
    pub reason: TurnEndReason,
    /// What went wrong, for `failed`.
    pub message: Option<String>,
}

/// Where a turn's events go. An error there (the log cannot be written) ends the turn.
pub trait EventSink: Send {
    fn emit(&mut self, event: Event) -> Result<(), String>;

    /// Asks a question: emits its started `question` item and opens it for answering in one
    /// step (so a client that sees the item can always answer it); the session shows
    /// `waiting_input` until the answers come through the receiver.
    fn ask(
        &mut self,
        item_id: &str,
        questions: &[Question],
    ) -> Result<tokio::sync::oneshot::Receiver<Vec<Answer>>, String>;

    /// Whether a tool call may run in `ask` mode: granted, denied, or asked (a `permission`
    /// item is emitted and the session shows `waiting_input` until the decision comes).
    fn permission<'a>(
        &'a mut self,
        tool: &str,
        input: &serde_json::Value,
        scope: &str,
    ) -> futures_util::future::BoxFuture<'a, Result<PermissionCheck, String>>;

    /// Proposes a plan: emits its started `plan` item and opens it for the user's decision in
    /// one step; the session shows `awaiting_plan_approval` until it comes.
    fn propose(
        &mut self,
        item_id: &str,
        phases: &[PlanPhase],
    ) -> Result<tokio::sync::oneshot::Receiver<PlanDecision>, String>;

    /// Delivers the follow-ups the user sent while the turn works, between two model calls
    /// (steering): emits them as user messages and returns their texts as the model is to
    /// see them. None by default: they wait for the turn to end.
    fn steer(&mut self) -> futures_util::future::BoxFuture<'_, Result<Vec<String>, String>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}

/// The answer to [`EventSink::permission`].
pub enum PermissionCheck {
    Allowed,
    Denied,
    /// Asked: the decision (and optional feedback) comes through the receiver.
    Ask {
        item_id: String,
        decision: tokio::sync::oneshot::Receiver<(PermissionDecision, Option<String>)>,
    },
}

pub use crate::vocab::new_item_id;

/// How a turn may use tools.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    /// Where tools run; `None` runs a turn without tools.
    pub tools: Option<tools::ToolContext>,
    /// Model calls one turn may make before it ends with `max_turns`.
    pub max_steps: usize,
    /// The model's price, to put a cost on each response's usage.
    pub price: Option<crate::config::Price>,
    /// The model's context window, reported with each response's usage.
    pub context_window: Option<u64>,
    /// What the session may still spend; the turn ends with `budget` once a response
    /// brings the spending to it.
    pub budget_left_usd: Option<f64>,
    /// The longest a turn may take; it then ends with `timeout`.
    pub turn_timeout: Option<Duration>,
    /// The session's MCP servers' tools, offered besides Tether's own.
    pub mcp: Option<std::sync::Arc<crate::mcp::McpTools>>,
    /// How the agent is told to work, the project's instructions included: the system
    /// message is rendered again before each model call (the files the conversation reached
    /// bring their folders' instructions with them).
    pub instructions: Option<instructions::Instructions>,
}

/// Runs a turn: model calls and the tool calls they ask for, until the model ends its
/// turn (or calls `finish`), the user stops it, or a limit is hit.
pub async fn run_turn(
    provider: &dyn ModelProvider,
    mut request: ChatRequest,
    settings: &TurnSettings,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> TurnOutcome {
    // A timeout stops the turn the way the user would, so every item is closed properly.
    let turn_cancel = cancel.child_token();
    let timer = settings.turn_timeout.map(|limit| {
        let turn_cancel = turn_cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            turn_cancel.cancel();
        })
    });
    let mut timeout_message = None;
    let result = run_steps(
        provider,
        &mut request,
        settings,
        &turn_cancel,
        sink,
        &mut timeout_message,
    )
    .await;
    if let Some(timer) = timer {
        timer.abort();
    }
    let timed_out = turn_cancel.is_cancelled() && !cancel.is_cancelled();
    match result {
        Ok(TurnEndReason::Stopped) if timed_out => TurnOutcome {
            reason: TurnEndReason::Timeout,
            message: Some(format!(
                "the turn took longer than session.turn_timeout_secs ({} s)",
                settings.turn_timeout.map_or(0, |limit| limit.as_secs())
            )),
        },
        Ok(reason) => TurnOutcome {
            reason,
            message: timeout_message,
        },
        Err(message) => TurnOutcome {
            reason: TurnEndReason::Failed,
            message: Some(message),
        },
    }
}

async fn run_steps(
    provider: &dyn ModelProvider,
    request: &mut ChatRequest,
    settings: &TurnSettings,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
    timeout_message: &mut Option<String>,
) -> Result<TurnEndReason, String> {
    let mut spent = 0.0;
    for _ in 0..settings.max_steps.max(1) {
        if let Some(instructions) = &settings.instructions {
            instructions.refresh(&mut request.messages);
        }
        let reply = stream_reply(provider, request, settings, cancel, sink).await?;
        spent += reply.cost_usd;
        if reply.reason != TurnEndReason::EndTurn {
            *timeout_message = reply.message;
            return Ok(reply.reason);
        }
        if settings.budget_left_usd.is_some_and(|left| spent >= left) {
            return Ok(TurnEndReason::Budget);
        }
        if reply.tool_calls.is_empty() {
            return Ok(reply.reason);
        }
        let Some(context) = &settings.tools else {
            return Err("the model called a tool, but this turn has none".to_owned());
        };
        request.messages.push(ChatMessage {
            tool_calls: reply.tool_calls.clone(),
            ..ChatMessage::new(ChatRole::Assistant, reply.text)
        });
        let mut finished = false;
        for call in reply.tool_calls {
            let outcome =
                run_tool_call(context, settings.mcp.as_deref(), &call, cancel, sink).await?;
            if cancel.is_cancelled() {
                return Ok(TurnEndReason::Stopped);
            }
            finished |= outcome.finished.is_some();
            request.messages.push(ChatMessage {
                tool_call_id: Some(call.id.clone()),
                ..ChatMessage::new(ChatRole::Tool, outcome.output)
            });
        }
        if finished {
            return Ok(TurnEndReason::EndTurn);
        }
        // What the user said meanwhile reaches the model with the tools' results.
        for text in sink.steer().await? {
            request
                .messages
                .push(ChatMessage::new(ChatRole::User, text));
        }
    }
    Ok(TurnEndReason::MaxTurns)
}

/// Runs one tool call as a `toolCall` item (and a `fileChange` item per file it changed).
async fn run_tool_call(
    context: &tools::ToolContext,
    mcp: Option<&crate::mcp::McpTools>,
    call: &ToolCallRequest,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<tools::ToolOutcome, String> {
    let id = new_item_id();
    let input = serde_json::from_str::<serde_json::Value>(&call.arguments)
        .unwrap_or_else(|_| serde_json::Value::String(call.arguments.clone()));
    let item = |status, output: Option<String>, duration_ms: Option<u64>| Item::ToolCall {
        id: id.clone(),
        call_id: call.id.clone(),
        tool: call.name.clone(),
        input: input.clone(),
        status,
        output,
        duration_ms,
    };
    sink.emit(Event::Item {
        phase: ItemPhase::Started,
        item: item(ToolCallStatus::Running, None, None),
    })?;
    let started = std::time::Instant::now();
    let outcome = match call.name.as_str() {
        "ask_user" => ask_user(&call.arguments, cancel, sink).await?,
        "propose_plan" => propose_plan(&call.arguments, cancel, sink).await?,
        name if let Some(mcp) = mcp.filter(|mcp| mcp.offers(name)) => {
            run_mcp_tool(context, mcp, call, &input, cancel, sink).await?
        }
        name if context.ask_permission
            && tools::needs_permission(name)
            && !context
                .allowed_scopes
                .contains(&tools::permission_scope(name, &input)) =>
        {
            match ask_permission(call, &input, cancel, sink).await? {
                None => tools::run(context, &call.name, &call.arguments, cancel).await,
                Some(refusal) => refusal,
            }
        }
        _ => tools::run(context, &call.name, &call.arguments, cancel).await,
    };
    let status = if outcome.is_error {
        ToolCallStatus::Failed
    } else {
        ToolCallStatus::Completed
    };
    sink.emit(Event::Item {
        phase: ItemPhase::Completed,
        item: item(
            status,
            Some(outcome.output.clone()),
            Some(started.elapsed().as_millis() as u64),
        ),
    })?;
    for change in &outcome.file_changes {
        sink.emit(Event::Item {
            phase: ItemPhase::Completed,
            item: Item::FileChange {
                id: new_item_id(),
                path: change.path.clone(),
                additions: change.additions,
                deletions: change.deletions,
            },
        })?;
    }
    Ok(outcome)
}

/// An MCP server's tool: refused in read-only sessions (it may change anything), asked
/// for in `ask` mode like any tool that writes, then called.
async fn run_mcp_tool(
    context: &tools::ToolContext,
    mcp: &crate::mcp::McpTools,
    call: &ToolCallRequest,
    input: &serde_json::Value,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<tools::ToolOutcome, String> {
    if context.read_only {
        return Ok(tools::ToolOutcome::error(
            "MCP tools are off in this session (chat mode or permission_mode = \"read-only\")",
        ));
    }
    if context.ask_permission
        && !context.allowed_scopes.contains(&call.name)
        && let Some(refusal) = ask_permission(call, input, cancel, sink).await?
    {
        return Ok(refusal);
    }
    Ok(
        match mcp
            .call(&call.name, &call.arguments, context.command_timeout, cancel)
            .await
        {
            Ok(output) => tools::ToolOutcome::ok(output),
            Err(message) => tools::ToolOutcome::error(message),
        },
    )
}

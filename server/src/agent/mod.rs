//! One turn of a session: send the conversation to the model, stream its reply into events,
//! stop the instant the user says so.
//!
//! The agent knows providers and events; it does not know where events go (the session
//! manager passes a sink that logs and announces them) and it never touches the store.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod command;
mod context;
mod files;
pub mod instructions;
pub mod tools;

pub use crate::sandbox;
pub(crate) use command::{changes_between, restore_gitlink, take_snapshot};

use crate::provider::{
    ChatMessage, ChatRequest, ChatRole, ModelProvider, ProviderError, StreamEvent, ToolCallRequest,
};
use crate::vocab::{
    Answer, Event, Item, ItemPhase, MessageRole, PermissionDecision, PlanDecision, PlanPhase,
    Question, QuestionKind, Resolution, TokenUsage, ToolCallStatus, TurnEndReason,
};

/// Streamed text is sent at most about once per frame, so a fast model cannot flood the
/// editor with notifications.
pub const DELTA_FRAME: Duration = Duration::from_millis(16);

/// The longest run of text without whitespace that is held back from a delta.
const HELD_WORD_LIMIT: usize = 4096;

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

/// A message being streamed: started on its first delta, completed at the end of the turn.
pub(crate) struct StreamingItem {
    id: String,
    role: MessageRole,
    text: String,
    /// Text received but not yet sent as a delta.
    unsent: String,
}

impl StreamingItem {
    pub(crate) fn new(role: MessageRole, sink: &mut dyn EventSink) -> Result<Self, String> {
        let item = StreamingItem {
            id: new_item_id(),
            role,
            text: String::new(),
            unsent: String::new(),
        };
        sink.emit(Event::Item {
            phase: ItemPhase::Started,
            item: item.snapshot(false),
        })?;
        Ok(item)
    }

    fn snapshot(&self, interrupted: bool) -> Item {
        Item::Message {
            id: self.id.clone(),
            role: self.role,
            text: self.text.clone(),
            interrupted,
            attachments: Vec::new(),
        }
    }

    /// Sends the unsent text up to its last whitespace, keeping a partial word back, so that
    /// a word (an API key, say) is never split across two deltas and redaction always sees
    /// it whole. A very long run without whitespace is sent anyway.
    pub(crate) fn flush(&mut self, sink: &mut dyn EventSink) -> Result<(), String> {
        let cut = match self.unsent.rfind(char::is_whitespace) {
            Some(index) => {
                index
                    + self.unsent[index..]
                        .chars()
                        .next()
                        .map_or(1, char::len_utf8)
            }
            None if self.unsent.len() > HELD_WORD_LIMIT => self.unsent.len(),
            None => 0,
        };
        if cut == 0 {
            return Ok(());
        }
        let rest = self.unsent.split_off(cut);
        let text = std::mem::replace(&mut self.unsent, rest);
        sink.emit(Event::Delta {
            item_id: self.id.clone(),
            text,
        })
    }

    /// Sends all unsent text.
    fn flush_all(&mut self, sink: &mut dyn EventSink) -> Result<(), String> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        sink.emit(Event::Delta {
            item_id: self.id.clone(),
            text: std::mem::take(&mut self.unsent),
        })
    }

    pub(crate) fn complete(
        mut self,
        interrupted: bool,
        sink: &mut dyn EventSink,
    ) -> Result<(), String> {
        self.flush_all(sink)?;
        sink.emit(Event::Item {
            phase: ItemPhase::Completed,
            item: self.snapshot(interrupted),
        })
    }
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

#[derive(serde::Deserialize)]
struct AskArgs {
    questions: Vec<AskQuestion>,
}

#[derive(serde::Deserialize)]
struct AskQuestion {
    prompt: String,
    #[serde(default)]
    kind: Option<QuestionKind>,
    #[serde(default)]
    options: Vec<String>,
}

/// The `ask_user` tool: a `question` item the user answers through `tether/session/answer`.
async fn ask_user(
    arguments: &str,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<tools::ToolOutcome, String> {
    let args: AskArgs = match serde_json::from_str(arguments) {
        Ok(args) => args,
        Err(error) => {
            return Ok(tools::ToolOutcome::error(format!(
                "invalid arguments for ask_user ({error}); send {{\"questions\": [{{\"prompt\", \"kind\": \"text\"|\"single\"|\"multi\", \"options\"}}]}}"
            )));
        }
    };
    if args.questions.is_empty() {
        return Ok(tools::ToolOutcome::error(
            "ask_user needs at least one question",
        ));
    }
    let mut questions = Vec::new();
    for (index, question) in args.questions.into_iter().enumerate() {
        let kind = question.kind.unwrap_or(if question.options.is_empty() {
            QuestionKind::Text
        } else {
            QuestionKind::Single
        });
        if kind != QuestionKind::Text && question.options.is_empty() {
            return Ok(tools::ToolOutcome::error(format!(
                "question {} is {kind:?} but offers no options",
                index + 1
            )));
        }
        questions.push(Question {
            id: format!("q{}", index + 1),
            prompt: question.prompt,
            kind,
            options: question.options,
        });
    }
    let id = new_item_id();
    let answers = sink.ask(&id, &questions)?;
    tokio::select! {
        biased;
        () = cancel.cancelled() => {
            sink.emit(Event::Item {
                phase: ItemPhase::Completed,
                item: Item::Question { id: id.clone(), questions, answers: None },
            })?;
            sink.emit(Event::Resolved { item_id: id, outcome: Resolution::Cancelled })?;
            Ok(tools::ToolOutcome::error("the session was stopped before the user answered"))
        }
        answers = answers => match answers {
            Ok(answers) => {
                let mut output = String::new();
                for (question, answer) in questions.iter().zip(&answers) {
                    let answer = match answer {
                        Answer::Text(text) => text.clone(),
                        Answer::Choices(choices) => choices.join(", "),
                    };
                    output.push_str(&format!("{}\nAnswer: {answer}\n", question.prompt));
                }
                Ok(tools::ToolOutcome::ok(output))
            }
            Err(_) => Ok(tools::ToolOutcome::error("the question was withdrawn before it was answered")),
        },
    }
}

/// Asks for permission to run `call`; `None` when it may run, else the outcome to report.
async fn ask_permission(
    call: &ToolCallRequest,
    input: &serde_json::Value,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<Option<tools::ToolOutcome>, String> {
    let scope = tools::permission_scope(&call.name, input);
    let (item_id, decision) = match sink.permission(&call.name, input, &scope).await? {
        PermissionCheck::Allowed => return Ok(None),
        PermissionCheck::Denied => {
            return Ok(Some(tools::ToolOutcome::error(format!(
                "the user denied {scope} for this session"
            ))));
        }
        PermissionCheck::Ask { item_id, decision } => (item_id, decision),
    };
    tokio::select! {
        biased;
        () = cancel.cancelled() => {
            sink.emit(Event::Resolved { item_id, outcome: Resolution::Cancelled })?;
            Ok(Some(tools::ToolOutcome::error("the session was stopped before permission was given")))
        }
        decision = decision => match decision {
            Ok((decision, _)) if decision.allows() => Ok(None),
            Ok((_, feedback)) => Ok(Some(tools::ToolOutcome::error(format!(
                "The user rejected this {} call{}",
                call.name,
                feedback.map(|feedback| format!(": {feedback}")).unwrap_or_default()
            )))),
            Err(_) => Ok(Some(tools::ToolOutcome::error("the permission request was withdrawn"))),
        },
    }
}

#[derive(serde::Deserialize)]
struct PlanArgs {
    phases: Vec<PlanPhase>,
}

/// The `propose_plan` tool: a `plan` item the user approves or rejects (with feedback)
/// through `tether/session/decidePlan`.
async fn propose_plan(
    arguments: &str,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<tools::ToolOutcome, String> {
    let phases = match serde_json::from_str::<PlanArgs>(arguments) {
        Ok(args) if !args.phases.is_empty() => args.phases,
        Ok(_) => return Ok(tools::ToolOutcome::error("a plan needs at least one phase")),
        Err(error) => {
            return Ok(tools::ToolOutcome::error(format!(
                "invalid arguments for propose_plan ({error}); send {{\"phases\": [{{\"title\", \"subtasks\": [...]}}]}}"
            )));
        }
    };
    let id = new_item_id();
    let decision = sink.propose(&id, &phases)?;
    tokio::select! {
        biased;
        () = cancel.cancelled() => {
            sink.emit(Event::Item {
                phase: ItemPhase::Completed,
                item: Item::Plan { id: id.clone(), phases, decision: None },
            })?;
            sink.emit(Event::Resolved { item_id: id, outcome: Resolution::Cancelled })?;
            Ok(tools::ToolOutcome::error("the session was stopped before the plan was decided"))
        }
        decision = decision => match decision {
            Ok(PlanDecision { approved: true, feedback }) => Ok(tools::ToolOutcome::ok(match feedback {
                Some(feedback) => format!("The user approved the plan, noting: {feedback}\nCarry it out."),
                None => "The user approved the plan. Carry it out.".to_owned(),
            })),
            Ok(PlanDecision { approved: false, feedback }) => Ok(tools::ToolOutcome::error(format!(
                "The user rejected the plan{}. Revise it and propose again.",
                feedback.map(|feedback| format!(": {feedback}")).unwrap_or_default()
            ))),
            Err(_) => Ok(tools::ToolOutcome::error("the plan was withdrawn before it was decided")),
        },
    }
}

/// One model response.
struct Reply {
    reason: TurnEndReason,
    text: String,
    tool_calls: Vec<ToolCallRequest>,
    cost_usd: f64,
    /// Why, for a `timeout`.
    message: Option<String>,
}

async fn stream_reply(
    provider: &dyn ModelProvider,
    request: &ChatRequest,
    settings: &TurnSettings,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<Reply, String> {
    let mut stream = tokio::select! {
        biased;
        () = cancel.cancelled() => return Ok(Reply {
            reason: TurnEndReason::Stopped,
            text: String::new(),
            tool_calls: Vec::new(),
            cost_usd: 0.0,
            message: None,
        }),
        stream = provider.stream_chat(request) => match stream {
            Ok(stream) => stream,
            Err(error @ ProviderError::Timeout { .. }) => return Ok(Reply {
                reason: TurnEndReason::Timeout,
                text: String::new(),
                tool_calls: Vec::new(),
                cost_usd: 0.0,
                message: Some(error.to_string()),
            }),
            Err(error) => return Err(error.to_string()),
        },
    };
    let mut tool_calls = Vec::new();

    let mut reply: Option<StreamingItem> = None;
    let mut thinking: Option<StreamingItem> = None;
    let mut usage: Option<TokenUsage> = None;
    let mut failure: Option<ProviderError> = None;
    // Both futures live across the loop: re-creating them per chunk re-registers a waiter
    // and a timer for every token a fast model sends.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let frame = tokio::time::sleep(DELTA_FRAME);
    tokio::pin!(frame);
    let mut frame_armed = false;

    let reason = loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break TurnEndReason::Stopped,
            () = &mut frame, if frame_armed => {
                frame_armed = false;
                for item in [&mut thinking, &mut reply].into_iter().flatten() {
                    item.flush(sink)?;
                }
            }
            next = stream.next() => {
                let role = match next {
                    Some(Ok(StreamEvent::TextDelta(text))) => {
                        push_text(&mut reply, MessageRole::Agent, &text, sink)?;
                        Some(MessageRole::Agent)
                    }
                    Some(Ok(StreamEvent::ThinkingDelta(text))) => {
                        push_text(&mut thinking, MessageRole::Thinking, &text, sink)?;
                        Some(MessageRole::Thinking)
                    }
                    Some(Ok(StreamEvent::Usage(reported))) => {
                        usage = Some(reported);
                        None
                    }
                    Some(Ok(StreamEvent::ToolCall(call))) => {
                        tool_calls.push(call);
                        None
                    }
                    Some(Ok(StreamEvent::Finished(_))) | None => break TurnEndReason::EndTurn,
                    Some(Err(error)) => {
                        failure = Some(error);
                        break TurnEndReason::Failed;
                    }
                };
                if role.is_some() && !frame_armed {
                    frame.as_mut().reset(Instant::now() + DELTA_FRAME);
                    frame_armed = true;
                }
            }
        }
    };

    let interrupted = reason != TurnEndReason::EndTurn;
    if let Some(item) = thinking {
        item.complete(interrupted, sink)?;
    }
    let text = reply
        .as_ref()
        .map(|item| item.text.clone())
        .unwrap_or_default();
    let reply_id = match reply {
        Some(item) => {
            let id = item.id.clone();
            item.complete(interrupted, sink)?;
            Some(id)
        }
        None if reason == TurnEndReason::EndTurn => {
            // A model that says nothing still gets its (empty) message, so every turn that
            // ends well has a reply in the history.
            let item = StreamingItem::new(MessageRole::Agent, sink)?;
            let id = item.id.clone();
            item.complete(false, sink)?;
            Some(id)
        }
        None => None,
    };
    let mut cost_usd = 0.0;
    if let Some(mut usage) = usage {
        usage.cost_usd = settings
            .price
            .as_ref()
            .map_or(0.0, |price| price.cost(&usage));
        cost_usd = usage.cost_usd;
        sink.emit(Event::Usage {
            item_id: reply_id,
            usage,
            context_window: settings.context_window,
        })?;
    }
    match failure {
        // A model that falls silent ends the turn with `timeout`, not as a failure.
        Some(error @ ProviderError::Timeout { .. }) => Ok(Reply {
            reason: TurnEndReason::Timeout,
            text,
            tool_calls: Vec::new(),
            cost_usd,
            message: Some(error.to_string()),
        }),
        Some(error) => Err(error.to_string()),
        None => Ok(Reply {
            reason,
            text,
            tool_calls,
            cost_usd,
            message: None,
        }),
    }
}

pub(crate) fn push_text(
    slot: &mut Option<StreamingItem>,
    role: MessageRole,
    text: &str,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let item = match slot {
        Some(item) => item,
        None => slot.insert(StreamingItem::new(role, sink)?),
    };
    item.text.push_str(text);
    item.unsent.push_str(text);
    Ok(())
}

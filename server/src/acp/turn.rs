//! One Tether turn on an ACP agent: one `session/prompt`, with everything the agent does
//! meanwhile turned into events, its requests served, and its permission and elicitation
//! requests put to the user. A stop sends `session/cancel`; an agent that does not end the
//! turn within [`STOP_GRACE`] is killed.

use std::path::PathBuf;
use std::task::Poll;
use std::time::Duration;

use agent_client_protocol::v1::schema::{
    AgentNotification, AgentRequest, CancelNotification, ContentBlock, CreateElicitationRequest,
    ElicitationMode, PermissionOptionKind, PromptRequest, RequestPermissionRequest, StopReason,
    TextContent, ToolKind,
};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connection::{Incoming, Responder};
use super::serve::{self, answer};
use super::translate::Translator;
use super::{AgentSession, gone};
use crate::agent::tools::ToolContext;
use crate::agent::{
    DELTA_FRAME, EventSink, PermissionCheck, TurnOutcome, changes_between, new_item_id,
    restore_gitlink, take_snapshot,
};
use crate::vocab::{
    Answer, Event, Item, ItemPhase, PermissionDecision, PlanPhase, Question, QuestionKind,
    Resolution, TurnEndReason,
};

/// How long an agent has to end its turn after `session/cancel` before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// What a turn may do and how long it may take.
pub struct TurnContext<'a> {
    /// The worktree, its sandbox and what the session may do (read-only, ask).
    pub tools: &'a ToolContext,
    pub turn_timeout: Option<Duration>,
    /// What the session may still spend.
    pub budget_left_usd: Option<f64>,
}

/// A permission request waiting for the user.
struct PendingPermission {
    item_id: String,
    responder: Responder,
    request: RequestPermissionRequest,
    decision: oneshot::Receiver<(PermissionDecision, Option<String>)>,
}

/// An elicitation waiting for the user's answers.
struct PendingQuestion {
    item_id: String,
    questions: Vec<Question>,
    kinds: Vec<String>,
    responder: Responder,
    answers: oneshot::Receiver<Vec<Answer>>,
}

/// Why the turn is being stopped.
struct Stopping {
    reason: TurnEndReason,
    message: Option<String>,
    deadline: Instant,
}

impl AgentSession {
    /// Runs one turn: sends `prompt` and handles what the agent does until it answers.
    pub async fn run_turn(
        &mut self,
        prompt: String,
        context: TurnContext<'_>,
        cancel: &CancellationToken,
        sink: &mut dyn EventSink,
    ) -> TurnOutcome {
        match self.turn(prompt, &context, cancel, sink).await {
            Ok(outcome) => outcome,
            Err(message) => {
                // The log cannot be written: nothing more of this turn can be recorded.
                self.kill();
                TurnOutcome {
                    reason: TurnEndReason::Failed,
                    message: Some(message),
                }
            }
        }
    }

    async fn turn(
        &mut self,
        prompt: String,
        context: &TurnContext<'_>,
        cancel: &CancellationToken,
        sink: &mut dyn EventSink,
    ) -> Result<TurnOutcome, String> {
        let tools = context.tools;
        let mut snapshot = take_snapshot(tools).await;
        let request = self
            .connection
            .cx
            .send_request(PromptRequest::new(
                self.session_id.clone(),
                vec![ContentBlock::Text(TextContent::new(prompt))],
            ))
            .block_task();
        tokio::pin!(request);
        let mut translator = Translator::new(self.cost_reported);
        let mut frame = tokio::time::interval(DELTA_FRAME);
        frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let timeout = tokio::time::sleep(context.turn_timeout.unwrap_or(Duration::MAX / 4));
        tokio::pin!(timeout);
        let mut permissions: Vec<PendingPermission> = Vec::new();
        let mut questions: Vec<PendingQuestion> = Vec::new();
        let mut stopping: Option<Stopping> = None;
        let mut open = true;
        let start_cost = self.cost_reported.unwrap_or(0.0);
        let answer = loop {
            let grace = stopping.as_ref().map(|stopping| stopping.deadline);
            tokio::select! {
                biased;
                () = cancel.cancelled(), if stopping.is_none() => {
                    stopping = Some(self.stop(TurnEndReason::Stopped, None, &mut permissions, &mut questions, sink)?);
                }
                () = &mut timeout, if stopping.is_none() && context.turn_timeout.is_some() => {
                    let message = format!(
                        "the turn took longer than session.turn_timeout_secs ({} s)",
                        context.turn_timeout.map_or(0, |limit| limit.as_secs())
                    );
                    stopping = Some(self.stop(TurnEndReason::Timeout, Some(message), &mut permissions, &mut questions, sink)?);
                }
                () = sleep_until(grace), if grace.is_some() => {
                    // The agent did not end its turn when asked: it is ended.
                    self.kill();
                }
                answer = &mut request => break answer,
                incoming = self.connection.incoming.recv(), if open => match incoming {
                    None => open = false,
                    Some(incoming) => {
                        let finished = self.handle(incoming, tools, &mut translator, &mut permissions, &mut questions, sink).await?;
                        if finished {
                            snapshot = report_changes(tools, snapshot, sink).await?;
                        }
                        let spent = translator.cost_reported().unwrap_or(0.0) - start_cost;
                        if stopping.is_none()
                            && let Some(left) = context.budget_left_usd
                            && spent >= left
                        {
                            stopping = Some(self.stop(TurnEndReason::Budget, None, &mut permissions, &mut questions, sink)?);
                        }
                    }
                },
                (index, decision) = next(&mut permissions), if !permissions.is_empty() => {
                    let pending = permissions.swap_remove(index);
                    settle_permission(pending, decision);
                }
                (index, answers) = next_answer(&mut questions), if !questions.is_empty() => {
                    let pending = questions.swap_remove(index);
                    settle_question(pending, answers);
                }
                _ = frame.tick() => translator.flush(sink)?,
            }
        };
        // What the agent sent before its answer is in the channel already.
        while let Ok(incoming) = self.connection.incoming.try_recv() {
            self.handle(
                incoming,
                tools,
                &mut translator,
                &mut permissions,
                &mut questions,
                sink,
            )
            .await?;
        }
        for pending in permissions.drain(..) {
            cancel_permission(pending, sink)?;
        }
        for pending in questions.drain(..) {
            cancel_question(pending, sink)?;
        }
        self.cost_reported = translator.cost_reported();
        let interrupted = stopping.is_some() || answer.is_err();
        translator.finish(interrupted, sink)?;
        report_changes(tools, snapshot, sink).await?;
        if let Some(note) = restore_gitlink(tools) {
            tracing::warn!("session agent {}: {note}", self.launch.provider);
        }
        let outcome = match (answer, stopping) {
            (_, Some(stopping)) => TurnOutcome {
                reason: stopping.reason,
                message: stopping.message,
            },
            (Ok(answer), None) => match answer.stop_reason {
                StopReason::EndTurn => TurnOutcome {
                    reason: TurnEndReason::EndTurn,
                    message: None,
                },
                StopReason::MaxTurnRequests => TurnOutcome {
                    reason: TurnEndReason::MaxTurns,
                    message: Some("the agent reached its own limit of model requests".into()),
                },
                StopReason::MaxTokens => TurnOutcome {
                    reason: TurnEndReason::Failed,
                    message: Some("the agent's model reached its token limit".into()),
                },
                StopReason::Refusal => TurnOutcome {
                    reason: TurnEndReason::Failed,
                    message: Some("the agent's model refused to go on".into()),
                },
                StopReason::Cancelled => TurnOutcome {
                    reason: TurnEndReason::Stopped,
                    message: None,
                },
                _ => TurnOutcome {
                    reason: TurnEndReason::EndTurn,
                    message: None,
                },
            },
            (Err(error), None) if gone(&error) || !self.is_alive() => TurnOutcome {
                reason: TurnEndReason::Failed,
                message: Some(self.connection.gone_reason(&self.launch).await),
            },
            (Err(error), None) => TurnOutcome {
                reason: TurnEndReason::Failed,
                message: Some(format!(
                    "the agent `{}` failed the prompt: {error}",
                    self.launch.command_line()
                )),
            },
        };
        Ok(outcome)
    }

    /// Asks the agent to end the turn, and settles what it waits on as cancelled.
    fn stop(
        &mut self,
        reason: TurnEndReason,
        message: Option<String>,
        permissions: &mut Vec<PendingPermission>,
        questions: &mut Vec<PendingQuestion>,
        sink: &mut dyn EventSink,
    ) -> Result<Stopping, String> {
        if let Err(error) = self
            .connection
            .cx
            .send_notification(CancelNotification::new(self.session_id.clone()))
        {
            tracing::debug!("cannot send session/cancel: {error}");
        }
        for pending in permissions.drain(..) {
            cancel_permission(pending, sink)?;
        }
        for pending in questions.drain(..) {
            cancel_question(pending, sink)?;
        }
        Ok(Stopping {
            reason,
            message,
            deadline: Instant::now() + STOP_GRACE,
        })
    }

    /// Handles one message from the agent; says whether a tool call finished.
    async fn handle(
        &mut self,
        incoming: Incoming,
        tools: &ToolContext,
        translator: &mut Translator,
        permissions: &mut Vec<PendingPermission>,
        questions: &mut Vec<PendingQuestion>,
        sink: &mut dyn EventSink,
    ) -> Result<bool, String> {
        match incoming {
            Incoming::Notification(notification) => match *notification {
                AgentNotification::SessionNotification(notification)
                    if notification.session_id == self.session_id =>
                {
                    if super::facts::update(&mut self.facts, &notification.update)
                        && let Some(facts) = self.new_facts()
                    {
                        sink.emit(Event::AgentFacts { facts })?;
                    }
                    Ok(translator.update(notification.update, sink)?.is_some())
                }
                _ => Ok(false),
            },
            Incoming::Request(request) => {
                let (request, responder) = *request;
                self.serve(request, responder, tools, permissions, questions, sink)
                    .await?;
                Ok(false)
            }
        }
    }

    async fn serve(
        &mut self,
        request: AgentRequest,
        responder: Responder,
        tools: &ToolContext,
        permissions: &mut Vec<PendingPermission>,
        questions: &mut Vec<PendingQuestion>,
        sink: &mut dyn EventSink,
    ) -> Result<(), String> {
        let roots: &[PathBuf] = &self.roots;
        match request {
            AgentRequest::ReadTextFileRequest(request) => {
                answer(responder, serve::read_text_file(tools, roots, &request));
            }
            AgentRequest::WriteTextFileRequest(request) => {
                answer(responder, serve::write_text_file(tools, roots, &request));
            }
            AgentRequest::CreateTerminalRequest(request) => {
                answer(responder, self.terminals.create(tools, roots, &request));
            }
            AgentRequest::TerminalOutputRequest(request) => {
                answer(responder, self.terminals.output(&request.terminal_id.0));
            }
            AgentRequest::KillTerminalRequest(request) => {
                answer(responder, self.terminals.kill(&request.terminal_id.0));
            }
            AgentRequest::ReleaseTerminalRequest(request) => {
                answer(responder, self.terminals.release(&request.terminal_id.0));
            }
            AgentRequest::WaitForTerminalExitRequest(request) => {
                match self.terminals.wait_for_exit(&request.terminal_id.0) {
                    Ok(exit) => {
                        tokio::spawn(async move { answer(responder, exit.await) });
                    }
                    Err(error) => answer::<()>(responder, Err(error)),
                }
            }
            AgentRequest::RequestPermissionRequest(request) => {
                self.permission(request, responder, tools, permissions, sink)
                    .await?;
            }
            AgentRequest::CreateElicitationRequest(request) => {
                ask_elicitation(request, responder, questions, sink)?;
            }
            _ => answer::<()>(
                responder,
                Err(agent_client_protocol::Error::method_not_found()),
            ),
        }
        Ok(())
    }

    /// A permission request: answered at once in `auto` and `read-only` modes, by what the
    /// user already granted or denied, else put to the user. Leaving plan mode is a plan
    /// for the user to approve, whatever the mode.
    async fn permission(
        &self,
        request: RequestPermissionRequest,
        responder: Responder,
        tools: &ToolContext,
        permissions: &mut Vec<PendingPermission>,
        sink: &mut dyn EventSink,
    ) -> Result<(), String> {
        if tools.read_only {
            respond_permission(responder, &request, Some(PermissionDecision::RejectOnce));
            return Ok(());
        }
        let fields = &request.tool_call.fields;
        let title = fields
            .title
            .clone()
            .unwrap_or_else(|| "tool call".to_owned());
        let kind = fields.kind.unwrap_or(ToolKind::Other);
        if kind == ToolKind::SwitchMode {
            // Leaving plan mode: the plan is the user's to approve, in every mode.
            let plan = fields
                .raw_input
                .as_ref()
                .and_then(|input| input["plan"].as_str())
                .unwrap_or(&title)
                .to_owned();
            let item_id = new_item_id();
            let decided = sink.propose(&item_id, &phases_of(&plan))?;
            let (decision, receiver) = oneshot::channel();
            tokio::spawn(async move {
                if let Ok(decided) = decided.await {
                    let answer = if decided.approved {
                        PermissionDecision::AllowOnce
                    } else {
                        PermissionDecision::RejectOnce
                    };
                    let _ = decision.send((answer, decided.feedback));
                }
            });
            permissions.push(PendingPermission {
                item_id,
                responder,
                request,
                decision: receiver,
            });
            return Ok(());
        }
        if !tools.ask_permission {
            respond_permission(responder, &request, Some(PermissionDecision::AllowOnce));
            return Ok(());
        }
        let input = fields
            .raw_input
            .clone()
            .unwrap_or_else(|| serde_json::json!({ "title": title, "kind": kind }));
        let scope = format!(
            "{}:{}",
            self.launch.provider,
            serde_json::to_value(kind)
                .ok()
                .and_then(|kind| kind.as_str().map(str::to_owned))
                .unwrap_or_else(|| "other".to_owned())
        );
        match sink.permission(&title, &input, &scope).await? {
            PermissionCheck::Allowed => {
                respond_permission(responder, &request, Some(PermissionDecision::AllowOnce));
            }
            PermissionCheck::Denied => {
                respond_permission(responder, &request, Some(PermissionDecision::RejectOnce));
            }
            PermissionCheck::Ask { item_id, decision } => permissions.push(PendingPermission {
                item_id,
                responder,
                request,
                decision,
            }),
        }
        Ok(())
    }
}

/// A plan's text as phases: its headings, list items and numbered steps, else the whole
/// text as one.
fn phases_of(plan: &str) -> Vec<PlanPhase> {
    let phases: Vec<PlanPhase> = plan
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            let step = line
                .strip_prefix('#')
                .map(|rest| rest.trim_start_matches('#'))
                .or_else(|| line.strip_prefix("- "))
                .or_else(|| line.strip_prefix("* "))
                .or_else(|| {
                    let digits = line.find(|c: char| !c.is_ascii_digit())?;
                    (digits > 0)
                        .then(|| line[digits..].strip_prefix(". "))
                        .flatten()
                })?;
            let step = step.trim();
            (!step.is_empty()).then(|| PlanPhase {
                title: step.to_owned(),
                subtasks: Vec::new(),
            })
        })
        .collect();
    if phases.is_empty() {
        vec![PlanPhase {
            title: plan.trim().to_owned(),
            subtasks: Vec::new(),
        }]
    } else {
        phases
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The first permission the user decided, and its decision.
fn next(
    pending: &mut [PendingPermission],
) -> impl Future<
    Output = (
        usize,
        Result<(PermissionDecision, Option<String>), oneshot::error::RecvError>,
    ),
> + '_ {
    std::future::poll_fn(move |cx| {
        for (index, waiting) in pending.iter_mut().enumerate() {
            if let Poll::Ready(decision) = std::pin::Pin::new(&mut waiting.decision).poll(cx) {
                return Poll::Ready((index, decision));
            }
        }
        Poll::Pending
    })
}

fn next_answer(
    pending: &mut [PendingQuestion],
) -> impl Future<Output = (usize, Result<Vec<Answer>, oneshot::error::RecvError>)> + '_ {
    std::future::poll_fn(move |cx| {
        for (index, waiting) in pending.iter_mut().enumerate() {
            if let Poll::Ready(answers) = std::pin::Pin::new(&mut waiting.answers).poll(cx) {
                return Poll::Ready((index, answers));
            }
        }
        Poll::Pending
    })
}

fn settle_permission(
    pending: PendingPermission,
    decision: Result<(PermissionDecision, Option<String>), oneshot::error::RecvError>,
) {
    let decision = decision.ok().map(|(decision, _)| decision);
    respond_permission(pending.responder, &pending.request, decision);
}

/// Answers a permission request with the agent's option closest to `decision` (`None`:
/// cancelled).
fn respond_permission(
    responder: Responder,
    request: &RequestPermissionRequest,
    decision: Option<PermissionDecision>,
) {
    let wanted: &[PermissionOptionKind] = match decision {
        Some(PermissionDecision::AllowOnce) => &[
            PermissionOptionKind::AllowOnce,
            PermissionOptionKind::AllowAlways,
        ],
        Some(PermissionDecision::AllowAlwaysSession | PermissionDecision::AllowAlwaysProject) => &[
            PermissionOptionKind::AllowAlways,
            PermissionOptionKind::AllowOnce,
        ],
        Some(PermissionDecision::RejectOnce) => &[
            PermissionOptionKind::RejectOnce,
            PermissionOptionKind::RejectAlways,
        ],
        Some(PermissionDecision::RejectAlways) => &[
            PermissionOptionKind::RejectAlways,
            PermissionOptionKind::RejectOnce,
        ],
        None => &[],
    };
    let chosen = wanted.iter().find_map(|kind| {
        request
            .options
            .iter()
            .find(|option| option.kind == *kind)
            .map(|option| option.option_id.0.to_string())
    });
    let outcome = match chosen {
        Some(option_id) => serde_json::json!({ "outcome": "selected", "optionId": option_id }),
        None => serde_json::json!({ "outcome": "cancelled" }),
    };
    answer(
        responder,
        Ok::<_, agent_client_protocol::Error>(serde_json::json!({ "outcome": outcome })),
    );
}

fn cancel_permission(pending: PendingPermission, sink: &mut dyn EventSink) -> Result<(), String> {
    sink.emit(Event::Resolved {
        item_id: pending.item_id.clone(),
        outcome: Resolution::Cancelled,
    })?;
    respond_permission(pending.responder, &pending.request, None);
    Ok(())
}

/// An elicitation: a form becomes a `question` item, a question per field; a URL is
/// declined (Tether has no browser to send the user to).
fn ask_elicitation(
    request: CreateElicitationRequest,
    responder: Responder,
    questions: &mut Vec<PendingQuestion>,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let ElicitationMode::Form(form) = &request.mode else {
        answer(
            responder,
            Ok::<_, agent_client_protocol::Error>(serde_json::json!({ "action": "decline" })),
        );
        return Ok(());
    };
    let mut asked = Vec::new();
    let mut kinds = Vec::new();
    for (name, property) in &form.requested_schema.properties {
        let property = serde_json::to_value(property).unwrap_or_default();
        let kind = property["type"].as_str().unwrap_or("string").to_owned();
        let options: Vec<String> = property["enum"]
            .as_array()
            .or_else(|| property["items"]["enum"].as_array())
            .map(|values| {
                values
                    .iter()
                    .filter_map(|value| value.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let label = property["title"]
            .as_str()
            .or_else(|| property["description"].as_str())
            .unwrap_or(name);
        asked.push(Question {
            id: name.clone(),
            prompt: if asked.is_empty() {
                format!("{}\n{label}", request.message)
            } else {
                label.to_owned()
            },
            kind: match (kind.as_str(), options.is_empty()) {
                ("array", false) => QuestionKind::Multi,
                (_, false) => QuestionKind::Single,
                ("boolean", true) => QuestionKind::Single,
                _ => QuestionKind::Text,
            },
            options: if kind == "boolean" && options.is_empty() {
                vec!["true".to_owned(), "false".to_owned()]
            } else {
                options
            },
        });
        kinds.push(kind);
    }
    if asked.is_empty() {
        asked.push(Question {
            id: "confirm".to_owned(),
            prompt: request.message.clone(),
            kind: QuestionKind::Single,
            options: vec!["accept".to_owned(), "decline".to_owned()],
        });
        kinds.push("confirm".to_owned());
    }
    let item_id = new_item_id();
    let answers = sink.ask(&item_id, &asked)?;
    questions.push(PendingQuestion {
        item_id,
        questions: asked,
        kinds,
        responder,
        answers,
    });
    Ok(())
}

fn settle_question(
    pending: PendingQuestion,
    answers: Result<Vec<Answer>, oneshot::error::RecvError>,
) {
    let Ok(answers) = answers else {
        answer(
            pending.responder,
            Ok::<_, agent_client_protocol::Error>(serde_json::json!({ "action": "cancel" })),
        );
        return;
    };
    if pending.kinds.first().map(String::as_str) == Some("confirm") {
        let accepted = matches!(answers.first(), Some(Answer::Choices(choices)) if choices.iter().any(|choice| choice == "accept"))
            || matches!(answers.first(), Some(Answer::Text(text)) if text == "accept");
        let action = if accepted { "accept" } else { "decline" };
        answer(
            pending.responder,
            Ok::<_, agent_client_protocol::Error>(serde_json::json!({ "action": action })),
        );
        return;
    }
    let mut content = serde_json::Map::new();
    for ((question, kind), reply) in pending.questions.iter().zip(&pending.kinds).zip(answers) {
        let text = match &reply {
            Answer::Text(text) => text.clone(),
            Answer::Choices(choices) => choices.join(","),
        };
        let value = match (kind.as_str(), reply) {
            ("array", Answer::Choices(choices)) => serde_json::json!(choices),
            ("integer", _) => text
                .trim()
                .parse::<i64>()
                .map_or(serde_json::json!(text), |number| serde_json::json!(number)),
            ("number", _) => text
                .trim()
                .parse::<f64>()
                .map_or(serde_json::json!(text), |number| serde_json::json!(number)),
            ("boolean", _) => serde_json::json!(text.trim() == "true"),
            _ => serde_json::json!(text),
        };
        content.insert(question.id.clone(), value);
    }
    answer(
        pending.responder,
        Ok::<_, agent_client_protocol::Error>(
            serde_json::json!({ "action": "accept", "content": content }),
        ),
    );
}

fn cancel_question(pending: PendingQuestion, sink: &mut dyn EventSink) -> Result<(), String> {
    sink.emit(Event::Item {
        phase: ItemPhase::Completed,
        item: Item::Question {
            id: pending.item_id.clone(),
            questions: pending.questions.clone(),
            answers: None,
        },
    })?;
    sink.emit(Event::Resolved {
        item_id: pending.item_id.clone(),
        outcome: Resolution::Cancelled,
    })?;
    answer(
        pending.responder,
        Ok::<_, agent_client_protocol::Error>(serde_json::json!({ "action": "cancel" })),
    );
    Ok(())
}

/// Reports the files changed since `before` as `fileChange` items; the snapshot to compare
/// the next changes with.
async fn report_changes(
    tools: &ToolContext,
    before: Option<crate::workspace::snapshot::Snapshot>,
    sink: &mut dyn EventSink,
) -> Result<Option<crate::workspace::snapshot::Snapshot>, String> {
    let Some(before) = before else {
        return Ok(take_snapshot(tools).await);
    };
    let Some(after) = take_snapshot(tools).await else {
        return Ok(None);
    };
    let keep = after.clone();
    for change in changes_between(tools, before, after).await {
        sink.emit(Event::Item {
            phase: ItemPhase::Completed,
            item: Item::FileChange {
                id: new_item_id(),
                path: change.path,
                additions: change.additions,
                deletions: change.deletions,
            },
        })?;
    }
    Ok(Some(keep))
}

#[cfg(test)]
mod tests {
    use super::super::serve::refusal;

    #[test]
    fn a_plans_steps_are_its_phases() {
        let phases = super::phases_of("# Plan\n\n1. Read the code\n2. Fix it\n- then test\nprose");
        let titles: Vec<&str> = phases.iter().map(|phase| phase.title.as_str()).collect();
        assert_eq!(titles, ["Plan", "Read the code", "Fix it", "then test"]);
        assert_eq!(super::phases_of("just do it")[0].title, "just do it");
    }

    #[test]
    fn a_refusal_carries_its_reason() {
        let error = refusal("outside the worktree");
        assert_eq!(error.data, Some(serde_json::json!("outside the worktree")));
    }
}

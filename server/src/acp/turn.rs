//! One Tether turn on an ACP agent: one `session/prompt`, with everything the agent does
//! meanwhile turned into events, its requests served, and its permission and elicitation
//! requests put to the user. A stop sends `session/cancel`; an agent that does not end the
//! turn within [`STOP_GRACE`] is killed.

use std::path::PathBuf;
use std::time::Duration;

use agent_client_protocol::v1::schema::{
    AgentNotification, AgentRequest, BlobResourceContents, CancelNotification, ContentBlock,
    EmbeddedResource, EmbeddedResourceResource, ImageContent, PromptRequest, StopReason,
    TextContent,
};
use base64::Engine as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::asks::{
    self, PendingPermission, PendingQuestion, ask_elicitation, cancel_permission, cancel_question,
    next, next_answer, settle_permission, settle_question,
};
use super::connection::{Incoming, Responder};
use super::serve::{self, answer};
use super::translate::Translator;
use super::{AgentSession, gone};
use crate::agent::tools::ToolContext;
use crate::agent::{
    DELTA_FRAME, EventSink, TurnOutcome, changes_between, new_item_id, restore_gitlink,
    take_snapshot,
};
use crate::vocab::{Event, Item, ItemPhase, TurnEndReason};

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
        files: Vec<crate::vocab::ChatAttachment>,
        context: TurnContext<'_>,
        cancel: &CancellationToken,
        sink: &mut dyn EventSink,
    ) -> TurnOutcome {
        let prompt = prompt_blocks(prompt, &files, self.prompts);
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
        prompt: Vec<ContentBlock>,
        context: &TurnContext<'_>,
        cancel: &CancellationToken,
        sink: &mut dyn EventSink,
    ) -> Result<TurnOutcome, String> {
        let tools = context.tools;
        let mut snapshot = take_snapshot(tools).await;
        let request = self
            .connection
            .cx
            .send_request(PromptRequest::new(self.session_id.clone(), prompt))
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
                    let terminals = &self.terminals;
                    let printed = |id: &str| terminals.printed(id);
                    Ok(translator
                        .update(notification.update, &printed, sink)?
                        .is_some())
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
                asks::permission(
                    &self.launch.provider,
                    request,
                    responder,
                    tools,
                    permissions,
                    sink,
                )
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
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
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
    let Some(mut after) = take_snapshot(tools).await else {
        return Ok(None);
    };
    let mut changes = changes_between(tools, before.clone(), after.clone()).await;
    // The agent works on while Tether looks: a file written and gone again (an atomic write
    // caught between its temporary file and the rename) is not a change; look again.
    for _ in 0..3 {
        let worktree = tools.worktree();
        let caught_mid_write = changes.iter().any(|change| {
            change.additions > 0 && std::fs::symlink_metadata(worktree.join(&change.path)).is_err()
        });
        if !caught_mid_write {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let Some(again) = take_snapshot(tools).await else {
            break;
        };
        after = again;
        changes = changes_between(tools, before.clone(), after.clone()).await;
    }
    let keep = after;
    for change in changes {
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

/// A prompt as content blocks: its text (text files put into it, and a line for each file
/// the agent cannot take), then its images and PDFs as the agent takes them.
fn prompt_blocks(
    prompt: String,
    files: &[crate::vocab::ChatAttachment],
    support: super::PromptSupport,
) -> Vec<ContentBlock> {
    use crate::vocab::AttachmentKind;
    let mut text = prompt;
    let mut blocks = Vec::new();
    for attached in files {
        let file = &attached.file;
        let Some(data) = &attached.data else {
            text.push_str(&format!("\n\n[attached: {}, not available]", file.name));
            continue;
        };
        let base64 = || base64::engine::general_purpose::STANDARD.encode(data.as_slice());
        match file.kind() {
            Some(AttachmentKind::Text) => {
                text.push_str(&crate::provider::attachments::inline_text(&file.name, data));
            }
            Some(AttachmentKind::Image) if support.image => blocks.push(ContentBlock::Image(
                ImageContent::new(base64(), file.mime_type.clone()),
            )),
            Some(AttachmentKind::Pdf) if support.embedded_context => {
                blocks.push(ContentBlock::Resource(EmbeddedResource::new(
                    EmbeddedResourceResource::BlobResourceContents(
                        BlobResourceContents::new(base64(), format!("attachment:///{}", file.name))
                            .mime_type(file.mime_type.clone()),
                    ),
                )));
            }
            _ => text.push_str(&format!(
                "\n\n[attached: {} ({}); this agent does not take such files]",
                file.name, file.mime_type
            )),
        }
    }
    let mut all = vec![ContentBlock::Text(TextContent::new(text))];
    all.extend(blocks);
    all
}

#[cfg(test)]
mod tests {
    use super::super::serve::refusal;

    #[test]
    fn a_refusal_carries_its_reason() {
        let error = refusal("outside the worktree");
        assert_eq!(error.data, Some(serde_json::json!("outside the worktree")));
    }
}

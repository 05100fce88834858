//! Loops: the same prompt, turn after turn, until the agent says it is done, stops changing
//! anything, or the iterations run out (the "Ralph loop" of the seeds).
//!
//! The loop is a task beside the session's driver: each iteration resets the context (unless
//! told not to), sends the prompt with the iteration number as a follow-up, and watches the
//! session's events until the turn settles.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::actor::SessionHandle;
use super::{SessionError, SessionManager};
use crate::vocab::{Event, Item, ItemPhase, LoopOutcome, MessageRole, SessionStatus, new_item_id};

/// The line an agent ends its reply with to say the loop's task is done.
pub const EXIT_SIGNAL: &str = "EXIT_SIGNAL: true";
/// The longest loop prompt.
const MAX_PROMPT_CHARS: usize = 10_000;

/// What a loop is asked to do.
#[derive(Debug, Clone)]
pub struct LoopRequest {
    pub prompt: String,
    pub max_iterations: u32,
    pub stop_on_exit_signal: bool,
    pub reset_context: bool,
    /// Another model for the loop's turns.
    pub model: Option<String>,
}

/// How one iteration went.
struct IterationEnd {
    outcome: LoopOutcome,
    /// Set when the loop must stop whatever the outcome.
    stop: Option<String>,
}

impl SessionManager {
    /// Starts a loop on a waiting session; answers at once. One loop per session.
    pub async fn start_loop(&self, id: &str, request: LoopRequest) -> Result<(), SessionError> {
        if request.prompt.trim().is_empty() || request.prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(SessionError::InvalidParams {
                field: "prompt",
                message: format!("a loop prompt has 1 to {MAX_PROMPT_CHARS} characters"),
            });
        }
        if !(1..=1000).contains(&request.max_iterations) {
            return Err(SessionError::InvalidParams {
                field: "maxIterations",
                message: "between 1 and 1000".to_owned(),
            });
        }
        let handle = self.writable_handle(id)?;
        let model = request.model.clone();
        let cancel = handle
            .run(move |actor| {
                if actor.active_loop.is_some() {
                    return Err(actor.invalid("start a second loop on", "; one is running"));
                }
                if actor.state.status != SessionStatus::Waiting {
                    return Err(actor.invalid("start a loop on", "; wait for it to be waiting"));
                }
                let cancel = CancellationToken::new();
                actor.active_loop = Some(cancel.clone());
                actor.model_override = model;
                actor.publish();
                Ok(cancel)
            })
            .await?;
        let manager = self.clone();
        self.inner.runtime.spawn(async move {
            if !manager.run_loop(&handle, request, &cancel).await {
                handle.tell(end_loop);
            }
        });
        Ok(())
    }

    /// Stops a session's loop (and the turn it is in).
    pub async fn stop_loop(&self, id: &str) -> Result<(), SessionError> {
        let handle = self.writable_handle(id)?;
        handle
            .run(|actor| match &actor.active_loop {
                Some(cancel) => {
                    cancel.cancel();
                    Ok(())
                }
                None => Err(actor.invalid("stop the loop of", "; no loop is running")),
            })
            .await
    }

    /// Runs the loop; returns whether it already freed the session's loop slot.
    async fn run_loop(
        &self,
        handle: &Arc<SessionHandle>,
        request: LoopRequest,
        cancel: &CancellationToken,
    ) -> bool {
        let id = handle.id.to_string();
        for iteration in 1..=request.max_iterations {
            let item_id = new_item_id();
            let item = |outcome: LoopOutcome, stop_reason: Option<String>| Item::LoopIteration {
                id: item_id.clone(),
                iteration,
                max_iterations: request.max_iterations,
                outcome,
                stop_reason,
            };
            let started = item(LoopOutcome::Running, None);
            if handle
                .run(move |actor| actor.emit_item(ItemPhase::Started, started))
                .await
                .is_err()
            {
                return false;
            }
            let end = self.iteration(handle, &request, iteration, cancel).await;
            let stop = end.stop.or_else(|| {
                if end.outcome == LoopOutcome::ExitSignal {
                    Some(format!("the agent said {EXIT_SIGNAL}"))
                } else if end.outcome == LoopOutcome::NoChanges && iteration > 1 {
                    Some("the iteration changed no files".to_owned())
                } else if iteration == request.max_iterations {
                    Some(format!(
                        "{} iterations, the most asked for",
                        request.max_iterations
                    ))
                } else {
                    None
                }
            });
            let last = stop.is_some();
            let completed = item(end.outcome, stop);
            let recorded = handle
                .run(move |actor| {
                    if last {
                        // Free before the last item is announced: whoever sees it may start
                        // another.
                        end_loop(actor);
                    }
                    actor.emit_item(ItemPhase::Completed, completed)
                })
                .await;
            if let Err(error) = recorded {
                tracing::warn!("session {id}: {error}");
                return last;
            }
            if last {
                return true;
            }
        }
        false
    }

    /// Runs one iteration: reset, send, watch until the turn settles.
    async fn iteration(
        &self,
        handle: &Arc<SessionHandle>,
        request: &LoopRequest,
        iteration: u32,
        cancel: &CancellationToken,
    ) -> IterationEnd {
        let id = handle.id.to_string();
        let ended = |outcome: LoopOutcome, reason: String| IterationEnd {
            outcome,
            stop: Some(reason),
        };
        if iteration > 1
            && request.reset_context
            && let Err(error) = self.reset_context(&id, None).await
        {
            return ended(
                LoopOutcome::Ended,
                format!("the context could not be reset: {error}"),
            );
        }
        let mut text = format!(
            "[Loop iteration {iteration} of {}]\n\n{}",
            request.max_iterations, request.prompt
        );
        if request.stop_on_exit_signal {
            text.push_str(&format!(
                "\n\nWhen the task is completely done, end your reply with the line `{EXIT_SIGNAL}`."
            ));
        }
        // Subscribed before sending, so the turn's events cannot be missed.
        let mut events = self.subscribe();
        if let Err(error) = self.send(&id, text).await {
            return ended(
                LoopOutcome::Ended,
                format!("the session cannot take the prompt: {error}"),
            );
        }
        let mut changed = false;
        let mut last_reply = String::new();
        loop {
            let announced = tokio::select! {
                () = cancel.cancelled() => {
                    let _ = self.stop(&id).await;
                    return ended(LoopOutcome::Stopped, "stopped by the user".to_owned());
                }
                received = events.next() => match received {
                    Some(announced) => announced,
                    None => {
                        return ended(LoopOutcome::Ended, "tether is shutting down".to_owned());
                    }
                },
            };
            if *announced.session_id != *id {
                continue;
            }
            match &announced.record.event {
                Event::Checkpoint { name, .. } if name.starts_with("turn-") => changed = true,
                Event::Item {
                    phase: ItemPhase::Completed,
                    item:
                        Item::Message {
                            role: MessageRole::Agent,
                            text,
                            ..
                        },
                } => last_reply.clone_from(text),
                Event::Status { status, .. } => match status {
                    SessionStatus::Waiting => break,
                    SessionStatus::Stopped | SessionStatus::Failed | SessionStatus::Completed => {
                        return ended(LoopOutcome::Ended, format!("the session is {status}"));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        let outcome = if request.stop_on_exit_signal
            && last_reply
                .lines()
                .any(|line| line.trim().trim_matches('`') == EXIT_SIGNAL)
        {
            LoopOutcome::ExitSignal
        } else if changed {
            LoopOutcome::Changed
        } else {
            LoopOutcome::NoChanges
        };
        IterationEnd {
            outcome,
            stop: None,
        }
    }
}

/// Frees the session's loop slot and the model its turns used.
fn end_loop(actor: &mut super::actor::SessionActor) {
    actor.active_loop = None;
    actor.model_override = None;
    actor.publish();
}

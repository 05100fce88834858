//! One turn of a session: send the conversation to the model, stream its reply into events,
//! stop the instant the user says so.
//!
//! The agent knows providers and events; it does not know where events go (the session
//! manager passes a sink that logs and announces them) and it never touches the store.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::provider::{ChatRequest, ModelProvider, ProviderError, StreamEvent};
use crate::session::{Event, Item, ItemPhase, MessageRole, TokenUsage, TurnEndReason};

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
}

/// A message being streamed: started on its first delta, completed at the end of the turn.
struct StreamingItem {
    id: String,
    role: MessageRole,
    text: String,
    /// Text received but not yet sent as a delta.
    unsent: String,
}

impl StreamingItem {
    fn new(role: MessageRole, sink: &mut dyn EventSink) -> Result<Self, String> {
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
        }
    }

    fn flush(&mut self, sink: &mut dyn EventSink) -> Result<(), String> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        sink.emit(Event::Delta {
            item_id: self.id.clone(),
            text: std::mem::take(&mut self.unsent),
        })
    }

    fn complete(mut self, interrupted: bool, sink: &mut dyn EventSink) -> Result<(), String> {
        self.flush(sink)?;
        sink.emit(Event::Item {
            phase: ItemPhase::Completed,
            item: self.snapshot(interrupted),
        })
    }
}

/// A new item id: unique and sortable by creation time.
pub fn new_item_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Runs one model call and streams it into `sink`.
pub async fn run_turn(
    provider: &dyn ModelProvider,
    request: &ChatRequest,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> TurnOutcome {
    match stream_reply(provider, request, cancel, sink).await {
        Ok(reason) => TurnOutcome {
            reason,
            message: None,
        },
        Err(message) => TurnOutcome {
            reason: TurnEndReason::Failed,
            message: Some(message),
        },
    }
}

async fn stream_reply(
    provider: &dyn ModelProvider,
    request: &ChatRequest,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<TurnEndReason, String> {
    let mut stream = tokio::select! {
        biased;
        () = cancel.cancelled() => return Ok(TurnEndReason::Stopped),
        stream = provider.stream_chat(request) => stream.map_err(|error| error.to_string())?,
    };

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
    if let Some(usage) = usage {
        sink.emit(Event::Usage {
            item_id: reply_id,
            usage,
        })?;
    }
    match failure {
        Some(error) => Err(error.to_string()),
        None => Ok(reason),
    }
}

fn push_text(
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

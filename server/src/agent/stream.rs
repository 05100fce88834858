//! A model response streamed into events: its text and thinking as message items whose
//! deltas go out at most once per frame, never splitting a word; its usage and tool calls
//! collected for the turn.

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{DELTA_FRAME, EventSink, TurnSettings, new_item_id};
use crate::provider::{ChatRequest, ModelProvider, ProviderError, StreamEvent, ToolCallRequest};
use crate::vocab::{Event, Item, ItemPhase, MessageRole, TokenUsage, TurnEndReason};

/// The longest run of text without whitespace that is held back from a delta.
const HELD_WORD_LIMIT: usize = 4096;

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

/// One model response.
pub(super) struct Reply {
    pub(super) reason: TurnEndReason,
    pub(super) text: String,
    pub(super) tool_calls: Vec<ToolCallRequest>,
    pub(super) cost_usd: f64,
    /// Why, for a `timeout`.
    pub(super) message: Option<String>,
}

pub(super) async fn stream_reply(
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

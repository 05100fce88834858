//! Changing the conversation after the fact: editing a message the user sent (the
//! conversation and the worktree go back to just before it, and the edited text runs from
//! there), and taking back a follow-up that has not been delivered yet.

use super::git::START_CHECKPOINT;
use super::{SessionError, SessionInfo, SessionManager};
use crate::vocab::{Attachment, Event, EventRecord, Item, ItemPhase, MessageRole, new_item_id};

/// Where an edit of a message goes back to, read from the session's log.
#[derive(Debug, PartialEq, Eq)]
struct EditPoint {
    /// The checkpoint the worktree was at when the message was delivered.
    checkpoint: String,
    /// The files attached to the message: the edited one keeps them.
    attachments: Vec<Attachment>,
}

/// Why a message cannot be edited, found in the log.
#[derive(Debug, PartialEq, Eq)]
enum NotEditable {
    Unknown,
    /// Still waiting to be delivered.
    Queued,
    /// An earlier edit superseded it.
    Superseded,
    /// The model's context was reset (or compacted) after it.
    BeforeReset,
    /// Delivered while the agent worked (steering): no checkpoint holds the worktree as it
    /// was then.
    MidTurn,
    /// Logged before tether recorded a checkpoint at a worktree's start.
    NoCheckpoint,
}

impl NotEditable {
    fn message(&self, item_id: &str) -> String {
        match self {
            NotEditable::Unknown => {
                format!("{item_id:?} is not a message the user sent in this session")
            }
            NotEditable::Queued => format!(
                "{item_id:?} has not been delivered yet; delete it and send the new text instead"
            ),
            NotEditable::Superseded => {
                format!("{item_id:?} was already superseded by an edit; edit its replacement")
            }
            NotEditable::BeforeReset => format!(
                "the model's context was reset or compacted after {item_id:?}; edit a later message"
            ),
            NotEditable::MidTurn => format!(
                "{item_id:?} reached the agent while it worked; edit the message that started \
                 that turn"
            ),
            NotEditable::NoCheckpoint => format!(
                "no checkpoint of the worktree from before {item_id:?} (the session predates them)"
            ),
        }
    }
}

/// Where an edit of user message `item_id` goes back to.
fn edit_point(events: &[EventRecord], item_id: &str) -> Result<EditPoint, NotEditable> {
    // The user messages delivered so far, in order, and whether each is still current.
    let mut messages: Vec<(&str, bool)> = Vec::new();
    let mut checkpoint: Option<&str> = None;
    let mut found: Option<Option<&str>> = None;
    let mut attached: &[Attachment] = &[];
    let mut reset_after = false;
    let mut queued = false;
    let mut start = false;
    // The agent called a tool since its last turn ended: a message now arrives mid-turn.
    let mut mid_turn = false;
    let mut steered = false;
    for record in events {
        match &record.event {
            Event::Checkpoint { name, .. } if name == START_CHECKPOINT => {
                start = true;
                checkpoint = Some(name);
            }
            Event::Checkpoint { name, .. }
                if name.starts_with("turn-") || name == START_CHECKPOINT =>
            {
                checkpoint = Some(name);
            }
            Event::Rewound { name, .. } => checkpoint = Some(name),
            Event::TurnEnded { .. } => mid_turn = false,
            Event::Item {
                item: Item::ToolCall { .. },
                ..
            } => mid_turn = true,
            Event::FollowUpQueued { item_id: id, .. } if id == item_id => queued = true,
            Event::ContextReset { .. }
            | Event::Item {
                phase: ItemPhase::Completed,
                item:
                    Item::Message {
                        role: MessageRole::Summary,
                        ..
                    },
            } if found.is_some() => reset_after = true,
            Event::Superseded { item_id: id } => {
                if let Some(first) = messages.iter().position(|(message, _)| message == id) {
                    for (_, current) in &mut messages[first..] {
                        *current = false;
                    }
                }
            }
            Event::Item {
                phase: ItemPhase::Completed,
                item:
                    Item::Message {
                        id,
                        role: MessageRole::User,
                        attachments,
                        ..
                    },
            } => {
                messages.push((id, true));
                if id == item_id {
                    found = Some(checkpoint);
                    attached = attachments;
                    steered = mid_turn;
                }
            }
            _ => {}
        }
    }
    let Some(before) = found else {
        return Err(if queued {
            NotEditable::Queued
        } else {
            NotEditable::Unknown
        });
    };
    if !messages
        .iter()
        .any(|(id, current)| *id == item_id && *current)
    {
        return Err(NotEditable::Superseded);
    }
    if reset_after {
        return Err(NotEditable::BeforeReset);
    }
    if steered {
        return Err(NotEditable::MidTurn);
    }
    // The first message is logged before the worktree is made; nothing happened between.
    let checkpoint = before
        .or(start.then_some(START_CHECKPOINT))
        .ok_or(NotEditable::NoCheckpoint)?;
    Ok(EditPoint {
        checkpoint: checkpoint.to_owned(),
        attachments: attached.to_vec(),
    })
}

impl SessionManager {
    /// Edits user message `item_id` and runs the conversation again from it: the worktree
    /// goes back to its checkpoint from just before that message (what it was is kept as a
    /// `before-rewind-<k>` checkpoint), the conversation from that message on is superseded
    /// (the log keeps it), and `text` is sent in its place.
    pub async fn edit_message(
        &self,
        id: &str,
        item_id: &str,
        text: String,
    ) -> Result<SessionInfo, SessionError> {
        if text.trim().is_empty() {
            return Err(SessionError::InvalidParams {
                field: "text",
                message: "the message is empty".to_owned(),
            });
        }
        let handle = self.writable_handle(id)?;
        let (spec, rewinds) = handle
            .run(|actor| {
                actor.require_idle("edit a message of")?;
                Ok((actor.state.spec.clone(), actor.state.rewinds))
            })
            .await?;
        let events = self.get(id, 0)?.events;
        let point = edit_point(&events, item_id).map_err(|why| SessionError::InvalidParams {
            field: "itemId",
            message: why.message(item_id),
        })?;
        let rewound = self
            .restore_checkpoint(&spec, rewinds, &point.checkpoint)
            .await?;
        let manager = self.clone();
        let driven = handle.clone();
        let edited = item_id.to_owned();
        handle
            .run(move |actor| {
                // A message sent while the worktree went back has started the agent: it
                // runs on the restored worktree, and the edit is not made.
                actor.require_idle("edit a message of")?;
                for event in rewound.events() {
                    actor.emit(event)?;
                }
                actor.emit(Event::Superseded { item_id: edited })?;
                actor.emit(Event::FollowUpQueued {
                    item_id: new_item_id(),
                    text,
                    attachments: point.attachments,
                })?;
                actor.start_driver(&manager, driven, false)?;
                Ok(actor.info())
            })
            .await
    }

    /// Takes back follow-up `item_id` while it still waits to be delivered.
    pub async fn withdraw_message(&self, id: &str, item_id: &str) -> Result<(), SessionError> {
        let handle = self.writable_handle(id)?;
        let item_id = item_id.to_owned();
        handle
            .run(move |actor| {
                if !actor
                    .state
                    .queued
                    .iter()
                    .any(|(queued, _)| *queued == item_id)
                {
                    return Err(SessionError::InvalidParams {
                        field: "itemId",
                        message: format!(
                            "{item_id:?} is not a message waiting to be delivered (a delivered \
                             one can be edited instead)"
                        ),
                    });
                }
                actor.emit(Event::FollowUpWithdrawn { item_id })?;
                Ok(())
            })
            .await
    }
}

impl super::actor::SessionActor {
    /// Delivers the follow-ups that wait, as user messages; their texts as the model sees
    /// them (with tether's notes for the agent before the first). While `steering` (mid-turn)
    /// it stops at one with files attached: those wait for the turn's end.
    pub(super) fn deliver_queued(&mut self, steering: bool) -> Result<Vec<String>, SessionError> {
        let mut delivered = Vec::new();
        while let Some((item_id, text)) = self.state.queued.front().cloned() {
            let attachments = self
                .state
                .queued_attachments
                .get(&item_id)
                .cloned()
                .unwrap_or_default();
            // Files go with a new model request, at the end of the turn.
            if steering && !attachments.is_empty() {
                break;
            }
            self.emit_item(
                ItemPhase::Completed,
                Item::Message {
                    id: item_id,
                    role: MessageRole::User,
                    text: text.clone(),
                    interrupted: false,
                    attachments,
                },
            )?;
            let seen = self
                .state
                .history
                .as_ref()
                .and_then(|history| history.last())
                .filter(|message| message.role == crate::vocab::ChatRole::User)
                .map_or(text, |message| message.content.clone());
            delivered.push(seen);
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, event: Event) -> EventRecord {
        EventRecord { seq, at: 0, event }
    }

    fn user(id: &str) -> Event {
        Event::Item {
            phase: ItemPhase::Completed,
            item: Item::Message {
                id: id.into(),
                role: MessageRole::User,
                text: "hi".into(),
                interrupted: false,
                attachments: Vec::new(),
            },
        }
    }

    fn checkpoint(name: &str) -> Event {
        Event::Checkpoint {
            name: name.into(),
            commit: "c".into(),
        }
    }

    fn log(events: Vec<Event>) -> Vec<EventRecord> {
        events
            .into_iter()
            .enumerate()
            .map(|(seq, event)| record(seq as u64, event))
            .collect()
    }

    #[test]
    fn an_edit_goes_back_to_the_checkpoint_before_the_message() {
        let events = log(vec![
            user("a"),
            checkpoint("start"),
            checkpoint("turn-1"),
            user("b"),
            checkpoint("turn-2"),
        ]);
        assert_eq!(
            edit_point(&events, "a").map(|p| p.checkpoint),
            Ok("start".into())
        );
        assert_eq!(
            edit_point(&events, "b").map(|p| p.checkpoint),
            Ok("turn-1".into())
        );
    }

    #[test]
    fn a_rewind_before_the_message_is_where_it_started_from() {
        let events = log(vec![
            checkpoint("start"),
            user("a"),
            checkpoint("turn-1"),
            checkpoint("before-rewind-1"),
            Event::Rewound {
                name: "start".into(),
                undo: "before-rewind-1".into(),
            },
            user("b"),
        ]);
        assert_eq!(
            edit_point(&events, "b").map(|p| p.checkpoint),
            Ok("start".into())
        );
    }

    #[test]
    fn superseded_queued_unknown_and_pre_reset_messages_are_refused() {
        let events = log(vec![
            checkpoint("start"),
            user("a"),
            user("b"),
            Event::Superseded {
                item_id: "a".into(),
            },
            user("c"),
            Event::ContextReset { summary: None },
            user("d"),
            Event::FollowUpQueued {
                item_id: "e".into(),
                text: "later".into(),
                attachments: Vec::new(),
            },
        ]);
        assert_eq!(edit_point(&events, "a"), Err(NotEditable::Superseded));
        assert_eq!(edit_point(&events, "b"), Err(NotEditable::Superseded));
        assert_eq!(edit_point(&events, "c"), Err(NotEditable::BeforeReset));
        assert_eq!(
            edit_point(&events, "d").map(|p| p.checkpoint),
            Ok("start".into())
        );
        assert_eq!(edit_point(&events, "e"), Err(NotEditable::Queued));
        assert_eq!(edit_point(&events, "zz"), Err(NotEditable::Unknown));
        let old = log(vec![user("a")]);
        assert_eq!(edit_point(&old, "a"), Err(NotEditable::NoCheckpoint));
        let tool = Event::Item {
            phase: ItemPhase::Started,
            item: Item::ToolCall {
                id: "t".into(),
                call_id: "c".into(),
                tool: "run_command".into(),
                input: serde_json::Value::Null,
                status: crate::vocab::ToolCallStatus::Running,
                output: None,
                duration_ms: None,
            },
        };
        let ended = Event::TurnEnded {
            reason: crate::vocab::TurnEndReason::EndTurn,
            message: None,
        };
        let steered = log(vec![
            checkpoint("start"),
            user("a"),
            tool,
            user("b"),
            ended,
            user("c"),
        ]);
        assert_eq!(edit_point(&steered, "b"), Err(NotEditable::MidTurn));
        assert_eq!(
            edit_point(&steered, "c").map(|p| p.checkpoint),
            Ok("start".into())
        );
    }
}

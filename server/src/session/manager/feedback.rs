//! Feedback on the agent's replies: a rating (up or down) and an optional comment, recorded
//! as an event of the session (shown by every editor and in exports).

use super::{SessionError, SessionManager};
use crate::vocab::{Event, Item, ItemPhase, MessageRole, Rating};

/// The longest comment kept, in characters.
const COMMENT_LIMIT: usize = 4000;

impl SessionManager {
    /// Rates reply `item_id` (default: the agent's latest whole reply); the item rated.
    pub async fn feedback(
        &self,
        id: &str,
        item_id: Option<String>,
        rating: Rating,
        comment: Option<String>,
    ) -> Result<String, SessionError> {
        let handle = self.writable_handle(id)?;
        let comment = comment
            .map(|comment| comment.trim().to_owned())
            .filter(|comment| !comment.is_empty());
        if let Some(comment) = &comment
            && comment.chars().count() > COMMENT_LIMIT
        {
            return Err(SessionError::InvalidParams {
                field: "comment",
                message: format!("a comment has at most {COMMENT_LIMIT} characters"),
            });
        }
        let item_id = match item_id {
            None => {
                handle
                    .view()
                    .last_reply
                    .clone()
                    .ok_or_else(|| SessionError::InvalidParams {
                        field: "itemId",
                        message: "the agent has not replied yet; there is nothing to rate"
                            .to_owned(),
                    })?
            }
            Some(item_id) => {
                let replied = self.get(id, 0)?.events.iter().any(|record| {
                    matches!(
                        &record.event,
                        Event::Item {
                            phase: ItemPhase::Completed,
                            item: Item::Message { id, role: MessageRole::Agent, .. },
                        } if *id == item_id
                    )
                });
                if !replied {
                    return Err(SessionError::InvalidParams {
                        field: "itemId",
                        message: format!("{item_id:?} is not a reply of the agent in this session"),
                    });
                }
                item_id
            }
        };
        let rated = item_id.clone();
        handle
            .run(move |actor| {
                actor.emit(Event::Feedback {
                    item_id: rated,
                    rating,
                    comment,
                })?;
                Ok(())
            })
            .await?;
        Ok(item_id)
    }
}

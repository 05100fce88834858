//! What a crash left open, closed when the session is loaded again: reviews that were running
//! end `failed`, a session that was working ends `stopped` with its open items closed as
//! interrupted, ready to resume.

use super::SessionError;
use super::actor::SessionActor;
use super::reviews::review_item;
use crate::vocab::{
    Event, FindingSource, Item, ItemPhase, Resolution, RunFacts, RunStatus, SessionStatus,
    ToolCallStatus,
};

impl SessionActor {
    /// Brings a session loaded from its log or snapshot to a settled, truthful state.
    pub fn recover(&mut self) -> Result<(), SessionError> {
        let replayed = self.state.history.is_some();
        if !self.state.open_runs.is_empty() {
            self.close_interrupted_reviews()?;
        }
        if self.state.status.is_active() {
            self.recover_interrupted()?;
        } else if replayed {
            // No usable snapshot: leave one, so the next start need not replay, and keep no
            // conversation in memory for a session nobody is using.
            self.settle()?;
            self.state.history = None;
        }
        Ok(())
    }

    /// Reviews and verifications the previous process left running are closed as failed.
    fn close_interrupted_reviews(&mut self) -> Result<(), SessionError> {
        let open_runs = std::mem::take(&mut self.state.open_runs);
        for (_, item) in open_runs {
            let (kind, item_id) = match &item {
                Item::Review { id, .. } => (FindingSource::Review, id.clone()),
                Item::Verification { id, .. } => (FindingSource::Verification, id.clone()),
                _ => continue,
            };
            let facts = RunFacts {
                error: Some("interrupted: tether stopped while it ran".to_owned()),
                ..RunFacts::default()
            };
            self.emit_item(
                ItemPhase::Completed,
                review_item(kind, item_id, RunStatus::Failed, Vec::new(), facts),
            )?;
        }
        Ok(())
    }

    /// A session the previous process left working: its open items are closed as interrupted
    /// and it becomes `stopped`, ready to resume.
    fn recover_interrupted(&mut self) -> Result<(), SessionError> {
        let open_items = std::mem::take(&mut self.state.open_items);
        for (item_id, (role, text)) in open_items {
            self.emit_item(
                ItemPhase::Completed,
                Item::Message {
                    id: item_id,
                    role,
                    text,
                    interrupted: true,
                    attachments: Vec::new(),
                },
            )?;
        }
        let open_questions = std::mem::take(&mut self.state.open_questions);
        for (item_id, item) in open_questions {
            self.emit_item(ItemPhase::Completed, item)?;
            self.emit(Event::Resolved {
                item_id,
                outcome: Resolution::Cancelled,
            })?;
        }
        let open_tool_calls = std::mem::take(&mut self.state.open_tool_calls);
        for (_, mut item) in open_tool_calls {
            if let Item::ToolCall { status, output, .. } = &mut item {
                *status = ToolCallStatus::Failed;
                *output = Some("interrupted: tether stopped while this tool ran".to_owned());
            }
            self.emit_item(ItemPhase::Completed, item)?;
        }
        self.set_status(
            SessionStatus::Stopped,
            None,
            Some(
                "interrupted: tether stopped while the session was working; resume it to continue"
                    .to_owned(),
            ),
        )
    }
}

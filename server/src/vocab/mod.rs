//! The shared vocabulary every layer speaks: a session's events and items (the durable record
//! and the wire format at once), its state folded from them, its status, the conversation's
//! messages, usage, and the clock events are stamped with.
//!
//! Events are the durable record (see [`crate::store`]) and the wire format of
//! `tether/session/event` at once: a client that missed notifications re-reads the very lines
//! the log holds. That is why these types carry serde attributes in the protocol's camelCase,
//! while nothing here knows about LSP itself.
//!
//! A leaf: it imports nothing of the crate, so that the provider, agent, config, store, review
//! and session layers can all use it without importing each other.

mod attachments;
mod chat;
mod events;
mod outcomes;
mod state;
mod tasks;
mod usage;

pub use attachments::{
    Attachment, AttachmentKind, AttachmentSource, MAX_ATTACHMENTS, mime_type_of,
};
pub use chat::{ChatAttachment, ChatMessage, ChatRole, ToolCallRequest, answered_len};
#[cfg(test)]
pub use events::sample_spec;
pub use events::{
    Activity, AgentCommand, AgentFacts, Answer, Event, EventRecord, Finding, FindingSource, Item,
    ItemPhase, MessageRole, PlanDecision, PlanPhase, Question, QuestionKind, RunFacts, SessionSpec,
    SessionStatus, Severity, StartedBy, ToolCallStatus, TurnEndReason,
};
pub use outcomes::{
    HookEvent, HookStatus, LoopOutcome, PermissionDecision, Rating, Resolution, RunStatus,
};
pub use state::{SessionState, check_transition};
pub use tasks::{
    Evidence, FindingCounts, HookResult, MAX_TRIALS, PromoteHow, Promotion, TaskInfo, TaskRecord,
    TaskStatus, TrialSpec, TrialSummary, Verdict,
};
pub use usage::{ContextUse, TokenUsage};

use serde::{Deserialize, Serialize};

/// How a session is meant to be used, as in the seeds: `develop` works a task to Done,
/// `chat` answers questions about the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Develop,
    Chat,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Develop => "develop",
            Mode::Chat => "chat",
        }
    }
}

/// Milliseconds since the Unix epoch, the clock every event is stamped with.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats a millisecond timestamp as RFC 3339, the form the protocol uses.
pub fn format_timestamp(millis: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis);
    humantime::format_rfc3339_millis(time).to_string()
}

/// A new id for an item (a message, a tool call, a question…): time-ordered, unique.
pub fn new_item_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

//! The session domain: what a session is, the events that make up its history, its state
//! machine, and the manager that runs many of them at once.
//!
//! Events are the durable record (see [`crate::store`]) and the wire format of
//! `tether/session/event` at once: a client that missed notifications re-reads the very lines
//! the log holds. That is why these types carry serde attributes in the protocol's camelCase,
//! while nothing here knows about LSP itself.

mod events;
pub mod export;
mod manager;
mod names;
mod redact;
mod state;
pub mod transcript;

pub use events::{
    Activity, Answer, Event, EventRecord, Finding, FindingSource, Item, ItemPhase, MessageRole,
    PlanDecision, PlanPhase, Question, QuestionKind, SessionSpec, SessionStatus, Severity,
    TokenUsage, ToolCallStatus, TurnEndReason,
};
pub use manager::{
    AnnouncedEvent, CreateSession, EXIT_SIGNAL, ListFilter, LoopRequest, SessionError,
    SessionFindings, SessionInfo, SessionManager, SessionSnapshot,
};
pub use names::{slug_from_prompt, validate_session_name};
pub use redact::{REDACTED, Redactor};
pub use state::{SessionState, check_transition};

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

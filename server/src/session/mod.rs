//! The session domain: the manager that creates and runs many sessions at once, and what is
//! made from a session's events (transcripts, exports, names, redaction). The events, the
//! state they fold into and the rest of the vocabulary live in [`crate::vocab`], a leaf every
//! layer imports; they are re-exported here for the layers above.

pub mod commands;
pub mod export;
mod manager;
pub mod mentions;
mod names;
mod redact;
pub mod transcript;

pub use crate::vocab::{
    Activity, Answer, Event, EventRecord, Finding, FindingSource, Item, ItemPhase, MessageRole,
    Mode, PlanDecision, PlanPhase, Question, QuestionKind, SessionSpec, SessionState,
    SessionStatus, Severity, TokenUsage, ToolCallStatus, TurnEndReason, check_transition,
    format_timestamp, now_millis,
};
pub use manager::{
    Agreement, ComparedFile, ComparedRegion, CreateTask, FileInTrial, PromoteRequest, Promoted,
    TaskComparison, TrialPatch, TrialRequest, Variant, task_document,
};
pub use manager::{
    AnnouncedEvent, CreateSession, EXIT_SIGNAL, EventSource, GitOutcome, GitRequest, ListFilter,
    LoopRequest, Sent, SessionError, SessionFindings, SessionInfo, SessionManager, SessionSnapshot,
    SessionView, Subscription,
};
pub use names::{slug_from_prompt, title_of, validate_session_name};
pub use redact::{REDACTED, Redactor};

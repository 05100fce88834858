//! Tether's custom LSP protocol: the `tether/session/*` requests, their params, and the
//! `tether/session/event` notification. Documented in docs/protocol.md; keep the two in step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tower_lsp_server::ls_types::notification::Notification;

use crate::session::{Event, Finding, FindingSource, Mode, SessionStatus};

/// Every custom request, by its short name: `tether/session/<name>` and command
/// `tether.<name>`.
pub const SESSION_METHODS: &[(&str, &str)] = &[
    ("tether/session/create", "create"),
    ("tether/session/list", "list"),
    ("tether/session/get", "get"),
    ("tether/session/send", "send"),
    ("tether/session/stop", "stop"),
    ("tether/session/resume", "resume"),
    ("tether/session/complete", "complete"),
    ("tether/session/clone", "clone"),
    ("tether/session/delete", "delete"),
    ("tether/session/export", "export"),
    ("tether/session/resetContext", "resetContext"),
    ("tether/session/answer", "answer"),
    ("tether/session/decidePlan", "decidePlan"),
    ("tether/session/rewind", "rewind"),
    ("tether/session/diff", "diff"),
    ("tether/session/apply", "apply"),
    ("tether/session/findings", "findings"),
    ("tether/session/review", "review"),
    ("tether/session/cancelReview", "cancelReview"),
    ("tether/session/git", "git"),
    ("tether/session/loop", "loop"),
    ("tether/session/stopLoop", "stopLoop"),
    ("tether/session/trust", "trust"),
    ("tether/session/fixFinding", "fixFinding"),
    ("tether/session/dismissFinding", "dismissFinding"),
    ("tether/session/newSession", "newSession"),
    ("tether/session/openTranscript", "openTranscript"),
];

/// The command that runs a custom request, for clients without custom requests.
pub fn command_name(short: &str) -> String {
    format!("tether.{short}")
}

/// Application error codes (JSON-RPC reserves -32768..-32000 for itself; LSP uses some).
pub mod error_code {
    pub const UNKNOWN_SESSION: i64 = -31001;
    pub const INVALID_STATE: i64 = -31002;
    pub const READ_ONLY: i64 = -31003;
    pub const REPOSITORY: i64 = -31004;
    pub const CONFIGURATION: i64 = -31005;
    pub const SHUTTING_DOWN: i64 = -31006;
    pub const INTERNAL: i64 = -32603;
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateParams {
    pub prompt: String,
    pub mode: Option<Mode>,
    pub name: Option<String>,
    /// A workspace folder URI (or path); default: the first workspace folder.
    pub root: Option<String>,
    pub base_branch: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    #[serde(default)]
    pub toggles: BTreeMap<String, bool>,
}

/// Opens the draft a new session is written in, quoting `range` of `uri` when given.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSessionParams {
    pub root: Option<String>,
    pub uri: Option<tower_lsp_server::ls_types::Uri>,
    pub range: Option<tower_lsp_server::ls_types::Range>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    pub status: Option<SessionStatus>,
    pub mode: Option<Mode>,
    pub query: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetParams {
    pub id: String,
    /// Events with a greater `seq` are returned; default 0 (all).
    #[serde(default)]
    pub since: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendParams {
    pub id: String,
    pub text: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdParams {
    pub id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeParams {
    pub id: String,
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerParams {
    pub id: String,
    pub question_id: String,
    /// One per question, in order: a string, or a list of strings for a multi-select.
    pub answers: Vec<crate::session::Answer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecidePlanParams {
    pub id: String,
    pub plan_id: String,
    pub approve: bool,
    pub feedback: Option<String>,
}

/// Records a review's or verification's findings (what the review issue's engine will call;
/// a hook for tests and external reviewers until then).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FindingsParams {
    pub id: String,
    #[serde(default = "review")]
    pub source: FindingSource,
    #[serde(default = "done")]
    pub status: crate::vocab::RunStatus,
    /// Findings to record; without them, the request reads the open findings.
    #[serde(default)]
    pub findings: Option<Vec<Finding>>,
}

/// Trusts a repository's hooks.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustParams {
    /// A workspace folder URI (or path); default: the first workspace folder.
    pub root: Option<String>,
}

/// Runs the same prompt in iterations (see docs/protocol.md, "Loops").
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoopParams {
    pub id: String,
    pub prompt: String,
    pub max_iterations: u32,
    #[serde(default = "yes")]
    pub stop_on_exit_signal: bool,
    #[serde(default = "yes")]
    pub reset_context: bool,
    #[serde(default)]
    pub model: Option<String>,
}

fn yes() -> bool {
    true
}

/// A git operation on the session's branch.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitParams {
    pub id: String,
    pub op: crate::workspace::operations::Operation,
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
}

/// Runs (or cancels) a verification or review now.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewParams {
    pub id: String,
    #[serde(default = "review")]
    pub kind: FindingSource,
}

fn review() -> FindingSource {
    FindingSource::Review
}

fn done() -> crate::vocab::RunStatus {
    crate::vocab::RunStatus::Completed
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingParams {
    pub id: String,
    pub finding_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewindParams {
    pub id: String,
    /// `turn-<n>`, or a `before-rewind-<k>` to undo a rewind.
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// Short for `checkpoint: "turn-<n>"`.
    #[serde(default)]
    pub turn: Option<u64>,
}

impl RewindParams {
    /// The checkpoint named, by `checkpoint` or by `turn`.
    pub fn checkpoint(&self) -> Option<String> {
        match (&self.checkpoint, self.turn) {
            (Some(checkpoint), None) => Some(checkpoint.clone()),
            (None, Some(turn)) => Some(format!("turn-{turn}")),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetContextParams {
    pub id: String,
    /// Kept as the start of the new conversation.
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Markdown,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportParams {
    pub id: String,
    #[serde(default)]
    pub format: ExportFormat,
}

pub const SESSION_EVENT_METHOD: &str = "tether/session/event";

/// `tether/session/event`: `{sessionId, seq, at, event}`, sent only to clients that set
/// `capabilities.experimental.tether`.
pub enum SessionEventNotification {}

impl Notification for SessionEventNotification {
    type Params = SessionEventParams;
    const METHOD: &'static str = SESSION_EVENT_METHOD;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEventParams {
    pub session_id: String,
    pub seq: u64,
    pub at: u64,
    pub event: Event,
}

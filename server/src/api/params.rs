//! The methods' params and results as they are on the wire (docs/protocol.md, "Requests").
//! Params keep the struct names clients' error messages have always shown (`expected struct
//! IdParams`); results are typed, serialized once where the reply is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::types::{ApplyFileOutcome, FileDiff, GitStatus, SessionInfo};
use crate::session::{Answer, EventRecord, Finding, FindingSource, Mode, SessionStatus};
use crate::vocab::RunStatus;
use crate::workspace::operations::Operation;

fn yes() -> bool {
    true
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn review() -> FindingSource {
    FindingSource::Review
}

fn completed() -> RunStatus {
    RunStatus::Completed
}

/// Params of the many methods that name only a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdParams {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateParams {
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A workspace folder URI (or path); default: the first workspace folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub toggles: BTreeMap<String, bool>,
    /// Who asks; a front sets it (`{kind: "editor", name}`, `{kind: "cli"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<crate::vocab::StartedBy>,
    /// The editor settings the session follows; a front sets it to its editor's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_profile: Option<String>,
    /// Files attached to the prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::vocab::AttachmentSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SessionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Case-insensitive, in the name or the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

impl From<ListParams> for crate::session::ListFilter {
    fn from(params: ListParams) -> Self {
        crate::session::ListFilter {
            status: params.status,
            mode: params.mode,
            query: params.query,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResult {
    pub sessions: Vec<SessionInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetParams {
    pub id: String,
    /// Events with a greater `seq` are returned; default 0 (all).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub since: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetResult {
    pub session: SessionInfo,
    pub events: Vec<EventRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendParams {
    pub id: String,
    pub text: String,
    /// Files attached to the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::vocab::AttachmentSource>,
}

/// `send` and `fixFinding`: whether the message waits for the turn in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedResult {
    /// It waits for the current turn (with tether's agent: the current tool calls) to end.
    pub queued: bool,
    /// The message's item id (a queued one can be taken back with `deleteMessage`); empty
    /// when the message was one of Tether's commands.
    pub item_id: String,
    /// The command the message was (`/review`…): it ran, and nothing was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl From<crate::session::Sent> for QueuedResult {
    fn from(sent: crate::session::Sent) -> Self {
        QueuedResult {
            queued: sent.queued,
            item_id: sent.item_id,
            command: sent.command,
        }
    }
}

/// Edits a message the user sent and runs the conversation again from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditMessageParams {
    pub id: String,
    /// The user `message` item to edit.
    pub item_id: String,
    pub text: String,
}

/// A file attached in a session, by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachmentParams {
    pub id: String,
    pub sha256: String,
}

/// An attached file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentResult {
    /// Base64.
    pub data: String,
}

/// What kind of thing an item completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionKind {
    File,
    Command,
}

/// One completion: what it shows, what it puts in place of the word being written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    pub label: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub insert: String,
    pub kind: CompletionKind,
}

/// Completions for what a client's own message box holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompletionsParams {
    /// The session written to (its repository, its agent's commands); default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The repository, when no session is named; default the first workspace folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The text up to the cursor.
    pub text: String,
}

/// What completes the word at the end of the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionsResult {
    /// The word each item replaces (empty: nothing to complete).
    pub word: String,
    pub items: Vec<Completion>,
}

/// One message of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageParams {
    pub id: String,
    pub item_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeParams {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResult {
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Markdown,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportParams {
    pub id: String,
    #[serde(default)]
    pub format: ExportFormat,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportResult {
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetContextParams {
    pub id: String,
    /// Kept as the start of the new conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerParams {
    pub id: String,
    pub question_id: String,
    /// One per question, in order: a string, or a list of strings for a multi-select.
    pub answers: Vec<Answer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecidePlanParams {
    pub id: String,
    pub plan_id: String,
    pub approve: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewindParams {
    pub id: String,
    /// `turn-<n>`, or a `before-rewind-<k>` to undo a rewind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// Short for `checkpoint: "turn-<n>"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u64>,
}

impl RewindParams {
    /// The checkpoint named, by `checkpoint` or by `turn`; `None` unless exactly one is given.
    pub fn checkpoint(&self) -> Option<String> {
        match (&self.checkpoint, self.turn) {
            (Some(checkpoint), None) => Some(checkpoint.clone()),
            (None, Some(turn)) => Some(format!("turn-{turn}")),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewindResult {
    /// The checkpoint that undoes this rewind.
    pub undo: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointsResult {
    /// Oldest first.
    pub checkpoints: Vec<CheckpointInfo>,
}

/// One checkpoint of a session's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointInfo {
    /// `start`, `turn-<n>` or `before-rewind-<k>`: what `rewind` takes.
    pub name: String,
    pub commit: String,
    /// When it was recorded (milliseconds since the Unix epoch).
    pub at: u64,
    /// `turn-<n>`'s n.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u64>,
    /// A `before-rewind-<k>`: the checkpoint that rewind went to (rewinding here undoes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
    /// What changed since the checkpoint before it (the first: since the session's base).
    pub files: Vec<CheckpointFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointFile {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub status: super::FileChange,
    pub additions: u64,
    pub deletions: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffResult {
    pub files: Vec<FileDiff>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyParams {
    pub id: String,
    /// Only these files (paths relative to the repository); default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
    /// For these files, only these hunks (numbered from 0 as in the diff's patch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hunks: Option<BTreeMap<String, BTreeSet<usize>>>,
    /// Hunks the user rejected: never applied, and told to the agent. With `reject`, only
    /// these are told as rejected; hunks merely not selected are left for later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<BTreeMap<String, BTreeSet<usize>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    /// Whether a `workspace/applyEdit` went to the editor.
    pub sent: bool,
    pub files: Vec<ApplyFileOutcome>,
    /// One line a person reads.
    pub summary: String,
}

/// Records a review's or verification's findings (from an external reviewer, a test), or
/// without `findings`, reads the open ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FindingsParams {
    pub id: String,
    #[serde(default = "review")]
    pub source: FindingSource,
    /// The recorded item's status (`completed` by default).
    #[serde(default = "completed")]
    pub status: RunStatus,
    /// Findings to record; without them, the request reads the open findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<Finding>>,
}

/// An open finding with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourcedFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub source: FindingSource,
}

/// What `findings` answers: the open findings when it read them, the item when it recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FindingsResult {
    Open { findings: Vec<SourcedFinding> },
    Recorded(ItemResult),
}

/// Rates one of the agent's replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedbackParams {
    pub id: String,
    /// The reply (an agent `message` item); default the agent's latest whole reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    pub rating: crate::vocab::Rating,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Runs (or cancels) a verification or a review now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewParams {
    pub id: String,
    #[serde(default = "review")]
    pub kind: FindingSource,
}

/// The id of the item a request made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    pub item_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelledResult {
    pub cancelled: bool,
}

/// A git operation on the session's branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitParams {
    pub id: String,
    pub op: Operation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A pull request's title (default: the branch's last commit's subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A pull request's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// The status after a git operation, and the commit it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitResult {
    pub status: GitStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The pull request `pr` opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
}

/// Runs the same prompt in iterations (see docs/protocol.md, "Loops").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoopParams {
    pub id: String,
    pub prompt: String,
    pub max_iterations: u32,
    #[serde(default = "yes")]
    pub stop_on_exit_signal: bool,
    #[serde(default = "yes")]
    pub reset_context: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopResult {
    pub started: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopLoopResult {
    pub stopping: bool,
}

/// Trusts a repository's hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustParams {
    /// A workspace folder URI (or path); default: the first workspace folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustResult {
    /// The folder whose hooks may run from now on.
    pub trusted: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingParams {
    pub id: String,
    pub finding_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DismissResult {
    pub dismissed: bool,
}

/// A position in a document: LSP's, in the encoding the editor and the server agreed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

/// A range in a document, as LSP writes one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

/// Opens the draft a new session is written in, quoting `range` of `uri` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSessionParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// A document URI, as the editor names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
}

/// A document the server asked the editor to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UriResult {
    pub uri: String,
}

/// `tether/session/event`: `{sessionId, seq, at, event}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEventParams {
    pub session_id: String,
    pub seq: u64,
    pub at: u64,
    pub event: crate::session::Event,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvidersParams {
    /// A workspace folder URI (or path): its repository's settings count too; default the
    /// first workspace folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The editor settings to list with; a front sets it to its editor's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvidersResult {
    /// The default provider first, then by name.
    pub providers: Vec<ProviderEntry>,
}

/// One provider, as a new-session picker shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderEntry {
    pub name: String,
    pub kind: crate::config::ProviderKind,
    /// Built into tether and not changed by any settings (`false`: settings define or
    /// change it).
    pub preset: bool,
    /// What a new session uses when it names no provider.
    pub default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `acp`: the agent's program, and where it was found on the session host's PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Whether it can run here: an `acp` agent's program was found; an HTTP provider that
    /// sends a key has its key variable set.
    pub available: bool,
    /// Why not, and what to do about it (how to install the agent, which variable to set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    /// The models the agent offers, as its latest session on this host reported them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

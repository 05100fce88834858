//! Events: the append-only history of a session, in the shape DESIGN.md gives the wire.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Mode;
use super::attachments::Attachment;
use super::outcomes::{
    HookEvent, HookStatus, LoopOutcome, PermissionDecision, Rating, Resolution, RunStatus,
};
use super::usage::TokenUsage;

/// Lifecycle of a session: `pending → creating → running → {waiting, completed, stopped,
/// failed}`. See [`super::check_transition`] for the legal moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Pending,
    Creating,
    Running,
    Waiting,
    Completed,
    Stopped,
    Failed,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Creating => "creating",
            SessionStatus::Running => "running",
            SessionStatus::Waiting => "waiting",
            SessionStatus::Completed => "completed",
            SessionStatus::Stopped => "stopped",
            SessionStatus::Failed => "failed",
        }
    }

    /// Whether a task is (or should be) driving the session: these are the states a crash
    /// interrupts, and the ones that count against `session.max_working` (pending waits for it).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            SessionStatus::Pending | SessionStatus::Creating | SessionStatus::Running
        )
    }
}

impl std::fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a running session is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    Working,
    WaitingInput,
    AwaitingPlanApproval,
}

impl Activity {
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Working => "working",
            Activity::WaitingInput => "waiting_input",
            Activity::AwaitingPlanApproval => "awaiting_plan_approval",
        }
    }
}

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnEndReason {
    EndTurn,
    MaxTurns,
    Stopped,
    Failed,
    Budget,
    Timeout,
}

impl TurnEndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TurnEndReason::EndTurn => "end_turn",
            TurnEndReason::MaxTurns => "max_turns",
            TurnEndReason::Stopped => "stopped",
            TurnEndReason::Failed => "failed",
            TurnEndReason::Budget => "budget",
            TurnEndReason::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageRole {
    User,
    Agent,
    Thinking,
    System,
    Summary,
    HookFailure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemPhase {
    Started,
    Completed,
}

/// One thing in the transcript. Each has a stable id and goes `started → delta… → completed`;
/// the completed form is authoritative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Item {
    #[serde(rename_all = "camelCase")]
    Message {
        id: String,
        role: MessageRole,
        text: String,
        /// Set on an agent message whose stream was cut short (stopped or failed): kept in the
        /// transcript, left out of what the model is sent next.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        interrupted: bool,
        /// Files the user attached to their message.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    /// A tool the agent ran: `running` when started, `completed` or `failed` when done.
    #[serde(rename_all = "camelCase")]
    ToolCall {
        id: String,
        /// The model's id for the call, which its result must name.
        call_id: String,
        tool: String,
        input: serde_json::Value,
        status: ToolCallStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
    },
    /// Questions the agent asks; `answers` (one per question) once answered.
    #[serde(rename_all = "camelCase")]
    Question {
        id: String,
        questions: Vec<Question>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answers: Option<Vec<Answer>>,
    },
    /// A plan the agent proposes; `decision` once the user approved or rejected it.
    #[serde(rename_all = "camelCase")]
    Plan {
        id: String,
        phases: Vec<PlanPhase>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<PlanDecision>,
    },
    /// A tool call waiting for the user's permission; `decision` (one of `decisions`) once
    /// given. `scope` is what an "always" decision grants or denies.
    #[serde(rename_all = "camelCase")]
    Permission {
        id: String,
        tool: String,
        input: serde_json::Value,
        scope: String,
        decisions: Vec<PermissionDecision>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<PermissionDecision>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feedback: Option<String>,
    },
    /// A file a tool changed, with its line counts.
    #[serde(rename_all = "camelCase")]
    FileChange {
        id: String,
        path: String,
        additions: u64,
        deletions: u64,
    },
    /// A code review of the session's diff. A newer review supersedes the findings of the
    /// last; a finding is dismissed by a `resolved` event naming its id.
    #[serde(rename_all = "camelCase")]
    Review {
        id: String,
        status: RunStatus,
        #[serde(default)]
        findings: Vec<Finding>,
        #[serde(flatten)]
        run: RunFacts,
    },
    /// One iteration of a loop: `started` when it begins (outcome `running`), `completed` with
    /// its outcome (`changed`, `no_changes`, `exit_signal`, `stopped`, `ended`) and, on the
    /// last, why the loop stopped.
    #[serde(rename_all = "camelCase")]
    LoopIteration {
        id: String,
        iteration: u32,
        max_iterations: u32,
        outcome: LoopOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_reason: Option<String>,
    },
    /// One run of a lifecycle hook.
    #[serde(rename_all = "camelCase")]
    Hook {
        id: String,
        event: HookEvent,
        name: String,
        status: HookStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        duration_ms: u64,
        #[serde(default)]
        output: String,
    },
    /// A verification of the session's work (tests, build, the claims it made).
    #[serde(rename_all = "camelCase")]
    Verification {
        id: String,
        status: RunStatus,
        #[serde(default)]
        findings: Vec<Finding>,
        #[serde(flatten)]
        run: RunFacts,
    },
}

/// What a finished review or verification cost and why it failed, if it did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Something a review or a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub id: String,
    /// Relative to the repository; `None` for a finding about no file in particular.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based, inclusive.
    #[serde(default)]
    pub start_line: u32,
    #[serde(default)]
    pub end_line: u32,
    pub severity: Severity,
    pub category: String,
    pub title: String,
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

/// Where a finding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingSource {
    Review,
    Verification,
}

/// One phase of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanPhase {
    pub title: String,
    #[serde(default)]
    pub subtasks: Vec<String>,
}

/// The user's decision on a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanDecision {
    pub approved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
}

/// One question of a `question` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    pub id: String,
    pub prompt: String,
    pub kind: QuestionKind,
    /// The choices, for `single` (which also takes a free "other" answer) and `multi`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    Text,
    Single,
    Multi,
}

/// The answer to one question: text (free text, the chosen option, or "other" text) or the
/// chosen options of a multi-select.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Text(String),
    Choices(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallStatus {
    Running,
    Completed,
    Failed,
}

impl Item {
    pub fn id(&self) -> &str {
        match self {
            Item::Message { id, .. }
            | Item::ToolCall { id, .. }
            | Item::Question { id, .. }
            | Item::Plan { id, .. }
            | Item::Permission { id, .. }
            | Item::FileChange { id, .. }
            | Item::Review { id, .. }
            | Item::Verification { id, .. }
            | Item::LoopIteration { id, .. }
            | Item::Hook { id, .. } => id,
        }
    }
}

/// What a session's ACP agent says about its own session: the slash commands it takes, its
/// modes and its models (with the ones in use).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentFacts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<AgentCommand>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

/// A slash command an agent takes (`/review`), as the editors offer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCommand {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// What never changes about a session once it exists: written as the first event of its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSpec {
    pub id: String,
    pub name: String,
    /// The first line of the first prompt, for pickers and lists.
    #[serde(default)]
    pub title: String,
    pub mode: Mode,
    /// The user's repository (its top-level work tree).
    pub repo: PathBuf,
    pub base_branch: String,
    /// The commit the worktree starts from, when it must be exactly this one (a task's
    /// trials all start from one commit); otherwise the base branch as it is then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
    /// Always `tether/<name>`: the only branch Tether ever deletes.
    pub branch: String,
    pub worktree: PathBuf,
    pub provider: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub toggles: BTreeMap<String, bool>,
    pub created_at: u64,
    /// The session this one was cloned from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloned_from: Option<String>,
    /// Who started it; `None` in logs written before tether recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<StartedBy>,
    /// The editor settings it follows: the profile of the editor that started it (see
    /// `config::ConfigCache::set_profile`); `None` for the host's own settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_profile: Option<String>,
}

/// Where a session came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StartedBy {
    /// An editor, by the name it gave in `initialize` (`clientInfo.name`).
    Editor {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// `tether run`.
    Cli,
    /// A `[[schedules]]` entry, by its name.
    Schedule { name: String },
    /// Trial `trial` (1-based) of a task, by the task's id.
    Task {
        id: String,
        #[serde(default)]
        trial: u32,
    },
}

/// One entry of a session's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Event {
    /// The first event of every log.
    Created {
        session: Box<SessionSpec>,
    },
    #[serde(rename_all = "camelCase")]
    Status {
        status: SessionStatus,
        #[serde(default)]
        activity: Option<Activity>,
        /// Why, for `failed` and for stops the server made itself (e.g. a restart).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Item {
        phase: ItemPhase,
        item: Item,
    },
    #[serde(rename_all = "camelCase")]
    Delta {
        item_id: String,
        text: String,
    },
    /// A pending question, plan or permission was settled (`answered`), or can no longer be
    /// (`cancelled`): every client clears its prompt.
    #[serde(rename_all = "camelCase")]
    Resolved {
        item_id: String,
        outcome: Resolution,
    },
    /// A follow-up that waits for the current turn to end; delivered as a user message item
    /// with the same id.
    #[serde(rename_all = "camelCase")]
    FollowUpQueued {
        item_id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    /// The user took back queued follow-up `item_id` before it was delivered.
    #[serde(rename_all = "camelCase")]
    FollowUpWithdrawn {
        item_id: String,
    },
    /// The user edited their message `item_id`: the conversation from it on is superseded
    /// (the log keeps it; the model no longer sees it). The worktree went back first (a
    /// `rewound`); the edited text follows as a new message.
    #[serde(rename_all = "camelCase")]
    Superseded {
        item_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Usage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item_id: Option<String>,
        #[serde(flatten)]
        usage: TokenUsage,
        /// The context window of the model that answered, when the response was a turn's
        /// (the conversation's size is then what it was sent and said).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context_window: Option<u64>,
    },
    /// The worktree was recorded as checkpoint `name` (`refs/tether/<session>/<name>`).
    #[serde(rename_all = "camelCase")]
    Checkpoint {
        name: String,
        commit: String,
    },
    /// The worktree was put back to checkpoint `name`; checkpoint `undo` holds what it was.
    #[serde(rename_all = "camelCase")]
    Rewound {
        name: String,
        undo: String,
    },
    /// The model's conversation starts over (the transcript stays), optionally from a
    /// summary of what came before.
    #[serde(rename_all = "camelCase")]
    ContextReset {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    /// The session's ACP agent opened its own session `session_id` (a new one, or a new
    /// one after the last could not be restored): a restarted agent resumes from there.
    #[serde(rename_all = "camelCase")]
    AgentSession {
        provider: String,
        session_id: String,
    },
    /// What the session's ACP agent now says about its session (replaces the last).
    #[serde(rename_all = "camelCase")]
    AgentFacts {
        facts: AgentFacts,
    },
    /// The user chose another model for the session's next turns (`/model`).
    #[serde(rename_all = "camelCase")]
    ModelChanged {
        model: String,
    },
    /// A pull request was opened for the session's branch.
    #[serde(rename_all = "camelCase")]
    PullRequest {
        url: String,
    },
    /// The user rated one of the agent's replies (a later rating of it replaces this one).
    #[serde(rename_all = "camelCase")]
    Feedback {
        item_id: String,
        rating: Rating,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    TurnEnded {
        reason: TurnEndReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

/// An event as stored and as sent: its place in the session's history and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    pub event: Event,
}

/// A session of the repository `/repo` named `demo`, for tests.
#[cfg(test)]
pub fn sample_spec(id: &str) -> SessionSpec {
    SessionSpec {
        id: id.into(),
        name: "demo".into(),
        title: "Demo".into(),
        mode: Mode::Develop,
        repo: "/repo".into(),
        base_branch: "main".into(),
        base_commit: None,
        branch: "tether/demo".into(),
        worktree: "/wt/demo".into(),
        provider: "local".into(),
        model: "m".into(),
        temperature: None,
        max_tokens: None,
        toggles: Default::default(),
        created_at: 1,
        cloned_from: None,
        started_by: None,
        settings_profile: None,
    }
}

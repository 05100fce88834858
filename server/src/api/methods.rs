//! One type per method: `methods::List` is `tether/session/list`, with its params, result,
//! schedule and side. The names are the protocol's short names, so some (`Send`, `Clone`)
//! shadow the prelude here: use them qualified, `api::methods::Send`.

use super::params::*;
use super::tasks::*;
use super::types::SessionInfo;
use super::{Method, MethodInfo, Schedule, Side};
use crate::session::TaskComparison;
use crate::vocab::TaskInfo;

/// A method's full name: `tether/session/<short>`, unless it names itself.
macro_rules! name_of {
    ($short:literal) => {
        concat!("tether/session/", $short)
    };
    ($short:literal, $name:literal) => {
        $name
    };
}

/// Declares each method once: its type, its `Method` impl, its entry in [`METHODS`], and the
/// `for_each_method!` macro the dispatcher is made from. `$d` is a `$`, passed in so that the
/// macro this one defines can have metavariables of its own.
macro_rules! methods {
    ($d:tt $(
        $(#[$doc:meta])*
        $method:ident = $short:literal $(as $name:literal)?: $params:ty => $result:ty,
            $schedule:ident, $side:ident $(, optional = $optional:literal)?;
    )*) => {
        $(
            $(#[$doc])*
            pub enum $method {}

            impl Method for $method {
                const NAME: &'static str = name_of!($short $(, $name)?);
                const SHORT: &'static str = $short;
                const SCHEDULE: Schedule = Schedule::$schedule;
                const SIDE: Side = Side::$side;
                $(const PARAMS_OPTIONAL: bool = $optional;)?
                type Params = $params;
                type Result = $result;
            }
        )*

        /// Every custom request, in the order clients are told them.
        pub const METHODS: &[MethodInfo] = &[$(MethodInfo::of::<$method>()),*];

        /// `for_each_method!(callback)` expands to `callback!(Create, List, …)`: every method
        /// type of [`METHODS`], in its order.
        macro_rules! for_each_method {
            ($d callback:ident) => { $d callback!($($method),*) };
        }
        pub(crate) use for_each_method;
    };
}

methods! { $
    /// Creates a session and starts it; answers at once.
    Create = "create": CreateParams => SessionInfo, Blocking, Host;
    /// The sessions, oldest first.
    List = "list": ListParams => ListResult, Snapshot, Host, optional = true;
    /// A session and its events after `since`, read from its log.
    Get = "get": GetParams => GetResult, Blocking, Host;
    /// A follow-up message.
    Send = "send": SendParams => QueuedResult, Blocking, Host;
    /// Stops a session; answers once `stopped` is recorded (or the grace period ends).
    Stop = "stop": IdParams => SessionInfo, Runtime, Host;
    Resume = "resume": ResumeParams => SessionInfo, Blocking, Host;
    Complete = "complete": IdParams => SessionInfo, Blocking, Host;
    Clone = "clone": IdParams => SessionInfo, Blocking, Host;
    /// Stops a session and removes its worktree, branch and log.
    Delete = "delete": IdParams => DeleteResult, Blocking, Host;
    Export = "export": ExportParams => ExportResult, Blocking, Host;
    ResetContext = "resetContext": ResetContextParams => SessionInfo, Blocking, Host;
    Answer = "answer": AnswerParams => SessionInfo, Blocking, Host;
    DecidePlan = "decidePlan": DecidePlanParams => SessionInfo, Blocking, Host;
    Rewind = "rewind": RewindParams => RewindResult, Blocking, Host;
    /// The session's checkpoints, oldest first, each with what it changed since the last.
    Checkpoints = "checkpoints": IdParams => CheckpointsResult, Blocking, Host;
    Diff = "diff": IdParams => DiffResult, Blocking, Host;
    /// The session's changes as one `workspace/applyEdit` to the editor that asked.
    Apply = "apply": ApplyParams => ApplyResult, Blocking, Front;
    Findings = "findings": FindingsParams => FindingsResult, Blocking, Host;
    Review = "review": ReviewParams => ItemResult, Blocking, Host;
    CancelReview = "cancelReview": ReviewParams => CancelledResult, Blocking, Host;
    /// A git operation on the session's branch (push and pull reach the network).
    Git = "git": GitParams => GitResult, Blocking, Host;
    Loop = "loop": LoopParams => LoopResult, Blocking, Host;
    StopLoop = "stopLoop": IdParams => StopLoopResult, Blocking, Host;
    Trust = "trust": TrustParams => TrustResult, Blocking, Host, optional = true;
    FixFinding = "fixFinding": FindingParams => QueuedResult, Blocking, Host;
    DismissFinding = "dismissFinding": FindingParams => DismissResult, Blocking, Host;
    /// Edits a sent message: the conversation and the worktree go back to just before it,
    /// and the new text runs from there (what followed stays in the log, superseded).
    EditMessage = "editMessage": EditMessageParams => SessionInfo, Blocking, Host;
    /// Compacts the conversation into a summary now (tether's agent; the session runs once).
    Compact = "compact": IdParams => SessionInfo, Blocking, Host;
    /// `@` files and `/` commands that complete a message box's last word.
    Completions = "completions": CompletionsParams => CompletionsResult, Runtime, Front;
    /// The bytes of a file attached in the session (for thumbnails).
    Attachment = "attachment": AttachmentParams => AttachmentResult, Blocking, Host;
    /// Takes back a follow-up that still waits to be delivered.
    DeleteMessage = "deleteMessage": MessageParams => DeleteResult, Blocking, Host;
    /// Rates one of the agent's replies (up or down, with a comment).
    Feedback = "feedback": FeedbackParams => ItemResult, Blocking, Host;
    /// Opens the draft a new session is written in, in the editor that asked.
    NewSession = "newSession": NewSessionParams => UriResult, Runtime, Front, optional = true;
    /// Renders a session's transcript now and opens it in the editor that asked.
    OpenTranscript = "openTranscript": IdParams => UriResult, Runtime, Front;
    /// The providers a new session can use, for pickers: configured, built in, found or not.
    Providers = "providers" as "tether/providers/list": ProvidersParams => ProvidersResult,
        Blocking, Host, optional = true;
    /// Starts a task: one prompt raced by 1–8 trials, each a session of its own.
    TaskCreate = "taskCreate" as "tether/task/create": TaskCreateParams => TaskInfo,
        Blocking, Host;
    TaskList = "taskList" as "tether/task/list": TaskListParams => TaskListResult,
        Blocking, Host, optional = true;
    TaskGet = "taskGet" as "tether/task/get": IdParams => TaskInfo, Blocking, Host;
    /// The trials side by side: files, regions where they agree and differ, patches.
    TaskCompare = "taskCompare" as "tether/task/compare": TaskCompareParams => TaskComparison,
        Blocking, Host;
    /// Lands one trial (apply into the editor's buffers, merge, or a pull request).
    TaskPromote = "taskPromote" as "tether/task/promote": TaskPromoteParams => TaskPromoteResult,
        Blocking, Front;
    /// Stops every trial still working.
    TaskStop = "taskStop" as "tether/task/stop": IdParams => TaskInfo, Runtime, Host;
    /// Deletes the task and its trials' sessions.
    TaskDelete = "taskDelete" as "tether/task/delete": IdParams => DeleteResult, Blocking, Host;
    /// Renders the task document `.tether/tasks/<name>.md` and opens it in the editor that asked.
    TaskOpen = "taskOpen" as "tether/task/open": IdParams => UriResult, Runtime, Front;
}

//! The fixed sets of values the protocol carries as words: how a review or verification run
//! stands, how a hook run or a loop iteration ended, what the user decided on a permission,
//! and how a pending item was settled. One spelling each on the wire (`cancelled`, never
//! `canceled`; logs written before that spelling still read).

use serde::{Deserialize, Serialize};

/// Where a review or verification run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Registered behind another run of the session.
    Pending,
    Running,
    Completed,
    Failed,
    #[serde(alias = "canceled")]
    Cancelled,
    /// There was nothing to look at (no changes).
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Skipped => "skipped",
        }
    }

    /// Whether the run is over.
    pub fn is_done(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

/// The session events hooks run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookEvent {
    OnInit,
    OnStart,
    OnAgentFinish,
    OnDone,
    OnCancel,
}

impl HookEvent {
    pub const ALL: [HookEvent; 5] = [
        HookEvent::OnInit,
        HookEvent::OnStart,
        HookEvent::OnAgentFinish,
        HookEvent::OnDone,
        HookEvent::OnCancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::OnInit => "on_init",
            HookEvent::OnStart => "on_start",
            HookEvent::OnAgentFinish => "on_agent_finish",
            HookEvent::OnDone => "on_done",
            HookEvent::OnCancel => "on_cancel",
        }
    }
}

/// How one run of a hook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookStatus {
    /// Exit 0.
    Success,
    /// Exit 2: its complaint goes to the agent.
    Blocked,
    /// Any other exit, or it could not start.
    Failed,
    Timeout,
    /// Not run: its filters left it out, or the repository's hooks are not trusted.
    Skipped,
    /// Not run: its circuit breaker is open after repeated failures.
    Disabled,
}

impl HookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HookStatus::Success => "success",
            HookStatus::Blocked => "blocked",
            HookStatus::Failed => "failed",
            HookStatus::Timeout => "timeout",
            HookStatus::Skipped => "skipped",
            HookStatus::Disabled => "disabled",
        }
    }

    /// A failure for the circuit breaker and `stop_on_failure`.
    pub fn is_failure(self) -> bool {
        matches!(self, HookStatus::Failed | HookStatus::Timeout)
    }
}

/// How a loop iteration went: `running` while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoopOutcome {
    Running,
    /// The turn changed files.
    Changed,
    NoChanges,
    /// The agent said the task is done.
    ExitSignal,
    /// The user stopped the loop.
    Stopped,
    /// The session could not go on (stopped, failed, or shutting down).
    Ended,
}

impl LoopOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LoopOutcome::Running => "running",
            LoopOutcome::Changed => "changed",
            LoopOutcome::NoChanges => "no_changes",
            LoopOutcome::ExitSignal => "exit_signal",
            LoopOutcome::Stopped => "stopped",
            LoopOutcome::Ended => "ended",
        }
    }
}

/// What the user decided on a permission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionDecision {
    AllowOnce,
    /// Allowed for the rest of the session (its scope).
    AllowAlwaysSession,
    /// Allowed in this repository from now on (its scope).
    AllowAlwaysProject,
    RejectOnce,
    /// Denied for the rest of the session (its scope).
    RejectAlways,
}

impl PermissionDecision {
    pub const ALL: [PermissionDecision; 5] = [
        PermissionDecision::AllowOnce,
        PermissionDecision::AllowAlwaysSession,
        PermissionDecision::AllowAlwaysProject,
        PermissionDecision::RejectOnce,
        PermissionDecision::RejectAlways,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PermissionDecision::AllowOnce => "allow_once",
            PermissionDecision::AllowAlwaysSession => "allow_always_session",
            PermissionDecision::AllowAlwaysProject => "allow_always_project",
            PermissionDecision::RejectOnce => "reject_once",
            PermissionDecision::RejectAlways => "reject_always",
        }
    }

    pub fn parse(word: &str) -> Option<PermissionDecision> {
        PermissionDecision::ALL
            .into_iter()
            .find(|decision| decision.as_str() == word)
    }

    /// Whether the tool call may run.
    pub fn allows(self) -> bool {
        match self {
            PermissionDecision::AllowOnce
            | PermissionDecision::AllowAlwaysSession
            | PermissionDecision::AllowAlwaysProject => true,
            PermissionDecision::RejectOnce | PermissionDecision::RejectAlways => false,
        }
    }
}

/// What the user thought of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Up => "up",
            Rating::Down => "down",
        }
    }
}

/// How a question, plan, permission or finding was settled (the `resolved` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A question got its answers.
    Answered,
    /// A plan was approved, or rejected with feedback.
    Approved,
    Rejected,
    /// A finding was dismissed.
    Dismissed,
    /// The turn ended before the user settled it.
    #[serde(alias = "canceled")]
    Cancelled,
    /// A permission got this decision.
    #[serde(untagged)]
    Decided(PermissionDecision),
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Answered => "answered",
            Resolution::Approved => "approved",
            Resolution::Rejected => "rejected",
            Resolution::Dismissed => "dismissed",
            Resolution::Cancelled => "cancelled",
            Resolution::Decided(decision) => decision.as_str(),
        }
    }
}

/// Each shows as its word on the wire.
macro_rules! display_as_wire_word {
    ($($name:ty),*) => {$(
        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(self.as_str())
            }
        }
    )*};
}

display_as_wire_word!(
    RunStatus,
    HookEvent,
    HookStatus,
    LoopOutcome,
    PermissionDecision,
    Resolution
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_has_one_spelling_and_old_logs_still_read() {
        for status in [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Cancelled,
            RunStatus::Skipped,
        ] {
            let wire = serde_json::to_value(status).expect("serialize");
            assert_eq!(wire, status.as_str());
        }
        let old: RunStatus = serde_json::from_str("\"canceled\"").expect("old spelling");
        assert_eq!(old, RunStatus::Cancelled);
        assert_eq!(
            serde_json::to_value(Resolution::Cancelled).expect("serialize"),
            "cancelled"
        );
        for decision in PermissionDecision::ALL {
            let resolution = Resolution::Decided(decision);
            let wire = serde_json::to_value(resolution).expect("serialize");
            assert_eq!(wire, decision.as_str());
            let back: Resolution = serde_json::from_value(wire).expect("deserialize");
            assert_eq!(back, resolution);
            assert_eq!(PermissionDecision::parse(decision.as_str()), Some(decision));
        }
        let back: Resolution = serde_json::from_str("\"dismissed\"").expect("deserialize");
        assert_eq!(back, Resolution::Dismissed);
    }

    #[test]
    fn only_allow_decisions_allow() {
        let allowed: Vec<&str> = PermissionDecision::ALL
            .into_iter()
            .filter(|decision| decision.allows())
            .map(PermissionDecision::as_str)
            .collect();
        assert_eq!(
            allowed,
            ["allow_once", "allow_always_session", "allow_always_project"]
        );
        // A word that merely starts like one is no decision at all.
        assert_eq!(PermissionDecision::parse("allow_everything"), None);
        assert!(serde_json::from_str::<Resolution>("\"allowed\"").is_err());
    }
}

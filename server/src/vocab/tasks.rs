//! Tasks and trials (DESIGN.md, "Tasks and trials"): one objective attempted by several
//! sessions at once, each a trial on its own branch from the same base commit, compared on
//! evidence and one of them promoted.
//!
//! A task's record is what the user asked for and decided (the prompt, the trials' sessions,
//! the promotion); everything else a [`TaskInfo`] shows is read from the trials' sessions,
//! whose logs stay the truth. The evidence a session carries for its trial ([`Evidence`]) is
//! folded from its events like the rest of its state.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Activity, HookStatus, SessionStatus, Severity};

/// The most trials one task may race.
pub const MAX_TRIALS: usize = 8;

/// A task as stored (`tasks/<id>.json` in its repository's state folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    pub id: String,
    /// Unique among the repository's tasks; trial `k` is session `<name>-<k>` on branch
    /// `tether/<name>-<k>`.
    pub name: String,
    /// The first line of the prompt.
    pub title: String,
    pub prompt: String,
    pub repo: PathBuf,
    pub base_branch: String,
    /// The commit every trial starts from.
    pub base_commit: String,
    pub created_at: u64,
    pub trials: Vec<TrialSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<Promotion>,
}

/// One trial: the session that attempts the task, and what it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialSpec {
    /// 1-based: the `k` of `<task>-<k>`.
    pub index: u32,
    pub session_id: String,
    pub provider: String,
    pub model: String,
}

/// How a promoted trial lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromoteHow {
    /// Into the user's buffers, as one workspace edit.
    Apply,
    /// Its branch merged into the base branch.
    Merge,
    /// Its branch pushed and a pull request opened (`gh`).
    Pr,
}

impl PromoteHow {
    pub fn as_str(self) -> &'static str {
        match self {
            PromoteHow::Apply => "apply",
            PromoteHow::Merge => "merge",
            PromoteHow::Pr => "pr",
        }
    }
}

/// The trial the user chose, how it landed, and why they chose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    pub session_id: String,
    pub trial: u32,
    pub how: PromoteHow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// The commit that carried the trial's work (merge, pr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
}

/// Where a task stands, from its trials and its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// A trial is still pending, making its worktree or working.
    Running,
    /// Every trial has settled (waiting, stopped, completed or failed); one can be promoted.
    Done,
    /// Every trial failed.
    Failed,
    /// A trial was promoted.
    Promoted,
}

/// The latest verification of a trial's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Running,
    /// Completed with no finding.
    Passed,
    /// Completed with findings.
    Failed,
    /// Could not run (the model failed, say).
    Error,
    Cancelled,
    /// There was nothing to verify (no changes).
    Skipped,
}

/// The last run of one `on_agent_finish` hook (the repository's tests, typically).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookResult {
    pub name: String,
    pub status: HookStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// What a session's events say about how its work went: a trial's evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verdict>,
    /// The latest review (`failed`: it found something).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Verdict>,
    /// The last run of each `on_agent_finish` hook, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookResult>,
    /// The pull request opened for the session's branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
}

impl Evidence {
    /// Records a finished `on_agent_finish` hook, replacing its last run.
    pub fn hook_ran(&mut self, result: HookResult) {
        match self.hooks.iter_mut().find(|kept| kept.name == result.name) {
            Some(kept) => *kept = result,
            None => self.hooks.push(result),
        }
    }

    /// Whether every hook that ran passed (`None`: none ran).
    pub fn hooks_passed(&self) -> Option<bool> {
        let ran: Vec<_> = self
            .hooks
            .iter()
            .filter(|hook| !matches!(hook.status, HookStatus::Skipped | HookStatus::Disabled))
            .collect();
        (!ran.is_empty()).then(|| ran.iter().all(|hook| hook.status == HookStatus::Success))
    }
}

/// Open findings by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingCounts {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
}

impl FindingCounts {
    pub fn add(&mut self, severity: Severity) {
        match severity {
            Severity::Critical => self.critical += 1,
            Severity::High => self.high += 1,
            Severity::Medium => self.medium += 1,
            Severity::Low => self.low += 1,
        }
    }

    pub fn total(&self) -> u32 {
        self.critical + self.high + self.medium + self.low
    }
}

/// One trial as a task shows it: its session's state and the evidence for its work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialSummary {
    pub index: u32,
    pub session_id: String,
    pub name: String,
    pub branch: String,
    pub provider: String,
    pub model: String,
    pub status: SessionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub files_changed: u32,
    pub additions: u64,
    pub deletions: u64,
    /// Open findings of the latest review and verification.
    pub findings: FindingCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verdict>,
    /// The latest review: `failed` when it found something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Verdict>,
    #[serde(default)]
    pub hooks: Vec<HookResult>,
    /// Whether every `on_agent_finish` hook that ran passed; absent when none ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks_passed: Option<bool>,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// From its creation to its last event.
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    /// The session was deleted: only its record in the task remains.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
}

/// A task as the protocol shows it (`TaskInfo` in docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInfo {
    pub id: String,
    pub name: String,
    pub title: String,
    pub prompt: String,
    pub status: TaskStatus,
    pub repo: PathBuf,
    pub base_branch: String,
    pub base_commit: String,
    pub created_at: String,
    pub trials: Vec<TrialSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<Promotion>,
}

impl TaskInfo {
    /// The task's status from its trials' and its promotion.
    pub fn status_of(trials: &[TrialSummary], promoted: bool) -> TaskStatus {
        if promoted {
            TaskStatus::Promoted
        } else if trials.iter().any(|trial| trial.status.is_active()) {
            TaskStatus::Running
        } else if !trials.is_empty()
            && trials
                .iter()
                .all(|trial| trial.status == SessionStatus::Failed)
        {
            TaskStatus::Failed
        } else {
            TaskStatus::Done
        }
    }

    pub fn trial(&self, session_id: &str) -> Option<&TrialSummary> {
        self.trials
            .iter()
            .find(|trial| trial.session_id == session_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_keeps_its_last_run_and_skipped_hooks_do_not_count() {
        let mut evidence = Evidence::default();
        assert_eq!(evidence.hooks_passed(), None);
        let run = |name: &str, status| HookResult {
            name: name.into(),
            status,
            exit_code: None,
        };
        evidence.hook_ran(run("tests", HookStatus::Blocked));
        evidence.hook_ran(run("lint", HookStatus::Skipped));
        assert_eq!(evidence.hooks_passed(), Some(false));
        evidence.hook_ran(run("tests", HookStatus::Success));
        assert_eq!(evidence.hooks.len(), 2);
        assert_eq!(evidence.hooks_passed(), Some(true));
    }
}

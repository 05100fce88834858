//! Wire copies of the domain's answers that the domain does not (de)serialize itself: a
//! session's info, a diff, a git status. The domain may change shape; these change only with
//! the protocol. Conversions from the domain are here, next to the copies, and a test checks
//! that each copy writes exactly the JSON the domain type writes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::session::{Activity, Mode, SessionStatus, TokenUsage};

/// SessionInfo in docs/protocol.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub id: String,
    pub name: String,
    pub title: String,
    pub mode: Mode,
    pub status: SessionStatus,
    pub activity: Option<Activity>,
    /// Why it failed or was stopped by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub provider: String,
    pub model: String,
    pub branch: String,
    pub base_branch: String,
    pub repo: PathBuf,
    pub worktree: PathBuf,
    pub created_at: String,
    pub updated_at: String,
    pub usage: TokenUsage,
    pub queued_messages: usize,
    pub last_seq: u64,
    /// Another tether process owns the repository's sessions.
    pub read_only: bool,
    /// Who started it (absent for sessions from before tether recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<crate::vocab::StartedBy>,
    /// What its ACP agent says about its session: slash commands, modes, models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::vocab::AgentFacts>,
    /// The pull request opened for its branch (`git {op: "pr"}`, a task's promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    /// How full its conversation is: tokens held and the model's window (none before the
    /// first turn of tether's agent; an ACP agent keeps its own context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<crate::vocab::ContextUse>,
}

/// The conversions between the domain's SessionInfo and this copy, field by field (a new
/// field on either side fails to compile here until it is on both).
macro_rules! convert_session_info {
    ($($from:ident)::+ => $($to:ident)::+) => {
        impl From<$($from)::+> for $($to)::+ {
            fn from(info: $($from)::+) -> Self {
                let $($from)::+ {
                    id, name, title, mode, status, activity, status_reason, provider, model, branch,
                    base_branch, repo, worktree, created_at, updated_at, usage, queued_messages,
                    last_seq, read_only, started_by, agent, pull_request, context,
                } = info;
                $($to)::+ {
                    id, name, title, mode, status, activity, status_reason, provider, model, branch,
                    base_branch, repo, worktree, created_at, updated_at, usage, queued_messages,
                    last_seq, read_only, started_by, agent, pull_request, context,
                }
            }
        }
    };
}

convert_session_info!(crate::session::SessionInfo => SessionInfo);
convert_session_info!(SessionInfo => crate::session::SessionInfo);

/// How a file changed in a session's diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileChange {
    Added,
    Modified,
    Deleted,
    Renamed,
}

impl FileChange {
    /// The change the workspace's diff names (`added`, `modified`, `deleted`, `renamed`).
    /// How the workspace's diff names it.
    pub fn name(self) -> &'static str {
        match self {
            FileChange::Added => "added",
            FileChange::Modified => "modified",
            FileChange::Deleted => "deleted",
            FileChange::Renamed => "renamed",
        }
    }

    pub fn from_name(name: &str) -> Option<FileChange> {
        match name {
            "added" => Some(FileChange::Added),
            "modified" => Some(FileChange::Modified),
            "deleted" => Some(FileChange::Deleted),
            "renamed" => Some(FileChange::Renamed),
            _ => None,
        }
    }
}

/// A file change the protocol has no word for: the workspace and the protocol disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: the diff names a change {status:?} that the protocol does not know")]
pub struct UnknownFileChange {
    pub path: String,
    pub status: String,
}

/// One changed file of `tether/session/diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDiff {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub status: FileChange,
    pub additions: u64,
    pub deletions: u64,
    /// A unified diff whose `@@` hunks are numbered from 0 by `tether/session/apply`.
    pub patch: String,
    /// Either side is not UTF-8 text.
    pub binary: bool,
}

impl TryFrom<crate::workspace::FileDiff> for FileDiff {
    type Error = UnknownFileChange;

    fn try_from(file: crate::workspace::FileDiff) -> Result<Self, Self::Error> {
        let Some(status) = FileChange::from_name(file.status) else {
            return Err(UnknownFileChange {
                path: file.path,
                status: file.status.to_owned(),
            });
        };
        Ok(FileDiff {
            path: file.path,
            old_path: file.old_path,
            status,
            additions: file.additions,
            deletions: file.deletions,
            patch: file.patch,
            binary: file.binary,
        })
    }
}

/// A file of a session's diff with both sides' text: what a front's apply needs, over the
/// daemon's socket (`daemon/diff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDiffWithTexts {
    #[serde(flatten)]
    pub file: FileDiff,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_text: Option<String>,
}

impl TryFrom<crate::workspace::FileDiff> for FileDiffWithTexts {
    type Error = UnknownFileChange;

    fn try_from(mut file: crate::workspace::FileDiff) -> Result<Self, Self::Error> {
        let (base_text, new_text) = (file.base_text.take(), file.new_text.take());
        Ok(FileDiffWithTexts {
            file: FileDiff::try_from(file)?,
            base_text,
            new_text,
        })
    }
}

impl From<FileDiffWithTexts> for crate::workspace::FileDiff {
    fn from(with: FileDiffWithTexts) -> Self {
        let FileDiffWithTexts {
            file,
            base_text,
            new_text,
        } = with;
        crate::workspace::FileDiff {
            path: file.path,
            old_path: file.old_path,
            status: file.status.name(),
            additions: file.additions,
            deletions: file.deletions,
            patch: file.patch,
            base_text,
            new_text,
            binary: file.binary,
        }
    }
}

/// What became of one file in `tether/session/apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyFileOutcome {
    pub path: String,
    pub status: FileChange,
    /// Indices of the hunks in the edit.
    pub applied: Vec<usize>,
    /// Hunks on lines the user changed too, left out.
    pub conflicts: Vec<usize>,
    /// Hunks the user did not select.
    pub rejected: Vec<usize>,
    /// Why the whole file was left out, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The worktree's state after a git operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitStatus {
    pub branch: String,
    pub base_branch: String,
    /// Commits on the session branch that the base branch lacks, and the other way round.
    pub ahead_of_base: u64,
    pub behind_base: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<GitUpstream>,
    pub files: Vec<GitFileStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitUpstream {
    pub name: String,
    pub ahead: u64,
    pub behind: u64,
}

/// One file as `git status --porcelain` shows it: its two status letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitFileStatus {
    pub path: String,
    pub index: String,
    pub worktree: String,
}

impl From<crate::workspace::operations::Status> for GitStatus {
    fn from(status: crate::workspace::operations::Status) -> Self {
        GitStatus {
            branch: status.branch,
            base_branch: status.base_branch,
            ahead_of_base: status.ahead_of_base,
            behind_base: status.behind_base,
            upstream: status.upstream.map(|upstream| GitUpstream {
                name: upstream.name,
                ahead: upstream.ahead,
                behind: upstream.behind,
            }),
            files: status
                .files
                .into_iter()
                .map(|file| GitFileStatus {
                    path: file.path,
                    index: file.index,
                    worktree: file.worktree,
                })
                .collect(),
        }
    }
}

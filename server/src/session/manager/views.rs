//! What readers of the sessions are given: a session as lists show it, a session with its
//! events, its open findings, and the filter `list` applies (in the daemon and in a front's
//! mirror alike).

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::SessionView;
use crate::vocab::{
    Activity, EventRecord, Finding, FindingSource, Mode, SessionStatus, TokenUsage,
};

/// A session as lists and pickers show it (SessionInfo in docs/protocol.md).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub id: String,
    pub name: String,
    pub title: String,
    pub mode: Mode,
    pub status: SessionStatus,
    pub activity: Option<Activity>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_by: Option<crate::vocab::StartedBy>,
    /// What its ACP agent says about its session (commands, modes, models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::vocab::AgentFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<crate::vocab::ContextUse>,
}

/// A session's info with the events after a given `seq`, consistent with each other.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSnapshot {
    pub session: SessionInfo,
    pub events: Vec<EventRecord>,
}

/// One session's open findings.
#[derive(Debug, Clone)]
pub struct SessionFindings {
    pub session_id: String,
    pub name: String,
    pub repo: PathBuf,
    pub findings: Vec<(FindingSource, Finding)>,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<SessionStatus>,
    pub mode: Option<Mode>,
    /// Matched, case-insensitively, against the name and the title.
    pub query: Option<String>,
}

impl ListFilter {
    /// The sessions among `views` that pass, oldest first: what `list` answers, in the
    /// daemon and in a front's mirror alike.
    pub fn select(&self, views: impl Iterator<Item = Arc<SessionView>>) -> Vec<SessionInfo> {
        let query = self.query.as_ref().map(|query| query.to_lowercase());
        let mut sessions: Vec<SessionInfo> = views
            .filter(|view| self.status.is_none_or(|status| view.info.status == status))
            .filter(|view| self.mode.is_none_or(|mode| view.info.mode == mode))
            .filter(|view| {
                query.as_ref().is_none_or(|query| {
                    view.info.name.to_lowercase().contains(query)
                        || view.info.title.to_lowercase().contains(query)
                })
            })
            .map(|view| view.info.clone())
            .collect();
        sessions.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        sessions
    }
}

impl SessionFindings {
    /// The open findings of each of `views` that has some.
    pub fn of(views: impl Iterator<Item = Arc<SessionView>>) -> Vec<SessionFindings> {
        views
            .filter(|view| !view.findings.is_empty())
            .map(|view| SessionFindings {
                session_id: view.spec.id.clone(),
                name: view.spec.name.clone(),
                repo: view.spec.repo.clone(),
                findings: view.findings.to_vec(),
            })
            .collect()
    }
}

/// A message sent to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// It waits for the agent's current turn (or, with tether's agent, its current tool
    /// calls) to end; otherwise a turn started for it.
    pub queued: bool,
    /// Its user message's item id (none when it was one of Tether's commands, which ran).
    pub item_id: String,
    /// The command it was (`/review`…), run instead of sent.
    pub command: Option<String>,
}

//! The task methods' params and results (`tether/task/*`; docs/protocol.md, "Tasks").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::params::ApplyResult;
use crate::vocab::{PromoteHow, TaskInfo};

/// One trial to start: a provider and a model (defaults as for a session).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCreateParams {
    pub prompt: String,
    /// 1 to 8 trials.
    pub trials: Vec<TrialParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A workspace folder URI (or path); default: the first workspace folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub toggles: BTreeMap<String, bool>,
    /// The editor settings the trials follow; a front sets it to its editor's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_profile: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskListParams {
    /// Only the tasks of this repository (a front sets its first workspace folder); absent:
    /// every task the host knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskListResult {
    pub tasks: Vec<TaskInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCompareParams {
    pub id: String,
    /// Only these trials (by session id); default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskPromoteParams {
    pub id: String,
    pub session_id: String,
    pub how: PromoteHow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discard_others: bool,
    /// A pull request's title (default the task's title) and description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl From<TaskPromoteParams> for crate::session::PromoteRequest {
    fn from(params: TaskPromoteParams) -> Self {
        crate::session::PromoteRequest {
            id: params.id,
            session_id: params.session_id,
            how: params.how,
            reason: params.reason,
            discard_others: params.discard_others,
            title: params.title,
            body: params.body,
            applied: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskPromoteResult {
    pub task: TaskInfo,
    /// What the edit carried (`apply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<ApplyResult>,
    /// The commit that carried the trial's work (`merge`, `pr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
}

/// `tether/task/event`'s params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEventParams {
    pub task_id: String,
    pub task: TaskInfo,
}

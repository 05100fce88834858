//! Promoting a trial: the one the user chose lands (in their buffers, in the base branch, or
//! in a pull request), the promotion and the user's reason go on the task's record, and the
//! other trials stop (and are deleted when asked). A trial that is still working or that
//! failed cannot be promoted; a merge that conflicts or a `gh` that fails leaves the base as it
//! was and the task unpromoted.

use serde::{Deserialize, Serialize};

use super::super::{GitRequest, SessionError, SessionManager};
use crate::vocab::{
    PromoteHow, Promotion, SessionStatus, TaskInfo, TaskRecord, TrialSpec, now_millis,
};
use crate::workspace::operations::Operation;

/// What `tether/task/promote` asks of the session host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromoteRequest {
    /// The task.
    pub id: String,
    /// The trial's session.
    pub session_id: String,
    pub how: PromoteHow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Delete the other trials (default: they stop and stay until deleted).
    #[serde(default)]
    pub discard_others: bool,
    /// A pull request's title (default the task's title) and description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// For `apply`: the editor has sent the edit, so the promotion is recorded. Without it an
    /// `apply` is only checked (the editor applies next).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub applied: bool,
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promoted {
    pub task: TaskInfo,
    /// The commit on the trial's branch that carried its work (merge, pr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    /// Whether the promotion was recorded (an `apply` that was only checked is not).
    pub recorded: bool,
}

impl SessionManager {
    /// Promotes a trial (see the module's doc).
    pub async fn promote_task(&self, request: PromoteRequest) -> Result<Promoted, SessionError> {
        let (record, trial) = self.promotable(&request)?;
        let (mut commit, mut pull_request) = (None, None);
        match request.how {
            PromoteHow::Apply if !request.applied => {
                return Ok(Promoted {
                    task: self.task_info(&record.id).await?,
                    commit: None,
                    pull_request: None,
                    recorded: false,
                });
            }
            PromoteHow::Apply => {}
            PromoteHow::Merge | PromoteHow::Pr => {
                if self.diff(&trial.session_id).await?.is_empty() {
                    return Err(SessionError::InvalidParams {
                        field: "sessionId",
                        message: format!(
                            "trial {} of task {} changed nothing; there is nothing to {}",
                            trial.index,
                            record.name,
                            request.how.as_str()
                        ),
                    });
                }
                let message = format!(
                    "{}\n\nTrial {} of task {} ({}/{}), promoted with tether.",
                    record.title, trial.index, record.name, trial.provider, trial.model
                );
                commit = self
                    .commit_session_work(&trial.session_id, &message)
                    .await?;
                let operation = match request.how {
                    PromoteHow::Merge => Operation::MergeToBase,
                    _ => Operation::Pr,
                };
                let body = request.body.clone().unwrap_or_else(|| {
                    format!(
                        "{}\n\n---\nTrial {} of tether task `{}` ({}/{}).",
                        record.prompt, trial.index, record.name, trial.provider, trial.model
                    )
                });
                let outcome = self
                    .git(
                        &trial.session_id,
                        GitRequest {
                            title: Some(request.title.as_deref().unwrap_or(&record.title)),
                            body: Some(&body),
                            ..GitRequest::of(operation)
                        },
                    )
                    .await?;
                pull_request = outcome.pull_request;
            }
        }
        let promotion = Promotion {
            session_id: trial.session_id.clone(),
            trial: trial.index,
            how: request.how,
            reason: request
                .reason
                .clone()
                .map(|reason| reason.trim().to_owned())
                .filter(|reason| !reason.is_empty()),
            at: now_millis(),
            commit: commit.clone(),
            pull_request: pull_request.clone(),
        };
        let record = self.update_task(&record.id, |record| record.promoted = Some(promotion))?;
        self.stop_trials(&record, Some(&trial.session_id)).await;
        if request.discard_others {
            for other in record
                .trials
                .iter()
                .filter(|other| other.session_id != trial.session_id)
            {
                match self.delete(&other.session_id).await {
                    Ok(()) | Err(SessionError::UnknownSession(_)) => {}
                    Err(error) => tracing::warn!(
                        "task {}: deleting trial {}: {error}",
                        record.name,
                        other.index
                    ),
                }
            }
        }
        let task = self.task_info(&record.id).await?;
        let _ = self.inner.tasks.events.send(task.clone());
        Ok(Promoted {
            task,
            commit,
            pull_request,
            recorded: true,
        })
    }

    /// The task and the trial, if the trial can be promoted now.
    fn promotable(
        &self,
        request: &PromoteRequest,
    ) -> Result<(std::sync::Arc<TaskRecord>, TrialSpec), SessionError> {
        let entry = self.inner.tasks.entry(&request.id)?;
        if !entry.store.is_writable() {
            return Err(SessionError::ReadOnly(entry.store.read_only_reason()));
        }
        let record = entry.record;
        let trial = record
            .trials
            .iter()
            .find(|trial| trial.session_id == request.session_id)
            .cloned()
            .ok_or_else(|| SessionError::InvalidParams {
                field: "sessionId",
                message: format!(
                    "{:?} is not a trial of task {}",
                    request.session_id, record.name
                ),
            })?;
        if let Some(promoted) = &record.promoted {
            return Err(SessionError::InvalidParams {
                field: "id",
                message: format!(
                    "task {} is promoted already (trial {} by {}); delete it or start a new task",
                    record.name,
                    promoted.trial,
                    promoted.how.as_str()
                ),
            });
        }
        let view = self.view(&trial.session_id)?;
        let status = view.info.status;
        if status.is_active() {
            return Err(SessionError::InvalidState {
                name: view.spec.name.clone(),
                status,
                operation: "promote",
                hint: "; wait for the trial to finish or stop it",
            });
        }
        if status == SessionStatus::Failed {
            return Err(SessionError::InvalidState {
                name: view.spec.name.clone(),
                status,
                operation: "promote",
                hint: "; resume it, or promote another trial",
            });
        }
        Ok((record, trial))
    }
}

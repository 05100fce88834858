//! The task methods (`tether/task/*`): create, list, get, compare, stop, delete. Promote is
//! the front's (an `apply` needs the editor); it reaches the host through `daemon/promote`.

use super::sessions::root_of;
use super::{HostError, HostMethod};
use crate::api::{self, methods};
use crate::session::{CreateTask, SessionManager, TaskComparison, TrialRequest};
use crate::vocab::TaskInfo;

impl HostMethod for methods::TaskCreate {
    async fn run(
        manager: SessionManager,
        params: api::TaskCreateParams,
    ) -> Result<TaskInfo, HostError> {
        let root = root_of(params.root)?;
        Ok(manager
            .create_task(CreateTask {
                prompt: params.prompt,
                trials: params
                    .trials
                    .into_iter()
                    .map(|trial| TrialRequest {
                        provider: trial.provider,
                        model: trial.model,
                    })
                    .collect(),
                name: params.name,
                root,
                base_branch: params.base_branch,
                toggles: params.toggles,
                settings_profile: params.settings_profile,
            })
            .await?)
    }
}

impl HostMethod for methods::TaskList {
    async fn run(
        manager: SessionManager,
        params: api::TaskListParams,
    ) -> Result<api::TaskListResult, HostError> {
        let root = params
            .root
            .filter(|root| !root.is_empty())
            .map(std::path::PathBuf::from);
        Ok(api::TaskListResult {
            tasks: manager.tasks(root.as_deref()).await?,
        })
    }
}

impl HostMethod for methods::TaskGet {
    async fn run(manager: SessionManager, params: api::IdParams) -> Result<TaskInfo, HostError> {
        Ok(manager.task_info(&params.id).await?)
    }
}

impl HostMethod for methods::TaskCompare {
    async fn run(
        manager: SessionManager,
        params: api::TaskCompareParams,
    ) -> Result<TaskComparison, HostError> {
        Ok(manager
            .compare_task(&params.id, params.session_ids.as_deref())
            .await?)
    }
}

impl HostMethod for methods::TaskStop {
    async fn run(manager: SessionManager, params: api::IdParams) -> Result<TaskInfo, HostError> {
        Ok(manager.stop_task(&params.id).await?)
    }
}

impl HostMethod for methods::TaskDelete {
    async fn run(
        manager: SessionManager,
        params: api::IdParams,
    ) -> Result<api::DeleteResult, HostError> {
        manager.delete_task(&params.id).await?;
        Ok(api::DeleteResult { deleted: true })
    }
}

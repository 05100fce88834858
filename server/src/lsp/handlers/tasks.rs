//! The task requests the front handles itself: create and list (they need the editor's
//! folders and profile), promote (an `apply` lands in the editor's buffers) and open (the
//! task document is shown in the editor that asked). The rest go to the host as they are.

use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::Uri;

use super::super::dispatch::Handler;
use super::super::transcripts::show_document;
use super::super::{Backend, rpc_error};
use super::session::{host_error, on_host, root_for_host};
use crate::api::{self, methods};
use crate::vocab::{PromoteHow, TaskInfo};

impl Handler for methods::TaskCreate {
    async fn handle(
        backend: Backend,
        mut params: api::TaskCreateParams,
    ) -> jsonrpc::Result<TaskInfo> {
        params.root = root_for_host(&backend, params.root)?;
        if let Some(root) = &params.root {
            backend.sessions.follow(root).await;
        }
        if params.settings_profile.is_none() {
            params.settings_profile = backend.sessions.settings_profile();
        }
        let task = on_host::<Self>(&backend, params).await?;
        backend.tasks.remember(&task);
        Ok(task)
    }
}

impl Handler for methods::TaskList {
    async fn handle(
        backend: Backend,
        mut params: api::TaskListParams,
    ) -> jsonrpc::Result<api::TaskListResult> {
        if params.root.is_none() {
            params.root = backend
                .roots()
                .into_iter()
                .next()
                .and_then(|root| root.to_str().map(str::to_owned));
        } else {
            params.root = root_for_host(&backend, params.root)?;
        }
        let listed = on_host::<Self>(&backend, params).await?;
        for task in &listed.tasks {
            backend.tasks.remember(task);
        }
        Ok(listed)
    }
}

impl Handler for methods::TaskGet {
    async fn handle(backend: Backend, params: api::IdParams) -> jsonrpc::Result<TaskInfo> {
        let task = on_host::<Self>(&backend, params).await?;
        backend.tasks.remember(&task);
        Ok(task)
    }
}

impl Handler for methods::TaskDelete {
    async fn handle(backend: Backend, params: api::IdParams) -> jsonrpc::Result<api::DeleteResult> {
        let id = params.id.clone();
        let mut trials = backend.tasks.trial_sessions(&id);
        if trials.is_empty()
            && let Ok(task) =
                on_host::<methods::TaskGet>(&backend, api::IdParams { id: id.clone() }).await
        {
            trials = task
                .trials
                .into_iter()
                .map(|trial| trial.session_id)
                .collect();
        }
        let deleted = on_host::<Self>(&backend, params).await?;
        backend.sessions.deleted(&trials).await;
        backend.tasks.forget(&id);
        backend.diagnostics_refresh.notify_one();
        backend.transcripts(super::super::transcripts::Request::Reconcile);
        Ok(deleted)
    }
}

impl Handler for methods::TaskPromote {
    async fn handle(
        backend: Backend,
        params: api::TaskPromoteParams,
    ) -> jsonrpc::Result<api::TaskPromoteResult> {
        let mut request = crate::session::PromoteRequest::from(params);
        let mut applied = None;
        if request.how == PromoteHow::Apply {
            // Checked first, so nothing lands for a trial that cannot be promoted.
            backend
                .sessions
                .promote(request.clone())
                .await
                .map_err(host_error)?;
            let outcome = super::apply::apply(
                &backend,
                api::ApplyParams {
                    id: request.session_id.clone(),
                    files: None,
                    hunks: None,
                    reject: None,
                },
            )
            .await?;
            if !outcome.sent {
                return Err(rpc_error(
                    api::error_code::INVALID_STATE,
                    format!("nothing was promoted: {}", outcome.summary),
                ));
            }
            request.applied = true;
            applied = Some(outcome);
        }
        let promoted = backend
            .sessions
            .promote(request)
            .await
            .map_err(host_error)?;
        let discarded: Vec<String> = promoted
            .task
            .trials
            .iter()
            .filter(|trial| trial.gone)
            .map(|trial| trial.session_id.clone())
            .collect();
        backend.sessions.deleted(&discarded).await;
        backend.tasks.remember(&promoted.task);
        Ok(api::TaskPromoteResult {
            task: promoted.task,
            apply: applied,
            commit: promoted.commit,
            pull_request: promoted.pull_request,
        })
    }
}

impl Handler for methods::TaskOpen {
    async fn handle(backend: Backend, params: api::IdParams) -> jsonrpc::Result<api::UriResult> {
        let path =
            super::super::tasks::write_document(&backend.sessions, &backend.tasks, &params.id)
                .await
                .map_err(host_error)?;
        show_document(&backend.client, &path);
        Ok(api::UriResult {
            uri: Uri::from_file_path(&path)
                .map_or_else(|| path.display().to_string(), |uri| uri.to_string()),
        })
    }
}

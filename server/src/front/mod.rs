//! A front's way to the sessions, wherever they live: in this process (`tether lsp
//! --no-daemon`, `TETHER_DAEMON=off`) or in the per-user daemon (the default), through a
//! [`Mirror`](mirror::Mirror) of its sessions. The LSP layer asks [`Sessions`] and never knows
//! which: reads answer from memory either way, and host methods run in the manager or over
//! the socket.

mod link;
mod mirror;
mod remote;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::api::{self, methods};
use crate::config::{ConfigWarning, EditorLayer};
use crate::host::{HostError, HostMethod};
use crate::session::{
    ListFilter, SessionError, SessionFindings, SessionInfo, SessionManager, SessionView,
    Subscription,
};
use crate::vocab::{EventRecord, Finding, FindingSource, Item};
pub use remote::Remote;

#[derive(Clone)]
pub enum Sessions {
    /// The sessions run in this process.
    Local(SessionManager),
    /// The sessions run in the daemon.
    Remote(Remote),
}

impl Sessions {
    pub fn list(&self, filter: &ListFilter) -> Vec<SessionInfo> {
        match self {
            Sessions::Local(manager) => manager.list(filter),
            Sessions::Remote(remote) => filter.select(remote.mirror().views()),
        }
    }

    /// A session as of its last event this front heard of.
    pub fn view(&self, id: &str) -> Result<Arc<SessionView>, SessionError> {
        match self {
            Sessions::Local(manager) => manager.view(id),
            Sessions::Remote(remote) => remote
                .mirror()
                .view(id)
                .ok_or_else(|| SessionError::UnknownSession(id.to_owned())),
        }
    }

    pub fn info(&self, id: &str) -> Result<SessionInfo, SessionError> {
        Ok(self.view(id)?.info.clone())
    }

    /// The questions, plans and permissions a session waits on.
    pub fn pending_items(&self, id: &str) -> Result<Vec<Item>, SessionError> {
        Ok(self.view(id)?.open_questions.to_vec())
    }

    pub fn session_findings(
        &self,
        id: &str,
    ) -> Result<Vec<(FindingSource, Finding)>, SessionError> {
        Ok(self.view(id)?.findings.to_vec())
    }

    pub fn open_findings(&self) -> Vec<SessionFindings> {
        match self {
            Sessions::Local(manager) => manager.open_findings(),
            Sessions::Remote(remote) => SessionFindings::of(remote.mirror().views()),
        }
    }

    /// Every session's events from now on, in order and without gaps.
    pub fn subscribe(&self) -> Subscription {
        match self {
            Sessions::Local(manager) => manager.subscribe(),
            Sessions::Remote(remote) => {
                let receiver = remote.mirror().subscribe();
                Subscription::new(Arc::new(remote::RemoteEvents(remote.clone())), receiver)
            }
        }
    }

    /// Notified when a session goes without an event (deleted elsewhere).
    pub fn removed(&self) -> Option<Arc<tokio::sync::Notify>> {
        match self {
            Sessions::Local(_) => None,
            Sessions::Remote(remote) => Some(remote.mirror().removed.clone()),
        }
    }

    /// Tasks each time one changed (the daemon's, of the repositories this editor follows).
    pub fn task_events(&self) -> tokio::sync::broadcast::Receiver<crate::vocab::TaskInfo> {
        match self {
            Sessions::Local(manager) => manager.subscribe_tasks(),
            Sessions::Remote(remote) => remote.mirror().tasks.subscribe(),
        }
    }

    /// Promotes a task's trial where the sessions are (or, for `apply`, checks it can be).
    pub async fn promote(
        &self,
        request: crate::session::PromoteRequest,
    ) -> Result<crate::session::Promoted, HostError> {
        match self {
            Sessions::Local(manager) => {
                manager.promote_task(request).await.map_err(HostError::from)
            }
            Sessions::Remote(remote) => {
                let params = serde_json::to_value(&request).map_err(HostError::internal)?;
                let answer = remote
                    .call_value(crate::daemon::wire::PROMOTE, params)
                    .await?;
                serde_json::from_value(answer).map_err(HostError::internal)
            }
        }
    }

    /// Waits until this front no longer shows sessions the host deleted (2 s at most), so
    /// that what the editor reads next agrees with the answer that deleted them.
    pub async fn deleted(&self, ids: &[String]) {
        if let Sessions::Remote(remote) = self {
            remote
                .mirror()
                .dropped(ids, std::time::Duration::from_secs(2))
                .await;
        }
    }

    /// Runs a host method where the sessions are.
    pub async fn call<M: HostMethod>(&self, params: M::Params) -> Result<M::Result, HostError> {
        match self {
            Sessions::Local(manager) => M::run(manager.clone(), params).await,
            Sessions::Remote(remote) => remote.call::<M>(params).await,
        }
    }

    /// A session and every event it logged.
    pub async fn all_events(&self, id: &str) -> Result<(SessionInfo, Vec<EventRecord>), HostError> {
        let result = self
            .call::<methods::Get>(api::GetParams {
                id: id.to_owned(),
                since: 0,
            })
            .await?;
        Ok((result.session.into(), result.events))
    }

    /// A session's diff, with both sides of each file.
    pub async fn diff(&self, id: &str) -> Result<Vec<crate::workspace::FileDiff>, HostError> {
        match self {
            Sessions::Local(manager) => manager.diff(id).await.map_err(HostError::from),
            Sessions::Remote(remote) => remote.diff(id).await,
        }
    }

    /// This editor follows the sessions of the repository holding `root` from now on (before
    /// it starts one there: the new session's first event is then news to it). In process
    /// the editor sees every session anyway.
    pub async fn follow(&self, root: &str) {
        if let Sessions::Remote(remote) = self
            && let Err(error) = remote.open_repository(PathBuf::from(root)).await
        {
            // Not a repository, say: starting the session there says why.
            tracing::debug!("{root}: {error}");
        }
    }

    /// Records what the user did with a session's work in the editor (an apply).
    pub async fn note(&self, id: &str, text: String) -> Result<(), HostError> {
        match self {
            Sessions::Local(manager) => manager.note(id, text).await.map_err(HostError::from),
            Sessions::Remote(remote) => remote
                .call_value(
                    crate::daemon::wire::NOTE,
                    serde_json::json!({ "id": id, "text": text }),
                )
                .await
                .map(drop),
        }
    }

    /// Loads the sessions of the repository holding `root`.
    pub async fn open_repository(&self, root: PathBuf) -> Result<(), HostError> {
        match self {
            Sessions::Local(manager) => {
                let manager = manager.clone();
                tokio::task::spawn_blocking(move || manager.open_repository(&root).map(drop))
                    .await
                    .map_err(HostError::internal)?
                    .map_err(HostError::from)
            }
            Sessions::Remote(remote) => remote.open_repository(root).await,
        }
    }

    /// The repository holding `root`, and what its settings file tried that was ignored.
    /// Reads files: not for the LSP thread.
    pub fn config_warnings(
        &self,
        root: &Path,
    ) -> Result<(PathBuf, Vec<ConfigWarning>), SessionError> {
        match self {
            Sessions::Local(manager) => manager.config_warnings(root),
            Sessions::Remote(remote) => remote.config_warnings(root),
        }
    }

    /// Replaces one of the editor's layers of settings.
    pub fn set_editor_layer(&self, layer: EditorLayer, value: Value) -> Result<(), SessionError> {
        match self {
            Sessions::Local(manager) => manager.set_editor_layer(layer, value),
            Sessions::Remote(remote) => remote.set_editor_layer(layer, value),
        }
    }

    /// The profile the sessions this editor starts follow (`None` in process: the manager's
    /// own editor layers are this editor's).
    pub fn settings_profile(&self) -> Option<String> {
        match self {
            Sessions::Local(_) => None,
            Sessions::Remote(remote) => Some(remote.profile().to_owned()),
        }
    }

    /// The editor is going. In process its sessions stop (resumably); in the daemon they go
    /// on.
    pub async fn shutdown(&self) {
        match self {
            Sessions::Local(manager) => manager.shutdown().await,
            Sessions::Remote(_) => {}
        }
    }
}

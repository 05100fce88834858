//! The daemon as one front sees it: requests (waiting for the link while the daemon is
//! (re)started), the editor's settings and keys, the mirror's event source. The link itself,
//! one connection at a time watched by a supervisor task, is `link.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use super::mirror::Mirror;
use crate::api::{self, Method, methods};
use crate::config::{ConfigCache, EditorLayer, EditorLayers};
use crate::daemon::client::{CallError, DaemonClient};
use crate::daemon::paths::DaemonPaths;
use crate::daemon::wire;
use crate::host::HostError;
use crate::session::{EventSource, SessionError};
use crate::vocab::EventRecord;

/// How long a request waits for a daemon that is being (re)started.
const LINK_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the connection stands.
#[derive(Clone)]
pub(super) enum Link {
    /// Connecting or attaching: requests wait (up to [`LINK_TIMEOUT`]).
    Connecting,
    Up(Arc<DaemonClient>),
    /// The last attempt failed, for this reason; the supervisor tries again meanwhile, and
    /// requests fail at once with the reason.
    Down(String),
}

/// The daemon, as one front sees it.
#[derive(Clone)]
pub struct Remote {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) paths: DaemonPaths,
    /// The connection, or why there is none.
    pub(super) link: watch::Sender<Link>,
    pub(super) mirror: Arc<Mirror>,
    /// Asks the supervisor to read the daemon's sessions again.
    pub(super) refresh: mpsc::UnboundedSender<oneshot::Sender<()>>,
    /// Repositories this editor opened: a new daemon loads them again.
    pub(super) roots: std::sync::Mutex<Vec<PathBuf>>,
    /// The repositories (as the daemon names them) whose sessions this editor follows.
    pub(super) scope: super::mirror::Scope,
    /// This editor's settings, checked here as the in-process server checks them.
    pub(super) settings: ConfigCache,
    /// The profile the daemon keeps them under: random per front.
    pub(super) profile: String,
    /// Settings changes made and settings changes the daemon acknowledged: a request waits
    /// for its editor's latest settings to be in place.
    pub(super) settings_made: watch::Sender<u64>,
    pub(super) settings_acked: watch::Sender<u64>,
    /// What the user should hear (a daemon of another version, a daemon restarted).
    pub(super) notices: mpsc::UnboundedSender<String>,
    pub(super) notices_out: std::sync::Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    pub(super) client_name: std::sync::Mutex<String>,
    pub(super) warned_version: AtomicBool,
    pub(super) restart_tried: AtomicBool,
}

impl Remote {
    /// A front with no link yet, and the receiver of its refresh requests, for the
    /// supervisor (`link.rs`) to start with.
    pub(super) fn unlinked(
        paths: DaemonPaths,
    ) -> (Remote, mpsc::UnboundedReceiver<oneshot::Sender<()>>) {
        let (refresh, refreshes) = mpsc::unbounded_channel();
        let (notices, notices_out) = mpsc::unbounded_channel();
        let remote = Remote {
            inner: Arc::new(Inner {
                paths,
                link: watch::Sender::new(Link::Connecting),
                mirror: Mirror::new(),
                refresh,
                roots: std::sync::Mutex::default(),
                scope: super::mirror::Scope::default(),
                settings: ConfigCache::default(),
                profile: crate::vocab::new_item_id().replace(['-', '_'], ""),
                settings_made: watch::Sender::new(0),
                settings_acked: watch::Sender::new(0),
                notices,
                notices_out: std::sync::Mutex::new(Some(notices_out)),
                client_name: std::sync::Mutex::new("editor".to_owned()),
                warned_version: AtomicBool::new(false),
                restart_tried: AtomicBool::new(false),
            }),
        };
        (remote, refreshes)
    }

    pub fn mirror(&self) -> &Arc<Mirror> {
        &self.inner.mirror
    }

    /// The profile the sessions this editor starts follow.
    pub fn profile(&self) -> &str {
        &self.inner.profile
    }

    /// Messages for the user, for whoever shows them (once).
    pub fn take_notices(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        lock(&self.inner.notices_out).take()
    }

    /// Who the daemon is told is attaching.
    pub fn set_client_name(&self, name: &str) {
        *lock(&self.inner.client_name) = format!("editor {name}");
    }

    /// Replaces one of the editor's layers; the sessions this editor started follow from
    /// their next step. Settings that do not parse are refused here, as in process.
    pub fn set_editor_layer(&self, layer: EditorLayer, value: Value) -> Result<(), SessionError> {
        self.inner.settings.set_editor_layer(layer, value)?;
        let made = *self.inner.settings_made.borrow() + 1;
        self.inner.settings_made.send_replace(made);
        let remote = self.clone();
        tokio::spawn(async move {
            if let Ok(client) = remote.linked().await {
                remote.send_settings(&client).await;
            }
        });
        Ok(())
    }

    /// The repository holding `root`, and what its `.tether/config.toml` tried that was
    /// ignored, as this editor's settings see it.
    pub fn config_warnings(
        &self,
        root: &std::path::Path,
    ) -> Result<(PathBuf, Vec<crate::config::ConfigWarning>), SessionError> {
        let repository = crate::workspace::discover(root)?;
        let resolved = self.inner.settings.resolve(Some(&repository.root))?;
        Ok((repository.root, resolved.warnings.clone()))
    }

    /// Loads the sessions of the repository holding `root` in the daemon, and mirrors them:
    /// this editor follows that repository's sessions from now on.
    pub async fn open_repository(&self, root: PathBuf) -> Result<(), HostError> {
        let client = self.linked().await?;
        let opened = client
            .call_value(wire::OPEN, serde_json::json!({ "root": root }))
            .await
            .map_err(host_error)?;
        lock(&self.inner.roots).push(root);
        let Some(repo) = opened
            .get("repo")
            .and_then(Value::as_str)
            .map(PathBuf::from)
        else {
            return Err(HostError::internal(
                "the daemon did not say which repository it opened",
            ));
        };
        let new = self
            .inner
            .scope
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(repo);
        if new {
            let (done, refreshed) = oneshot::channel();
            let _ = self.inner.refresh.send(done);
            let _ = refreshed.await;
        }
        Ok(())
    }

    /// Runs a session method in the daemon, once this editor's settings are in place there.
    pub async fn call<M: Method>(&self, params: M::Params) -> Result<M::Result, HostError> {
        let params = serde_json::to_value(params).map_err(HostError::internal)?;
        let value = self.call_value(M::NAME, params).await?;
        serde_json::from_value(value).map_err(|error| {
            HostError::internal(format!("the daemon's reply does not fit: {error}"))
        })
    }

    pub async fn call_value(&self, method: &str, params: Value) -> Result<Value, HostError> {
        let client = self.linked().await?;
        let made = *self.inner.settings_made.borrow();
        let mut acked = self.inner.settings_acked.subscribe();
        let _ = tokio::time::timeout(LINK_TIMEOUT, acked.wait_for(|acked| *acked >= made)).await;
        let result = client
            .call_value(method, params)
            .await
            .map_err(host_error)?;
        // A session the answer shows as of some `seq`, in a repository this editor follows:
        // the mirror gets there first, so the editor's next request agrees with the answer.
        let info = result.get("session").unwrap_or(&result);
        if let (Some(id), Some(seq), Some(repo)) = (
            info.get("id").and_then(Value::as_str),
            info.get("lastSeq").and_then(Value::as_u64),
            info.get("repo").and_then(Value::as_str),
        ) && self
            .inner
            .scope
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(std::path::Path::new(repo))
        {
            self.inner
                .mirror
                .caught_up(id, seq, Duration::from_secs(2))
                .await;
        }
        Ok(result)
    }

    /// A session's diff with both sides of each file, for apply.
    pub async fn diff(&self, id: &str) -> Result<Vec<crate::workspace::FileDiff>, HostError> {
        let value = self
            .call_value(wire::DIFF, serde_json::json!({ "id": id }))
            .await?;
        let result: wire::DiffResult = serde_json::from_value(value).map_err(|error| {
            HostError::internal(format!("the daemon's diff does not fit: {error}"))
        })?;
        Ok(result.files.into_iter().map(Into::into).collect())
    }

    /// The connection, waiting for one while the daemon is (re)started.
    async fn linked(&self) -> Result<Arc<DaemonClient>, HostError> {
        let mut link = self.inner.link.subscribe();
        let settled = link.wait_for(|link| !matches!(link, Link::Connecting));
        match tokio::time::timeout(LINK_TIMEOUT, settled).await {
            Ok(Ok(link)) => match &*link {
                Link::Up(client) => Ok(client.clone()),
                Link::Down(reason) => Err(HostError::internal(format!(
                    "cannot reach the tether daemon: {reason}"
                ))),
                Link::Connecting => Err(no_daemon()),
            },
            _ => Err(HostError::internal(format!(
                "the tether daemon is not answering; its log is {}",
                self.inner.paths.log.display()
            ))),
        }
    }

    pub(super) async fn send_settings(&self, client: &DaemonClient) {
        let made = *self.inner.settings_made.borrow();
        let sources = self.inner.settings.sources();
        // The keys this editor's environment holds for the variables its settings name.
        let keys = match self.inner.settings.resolve(None) {
            Ok(resolved) => resolved
                .config
                .secret_variables()
                .into_iter()
                .filter_map(|name| {
                    let value = std::env::var(&name)
                        .ok()
                        .filter(|value| !value.is_empty())?;
                    Some((name, value))
                })
                .collect(),
            Err(_) => Default::default(),
        };
        let params = wire::ProfileParams {
            profile: self.inner.profile.clone(),
            layers: EditorLayers {
                initialization: sources.initialization,
                settings: sources.settings,
            },
            keys,
        };
        if let Err(error) = client.call::<_, Value>(wire::SETTINGS, &params).await {
            tracing::warn!("the daemon refused the editor's settings: {error}");
        }
        self.inner.settings_acked.send_if_modified(|acked| {
            let newer = made > *acked;
            if newer {
                *acked = made;
            }
            newer
        });
    }
}

fn no_daemon() -> HostError {
    HostError::internal("the connection to the tether daemon was lost")
}

fn host_error(error: CallError) -> HostError {
    match error {
        CallError::Remote(error) => HostError {
            code: error.code,
            message: error.message,
        },
        CallError::Disconnected => HostError::internal(
            "the tether daemon stopped while answering; it is being restarted, try again",
        ),
        CallError::Decode(message) => HostError::internal(message),
    }
}

pub(super) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The daemon's sessions as a [`crate::session::Subscription`] follows them: the mirror's
/// channel, and the daemon's logs for what a subscriber missed.
pub(super) struct RemoteEvents(pub Remote);

impl EventSource for RemoteEvents {
    fn positions(&self) -> Vec<(Arc<str>, u64, u64)> {
        self.0.inner.mirror.positions()
    }

    fn taken_up_at(&self, id: &str) -> Option<u64> {
        self.0.inner.mirror.taken_up_at(id)
    }

    fn read_since(
        &self,
        id: String,
        since: u64,
    ) -> BoxFuture<'static, Result<Vec<EventRecord>, String>> {
        let remote = self.0.clone();
        Box::pin(async move {
            remote
                .call::<methods::Get>(api::GetParams { id, since })
                .await
                .map(|result| result.events)
                .map_err(|error| error.message)
        })
    }
}

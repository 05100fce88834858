//! The front's link to the daemon: one connection at a time, watched by a supervisor task.
//! The supervisor attaches (sends the editor's settings, loads the editor's repositories,
//! subscribes, reads every session's state into the [`Mirror`]), then feeds the mirror the
//! daemon's events. When the connection ends (the daemon was stopped, or killed), it starts a
//! new daemon, which recovers every session from its log, attaches again and reads what the
//! editor missed, event by event: the editor keeps working and sees no gap.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use super::mirror::{Applied, Catch, Folded, Mirror};
use crate::api::{self, Method, methods};
use crate::config::{ConfigCache, EditorLayer, EditorLayers};
use crate::daemon::client::{CallError, DaemonClient};
use crate::daemon::paths::DaemonPaths;
use crate::daemon::server::VERSION;
use crate::daemon::wire;
use crate::host::HostError;
use crate::session::{EventSource, SessionError};
use crate::vocab::EventRecord;

/// How long a request waits for a daemon that is being (re)started.
const LINK_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the connection stands.
#[derive(Clone)]
enum Link {
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
    inner: Arc<Inner>,
}

struct Inner {
    paths: DaemonPaths,
    /// The connection, or why there is none.
    link: watch::Sender<Link>,
    pub(super) mirror: Arc<Mirror>,
    /// Asks the supervisor to read the daemon's sessions again.
    refresh: mpsc::UnboundedSender<oneshot::Sender<()>>,
    /// Repositories this editor opened: a new daemon loads them again.
    roots: std::sync::Mutex<Vec<PathBuf>>,
    /// The repositories (as the daemon names them) whose sessions this editor follows.
    scope: super::mirror::Scope,
    /// This editor's settings, checked here as the in-process server checks them.
    settings: ConfigCache,
    /// The profile the daemon keeps them under: random per front.
    profile: String,
    /// Settings changes made and settings changes the daemon acknowledged: a request waits
    /// for its editor's latest settings to be in place.
    settings_made: watch::Sender<u64>,
    settings_acked: watch::Sender<u64>,
    /// What the user should hear (a daemon of another version, a daemon restarted).
    notices: mpsc::UnboundedSender<String>,
    notices_out: std::sync::Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    client_name: std::sync::Mutex<String>,
    warned_version: AtomicBool,
    restart_tried: AtomicBool,
}

impl Remote {
    /// Starts the link: the first connection is made (starting the daemon when none runs)
    /// in the background, so a front answers `initialize` at once.
    pub fn start(paths: DaemonPaths, runtime: &tokio::runtime::Handle) -> Remote {
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
        runtime.spawn(supervise(remote.clone(), refreshes));
        remote
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

    async fn send_settings(&self, client: &DaemonClient) {
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

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The connection's life: attach, follow, and start over when it ends.
async fn supervise(remote: Remote, mut refreshes: mpsc::UnboundedReceiver<oneshot::Sender<()>>) {
    let mut folded = Folded::new(remote.inner.mirror.clone(), remote.inner.scope.clone());
    let mut pause = Duration::from_millis(50);
    let mut attached_before = false;
    let mut told = false;
    loop {
        let (sender, mut notifications) = mpsc::unbounded_channel();
        let name = lock(&remote.inner.client_name).clone();
        let client = match DaemonClient::connect_or_start(&remote.inner.paths, &name, sender).await
        {
            Ok(client) => Arc::new(client),
            Err(error) => {
                tracing::warn!("cannot reach the tether daemon: {error}");
                if !told {
                    let _ = remote
                        .inner
                        .notices
                        .send(format!("tether: cannot reach the session daemon: {error}"));
                    told = true;
                }
                remote
                    .inner
                    .link
                    .send_replace(Link::Down(error.to_string()));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        pause = Duration::from_millis(50);
        if client.daemon_version != VERSION {
            // Another version: restarted with this one when nothing works (once: two editors
            // of different versions must not take turns), else used, with a word to the user.
            if !remote.inner.restart_tried.swap(true, Ordering::SeqCst) && idle(&client).await {
                let _ = client.call_value(wire::STOP, serde_json::json!({})).await;
                let _ = remote.inner.notices.send(format!(
                    "tether: the session daemon was version {}; nothing was working, so it was restarted with this editor's version {VERSION}",
                    client.daemon_version
                ));
                continue;
            }
            if !remote.inner.warned_version.swap(true, Ordering::SeqCst) {
                let _ = remote.inner.notices.send(format!(
                    "tether: this editor's tether is {VERSION} but the running daemon is {}, which has sessions working; run `tether daemon stop` when they are done to start the new one",
                    client.daemon_version
                ));
            }
        }
        let attached = attach(&remote, &client, &mut folded).await;
        folded.flush();
        let positions = match attached {
            Ok(positions) => positions,
            Err(error) => {
                tracing::warn!("attaching to the tether daemon failed: {error}");
                remote.inner.link.send_replace(Link::Down(error));
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if attached_before {
            tracing::info!(
                "attached to a new tether daemon (pid {})",
                client.daemon_pid
            );
        }
        attached_before = true;
        told = false;
        remote.inner.link.send_replace(Link::Up(client.clone()));
        loop {
            tokio::select! {
                notification = notifications.recv() => {
                    let Some((method, params)) = notification else { break };
                    follow(&client, &mut folded, &method, params).await;
                    // What came with it is folded in before any of it is announced.
                    for _ in 0..256 {
                        let Ok((method, params)) = notifications.try_recv() else { break };
                        follow(&client, &mut folded, &method, params).await;
                    }
                    folded.flush();
                }
                Some(done) = refreshes.recv() => {
                    folded.scope_changed();
                    if let Err(error) = refresh(&client, &mut folded, &positions, false).await {
                        tracing::warn!("reading the daemon's sessions failed: {error}");
                    }
                    folded.flush();
                    let _ = done.send(());
                }
            }
        }
        remote.inner.link.send_replace(Link::Connecting);
        tracing::warn!("the connection to the tether daemon ended; starting a new one");
    }
}

/// Whether the daemon has no session working (it can be restarted without losing a turn).
async fn idle(client: &DaemonClient) -> bool {
    match client
        .call::<_, crate::daemon::server::DaemonStatus>(wire::STATUS, &serde_json::json!({}))
        .await
    {
        Ok(status) => status.working == 0,
        Err(error) => {
            tracing::debug!("the daemon's status: {error}");
            false
        }
    }
}

/// Makes a new connection this editor's: its settings, its repositories, its events, and
/// the sessions as they are now (with what was missed while away announced in order).
/// Subscribed before the states are read: every event after the positions the subscription
/// starts from comes as a notification, and what a state holds beyond them is announced
/// from the log, so nothing falls between the two. Returns the positions.
async fn attach(
    remote: &Remote,
    client: &DaemonClient,
    folded: &mut Folded,
) -> Result<Positions, String> {
    remote.send_settings(client).await;
    let mut repositories = lock(&remote.inner.roots).clone();
    repositories.extend(folded.repositories());
    for root in repositories {
        if let Err(error) = client
            .call_value(wire::OPEN, serde_json::json!({ "root": root }))
            .await
        {
            tracing::info!("{}: no sessions here: {error}", root.display());
        }
    }
    folded.scope_changed();
    let subscribed: wire::Subscribed = client
        .call(wire::SUBSCRIBE, &serde_json::json!({}))
        .await
        .map_err(|error| error.to_string())?;
    refresh(client, folded, &subscribed.positions, true).await?;
    Ok(subscribed.positions)
}

/// Where a connection's subscription started, per session.
type Positions = std::collections::BTreeMap<String, u64>;

/// Reads every session's state; sessions held already get the events they are behind, new
/// ones announce what they did since this front's subscription (or the daemon) took them up;
/// with `complete`, sessions the daemon no longer holds go.
async fn refresh(
    client: &DaemonClient,
    folded: &mut Folded,
    positions: &Positions,
    complete: bool,
) -> Result<(), String> {
    let states: wire::StatesResult = client
        .call(wire::STATES, &wire::StatesParams::default())
        .await
        .map_err(|error| error.to_string())?;
    let present: HashSet<String> = states
        .sessions
        .iter()
        .map(|session| session.state.spec.id.clone())
        .collect();
    for session in states.sessions {
        let news_from = positions
            .get(&session.state.spec.id)
            .copied()
            .unwrap_or(session.loaded_seq);
        take(client, folded, session, news_from).await;
    }
    if complete {
        folded.keep_only(&present);
    }
    Ok(())
}

/// Takes one session's state from the daemon and does what is left (see [`Catch`]).
async fn take(
    client: &DaemonClient,
    folded: &mut Folded,
    session: wire::SessionStateOf,
    news_from: u64,
) {
    let id = session.state.spec.id.clone();
    match folded.install(session.state.clone(), session.read_only, news_from) {
        Catch::Nothing => {}
        Catch::Fill(since) => {
            fill(client, folded, &id, since).await;
            // What could not be read event by event, taken whole.
            folded.replace(session.state, session.read_only);
        }
        Catch::Announce(after) => {
            if let Some(records) = read_since(client, &id, after).await {
                folded.announce_held(&id, records, after);
            }
        }
    }
}

/// A session's logged events after `since`, from the daemon.
async fn read_since(client: &DaemonClient, id: &str, since: u64) -> Option<Vec<EventRecord>> {
    let params = api::GetParams {
        id: id.to_owned(),
        since,
    };
    match client
        .call::<_, api::GetResult>(<methods::Get as Method>::NAME, &params)
        .await
    {
        Ok(result) => Some(result.events),
        Err(error) => {
            tracing::debug!("session {id}: {error}");
            None
        }
    }
}

/// Applies a session's events after `since`, read from the daemon.
async fn fill(client: &DaemonClient, folded: &mut Folded, id: &str, since: u64) {
    for record in read_since(client, id, since).await.unwrap_or_default() {
        folded.apply(id, record);
    }
}

/// One notification from the daemon.
async fn follow(client: &DaemonClient, folded: &mut Folded, method: &str, params: Value) {
    match method {
        api::SESSION_EVENT => {
            let Ok(event) = serde_json::from_value::<api::SessionEventParams>(params) else {
                tracing::warn!("the daemon sent an event that does not fit");
                return;
            };
            let id = event.session_id.clone();
            let record = EventRecord {
                seq: event.seq,
                at: event.at,
                event: event.event,
            };
            let applied = folded.apply(&id, record.clone());
            tracing::debug!("session {id} event {}: {applied:?}", record.seq);
            match applied {
                Applied::Folded | Applied::Duplicate => {}
                Applied::Gap(last) => {
                    fill(client, folded, &id, last).await;
                    folded.apply(&id, record);
                }
                Applied::Unknown => {
                    // A session the daemon took up after this front attached (another
                    // editor opened its repository): taken as it is, announced from here.
                    let params = wire::StatesParams {
                        ids: Some(vec![id.clone()]),
                    };
                    if let Ok(states) = client
                        .call::<_, wire::StatesResult>(wire::STATES, &params)
                        .await
                    {
                        for session in states.sessions {
                            take(client, folded, session, record.seq.saturating_sub(1)).await;
                        }
                    }
                }
            }
        }
        wire::REMOVED => {
            if let Some(id) = params.get("sessionId").and_then(Value::as_str) {
                folded.remove(id);
            }
        }
        _ => {}
    }
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

//! The link's life, one supervisor task per front. It attaches (sends the editor's
//! settings, loads the editor's repositories, subscribes, reads every session's state into
//! the [`Mirror`](super::mirror::Mirror)), then feeds the mirror the daemon's events. When the
//! connection ends (the daemon was stopped, or killed), it starts a new daemon, which
//! recovers every session from its log, attaches again and reads what the editor missed,
//! event by event: the editor keeps working and sees no gap.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::mirror::{Applied, Catch, Folded};
use super::remote::{Link, Remote, lock};
use crate::api::{self, Method, methods};
use crate::daemon::client::DaemonClient;
use crate::daemon::paths::DaemonPaths;
use crate::daemon::server::VERSION;
use crate::daemon::wire;
use crate::vocab::EventRecord;

impl Remote {
    /// Starts the link: the first connection is made (starting the daemon when none runs)
    /// in the background, so a front answers `initialize` at once.
    pub fn start(paths: DaemonPaths, runtime: &tokio::runtime::Handle) -> Remote {
        let (remote, refreshes) = Remote::unlinked(paths);
        runtime.spawn(supervise(remote.clone(), refreshes));
        remote
    }
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
                // Gone before the next connection, which must not find it again.
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while notifications.recv().await.is_some() {}
                })
                .await;
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
        api::TASK_EVENT => {
            match params
                .get("task")
                .cloned()
                .map(serde_json::from_value::<crate::vocab::TaskInfo>)
            {
                Some(Ok(task)) => folded.task_changed(task),
                other => tracing::warn!("a task event that does not parse: {other:?}"),
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

//! `tether daemon`: the session host. It holds the one [`SessionManager`] of a state folder,
//! listens on the user's socket, and serves every front (each `tether lsp`, `tether run`,
//! `tether sessions …`) the session protocol; sessions go on when fronts leave.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex, Notify, mpsc};

use super::paths::{DaemonPaths, prepare_dir};
use super::wire::{self, Message, WireError, read_message, write_message};

use crate::session::SessionManager;

/// What `daemon/hello` answers, and what a front compares.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Error codes of the socket's own (the session methods use docs/protocol.md's).
pub mod code {
    pub const NOT_HELLO: i64 = -31101;
    pub use crate::host::INVALID_PARAMS;
}

/// `daemon/hello` params: who is attaching.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    pub version: String,
    /// `editor` (with the client's name), `cli`.
    #[serde(default)]
    pub client: Option<String>,
}

/// `daemon/hello` result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    pub version: String,
    pub pid: u32,
}

/// `daemon/status` result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStatus {
    pub pid: u32,
    pub version: String,
    pub uptime_secs: u64,
    pub sessions: usize,
    pub working: usize,
    pub clients: usize,
    pub socket: std::path::PathBuf,
    pub log: std::path::PathBuf,
}

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub paths: DaemonPaths,
    /// Exit this long after the last front left with no session working.
    pub idle_exit: Duration,
}

/// Why a daemon did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another daemon serves this state folder: not a failure for whoever started this one.
    #[error("a tether daemon already serves {0}")]
    AlreadyRunning(std::path::PathBuf),
    #[error("{0}")]
    Failed(String),
}

/// Shared by the daemon's connections.
pub(super) struct Host {
    pub manager: SessionManager,
    pub paths: DaemonPaths,
    started: Instant,
    clients: AtomicUsize,
    /// When the last front left (or the daemon started), for the idle exit.
    last_seen: std::sync::Mutex<Instant>,
    stop: Notify,
    /// Who asked for the stop: answered once the sessions are stopped and the logs flushed.
    stop_requests: Mutex<Vec<(u64, Arc<Mutex<OwnedWriteHalf>>)>>,
}

impl Host {
    fn status(&self) -> DaemonStatus {
        let sessions = self.manager.list(&Default::default());
        DaemonStatus {
            pid: std::process::id(),
            version: VERSION.to_owned(),
            uptime_secs: self.started.elapsed().as_secs(),
            working: sessions
                .iter()
                .filter(|info| info.status.is_active())
                .count(),
            sessions: sessions.len(),
            clients: self.clients.load(Ordering::SeqCst),
            socket: self.paths.socket.clone(),
            log: self.paths.log.clone(),
        }
    }

    fn idle_since(&self) -> Option<Instant> {
        if self.clients.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let working = self
            .manager
            .list(&Default::default())
            .iter()
            .any(|info| info.status.is_active());
        // A daemon with schedules stays up to start them on time.
        let scheduled = self
            .manager
            .user_settings()
            .is_ok_and(|settings| !settings.config.schedules.is_empty());
        if working || scheduled {
            return None;
        }
        Some(
            *self
                .last_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn touch(&self) {
        *self
            .last_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }
}

/// Takes the state folder's daemon lock, or says who has it. Held for the daemon's life.
fn take_lock(paths: &DaemonPaths) -> Result<std::fs::File, StartError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.lock)
        .map_err(|error| StartError::Failed(format!("{}: {error}", paths.lock.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StartError::AlreadyRunning(paths.state_home.clone()))
        }
        Err(std::fs::TryLockError::Error(error)) => Err(StartError::Failed(format!(
            "cannot lock {}: {error}",
            paths.lock.display()
        ))),
    }
}

/// Binds the socket (0600), replacing a stale one: the lock says no daemon owns it.
fn bind(paths: &DaemonPaths) -> Result<UnixListener, StartError> {
    match std::fs::remove_file(&paths.socket) {
        Ok(()) => tracing::info!("removed a stale socket at {}", paths.socket.display()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(StartError::Failed(format!(
                "cannot remove the stale socket {}: {error}",
                paths.socket.display()
            )));
        }
    }
    // Created with no permission for anyone else, before anyone could connect.
    let previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(&paths.socket);
    rustix::process::umask(previous);
    bound.map_err(|error| {
        StartError::Failed(format!(
            "cannot listen on {}: {error}",
            paths.socket.display()
        ))
    })
}

/// Runs the daemon until `daemon/stop`, a signal, or the idle exit.
pub async fn serve(manager: SessionManager, options: DaemonOptions) -> Result<(), StartError> {
    let paths = options.paths.clone();
    prepare_dir(&paths.dir).map_err(StartError::Failed)?;
    let _lock = take_lock(&paths)?;
    let listener = bind(&paths)?;
    tracing::info!(
        "tether daemon {VERSION} (pid {}) serving {} on {}",
        std::process::id(),
        paths.state_home.display(),
        paths.socket.display()
    );
    let host = Arc::new(Host {
        manager,
        paths: paths.clone(),
        started: Instant::now(),
        clients: AtomicUsize::new(0),
        last_seen: std::sync::Mutex::new(Instant::now()),
        stop: Notify::new(),
        stop_requests: Mutex::default(),
    });
    let schedules = tokio::spawn(super::schedules::run(
        host.manager.clone(),
        paths.state_home.clone(),
    ));
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|error| StartError::Failed(format!("cannot watch SIGTERM: {error}")))?;
    let mut idle_check = tokio::time::interval(Duration::from_secs(1).min(options.idle_exit));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let host = host.clone();
                    tokio::spawn(async move { serve_connection(host, stream).await });
                }
                Err(error) => tracing::warn!("accept failed: {error}"),
            },
            () = host.stop.notified() => break,
            _ = terminate.recv() => break,
            _ = idle_check.tick() => {
                if host.idle_since().is_some_and(|since| since.elapsed() >= options.idle_exit) {
                    tracing::info!("no front and no working session for {:?}: exiting", options.idle_exit);
                    break;
                }
            }
        }
    }
    schedules.abort();
    // Whoever connects from now on starts a new daemon.
    let _ = std::fs::remove_file(&paths.socket);
    host.manager.shutdown().await;
    for (id, writer) in std::mem::take(&mut *host.stop_requests.lock().await) {
        let answer = Message::response(id, Ok(json!({"stopped": true})));
        let _ = write_message(&mut *writer.lock().await, &answer).await;
    }
    tracing::info!("tether daemon stopped");
    Ok(())
}

/// One front, from `daemon/hello` until it disconnects.
async fn serve_connection(host: Arc<Host>, stream: UnixStream) {
    let uid = rustix::process::getuid().as_raw();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == uid => {}
        Ok(cred) => {
            tracing::warn!("refused a connection from uid {} (not {uid})", cred.uid());
            return;
        }
        Err(error) => {
            tracing::warn!("refused a connection whose peer cannot be checked: {error}");
            return;
        }
    }
    host.clients.fetch_add(1, Ordering::SeqCst);
    let (reader, writer) = stream.into_split();
    // One writer task: replies and notifications never interleave mid-line.
    let (outgoing, mut queue) = mpsc::unbounded_channel::<Message>();
    let writer = Arc::new(Mutex::new(writer));
    let write_task = {
        let writer = writer.clone();
        tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                if write_message(&mut *writer.lock().await, &message)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let connection = Connection {
        host: host.clone(),
        writer,
        outgoing,
        said_hello: false,
        subscribed: false,
    };
    connection.run(BufReader::new(reader)).await;
    write_task.abort();
    host.clients.fetch_sub(1, Ordering::SeqCst);
    host.touch();
}

struct Connection {
    host: Arc<Host>,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    outgoing: mpsc::UnboundedSender<Message>,
    said_hello: bool,
    subscribed: bool,
}

impl Connection {
    async fn run(mut self, mut reader: BufReader<tokio::net::unix::OwnedReadHalf>) {
        let mut line = Vec::new();
        loop {
            let message = match read_message(&mut reader, &mut line).await {
                Ok(Some(message)) => message,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!("a front sent {error}; closing its connection");
                    return;
                }
            };
            let Message::Request {
                id, method, params, ..
            } = message
            else {
                continue; // fronts send no notifications the daemon needs
            };
            if !self.said_hello && method != wire::HELLO {
                self.reply(
                    id,
                    Err(WireError {
                        code: code::NOT_HELLO,
                        message: format!("send {} first", wire::HELLO),
                    }),
                );
                continue;
            }
            match method.as_str() {
                wire::HELLO => {
                    let answer = self.hello(params);
                    self.reply(id, answer);
                }
                wire::STATUS => {
                    let status = self.host.status();
                    self.reply(id, to_value(status));
                }
                wire::STOP => {
                    // Answered when the sessions are stopped and every log is flushed.
                    self.host
                        .stop_requests
                        .lock()
                        .await
                        .push((id, self.writer.clone()));
                    self.host.stop.notify_one();
                }
                wire::OPEN => {
                    let manager = self.host.manager.clone();
                    let outgoing = self.outgoing.clone();
                    // Loading a repository replays logs: off the connection's reader.
                    tokio::task::spawn_blocking(move || {
                        let answer = open_repository(&manager, params);
                        let _ = outgoing.send(Message::response(id, answer));
                    });
                }
                wire::SETTINGS => {
                    let manager = self.host.manager.clone();
                    let outgoing = self.outgoing.clone();
                    // Writes the profile's file when a session keeps it: off the reader.
                    tokio::task::spawn_blocking(move || {
                        let answer = set_profile(&manager, params);
                        let _ = outgoing.send(Message::response(id, answer));
                    });
                }
                wire::DIFF => self.answer_in_task(id, diff(self.host.manager.clone(), params)),
                wire::NOTE => self.answer_in_task(id, note(self.host.manager.clone(), params)),
                wire::PROMOTE => {
                    self.answer_in_task(id, promote(self.host.manager.clone(), params));
                }
                wire::STATES => {
                    self.answer_in_task(id, states(self.host.manager.clone(), params));
                }
                wire::SUBSCRIBE => {
                    if self.subscribed {
                        self.reply(
                            id,
                            Err(WireError {
                                code: code::INVALID_PARAMS,
                                message: "this connection is subscribed already".to_owned(),
                            }),
                        );
                    } else {
                        self.subscribed = true;
                        let positions = self.forward_events();
                        self.reply(
                            id,
                            to_value(wire::Subscribed {
                                subscribed: true,
                                positions,
                            }),
                        );
                    }
                }
                _ => {
                    let host = self.host.clone();
                    let outgoing = self.outgoing.clone();
                    // Each request in its own task: a slow one (a push, a replay) never holds
                    // up the next.
                    tokio::spawn(async move {
                        let answer = crate::host::dispatch(&host.manager, &method, params)
                            .await
                            .map_err(WireError::from);
                        let _ = outgoing.send(Message::response(id, answer));
                    });
                }
            }
        }
    }

    /// Answers request `id` with what `answer` comes to, from a task of its own: a slow
    /// request never holds up the next one on the connection.
    fn answer_in_task(
        &self,
        id: u64,
        answer: impl std::future::Future<Output = Result<Value, WireError>> + Send + 'static,
    ) {
        let outgoing = self.outgoing.clone();
        tokio::spawn(async move {
            let _ = outgoing.send(Message::response(id, answer.await));
        });
    }

    fn reply(&self, id: u64, answer: Result<Value, WireError>) {
        let _ = self.outgoing.send(Message::response(id, answer));
    }

    fn hello(&mut self, params: Value) -> Result<Value, WireError> {
        let hello: Hello = serde_json::from_value(params).map_err(|error| WireError {
            code: code::INVALID_PARAMS,
            message: format!("invalid {}: {error}", wire::HELLO),
        })?;
        if hello.version != VERSION {
            tracing::warn!(
                "a front of version {} attached to daemon {VERSION}",
                hello.version
            );
        }
        self.said_hello = true;
        to_value(Welcome {
            version: VERSION.to_owned(),
            pid: std::process::id(),
        })
    }

    /// Sends every session event to this front, in order and without gaps; returns each
    /// session's `seq` as of now (what comes after it is sent).
    fn forward_events(&self) -> std::collections::BTreeMap<String, u64> {
        let mut events = self.host.manager.subscribe();
        let positions = events.positions();
        let mut removed = self.host.manager.subscribe_removed();
        let mut tasks = self.host.manager.subscribe_tasks();
        let outgoing = self.outgoing.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    announced = events.next() => {
                        let Some(announced) = announced else { break };
                        let params = json!({
                            "sessionId": &*announced.session_id,
                            "seq": announced.record.seq,
                            "at": announced.record.at,
                            "event": &announced.record.event,
                        });
                        Message::notification(crate::api::SESSION_EVENT, params)
                    }
                    task = tasks.recv() => match task {
                        Ok(task) => Message::notification(
                            crate::api::TASK_EVENT,
                            json!({"taskId": &task.id, "task": task}),
                        ),
                        // The next change of the task says it all again.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    deleted = removed.recv() => match deleted {
                        Ok(id) => Message::notification(wire::REMOVED, json!({"sessionId": id})),
                        // A front that missed a deletion finds it at its next refresh.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                };
                if outgoing.send(message).is_err() {
                    break;
                }
            }
        });
        positions
    }
}

/// `daemon/open {root}`: the repository holding `root`, its sessions loaded.
fn open_repository(manager: &SessionManager, params: Value) -> Result<Value, WireError> {
    #[derive(Deserialize)]
    struct Open {
        root: std::path::PathBuf,
    }
    let open: Open = parse(wire::OPEN, params)?;
    let store = manager
        .open_repository(&open.root)
        .map_err(|error| WireError::from(crate::host::HostError::from(error)))?;
    Ok(json!({"repo": store.repo()}))
}

/// `daemon/settings`: an editor's layers, for the sessions it starts.
fn set_profile(manager: &SessionManager, params: Value) -> Result<Value, WireError> {
    let params: wire::ProfileParams = parse(wire::SETTINGS, params)?;
    let keys = params
        .keys
        .into_iter()
        .map(|(name, value)| (name, crate::config::SecretValue(value)))
        .collect();
    manager
        .set_profile(&params.profile, params.layers, keys)
        .map_err(|error| WireError::from(crate::host::HostError::from(error)))?;
    Ok(json!({}))
}

/// `daemon/states`: sessions' folded state, for a front to mirror.
async fn states(manager: SessionManager, params: Value) -> Result<Value, WireError> {
    let params: wire::StatesParams = parse(wire::STATES, params)?;
    let sessions = manager
        .states(params.ids)
        .await
        .into_iter()
        .map(|(state, read_only, loaded_seq)| wire::SessionStateOf {
            state,
            read_only,
            loaded_seq,
        })
        .collect();
    to_value(wire::StatesResult { sessions })
}

/// `daemon/diff`: a session's diff with both sides of each file.
async fn diff(manager: SessionManager, params: Value) -> Result<Value, WireError> {
    let params: wire::DiffParams = parse(wire::DIFF, params)?;
    let files = manager
        .diff(&params.id)
        .await
        .map_err(|error| WireError::from(crate::host::HostError::from(error)))?;
    let files = files
        .into_iter()
        .map(crate::api::FileDiffWithTexts::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| WireError::from(crate::host::HostError::internal(error)))?;
    to_value(wire::DiffResult { files })
}

/// `daemon/note`: what the user did with a session's work.
async fn note(manager: SessionManager, params: Value) -> Result<Value, WireError> {
    let params: wire::NoteParams = parse(wire::NOTE, params)?;
    manager
        .note(&params.id, params.text)
        .await
        .map_err(|error| WireError::from(crate::host::HostError::from(error)))?;
    Ok(json!({}))
}

/// `daemon/promote`: a task's trial promoted, or an `apply` checked.
async fn promote(manager: SessionManager, params: Value) -> Result<Value, WireError> {
    let request: crate::session::PromoteRequest = parse(wire::PROMOTE, params)?;
    let promoted = manager
        .promote_task(request)
        .await
        .map_err(|error| WireError::from(crate::host::HostError::from(error)))?;
    to_value(promoted)
}

fn parse<T: serde::de::DeserializeOwned>(method: &str, params: Value) -> Result<T, WireError> {
    serde_json::from_value(params).map_err(|error| WireError {
        code: code::INVALID_PARAMS,
        message: format!("invalid {method}: {error}"),
    })
}

fn to_value<T: Serialize>(value: T) -> Result<Value, WireError> {
    serde_json::to_value(value).map_err(|error| WireError {
        code: crate::api::error_code::INTERNAL,
        message: format!("cannot encode the reply: {error}"),
    })
}

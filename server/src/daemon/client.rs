//! A front's side of the socket: connect to the daemon of this state folder, starting it when
//! none answers, and talk JSON-RPC to it. Replies find their request by id; notifications
//! (session events) go to whoever subscribed.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::paths::{DaemonPaths, check_socket, prepare_dir};
use super::server::{Hello, VERSION, Welcome};
use super::wire::{self, Message, Outcome, WireError, read_message, write_message};

/// How long a front waits for a daemon it started to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a daemon may take to answer `daemon/hello`: one that takes connections and says
/// nothing (hung, or not a daemon at all) is not waited on forever.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the daemon could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Refused(String),
    /// A daemon took the connection and went away before saying hello (it was stopping, or
    /// lost the race to serve): the next attempt finds the one that serves.
    #[error("the daemon did not say hello: the connection was lost")]
    Lost,
    #[error("cannot start the tether daemon: {0}")]
    Start(String),
    #[error("the tether daemon did not answer within {0:?}; its log is {1}")]
    NoAnswer(Duration, std::path::PathBuf),
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The daemon answered with an error.
    #[error(transparent)]
    Remote(#[from] WireError),
    /// The connection is gone (the daemon died or stopped).
    #[error("the connection to the tether daemon was lost")]
    Disconnected,
    #[error("the daemon's reply does not fit: {0}")]
    Decode(String),
}

type Waiting = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Result<Value, WireError>>>>>;

/// A connection to the daemon.
pub struct DaemonClient {
    writer: Mutex<OwnedWriteHalf>,
    waiting: Waiting,
    next_id: AtomicU64,
    /// The daemon's version, from `daemon/hello`.
    pub daemon_version: String,
    pub daemon_pid: u32,
}

impl DaemonClient {
    /// Connects to a running daemon; `Ok(None)` when none answers on the socket.
    /// `notifications` gets every notification the daemon sends; the connection's end is
    /// told by the sender closing.
    pub async fn connect(
        paths: &DaemonPaths,
        client: &str,
        notifications: mpsc::UnboundedSender<(String, Value)>,
    ) -> Result<Option<DaemonClient>, ConnectError> {
        if !paths.socket.exists() {
            return Ok(None);
        }
        check_socket(&paths.socket).map_err(ConnectError::Refused)?;
        let stream = match UnixStream::connect(&paths.socket).await {
            Ok(stream) => stream,
            // A stale socket (no daemon behind it): the next daemon replaces it.
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) =>
            {
                return Ok(None);
            }
            Err(error) => {
                return Err(ConnectError::Refused(format!(
                    "cannot connect to {}: {error}",
                    paths.socket.display()
                )));
            }
        };
        let (reader, writer) = stream.into_split();
        let waiting: Waiting = Arc::default();
        tokio::spawn(read_replies(
            BufReader::new(reader),
            waiting.clone(),
            notifications,
        ));
        let mut connection = DaemonClient {
            writer: Mutex::new(writer),
            waiting,
            next_id: AtomicU64::new(1),
            daemon_version: String::new(),
            daemon_pid: 0,
        };
        let hello = Hello {
            version: VERSION.to_owned(),
            client: Some(client.to_owned()),
        };
        let welcome: Welcome =
            match tokio::time::timeout(HELLO_TIMEOUT, connection.call(wire::HELLO, &hello)).await {
                Ok(Err(CallError::Disconnected)) => return Err(ConnectError::Lost),
                Ok(answer) => answer.map_err(|error| {
                    ConnectError::Refused(format!("the daemon did not say hello: {error}"))
                })?,
                Err(_) => return Err(ConnectError::NoAnswer(HELLO_TIMEOUT, paths.log.clone())),
            };
        connection.daemon_version = welcome.version;
        connection.daemon_pid = welcome.pid;
        Ok(Some(connection))
    }

    /// Connects to the daemon, starting one (detached, in its own session) when none answers.
    /// Fronts racing to start one each start a process; the daemon lock lets exactly one of
    /// them serve, and every front connects to that one.
    pub async fn connect_or_start(
        paths: &DaemonPaths,
        client: &str,
        notifications: mpsc::UnboundedSender<(String, Value)>,
    ) -> Result<DaemonClient, ConnectError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut pause = Duration::from_millis(2);
        let mut started = false;
        loop {
            match Self::connect(paths, client, notifications.clone()).await {
                Ok(Some(connected)) => return Ok(connected),
                Ok(None) if !started => {
                    start_daemon(paths)?;
                    started = true;
                }
                Ok(None) => {}
                Err(ConnectError::Lost) => {
                    // Whoever serves next answers; if nobody does, start one again.
                    tracing::debug!("a tether daemon went away before saying hello");
                    started = false;
                }
                Err(error) => return Err(error),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ConnectError::NoAnswer(START_TIMEOUT, paths.log.clone()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Sends a request and waits for its reply.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, CallError> {
        let params =
            serde_json::to_value(params).map_err(|error| CallError::Decode(error.to_string()))?;
        let value = self.call_value(method, params).await?;
        serde_json::from_value(value).map_err(|error| CallError::Decode(error.to_string()))
    }

    /// Sends a request with JSON params; the reply's JSON.
    pub async fn call_value(&self, method: &str, params: Value) -> Result<Value, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, reply);
        let sent = write_message(
            &mut *self.writer.lock().await,
            &Message::request(id, method, params),
        )
        .await;
        if sent.is_err() {
            self.waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
            return Err(CallError::Disconnected);
        }
        match answer.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CallError::Remote(error)),
            Err(_) => Err(CallError::Disconnected),
        }
    }
}

/// Routes replies to their requests and notifications to the subscriber, until the
/// connection ends; then every waiting request hears it is gone.
async fn read_replies(
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    waiting: Waiting,
    notifications: mpsc::UnboundedSender<(String, Value)>,
) {
    let mut line = Vec::new();
    loop {
        match read_message(&mut reader, &mut line).await {
            Ok(Some(Message::Response { id, outcome, .. })) => {
                let reply = waiting
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&id);
                if let Some(reply) = reply {
                    let _ = reply.send(match outcome {
                        Outcome::Result(value) => Ok(value),
                        Outcome::Error(error) => Err(error),
                    });
                }
            }
            Ok(Some(Message::Notification { method, params, .. })) => {
                let _ = notifications.send((method, params));
            }
            Ok(Some(Message::Request { .. })) => {}
            Ok(None) => break,
            Err(error) => {
                tracing::warn!("the daemon sent {error}");
                break;
            }
        }
    }
    // Dropping the senders tells every waiting request the connection is gone.
    waiting
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
}

/// Starts `tether daemon` detached: its own session (an editor's hang-up never reaches it),
/// stdin closed, stderr to its log, this process's environment.
fn start_daemon(paths: &DaemonPaths) -> Result<(), ConnectError> {
    use std::os::unix::process::CommandExt;
    prepare_dir(&paths.dir).map_err(ConnectError::Start)?;
    if let Some(parent) = paths.log.parent() {
        std::fs::create_dir_all(parent).map_err(|error| ConnectError::Start(error.to_string()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(|error| ConnectError::Start(format!("{}: {error}", paths.log.display())))?;
    let log_err = log
        .try_clone()
        .map_err(|error| ConnectError::Start(error.to_string()))?;
    let executable = std::env::current_exe().map_err(|error| {
        ConnectError::Start(format!("cannot find tether's own binary: {error}"))
    })?;
    let mut command = std::process::Command::new(executable);
    command
        .arg("daemon")
        .current_dir("/")
        .env("TETHER_DAEMON_STATE", &paths.state_home)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|error| ConnectError::Start(error.to_string()))?;
    // Reap it when it exits (it outlives this front only if this front exits first).
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}

/// Whether fronts should use the daemon: not with `--no-daemon` or `TETHER_DAEMON=off`.
pub fn daemon_wanted(no_daemon_flag: bool) -> bool {
    !no_daemon_flag
        && !std::env::var("TETHER_DAEMON").is_ok_and(|value| {
            matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "off" | "0" | "false" | "no"
            )
        })
}

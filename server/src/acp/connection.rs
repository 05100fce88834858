//! The JSON-RPC connection to one agent process, through the `agent-client-protocol` SDK:
//! what the agent sends (updates, requests) is handed in order to whoever runs the session's
//! turn; what its stdout holds that is not JSON-RPC is set aside, never parsed; the last lines
//! of its stderr are kept for the message when it fails.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{AgentNotification, AgentRequest};
use agent_client_protocol::{Agent, Client, Lines};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::launch::AgentLaunch;

/// The longest line read from an agent: a longer one is set aside as garbage.
const LINE_LIMIT: usize = 32 * 1024 * 1024;
/// Messages from the agent that wait for the turn to take them; beyond this the agent's
/// stdout is no longer read until the turn catches up (a flood cannot grow memory).
const INCOMING_BUFFER: usize = 256;
/// Lines of the agent's stderr kept for messages.
const STDERR_LINES: usize = 12;
/// The longest stderr line kept.
const STDERR_LINE_LIMIT: usize = 400;

/// The answer to one of the agent's requests.
pub type Responder = agent_client_protocol::v1::Responder<serde_json::Value>;

/// Something the agent sent.
pub enum Incoming {
    Notification(Box<AgentNotification>),
    Request(Box<(AgentRequest, Responder)>),
}

/// What the agent left behind on its way: its stderr's last lines and what it wrote to stdout
/// that was not JSON-RPC.
#[derive(Debug, Default)]
pub struct Traces {
    stderr: VecDeque<String>,
    garbage_lines: u64,
    first_garbage: Option<String>,
}

impl Traces {
    fn push_stderr(&mut self, line: &str) {
        if self.stderr.len() == STDERR_LINES {
            self.stderr.pop_front();
        }
        self.stderr.push_back(cut(line, STDERR_LINE_LIMIT));
    }

    fn push_garbage(&mut self, line: &str) {
        self.garbage_lines += 1;
        if self.first_garbage.is_none() {
            self.first_garbage = Some(cut(line, STDERR_LINE_LIMIT));
        }
    }

    /// The traces, as sentences to append to a failure's message.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        if let Some(first) = &self.first_garbage {
            text.push_str(&format!(
                "; it wrote {} line(s) to stdout that are not JSON-RPC, the first: {first:?}",
                self.garbage_lines
            ));
        }
        if !self.stderr.is_empty() {
            text.push_str("; its stderr ended with:\n");
            text.push_str(&Vec::from(self.stderr.clone()).join("\n"));
        }
        text
    }
}

fn cut(line: &str, limit: usize) -> String {
    if line.len() <= limit {
        return line.to_owned();
    }
    format!("{}…", &line[..line.floor_char_boundary(limit)])
}

/// A running agent and the connection to it.
pub struct Connection {
    pub cx: ConnectionTo<Agent>,
    pub incoming: mpsc::Receiver<Incoming>,
    pub traces: Arc<Mutex<Traces>>,
    /// The agent's wait status once it exited (`None` inside: killed before it said).
    pub exit: watch::Receiver<Option<Option<std::process::ExitStatus>>>,
    /// Whose process groups these are, for [`crate::sandbox::end_owner`].
    pub owner: Arc<str>,
    /// Why the connection closed, once it has.
    pub closed: watch::Receiver<Option<String>>,
    stop: Option<oneshot::Sender<()>>,
    /// Why the program is less confined than asked, if it is.
    pub sandbox_note: Option<String>,
}

impl Connection {
    /// Starts the agent and connects to it (nothing is sent yet).
    pub async fn open(launch: &AgentLaunch) -> Result<Connection, String> {
        let mut spawned = launch.spawn()?;
        let owner = launch.jail.owner.clone();
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            spawned.stdin.take(),
            spawned.stdout.take(),
            spawned.stderr.take(),
        ) else {
            crate::sandbox::end_owner(&owner);
            return Err("the agent's stdio could not be piped".to_owned());
        };
        let traces = Arc::new(Mutex::new(Traces::default()));
        tokio::spawn(read_stderr(stderr, traces.clone()));
        let (exit_tx, exit) = watch::channel(None);
        let sandbox_note = spawned.note.take();
        tokio::spawn(async move {
            let status = spawned.wait().await;
            let _ = exit_tx.send(Some(status));
        });

        let outgoing = futures_util::sink::unfold(stdin, |mut stdin, line: String| async move {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await?;
            Ok::<_, std::io::Error>(stdin)
        });
        let lines = {
            let traces = traces.clone();
            FramedRead::new(stdout, LinesCodec::new_with_max_length(LINE_LIMIT)).filter_map(
                move |line| {
                    let kept = match line {
                        Ok(line) if line.trim_start().starts_with('{') => Some(Ok(line)),
                        Ok(line) if line.trim().is_empty() => None,
                        Ok(line) => {
                            lock(&traces).push_garbage(&line);
                            None
                        }
                        Err(LinesCodecError::MaxLineLengthExceeded) => {
                            lock(&traces).push_garbage("[a line longer than 32 MiB]");
                            None
                        }
                        Err(LinesCodecError::Io(error)) => Some(Err(error)),
                    };
                    std::future::ready(kept)
                },
            )
        };
        let transport = Lines::new(Box::pin(outgoing), Box::pin(lines));

        let (sender, incoming) = mpsc::channel(INCOMING_BUFFER);
        let (cx_tx, cx_rx) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (closed_tx, closed) = watch::channel(None);
        let requests = sender.clone();
        let notifications = sender;
        tokio::spawn(async move {
            let result = Client
                .v1()
                .name("tether")
                .on_receive_request(
                    async move |request: AgentRequest, responder: Responder, _cx| {
                        let _ = requests
                            .send(Incoming::Request(Box::new((request, responder))))
                            .await;
                        Ok(())
                    },
                    agent_client_protocol::on_receive_request!(),
                )
                .on_receive_notification(
                    async move |notification: AgentNotification, _cx| {
                        let _ = notifications
                            .send(Incoming::Notification(Box::new(notification)))
                            .await;
                        Ok(())
                    },
                    agent_client_protocol::on_receive_notification!(),
                )
                .connect_with(transport, async move |cx: ConnectionTo<Agent>| {
                    let _ = cx_tx.send(cx.clone());
                    tokio::select! {
                        _ = stop_rx => {}
                        () = cx.incoming_closed() => {}
                    }
                    Ok(())
                })
                .await;
            let reason = match result {
                Ok(()) => "the agent closed its stdout".to_owned(),
                Err(error) => format!("the connection to the agent failed: {error}"),
            };
            let _ = closed_tx.send(Some(reason));
        });
        let cx = cx_rx
            .await
            .map_err(|_| "the connection to the agent could not be set up".to_owned())?;
        Ok(Connection {
            cx,
            incoming,
            traces,
            exit,
            owner,
            closed,
            stop: Some(stop),
            sandbox_note,
        })
    }

    /// Whether the agent's program has exited.
    pub fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Why the agent is gone, for a failure's message: its exit status, or why the connection
    /// closed, and its traces.
    pub async fn gone_reason(&mut self, launch: &AgentLaunch) -> String {
        // The exit is seen shortly after stdout closes.
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            self.exit.wait_for(Option::is_some),
        )
        .await;
        let status = match &*self.exit.borrow() {
            Some(Some(status)) => describe_status(*status),
            Some(None) => "was killed".to_owned(),
            None => match &*self.closed.borrow() {
                Some(reason) => format!("stopped answering ({reason})"),
                None => "stopped answering".to_owned(),
            },
        };
        format!(
            "the agent `{}` {status}{}",
            launch.command_line(),
            lock(&self.traces).describe()
        )
    }

    /// Ends the agent: closes the connection and kills its whole process group.
    pub fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        crate::sandbox::end_owner(&self.owner);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.kill();
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "exited".to_owned(),
    }
}

async fn read_stderr(stderr: tokio::process::ChildStderr, traces: Arc<Mutex<Traces>>) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(64 * 1024));
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => {
                tracing::debug!(target: "tether::acp::stderr", "{line}");
                lock(&traces).push_stderr(&line);
            }
            Err(LinesCodecError::MaxLineLengthExceeded) => {}
            Err(LinesCodecError::Io(_)) => break,
        }
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_keep_the_last_stderr_lines_and_the_first_garbage_line() {
        let mut traces = Traces::default();
        for index in 0..20 {
            traces.push_stderr(&format!("line {index}"));
        }
        traces.push_garbage("hello, not json");
        traces.push_garbage("again");
        let text = traces.describe();
        assert!(text.contains("2 line(s)"), "{text}");
        assert!(text.contains("\"hello, not json\""), "{text}");
        assert!(text.contains("line 19"), "{text}");
        assert!(!text.contains("line 7\n"), "{text}");
    }
}

//! A small LSP client that drives the real `tether` binary over stdio.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Notify, oneshot};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<Result<Value, Value>>>>>;

pub struct LspClient {
    child: Child,
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
    next_id: i64,
    pending: Pending,
    notifications: Arc<Mutex<Vec<Value>>>,
    /// Responses that answered none of our requests (a null or unknown id), in arrival order.
    unmatched: Arc<Mutex<Vec<Value>>>,
    notified: Arc<Notify>,
    /// The result sent back for `workspace/applyEdit` (other server requests get null).
    apply_edit_result: Arc<Mutex<Value>>,
    pub stderr_path: PathBuf,
}

/// The environment every spawned server gets: its own state and config folders.
pub fn isolated_command(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
    command
        .env("TETHER_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        // TETHER_TEST_LOG sets the servers' log filter when a test needs a closer look.
        .env(
            "TETHER_LOG",
            std::env::var("TETHER_TEST_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY");
    command
}

impl LspClient {
    /// Spawns `tether lsp` with its state under `home`.
    pub async fn spawn(home: &Path) -> LspClient {
        Self::spawn_with_env(home, &[]).await
    }

    /// Like [`LspClient::spawn`], with extra environment variables for the server alone.
    /// A server that runs its sessions itself, without the daemon.
    pub async fn spawn_in_process(home: &Path) -> LspClient {
        Self::spawn_with_env(home, &[("TETHER_DAEMON", "off")]).await
    }

    pub async fn spawn_with_env(home: &Path, extra_env: &[(&str, &str)]) -> LspClient {
        Self::spawn_configured(home, |command| {
            command.envs(extra_env.iter().copied());
        })
        .await
    }

    /// Like [`LspClient::spawn`], with the command changed first (another user, more
    /// arguments after `lsp`).
    pub async fn spawn_configured(home: &Path, configure: impl FnOnce(&mut Command)) -> LspClient {
        let stderr_path = home.join(format!("stderr-{}.log", uuid_like()));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr log");
        let mut command = isolated_command(home);
        command.arg("lsp");
        configure(&mut command);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tether");
        let stdin = Arc::new(tokio::sync::Mutex::new(child.stdin.take().expect("stdin")));
        let stdout = child.stdout.take().expect("stdout");
        let pending: Pending = Arc::default();
        let notifications: Arc<Mutex<Vec<Value>>> = Arc::default();
        let unmatched: Arc<Mutex<Vec<Value>>> = Arc::default();
        let notified = Arc::new(Notify::new());
        let apply_edit_result = Arc::new(Mutex::new(json!({"applied": true})));
        {
            let apply_edit_result = apply_edit_result.clone();
            let stdin = stdin.clone();
            let pending = pending.clone();
            let notifications = notifications.clone();
            let unmatched = unmatched.clone();
            let notified = notified.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout);
                while let Some(message) = read_message(&mut reader).await {
                    let has_method = message.get("method").is_some();
                    let id = message.get("id").cloned();
                    match (has_method, id) {
                        (true, Some(id)) => {
                            // A request from the server: accept it.
                            let result = if message["method"] == "workspace/applyEdit" {
                                apply_edit_result.lock().expect("lock").clone()
                            } else {
                                Value::Null
                            };
                            let reply =
                                frame(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
                            let _ = stdin.lock().await.write_all(&reply).await;
                            notifications.lock().expect("lock").push(message);
                            notified.notify_waiters();
                        }
                        (true, None) => {
                            notifications.lock().expect("lock").push(message);
                            notified.notify_waiters();
                        }
                        (false, Some(id)) => {
                            let sender = id
                                .as_i64()
                                .and_then(|id| pending.lock().expect("lock").remove(&id));
                            if let Some(sender) = sender {
                                let outcome = match message.get("error") {
                                    Some(error) => Err(error.clone()),
                                    None => {
                                        Ok(message.get("result").cloned().unwrap_or(Value::Null))
                                    }
                                };
                                let _ = sender.send(outcome);
                            } else {
                                unmatched.lock().expect("lock").push(message);
                                notified.notify_waiters();
                            }
                        }
                        (false, None) => {
                            unmatched.lock().expect("lock").push(message);
                            notified.notify_waiters();
                        }
                    }
                }
                notified.notify_waiters();
            });
        }
        LspClient {
            child,
            stdin,
            next_id: 1,
            pending,
            notifications,
            unmatched,
            notified,
            apply_edit_result,
            stderr_path,
        }
    }

    /// `textDocument/codeAction` on `uri` for the range `start..end` (line, character).
    pub async fn code_actions(
        &mut self,
        uri: &str,
        start: (u32, u32),
        end: (u32, u32),
    ) -> Vec<Value> {
        self.call(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri},
                   "range": {"start": {"line": start.0, "character": start.1},
                             "end": {"line": end.0, "character": end.1}},
                   "context": {"diagnostics": []}}),
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    /// Runs a code action's command, as an editor does when the user picks it.
    pub async fn execute_action(&mut self, action: &Value) -> Result<Value, Value> {
        self.request(
            "workspace/executeCommand",
            json!({"command": action["command"]["command"], "arguments": action["command"]["arguments"]}),
        )
        .await
    }

    /// What the client answers to `workspace/applyEdit` from now on.
    pub fn answer_apply_edit_with(&self, result: Value) {
        *self.apply_edit_result.lock().expect("lock") = result;
    }

    /// `initialize` + `initialized`, opting in to Tether's notifications when `opt_in`.
    pub async fn initialize(&mut self, root: &Path, settings: Value, opt_in: bool) -> Value {
        let experimental = if opt_in {
            json!({"tether": true})
        } else {
            json!({})
        };
        self.initialize_with(root, settings, json!({"experimental": experimental}))
            .await
    }

    /// `initialize` + `initialized` with these client capabilities.
    pub async fn initialize_with(
        &mut self,
        root: &Path,
        settings: Value,
        capabilities: Value,
    ) -> Value {
        let uri = format!("file://{}", root.display());
        let result = self
            .request(
                "initialize",
                json!({
                    "processId": std::process::id(),
                    "clientInfo": {"name": "tether-e2e"},
                    "rootUri": uri,
                    "workspaceFolders": [{"uri": uri, "name": "repo"}],
                    "capabilities": capabilities,
                    "initializationOptions": settings,
                }),
            )
            .await
            .expect("initialize succeeds");
        self.notify("initialized", json!({})).await;
        result
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let pending = self.start_request(method, params).await;
        self.wait_for_reply(pending).await
    }

    /// Sends a request without waiting for its answer; [`LspClient::wait_for_reply`] waits.
    pub async fn start_request(&mut self, method: &str, params: Value) -> PendingReply {
        let id = self.next_id;
        self.next_id += 1;
        let (sender, receiver) = oneshot::channel();
        self.pending.lock().expect("lock").insert(id, sender);
        self.write(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        PendingReply {
            method: method.to_owned(),
            receiver,
            answer: None,
        }
    }

    /// The answer to a request [`LspClient::start_request`] sent, within [`WAIT`].
    pub async fn wait_for_reply(&self, mut pending: PendingReply) -> Result<Value, Value> {
        if let Some(answer) = pending.answer.take() {
            return answer;
        }
        let method = &pending.method;
        match tokio::time::timeout(WAIT, pending.receiver).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => panic!(
                "the server closed before answering {method}; stderr: {}",
                self.stderr()
            ),
            Err(_) => panic!(
                "no answer to {method} within {WAIT:?}; stderr: {}",
                self.stderr()
            ),
        }
    }

    /// A request that must succeed.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.request(method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method} failed: {error}"),
        }
    }

    /// `tether/session/create`, which must succeed; returns the SessionInfo and the id.
    pub async fn create(&mut self, params: Value) -> (Value, String) {
        let info = self.call("tether/session/create", params).await;
        let id = info["id"]
            .as_str()
            .expect("the session has an id")
            .to_owned();
        (info, id)
    }

    /// A request that must fail; returns the error object.
    pub async fn call_err(&mut self, method: &str, params: Value) -> Value {
        match self.request(method, params).await {
            Ok(result) => panic!("{method} should have failed, got {result}"),
            Err(error) => error,
        }
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.write(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    async fn write(&mut self, message: &Value) {
        let bytes = frame(message);
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(&bytes).await.expect("write to tether");
        stdin.flush().await.expect("flush");
    }

    /// Writes these bytes to the server's stdin as they are: no framing, no checks.
    pub async fn send_raw(&self, bytes: &[u8]) {
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(bytes).await.expect("write to tether");
        stdin.flush().await.expect("flush");
    }

    /// Every response so far that answered none of our requests (its id is null, not a
    /// number or not one we are waiting for), in arrival order.
    pub fn unmatched_responses(&self) -> Vec<Value> {
        self.unmatched.lock().expect("lock").clone()
    }

    /// Waits until `count` unmatched responses have arrived; returns the `count`th (1-based).
    pub async fn wait_for_unmatched(&self, count: usize) -> Value {
        self.wait_until(
            || {
                count
                    .checked_sub(1)
                    .and_then(|index| self.unmatched_responses().get(index).cloned())
            },
            || {
                format!(
                    "unmatched response #{count} not seen; got {:#?}",
                    self.unmatched_responses()
                )
            },
        )
        .await
    }

    /// Every `tether/session/event` notification so far (their params), in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.notifications
            .lock()
            .expect("lock")
            .iter()
            .filter(|message| message["method"] == "tether/session/event")
            .map(|message| message["params"].clone())
            .collect()
    }

    /// Every message the server sent with this method (notifications and requests).
    pub fn messages(&self, method: &str) -> Vec<Value> {
        self.notifications
            .lock()
            .expect("lock")
            .iter()
            .filter(|message| message["method"] == method)
            .cloned()
            .collect()
    }

    /// Waits for the first message the server sends with this method; returns it.
    pub async fn wait_for_message(&self, method: &str) -> Value {
        self.wait_for_message_matching(method, |_| true).await
    }

    /// Waits for a message with this method whose params satisfy `predicate`; returns the
    /// first such message.
    pub async fn wait_for_message_matching(
        &self,
        method: &str,
        predicate: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_until(
            || {
                self.messages(method)
                    .into_iter()
                    .find(|message| predicate(&message["params"]))
            },
            || format!("no matching {method}; got {:#?}", self.messages(method)),
        )
        .await
    }

    /// Waits until `count` messages with this method satisfy `predicate` (by their params);
    /// returns them, in arrival order.
    pub async fn wait_for_messages_matching(
        &self,
        method: &str,
        count: usize,
        predicate: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let matching = || -> Vec<Value> {
            self.messages(method)
                .into_iter()
                .filter(|message| predicate(&message["params"]))
                .collect()
        };
        self.wait_until(
            || {
                let found = matching();
                (found.len() >= count).then_some(found)
            },
            || {
                format!(
                    "fewer than {count} matching {method}; got {:#?}",
                    self.messages(method)
                )
            },
        )
        .await
    }

    /// Waits until `find` finds something (checked each time a message arrives), for at most
    /// [`WAIT`]; panics with `describe()` and the server's stderr after that.
    async fn wait_until<T>(
        &self,
        find: impl Fn() -> Option<T>,
        describe: impl Fn() -> String,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.notified.notified();
            if let Some(found) = find() {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{} within {WAIT:?}\nstderr: {}", describe(), self.stderr());
            }
        }
    }

    /// The events of one session so far.
    pub fn session_events(&self, session_id: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|params| params["sessionId"] == session_id)
            .collect()
    }

    /// Waits until an event of `session_id` satisfies `predicate`; returns it.
    pub async fn wait_for_event(
        &self,
        session_id: &str,
        predicate: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_until(
            || {
                self.session_events(session_id)
                    .into_iter()
                    .find(|params| predicate(&params["event"]))
            },
            || {
                format!(
                    "no matching event for session {session_id}; events: {:#?}",
                    self.session_events(session_id)
                )
            },
        )
        .await
    }

    /// Waits until an event of any session satisfies `predicate` (it sees the whole
    /// notification's params); returns them.
    pub async fn wait_until_event(&self, predicate: impl Fn(&Value) -> bool) -> Value {
        self.wait_until(
            || self.events().into_iter().find(|params| predicate(params)),
            || format!("no matching event; events: {:#?}", self.events()),
        )
        .await
    }

    /// Waits for a `status` event with this status.
    pub async fn wait_for_status(&self, session_id: &str, status: &str) -> Value {
        self.wait_for_event(session_id, |event| {
            event["kind"] == "status" && event["status"] == status
        })
        .await
    }

    /// Waits for the `n`th (1-based) status event with this status.
    pub async fn wait_for_nth_status(&self, session_id: &str, status: &str, n: usize) {
        self.wait_until(
            || {
                let count = self
                    .session_events(session_id)
                    .iter()
                    .filter(|params| {
                        params["event"]["kind"] == "status" && params["event"]["status"] == status
                    })
                    .count();
                (count >= n).then_some(())
            },
            || {
                format!(
                    "status {status} #{n} not seen for {session_id}; events: {:#?}",
                    self.session_events(session_id)
                )
            },
        )
        .await
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// `shutdown` + `exit`, then waits for the process to end; returns its exit status.
    pub async fn shutdown(mut self) -> std::process::ExitStatus {
        self.call("shutdown", Value::Null).await;
        self.notify("exit", Value::Null).await;
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("tether exits after `exit`")
            .expect("wait")
    }

    /// `kill -9`.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// A request on its way: its answer, once it came, is kept for [`LspClient::wait_for_reply`].
pub struct PendingReply {
    method: String,
    receiver: oneshot::Receiver<Result<Value, Value>>,
    answer: Option<Result<Value, Value>>,
}

impl PendingReply {
    /// Whether the server has answered it yet (without waiting).
    pub fn is_answered(&mut self) -> bool {
        if self.answer.is_none()
            && let Ok(answer) = self.receiver.try_recv()
        {
            self.answer = Some(answer);
        }
        self.answer.is_some()
    }
}

fn frame(message: &Value) -> Vec<u8> {
    let body = serde_json::to_vec(message).expect("encode");
    let mut bytes = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

async fn read_message<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length:") {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0u8; length?];
    reader.read_exact(&mut body).await.ok()?;
    serde_json::from_slice(&body).ok()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

//! A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions wire format
//! (SSE over chunked transfer encoding) and replays scripted replies, one per request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One step of a scripted SSE reply.
#[derive(Debug, Clone)]
pub enum Step {
    /// A `data:` event.
    Data(String),
    /// Bytes sent as they are (for malformed streams).
    Raw(String),
    Sleep(Duration),
    /// Drop the connection here, mid-stream.
    Cut,
}

/// What the server answers one request with.
#[derive(Debug, Clone)]
pub enum Reply {
    Sse(Vec<Step>),
    Status(u16, String),
    /// HTTP 200 with an empty body (what llama.cpp's server sends for streamed tool choice).
    Empty,
    /// HTTP 200 with this JSON body instead of an event stream (a server that ignores
    /// `stream: true`, or a proxy's error page).
    Json(String),
    /// Content chunks as fast as the server can send them, for this long, then a normal end.
    #[allow(dead_code)] // used by benches/tether.rs, which shares this module
    Flood(Duration),
}

fn content_chunk(text: &str) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake",
           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    .to_string()
}

fn finish_chunk() -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake",
           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    .to_string()
}

fn usage_chunk(input: u64, output: u64) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake", "choices": [],
           "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}})
    .to_string()
}

impl Reply {
    /// A well-formed streamed reply: the pieces, a finish, a usage chunk, `[DONE]`.
    pub fn text(pieces: &[&str]) -> Reply {
        Reply::text_paced(pieces, Duration::ZERO)
    }

    /// Like [`Reply::text`], reporting `input` prompt tokens and `output` completion tokens.
    #[allow(dead_code)] // used by the e2e tests, not by benches/tether.rs
    pub fn text_with_usage(pieces: &[&str], input: u64, output: u64) -> Reply {
        let mut steps: Vec<Step> = pieces
            .iter()
            .map(|piece| Step::Data(content_chunk(piece)))
            .collect();
        steps.push(Step::Data(finish_chunk()));
        steps.push(Step::Data(usage_chunk(input, output)));
        steps.push(Step::Data("[DONE]".to_owned()));
        Reply::Sse(steps)
    }

    /// Like [`Reply::text`] with a pause before each piece (to stop or follow up mid-stream).
    pub fn text_paced(pieces: &[&str], pause: Duration) -> Reply {
        let mut steps = Vec::new();
        for piece in pieces {
            if !pause.is_zero() {
                steps.push(Step::Sleep(pause));
            }
            steps.push(Step::Data(content_chunk(piece)));
        }
        steps.push(Step::Data(finish_chunk()));
        steps.push(Step::Data(usage_chunk(11, pieces.len() as u64)));
        steps.push(Step::Data("[DONE]".to_owned()));
        Reply::Sse(steps)
    }

    /// A reply that calls tools: each `(name, arguments JSON)` streamed as OpenAI does (the
    /// name once, the arguments in two pieces), finishing with `tool_calls`.
    pub fn tool_calls(calls: &[(&str, &str)]) -> Reply {
        Self::tool_calls_styled(calls, false)
    }

    /// Like [`Reply::tool_calls`], as llama.cpp's server streams them: the id and the whole
    /// name repeated in every chunk.
    pub fn tool_calls_repeating_names(calls: &[(&str, &str)]) -> Reply {
        Self::tool_calls_styled(calls, true)
    }

    fn tool_calls_styled(calls: &[(&str, &str)], repeat: bool) -> Reply {
        let mut steps = Vec::new();
        for (index, (name, arguments)) in calls.iter().enumerate() {
            let id = format!("call_{index}");
            let split = arguments.len() / 2;
            let (first, second) = arguments.split_at(split);
            for (piece, arguments) in [(0, first), (1, second)] {
                let mut function = json!({"arguments": arguments});
                let mut call = json!({"index": index, "function": {}});
                if piece == 0 || repeat {
                    function["name"] = json!(name);
                    call["id"] = json!(id);
                    call["type"] = json!("function");
                }
                call["function"] = function;
                steps.push(Step::Data(
                    json!({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}]})
                        .to_string(),
                ));
            }
        }
        steps.push(Step::Data(
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
                .to_string(),
        ));
        steps.push(Step::Data("[DONE]".to_owned()));
        Reply::Sse(steps)
    }

    /// A reply in Anthropic's Messages stream format: each value is one event's data, sent
    /// with `event: <its type>`.
    pub fn anthropic(events: &[Value]) -> Reply {
        Reply::Sse(
            events
                .iter()
                .map(|event| {
                    let kind = event["type"].as_str().unwrap_or("message");
                    Step::Raw(format!("event: {kind}\ndata: {event}\n\n"))
                })
                .collect(),
        )
    }

    /// An Anthropic Messages reply that says `text` and ends the turn.
    #[allow(dead_code)] // used by the agent and task tests, not by benches/tether.rs
    pub fn anthropic_text(text: &str) -> Reply {
        Reply::anthropic(&anthropic_events(
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": text}),
            "end_turn",
        ))
    }

    /// An Anthropic Messages reply that calls tool `name` with `input`.
    #[allow(dead_code)] // used by the agent and task tests, not by benches/tether.rs
    pub fn anthropic_tool(id: &str, name: &str, input: Value) -> Reply {
        Reply::anthropic(&anthropic_events(
            json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            json!({"type": "input_json_delta", "partial_json": input.to_string()}),
            "tool_use",
        ))
    }

    /// Streams `pieces` and then drops the connection without finishing.
    pub fn cut_after(pieces: &[&str]) -> Reply {
        let mut steps: Vec<Step> = pieces
            .iter()
            .map(|piece| Step::Data(content_chunk(piece)))
            .collect();
        steps.push(Step::Sleep(Duration::from_millis(50)));
        steps.push(Step::Cut);
        Reply::Sse(steps)
    }

    /// Streams `pieces`, then a chunk that is not JSON.
    pub fn malformed_after(pieces: &[&str]) -> Reply {
        let mut steps: Vec<Step> = pieces
            .iter()
            .map(|piece| Step::Data(content_chunk(piece)))
            .collect();
        steps.push(Step::Raw(
            "data: {\"choices\": [{\"delta\": {\"content\": \"x\"\n\n".to_owned(),
        ));
        steps.push(Step::Data("[DONE]".to_owned()));
        Reply::Sse(steps)
    }
}

/// Which requests a script answers.
type RequestFilter = fn(&Value) -> bool;

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    /// Answered once the script runs out.
    fallback: Option<Reply>,
    requests: Vec<Value>,
    /// Each request's headers, names lowercased.
    headers: Vec<Vec<(String, String)>>,
    /// Which requests the script answers; the others (an agent's side requests: titles,
    /// memories) get `aside` and are not counted in `requests`.
    only: Option<(RequestFilter, Reply)>,
    /// Whether a request that finds the script empty waits for the next push.
    hold: bool,
}

/// The running server. Dropping it stops accepting connections.
pub struct FakeModel {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeModel {
    pub async fn start() -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(socket, accept_shared.clone()));
            }
        });
        FakeModel { port, shared, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Queues replies, answered in order.
    pub fn push(&self, reply: Reply) {
        self.shared.lock().expect("lock").script.push_back(reply);
    }

    /// Answers with the script only the requests `scripted` accepts; the others get `aside`.
    #[allow(dead_code)] // used by the ACP agent tests, not by benches/tether.rs
    pub fn script_only(&self, scripted: RequestFilter, aside: Reply) {
        self.shared.lock().expect("lock").only = Some((scripted, aside));
    }

    /// A request that finds the script empty waits (up to 20 s) for the next push: for
    /// replies that name what only exists once the request is on its way (a worktree).
    #[allow(dead_code)] // used by the ACP agent tests, not by benches/tether.rs
    pub fn hold_until_pushed(&self) {
        self.shared.lock().expect("lock").hold = true;
    }

    /// The reply once the queue is empty (default: a 500).
    pub fn set_fallback(&self, reply: Reply) {
        self.shared.lock().expect("lock").fallback = Some(reply);
    }

    /// The JSON bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().expect("lock").requests.clone()
    }

    /// One header of each request (None where it was absent).
    pub fn header(&self, name: &str) -> Vec<Option<String>> {
        self.shared
            .lock()
            .expect("lock")
            .headers
            .iter()
            .map(|headers| {
                headers
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.clone())
            })
            .collect()
    }

    /// The paths requested, in order.
    pub fn paths(&self) -> Vec<String> {
        self.header(":path").into_iter().flatten().collect()
    }

    /// Provider settings pointing at this server, for `initializationOptions`.
    /// Settings that point tether at this server. Automatic review is off, so that each
    /// test scripts exactly the model calls it expects; the review tests turn it on.
    pub fn settings(&self) -> Value {
        json!({
            "review": {"auto": false},
            "default_provider": "fake",
            "providers": {"fake": {
                "kind": "openai",
                "base_url": self.base_url(),
                "model": "fake-model",
                "max_retries": 2,
                "retry_backoff_ms": 20,
                "timeout_secs": 10
            }}
        })
    }

    /// Settings whose default provider is this server speaking Anthropic's Messages API, its
    /// key in `TETHER_TEST_ANTHROPIC_KEY`.
    #[allow(dead_code)] // used by the e2e tests, not by benches/tether.rs
    pub fn anthropic_settings(&self) -> Value {
        json!({
            "default_provider": "claude",
            "providers": {"claude": {
                "kind": "anthropic",
                "base_url": format!("http://127.0.0.1:{}", self.port),
                "api_key_env": "TETHER_TEST_ANTHROPIC_KEY",
                "model": "claude-test",
                "max_retries": 1,
                "retry_backoff_ms": 10
            }}
        })
    }

    /// The same provider as the user's own config file (for `tether run`, the daemon, and
    /// fronts that send no settings), without retries.
    pub fn user_config(&self) -> String {
        format!(
            "default_provider = \"fake\"\n\n[review]\nauto = false\n\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake-model\"\nmax_retries = 0\n",
            self.base_url()
        )
    }
}

async fn serve(mut socket: TcpStream, shared: Arc<Mutex<Shared>>) {
    let Some((body, headers)) = read_request(&mut socket).await else {
        return;
    };
    // Not a model call (`tether doctor` asks whether the server answers): what a real
    // provider's server says to it, uncounted.
    if headers
        .iter()
        .any(|(key, value)| key == ":method" && value == "GET")
    {
        let _ = write_reply(&mut socket, Reply::Status(404, "not found".to_owned())).await;
        return;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut counted = false;
    let reply = loop {
        {
            let mut shared = shared.lock().expect("lock");
            if let Some((scripted, aside)) = &shared.only
                && !scripted(&body)
            {
                break aside.clone();
            }
            if !counted {
                shared.requests.push(body.clone());
                shared.headers.push(headers.clone());
                counted = true;
            }
            if let Some(reply) = shared.script.pop_front() {
                break reply;
            }
            if !shared.hold || tokio::time::Instant::now() >= deadline {
                break shared
                    .fallback
                    .clone()
                    .unwrap_or_else(|| Reply::Status(500, "no scripted reply left".to_owned()));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = write_reply(&mut socket, reply).await;
}

async fn read_request(socket: &mut TcpStream) -> Option<(Value, Vec<(String, String)>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.lines();
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let mut headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            Some((key.trim().to_lowercase(), value.trim().to_owned()))
        })
        .collect();
    headers.push((":path".to_owned(), path));
    headers.push((":method".to_owned(), method));
    let length: usize = headers
        .iter()
        .find(|(key, _)| key == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = match length {
        0 => Value::Null,
        _ => serde_json::from_slice(&buffer[header_end..header_end + length]).ok()?,
    };
    Some((body, headers))
}

async fn write_reply(socket: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Status(status, body) => {
            let head = format!(
                "HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(body.as_bytes()).await
        }
        Reply::Json(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(body.as_bytes()).await
        }
        Reply::Empty => {
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await
        }
        Reply::Flood(duration) => {
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .await?;
            let until = tokio::time::Instant::now() + duration;
            let mut sent = 0u64;
            while tokio::time::Instant::now() < until {
                let payload = format!("data: {}\n\n", content_chunk(&format!("token{sent} ")));
                socket
                    .write_all(format!("{:x}\r\n{payload}\r\n", payload.len()).as_bytes())
                    .await?;
                sent += 1;
            }
            for data in [finish_chunk(), usage_chunk(11, sent), "[DONE]".to_owned()] {
                let payload = format!("data: {data}\n\n");
                socket
                    .write_all(format!("{:x}\r\n{payload}\r\n", payload.len()).as_bytes())
                    .await?;
            }
            socket.write_all(b"0\r\n\r\n").await?;
            socket.shutdown().await
        }
        Reply::Sse(steps) => {
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .await?;
            for step in steps {
                let payload = match step {
                    Step::Data(data) => format!("data: {data}\n\n"),
                    Step::Raw(raw) => raw,
                    Step::Sleep(pause) => {
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                    Step::Cut => {
                        // Half a chunk, then gone: the client must see a broken stream.
                        socket.write_all(b"40\r\ndata: {\"cho").await?;
                        return socket.shutdown().await;
                    }
                };
                let chunk = format!("{:x}\r\n{payload}\r\n", payload.len());
                socket.write_all(chunk.as_bytes()).await?;
                socket.flush().await?;
            }
            socket.write_all(b"0\r\n\r\n").await?;
            socket.shutdown().await
        }
    }
}

/// One Anthropic Messages stream: a message with one content block, then its stop reason.
#[allow(dead_code)] // used by the agent and task tests, not by benches/tether.rs
fn anthropic_events(block: Value, delta: Value, stop: &str) -> Vec<Value> {
    vec![
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": block}),
        json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": 5}}),
        json!({"type": "message_stop"}),
    ]
}

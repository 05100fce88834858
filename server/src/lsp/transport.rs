//! Framing and message validation between stdio and tower-lsp-server's `Server`.
//!
//! tower-lsp-server 0.23 reads stdin with `FramedRead`, and the first message its codec cannot
//! decode ends that stream, so one malformed message stopped the server. This module owns
//! stdin and stdout instead: it splits stdin into frames in bounded memory, resynchronises
//! after garbage, and hands tower only messages that tower's own `jsonrpc::Request` /
//! `jsonrpc::Response` decode, byte for byte under a `Content-Length` of its own. Every other
//! message gets the JSON-RPC error the spec names, or is logged and skipped where no reply is
//! allowed; requests for `$/` methods, which tower leaves unanswered, get -32601 here. One
//! writer puts tower's output and these replies on stdout, a whole frame at a time.
//!
//! Before a valid request or notification goes to tower, a [`Router`] sees it, in arrival
//! order, and may take it instead (`lsp/routing.rs` takes Tether's own requests and the text
//! notifications): tower-lsp-server runs at most four requests at once and does not keep
//! notification order, so what must never wait behind a slow request, or must stay in order,
//! does not go through it. A taken request is answered through [`Replies`], by the same
//! writer, from a task of its own.
//!
//! It reads only a message's envelope (`jsonrpc`, `id`, `method`, the shape of `params`); it
//! never changes a message, and never touches sessions, handlers or LSP types.

mod message;

use std::io::Read;

use bytes::{Buf, Bytes, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tower_lsp_server::jsonrpc::{self, Id, Request, Response};

use message::{Verdict, check_message};

/// Bodies over this are refused from their header alone: waiting for the bytes would let one
/// bad header hold the memory and stall every message behind it.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
/// A header block longer than this (real ones are under 100 bytes) is garbage.
pub const MAX_HEADER_BLOCK: usize = 4 * 1024;
/// What resynchronisation looks for, compared without regard to ASCII case.
const FRAME_START: &[u8] = b"content-length:";
/// How much of skipped input a log line quotes.
const PREVIEW: usize = 32;
/// The in-memory pipes to and from tower's `Server`.
const PIPE_CAPACITY: usize = 64 * 1024;
/// Error replies waiting for the writer; the reader waits when it is full.
const REPLY_QUEUE: usize = 32;
/// How much one read of stdin takes.
const READ_CHUNK: usize = 64 * 1024;

/// Input that was no frame and has been thrown away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skip {
    pub bytes: usize,
    pub reason: String,
    /// The first bytes skipped, escaped, for the log.
    pub preview: String,
}

/// What the framer found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed {
    /// A whole body, as its header announced it.
    Frame(Bytes),
    /// Garbage up to the next `Content-Length:`.
    Skipped(Skip),
}

#[derive(Debug)]
enum State {
    Header,
    Body(usize),
    /// Throwing input away until a `Content-Length:`; counts what went.
    Resync(Skip),
}

/// Splits a byte stream into LSP frames (`Content-Length: n\r\n\r\n` + n bytes). Memory stays
/// bounded: a header block by [`MAX_HEADER_BLOCK`], a body by the framer's limit, garbage by
/// the length of `Content-Length:`.
#[derive(Debug)]
pub struct Framer {
    buffer: BytesMut,
    state: State,
    max_body: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Self::with_max_body(MAX_BODY)
    }
}

enum HeaderParse {
    Incomplete,
    Complete {
        header_len: usize,
        body_len: usize,
    },
    /// Not a usable header; `block_len` is the length up to its blank line, if it has one.
    Garbage {
        reason: String,
        block_len: Option<usize>,
    },
}

impl Framer {
    pub fn with_max_body(max_body: usize) -> Self {
        Framer {
            buffer: BytesMut::new(),
            state: State::Header,
            max_body,
        }
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The buffer to read more input into, with room for at least one more read.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        self.buffer.reserve(8 * 1024);
        &mut self.buffer
    }

    /// The next frame or skip that the input so far holds; `None` until more input comes.
    pub fn next(&mut self) -> Option<Framed> {
        loop {
            match &mut self.state {
                State::Body(length) => {
                    let length = *length;
                    if self.buffer.len() < length {
                        return None;
                    }
                    self.state = State::Header;
                    return Some(Framed::Frame(self.buffer.split_to(length).freeze()));
                }
                State::Header => match parse_header(&self.buffer, self.max_body) {
                    HeaderParse::Incomplete => return None,
                    HeaderParse::Complete {
                        header_len,
                        body_len,
                    } => {
                        self.buffer.advance(header_len);
                        self.state = State::Body(body_len);
                    }
                    HeaderParse::Garbage { reason, block_len } => {
                        // A whole block that starts as a header is one bad header: it all
                        // goes, with its second `Content-Length` if it has one. Anything else
                        // may hide a frame's start after garbage (`}Content-Length: …`): only
                        // its first byte goes, and the scan looks from there.
                        let drop = match block_len {
                            Some(block_len) if starts_with_frame_start(&self.buffer) => block_len,
                            _ => 1,
                        };
                        let preview = escape(&self.buffer);
                        self.buffer.advance(drop);
                        self.state = State::Resync(Skip {
                            bytes: drop,
                            reason,
                            preview,
                        });
                    }
                },
                State::Resync(skip) => {
                    let (drop, found) = scan_for_frame_start(&self.buffer);
                    skip.bytes += drop;
                    self.buffer.advance(drop);
                    if !found {
                        return None;
                    }
                    let skip = std::mem::take(skip);
                    self.state = State::Header;
                    return Some(Framed::Skipped(skip));
                }
            }
        }
    }

    /// At the end of input: what was left unfinished, if anything.
    pub fn finish(&mut self) -> Option<Skip> {
        let left = self.buffer.len();
        let preview = escape(&self.buffer);
        self.buffer.clear();
        match std::mem::replace(&mut self.state, State::Header) {
            State::Resync(mut skip) => {
                skip.bytes += left;
                Some(skip)
            }
            State::Header if left == 0 => None,
            State::Header => Some(Skip {
                bytes: left,
                reason: "the input ended inside a header".to_owned(),
                preview,
            }),
            State::Body(length) => Some(Skip {
                bytes: left,
                reason: format!("the input ended {left} bytes into a body of {length}"),
                preview,
            }),
        }
    }
}

/// Reads the header block at the start of `buffer`: `Name: value` lines up to a blank line
/// (CRLF, or a bare LF as httparse also takes), exactly one of them `Content-Length`. A block
/// is judged once its blank line is in, so that a bad one is skipped whole.
fn parse_header(buffer: &[u8], max_body: usize) -> HeaderParse {
    let mut body_len = None;
    let mut problem = None;
    let mut start = 0;
    loop {
        let Some(newline) = memchr::memchr(b'\n', &buffer[start..]) else {
            if buffer.len() > MAX_HEADER_BLOCK {
                return HeaderParse::Garbage {
                    reason: format!(
                        "no blank line ends the header within {MAX_HEADER_BLOCK} bytes"
                    ),
                    block_len: None,
                };
            }
            return HeaderParse::Incomplete;
        };
        let line = &buffer[start..start + newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        start += newline + 1;
        if start > MAX_HEADER_BLOCK {
            return HeaderParse::Garbage {
                reason: format!("the header is longer than {MAX_HEADER_BLOCK} bytes"),
                block_len: None,
            };
        }
        if line.is_empty() {
            return match (problem, body_len) {
                (None, Some(body_len)) => HeaderParse::Complete {
                    header_len: start,
                    body_len,
                },
                (problem, _) => HeaderParse::Garbage {
                    reason: problem
                        .unwrap_or_else(|| "the header has no Content-Length".to_owned()),
                    block_len: Some(start),
                },
            };
        }
        if problem.is_none() {
            match header_line(line, max_body) {
                Ok(Some(_)) if body_len.is_some() => {
                    problem = Some("the header has two Content-Lengths".to_owned());
                }
                Ok(Some(length)) => body_len = Some(length),
                Ok(None) => {}
                Err(reason) => problem = Some(reason),
            }
        }
    }
}

/// One header line: the body length if it is `Content-Length`, `None` for another header.
/// Other headers (Content-Type) are ignored: the body is checked as UTF-8 JSON whatever they
/// say, and tower sees only the Content-Length written here.
fn header_line(line: &[u8], max_body: usize) -> Result<Option<usize>, String> {
    let Some(colon) = memchr::memchr(b':', line) else {
        return Err(format!("`{}` is no header line", escape(line)));
    };
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&byte| is_token_byte(byte)) {
        return Err(format!("`{}` is no header name", escape(name)));
    }
    if !name.eq_ignore_ascii_case(b"content-length") {
        return Ok(None);
    }
    parse_length(line[colon + 1..].trim_ascii(), max_body).map(Some)
}

fn parse_length(value: &[u8], max_body: usize) -> Result<usize, String> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "Content-Length `{}` is not a decimal length",
            escape(value)
        ));
    }
    let length = std::str::from_utf8(value)
        .ok()
        .and_then(|digits| digits.parse::<u64>().ok())
        .ok_or_else(|| format!("Content-Length {} is over 2^64", escape(value)))?;
    match usize::try_from(length) {
        Ok(length) if length <= max_body => Ok(length),
        _ => Err(format!(
            "Content-Length {length} is over the limit of {max_body} bytes"
        )),
    }
}

/// RFC 9110 token characters, which header names are made of.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// How many bytes to drop before the next `Content-Length:`, and whether it is there. A
/// partial match at the end is kept, since the rest of it may be in the next read.
fn scan_for_frame_start(buffer: &[u8]) -> (usize, bool) {
    for at in memchr::memchr2_iter(b'c', b'C', buffer) {
        let candidate = &buffer[at..];
        let compared = candidate.len().min(FRAME_START.len());
        if candidate[..compared].eq_ignore_ascii_case(&FRAME_START[..compared]) {
            return (at, compared == FRAME_START.len());
        }
    }
    (buffer.len(), false)
}

fn starts_with_frame_start(buffer: &[u8]) -> bool {
    buffer.len() >= FRAME_START.len()
        && buffer[..FRAME_START.len()].eq_ignore_ascii_case(FRAME_START)
}

/// The first bytes of `bytes`, printable in a log line.
fn escape(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(PREVIEW)];
    let mut text = String::from_utf8_lossy(shown).escape_debug().to_string();
    if shown.len() < bytes.len() {
        text.push('…');
    }
    text
}

/// Stdin as chunks, read on a thread of its own rather than tokio's blocking pool: a read
/// still waiting when the client says `exit` would hold up the runtime's shutdown (tokio
/// waits for its blocking threads), while a plain thread simply ends with the process.
pub fn read_stdin() -> mpsc::Receiver<Bytes> {
    let (sender, receiver) = mpsc::channel(4);
    let spawned = std::thread::Builder::new()
        .name("tether-stdin".to_owned())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buffer = vec![0; READ_CHUNK];
            loop {
                match stdin.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => {
                        let chunk = Bytes::copy_from_slice(&buffer[..read]);
                        if sender.blocking_send(chunk).is_err() {
                            break;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        tracing::error!("cannot read stdin, taking it as closed: {error}");
                        break;
                    }
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!("cannot start the thread that reads stdin: {error}");
    }
    receiver
}

/// Where a valid request or notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To tower-lsp-server, byte for byte.
    Tower,
    /// The router took it (and answers it through [`Replies`] if it is a request).
    Taken,
}

/// Sees every valid request and notification before tower does, in arrival order, on the
/// reading task: it must decide at once and never block (spawn the work, answer later).
pub trait Router {
    fn route(&mut self, message: Request, replies: &Replies) -> Route;
}

/// Answers to taken requests, written by the one writer, each whole.
#[derive(Clone)]
pub struct Replies {
    sender: mpsc::Sender<Bytes>,
    /// The answering tasks: at the end of input their answers are still written (an
    /// editor that closes stdin may still read stdout); `exit` does not wait for them.
    tasks: TaskTracker,
}

impl Replies {
    /// Answers request `id` with what `answer` gives, from a task of its own on the current
    /// runtime. Cancelling it (`$/cancelRequest`) is not supported: it answers when done.
    pub fn answer<F>(&self, id: Id, answer: F)
    where
        F: Future<Output = jsonrpc::Result<Value>> + Send + 'static,
    {
        let sender = self.sender.clone();
        self.tasks.spawn(async move {
            let response = Response::from_parts(id, answer.await);
            match serde_json::to_vec(&response) {
                Ok(reply) => {
                    // Err: the writer is gone, and so is the client.
                    let _ = sender.send(Bytes::from(reply)).await;
                }
                Err(error) => tracing::error!("cannot encode a reply: {error}"),
            }
        });
    }

    /// Waits until every answer started so far is queued for the writer.
    async fn finish(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Serves `input` through `server` (given the two ends of tower's stdin and stdout) to
/// `output`, until the input ends and every request has been answered, or the server stops
/// (`exit`). `router` sees each valid request and notification first.
pub async fn serve<O, R, F, Fut>(input: mpsc::Receiver<Bytes>, output: O, router: R, server: F)
where
    O: AsyncWrite + Unpin,
    R: Router,
    F: FnOnce(DuplexStream, DuplexStream) -> Fut,
    Fut: Future<Output = ()>,
{
    let (to_server, server_input) = tokio::io::duplex(PIPE_CAPACITY);
    let (server_output, from_server) = tokio::io::duplex(PIPE_CAPACITY);
    let (replies, queued_replies) = mpsc::channel(REPLY_QUEUE);
    let replies = Replies {
        sender: replies,
        tasks: TaskTracker::new(),
    };
    let reader = read_input(input, to_server, router, replies);
    let server_and_writer = async {
        tokio::join!(
            server(server_input, server_output),
            write_output(from_server, queued_replies, output)
        )
    };
    tokio::pin!(reader, server_and_writer);
    tokio::select! {
        // The input ended and the reader dropped tower's stdin: tower finishes what it has.
        () = &mut reader => {
            server_and_writer.await;
        }
        // tower stopped (`exit`): whatever else the client sends is not read.
        _ = &mut server_and_writer => {}
    }
}

/// Frames the input, routes valid messages (to the router or to tower, in order) and queues
/// error replies. At the end of input it waits for the router's answers before it lets tower
/// see the end, so that the writer, which ends with tower's output, writes them all.
async fn read_input<R: Router>(
    mut input: mpsc::Receiver<Bytes>,
    mut to_server: DuplexStream,
    mut router: R,
    replies: Replies,
) {
    let mut framer = Framer::default();
    while let Some(chunk) = input.recv().await {
        framer.extend(&chunk);
        while let Some(framed) = framer.next() {
            let body = match framed {
                Framed::Frame(body) => body,
                Framed::Skipped(skip) => {
                    log_skip(&skip);
                    continue;
                }
            };
            match check_message(&body) {
                Verdict::Forward(message) => {
                    let route = match message {
                        Some(message) => router.route(message, &replies),
                        None => Route::Tower,
                    };
                    if route == Route::Taken {
                        continue;
                    }
                    if let Err(error) = write_frame(&mut to_server, &body).await {
                        tracing::debug!("the server stopped reading: {error}");
                        return;
                    }
                }
                Verdict::Reply(response, reason) => {
                    let code = response.error().map(|error| error.code.code());
                    let id = response.id();
                    tracing::warn!(?code, %id, "answered a malformed message: {reason}");
                    match serde_json::to_vec(&response) {
                        Ok(reply) => {
                            if replies.sender.send(Bytes::from(reply)).await.is_err() {
                                return;
                            }
                        }
                        Err(error) => tracing::error!("cannot encode an error reply: {error}"),
                    }
                }
                Verdict::Drop(reason) => {
                    tracing::warn!(
                        bytes = body.len(),
                        preview = %escape(&body),
                        "skipped a malformed message that allows no reply: {reason}"
                    );
                }
            }
        }
    }
    if let Some(skip) = framer.finish() {
        log_skip(&skip);
    }
    replies.finish().await;
}

fn log_skip(skip: &Skip) {
    tracing::warn!(
        bytes = skip.bytes,
        preview = %skip.preview,
        "skipped input that is no LSP message: {}",
        skip.reason
    );
}

/// Writes tower's frames and the queued error replies to `output`, one whole frame at a time.
async fn write_output<O: AsyncWrite + Unpin>(
    mut from_server: DuplexStream,
    mut replies: mpsc::Receiver<Bytes>,
    mut output: O,
) {
    // tower's output is trusted: no body limit.
    let mut framer = Framer::with_max_body(usize::MAX);
    let mut broken = false;
    let mut replies_open = true;
    loop {
        while let Some(framed) = framer.next() {
            match framed {
                Framed::Frame(body) => {
                    // A reply queued by now answers a message that reached tower before the
                    // one this frame may answer: writing it first keeps replies in order.
                    while let Ok(reply) = replies.try_recv() {
                        write_out(&mut output, &reply, &mut broken).await;
                    }
                    write_out(&mut output, &body, &mut broken).await;
                }
                Framed::Skipped(skip) => tracing::error!(
                    bytes = skip.bytes,
                    "tower-lsp-server wrote something that is no frame: {}",
                    skip.reason
                ),
            }
        }
        tokio::select! {
            biased;
            reply = replies.recv(), if replies_open => match reply {
                Some(reply) => write_out(&mut output, &reply, &mut broken).await,
                None => replies_open = false,
            },
            read = from_server.read_buf(framer.read_buffer()) => match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    tracing::error!("cannot read tower-lsp-server's output: {error}");
                    break;
                }
            },
        }
    }
    while let Ok(reply) = replies.try_recv() {
        write_out(&mut output, &reply, &mut broken).await;
    }
}

/// Writes one frame to stdout. Once stdout fails the client is gone: later output is read
/// from tower and dropped, so that tower never blocks on a full pipe.
async fn write_out<O: AsyncWrite + Unpin>(output: &mut O, body: &[u8], broken: &mut bool) {
    if *broken {
        return;
    }
    let written = async {
        write_frame(output, body).await?;
        output.flush().await
    };
    if let Err(error) = written.await {
        tracing::error!("cannot write to stdout, dropping output from now on: {error}");
        *broken = true;
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, body: &[u8]) -> std::io::Result<()> {
    let header = format!("Content-Length: {}\r\n\r\n", body.len());
    writer.write_all(header.as_bytes()).await?;
    writer.write_all(body).await
}

#[cfg(test)]
mod router_tests;
#[cfg(test)]
mod tests;

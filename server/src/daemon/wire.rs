//! What fronts and the daemon send each other over the socket: JSON-RPC 2.0 messages, one per
//! line (compact JSON never holds a raw newline). The session methods are the same
//! `tether/session/*` requests and `tether/session/event` notifications editors use; the
//! `daemon/*` methods are the socket's own.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// The longest line read: a `get` of a long session is large, but not this large.
pub const MAX_LINE: usize = 256 * 1024 * 1024;

/// The first request on every connection: versions are compared before anything else.
pub const HELLO: &str = "daemon/hello";
/// `{}` → DaemonStatus.
pub const STATUS: &str = "daemon/status";
/// Stops every session resumably, flushes, exits.
pub const STOP: &str = "daemon/stop";
/// `{}` → [`Subscribed`]: starts `tether/session/event` notifications on this connection.
pub const SUBSCRIBE: &str = "daemon/subscribe";
/// `{root}` → `{repo}`: loads the sessions of the repository holding `root` (once per daemon).
pub const OPEN: &str = "daemon/open";

/// [`ProfileParams`] → `{}`: an editor's settings, which the sessions it starts follow.
pub const SETTINGS: &str = "daemon/settings";
/// [`StatesParams`] → [`StatesResult`]: sessions' whole state, for a front's mirror.
pub const STATES: &str = "daemon/states";

/// `{id}` → `{files: [FileDiffWithTexts]}`: a session's diff with both sides of each file,
/// for a front's `apply`.
pub const DIFF: &str = "daemon/diff";
/// [`NoteParams`] → `{}`: records what the user did with a session's work in the editor
/// (an apply), for the agent to hear with the next message.
pub const NOTE: &str = "daemon/note";

/// `daemon/note` params.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoteParams {
    pub id: String,
    pub text: String,
}

/// Notification `{sessionId}`: a session was deleted (there is no event for it).
pub const REMOVED: &str = "daemon/removed";

/// `PromoteRequest` → `Promoted`: a task's trial promoted (merge, pr), or for `apply` checked
/// (then recorded once the front has sent the edit, `applied: true`).
pub const PROMOTE: &str = "daemon/promote";

/// `daemon/diff` params.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffParams {
    pub id: String,
}

/// `daemon/diff` result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffResult {
    pub files: Vec<crate::api::FileDiffWithTexts>,
}

/// `daemon/settings` params.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileParams {
    /// The front's profile id (letters, digits, `-`, `_`).
    pub profile: String,
    #[serde(flatten)]
    pub layers: crate::config::EditorLayers,
    /// The values the front's environment holds for the key variables its settings name
    /// (`api_key_env`): the daemon's environment may predate them. Kept in memory only.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub keys: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for ProfileParams {
    // By hand: the keys' values are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileParams")
            .field("profile", &self.profile)
            .field("layers", &self.layers)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `daemon/subscribe` result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscribed {
    pub subscribed: bool,
    /// Each session's `seq` when the subscription started: every later event is sent. A
    /// session not listed is sent from the `seq` the daemon took it up at.
    #[serde(default)]
    pub positions: std::collections::BTreeMap<String, u64>,
}

/// `daemon/states` params.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatesParams {
    /// These sessions (unknown ones are left out); `None`: every session the daemon holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

/// `daemon/states` result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatesResult {
    pub sessions: Vec<SessionStateOf>,
}

/// One session's folded state (without its conversation) and what its events do not say.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStateOf {
    pub state: crate::vocab::SessionState,
    /// Its repository's store is another tether's: it can be read, not changed.
    pub read_only: bool,
    /// The `seq` its log held when the daemon took it up (0: created in this daemon):
    /// every later event was announced to subscribers.
    #[serde(default)]
    pub loaded_seq: u64,
}

/// One message on the socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Message {
    Request {
        jsonrpc: Version,
        id: u64,
        method: String,
        #[serde(default)]
        params: Value,
    },
    Response {
        jsonrpc: Version,
        id: u64,
        #[serde(flatten)]
        outcome: Outcome,
    },
    Notification {
        jsonrpc: Version,
        method: String,
        #[serde(default)]
        params: Value,
    },
}

/// `"2.0"`, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    #[serde(rename = "2.0")]
    V2,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Result(Value),
    Error(WireError),
}

/// A JSON-RPC error, with the same codes the LSP side uses (docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    pub code: i64,
    pub message: String,
}

impl From<crate::host::HostError> for WireError {
    fn from(error: crate::host::HostError) -> WireError {
        WireError {
            code: error.code,
            message: error.message,
        }
    }
}

impl Message {
    pub fn request(id: u64, method: &str, params: Value) -> Message {
        Message::Request {
            jsonrpc: Version::V2,
            id,
            method: method.to_owned(),
            params,
        }
    }

    pub fn response(id: u64, outcome: Result<Value, WireError>) -> Message {
        Message::Response {
            jsonrpc: Version::V2,
            id,
            outcome: match outcome {
                Ok(value) => Outcome::Result(value),
                Err(error) => Outcome::Error(error),
            },
        }
    }

    pub fn notification(method: &str, params: Value) -> Message {
        Message::Notification {
            jsonrpc: Version::V2,
            method: method.to_owned(),
            params,
        }
    }
}

/// Why a line could not be read as a message.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("a message of over {MAX_LINE} bytes")]
    TooLong,
    #[error("not a JSON-RPC message: {0}")]
    Malformed(String),
}

/// Reads the next message; `Ok(None)` at the end of the stream.
pub async fn read_message(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> Result<Option<Message>, ReadError> {
    line.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(ReadError::Malformed(
                    "the stream ended mid-message".to_owned(),
                ))
            };
        }
        let (taken, done) = match memchr::memchr(b'\n', available) {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        if line.len() + taken > MAX_LINE {
            return Err(ReadError::TooLong);
        }
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if done {
            break;
        }
    }
    serde_json::from_slice(line)
        .map(Some)
        .map_err(|error| ReadError::Malformed(error.to_string()))
}

/// Writes one message and its newline.
pub async fn write_message(
    writer: &mut (impl AsyncWrite + Unpin),
    message: &Message,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    writer.write_all(&bytes).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_go_and_come_back_whole() {
        let messages = [
            Message::request(
                1,
                "tether/session/list",
                serde_json::json!({"query": "a\nb"}),
            ),
            Message::response(1, Ok(serde_json::json!({"sessions": []}))),
            Message::response(
                2,
                Err(WireError {
                    code: -31001,
                    message: "unknown session".into(),
                }),
            ),
            Message::notification("tether/session/event", serde_json::json!({"seq": 3})),
        ];
        let mut bytes = Vec::new();
        for message in &messages {
            write_message(&mut bytes, message).await.expect("write");
        }
        let mut reader = tokio::io::BufReader::new(bytes.as_slice());
        let mut line = Vec::new();
        for message in &messages {
            let read = read_message(&mut reader, &mut line).await.expect("read");
            assert_eq!(read.as_ref(), Some(message));
        }
        assert!(
            read_message(&mut reader, &mut line)
                .await
                .expect("end")
                .is_none()
        );
        let mut garbage = tokio::io::BufReader::new(&b"{\"jsonrpc\":\"1.0\"}\n"[..]);
        assert!(matches!(
            read_message(&mut garbage, &mut line).await,
            Err(ReadError::Malformed(_))
        ));
    }
}

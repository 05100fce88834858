//! Which messages tower-lsp-server may see: the envelope of one frame's body is read
//! (`jsonrpc`, `id`, `method`, the shape of `params`, `result` / `error`) and checked against
//! JSON-RPC 2.0 as LSP uses it, then against tower's own public `Request` / `Response` types,
//! so that what is let through always decodes in tower's codec.
//!
//! It decides only; it never changes a message, and never reads `params` beyond their shape
//! (the router, which gets the decoded request, may).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};
use tower_lsp_server::jsonrpc::{self, ErrorCode, Id, Request, Response};

/// What to do with one frame's body.
#[derive(Debug)]
pub enum Verdict {
    /// A valid message: pass it on as it is. A request or notification comes decoded, for
    /// the router to look at; a response does not (it always goes to tower).
    Forward(Option<Request>),
    /// Answer it with this error; the string says why, for the log.
    Reply(Box<Response>, String),
    /// A malformed notification or response: no reply is allowed, so log why and skip it.
    Drop(String),
}

/// tower-lsp-server's own (crate-private) `Message`, rebuilt from its public parts in the same
/// order: whatever decodes here decodes the same way in tower's codec.
#[derive(Deserialize)]
#[serde(untagged)]
enum TowerMessage {
    Response(#[allow(dead_code, reason = "only whether it decodes matters")] Response),
    Request(Request),
}

/// What the envelope says a valid message is.
enum Kind {
    Request(Id),
    Notification,
    Response,
}

fn reply(code: ErrorCode, id: Id, reason: impl Into<String>) -> Verdict {
    let reason = reason.into();
    let error = jsonrpc::Error {
        code,
        message: Cow::Owned(format!("{}: {reason}", code.description())),
        data: None,
    };
    Verdict::Reply(Box::new(Response::from_error(id, error)), reason)
}

/// Decides what happens to one message body.
pub fn check_message(body: &[u8]) -> Verdict {
    // JSON-RPC 2.0 §5.1: when the id cannot be read, the error's id is null.
    let Ok(text) = std::str::from_utf8(body) else {
        return reply(ErrorCode::ParseError, Id::Null, "the body is not UTF-8");
    };
    // serde_json refuses nesting deeper than 128 as a syntax error, before any stack runs out.
    let kind = match serde_json::from_str::<Value>(text) {
        Ok(value) => match classify(&value) {
            Ok(kind) => kind,
            Err(verdict) => return verdict,
        },
        Err(error) => {
            return reply(
                ErrorCode::ParseError,
                Id::Null,
                format!("the body is not JSON ({error})"),
            );
        }
    };
    // The envelope looked right; now tower's own types must agree (they refuse, for one,
    // a member given twice, which a `Value` quietly takes the last of).
    let decoded = serde_json::from_str::<TowerMessage>(text);
    match (kind, decoded) {
        (Kind::Request(id), Ok(TowerMessage::Request(request))) if request.id() == Some(&id) => {
            Verdict::Forward(Some(request))
        }
        (Kind::Notification, Ok(TowerMessage::Request(request))) if request.id().is_none() => {
            Verdict::Forward(Some(request))
        }
        (Kind::Response, Ok(TowerMessage::Response(_))) => Verdict::Forward(None),
        (Kind::Request(id), _) => reply(
            ErrorCode::InvalidRequest,
            id,
            "the request does not decode as one (is a member given twice?)",
        ),
        (Kind::Notification | Kind::Response, _) => Verdict::Drop(
            "the message does not decode as the notification or response it looks like".to_owned(),
        ),
    }
}

/// Reads the envelope: a valid message's kind, or the verdict on an invalid one.
fn classify(value: &Value) -> Result<Kind, Verdict> {
    let Value::Object(members) = value else {
        let reason = match value {
            Value::Array(_) => "a batch (LSP has none)",
            _ => "the message is not an object",
        };
        return Err(reply(ErrorCode::InvalidRequest, Id::Null, reason));
    };
    let id = members.get("id").map(read_id);
    let has_method = members.contains_key("method");
    if !has_method && (members.contains_key("result") || members.contains_key("error")) {
        return check_response(members, id).map_err(Verdict::Drop);
    }
    let problem = envelope_problem(members);
    match id {
        // No id: a notification, which must never be answered.
        None => match problem {
            Some(problem) => Err(Verdict::Drop(format!("a notification: {problem}"))),
            None => Ok(Kind::Notification),
        },
        Some(Err(problem)) => Err(reply(ErrorCode::InvalidRequest, Id::Null, problem)),
        Some(Ok(id)) => {
            if let Some(problem) = problem {
                return Err(reply(ErrorCode::InvalidRequest, id, problem));
            }
            // tower-lsp-server drops the reply to any `$/` method it has no handler for,
            // requests included; a request must be answered.
            match members.get("method").and_then(Value::as_str) {
                Some(method) if method.starts_with("$/") => Err(reply(
                    ErrorCode::MethodNotFound,
                    id,
                    format!("no request `{method}`"),
                )),
                _ => Ok(Kind::Request(id)),
            }
        }
    }
}

/// An id as tower-lsp-server's `Id` takes it: a 64-bit integer, a string or null.
fn read_id(value: &Value) -> Result<Id, String> {
    match value {
        Value::Null => Ok(Id::Null),
        Value::String(text) => Ok(Id::String(text.clone())),
        Value::Number(number) => number
            .as_i64()
            .map(Id::Number)
            .ok_or_else(|| format!("the id {number} is not a 64-bit integer")),
        _ => Err("the id is neither a number, a string nor null".to_owned()),
    }
}

/// What is wrong with a request's or notification's envelope, if anything.
fn envelope_problem(members: &Map<String, Value>) -> Option<&'static str> {
    if members.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some("`jsonrpc` is not \"2.0\"");
    }
    match members.get("method") {
        None => return Some("there is no `method`"),
        Some(Value::String(_)) => {}
        Some(_) => return Some("`method` is not a string"),
    }
    if members.contains_key("result") || members.contains_key("error") {
        return Some("a request cannot have a `result` or an `error`");
    }
    // `null` is let through: clients send it for methods without params (`shutdown`), and
    // tower takes it as no params.
    match members.get("params") {
        None | Some(Value::Null | Value::Object(_) | Value::Array(_)) => None,
        Some(_) => Some("`params` is neither an object nor an array"),
    }
}

fn check_response(
    members: &Map<String, Value>,
    id: Option<Result<Id, String>>,
) -> Result<Kind, String> {
    let problem = match id {
        None => "a response without an id".to_owned(),
        Some(Err(problem)) => format!("a response: {problem}"),
        Some(Ok(_)) if members.get("jsonrpc").and_then(Value::as_str) != Some("2.0") => {
            "a response whose `jsonrpc` is not \"2.0\"".to_owned()
        }
        Some(Ok(_)) if members.contains_key("result") == members.contains_key("error") => {
            "a response with both a `result` and an `error`".to_owned()
        }
        Some(Ok(_)) => return Ok(Kind::Response),
    };
    Err(problem)
}

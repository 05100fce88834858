//! The session protocol as one typed table: one type per `tether/session/*` method, with its
//! params, its result, its name, when it may run and where it belongs.
//!
//! Everything that lists the methods comes from [`METHODS`] (the `experimental.tether.methods`
//! a client is told, the `tether.*` commands) and the dispatch in `lsp/dispatch.rs` is made
//! from [`for_each_method!`], so a method cannot be advertised without a handler or handled
//! without being advertised. docs/protocol.md lists the same methods with the same schedules;
//! a test below fails when the two part.
//!
//! This module is serde only: it knows the session domain's serializable vocabulary (events,
//! findings, modes) and nothing of LSP or tower-lsp-server, because the same table is spoken
//! over a Unix socket between `tether lsp` fronts and the `tether daemon` (DESIGN.md, "Session
//! host"). It never runs anything: handlers live where the work is.

pub mod methods;
mod params;
mod tasks;
mod types;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use methods::METHODS;
pub(crate) use methods::for_each_method;
pub use params::*;
pub use tasks::*;
pub use types::*;

/// The prefix every custom request's name starts with.
pub const METHOD_PREFIX: &str = "tether/session/";
/// The prefix of the `workspace/executeCommand` twin of each request: `tether.<short>`.
pub const COMMAND_PREFIX: &str = "tether.";
/// The session notification, server → client.
pub const SESSION_EVENT: &str = "tether/session/event";
/// The task notification, server → client: `{taskId, task: TaskInfo}`.
pub const TASK_EVENT: &str = "tether/task/event";

/// One custom request of the protocol.
pub trait Method {
    /// The request's name: `tether/session/list`.
    const NAME: &'static str;
    /// Its short name: `list`, which is also command `tether.list`.
    const SHORT: &'static str;
    /// Where the request runs (see [`Schedule`]).
    const SCHEDULE: Schedule;
    /// Which process owns it (see [`Side`]).
    const SIDE: Side;
    /// `null` params (and none, from a command without arguments) mean "all defaults".
    const PARAMS_OPTIONAL: bool = false;
    type Params: DeserializeOwned + Serialize + Send + 'static;
    type Result: Serialize + DeserializeOwned + Send + 'static;
}

/// Where a request runs, declared per method so that nothing slow ever runs on the thread
/// that reads the editor's messages (the way ruff's `api.rs` and rust-analyzer's dispatcher
/// declare theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// Answered inline on the LSP thread from in-memory snapshots; never blocks, never waits
    /// on a lock a session task holds while it writes.
    Snapshot,
    /// Async work that only awaits (a stop's grace period, another task's answer): spawned on
    /// the session runtime.
    Runtime,
    /// Touches git, the disk or a lock held across a write: run on the session runtime's
    /// blocking pool.
    Blocking,
}

impl Schedule {
    /// How docs/protocol.md spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Schedule::Snapshot => "snapshot",
            Schedule::Runtime => "runtime",
            Schedule::Blocking => "blocking",
        }
    }
}

/// Which process a method belongs to once sessions live in the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Session state: runs where the sessions are (the daemon, next).
    Host,
    /// Needs the editor (its documents, `workspace/applyEdit`, `window/showDocument`): runs
    /// in the `tether lsp` front that received it.
    Front,
}

/// A method's entry in [`METHODS`], without its types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MethodInfo {
    pub name: &'static str,
    pub short: &'static str,
    pub schedule: Schedule,
    pub side: Side,
}

impl MethodInfo {
    pub const fn of<M: Method>() -> MethodInfo {
        MethodInfo {
            name: M::NAME,
            short: M::SHORT,
            schedule: M::SCHEDULE,
            side: M::SIDE,
        }
    }

    /// The `workspace/executeCommand` command that runs it: `tether.<short>`.
    pub fn command(&self) -> String {
        format!("{COMMAND_PREFIX}{}", self.short)
    }

    /// The method named `name` (`tether/session/list`).
    pub fn named(name: &str) -> Option<&'static MethodInfo> {
        METHODS.iter().find(|method| method.name == name)
    }

    /// The method command `command` (`tether.list`) runs.
    pub fn for_command(command: &str) -> Option<&'static MethodInfo> {
        let short = command.strip_prefix(COMMAND_PREFIX)?;
        METHODS.iter().find(|method| method.short == short)
    }
}

/// Params that do not fit a method; the message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidParams(pub String);

/// Reads `M`'s params, naming the field at fault: `` invalid params for
/// tether/session/get: `since`: invalid type… ``.
pub fn parse_params<M: Method>(params: serde_json::Value) -> Result<M::Params, InvalidParams> {
    let params = match params {
        // Lua clients encode an empty table as `[]`: no params, as `{}` would be.
        serde_json::Value::Array(items) if items.is_empty() => {
            serde_json::Value::Object(Default::default())
        }
        serde_json::Value::Null if M::PARAMS_OPTIONAL => {
            serde_json::Value::Object(Default::default())
        }
        other => other,
    };
    serde_path_to_error::deserialize(params).map_err(|error| {
        let path = error.path().to_string();
        InvalidParams(if path == "." {
            format!("invalid params for {}: {}", M::NAME, error.inner())
        } else {
            format!(
                "invalid params for {}: `{path}`: {}",
                M::NAME,
                error.inner()
            )
        })
    })
}

/// Application error codes (JSON-RPC reserves -32768..-32000 for itself; LSP uses some).
/// The same on stdio and on the daemon's socket; docs/protocol.md, "Errors".
pub mod error_code {
    pub const UNKNOWN_SESSION: i64 = -31001;
    pub const INVALID_STATE: i64 = -31002;
    pub const READ_ONLY: i64 = -31003;
    pub const REPOSITORY: i64 = -31004;
    pub const CONFIGURATION: i64 = -31005;
    pub const SHUTTING_DOWN: i64 = -31006;
    pub const INTERNAL: i64 = -32603;
}

#[cfg(test)]
mod tests;

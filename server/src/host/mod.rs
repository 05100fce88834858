//! The host side of the session protocol: each `tether/session/*` method that works on
//! session state ([`api::Side::Host`]), run against a [`SessionManager`] with typed params and
//! a typed result. The same code answers an editor in process (`tether lsp --no-daemon`) and
//! every front over the daemon's socket, so the two cannot drift apart.
//!
//! Params arrive complete: a front fills in what only it knows (the default `root`, from the
//! editor's workspace folders) before a request gets here. Methods that need the editor
//! ([`api::Side::Front`]: apply, newSession, openTranscript) are refused here.

mod providers;
mod reviews;
mod sessions;
mod tasks;

pub(crate) use providers::entries as provider_entries;

use std::future::Future;

use serde_json::Value;

use crate::api::{self, Method, Side, error_code, methods};
use crate::session::{SessionError, SessionManager};

/// The JSON-RPC error a host method answers with (codes in docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HostError {
    pub code: i64,
    pub message: String,
}

/// JSON-RPC's own code for params that do not fit.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC's own code for a method that is not served here.
pub const METHOD_NOT_FOUND: i64 = -32601;

impl HostError {
    pub fn invalid_params(message: impl Into<String>) -> HostError {
        HostError {
            code: INVALID_PARAMS,
            message: message.into(),
        }
    }

    pub fn internal(message: impl std::fmt::Display) -> HostError {
        HostError {
            code: error_code::INTERNAL,
            message: message.to_string(),
        }
    }
}

impl From<SessionError> for HostError {
    fn from(error: SessionError) -> HostError {
        let code = match &error {
            SessionError::UnknownSession(_) | SessionError::UnknownTask(_) => {
                error_code::UNKNOWN_SESSION
            }
            SessionError::InvalidState { .. } => error_code::INVALID_STATE,
            SessionError::InvalidParams { .. } => INVALID_PARAMS,
            SessionError::ReadOnly(_) => error_code::READ_ONLY,
            SessionError::Git(_) | SessionError::GitRefused(_) => error_code::REPOSITORY,
            SessionError::Config(_) | SessionError::Provider(_) => error_code::CONFIGURATION,
            SessionError::Store(_) | SessionError::Internal(_) => error_code::INTERNAL,
            SessionError::ShuttingDown => error_code::SHUTTING_DOWN,
        };
        HostError {
            code,
            message: error.to_string(),
        }
    }
}

/// A method the host runs.
pub trait HostMethod: Method {
    fn run(
        manager: SessionManager,
        params: Self::Params,
    ) -> impl Future<Output = Result<Self::Result, HostError>> + Send + 'static;
}

/// Runs method `name` (`tether/session/<short>`) with JSON params; its JSON result. What
/// the daemon answers its fronts with.
pub async fn dispatch(
    manager: &SessionManager,
    name: &str,
    params: Value,
) -> Result<Value, HostError> {
    macro_rules! by_type {
        ($($method:ident),*) => {
            $(
                if name == <methods::$method as Method>::NAME {
                    return run_json::<methods::$method>(manager, params).await;
                }
            )*
        };
    }
    api::for_each_method!(by_type);
    Err(HostError {
        code: METHOD_NOT_FOUND,
        message: format!("unknown method {name:?}"),
    })
}

async fn run_json<M: HostMethod>(
    manager: &SessionManager,
    params: Value,
) -> Result<Value, HostError> {
    let params =
        api::parse_params::<M>(params).map_err(|error| HostError::invalid_params(error.0))?;
    let result = M::run(manager.clone(), params).await?;
    serde_json::to_value(result)
        .map_err(|error| HostError::internal(format!("cannot encode the reply: {error}")))
}

/// The editor-side methods, refused by the host: only a front has the editor they need.
macro_rules! front_only {
    ($($method:ident),*) => {$(
        impl HostMethod for methods::$method {
            async fn run(_: SessionManager, _: Self::Params) -> Result<Self::Result, HostError> {
                debug_assert_eq!(<Self as Method>::SIDE, Side::Front);
                Err(HostError {
                    code: METHOD_NOT_FOUND,
                    message: format!(
                        "{} runs in the editor's front, not in the session host",
                        <Self as Method>::NAME
                    ),
                })
            }
        }
    )*};
}

front_only!(
    Apply,
    NewSession,
    OpenTranscript,
    TaskPromote,
    TaskOpen,
    Completions
);

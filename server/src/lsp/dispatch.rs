//! Runs each `tether/session/*` request where its method says ([`api::Schedule`]): snapshot
//! reads inline on the LSP thread, async work as a task on the session runtime, git and disk
//! work on that runtime's blocking pool. The LSP thread only parses params, starts the work
//! and writes the answer. Handlers return typed results; they become JSON once, here at the
//! edge.
//!
//! The handlers are one [`Handler`] impl per method type (in `handlers/`); [`dispatch`] is
//! made from `api::for_each_method!`, so a method of the table without a handler does not
//! compile. A panic in a handler becomes an internal-error reply to that one request.

use std::future::Future;

use futures_util::FutureExt;
use serde_json::Value;
use tower_lsp_server::jsonrpc;

use super::{Backend, rpc_error};
use crate::api::{self, Method, MethodInfo, Schedule, methods};

/// The work one method does, given the server and its typed params.
pub(crate) trait Handler: Method {
    fn handle(
        backend: Backend,
        params: Self::Params,
    ) -> impl Future<Output = jsonrpc::Result<Self::Result>> + Send + 'static;
}

/// Where scheduled work runs: the session runtime (multi-threaded, a little below the LSP
/// thread's priority), whose blocking pool is not waited for on the way out.
#[derive(Clone)]
pub(crate) struct Scheduler {
    work: tokio::runtime::Handle,
}

impl Scheduler {
    pub(crate) fn new(work: tokio::runtime::Handle) -> Scheduler {
        Scheduler { work }
    }

    /// Runs `work` as `schedule` says, for request `method` (named in a panic's error).
    pub(crate) async fn run<T, F>(
        &self,
        schedule: Schedule,
        method: &'static str,
        work: F,
    ) -> jsonrpc::Result<T>
    where
        T: Send + 'static,
        F: Future<Output = jsonrpc::Result<T>> + Send + 'static,
    {
        let work = answer_or_report_panic(method, work);
        let joined = match schedule {
            Schedule::Snapshot => return work.await,
            Schedule::Runtime => self.work.spawn(work).await,
            Schedule::Blocking => {
                let work_runtime = self.work.clone();
                // `block_on` on a blocking thread: the handler's blocking calls (git, files,
                // a lock held while a log is written) hold that thread and nothing else,
                // while what it spawns or awaits runs on the session runtime.
                self.work
                    .spawn_blocking(move || work_runtime.block_on(work))
                    .await
            }
        };
        joined.unwrap_or_else(|error| {
            Err(rpc_error(
                api::error_code::INTERNAL,
                format!("{method} did not finish: {error}"),
            ))
        })
    }
}

/// Answers request `method` with `params`: waits for the workspace's sessions to be loaded,
/// parses the params (InvalidParams names the field), runs the handler by its schedule.
pub(crate) async fn dispatch(
    backend: &Backend,
    method: &'static MethodInfo,
    params: Value,
) -> jsonrpc::Result<Value> {
    backend.sessions_ready().await;
    macro_rules! by_type {
        ($($method:ident),*) => {
            $(
                if method.short == <methods::$method as Method>::SHORT {
                    return run::<methods::$method>(backend, params).await;
                }
            )*
        };
    }
    api::for_each_method!(by_type);
    // METHODS and the list above are made from the same macro: nothing gets here.
    Err(rpc_error(
        api::error_code::INTERNAL,
        format!("no handler for {}", method.name),
    ))
}

async fn run<M: Handler>(backend: &Backend, params: Value) -> jsonrpc::Result<Value> {
    let params = api::parse_params::<M>(params)
        .map_err(|invalid| jsonrpc::Error::invalid_params(invalid.0))?;
    let handler = M::handle(backend.clone(), params);
    // Written as JSON where the work ran: a large answer (a long log) is encoded off the
    // LSP thread too.
    let work = async move { to_value(handler.await?) };
    backend.scheduler.run(M::SCHEDULE, M::NAME, work).await
}

pub(crate) fn to_value<T: serde::Serialize>(value: T) -> jsonrpc::Result<Value> {
    serde_json::to_value(value).map_err(|error| {
        rpc_error(
            api::error_code::INTERNAL,
            format!("cannot encode the reply: {error}"),
        )
    })
}

/// Runs a handler; a panic inside it becomes an internal-error reply to that one request.
pub(crate) async fn answer_or_report_panic<T>(
    method: &str,
    handler: impl Future<Output = jsonrpc::Result<T>>,
) -> jsonrpc::Result<T> {
    match std::panic::AssertUnwindSafe(handler).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!("handler for {method} panicked: {message}");
            Err(rpc_error(
                api::error_code::INTERNAL,
                format!("internal error in {method}: {message}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests;

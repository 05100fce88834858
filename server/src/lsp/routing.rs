//! Which messages skip tower-lsp-server. tower runs at most four requests at once (its
//! default, and a slow `git push` or log replay would hold one of those slots) and may run
//! notification handlers out of order. So, once the server is initialized:
//! - `tether/session/*` requests, and `workspace/executeCommand` of a `tether.*` command, go
//!   to [`dispatch`](super::dispatch), one task per request, answered through the
//!   transport's writer: any number may be in flight, and none waits for another;
//! - `textDocument/didOpen|didChange|didSave|didClose` go straight to the documents task, in
//!   the order they arrived, so a request after a `didChange` always sees it;
//! - `initialized` and `workspace/didChangeConfiguration` are handled as they are read, so a
//!   request after them finds the transcripts task started and the new settings in force.
//!
//! Everything else (`initialize`, `shutdown`, `exit`, code actions, configuration, responses
//! to the server's own requests) goes to tower, and so does everything before `initialize`
//! has been answered or after `shutdown`, for tower to answer as the spec says (-32002
//! "Server not initialized", -32600 after shutdown). `$/cancelRequest` reaches only tower:
//! a request routed here is not cancelled, it answers when done.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower_lsp_server::jsonrpc::Request;
use tower_lsp_server::ls_types::{
    DidChangeConfigurationParams, DidChangeTextDocumentParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, DidSaveTextDocumentParams, ExecuteCommandParams, MessageType,
};

use super::transport::{Replies, Route, Router};
use super::{Backend, Lifecycle, dispatch, handlers, path_of_uri};
use crate::api::{Method, MethodInfo, methods};

/// Routes the messages of one editor connection (see the module's doc).
pub(crate) struct TetherRouter {
    backend: Backend,
}

impl TetherRouter {
    pub(crate) fn new(backend: Backend) -> TetherRouter {
        TetherRouter { backend }
    }
}

impl Router for TetherRouter {
    fn route(&mut self, message: Request, replies: &Replies) -> Route {
        if self.backend.lifecycle() != Lifecycle::Initialized {
            return Route::Tower;
        }
        match (message.method(), message.id().is_some()) {
            ("shutdown", true) => {
                // tower refuses every request after this one; so does the router, from now.
                self.backend.set_lifecycle(Lifecycle::ShutDown);
                Route::Tower
            }
            ("workspace/executeCommand", true) => self.command(message, replies),
            ("initialized", false) => {
                self.backend.on_initialized();
                Route::Taken
            }
            ("workspace/didChangeConfiguration", false) => self
                .document::<DidChangeConfigurationParams>(message, |backend, params| {
                    backend.on_configuration(params.settings);
                }),
            ("textDocument/didOpen", false) => {
                self.document::<DidOpenTextDocumentParams>(message, |backend, params| {
                    if let Some(path) = path_of_uri(&params.text_document.uri) {
                        let document = params.text_document;
                        backend
                            .documents
                            .open(path, document.version, document.text);
                    }
                })
            }
            ("textDocument/didChange", false) => {
                self.document::<DidChangeTextDocumentParams>(message, |backend, params| {
                    if let Some(path) = path_of_uri(&params.text_document.uri) {
                        let version = params.text_document.version;
                        backend
                            .documents
                            .change(path, version, params.content_changes);
                    }
                })
            }
            ("textDocument/didSave", false) => {
                self.document::<DidSaveTextDocumentParams>(message, |backend, params| {
                    if let Some(path) = path_of_uri(&params.text_document.uri) {
                        backend.documents.saved(path, params.text);
                    }
                })
            }
            ("textDocument/didClose", false) => {
                self.document::<DidCloseTextDocumentParams>(message, |backend, params| {
                    if let Some(path) = path_of_uri(&params.text_document.uri) {
                        backend.documents.close(path);
                    }
                })
            }
            (name, true) => match MethodInfo::named(name) {
                // No `params` member at all: tower's words for it ("Missing params field").
                Some(method) if message.params().is_some() => {
                    let (_, id, params) = message.into_parts();
                    self.answer(method, id, params.unwrap_or_default(), replies)
                }
                _ => Route::Tower,
            },
            _ => Route::Tower,
        }
    }
}

impl TetherRouter {
    /// `workspace/executeCommand` of a known `tether.*` command runs its request with the
    /// first argument as params (none: `{}`); anything else is tower's to refuse.
    fn command(&self, message: Request, replies: &Replies) -> Route {
        let Some(ExecuteCommandParams {
            command, arguments, ..
        }) = read_params(&message)
        else {
            return Route::Tower;
        };
        let Some(method) = MethodInfo::for_command(&command) else {
            return Route::Tower;
        };
        let (_, id, _) = message.into_parts();
        let argument = arguments
            .into_iter()
            .next()
            .unwrap_or_else(|| Value::Object(Default::default()));
        // An editor that runs commands from code actions (Helix) discards their results:
        // where the result is all there is to see (git) or nothing reached the editor
        // (apply), it is shown as a message too.
        if method.short == <methods::Git as Method>::SHORT
            || method.short == <methods::Apply as Method>::SHORT
        {
            let Some(id) = id else {
                return Route::Tower;
            };
            let backend = self.backend.clone();
            replies.answer(id, async move {
                let op = argument["op"].as_str().unwrap_or("?").to_owned();
                let answer = dispatch::dispatch(&backend, method, argument).await;
                if let Ok(result) = &answer
                    && let Some((kind, said)) = command_message(method, &op, result)
                {
                    let client = backend.client.clone();
                    tokio::spawn(async move { client.show_message(kind, said).await });
                }
                answer
            });
            return Route::Taken;
        }
        self.answer(method, id, argument, replies)
    }

    fn answer(
        &self,
        method: &'static MethodInfo,
        id: Option<tower_lsp_server::jsonrpc::Id>,
        params: Value,
        replies: &Replies,
    ) -> Route {
        let Some(id) = id else {
            return Route::Tower;
        };
        let backend = self.backend.clone();
        replies.answer(id, async move {
            dispatch::dispatch(&backend, method, params).await
        });
        Route::Taken
    }

    /// A notification, applied now, before anything read after it (a text change is queued
    /// behind every one before it). Params tower could not read either are left for tower
    /// to log.
    fn document<P: DeserializeOwned>(
        &self,
        message: Request,
        apply: impl FnOnce(&Backend, P),
    ) -> Route {
        match read_params::<P>(&message) {
            Some(params) => {
                apply(&self.backend, params);
                Route::Taken
            }
            None => Route::Tower,
        }
    }
}

/// A message's params as `P`, as tower would read them; `None` when they do not fit.
fn read_params<P: DeserializeOwned>(message: &Request) -> Option<P> {
    P::deserialize(message.params()?).ok()
}

/// The message a command's result is shown as, for [`TetherRouter::command`].
fn command_message(method: &MethodInfo, op: &str, result: &Value) -> Option<(MessageType, String)> {
    if method.short == <methods::Git as Method>::SHORT {
        let result = crate::api::GitResult::deserialize(result).ok()?;
        return Some((
            MessageType::INFO,
            handlers::git_actions::outcome_message(op, &result),
        ));
    }
    let result = crate::api::ApplyResult::deserialize(result).ok()?;
    handlers::apply::command_message(&result)
}

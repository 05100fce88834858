//! The session requests (`tether/session/*` and their `tether.*` command twins): typed params
//! in, typed results out, each run where its method's schedule says (`lsp/dispatch.rs`).

use std::path::PathBuf;

use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::Uri;

use super::super::Backend;
use super::super::dispatch::Handler;
use super::super::transcripts::Request;
use crate::api::{self, Method, methods};
use crate::host::{HostError, HostMethod};

/// The longest path a `root` may name, in bytes (Linux's `PATH_MAX`).
const MAX_ROOT_PATH_BYTES: usize = 4096;

/// A `root` param: a `file://` URI or a path; default the first workspace folder.
pub(super) fn resolve_root(backend: &Backend, root: Option<String>) -> jsonrpc::Result<PathBuf> {
    match root {
        Some(root) => root_path(&root),
        None => backend.roots().into_iter().next().ok_or_else(|| {
            jsonrpc::Error::invalid_params(
                "invalid `root`: no workspace folder is open, so name the repository with `root`",
            )
        }),
    }
}

/// The folder a given `root` names. A path no file system can hold (a NUL byte, longer than
/// `PATH_MAX`) is the caller's mistake, so it is InvalidParams rather than a failure later.
fn root_path(root: &str) -> jsonrpc::Result<PathBuf> {
    let invalid = |why: &str| {
        // The value itself may be huge: show its start only.
        let shown: String = root.chars().take(80).collect();
        let ellipsis = if shown.len() < root.len() { "…" } else { "" };
        jsonrpc::Error::invalid_params(format!("invalid `root` {shown:?}{ellipsis}: {why}"))
    };
    // Percent-encoding triples a byte at most, so a longer URI cannot name a usable path;
    // checked first so a megabyte of text is not parsed.
    if root.len() > MAX_ROOT_PATH_BYTES * 3 {
        return Err(invalid(&format!(
            "it is {} bytes long; a path has at most {MAX_ROOT_PATH_BYTES}",
            root.len()
        )));
    }
    let path = if root.starts_with("file:") {
        root.parse::<Uri>()
            .ok()
            .and_then(|uri| uri.to_file_path().map(|path| path.into_owned()))
            .ok_or_else(|| invalid("it is not a file URI"))?
    } else {
        PathBuf::from(root)
    };
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.contains(&0) {
        return Err(invalid("a path cannot hold a NUL byte"));
    }
    if bytes.len() > MAX_ROOT_PATH_BYTES {
        return Err(invalid(&format!(
            "the path is {} bytes long; a path has at most {MAX_ROOT_PATH_BYTES}",
            bytes.len()
        )));
    }
    Ok(path)
}

/// Runs a host method where the sessions are: in process, or in the daemon.
pub(in crate::lsp) async fn on_host<M: HostMethod>(
    backend: &Backend,
    params: M::Params,
) -> jsonrpc::Result<M::Result> {
    backend.sessions.call::<M>(params).await.map_err(host_error)
}

/// The JSON-RPC error for a host's answer, with the code the host chose.
pub(crate) fn host_error(error: HostError) -> jsonrpc::Error {
    jsonrpc::Error {
        code: jsonrpc::ErrorCode::from(error.code),
        message: error.message.into(),
        data: None,
    }
}

/// Host methods that need nothing of the editor: the params go as they came.
macro_rules! on_host {
    ($($method:ident),*) => {$(
        impl Handler for methods::$method {
            async fn handle(
                backend: Backend,
                params: <Self as Method>::Params,
            ) -> jsonrpc::Result<<Self as Method>::Result> {
                on_host::<Self>(&backend, params).await
            }
        }
    )*};
}

/// `list` answers from what the front holds (the daemon's sessions as its mirror has them,
/// or the manager in process): no round trip to the daemon, and an answer even while the
/// daemon is away.
impl Handler for methods::List {
    async fn handle(backend: Backend, params: api::ListParams) -> jsonrpc::Result<api::ListResult> {
        let sessions = backend.sessions.list(&params.into());
        Ok(api::ListResult {
            sessions: sessions.into_iter().map(api::SessionInfo::from).collect(),
        })
    }
}

on_host!(
    Get,
    Send,
    Stop,
    Resume,
    Complete,
    Clone,
    Export,
    ResetContext,
    Answer,
    DecidePlan,
    Rewind,
    Checkpoints,
    Diff,
    Git,
    Loop,
    StopLoop,
    Findings,
    Review,
    CancelReview,
    FixFinding,
    DismissFinding,
    Feedback,
    EditMessage,
    Attachment,
    Compact,
    DeleteMessage,
    TaskCompare,
    TaskStop
);

/// A `root` the host can use: the one given, as a path, or the first workspace folder.
pub(super) fn root_for_host(
    backend: &Backend,
    root: Option<String>,
) -> jsonrpc::Result<Option<String>> {
    let root = resolve_root(backend, root)?;
    root.to_str()
        .map(|root| Some(root.to_owned()))
        .ok_or_else(|| {
            jsonrpc::Error::invalid_params(format!(
                "invalid `root` {}: tether needs paths in UTF-8",
                root.display()
            ))
        })
}

impl Handler for methods::Create {
    async fn handle(
        backend: Backend,
        mut params: api::CreateParams,
    ) -> jsonrpc::Result<api::SessionInfo> {
        params.root = root_for_host(&backend, params.root)?;
        if let Some(root) = &params.root {
            backend.sessions.follow(root).await;
        }
        params.started_by = Some(backend.started_by());
        if params.settings_profile.is_none() {
            params.settings_profile = backend.sessions.settings_profile();
        }
        let info = on_host::<Self>(&backend, params).await?;
        backend.warn_about_repository_config(info.repo.clone());
        Ok(info)
    }
}

impl Handler for methods::Delete {
    async fn handle(backend: Backend, params: api::IdParams) -> jsonrpc::Result<api::DeleteResult> {
        let deleted = on_host::<Self>(&backend, params).await?;
        // Its findings and its transcript go with it.
        backend.diagnostics_refresh.notify_one();
        backend.transcripts(Request::Reconcile);
        Ok(deleted)
    }
}

impl Handler for methods::Providers {
    async fn handle(
        backend: Backend,
        mut params: api::ProvidersParams,
    ) -> jsonrpc::Result<api::ProvidersResult> {
        // Outside any workspace folder, the user's and the editor's settings alone.
        params.root = match params.root {
            Some(root) => root_for_host(&backend, Some(root))?,
            None => backend
                .roots()
                .into_iter()
                .next()
                .and_then(|root| root.to_str().map(str::to_owned)),
        };
        if params.settings_profile.is_none() {
            params.settings_profile = backend.sessions.settings_profile();
        }
        on_host::<Self>(&backend, params).await
    }
}

impl Handler for methods::Trust {
    async fn handle(
        backend: Backend,
        mut params: api::TrustParams,
    ) -> jsonrpc::Result<api::TrustResult> {
        params.root = root_for_host(&backend, params.root)?;
        on_host::<Self>(&backend, params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_no_file_system_can_hold_is_invalid_params() {
        for root in [
            "/tmp/a\0b".to_owned(),
            "file:///tmp/a%00b".to_owned(),
            format!("/{}", "a".repeat(1 << 20)),
            format!("file:///{}", "a".repeat(5000)),
        ] {
            let error = root_path(&root).expect_err("refused");
            assert_eq!(error.code, jsonrpc::ErrorCode::InvalidParams, "{root:.40}");
            assert!(error.message.contains("`root`"), "{}", error.message);
            assert!(error.message.len() < 300, "{}", error.message);
        }
        assert_eq!(
            root_path("file:///tmp/repo").expect("a file URI"),
            PathBuf::from("/tmp/repo")
        );
        assert_eq!(
            root_path("/tmp/repo").expect("a path"),
            PathBuf::from("/tmp/repo")
        );
    }
}

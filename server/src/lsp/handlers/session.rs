//! The session requests (`tether/session/*` and their `tether.*` command twins): typed params
//! in, typed results out, each run where its method's schedule says (`lsp/dispatch.rs`).

use std::path::PathBuf;

use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::Uri;

use super::super::dispatch::Handler;
use super::super::transcripts::Request;
use super::super::{Backend, rpc_error, session_error};
use crate::api::{self, methods};
use crate::session::{CreateSession, ListFilter, export};

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

/// A domain answer the protocol has no word for: the domain and the protocol disagree.
fn internal(error: impl std::fmt::Display) -> jsonrpc::Error {
    rpc_error(api::error_code::INTERNAL, error.to_string())
}

impl Handler for methods::Create {
    async fn handle(
        backend: Backend,
        params: api::CreateParams,
    ) -> jsonrpc::Result<api::SessionInfo> {
        let root = resolve_root(&backend, params.root)?;
        let info = backend
            .manager
            .create(CreateSession {
                prompt: params.prompt,
                mode: params.mode.unwrap_or_default(),
                name: params.name,
                root,
                base_branch: params.base_branch,
                provider: params.provider,
                model: params.model,
                toggles: params.toggles,
            })
            .await
            .map_err(session_error)?;
        backend.warn_about_repository_config(info.repo.clone());
        Ok(info.into())
    }
}

impl Handler for methods::List {
    async fn handle(backend: Backend, params: api::ListParams) -> jsonrpc::Result<api::ListResult> {
        let sessions = backend.manager.list(&ListFilter {
            status: params.status,
            mode: params.mode,
            query: params.query,
        });
        Ok(api::ListResult {
            sessions: sessions.into_iter().map(api::SessionInfo::from).collect(),
        })
    }
}

impl Handler for methods::Get {
    async fn handle(backend: Backend, params: api::GetParams) -> jsonrpc::Result<api::GetResult> {
        let snapshot = backend
            .manager
            .get(&params.id, params.since)
            .map_err(session_error)?;
        Ok(api::GetResult {
            session: snapshot.session.into(),
            events: snapshot.events,
        })
    }
}

impl Handler for methods::Send {
    async fn handle(
        backend: Backend,
        params: api::SendParams,
    ) -> jsonrpc::Result<api::QueuedResult> {
        let queued = backend
            .manager
            .send(&params.id, params.text)
            .await
            .map_err(session_error)?;
        Ok(api::QueuedResult { queued })
    }
}

impl Handler for methods::Stop {
    async fn handle(backend: Backend, params: api::IdParams) -> jsonrpc::Result<api::SessionInfo> {
        let info = backend.manager.stop(&params.id).await;
        Ok(info.map_err(session_error)?.into())
    }
}

impl Handler for methods::Resume {
    async fn handle(
        backend: Backend,
        params: api::ResumeParams,
    ) -> jsonrpc::Result<api::SessionInfo> {
        let info = backend.manager.resume(&params.id, params.text).await;
        Ok(info.map_err(session_error)?.into())
    }
}

impl Handler for methods::Complete {
    async fn handle(backend: Backend, params: api::IdParams) -> jsonrpc::Result<api::SessionInfo> {
        let info = backend.manager.complete_after_hooks(&params.id).await;
        Ok(info.map_err(session_error)?.into())
    }
}

impl Handler for methods::Clone {
    async fn handle(backend: Backend, params: api::IdParams) -> jsonrpc::Result<api::SessionInfo> {
        let info = backend.manager.clone_session(&params.id).await;
        Ok(info.map_err(session_error)?.into())
    }
}

impl Handler for methods::Delete {
    async fn handle(backend: Backend, params: api::IdParams) -> jsonrpc::Result<api::DeleteResult> {
        backend
            .manager
            .delete(&params.id)
            .await
            .map_err(session_error)?;
        // Its findings and its transcript go with it.
        backend.diagnostics_refresh.notify_one();
        backend.transcripts(Request::Reconcile);
        Ok(api::DeleteResult { deleted: true })
    }
}

impl Handler for methods::Export {
    async fn handle(
        backend: Backend,
        params: api::ExportParams,
    ) -> jsonrpc::Result<api::ExportResult> {
        let (info, events) = backend
            .manager
            .all_events(&params.id)
            .map_err(session_error)?;
        let content = match params.format {
            api::ExportFormat::Markdown => export::to_markdown(&info, &events),
            api::ExportFormat::Json => export::to_json(&info, &events),
        };
        Ok(api::ExportResult { content })
    }
}

impl Handler for methods::ResetContext {
    async fn handle(
        backend: Backend,
        params: api::ResetContextParams,
    ) -> jsonrpc::Result<api::SessionInfo> {
        let info = backend
            .manager
            .reset_context(&params.id, params.summary)
            .await;
        Ok(info.map_err(session_error)?.into())
    }
}

impl Handler for methods::Answer {
    async fn handle(
        backend: Backend,
        params: api::AnswerParams,
    ) -> jsonrpc::Result<api::SessionInfo> {
        let info = backend
            .manager
            .answer(&params.id, &params.question_id, params.answers)
            .await;
        Ok(info.map_err(session_error)?.into())
    }
}

impl Handler for methods::DecidePlan {
    async fn handle(
        backend: Backend,
        params: api::DecidePlanParams,
    ) -> jsonrpc::Result<api::SessionInfo> {
        let decision = crate::session::PlanDecision {
            approved: params.approve,
            feedback: params
                .feedback
                .filter(|feedback| !feedback.trim().is_empty()),
        };
        let info = backend
            .manager
            .decide_plan(&params.id, &params.plan_id, decision)
            .await;
        Ok(info.map_err(session_error)?.into())
    }
}

impl Handler for methods::Rewind {
    async fn handle(
        backend: Backend,
        params: api::RewindParams,
    ) -> jsonrpc::Result<api::RewindResult> {
        let checkpoint = params.checkpoint().ok_or_else(|| {
            jsonrpc::Error::invalid_params(
                "invalid params for tether/session/rewind: give one of `checkpoint` or `turn`",
            )
        })?;
        let undo = backend
            .manager
            .rewind(&params.id, &checkpoint)
            .await
            .map_err(session_error)?;
        Ok(api::RewindResult { undo })
    }
}

impl Handler for methods::Diff {
    async fn handle(backend: Backend, params: api::IdParams) -> jsonrpc::Result<api::DiffResult> {
        let files = backend
            .manager
            .diff(&params.id)
            .await
            .map_err(session_error)?;
        let files = files
            .into_iter()
            .map(api::FileDiff::try_from)
            .collect::<Result<_, _>>()
            .map_err(internal)?;
        Ok(api::DiffResult { files })
    }
}

impl Handler for methods::Git {
    async fn handle(backend: Backend, params: api::GitParams) -> jsonrpc::Result<api::GitResult> {
        let outcome = backend
            .manager
            .git(
                &params.id,
                params.op,
                params.paths.as_deref(),
                params.message.as_deref(),
                params.branch.as_deref(),
            )
            .await
            .map_err(session_error)?;
        Ok(api::GitResult {
            status: outcome.status.into(),
            commit: outcome.commit,
        })
    }
}

impl Handler for methods::Loop {
    async fn handle(backend: Backend, params: api::LoopParams) -> jsonrpc::Result<api::LoopResult> {
        backend
            .manager
            .start_loop(
                &params.id,
                crate::session::LoopRequest {
                    prompt: params.prompt,
                    max_iterations: params.max_iterations,
                    stop_on_exit_signal: params.stop_on_exit_signal,
                    reset_context: params.reset_context,
                    model: params.model,
                },
            )
            .await
            .map_err(session_error)?;
        Ok(api::LoopResult { started: true })
    }
}

impl Handler for methods::StopLoop {
    async fn handle(
        backend: Backend,
        params: api::IdParams,
    ) -> jsonrpc::Result<api::StopLoopResult> {
        backend
            .manager
            .stop_loop(&params.id)
            .await
            .map_err(session_error)?;
        Ok(api::StopLoopResult { stopping: true })
    }
}

impl Handler for methods::Trust {
    async fn handle(
        backend: Backend,
        params: api::TrustParams,
    ) -> jsonrpc::Result<api::TrustResult> {
        let root = resolve_root(&backend, params.root)?;
        backend.manager.trust_hooks(&root).map_err(session_error)?;
        Ok(api::TrustResult { trusted: root })
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

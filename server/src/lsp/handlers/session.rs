//! `tether/session/*` requests (and their `tether.*` command twins).

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::Uri;

use super::super::ext::{
    AnswerParams, CreateParams, DecidePlanParams, ExportFormat, ExportParams, FindingParams,
    FindingsParams, GetParams, GitParams, IdParams, ListParams, LoopParams, NewSessionParams,
    ResetContextParams, ResumeParams, ReviewParams, RewindParams, SendParams, TrustParams,
};
use super::super::transcripts::{Request, show_document};
use super::super::{Backend, session_error};
use crate::session::{CreateSession, ListFilter, export};

/// Parses params, naming the field at fault in the InvalidParams error.
pub(super) fn parse<T: DeserializeOwned>(method: &str, params: Value) -> jsonrpc::Result<T> {
    serde_path_to_error::deserialize(params).map_err(|error| {
        let path = error.path().to_string();
        let message = if path == "." {
            format!(
                "invalid params for tether/session/{method}: {}",
                error.inner()
            )
        } else {
            format!(
                "invalid params for tether/session/{method}: `{path}`: {}",
                error.inner()
            )
        };
        jsonrpc::Error::invalid_params(message)
    })
}

pub(super) fn to_value<T: serde::Serialize>(value: T) -> jsonrpc::Result<Value> {
    serde_json::to_value(value).map_err(|error| jsonrpc::Error {
        code: jsonrpc::ErrorCode::InternalError,
        message: format!("cannot encode the reply: {error}").into(),
        data: None,
    })
}

/// The longest path a `root` may name, in bytes (Linux's `PATH_MAX`).
const MAX_ROOT_PATH_BYTES: usize = 4096;

/// A `root` param: a `file://` URI or a path; default the first workspace folder.
fn resolve_root(backend: &Backend, root: Option<String>) -> jsonrpc::Result<PathBuf> {
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

fn not_ready() -> jsonrpc::Error {
    super::super::rpc_error(
        super::super::ext::error_code::SHUTTING_DOWN,
        "transcripts are not available: the server is not initialized or is shutting down"
            .to_owned(),
    )
}

fn file_uri(path: &std::path::Path) -> String {
    Uri::from_file_path(path).map_or_else(|| path.display().to_string(), |uri| uri.to_string())
}

/// The selected lines of `document` as a fenced block under their place, for a draft.
async fn quote_selection(
    backend: &Backend,
    root: &std::path::Path,
    document: &std::path::Path,
    range: tower_lsp_server::ls_types::Range,
) -> String {
    let open = backend.documents.read(vec![document.to_owned()]).await;
    let text = match open.get(document) {
        Some(buffer) => buffer.text.to_string(),
        None => std::fs::read_to_string(document).unwrap_or_default(),
    };
    let (first, last) = selected_lines(range);
    let lines: Vec<&str> = text
        .lines()
        .skip(first)
        .take((last - first).saturating_add(1))
        .collect();
    let relative = document.strip_prefix(root).unwrap_or(document);
    let language = relative
        .extension()
        .and_then(|ext| ext.to_str())
        .unwrap_or_default();
    format!(
        "{}, lines {}–{}:\n\n```{language}\n{}\n```",
        relative.display(),
        first + 1,
        last + 1,
        lines.join("\n")
    )
}

/// The first and last line (from 0, `first <= last`) a selection covers. A client may send
/// the end before the start (a selection made backwards); it is the same selection.
fn selected_lines(range: tower_lsp_server::ls_types::Range) -> (usize, usize) {
    let (start, end) =
        if (range.end.line, range.end.character) < (range.start.line, range.start.character) {
            (range.end, range.start)
        } else {
            (range.start, range.end)
        };
    let first = start.line as usize;
    // A selection ending at the start of a line does not take that line.
    let last = if end.character == 0 && end.line > start.line {
        end.line as usize - 1
    } else {
        end.line as usize
    };
    (first, last)
}

pub async fn handle(backend: &Backend, method: &str, params: Value) -> jsonrpc::Result<Value> {
    let manager = &backend.manager;
    match method {
        "create" => {
            let params: CreateParams = parse(method, params)?;
            let root = resolve_root(backend, params.root)?;
            let info = manager
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
            to_value(info)
        }
        "list" => {
            let params: ListParams = if params.is_null() {
                ListParams::default()
            } else {
                parse(method, params)?
            };
            let sessions = manager.list(&ListFilter {
                status: params.status,
                mode: params.mode,
                query: params.query,
            });
            Ok(json!({ "sessions": to_value(sessions)? }))
        }
        "get" => {
            let params: GetParams = parse(method, params)?;
            to_value(
                manager
                    .get(&params.id, params.since)
                    .map_err(session_error)?,
            )
        }
        "send" => {
            let params: SendParams = parse(method, params)?;
            let queued = manager
                .send(&params.id, params.text)
                .await
                .map_err(session_error)?;
            Ok(json!({ "queued": queued }))
        }
        "stop" => {
            let params: IdParams = parse(method, params)?;
            to_value(manager.stop(&params.id).await.map_err(session_error)?)
        }
        "resume" => {
            let params: ResumeParams = parse(method, params)?;
            to_value(
                manager
                    .resume(&params.id, params.text)
                    .await
                    .map_err(session_error)?,
            )
        }
        "complete" => {
            let params: IdParams = parse(method, params)?;
            to_value(
                manager
                    .complete_after_hooks(&params.id)
                    .await
                    .map_err(session_error)?,
            )
        }
        "clone" => {
            let params: IdParams = parse(method, params)?;
            to_value(
                manager
                    .clone_session(&params.id)
                    .await
                    .map_err(session_error)?,
            )
        }
        "delete" => {
            let params: IdParams = parse(method, params)?;
            manager.delete(&params.id).await.map_err(session_error)?;
            // Its findings and its transcript go with it.
            backend.diagnostics_refresh.notify_one();
            backend.transcripts(Request::Reconcile);
            Ok(json!({ "deleted": true }))
        }
        "answer" => {
            let params: AnswerParams = parse(method, params)?;
            to_value(
                manager
                    .answer(&params.id, &params.question_id, params.answers)
                    .await
                    .map_err(session_error)?,
            )
        }
        "decidePlan" => {
            let params: DecidePlanParams = parse(method, params)?;
            let decision = crate::session::PlanDecision {
                approved: params.approve,
                feedback: params
                    .feedback
                    .filter(|feedback| !feedback.trim().is_empty()),
            };
            to_value(
                manager
                    .decide_plan(&params.id, &params.plan_id, decision)
                    .await
                    .map_err(session_error)?,
            )
        }
        "diff" => {
            let params: IdParams = parse(method, params)?;
            let files = manager.diff(&params.id).await.map_err(session_error)?;
            Ok(json!({ "files": to_value(files)? }))
        }
        "apply" => super::apply::handle(backend, params).await,
        "openTranscript" => {
            let params: IdParams = parse(method, params)?;
            let (reply, answer) = tokio::sync::oneshot::channel();
            if !backend.transcripts(Request::Show {
                id: params.id,
                reply,
            }) {
                return Err(not_ready());
            }
            let path = answer
                .await
                .map_err(|_| not_ready())?
                .map_err(session_error)?;
            show_document(&backend.client, &path);
            Ok(json!({ "uri": file_uri(&path) }))
        }
        "newSession" => {
            let params: NewSessionParams = if params.is_null() {
                NewSessionParams::default()
            } else {
                parse(method, params)?
            };
            let document = params
                .uri
                .as_ref()
                .and_then(|uri| uri.to_file_path().map(|path| path.into_owned()));
            let root = match (&params.root, &document) {
                (None, Some(document)) => backend
                    .roots()
                    .into_iter()
                    .find(|root| document.starts_with(root))
                    .map_or_else(|| resolve_root(backend, None), Ok)?,
                _ => resolve_root(backend, params.root)?,
            };
            let context = match (document, params.range) {
                (Some(document), Some(range)) if range.start != range.end => {
                    Some(quote_selection(backend, &root, &document, range).await)
                }
                _ => None,
            };
            let (reply, answer) = tokio::sync::oneshot::channel();
            if !backend.transcripts(Request::Draft {
                root,
                context,
                reply,
            }) {
                return Err(not_ready());
            }
            let path = answer.await.map_err(|_| not_ready())?.map_err(|error| {
                super::super::rpc_error(super::super::ext::error_code::INTERNAL, error)
            })?;
            show_document(&backend.client, &path);
            Ok(json!({ "uri": file_uri(&path) }))
        }
        "findings" => {
            let params: FindingsParams = parse(method, params)?;
            let Some(findings) = params.findings else {
                let findings: Vec<Value> = manager
                    .session_findings(&params.id)
                    .map_err(session_error)?
                    .into_iter()
                    .map(|(source, finding)| {
                        let mut value = serde_json::to_value(finding).unwrap_or_default();
                        value["source"] = json!(source);
                        value
                    })
                    .collect();
                return Ok(json!({ "findings": findings }));
            };
            let item_id = manager
                .record_findings(&params.id, params.source, params.status, findings)
                .await
                .map_err(session_error)?;
            Ok(json!({ "itemId": item_id }))
        }
        "review" => {
            let params: ReviewParams = parse(method, params)?;
            let item_id = manager
                .start_review(&params.id, params.kind)
                .await
                .map_err(session_error)?;
            Ok(json!({ "itemId": item_id }))
        }
        "loop" => {
            let params: LoopParams = parse(method, params)?;
            manager
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
            Ok(json!({ "started": true }))
        }
        "trust" => {
            let params: TrustParams = if params.is_null() {
                TrustParams::default()
            } else {
                parse(method, params)?
            };
            let root = resolve_root(backend, params.root)?;
            manager.trust_hooks(&root).map_err(session_error)?;
            Ok(json!({ "trusted": root }))
        }
        "stopLoop" => {
            let params: IdParams = parse(method, params)?;
            manager.stop_loop(&params.id).await.map_err(session_error)?;
            Ok(json!({ "stopping": true }))
        }
        "git" => {
            let params: GitParams = parse(method, params)?;
            manager
                .git(
                    &params.id,
                    params.op,
                    params.paths.as_deref(),
                    params.message.as_deref(),
                    params.branch.as_deref(),
                )
                .await
                .map_err(session_error)
        }
        "cancelReview" => {
            let params: ReviewParams = parse(method, params)?;
            manager
                .cancel_review(&params.id, params.kind)
                .await
                .map_err(session_error)?;
            Ok(json!({ "canceled": true }))
        }
        "fixFinding" => {
            let params: FindingParams = parse(method, params)?;
            let queued = manager
                .fix_finding(&params.id, &params.finding_id)
                .await
                .map_err(session_error)?;
            Ok(json!({ "queued": queued }))
        }
        "dismissFinding" => {
            let params: FindingParams = parse(method, params)?;
            manager
                .dismiss_finding(&params.id, &params.finding_id)
                .await
                .map_err(session_error)?;
            Ok(json!({ "dismissed": true }))
        }
        "rewind" => {
            let params: RewindParams = parse(method, params)?;
            let checkpoint = params.checkpoint().ok_or_else(|| {
                jsonrpc::Error::invalid_params(
                    "invalid params for tether/session/rewind: give one of `checkpoint` or `turn`",
                )
            })?;
            let undo = manager
                .rewind(&params.id, &checkpoint)
                .await
                .map_err(session_error)?;
            Ok(json!({ "undo": undo }))
        }
        "resetContext" => {
            let params: ResetContextParams = parse(method, params)?;
            to_value(
                manager
                    .reset_context(&params.id, params.summary)
                    .await
                    .map_err(session_error)?,
            )
        }
        "export" => {
            let params: ExportParams = parse(method, params)?;
            let (info, events) = manager.all_events(&params.id).map_err(session_error)?;
            let content = match params.format {
                ExportFormat::Markdown => export::to_markdown(&info, &events),
                ExportFormat::Json => export::to_json(&info, &events),
            };
            Ok(json!({ "content": content }))
        }
        other => Err(jsonrpc::Error::invalid_params(format!(
            "unknown method tether/session/{other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use tower_lsp_server::ls_types::{Position, Range};

    use super::*;

    fn range(start: (u32, u32), end: (u32, u32)) -> Range {
        Range {
            start: Position::new(start.0, start.1),
            end: Position::new(end.0, end.1),
        }
    }

    #[test]
    fn a_backwards_selection_quotes_the_same_lines_as_a_forwards_one() {
        assert_eq!(selected_lines(range((2, 4), (5, 1))), (2, 5));
        assert_eq!(selected_lines(range((5, 1), (2, 4))), (2, 5));
        // Ending at the start of a line leaves that line out, either way round.
        assert_eq!(selected_lines(range((2, 4), (5, 0))), (2, 4));
        assert_eq!(selected_lines(range((5, 0), (2, 4))), (2, 4));
        // Within one line, backwards.
        assert_eq!(selected_lines(range((3, 9), (3, 2))), (3, 3));
        // The widest a client can send does not overflow.
        assert_eq!(
            selected_lines(range((u32::MAX, 1), (0, 0))),
            (0, u32::MAX as usize)
        );
    }

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

//! The requests that open a document in the editor that asked: a new session's draft
//! (`newSession`, quoting a selection) and a session's transcript (`openTranscript`). Both
//! ask the transcripts task and answer with the document's URI; `window/showDocument` goes
//! out from a task of its own.

use std::path::{Path, PathBuf};

use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::Uri;

use super::super::dispatch::Handler;
use super::super::transcripts::{Request, show_document};
use super::super::{Backend, rpc_error, session_error};
use super::session::resolve_root;
use crate::api::{self, methods};

fn not_ready() -> jsonrpc::Error {
    rpc_error(
        api::error_code::SHUTTING_DOWN,
        "transcripts are not available: the server is not initialized or is shutting down"
            .to_owned(),
    )
}

fn file_uri(path: &Path) -> String {
    Uri::from_file_path(path).map_or_else(|| path.display().to_string(), |uri| uri.to_string())
}

impl Handler for methods::OpenTranscript {
    async fn handle(backend: Backend, params: api::IdParams) -> jsonrpc::Result<api::UriResult> {
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
        Ok(api::UriResult {
            uri: file_uri(&path),
        })
    }
}

impl Handler for methods::NewSession {
    async fn handle(
        backend: Backend,
        params: api::NewSessionParams,
    ) -> jsonrpc::Result<api::UriResult> {
        let uri = match params.uri.as_deref().map(str::parse::<Uri>).transpose() {
            Ok(uri) => uri,
            Err(error) => {
                return Err(jsonrpc::Error::invalid_params(format!(
                    "invalid params for {}: `uri`: {error}",
                    <methods::NewSession as api::Method>::NAME
                )));
            }
        };
        let document = uri.and_then(|uri| uri.to_file_path().map(|path| path.into_owned()));
        let root = match (&params.root, &document) {
            (None, Some(document)) => backend
                .roots()
                .into_iter()
                .find(|root| document.starts_with(root))
                .map_or_else(|| resolve_root(&backend, None), Ok)?,
            _ => resolve_root(&backend, params.root)?,
        };
        let context = match (document, params.range) {
            (Some(document), Some(range)) if range.start != range.end => {
                Some(quote_selection(&backend, root.clone(), document, range).await)
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
        let path = answer
            .await
            .map_err(|_| not_ready())?
            .map_err(|error| rpc_error(api::error_code::INTERNAL, error))?;
        show_document(&backend.client, &path);
        Ok(api::UriResult {
            uri: file_uri(&path),
        })
    }
}

/// The selected lines of `document` as a fenced block under their place, for a draft.
async fn quote_selection(
    backend: &Backend,
    root: PathBuf,
    document: PathBuf,
    range: api::Range,
) -> String {
    let open = backend.documents.read(vec![document.clone()]).await;
    let buffer = open.get(&document).map(|buffer| buffer.text.to_string());
    // A document the editor does not have open is read from disk, off the async threads.
    let quoted = tokio::task::spawn_blocking(move || {
        let text = buffer.unwrap_or_else(|| std::fs::read_to_string(&document).unwrap_or_default());
        quote(&root, &document, &text, range)
    })
    .await;
    quoted.unwrap_or_default()
}

fn quote(root: &Path, document: &Path, text: &str, range: api::Range) -> String {
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
fn selected_lines(range: api::Range) -> (usize, usize) {
    let (start, end) = if range.end < range.start {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: (u32, u32), end: (u32, u32)) -> api::Range {
        let position = |(line, character)| api::Position { line, character };
        api::Range {
            start: position(start),
            end: position(end),
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
    fn a_quote_names_the_file_and_its_lines() {
        let quoted = quote(
            Path::new("/r"),
            Path::new("/r/src/a.rs"),
            "zero\none\ntwo\nthree\n",
            range((1, 0), (3, 0)),
        );
        assert_eq!(quoted, "src/a.rs, lines 2–3:\n\n```rs\none\ntwo\n```");
    }
}

//! Completions: `tether/session/completions` for a client's own message box, and
//! `textDocument/completion` in transcript documents and the new-session draft. Both find
//! the word at the cursor and ask [`crate::lsp::completion`] off the LSP thread.

use std::path::PathBuf;

use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::{
    CompletionItem, CompletionItemKind, CompletionParams, CompletionResponse, CompletionTextEdit,
    Position, Range, TextEdit,
};

use super::super::Backend;
use super::super::completion::{complete, word_at_end};
use super::super::dispatch::Handler;
use super::super::transcripts::{repository_of_document, session_of_transcript};
use super::session::resolve_root;
use crate::api::{self, CompletionKind, methods};
use crate::vocab::AgentCommand;

/// The repository and the agent's commands for a session (or the given root).
fn place(
    backend: &Backend,
    id: Option<&str>,
    root: Option<PathBuf>,
) -> Option<(PathBuf, Vec<AgentCommand>)> {
    if let Some(id) = id {
        let session = backend
            .sessions
            .list(&Default::default())
            .into_iter()
            .find(|session| session.id == id)?;
        let commands = session
            .agent
            .map(|facts| facts.commands)
            .unwrap_or_default();
        return Some((session.repo, commands));
    }
    let root = root?;
    let repo = crate::workspace::discover(&root)
        .map(|found| found.root)
        .unwrap_or(root);
    Some((repo, Vec::new()))
}

async fn completions_for(
    backend: &Backend,
    repo: PathBuf,
    commands: Vec<AgentCommand>,
    word: String,
) -> Vec<api::Completion> {
    let files = backend.files.clone();
    tokio::task::spawn_blocking(move || complete(&files, &repo, &commands, &word))
        .await
        .unwrap_or_default()
}

impl Handler for methods::Completions {
    async fn handle(
        backend: Backend,
        params: api::CompletionsParams,
    ) -> jsonrpc::Result<api::CompletionsResult> {
        let line = params.text.rsplit('\n').next().unwrap_or_default();
        let Some(word) = word_at_end(line).map(str::to_owned) else {
            return Ok(api::CompletionsResult {
                word: String::new(),
                items: Vec::new(),
            });
        };
        let root = match &params.id {
            Some(_) => None,
            None => Some(resolve_root(&backend, params.root)?),
        };
        let (repo, commands) = place(&backend, params.id.as_deref(), root).ok_or_else(|| {
            jsonrpc::Error::invalid_params("no session with that `id`".to_owned())
        })?;
        let items = completions_for(&backend, repo, commands, word.clone()).await;
        Ok(api::CompletionsResult { word, items })
    }
}

/// `textDocument/completion`: in a transcript document (for its session) or the draft (for
/// its repository); nothing elsewhere.
pub async fn document_completions(
    backend: &Backend,
    params: CompletionParams,
) -> Option<CompletionResponse> {
    let position = params.text_document_position.position;
    let uri = params.text_document_position.text_document.uri;
    let path = uri.to_file_path()?.into_owned();
    let repo = repository_of_document(&path)?.to_owned();
    let open = backend.documents.read(vec![path.clone()]).await;
    let document = open.get(&path).filter(|document| document.in_sync)?;
    let line = document.text.get_line(position.line as usize)?.to_string();
    let utf8 = backend.documents.utf8();
    // The cursor's byte offset in the line, from the client's position encoding.
    let mut units = 0u32;
    let mut cursor = line.len();
    for (offset, character) in line.char_indices() {
        if units >= position.character {
            cursor = offset;
            break;
        }
        units += if utf8 {
            character.len_utf8() as u32
        } else {
            character.len_utf16() as u32
        };
    }
    let before = &line[..cursor];
    let word = word_at_end(before)?.to_owned();
    // The draft has no session: only the repository's commands.
    let commands = session_of_transcript(&backend.sessions, &path)
        .and_then(|session| session.agent)
        .map(|facts| facts.commands)
        .unwrap_or_default();
    let width = |text: &str| -> u32 {
        if utf8 {
            text.len() as u32
        } else {
            text.encode_utf16().count() as u32
        }
    };
    let start = Position::new(
        position.line,
        position.character.saturating_sub(width(&word)),
    );
    let range = Range::new(start, position);
    let items = completions_for(backend, repo, commands, word)
        .await
        .into_iter()
        .enumerate()
        .map(|(rank, item)| CompletionItem {
            label: item.label.clone(),
            kind: Some(match item.kind {
                CompletionKind::File => CompletionItemKind::FILE,
                CompletionKind::Command => CompletionItemKind::FUNCTION,
            }),
            detail: (!item.detail.is_empty()).then(|| item.detail.clone()),
            // The matcher's order is the order shown.
            sort_text: Some(format!("{rank:04}")),
            filter_text: Some(item.label.clone()),
            text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                range,
                new_text: item.insert,
            })),
            ..Default::default()
        })
        .collect();
    Some(CompletionResponse::List(
        tower_lsp_server::ls_types::CompletionList {
            is_incomplete: true,
            items,
        },
    ))
}

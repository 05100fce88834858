//! `tether/session/apply`: a session's changes as one `WorkspaceEdit` on the user's files.
//!
//! Each file's edit is computed against what the user has now — the open buffer when the
//! editor has one, the file on disk otherwise — so unsaved work is never clobbered; hunks on
//! lines the user changed too are reported as conflicts and left out. The edit goes to the
//! client with `workspace/applyEdit` from a task of its own (a handler never waits on the
//! client); its answer is recorded in the session, and the hunks the user left out are told
//! to the agent.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::{
    CreateFile, CreateFileOptions, DeleteFile, DocumentChangeOperation, DocumentChanges,
    MessageType, OneOf, OptionalVersionedTextDocumentIdentifier, RenameFile, ResourceOp,
    TextDocumentEdit, TextEdit, Uri, WorkspaceEdit,
};

use super::super::dispatch::Handler;
use super::super::{Backend, rpc_error, session_error};
use crate::api::{self, ApplyParams, methods};
use crate::workspace::FileDiff;
use crate::workspace::edits;

mod outcome;
mod select;

pub use outcome::{FileOutcome, command_message};
use outcome::{outcome, rejection_note, summarize};
use select::select;

/// How long the client may take to answer `workspace/applyEdit` (it may ask the user).
const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the client can take.
#[derive(Debug, Clone, Copy, Default)]
pub struct EditSupport {
    pub document_changes: bool,
    pub create: bool,
    pub rename: bool,
    pub delete: bool,
}

/// The user's copy of a file: an open buffer or the file on disk.
struct UserCopy {
    text: Option<String>,
    /// The buffer's version when the editor has it open.
    version: Option<i32>,
    /// The buffer saw a change out of order: it cannot be edited safely.
    out_of_sync: bool,
}

impl Handler for methods::Apply {
    async fn handle(backend: Backend, params: ApplyParams) -> jsonrpc::Result<api::ApplyResult> {
        apply(&backend, params).await
    }
}

pub(super) async fn apply(
    backend: &Backend,
    params: ApplyParams,
) -> jsonrpc::Result<api::ApplyResult> {
    let manager = &backend.sessions;
    let info = manager.info(&params.id).map_err(session_error)?;
    let diff = manager
        .diff(&params.id)
        .await
        .map_err(super::session::host_error)?;
    let wanted = select(&params, &diff)?;

    let root = info.repo.clone();
    let mut paths = Vec::new();
    for file in diff.iter().filter(|file| wanted.contains_key(&file.path)) {
        paths.push(root.join(&file.path));
        if let Some(old_path) = &file.old_path {
            paths.push(root.join(old_path));
        }
    }
    let open = backend.documents.read(paths).await;
    let support = backend.edit_support();
    let utf8 = backend.documents.utf8();
    // Reading files and diffing large ones is work for a blocking thread, not the one that
    // answers the editor.
    let carried = tokio::task::spawn_blocking(move || {
        let user_copy = |relative: &str| -> UserCopy {
            let path = root.join(relative);
            match open.get(&path) {
                Some(document) => UserCopy {
                    text: Some(document.text.to_string()),
                    version: Some(document.version),
                    out_of_sync: !document.in_sync,
                },
                None => UserCopy {
                    text: std::fs::read_to_string(&path).ok(),
                    version: None,
                    out_of_sync: false,
                },
            }
        };
        let mut operations = Vec::new();
        let mut outcomes = Vec::new();
        for file in diff {
            let Some(selected) = wanted.get(&file.path) else {
                continue;
            };
            if std::iter::once(&file.path)
                .chain(&file.old_path)
                .any(|relative| leads_outside(&root, relative))
            {
                outcomes.push(
                    skipped(
                        &file,
                        "in your workspace it is reached through a symbolic link that leads outside the repository",
                    )
                    .0,
                );
                continue;
            }
            let (mut outcome, file_operations) =
                carry_file(&root, &file, selected.as_ref(), &user_copy, support, utf8);
            outcome.carried = !file_operations.is_empty();
            operations.extend(file_operations);
            outcomes.push(outcome);
        }
        (operations, outcomes)
    })
    .await;
    let (operations, mut outcomes) = carried.map_err(|error| {
        rpc_error(
            api::error_code::INTERNAL,
            format!("computing the edit failed: {error}"),
        )
    })?;
    // With `reject`, the agent hears of the hunks the user rejected, not of those merely
    // left for later.
    if let Some(reject) = &params.reject {
        for outcome in &mut outcomes {
            let rejected = reject.get(&outcome.path);
            let told = |index: &usize| rejected.is_some_and(|rejected| rejected.contains(index));
            outcome.rejected.retain(told);
            outcome.rejected_hunks.retain(|hunk| told(&hunk.index));
        }
    }

    let summary = summarize(&info.name, &outcomes, params.reject.is_some());
    let sent = !operations.is_empty();
    if sent {
        let edit = if support.document_changes {
            WorkspaceEdit {
                document_changes: Some(DocumentChanges::Operations(operations)),
                ..Default::default()
            }
        } else {
            plain_changes(operations)
        };
        send_edit(
            backend,
            params.id.clone(),
            info.name.clone(),
            edit,
            summary.clone(),
            rejection_note(&outcomes, true),
        );
    } else if let Some(note) = rejection_note(&outcomes, false) {
        // Nothing to edit; hunks the user rejected are still the agent's to hear of. What
        // the user sees is the client's to say from the result (routing says it for a
        // `tether.apply` command, whose result Helix discards).
        let manager = backend.sessions.clone();
        let (id, name) = (params.id.clone(), info.name.clone());
        tokio::spawn(async move {
            if let Err(error) = manager.note(&id, note).await {
                tracing::warn!("could not tell {name} of the rejected hunks: {error}");
            }
        });
    }
    Ok(api::ApplyResult {
        sent,
        files: outcomes
            .iter()
            .map(FileOutcome::to_wire)
            .collect::<jsonrpc::Result<_>>()?,
        summary,
    })
}

fn skipped(
    file: &FileDiff,
    reason: impl Into<String>,
) -> (FileOutcome, Vec<DocumentChangeOperation>) {
    let mut outcome = outcome(file);
    outcome.skipped = Some(reason.into());
    (outcome, Vec::new())
}

/// Whether `relative`, in the user's workspace at `root`, reaches outside it through a
/// symbolic link (a folder the repository links elsewhere, or the file itself): an edit
/// there would let the session's changes land outside the repository.
fn leads_outside(root: &Path, relative: &str) -> bool {
    let Ok(root) = root.canonicalize() else {
        return true;
    };
    let path = root.join(relative);
    // The deepest part of the path that exists decides where the rest would go.
    let mut existing = path.as_path();
    while std::fs::symlink_metadata(existing).is_err() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => return true,
        }
    }
    match existing.canonicalize() {
        Ok(real) => !real.starts_with(&root),
        // A dangling link: where it points is not ours to create.
        Err(_) => true,
    }
}

fn uri_of(root: &Path, relative: &str) -> Option<Uri> {
    Uri::from_file_path(root.join(relative))
}

/// One file's part of the edit.
fn carry_file(
    root: &Path,
    file: &FileDiff,
    selected: Option<&BTreeSet<usize>>,
    user_copy: &dyn Fn(&str) -> UserCopy,
    support: EditSupport,
    utf8: bool,
) -> (FileOutcome, Vec<DocumentChangeOperation>) {
    if file.binary {
        return skipped(file, "a binary file; take it from the session's worktree");
    }
    // Nothing of it selected (every hunk rejected): no edit, not even a created file.
    if selected.is_some_and(BTreeSet::is_empty) {
        let mut outcome = outcome(file);
        let base = match file.status {
            "added" => "",
            _ => file.base_text.as_deref().unwrap_or_default(),
        };
        outcome.rejected_hunks = edits::hunks(base, file.new_text.as_deref().unwrap_or_default());
        outcome.rejected = outcome
            .rejected_hunks
            .iter()
            .map(|hunk| hunk.index)
            .collect();
        return (outcome, Vec::new());
    }
    let (Some(uri), Some(source_uri)) = (
        uri_of(root, &file.path),
        uri_of(root, file.old_path.as_deref().unwrap_or(&file.path)),
    ) else {
        return skipped(file, "the path cannot be written as a file URI");
    };
    let base = file.base_text.as_deref().unwrap_or_default();
    let new = file.new_text.as_deref().unwrap_or_default();
    let source = user_copy(file.old_path.as_deref().unwrap_or(&file.path));
    if source.out_of_sync {
        return skipped(
            file,
            "the editor's buffer is out of sync with tether; close and reopen it, then apply again",
        );
    }
    let mut operations = Vec::new();
    match file.status {
        "added" if source.text.is_none() => {
            if !support.create {
                return skipped(
                    file,
                    "the editor cannot create files (no resourceOperations)",
                );
            }
            operations.push(DocumentChangeOperation::Op(ResourceOp::Create(
                CreateFile {
                    uri: uri.clone(),
                    options: Some(CreateFileOptions {
                        overwrite: Some(false),
                        ignore_if_exists: Some(false),
                    }),
                    annotation_id: None,
                },
            )));
        }
        "deleted" => {
            let Some(current) = source.text else {
                return (outcome(file), operations);
            };
            if current != base {
                let mut outcome = outcome(file);
                outcome.conflicts.push(0);
                return (outcome, operations);
            }
            if !support.delete {
                return skipped(
                    file,
                    "the editor cannot delete files (no resourceOperations)",
                );
            }
            operations.push(DocumentChangeOperation::Op(ResourceOp::Delete(
                DeleteFile {
                    uri,
                    options: None,
                    annotation_id: None,
                },
            )));
            let mut outcome = outcome(file);
            outcome.applied.push(0);
            return (outcome, operations);
        }
        "renamed" => {
            if user_copy(&file.path).text.is_some() {
                return skipped(
                    file,
                    format!("{} already exists in your workspace", file.path),
                );
            }
            if source.text.is_none() {
                return skipped(file, "you no longer have the file it renames");
            }
            if !support.rename {
                return skipped(
                    file,
                    "the editor cannot rename files (no resourceOperations)",
                );
            }
        }
        _ => {
            if source.text.is_none() {
                return skipped(file, "you no longer have this file");
            }
        }
    }

    let current = source.text.unwrap_or_default();
    let base_for_plan = if file.status == "added" { "" } else { base };
    let plan = edits::plan(base_for_plan, new, &current, selected);
    let mut outcome = outcome(file);
    outcome.applied = plan.applied.iter().map(|hunk| hunk.index).collect();
    outcome.conflicts = plan.conflicts.iter().map(|hunk| hunk.index).collect();
    outcome.rejected = plan.rejected.iter().map(|hunk| hunk.index).collect();
    outcome.rejected_hunks = plan.rejected.clone();
    if file.status == "renamed" {
        if !plan.conflicts.is_empty() || !plan.rejected.is_empty() {
            // Half a rename is worse than none.
            outcome.skipped =
                Some("a rename is applied whole, and some of its hunks were not".to_owned());
            return (outcome, Vec::new());
        }
        operations.push(DocumentChangeOperation::Op(ResourceOp::Rename(
            RenameFile {
                old_uri: source_uri,
                new_uri: uri.clone(),
                options: None,
                annotation_id: None,
            },
        )));
    }
    if !plan.changes.is_empty() {
        let version = match file.status {
            "renamed" | "added" => None,
            _ => source.version,
        };
        operations.push(DocumentChangeOperation::Edit(TextDocumentEdit {
            text_document: OptionalVersionedTextDocumentIdentifier { uri, version },
            edits: crate::lsp::documents::text_edits(&plan.changes, utf8)
                .into_iter()
                .map(OneOf::Left)
                .collect(),
        }));
    }
    (outcome, operations)
}

/// For a client without `documentChanges`: text edits only (resource operations were
/// already skipped, as such a client cannot take them).
fn plain_changes(operations: Vec<DocumentChangeOperation>) -> WorkspaceEdit {
    let mut changes: HashMap<Uri, Vec<TextEdit>> = HashMap::new();
    for operation in operations {
        if let DocumentChangeOperation::Edit(edit) = operation {
            changes
                .entry(edit.text_document.uri)
                .or_default()
                .extend(edit.edits.into_iter().map(|edit| match edit {
                    OneOf::Left(edit) => edit,
                    OneOf::Right(annotated) => annotated.text_edit,
                }));
        }
    }
    WorkspaceEdit {
        changes: Some(changes),
        ..Default::default()
    }
}

/// Sends the edit from a task of its own and records the client's answer.
fn send_edit(
    backend: &Backend,
    id: String,
    name: String,
    edit: WorkspaceEdit,
    summary: String,
    note: Option<String>,
) {
    let client = backend.client.clone();
    let manager = backend.sessions.clone();
    tokio::spawn(async move {
        let answer = tokio::time::timeout(APPLY_TIMEOUT, client.apply_edit(edit)).await;
        match answer {
            Ok(Ok(response)) if response.applied => {
                let mut text = format!("Applied to the workspace: {summary}.");
                if let Some(note) = note {
                    text.push_str("\n\n");
                    text.push_str(&note);
                }
                if let Err(error) = manager.note(&id, text).await {
                    tracing::warn!("could not record the apply of {name}: {error}");
                }
            }
            Ok(Ok(response)) => {
                let reason = response
                    .failure_reason
                    .unwrap_or_else(|| "no reason given".to_owned());
                client
                    .show_message(
                        MessageType::WARNING,
                        format!("tether: the editor did not apply {name}'s changes ({reason}); they are still in the session's worktree"),
                    )
                    .await;
            }
            Ok(Err(error)) => {
                client
                    .show_message(
                        MessageType::WARNING,
                        format!("tether: applying {name}'s changes failed ({error}); they are still in the session's worktree"),
                    )
                    .await;
            }
            Err(_) => {
                tracing::warn!(
                    "the editor did not answer applyEdit for {name} within {APPLY_TIMEOUT:?}"
                );
            }
        }
    });
}

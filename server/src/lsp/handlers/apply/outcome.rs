//! What became of each file of an apply: what the client is told, the line a person reads,
//! and the note the agent gets about the hunks the user rejected.

use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::MessageType;

use super::super::super::rpc_error;
use crate::api;
use crate::workspace::FileDiff;
use crate::workspace::edits::Hunk;

/// What became of one file: what the client is told ([`api::ApplyFileOutcome`]) and what
/// the agent is told.
#[derive(Debug)]
pub struct FileOutcome {
    pub path: String,
    pub status: &'static str,
    /// Indices of the hunks in the edit.
    pub applied: Vec<usize>,
    /// Hunks on lines the user changed too, left out.
    pub conflicts: Vec<usize>,
    /// Hunks the user did not select.
    pub rejected: Vec<usize>,
    /// Why the whole file was left out, if it was.
    pub skipped: Option<String>,
    /// The rejected hunks with their lines, for the note to the agent.
    pub(super) rejected_hunks: Vec<Hunk>,
    /// Something of this file is in the edit (hunks, or a file operation alone).
    pub(super) carried: bool,
}

impl FileOutcome {
    pub(super) fn to_wire(&self) -> jsonrpc::Result<api::ApplyFileOutcome> {
        let status = api::FileChange::from_name(self.status).ok_or_else(|| {
            rpc_error(
                api::error_code::INTERNAL,
                format!(
                    "{}: the diff names a change {:?} that the protocol does not know",
                    self.path, self.status
                ),
            )
        })?;
        Ok(api::ApplyFileOutcome {
            path: self.path.clone(),
            status,
            applied: self.applied.clone(),
            conflicts: self.conflicts.clone(),
            rejected: self.rejected.clone(),
            skipped: self.skipped.clone(),
        })
    }
}

/// A file's outcome before anything of it is carried.
pub(super) fn outcome(file: &FileDiff) -> FileOutcome {
    FileOutcome {
        path: file.path.clone(),
        status: file.status,
        applied: Vec::new(),
        conflicts: Vec::new(),
        rejected: Vec::new(),
        skipped: None,
        rejected_hunks: Vec::new(),
        carried: false,
    }
}

/// One line a person reads: "2 files, 1 hunk in conflict (src/a.rs #1)"; the rejected hunks
/// too when the user named them (`reject`).
pub(super) fn summarize(name: &str, outcomes: &[FileOutcome], with_rejected: bool) -> String {
    let carried = outcomes.iter().filter(|outcome| outcome.carried).count();
    let mut parts = vec![format!(
        "{carried} file{} from {name}",
        if carried == 1 { "" } else { "s" }
    )];
    let listed = |pick: &dyn Fn(&FileOutcome) -> &Vec<usize>| -> Vec<String> {
        outcomes
            .iter()
            .flat_map(|outcome| {
                pick(outcome)
                    .iter()
                    .map(move |index| format!("{} #{index}", outcome.path))
            })
            .collect()
    };
    let conflicts = listed(&|outcome| &outcome.conflicts);
    if !conflicts.is_empty() {
        parts.push(format!(
            "{} hunk(s) left out because you changed the same lines ({})",
            conflicts.len(),
            conflicts.join(", ")
        ));
    }
    let rejected = listed(&|outcome| &outcome.rejected);
    if with_rejected && !rejected.is_empty() {
        parts.push(format!(
            "{} hunk(s) rejected ({})",
            rejected.len(),
            rejected.join(", ")
        ));
    }
    for outcome in outcomes {
        if let Some(reason) = &outcome.skipped {
            parts.push(format!("{} not applied: {reason}", outcome.path));
        }
    }
    parts.join("; ")
}

/// What the agent is told about hunks the user chose not to take, with the changes the user
/// `applied` or alone.
pub(super) fn rejection_note(outcomes: &[FileOutcome], applied: bool) -> Option<String> {
    let lines: Vec<String> = outcomes
        .iter()
        .flat_map(|outcome| {
            outcome.rejected_hunks.iter().map(|hunk| {
                format!(
                    "- {} hunk #{} (lines {}–{} of your version)",
                    outcome.path,
                    hunk.index,
                    hunk.new_start,
                    hunk.new_start + hunk.new_lines.saturating_sub(1)
                )
            })
        })
        .collect();
    (!lines.is_empty()).then(|| {
        let lead = if applied {
            "The user applied your changes to their workspace but rejected these hunks"
        } else {
            "The user reviewed your changes and rejected these hunks"
        };
        format!(
            "{lead}:\n{}\nThose changes are not in the user's copy.",
            lines.join("\n")
        )
    })
}

/// What a `tether.apply` command shows when nothing reached the editor (Helix runs it from
/// a code action and discards its result): a rejection that was only told to the agent, or
/// why nothing applied. An edit that went out speaks for itself.
pub fn command_message(result: &api::ApplyResult) -> Option<(MessageType, String)> {
    if result.sent {
        return None;
    }
    let only_rejected = result.files.iter().any(|file| !file.rejected.is_empty())
        && result
            .files
            .iter()
            .all(|file| file.conflicts.is_empty() && file.skipped.is_none());
    Some(if only_rejected {
        (
            MessageType::INFO,
            format!("tether: {}; the agent is told", result.summary),
        )
    } else {
        (
            MessageType::WARNING,
            format!("tether: nothing to apply: {}", result.summary),
        )
    })
}

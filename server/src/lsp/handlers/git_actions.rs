//! Git on a session's branch from a transcript document's code actions (for Helix, which has
//! nothing else): stage everything, commit what is staged (its message: the session's
//! title), push, pull, merge into the base, pull the base in. Each runs
//! `tether/session/git`; run as a command, its outcome is said with `window/showMessage`
//! ([`outcome_message`]), as an editor that discards a command's result shows nothing else.

use std::path::Path;

use tower_lsp_server::ls_types::CodeActionOrCommand;

use super::code_action::action;
use crate::api::{self, methods};
use crate::front::Sessions;
use crate::lsp::transcripts::session_of_transcript;
use crate::workspace::operations::Operation;

/// The git actions for the session whose transcript is `path`, once its turn is over.
pub fn actions(sessions: &Sessions, path: &Path) -> Vec<CodeActionOrCommand> {
    let Some(session) = session_of_transcript(sessions, path) else {
        return Vec::new();
    };
    if session.read_only || session.status.is_active() {
        return Vec::new();
    }
    let base = &session.base_branch;
    let name = &session.name;
    let params = |op: Operation, message: Option<String>| api::GitParams {
        id: session.id.clone(),
        op,
        paths: None,
        message,
        branch: None,
        title: None,
        body: None,
    };
    let title = session.title.lines().next().unwrap_or(name).to_owned();
    [
        (
            format!("Git: status of {name}"),
            params(Operation::Status, None),
        ),
        (
            format!("Git: stage every change of {name}"),
            params(Operation::Stage, None),
        ),
        (
            format!("Git: commit what is staged in {name} as \"{title}\""),
            params(Operation::Commit, Some(title.clone())),
        ),
        (format!("Git: push {name}"), params(Operation::Push, None)),
        (format!("Git: pull {name}"), params(Operation::Pull, None)),
        (
            format!("Git: merge {name} into {base}"),
            params(Operation::MergeToBase, None),
        ),
        (
            format!("Git: pull {base} into {name}"),
            params(Operation::PullFromBase, None),
        ),
    ]
    .into_iter()
    .map(|(title, params)| action::<methods::Git>(format!("tether: {title}"), &params))
    .collect()
}

/// What a git command's result says, in one line: "tether/x → main: 1 ahead, 0 behind; 2
/// changed files; committed 1a2b3c4d5e".
pub fn outcome_message(op: &str, result: &api::GitResult) -> String {
    let status = &result.status;
    let mut said = format!(
        "tether git {op}: {} → {}: {} ahead, {} behind",
        status.branch, status.base_branch, status.ahead_of_base, status.behind_base,
    );
    if let Some(upstream) = &status.upstream {
        said.push_str(&format!(
            "; {}: {} to push, {} to pull",
            upstream.name, upstream.ahead, upstream.behind
        ));
    }
    said.push_str(&format!("; {} changed file(s)", status.files.len()));
    if let Some(commit) = &result.commit {
        let short = commit.get(..10).unwrap_or(commit);
        said.push_str(&format!("; committed {short}"));
    }
    said
}

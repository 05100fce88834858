//! The `run_command` tool: a shell command in the worktree, in the session's sandbox
//! ([`crate::sandbox`]), with a timeout and a cap on its output; afterwards the worktree's
//! gitlink is put back if the command changed it, and the files it changed are found by
//! comparing snapshots of the worktree ([`snapshot`]) taken into the session's private index
//! before and after it.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::context::{FileChange, ToolContext, ToolOutcome, cap};
use crate::workspace::snapshot::{self, Snapshot};

#[derive(Deserialize)]
pub(super) struct CommandArgs {
    command: String,
    timeout_secs: Option<u64>,
}

pub(super) async fn run_command(
    context: &ToolContext,
    args: CommandArgs,
    cancel: &CancellationToken,
) -> Result<ToolOutcome, String> {
    let timeout = args
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(context.command_timeout)
        .min(context.command_timeout);
    let before = take_snapshot(context).await;
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(&args.command)
        .current_dir(context.worktree())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut spawned = crate::sandbox::groups::spawn(&context.jail, command)?;
    let ended = tokio::select! {
        result = spawned.output() => Ok(result),
        () = tokio::time::sleep(timeout) => {
            Err(format!("the command timed out after {} s and was killed", timeout.as_secs()))
        }
        () = cancel.cancelled() => Err("the command was stopped".to_owned()),
    };
    let (status, out, err) = match ended {
        Ok(result) => result,
        Err(message) => {
            spawned.kill();
            return Err(match restore_gitlink(context) {
                Some(note) => format!("{message}\n{note}"),
                None => message,
            });
        }
    };
    let restored = restore_gitlink(context);
    let code = status
        .and_then(|status| status.code())
        .map_or_else(|| "killed".to_owned(), |code| code.to_string());
    let mut output = String::from_utf8_lossy(&out).into_owned();
    let err = String::from_utf8_lossy(&err);
    if !err.is_empty() {
        output.push_str(&err);
    }
    let mut output = cap(&output);
    for note in spawned.note.iter().chain(restored.iter()) {
        output.push_str(&format!("\n{note}"));
    }
    let file_changes = match (before, take_snapshot(context).await) {
        (Some(before), Some(after)) => changes_between(context, before, after).await,
        _ => Vec::new(),
    };
    Ok(ToolOutcome {
        is_error: code != "0",
        file_changes,
        ..ToolOutcome::ok(format!("exit code {code}\n{output}"))
    })
}

/// Puts the worktree's `.git` back if the command changed it; says so for the model.
pub(crate) fn restore_gitlink(context: &ToolContext) -> Option<String> {
    match context.git.restore_gitlink() {
        Ok(false) => None,
        Ok(true) => Some(
            "[the command changed the worktree's .git; Tether put it back: the worktree's git directory is fixed]"
                .to_owned(),
        ),
        Err(error) => {
            tracing::warn!(
                "cannot restore the gitlink of {}: {error}",
                context.worktree().display()
            );
            Some(format!("[the worktree's .git could not be put back: {error}]"))
        }
    }
}

/// The worktree as `git add -A` would record it, in the session's private index; `None`
/// (and no changes reported) if it cannot be taken.
pub(crate) async fn take_snapshot(context: &ToolContext) -> Option<Snapshot> {
    match snapshot::take(&context.git, &context.private_index).await {
        Ok(snapshot) => Some(snapshot),
        Err(error) => {
            tracing::warn!(
                "cannot snapshot the worktree {}: {error}",
                context.worktree().display()
            );
            None
        }
    }
}

/// The files that differ between two snapshots, with their line counts.
pub(crate) async fn changes_between(
    context: &ToolContext,
    before: Snapshot,
    after: Snapshot,
) -> Vec<FileChange> {
    match snapshot::changes(&context.git, before, after).await {
        Ok(changed) => changed
            .into_iter()
            .map(|file| FileChange {
                path: file.path,
                additions: file.additions,
                deletions: file.deletions,
            })
            .collect(),
        Err(error) => {
            tracing::warn!(
                "cannot compare snapshots of the worktree {}: {error}",
                context.worktree().display()
            );
            Vec::new()
        }
    }
}

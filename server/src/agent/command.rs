//! The `run_command` tool: a shell command in the worktree, in the session's sandbox
//! ([`crate::sandbox`]), with a timeout and a cap on its output; afterwards the worktree's
//! gitlink is put back if the command changed it, and the files it changed are found by
//! comparing snapshots of the worktree taken through the session's private index.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::context::{FileChange, ToolContext, ToolOutcome, cap};
use crate::workspace::git;

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
    let before = snapshot_tree(context).await;
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
    let file_changes = match (before, snapshot_tree(context).await) {
        (Some(before), Some(after)) if before != after => {
            changes_between(context, &before, &after).await
        }
        _ => Vec::new(),
    };
    Ok(ToolOutcome {
        is_error: code != "0",
        file_changes,
        ..ToolOutcome::ok(format!("exit code {code}\n{output}"))
    })
}

/// Puts the worktree's `.git` back if the command changed it; says so for the model.
fn restore_gitlink(context: &ToolContext) -> Option<String> {
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

/// Runs git on the worktree (its pinned git directory) with the session's private index,
/// so that the worktree's own index is never touched; stdout, or `None` if git failed.
async fn git_with_own_index(context: &ToolContext, args: &[&str]) -> Option<String> {
    git::tether(context.git.place(), args, Some(&context.private_index))
        .await
        .ok()
}

/// The worktree's files (honouring .gitignore) as a git tree id. The private index starts
/// as a copy of the worktree's, so only changed files are hashed.
async fn snapshot_tree(context: &ToolContext) -> Option<String> {
    let index = &context.private_index;
    if !index.exists() {
        if let Some(folder) = index.parent() {
            let _ = std::fs::create_dir_all(folder);
        }
        let _ = std::fs::copy(context.git.git_dir.join("index"), index);
    }
    git::add_everything(context.git.place(), index).await.ok()?;
    git_with_own_index(context, &["write-tree"]).await
}

/// The files that differ between two trees, with their line counts.
async fn changes_between(context: &ToolContext, before: &str, after: &str) -> Vec<FileChange> {
    let Some(numstat) =
        git_with_own_index(context, &["diff-tree", "-r", "--numstat", before, after]).await
    else {
        return Vec::new();
    };
    numstat
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let additions = fields.next()?.parse().unwrap_or(0); // "-" for binary files
            let deletions = fields.next()?.parse().unwrap_or(0);
            Some(FileChange {
                path: fields.next()?.to_owned(),
                additions,
                deletions,
            })
        })
        .collect()
}

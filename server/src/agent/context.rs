//! What every tool works with: the context a tool call runs in, what it reports back, and the
//! lexical path check every model-named path goes through.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::sandbox::Jail;
use crate::workspace::SessionWorktree;

/// At most this much of a command's output is kept (its head and its tail).
const COMMAND_OUTPUT_LIMIT: usize = 30_000;

/// Where and how tools run.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// Chat sessions and `read-only` mode: no writes, no commands.
    pub read_only: bool,
    /// `ask` mode: writes and commands need the user's permission.
    pub ask_permission: bool,
    /// Scopes that need no permission (`session.allow`).
    pub allowed_scopes: Vec<String>,
    pub command_timeout: Duration,
    /// The sandbox commands run in (with the session's temp dir, their `TMPDIR`).
    pub jail: Jail,
    /// The worktree (canonicalized) with its pinned git directory.
    pub git: SessionWorktree,
    /// The session's private index, outside anything a command may write.
    pub private_index: PathBuf,
}

impl ToolContext {
    /// The worktree, canonicalized.
    pub fn worktree(&self) -> &Path {
        &self.git.work_tree
    }
}

/// A file a tool changed, with its line counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub additions: u64,
    pub deletions: u64,
}

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    /// What the model is told.
    pub output: String,
    pub is_error: bool,
    pub file_changes: Vec<FileChange>,
    /// `finish` was called (with `exit_signal` when it said so).
    pub finished: Option<bool>,
}

impl ToolOutcome {
    pub fn ok(output: impl Into<String>) -> ToolOutcome {
        ToolOutcome {
            output: output.into(),
            is_error: false,
            file_changes: Vec::new(),
            finished: None,
        }
    }

    pub fn error(output: impl Into<String>) -> ToolOutcome {
        ToolOutcome {
            is_error: true,
            ..ToolOutcome::ok(output)
        }
    }
}

/// Checks a model's path lexically and returns it relative to the worktree, without `.`
/// or `..`; or says why it may not be used. Symbolic links are checked when the path is
/// opened ([`super::beneath`]), where no command can swap them in between.
pub fn resolve(path: &str) -> Result<PathBuf, String> {
    let relative = Path::new(path);
    if path.is_empty() {
        return Err("the path is empty".to_owned());
    }
    if path.contains('\0') {
        return Err(format!("{path:?} holds a NUL byte"));
    }
    if relative.is_absolute() {
        return Err(format!(
            "{path:?} is absolute; use a path relative to the repository root"
        ));
    }
    let mut resolved = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                if resolved.as_os_str().is_empty() && part == ".git" {
                    return Err(format!(
                        "{path:?} is inside .git, which tools may not touch"
                    ));
                }
                resolved.push(part);
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if !resolved.pop() {
                    return Err(format!("{path:?} leaves the repository"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{path:?} leaves the repository"));
            }
        }
    }
    Ok(resolved)
}

/// Keeps the head and the tail of a long output.
pub(super) fn cap(text: &str) -> String {
    if text.len() <= COMMAND_OUTPUT_LIMIT {
        return text.to_owned();
    }
    let half = COMMAND_OUTPUT_LIMIT / 2;
    let head_end = text.floor_char_boundary(half);
    let tail_start = text.ceil_char_boundary(text.len() - half);
    format!(
        "{}\n[… {} bytes cut …]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

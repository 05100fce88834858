//! The agent's tools, all confined to the session's worktree.
//!
//! Every path a model names is resolved against the worktree and refused if it leaves it:
//! an absolute path, `..` above the root, a symlink pointing out, or the worktree's `.git`.
//! A refused call writes nothing and tells the model why.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::provider::ToolDefinition;

/// At most this much of a file is returned by one read.
const READ_LIMIT: usize = 200_000;
/// At most this many search matches are returned.
const SEARCH_LIMIT: usize = 200;
/// At most this much of a command's output is kept (its head and its tail).
const COMMAND_OUTPUT_LIMIT: usize = 30_000;

/// Where and how tools run.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The worktree, canonicalized.
    pub worktree: PathBuf,
    /// Chat sessions and `read-only` mode: no writes, no commands.
    pub read_only: bool,
    /// `ask` mode: writes and commands need the user's permission.
    pub ask_permission: bool,
    /// Scopes that need no permission (`session.allow`).
    pub allowed_scopes: Vec<String>,
    pub command_timeout: Duration,
    /// The session's own temp dir (`TMPDIR` for commands), writable in the sandbox.
    pub temp_dir: PathBuf,
    pub sandbox: super::sandbox::SandboxMode,
    /// Whether commands may use the network (TCP).
    pub network: bool,
    /// Environment variables commands must not see (API keys, `[secrets] env`).
    pub hidden_env: Vec<String>,
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

pub fn definitions() -> Vec<ToolDefinition> {
    let path = json!({"type": "string", "description": "A path relative to the repository root"});
    vec![
        ToolDefinition {
            name: "read_file",
            description: "Read a text file, optionally only lines start_line..=end_line (1-based).",
            parameters: json!({"type": "object", "properties": {
                "path": path, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}},
                "required": ["path"]}),
        },
        ToolDefinition {
            name: "list_directory",
            description: "List a directory's entries (folders end with /).",
            parameters: json!({"type": "object", "properties": {"path": path}}),
        },
        ToolDefinition {
            name: "search",
            description: "Search files for a regular expression, honouring .gitignore. Returns path:line: text.",
            parameters: json!({"type": "object", "properties": {
                "pattern": {"type": "string"}, "path": path}, "required": ["pattern"]}),
        },
        ToolDefinition {
            name: "edit_file",
            description: "Replace old_string, which must occur exactly once, with new_string.",
            parameters: json!({"type": "object", "properties": {
                "path": path, "old_string": {"type": "string"}, "new_string": {"type": "string"}},
                "required": ["path", "old_string", "new_string"]}),
        },
        ToolDefinition {
            name: "write_file",
            description: "Create or overwrite a file with content.",
            parameters: json!({"type": "object", "properties": {
                "path": path, "content": {"type": "string"}}, "required": ["path", "content"]}),
        },
        ToolDefinition {
            name: "delete_file",
            description: "Delete a file.",
            parameters: json!({"type": "object", "properties": {"path": path}, "required": ["path"]}),
        },
        ToolDefinition {
            name: "move_file",
            description: "Move or rename a file.",
            parameters: json!({"type": "object", "properties": {"from": path, "to": path},
                "required": ["from", "to"]}),
        },
        ToolDefinition {
            name: "run_command",
            description: "Run a shell command in the repository root; returns its exit code and output.",
            parameters: json!({"type": "object", "properties": {
                "command": {"type": "string"}, "timeout_secs": {"type": "integer"}},
                "required": ["command"]}),
        },
        ToolDefinition {
            name: "ask_user",
            description: "Ask the user one or more questions and wait for the answers. kind: text (free answer), single (one of options, or another answer), multi (any of options).",
            parameters: json!({"type": "object", "properties": {"questions": {"type": "array", "items": {
                "type": "object", "properties": {
                    "prompt": {"type": "string"},
                    "kind": {"type": "string", "enum": ["text", "single", "multi"]},
                    "options": {"type": "array", "items": {"type": "string"}}},
                "required": ["prompt"]}}}, "required": ["questions"]}),
        },
        ToolDefinition {
            name: "propose_plan",
            description: "Propose a plan (phases with subtasks) and wait for the user to approve or reject it with feedback.",
            parameters: json!({"type": "object", "properties": {"phases": {"type": "array", "items": {
                "type": "object", "properties": {
                    "title": {"type": "string"},
                    "subtasks": {"type": "array", "items": {"type": "string"}}},
                "required": ["title"]}}}, "required": ["phases"]}),
        },
        ToolDefinition {
            name: "finish",
            description: "Say the task is done, with a short summary. Set exit_signal when a loop should stop.",
            parameters: json!({"type": "object", "properties": {
                "summary": {"type": "string"}, "exit_signal": {"type": "boolean"}},
                "required": ["summary"]}),
        },
    ]
}

/// Whether a tool needs permission in `ask` mode.
pub fn needs_permission(name: &str) -> bool {
    writes(name)
}

/// What an "always" decision on this call covers: the exact command for `run_command`,
/// the tool itself for file changes.
pub fn permission_scope(name: &str, input: &Value) -> String {
    match (name, input.get("command").and_then(Value::as_str)) {
        ("run_command", Some(command)) => format!("run_command: {command}"),
        _ => name.to_owned(),
    }
}

/// Whether a tool changes the worktree (refused in read-only mode).
fn writes(name: &str) -> bool {
    matches!(
        name,
        "edit_file" | "write_file" | "delete_file" | "move_file" | "run_command"
    )
}

/// Runs one tool call. Bad arguments, refused paths and failures become error outcomes the
/// model reads; nothing here panics on what a model sends.
pub async fn run(
    context: &ToolContext,
    name: &str,
    arguments: &str,
    cancel: &CancellationToken,
) -> ToolOutcome {
    let arguments: Value = match serde_json::from_str(if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    }) {
        Ok(value) => value,
        Err(error) => {
            return ToolOutcome::error(format!(
                "the arguments of {name} are not valid JSON ({error}); send a JSON object"
            ));
        }
    };
    if context.read_only && writes(name) {
        return ToolOutcome::error(format!(
            "{name} is not allowed: this session is read-only (chat mode or permission_mode = \"read-only\")"
        ));
    }
    let outcome = match name {
        "read_file" => parse(arguments).and_then(|args| read_file(context, args)),
        "list_directory" => parse(arguments).and_then(|args| list_directory(context, args)),
        "search" => parse(arguments).and_then(|args| search(context, args)),
        "edit_file" => parse(arguments).and_then(|args| edit_file(context, args)),
        "write_file" => parse(arguments).and_then(|args| write_file(context, args)),
        "delete_file" => parse(arguments).and_then(|args| delete_file(context, args)),
        "move_file" => parse(arguments).and_then(|args| move_file(context, args)),
        "run_command" => match parse(arguments) {
            Ok(args) => run_command(context, args, cancel).await,
            Err(error) => Err(error),
        },
        "finish" => parse::<FinishArgs>(arguments).map(|args| ToolOutcome {
            finished: Some(args.exit_signal),
            ..ToolOutcome::ok(args.summary)
        }),
        other => Err(format!("there is no tool named {other:?}")),
    };
    outcome.unwrap_or_else(ToolOutcome::error)
}

fn parse<T: serde::de::DeserializeOwned>(arguments: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(arguments)
        .map_err(|error| format!("invalid arguments: `{}`: {}", error.path(), error.inner()))
}

/// Resolves a model's path inside the worktree, or says why it may not be used.
pub fn resolve(context: &ToolContext, path: &str) -> Result<PathBuf, String> {
    let relative = Path::new(path);
    if path.is_empty() {
        return Err("the path is empty".to_owned());
    }
    if relative.is_absolute() {
        return Err(format!(
            "{path:?} is absolute; use a path relative to the repository root"
        ));
    }
    let mut resolved = context.worktree.clone();
    let mut depth = 0usize;
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                if depth == 0 && part == ".git" {
                    return Err(format!(
                        "{path:?} is inside .git, which tools may not touch"
                    ));
                }
                resolved.push(part);
                depth += 1;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if depth == 0 {
                    return Err(format!("{path:?} leaves the repository"));
                }
                resolved.pop();
                depth -= 1;
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{path:?} leaves the repository"));
            }
        }
    }
    // Symlinks: the deepest part of the path that exists must still be inside.
    let mut existing = resolved.as_path();
    loop {
        if existing.symlink_metadata().is_ok() {
            let real = existing
                .canonicalize()
                .map_err(|_| format!("{path:?} points at something that does not exist"))?;
            if !real.starts_with(&context.worktree) {
                return Err(format!(
                    "{path:?} leads outside the repository through a symbolic link"
                ));
            }
            break;
        }
        match existing.parent() {
            Some(parent) => existing = parent,
            None => break,
        }
    }
    Ok(resolved)
}

fn display(context: &ToolContext, path: &Path) -> String {
    path.strip_prefix(&context.worktree)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

#[derive(Deserialize)]
struct ReadArgs {
    path: String,
    start_line: Option<usize>,
    end_line: Option<usize>,
}

fn read_file(context: &ToolContext, args: ReadArgs) -> Result<ToolOutcome, String> {
    let path = resolve(context, &args.path)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", args.path))?;
    let start = args.start_line.unwrap_or(1).max(1);
    let end = args.end_line.unwrap_or(usize::MAX);
    let mut out = String::new();
    for line in text
        .lines()
        .skip(start - 1)
        .take(end.saturating_sub(start) + 1)
    {
        if out.len() + line.len() > READ_LIMIT {
            out.push_str("\n[… cut: read a smaller range]");
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(ToolOutcome::ok(out))
}

#[derive(Deserialize)]
struct ListArgs {
    #[serde(default)]
    path: Option<String>,
}

fn list_directory(context: &ToolContext, args: ListArgs) -> Result<ToolOutcome, String> {
    let path = match args.path.as_deref() {
        None | Some("") | Some(".") => context.worktree.clone(),
        Some(path) => resolve(context, path)?,
    };
    let entries = std::fs::read_dir(&path)
        .map_err(|error| format!("cannot list {}: {error}", display(context, &path)))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|entry| entry.file_name() != ".git")
        .map(|entry| {
            let mut name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                name.push('/');
            }
            name
        })
        .collect();
    names.sort();
    Ok(ToolOutcome::ok(names.join("\n")))
}

#[derive(Deserialize)]
struct SearchArgs {
    pattern: String,
    #[serde(default)]
    path: Option<String>,
}

fn search(context: &ToolContext, args: SearchArgs) -> Result<ToolOutcome, String> {
    let regex = regex::Regex::new(&args.pattern)
        .map_err(|error| format!("invalid regular expression: {error}"))?;
    let root = match args.path.as_deref() {
        None | Some("") | Some(".") => context.worktree.clone(),
        Some(path) => resolve(context, path)?,
    };
    let mut matches = Vec::new();
    let walker = ignore::WalkBuilder::new(&root)
        .hidden(false)
        .require_git(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    'files: for entry in walker.flatten() {
        if !entry.file_type().is_some_and(|kind| kind.is_file()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue; // binary or unreadable
        };
        for (number, line) in text.lines().enumerate() {
            if regex.is_match(line) {
                matches.push(format!(
                    "{}:{}: {}",
                    display(context, entry.path()),
                    number + 1,
                    line.trim_end()
                ));
                if matches.len() >= SEARCH_LIMIT {
                    matches.push(format!(
                        "[… more than {SEARCH_LIMIT} matches; narrow the search]"
                    ));
                    break 'files;
                }
            }
        }
    }
    matches.sort();
    if matches.is_empty() {
        return Ok(ToolOutcome::ok("no matches"));
    }
    Ok(ToolOutcome::ok(matches.join("\n")))
}

/// Line counts of the change from `before` to `after`.
fn count_change(context: &ToolContext, path: &Path, before: &str, after: &str) -> FileChange {
    let diff = similar::TextDiff::from_lines(before, after);
    let (mut additions, mut deletions) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => additions += 1,
            similar::ChangeTag::Delete => deletions += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    FileChange {
        path: display(context, path),
        additions,
        deletions,
    }
}

fn written(
    context: &ToolContext,
    path: &Path,
    before: &str,
    after: &str,
    message: String,
) -> ToolOutcome {
    ToolOutcome {
        file_changes: vec![count_change(context, path, before, after)],
        ..ToolOutcome::ok(message)
    }
}

#[derive(Deserialize)]
struct EditArgs {
    path: String,
    old_string: String,
    new_string: String,
}

fn edit_file(context: &ToolContext, args: EditArgs) -> Result<ToolOutcome, String> {
    let path = resolve(context, &args.path)?;
    let before = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", args.path))?;
    if args.old_string.is_empty() {
        return Err("old_string is empty; use write_file to create a file".to_owned());
    }
    match before.matches(&args.old_string).count() {
        0 => Err(format!(
            "old_string was not found in {}; read the file and copy the text exactly",
            args.path
        )),
        1 => {
            let after = before.replacen(&args.old_string, &args.new_string, 1);
            std::fs::write(&path, &after)
                .map_err(|error| format!("cannot write {}: {error}", args.path))?;
            Ok(written(
                context,
                &path,
                &before,
                &after,
                format!("edited {}", args.path),
            ))
        }
        count => Err(format!(
            "old_string occurs {count} times in {}; include more context so it is unique",
            args.path
        )),
    }
}

#[derive(Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}

fn write_file(context: &ToolContext, args: WriteArgs) -> Result<ToolOutcome, String> {
    let path = resolve(context, &args.path)?;
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create the folder of {}: {error}", args.path))?;
    }
    std::fs::write(&path, &args.content)
        .map_err(|error| format!("cannot write {}: {error}", args.path))?;
    Ok(written(
        context,
        &path,
        &before,
        &args.content,
        format!("wrote {}", args.path),
    ))
}

#[derive(Deserialize)]
struct DeleteArgs {
    path: String,
}

fn delete_file(context: &ToolContext, args: DeleteArgs) -> Result<ToolOutcome, String> {
    let path = resolve(context, &args.path)?;
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::remove_file(&path).map_err(|error| format!("cannot delete {}: {error}", args.path))?;
    Ok(written(
        context,
        &path,
        &before,
        "",
        format!("deleted {}", args.path),
    ))
}

#[derive(Deserialize)]
struct MoveArgs {
    from: String,
    to: String,
}

fn move_file(context: &ToolContext, args: MoveArgs) -> Result<ToolOutcome, String> {
    let from = resolve(context, &args.from)?;
    let to = resolve(context, &args.to)?;
    if to.exists() {
        return Err(format!("{} already exists", args.to));
    }
    let content = std::fs::read_to_string(&from).unwrap_or_default();
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create the folder of {}: {error}", args.to))?;
    }
    std::fs::rename(&from, &to)
        .map_err(|error| format!("cannot move {} to {}: {error}", args.from, args.to))?;
    Ok(ToolOutcome {
        file_changes: vec![
            count_change(context, &from, &content, ""),
            count_change(context, &to, "", &content),
        ],
        ..ToolOutcome::ok(format!("moved {} to {}", args.from, args.to))
    })
}

#[derive(Deserialize)]
struct CommandArgs {
    command: String,
    timeout_secs: Option<u64>,
}

#[derive(Deserialize)]
struct FinishArgs {
    summary: String,
    #[serde(default)]
    exit_signal: bool,
}

async fn run_command(
    context: &ToolContext,
    args: CommandArgs,
    cancel: &CancellationToken,
) -> Result<ToolOutcome, String> {
    let timeout = args
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(context.command_timeout)
        .min(context.command_timeout);
    std::fs::create_dir_all(&context.temp_dir)
        .map_err(|error| format!("cannot create the session's temp dir: {error}"))?;
    let before = snapshot_tree(context).await;
    let prepared = super::sandbox::prepare(&super::sandbox::SandboxPolicy {
        mode: context.sandbox,
        writable: vec![context.worktree.clone(), context.temp_dir.clone()],
        network: context.network,
    })?;
    let mut command = tokio::process::Command::new("sh");
    let sandbox_note = match prepared {
        super::sandbox::Prepared::Sandboxed(ruleset) => {
            let mut ruleset = Some(ruleset);
            // SAFETY: runs in the child between fork and exec: it only moves the ruleset
            // out and makes the prctl and landlock syscalls, no allocation on success.
            unsafe {
                command.pre_exec(move || match ruleset.take() {
                    Some(ruleset) => ruleset
                        .restrict_self()
                        .map(drop)
                        .map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM)),
                    None => Ok(()),
                });
            }
            None
        }
        super::sandbox::Prepared::Unsandboxed(note) => note,
    };
    for name in &context.hidden_env {
        command.env_remove(name);
    }
    command
        .arg("-c")
        .arg(&args.command)
        .current_dir(&context.worktree)
        .env("TMPDIR", &context.temp_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that stop and timeouts kill everything it started.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start the command: {error}"))?;
    let group = child.id();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let collect = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(stream) = stdout.as_mut() {
                let _ = stream.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(stream) = stderr.as_mut() {
                let _ = stream.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    let kill_group = || {
        if let Some(pid) = group {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // touched. The group is the one this call created.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    };
    let (status, out, err) = tokio::select! {
        result = collect => result,
        () = tokio::time::sleep(timeout) => {
            kill_group();
            return Err(format!("the command timed out after {} s and was killed", timeout.as_secs()));
        }
        () = cancel.cancelled() => {
            kill_group();
            return Err("the command was stopped".to_owned());
        }
    };
    let code = status
        .ok()
        .and_then(|status| status.code())
        .map_or_else(|| "killed".to_owned(), |code| code.to_string());
    let mut output = String::from_utf8_lossy(&out).into_owned();
    let err = String::from_utf8_lossy(&err);
    if !err.is_empty() {
        output.push_str(&err);
    }
    let mut output = cap(&output);
    if let Some(note) = sandbox_note {
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

/// Runs git in the worktree with the session's own index file, so that the user's index
/// is never touched; returns stdout, or `None` if git failed.
async fn git_with_own_index(context: &ToolContext, args: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new("git")
        .arg("-C")
        .arg(&context.worktree)
        .args(args)
        .env("GIT_INDEX_FILE", context.temp_dir.join("tether-index"))
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The worktree's files (honouring .gitignore) as a git tree id. The session's index file
/// starts as a copy of the worktree's, so only changed files are hashed.
async fn snapshot_tree(context: &ToolContext) -> Option<String> {
    let index = context.temp_dir.join("tether-index");
    if !index.exists() {
        let real_index = tokio::process::Command::new("git")
            .arg("-C")
            .arg(&context.worktree)
            .args(["rev-parse", "--path-format=absolute", "--git-path", "index"])
            .output()
            .await
            .ok()?;
        let real_index = String::from_utf8_lossy(&real_index.stdout)
            .trim()
            .to_owned();
        let _ = std::fs::copy(real_index, &index);
    }
    git_with_own_index(context, &["add", "-A"]).await?;
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

/// Keeps the head and the tail of a long output.
fn cap(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> (tempfile::TempDir, ToolContext) {
        let dir = tempfile::tempdir().expect("tempdir");
        let worktree = dir.path().join("wt").canonicalize().unwrap_or_else(|_| {
            std::fs::create_dir_all(dir.path().join("wt")).expect("mkdir");
            dir.path().join("wt").canonicalize().expect("canonical")
        });
        let context = ToolContext {
            temp_dir: dir.path().join("tmp"),
            worktree,
            read_only: false,
            ask_permission: false,
            allowed_scopes: Vec::new(),
            command_timeout: Duration::from_secs(10),
            sandbox: crate::agent::sandbox::SandboxMode::Auto,
            network: true,
            hidden_env: Vec::new(),
        };
        (dir, context)
    }

    #[test]
    fn paths_that_leave_the_worktree_are_refused() {
        let (dir, context) = context();
        std::fs::write(dir.path().join("outside.txt"), "secret").expect("write");
        std::os::unix::fs::symlink(dir.path(), context.worktree.join("escape")).expect("symlink");
        for bad in [
            "/etc/passwd",
            "../outside.txt",
            "a/../../outside.txt",
            "escape/outside.txt",
            ".git/config",
            "",
        ] {
            assert!(resolve(&context, bad).is_err(), "{bad:?} was allowed");
        }
        for good in ["new.txt", "a/b/../c.txt", "./x"] {
            assert!(resolve(&context, good).is_ok(), "{good:?} was refused");
        }
    }

    #[tokio::test]
    async fn edits_must_match_exactly_once() {
        let (_dir, context) = context();
        std::fs::write(context.worktree.join("f.txt"), "a\nb\na\n").expect("write");
        let cancel = CancellationToken::new();
        let ambiguous = run(
            &context,
            "edit_file",
            r#"{"path":"f.txt","old_string":"a","new_string":"z"}"#,
            &cancel,
        )
        .await;
        assert!(
            ambiguous.is_error && ambiguous.output.contains("occurs 2 times"),
            "{ambiguous:?}"
        );
        let missing = run(
            &context,
            "edit_file",
            r#"{"path":"f.txt","old_string":"q","new_string":"z"}"#,
            &cancel,
        )
        .await;
        assert!(
            missing.is_error && missing.output.contains("not found"),
            "{missing:?}"
        );
        let edited = run(
            &context,
            "edit_file",
            r#"{"path":"f.txt","old_string":"b\n","new_string":"b\nc\n"}"#,
            &cancel,
        )
        .await;
        assert!(!edited.is_error, "{edited:?}");
        assert_eq!(
            edited.file_changes,
            [FileChange {
                path: "f.txt".into(),
                additions: 1,
                deletions: 0
            }]
        );
        assert_eq!(
            std::fs::read_to_string(context.worktree.join("f.txt")).expect("read"),
            "a\nb\nc\na\n"
        );
        let malformed = run(
            &context,
            "edit_file",
            r#"{"path": "f.txt", "old_str"#,
            &cancel,
        )
        .await;
        assert!(
            malformed.is_error && malformed.output.contains("not valid JSON"),
            "{malformed:?}"
        );
    }

    #[tokio::test]
    async fn read_only_sessions_cannot_write_or_run() {
        let (_dir, mut context) = context();
        context.read_only = true;
        let cancel = CancellationToken::new();
        let refused = run(
            &context,
            "write_file",
            r#"{"path":"x","content":"y"}"#,
            &cancel,
        )
        .await;
        assert!(refused.is_error && refused.output.contains("read-only"));
        assert!(!context.worktree.join("x").exists());
        let refused = run(&context, "run_command", r#"{"command":"touch y"}"#, &cancel).await;
        assert!(refused.is_error);
        assert!(!context.worktree.join("y").exists());
    }

    #[tokio::test]
    async fn move_and_delete_report_their_changes() {
        let (_dir, context) = context();
        std::fs::write(context.worktree.join("a.txt"), "1\n2\n").expect("write");
        let cancel = CancellationToken::new();
        let moved = run(
            &context,
            "move_file",
            r#"{"from": "a.txt", "to": "sub/b.txt"}"#,
            &cancel,
        )
        .await;
        assert!(!moved.is_error, "{moved:?}");
        assert_eq!(
            moved.file_changes,
            [
                FileChange {
                    path: "a.txt".into(),
                    additions: 0,
                    deletions: 2
                },
                FileChange {
                    path: "sub/b.txt".into(),
                    additions: 2,
                    deletions: 0
                },
            ]
        );
        let deleted = run(&context, "delete_file", r#"{"path": "sub/b.txt"}"#, &cancel).await;
        assert_eq!(deleted.file_changes[0].deletions, 2);
        assert!(!context.worktree.join("sub/b.txt").exists());
        let missing = run(&context, "delete_file", r#"{"path": "nope.txt"}"#, &cancel).await;
        assert!(
            missing.is_error && missing.output.contains("cannot delete"),
            "{missing:?}"
        );
        let unknown = run(&context, "teleport", "{}", &cancel).await;
        assert!(
            unknown.is_error && unknown.output.contains("no tool named"),
            "{unknown:?}"
        );
    }

    #[test]
    fn long_output_keeps_head_and_tail() {
        let text = format!("{}{}", "h".repeat(40_000), "t".repeat(40_000));
        let capped = cap(&text);
        assert!(capped.len() < 31_000);
        assert!(capped.starts_with('h') && capped.ends_with('t'));
    }
}

//! The agent's tools, all confined to the session's worktree: their definitions for the
//! model, the dispatch, and the checks every path goes through.
//!
//! Every path a model names is refused if it leaves the worktree: an absolute path, `..`
//! above the root, or the worktree's `.git` ([`resolve`], lexically); a symbolic link
//! pointing out, at the moment of use ([`super::beneath`], atomically). Commands run in the
//! sandbox ([`super::command`]). A refused call writes nothing and tells the model why.

use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::command::run_command;
pub use super::context::{FileChange, ToolContext, ToolOutcome, resolve};
use super::files::{
    delete_file, edit_file, list_directory, move_file, read_file, search, write_file,
};
use crate::provider::ToolDefinition;

pub fn definitions() -> Vec<ToolDefinition> {
    let path = json!({"type": "string", "description": "A path relative to the repository root"});
    vec![
        ToolDefinition {
            name: "read_file".into(),
            description: "Read a text file, optionally only lines start_line..=end_line (1-based).".into(),
            parameters: json!({"type": "object", "properties": {
                "path": path, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}},
                "required": ["path"]}),
        },
        ToolDefinition {
            name: "list_directory".into(),
            description: "List a directory's entries (folders end with /).".into(),
            parameters: json!({"type": "object", "properties": {"path": path}}),
        },
        ToolDefinition {
            name: "search".into(),
            description: "Search files for a regular expression, honouring .gitignore. Returns path:line: text.".into(),
            parameters: json!({"type": "object", "properties": {
                "pattern": {"type": "string"}, "path": path}, "required": ["pattern"]}),
        },
        ToolDefinition {
            name: "edit_file".into(),
            description: "Replace old_string, which must occur exactly once, with new_string.".into(),
            parameters: json!({"type": "object", "properties": {
                "path": path, "old_string": {"type": "string"}, "new_string": {"type": "string"}},
                "required": ["path", "old_string", "new_string"]}),
        },
        ToolDefinition {
            name: "write_file".into(),
            description: "Create or overwrite a file with content.".into(),
            parameters: json!({"type": "object", "properties": {
                "path": path, "content": {"type": "string"}}, "required": ["path", "content"]}),
        },
        ToolDefinition {
            name: "delete_file".into(),
            description: "Delete a file.".into(),
            parameters: json!({"type": "object", "properties": {"path": path}, "required": ["path"]}),
        },
        ToolDefinition {
            name: "move_file".into(),
            description: "Move or rename a file.".into(),
            parameters: json!({"type": "object", "properties": {"from": path, "to": path},
                "required": ["from", "to"]}),
        },
        ToolDefinition {
            name: "run_command".into(),
            description: "Run a shell command in the repository root; returns its exit code and output.".into(),
            parameters: json!({"type": "object", "properties": {
                "command": {"type": "string"}, "timeout_secs": {"type": "integer"}},
                "required": ["command"]}),
        },
        ToolDefinition {
            name: "ask_user".into(),
            description: "Ask the user one or more questions and wait for the answers. kind: text (free answer), single (one of options, or another answer), multi (any of options).".into(),
            parameters: json!({"type": "object", "properties": {"questions": {"type": "array", "items": {
                "type": "object", "properties": {
                    "prompt": {"type": "string"},
                    "kind": {"type": "string", "enum": ["text", "single", "multi"]},
                    "options": {"type": "array", "items": {"type": "string"}}},
                "required": ["prompt"]}}}, "required": ["questions"]}),
        },
        ToolDefinition {
            name: "propose_plan".into(),
            description: "Propose a plan (phases with subtasks) and wait for the user to approve or reject it with feedback.".into(),
            parameters: json!({"type": "object", "properties": {"phases": {"type": "array", "items": {
                "type": "object", "properties": {
                    "title": {"type": "string"},
                    "subtasks": {"type": "array", "items": {"type": "string"}}},
                "required": ["title"]}}}, "required": ["phases"]}),
        },
        ToolDefinition {
            name: "finish".into(),
            description: "Say the task is done, with a short summary. Set exit_signal when a loop should stop.".into(),
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

#[derive(Deserialize)]
struct FinishArgs {
    summary: String,
    #[serde(default)]
    exit_signal: bool,
}

fn parse<T: serde::de::DeserializeOwned>(arguments: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(arguments)
        .map_err(|error| format!("invalid arguments: `{}`: {}", error.path(), error.inner()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::super::context::cap;
    use super::*;
    use crate::sandbox::Jail;
    use crate::workspace::SessionWorktree;

    fn context() -> (tempfile::TempDir, ToolContext) {
        let dir = tempfile::tempdir().expect("tempdir");
        let worktree = dir.path().join("wt").canonicalize().unwrap_or_else(|_| {
            std::fs::create_dir_all(dir.path().join("wt")).expect("mkdir");
            dir.path().join("wt").canonicalize().expect("canonical")
        });
        let context = ToolContext {
            git: SessionWorktree {
                work_tree: worktree.clone(),
                git_dir: dir.path().join("no-git"),
            },
            jail: Jail {
                mode: crate::sandbox::SandboxMode::Auto,
                worktree: worktree.clone(),
                temp_dir: dir.path().join("tmp"),
                writable: Vec::new(),
                network: true,
                hidden_env: Vec::new(),
                owner: "test".into(),
                records: dir.path().join("records"),
            },
            private_index: dir.path().join("index"),
            read_only: false,
            ask_permission: false,
            allowed_scopes: Vec::new(),
            command_timeout: Duration::from_secs(10),
        };
        (dir, context)
    }

    #[tokio::test]
    async fn paths_that_leave_the_worktree_are_refused() {
        let (dir, context) = context();
        std::fs::write(dir.path().join("outside.txt"), "secret").expect("write");
        std::os::unix::fs::symlink(dir.path(), context.worktree().join("escape")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", context.worktree().join("absolute"))
            .expect("symlink");
        for bad in [
            "/etc/passwd",
            "../outside.txt",
            "a/../../outside.txt",
            ".git/config",
            "a/../.git/config",
            "",
            "a\0b",
        ] {
            assert!(resolve(bad).is_err(), "{bad:?} was allowed");
        }
        for good in ["new.txt", "a/b/../c.txt", "./x"] {
            assert!(resolve(good).is_ok(), "{good:?} was refused");
        }
        assert_eq!(
            resolve("a/b/../c.txt").expect("ok"),
            PathBuf::from("a/c.txt")
        );
        // Links that lead out are refused where they are used, for every file tool.
        let cancel = CancellationToken::new();
        for (tool, arguments) in [
            ("read_file", r#"{"path": "escape/outside.txt"}"#),
            ("read_file", r#"{"path": "absolute"}"#),
            (
                "write_file",
                r#"{"path": "escape/outside.txt", "content": "x"}"#,
            ),
            (
                "write_file",
                r#"{"path": "escape/new.txt", "content": "x"}"#,
            ),
            (
                "edit_file",
                r#"{"path": "escape/outside.txt", "old_string": "secret", "new_string": "x"}"#,
            ),
            ("delete_file", r#"{"path": "escape/outside.txt"}"#),
            (
                "move_file",
                r#"{"from": "escape/outside.txt", "to": "stolen.txt"}"#,
            ),
            ("list_directory", r#"{"path": "escape"}"#),
            ("search", r#"{"pattern": "secret", "path": "escape"}"#),
        ] {
            let outcome = run(&context, tool, arguments, &cancel).await;
            assert!(
                outcome.is_error || outcome.output == "no matches",
                "{tool} {arguments}: {outcome:?}"
            );
            assert!(!outcome.output.contains("secret"), "{tool}: {outcome:?}");
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("outside.txt")).expect("read"),
            "secret"
        );
        assert!(!dir.path().join("new.txt").exists());
    }

    #[tokio::test]
    async fn edits_must_match_exactly_once() {
        let (_dir, context) = context();
        std::fs::write(context.worktree().join("f.txt"), "a\nb\na\n").expect("write");
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
            std::fs::read_to_string(context.worktree().join("f.txt")).expect("read"),
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
        assert!(!context.worktree().join("x").exists());
        let refused = run(&context, "run_command", r#"{"command":"touch y"}"#, &cancel).await;
        assert!(refused.is_error);
        assert!(!context.worktree().join("y").exists());
    }

    #[tokio::test]
    async fn move_and_delete_report_their_changes() {
        let (_dir, context) = context();
        std::fs::write(context.worktree().join("a.txt"), "1\n2\n").expect("write");
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
        assert!(!context.worktree().join("sub/b.txt").exists());
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

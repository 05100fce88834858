//! The end-to-end harness: real git repositories in temp dirs, a real fake-model HTTP server
//! on 127.0.0.1, and the real `tether` binary spoken to over stdio.

pub mod fake_model;
pub mod lsp_client;
pub mod processes;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use fake_model::{FakeModel, Reply};
pub use lsp_client::{LspClient, isolated_command};
use serde_json::Value;

/// Runs git in `dir`, panicking with its stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A temp dir holding a git repository (`repo/`, one commit on `main`) and Tether's state.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

/// A test's editors start a daemon in the test's own state folder (as `tether lsp` does for
/// a user); it is stopped when the test ends. By signal, found by its state folder: a
/// daemon of another uid (the confinement tests run one as `nobody`) refuses this user's
/// socket connections, but root may signal it.
impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::env::var_os("TETHER_TEST_KEEP").is_some() {
            eprintln!("kept {}", self.dir.path().display());
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            let _ = kept.keep();
            return;
        }
        let daemons = daemons_of(&self.dir.path().join("state"));
        for pid in &daemons {
            // SAFETY: kill(2) with SIGTERM on a daemon of this test's state folder: it stops
            // its sessions and exits.
            unsafe {
                libc::kill(*pid, libc::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        for pid in daemons {
            while running(pid) {
                if std::time::Instant::now() > deadline {
                    // SAFETY: kill(2) on a daemon of this test's state folder, as a last resort.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// Whether `pid` runs: it exists and is not a zombie (a daemon whose front exited is
/// reparented, and in a container nobody may reap it).
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}

/// The pids of the `tether daemon`s serving `state`: started by a front
/// (`TETHER_DAEMON_STATE`) or by a test (`TETHER_HOME`).
pub fn daemons_of(state: &Path) -> Vec<i32> {
    let wanted = [
        format!("TETHER_DAEMON_STATE={}", state.display()),
        format!("TETHER_HOME={}", state.display()),
    ];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let is_daemon = |pid: i32| {
        let Ok(command) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = command.split(|byte| *byte == 0).collect();
        args.get(1) == Some(&&b"daemon"[..])
            && matches!(args.get(2), None | Some(&[]) | Some(&b"run"))
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| is_daemon(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|byte| *byte == 0)
                    .any(|variable| wanted.iter().any(|wanted| variable == wanted.as_bytes()))
            })
        })
        .collect()
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir repo");
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("README.md"), "# sample\n").expect("write");
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "initial"]);
        TestEnv { dir }
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn branches(&self) -> Vec<String> {
        git(&self.repo(), &["branch", "--format=%(refname:short)"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The session logs under this env's state dir.
    pub fn log_files(&self) -> Vec<PathBuf> {
        let repos = self.home().join("state/repos");
        let mut logs = Vec::new();
        for repo in std::fs::read_dir(repos).into_iter().flatten().flatten() {
            for entry in std::fs::read_dir(repo.path().join("sessions"))
                .into_iter()
                .flatten()
                .flatten()
            {
                logs.push(entry.path());
            }
        }
        logs
    }

    /// A server initialized on this repo, opted in to notifications, using `model`.
    pub async fn server(&self, model: &FakeModel) -> LspClient {
        self.server_with(model.settings()).await
    }

    /// A server that runs its sessions itself (`TETHER_DAEMON=off`): for what only an
    /// in-process host does (sessions stop with the editor; a second server is read-only).
    pub async fn server_in_process(&self, model: &FakeModel) -> LspClient {
        let mut client = LspClient::spawn_in_process(self.home()).await;
        client
            .initialize(&self.repo(), model.settings(), true)
            .await;
        client
    }

    /// Runs `tether ARGS` as this test's user, stdin closed; its output.
    pub async fn tether(&self, args: &[&str]) -> std::process::Output {
        isolated_command(self.home())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("run tether")
    }

    /// Writes the user's own file, `$XDG_CONFIG_HOME/tether/config.toml` (the harness points
    /// `XDG_CONFIG_HOME` at `<home>/config`).
    pub fn write_user_config(&self, text: &str) {
        let dir = self.home().join("config/tether");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("config.toml"), text).expect("write the user's config");
    }

    /// The pid of the daemon this test's editors started, from `tether daemon status`.
    pub fn daemon_pid(&self) -> Option<i32> {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(["daemon", "status", "--json"])
            .env("TETHER_HOME", self.home().join("state"))
            .env("XDG_CONFIG_HOME", self.home().join("config"))
            .env("XDG_DATA_HOME", self.home().join("data"))
            .output()
            .ok()?;
        let status: Value = serde_json::from_slice(&output.stdout).ok()?;
        status["pid"]
            .as_i64()
            .and_then(|pid| i32::try_from(pid).ok())
    }

    /// `kill -9` of the daemon this test's editors started, as a crash would; returns once
    /// it is gone. The next editor starts a new one.
    pub fn kill_daemon(&self) {
        let pid = self.daemon_pid().expect("a daemon runs");
        // SAFETY: kill(2) on the pid of the daemon this test started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while running(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon outlived kill -9"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Gives the repository a committer, for what commits and merges as the user.
    pub fn identify_user(&self) {
        git(&self.repo(), &["config", "user.name", "Test"]);
        git(&self.repo(), &["config", "user.email", "test@example.com"]);
    }

    /// Writes and commits the repository's `.tether/config.toml`.
    pub fn commit_repo_config(&self, toml: &str) {
        std::fs::create_dir_all(self.repo().join(".tether")).expect("mkdir");
        std::fs::write(self.repo().join(".tether/config.toml"), toml).expect("write");
        git(&self.repo(), &["add", "."]);
        git(&self.repo(), &["commit", "-q", "-m", "tether settings"]);
    }

    /// A server initialized on this repo, opted in to notifications, with these settings.
    pub async fn server_with(&self, settings: Value) -> LspClient {
        let mut client = LspClient::spawn(self.home()).await;
        client.initialize(&self.repo(), settings, true).await;
        client
    }
}

/// The content of the last message of a request the model got: what the user, or a tool's
/// result, said last ("" when there is none).
/// Asserts that each `(field, wanted)`: the driver's result `field` is text containing `wanted`.
pub fn assert_shows(results: &Value, expected: &[(&str, &str)]) {
    for (field, wanted) in expected {
        assert!(
            results[field]
                .as_str()
                .is_some_and(|text| text.contains(wanted)),
            "{field} shows {wanted:?}: {results:#}"
        );
    }
}

pub fn last_message(request: &Value) -> String {
    request["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The message of a JSON-RPC error (empty if it has none).
pub fn error_message(error: &Value) -> &str {
    error["message"].as_str().unwrap_or_default()
}

/// The concatenated delta text of one item, from notifications.
pub fn streamed_text(events: &[Value], item_id: &str) -> String {
    events
        .iter()
        .filter(|params| params["event"]["kind"] == "delta" && params["event"]["itemId"] == item_id)
        .map(|params| {
            params["event"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The completed items of one type (`toolCall`, `fileChange`…), from notifications.
pub fn completed_items(events: &[Value], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|params| {
            params["event"]["kind"] == "item"
                && params["event"]["phase"] == "completed"
                && params["event"]["item"]["type"] == kind
        })
        .map(|params| params["event"]["item"].clone())
        .collect()
}

/// The names of the entries of a folder, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the folder")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The completed agent messages of a session, from notifications.
/// The paths of the `fileChange` items in `events`, sorted.
pub fn changed_paths(events: &[Value]) -> Vec<String> {
    let mut paths: Vec<String> = completed_items(events, "fileChange")
        .iter()
        .filter_map(|change| change["path"].as_str().map(str::to_owned))
        .collect();
    paths.sort();
    paths
}

/// The paths a `tether/session/diff` answer lists, sorted.
pub fn diff_paths(diff: &Value) -> Vec<String> {
    let mut paths: Vec<String> = diff["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|file| file["path"].as_str().map(str::to_owned))
        .collect();
    paths.sort();
    paths
}

/// Everything the agent said in `events`: its messages' texts, one after the other.
pub fn agent_said(events: &[Value]) -> String {
    agent_messages(events)
        .iter()
        .filter_map(|message| message["text"].as_str())
        .collect()
}

pub fn agent_messages(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|params| {
            params["event"]["kind"] == "item"
                && params["event"]["phase"] == "completed"
                && params["event"]["item"]["role"] == "agent"
        })
        .map(|params| params["event"]["item"].clone())
        .collect()
}

/// Asserts `seq` runs 1, 2, 3… with no gap or repeat.
pub fn assert_gap_free(events: &[Value]) {
    for (index, params) in events.iter().enumerate() {
        assert_eq!(
            params["seq"].as_u64(),
            Some(index as u64 + 1),
            "seq gap at position {index}: {events:#?}"
        );
    }
}

/// The byte offset of an LSP position in `text` (columns in UTF-8 bytes or UTF-16 units).
pub fn offset_of(text: &str, position: &Value, utf8: bool) -> usize {
    let line = position["line"].as_u64().expect("line") as usize;
    let character = position["character"].as_u64().expect("character") as usize;
    let mut line_start = 0;
    let mut seen = 0;
    let bytes = text.as_bytes();
    let mut index = 0;
    while seen < line && index < bytes.len() {
        match bytes[index] {
            b'\r' if bytes.get(index + 1) == Some(&b'\n') => index += 2,
            b'\r' | b'\n' => index += 1,
            _ => {
                index += 1;
                continue;
            }
        }
        seen += 1;
        line_start = index;
    }
    if seen < line {
        return text.len();
    }
    if utf8 {
        return line_start + character;
    }
    let mut units = 0;
    for (at, c) in text[line_start..].char_indices() {
        if units >= character {
            return line_start + at;
        }
        units += c.len_utf16();
    }
    text.len()
}

/// Applies LSP text edits (non-overlapping) to `text`, as an editor would.
pub fn apply_text_edits(text: &str, edits: &[Value], utf8: bool) -> String {
    let mut located: Vec<(usize, usize, String)> = edits
        .iter()
        .map(|edit| {
            (
                offset_of(text, &edit["range"]["start"], utf8),
                offset_of(text, &edit["range"]["end"], utf8),
                edit["newText"].as_str().expect("newText").to_owned(),
            )
        })
        .collect();
    located.sort_by_key(|(start, ..)| std::cmp::Reverse(*start));
    let mut result = text.to_owned();
    for (start, end, new_text) in located {
        result.replace_range(start..end, &new_text);
    }
    result
}

/// Applies a `WorkspaceEdit` to the files under `root`, as an editor would.
pub fn apply_workspace_edit(edit: &Value, utf8: bool) {
    let path_of = |uri: &Value| {
        PathBuf::from(
            uri.as_str()
                .and_then(|uri| uri.strip_prefix("file://"))
                .expect("a file URI"),
        )
    };
    if let Some(changes) = edit["changes"].as_object() {
        for (uri, edits) in changes {
            let path = path_of(&Value::String(uri.clone()));
            let text = std::fs::read_to_string(&path).expect("read");
            let edits = edits.as_array().expect("edits");
            std::fs::write(&path, apply_text_edits(&text, edits, utf8)).expect("write");
        }
    }
    for operation in edit["documentChanges"].as_array().into_iter().flatten() {
        match operation["kind"].as_str() {
            Some("create") => {
                let path = path_of(&operation["uri"]);
                assert!(!path.exists(), "create over an existing {path:?}");
                std::fs::write(path, "").expect("create");
            }
            Some("delete") => std::fs::remove_file(path_of(&operation["uri"])).expect("delete"),
            Some("rename") => {
                std::fs::rename(path_of(&operation["oldUri"]), path_of(&operation["newUri"]))
                    .expect("rename")
            }
            _ => {
                let path = path_of(&operation["textDocument"]["uri"]);
                let text = std::fs::read_to_string(&path).expect("read");
                let edits = operation["edits"].as_array().expect("edits");
                std::fs::write(&path, apply_text_edits(&text, edits, utf8)).expect("write");
            }
        }
    }
}

/// Waits until the file at `path` satisfies `predicate`; returns its text.
pub async fn wait_for_file(path: &Path, predicate: impl Fn(&str) -> bool) -> String {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(path)
            && predicate(&text)
        {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "{} never matched; it holds {:?}",
        path.display(),
        std::fs::read_to_string(path)
    );
}

//! The end-to-end harness: real git repositories in temp dirs, a real fake-model HTTP server
//! on 127.0.0.1, and the real `tether` binary spoken to over stdio.

pub mod fake_model;
pub mod lsp_client;

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

    /// A server initialized on this repo, opted in to notifications, with these settings.
    pub async fn server_with(&self, settings: Value) -> LspClient {
        let mut client = LspClient::spawn(self.home()).await;
        client.initialize(&self.repo(), settings, true).await;
        client
    }
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

/// The completed agent messages of a session, from notifications.
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

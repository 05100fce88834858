//! Scheduling: requests that hang on the network never hold up the others. tower-lsp-server
//! runs four requests at once; Tether's own requests and the text notifications go around
//! it, so with six `git push`es stuck on a remote that does not answer, `list`, `get`, a
//! command, and a `didChange` followed by `apply` are all still served, in order.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, apply_text_edits, git};

/// More than tower-lsp-server's four requests in flight.
const STUCK_PUSHES: usize = 6;

/// Twenty numbered lines, changed on lines 3 and 15 by the session.
fn numbered_lines() -> String {
    (1..=20).map(|n| format!("line {n}\n")).collect()
}

/// Lets the stuck pushes go when dropped, so that a failing test leaves nothing running.
struct Release(PathBuf);

impl Release {
    fn now(&self) {
        std::fs::write(&self.0, "").expect("write the release file");
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

/// Makes `origin` a remote whose receiving end waits until `release` exists (60 s at most,
/// or until the test's folder is gone), then fails, as a push to a server that never answers
/// does. Each one that starts leaves a file in `started`.
fn remote_that_hangs(env: &TestEnv, release: &Path, started: &Path) {
    let remote = env.home().join("remote.git");
    git(
        env.home(),
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    std::fs::create_dir_all(started).expect("mkdir");
    let script = env.home().join("hanging-receive-pack");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             touch '{started}/'$$\n\
             i=0\n\
             while [ ! -e '{release}' ] && [ -d '{started}' ] && [ $i -lt 1200 ]; do\n\
               sleep 0.05; i=$((i+1))\n\
             done\n\
             exit 1\n",
            started = started.display(),
            release = release.display(),
        ),
    )
    .expect("write the script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let repo = env.repo();
    git(
        &repo,
        &["remote", "add", "origin", remote.to_str().expect("utf-8")],
    );
    git(
        &repo,
        &[
            "config",
            "remote.origin.receivepack",
            script.to_str().expect("utf-8"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_pushes_hold_up_neither_list_nor_a_did_change_then_apply() {
    let env = TestEnv::new();
    let multi = numbered_lines();
    std::fs::write(env.repo().join("multi.txt"), &multi).expect("write");
    git(&env.repo(), &["add", "."]);
    git(&env.repo(), &["commit", "-q", "-m", "numbered lines"]);
    let release = Release(env.home().join("release"));
    let started = env.home().join("started");
    remote_that_hangs(&env, &release.0, &started);

    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[
        (
            "edit_file",
            r#"{"path": "multi.txt", "old_string": "line 3\n", "new_string": "line three\n"}"#,
        ),
        (
            "edit_file",
            r#"{"path": "multi.txt", "old_string": "line 15\n", "new_string": "line fifteen\n"}"#,
        ),
    ]));
    model.push(Reply::text(&["done"]));
    let mut client = LspClient::spawn(env.home()).await;
    client
        .initialize_with(
            &env.repo(),
            model.settings(),
            json!({
                "experimental": {"tether": true},
                "workspace": {"workspaceEdit": {"documentChanges": true}},
            }),
        )
        .await;
    let (_, id) = client
        .create(json!({"prompt": "number the lines", "name": "slow"}))
        .await;
    client.wait_for_status(&id, "waiting").await;

    let mut pushes = Vec::new();
    for _ in 0..STUCK_PUSHES {
        pushes.push(
            client
                .start_request("tether/session/git", json!({"id": id, "op": "push"}))
                .await,
        );
    }
    // The first is in git now (the others wait their turn on the repository): nothing
    // answers it until the release.
    wait_for_a_file_in(&started).await;

    // Everything below was read after the six pushes.
    let listed = client.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"][0]["id"], id, "{listed}");
    let got = client
        .call("tether/session/get", json!({"id": id, "since": 0}))
        .await;
    assert_eq!(got["session"]["name"], "slow", "{got}");
    let commanded = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.list", "arguments": [{}]}),
        )
        .await;
    assert_eq!(commanded["sessions"][0]["id"], id, "{commanded}");

    // The user types in the file, and applies at once: the edit is for the buffer as typed.
    let uri = format!("file://{}", env.repo().join("multi.txt").display());
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "text", "version": 1, "text": multi}}),
        )
        .await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
                {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "mine\n"},
            ]}),
        )
        .await;
    let applied = client.call("tether/session/apply", json!({"id": id})).await;
    assert_eq!(applied["files"][0]["applied"], json!([0, 1]), "{applied}");
    assert_eq!(applied["files"][0]["conflicts"], json!([]), "{applied}");
    let request = client.wait_for_message("workspace/applyEdit").await;
    let document = &request["params"]["edit"]["documentChanges"][0];
    assert_eq!(
        document["textDocument"]["version"], 2,
        "apply saw the didChange sent before it"
    );
    let buffer = format!("mine\n{multi}");
    assert_eq!(
        apply_text_edits(&buffer, document["edits"].as_array().expect("edits"), false),
        buffer
            .replace("line 3\n", "line three\n")
            .replace("line 15\n", "line fifteen\n"),
    );

    for push in &mut pushes {
        assert!(!push.is_answered(), "a push answered before its remote did");
    }
    release.now();
    for push in pushes {
        let error: Value = client
            .wait_for_reply(push)
            .await
            .expect_err("the remote fails the push");
        assert_eq!(error["code"], -31004, "{error}");
    }
    client.shutdown().await;
}

/// Waits (20 s at most) until a file appears in `dir`.
async fn wait_for_a_file_in(dir: &Path) {
    for _ in 0..400 {
        let found = std::fs::read_dir(dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        if found {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no push reached the remote within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_initialize_and_after_shutdown_tethers_requests_get_the_lifecycle_errors() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let mut client = LspClient::spawn(env.home()).await;
    for (method, params) in [
        ("tether/session/list", json!({})),
        (
            "workspace/executeCommand",
            json!({"command": "tether.list", "arguments": [{}]}),
        ),
    ] {
        let error = client.call_err(method, params).await;
        assert_eq!(error["code"], -32002, "{method}: {error}");
        assert_eq!(error["message"], "Server not initialized", "{method}");
    }
    client.initialize(&env.repo(), model.settings(), true).await;
    let listed = client.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"], json!([]));
    client.call("shutdown", Value::Null).await;
    let error = client.call_err("tether/session/list", json!({})).await;
    assert_eq!(error["code"], -32600, "after shutdown: {error}");
    client.notify("exit", Value::Null).await;
}

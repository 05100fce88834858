//! Bad input from the editor: each gets a clear error, and the server keeps answering.

use serde_json::json;

use crate::support::error_message;
use crate::support::{FakeModel, LspClient, Reply, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_a_clear_error_and_the_server_lives_on() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["ok"]));
    let mut client = env.server(&model).await;

    let error = client
        .call_err("tether/session/frobnicate", json!({}))
        .await;
    assert_eq!(error["code"], -32601, "{error}");

    // An empty Lua table arrives as `[]`: taken as no params.
    let listed = client.call("tether/session/list", json!([])).await;
    assert_eq!(listed["sessions"], json!([]), "{listed}");

    // Wrong types name the field.
    let error = client
        .call_err("tether/session/create", json!({"prompt": 42}))
        .await;
    assert_eq!(error["code"], -32602);
    assert!(error_message(&error).contains("`prompt`"), "{error}");
    let error = client
        .call_err(
            "tether/session/get",
            json!({"id": "x", "since": "yesterday"}),
        )
        .await;
    assert_eq!(error["code"], -32602);
    assert!(error_message(&error).contains("`since`"), "{error}");
    let error = client
        .call_err(
            "tether/session/create",
            json!({"prompt": "x", "mode": "yolo"}),
        )
        .await;
    assert!(error_message(&error).contains("`mode`"), "{error}");
    let error = client.call_err("tether/session/create", json!({})).await;
    assert!(
        error_message(&error).contains("missing field `prompt`"),
        "{error}"
    );
    let error = client
        .call_err("tether/session/create", json!({"prompt": "   "}))
        .await;
    assert_eq!(error["code"], -32602);
    let error = client
        .call_err(
            "tether/session/create",
            json!({"prompt": "x", "name": "../../evil"}),
        )
        .await;
    assert!(error_message(&error).contains("`name`"), "{error}");
    // A root no file system can hold: a NUL byte, a megabyte of path.
    for root in [
        "/tmp/a\0b".to_owned(),
        "file:///tmp/a%00b".to_owned(),
        format!("/{}", "a".repeat(1 << 20)),
        format!("file:///{}", "a".repeat(1 << 20)),
    ] {
        let error = client
            .call_err(
                "tether/session/create",
                json!({"prompt": "x", "root": root}),
            )
            .await;
        assert_eq!(error["code"], -32602, "{:.200}", error.to_string());
        assert!(error_message(&error).contains("`root`"), "{error:.300}");
        assert!(error_message(&error).len() < 300, "{error:.300}");
    }

    // Unknown sessions.
    for method in [
        "get", "send", "stop", "resume", "complete", "clone", "delete", "export",
    ] {
        let error = client
            .call_err(
                &format!("tether/session/{method}"),
                json!({"id": "no-such-session", "text": "hi"}),
            )
            .await;
        assert_eq!(error["code"], -31001, "{method}: {error}");
        assert!(
            error_message(&error).contains("no-such-session"),
            "{method}: {error}"
        );
    }

    // One session made, so that the folders a failed create could leave behind exist.
    let (_, first) = client
        .create(json!({"prompt": "the first", "name": "first"}))
        .await;
    client.wait_for_status(&first, "waiting").await;
    assert_eq!(session_folders(&env), ["first"]);

    // A folder that is not a git repository, and a base branch that does not exist.
    let plain = env.home().join("not-a-repo");
    std::fs::create_dir_all(&plain).expect("mkdir");
    let error = client
        .call_err(
            "tether/session/create",
            json!({"prompt": "x", "root": format!("file://{}", plain.display())}),
        )
        .await;
    assert_eq!(error["code"], -31004);
    assert!(
        error_message(&error).contains("not inside a git repository"),
        "{error}"
    );
    let error = client
        .call_err(
            "tether/session/create",
            json!({"prompt": "x", "baseBranch": "no-such-branch"}),
        )
        .await;
    assert!(
        error_message(&error).contains("\"no-such-branch\" does not exist"),
        "{error}"
    );
    let error = client
        .call_err(
            "tether/session/create",
            json!({"prompt": "x", "provider": "nope"}),
        )
        .await;
    assert_eq!(error["code"], -31005);
    assert!(
        error_message(&error).contains("no provider named \"nope\""),
        "{error}"
    );
    // Nothing half-made: no other session, branch or worktree folder than the first one's.
    let listed = client.call("tether/session/list", json!({})).await;
    let names: Vec<&str> = listed["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|session| session["name"].as_str())
        .collect();
    assert_eq!(names, ["first"]);
    assert_eq!(env.branches(), ["main", "tether/first"]);
    assert_eq!(session_folders(&env), ["first"]);

    // A request that is not even JSON-RPC shaped, then a normal one.
    client.notify("tether/session/list", json!("garbage")).await;
    let error = client
        .call_err(
            "workspace/executeCommand",
            json!({"command": "tether.nope"}),
        )
        .await;
    assert!(error_message(&error).contains("tether.nope"), "{error}");

    // Still answering, and still able to run a session.
    let info = client
        .call("tether/session/create", json!({"prompt": "still alive?"}))
        .await;
    client
        .wait_for_status(info["id"].as_str().expect("id"), "waiting")
        .await;
    client.shutdown().await;
}

/// The names of the worktree folders under `$TETHER_HOME/worktrees/<repository>/`, sorted.
/// Anything else in there (a stray file, a second repository's folder) shows up too.
fn session_folders(env: &TestEnv) -> Vec<String> {
    let worktrees = env.home().join("state/worktrees");
    let mut names = Vec::new();
    for repository in std::fs::read_dir(&worktrees).expect("the worktrees folder exists") {
        let repository = repository.expect("an entry");
        for folder in std::fs::read_dir(repository.path()).expect("a repository's folder") {
            let folder = folder.expect("an entry");
            names.push(folder.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_without_commits_is_refused_clearly() {
    let env = TestEnv::new();
    let empty = env.home().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    crate::support::git(&empty, &["init", "-q", "-b", "main"]);
    let model = FakeModel::start().await;
    let mut client = LspClient::spawn(env.home()).await;
    client.initialize(&empty, model.settings(), true).await;
    let error = client
        .call_err("tether/session/create", json!({"prompt": "x"}))
        .await;
    assert!(
        error_message(&error).contains("has no commits yet"),
        "{error}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_the_extension_get_no_notifications_but_every_command() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["plain LSP works"]));
    let mut client = LspClient::spawn(env.home()).await;
    let init = client
        .initialize(&env.repo(), model.settings(), false)
        .await;
    let commands = init["capabilities"]["executeCommandProvider"]["commands"]
        .as_array()
        .expect("commands")
        .clone();
    for expected in [
        "tether.create",
        "tether.list",
        "tether.get",
        "tether.send",
        "tether.stop",
        "tether.resume",
        "tether.complete",
        "tether.clone",
        "tether.delete",
        "tether.export",
    ] {
        assert!(
            commands.contains(&json!(expected)),
            "{expected} missing: {commands:?}"
        );
    }
    assert_eq!(init["serverInfo"]["name"], "tether");

    let info = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.create", "arguments": [{"prompt": "Helix style"}]}),
        )
        .await;
    let id = info["id"].as_str().expect("id").to_owned();
    let mut status = String::new();
    for _ in 0..200 {
        let got = client
            .call(
                "workspace/executeCommand",
                json!({"command": "tether.get", "arguments": [{"id": id}]}),
            )
            .await;
        status = got["session"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if status == "waiting" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "waiting");
    let exported = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.export", "arguments": [{"id": id}]}),
        )
        .await;
    assert!(
        exported["content"]
            .as_str()
            .unwrap_or_default()
            .contains("plain LSP works")
    );
    assert!(
        client.events().is_empty(),
        "no custom notifications without opting in"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_repository_is_read_only() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["first"]));
    let mut first = env.server_in_process(&model).await;
    let (_, id) = first.create(json!({"prompt": "owned by the first"})).await;
    first.wait_for_status(&id, "waiting").await;

    let mut second = env.server_in_process(&model).await;
    let error = second
        .call_err("tether/session/create", json!({"prompt": "x"}))
        .await;
    assert_eq!(error["code"], -31003);
    assert!(
        error_message(&error).contains(&format!("pid {}", first.pid())),
        "{error}"
    );
    // It still shows the sessions, read-only.
    let listed = second.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"][0]["id"], id);
    assert_eq!(listed["sessions"][0]["readOnly"], true);
    let error = second
        .call_err("tether/session/send", json!({"id": id, "text": "hi"}))
        .await;
    assert_eq!(error["code"], -31003);
    second.shutdown().await;
    first.shutdown().await;
}

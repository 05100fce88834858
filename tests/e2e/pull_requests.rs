//! Pull requests through GitHub's CLI: a task's trial promoted as one, a session opening
//! one, and `gh` missing or failing (a fake `gh` on PATH records what it was asked).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message, git};
use crate::tasks::{race_client, race_settings, task_until, three_models, trial};

/// A fake `gh` that records its arguments in `<dir>/gh-args` and answers as `script` says.
fn fake_gh(dir: &Path, script: &str) -> PathBuf {
    let bin = dir.join("gh-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let gh = bin.join("gh");
    std::fs::write(
        &gh,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n{script}\n",
            dir.join("gh-args").display()
        ),
    )
    .expect("write gh");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

/// `PATH` with `bin` first and without any other `gh` (a real one installed here must not
/// answer in the fake's place, nor once the fake is gone).
fn path_with(bin: &Path) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let folders = std::iter::once(bin.to_path_buf())
        .chain(std::env::split_paths(&path).filter(|folder| !folder.join("gh").exists()));
    std::env::join_paths(folders)
        .expect("PATH")
        .into_string()
        .expect("PATH in UTF-8")
}

/// A bare repository as the user's origin.
fn add_origin(env: &TestEnv) -> PathBuf {
    let remote = env.home().join("origin.git");
    git(
        env.home(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            remote.to_str().expect("utf-8"),
        ],
    );
    git(
        &env.repo(),
        &["remote", "add", "origin", remote.to_str().expect("utf-8")],
    );
    git(&env.repo(), &["push", "-q", "origin", "main"]);
    remote
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_promoted_as_a_pull_request_is_pushed_and_opened_through_gh() {
    let env = TestEnv::new();
    env.identify_user();
    let remote = add_origin(&env);
    let bin = fake_gh(
        env.home(),
        "echo 'Creating pull request'\necho 'https://github.com/me/app/pull/42'",
    );
    let (alpha, beta, gamma) = three_models().await;
    alpha.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "pr.txt", "content": "for review\n"}"#,
    )]));
    alpha.push(Reply::text(&["done"]));
    let mut settings = race_settings(&alpha, &beta, &gamma);
    settings["review"] = json!({"auto": false});
    let path = path_with(&bin);
    let mut client = race_client(&env, settings, &[("PATH", &path)]).await;
    let created = client
        .call(
            "tether/task/create",
            json!({"prompt": "Add pr.txt", "name": "prtask", "trials": [{"provider": "alpha"}]}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let task = task_until(&mut client, &id, |task| task["status"] == "done").await;
    let session_id = trial(&task, 1)["sessionId"].clone();

    let promoted = client
        .call(
            "tether/task/promote",
            json!({"id": id, "sessionId": session_id, "how": "pr", "body": "Please look"}),
        )
        .await;
    assert_eq!(
        promoted["pullRequest"], "https://github.com/me/app/pull/42",
        "{promoted:#}"
    );
    assert_eq!(
        promoted["task"]["promoted"]["pullRequest"],
        "https://github.com/me/app/pull/42"
    );
    let args = std::fs::read_to_string(env.home().join("gh-args")).expect("gh ran");
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args,
        [
            "pr",
            "create",
            "--head",
            "tether/prtask-1",
            "--base",
            "main",
            "--title",
            "Add pr.txt",
            "--body",
            "Please look"
        ]
    );
    // The branch is on the remote, with the trial's work.
    let pushed = git(&remote, &["show", "tether/prtask-1:pr.txt"]);
    assert_eq!(pushed, "for review\n");
    // The session shows its pull request.
    let info = client
        .call("tether/session/get", json!({"id": session_id}))
        .await;
    assert_eq!(
        info["session"]["pullRequest"], "https://github.com/me/app/pull/42",
        "{info:#}"
    );
    // Every editor's transcript (Helix's document, Neovim's buffer) says so too.
    let exported = client
        .call("tether/session/export", json!({"id": session_id}))
        .await;
    assert!(
        exported["content"]
            .as_str()
            .is_some_and(|text| text.contains("- Pull request: https://github.com/me/app/pull/42")),
        "{exported:#}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_pull_request_without_gh_or_with_a_failing_gh_is_refused_clearly() {
    let env = TestEnv::new();
    env.identify_user();
    add_origin(&env);
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "x.txt", "content": "x\n"}"#,
    )]));
    model.push(Reply::text(&["done"]));
    // gh "not logged in": fails with a message.
    let bin = fake_gh(
        env.home(),
        "echo 'To get started with GitHub CLI, please run:  gh auth login' >&2\nexit 4",
    );
    let path = path_with(&bin);
    let mut client = LspClient::spawn_with_env(env.home(), &[("PATH", &path)]).await;
    client.initialize(&env.repo(), model.settings(), true).await;
    let (_, id) = client
        .create(json!({"prompt": "add x", "name": "solo"}))
        .await;
    client.wait_for_status(&id, "waiting").await;

    // Uncommitted work is not in a pull request: refused until committed.
    let error = client
        .call_err("tether/session/git", json!({"id": id, "op": "pr"}))
        .await;
    assert_eq!(error["code"], -31004, "{error}");
    assert!(error_message(&error).contains("not committed"), "{error}");
    client
        .call("tether/session/git", json!({"id": id, "op": "stage"}))
        .await;
    client
        .call(
            "tether/session/git",
            json!({"id": id, "op": "commit", "message": "Add x"}),
        )
        .await;
    let error = client
        .call_err(
            "tether/session/git",
            json!({"id": id, "op": "pr", "title": "Add x"}),
        )
        .await;
    assert_eq!(error["code"], -31004, "{error}");
    let message = error_message(&error);
    assert!(
        message.contains("gh auth login") && message.contains("gh pr create --head tether/solo"),
        "{message}"
    );
    let info = client.call("tether/session/get", json!({"id": id})).await;
    assert!(info["session"]["pullRequest"].is_null());

    // Without gh at all, the same: what happened and the command to run.
    std::fs::remove_file(bin.join("gh")).expect("remove gh");
    let error = client
        .call_err("tether/session/git", json!({"id": id, "op": "pr"}))
        .await;
    assert_eq!(error["code"], -31004, "{error}");
    assert!(
        error_message(&error).contains("`gh` is not installed"),
        "{error}"
    );
    client.shutdown().await;
}

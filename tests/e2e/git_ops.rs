//! `tether/session/git`: the session branch's git operations against real repositories,
//! with a bare repository on disk as the remote.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message, git};

async fn op(client: &mut LspClient, id: &str, params: Value) -> Value {
    let mut params = params;
    params["id"] = json!(id);
    client.call("tether/session/git", params).await
}

async fn refused(client: &mut LspClient, id: &str, params: Value) -> String {
    let mut params = params;
    params["id"] = json!(id);
    let error = client.call_err("tether/session/git", params).await;
    assert_eq!(error["code"], -31004, "{error}");
    error_message(&error).to_owned()
}

fn file_codes(status: &Value, path: &str) -> Option<(String, String)> {
    status["status"]["files"]
        .as_array()?
        .iter()
        .find(|file| file["path"] == path)
        .map(|file| {
            (
                file["index"].as_str().unwrap_or_default().to_owned(),
                file["worktree"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// A clone of the remote where "someone else" works.
fn other_clone(env: &TestEnv, remote: &Path) -> PathBuf {
    let other = env.home().join("other");
    git(
        env.home(),
        &["clone", "-q", remote.to_str().expect("utf-8"), "other"],
    );
    git(&other, &["config", "user.name", "Other"]);
    git(&other, &["config", "user.email", "other@example.com"]);
    other
}

fn commit_file(dir: &Path, path: &str, text: &str, message: &str) {
    std::fs::write(dir.join(path), text).expect("write");
    git(dir, &["add", path]);
    git(dir, &["commit", "-q", "-m", message]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_git_operation_against_a_real_remote() {
    let env = TestEnv::new();
    let repo = env.repo();
    git(&repo, &["config", "user.name", "Test"]);
    git(&repo, &["config", "user.email", "test@example.com"]);
    let remote = env.home().join("remote.git");
    git(
        env.home(),
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    git(
        &repo,
        &["remote", "add", "origin", remote.to_str().expect("utf-8")],
    );
    git(&repo, &["push", "-q", "origin", "main"]);

    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "a.txt", "content": "one\n"}"#,
    )]));
    model.push(Reply::text(&["done"]));
    let mut client = env.server(&model).await;
    let (info, id) = client
        .create(json!({"prompt": "add a", "name": "gitty"}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));

    // Status, stage, unstage, commit.
    let status = op(&mut client, &id, json!({"op": "status"})).await;
    assert_eq!(
        file_codes(&status, "a.txt"),
        Some(("?".into(), "?".into())),
        "{status}"
    );
    assert_eq!(status["status"]["aheadOfBase"], 0);
    assert!(status["status"]["upstream"].is_null());
    let status = op(&mut client, &id, json!({"op": "stage", "paths": ["a.txt"]})).await;
    assert_eq!(file_codes(&status, "a.txt"), Some(("A".into(), " ".into())));
    let status = op(
        &mut client,
        &id,
        json!({"op": "unstage", "paths": ["a.txt"]}),
    )
    .await;
    assert_eq!(file_codes(&status, "a.txt"), Some(("?".into(), "?".into())));
    let message = refused(&mut client, &id, json!({"op": "commit", "message": "x"})).await;
    assert!(message.contains("nothing is staged"), "{message}");
    op(&mut client, &id, json!({"op": "stage"})).await;
    let committed = op(
        &mut client,
        &id,
        json!({"op": "commit", "message": "add a"}),
    )
    .await;
    assert!(
        committed["commit"]
            .as_str()
            .is_some_and(|sha| sha.len() == 40),
        "{committed}"
    );
    assert_eq!(committed["status"]["aheadOfBase"], 1);
    assert_eq!(
        git(&worktree, &["log", "-1", "--format=%an %s"]).trim(),
        "Test add a"
    );
    let message = refused(
        &mut client,
        &id,
        json!({"op": "stage", "paths": ["../outside"]}),
    )
    .await;
    assert!(message.contains("not a path inside"), "{message}");

    // Discard: one file, then everything.
    std::fs::write(worktree.join("README.md"), "scribbles\n").expect("write");
    std::fs::write(worktree.join("b.txt"), "stray\n").expect("write");
    // An unstaged change listed first keeps its leading space: " M", not a staged "M" on a
    // path missing its first letter.
    let status = op(&mut client, &id, json!({"op": "status"})).await;
    assert_eq!(
        file_codes(&status, "README.md"),
        Some((" ".into(), "M".into())),
        "{status}"
    );
    op(
        &mut client,
        &id,
        json!({"op": "discard", "paths": ["README.md"]}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(worktree.join("README.md")).expect("read"),
        "# sample\n"
    );
    assert!(worktree.join("b.txt").exists(), "only what was named");
    let status = op(&mut client, &id, json!({"op": "discard"})).await;
    assert!(!worktree.join("b.txt").exists());
    assert_eq!(status["status"]["files"], json!([]));

    // Push, then pull what someone else pushed (a fast-forward).
    let status = op(&mut client, &id, json!({"op": "push"})).await;
    assert_eq!(
        status["status"]["upstream"]["name"], "origin/tether/gitty",
        "{status}"
    );
    let other = other_clone(&env, &remote);
    git(&other, &["checkout", "-q", "tether/gitty"]);
    commit_file(&other, "c.txt", "theirs\n", "add c");
    git(&other, &["push", "-q", "origin", "tether/gitty"]);
    op(&mut client, &id, json!({"op": "pull"})).await;
    assert_eq!(
        std::fs::read_to_string(worktree.join("c.txt")).expect("pulled"),
        "theirs\n"
    );

    // Merge into the base branch, checked out and clean in the user's repository.
    op(&mut client, &id, json!({"op": "mergeToBase"})).await;
    assert!(repo.join("a.txt").exists() && repo.join("c.txt").exists());
    assert_eq!(
        git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "main"
    );

    // Pull a branch that is not the session's.
    git(&other, &["checkout", "-q", "-b", "feature", "main"]);
    commit_file(&other, "feature.txt", "feature\n", "feature");
    git(&other, &["push", "-q", "origin", "feature"]);
    op(
        &mut client,
        &id,
        json!({"op": "pullBranch", "branch": "feature"}),
    )
    .await;
    assert!(worktree.join("feature.txt").exists());
    // A "branch" that git would read as an option (one that runs a program) is refused, and
    // the program never runs.
    let planted = env.home().join("planted");
    let message = refused(
        &mut client,
        &id,
        json!({"op": "pullBranch", "branch": format!("--upload-pack=touch {}; git-upload-pack", planted.display())}),
    )
    .await;
    assert!(message.contains("is not a branch name"), "{message}");
    assert!(!planted.exists(), "the option ran a program");

    // Pulling the base in when both changed the same line: refused, nothing changed.
    commit_file(&repo, "README.md", "# main's title\n", "main's readme");
    commit_file(
        &worktree,
        "README.md",
        "# the session's title\n",
        "session's readme",
    );
    let head = git(&worktree, &["rev-parse", "HEAD"]);
    let message = refused(&mut client, &id, json!({"op": "pullFromBase"})).await;
    assert!(message.contains("conflicts in README.md"), "{message}");
    assert_eq!(git(&worktree, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git(&worktree, &["status", "--porcelain"]),
        "",
        "the merge was aborted"
    );
    let message = refused(&mut client, &id, json!({"op": "mergeToBase"})).await;
    assert!(message.contains("conflicts"), "{message}");
    assert_eq!(
        git(&repo, &["status", "--porcelain"]),
        "",
        "main is as it was"
    );

    // A push that is not a fast-forward is refused and the remote keeps its commit.
    git(&other, &["checkout", "-q", "tether/gitty"]);
    git(
        &other,
        &["pull", "-q", "--ff-only", "origin", "tether/gitty"],
    );
    commit_file(&other, "d.txt", "more of theirs\n", "add d");
    git(&other, &["push", "-q", "origin", "tether/gitty"]);
    let theirs = git(&other, &["rev-parse", "HEAD"]);
    let message = refused(&mut client, &id, json!({"op": "push"})).await;
    assert!(message.contains("not a fast-forward"), "{message}");
    let remote_head = git(&remote, &["rev-parse", "refs/heads/tether/gitty"]);
    assert_eq!(remote_head, theirs);
    let message = refused(&mut client, &id, json!({"op": "pull"})).await;
    assert!(message.contains("not a fast-forward"), "{message}");
    assert_eq!(git(&worktree, &["rev-parse", "HEAD"]), head);

    // No remote at all.
    git(&repo, &["remote", "remove", "origin"]);
    let message = refused(&mut client, &id, json!({"op": "push"})).await;
    assert!(message.contains("no remote named origin"), "{message}");
    let error = client
        .call_err("tether/session/git", json!({"id": id, "op": "rebase"}))
        .await;
    assert_eq!(error["code"], -32602, "{error}");
    client.shutdown().await;
}

/// Helix's way: git from the transcript document's code actions; each says what it did with
/// `window/showMessage`, as Helix shows nothing of a command's result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_from_the_transcripts_code_actions_says_what_it_did() {
    let env = TestEnv::new();
    env.identify_user();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "a.txt", "content": "one\n"}"#,
    )]));
    model.push(Reply::text(&["done"]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "add a", "name": "helixy"}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    let transcript = env.repo().join(".tether/sessions/helixy.md");
    let uri = format!("file://{}", transcript.display());
    let actions = client.code_actions(&uri, (0, 0), (0, 0)).await;
    let git_titles: Vec<&str> = actions
        .iter()
        .filter_map(|action| action["title"].as_str())
        .filter(|title| title.starts_with("tether: Git:"))
        .collect();
    assert_eq!(
        git_titles,
        [
            "tether: Git: status of helixy",
            "tether: Git: stage every change of helixy",
            "tether: Git: commit what is staged in helixy as \"add a\"",
            "tether: Git: push helixy",
            "tether: Git: pull helixy",
            "tether: Git: merge helixy into main",
            "tether: Git: pull main into helixy",
        ]
    );
    let find = |wanted: &str| {
        actions
            .iter()
            .find(|action| action["title"].as_str().is_some_and(|t| t.contains(wanted)))
            .cloned()
            .expect("the action")
    };
    client
        .execute_action(&find("stage every change"))
        .await
        .expect("stage runs");
    let shown = client
        .wait_for_message_matching("window/showMessage", |params| {
            params["message"]
                .as_str()
                .is_some_and(|text| text.starts_with("tether git stage:"))
        })
        .await;
    assert_eq!(
        shown["params"]["message"],
        "tether git stage: tether/helixy → main: 0 ahead, 0 behind; 1 changed file(s)"
    );
    client
        .execute_action(&find("commit what is staged"))
        .await
        .expect("commit runs");
    let shown = client
        .wait_for_message_matching("window/showMessage", |params| {
            params["message"]
                .as_str()
                .is_some_and(|text| text.starts_with("tether git commit:"))
        })
        .await;
    let text = shown["params"]["message"].as_str().unwrap_or_default();
    assert!(
        text.contains("1 ahead, 0 behind; 0 changed file(s); committed "),
        "{text}"
    );
    // A refusal is the command's error, as any editor shows one.
    let error = client
        .execute_action(&find("commit what is staged"))
        .await
        .expect_err("nothing is staged");
    assert!(
        error_message(&error).contains("nothing is staged"),
        "{error}"
    );
    client.shutdown().await;
}

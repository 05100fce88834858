//! Lifecycle hooks from the repository's `.tether/config.toml`: trusted repositories only;
//! exit 2 blocks and its stderr reaches the agent.

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message};

fn write_hooks(env: &TestEnv, toml: &str) {
    env.commit_repo_config(toml);
}

fn hook_runs(client: &LspClient, id: &str) -> Vec<Value> {
    client
        .session_events(id)
        .into_iter()
        .filter(|params| params["event"]["item"]["type"] == "hook")
        .map(|params| params["event"]["item"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_only_once_the_repository_is_trusted_and_get_the_session_on_stdin() {
    let env = TestEnv::new();
    // Hooks run in the session's sandbox: they may write its worktree and its temp dir.
    write_hooks(
        &env,
        "[[hooks.on_agent_finish]]\nname = \"record\"\ncommand = \"cat > \\\"$TMPDIR/hook-input.json\\\"\"\n",
    );
    let model = FakeModel::start().await;
    model.push(Reply::text(&["first"]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "hello", "name": "hooked"}))
        .await;
    let input = env
        .home()
        .join("state/tmp")
        .join(&id)
        .join("hook-input.json");
    let skipped = client
        .wait_for_event(&id, |event| event["item"]["type"] == "hook")
        .await;
    assert_eq!(skipped["event"]["item"]["status"], "skipped", "{skipped}");
    assert!(
        skipped["event"]["item"]["output"]
            .as_str()
            .is_some_and(|text| text.contains("not trusted") && text.contains("tether.trust")),
        "{skipped}"
    );
    assert!(!input.exists(), "an untrusted hook never runs");

    client.call("tether/session/trust", json!({})).await;
    client.wait_for_status(&id, "waiting").await;
    model.push(Reply::text(&["second"]));
    client
        .call("tether/session/send", json!({"id": id, "text": "again"}))
        .await;
    client
        .wait_for_event(&id, |event| {
            event["item"]["type"] == "hook" && event["item"]["status"] == "success"
        })
        .await;
    let told: Value = serde_json::from_str(&std::fs::read_to_string(&input).expect("the hook ran"))
        .expect("JSON on stdin");
    assert_eq!(told["sessionId"], id);
    assert_eq!(told["event"], "on_agent_finish");
    assert_eq!(told["branch"], "tether/hooked");
    assert!(
        told["transcriptPath"]
            .as_str()
            .is_some_and(|path| path.ends_with(".tether/sessions/hooked.md"))
    );
    assert!(
        told["worktree"]
            .as_str()
            .is_some_and(|path| !path.is_empty())
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_hook_sends_its_complaint_to_the_agent_until_it_passes() {
    let env = TestEnv::new();
    write_hooks(
        &env,
        "[hooks.tasks.check]\ncommand = \"test -f fixed.txt || { echo 'fixed.txt is missing' >&2; exit 2; }\"\n\n\
         [[hooks.on_agent_finish]]\nname = \"check\"\ntask = \"check\"\n\n\
         [[hooks.on_agent_finish]]\nname = \"flaky\"\ncommand = \"echo oops; exit 1\"\nfailed_output = \"command\"\n",
    );
    let model = FakeModel::start().await;
    model.push(Reply::text(&["done, I think"]));
    model.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "fixed.txt", "content": "ok\n"}"#,
    )]));
    model.push(Reply::text(&["fixed"]));
    let mut client = LspClient::spawn(env.home()).await;
    client.initialize(&env.repo(), model.settings(), true).await;
    client.call("tether/session/trust", json!({})).await;
    let (_, id) = client.create(json!({"prompt": "make it pass"})).await;
    client.wait_for_status(&id, "waiting").await;

    let statuses: Vec<(String, String)> = hook_runs(&client, &id)
        .iter()
        .map(|run| {
            (
                run["name"].as_str().unwrap_or_default().to_owned(),
                run["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("check".to_owned(), "blocked".to_owned()),
            ("flaky".to_owned(), "failed".to_owned()),
            ("check".to_owned(), "success".to_owned()),
            ("flaky".to_owned(), "failed".to_owned()),
        ]
    );
    let requests = model.requests();
    assert_eq!(requests.len(), 3, "the block made one more turn");
    let complaint = requests[1]["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(complaint.contains("fixed.txt is missing"), "{complaint}");
    assert!(
        complaint.contains("The on_agent_finish hook `flaky` failed running `echo oops; exit 1`"),
        "the failure's note rides along: {complaint}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_done_hook_that_blocks_reopens_the_session_then_gives_way() {
    let env = TestEnv::new();
    write_hooks(
        &env,
        "[[hooks.on_done]]\nname = \"never-happy\"\ncommand = \"echo 'lint fails' >&2; exit 2\"\n",
    );
    let model = FakeModel::start().await;
    model.push(Reply::text(&["done"]));
    model.set_fallback(Reply::text(&["tried again"]));
    let mut client = LspClient::spawn(env.home()).await;
    client.initialize(&env.repo(), model.settings(), true).await;
    client.call("tether/session/trust", json!({})).await;
    let (_, id) = client.create(json!({"prompt": "finish"})).await;
    client.wait_for_status(&id, "waiting").await;

    // Each complete runs the hook; its block sends the agent back to work, three times.
    for round in 1..=3 {
        client
            .call("tether/session/complete", json!({"id": id}))
            .await;
        client.wait_for_nth_status(&id, "waiting", round + 1).await;
        let asked = model
            .requests()
            .last()
            .and_then(|request| request["messages"].as_array().cloned())
            .and_then(|messages| messages.into_iter().rev().find(|m| m["role"] == "user"))
            .and_then(|message| message["content"].as_str().map(str::to_owned))
            .unwrap_or_default();
        assert!(asked.contains("lint fails"), "round {round}: {asked}");
    }
    // The fourth time the cap is reached: the session completes.
    client
        .call("tether/session/complete", json!({"id": id}))
        .await;
    client.wait_for_status(&id, "completed").await;

    // A repository cannot trust itself.
    write_hooks(&env, "[trust]\nrepositories = [\".\"]\n");
    let error = client
        .call_err("tether/session/create", json!({"prompt": "x"}))
        .await;
    assert!(
        error_message(&error).contains("cannot trust its own repository"),
        "{error}"
    );
    client.shutdown().await;
}

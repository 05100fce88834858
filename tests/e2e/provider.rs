//! The OpenAI-compatible provider against a real HTTP server's good and bad days.

use serde_json::json;

use crate::support::{FakeModel, Reply, TestEnv, agent_messages};

async fn run_one(model: &FakeModel, env: &TestEnv) -> (crate::support::LspClient, String) {
    let mut client = env.server(model).await;
    let (_, id) = client.create(json!({"prompt": "Hello"})).await;
    (client, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_then_the_reply_streams() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::Status(
        429,
        r#"{"error": {"message": "slow down"}}"#.to_owned(),
    ));
    model.push(Reply::Status(503, "busy".to_owned()));
    model.push(Reply::text(&["Fine", " now"]));
    let (client, id) = run_one(&model, &env).await;
    client.wait_for_status(&id, "waiting").await;
    assert_eq!(model.requests().len(), 3);
    assert_eq!(
        agent_messages(&client.session_events(&id))[0]["text"],
        "Fine now"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_forever_fails_the_session_clearly() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::Status(500, "internal meltdown".to_owned()));
    let (mut client, id) = run_one(&model, &env).await;
    let failed = client.wait_for_status(&id, "failed").await;
    let reason = failed["event"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("HTTP 500") && reason.contains("internal meltdown"),
        "{reason}"
    );
    // max_retries = 2: three attempts in all.
    assert_eq!(model.requests().len(), 3);
    let turn_end = client
        .wait_for_event(&id, |event| event["kind"] == "turnEnded")
        .await;
    assert_eq!(turn_end["event"]["reason"], "failed");
    // Failed is resumable once the server is back.
    model.set_fallback(Reply::text(&["Back"]));
    client
        .call("tether/session/resume", json!({"id": id}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_midway_fails_without_losing_what_streamed() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::cut_after(&["Partial ", "answer"]));
    let (client, id) = run_one(&model, &env).await;
    let failed = client.wait_for_status(&id, "failed").await;
    let reason = failed["event"]["reason"].as_str().expect("reason");
    assert!(reason.contains("ended before it finished"), "{reason}");
    let replies = agent_messages(&client.session_events(&id));
    assert_eq!(replies[0]["text"], "Partial answer");
    assert_eq!(replies[0]["interrupted"], true);
    assert_eq!(model.requests().len(), 1, "no retry once text has streamed");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_in_a_chunk_fails_the_turn_and_the_server_lives_on() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::malformed_after(&["Some "]));
    model.push(Reply::text(&["ok"]));
    let (mut client, id) = run_one(&model, &env).await;
    let failed = client.wait_for_status(&id, "failed").await;
    let reason = failed["event"]["reason"].as_str().expect("reason");
    assert!(reason.contains("not valid JSON"), "{reason}");
    let info = client
        .call("tether/session/create", json!({"prompt": "Again"}))
        .await;
    client
        .wait_for_status(info["id"].as_str().expect("id"), "waiting")
        .await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_200_body_is_a_clear_failure() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::Empty);
    let (client, id) = run_one(&model, &env).await;
    let failed = client.wait_for_status(&id, "failed").await;
    let reason = failed["event"]["reason"].as_str().expect("reason");
    assert!(reason.contains("empty reply"), "{reason}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_comes_from_the_named_variable_and_is_never_written() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["secret-free reply"]));
    let key = "sk-test-DO-NOT-LEAK-4242424242";
    let mut settings = model.settings();
    settings["providers"]["fake"]["api_key_env"] = json!("TETHER_TEST_KEY");

    // Without the variable, the session fails and says which variable is missing.
    let mut client = env.server_with(settings.clone()).await;
    let (_, id) = client.create(json!({"prompt": "Hello"})).await;
    let failed = client.wait_for_status(&id, "failed").await;
    assert!(
        failed["event"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("TETHER_TEST_KEY"),
        "{failed}"
    );
    client.shutdown().await;

    // With it, the key reaches the server as a bearer token, and no file Tether wrote holds it.
    let mut client =
        crate::support::LspClient::spawn_with_env(env.home(), &[("TETHER_TEST_KEY", key)]).await;
    client.initialize(&env.repo(), settings, true).await;
    let (_, id) = client.create(json!({"prompt": "Hello"})).await;
    client.wait_for_status(&id, "waiting").await;
    let stderr = client.stderr();
    client.shutdown().await;
    assert_eq!(
        model.authorizations().last().cloned().flatten(),
        Some(format!("Bearer {key}"))
    );
    assert!(!stderr.contains(key));
    let mut checked = 0;
    for entry in walk(env.home()) {
        if let Ok(text) = std::fs::read(&entry) {
            checked += 1;
            assert!(
                !String::from_utf8_lossy(&text).contains(key),
                "{} holds the key",
                entry.display()
            );
        }
    }
    assert!(checked > 3, "the walk read the state files");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == ".git") {
                continue;
            }
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_goes_silent_times_out_clearly() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::Sse(vec![
        crate::support::fake_model::Step::Data(
            json!({"choices": [{"delta": {"content": "Thinking about it"}, "finish_reason": null}]})
                .to_string(),
        ),
        crate::support::fake_model::Step::Sleep(std::time::Duration::from_secs(5)),
    ]));
    let mut settings = model.settings();
    settings["providers"]["fake"]["timeout_secs"] = json!(1);
    let mut client = env.server_with(settings).await;
    let (_, id) = client.create(json!({"prompt": "Hello"})).await;
    let failed = client.wait_for_status(&id, "failed").await;
    let reason = failed["event"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("sent nothing for 1 s"), "{reason}");
    assert_eq!(
        agent_messages(&client.session_events(&id))[0]["text"],
        "Thinking about it"
    );
    client.shutdown().await;
}

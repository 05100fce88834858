//! The OpenAI-compatible provider against a real HTTP server's good and bad days.

use serde_json::json;

use crate::support::{FakeModel, Reply, TestEnv, agent_messages, last_message};

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
async fn a_200_that_is_not_an_event_stream_says_what_it_was() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    // A server that ignored `stream: true` and echoes a key it was sent.
    let long_tail = "x".repeat(1000);
    model.push(Reply::Json(format!(
        r#"{{"error": {{"message": "streaming is not supported for key sk-abcdefghijklmnopqrstuvwx", "detail": "{long_tail}"}}}}"#
    )));
    let (client, id) = run_one(&model, &env).await;
    let failed = client.wait_for_status(&id, "failed").await;
    let reason = failed["event"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("answered 200 with application/json instead of an event stream"),
        "{reason}"
    );
    assert!(
        reason.contains(r#"{"error": {"message": "streaming is not supported"#),
        "{reason}"
    );
    // Bounded, and passed through the redactor like any failure.
    assert!(reason.len() < 600, "{} bytes: {reason}", reason.len());
    assert!(!reason.contains("sk-abcdefghijklmnopqrstuvwx"), "{reason}");
    assert!(reason.contains("[redacted]"), "{reason}");
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
        model.header("authorization").last().cloned().flatten(),
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
    // Inactivity ends the turn with `timeout`; the session stops, resumable.
    let stopped = client.wait_for_status(&id, "stopped").await;
    let reason = stopped["event"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("sent nothing for 1 s"), "{reason}");
    let turn_end = client
        .wait_for_event(&id, |event| event["kind"] == "turnEnded")
        .await;
    assert_eq!(turn_end["event"]["reason"], "timeout");
    assert_eq!(
        agent_messages(&client.session_events(&id))[0]["text"],
        "Thinking about it"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_streams_thinking_text_and_tool_use() {
    let env = TestEnv::new();
    std::fs::write(env.repo().join("AGENTS.md"), "Answer tersely.\n").expect("write");
    crate::support::git(&env.repo(), &["add", "."]);
    crate::support::git(&env.repo(), &["commit", "-q", "-m", "agents"]);
    let model = FakeModel::start().await;
    model.push(Reply::anthropic(&[
        json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me look."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Reading "}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "the README."}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"path\": \"READ"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "ME.md\"}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
        json!({"type": "message_stop"}),
    ]));
    model.push(Reply::anthropic(&[
        json!({"type": "message_start", "message": {"usage": {"input_tokens": 60, "output_tokens": 1,
            "cache_read_input_tokens": 40, "cache_creation_input_tokens": 10}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "It says: sample."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}),
        json!({"type": "message_stop"}),
    ]));
    let key = "sk-ant-test-NEVER-WRITTEN";
    let mut client = crate::support::LspClient::spawn_with_env(
        env.home(),
        &[("TETHER_TEST_ANTHROPIC_KEY", key)],
    )
    .await;
    client
        .initialize(&env.repo(), model.anthropic_settings(), true)
        .await;
    let (_, id) = client
        .create(json!({"prompt": "What does the README say?"}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    let events = client.session_events(&id);

    let messages: Vec<_> = events
        .iter()
        .filter(|params| {
            params["event"]["kind"] == "item"
                && params["event"]["phase"] == "completed"
                && params["event"]["item"]["type"] == "message"
        })
        .map(|params| {
            (
                params["event"]["item"]["role"].clone(),
                params["event"]["item"]["text"].clone(),
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            (json!("user"), json!("What does the README say?")),
            (json!("thinking"), json!("Let me look.")),
            (json!("agent"), json!("Reading the README.")),
            (json!("agent"), json!("It says: sample.")),
        ]
    );
    let tool = events
        .iter()
        .find(|params| {
            params["event"]["phase"] == "completed" && params["event"]["item"]["type"] == "toolCall"
        })
        .expect("a tool call");
    assert_eq!(tool["event"]["item"]["input"]["path"], "README.md");
    assert_eq!(tool["event"]["item"]["output"], "# sample\n");
    let usage: Vec<_> = events
        .iter()
        .filter(|params| params["event"]["kind"] == "usage")
        .map(|params| {
            (
                params["event"]["inputTokens"].clone(),
                params["event"]["outputTokens"].clone(),
            )
        })
        .collect();
    assert_eq!(usage, [(json!(25), json!(30)), (json!(60), json!(5))]);

    // The wire: the key in x-api-key, the version header, the system prompt apart, and the
    // tool result sent back as a tool_result block answering toolu_1.
    assert_eq!(model.paths(), ["/v1/messages", "/v1/messages"]);
    assert_eq!(model.header("x-api-key")[0].as_deref(), Some(key));
    assert_eq!(
        model.header("anthropic-version")[0].as_deref(),
        Some("2023-06-01")
    );
    let second = &model.requests()[1];
    assert!(
        second["system"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("coding agent"),
        "{second:#}"
    );
    // The repository's AGENTS.md is in the instructions.
    assert!(
        second["system"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Answer tersely."),
        "{second:#}"
    );
    // Prompt caching: breakpoints after the tools, the system prompt and the conversation.
    let ephemeral = json!({"type": "ephemeral"});
    assert_eq!(second["system"][0]["cache_control"], ephemeral);
    let tools = second["tools"].as_array().expect("tools");
    assert_eq!(tools.last().expect("a tool")["cache_control"], ephemeral);
    assert!(tools[0].get("cache_control").is_none());
    let last_message = second["messages"]
        .as_array()
        .and_then(|m| m.last())
        .expect("a message");
    let last_block = last_message["content"]
        .as_array()
        .and_then(|b| b.last())
        .expect("a block");
    assert_eq!(last_block["cache_control"], ephemeral);
    // The cache's tokens are counted in the usage.
    let cached: Vec<_> = events
        .iter()
        .filter(|params| params["event"]["kind"] == "usage")
        .map(|params| {
            (
                params["event"]["cacheReadTokens"].clone(),
                params["event"]["cacheWriteTokens"].clone(),
            )
        })
        .collect();
    assert_eq!(cached[1], (json!(40), json!(10)), "{cached:?}");
    assert_eq!(second["max_tokens"], 8192);
    let messages = second["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["content"][1]["type"], "tool_use");
    assert_eq!(messages[1]["content"][1]["input"]["path"], "README.md");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "toolu_1");
    assert!(second["tools"][0]["input_schema"].is_object());
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_errors_inside_the_stream_fail_the_turn_clearly() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::anthropic(&[
        json!({"type": "message_start", "message": {"usage": {"input_tokens": 5}}}),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ]));
    let mut client = crate::support::LspClient::spawn_with_env(
        env.home(),
        &[("TETHER_TEST_ANTHROPIC_KEY", "k")],
    )
    .await;
    client
        .initialize(&env.repo(), model.anthropic_settings(), true)
        .await;
    let (_, id) = client.create(json!({"prompt": "hi"})).await;
    let failed = client.wait_for_status(&id, "failed").await;
    let reason = failed["event"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Overloaded"), "{reason}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_priced_and_the_budget_stops_the_session_until_raised() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["a", "b"])); // 11 input, 2 output tokens
    let mut settings = model.settings();
    settings["prices"] = json!({"fake-model": {"input": 1000.0, "output": 2000.0}});
    settings["session"] = json!({"budget_usd": 0.01});
    let mut client = env.server_with(settings).await;
    let (_, id) = client.create(json!({"prompt": "spend"})).await;
    let stopped = client.wait_for_status(&id, "stopped").await;
    assert!(
        stopped["event"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("budget was reached"),
        "{stopped}"
    );
    let turn_end = client
        .wait_for_event(&id, |event| event["kind"] == "turnEnded")
        .await;
    assert_eq!(turn_end["event"]["reason"], "budget");
    let usage = client
        .wait_for_event(&id, |event| event["kind"] == "usage")
        .await;
    // 11 × $0.001 + 2 × $0.002
    assert!(
        (usage["event"]["costUsd"].as_f64().unwrap_or_default() - 0.015).abs() < 1e-9,
        "{usage}"
    );
    let info = client.call("tether/session/get", json!({"id": id})).await;
    assert!(
        (info["session"]["usage"]["costUsd"]
            .as_f64()
            .unwrap_or_default()
            - 0.015)
            .abs()
            < 1e-9
    );

    // Resuming with the budget spent stops again at once, without asking the model.
    client
        .call("tether/session/resume", json!({"id": id, "text": "more"}))
        .await;
    client.wait_for_nth_status(&id, "stopped", 2).await;
    assert_eq!(model.requests().len(), 1);

    // Raised, the session goes on.
    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"session": {"budget_usd": 1.0}}}),
        )
        .await;
    client
        .call("tether/session/resume", json!({"id": id}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    assert_eq!(model.requests().len(), 2);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log_the_client_or_the_agents_commands() {
    let env = TestEnv::new();
    let key = "tk-live-0123456789abcdef-PLANTED";
    // The repository holds the key in a file the agent will read.
    std::fs::write(env.repo().join("deploy.env"), format!("TOKEN={key}\n")).expect("write");
    crate::support::git(&env.repo(), &["add", "."]);
    crate::support::git(&env.repo(), &["commit", "-q", "-m", "env"]);
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[
        ("read_file", r#"{"path": "deploy.env"}"#),
        ("run_command", r#"{"command": "env; echo corp-424242"}"#),
    ]));
    let echoed = format!("The key is {key} and the id corp-123456.");
    model.push(Reply::text_paced(
        &echoed.split_inclusive(' ').collect::<Vec<_>>(),
        std::time::Duration::from_millis(20),
    ));
    let mut settings = model.settings();
    settings["providers"]["fake"]["api_key_env"] = json!("TETHER_TEST_KEY");
    settings["secrets"] = json!({"patterns": ["corp-[0-9]{6}"]});
    let mut client =
        crate::support::LspClient::spawn_with_env(env.home(), &[("TETHER_TEST_KEY", key)]).await;
    client.initialize(&env.repo(), settings, true).await;
    let (_, id) = client
        .create(json!({"prompt": "show me the secrets"}))
        .await;
    client.wait_for_status(&id, "waiting").await;

    let notifications = serde_json::to_string(&client.session_events(&id)).expect("json");
    assert!(
        !notifications.contains(key),
        "a notification carried the key"
    );
    assert!(!notifications.contains("corp-123456") && !notifications.contains("corp-424242"));
    assert!(notifications.contains("[redacted]"));
    // The command never saw the key at all: it is not in its environment.
    let output = last_message(&model.requests()[1]);
    assert!(
        output.contains("exit code 0") && !output.contains("TETHER_TEST_KEY="),
        "{output}"
    );
    let exported = client
        .call("tether/session/export", json!({"id": id, "format": "json"}))
        .await;
    assert!(
        !exported["content"]
            .as_str()
            .unwrap_or_default()
            .contains(key)
    );
    let stderr = client.stderr();
    client.shutdown().await;
    assert!(!stderr.contains(key));
    for file in walk(&env.home().join("state")) {
        if file
            .components()
            .any(|part| part.as_os_str() == "worktrees")
        {
            continue; // the repository's own files, as committed
        }
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
        assert!(!text.contains(key), "{} holds the key", file.display());
        assert!(
            !text.contains("corp-123456"),
            "{} holds a secret",
            file.display()
        );
    }
}

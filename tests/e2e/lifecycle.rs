//! A session's life through the protocol: create, stream, follow up, stop, resume, clone,
//! export, delete, and the moves the state machine refuses.

use std::time::Duration;

use serde_json::json;

use crate::support::error_message;
use crate::support::{FakeModel, Reply, TestEnv, agent_messages, assert_gap_free, streamed_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_streams_a_reply_into_a_worktree_and_waits() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["Hello", ", ", "world", "!"]));
    let mut client = env.server(&model).await;

    let (info, id) = client
        .create(json!({"prompt": "Say hello to the world"}))
        .await;
    // Born pending, as the protocol says; `creating` and the rest arrive as events.
    assert_eq!(info["status"], "pending");
    assert_eq!(info["name"], "say-hello-to-the-world");
    assert_eq!(info["branch"], "tether/say-hello-to-the-world");
    assert_eq!(info["baseBranch"], "main");
    assert_eq!(info["model"], "fake-model");
    // Where it came from: this editor, by the name it gave in `initialize`.
    assert_eq!(
        info["startedBy"],
        json!({"kind": "editor", "name": "tether-e2e"}),
        "{info}"
    );

    client.wait_for_status(&id, "waiting").await;
    let events = client.session_events(&id);
    assert_gap_free(&events);
    let statuses: Vec<_> = events
        .iter()
        .filter(|params| params["event"]["kind"] == "status")
        .map(|params| {
            params["event"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(statuses, ["pending", "creating", "running", "waiting"]);
    let replies = agent_messages(&events);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["text"], "Hello, world!");
    let item_id = replies[0]["id"].as_str().expect("item id");
    assert_eq!(streamed_text(&events, item_id), "Hello, world!");
    let usage = events
        .iter()
        .find(|params| params["event"]["kind"] == "usage")
        .expect("a usage event");
    assert_eq!(usage["event"]["inputTokens"], 11);
    assert_eq!(usage["event"]["itemId"], item_id);

    // The worktree is a real checkout on its own branch, outside the user's checkout.
    let worktree = std::path::PathBuf::from(info["worktree"].as_str().expect("worktree"));
    assert!(worktree.join("README.md").is_file());
    assert!(!worktree.starts_with(env.repo()));
    assert!(
        env.branches()
            .contains(&"tether/say-hello-to-the-world".to_owned())
    );

    // The model was sent the prompt after a system message.
    let request = &model.requests()[0];
    assert_eq!(request["stream"], true);
    assert_eq!(request["messages"][0]["role"], "system");
    assert_eq!(request["messages"][1]["content"], "Say hello to the world");

    // get {since} returns exactly the events after the cursor, as they were announced.
    let snapshot = client
        .call("tether/session/get", json!({"id": id, "since": 3}))
        .await;
    let got = snapshot["events"].as_array().expect("events");
    assert_eq!(got.len(), events.len() - 3);
    for (got, sent) in got.iter().zip(&events[3..]) {
        assert_eq!(got["seq"], sent["seq"]);
        assert_eq!(got["event"], sent["event"]);
    }
    assert_eq!(snapshot["session"]["status"], "waiting");
    assert_eq!(snapshot["session"]["usage"]["outputTokens"], 4);

    let listed = client.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(1));
    let filtered = client
        .call("tether/session/list", json!({"status": "running"}))
        .await;
    assert_eq!(filtered["sessions"].as_array().map(Vec::len), Some(0));
    let found = client
        .call("tether/session/list", json!({"query": "HELLO"}))
        .await;
    assert_eq!(found["sessions"].as_array().map(Vec::len), Some(1));

    let status = client.shutdown().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_sent_while_working_is_queued_then_delivered() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text_paced(
        &["one ", "two ", "three"],
        Duration::from_millis(300),
    ));
    model.push(Reply::text(&["Second answer"]));
    let mut client = env.server(&model).await;

    let (_, id) = client.create(json!({"prompt": "Count to three"})).await;
    client
        .wait_for_event(&id, |event| event["kind"] == "delta")
        .await;

    let sent = client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "Now say more"}),
        )
        .await;
    assert_eq!(sent["queued"], true);

    client.wait_for_nth_status(&id, "waiting", 1).await;
    let events = client.session_events(&id);
    let replies = agent_messages(&events);
    assert_eq!(replies.len(), 2, "two turns ran: {events:#?}");
    assert_eq!(replies[0]["text"], "one two three");
    assert_eq!(replies[1]["text"], "Second answer");
    let turns_ended = events
        .iter()
        .filter(|params| params["event"]["kind"] == "turnEnded")
        .count();
    assert_eq!(turns_ended, 2);

    // The second request carried the whole conversation, follow-up last.
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    let messages = requests[1]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["content"], "one two three");
    assert_eq!(messages[3]["content"], "Now say more");

    // A message sent while idle starts a turn at once.
    model.push(Reply::text(&["Third"]));
    let sent = client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "And again"}),
        )
        .await;
    assert_eq!(sent["queued"], false);
    client.wait_for_nth_status(&id, "waiting", 2).await;
    assert_eq!(agent_messages(&client.session_events(&id)).len(), 3);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_mid_stream_then_resume() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let slow: Vec<&str> = vec!["tick "; 50];
    model.push(Reply::text_paced(&slow, Duration::from_millis(100)));
    model.push(Reply::text(&["Resumed answer"]));
    let mut client = env.server(&model).await;

    let (_, id) = client.create(json!({"prompt": "Tick slowly"})).await;
    client
        .wait_for_event(&id, |event| event["kind"] == "delta")
        .await;

    let stopped = client.call("tether/session/stop", json!({"id": id})).await;
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["statusReason"], "stopped by the user");
    let events = client.session_events(&id);
    let turn_end = events
        .iter()
        .find(|params| params["event"]["kind"] == "turnEnded")
        .expect("turn ended");
    assert_eq!(turn_end["event"]["reason"], "stopped");
    let partial = agent_messages(&events);
    assert_eq!(partial.len(), 1);
    assert_eq!(partial[0]["interrupted"], true);

    // Illegal moves in this state are refused with the state named.
    let error = client
        .call_err("tether/session/stop", json!({"id": id}))
        .await;
    assert!(error_message(&error).contains("it is stopped"), "{error}");
    let error = client
        .call_err("tether/session/send", json!({"id": id, "text": "hi"}))
        .await;
    assert!(error_message(&error).contains("resume"), "{error}");

    let resumed = client
        .call("tether/session/resume", json!({"id": id}))
        .await;
    assert_eq!(resumed["status"], "pending");
    client.wait_for_status(&id, "waiting").await;
    let replies = agent_messages(&client.session_events(&id));
    assert_eq!(replies.last().expect("reply")["text"], "Resumed answer");
    // The interrupted partial reply was not sent back to the model as if it were said.
    let messages = model.requests()[1]["messages"].clone();
    assert_eq!(messages.as_array().map(Vec::len), Some(2), "{messages}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_export_complete_and_delete() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["The answer is 42."]));
    let mut client = env.server(&model).await;

    let (info, id) = client
        .create(json!({"prompt": "What is the answer?", "name": "answer", "mode": "chat"}))
        .await;
    assert_eq!(info["mode"], "chat");
    client.wait_for_status(&id, "waiting").await;

    // Clone: same configuration, new name and branch, no history, no turn.
    let clone = client.call("tether/session/clone", json!({"id": id})).await;
    let clone_id = clone["id"].as_str().expect("clone id").to_owned();
    assert_eq!(clone["name"], "answer-clone");
    assert_eq!(clone["mode"], "chat");
    assert_eq!(clone["model"], "fake-model");
    assert_eq!(clone["baseBranch"], "main");
    client.wait_for_status(&clone_id, "waiting").await;
    assert!(agent_messages(&client.session_events(&clone_id)).is_empty());
    assert_eq!(model.requests().len(), 1, "a clone runs no turn");

    let markdown = client
        .call(
            "tether/session/export",
            json!({"id": id, "format": "markdown"}),
        )
        .await;
    let markdown = markdown["content"].as_str().expect("content");
    assert!(markdown.starts_with("# What is the answer?"), "{markdown}");
    assert!(
        markdown.contains("## User\n\nWhat is the answer?"),
        "{markdown}"
    );
    assert!(
        markdown.contains("## Agent\n\nThe answer is 42."),
        "{markdown}"
    );
    let exported = client
        .call("tether/session/export", json!({"id": id, "format": "json"}))
        .await;
    let exported: serde_json::Value =
        serde_json::from_str(exported["content"].as_str().expect("content")).expect("json export");
    assert_eq!(exported["session"]["id"], id);
    assert_eq!(
        exported["events"].as_array().map(Vec::len),
        Some(client.session_events(&id).len())
    );

    let completed = client
        .call("tether/session/complete", json!({"id": id}))
        .await;
    assert_eq!(completed["status"], "completed");
    for (method, params) in [
        ("tether/session/send", json!({"id": id, "text": "more"})),
        ("tether/session/resume", json!({"id": id})),
        ("tether/session/complete", json!({"id": id})),
        ("tether/session/stop", json!({"id": id})),
    ] {
        let error = client.call_err(method, params).await;
        assert_eq!(error["code"], -31002, "{method}: {error}");
        assert!(
            error_message(&error).contains("it is completed"),
            "{method}: {error}"
        );
    }

    // Delete removes the worktree and the session's branch, and nothing else.
    git_branch(&env, "users-own-branch");
    let worktree = std::path::PathBuf::from(info["worktree"].as_str().expect("worktree"));
    assert!(worktree.exists());
    client
        .call("tether/session/delete", json!({"id": id}))
        .await;
    assert!(!worktree.exists());
    let branches = env.branches();
    assert!(
        !branches.contains(&"tether/answer".to_owned()),
        "{branches:?}"
    );
    assert!(
        branches.contains(&"tether/answer-clone".to_owned()),
        "{branches:?}"
    );
    assert!(
        branches.contains(&"users-own-branch".to_owned()),
        "{branches:?}"
    );
    assert!(branches.contains(&"main".to_owned()), "{branches:?}");
    let error = client
        .call_err("tether/session/get", json!({"id": id}))
        .await;
    assert_eq!(error["code"], -31001);
    let listed = client.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(1));
    client.shutdown().await;
}

fn git_branch(env: &TestEnv, name: &str) {
    crate::support::git(&env.repo(), &["branch", name]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_beyond_the_working_cap_wait_in_order() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text_paced(
        &["slow ", "reply"],
        Duration::from_millis(300),
    ));
    // The cap is the session host's: the user's own file sets it, for every editor.
    env.write_user_config("[session]\nmax_working = 1\n");
    let mut client = env.server(&model).await;

    let mut ids = Vec::new();
    for prompt in ["first task", "second task", "third task"] {
        let info = client
            .call("tether/session/create", json!({"prompt": prompt}))
            .await;
        ids.push(info["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        client.wait_for_status(id, "waiting").await;
    }
    // With one slot, each session started running only after the previous one waited.
    let running_at = |id: &str| {
        client
            .session_events(id)
            .iter()
            .find(|params| {
                params["event"]["kind"] == "status" && params["event"]["status"] == "running"
            })
            .map(|params| params["at"].as_u64().unwrap_or(0))
            .expect("ran")
    };
    let waiting_at = |id: &str| {
        client
            .session_events(id)
            .iter()
            .find(|params| {
                params["event"]["kind"] == "status" && params["event"]["status"] == "waiting"
            })
            .map(|params| params["at"].as_u64().unwrap_or(0))
            .expect("waited")
    };
    assert!(running_at(&ids[1]) >= waiting_at(&ids[0]));
    assert!(running_at(&ids[2]) >= waiting_at(&ids[1]));
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_streams_are_coalesced_into_few_notifications() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let pieces: Vec<String> = (0..3000).map(|i| format!("{} ", i % 10)).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    model.push(Reply::text(&pieces));
    let mut client = env.server(&model).await;

    let (_, id) = client.create(json!({"prompt": "Stream fast"})).await;
    client.wait_for_status(&id, "waiting").await;
    let events = client.session_events(&id);
    let deltas = events
        .iter()
        .filter(|params| params["event"]["kind"] == "delta")
        .count();
    let reply = &agent_messages(&events)[0];
    let item_id = reply["id"].as_str().expect("item id");
    assert_eq!(streamed_text(&events, item_id), pieces.concat());
    assert_eq!(
        reply["text"].as_str().map(str::len),
        Some(pieces.concat().len())
    );
    assert!(
        deltas < 300,
        "3000 chunks became {deltas} delta notifications"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_created_at_once_all_get_their_worktrees() {
    // `git worktree add` run concurrently in one repository trips over itself; Tether must
    // not let that fail a session.
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["ok"]));
    let mut settings = model.settings();
    settings["session"] = json!({"max_working": 20});
    let mut client = env.server_with(settings).await;
    let mut ids = Vec::new();
    for index in 0..20 {
        let info = client
            .call(
                "tether/session/create",
                json!({"prompt": format!("parallel {index}")}),
            )
            .await;
        ids.push(info["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        client.wait_for_status(id, "waiting").await;
    }
    let branches = env.branches();
    for index in 0..20 {
        assert!(
            branches.contains(&format!("tether/parallel-{index}")),
            "{branches:?}"
        );
    }
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_settings_apply_to_the_next_session() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["ok"]));
    let mut client = env.server(&model).await;
    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"tether": {"providers": {"fake": {"model": "changed-model"}}}}}),
        )
        .await;
    let info = client
        .call("tether/session/create", json!({"prompt": "which model?"}))
        .await;
    assert_eq!(info["model"], "changed-model");
    client
        .wait_for_status(info["id"].as_str().expect("id"), "waiting")
        .await;
    assert_eq!(model.requests()[0]["model"], "changed-model");
    // The earlier layers stay: the provider still points at the same server.
    assert_eq!(info["provider"], "fake");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worktree_git_cannot_make_fails_the_session_and_leaves_nothing_behind() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["unreachable"]));
    let mut client = env.server(&model).await;
    // A stale ref lock, as a crashed git leaves it: git refuses to create the branch.
    let refs = env.repo().join(".git/refs/heads/tether");
    std::fs::create_dir_all(&refs).expect("mkdir");
    std::fs::write(refs.join("locked.lock"), "").expect("lock");

    let (info, id) = client
        .create(json!({"prompt": "x", "name": "locked"}))
        .await;
    let failed = client.wait_for_status(&id, "failed").await;
    let reason = failed["event"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("git") && reason.contains("lock"),
        "{reason}"
    );
    let worktree = std::path::PathBuf::from(info["worktree"].as_str().expect("worktree"));
    assert!(!worktree.exists(), "no half-made worktree");
    assert_eq!(env.branches(), ["main"]);
    let worktrees = crate::support::git(&env.repo(), &["worktree", "list", "--porcelain"]);
    assert_eq!(worktrees.matches("worktree ").count(), 1, "{worktrees}");
    assert!(model.requests().is_empty());

    // Once the lock is gone, resuming makes the worktree and runs the turn.
    std::fs::remove_file(refs.join("locked.lock")).expect("unlock");
    client
        .call("tether/session/resume", json!({"id": id}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    assert!(worktree.join("README.md").exists());
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_context_starts_the_model_over_and_keeps_the_transcript() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["noted"]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "remember 7"})).await;
    client.wait_for_status(&id, "waiting").await;

    let error = client
        .call_err("tether/session/resetContext", json!({"id": "nope"}))
        .await;
    assert_eq!(error["code"], -31001);
    client
        .call(
            "tether/session/resetContext",
            json!({"id": id, "summary": "The user likes 7."}),
        )
        .await;
    client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "what now?"}),
        )
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let messages = model.requests()[1]["messages"].clone();
    let contents: Vec<_> = messages
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| (message["role"].clone(), message["content"].clone()))
        .collect();
    assert_eq!(contents.len(), 3, "{messages}");
    assert_eq!(contents[1].0, "assistant");
    assert!(
        contents[1]
            .1
            .as_str()
            .unwrap_or_default()
            .contains("The user likes 7.")
    );
    assert_eq!(contents[2], (json!("user"), json!("what now?")));

    // The transcript still has everything, with the reset marked.
    let exported = client
        .call("tether/session/export", json!({"id": id}))
        .await;
    let markdown = exported["content"].as_str().unwrap_or_default();
    assert!(
        markdown.contains("remember 7") && markdown.contains("Context reset"),
        "{markdown}"
    );
    client.shutdown().await;
}

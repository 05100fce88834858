//! The agent at work: tool calls streamed by the model, run in the session's worktree.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::error_message;
use crate::support::fake_model::Step;
use crate::support::lsp_client::WAIT;
use crate::support::processes::{eventually, group_members, recorded_groups};
use crate::support::{
    FakeModel, Reply, TestEnv, agent_messages, completed_items, git, last_message,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_task_reads_searches_edits_runs_and_ends_with_the_expected_diff() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.repo().join("src")).expect("mkdir");
    std::fs::write(
        env.repo().join("src/lib.rs"),
        "pub fn answer() -> u32 {\n    41\n}\n",
    )
    .expect("write");
    git(&env.repo(), &["add", "."]);
    git(&env.repo(), &["commit", "-q", "-m", "lib"]);

    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[
        ("read_file", r#"{"path": "src/lib.rs"}"#),
        ("search", r#"{"pattern": "fn \\w+"}"#),
    ]));
    model.push(Reply::tool_calls_repeating_names(&[
        (
            "edit_file",
            r#"{"path": "src/lib.rs", "old_string": "    41\n", "new_string": "    42\n"}"#,
        ),
        (
            "write_file",
            r#"{"path": "NOTES.md", "content": "answer fixed\n"}"#,
        ),
    ]));
    model.push(Reply::tool_calls(&[(
        "run_command",
        r#"{"command": "grep -c 42 src/lib.rs > count.txt && echo counted"}"#,
    )]));
    model.push(Reply::text(&["The answer is 42 now."]));
    let mut client = env.server(&model).await;
    let (info, id) = client.create(json!({"prompt": "Make the answer 42"})).await;
    client.wait_for_status(&id, "waiting").await;
    let events = client.session_events(&id);

    let calls = completed_items(&events, "toolCall");
    let names: Vec<_> = calls.iter().map(|call| call["tool"].clone()).collect();
    assert_eq!(
        names,
        [
            "read_file",
            "search",
            "edit_file",
            "write_file",
            "run_command"
        ]
    );
    for call in &calls {
        assert_eq!(call["status"], "completed", "{call}");
        assert!(call["durationMs"].is_u64());
    }
    assert!(
        calls[0]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("41")
    );
    assert!(
        calls[1]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("src/lib.rs:1: pub fn answer")
    );
    assert_eq!(calls[2]["input"]["path"], "src/lib.rs");
    assert!(
        calls[4]["output"]
            .as_str()
            .unwrap_or_default()
            .starts_with("exit code 0\ncounted")
    );
    let changes: Vec<_> = completed_items(&events, "fileChange")
        .iter()
        .map(|change| {
            (
                change["path"].clone(),
                change["additions"].clone(),
                change["deletions"].clone(),
            )
        })
        .collect();
    // The edit, the write, and the file the command made (found by comparing the worktree
    // before and after the command).
    assert_eq!(
        changes,
        [
            (json!("src/lib.rs"), json!(1), json!(1)),
            (json!("NOTES.md"), json!(1), json!(0)),
            (json!("count.txt"), json!(1), json!(0))
        ]
    );
    assert_eq!(
        agent_messages(&events).last().expect("reply")["text"],
        "The answer is 42 now."
    );

    // Exactly the expected change, in the worktree and nowhere else.
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));
    let status = git(&worktree, &["status", "--porcelain"]);
    let mut status: Vec<_> = status.lines().collect();
    status.sort();
    assert_eq!(status, [" M src/lib.rs", "?? NOTES.md", "?? count.txt"]);
    assert_eq!(
        git(&worktree, &["diff"])
            .matches("\n-    41\n+    42\n")
            .count(),
        1
    );
    assert_eq!(
        std::fs::read_to_string(worktree.join("count.txt")).expect("count"),
        "1\n"
    );
    assert_eq!(git(&env.repo(), &["status", "--porcelain"]), "");

    // Each request carried the previous calls and their results, in OpenAI's shape.
    let requests = model.requests();
    assert_eq!(requests.len(), 4);
    assert!(
        requests[0]["tools"]
            .as_array()
            .is_some_and(|tools| tools.len() >= 8)
    );
    let second = requests[1]["messages"].as_array().expect("messages");
    let assistant = &second[second.len() - 3];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["content"], "");
    assert_eq!(assistant["tool_calls"][0]["function"]["name"], "read_file");
    assert_eq!(second[second.len() - 2]["role"], "tool");
    assert_eq!(second[second.len() - 2]["tool_call_id"], "call_0");
    // The repeated names were not glued together.
    let third = requests[2]["messages"].as_array().expect("messages");
    let calls = &third[third.len() - 3]["tool_calls"];
    assert_eq!(calls[0]["function"]["name"], "edit_file");
    assert_eq!(calls[1]["function"]["name"], "write_file");

    // A follow-up turn sends the whole conversation, tool calls included, rebuilt from events.
    model.push(Reply::text(&["ok"]));
    client
        .call("tether/session/send", json!({"id": id, "text": "thanks"}))
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let last = model.requests().last().cloned().expect("request");
    let roles: Vec<_> = last["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].clone())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "tool",
            "assistant",
            "tool",
            "tool",
            "assistant",
            "tool",
            "assistant",
            "user"
        ]
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_leaving_the_worktree_are_refused_and_nothing_is_written() {
    let env = TestEnv::new();
    let outside = env.home().join("outside.txt");
    std::fs::write(&outside, "do not touch").expect("write");
    let model = FakeModel::start().await;
    let Reply::Sse(mut steps) = Reply::tool_calls(&[
        (
            "read_file",
            &format!(r#"{{"path": "{}"}}"#, outside.display()),
        ),
        (
            "write_file",
            r#"{"path": "../../outside.txt", "content": "owned"}"#,
        ),
        (
            "write_file",
            r#"{"path": "link/outside.txt", "content": "owned"}"#,
        ),
        ("edit_file", r#"{"path": "README.md", "old_str"#),
    ]) else {
        unreachable!("tool_calls is an SSE reply")
    };
    // Time for the test to plant the symlink in the new worktree before the calls run.
    steps.insert(0, Step::Sleep(std::time::Duration::from_millis(500)));
    model.push(Reply::Sse(steps));
    model.push(Reply::text(&["I could not."]));
    let mut client = env.server(&model).await;
    let (info, id) = client.create(json!({"prompt": "escape"})).await;
    // A symlink inside the worktree that points out of it.
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));
    client.wait_for_status(&id, "running").await;
    std::os::unix::fs::symlink(env.home(), worktree.join("link")).expect("symlink");
    client.wait_for_status(&id, "waiting").await;
    let calls = completed_items(&client.session_events(&id), "toolCall");
    assert_eq!(calls.len(), 4);
    let outputs: Vec<_> = calls
        .iter()
        .map(|call| call["output"].as_str().unwrap_or_default().to_owned())
        .collect();
    for call in &calls {
        assert_eq!(call["status"], "failed", "{call}");
    }
    assert!(outputs[0].contains("is absolute"), "{outputs:?}");
    assert!(outputs[1].contains("leaves the repository"), "{outputs:?}");
    assert!(outputs[2].contains("symbolic link"), "{outputs:?}");
    assert!(outputs[3].contains("not valid JSON"), "{outputs:?}");
    assert_eq!(
        std::fs::read_to_string(&outside).expect("read"),
        "do not touch"
    );
    client.shutdown().await;
}

/// Waits until tether records exactly one running command group; returns its id.
async fn the_running_group(env: &TestEnv) -> i32 {
    let state = env.home().join("state");
    assert!(
        eventually(WAIT, || recorded_groups(&state).len() == 1).await,
        "one command group is recorded: {:?}",
        recorded_groups(&state)
    );
    recorded_groups(&state)[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_a_long_command_kills_its_process_group_and_stays_resumable() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    // A shell that starts a grandchild: the whole group must die, not just `sh`.
    model.push(Reply::tool_calls(&[(
        "run_command",
        r#"{"command": "sleep 31.4159 & sleep 31.4159; touch never.txt"}"#,
    )]));
    model.push(Reply::text(&["resumed"]));
    let mut client = env.server(&model).await;
    let (info, id) = client.create(json!({"prompt": "wait a long time"})).await;
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["item"]["type"] == "toolCall"
                && event["phase"] == "started"
        })
        .await;
    let group = the_running_group(&env).await;
    // Its holder, sh and both sleeps.
    assert!(
        eventually(WAIT, || group_members(group).len() >= 4).await,
        "the command started: {:?}",
        group_members(group)
    );

    let stopped = client.call("tether/session/stop", json!({"id": id})).await;
    assert_eq!(stopped["status"], "stopped");
    assert!(
        eventually(WAIT, || group_members(group).is_empty()).await,
        "the command's whole group is gone: {:?}",
        group_members(group)
    );
    // The reply to `stop` and the events it caused travel apart (events come through the
    // daemon's stream): wait for the tool call's end.
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "completed"
                && event["item"]["type"] == "toolCall"
        })
        .await;
    let calls = completed_items(&client.session_events(&id), "toolCall");
    assert_eq!(calls[0]["status"], "failed");
    assert!(
        calls[0]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("stopped")
    );
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));
    assert!(!worktree.join("never.txt").exists());

    client
        .call("tether/session/resume", json!({"id": id}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    assert_eq!(
        agent_messages(&client.session_events(&id))
            .last()
            .expect("reply")["text"],
        "resumed"
    );
    // The model heard that its command was stopped.
    let last = model.requests().last().cloned().expect("request");
    let messages = last["messages"].as_array().expect("messages");
    assert_eq!(messages[messages.len() - 1]["role"], "tool");
    assert!(
        messages[messages.len() - 1]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("stopped")
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_waits_for_valid_answers_then_the_turn_goes_on() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "ask_user",
        r#"{"questions": [
            {"prompt": "Which colour?", "kind": "single", "options": ["red", "blue"]},
            {"prompt": "Which toppings?", "kind": "multi", "options": ["a", "b", "c"]},
            {"prompt": "Your name?"}]}"#,
    )]));
    model.push(Reply::text(&["Thanks!"]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "ask me things"})).await;
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "status" && event["activity"] == "waiting_input"
        })
        .await;
    let question = client
        .wait_for_event(&id, |event| {
            event["kind"] == "item" && event["item"]["type"] == "question"
        })
        .await;
    let question_id = question["event"]["item"]["id"]
        .as_str()
        .expect("question id")
        .to_owned();
    assert_eq!(question["event"]["item"]["questions"][1]["kind"], "multi");
    let info = client.call("tether/session/get", json!({"id": id})).await;
    assert_eq!(info["session"]["activity"], "waiting_input");

    for (answers, expected) in [
        (json!(["red"]), "3 questions"),
        (
            json!(["red", ["a", "z"], "Ada"]),
            "\"z\" is not one of the options",
        ),
        (json!(["red", "a", "Ada"]), "must be a list"),
        (json!(["", ["a"], "Ada"]), "is empty"),
    ] {
        let error = client
            .call_err(
                "tether/session/answer",
                json!({"id": id, "questionId": question_id, "answers": answers}),
            )
            .await;
        assert_eq!(error["code"], -32602, "{error}");
        assert!(error_message(&error).contains(expected), "{error}");
    }
    let error = client
        .call_err(
            "tether/session/answer",
            json!({"id": id, "questionId": "stale", "answers": ["red", ["a"], "Ada"]}),
        )
        .await;
    assert!(error_message(&error).contains("not open"), "{error}");

    client
        .call(
            "tether/session/answer",
            json!({"id": id, "questionId": question_id, "answers": ["green", ["a", "c"], "Ada"]}),
        )
        .await;
    let resolved = client
        .wait_for_event(&id, |event| event["kind"] == "resolved")
        .await;
    assert_eq!(resolved["event"]["outcome"], "answered");
    assert_eq!(resolved["event"]["itemId"], question_id.as_str());
    client.wait_for_status(&id, "waiting").await;
    let text = last_message(&model.requests()[1]);
    assert!(
        text.contains("Which colour?\nAnswer: green") && text.contains("Answer: a, c"),
        "{text}"
    );
    let error = client
        .call_err(
            "tether/session/answer",
            json!({"id": id, "questionId": question_id, "answers": ["red", ["a"], "Ada"]}),
        )
        .await;
    assert!(error_message(&error).contains("not open"), "{error}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_while_a_question_waits_cancels_it_for_every_client() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "ask_user",
        r#"{"questions": [{"prompt": "Go on?"}]}"#,
    )]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "ask"})).await;
    let question = client
        .wait_for_event(&id, |event| {
            event["kind"] == "item" && event["item"]["type"] == "question"
        })
        .await;
    let question_id = question["event"]["item"]["id"].clone();
    client.call("tether/session/stop", json!({"id": id})).await;
    let resolved = client
        .wait_for_event(&id, |event| event["kind"] == "resolved")
        .await;
    assert_eq!(resolved["event"]["outcome"], "cancelled");
    assert_eq!(resolved["event"]["itemId"], question_id);
    let error = client
        .call_err(
            "tether/session/answer",
            json!({"id": id, "questionId": question_id, "answers": ["yes"]}),
        )
        .await;
    assert!(error_message(&error).contains("not open"), "{error}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_rejected_with_feedback_is_revised_then_approved() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "propose_plan",
        r#"{"phases": [{"title": "Rewrite everything", "subtasks": ["delete src", "start over"]}]}"#,
    )]));
    model.push(Reply::tool_calls(&[(
        "propose_plan",
        r#"{"phases": [{"title": "Fix the bug", "subtasks": ["edit ops.py"]}, {"title": "Test"}]}"#,
    )]));
    model.push(Reply::text(&["Done as planned."]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "plan first"})).await;

    let plan_id = |events: &[Value], n: usize| {
        events
            .iter()
            .filter(|params| {
                params["event"]["kind"] == "item"
                    && params["event"]["phase"] == "started"
                    && params["event"]["item"]["type"] == "plan"
            })
            .nth(n)
            .map(|params| {
                params["event"]["item"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
    };
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "status" && event["activity"] == "awaiting_plan_approval"
        })
        .await;
    let first = plan_id(&client.session_events(&id), 0).expect("first plan");
    client
        .call(
            "tether/session/decidePlan",
            json!({"id": id, "planId": first, "approve": false, "feedback": "Too drastic; fix only the bug."}),
        )
        .await;
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "started"
                && event["item"]["type"] == "plan"
                && event["item"]["phases"][0]["title"] == "Fix the bug"
        })
        .await;
    let second = plan_id(&client.session_events(&id), 1).expect("second plan");
    // The first plan is settled; deciding it again is refused.
    let error = client
        .call_err(
            "tether/session/decidePlan",
            json!({"id": id, "planId": first, "approve": true}),
        )
        .await;
    assert!(error_message(&error).contains("not open"), "{error}");
    client
        .call(
            "tether/session/decidePlan",
            json!({"id": id, "planId": second, "approve": true}),
        )
        .await;
    client.wait_for_status(&id, "waiting").await;

    let events = client.session_events(&id);
    let outcomes: Vec<_> = events
        .iter()
        .filter(|params| params["event"]["kind"] == "resolved")
        .map(|params| params["event"]["outcome"].clone())
        .collect();
    assert_eq!(outcomes, [json!("rejected"), json!("approved")]);
    // The model heard the feedback, then the approval.
    let requests = model.requests();
    let feedback = requests[1]["messages"]
        .as_array()
        .and_then(|m| m.last().cloned())
        .expect("result");
    assert!(
        feedback["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Too drastic; fix only the bug.")
    );
    let approval = requests[2]["messages"]
        .as_array()
        .and_then(|m| m.last().cloned())
        .expect("result");
    assert!(
        approval["content"]
            .as_str()
            .unwrap_or_default()
            .contains("approved")
    );
    assert_eq!(
        agent_messages(&events).last().expect("reply")["text"],
        "Done as planned."
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernel_sandbox_keeps_commands_inside_the_worktree_and_off_the_network() {
    assert!(
        tether::sandbox::kernel_abi().is_some(),
        "this test needs a kernel with Landlock (Linux 5.13+ with it enabled)"
    );
    let env = TestEnv::new();
    let outside = env.home().join("outside-by-command.txt");
    let model = FakeModel::start().await;
    let port = model.port;
    model.push(Reply::tool_calls(&[
        ("run_command", &format!(r#"{{"command": "echo owned > {}"}}"#, outside.display())),
        ("run_command", r#"{"command": "echo fine > inside.txt && echo tmp > \"$TMPDIR/t\" && cat \"$TMPDIR/t\""}"#),
        (
            "run_command",
            &format!(
                r#"{{"command": "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)\""}}"#
            ),
        ),
    ]));
    model.push(Reply::text(&["checked"]));
    let mut settings = model.settings();
    settings["session"] = json!({"sandbox": "required", "network": false});
    let mut client = env.server_with(settings).await;
    let (info, id) = client.create(json!({"prompt": "try to escape"})).await;
    client.wait_for_status(&id, "waiting").await;
    let calls = completed_items(&client.session_events(&id), "toolCall");
    let outputs: Vec<_> = calls
        .iter()
        .map(|call| call["output"].as_str().unwrap_or_default().to_owned())
        .collect();

    assert_eq!(calls[0]["status"], "failed", "{outputs:?}");
    assert!(outputs[0].contains("Permission denied"), "{outputs:?}");
    assert!(
        !outside.exists(),
        "the sandbox let a command write outside the worktree"
    );

    assert_eq!(calls[1]["status"], "completed", "{outputs:?}");
    assert!(outputs[1].contains("tmp"), "{outputs:?}");
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));
    assert_eq!(
        std::fs::read_to_string(worktree.join("inside.txt")).expect("inside"),
        "fine\n"
    );

    assert_eq!(calls[2]["status"], "failed", "{outputs:?}");
    assert!(
        outputs[2].contains("PermissionError") || outputs[2].contains("Permission denied"),
        "{outputs:?}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_that_runs_too_long_ends_with_timeout_and_stays_resumable() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "run_command",
        r#"{"command": "sleep 27.1828"}"#,
    )]));
    model.push(Reply::text(&["back"]));
    let mut settings = model.settings();
    settings["session"] = json!({"turn_timeout_secs": 1});
    let mut client = env.server_with(settings).await;
    let (_, id) = client.create(json!({"prompt": "take forever"})).await;
    let group = the_running_group(&env).await;
    let stopped = client.wait_for_status(&id, "stopped").await;
    let reason = stopped["event"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("turn_timeout_secs (1 s)"), "{reason}");
    let turn_end = client
        .wait_for_event(&id, |event| event["kind"] == "turnEnded")
        .await;
    assert_eq!(turn_end["event"]["reason"], "timeout");
    assert!(
        eventually(WAIT, || group_members(group).is_empty()).await,
        "the command died with the turn: {:?}",
        group_members(group)
    );
    client
        .call("tether/session/resume", json!({"id": id}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    client.shutdown().await;
}

fn permission_ids(client: &crate::support::LspClient, id: &str) -> Vec<String> {
    client
        .session_events(id)
        .iter()
        .filter(|params| {
            params["event"]["kind"] == "item"
                && params["event"]["phase"] == "started"
                && params["event"]["item"]["type"] == "permission"
        })
        .map(|params| {
            params["event"]["item"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Waits for the `n`th permission request of a session; returns its id.
async fn wait_for_permission(client: &crate::support::LspClient, id: &str, n: usize) -> String {
    for _ in 0..1000 {
        let ids = permission_ids(client, id);
        if ids.len() >= n {
            return ids[n - 1].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "permission request {n} never came: {:#?}",
        client.session_events(id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_mode_asks_rejects_with_feedback_then_allows_always() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let echo = ("run_command", r#"{"command": "echo one >> a.txt"}"#);
    model.push(Reply::tool_calls(&[echo]));
    model.push(Reply::tool_calls(&[echo]));
    model.push(Reply::tool_calls(&[echo]));
    model.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "b.txt", "content": "b\n"}"#,
    )]));
    model.push(Reply::text(&["done"]));
    let mut settings = model.settings();
    settings["session"] = json!({"permission_mode": "ask"});
    let mut client = env.server_with(settings.clone()).await;
    let (info, id) = client.create(json!({"prompt": "write things"})).await;

    let first = wait_for_permission(&client, &id, 1).await;
    let error = client
        .call_err(
            "tether/session/answer",
            json!({"id": id, "questionId": first, "answers": ["maybe"]}),
        )
        .await;
    assert!(error_message(&error).contains("allow_once"), "{error}");
    client
        .call(
            "tether/session/answer",
            json!({"id": id, "questionId": first, "answers": ["reject_once", "not yet"]}),
        )
        .await;
    let second = wait_for_permission(&client, &id, 2).await;
    client
        .call(
            "tether/session/answer",
            json!({"id": id, "questionId": second, "answers": ["allow_always_session"]}),
        )
        .await;
    // The third identical command runs without asking; the write asks once more.
    let third = wait_for_permission(&client, &id, 3).await;
    client
        .call(
            "tether/session/answer",
            json!({"id": id, "questionId": third, "answers": ["allow_always_project"]}),
        )
        .await;
    client.wait_for_status(&id, "waiting").await;
    assert_eq!(permission_ids(&client, &id).len(), 3);
    let requests = model.requests();
    let rejected = requests[1]["messages"]
        .as_array()
        .and_then(|m| m.last().cloned())
        .expect("result");
    assert!(
        rejected["content"]
            .as_str()
            .unwrap_or_default()
            .contains("rejected this run_command call: not yet")
    );
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));
    assert_eq!(
        std::fs::read_to_string(worktree.join("a.txt")).expect("a"),
        "one\none\n"
    );
    assert_eq!(
        std::fs::read_to_string(worktree.join("b.txt")).expect("b"),
        "b\n"
    );
    let outcomes: Vec<_> = client
        .session_events(&id)
        .iter()
        .filter(|params| params["event"]["kind"] == "resolved")
        .map(|params| params["event"]["outcome"].clone())
        .collect();
    assert_eq!(
        outcomes,
        [
            json!("reject_once"),
            json!("allow_always_session"),
            json!("allow_always_project")
        ]
    );
    client.shutdown().await;

    // The project grant outlives the session and the server: a new session writes freely.
    model.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "c.txt", "content": "c\n"}"#,
    )]));
    model.push(Reply::text(&["done again"]));
    let mut client = env.server_with(settings).await;
    let (_, id) = client.create(json!({"prompt": "write more"})).await;
    client.wait_for_status(&id, "waiting").await;
    let asked = client
        .session_events(&id)
        .iter()
        .any(|params| params["event"]["item"]["type"] == "permission");
    assert!(!asked, "the project-wide grant was not remembered");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_never_stops_calling_tools_ends_at_max_turns() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::tool_calls(&[("list_directory", "{}")]));
    let mut settings = model.settings();
    settings["session"] = json!({"max_turns": 3});
    let mut client = env.server_with(settings).await;
    let (_, id) = client.create(json!({"prompt": "loop forever"})).await;
    let stopped = client.wait_for_status(&id, "stopped").await;
    assert!(
        stopped["event"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("max_turns (3)"),
        "{stopped}"
    );
    let turn_end = client
        .wait_for_event(&id, |event| event["kind"] == "turnEnded")
        .await;
    assert_eq!(turn_end["event"]["reason"], "max_turns");
    assert_eq!(model.requests().len(), 3);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_that_change_files_leave_checkpoints_a_rewind_restores_and_can_be_undone() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "a.txt", "content": "one\n"}"#,
    )]));
    model.push(Reply::text(&["first turn done"]));
    model.push(Reply::tool_calls(&[
        ("write_file", r#"{"path": "a.txt", "content": "two\n"}"#),
        ("write_file", r#"{"path": "b.txt", "content": "new\n"}"#),
    ]));
    model.push(Reply::text(&["second turn done"]));
    let mut client = env.server(&model).await;
    let (info, id) = client.create(json!({"prompt": "write a"})).await;
    client.wait_for_nth_status(&id, "waiting", 1).await;
    client
        .call("tether/session/send", json!({"id": id, "text": "now b"}))
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));
    let checkpoints: Vec<_> = client
        .session_events(&id)
        .iter()
        .filter(|params| params["event"]["kind"] == "checkpoint")
        .map(|params| params["event"]["name"].clone())
        .collect();
    assert_eq!(
        checkpoints,
        [json!("start"), json!("turn-1"), json!("turn-2")]
    );
    let refs = git(
        &env.repo(),
        &[
            "for-each-ref",
            "--format=%(refname)",
            &format!("refs/tether/{id}/"),
        ],
    );
    assert_eq!(refs.lines().count(), 3, "{refs}");

    let error = client
        .call_err(
            "tether/session/rewind",
            json!({"id": id, "checkpoint": "turn-9"}),
        )
        .await;
    assert!(error_message(&error).contains("no checkpoint"), "{error}");
    let error = client
        .call_err("tether/session/rewind", json!({"id": id}))
        .await;
    assert_eq!(error["code"], -32602, "{error}");
    let rewound = client
        .call("tether/session/rewind", json!({"id": id, "turn": 1}))
        .await;
    assert_eq!(rewound["undo"], "before-rewind-1");
    assert_eq!(
        std::fs::read_to_string(worktree.join("a.txt")).expect("a"),
        "one\n"
    );
    assert!(
        !worktree.join("b.txt").exists(),
        "a file made after the checkpoint is removed"
    );

    client
        .call(
            "tether/session/rewind",
            json!({"id": id, "checkpoint": "before-rewind-1"}),
        )
        .await;
    assert_eq!(
        std::fs::read_to_string(worktree.join("a.txt")).expect("a"),
        "two\n"
    );
    assert_eq!(
        std::fs::read_to_string(worktree.join("b.txt")).expect("b"),
        "new\n"
    );
    // The worktree's own index was never used: both files are still untracked there.
    let status = git(&worktree, &["status", "--porcelain"]);
    assert!(
        status.contains("?? a.txt") && status.contains("?? b.txt"),
        "{status}"
    );

    client
        .call("tether/session/delete", json!({"id": id}))
        .await;
    let refs = git(
        &env.repo(),
        &["for-each-ref", "--format=%(refname)", "refs/tether/"],
    );
    assert_eq!(refs, "", "checkpoints are deleted with the session");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_lists_added_modified_renamed_and_deleted_files_against_the_base() {
    let env = TestEnv::new();
    std::fs::write(env.repo().join("old.txt"), "moving\n").expect("write");
    std::fs::write(env.repo().join("gone.txt"), "bye\n").expect("write");
    git(&env.repo(), &["add", "."]);
    git(&env.repo(), &["commit", "-q", "-m", "more"]);
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[
        ("edit_file", r##"{"path": "README.md", "old_string": "# sample\n", "new_string": "# sample\nmore\n"}"##),
        ("write_file", r#"{"path": "new.txt", "content": "fresh\n"}"#),
        ("move_file", r#"{"from": "old.txt", "to": "moved.txt"}"#),
        ("delete_file", r#"{"path": "gone.txt"}"#),
    ]));
    model.push(Reply::text(&["changed"]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "change things"})).await;
    client.wait_for_status(&id, "waiting").await;
    let diff = client.call("tether/session/diff", json!({"id": id})).await;
    let mut files: Vec<_> = diff["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|file| {
            (
                file["status"].as_str().unwrap_or_default().to_owned(),
                file["path"].as_str().unwrap_or_default().to_owned(),
                file["additions"].as_u64().unwrap_or(99),
                file["deletions"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("added".to_owned(), "new.txt".to_owned(), 1, 0),
            ("deleted".to_owned(), "gone.txt".to_owned(), 0, 1),
            ("modified".to_owned(), "README.md".to_owned(), 1, 0),
            ("renamed".to_owned(), "moved.txt".to_owned(), 0, 0),
        ]
    );
    let readme = diff["files"]
        .as_array()
        .and_then(|files| {
            files
                .iter()
                .find(|file| file["path"] == "README.md")
                .cloned()
        })
        .expect("README");
    assert!(
        readme["patch"]
            .as_str()
            .unwrap_or_default()
            .contains("+more"),
        "{readme}"
    );
    let renamed = diff["files"]
        .as_array()
        .and_then(|files| {
            files
                .iter()
                .find(|file| file["status"] == "renamed")
                .cloned()
        })
        .expect("rename");
    assert_eq!(renamed["oldPath"], "old.txt");
    let error = client
        .call_err("tether/session/diff", json!({"id": "nope"}))
        .await;
    assert_eq!(error["code"], -31001);
    client.shutdown().await;
}

//! Editor surfaces over standard LSP alone (what Helix has): progress and messages.

use serde_json::{Value, json};

use crate::support::error_message;
use crate::support::{FakeModel, LspClient, Reply, TestEnv};

/// Helix 25.07's relevant capabilities: progress yes, no experimental, no showMessageRequest.
fn helix_capabilities() -> Value {
    json!({
        "window": {"workDoneProgress": true},
        "general": {"positionEncodings": ["utf-8", "utf-32", "utf-16"]}
    })
}

/// Asks until the session has `status`: a client without tether's notifications (Helix) is
/// told of no status change, so the test reads it as such a client would.
async fn wait_until(client: &mut LspClient, id: &str, status: &str) {
    for _ in 0..400 {
        let got = client
            .call(
                "workspace/executeCommand",
                json!({"command": "tether.get", "arguments": [{"id": id}]}),
            )
            .await;
        if got["session"]["status"] == status {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("session {id} never became {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_turn_is_a_progress_token_with_what_it_does_now() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "run_command",
        r#"{"command": "true"}"#,
    )]));
    model.push(Reply::text(&["done"]));
    let mut client = LspClient::spawn(env.home()).await;
    client
        .initialize_with(&env.repo(), model.settings(), helix_capabilities())
        .await;
    let info = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.create", "arguments": [{"prompt": "progress please", "name": "busy-bee"}]}),
        )
        .await;
    assert!(info["id"].is_string(), "{info}");
    // The turn's progress ends when the turn does.
    let end = client
        .wait_for_message_matching("$/progress", |params| params["value"]["kind"] == "end")
        .await;
    assert_eq!(end["params"]["value"]["message"], "turn ended: end_turn");

    let created = client.messages("window/workDoneProgress/create");
    assert_eq!(created.len(), 1, "{created:#?}");
    let token = created[0]["params"]["token"].clone();
    let progress: Vec<Value> = client
        .messages("$/progress")
        .into_iter()
        .filter(|message| message["params"]["token"] == token)
        .map(|message| message["params"]["value"].clone())
        .collect();
    assert_eq!(
        progress.first().map(|value| value["kind"].clone()),
        Some(json!("begin"))
    );
    assert_eq!(progress[0]["title"], "tether: busy-bee");
    assert!(
        progress
            .iter()
            .any(|value| value["kind"] == "report" && value["message"] == "running true"),
        "{progress:#?}"
    );
    assert_eq!(
        progress.last().map(|value| value["kind"].clone()),
        Some(json!("end"))
    );
    // Helix-like clients get no custom notifications.
    assert!(client.events().is_empty());
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_session_is_shown_to_the_user() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::Status(500, "model melted".to_owned()));
    let mut client = LspClient::spawn(env.home()).await;
    client
        .initialize_with(&env.repo(), model.settings(), helix_capabilities())
        .await;
    let info = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.create", "arguments": [{"prompt": "fail", "name": "doomed"}]}),
        )
        .await;
    let id = info["id"].as_str().expect("id").to_owned();
    client
        .wait_for_message_matching("window/showMessage", |params| {
            let text = params["message"].as_str().unwrap_or_default();
            params["type"] == 1 && text.contains("doomed failed") && text.contains("model melted")
        })
        .await;
    let got = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.get", "arguments": [{"id": id}]}),
        )
        .await;
    assert_eq!(got["session"]["status"], "failed");
    client.shutdown().await;
}

async fn code_action_titles(client: &mut LspClient, env: &TestEnv) -> Vec<Value> {
    let uri = format!("file://{}", env.repo().join("README.md").display());
    client.code_actions(&uri, (0, 0), (0, 0)).await
}

fn find<'a>(actions: &'a [Value], title_part: &str) -> &'a Value {
    actions
        .iter()
        .find(|action| {
            action["title"]
                .as_str()
                .unwrap_or_default()
                .contains(title_part)
        })
        .unwrap_or_else(|| panic!("no action titled like {title_part:?} in {actions:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_actions_answer_decide_and_allow_with_standard_lsp_alone() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "ask_user",
        r#"{"questions": [{"prompt": "Which?", "kind": "single", "options": ["left", "right"]}]}"#,
    )]));
    model.push(Reply::tool_calls(&[(
        "propose_plan",
        r#"{"phases": [{"title": "Do it"}]}"#,
    )]));
    model.push(Reply::tool_calls(&[(
        "run_command",
        r#"{"command": "true"}"#,
    )]));
    model.push(Reply::text(&["all done"]));
    let mut settings = model.settings();
    settings["session"] = json!({"permission_mode": "ask"});
    let mut client = LspClient::spawn(env.home()).await;
    let init = client
        .initialize_with(&env.repo(), settings, helix_capabilities())
        .await;
    assert_eq!(init["capabilities"]["codeActionProvider"], true);
    let info = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.create", "arguments": [{"prompt": "choose", "name": "chooser"}]}),
        )
        .await;
    let id = info["id"].as_str().expect("id").to_owned();

    // A question: one action per option, plus stop.
    let mut actions = Vec::new();
    for _ in 0..200 {
        actions = code_action_titles(&mut client, &env).await;
        if actions.iter().any(|a| {
            a["title"]
                .as_str()
                .unwrap_or_default()
                .contains("Answer: right")
        }) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    find(&actions, "tether: chooser: Answer: left");
    find(&actions, "tether: Stop chooser");
    let answer = find(&actions, "Answer: right").clone();
    client.execute_action(&answer).await.expect("answer");
    // The same action again is stale: a clear error, no crash.
    let stale = client.execute_action(&answer).await.expect_err("stale");
    assert!(error_message(&stale).contains("not open"), "{stale}");

    // The plan, then the permission.
    for (wanted, pick) in [
        ("Approve plan", "Approve plan"),
        ("Allow once", "Allow once"),
    ] {
        let mut actions = Vec::new();
        for _ in 0..200 {
            actions = code_action_titles(&mut client, &env).await;
            if actions
                .iter()
                .any(|a| a["title"].as_str().unwrap_or_default().contains(wanted))
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let action = find(&actions, pick).clone();
        client.execute_action(&action).await.expect("decide");
    }
    wait_until(&mut client, &id, "waiting").await;
    let last = model.requests().last().cloned().expect("request");
    let result = last["messages"]
        .as_array()
        .and_then(|m| m.last().cloned())
        .expect("tool result");
    assert!(
        result["content"]
            .as_str()
            .unwrap_or_default()
            .starts_with("exit code 0"),
        "{result}"
    );
    let first_result = model.requests()[1]["messages"]
        .as_array()
        .and_then(|m| m.last().cloned())
        .expect("answer result");
    assert!(
        first_result["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Answer: right")
    );
    // Nothing waits any more: only the general actions are left.
    let actions = code_action_titles(&mut client, &env).await;
    let titles: Vec<&str> = actions
        .iter()
        .filter_map(|action| action["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "tether: New session…",
            "tether: Apply changes of chooser",
            "tether: Compact the conversation of chooser",
            "tether: 👍 Good reply from chooser",
            "tether: 👎 Bad reply from chooser",
            "tether: Open transcript of chooser"
        ],
        "no stale choices, no stop for a waiting session"
    );
    client.shutdown().await;
}

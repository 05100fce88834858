//! Editor surfaces over standard LSP alone (what Helix has): progress and messages.

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv};

/// Helix 25.07's relevant capabilities: progress yes, no experimental, no showMessageRequest.
fn helix_capabilities() -> Value {
    json!({
        "window": {"workDoneProgress": true},
        "general": {"positionEncodings": ["utf-8", "utf-32", "utf-16"]}
    })
}

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
    let id = info["id"].as_str().expect("id").to_owned();
    wait_until(&mut client, &id, "waiting").await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

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
    wait_until(&mut client, &id, "failed").await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let shown = client.messages("window/showMessage");
    assert!(
        shown.iter().any(|message| {
            let text = message["params"]["message"].as_str().unwrap_or_default();
            message["params"]["type"] == 1
                && text.contains("doomed failed")
                && text.contains("model melted")
        }),
        "{shown:#?}"
    );
    client.shutdown().await;
}

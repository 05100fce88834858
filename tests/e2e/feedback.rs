//! Feedback on the agent's replies: a rating and a comment, recorded as an event, shown in
//! the transcript and exports, offered as code actions (what Helix has), refused clearly
//! when it names no reply.

use serde_json::json;

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message};

async fn export(client: &mut LspClient, id: &str) -> String {
    let exported = client
        .call("tether/session/export", json!({"id": id}))
        .await;
    exported["content"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_rated_by_request_and_by_code_action_and_the_export_shows_it() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["Use a hash map."]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "how should I index this?", "name": "rated"}))
        .await;
    client.wait_for_status(&id, "waiting").await;

    // By request: the latest reply, with a comment.
    let rated = client
        .call(
            "tether/session/feedback",
            json!({"id": id, "rating": "up", "comment": "  clear and right  "}),
        )
        .await;
    let item_id = rated["itemId"]
        .as_str()
        .expect("the reply rated")
        .to_owned();
    let event = client
        .wait_for_event(&id, |event| event["kind"] == "feedback")
        .await;
    assert_eq!(event["event"]["itemId"], item_id.as_str());
    assert_eq!(event["event"]["rating"], "up");
    assert_eq!(event["event"]["comment"], "clear and right");
    let text = export(&mut client, &id).await;
    assert!(
        text.contains("Use a hash map.\n\n*Your feedback: 👍 up — clear and right*"),
        "{text}"
    );

    // By code action, as in Helix: a later rating replaces the first.
    let uri = format!("file://{}", env.repo().join("README.md").display());
    let actions = client.code_actions(&uri, (0, 0), (0, 0)).await;
    let down = actions
        .iter()
        .find(|action| action["title"] == "tether: 👎 Bad reply from rated")
        .unwrap_or_else(|| panic!("no rating action in {actions:#?}"))
        .clone();
    client.execute_action(&down).await.expect("rated");
    let mut text = String::new();
    for _ in 0..100 {
        text = export(&mut client, &id).await;
        if text.contains("👎 down") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(text.contains("*Your feedback: 👎 down*"), "{text}");
    assert!(!text.contains("👍 up"), "{text}");

    // Bad input: each refused, naming what is wrong.
    for (params, field) in [
        (
            json!({"id": id, "itemId": "nope", "rating": "up"}),
            "itemId",
        ),
        (json!({"id": id, "rating": "sideways"}), "rating"),
        (
            json!({"id": id, "rating": "up", "comment": "x".repeat(4001)}),
            "comment",
        ),
    ] {
        let error = client.call_err("tether/session/feedback", params).await;
        assert_eq!(error["code"], -32602, "{error}");
        assert!(error_message(&error).contains(field), "{error}");
    }
    client.shutdown().await;
}

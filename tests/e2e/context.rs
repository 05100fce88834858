//! The context window: how full the conversation is (SessionInfo and the transcript), each
//! reply's cost, compaction near the limit and on demand (what the model then receives), and
//! a compaction that fails leaving the conversation whole.

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message};

/// The fake model's settings with a tiny window: compaction comes after a turn or two.
fn small_window(model: &FakeModel, compact_at: f64) -> Value {
    let mut settings = model.settings();
    settings["context"] = json!({"windows": {"fake-model": 100}, "compact_at": compact_at});
    settings
}

async fn info(client: &mut LspClient, id: &str) -> Value {
    client.call("tether/session/get", json!({"id": id})).await["session"].clone()
}

async fn export(client: &mut LspClient, id: &str) -> String {
    client
        .call("tether/session/export", json!({"id": id}))
        .await["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The messages a model request carried, as (role, content).
fn messages(request: &Value) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|message| {
            (
                message["role"].as_str().unwrap_or_default().to_owned(),
                message["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_the_window_the_conversation_is_compacted_into_a_summary_the_model_then_gets() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text_with_usage(&["first reply"], 40, 20));
    model.push(Reply::text_with_usage(
        &["SUMMARY: the user asked for X; done."],
        70,
        10,
    ));
    model.push(Reply::text_with_usage(&["second reply"], 30, 5));
    let mut client = env.server_with(small_window(&model, 0.5)).await;
    let (created, id) = client
        .create(json!({"prompt": "original request", "name": "compacted"}))
        .await;
    assert!(created.get("context").is_none(), "no turn yet: {created}");
    client.wait_for_status(&id, "waiting").await;
    let session = info(&mut client, &id).await;
    assert_eq!(
        session["context"],
        json!({"usedTokens": 60, "windowTokens": 100}),
        "{session}"
    );
    let text = export(&mut client, &id).await;
    assert!(text.contains("- Context: 60 of 100 tokens (60%)"), "{text}");
    assert!(
        text.contains("first reply\n\n*$0.0000 · 40 tokens in, 20 out*"),
        "each reply's cost under it: {text}"
    );

    // 60 of 100 is past half: before the next turn, the model summarizes.
    client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "and now Y"}),
        )
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let requests = model.requests();
    assert_eq!(requests.len(), 3, "the turn, the summary, the next turn");
    let summarize = messages(&requests[1]);
    assert!(
        summarize.iter().any(|(_, text)| text == "original request")
            && summarize
                .last()
                .is_some_and(|(role, text)| role == "user" && text.contains("about to be cut")),
        "{summarize:?}"
    );
    assert!(requests[1]["tools"].is_null() || requests[1]["tools"] == json!([]));
    let next = messages(&requests[2]);
    assert!(
        !next
            .iter()
            .any(|(_, text)| text == "original request" || text == "first reply"),
        "the summary replaced the conversation: {next:?}"
    );
    assert!(
        next.iter().any(|(role, text)| role == "assistant"
            && text.contains("SUMMARY: the user asked for X; done.")),
        "{next:?}"
    );
    assert_eq!(
        next.last().map(|(_, text)| text.as_str()),
        Some("and now Y")
    );
    let summary = client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "completed"
                && event["item"]["role"] == "summary"
        })
        .await;
    assert_eq!(
        summary["event"]["item"]["text"],
        "SUMMARY: the user asked for X; done."
    );
    let session = info(&mut client, &id).await;
    assert_eq!(session["context"]["usedTokens"], 35, "{session}");
    // The transcript document (all Helix has) shows the meter, each reply's cost and the
    // summary.
    let path = env.repo().join(".tether/sessions/compacted.md");
    let document = crate::support::wait_for_file(&path, |text| text.contains("second reply")).await;
    assert!(
        document.contains("- Context: 35 of 100 tokens (35%)")
            && document.contains("## Summary\n\nSUMMARY: the user asked for X; done.")
            && document.contains("second reply\n\n*$0.0000 · 30 tokens in, 5 out*"),
        "{document}"
    );
    // The transcript keeps everything; what came before the summary can no longer be edited.
    let text = export(&mut client, &id).await;
    assert!(
        text.contains("original request") && text.contains("## Summary"),
        "{text}"
    );
    let first = client
        .session_events(&id)
        .iter()
        .find(|params| params["event"]["item"]["role"] == "user")
        .map(|params| params["event"]["item"]["id"].clone())
        .expect("the first message");
    let error = client
        .call_err(
            "tether/session/editMessage",
            json!({"id": id, "itemId": first, "text": "other"}),
        )
        .await;
    assert!(error_message(&error).contains("compacted"), "{error}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_on_demand_runs_once_and_a_failed_one_keeps_the_conversation() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["hello"]));
    model.push(Reply::text(&["short summary"]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "remember 42"})).await;
    client.wait_for_status(&id, "waiting").await;
    // Nothing near the (built-in) window: no compaction until asked.
    let compacted = client
        .call("tether/session/compact", json!({"id": id}))
        .await;
    assert_eq!(compacted["name"], info(&mut client, &id).await["name"]);
    client.wait_for_nth_status(&id, "waiting", 2).await;
    assert_eq!(model.requests().len(), 2);
    assert!(
        messages(&model.requests()[1])
            .last()
            .is_some_and(|(_, text)| text.contains("about to be cut"))
    );
    let summaries = crate::support::completed_items(&client.session_events(&id), "message")
        .into_iter()
        .filter(|item| item["role"] == "summary")
        .count();
    assert_eq!(summaries, 1);

    // A conversation that is only its summary is not compacted again.
    client
        .call("tether/session/compact", json!({"id": id}))
        .await;
    client.wait_for_nth_status(&id, "waiting", 3).await;
    assert_eq!(model.requests().len(), 2);
    model.push(Reply::text(&["it was 42"]));
    client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "which number?"}),
        )
        .await;
    client.wait_for_nth_status(&id, "waiting", 4).await;

    // The model server fails the next one: the session waits, saying so, and the
    // conversation is whole for the next turn.
    client
        .call("tether/session/compact", json!({"id": id}))
        .await;
    let waiting = client
        .wait_for_event(&id, |event| {
            event["kind"] == "status"
                && event["status"] == "waiting"
                && event["reason"]
                    .as_str()
                    .is_some_and(|reason| reason.contains("could not be compacted"))
        })
        .await;
    assert!(
        waiting["event"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("500"))
    );
    model.push(Reply::text(&["still here"]));
    client
        .call("tether/session/send", json!({"id": id, "text": "sure?"}))
        .await;
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "item" && event["item"]["text"] == "still here"
        })
        .await;
    let last = messages(model.requests().last().expect("a request"));
    assert!(
        last.iter().any(|(_, text)| text.contains("short summary"))
            && last.iter().any(|(_, text)| text == "it was 42")
            && last.last().is_some_and(|(_, text)| text == "sure?"),
        "{last:?}"
    );

    // While it works, compaction waits its turn: refused.
    model.hold_until_pushed();
    client
        .call("tether/session/send", json!({"id": id, "text": "more"}))
        .await;
    let error = client
        .call_err("tether/session/compact", json!({"id": id}))
        .await;
    assert_eq!(error["code"], -31002, "{error}");
    model.push(Reply::text(&["ok"]));
    client.shutdown().await;
}

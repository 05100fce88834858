//! Verification and code review: a model asked for JSON findings about the session's diff.

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message, last_message};

fn with_review(model: &FakeModel, auto: bool) -> Value {
    let mut settings = model.settings();
    settings["review"] = json!({"auto": auto});
    settings
}

const EDIT_README: &[(&str, &str)] = &[(
    "edit_file",
    r##"{"path": "README.md", "old_string": "# sample\n", "new_string": "# sample\nmore\n"}"##,
)];

/// Waits for the completed `review` or `verification` item of a session; returns the item.
async fn completed_run(client: &LspClient, id: &str, kind: &str, nth: usize) -> Value {
    let deadline = tokio::time::Instant::now() + crate::support::lsp_client::WAIT;
    loop {
        let runs: Vec<Value> = client
            .session_events(id)
            .into_iter()
            .filter(|params| {
                params["event"]["kind"] == "item"
                    && params["event"]["phase"] == "completed"
                    && params["event"]["item"]["type"] == kind
            })
            .map(|params| params["event"]["item"].clone())
            .collect();
        if let Some(run) = runs.get(nth) {
            return run.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no completed {kind} #{nth}: {:#?}",
            client.session_events(id)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A session (automatic review off) whose one turn edited the README, now waiting.
async fn edited_session(env: &TestEnv, model: &FakeModel) -> (LspClient, String) {
    model.push(Reply::tool_calls(EDIT_README));
    model.push(Reply::text(&["done"]));
    let mut client = LspClient::spawn(env.home()).await;
    client
        .initialize(&env.repo(), with_review(model, false), true)
        .await;
    let (_, id) = client.create(json!({"prompt": "edit"})).await;
    client.wait_for_status(&id, "waiting").await;
    (client, id)
}

fn user_content(request: &Value) -> String {
    request["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["role"] == "user"))
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_develop_turn_with_changes_is_verified_then_reviewed() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(EDIT_README));
    model.push(Reply::text(&["done"]));
    model.push(Reply::text(&[
        "```json\n{\"findings\": [{\"file\": \"README.md\", \"startLine\": 2, \"endLine\": 2, \"severity\": \"medium\", \"category\": \"missing test\", \"title\": \"nothing checks the new line\", \"body\": \"add a test\"}]}\n```",
    ]));
    model.push(Reply::text(&[
        "{\"findings\": [",
        "{\"file\": \"README.md\", \"startLine\": 1, \"endLine\": 1, \"severity\": \"low\", \"category\": \"documentation\", \"title\": \"terse\"},",
        "{\"file\": \"README.md\", \"startLine\": 2, \"endLine\": 2, \"severity\": \"critical\", \"category\": \"bug\", \"title\": \"wrong word\"}",
        "]}",
    ]));
    let mut client = LspClient::spawn(env.home()).await;
    client
        .initialize(&env.repo(), with_review(&model, true), true)
        .await;
    let (_, id) = client
        .create(json!({"prompt": "add a line to the readme"}))
        .await;

    let verification = completed_run(&client, &id, "verification", 0).await;
    assert_eq!(verification["status"], "completed", "{verification}");
    assert_eq!(verification["findings"][0]["category"], "missing test");
    assert!(verification["durationMs"].is_u64(), "{verification}");
    let review = completed_run(&client, &id, "review", 0).await;
    assert_eq!(review["status"], "completed", "{review}");
    let titles: Vec<&Value> = review["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| &finding["title"])
        .collect();
    assert_eq!(
        titles,
        [&json!("wrong word"), &json!("terse")],
        "critical first"
    );
    assert_eq!(review["findings"][0]["id"], "r1");
    assert_eq!(verification["findings"][0]["id"], "v1");

    // Verification asked first, then review, each with the task and the whole diff.
    let requests = model.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    for (request, word) in [(&requests[2], "verify"), (&requests[3], "review")] {
        let system = request["messages"][0]["content"]
            .as_str()
            .unwrap_or_default();
        assert!(system.contains(word), "{system}");
        let asked = user_content(request);
        assert!(asked.contains("add a line to the readme"), "{asked}");
        assert!(asked.contains("+more"), "the diff is in it: {asked}");
    }

    // The findings are diagnostics, and can be read back.
    let uri = format!("file://{}", env.repo().join("README.md").display());
    client
        .wait_for_message_matching("textDocument/publishDiagnostics", |params| {
            params["uri"] == uri.as_str()
                && params["diagnostics"]
                    .as_array()
                    .is_some_and(|list| list.len() == 3)
        })
        .await;
    let read = client
        .call("tether/session/findings", json!({"id": id}))
        .await;
    let sources: Vec<&Value> = read["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| &finding["source"])
        .collect();
    assert_eq!(sources.len(), 3, "{read}");
    assert!(sources.contains(&&json!("verification")) && sources.contains(&&json!("review")));

    // The runs are in the session's history as people read it.
    let exported = client
        .call("tether/session/export", json!({"id": id}))
        .await;
    let markdown = exported["content"].as_str().unwrap_or_default();
    assert!(
        markdown.contains("## Verification: completed, 1 findings")
            && markdown.contains("## Review: completed, 2 findings")
            && markdown.contains("**wrong word** (Critical, bug)"),
        "{markdown}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_answer_is_retried_once_then_the_run_fails() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let (mut client, id) = edited_session(&env, &model).await;
    assert_eq!(
        model.requests().len(),
        2,
        "no automatic review when it is off"
    );

    // Invalid, then valid.
    model.push(Reply::text(&["It looks fine to me!"]));
    model.push(Reply::text(&["{\"findings\": []}"]));
    let started = client
        .call("tether/session/review", json!({"id": id, "kind": "review"}))
        .await;
    assert!(started["itemId"].is_string(), "{started}");
    let review = completed_run(&client, &id, "review", 0).await;
    assert_eq!(review["status"], "completed", "{review}");
    let retry = model.requests().last().cloned().expect("the retry");
    let said = last_message(&retry);
    assert!(said.contains("could not be read"), "{said}");

    // Garbage twice: failed, with a generic message.
    model.push(Reply::text(&["nope"]));
    model.push(Reply::text(&["still nope"]));
    client
        .call(
            "tether/session/review",
            json!({"id": id, "kind": "verification"}),
        )
        .await;
    let verification = completed_run(&client, &id, "verification", 0).await;
    assert_eq!(verification["status"], "failed", "{verification}");
    assert_eq!(
        verification["error"],
        "the model's answer could not be read as findings"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_review_at_a_time_and_a_running_one_can_be_canceled() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let (mut client, id) = edited_session(&env, &model).await;

    model.push(Reply::text_paced(
        &["{\"findings\"", ": []", "}"],
        std::time::Duration::from_secs(5),
    ));
    client
        .call("tether/session/review", json!({"id": id}))
        .await;
    let error = client
        .call_err("tether/session/review", json!({"id": id}))
        .await;
    assert_eq!(error["code"], -31002, "{error}");
    assert!(error_message(&error).contains("one is running"), "{error}");
    client
        .call(
            "tether/session/cancelReview",
            json!({"id": id, "kind": "review"}),
        )
        .await;
    let review = completed_run(&client, &id, "review", 0).await;
    assert_eq!(review["status"], "cancelled", "{review}");
    let error = client
        .call_err("tether/session/cancelReview", json!({"id": id}))
        .await;
    assert_eq!(error["code"], -31002, "nothing left to cancel: {error}");
    client.shutdown().await;
}

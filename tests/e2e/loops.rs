//! Loops: the same prompt in iterations, stopping on the exit signal, on an iteration that
//! changes nothing, at the most iterations, or when the user stops it.

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message};

fn write(path: &str) -> Reply {
    Reply::tool_calls(&[(
        "write_file",
        &format!(r#"{{"path": "{path}", "content": "x\n"}}"#),
    )])
}

/// A session that has answered once and waits.
async fn waiting_session(env: &TestEnv, model: &FakeModel) -> (LspClient, String) {
    model.push(Reply::text(&["ready"]));
    let mut client = env.server(model).await;
    let (_, id) = client.create(json!({"prompt": "get ready"})).await;
    client.wait_for_status(&id, "waiting").await;
    (client, id)
}

/// The completed loop iterations so far.
fn iterations(client: &LspClient, id: &str) -> Vec<Value> {
    client
        .session_events(id)
        .into_iter()
        .filter(|params| {
            params["event"]["phase"] == "completed"
                && params["event"]["item"]["type"] == "loopIteration"
        })
        .map(|params| params["event"]["item"].clone())
        .collect()
}

/// Waits for the iteration that stopped the loop; returns every completed iteration.
async fn finished_loop(client: &LspClient, id: &str) -> Vec<Value> {
    client
        .wait_for_event(id, |event| {
            event["item"]["type"] == "loopIteration"
                && event["phase"] == "completed"
                && event["item"]["stopReason"].is_string()
        })
        .await;
    iterations(client, id)
}

fn user_messages(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|message| message["role"] == "user")
        .filter_map(|message| message["content"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_stops_on_the_exit_signal_with_a_fresh_context_each_time() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let (mut client, id) = waiting_session(&env, &model).await;
    model.push(write("a.txt"));
    model.push(Reply::text(&["made a"]));
    model.push(write("b.txt"));
    model.push(Reply::text(&["made b, all done\n", "EXIT_SIGNAL: true"]));
    client
        .call(
            "tether/session/loop",
            json!({"id": id, "prompt": "make files", "maxIterations": 5}),
        )
        .await;
    let done = finished_loop(&client, &id).await;
    assert_eq!(done.len(), 2, "{done:#?}");
    assert_eq!(done[0]["outcome"], "changed");
    assert_eq!(done[1]["outcome"], "exit_signal");
    assert_eq!(done[1]["iteration"], 2);
    assert_eq!(done[1]["maxIterations"], 5);
    assert!(
        done[1]["stopReason"]
            .as_str()
            .is_some_and(|reason| reason.contains("EXIT_SIGNAL")),
        "{done:#?}"
    );

    // The second iteration starts over: only its own prompt, numbered.
    let requests = model.requests();
    let second = &requests[3];
    let asked = user_messages(second);
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert!(
        asked[0].starts_with("[Loop iteration 2 of 5]"),
        "{asked:#?}"
    );
    assert!(asked[0].contains("make files") && asked[0].contains("EXIT_SIGNAL: true"));

    // Only one loop at a time; nothing to stop once it is over.
    let error = client
        .call_err("tether/session/stopLoop", json!({"id": id}))
        .await;
    assert_eq!(error["code"], -31002, "{error}");
    let exported = client
        .call("tether/session/export", json!({"id": id}))
        .await;
    assert!(
        exported["content"]
            .as_str()
            .is_some_and(|text| text.contains("Loop iteration 2 of 5: exit_signal")),
        "{exported}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_stops_when_an_iteration_changes_nothing() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let (mut client, id) = waiting_session(&env, &model).await;
    model.push(write("a.txt"));
    model.push(Reply::text(&["made a"]));
    model.push(Reply::text(&["nothing left to do"]));
    client
        .call(
            "tether/session/loop",
            json!({"id": id, "prompt": "tidy up", "maxIterations": 10, "resetContext": false}),
        )
        .await;
    let done = finished_loop(&client, &id).await;
    assert_eq!(done.len(), 2, "{done:#?}");
    assert_eq!(done[1]["outcome"], "no_changes");
    assert!(
        done[1]["stopReason"]
            .as_str()
            .is_some_and(|reason| reason.contains("changed no files")),
        "{done:#?}"
    );
    // Without a reset, the second iteration sees the first.
    let requests = model.requests();
    let asked = user_messages(requests.last().expect("a request"));
    assert!(
        asked
            .iter()
            .any(|text| text.starts_with("[Loop iteration 1 of 10]"))
            && asked
                .iter()
                .any(|text| text.starts_with("[Loop iteration 2 of 10]")),
        "{asked:#?}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_stops_at_its_last_iteration_or_when_the_user_stops_it() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let (mut client, id) = waiting_session(&env, &model).await;
    model.push(write("a.txt"));
    model.push(Reply::text(&["made a"]));
    model.push(write("b.txt"));
    model.push(Reply::text(&["made b"]));
    let error = client
        .call_err(
            "tether/session/loop",
            json!({"id": id, "prompt": "go", "maxIterations": 0}),
        )
        .await;
    assert!(error_message(&error).contains("maxIterations"), "{error}");
    client
        .call(
            "tether/session/loop",
            json!({"id": id, "prompt": "go", "maxIterations": 2}),
        )
        .await;
    let error = client
        .call_err(
            "tether/session/loop",
            json!({"id": id, "prompt": "again", "maxIterations": 2}),
        )
        .await;
    assert_eq!(error["code"], -31002, "one loop per session: {error}");
    let done = finished_loop(&client, &id).await;
    assert_eq!(done.len(), 2, "{done:#?}");
    assert!(
        done[1]["stopReason"]
            .as_str()
            .is_some_and(|reason| reason.contains("2 iterations")),
        "{done:#?}"
    );

    // A loop the user stops mid-turn.
    client.wait_for_nth_status(&id, "waiting", 3).await;
    model.push(Reply::text_paced(
        &["thinking", " very", " slowly"],
        std::time::Duration::from_secs(5),
    ));
    client
        .call(
            "tether/session/loop",
            json!({"id": id, "prompt": "slow", "maxIterations": 3}),
        )
        .await;
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "delta" || event["item"]["role"] == "agent"
        })
        .await;
    client
        .call("tether/session/stopLoop", json!({"id": id}))
        .await;
    client
        .wait_for_event(&id, |event| {
            event["item"]["type"] == "loopIteration"
                && event["item"]["outcome"] == "stopped"
                && event["item"]["stopReason"] == "stopped by the user"
        })
        .await;
    client.wait_for_status(&id, "stopped").await;
    client.shutdown().await;
}

//! Changing the conversation: editing a sent message (the worktree goes back byte for byte,
//! the model sees the conversation cut there), taking back a queued message, and steering a
//! working agent between its tool calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message, git, wait_for_file};

/// Every file of a worktree (but `.git`) and its bytes.
fn files_of(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read the folder").flatten() {
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).expect("inside").to_owned();
                files.insert(relative, std::fs::read(&path).expect("read the file"));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

/// The user messages the model was sent, in order.
fn user_texts(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|message| message["role"] == "user")
        .map(|message| message["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The completed user message items, as (id, text).
fn user_messages(client: &LspClient, id: &str) -> Vec<(String, String)> {
    client
        .session_events(id)
        .iter()
        .map(|params| &params["event"])
        .filter(|event| {
            event["kind"] == "item"
                && event["phase"] == "completed"
                && event["item"]["type"] == "message"
                && event["item"]["role"] == "user"
        })
        .map(|event| {
            (
                event["item"]["id"].as_str().unwrap_or_default().to_owned(),
                event["item"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_message_puts_the_worktree_back_byte_for_byte_and_runs_from_there() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    // Turn 1 makes a binary file; turn 2 changes it, deletes a tracked file and adds one.
    model.push(Reply::tool_calls(&[(
        "run_command",
        r#"{"command": "printf 'a\\000\\377b' > blob.bin && echo one > a.txt"}"#,
    )]));
    model.push(Reply::text(&["first turn done"]));
    model.push(Reply::tool_calls(&[(
        "run_command",
        r#"{"command": "printf 'changed' > blob.bin && rm README.md && echo two > b.txt"}"#,
    )]));
    model.push(Reply::text(&["second turn done"]));
    model.push(Reply::text(&["edited turn done"]));
    model.push(Reply::text(&["from the top"]));
    let mut client = env.server(&model).await;
    let (info, id) = client
        .create(json!({"prompt": "make a", "name": "edited"}))
        .await;
    client.wait_for_nth_status(&id, "waiting", 1).await;
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));
    let after_turn_1 = files_of(&worktree);
    assert_eq!(after_turn_1[Path::new("blob.bin")], b"a\0\xffb");

    client
        .call("tether/session/send", json!({"id": id, "text": "now b"}))
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    assert!(!worktree.join("README.md").exists());
    let messages = user_messages(&client, &id);
    assert_eq!(messages.len(), 2, "{messages:?}");
    let (second, _) = messages[1].clone();

    let edited = client
        .call(
            "tether/session/editMessage",
            json!({"id": id, "itemId": second, "text": "now c instead"}),
        )
        .await;
    assert_eq!(edited["name"], "edited");
    client.wait_for_nth_status(&id, "waiting", 3).await;
    assert_eq!(
        files_of(&worktree),
        after_turn_1,
        "the worktree is what it was before the edited message, byte for byte"
    );
    // The model saw the conversation cut at the edited message.
    let requests = model.requests();
    let rerun = &requests[4];
    assert_eq!(user_texts(rerun), ["make a", "now c instead"]);
    let sent = rerun.to_string();
    assert!(
        !sent.contains("now b") && !sent.contains("second turn done"),
        "{sent}"
    );
    assert!(sent.contains("first turn done"), "{sent}");
    // The log keeps the old continuation, marked superseded, after the rewind.
    let kinds: Vec<String> = client
        .session_events(&id)
        .iter()
        .map(|params| {
            params["event"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let superseded = kinds.iter().position(|kind| kind == "superseded");
    let rewound = kinds.iter().rposition(|kind| kind == "rewound");
    assert!(
        matches!((rewound, superseded), (Some(r), Some(s)) if r < s),
        "{kinds:?}"
    );
    let event = client
        .wait_for_event(&id, |event| event["kind"] == "superseded")
        .await;
    assert_eq!(event["event"]["itemId"], second.as_str());
    let exported = client
        .call("tether/session/export", json!({"id": id}))
        .await;
    let text = exported["content"].as_str().unwrap_or_default();
    assert!(
        text.contains("<details><summary>Superseded by an edit</summary>")
            && text.contains("second turn done")
            && text.contains("now c instead"),
        "{text}"
    );

    // Editing the first message goes back to the worktree as it was made.
    let first = user_messages(&client, &id)[0].0.clone();
    client
        .call(
            "tether/session/editMessage",
            json!({"id": id, "itemId": first, "text": "start over"}),
        )
        .await;
    client.wait_for_nth_status(&id, "waiting", 4).await;
    assert_eq!(git(&worktree, &["status", "--porcelain"]), "");
    assert_eq!(user_texts(&model.requests()[5]), ["start over"]);

    // What the edit replaced cannot be edited again, and the undo checkpoint is there.
    let error = client
        .call_err(
            "tether/session/editMessage",
            json!({"id": id, "itemId": second, "text": "again"}),
        )
        .await;
    assert_eq!(error["code"], -32602, "{error}");
    assert!(error_message(&error).contains("superseded"), "{error}");
    client
        .call(
            "tether/session/rewind",
            json!({"id": id, "checkpoint": "before-rewind-2"}),
        )
        .await;
    assert_eq!(files_of(&worktree), after_turn_1);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_edits_are_refused_clearly_and_change_nothing() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["hello"]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "hi"})).await;
    client.wait_for_status(&id, "waiting").await;
    let user = user_messages(&client, &id)[0].0.clone();
    let reply = crate::support::completed_items(&client.session_events(&id), "message")
        .into_iter()
        .find(|item| item["role"] == "agent")
        .expect("a reply");
    for (params, words) in [
        (
            json!({"id": id, "itemId": "nope", "text": "x"}),
            "not a message",
        ),
        (
            json!({"id": id, "itemId": reply["id"], "text": "x"}),
            "not a message",
        ),
        (json!({"id": id, "itemId": user, "text": "  "}), "empty"),
    ] {
        let error = client
            .call_err("tether/session/editMessage", params.clone())
            .await;
        assert_eq!(error["code"], -32602, "{params}: {error}");
        assert!(error_message(&error).contains(words), "{params}: {error}");
    }
    let error = client
        .call_err(
            "tether/session/deleteMessage",
            json!({"id": id, "itemId": user}),
        )
        .await;
    assert_eq!(error["code"], -32602, "{error}");
    assert!(error_message(&error).contains("edited instead"), "{error}");

    // While the agent works, an edit is refused as a state error.
    model.hold_until_pushed();
    client
        .call("tether/session/send", json!({"id": id, "text": "more"}))
        .await;
    client.wait_for_nth_status(&id, "running", 2).await;
    let error = client
        .call_err(
            "tether/session/editMessage",
            json!({"id": id, "itemId": user, "text": "x"}),
        )
        .await;
    assert_eq!(error["code"], -31002, "{error}");
    model.push(Reply::text(&["done"]));
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let kinds: Vec<Value> = client
        .session_events(&id)
        .iter()
        .map(|params| params["event"]["kind"].clone())
        .collect();
    assert!(!kinds.contains(&json!("superseded")), "{kinds:?}");
    assert!(!kinds.contains(&json!("rewound")), "{kinds:?}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_can_be_taken_back_before_it_is_delivered() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.hold_until_pushed();
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "work"})).await;
    // The turn is under way (its model call held): a message now waits for it.
    for _ in 0..500 {
        if !model.requests().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let sent = client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "never mind this"}),
        )
        .await;
    assert_eq!(sent["queued"], true);
    let item_id = sent["itemId"]
        .as_str()
        .expect("the message's id")
        .to_owned();
    let deleted = client
        .call(
            "tether/session/deleteMessage",
            json!({"id": id, "itemId": item_id}),
        )
        .await;
    assert_eq!(deleted["deleted"], true);
    let error = client
        .call_err(
            "tether/session/deleteMessage",
            json!({"id": id, "itemId": item_id}),
        )
        .await;
    assert_eq!(error["code"], -32602, "{error}");
    model.push(Reply::text(&["done"]));
    client.wait_for_status(&id, "waiting").await;
    let withdrawn = client
        .wait_for_event(&id, |event| event["kind"] == "followUpWithdrawn")
        .await;
    assert_eq!(withdrawn["event"]["itemId"], item_id.as_str());
    assert_eq!(
        model.requests().len(),
        1,
        "no turn for the withdrawn message"
    );
    let texts: Vec<String> = user_messages(&client, &id)
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    assert_eq!(texts, ["work"]);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_while_a_tool_runs_reaches_the_model_with_its_result() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "run_command",
        r#"{"command": "sleep 2; echo slept"}"#,
    )]));
    model.push(Reply::text(&["steered"]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "run it"})).await;
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "started"
                && event["item"]["type"] == "toolCall"
        })
        .await;
    let sent = client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "use python instead"}),
        )
        .await;
    assert_eq!(sent["queued"], true);
    client.wait_for_status(&id, "waiting").await;
    let requests = model.requests();
    assert_eq!(
        requests.len(),
        2,
        "delivered within the turn, not a turn of its own"
    );
    let messages = requests[1]["messages"].as_array().expect("messages");
    let roles: Vec<&str> = messages
        .iter()
        .filter_map(|message| message["role"].as_str())
        .collect();
    assert_eq!(roles[roles.len() - 2..], ["tool", "user"], "{roles:?}");
    assert_eq!(
        messages.last().expect("last")["content"],
        "use python instead"
    );
    let texts: Vec<String> = user_messages(&client, &id)
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    assert_eq!(texts, ["run it", "use python instead"]);
    client.shutdown().await;
}

fn line_of(text: &str, needle: &str) -> u32 {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {text}")) as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_transcript_document_a_message_is_edited_and_a_queued_one_taken_back() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["first answer"]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "first try", "name": "helixy"}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    let path = env.repo().join(".tether/sessions/helixy.md");
    let uri = format!("file://{}", path.display());
    let text = wait_for_file(&path, |text| text.contains("first answer")).await;
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "markdown", "version": 1, "text": text}}),
        )
        .await;

    // No edit action on an agent's reply.
    let on_reply = line_of(&text, "first answer");
    let actions = client
        .code_actions(&uri, (on_reply, 0), (on_reply, 0))
        .await;
    assert!(
        !actions.iter().any(|action| action["title"]
            .as_str()
            .is_some_and(|title| title.starts_with("tether: Edit"))),
        "{actions:#?}"
    );

    // On the user message, "Edit" puts it under "## Reply" with the edit marker.
    let line = line_of(&text, "<!-- tether:message ") + 2;
    let actions = client.code_actions(&uri, (line, 0), (line, 0)).await;
    let edit = actions
        .iter()
        .find(|action| {
            action["title"]
                .as_str()
                .is_some_and(|title| title.starts_with("tether: Edit this message"))
        })
        .unwrap_or_else(|| panic!("no edit action in {actions:#?}"));
    let edits = edit["edit"]["changes"][&uri]
        .as_array()
        .expect("edits of the transcript");
    let edited = crate::support::apply_text_edits(&text, edits, false);
    let (above, reply) = edited.rsplit_once("## Reply\n").expect("the reply heading");
    assert!(
        reply.contains("<!-- tether:edit ") && reply.contains("first try"),
        "{reply}"
    );
    let saved = format!(
        "{above}## Reply\n{}",
        reply.replace("first try", "second try")
    );
    model.push(Reply::text(&["second answer"]));
    client
        .notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": uri}, "text": saved}),
        )
        .await;
    client
        .wait_for_event(&id, |event| event["kind"] == "superseded")
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    assert_eq!(
        user_texts(model.requests().last().expect("a request")),
        ["second try"]
    );
    client
        .notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": uri}}),
        )
        .await;

    // A message sent while the agent works is listed as queued, and taken back from there.
    model.hold_until_pushed();
    client
        .call("tether/session/send", json!({"id": id, "text": "go on"}))
        .await;
    for _ in 0..500 {
        if model.requests().len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let sent = client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "and one more thing"}),
        )
        .await;
    assert_eq!(sent["queued"], true, "the agent is at work");
    let text = wait_for_file(&path, |text| text.contains("<!-- tether:queued ")).await;
    assert!(
        text.contains("## Queued (not delivered yet)\n\n- and one more thing <!-- tether:queued "),
        "{text}"
    );
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "markdown", "version": 3, "text": text}}),
        )
        .await;
    let line = line_of(&text, "<!-- tether:queued ");
    let actions = client.code_actions(&uri, (line, 0), (line, 0)).await;
    let take_back = actions
        .iter()
        .find(|action| action["title"] == "tether: Take back this queued message")
        .unwrap_or_else(|| panic!("no take-back action in {actions:#?}"))
        .clone();
    client.execute_action(&take_back).await.expect("taken back");
    model.push(Reply::text(&["went on"]));
    client.wait_for_nth_status(&id, "waiting", 3).await;
    let requests = model.requests();
    assert!(
        !requests
            .iter()
            .any(|request| request.to_string().contains("one more thing")),
        "the model never saw the message taken back"
    );
    client.shutdown().await;
}

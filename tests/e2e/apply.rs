//! `tether/session/apply`: a session's changes land in the user's workspace as one minimal
//! `WorkspaceEdit`, in the client's position encoding, around the user's unsaved work.

use serde_json::{Value, json};

use crate::support::{
    FakeModel, LspClient, Reply, TestEnv, apply_text_edits, apply_workspace_edit, error_message,
    git,
};

/// Twenty numbered lines: room for hunks far enough apart to stay separate.
fn numbered_lines() -> String {
    (1..=20).map(|n| format!("line {n}\n")).collect()
}

/// Two changes to `numbered_lines()`, far enough apart to be two hunks.
const LINES_3_AND_15: &[(&str, &str)] = &[
    (
        "edit_file",
        r#"{"path": "multi.txt", "old_string": "line 3\n", "new_string": "line three\n"}"#,
    ),
    (
        "edit_file",
        r#"{"path": "multi.txt", "old_string": "line 15\n", "new_string": "line fifteen\n"}"#,
    ),
];

fn capabilities(utf8: bool, resource_operations: bool) -> Value {
    let mut capabilities = json!({
        "experimental": {"tether": true},
        "general": {"positionEncodings": if utf8 { json!(["utf-8", "utf-16"]) } else { json!(["utf-16"]) }},
    });
    if resource_operations {
        capabilities["workspace"] = json!({"workspaceEdit": {
            "documentChanges": true,
            "resourceOperations": ["create", "rename", "delete"],
        }});
    }
    capabilities
}

async fn server(env: &TestEnv, model: &FakeModel, capabilities: Value) -> LspClient {
    let mut client = LspClient::spawn(env.home()).await;
    client
        .initialize_with(&env.repo(), model.settings(), capabilities)
        .await;
    client
}

fn commit_files(env: &TestEnv, files: &[(&str, &str)]) {
    for (path, text) in files {
        std::fs::write(env.repo().join(path), text).expect("write");
    }
    git(&env.repo(), &["add", "."]);
    git(&env.repo(), &["commit", "-q", "-m", "files"]);
}

/// Runs one scripted turn of tool calls and waits for the session to settle; returns its id
/// and worktree.
async fn session_with_changes(
    client: &mut LspClient,
    model: &FakeModel,
    calls: &[(&str, &str)],
) -> (String, std::path::PathBuf) {
    model.push(Reply::tool_calls(calls));
    model.push(Reply::text(&["done"]));
    let (info, id) = client.create(json!({"prompt": "change things"})).await;
    client.wait_for_status(&id, "waiting").await;
    let worktree = std::path::PathBuf::from(info["worktree"].as_str().expect("worktree"));
    (id, worktree)
}

fn edit_of(request: &Value) -> Value {
    request["params"]["edit"].clone()
}

fn text_edits_for<'a>(edit: &'a Value, file: &str) -> Vec<&'a Value> {
    edit["documentChanges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|operation| {
            operation["textDocument"]["uri"]
                .as_str()
                .is_some_and(|uri| uri.ends_with(file))
        })
        .flat_map(|operation| operation["edits"].as_array().into_iter().flatten())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_sends_minimal_edits_and_file_operations_that_reproduce_the_worktree() {
    let env = TestEnv::new();
    let multi = numbered_lines();
    commit_files(
        &env,
        &[
            ("old.txt", "moving\n"),
            ("gone.txt", "bye\n"),
            ("multi.txt", &multi),
        ],
    );
    let model = FakeModel::start().await;
    let mut client = server(&env, &model, capabilities(false, true)).await;
    let (id, worktree) = session_with_changes(
        &mut client,
        &model,
        &[
            ("edit_file", r##"{"path": "README.md", "old_string": "# sample\n", "new_string": "# sample\nmore\n"}"##),
            ("write_file", r#"{"path": "new.txt", "content": "fresh\n"}"#),
            ("move_file", r#"{"from": "old.txt", "to": "moved.txt"}"#),
            ("delete_file", r#"{"path": "gone.txt"}"#),
            ("edit_file", r#"{"path": "multi.txt", "old_string": "line 3\n", "new_string": "line three\n"}"#),
            ("edit_file", r#"{"path": "multi.txt", "old_string": "line 17\n", "new_string": ""}"#),
        ],
    )
    .await;

    let reply = client.call("tether/session/apply", json!({"id": id})).await;
    assert_eq!(reply["sent"], true, "{reply}");
    let request = client.wait_for_message("workspace/applyEdit").await;
    let edit = edit_of(&request);

    // Minimal: the README gains one line, multi.txt two small edits, never a whole file.
    assert_eq!(
        text_edits_for(&edit, "README.md"),
        [
            &json!({"range": {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 0}}, "newText": "more\n"})
        ]
    );
    let multi_edits = text_edits_for(&edit, "multi.txt");
    assert_eq!(multi_edits.len(), 2, "{multi_edits:?}");
    assert_eq!(
        multi_edits[0],
        &json!({"range": {"start": {"line": 2, "character": 5}, "end": {"line": 2, "character": 6}}, "newText": "three"})
    );
    let operations: Vec<(&str, &str)> = edit["documentChanges"]
        .as_array()
        .expect("documentChanges")
        .iter()
        .filter_map(|operation| {
            let kind = operation["kind"].as_str()?;
            let uri = operation["uri"].as_str().or(operation["newUri"].as_str())?;
            Some((kind, uri.rsplit('/').next()?))
        })
        .collect();
    for expected in [
        ("create", "new.txt"),
        ("delete", "gone.txt"),
        ("rename", "moved.txt"),
    ] {
        assert!(
            operations.contains(&expected),
            "{expected:?} in {operations:?}"
        );
    }

    // Applied as an editor would, the user's files become the worktree's.
    apply_workspace_edit(&edit, false);
    for file in ["README.md", "new.txt", "moved.txt", "multi.txt"] {
        assert_eq!(
            std::fs::read_to_string(env.repo().join(file)).expect(file),
            std::fs::read_to_string(worktree.join(file)).expect(file),
            "{file}"
        );
    }
    assert!(!env.repo().join("gone.txt").exists());
    assert!(!env.repo().join("old.txt").exists());

    // The client said it applied: the session records it.
    let note = client
        .wait_for_event(&id, |event| {
            event["item"]["role"] == "system"
                && event["item"]["text"]
                    .as_str()
                    .is_some_and(|text| text.starts_with("Applied to the workspace"))
        })
        .await;
    assert!(
        note["event"]["item"]["text"]
            .as_str()
            .is_some_and(|text| text.contains("5 files from")),
        "{note}"
    );

    let error = client
        .call_err(
            "tether/session/apply",
            json!({"id": id, "files": ["nowhere.txt"]}),
        )
        .await;
    assert_eq!(error["code"], -32602);
    assert!(error_message(&error).contains("`files[0]`"), "{error}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_follow_the_negotiated_encoding_on_non_ascii_crlf_lines() {
    let line = "let 日本 = \"👍e\u{301}\"; // ok\r\n";
    let text = format!("first\r\n{line}last\r\n");
    for utf8 in [false, true] {
        let env = TestEnv::new();
        commit_files(&env, &[("wide.rs", &text)]);
        let model = FakeModel::start().await;
        let mut client = server(&env, &model, capabilities(utf8, true)).await;
        let (id, worktree) = session_with_changes(
            &mut client,
            &model,
            &[(
                "edit_file",
                r#"{"path": "wide.rs", "old_string": "// ok", "new_string": "// fine"}"#,
            )],
        )
        .await;
        client.call("tether/session/apply", json!({"id": id})).await;
        let request = client.wait_for_message("workspace/applyEdit").await;
        let edit = edit_of(&request);
        let edits = text_edits_for(&edit, "wide.rs");
        assert_eq!(edits.len(), 1, "{edits:?}");
        // The edit starts after "// " and replaces "ok".
        let prefix = "let 日本 = \"👍e\u{301}\"; // ";
        let column = if utf8 {
            prefix.len()
        } else {
            prefix.encode_utf16().count()
        };
        assert_eq!(
            edits[0]["range"]["start"],
            json!({"line": 1, "character": column}),
            "utf8 = {utf8}"
        );
        assert_eq!(edits[0]["newText"], "fine");
        let applied = apply_text_edits(&text, &[edits[0].clone()], utf8);
        assert_eq!(
            applied,
            std::fs::read_to_string(worktree.join("wide.rs")).expect("worktree"),
            "CRLF and every wide character survive (utf8 = {utf8})"
        );
        client.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_buffer_with_unsaved_changes_is_edited_around_them() {
    let env = TestEnv::new();
    let multi = numbered_lines();
    commit_files(&env, &[("multi.txt", &multi)]);
    let model = FakeModel::start().await;
    let mut client = server(&env, &model, capabilities(false, true)).await;
    let (id, _) = session_with_changes(&mut client, &model, LINES_3_AND_15).await;

    // The user has the file open and, unsaved, adds two lines on top and rewrites line 3.
    let uri = format!("file://{}", env.repo().join("multi.txt").display());
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "text", "version": 1, "text": multi}}),
        )
        .await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
                {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "mine 1\nmine 2\n"},
            ]}),
        )
        .await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 3}, "contentChanges": [
                {"range": {"start": {"line": 4, "character": 5}, "end": {"line": 4, "character": 6}}, "text": "3 (mine)"},
            ]}),
        )
        .await;
    let buffer = format!(
        "mine 1\nmine 2\n{}",
        multi.replace("line 3\n", "line 3 (mine)\n")
    );

    let reply = client.call("tether/session/apply", json!({"id": id})).await;
    let file = &reply["files"][0];
    assert_eq!(file["applied"], json!([1]), "{reply}");
    assert_eq!(file["conflicts"], json!([0]), "{reply}");
    assert!(
        reply["summary"]
            .as_str()
            .is_some_and(|summary| summary.contains("multi.txt #0")),
        "{reply}"
    );
    let request = client.wait_for_message("workspace/applyEdit").await;
    let edit = edit_of(&request);
    let document = &edit["documentChanges"][0];
    assert_eq!(
        document["textDocument"]["version"], 3,
        "the edit is for the buffer as the user has it"
    );
    let edits = document["edits"].as_array().expect("edits");
    assert_eq!(
        apply_text_edits(&buffer, edits, false),
        buffer.replace("line 15\n", "line fifteen\n"),
        "the user's unsaved lines are kept; the conflicting hunk is left out"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hunks_the_user_leaves_out_are_told_to_the_agent() {
    let env = TestEnv::new();
    let multi = numbered_lines();
    commit_files(&env, &[("multi.txt", &multi)]);
    let model = FakeModel::start().await;
    let mut client = server(&env, &model, capabilities(false, true)).await;
    let (id, _) = session_with_changes(&mut client, &model, LINES_3_AND_15).await;
    let diff = client.call("tether/session/diff", json!({"id": id})).await;
    let patch = diff["files"][0]["patch"].as_str().expect("patch");
    assert_eq!(patch.matches("\n@@ ").count(), 2, "{patch}");

    let reply = client
        .call(
            "tether/session/apply",
            json!({"id": id, "hunks": {"multi.txt": [1]}}),
        )
        .await;
    assert_eq!(reply["files"][0]["rejected"], json!([0]), "{reply}");
    let request = client.wait_for_message("workspace/applyEdit").await;
    let edits = text_edits_for(&edit_of(&request), "multi.txt")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(
        apply_text_edits(&multi, &edits, false),
        multi.replace("line 15\n", "line fifteen\n")
    );
    client
        .wait_for_event(&id, |event| event["item"]["role"] == "system")
        .await;

    // The next turn tells the model what the user did not take.
    model.push(Reply::text(&["noted"]));
    client
        .call("tether/session/send", json!({"id": id, "text": "thanks"}))
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let requests = model.requests();
    let last = requests.last().expect("a request");
    let user_text = last["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|message| message["content"].as_str())
        .expect("a user message")
        .to_owned();
    assert!(
        user_text.contains("rejected these hunks") && user_text.contains("multi.txt hunk #0"),
        "{user_text}"
    );
    assert!(user_text.ends_with("thanks"), "{user_text}");
    client.shutdown().await;
}

/// Review hunk by hunk: a hunk accepted alone leaves the others for later (the agent hears
/// nothing of them), hunks rejected by name are never applied and are told to the agent,
/// and rejecting everything sends no edit but still tells it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hunks_accepted_one_at_a_time_and_rejected_by_name() {
    let env = TestEnv::new();
    let multi = numbered_lines();
    commit_files(&env, &[("multi.txt", &multi)]);
    let model = FakeModel::start().await;
    let mut client = server(&env, &model, capabilities(false, true)).await;
    let mut calls = LINES_3_AND_15.to_vec();
    calls.push((
        "write_file",
        r#"{"path": "new.txt", "content": "brand new\n"}"#,
    ));
    let (id, _) = session_with_changes(&mut client, &model, &calls).await;

    // Hunk 1 now; hunk 0 is left for later, not rejected.
    let reply = client
        .call(
            "tether/session/apply",
            json!({"id": id, "hunks": {"multi.txt": [1]}, "reject": {}}),
        )
        .await;
    assert_eq!(reply["sent"], true, "{reply}");
    assert_eq!(reply["files"][0]["applied"], json!([1]), "{reply}");
    assert_eq!(reply["files"][0]["rejected"], json!([]), "{reply}");
    client.wait_for_message("workspace/applyEdit").await;
    let applied = client
        .wait_for_event(&id, |event| event["item"]["role"] == "system")
        .await;
    let note = applied["item"]["text"].as_str().unwrap_or_default();
    assert!(!note.contains("rejected"), "{note}");

    // Bad input: a hunk the file does not have; a hunk both taken and rejected.
    let error = client
        .call_err(
            "tether/session/apply",
            json!({"id": id, "hunks": {"multi.txt": [7]}}),
        )
        .await;
    assert!(
        error_message(&error).contains("`hunks.multi.txt`: hunk 7 is not one of its 2 hunk(s)"),
        "{error}"
    );
    let error = client
        .call_err(
            "tether/session/apply",
            json!({"id": id, "hunks": {"multi.txt": [0]}, "reject": {"multi.txt": [0]}}),
        )
        .await;
    assert!(
        error_message(&error).contains("hunk 0 is in `hunks` too"),
        "{error}"
    );

    // Reject the rest: no edit (the new file is not made), a message, and the agent is told.
    let reply = client
        .call(
            "tether/session/apply",
            json!({"id": id, "hunks": {}, "reject": {"multi.txt": [0], "new.txt": [0]}}),
        )
        .await;
    assert_eq!(reply["sent"], false, "{reply}");
    let summary = reply["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("2 hunk(s) rejected (multi.txt #0, new.txt #0)"),
        "{summary}"
    );
    assert!(!env.repo().join("new.txt").exists());
    client
        .wait_for_event(&id, |event| {
            event["item"]["role"] == "system"
                && event["item"]["text"]
                    .as_str()
                    .is_some_and(|text| text.contains("reviewed your changes"))
        })
        .await;
    // The client that asked reads the result and says it; the server adds no message of
    // its own (only a command's result, which Helix discards, is shown as one).
    client.call("tether/session/list", json!({})).await;
    let shown = client.messages("window/showMessage");
    assert!(
        !shown.iter().any(|message| message["params"]["message"]
            .to_string()
            .contains("rejected")),
        "{shown:#?}"
    );

    model.push(Reply::text(&["noted"]));
    client
        .call("tether/session/send", json!({"id": id, "text": "thanks"}))
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let requests = model.requests();
    let user_text = requests
        .last()
        .and_then(|request| request["messages"].as_array())
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|message| message["content"].as_str())
        .expect("a user message")
        .to_owned();
    assert!(
        user_text.contains("reviewed your changes and rejected these hunks")
            && user_text.contains("multi.txt hunk #0")
            && user_text.contains("new.txt hunk #0")
            && !user_text.contains("multi.txt hunk #1"),
        "{user_text}"
    );
    client.shutdown().await;
}

/// Helix's way: each hunk is a pair of code actions on the lines of the user's file it
/// changes; applying one leaves the others (and no longer offers it), rejecting one tells
/// the agent, and a hunk on lines the user changed too is titled as a conflict and applies
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hunk_code_actions_apply_and_reject_one_hunk_at_a_time() {
    let env = TestEnv::new();
    let multi = numbered_lines();
    commit_files(&env, &[("multi.txt", &multi)]);
    let model = FakeModel::start().await;
    let mut client = server(&env, &model, capabilities(false, true)).await;
    let (id, _) = session_with_changes(&mut client, &model, LINES_3_AND_15).await;
    let path = env.repo().join("multi.txt");
    let uri = format!("file://{}", path.display());
    let titles = |actions: &[Value]| -> Vec<String> {
        actions
            .iter()
            .filter_map(|action| action["title"].as_str())
            .filter(|title| title.contains("hunk"))
            .map(str::to_owned)
            .collect()
    };

    // Line 3 (2 from 0) is hunk 0's; hunk 1 is not offered there.
    let on_line_3 = client.code_actions(&uri, (2, 0), (2, 0)).await;
    let name = client.call("tether/session/get", json!({"id": id})).await["session"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    assert_eq!(
        titles(&on_line_3),
        vec![
            format!("tether: {name}: Apply hunk 0 of multi.txt"),
            format!("tether: {name}: Reject hunk 0 of multi.txt"),
        ]
    );
    assert!(titles(&client.code_actions(&uri, (8, 0), (8, 0)).await).is_empty());
    // The transcript document lists the files and their hunks.
    let transcript = env.repo().join(format!(".tether/sessions/{name}.md"));
    let text = crate::support::wait_for_file(&transcript, |text| text.contains("## Changes")).await;
    assert!(
        text.contains("- `multi.txt` (modified, +2 −2): hunk 0 (line 3), hunk 1 (line 15)"),
        "{text}"
    );

    // Apply hunk 0: only its line changes; the editor saves it.
    let apply = on_line_3
        .iter()
        .find(|action| {
            action["title"]
                .as_str()
                .is_some_and(|t| t.contains("Apply hunk 0"))
        })
        .expect("apply action")
        .clone();
    client.execute_action(&apply).await.expect("apply runs");
    let request = client.wait_for_message("workspace/applyEdit").await;
    let edits: Vec<Value> = text_edits_for(&edit_of(&request), "multi.txt")
        .into_iter()
        .cloned()
        .collect();
    let applied = apply_text_edits(&multi, &edits, false);
    assert_eq!(applied, multi.replace("line 3\n", "line three\n"));
    std::fs::write(&path, &applied).expect("save");
    assert!(titles(&client.code_actions(&uri, (2, 0), (2, 0)).await).is_empty());

    // The user changes line 15 their own way: hunk 1 is a conflict; applying it changes nothing.
    let mine = applied.replace("line 15\n", "line 15, mine\n");
    std::fs::write(&path, &mine).expect("save");
    let on_line_15 = client.code_actions(&uri, (14, 0), (14, 0)).await;
    assert_eq!(
        titles(&on_line_15),
        vec![
            format!("tether: {name}: Apply hunk 1 of multi.txt (conflicts with your edits)"),
            format!("tether: {name}: Reject hunk 1 of multi.txt"),
        ]
    );
    let apply_conflict = on_line_15
        .iter()
        .find(|action| {
            action["title"]
                .as_str()
                .is_some_and(|t| t.contains("Apply hunk 1"))
        })
        .expect("apply action")
        .clone();
    let conflicting = client.execute_action(&apply_conflict).await.expect("runs");
    assert_eq!(conflicting["sent"], false, "{conflicting}");
    assert_eq!(
        conflicting["files"][0]["conflicts"],
        json!([1]),
        "{conflicting}"
    );
    // Helix discards a command's result: why nothing applied is shown as a message.
    client
        .wait_for_message_matching("window/showMessage", |params| {
            params["type"] == 2
                && params["message"].as_str().is_some_and(|text| {
                    text.starts_with("tether: nothing to apply:")
                        && text.contains("because you changed the same lines (multi.txt #1)")
                })
        })
        .await;

    // Reject it: the agent is told, with its next message.
    let reject = on_line_15
        .iter()
        .find(|action| {
            action["title"]
                .as_str()
                .is_some_and(|t| t.contains("Reject hunk 1"))
        })
        .expect("reject action")
        .clone();
    let rejected = client.execute_action(&reject).await.expect("reject runs");
    assert_eq!(rejected["files"][0]["rejected"], json!([1]), "{rejected}");
    client
        .wait_for_message_matching("window/showMessage", |params| {
            params["type"] == 3
                && params["message"].as_str().is_some_and(|text| {
                    text.contains("hunk(s) rejected (multi.txt #1)")
                        && text.ends_with("the agent is told")
                })
        })
        .await;
    client
        .wait_for_event(&id, |event| {
            event["item"]["text"].as_str().is_some_and(|text| {
                text.contains("rejected these hunks") && text.contains("multi.txt hunk #1")
            })
        })
        .await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_edit_loses_nothing_and_a_plain_client_gets_text_edits_only() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    // No documentChanges, no resource operations.
    let mut client = server(&env, &model, capabilities(false, false)).await;
    let (id, worktree) = session_with_changes(
        &mut client,
        &model,
        &[
            ("edit_file", r##"{"path": "README.md", "old_string": "# sample\n", "new_string": "# sample\nmore\n"}"##),
            ("write_file", r#"{"path": "new.txt", "content": "fresh\n"}"#),
        ],
    )
    .await;
    client.answer_apply_edit_with(json!({"applied": false, "failureReason": "the user said no"}));
    let reply = client.call("tether/session/apply", json!({"id": id})).await;
    let new_file = reply["files"]
        .as_array()
        .and_then(|files| files.iter().find(|file| file["path"] == "new.txt"))
        .expect("new.txt");
    assert!(
        new_file["skipped"]
            .as_str()
            .is_some_and(|reason| reason.contains("cannot create files")),
        "{reply}"
    );
    let request = client.wait_for_message("workspace/applyEdit").await;
    let edit = edit_of(&request);
    assert!(edit["documentChanges"].is_null(), "{edit}");
    assert_eq!(
        edit["changes"].as_object().map(|changes| changes.len()),
        Some(1),
        "{edit}"
    );

    // Refused: the user is told, and the worktree still has everything.
    let deadline = tokio::time::Instant::now() + crate::support::lsp_client::WAIT;
    let warning = loop {
        let found = client
            .messages("window/showMessage")
            .into_iter()
            .find(|message| {
                message["params"]["message"]
                    .as_str()
                    .is_some_and(|text| text.contains("did not apply"))
            });
        if let Some(found) = found {
            break found;
        }
        assert!(tokio::time::Instant::now() < deadline, "no warning shown");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        warning["params"]["message"]
            .as_str()
            .is_some_and(|text| text.contains("the user said no") && text.contains("worktree")),
        "{warning}"
    );
    assert_eq!(
        std::fs::read_to_string(worktree.join("new.txt")).expect("still there"),
        "fresh\n"
    );
    let diff = client.call("tether/session/diff", json!({"id": id})).await;
    assert_eq!(diff["files"].as_array().map(Vec::len), Some(2));
    assert!(
        !client
            .session_events(&id)
            .iter()
            .any(|event| event["event"]["item"]["role"] == "system"),
        "nothing is recorded as applied"
    );
    client.shutdown().await;
}

/// The repository links a folder elsewhere; the session replaces the link by a real folder
/// with a file in it. Carried to the user's workspace as it is, that file would land beyond
/// the link, outside the repository: apply leaves it out and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_never_writes_through_a_link_out_of_the_users_workspace() {
    let env = TestEnv::new();
    let outside = env.home().join("linked-elsewhere");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::os::unix::fs::symlink(&outside, env.repo().join("docs")).expect("symlink");
    git(&env.repo(), &["add", "."]);
    git(&env.repo(), &["commit", "-q", "-m", "docs live elsewhere"]);
    let model = FakeModel::start().await;
    let mut client = server(&env, &model, capabilities(false, true)).await;
    let (id, _) = session_with_changes(
        &mut client,
        &model,
        &[
            (
                "run_command",
                r#"{"command": "rm docs && mkdir docs && echo planted > docs/evil.txt"}"#,
            ),
            ("write_file", r#"{"path": "fine.txt", "content": "fine\n"}"#),
        ],
    )
    .await;
    let reply = client.call("tether/session/apply", json!({"id": id})).await;
    let files = reply["files"].as_array().expect("files");
    let evil = files
        .iter()
        .find(|file| file["path"] == "docs/evil.txt")
        .expect("docs/evil.txt is in the diff");
    assert!(
        evil["skipped"]
            .as_str()
            .is_some_and(|reason| reason.contains("symbolic link")),
        "{reply}"
    );
    let request = client.wait_for_message("workspace/applyEdit").await;
    apply_workspace_edit(&edit_of(&request), false);
    assert!(
        std::fs::read_dir(&outside)
            .expect("outside")
            .next()
            .is_none(),
        "apply wrote beyond the link"
    );
    assert_eq!(
        std::fs::read_to_string(env.repo().join("fine.txt")).expect("fine.txt"),
        "fine\n"
    );
    client.shutdown().await;
}

//! Transcript documents: chat, answers and new sessions through a Markdown file, which is
//! all an editor without a plugin needs.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{
    FakeModel, Reply, TestEnv, apply_text_edits, git, last_message, names_in, wait_for_file,
};

fn uri_of(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn last_user_message(model: &FakeModel) -> String {
    model
        .requests()
        .last()
        .and_then(|request| request["messages"].as_array().cloned())
        .and_then(|messages| messages.into_iter().rev().find(|m| m["role"] == "user"))
        .and_then(|message| message["content"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_saved_under_the_reply_heading_is_sent_and_cleared() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["first answer"]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "hello there", "name": "chatty"}))
        .await;
    client.wait_for_status(&id, "waiting").await;

    let path = env.repo().join(".tether/sessions/chatty.md");
    let text = wait_for_file(&path, |text| text.contains("first answer")).await;
    assert!(text.contains("hello there"), "{text}");
    assert!(text.trim_end().ends_with("## Reply"), "{text}");
    let exclude = std::fs::read_to_string(env.repo().join(".git/info/exclude")).expect("exclude");
    assert!(
        exclude.lines().any(|line| line == "/.tether/sessions/"),
        "{exclude}"
    );
    assert_eq!(
        git(&env.repo(), &["status", "--porcelain"]),
        "",
        "transcripts never show up as changes"
    );

    // The user opens it, writes under "## Reply" and saves.
    let uri = uri_of(&path);
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "markdown", "version": 1, "text": text}}),
        )
        .await;
    let written = format!("{text}please add tests\n");
    let end_line = text.lines().count();
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
                {"range": {"start": {"line": end_line, "character": 0}, "end": {"line": end_line, "character": 0}},
                 "text": "please add tests\n"}]}),
        )
        .await;
    model.push(Reply::text(&["tests added"]));
    client
        .notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": uri}, "text": written}),
        )
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    assert_eq!(last_user_message(&model), "please add tests");

    // The open transcript is updated through the editor, as an editor would: each edit is
    // applied to the buffer and reported back. The new answer appears above the reply
    // heading, and the sent reply is cleared.
    let mut buffer = written;
    let mut version = 2;
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + crate::support::lsp_client::WAIT;
    while !buffer.contains("tests added") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the transcript never showed the answer: {buffer}"
        );
        let updates: Vec<Value> = client
            .messages("workspace/applyEdit")
            .into_iter()
            .filter(|update| {
                update["params"]["edit"]["documentChanges"][0]["textDocument"]["uri"]
                    == uri.as_str()
            })
            .collect();
        for update in &updates[seen..] {
            let change = &update["params"]["edit"]["documentChanges"][0];
            assert_eq!(change["textDocument"]["version"], version, "{update}");
            let edits = change["edits"].as_array().expect("edits");
            buffer = apply_text_edits(&buffer, edits, false);
            version += 1;
            client
                .notify(
                    "textDocument/didChange",
                    json!({"textDocument": {"uri": uri, "version": version},
                           "contentChanges": [{"text": buffer}]}),
                )
                .await;
        }
        seen = updates.len();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, reply) = buffer.rsplit_once("## Reply").expect("the reply heading");
    assert_eq!(reply.trim(), "", "the sent reply is cleared: {buffer}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checked_boxes_saved_in_the_transcript_answer_the_question() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "ask_user",
        r#"{"questions": [{"prompt": "Which colours?", "kind": "multi", "options": ["red", "green", "blue"]},
                          {"prompt": "Why?", "kind": "text"}]}"#,
    )]));
    model.push(Reply::text(&["thanks"]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "ask me", "name": "asker"}))
        .await;
    let path = env.repo().join(".tether/sessions/asker.md");
    let text = wait_for_file(&path, |text| text.contains("- [ ] green")).await;
    let answered = text
        .replacen("- [ ] red", "- [x] red", 1)
        .replacen("- [ ] blue", "- [x] blue", 1)
        .replacen("Answer: ", "Answer: they are warm", 1);
    client
        .notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": uri_of(&path)}, "text": answered}),
        )
        .await;
    client.wait_for_status(&id, "waiting").await;
    let content = last_message(model.requests().last().expect("a request"));
    assert!(
        content.contains("red") && content.contains("blue") && !content.contains("green"),
        "{content}"
    );
    assert!(content.contains("they are warm"), "{content}");
    let text = wait_for_file(&path, |text| text.contains("thanks")).await;
    assert!(!text.contains("Waiting for your answer"), "{text}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_becomes_a_draft_and_the_saved_draft_a_session() {
    let env = TestEnv::new();
    std::fs::write(
        env.repo().join("lib.rs"),
        "fn one() {}\nfn two() {}\nfn three() {}\n",
    )
    .expect("write");
    let model = FakeModel::start().await;
    model.push(Reply::text(&["on it"]));
    let mut client = env.server(&model).await;
    let file_uri = uri_of(&env.repo().join("lib.rs"));
    let actions = client.code_actions(&file_uri, (1, 0), (2, 5)).await;
    let start = actions
        .iter()
        .find(|action| action["title"] == "tether: Start a session about this selection")
        .cloned()
        .expect("the selection action");
    let opened = client
        .execute_action(&start)
        .await
        .expect("the draft opens");
    let draft = env.repo().join(".tether/sessions/new-session.md");
    assert_eq!(opened["uri"], uri_of(&draft));
    let shown = client.wait_for_message("window/showDocument").await;
    assert_eq!(shown["params"]["uri"], uri_of(&draft));
    let text = std::fs::read_to_string(&draft).expect("the draft");
    assert!(
        text.contains("lib.rs, lines 2–3") && text.contains("fn two() {}\nfn three() {}"),
        "{text}"
    );

    // Saved with a prompt (and a provider), the draft starts a session about the selection.
    assert!(text.contains("Provider: default"), "{text}");
    let text = text.replace("Provider: default", "Provider: fake");
    client
        .notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": uri_of(&draft)}, "text": format!("{text}make these async\n")}),
        )
        .await;
    let created = client
        .wait_for_message_matching("window/showDocument", |params| {
            params["uri"]
                .as_str()
                .is_some_and(|uri| !uri.ends_with("new-session.md"))
        })
        .await;
    let sessions = client.call("tether/session/list", json!({})).await;
    let session = &sessions["sessions"][0];
    assert_eq!(session["title"], "make these async");
    assert_eq!(session["provider"], "fake");
    let id = session["id"].as_str().expect("id").to_owned();
    client.wait_for_status(&id, "waiting").await;
    let prompt = model.requests()[0]["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["role"] == "user").cloned())
        .expect("the prompt");
    assert!(
        prompt["content"].as_str().is_some_and(
            |text| text.starts_with("make these async") && text.contains("fn three() {}")
        ),
        "{prompt}"
    );
    let transcript = format!("{}.md", session["name"].as_str().expect("name"));
    assert!(
        created["params"]["uri"]
            .as_str()
            .is_some_and(|uri| uri.ends_with(&transcript)),
        "{created}"
    );
    // The draft is blank again, ready for the next session.
    let blank = std::fs::read_to_string(&draft).expect("draft");
    assert!(!blank.contains("make these async"), "{blank}");

    // "Open transcript of …" shows it.
    let opened: Value = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.openTranscript", "arguments": [{"id": id}]}),
        )
        .await;
    assert!(
        opened["uri"]
            .as_str()
            .is_some_and(|uri| uri.ends_with(&transcript)),
        "{opened}"
    );
    client.shutdown().await;
}

/// A repository can commit links where transcripts go: the transcript file itself linked to a
/// file of the user's, or the whole folder linked elsewhere. Tether writes transcripts, and
/// removes those of deleted sessions, only inside the repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_are_never_written_or_removed_through_a_repositorys_links() {
    // The file itself, linked to a file of the user's.
    let env = TestEnv::new();
    let victim = env.home().join("bashrc");
    std::fs::write(&victim, "# the user's own\n").expect("write");
    std::fs::create_dir_all(env.repo().join(".tether/sessions")).expect("mkdir");
    // Both the transcript and the name of its temporary file.
    for name in ["linked.md", "linked.md.tmp"] {
        std::os::unix::fs::symlink(&victim, env.repo().join(".tether/sessions").join(name))
            .expect("symlink");
    }
    git(&env.repo(), &["add", "."]);
    git(&env.repo(), &["commit", "-q", "-m", "a trap"]);
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["EXPORT EVIL=1"]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "hello", "name": "linked"}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    let path = env.repo().join(".tether/sessions/linked.md");
    wait_for_file(&path, |text| text.contains("EXPORT EVIL=1")).await;
    assert!(
        !std::fs::symlink_metadata(&path)
            .expect("transcript")
            .file_type()
            .is_symlink(),
        "the link was replaced by the transcript, not written through"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "# the user's own\n"
    );
    client.shutdown().await;

    // The folder, linked to a folder of the user's notes.
    let env = TestEnv::new();
    let notes = env.home().join("notes");
    std::fs::create_dir_all(&notes).expect("mkdir");
    std::fs::write(notes.join("plans.md"), "mine\n").expect("write");
    std::fs::create_dir_all(env.repo().join(".tether")).expect("mkdir");
    std::os::unix::fs::symlink(&notes, env.repo().join(".tether/sessions")).expect("symlink");
    git(&env.repo(), &["add", "."]);
    git(&env.repo(), &["commit", "-q", "-m", "another trap"]);
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "hello", "name": "foldered"}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    // A deleted session makes tether tidy the transcripts folder.
    client
        .call("tether/session/delete", json!({"id": id}))
        .await;
    let (_, id) = client
        .create(json!({"prompt": "again", "name": "second"}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    client.shutdown().await;
    assert_eq!(
        names_in(&notes),
        ["plans.md"],
        "tether wrote or removed files beyond the link"
    );
    assert_eq!(
        std::fs::read_to_string(notes.join("plans.md")).expect("plans"),
        "mine\n"
    );
}

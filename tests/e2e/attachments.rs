//! Attachments: images, PDFs and text files on `create` and `send`, by path, `file:` URI or
//! base64 data; what each provider's wire carries (OpenAI content parts, Anthropic blocks);
//! kept once by hash, never in the log; every bad one refused clearly with nothing recorded.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message};

/// The smallest thing that starts like a PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR tiny image";
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n";

fn base64_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The files in the repository's state folder's `attachments/`.
fn stored(env: &TestEnv) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(repos) = std::fs::read_dir(env.home().join("state/repos")) else {
        return found;
    };
    for repo in repos.flatten() {
        if let Ok(files) = std::fs::read_dir(repo.path().join("attachments")) {
            found.extend(files.flatten().map(|file| file.path()));
        }
    }
    found
}

fn user_content(request: &Value) -> Value {
    request["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .map(|message| message["content"].clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_pdfs_and_text_reach_an_openai_model_as_content_parts() {
    let env = TestEnv::new();
    std::fs::write(env.repo().join("notes.md"), "remember: tabs, not spaces\n").expect("write");
    let pdf = env.home().join("spec sheet.pdf");
    std::fs::write(&pdf, PDF).expect("write");
    let model = FakeModel::start().await;
    model.push(Reply::text(&["I see a tiny image"]));
    model.push(Reply::text(&["the same image again"]));
    let mut client = env.server(&model).await;
    let (info, id) = client
        .create(json!({
            "prompt": "what is in these?",
            "name": "looking",
            "attachments": [
                {"data": base64_of(PNG), "mimeType": "image/png", "name": "shot.png"},
                {"path": "notes.md"},
                {"uri": format!("file://{}", pdf.display().to_string().replace(' ', "%20"))},
            ],
        }))
        .await;
    assert_eq!(info["name"], "looking");
    client.wait_for_status(&id, "waiting").await;

    let content = user_content(&model.requests()[0]);
    let parts = content.as_array().expect("content parts");
    assert_eq!(parts[0]["type"], "text");
    let text = parts[0]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("what is in these?")
            && text.contains("Attached file `notes.md`:\n```\nremember: tabs, not spaces\n```"),
        "{text}"
    );
    assert_eq!(parts[1]["type"], "image_url");
    assert_eq!(
        parts[1]["image_url"]["url"],
        format!("data:image/png;base64,{}", base64_of(PNG))
    );
    assert_eq!(parts[2]["type"], "file");
    assert_eq!(parts[2]["file"]["filename"], "spec sheet.pdf");
    assert_eq!(
        parts[2]["file"]["file_data"],
        format!("data:application/pdf;base64,{}", base64_of(PDF))
    );

    // The log names them; the bytes are in the state folder, once each.
    let message = client
        .session_events(&id)
        .into_iter()
        .find(|params| params["event"]["item"]["role"] == "user")
        .expect("the prompt");
    let attached = message["event"]["item"]["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = attached
        .iter()
        .filter_map(|file| file["name"].as_str())
        .collect();
    assert_eq!(names, ["shot.png", "notes.md", "spec sheet.pdf"]);
    assert_eq!(attached[0]["size"], PNG.len());
    assert_eq!(attached[1]["mimeType"], "text/markdown");
    assert_eq!(stored(&env).len(), 3);
    for log in env.log_files() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!text.contains(&base64_of(PNG)), "no bytes in {log:?}");
    }

    // The same image on a follow-up is kept once; the model gets it again, and the first
    // turn's attachments stay in the conversation it is sent.
    client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "and this?", "attachments": [
                {"data": base64_of(PNG), "mimeType": "image/png"}
            ]}),
        )
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    assert_eq!(stored(&env).len(), 3, "one copy of the same bytes");
    let request = &model.requests()[1];
    let images = request.to_string().matches("data:image/png;base64").count();
    assert_eq!(images, 2, "the first message's image and the new one");

    // Exports and transcripts list them.
    let exported = client
        .call("tether/session/export", json!({"id": id}))
        .await;
    let text = exported["content"].as_str().unwrap_or_default();
    assert!(
        text.contains("- Attached: `shot.png` (image/png, 27 B)")
            && text.contains("- Attached: `spec sheet.pdf` (application/pdf"),
        "{text}"
    );
    // A thumbnail's bytes, by hash.
    let got = client
        .call(
            "tether/session/attachment",
            json!({"id": id, "sha256": attached[0]["sha256"]}),
        )
        .await;
    assert_eq!(got["data"], base64_of(PNG));
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_model_gets_image_and_document_blocks() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::anthropic_text("a picture and a PDF"));
    let mut client = LspClient::spawn_with_env(
        env.home(),
        &[("TETHER_TEST_ANTHROPIC_KEY", "sk-ant-test-attachments")],
    )
    .await;
    let settings = model.anthropic_settings();
    client.initialize(&env.repo(), settings, true).await;
    let (_, id) = client
        .create(json!({"prompt": "describe", "attachments": [
            {"data": base64_of(PNG), "mimeType": "image/png"},
            {"data": base64_of(PDF), "mimeType": "application/pdf", "name": "a.pdf"},
        ]}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    let mut blocks = user_content(&model.requests()[0]);
    // The last block carries the prompt-cache breakpoint; the rest is what is checked here.
    if let Some(last) = blocks.as_array_mut().and_then(|blocks| blocks.last_mut()) {
        assert_eq!(last["cache_control"], json!({"type": "ephemeral"}));
        last.as_object_mut()
            .map(|last| last.remove("cache_control"));
    }
    assert_eq!(blocks[0], json!({"type": "text", "text": "describe"}));
    assert_eq!(
        blocks[1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64_of(PNG)}})
    );
    assert_eq!(
        blocks[2],
        json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": base64_of(PDF)}})
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_attachments_are_refused_clearly_and_nothing_is_recorded() {
    let env = TestEnv::new();
    let big = env.home().join("big.png");
    let mut bytes = PNG.to_vec();
    bytes.resize(6 * 1024 * 1024, 0);
    std::fs::write(&big, &bytes).expect("write");
    std::fs::write(env.repo().join("archive.zip"), b"PK\x03\x04").expect("write");
    std::fs::write(env.repo().join("binary.txt"), b"\xff\xfe\x00text").expect("write");
    let model = FakeModel::start().await;
    model.push(Reply::text(&["hello"]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "hi"})).await;
    client.wait_for_status(&id, "waiting").await;
    let events_before = client.session_events(&id).len();
    let png = base64_of(PNG);
    let eleven: Vec<Value> = (0..11)
        .map(|_| json!({"data": png, "mimeType": "image/png"}))
        .collect();
    for (attachments, words) in [
        (json!([{"path": "missing.png"}]), "cannot read"),
        (
            json!([{"path": big.display().to_string()}]),
            "6.0 MB is more than",
        ),
        (
            json!([{"path": "archive.zip", "mimeType": "application/zip"}]),
            "is not a type Tether attaches",
        ),
        (json!([{"path": "archive.zip"}]), "say its mimeType"),
        (json!([{"path": "binary.txt"}]), "not UTF-8 text"),
        (json!([{"data": png}]), "data needs a mimeType"),
        (
            json!([{"data": "not base64!", "mimeType": "image/png"}]),
            "not base64",
        ),
        (
            json!([{"data": base64_of(b"GIF89a..."), "mimeType": "image/png"}]),
            "not a image/png image",
        ),
        (
            json!([{"data": png, "path": "a.png", "mimeType": "image/png"}]),
            "exactly one of",
        ),
        (
            json!([{"uri": "https://example.com/a.png"}]),
            "is not a file: URI",
        ),
        (
            json!([{"data": png, "mimeType": "image/svg+xml"}]),
            "is not a type",
        ),
        (json!(eleven), "at most 10"),
    ] {
        let error = client
            .call_err(
                "tether/session/send",
                json!({"id": id, "text": "look", "attachments": attachments}),
            )
            .await;
        assert_eq!(error["code"], -32602, "{attachments}: {error}");
        assert!(
            error_message(&error).contains(words),
            "{words:?} for {attachments}: {error}"
        );
    }
    assert_eq!(
        client.session_events(&id).len(),
        events_before,
        "nothing recorded"
    );
    assert!(stored(&env).is_empty(), "nothing kept: {:?}", stored(&env));

    client.shutdown().await;

    // A provider that takes no images refuses them at once, naming itself.
    let mut settings = model.settings();
    settings["providers"]["fake"]["vision"] = json!(false);
    let mut client = env.server_with(settings).await;
    let refused = client
        .call_err(
            "tether/session/create",
            json!({"prompt": "look", "attachments": [{"data": png, "mimeType": "image/png"}]}),
        )
        .await;
    assert!(
        error_message(&refused).contains("provider \"fake\" takes no images"),
        "{refused}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_line_in_a_saved_transcript_reply_attaches_that_file_even_to_a_stopped_session() {
    let env = TestEnv::new();
    std::fs::write(env.repo().join("notes.md"), "the plan\n").expect("write");
    let model = FakeModel::start().await;
    model.push(Reply::text(&["first"]));
    model.push(Reply::text(&["read your notes"]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "hello", "name": "noted"}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    client.call("tether/session/stop", json!({"id": id})).await;
    let path = env.repo().join(".tether/sessions/noted.md");
    let text = crate::support::wait_for_file(&path, |text| text.contains("first")).await;
    client
        .notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": format!("file://{}", path.display())},
                   "text": format!("{text}what do you make of these?\nAttach: notes.md\n")}),
        )
        .await;
    client
        .wait_for_event(&id, |event| event["item"]["text"] == "read your notes")
        .await;
    let content = user_content(model.requests().last().expect("a request"));
    let text = content.as_str().unwrap_or_default();
    assert!(
        text.starts_with("what do you make of these?")
            && text.contains("Attached file `notes.md`:\n```\nthe plan\n```")
            && !text.contains("Attach:"),
        "{content}"
    );
    client.shutdown().await;
}

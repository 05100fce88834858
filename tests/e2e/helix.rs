//! Helix: its `languages.toml` and guide are right, and the guide's whole session runs with
//! only what Helix 25.07 has (no custom notifications, code actions, `executeCommand`,
//! `applyEdit`, pushed diagnostics, didOpen/didChange/didSave), and so does a task raced
//! from the draft and promoted by a code action on its document.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, last_message};
use crate::tasks::{race_settings, three_models};

fn helix_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../editors/helix")
}

/// What Helix 25.07 tells a server it can do (the parts that matter here).
pub(crate) fn helix_capabilities() -> Value {
    json!({
        "general": {"positionEncodings": ["utf-8", "utf-32", "utf-16"]},
        "window": {"workDoneProgress": true},
        "workspace": {
            "applyEdit": true,
            "workspaceEdit": {"documentChanges": true, "resourceOperations": ["create", "rename", "delete"]},
            "executeCommand": {"dynamicRegistration": false}
        },
        "textDocument": {"codeAction": {}, "publishDiagnostics": {}}
    })
}

#[test]
fn the_languages_file_runs_tether_beside_each_languages_servers_and_for_markdown() {
    let text = std::fs::read_to_string(helix_dir().join("languages.toml")).expect("read");
    let parsed: toml::Table = toml::from_str(&text).expect("languages.toml parses");
    let server = &parsed["language-server"]["tether"];
    assert_eq!(server["command"].as_str(), Some("tether"));
    assert_eq!(
        server["args"].as_array().map(|args| args.len()),
        Some(1),
        "{server:?}"
    );
    assert_eq!(server["args"][0].as_str(), Some("lsp"));
    let languages = parsed["language"].as_array().expect("[[language]]");
    let names: Vec<&str> = languages
        .iter()
        .filter_map(|language| language["name"].as_str())
        .collect();
    for wanted in ["markdown", "rust", "python", "typescript", "go"] {
        assert!(names.contains(&wanted), "{wanted} in {names:?}");
    }
    for language in languages {
        let servers: Vec<&str> = language["language-servers"]
            .as_array()
            .expect("language-servers")
            .iter()
            .filter_map(|server| server.as_str())
            .collect();
        assert!(
            servers.contains(&"tether") && servers.len() >= 2,
            "{language:?}: tether beside the language's own servers"
        );
    }
}

/// The `tether.*` commands the guide names.
fn commands_in_guide() -> Vec<String> {
    let guide = std::fs::read_to_string(helix_dir().join("README.md")).expect("read");
    let mut commands: Vec<String> = guide
        .split('`')
        .filter_map(|span| {
            span.split_whitespace()
                .find(|word| word.starts_with("tether."))
        })
        .map(str::to_owned)
        .collect();
    commands.sort();
    commands.dedup();
    commands
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_session_runs_with_what_helix_has() {
    let env = TestEnv::new();
    std::fs::write(env.repo().join("lib.rs"), "fn one() {}\n").expect("write");
    crate::support::git(&env.repo(), &["add", "."]);
    crate::support::git(&env.repo(), &["commit", "-q", "-m", "lib"]);
    let model = FakeModel::start().await;
    let mut client = LspClient::spawn(env.home()).await;
    let init = client
        .initialize_with(&env.repo(), model.settings(), helix_capabilities())
        .await;

    // Every command the guide names is one the server advertises.
    let advertised: Vec<&str> = init["capabilities"]["executeCommandProvider"]["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let named = commands_in_guide();
    assert!(named.len() >= 3, "{named:?}");
    for command in &named {
        assert!(
            advertised.contains(&command.as_str()),
            "{command} is advertised"
        );
    }
    assert_eq!(init["capabilities"]["positionEncoding"], "utf-8");

    // 1. Start: `:lsp-workspace-command tether.newSession` (no arguments), write the prompt,
    //    `:write`.
    let opened = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.newSession"}),
        )
        .await;
    let draft_uri = opened["uri"].as_str().expect("draft uri").to_owned();
    let draft_path = draft_uri.trim_start_matches("file://").to_owned();
    let draft = std::fs::read_to_string(&draft_path).expect("the draft");
    model.push(Reply::tool_calls(&[(
        "edit_file",
        r#"{"path": "lib.rs", "old_string": "fn one() {}", "new_string": "fn one() -> u8 { 1 }"}"#,
    )]));
    model.push(Reply::text(&["done"]));
    let written = format!("{draft}make one return 1\n");
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": draft_uri, "languageId": "markdown", "version": 1, "text": draft}}),
        )
        .await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": draft_uri, "version": 2}, "contentChanges": [{"text": written}]}),
        )
        .await;
    client
        .notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": draft_uri}, "text": written}),
        )
        .await;

    // 2. Watch: progress reaches the status line; the session settles.
    client.wait_for_message("$/progress").await;
    let listed = loop {
        let listed = client
            .call(
                "workspace/executeCommand",
                json!({"command": "tether.list"}),
            )
            .await;
        if listed["sessions"][0]["status"] == "waiting" {
            break listed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    let name = listed["sessions"][0]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    assert!(
        client.messages("tether/session/event").is_empty(),
        "Helix gets no custom notifications"
    );

    // 6. Apply: `space a` → "Apply changes of <session>", into the open buffer.
    let lib_uri = format!("file://{}", env.repo().join("lib.rs").display());
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": lib_uri, "languageId": "rust", "version": 1, "text": "fn one() {}\n"}}),
        )
        .await;
    let actions = client.code_actions(&lib_uri, (0, 0), (0, 0)).await;
    let apply = actions
        .iter()
        .find(|action| action["title"] == format!("tether: Apply changes of {name}").as_str())
        .cloned()
        .expect("the apply action");
    client.execute_action(&apply).await.expect("apply");
    let edit = client
        .wait_for_message_matching("workspace/applyEdit", |params| {
            params["edit"]["documentChanges"][0]["textDocument"]["uri"] == lib_uri.as_str()
        })
        .await;
    let change = &edit["params"]["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"]["version"], 1);
    let edits = change["edits"].as_array().expect("edits");
    assert_eq!(
        crate::support::apply_text_edits("fn one() {}\n", edits, true),
        "fn one() -> u8 { 1 }\n"
    );

    // 4. Reply in the transcript and `:write`.
    let transcript = env.repo().join(format!(".tether/sessions/{name}.md"));
    let transcript_uri = format!("file://{}", transcript.display());
    let text = std::fs::read_to_string(&transcript).expect("the transcript");
    model.push(Reply::text(&["you are welcome"]));
    client
        .notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": transcript_uri}, "text": format!("{text}thanks\n")}),
        )
        .await;
    loop {
        let requests = model.requests();
        if requests.len() == 3 {
            let last = requests.last().expect("a request");
            let said = last_message(last);
            assert!(said.ends_with("thanks"), "{said}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    // Trusting hooks takes no arguments either.
    let trusted = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.trust"}),
        )
        .await;
    assert!(trusted["trusted"].is_string(), "{trusted}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_helix_a_draft_naming_two_providers_races_them_and_a_code_action_promotes_one() {
    let env = TestEnv::new();
    let repo = env.repo();
    env.identify_user();
    let (alpha, beta, gamma) = three_models().await;
    for (model, text) in [(&alpha, "from alpha\n"), (&beta, "from beta\n")] {
        model.push(Reply::tool_calls(&[(
            "write_file",
            &json!({"path": "notes.txt", "content": text}).to_string(),
        )]));
        model.push(Reply::text(&["done"]));
    }
    let mut settings = race_settings(&alpha, &beta, &gamma);
    settings["review"] = json!({"auto": false});
    let mut client = LspClient::spawn(env.home()).await;
    client
        .initialize_with(&repo, settings, helix_capabilities())
        .await;

    // The guide's way: the draft, with two providers on its `Provider:` line.
    let opened = client
        .call(
            "workspace/executeCommand",
            json!({"command": "tether.newSession"}),
        )
        .await;
    let draft_uri = opened["uri"].as_str().expect("draft uri").to_owned();
    let draft = std::fs::read_to_string(draft_uri.trim_start_matches("file://")).expect("draft");
    let written = format!(
        "{}write notes\n",
        draft.replace("Provider: default", "Provider: alpha, beta")
    );
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": draft_uri, "languageId": "markdown", "version": 1, "text": written}}),
        )
        .await;
    client
        .notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": draft_uri}, "text": written}),
        )
        .await;
    let shown = client
        .wait_for_message_matching("window/showDocument", |params| {
            params["uri"]
                .as_str()
                .is_some_and(|uri| uri.contains("/.tether/tasks/"))
        })
        .await;
    let document_uri = shown["params"]["uri"].as_str().expect("uri").to_owned();
    let document_path = PathBuf::from(document_uri.trim_start_matches("file://"));
    let listed = loop {
        let listed = client
            .call(
                "workspace/executeCommand",
                json!({"command": "tether.taskList"}),
            )
            .await;
        if listed["tasks"][0]["status"] == "done" {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let task = &listed["tasks"][0];
    assert_eq!(
        task["trials"]
            .as_array()
            .expect("trials")
            .iter()
            .map(|trial| trial["provider"].clone())
            .collect::<Vec<_>>(),
        [json!("alpha"), json!("beta")]
    );
    // The document follows the task: both trials, and where they differ.
    let settled = crate::support::processes::eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&document_path)
            .is_ok_and(|text| text.contains("| 2 | beta/beta-model | waiting |"))
    })
    .await;
    assert!(
        settled,
        "{}",
        std::fs::read_to_string(&document_path).unwrap_or_default()
    );
    assert!(
        client.messages("tether/task/event").is_empty(),
        "Helix gets no custom notifications"
    );

    // `space a` on the document: promote trial 2 by merge.
    let actions = client.code_actions(&document_uri, (0, 0), (0, 0)).await;
    let merge = actions
        .iter()
        .find(|action| {
            action["title"] == "tether: Promote trial 2 (beta/beta-model): merge into main"
        })
        .unwrap_or_else(|| panic!("no merge action in {actions:#?}"))
        .clone();
    client.execute_action(&merge).await.expect("promoted");
    assert_eq!(
        std::fs::read_to_string(repo.join("notes.txt")).expect("merged"),
        "from beta\n"
    );
    // The promoted task offers no more promotions.
    let after = client.code_actions(&document_uri, (0, 0), (0, 0)).await;
    assert!(
        after.iter().all(|action| !action["title"]
            .as_str()
            .is_some_and(|title| title.contains("Promote"))),
        "{after:#?}"
    );
    client.shutdown().await;
}

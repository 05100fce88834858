//! Real ACP agents as session back ends, installed from npm by scripts/acp-agents.sh: Claude
//! Code's ACP adapter pointed at a scripted Anthropic server, and Qwen Code (chosen as the
//! second agent because it speaks ACP and talks to any OpenAI-compatible server, which the
//! tests' fake model is) pointed at the scripted OpenAI server. Both on 127.0.0.1 only.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::processes::eventually;
use crate::support::{
    FakeModel, LspClient, Reply, TestEnv, agent_said, apply_text_edits, changed_paths,
    completed_items, diff_paths, running,
};

/// The folder holding the agents' programs (`TETHER_ACP_AGENTS`, else the script's cache).
fn agents_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TETHER_ACP_AGENTS") {
        return PathBuf::from(path);
    }
    let bin = PathBuf::from(std::env::var_os("HOME").expect("HOME"))
        .join(".cache/tether/acp-agents/node_modules/.bin");
    assert!(
        bin.join("claude-agent-acp").exists(),
        "the real ACP agents are not installed; run scripts/acp-agents.sh install"
    );
    bin
}

/// Settings whose default provider is Claude Code's ACP adapter, talking to `model`, with
/// its home (and so its state) in the test's folder.
fn claude_settings(env: &TestEnv, model: &FakeModel, permission_mode: &str) -> Value {
    let home = env.home().join("agent-home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let mut settings = model.settings();
    settings["default_provider"] = json!("claude");
    settings["session"] = json!({"permission_mode": permission_mode});
    settings["providers"]["claude"] = json!({
        "kind": "acp",
        "command": agents_bin().join("claude-agent-acp"),
        "state_dirs": ["~/.claude", "~/.config", "~/.cache"],
        "modes": {"ask": "default", "auto": "acceptEdits", "read-only": "plan"},
        "timeout_secs": 60,
        "env": {
            "HOME": home,
            "ANTHROPIC_BASE_URL": format!("http://127.0.0.1:{}", model.port),
            "ANTHROPIC_API_KEY": "sk-ant-test-not-a-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
            // Claude Code refuses some modes as root unless it is told it is sandboxed,
            // which it is: Tether's Landlock jail.
            "IS_SANDBOX": "1",
        },
    });
    settings
}

/// A fake Anthropic server for Claude Code: the script answers its agent turns (the ones
/// with tools); side requests (a title) get a short text.
async fn claude_model() -> FakeModel {
    let model = FakeModel::start().await;
    model.script_only(
        |body| {
            body["tools"]
                .as_array()
                .is_some_and(|tools| !tools.is_empty())
        },
        Reply::anthropic_text("Notes"),
    );
    model.hold_until_pushed();
    model
}

fn worktree_of(info: &Value) -> PathBuf {
    PathBuf::from(info["worktree"].as_str().expect("worktree"))
}

fn said(client: &LspClient, id: &str) -> String {
    agent_said(&client.session_events(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real agents scripts/acp-agents.sh installs; scripts/test.sh runs it"]
async fn claude_code_writes_edits_runs_and_is_applied_into_an_open_buffer() {
    let env = TestEnv::new();
    let model = claude_model().await;
    let settings = claude_settings(&env, &model, "auto");
    let mut client = LspClient::spawn(env.home()).await;
    client
        .initialize_with(
            &env.repo(),
            settings,
            json!({"experimental": {"tether": true},
                   "workspace": {"workspaceEdit": {"documentChanges": true,
                       "resourceOperations": ["create", "rename", "delete"]}}}),
        )
        .await;
    // The user has README.md open.
    let readme_uri = format!("file://{}", env.repo().join("README.md").display());
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": readme_uri, "languageId": "markdown", "version": 1,
                   "text": "# sample\n"}}),
        )
        .await;
    let (info, id) = client
        .create(json!({"prompt": "Write notes, fix the readme, and check"}))
        .await;
    let worktree = worktree_of(&info);
    let notes = worktree.join("notes.txt");
    let readme = worktree.join("README.md");
    model.push(Reply::anthropic_tool(
        "toolu_1",
        "Write",
        json!({"file_path": notes, "content": "one\n"}),
    ));
    model.push(Reply::anthropic_tool(
        "toolu_2",
        "Read",
        json!({"file_path": readme}),
    ));
    model.push(Reply::anthropic_tool(
        "toolu_3",
        "Edit",
        json!({"file_path": readme, "old_string": "# sample", "new_string": "# sample, by Claude"}),
    ));
    model.push(Reply::anthropic_tool(
        "toolu_4",
        "Bash",
        json!({"command": "echo ran > ran.txt && cat notes.txt", "description": "Check"}),
    ));
    model.push(Reply::anthropic_text("All done."));
    client.wait_for_status(&id, "waiting").await;

    assert_eq!(std::fs::read_to_string(&notes).expect("notes.txt"), "one\n");
    assert_eq!(
        std::fs::read_to_string(&readme).expect("README.md"),
        "# sample, by Claude\n"
    );
    assert_eq!(
        std::fs::read_to_string(worktree.join("ran.txt")).expect("ran.txt"),
        "ran\n"
    );
    assert!(
        said(&client, &id).contains("All done."),
        "{}",
        said(&client, &id)
    );
    let tools = completed_items(&client.session_events(&id), "toolCall");
    assert_eq!(tools.len(), 4, "{tools:#?}");
    assert!(
        tools.iter().all(|tool| tool["status"] == "completed"),
        "{tools:#?}"
    );
    // The command's output is in its item (`cat notes.txt` printed "one").
    assert!(
        tools[3]["output"]
            .as_str()
            .is_some_and(|output| output.contains("one")),
        "{:#?}",
        tools[3]
    );
    assert_eq!(
        changed_paths(&client.session_events(&id)),
        ["README.md", "notes.txt", "ran.txt"]
    );
    let diff = client.call("tether/session/diff", json!({"id": id})).await;
    assert_eq!(diff_paths(&diff), ["README.md", "notes.txt", "ran.txt"]);

    // Apply: the open buffer gets a text edit; the new files are created.
    client.call("tether/session/apply", json!({"id": id})).await;
    let request = client.wait_for_message("workspace/applyEdit").await;
    let changes = request["params"]["edit"]["documentChanges"]
        .as_array()
        .expect("documentChanges")
        .clone();
    let readme_edit = changes
        .iter()
        .find(|change| change["textDocument"]["uri"] == readme_uri)
        .expect("an edit of the open README.md");
    assert_eq!(readme_edit["textDocument"]["version"], 1);
    let edits = readme_edit["edits"].as_array().expect("edits");
    assert_eq!(
        apply_text_edits("# sample\n", edits, false),
        "# sample, by Claude\n"
    );
    assert!(
        changes.iter().any(|change| change["kind"] == "create"
            && change["uri"]
                .as_str()
                .is_some_and(|uri| uri.ends_with("/notes.txt"))),
        "{changes:#?}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real agents scripts/acp-agents.sh installs; scripts/test.sh runs it"]
async fn claude_code_asks_permission_through_tether_and_stops_mid_command() {
    let env = TestEnv::new();
    let model = claude_model().await;
    let mut client = env.server_with(claude_settings(&env, &model, "ask")).await;
    let (info, id) = client.create(json!({"prompt": "Run the long job"})).await;
    let worktree = worktree_of(&info);
    model.push(Reply::anthropic_tool(
        "toolu_1",
        "Bash",
        json!({"command": "echo $$ > job.pid; sleep 300", "description": "Long job"}),
    ));
    model.push(Reply::anthropic_text("Finished."));
    // Claude Code asks (its mode is "default" in ask mode); Tether puts it to the user.
    let asked = client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "started"
                && event["item"]["type"] == "permission"
        })
        .await;
    let item = asked["event"]["item"].clone();
    assert!(
        item["tool"]
            .as_str()
            .is_some_and(|tool| tool.contains("sleep 300")),
        "{item}"
    );
    assert!(
        !worktree.join("job.pid").exists(),
        "nothing runs before the user allows it"
    );
    client
        .call(
            "tether/session/answer",
            json!({"id": id, "questionId": item["id"], "answers": ["allow_once"]}),
        )
        .await;
    let pidfile = worktree.join("job.pid");
    // The file exists a moment before the shell writes its pid into it.
    let read_pid =
        || -> Option<i32> { std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok() };
    assert!(
        eventually(Duration::from_secs(30), || read_pid().is_some()).await,
        "the allowed command ran"
    );
    let pid = read_pid().expect("a pid");
    assert!(running(pid));
    client.call("tether/session/stop", json!({"id": id})).await;
    client.wait_for_status(&id, "stopped").await;
    assert!(
        eventually(Duration::from_secs(10), || !running(pid)).await,
        "the agent's command outlived the stop"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real agents scripts/acp-agents.sh installs; scripts/test.sh runs it"]
async fn qwen_code_runs_a_session_against_an_openai_compatible_server() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    // Qwen Code's own side requests (its memory agent) are not part of the script.
    model.script_only(
        |body| {
            body["tools"].as_array().is_some_and(|tools| {
                tools
                    .iter()
                    .any(|tool| tool["function"]["name"] == "exit_plan_mode")
            })
        },
        Reply::text(&["nothing to remember"]),
    );
    model.hold_until_pushed();
    let home = env.home().join("agent-home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let mut settings = model.settings();
    settings["default_provider"] = json!("qwen");
    settings["providers"]["qwen"] = json!({
        "kind": "acp",
        "command": agents_bin().join("qwen"),
        "args": ["--acp"],
        "state_dirs": ["~/.qwen", "~/.cache", "~/.config"],
        "timeout_secs": 60,
        "env": {
            "HOME": home,
            "OPENAI_BASE_URL": model.base_url(),
            "OPENAI_API_KEY": "sk-test-not-a-key",
            "OPENAI_MODEL": "fake-model",
        },
    });
    let mut client = env.server_with(settings).await;
    let (info, id) = client.create(json!({"prompt": "Write hello.txt"})).await;
    let worktree = worktree_of(&info);
    let hello = worktree.join("hello.txt");
    model.push(Reply::tool_calls(&[(
        "write_file",
        &json!({"file_path": hello, "content": "hello from qwen\n"}).to_string(),
    )]));
    model.push(Reply::text(&["Wrote ", "it."]));
    client.wait_for_status(&id, "waiting").await;
    assert_eq!(
        std::fs::read_to_string(&hello).expect("hello.txt"),
        "hello from qwen\n"
    );
    assert!(
        said(&client, &id).contains("Wrote it."),
        "{}",
        said(&client, &id)
    );
    let changed: Vec<String> = completed_items(&client.session_events(&id), "fileChange")
        .iter()
        .filter_map(|change| change["path"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(changed, ["hello.txt"]);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real agents scripts/acp-agents.sh installs; scripts/test.sh runs it"]
async fn claude_code_uses_the_sessions_mcp_server() {
    let env = TestEnv::new();
    let model = claude_model().await;
    let mut settings = claude_settings(&env, &model, "auto");
    // The server runs in the agent's sandbox: its log goes where the agent may write.
    let log = env.home().join("agent-home/.cache/notes.log");
    settings["mcp_servers"] = json!([{
        "name": "notes",
        "command": std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/mcp/notes_server.py")
            .canonicalize()
            .expect("notes server"),
        "env": {"NOTES_SERVER_LOG": log},
    }]);
    let mut client = env.server_with(settings).await;
    let (_, id) = client.create(json!({"prompt": "Shout hello"})).await;
    model.push(Reply::anthropic_tool(
        "toolu_1",
        "mcp__notes__shout",
        json!({"text": "hello from claude"}),
    ));
    model.push(Reply::anthropic_text("Shouted."));
    client.wait_for_status(&id, "waiting").await;
    let calls: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|message: &Value| message["method"] == "tools/call")
        .collect();
    assert_eq!(
        calls.len(),
        1,
        "Claude Code called the session's MCP server once"
    );
    assert_eq!(calls[0]["params"]["arguments"]["text"], "hello from claude");
    // The tool's answer went back to the model.
    let answered = model
        .requests()
        .iter()
        .any(|request| request.to_string().contains("HELLO FROM CLAUDE"));
    assert!(answered, "the MCP result reached the model");
    assert!(said(&client, &id).contains("Shouted."));
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real agents scripts/acp-agents.sh installs; scripts/test.sh runs it"]
async fn claude_code_races_tethers_own_agent_in_a_task_and_is_merged() {
    let env = TestEnv::new();
    env.identify_user();
    let claude = claude_model().await;
    let own = FakeModel::start().await;
    own.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "notes.txt", "content": "from tether\n"}"#,
    )]));
    own.push(Reply::text(&["done"]));
    let mut settings = claude_settings(&env, &claude, "auto");
    settings["providers"]["fake"]["base_url"] = json!(own.base_url());
    let mut client = LspClient::spawn(env.home()).await;
    client.initialize(&env.repo(), settings, true).await;
    let task = client
        .call(
            "tether/task/create",
            json!({"prompt": "Write notes", "name": "race",
                   "trials": [{"provider": "claude"}, {"provider": "fake"}]}),
        )
        .await;
    let id = task["id"].as_str().expect("id").to_owned();
    let claude_trial = task["trials"][0]["sessionId"]
        .as_str()
        .expect("id")
        .to_owned();
    let info = client
        .call("tether/session/get", json!({"id": claude_trial}))
        .await;
    let notes = worktree_of(&info["session"]).join("notes.txt");
    claude.push(Reply::anthropic_tool(
        "toolu_1",
        "Write",
        json!({"file_path": notes, "content": "from claude\n"}),
    ));
    claude.push(Reply::anthropic_text("Wrote the notes."));
    let settled = eventually(Duration::from_secs(90), || {
        std::fs::read_to_string(&notes).is_ok_and(|text| text == "from claude\n")
    })
    .await;
    assert!(settled, "Claude Code wrote its notes");
    let task = loop {
        let task = client.call("tether/task/get", json!({"id": id})).await;
        if task["status"] == "done" {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(task["trials"][0]["provider"], "claude", "{task:#}");
    assert_eq!(task["trials"][0]["filesChanged"], 1, "{task:#}");
    assert_eq!(task["trials"][1]["filesChanged"], 1, "{task:#}");
    let compared = client.call("tether/task/compare", json!({"id": id})).await;
    assert_eq!(
        compared["files"][0]["agreement"], "different",
        "{compared:#}"
    );
    client
        .call(
            "tether/task/promote",
            json!({"id": id, "sessionId": claude_trial, "how": "merge", "reason": "Claude's notes"}),
        )
        .await;
    assert_eq!(
        std::fs::read_to_string(env.repo().join("notes.txt")).expect("merged into main"),
        "from claude\n"
    );
    client.shutdown().await;
}

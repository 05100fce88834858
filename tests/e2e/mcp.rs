//! MCP servers (issue 13): a real MCP server process (tests/mcp/notes_server.py) whose tools
//! Tether's own agent calls as `mcp__<server>__<tool>`, inside the session's sandbox, with
//! hangs and nonsense turned into tool errors; the same server handed to an ACP agent; a
//! server that cannot start, and a repository's servers before it is trusted.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, completed_items};

fn notes_server() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/mcp/notes_server.py")
        .canonicalize()
        .expect("the notes server exists")
        .display()
        .to_string()
}

fn system_messages(client: &LspClient, id: &str) -> Vec<String> {
    completed_items(&client.session_events(id), "message")
        .iter()
        .filter(|item| item["role"] == "system")
        .filter_map(|item| item["text"].as_str().map(str::to_owned))
        .collect()
}

fn tool_named<'a>(tools: &'a [Value], name: &str) -> Vec<&'a Value> {
    tools.iter().filter(|tool| tool["tool"] == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tethers_agent_calls_an_mcp_servers_tools_in_the_sandbox() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let outside = env.home().join("outside.txt");
    let outside_args = json!({"path": outside, "text": "escaped"}).to_string();
    model.push(Reply::tool_calls(&[
        ("mcp__notes__shout", r#"{"text": "hello"}"#),
        (
            "mcp__notes__write_note",
            r#"{"path": "note.txt", "text": "noted"}"#,
        ),
        ("mcp__notes__write_note", &outside_args),
        ("mcp__notes__hang", "{}"),
        ("mcp__notes__broken", "{}"),
    ]));
    model.push(Reply::text(&["done"]));
    let mut settings = model.settings();
    settings["session"] = json!({"command_timeout_secs": 2});
    settings["mcp_servers"] = json!([{"name": "notes", "command": notes_server()}]);
    let mut client = env.server_with(settings).await;
    let (info, id) = client.create(json!({"prompt": "use the notes"})).await;
    client.wait_for_status(&id, "waiting").await;

    // The model was offered the server's tools beside Tether's own.
    let offered: Vec<String> = model.requests()[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|tool| tool["function"]["name"].as_str().map(str::to_owned))
        .collect();
    for name in ["mcp__notes__shout", "mcp__notes__write_note", "read_file"] {
        assert!(offered.contains(&name.to_owned()), "{name}: {offered:?}");
    }
    let tools = completed_items(&client.session_events(&id), "toolCall");
    let shout = tool_named(&tools, "mcp__notes__shout");
    assert_eq!(shout[0]["status"], "completed");
    assert_eq!(shout[0]["output"], "HELLO");
    let writes = tool_named(&tools, "mcp__notes__write_note");
    assert_eq!(writes[0]["status"], "completed", "{:?}", writes[0]);
    // The server runs in the worktree, and in the session's sandbox: nothing outside.
    let worktree = Path::new(info["worktree"].as_str().expect("worktree"));
    assert_eq!(
        std::fs::read_to_string(worktree.join("note.txt")).expect("note.txt"),
        "noted"
    );
    assert_eq!(writes[1]["status"], "failed", "{:?}", writes[1]);
    assert!(
        !outside.exists(),
        "an MCP server wrote outside the worktree"
    );
    let hang = tool_named(&tools, "mcp__notes__hang");
    assert_eq!(hang[0]["status"], "failed");
    assert!(
        hang[0]["output"]
            .as_str()
            .is_some_and(|output| output.contains("did not answer within 2 s")),
        "{:?}",
        hang[0]
    );
    let broken = tool_named(&tools, "mcp__notes__broken");
    assert_eq!(broken[0]["status"], "failed", "{:?}", broken[0]);
    // The model heard each outcome and the turn ended well.
    let second = &model.requests()[1]["messages"];
    let results: Vec<&str> = second
        .as_array()
        .expect("messages")
        .iter()
        .filter(|message| message["role"] == "tool")
        .filter_map(|message| message["content"].as_str())
        .collect();
    assert_eq!(results.len(), 5, "{second}");
    assert_eq!(results[0], "HELLO");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_start_is_reported_and_the_turn_goes_on() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["fine without it"]));
    let mut settings = model.settings();
    settings["mcp_servers"] = json!([{"name": "gone", "command": "no-such-mcp-server"}]);
    let mut client = env.server_with(settings).await;
    let (_, id) = client.create(json!({"prompt": "hi"})).await;
    client.wait_for_status(&id, "waiting").await;
    let notes = system_messages(&client, &id);
    assert!(
        notes
            .iter()
            .any(|note| note.contains("MCP server gone") && note.contains("not on PATH")),
        "{notes:?}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repositorys_mcp_servers_wait_for_the_user_to_trust_it() {
    let env = TestEnv::new();
    let marker = env.home().join("ran.txt");
    let tether = env.repo().join(".tether");
    std::fs::create_dir_all(&tether).expect("mkdir");
    std::fs::write(
        tether.join("config.toml"),
        format!(
            "[[mcp_servers]]\nname = \"repo-tools\"\ncommand = \"sh\"\nargs = [\"-c\", \"touch {}\"]\n",
            marker.display()
        ),
    )
    .expect("write");
    let model = FakeModel::start().await;
    model.push(Reply::text(&["ok"]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "hi"})).await;
    client.wait_for_status(&id, "waiting").await;
    assert!(
        !marker.exists(),
        "an untrusted repository ran its MCP server"
    );
    let notes = system_messages(&client, &id);
    assert!(
        notes
            .iter()
            .any(|note| note.contains("repo-tools") && note.contains("not trusted")),
        "{notes:?}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tethers_agent_calls_an_http_mcp_servers_tools() {
    let env = TestEnv::new();
    let portfile = env.home().join("port");
    let mut server = tokio::process::Command::new(notes_server())
        .arg("--http")
        .arg(&portfile)
        .kill_on_drop(true)
        .spawn()
        .expect("start the HTTP MCP server");
    let mut port = String::new();
    for _ in 0..500 {
        port = std::fs::read_to_string(&portfile).unwrap_or_default();
        if !port.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!port.is_empty(), "the HTTP MCP server never said its port");
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "mcp__web__shout",
        r#"{"text": "over http"}"#,
    )]));
    model.push(Reply::text(&["done"]));
    let mut settings = model.settings();
    settings["mcp_servers"] = json!([{
        "name": "web",
        "url": format!("http://127.0.0.1:{port}/mcp"),
        "headers": {"X-Test": "yes"},
    }]);
    let mut client = env.server_with(settings).await;
    let (_, id) = client.create(json!({"prompt": "shout over http"})).await;
    client.wait_for_status(&id, "waiting").await;
    let tools = completed_items(&client.session_events(&id), "toolCall");
    let shout = tool_named(&tools, "mcp__web__shout");
    assert_eq!(shout.len(), 1, "{tools:#?}");
    assert_eq!(shout[0]["status"], "completed", "{:?}", shout[0]);
    assert_eq!(shout[0]["output"], "OVER HTTP");
    client.shutdown().await;
    let _ = server.kill().await;
}

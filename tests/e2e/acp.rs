//! Sessions on an ACP agent (issue 13), driven through the scripted agent of
//! `tests/acp/scripted_agent.py`: a whole session (messages, tool calls, files written
//! through Tether and by the agent itself, terminals, plans, cost), permissions put to the
//! user, stop, restarts, and every fault an agent can commit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::processes::eventually;
use crate::support::{
    FakeModel, LspClient, Reply, TestEnv, agent_messages, agent_said, changed_paths,
    completed_items, diff_paths, running,
};

/// The scripted agent, set up for one test: its script, its log, the provider settings
/// that run it.
struct ScriptedAgent {
    dir: PathBuf,
}

impl ScriptedAgent {
    fn new(env: &TestEnv, script: Value) -> ScriptedAgent {
        let dir = env.home().join("scripted-agent");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("script.json"), script.to_string()).expect("write the script");
        ScriptedAgent { dir }
    }

    fn program() -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/acp/scripted_agent.py")
            .canonicalize()
            .expect("the scripted agent exists")
            .display()
            .to_string()
    }

    /// Editor settings whose default provider is this agent (a fault, if any).
    fn settings(&self, model: &FakeModel, fault: &str) -> Value {
        let mut settings = model.settings();
        settings["default_provider"] = json!("scripted");
        settings["providers"]["scripted"] = json!({
            "kind": "acp",
            "command": Self::program(),
            "env": {
                "SCRIPTED_ACP_SCRIPT": self.dir.join("script.json"),
                "SCRIPTED_ACP_LOG": self.dir.join("log.jsonl"),
                "SCRIPTED_ACP_FAULT": fault,
            },
            "state_dirs": [self.dir],
            "timeout_secs": 5,
        });
        settings
    }

    /// What the agent logged: every message it received and its own events.
    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    fn events(&self, name: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|entry| entry["event"] == name)
            .collect()
    }
}

fn items_of(client: &LspClient, id: &str, kind: &str) -> Vec<Value> {
    completed_items(&client.session_events(id), kind)
}

fn reason_of(info: &Value) -> String {
    info["statusReason"]
        .as_str()
        .or_else(|| info["event"]["reason"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Creates a session on the scripted agent and waits until it ends `status`; its id and
/// the status event.
async fn run_to(client: &mut LspClient, prompt: &str, status: &str) -> (String, Value) {
    let (_, id) = client.create(json!({ "prompt": prompt })).await;
    let event = client.wait_for_status(&id, status).await;
    (id, event)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acp_agent_runs_a_whole_session_through_tether() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let agent = ScriptedAgent::new(
        &env,
        json!({"turns": [
            [
                {"think": "Let me look."},
                {"say": "I will write a file. "},
                {"plan": ["write hello.txt", "check it"]},
                {"write": ["hello.txt", "hello from the agent\n"]},
                {"read": "hello.txt"},
                {"terminal": "echo from-terminal"},
                {"shell": "echo made by the agent > made.txt"},
                {"cost": 0.25},
                {"say": "Done."}
            ],
            [{"cost": 0.40}, {"say": "Second turn."}]
        ]}),
    );
    let mut settings = agent.settings(&model, "");
    // Its MCP servers: the stdio one is handed over; the agent speaks no HTTP MCP.
    let notes = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/mcp/notes_server.py")
        .canonicalize()
        .expect("notes server");
    settings["mcp_servers"] = json!([
        {"name": "notes", "command": notes, "env": {"NOTES": "1"}},
        {"name": "web", "url": "http://127.0.0.1:9/mcp"}
    ]);
    let mut client = env.server_with(settings).await;
    let (_, id) = client
        .create(json!({"prompt": "Write hello.txt please", "model": "smart"}))
        .await;
    client.wait_for_status(&id, "waiting").await;

    let events = client.session_events(&id);
    let messages = agent_messages(&events);
    let text: Vec<&str> = messages
        .iter()
        .filter_map(|message| message["text"].as_str())
        .collect();
    assert!(
        text.iter()
            .any(|text| text.starts_with("I will write a file.")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|text| text.contains("The file says: hello from the agent")),
        "the agent read its file back through Tether: {text:?}"
    );
    assert!(
        text.iter()
            .any(|text| text.contains("printed from-terminal and exited 0")),
        "{text:?}"
    );
    let thinking: Vec<Value> = completed_items(&events, "message")
        .into_iter()
        .filter(|item| item["role"] == "thinking")
        .collect();
    assert_eq!(thinking.len(), 1, "{thinking:?}");
    let tools = items_of(&client, &id, "toolCall");
    let titles: Vec<&str> = tools
        .iter()
        .filter_map(|tool| tool["tool"].as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Write hello.txt",
            "Read hello.txt",
            "echo from-terminal",
            "echo made by the agent > made.txt"
        ]
    );
    assert!(
        tools.iter().all(|tool| tool["status"] == "completed"),
        "{tools:#?}"
    );
    // The terminal's tool call shows what the command printed in it.
    assert_eq!(tools[2]["output"], "from-terminal\n", "{:?}", tools[2]);
    assert_eq!(
        changed_paths(&client.session_events(&id)),
        ["hello.txt", "made.txt"],
        "each change once"
    );
    let plan = items_of(&client, &id, "plan");
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0]["phases"][0]["title"], "[ ] write hello.txt");

    // The files are in the worktree, and in the session's diff.
    let info = client.call("tether/session/get", json!({"id": id})).await["session"].clone();
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));
    assert_eq!(
        std::fs::read_to_string(worktree.join("hello.txt")).expect("hello.txt"),
        "hello from the agent\n"
    );
    let diff = client.call("tether/session/diff", json!({"id": id})).await;
    assert_eq!(diff_paths(&diff), ["hello.txt", "made.txt"]);
    // Its cost is the session's.
    assert!(
        (info["usage"]["costUsd"].as_f64().unwrap_or_default() - 0.25).abs() < 1e-9,
        "{info}"
    );
    // The agent worked in the worktree, and was asked exactly what the user said.
    let new = agent.events("new");
    assert_eq!(new.len(), 1);
    assert_eq!(
        Path::new(new[0]["cwd"].as_str().expect("cwd"))
            .canonicalize()
            .expect("cwd"),
        worktree.canonicalize().expect("worktree")
    );
    assert_eq!(
        new[0]["mcpServers"],
        json!([{"name": "notes", "command": notes, "args": [],
                "env": [{"name": "NOTES", "value": "1"}]}])
    );
    let prompts = agent.events("prompt");
    assert_eq!(prompts[0]["prompt"][0]["text"], "Write hello.txt please");
    // The session's model was chosen through the agent's model selector; what the agent
    // says of its session is in the session's info.
    let configs = agent.events("config");
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0]["value"], "smart");
    assert_eq!(
        info["agent"],
        json!({
            "commands": [{"name": "review", "description": "Review the changes"}],
            "mode": "normal",
            "modes": ["normal", "careful"],
            "model": "smart",
            "models": ["fast", "smart"],
        }),
        "{info}"
    );
    // The providers' picker lists the models the agent offered.
    let listed = client.call("tether/providers/list", json!({})).await;
    let scripted = listed["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|entry| entry["name"] == "scripted")
        .cloned()
        .expect("the scripted agent is listed");
    assert_eq!(scripted["models"], json!(["fast", "smart"]), "{scripted}");
    // The ACP session id is in the log, for a restart.
    let logged = client
        .session_events(&id)
        .into_iter()
        .find(|params| params["event"]["kind"] == "agentSession")
        .expect("an agentSession event");
    assert_eq!(logged["event"]["provider"], "scripted");

    // A follow-up goes to the same agent, in the same ACP session, as just its text.
    client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "And now the second part"}),
        )
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let prompts = agent.events("prompt");
    assert_eq!(prompts.len(), 2);
    assert_eq!(prompts[1]["prompt"][0]["text"], "And now the second part");
    assert_eq!(agent.events("new").len(), 1, "one agent, one ACP session");
    let info = client.call("tether/session/get", json!({"id": id})).await["session"].clone();
    assert!(
        (info["usage"]["costUsd"].as_f64().unwrap_or_default() - 0.40).abs() < 1e-9,
        "the running total counted once: {info}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_permission_request_is_put_to_the_user_in_ask_mode() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let agent = ScriptedAgent::new(
        &env,
        json!({"turns": [[{"permission": "rm -rf build"}, {"permission": "rm -rf dist"}]]}),
    );
    let mut settings = agent.settings(&model, "");
    settings["session"] = json!({"permission_mode": "ask"});
    // The agent's own careful mode goes with Tether's ask mode; it has no mode for auto.
    settings["providers"]["scripted"]["modes"] =
        json!({"ask": "careful", "read-only": "normal", "auto": "reckless"});
    let mut client = env.server_with(settings).await;
    let (_, id) = client.create(json!({"prompt": "clean up"})).await;
    let asked = client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "started"
                && event["item"]["type"] == "permission"
        })
        .await;
    let item = &asked["event"]["item"];
    assert_eq!(item["tool"], "rm -rf build");
    assert_eq!(item["scope"], "scripted:execute");
    // The session says it waits on the user (the item and the activity are two events).
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "status" && event["activity"] == "waiting_input"
        })
        .await;
    client
        .call(
            "tether/session/answer",
            json!({"id": id, "questionId": item["id"], "answers": ["allow_always_session"]}),
        )
        .await;
    // The second request of the same kind is allowed without asking.
    client.wait_for_status(&id, "waiting").await;
    let events = client.session_events(&id);
    let said = agent_said(&events);
    assert!(
        said.contains("Permission outcome: always. Permission outcome: yes."),
        "{said}"
    );
    let asked = events
        .iter()
        .filter(|params| {
            params["event"]["kind"] == "item"
                && params["event"]["phase"] == "started"
                && params["event"]["item"]["type"] == "permission"
        })
        .count();
    assert_eq!(asked, 1, "asked once");
    let modes: Vec<Value> = agent
        .events("mode")
        .iter()
        .map(|entry| entry["modeId"].clone())
        .collect();
    assert_eq!(modes, [json!("careful")]);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_question_is_a_question_item_the_user_answers() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let agent = ScriptedAgent::new(&env, json!({"turns": [[{"elicit": "Who are you?"}]]}));
    let mut client = env.server_with(agent.settings(&model, "")).await;
    let (_, id) = client.create(json!({"prompt": "ask me"})).await;
    let asked = client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "started"
                && event["item"]["type"] == "question"
        })
        .await;
    let item = &asked["event"]["item"];
    assert!(
        item["questions"][0]["prompt"]
            .as_str()
            .is_some_and(|prompt| prompt.contains("Who are you?") && prompt.contains("Your name")),
        "{item}"
    );
    client
        .call(
            "tether/session/answer",
            json!({"id": id, "questionId": item["id"], "answers": ["Ada"]}),
        )
        .await;
    client.wait_for_status(&id, "waiting").await;
    let said = agent_said(&client.session_events(&id));
    assert!(
        said.contains(r#""action": "accept""#) && said.contains(r#""name": "Ada""#),
        "{said}"
    );
    drop(agent);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_plan_mode_is_a_plan_the_user_approves_or_rejects() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let agent = ScriptedAgent::new(
        &env,
        json!({"turns": [[
            {"exit_plan": "# Plan\n1. Read the code\n2. Fix the bug"},
            {"exit_plan": "1. Fix only the bug"}
        ]]}),
    );
    let mut client = env.server_with(agent.settings(&model, "")).await;
    let (_, id) = client.create(json!({"prompt": "plan it"})).await;
    let first = client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "started"
                && event["item"]["type"] == "plan"
        })
        .await["event"]["item"]
        .clone();
    let titles: Vec<&str> = first["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter_map(|phase| phase["title"].as_str())
        .collect();
    assert_eq!(titles, ["Plan", "Read the code", "Fix the bug"]);
    let info = client.call("tether/session/get", json!({"id": id})).await["session"].clone();
    assert_eq!(info["activity"], "awaiting_plan_approval", "{info}");
    client
        .call(
            "tether/session/decidePlan",
            json!({"id": id, "planId": first["id"], "approve": false, "feedback": "smaller"}),
        )
        .await;
    let second = client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "started"
                && event["item"]["type"] == "plan"
                && event["item"]["id"] != first["id"]
        })
        .await["event"]["item"]
        .clone();
    client
        .call(
            "tether/session/decidePlan",
            json!({"id": id, "planId": second["id"], "approve": true}),
        )
        .await;
    client.wait_for_status(&id, "waiting").await;
    let said = agent_said(&client.session_events(&id));
    assert!(
        said.contains("Plan outcome: keep. Plan outcome: go."),
        "{said}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_the_agents_turn_and_ends_its_processes() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let pidfile = env.home().join("scripted-agent/sleeper.pid");
    let agent = ScriptedAgent::new(
        &env,
        json!({"turns": [
            [{"spawn_sleeper": pidfile}, {"sleep": 60}],
            [{"say": "back again"}]
        ]}),
    );
    let mut client = env.server_with(agent.settings(&model, "")).await;
    let (_, id) = client.create(json!({"prompt": "work for long"})).await;
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "item" && event["item"]["type"] == "toolCall"
        })
        .await;
    let sleeper: i32 = std::fs::read_to_string(&pidfile)
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid");
    assert!(running(sleeper));
    client.call("tether/session/stop", json!({"id": id})).await;
    client.wait_for_status(&id, "stopped").await;
    assert_eq!(agent.events("cancel").len(), 1, "session/cancel was sent");
    assert!(
        eventually(Duration::from_secs(10), || !running(sleeper)).await,
        "the agent's command outlived the stop"
    );
    // The stopped turn's tool call is closed, not left running.
    let tools = items_of(&client, &id, "toolCall");
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["status"], "failed");

    // Resuming starts the agent again, which is asked again what the user asked (nothing
    // of the conversation is worth priming a new ACP session with: only a killed tool).
    client
        .call("tether/session/resume", json!({"id": id}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    let prompts = agent.events("prompt");
    assert_eq!(prompts.len(), 2);
    assert_eq!(prompts[1]["prompt"][0]["text"], "work for long");
    assert_eq!(agent.events("new").len(), 2);
    client.shutdown().await;
}

/// A session whose daemon was killed (`kill -9`) between turns, followed up after; the
/// agent's log and the session's agent messages.
async fn follow_up_after_a_daemon_crash(
    load_session: bool,
) -> (TestEnv, ScriptedAgent, Vec<String>) {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let agent = ScriptedAgent::new(
        &env,
        json!({
            "load_session": load_session,
            "turns": [[{"say": "first answer"}], [{"say": "answer after restart"}]]
        }),
    );
    let settings = agent.settings(&model, "");
    let mut client = env.server_with(settings.clone()).await;
    let (id, _) = run_to(&mut client, "remember this", "waiting").await;
    let acp_session = client
        .session_events(&id)
        .into_iter()
        .find(|params| params["event"]["kind"] == "agentSession")
        .expect("agentSession")["event"]["sessionId"]
        .clone();
    client.shutdown().await;
    env.kill_daemon();

    let mut client = env.server_with(settings).await;
    client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "what did I say?"}),
        )
        .await;
    client.wait_for_status(&id, "waiting").await;
    if load_session {
        let loads = agent.events("load");
        assert_eq!(loads.len(), 1, "{:?}", agent.log());
        assert_eq!(loads[0]["sessionId"], acp_session);
    }
    let said = agent_messages(&client.session_events(&id))
        .iter()
        .filter_map(|message| message["text"].as_str().map(str::to_owned))
        .collect();
    client.shutdown().await;
    (env, agent, said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_daemon_crash_the_agent_restores_its_session_with_session_load() {
    let (_env, agent, said) = follow_up_after_a_daemon_crash(true).await;
    let prompts = agent.events("prompt");
    assert_eq!(
        prompts.last().expect("a prompt")["prompt"][0]["text"],
        "what did I say?",
        "a restored session gets just the new message"
    );
    assert!(
        said.contains(&"answer after restart".to_owned()),
        "{said:?}"
    );
    assert!(
        !said.iter().any(|text| text.contains("replayed")),
        "the replay of a loaded session is not shown again: {said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_cannot_restore_its_session_gets_the_transcript() {
    let (_env, agent, said) = follow_up_after_a_daemon_crash(false).await;
    assert!(agent.events("load").is_empty());
    assert_eq!(agent.events("new").len(), 2);
    let prompts = agent.events("prompt");
    let primed = prompts.last().expect("a prompt")["prompt"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        primed.contains("User: remember this")
            && primed.contains("You: first answer")
            && primed.ends_with("what did I say?"),
        "{primed}"
    );
    assert!(
        said.contains(&"answer after restart".to_owned()),
        "{said:?}"
    );
}

/// The session fails, saying `expected` (every fragment), and the server goes on.
async fn fails_saying(fault: &str, script: Value, timeout_secs: Option<u64>, expected: &[&str]) {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let agent = ScriptedAgent::new(&env, script);
    let mut settings = agent.settings(&model, fault);
    if let Some(secs) = timeout_secs {
        settings["providers"]["scripted"]["timeout_secs"] = json!(secs);
    }
    let mut client = env.server_with(settings).await;
    let (id, event) = run_to(&mut client, "do it", "failed").await;
    let reason = reason_of(&event);
    for fragment in expected {
        assert!(
            reason.contains(fragment),
            "{fault}: {reason:?} lacks {fragment:?}"
        );
    }
    // The server is fine: it answers, and the session can be looked at.
    let info = client.call("tether/session/get", json!({"id": id})).await["session"].clone();
    assert_eq!(info["status"], "failed");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_exits_at_start_fails_the_session_with_its_status_and_stderr() {
    fails_saying(
        "exit_at_start",
        json!({}),
        None,
        &["exited with status 3", "cannot start, no config"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_never_answers_initialize_fails_the_session_in_time() {
    fails_saying(
        "no_initialize",
        json!({}),
        Some(1),
        &["did not answer initialize within 1 s"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_wants_a_login_says_how() {
    fails_saying(
        "auth_required",
        json!({}),
        None,
        &["needs you to log in", "scripted-agent login"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_writes_garbage_and_dies_is_reported_with_what_it_wrote() {
    fails_saying(
        "garbage_then_exit",
        json!({}),
        None,
        &[
            "exited with status 7",
            "not JSON-RPC",
            "Welcome to the agent!",
            "fatal: plugin failed",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_crashes_mid_turn_fails_the_session_and_keeps_what_it_said() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let agent = ScriptedAgent::new(
        &env,
        json!({"turns": [[{"say": "starting "}, {"garbage": "oops not json"}, {"crash": 9}]]}),
    );
    let mut client = env.server_with(agent.settings(&model, "")).await;
    let (id, event) = run_to(&mut client, "do it", "failed").await;
    let reason = reason_of(&event);
    assert!(reason.contains("exited with status 9"), "{reason}");
    assert!(reason.contains("crashing on purpose"), "{reason}");
    assert!(reason.contains("oops not json"), "{reason}");
    let messages = agent_messages(&client.session_events(&id));
    assert_eq!(messages[0]["text"], "starting ");
    assert_eq!(messages[0]["interrupted"], true);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_agent_fails_the_session_saying_how_to_install_it() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let mut settings = model.settings();
    settings["default_provider"] = json!("claude");
    // The preset, on a PATH without it.
    let mut client = LspClient::spawn_with_env(env.home(), &[("PATH", "/usr/bin:/bin")]).await;
    client.initialize(&env.repo(), settings, true).await;
    let (_, event) = run_to(&mut client, "do it", "failed").await;
    let reason = reason_of(&event);
    assert!(
        reason.contains("`claude-agent-acp` is not on PATH"),
        "{reason}"
    );
    assert!(
        reason.contains("npm install -g @agentclientprotocol/claude-agent-acp"),
        "{reason}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_read_or_write_outside_its_worktree() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let outside = env.home().join("outside.txt");
    let secret = env.home().join("secret.txt");
    std::fs::write(&secret, "top secret\n").expect("write");
    let agent = ScriptedAgent::new(
        &env,
        json!({"turns": [[
            {"write": [format!("ABS:{}", outside.display()), "escaped\n"]},
            {"write": ["../../escape.txt", "escaped\n"]},
            {"write": [".git/config", "[core]\n"]},
            {"read": format!("ABS:{}", secret.display())},
            {"shell": format!("echo escaped > {}", outside.display())},
            {"say": "tried"}
        ]]}),
    );
    let mut client = env.server_with(agent.settings(&model, "")).await;
    let (id, _) = run_to(&mut client, "escape", "waiting").await;
    assert!(!outside.exists(), "the agent wrote outside its worktree");
    assert!(!env.home().join("escape.txt").exists());
    let said = agent_said(&client.session_events(&id));
    assert!(said.contains("outside the session's worktree"), "{said}");
    assert!(said.contains("leaves the repository"), "{said}");
    assert!(said.contains("inside .git"), "{said}");
    assert!(!said.contains("top secret"), "{said}");
    // The agent's own command ran in the sandbox: its write failed.
    let tools = items_of(&client, &id, "toolCall");
    let shell = tools.last().expect("the shell call");
    assert_eq!(shell["status"], "failed", "{shell}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_agent_is_streamed_whole_and_the_editor_stays_responsive() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let agent = ScriptedAgent::new(&env, json!({"turns": [[{"flood": 20000}]]}));
    let mut client = env.server_with(agent.settings(&model, "")).await;
    let (_, id) = client.create(json!({"prompt": "flood"})).await;
    // The editor is answered while the flood goes on.
    for _ in 0..5 {
        client.call("tether/session/list", json!({})).await;
    }
    client.wait_for_status(&id, "waiting").await;
    let messages = agent_messages(&client.session_events(&id));
    assert_eq!(messages.len(), 1);
    let text = messages[0]["text"].as_str().expect("text");
    assert!(text.starts_with("w0 w1 "), "{}", &text[..40]);
    assert!(text.ends_with("w19999 "), "the whole flood arrived");
    assert_eq!(text.split_whitespace().count(), 20000);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_checkpoints_and_rewind_work_the_same_on_an_acp_session() {
    let env = TestEnv::new();
    env.commit_repo_config(
        "[[hooks.on_agent_finish]]\nname = \"check\"\ncommand = \"test -f fixed.txt || { echo 'fixed.txt is missing' >&2; exit 2; }\"\n",
    );
    let model = FakeModel::start().await;
    let agent = ScriptedAgent::new(
        &env,
        json!({"turns": [
            [{"write": ["a.txt", "one\n"]}, {"say": "done, I think"}],
            [{"write": ["fixed.txt", "ok\n"]}, {"say": "fixed"}]
        ]}),
    );
    let mut client = env.server_with(agent.settings(&model, "")).await;
    client.call("tether/session/trust", json!({})).await;
    let (info, id) = client.create(json!({"prompt": "make it pass"})).await;
    client.wait_for_status(&id, "waiting").await;
    // The blocking hook's complaint was the agent's next prompt.
    let prompts = agent.events("prompt");
    assert_eq!(prompts.len(), 2, "{:?}", agent.log());
    let complaint = prompts[1]["prompt"][0]["text"].as_str().unwrap_or_default();
    assert!(complaint.contains("fixed.txt is missing"), "{complaint}");
    // The new worktree and each turn that changed files left a checkpoint; a rewind puts
    // the first turn's back.
    let checkpoints: Vec<Value> = client
        .session_events(&id)
        .iter()
        .filter(|params| params["event"]["kind"] == "checkpoint")
        .map(|params| params["event"]["name"].clone())
        .collect();
    assert_eq!(
        checkpoints,
        [json!("start"), json!("turn-1"), json!("turn-2")]
    );
    client
        .call("tether/session/rewind", json!({"id": id, "turn": 1}))
        .await;
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));
    assert!(worktree.join("a.txt").exists());
    assert!(!worktree.join("fixed.txt").exists());
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acp_sessions_changes_are_verified_and_reviewed_by_the_review_provider() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let finding = "{\"findings\": [{\"file\": \"notes.txt\", \"startLine\": 1, \"endLine\": 1, \"severity\": \"low\", \"category\": \"style\", \"title\": \"terse note\"}]}";
    model.push(Reply::text(&[finding]));
    model.push(Reply::text(&[finding]));
    let agent = ScriptedAgent::new(
        &env,
        json!({"turns": [[{"write": ["notes.txt", "a note\n"]}, {"say": "wrote it"}]]}),
    );
    let mut settings = agent.settings(&model, "");
    // The agent runs the session; a model API reviews what it did.
    settings["review"] = json!({"auto": true, "provider": "fake"});
    let mut client = env.server_with(settings).await;
    let (_, id) = client.create(json!({"prompt": "write a note"})).await;
    let reviewed = client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "completed"
                && event["item"]["type"] == "review"
        })
        .await;
    let review = &reviewed["event"]["item"];
    assert_eq!(review["status"], "completed", "{review}");
    assert_eq!(review["findings"][0]["title"], "terse note");
    // The review model saw the agent's change.
    let asked = model
        .requests()
        .last()
        .expect("a review request")
        .to_string();
    assert!(asked.contains("a note"), "{asked}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_spends_the_budget_is_stopped() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let agent = ScriptedAgent::new(
        &env,
        json!({"turns": [[{"cost": 0.5}, {"sleep": 10}, {"say": "still going"}]]}),
    );
    let mut settings = agent.settings(&model, "");
    settings["session"] = json!({"budget_usd": 0.3});
    let mut client = env.server_with(settings).await;
    let (id, event) = run_to(&mut client, "spend", "stopped").await;
    let reason = reason_of(&event);
    assert!(reason.contains("cost budget"), "{reason}");
    assert_eq!(
        agent.events("cancel").len(),
        1,
        "the agent was told to stop"
    );
    let said = agent_said(&client.session_events(&id));
    assert!(!said.contains("still going"), "{said}");
    let ended = client
        .session_events(&id)
        .into_iter()
        .find(|params| params["event"]["kind"] == "turnEnded")
        .expect("turnEnded");
    assert_eq!(ended["event"]["reason"], "budget");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acp_agent_gets_images_and_pdfs_as_content_blocks_when_it_takes_them() {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let png = b"\x89PNG\r\n\x1a\nthe rest".as_slice();
    let pdf = b"%PDF-1.4\nthe rest".as_slice();
    for takes_them in [true, false] {
        let env = TestEnv::new();
        let model = FakeModel::start().await;
        let agent = ScriptedAgent::new(
            &env,
            json!({"images": takes_them, "turns": [[{"say": "seen"}]]}),
        );
        let mut client = env.server_with(agent.settings(&model, "")).await;
        let (_, id) = client
            .create(json!({"prompt": "look", "attachments": [
                {"data": encode(png), "mimeType": "image/png", "name": "shot.png"},
                {"data": encode(pdf), "mimeType": "application/pdf", "name": "spec.pdf"},
            ]}))
            .await;
        client.wait_for_status(&id, "waiting").await;
        let prompt = agent.events("prompt")[0]["prompt"].clone();
        if takes_them {
            assert_eq!(prompt[0], json!({"type": "text", "text": "look"}));
            assert_eq!(
                prompt[1],
                json!({"type": "image", "data": encode(png), "mimeType": "image/png"})
            );
            assert_eq!(prompt[2]["type"], "resource");
            assert_eq!(prompt[2]["resource"]["blob"], encode(pdf));
            assert_eq!(prompt[2]["resource"]["mimeType"], "application/pdf");
        } else {
            // An agent that takes no images is told what was attached, in words.
            assert_eq!(prompt.as_array().map(Vec::len), Some(1), "{prompt}");
            let text = prompt[0]["text"].as_str().unwrap_or_default();
            assert!(
                text.contains(
                    "[attached: shot.png (image/png); this agent does not take such files]"
                ) && text.contains("spec.pdf"),
                "{text}"
            );
        }
        client.shutdown().await;
    }
}

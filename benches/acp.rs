//! ACP agents: what Tether adds around one. The same agent (the tests' scripted agent, and
//! Claude Code's adapter when scripts/acp-agents.sh installed it) is driven twice: through
//! Tether's ACP client (`tether::acp`, its sandbox, its event translation, its fs serving)
//! and by a bare client that writes the JSON-RPC lines itself and answers file requests
//! without any check. The difference, divided by the number of messages, is Tether's cost.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::support::TestEnv;
use super::{MemorySink, ms, percentile};
use tether::acp::{AgentLaunch, AgentSession, TurnContext};

const UPDATES: usize = 20_000;
const FILE_REQUESTS: usize = 2_000;

fn scripted_agent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/acp/scripted_agent.py")
        .canonicalize()
        .expect("the scripted agent")
}

fn jail(env: &TestEnv) -> tether::sandbox::Jail {
    tether::sandbox::Jail {
        mode: tether::sandbox::SandboxMode::Auto,
        worktree: env.repo().canonicalize().expect("repo"),
        temp_dir: env.home().join("tmp"),
        writable: Vec::new(),
        network: false,
        hidden_env: Vec::new(),
        owner: "bench".into(),
        records: env.home().join("records"),
    }
}

fn tools(env: &TestEnv) -> tether::agent::tools::ToolContext {
    tether::agent::tools::ToolContext {
        read_only: false,
        ask_permission: false,
        allowed_scopes: Vec::new(),
        command_timeout: Duration::from_secs(10),
        jail: jail(env),
        git: tether::workspace::SessionWorktree {
            work_tree: env.repo().canonicalize().expect("repo"),
            git_dir: env.repo().join(".git"),
        },
        private_index: env.home().join("index"),
    }
}

/// A launch of `command` with `env`, as a user's `[providers.<name>]` would say it.
fn launch(env: &TestEnv, name: &str, command: &Path, args: &[&str], vars: Value) -> AgentLaunch {
    let config: tether::config::ProviderConfig = serde_json::from_value(json!({
        "kind": "acp",
        "command": command,
        "args": args,
        "env": vars,
        "state_dirs": [env.home().join("agent-home")],
        "timeout_secs": 60,
    }))
    .expect("a provider");
    AgentLaunch::new(name, &config, jail(env), "auto").expect("a launch")
}

/// The bare client: the agent's own process, JSON-RPC lines written and read directly.
struct Bare {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Bare {
    fn spawn(command: &Path, args: &[&str], cwd: &Path, vars: &Value) -> Bare {
        let mut process = tokio::process::Command::new(command);
        process
            .args(args)
            .current_dir(cwd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        for (name, value) in vars.as_object().into_iter().flatten() {
            process.env(name, value.as_str().unwrap_or_default());
        }
        let mut child = process.spawn().expect("spawn the agent");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        Bare {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Sends a request and waits for its answer, serving the agent's file requests itself.
    async fn call(&mut self, id: u64, method: &str, params: Value) -> Value {
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        while let Some(line) = self.lines.next_line().await.expect("read") {
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if message["id"] == id && message.get("method").is_none() {
                return message;
            }
            if let (Some(method), Some(request)) = (message["method"].as_str(), message.get("id")) {
                let params = &message["params"];
                let result = match method {
                    "fs/read_text_file" => json!({"content": std::fs::read_to_string(
                        params["path"].as_str().unwrap_or_default()).unwrap_or_default()}),
                    "fs/write_text_file" => {
                        let _ = std::fs::write(
                            params["path"].as_str().unwrap_or_default(),
                            params["content"].as_str().unwrap_or_default(),
                        );
                        json!({})
                    }
                    _ => json!({}),
                };
                let answer = json!({"jsonrpc": "2.0", "id": request, "result": result});
                self.stdin
                    .write_all(format!("{answer}\n").as_bytes())
                    .await
                    .expect("write");
            }
        }
        panic!("the agent closed its stdout before answering {method}");
    }

    /// `initialize` and `session/new`: the session id.
    async fn open(&mut self, cwd: &Path) -> String {
        self.call(
            1,
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {
                "fs": {"readTextFile": true, "writeTextFile": true}, "terminal": true}}),
        )
        .await;
        let created = self
            .call(2, "session/new", json!({"cwd": cwd, "mcpServers": []}))
            .await;
        created["result"]["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn prompt(&mut self, session: &str) {
        self.call(
            3,
            "session/prompt",
            json!({"sessionId": session, "prompt": [{"type": "text", "text": "go"}]}),
        )
        .await;
    }
}

/// Starts (spawn → `initialize` → `session/new`) through Tether and bare, `runs` times each.
async fn start_times(
    env: &TestEnv,
    name: &str,
    command: &Path,
    args: &[&str],
    vars: Value,
    runs: usize,
) {
    let worktree = env.repo().canonicalize().expect("repo");
    let (mut through, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let started = Instant::now();
        let mut agent = AgentSession::start(
            launch(env, name, command, args, vars.clone()),
            &worktree,
            None,
        )
        .await
        .expect("the agent starts");
        through.push(started.elapsed());
        agent.kill();
        let started = Instant::now();
        let mut client = Bare::spawn(command, args, &worktree, &vars);
        client.open(&worktree).await;
        bare.push(started.elapsed());
        let _ = client.child.kill().await;
    }
    through.sort();
    bare.sort();
    println!(
        "  {name}: session start (spawn → session/new answered), median of {runs}: through tether {} · the agent alone {} · tether adds {}",
        ms(percentile(&through, 0.5)),
        ms(percentile(&bare, 0.5)),
        ms(percentile(&through, 0.5).saturating_sub(percentile(&bare, 0.5)))
    );
}

/// One turn of `steps` through Tether and bare; the two times.
async fn turn_times(env: &TestEnv, steps: Value) -> (Duration, Duration) {
    let script = env.home().join("script.json");
    std::fs::write(&script, json!({"turns": [steps]}).to_string()).expect("script");
    let worktree = env.repo().canonicalize().expect("repo");
    let vars = json!({"SCRIPTED_ACP_SCRIPT": script});
    let program = scripted_agent();
    let mut agent = AgentSession::start(
        launch(env, "scripted", &program, &[], vars.clone()),
        &worktree,
        None,
    )
    .await
    .expect("the agent starts");
    let tools = tools(env);
    let mut sink = MemorySink(Vec::new());
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let outcome = agent
        .run_turn(
            "go".to_owned(),
            Vec::new(),
            TurnContext {
                tools: &tools,
                turn_timeout: None,
                budget_left_usd: None,
            },
            &cancel,
            &mut sink,
        )
        .await;
    let through = started.elapsed();
    assert!(outcome.message.is_none(), "{outcome:?}");
    agent.kill();
    let mut client = Bare::spawn(&program, &[], &worktree, &vars);
    let session = client.open(&worktree).await;
    let started = Instant::now();
    client.prompt(&session).await;
    let bare = started.elapsed();
    let _ = client.child.kill().await;
    (through, bare)
}

pub async fn bench_acp() {
    println!("ACP agents (what tether adds around an agent; targets: < 0.1 ms per update)");
    let env = TestEnv::new();
    std::fs::create_dir_all(env.home().join("agent-home")).expect("mkdir");
    std::fs::write(env.repo().join("hello.txt"), "hello\n").expect("write");

    let (through, bare) = turn_times(&env, json!([{"flood": UPDATES}])).await;
    println!(
        "  {UPDATES} session/update chunks: through tether {} · the agent alone {} · tether adds {:.4} ms per update",
        ms(through),
        ms(bare),
        through.saturating_sub(bare).as_secs_f64() * 1000.0 / UPDATES as f64
    );
    for (kind, step) in [
        (
            "fs/read_text_file",
            json!([{"reads": ["hello.txt", FILE_REQUESTS]}]),
        ),
        (
            "fs/write_text_file",
            json!([{"writes": ["out.txt", FILE_REQUESTS]}]),
        ),
    ] {
        let (through, bare) = turn_times(&env, step).await;
        println!(
            "  {FILE_REQUESTS} {kind}: served by tether {} · by a bare client {} · tether adds {:.4} ms per request",
            ms(through),
            ms(bare),
            through.saturating_sub(bare).as_secs_f64() * 1000.0 / FILE_REQUESTS as f64
        );
    }
    start_times(&env, "scripted", &scripted_agent(), &[], json!({}), 10).await;

    let agents = std::env::var_os("TETHER_ACP_AGENTS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/tether/acp-agents/node_modules/.bin"))
        });
    match agents
        .map(|bin| bin.join("claude-agent-acp"))
        .filter(|path| path.exists())
    {
        Some(claude) => {
            let vars = json!({
                "HOME": env.home().join("agent-home"),
                "ANTHROPIC_API_KEY": "sk-ant-bench-not-a-key",
                "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_TELEMETRY": "1",
                "IS_SANDBOX": "1",
            });
            start_times(&env, "claude-agent-acp", &claude, &[], vars, 5).await;
        }
        None => println!("  claude-agent-acp: not installed (scripts/acp-agents.sh install)"),
    }
    println!();
}

//! Smoke tests against the real local model (SmolLM2 behind llama-cpp-python's server) of
//! shared/LOCAL_MODEL.md. `scripts/test.sh` starts it and runs these; plain `cargo test`
//! skips them because they need that server.

use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::{LspClient, TestEnv, agent_messages, isolated_command};

fn local_model_settings() -> Value {
    let url = std::env::var("TETHER_LOCAL_MODEL_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8011/v1".to_owned());
    json!({
        "default_provider": "local",
        "providers": {"local": {"kind": "openai", "base_url": url, "model": "smollm2",
                                "max_tokens": 64, "timeout_secs": 120}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local model server; scripts/test.sh starts it and runs this"]
async fn a_real_model_answers_and_follows_up_over_lsp() {
    let env = TestEnv::new();
    let mut client = LspClient::spawn(env.home()).await;
    client
        .initialize(&env.repo(), local_model_settings(), true)
        .await;
    let (_, id) = client
        .create(json!({"prompt": "Say hello in five words."}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    // A second turn sends the first reply back as an assistant message, which the server
    // rejects if its content is null.
    client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "Now say goodbye."}),
        )
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let events = client.session_events(&id);
    let replies = agent_messages(&events);
    assert_eq!(replies.len(), 2, "{events:#?}");
    let turn_ends: Vec<_> = events
        .iter()
        .filter(|params| params["event"]["kind"] == "turnEnded")
        .map(|params| params["event"]["reason"].clone())
        .collect();
    assert_eq!(turn_ends, [json!("end_turn"), json!("end_turn")]);
    assert!(
        events
            .iter()
            .any(|params| params["event"]["kind"] == "delta")
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local model server; scripts/test.sh starts it and runs this"]
async fn tether_run_streams_a_real_session_as_json_lines() {
    let env = TestEnv::new();
    let config_dir = env.home().join("config/tether");
    std::fs::create_dir_all(&config_dir).expect("mkdir");
    let settings = local_model_settings();
    let url = settings["providers"]["local"]["base_url"]
        .as_str()
        .expect("url");
    std::fs::write(
        config_dir.join("config.toml"),
        format!(
            "default_provider = \"local\"\n[providers.local]\nkind = \"openai\"\nbase_url = \"{url}\"\nmodel = \"smollm2\"\nmax_tokens = 48\n"
        ),
    )
    .expect("write config");
    let output = isolated_command(env.home())
        .args(["run", "--json", "--repo"])
        .arg(env.repo())
        .arg("What is a git worktree? One sentence.")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run tether");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tether run failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    let last_status = lines
        .iter()
        .rev()
        .find(|line| line["event"]["kind"] == "status")
        .expect("a status line");
    assert_eq!(last_status["event"]["status"], "waiting");
    assert_eq!(agent_messages(&lines).len(), 1);

    // The session is stored: `tether sessions list` shows it.
    let listed = isolated_command(env.home())
        .args(["sessions", "list", "--json", "--repo"])
        .arg(env.repo())
        .output()
        .await
        .expect("list");
    let sessions: Value = serde_json::from_slice(&listed.stdout).expect("json list");
    assert_eq!(sessions.as_array().map(Vec::len), Some(1));
}

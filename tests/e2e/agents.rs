//! Agents over the Agent Client Protocol as session back ends (issue 13): the providers a
//! new session can name, as the editors' pickers list them.

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_list_says_which_agents_are_installed_and_how_to_get_the_others() {
    let env = TestEnv::new();
    let bin = env.home().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let agent = bin.join("opencode");
    std::fs::write(&agent, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let model = FakeModel::start().await;
    let mut settings = model.settings();
    settings["providers"]["mine"] = json!({"kind": "acp", "command": "my-agent-acp"});
    // Through the daemon (which this editor starts, with its PATH) and in process alike.
    for daemon in ["on", "off"] {
        let mut client = LspClient::spawn_with_env(
            env.home(),
            &[("PATH", path.as_str()), ("TETHER_DAEMON", daemon)],
        )
        .await;
        client.initialize(&env.repo(), settings.clone(), true).await;
        let listed = client.call("tether/providers/list", json!({})).await;
        let providers = listed["providers"].as_array().expect("providers").clone();
        let entry = |name: &str| -> Value {
            providers
                .iter()
                .find(|entry| entry["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name} is listed: {listed}"))
        };
        assert_eq!(providers[0]["name"], "fake", "the default first: {listed}");
        assert_eq!(providers[0]["default"], true);
        assert_eq!(entry("fake")["preset"], false);
        let opencode = entry("opencode");
        assert_eq!(opencode["kind"], "acp");
        assert_eq!(opencode["available"], true, "{opencode}");
        assert_eq!(opencode["preset"], true);
        assert_eq!(opencode["path"], agent.to_str().expect("utf-8"));
        let claude = entry("claude");
        assert_eq!(claude["available"], false);
        assert!(
            claude["missing"]
                .as_str()
                .is_some_and(|text| text.contains("@agentclientprotocol/claude-agent-acp")),
            "{claude}"
        );
        let mine = entry("mine");
        assert_eq!(mine["available"], false);
        assert!(
            mine["missing"]
                .as_str()
                .is_some_and(|text| text.contains("my-agent-acp")),
            "{mine}"
        );
        // The command twin answers the same.
        let by_command = client
            .call(
                "workspace/executeCommand",
                json!({"command": "tether.providers", "arguments": []}),
            )
            .await;
        assert_eq!(by_command, listed);
        client.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_cannot_make_an_agent_run_its_own_program() {
    let env = TestEnv::new();
    let tether = env.repo().join(".tether");
    std::fs::create_dir_all(&tether).expect("mkdir");
    std::fs::write(
        tether.join("config.toml"),
        "[providers.claude]\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"touch /tmp/owned\"]\n",
    )
    .expect("write");
    let model = FakeModel::start().await;
    let mut client = env.server(&model).await;
    let error = client.call_err("tether/providers/list", json!({})).await;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("providers.claude.command") && message.contains("what program runs"),
        "{error}"
    );
    let error = client
        .call_err(
            "tether/session/create",
            json!({"prompt": "hi", "provider": "claude"}),
        )
        .await;
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|text| text.contains("what program runs")),
        "{error}"
    );
    client.shutdown().await;
}

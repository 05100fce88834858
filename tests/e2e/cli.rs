//! The command line: `tether --version`, `tether run`, `tether sessions …`, with settings
//! from the user's and the repository's config files.

use serde_json::Value;

use crate::support::{FakeModel, Reply, TestEnv, agent_messages};

/// Writes the user's config file pointing at `model`.
fn write_user_config(env: &TestEnv, model: &FakeModel) {
    let dir = env.home().join("config/tether");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "default_provider = \"fake\"\n\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"from-user-file\"\nmax_retries = 0\n",
            model.base_url()
        ),
    )
    .expect("write config");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_names_the_package() {
    let env = TestEnv::new();
    let output = env.tether(&["--version"]).await;
    assert!(output.status.success());
    assert_eq!(
        text(&output.stdout).trim(),
        format!("tether {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_streams_a_session_then_sessions_lists_shows_and_exports_it() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["Headless ", "hello."]));
    write_user_config(&env, &model);
    let repo = env.repo();
    let repo_arg = repo.to_str().expect("utf-8 path");

    let output = env
        .tether(&["run", "--repo", repo_arg, "--name", "headless", "Greet me"])
        .await;
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("session headless"), "{stdout}");
    assert!(stdout.contains("agent: Headless hello."), "{stdout}");
    assert!(stdout.contains("[turn ended: end_turn]"), "{stdout}");
    assert!(stdout.trim_end().ends_with("[waiting]"), "{stdout}");
    assert_eq!(model.requests()[0]["model"], "from-user-file");

    // The same run as JSON lines: every line an event, gap-free.
    model.push(Reply::text(&["Again."]));
    let output = env
        .tether(&["run", "--json", "--repo", repo_arg, "Greet me again"])
        .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    crate::support::assert_gap_free(&lines);
    assert_eq!(agent_messages(&lines)[0]["text"], "Again.");

    let output = env.tether(&["sessions", "list", "--repo", repo_arg]).await;
    let listing = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        listing.contains("headless") && listing.contains("greet-me-again"),
        "{listing}"
    );
    assert_eq!(listing.lines().count(), 2, "{listing}");
    let output = env
        .tether(&["sessions", "list", "--json", "--repo", repo_arg])
        .await;
    let listed: Value = serde_json::from_slice(&output.stdout).expect("JSON list");
    for info in listed.as_array().expect("sessions") {
        assert_eq!(
            info["startedBy"],
            serde_json::json!({"kind": "cli"}),
            "{info}"
        );
    }

    let output = env
        .tether(&["sessions", "show", "headless", "--repo", repo_arg])
        .await;
    let shown = text(&output.stdout);
    assert!(shown.contains("## User\n\nGreet me"), "{shown}");
    assert!(shown.contains("## Agent\n\nHeadless hello."), "{shown}");

    let output = env
        .tether(&[
            "sessions", "export", "headless", "--format", "json", "--repo", repo_arg,
        ])
        .await;
    let exported: Value = serde_json::from_slice(&output.stdout).expect("JSON export");
    assert_eq!(exported["session"]["name"], "headless");
    assert_eq!(exported["session"]["status"], "waiting");

    let output = env
        .tether(&["sessions", "show", "nope", "--repo", repo_arg])
        .await;
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("no session with id or name \"nope\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exits_non_zero_with_a_clear_message_when_the_session_fails() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::Status(500, "model on fire".to_owned()));
    write_user_config(&env, &model);
    let repo = env.repo();
    let output = env
        .tether(&["run", "--repo", repo.to_str().expect("utf-8"), "Hi"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("session failed") && stderr.contains("model on fire"),
        "{stderr}"
    );

    let plain = env.home().join("plain");
    std::fs::create_dir_all(&plain).expect("mkdir");
    let output = env
        .tether(&["run", "--repo", plain.to_str().expect("utf-8"), "Hi"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("not inside a git repository"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_config_file_overrides_the_users() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["ok"]));
    write_user_config(&env, &model);
    let repo = env.repo();
    std::fs::create_dir_all(repo.join(".tether")).expect("mkdir");
    std::fs::write(
        repo.join(".tether/config.toml"),
        "[providers.fake]\nmodel = \"from-repo-file\"\ntemperature = 0.25\nmax_tokens = 77\n\n[session]\nsandbox = \"off\"\n",
    )
    .expect("write");
    let output = env
        .tether(&["run", "--repo", repo.to_str().expect("utf-8"), "Hi"])
        .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let request = &model.requests()[0];
    assert_eq!(request["model"], "from-repo-file");
    assert_eq!(request["temperature"], 0.25);
    assert_eq!(request["max_tokens"], 77);
    // …but not loosen a safety setting: that is ignored, and said on stderr.
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("warning: ")
            && stderr.contains(
            r#".tether/config.toml sets session.sandbox = "off", looser than your "auto"; ignored"#
        ),
        "{stderr}"
    );

    // A broken file is an error that names the file, not a crash.
    std::fs::write(
        repo.join(".tether/config.toml"),
        "[providers.fake\nmodel = ",
    )
    .expect("write");
    let output = env
        .tether(&["run", "--repo", repo.to_str().expect("utf-8"), "Hi"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(".tether/config.toml") && stderr.contains("TOML"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_shell_completions_and_its_manual_page() {
    let env = TestEnv::new();
    for (shell, wanted) in [
        ("bash", "complete -F _tether"),
        ("zsh", "#compdef tether"),
        ("fish", "complete -c tether"),
    ] {
        let output = env.tether(&["completions", shell]).await;
        assert!(output.status.success(), "{output:?}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains(wanted), "{shell}: {script}");
        for subcommand in ["lsp", "run", "sessions", "daemon", "completions", "man"] {
            assert!(
                script.contains(subcommand),
                "{shell} completes {subcommand}"
            );
        }
    }
    let bad = env.tether(&["completions", "cmd.exe"]).await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid value"),
        "{bad:?}"
    );
    let man = env.tether(&["man"]).await;
    assert!(man.status.success(), "{man:?}");
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH tether 1"),
        "{page}"
    );
    assert!(
        page.contains(".TH tether 1") && page.contains("sessions"),
        "{page}"
    );
}

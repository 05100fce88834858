//! A real Neovim (0.11, headless) against the real binary: tests/nvim/surfaces.lua drives
//! it (and tests/nvim/plugin.lua the plugin); this checks what it saw.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    FakeModel, Reply, TestEnv, assert_shows, git, isolated_command, last_message,
};

/// `TETHER_NVIM`, else the venv scripts/neovim.sh installs, else `nvim` on PATH.
fn neovim() -> PathBuf {
    if let Some(path) = std::env::var_os("TETHER_NVIM") {
        return PathBuf::from(path);
    }
    let cached = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/tether/nvim-venv/bin/nvim"));
    match cached {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("nvim"),
    }
}

/// Neovim 0.10 or newer, checked.
fn checked_neovim() -> PathBuf {
    let nvim = neovim();
    let version = std::process::Command::new(&nvim)
        .arg("--version")
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run {nvim:?} ({error}); run scripts/neovim.sh install")
        });
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.starts_with("NVIM v0.1") && !version.starts_with("NVIM v0.1."),
        "Neovim 0.10 or newer is needed, found {version:?}"
    );
    nvim
}

/// `calc.py` with a subtract that adds, committed.
fn calc_repository() -> TestEnv {
    let env = TestEnv::new();
    std::fs::write(env.repo().join("calc.py"), CALC).expect("write");
    git(&env.repo(), &["add", "."]);
    git(&env.repo(), &["commit", "-q", "-m", "calc"]);
    env
}

const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a + b\n";

const FIX_SUBTRACT: &str = r#"{"path": "calc.py", "old_string": "def subtract(a, b):\n    return a + b\n", "new_string": "def subtract(a, b):\n    return a - b\n"}"#;

/// Runs `tests/nvim/<script>` in a headless Neovim with the isolated environment a test
/// server gets; returns the JSON it printed last, failing with its output if it failed.
async fn run_script(
    nvim: &Path,
    script: &str,
    env: &TestEnv,
    model: &FakeModel,
    file: &str,
    extra_env: &[(&str, &str)],
) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("tests/nvim").join(script);
    // Neovim runs with the same isolated state and config folders a test server gets.
    let isolated = isolated_command(env.home());
    let mut command = tokio::process::Command::new(nvim);
    for (key, value) in isolated.as_std().get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let output = command
        .args(["--headless", "-u", "NONE", "-i", "NONE", "-n", "-l"])
        .arg(&script)
        .env("TETHER_BIN", env!("CARGO_BIN_EXE_tether"))
        .env("TETHER_REPO", env.repo())
        .env("TETHER_FILE", file)
        .env("TETHER_SETTINGS", model.settings().to_string())
        .env("TETHER_PLUGIN", root.join("editors/nvim"))
        .env("TETHER_NVIM_TESTS", root.join("tests/nvim"))
        .envs(extra_env.iter().copied())
        .current_dir(env.repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("Neovim finished within 90 s")
        .expect("Neovim ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let results: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no results from Neovim; stdout {stdout}\nstderr {stderr}"));
    assert!(
        output.status.success(),
        "Neovim failed: {results:#}\nstderr {stderr}"
    );

    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Neovim 0.11: scripts/neovim.sh installs it, scripts/test.sh runs this"]
async fn neovim_applies_the_edit_shows_diagnostics_and_runs_code_actions() {
    let nvim = checked_neovim();
    let env = calc_repository();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[("edit_file", FIX_SUBTRACT)]));
    model.push(Reply::text(&["fixed"]));

    let results = run_script(&nvim, "surfaces.lua", &env, &model, "calc.py", &[]).await;

    assert_eq!(results["position_encoding"], "utf-8", "Neovim offers UTF-8");
    // The fix landed in the buffer, around the user's unsaved line, and is undoable.
    assert_eq!(
        results["applied_lines"],
        json!([
            "# mine, not saved",
            "def add(a, b):",
            "    return a + b",
            "",
            "",
            "def subtract(a, b):",
            "    return a - b"
        ]),
        "{results:#}"
    );
    assert_eq!(
        results["modified"], true,
        "applied to the buffer, not saved"
    );
    assert_eq!(
        (&results["after_undo"][0], &results["after_undo"][6]),
        (&json!("# mine, not saved"), &json!("    return a + b")),
        "one undo takes the edit back, and only the edit: {results:#}"
    );
    assert_eq!(
        std::fs::read_to_string(env.repo().join("calc.py")).expect("read"),
        CALC,
        "nothing was written behind the editor's back"
    );

    let diagnostic = &results["diagnostic"];
    assert_eq!(diagnostic["severity"], 1, "high is an error: {diagnostic}");
    assert_eq!(diagnostic["source"], "tether review");
    assert_eq!(diagnostic["code"], "bug");
    // Line 2 of the file as the finding names it; the buffer has the user's line on top, so
    // it shows where the server put it: 0-based line 1.
    assert_eq!(diagnostic["lnum"], 1);

    let titles: Vec<&str> = results["action_titles"]
        .as_array()
        .expect("titles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for wanted in [
        "tether: nvim-fix: Ask the session to fix this: add is untested",
        "tether: nvim-fix: Dismiss: add is untested",
        "tether: New session…",
        "tether: Apply changes of nvim-fix",
        "tether: Open transcript of nvim-fix",
    ] {
        assert!(titles.contains(&wanted), "{wanted:?} in {titles:#?}");
    }
    assert_eq!(results["cleared"], true, "Dismiss cleared the diagnostic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Neovim 0.11: scripts/neovim.sh installs it, scripts/test.sh runs this"]
async fn the_neovim_plugin_runs_a_session_from_new_to_apply() {
    let results = plugin_session(&[]).await;
    assert!(results["started_by"].is_null(), "{results:#}");
    // :Tether feedback rated the reply; the transcript buffer shows it.
    assert_eq!(results["feedback_shown"], true, "{results:#}");
}

/// Neovim 0.10 has no `vim.lsp.config`/`vim.lsp.enable` (and none is installable here): the
/// same session with them taken away, so the plugin starts the server on FileType itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Neovim 0.11: scripts/neovim.sh installs it, scripts/test.sh runs this"]
async fn the_neovim_plugin_starts_the_server_itself_without_vim_lsp_enable() {
    let results = plugin_session(&[("TETHER_NVIM_AS_0_10", "1")]).await;
    assert_eq!(results["started_by"], "vim.lsp.start", "{results:#}");
}

/// tests/nvim/plugin.lua's session, checked; returns what it saw.
async fn plugin_session(extra_env: &[(&str, &str)]) -> Value {
    let nvim = checked_neovim();
    let env = calc_repository();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "ask_user",
        r#"{"questions": [{"prompt": "Which way?", "kind": "single", "options": ["left", "right"]}]}"#,
    )]));
    model.push(Reply::tool_calls(&[(
        "propose_plan",
        r#"{"phases": [{"title": "Fix subtract", "subtasks": ["use minus"]}]}"#,
    )]));
    model.push(Reply::tool_calls(&[("edit_file", FIX_SUBTRACT)]));
    model.push(Reply::text(&["went right and fixed subtract"]));
    // `:Tether edit` runs again from the first message; slowly, so that a message sent
    // meanwhile waits and can be taken back.
    model.push(Reply::text_paced(
        &["edited ", "from nvim"],
        std::time::Duration::from_secs(3),
    ));
    // `:Tether compact`.
    model.push(Reply::text(&["what happened, in short"]));
    // `:Tether send --attach calc.py …`.
    model.push(Reply::text(&["a calculator"]));

    let results = run_script(&nvim, "plugin.lua", &env, &model, "calc.py", extra_env).await;

    // :Tether new asked for the prompt; the question came through vim.ui.select.
    let asked: Vec<&str> = results["asked"]
        .as_array()
        .expect("asked")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        asked
            .iter()
            .any(|prompt| prompt.starts_with("What should the session do")),
        "{asked:?}"
    );
    assert!(asked.contains(&"Which way?"), "{asked:?}");
    // ... after asking which agent: the default first, a missing agent saying how to get it.
    assert_eq!(asked[0], "Which agent runs the session?", "{asked:?}");
    let agents: Vec<&str> = results["agents"]
        .as_array()
        .expect("the agents offered")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(agents[0].starts_with("fake (default)"), "{agents:?}");
    assert!(
        agents.iter().any(|agent| agent.starts_with("claude")
            && agent.contains("not available")
            && agent.contains("npm install -g @agentclientprotocol/claude-agent-acp")),
        "{agents:?}"
    );
    let first_prompt = model.requests()[0]["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["role"] == "user").cloned())
        .expect("the prompt");
    assert_eq!(
        first_prompt["content"],
        "fix subtract, and ask me which way first"
    );
    let answered = last_message(&model.requests()[1]);
    assert!(answered.contains("right"), "{answered}");
    // The plan came through vim.ui.select too, and its first choice approved it.
    assert!(asked.contains(&"Plan: Fix subtract"), "{asked:?}");
    let approved = last_message(&model.requests()[2]);
    assert!(approved.contains("approved"), "{approved}");

    // The transcript buffer filled live.
    assert!(
        results["transcript_name"]
            .as_str()
            .is_some_and(|name| name.starts_with("tether://")),
        "{results:#}"
    );
    assert!(
        results["transcript"]
            .as_str()
            .is_some_and(|text| text.contains("fix subtract") && text.contains("went right")),
        "{results:#}"
    );

    // The turn showed as progress through Neovim's own $/progress handling: begun with the
    // session's name, reported while the question waited, ended with the turn.
    let progress = results["progress"].as_array().expect("progress");
    let session_name = results["transcript_name"]
        .as_str()
        .and_then(|name| name.strip_prefix("tether://"))
        .expect("the session's name");
    assert!(
        progress
            .iter()
            .any(|value| value["kind"] == "begin"
                && value["title"] == format!("tether: {session_name}")),
        "{progress:#?}"
    );
    for kind in ["report", "end"] {
        assert!(
            progress.iter().any(|value| value["kind"] == kind),
            "a {kind} in {progress:#?}"
        );
    }

    // :Tether edit ran again from the first message with its new text; the message sent
    // meanwhile was listed as queued, taken back with :Tether unqueue, and never sent.
    for field in [
        "superseded_shown",
        "queued_shown",
        "taken_back",
        "edited_reply",
        "context_shown",
        "cost_shown",
        "summary_shown",
        "attachment_shown",
        "attached_reply",
    ] {
        assert_eq!(results[field], true, "{field}: {results:#}");
    }
    let requests = model.requests();
    assert_eq!(
        last_message(&requests[requests.len() - 3]),
        "fix subtract again, no questions"
    );
    assert!(last_message(&requests[requests.len() - 2]).contains("about to be cut"));
    // Command-line completion of `:Tether send` asked the server for files and commands.
    assert_eq!(results["cmdline_files"], json!(["@calc.py"]), "{results:#}");
    assert_eq!(
        results["cmdline_commands"],
        json!(["/review"]),
        "{results:#}"
    );
    let attached = last_message(requests.last().expect("a request"));
    assert!(
        attached.starts_with("what is in this file?")
            && attached.contains("Attached file `calc.py`:"),
        "{attached}"
    );
    assert!(
        !requests
            .iter()
            .any(|request| request.to_string().contains("please also rename it")),
        "the message taken back never reached the model"
    );

    // :Tether apply put the fix into the open buffer.
    assert_eq!(results["file_lines"][5], "    return a - b", "{results:#}");
    assert_eq!(results["modified"], true);
    let health = results["health"].as_str().unwrap_or_default();
    assert!(
        health.contains("tether") && health.contains("OK"),
        "{results:#}"
    );
    // `tether doctor`'s report, line by line.
    assert!(
        health.contains("tether doctor")
            && health.contains("git: git version")
            && health.contains("state folder: "),
        "{health}"
    );
    assert!(
        health.contains(&format!("tether {}", env!("CARGO_PKG_VERSION"))),
        "{health}"
    );
    // `:Tether` completes its subcommands, sorted.
    assert_eq!(
        results["cmdline_subcommands"],
        json!(["resume", "review", "review-diff"]),
        "{results:#}"
    );
    results
}

/// `:Tether review-diff`: the hunk keymaps on a two-file diff, what lands in the user's
/// buffer, and what the agent is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Neovim 0.11: scripts/neovim.sh installs it, scripts/test.sh runs this"]
async fn the_neovim_plugin_reviews_a_diff_hunk_by_hunk() {
    let nvim = checked_neovim();
    let env = TestEnv::new();
    let numbers: String = (1..=20).map(|n| format!("line {n}\n")).collect();
    std::fs::write(env.repo().join("numbers.txt"), &numbers).expect("write");
    git(&env.repo(), &["add", "."]);
    git(&env.repo(), &["commit", "-q", "-m", "numbers"]);
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[
        (
            "edit_file",
            r#"{"path": "numbers.txt", "old_string": "line 3\n", "new_string": "line three\n"}"#,
        ),
        (
            "edit_file",
            r#"{"path": "numbers.txt", "old_string": "line 15\n", "new_string": "line fifteen\n"}"#,
        ),
        (
            "write_file",
            r#"{"path": "new.txt", "content": "brand new\n"}"#,
        ),
    ]));
    model.push(Reply::text(&["changed"]));
    model.push(Reply::text(&["understood"]));
    model.push(Reply::text(&["fixed five"]));
    let results = run_script(&nvim, "review.lua", &env, &model, "numbers.txt", &[]).await;

    assert_eq!(results["windows"], 2, "{results:#}");
    assert_eq!(results["diff"], true, "{results:#}");
    assert!(
        results["right_name"]
            .as_str()
            .is_some_and(|name| name.starts_with("tether-review://") && name.ends_with("/new.txt")),
        "{results:#}"
    );
    assert!(
        results["winbar"]
            .as_str()
            .is_some_and(|bar| bar.contains("0 of 3 hunks reviewed") && bar.contains("ga/gr")),
        "{results:#}"
    );
    assert_eq!(results["line_3"], "line three", "{results:#}");
    assert_eq!(
        results["line_15"], "line 15, mine",
        "yours kept: the conflict was not applied, then the hunk rejected: {results:#}"
    );
    assert_eq!(
        results["progress_after_conflict"], "2 of 3 hunks reviewed",
        "{results:#}"
    );
    assert!(
        results["notified"]
            .as_array()
            .is_some_and(|notified| notified.iter().any(|message| {
                message.as_str().is_some_and(|text| {
                    text.contains("numbers.txt hunk #1: you changed the same lines")
                })
            })),
        "{results:#}"
    );
    assert!(
        results["second_file"]
            .as_str()
            .is_some_and(|name| name.ends_with("/numbers.txt")),
        "{results:#}"
    );
    assert!(
        results["winbar_done"]
            .as_str()
            .is_some_and(|bar| bar.contains("3 of 3 hunks reviewed")),
        "{results:#}"
    );
    assert_eq!(results["new_file_exists"], false, "{results:#}");
    let saved = std::fs::read_to_string(env.repo().join("numbers.txt")).expect("read");
    assert_eq!(
        saved,
        numbers
            .replace("line 3\n", "line three\n")
            .replace("line 15\n", "line 15, mine\n")
    );
    let requests = model.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    let told = last_message(&requests[2]);
    assert!(
        told.contains("rejected these hunks")
            && told.contains("numbers.txt hunk #1")
            && told.contains("new.txt hunk #0")
            && !told.contains("numbers.txt hunk #0")
            && told.ends_with("thanks"),
        "{told}"
    );
    // The checkpoints, from the transcript's `gc` and `:Tether checkpoints`: a rewind to the
    // start took the new file away, its undo put it back.
    let items: Vec<&str> = results["checkpoint_items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        items
            .first()
            .is_some_and(|item| item.starts_with("turn 1 · 2 files +3 −2")
                && item.contains("new.txt, numbers.txt")),
        "{results:#}"
    );
    assert!(
        items
            .iter()
            .any(|item| item.starts_with("before the rewind to start (undoes it)")),
        "{items:?}"
    );
    assert_eq!(results["rewound_removed_new_file"], true, "{results:#}");
    assert_eq!(results["undo_restored_new_file"], true, "{results:#}");
    // :Tether findings: listed (and in the quickfix list), fixed, then dismissed.
    assert_eq!(
        results["finding_items"],
        json!(["[high] numbers.txt:5 five is wrong (review)"]),
        "{results:#}"
    );
    assert_eq!(
        results["finding_actions"],
        json!(["Fix", "Dismiss", "Open"])
    );
    assert_eq!(
        results["quickfix_title"],
        "tether findings: change-the-numbers"
    );
    assert_eq!(results["quickfix_text"], "[high] five is wrong (review)");
    assert_eq!(results["quickfix_line"], 5);
    let fix = last_message(&requests[3]);
    assert!(
        fix.contains("five is wrong") && fix.contains("numbers.txt"),
        "{fix}"
    );
    assert_eq!(results["open_after_dismiss"], 0, "{results:#}");
}

/// `:Tether git`: the status buffer's keys against a bare remote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Neovim 0.11: scripts/neovim.sh installs it, scripts/test.sh runs this"]
async fn the_neovim_plugin_git_buffer_stages_commits_pushes_and_merges() {
    let nvim = checked_neovim();
    let env = TestEnv::new();
    env.identify_user();
    let remote = env.home().join("remote.git");
    git(
        env.home(),
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    git(
        &env.repo(),
        &["remote", "add", "origin", remote.to_str().expect("path")],
    );
    git(&env.repo(), &["push", "-q", "origin", "main"]);
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[
        ("write_file", r#"{"path": "a.txt", "content": "one\n"}"#),
        (
            "edit_file",
            r##"{"path": "README.md", "old_string": "# sample\n", "new_string": "# sample, changed\n"}"##,
        ),
    ]));
    model.push(Reply::text(&["done"]));
    let results = run_script(
        &nvim,
        "git.lua",
        &env,
        &model,
        "README.md",
        &[("TETHER_REMOTE", remote.to_str().expect("path"))],
    )
    .await;

    assert_eq!(results["name"], "tether-git://add-a", "{results:#}");
    assert_shows(
        &results,
        &[
            (
                "before",
                "tether/add-a → main: 0 ahead, 0 behind · not pushed yet",
            ),
            ("before", "U a.txt"),
            ("before", "M README.md"),
            ("staged", "Staged (1)\nA a.txt"),
            ("committed", "1 ahead, 0 behind"),
            ("refused", "Refused: nothing is staged; stage files first"),
            ("pushed", "origin/tether/add-a: up to date"),
            (
                "push_refused",
                "Refused: origin has commits on tether/add-a that this branch lacks (not a fast-forward)",
            ),
            ("merged", "0 ahead, 0 behind"),
        ],
    );
    let branch = git(
        &remote,
        &["for-each-ref", "--format=%(refname)", "refs/heads/tether/"],
    );
    assert!(branch.contains("refs/heads/tether/add-a"), "{branch}");
    let log = git(&env.repo(), &["log", "--format=%s", "main"]);
    assert!(log.contains("add a"), "{log}");
    assert!(
        env.repo().join("a.txt").exists(),
        "merged into the checked-out main"
    );
}

/// README.md's lazy.nvim spec sets the plugin up from the repository's folder, with no path
/// to edit, and builds the binary with `cargo install`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Neovim 0.11: scripts/neovim.sh installs it, scripts/test.sh runs this"]
async fn the_readmes_lazy_nvim_spec_sets_the_plugin_up() {
    let nvim = checked_neovim();
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let results = run_script(&nvim, "lazy_spec.lua", &env, &model, "", &[]).await;
    assert_eq!(
        results["build"], "cargo install --locked --path server",
        "{results:#}"
    );
    assert_eq!(results["name"], "tether", "{results:#}");
    assert_eq!(results["command"], 2, ":Tether exists: {results:#}");
    assert_eq!(results["loaded"], true, "{results:#}");
    assert_eq!(results["health"], true, "{results:#}");
    assert_eq!(results["completion"], json!(["doctor"]), "{results:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Neovim 0.11: scripts/neovim.sh installs it, scripts/test.sh runs this"]
async fn the_neovim_plugin_races_two_agents_as_a_task_and_promotes_one() {
    let nvim = checked_neovim();
    let env = calc_repository();
    let (alpha, beta) = (FakeModel::start().await, FakeModel::start().await);
    alpha.push(Reply::tool_calls(&[("edit_file", FIX_SUBTRACT)]));
    alpha.push(Reply::text(&["fixed"]));
    beta.push(Reply::tool_calls(&[(
        "edit_file",
        r#"{"path": "calc.py", "old_string": "def subtract(a, b):\n    return a + b\n", "new_string": "def subtract(a, b):\n    return b - a\n"}"#,
    )]));
    beta.push(Reply::text(&["fixed too"]));
    let provider = |model: &FakeModel, name: &str| {
        serde_json::json!({"kind": "openai", "base_url": model.base_url(),
            "model": format!("{name}-model"), "max_retries": 0})
    };
    let settings = serde_json::json!({
        "review": {"auto": false},
        "default_provider": "alpha",
        "providers": {"alpha": provider(&alpha, "alpha"), "beta": provider(&beta, "beta")},
    })
    .to_string();
    let results = run_script(
        &nvim,
        "tasks.lua",
        &env,
        &alpha,
        "calc.py",
        &[("TETHER_SETTINGS", &settings)],
    )
    .await;
    let asked: Vec<&str> = results["asked"]
        .as_array()
        .expect("asked")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        &asked[..4],
        [
            "Trial 1: which agent? (0 chosen)",
            "Trial 2: which agent? (1 chosen)",
            "Trial 3: which agent? (2 chosen)",
            "What should the trials do? "
        ],
        "{asked:?}"
    );
    let text = results["task_text"].as_str().expect("the task buffer");
    assert!(text.starts_with("# Task: fix subtract"), "{text}");
    assert!(text.contains("## Where the trials differ"), "{text}");
    assert!(
        results["task_buffer_name"]
            .as_str()
            .is_some_and(|name| name.starts_with("tether-task://fix-subtract")),
        "{results:#}"
    );
    // Both trials were offered with their evidence; the user took beta's, applied.
    let offered = results["trials_offered"]
        .as_array()
        .expect("trials offered");
    assert_eq!(offered.len(), 2, "{results:#}");
    assert!(
        offered[1].as_str().is_some_and(
            |line| line.starts_with("trial 2  beta/beta-model  [waiting]  1 files +1 -1")
        ),
        "{offered:?}"
    );
    assert_eq!(
        results["hows"],
        serde_json::json!([
            "apply to my files",
            "merge into main",
            "open a pull request"
        ])
    );
    assert_eq!(results["file_lines"][5], "    return b - a", "{results:#}");
    assert!(
        results["notified"]
            .as_array()
            .expect("notified")
            .iter()
            .any(|message| message.as_str().is_some_and(
                |message| message.contains("trial 2 of fix-subtract promoted (apply)")
            )),
        "{results:#}"
    );
}

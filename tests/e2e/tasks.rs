//! Tasks and trials: one prompt raced by several agents on their own branches, compared on
//! evidence (diff, verification, review, the repository's test hook, cost, time) and one
//! promoted by apply, merge or pull request. Each trial talks to its own scripted model
//! server, so what each trial does is certain however the race runs.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message, git};

/// The repository's test hook: fails when a trial left `broken.txt`.
const TEST_HOOK: &str = "[[hooks.on_agent_finish]]\nname = \"tests\"\ncommand = \"test ! -f broken.txt || { echo 'the tests fail' >&2; exit 1; }\"\n";

const NO_FINDINGS: &str = "{\"findings\": []}";

fn findings(severity: &str, title: &str) -> String {
    format!(
        "{{\"findings\": [{{\"file\": \"greet.txt\", \"startLine\": 1, \"endLine\": 1, \"severity\": \"{severity}\", \"category\": \"bug\", \"title\": \"{title}\"}}]}}"
    )
}

pub(crate) fn openai(model: &FakeModel, name: &str) -> Value {
    json!({"kind": "openai", "base_url": model.base_url(), "model": format!("{name}-model"),
           "max_retries": 0, "timeout_secs": 10})
}

/// Three model servers: `alpha`, `beta` and `gamma` of [`race_settings`].
pub(crate) async fn three_models() -> (FakeModel, FakeModel, FakeModel) {
    (
        FakeModel::start().await,
        FakeModel::start().await,
        FakeModel::start().await,
    )
}

/// Settings with providers `alpha` and `beta` (OpenAI-compatible) and `gamma` (Anthropic),
/// each its own server; verification and review run after every turn that changed files.
pub(crate) fn race_settings(alpha: &FakeModel, beta: &FakeModel, gamma: &FakeModel) -> Value {
    json!({
        "review": {"auto": true},
        "default_provider": "alpha",
        "providers": {
            "alpha": openai(alpha, "alpha"),
            "beta": openai(beta, "beta"),
            "gamma": {"kind": "anthropic", "base_url": format!("http://127.0.0.1:{}", gamma.port),
                      "api_key_env": "TETHER_TEST_ANTHROPIC_KEY", "model": "claude-test",
                      "max_retries": 0},
        }
    })
}

pub(crate) async fn race_client(
    env: &TestEnv,
    settings: Value,
    extra_env: &[(&str, &str)],
) -> LspClient {
    let mut env_vars = vec![("TETHER_TEST_ANTHROPIC_KEY", "test-key")];
    env_vars.extend_from_slice(extra_env);
    let mut client = LspClient::spawn_with_env(env.home(), &env_vars).await;
    // An editor that can create files in an edit (a promoted trial adds some).
    let capabilities = json!({
        "experimental": {"tether": true},
        "workspace": {"workspaceEdit": {
            "documentChanges": true,
            "resourceOperations": ["create", "rename", "delete"],
        }},
    });
    client
        .initialize_with(&env.repo(), settings, capabilities)
        .await;
    client
}

/// Polls `tether/task/get` until `done` holds (30 s at most); the task then.
pub(crate) async fn task_until(
    client: &mut LspClient,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let task = client.call("tether/task/get", json!({"id": id})).await;
        if done(&task) {
            return task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task never got there: {task:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn trial(task: &Value, index: u64) -> &Value {
    task["trials"]
        .as_array()
        .and_then(|trials| trials.iter().find(|trial| trial["index"] == index))
        .unwrap_or_else(|| panic!("no trial {index}: {task:#}"))
}

fn settled(task: &Value) -> bool {
    task["status"] == "done"
        && task["trials"].as_array().is_some_and(|trials| {
            trials.iter().all(|trial| {
                matches!(trial["verification"].as_str(), Some("passed" | "failed"))
                    && matches!(trial["review"].as_str(), Some("passed" | "failed"))
                    && trial["hooks"]
                        .as_array()
                        .is_some_and(|hooks| !hooks.is_empty())
            })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_trials_on_two_kinds_of_provider_race_and_are_compared_on_evidence() {
    let env = TestEnv::new();
    env.commit_repo_config(TEST_HOOK);
    let base = git(&env.repo(), &["rev-parse", "main"]).trim().to_owned();
    let (alpha, beta, gamma) = three_models().await;
    // Trial 1: greets with "hello", edits the README; verified clean, reviewed with one
    // high finding.
    alpha.push(Reply::tool_calls(&[
        ("write_file", r#"{"path": "greet.txt", "content": "hello\n"}"#),
        (
            "edit_file",
            r##"{"path": "README.md", "old_string": "# sample\n", "new_string": "# sample\nGreets people.\n"}"##,
        ),
    ]));
    alpha.push(Reply::text(&["done"]));
    alpha.push(Reply::text(&[NO_FINDINGS]));
    alpha.push(Reply::text(&[&findings("high", "rude greeting")]));
    // Trial 2: the same README line, another greeting; its verification finds a problem.
    beta.push(Reply::tool_calls(&[
        ("write_file", r#"{"path": "greet.txt", "content": "hi\n"}"#),
        (
            "edit_file",
            r##"{"path": "README.md", "old_string": "# sample\n", "new_string": "# sample\nGreets people.\n"}"##,
        ),
    ]));
    beta.push(Reply::text(&["done"]));
    beta.push(Reply::text(&[&findings(
        "medium",
        "no test for the greeting",
    )]));
    beta.push(Reply::text(&[NO_FINDINGS]));
    // Trial 3 (Anthropic): leaves broken.txt, which the repository's tests refuse.
    gamma.push(Reply::anthropic_tool(
        "toolu_1",
        "write_file",
        json!({"path": "broken.txt", "content": "oops\n"}),
    ));
    gamma.push(Reply::anthropic_text("done"));
    gamma.push(Reply::anthropic_text(NO_FINDINGS));
    gamma.push(Reply::anthropic_text(NO_FINDINGS));

    let mut client = race_client(&env, race_settings(&alpha, &beta, &gamma), &[]).await;
    client.call("tether/session/trust", json!({})).await;
    let created = client
        .call(
            "tether/task/create",
            json!({"prompt": "Greet the user\nin greet.txt", "name": "greet",
                   "trials": [{"provider": "alpha"}, {"provider": "beta"}, {"provider": "gamma"}]}),
        )
        .await;
    let id = created["id"].as_str().expect("a task id").to_owned();
    assert_eq!(created["name"], "greet");
    assert_eq!(created["title"], "Greet the user");
    assert_eq!(created["baseBranch"], "main");
    assert_eq!(created["baseCommit"], base.as_str(), "{created:#}");
    assert_eq!(created["trials"].as_array().map(Vec::len), Some(3));
    for (index, provider) in [(1, "alpha"), (2, "beta"), (3, "gamma")] {
        let trial = trial(&created, index);
        assert_eq!(trial["provider"], provider);
        assert_eq!(trial["name"], format!("greet-{index}"));
        assert_eq!(trial["branch"], format!("tether/greet-{index}"));
    }

    let task = task_until(&mut client, &id, settled).await;
    let one = trial(&task, 1);
    assert_eq!(
        (&one["filesChanged"], &one["additions"], &one["deletions"]),
        (&json!(2), &json!(2), &json!(0)),
        "{one:#}"
    );
    assert_eq!(one["verification"], "passed", "{one:#}");
    assert_eq!(
        one["findings"],
        json!({"critical": 0, "high": 1, "medium": 0, "low": 0})
    );
    assert_eq!(one["hooksPassed"], true, "{one:#}");
    assert_eq!(one["status"], "waiting");
    assert_eq!(one["model"], "alpha-model");
    assert!(
        one["durationMs"].as_u64().is_some_and(|ms| ms > 0),
        "{one:#}"
    );
    let two = trial(&task, 2);
    assert_eq!(two["verification"], "failed", "{two:#}");
    assert_eq!(two["findings"]["medium"], 1, "{two:#}");
    assert_eq!(two["hooksPassed"], true);
    let three = trial(&task, 3);
    assert_eq!(three["filesChanged"], 1);
    assert_eq!(three["verification"], "passed", "{three:#}");
    assert_eq!(three["hooksPassed"], false, "{three:#}");
    assert_eq!(three["hooks"][0]["name"], "tests");
    assert_eq!(three["hooks"][0]["status"], "failed");
    assert!(
        three["inputTokens"]
            .as_u64()
            .is_some_and(|tokens| tokens > 0),
        "{three:#}"
    );
    // Each trial started from the task's base commit, on its own branch.
    for index in 1..=3 {
        let branch = format!("tether/greet-{index}");
        let merge_base = git(&env.repo(), &["merge-base", "main", &branch]);
        assert_eq!(merge_base.trim(), base);
    }
    // The editor heard of the task's progress.
    let heard = client
        .wait_for_message_matching("tether/task/event", |params| {
            params["taskId"] == id.as_str() && params["task"]["status"] == "done"
        })
        .await;
    assert_eq!(
        heard["params"]["task"]["trials"].as_array().map(Vec::len),
        Some(3)
    );

    // The comparison: who changed what, where they agree and differ, and each patch.
    let compared = client.call("tether/task/compare", json!({"id": id})).await;
    let files: Vec<(String, String, Vec<u64>)> = compared["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|file| {
            (
                file["path"].as_str().unwrap_or_default().to_owned(),
                file["agreement"].as_str().unwrap_or_default().to_owned(),
                file["trials"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|trial| trial["trial"].as_u64())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("README.md".to_owned(), "same".to_owned(), vec![1, 2]),
            ("broken.txt".to_owned(), "single".to_owned(), vec![3]),
            ("greet.txt".to_owned(), "different".to_owned(), vec![1, 2]),
        ]
    );
    let greet = compared["regions"]
        .as_array()
        .and_then(|regions| regions.iter().find(|region| region["path"] == "greet.txt"))
        .expect("the greeting's region");
    assert_eq!(greet["agreement"], "different");
    let variants: Vec<(Value, Value)> = greet["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|variant| (variant["trials"].clone(), variant["text"].clone()))
        .collect();
    assert_eq!(
        variants,
        [(json!([1]), json!("hello\n")), (json!([2]), json!("hi\n"))]
    );
    let readme = compared["regions"]
        .as_array()
        .and_then(|regions| regions.iter().find(|region| region["path"] == "README.md"))
        .expect("the README's region");
    assert_eq!(readme["agreement"], "same");
    assert_eq!(readme["variants"][0]["text"], "Greets people.\n");
    let patches = compared["patches"].as_array().expect("patches");
    assert_eq!(patches.len(), 3);
    assert!(
        patches[0]["patch"]
            .as_str()
            .is_some_and(|patch| patch.contains("+hello"))
    );
    assert!(
        patches[2]["patch"]
            .as_str()
            .is_some_and(|patch| patch.contains("+oops"))
    );
    let document = compared["document"].as_str().expect("document");
    assert!(
        document.contains(
            "| 1 | alpha/alpha-model | waiting | 2 | +2 −0 | 0/1/0/0 | passed | passed |"
        ),
        "{document}"
    );
    assert!(document.contains("failed: tests"), "{document}");

    // The task document (what Helix gets) and its code actions.
    let opened = client.call("tether/task/open", json!({"id": id})).await;
    let path = env.repo().join(".tether/tasks/greet.md");
    assert_eq!(
        opened["uri"].as_str(),
        Some(format!("file://{}", path.display()).as_str())
    );
    let text = std::fs::read_to_string(&path).expect("the task document");
    assert!(text.starts_with("# Task: Greet the user"), "{text}");
    assert!(text.contains("## Where the trials differ"), "{text}");
    let actions = client
        .code_actions(opened["uri"].as_str().expect("uri"), (0, 0), (0, 0))
        .await;
    let titles: Vec<&str> = actions
        .iter()
        .filter_map(|action| action["title"].as_str())
        .collect();
    for title in [
        "tether: Promote trial 1 (alpha/alpha-model): apply to my files",
        "tether: Promote trial 2 (beta/beta-model): merge into main",
        "tether: Promote trial 3 (gamma/claude-test): open a pull request",
    ] {
        assert!(titles.contains(&title), "{title} missing from {titles:#?}");
    }

    // Promote trial 1 by apply: its changes land in the user's files as one edit, the
    // choice and its reason are recorded, the others stay browsable.
    let promoted = client
        .call(
            "tether/task/promote",
            json!({"id": id, "sessionId": one["sessionId"], "how": "apply",
                   "reason": "kind words and no failing test"}),
        )
        .await;
    assert_eq!(promoted["apply"]["sent"], true, "{promoted:#}");
    assert_eq!(promoted["task"]["status"], "promoted");
    assert_eq!(promoted["task"]["promoted"]["trial"], 1);
    assert_eq!(promoted["task"]["promoted"]["how"], "apply");
    assert_eq!(
        promoted["task"]["promoted"]["reason"],
        "kind words and no failing test"
    );
    let edit = client.wait_for_message("workspace/applyEdit").await;
    let edit = edit["params"]["edit"].to_string();
    assert!(
        edit.contains("greet.txt") && edit.contains("hello"),
        "{edit}"
    );
    assert!(!edit.contains("oops"), "only trial 1's work: {edit}");
    let listed = client.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(3));
    let again = client
        .call_err(
            "tether/task/promote",
            json!({"id": id, "sessionId": two["sessionId"], "how": "merge"}),
        )
        .await;
    assert_eq!(again["code"], -32602, "{again}");
    assert!(
        error_message(&again).contains("promoted already"),
        "{again}"
    );

    // Deleting the task deletes its trials: sessions, branches, worktrees.
    client.call("tether/task/delete", json!({"id": id})).await;
    let listed = client.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"], json!([]));
    assert!(
        env.branches()
            .iter()
            .all(|branch| !branch.starts_with("tether/")),
        "{:?}",
        env.branches()
    );
    let tasks = client.call("tether/task/list", json!({})).await;
    assert_eq!(tasks["tasks"], json!([]));
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_by_merge_lands_in_the_base_and_a_conflict_changes_nothing() {
    let env = TestEnv::new();
    let repo = env.repo();
    env.identify_user();
    let (alpha, beta, gamma) = three_models().await;
    alpha.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "a.txt", "content": "from trial one\n"}"#,
    )]));
    alpha.push(Reply::text(&["done"]));
    beta.push(Reply::tool_calls(&[(
        "edit_file",
        r##"{"path": "README.md", "old_string": "# sample\n", "new_string": "# trial two\n"}"##,
    )]));
    beta.push(Reply::text(&["done"]));
    let mut settings = race_settings(&alpha, &beta, &gamma);
    settings["review"] = json!({"auto": false});
    let mut client = race_client(&env, settings, &[]).await;

    // Bad input first: nothing is made for a task that cannot start.
    for (trials, field) in [(json!([]), "trials"), (json!(vec![json!({}); 9]), "trials")] {
        let error = client
            .call_err(
                "tether/task/create",
                json!({"prompt": "x", "trials": trials}),
            )
            .await;
        assert_eq!(error["code"], -32602, "{error}");
        assert!(error_message(&error).contains(field), "{error}");
    }
    let error = client
        .call_err(
            "tether/task/create",
            json!({"prompt": "x", "trials": [{"provider": "alpha"}, {"provider": "nope"}]}),
        )
        .await;
    assert_eq!(error["code"], -32602, "{error}");
    assert!(
        error_message(&error).contains("trial 2") && error_message(&error).contains("nope"),
        "{error}"
    );
    assert_eq!(
        client.call("tether/task/list", json!({})).await["tasks"],
        json!([])
    );
    assert_eq!(
        client.call("tether/session/list", json!({})).await["sessions"],
        json!([])
    );

    let created = client
        .call(
            "tether/task/create",
            json!({"prompt": "change things", "trials": [{"provider": "alpha"}, {"provider": "beta"}]}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let task = task_until(&mut client, &id, |task| task["status"] == "done").await;
    let (one, two) = (trial(&task, 1).clone(), trial(&task, 2).clone());

    // The user moved main on the same line trial 2 changed: merging it conflicts.
    std::fs::write(repo.join("README.md"), "# the user's own\n").expect("write");
    git(&repo, &["commit", "-q", "-am", "user change"]);
    let main_before = git(&repo, &["rev-parse", "main"]);
    let error = client
        .call_err(
            "tether/task/promote",
            json!({"id": id, "sessionId": two["sessionId"], "how": "merge"}),
        )
        .await;
    assert_eq!(error["code"], -31004, "{error}");
    assert!(error_message(&error).contains("README.md"), "{error}");
    assert_eq!(git(&repo, &["rev-parse", "main"]), main_before);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    let task = client.call("tether/task/get", json!({"id": id})).await;
    assert!(task["promoted"].is_null(), "{task:#}");
    assert_eq!(trial(&task, 1)["status"], "waiting");

    // Trial 1 merges cleanly: its work is committed and lands on main.
    let promoted = client
        .call(
            "tether/task/promote",
            json!({"id": id, "sessionId": one["sessionId"], "how": "merge", "discardOthers": true}),
        )
        .await;
    assert_eq!(promoted["task"]["promoted"]["how"], "merge");
    let commit = promoted["commit"].as_str().expect("the trial's commit");
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).expect("merged"),
        "from trial one\n"
    );
    let log = git(&repo, &["log", "--format=%H %s%n%b", "main"]);
    assert!(log.contains(commit), "{log}");
    assert!(log.contains("Trial 1 of task"), "{log}");
    // The other trial was discarded with its branch; the promoted one stays.
    let sessions = client.call("tether/session/list", json!({})).await;
    let names: Vec<&str> = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|session| session["name"].as_str())
        .collect();
    assert_eq!(names, [one["name"].as_str().expect("name")]);
    let task = client.call("tether/task/get", json!({"id": id})).await;
    assert_eq!(trial(&task, 2)["gone"], true, "{task:#}");
    // The merged trial still shows its work: against the task's base, not the moved main.
    assert_eq!(trial(&task, 1)["filesChanged"], 1, "{task:#}");
    let compared = client.call("tether/task/compare", json!({"id": id})).await;
    assert_eq!(compared["files"][0]["path"], "a.txt", "{compared:#}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_outlives_a_daemon_killed_mid_race_and_working_or_failed_trials_are_not_promoted() {
    let env = TestEnv::new();
    let (alpha, beta, gamma) = three_models().await;
    // Trial 1 works slowly; trial 2's provider points at nothing, so it fails.
    alpha.push(Reply::text_paced(
        &["thinking", " still", " thinking", " more"],
        Duration::from_millis(1500),
    ));
    let mut settings = race_settings(&alpha, &beta, &gamma);
    settings["review"] = json!({"auto": false});
    settings["providers"]["dead"] = json!({"kind": "openai", "base_url": "http://127.0.0.1:9/v1",
        "model": "dead-model", "max_retries": 0, "timeout_secs": 2});
    let mut client = race_client(&env, settings.clone(), &[]).await;
    let created = client
        .call(
            "tether/task/create",
            json!({"prompt": "race", "trials": [{"provider": "alpha"}, {"provider": "dead"}]}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let task = task_until(&mut client, &id, |task| {
        trial(task, 1)["status"] == "running" && trial(task, 2)["status"] == "failed"
    })
    .await;
    let error = client
        .call_err(
            "tether/task/promote",
            json!({"id": id, "sessionId": trial(&task, 1)["sessionId"], "how": "merge"}),
        )
        .await;
    assert_eq!(error["code"], -31002, "{error}");
    let error = client
        .call_err(
            "tether/task/promote",
            json!({"id": id, "sessionId": trial(&task, 2)["sessionId"], "how": "merge"}),
        )
        .await;
    assert_eq!(error["code"], -31002, "{error}");
    assert!(error_message(&error).contains("failed"), "{error}");

    env.kill_daemon();
    client.kill().await;
    let mut client = race_client(&env, settings, &[]).await;
    let tasks = client.call("tether/task/list", json!({})).await;
    let task = &tasks["tasks"][0];
    assert_eq!(task["id"], id.as_str(), "{tasks:#}");
    assert_eq!(task["trials"].as_array().map(Vec::len), Some(2));
    let one = trial(task, 1);
    assert_eq!(one["status"], "stopped", "{one:#}");
    assert!(
        one["statusReason"]
            .as_str()
            .is_some_and(|reason| reason.contains("interrupted")),
        "{one:#}"
    );
    assert_eq!(trial(task, 2)["status"], "failed");
    // Stopping a task whose trials are all settled changes nothing and says so.
    let stopped = client.call("tether/task/stop", json!({"id": id})).await;
    assert_eq!(stopped["status"], "done", "{stopped:#}");
    client.call("tether/task/delete", json!({"id": id})).await;
    let error = client.call_err("tether/task/get", json!({"id": id})).await;
    assert_eq!(error["code"], -31001, "{error}");
    client.shutdown().await;
}

/// A scripted ACP agent (tests/acp/scripted_agent.py) as provider `name`, playing `turns`.
fn scripted_agent(env: &TestEnv, name: &str, turns: Value) -> Value {
    let dir = env.home().join(format!("agent-{name}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("script.json"), json!({"turns": turns}).to_string()).expect("script");
    let program = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/acp/scripted_agent.py")
        .canonicalize()
        .expect("the scripted agent");
    json!({
        "kind": "acp",
        "command": program,
        "env": {
            "SCRIPTED_ACP_SCRIPT": dir.join("script.json"),
            "SCRIPTED_ACP_LOG": dir.join("log.jsonl"),
        },
        "state_dirs": [dir],
        "timeout_secs": 5,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acp_agent_races_tethers_own_and_one_that_crashes_leaves_the_others_racing() {
    let env = TestEnv::new();
    let (alpha, beta, gamma) = three_models().await;
    alpha.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "notes.txt", "content": "from tether's agent\n"}"#,
    )]));
    alpha.push(Reply::text(&["done"]));
    let mut settings = race_settings(&alpha, &beta, &gamma);
    settings["review"] = json!({"auto": false});
    settings["providers"]["scripted"] = scripted_agent(
        &env,
        "scripted",
        json!([[{"write": ["notes.txt", "from the ACP agent\n"]}, {"say": "wrote the notes"}]]),
    );
    settings["providers"]["crasher"] = scripted_agent(
        &env,
        "crasher",
        json!([[{"write": ["half.txt", "half\n"]}, {"say": "about to"}, {"crash": 3}]]),
    );
    let mut client = race_client(&env, settings, &[]).await;
    let created = client
        .call(
            "tether/task/create",
            json!({"prompt": "write notes", "name": "notes",
                   "trials": [{"provider": "alpha"}, {"provider": "scripted"}, {"provider": "crasher"}]}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let task = task_until(&mut client, &id, |task| task["status"] != "running").await;
    assert_eq!(task["status"], "done", "{task:#}");
    assert_eq!(trial(&task, 1)["status"], "waiting", "{task:#}");
    let acp = trial(&task, 2);
    assert_eq!(acp["status"], "waiting", "{task:#}");
    assert_eq!(acp["model"], "default");
    assert_eq!(acp["filesChanged"], 1, "{task:#}");
    let crashed = trial(&task, 3);
    assert_eq!(crashed["status"], "failed", "{task:#}");
    assert!(
        crashed["statusReason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty()),
        "{crashed:#}"
    );

    let compared = client.call("tether/task/compare", json!({"id": id})).await;
    let notes = compared["regions"]
        .as_array()
        .and_then(|regions| regions.iter().find(|region| region["path"] == "notes.txt"))
        .expect("notes.txt's region");
    assert_eq!(notes["agreement"], "different", "{notes:#}");

    // The crashed trial cannot be promoted; the ACP agent's can, into the editor's files.
    let error = client
        .call_err(
            "tether/task/promote",
            json!({"id": id, "sessionId": crashed["sessionId"], "how": "apply"}),
        )
        .await;
    assert_eq!(error["code"], -31002, "{error}");
    assert!(client.messages("workspace/applyEdit").is_empty());
    let promoted = client
        .call(
            "tether/task/promote",
            json!({"id": id, "sessionId": acp["sessionId"], "how": "apply"}),
        )
        .await;
    assert_eq!(promoted["task"]["promoted"]["trial"], 2, "{promoted:#}");
    let edit = client.wait_for_message("workspace/applyEdit").await;
    let edit = edit["params"]["edit"].to_string();
    assert!(edit.contains("from the ACP agent"), "{edit}");
    client.shutdown().await;
}

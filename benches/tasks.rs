//! Tasks: starting 8 trials on the 20,000-file repository (each a worktree of its own, from
//! one commit) against 8 `git worktree add` run one after the other; and `tether/task/compare`
//! on 8 trials that each changed the same 100 files differently.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::{FakeModel, LspClient, Reply, TestEnv, git};
use super::{generated_repo, ms, percentile};

const TRIALS: usize = 8;

/// Each trial appends its own name to the first 100 files of the repository.
const CHANGE_100_FILES: &str = r#"{"command": "k=$(basename \"$PWD\"); for f in $(ls src/module_00*/*.rs | head -100); do echo \"// $k\" >> \"$f\"; done"}"#;

async fn task_until(client: &mut LspClient, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    loop {
        let task = client.call("tether/task/get", json!({"id": id})).await;
        if done(&task) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_trials(task: &Value, statuses: &[&str]) -> bool {
    task["trials"].as_array().is_some_and(|trials| {
        trials
            .iter()
            .all(|trial| statuses.contains(&trial["status"].as_str().unwrap_or_default()))
    })
}

pub async fn bench_tasks() {
    let env = TestEnv::new();
    let big = env.home().join("big");
    generated_repo(&big, 20_000);
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["done"]));
    // The host's own cap on working sessions is the user's to set (an editor's is ignored).
    env.write_user_config(&format!(
        "{}\n[session]\nmax_working = {TRIALS}\n",
        model.user_config()
    ));
    let mut client = LspClient::spawn(env.home()).await;
    client.initialize(&big, model.settings(), true).await;

    let mut git_samples = Vec::new();
    let mut task_samples = Vec::new();
    for run in 0..3 {
        // 8 worktrees, one after the other, as a script would make them.
        let _ = std::process::Command::new("sync").status();
        let started = Instant::now();
        let mut paths = Vec::new();
        for trial in 0..TRIALS {
            let path = env.home().join(format!("plain-{run}-{trial}"));
            let path_arg = path.to_string_lossy().into_owned();
            git(
                &big,
                &[
                    "worktree",
                    "add",
                    "-q",
                    "-b",
                    &format!("plain-{run}-{trial}"),
                    &path_arg,
                    "main",
                ],
            );
            paths.push(path_arg);
        }
        git_samples.push(started.elapsed());
        for path in paths {
            git(&big, &["worktree", "remove", "--force", &path]);
        }

        // A task of 8 trials: created = every trial's worktree is made and its turn runs.
        let _ = std::process::Command::new("sync").status();
        let started = Instant::now();
        let task = client
            .call(
                "tether/task/create",
                json!({"prompt": format!("bench {run}"), "trials": vec![json!({}); TRIALS]}),
            )
            .await;
        let id = task["id"].as_str().expect("id").to_owned();
        task_until(&mut client, &id, |task| {
            all_trials(
                task,
                &["running", "waiting", "stopped", "completed", "failed"],
            )
        })
        .await;
        task_samples.push(started.elapsed());
        task_until(&mut client, &id, |task| task["status"] != "running").await;
        client.call("tether/task/delete", json!({"id": id})).await;
    }
    git_samples.sort();
    task_samples.sort();
    let (git_median, task_median) = (
        percentile(&git_samples, 0.5),
        percentile(&task_samples, 0.5),
    );
    println!(
        "task of {TRIALS} trials (20,000 files, until every trial runs): median {} · {TRIALS} sequential `git worktree add`: median {} · ratio {:.2}×",
        ms(task_median),
        ms(git_median),
        task_median.as_secs_f64() / git_median.as_secs_f64()
    );

    // Compare: 8 trials, each changed the same 100 files in its own way. Each trial's first
    // request runs the command; what follows its result is "done".
    for _ in 0..TRIALS {
        model.push(Reply::tool_calls(&[("run_command", CHANGE_100_FILES)]));
    }
    model.script_only(
        |body| {
            body["messages"]
                .as_array()
                .and_then(|messages| messages.last())
                .is_some_and(|message| message["role"] == "user")
        },
        Reply::text(&["done"]),
    );
    let task = client
        .call(
            "tether/task/create",
            json!({"prompt": "change 100 files", "trials": vec![json!({}); TRIALS]}),
        )
        .await;
    let id = task["id"].as_str().expect("id").to_owned();
    let task = task_until(&mut client, &id, |task| task["status"] != "running").await;
    let changed: Vec<u64> = task["trials"]
        .as_array()
        .expect("trials")
        .iter()
        .filter_map(|trial| trial["filesChanged"].as_u64())
        .collect();
    let mut samples = Vec::new();
    let mut regions = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let compared = client.call("tether/task/compare", json!({"id": id})).await;
        samples.push(started.elapsed());
        regions = compared["regions"].as_array().map_or(0, Vec::len);
    }
    samples.sort();
    println!(
        "task compare ({TRIALS} trials × files changed {changed:?}, {regions} regions): median {} · p95 {}",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.95))
    );
    client.shutdown().await;
}

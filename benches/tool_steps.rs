//! What a tool step costs beyond the model (issue 12): finding a command's changes (the
//! snapshots before and after it), and a ten-tool-call scripted task end to end.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{FakeModel, Reply, TestEnv, git};
use crate::{generated_repo, ms, percentile};

/// Git as Tether ran it for a snapshot (hardened, the worktree's git directory pinned, a
/// private index); its stdout.
fn hardened_git(
    worktree: &tether::workspace::SessionWorktree,
    index: &Path,
    args: &[&str],
) -> String {
    let output = std::process::Command::new("git")
        .args([
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .current_dir(&worktree.work_tree)
        .env("GIT_DIR", &worktree.git_dir)
        .env("GIT_WORK_TREE", &worktree.work_tree)
        .env("GIT_INDEX_FILE", index)
        .output()
        .expect("git");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn summarize(name: &str, mut times: Vec<Duration>) -> Duration {
    times.sort();
    let median = percentile(&times, 0.5);
    println!(
        "  {name:<58} median {}   p95 {}",
        ms(median),
        ms(percentile(&times, 0.95))
    );
    median
}

/// `run_command`'s overhead for finding what a command changed: the worktree snapshotted
/// before and after a command that rewrites one file, then compared. Git's way (`git add -A`
/// and `git write-tree` before and after, `git diff-tree --numstat`: what Tether ran before
/// issue 12) against the in-process snapshot, on a session worktree of 2 and of 20,001 files.
pub async fn bench_command_snapshots() {
    println!("run_command overhead: snapshot before+after and compare (command time excluded)");
    for (files, runs) in [(1, 200), (20_000, 15)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        generated_repo(&repo, files);
        std::fs::write(repo.join("README.md"), "# sample\n").expect("write");
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "readme"]);
        let path = dir.path().join("worktree");
        let path_arg = path.to_string_lossy().into_owned();
        git(
            &repo,
            &["worktree", "add", "-q", "-b", "session", &path_arg, "main"],
        );
        let worktree = tether::workspace::SessionWorktree::pin(
            &repo,
            &path.canonicalize().expect("canonical"),
        )
        .expect("pin");
        let index = dir.path().join("private/index");
        std::fs::create_dir_all(index.parent().expect("parent")).expect("mkdir");
        std::fs::copy(worktree.git_dir.join("index"), &index).expect("copy index");
        // Past the index's racy second, as in a session some time after its creation.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let label = format!("{} files", files + 1);
        let mut by_git = Vec::new();
        for run in 0..runs {
            let started = Instant::now();
            hardened_git(&worktree, &index, &["add", "-A", "--ignore-errors"]);
            let before = hardened_git(&worktree, &index, &["write-tree"]);
            let mut spent = started.elapsed();
            std::fs::write(path.join("changed-by-git.txt"), format!("run {run}\n")).expect("write");
            let started = Instant::now();
            hardened_git(&worktree, &index, &["add", "-A", "--ignore-errors"]);
            let after = hardened_git(&worktree, &index, &["write-tree"]);
            let numstat = hardened_git(
                &worktree,
                &index,
                &["diff-tree", "-r", "--numstat", &before, &after],
            );
            spent += started.elapsed();
            assert!(numstat.contains("changed-by-git.txt"), "{numstat}");
            by_git.push(spent);
        }
        let git_median = summarize(
            &format!("git add -A + write-tree ×2, diff-tree ({label})"),
            by_git,
        );
        let mut in_process = Vec::new();
        let mut taken_by = None;
        for run in 0..runs {
            let started = Instant::now();
            let before = tether::workspace::snapshot::take(&worktree, &index)
                .await
                .expect("snapshot");
            let mut spent = started.elapsed();
            std::fs::write(path.join("changed-in-process.txt"), format!("run {run}\n"))
                .expect("write");
            let started = Instant::now();
            let after = tether::workspace::snapshot::take(&worktree, &index)
                .await
                .expect("snapshot");
            taken_by = Some(after.taken_by());
            let changed = tether::workspace::snapshot::changes(&worktree, before, after)
                .await
                .expect("changes");
            spent += started.elapsed();
            assert_eq!(changed.len(), 1, "{changed:?}");
            in_process.push(spent);
        }
        let median = summarize(
            &format!("in process, taken by {taken_by:?} ({label})"),
            in_process,
        );
        println!(
            "  ratio {:.3}× (saves {} per command)",
            median.as_secs_f64() / git_median.as_secs_f64(),
            ms(git_median.saturating_sub(median))
        );
        git(&repo, &["worktree", "remove", "--force", &path_arg]);
    }
    println!();
}

/// The scripted task with ten tool calls (six model calls, five of the tools commands), end
/// to end through the binary against a model that answers at once: what is left is Tether's
/// cost per tool step.
pub async fn bench_ten_tool_steps() {
    let runs = 7;
    let mut walls = Vec::new();
    let mut checkpointed = 0;
    for _ in 0..runs {
        let env = TestEnv::new();
        let model = FakeModel::start().await;
        model.push(Reply::tool_calls(&[
            ("read_file", r#"{"path": "README.md"}"#),
            ("search", r#"{"pattern": "sample"}"#),
        ]));
        model.push(Reply::tool_calls(&[
            ("edit_file", r##"{"path": "README.md", "old_string": "# sample", "new_string": "# sample, edited"}"##),
            ("write_file", r#"{"path": "NOTES.md", "content": "notes\n"}"#),
        ]));
        model.push(Reply::tool_calls(&[
            ("run_command", r#"{"command": "ls > listing.txt"}"#),
            ("run_command", r#"{"command": "grep -c sample README.md"}"#),
        ]));
        model.push(Reply::tool_calls(&[
            ("run_command", r#"{"command": "cat NOTES.md"}"#),
            ("list_directory", "{}"),
        ]));
        model.push(Reply::tool_calls(&[
            ("run_command", r#"{"command": "echo done >> NOTES.md"}"#),
            (
                "run_command",
                r#"{"command": "wc -l NOTES.md listing.txt"}"#,
            ),
        ]));
        model.push(Reply::text(&["Done."]));
        let mut client = env.server(&model).await;
        let (_, id) = client.create(json!({"prompt": "the ten-step task"})).await;
        client.wait_for_status(&id, "running").await;
        let started = Instant::now();
        client.wait_for_status(&id, "waiting").await;
        walls.push(started.elapsed());
        let events = client.session_events(&id);
        let calls = events
            .iter()
            .filter(|params| {
                params["event"]["phase"] == "completed"
                    && params["event"]["item"]["type"] == "toolCall"
            })
            .count();
        assert_eq!(calls, 10);
        checkpointed += u64::from(
            events
                .iter()
                .any(|params| params["event"]["kind"] == "checkpoint"),
        );
        client.shutdown().await;
    }
    walls.sort();
    let median = percentile(&walls, 0.5);
    println!(
        "ten-tool-call scripted task (6 model calls, 5 commands, a checkpoint; running → waiting, {runs} runs): median {} (min {}, max {}); {} per tool step; checkpoints in {checkpointed}/{runs} runs",
        ms(median),
        ms(walls[0]),
        ms(walls[walls.len() - 1]),
        ms(median / 10),
    );
}

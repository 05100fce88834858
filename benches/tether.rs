//! `cargo bench --bench tether`: the figures docs/benchmarks.md reports.
//!
//! Each figure is measured against the real binary (or the library, for recovery), with the
//! same fake-model HTTP server the end-to-end tests use. Nothing here asserts a time: the
//! targets are printed beside the figures for a person to read.

#[path = "../tests/e2e/support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;
mod tool_steps;

mod acp;
mod conversation;
mod daemon;
mod scale;
mod tasks;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{FakeModel, LspClient, Reply, TestEnv, git};
use tether::session::{Event, EventRecord, Item, ItemPhase, MessageRole, Mode, SessionSpec};

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

fn main() {
    let only = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let wanted = |name: &str| only.as_deref().is_none_or(|only| name.contains(only));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("tether benchmarks (2-core machine; see docs/benchmarks.md)\n");
    runtime.block_on(async {
        if wanted("initialize") {
            bench_initialize().await;
        }
        if wanted("create") {
            bench_create_vs_worktree_add().await;
        }
        if wanted("list") {
            bench_list_under_stream_load().await;
        }
        if wanted("recovery") {
            bench_recovery();
        }
        if wanted("rss") {
            bench_idle_rss().await;
        }
        if wanted("tools") {
            bench_loop_in_process().await;
            bench_tool_orchestration().await;
            tool_steps::bench_ten_tool_steps().await;
        }
        if wanted("tools") || wanted("snapshot") {
            tool_steps::bench_command_snapshots().await;
        }
        if wanted("sandbox") {
            bench_sandboxed_launch().await;
        }
        if wanted("daemon") {
            daemon::bench_daemon().await;
        }
        if wanted("scale") {
            scale::bench_scale().await;
        }
        if wanted("acp") {
            acp::bench_acp().await;
        }
        if wanted("task") {
            tasks::bench_tasks().await;
        }
        if wanted("compaction") {
            conversation::bench_compaction().await;
        }
        if wanted("completion") {
            conversation::bench_completion().await;
        }
    });
    if wanted("edit") {
        bench_workspace_edit();
    }
}

/// What confinement costs a command: `true` started and waited for, plainly and through the
/// sandbox's launcher (holder, seccomp, Landlock, capabilities), 300 times each; median and
/// p95 of each.
async fn bench_sandboxed_launch() {
    println!("sandboxed launch of `true` (300 runs each; median, p95)");
    let dir = tempfile::tempdir().expect("tempdir");
    let runs = 300;
    let summarize = |name: &str, mut times: Vec<Duration>| {
        times.sort();
        let median = times[times.len() / 2];
        let p95 = times[times.len() * 95 / 100];
        println!(
            "  {name:<44} median {:>6.2} ms   p95 {:>6.2} ms",
            median.as_secs_f64() * 1000.0,
            p95.as_secs_f64() * 1000.0
        );
    };
    let mut plain = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let status = tokio::process::Command::new("true")
            .status()
            .await
            .expect("true");
        assert!(status.success());
        plain.push(started.elapsed());
    }
    summarize("plain (tokio::process)", plain);
    for (name, mode, network) in [
        (
            "holder only (sandbox = off)",
            tether::sandbox::SandboxMode::Off,
            true,
        ),
        (
            "sandboxed (auto, network on)",
            tether::sandbox::SandboxMode::Auto,
            true,
        ),
        (
            "sandboxed (required, network off)",
            tether::sandbox::SandboxMode::Required,
            false,
        ),
    ] {
        let jail = tether::sandbox::Jail {
            mode,
            worktree: dir.path().to_owned(),
            temp_dir: dir.path().join("tmp"),
            writable: Vec::new(),
            network,
            hidden_env: vec!["OPENAI_API_KEY".into()],
            owner: "bench".into(),
            records: dir.path().join("records"),
        };
        let mut times = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let mut command = std::process::Command::new("true");
            command.stdout(std::process::Stdio::null());
            let mut spawned = tether::sandbox::groups::spawn(&jail, command).expect("spawn");
            let status = spawned.wait().await.expect("status");
            assert!(status.success());
            times.push(started.elapsed());
            tether::sandbox::end_owner("bench");
        }
        summarize(name, times);
    }
    println!();
}

/// The WorkspaceEdit `apply` sends: computed (three-way, against the user's text) and
/// converted to LSP edits in UTF-16, then measured as the JSON bytes that go on the wire.
fn bench_workspace_edit() {
    println!("workspace edit (plan + UTF-16 conversion + JSON; median of 20)");
    let ten_thousand_lines: String = (0..10_000)
        .map(|n| format!("    let value_{n} = compute({n}, \"naïve 日本\");\n"))
        .collect();
    let one_line_changed = ten_thousand_lines.replacen(
        "let value_5000 = compute(5000,",
        "let value_5000 = compute(5001,",
        1,
    );
    let mut one_megabyte = String::new();
    let mut n = 0;
    while one_megabyte.len() < 1_000_000 {
        one_megabyte.push_str(&format!("fn item_{n}() -> u32 {{ {n} }} // ünïcode ✓\n"));
        n += 1;
    }
    let lines: Vec<&str> = one_megabyte.split_inclusive('\n').collect();
    let step = lines.len() / 200;
    let scattered: String = lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            if index % step == step / 2 {
                line.replace("-> u32", "-> u64")
            } else {
                (*line).to_owned()
            }
        })
        .collect();
    let user_edited = format!("// the user's unsaved line\n{one_megabyte}");
    for (label, base, new, current) in [
        (
            "1 line in a 10,000-line file",
            &ten_thousand_lines,
            &one_line_changed,
            &ten_thousand_lines,
        ),
        (
            "200 changes in a 1 MB file",
            &one_megabyte,
            &scattered,
            &one_megabyte,
        ),
        (
            "the same, around an unsaved user edit",
            &one_megabyte,
            &scattered,
            &user_edited,
        ),
    ] {
        let mut times = Vec::new();
        let mut bytes = 0;
        let mut edits_count = 0;
        for _ in 0..20 {
            let started = Instant::now();
            let plan = tether::workspace::edits::plan(base, new, current, None);
            let edits = tether::lsp::text_edits(&plan.changes, false);
            let json = serde_json::to_vec(&edits).expect("json");
            times.push(started.elapsed());
            bytes = json.len();
            edits_count = edits.len();
        }
        times.sort();
        println!(
            "  {label}: {} ({} edits, {bytes} bytes of edits for a {} byte file; target < 5 ms, O(change) bytes)",
            ms(percentile(&times, 0.5)),
            edits_count,
            current.len()
        );
    }
    println!();
}

async fn bench_initialize() {
    fn report(what: &str, mut samples: Vec<Duration>, target: &str) {
        samples.sort();
        println!(
            "{what}: p50 {} · min {} · max {}   (target {target})",
            ms(percentile(&samples, 0.5)),
            ms(samples[0]),
            ms(samples[samples.len() - 1])
        );
    }
    // In process (`--no-daemon`): the editor's own server.
    let env = TestEnv::new();
    let mut in_process = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let mut client = LspClient::spawn_in_process(env.home()).await;
        client.initialize(&env.repo(), json!({}), true).await;
        in_process.push(started.elapsed());
        client.shutdown().await;
    }
    report(
        "spawn → initialize reply, in process",
        in_process,
        "< 20 ms",
    );

    // The first front starts the daemon: `initialize` is answered at once, and the first
    // request that needs the sessions waits for the daemon to answer.
    let mut cold = Vec::new();
    for _ in 0..10 {
        let env = TestEnv::new();
        let started = Instant::now();
        let mut client = LspClient::spawn(env.home()).await;
        client.initialize(&env.repo(), json!({}), true).await;
        client.call("tether/session/list", json!({})).await;
        cold.push(started.elapsed());
        client.shutdown().await;
    }
    report(
        "first front, daemon cold start: spawn → initialize → first list answered",
        cold,
        "< 100 ms",
    );

    // Fronts attaching to the running daemon.
    let env = TestEnv::new();
    let mut first = env.server_with(json!({})).await;
    first.call("tether/session/list", json!({})).await;
    let mut attach = Vec::new();
    let mut attached = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let mut client = LspClient::spawn(env.home()).await;
        client.initialize(&env.repo(), json!({}), true).await;
        attach.push(started.elapsed());
        client.call("tether/session/list", json!({})).await;
        attached.push(started.elapsed());
        client.shutdown().await;
    }
    first.shutdown().await;
    report(
        "front attach to a running daemon: spawn → initialize reply",
        attach,
        "< 20 ms",
    );
    report(
        "front attach to a running daemon: spawn → first list answered (mirror loaded)",
        attached,
        "< 20 ms",
    );
}

/// A repository of `files` small files in 100 folders, one commit.
fn generated_repo(root: &Path, files: usize) {
    std::fs::create_dir_all(root).expect("mkdir");
    git(root, &["init", "-q", "-b", "main"]);
    for index in 0..files {
        let folder = root.join(format!("src/module_{:03}", index % 100));
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(
            folder.join(format!("file_{index:05}.rs")),
            format!("// file {index}\npub fn f{index}() -> usize {{ {index} }}\n"),
        )
        .expect("write");
    }
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "generated"]);
}

async fn bench_create_vs_worktree_add() {
    let env = TestEnv::new();
    let big = env.home().join("big");
    generated_repo(&big, 20_000);

    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["ok"]));
    let mut client = LspClient::spawn(env.home()).await;
    client.initialize(&big, model.settings(), true).await;
    // Interleaved, each after `sync`, so neither side inherits the other's disk write-back.
    let mut git_samples = Vec::new();
    let mut create_samples = Vec::new();
    for run in 0..5 {
        let _ = std::process::Command::new("sync").status();
        let path = env.home().join(format!("plain-worktree-{run}"));
        let branch = format!("plain-{run}");
        let started = Instant::now();
        let path_arg = path.to_string_lossy().into_owned();
        git(
            &big,
            &["worktree", "add", "-q", "-b", &branch, &path_arg, "main"],
        );
        git_samples.push(started.elapsed());
        git(&big, &["worktree", "remove", "--force", &path_arg]);

        let _ = std::process::Command::new("sync").status();
        let started = Instant::now();
        let info = client
            .call(
                "tether/session/create",
                json!({"prompt": format!("bench {run}")}),
            )
            .await;
        let id = info["id"].as_str().expect("id").to_owned();
        // Created = the worktree is checked out and the session is running.
        client.wait_for_status(&id, "running").await;
        create_samples.push(started.elapsed());
        client.wait_for_status(&id, "waiting").await;
        client
            .call("tether/session/delete", json!({"id": id}))
            .await;
    }
    client.shutdown().await;
    git_samples.sort();
    create_samples.sort();
    let git_median = percentile(&git_samples, 0.5);
    let create_median = percentile(&create_samples, 0.5);
    println!(
        "session create (20,000 files, until running): median {} · `git worktree add`: median {} · ratio {:.2}×   (target ≤ 0.8×)",
        ms(create_median),
        ms(git_median),
        create_median.as_secs_f64() / git_median.as_secs_f64()
    );
}

async fn bench_list_under_stream_load() {
    let env = TestEnv::new();
    // The model server gets a runtime (and thread) of its own, so that the client's reading
    // of replies does not queue behind it inside this process.
    let model_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("model runtime");
    let model = model_runtime
        .spawn(FakeModel::start())
        .await
        .expect("model server");
    model.set_fallback(Reply::Flood(Duration::from_secs(12)));
    // The daemon's cap, from the user's file: all 20 stream at once.
    env.write_user_config("[session]\nmax_working = 20\n");
    let mut client = env.server(&model).await;
    let mut idle_samples = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        client.call("tether/session/list", json!({})).await;
        idle_samples.push(started.elapsed());
    }
    idle_samples.sort();
    let mut ids = Vec::new();
    for index in 0..20 {
        let info = client
            .call(
                "tether/session/create",
                json!({"prompt": format!("stream {index}")}),
            )
            .await;
        ids.push(info["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        client
            .wait_for_event(id, |event| event["kind"] == "delta")
            .await;
    }
    // The sessions stream in the daemon; the editor's front relays them.
    let daemon = env.daemon_pid().expect("a daemon runs") as u32;
    let cpu_before = (
        cpu_ticks(client.pid()),
        cpu_ticks(std::process::id()),
        Instant::now(),
        cpu_ticks(daemon),
    );
    let mut samples = Vec::new();
    let mut streaming_during = usize::MAX;
    for _ in 0..1000 {
        let started = Instant::now();
        let listed = client.call("tether/session/list", json!({})).await;
        samples.push(started.elapsed());
        streaming_during = streaming_during.min(
            listed["sessions"]
                .as_array()
                .map(|sessions| sessions.iter().filter(|s| s["status"] == "running").count())
                .unwrap_or(0),
        );
    }
    let wall = cpu_before.2.elapsed().as_secs_f64() * 100.0;
    let server_cpu = (cpu_ticks(client.pid()) - cpu_before.0) as f64 / wall;
    let daemon_cpu = (cpu_ticks(daemon) - cpu_before.3) as f64 / wall;
    let bench_cpu = (cpu_ticks(std::process::id()) - cpu_before.1) as f64 / wall;
    println!(
        "  while listing: the front used {:.0}% of a core, the daemon {:.0}%, the client and model server {:.0}%",
        server_cpu * 100.0,
        daemon_cpu * 100.0,
        bench_cpu * 100.0
    );
    let deltas = client
        .events()
        .iter()
        .filter(|params| params["event"]["kind"] == "delta")
        .count();
    for id in &ids {
        client.wait_for_status(id, "waiting").await;
    }
    // The flood reports how many chunks it sent as the completion's token count.
    let chunks: u64 = client
        .events()
        .iter()
        .filter(|params| params["event"]["kind"] == "usage")
        .filter_map(|params| params["event"]["outputTokens"].as_u64())
        .sum();
    println!(
        "  20 streams × 12 s: {chunks} SSE chunks parsed, {:.0} chunks/s",
        chunks as f64 / 12.0
    );
    client.shutdown().await;
    drop(model);
    model_runtime.shutdown_background();
    samples.sort();
    println!(
        "tether/session/list round trip with 20 sessions streaming (≥{streaming_during} running throughout, {deltas} delta notifications): p50 {} · p99 {}   (target p99 < 2 ms; idle: p50 {} · p99 {})",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(percentile(&idle_samples, 0.5)),
        ms(percentile(&idle_samples, 0.99))
    );
}

/// A settled bench session's record: a develop session on the fake provider.
fn bench_spec(id: &str, name: &str, repo: &Path, state: &Path, created_at: u64) -> SessionSpec {
    SessionSpec {
        id: id.to_owned(),
        name: name.to_owned(),
        title: "bench".into(),
        mode: Mode::Develop,
        repo: repo.to_owned(),
        base_branch: "main".into(),
        base_commit: None,
        branch: format!("tether/{name}"),
        worktree: state.join("worktrees").join(id),
        provider: "fake".into(),
        model: "fake".into(),
        temperature: None,
        max_tokens: None,
        toggles: Default::default(),
        created_at,
        cloned_from: None,
        started_by: None,
        settings_profile: None,
    }
}

fn bench_recovery() {
    let env = TestEnv::new();
    let home = env.home().join("state");
    let repo = env.repo().canonicalize().expect("canonical repo");
    let store = tether::store::RepoStore::open(&home, &repo).expect("store");
    let started = Instant::now();
    for session in 0..1_000u64 {
        let id = format!("bench{session:05}");
        let mut log = store.create_log(&id).expect("log");
        let spec = bench_spec(&id, &format!("bench-{session}"), &repo, &home, session);
        let mut records = vec![Event::Created {
            session: Box::new(spec),
        }];
        records.push(Event::Item {
            phase: ItemPhase::Completed,
            item: Item::Message {
                id: "u".into(),
                role: MessageRole::User,
                text: "hello".into(),
                interrupted: false,
                attachments: Vec::new(),
            },
        });
        records.push(Event::Item {
            phase: ItemPhase::Started,
            item: Item::Message {
                id: "a".into(),
                role: MessageRole::Agent,
                text: String::new(),
                interrupted: false,
                attachments: Vec::new(),
            },
        });
        while records.len() < 998 {
            records.push(Event::Delta {
                item_id: "a".into(),
                text: "some streamed words ".into(),
            });
        }
        records.push(Event::Item {
            phase: ItemPhase::Completed,
            item: Item::Message {
                id: "a".into(),
                role: MessageRole::Agent,
                text: "some streamed words ".repeat(995),
                interrupted: false,
                attachments: Vec::new(),
            },
        });
        records.push(Event::Status {
            status: tether::session::SessionStatus::Waiting,
            activity: None,
            reason: None,
        });
        for (seq, event) in records.into_iter().enumerate() {
            log.append(&EventRecord {
                seq: seq as u64 + 1,
                at: seq as u64,
                event,
            })
            .expect("append");
        }
    }
    let generated = started.elapsed();
    drop(store);
    let bytes: u64 = std::fs::read_dir(home.join("repos"))
        .expect("repos")
        .flatten()
        .flat_map(|repo| {
            std::fs::read_dir(repo.path().join("sessions"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum();

    // The first start finds no snapshots (the logs were written above, not by sessions that
    // settled) and replays every log, leaving a snapshot per session; later starts read those.
    let load = || {
        let started = Instant::now();
        let manager = tether::session::SessionManager::new(home.clone(), Default::default())
            .expect("manager");
        manager.open_repository(&repo).expect("recover");
        let sessions = manager.list(&Default::default()).len();
        assert_eq!(sessions, 1_000);
        started.elapsed()
    };
    let replay_all = load();
    let mut samples: Vec<Duration> = (0..5).map(|_| load()).collect();
    samples.sort();
    println!(
        "restart recovery, 1,000 sessions × 1,000 events ({:.0} MB of logs, written in {}): median {} from snapshots; {} replaying every log (first start after an upgrade)   (target < 300 ms)",
        bytes as f64 / 1e6,
        ms(generated),
        ms(percentile(&samples, 0.5)),
        ms(replay_all)
    );
}

async fn bench_idle_rss() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["done"]));
    env.write_user_config("[session]\nmax_working = 8\n");
    let mut client = env.server(&model).await;
    client.call("tether/session/list", json!({})).await;
    let daemon = env.daemon_pid().expect("a daemon runs") as u32;
    let baseline = rss_kib(client.pid()) + rss_kib(daemon);
    let mut ids = Vec::new();
    for index in 0..100 {
        let info = client
            .call(
                "tether/session/create",
                json!({"prompt": format!("idle session {index}")}),
            )
            .await;
        ids.push(info["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        client.wait_for_status(id, "waiting").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (front, host) = (rss_kib(client.pid()), rss_kib(daemon));
    let peak = status_field_kib(client.pid(), "VmHWM:") + status_field_kib(daemon, "VmHWM:");
    client.shutdown().await;
    println!(
        "RSS with 100 idle sessions: {:.1} MB (front {:.1} MB + daemon {:.1} MB; at start {:.1} MB, peak {:.1} MB)   (target < 50 MB)",
        (front + host) as f64 / 1024.0,
        front as f64 / 1024.0,
        host as f64 / 1024.0,
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

fn rss_kib(pid: u32) -> u64 {
    status_field_kib(pid, "VmRSS:")
}

fn status_field_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    field(11) + field(12)
}

/// A model that answers at once: a tool call for the first `calls` requests, then text.
struct InstantModel {
    calls: usize,
    served: std::sync::atomic::AtomicUsize,
}

impl tether::provider::ModelProvider for InstantModel {
    fn stream_chat<'a>(
        &'a self,
        _request: &'a tether::provider::ChatRequest,
    ) -> tether::provider::StreamFuture<'a> {
        use tether::provider::{StreamEvent, ToolCallRequest};
        let served = self
            .served
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let events: Vec<Result<StreamEvent, tether::provider::ProviderError>> =
            if served < self.calls {
                vec![
                    Ok(StreamEvent::ToolCall(ToolCallRequest {
                        id: format!("call_{served}"),
                        name: "read_file".into(),
                        arguments: r#"{"path": "README.md"}"#.into(),
                    })),
                    Ok(StreamEvent::Finished(Some("tool_calls".into()))),
                ]
            } else {
                vec![
                    Ok(StreamEvent::TextDelta("done".into())),
                    Ok(StreamEvent::Finished(None)),
                ]
            };
        Box::pin(async move {
            let stream: tether::provider::EventStream =
                Box::pin(futures_util::stream::iter(events));
            Ok(stream)
        })
    }
}

/// Keeps events as JSON lines in memory, as the log would write them.
struct MemorySink(Vec<String>);

impl tether::agent::EventSink for MemorySink {
    fn emit(&mut self, event: Event) -> Result<(), String> {
        self.0
            .push(serde_json::to_string(&event).map_err(|error| error.to_string())?);
        Ok(())
    }
    fn ask(
        &mut self,
        _: &str,
        _: &[tether::session::Question],
    ) -> Result<tokio::sync::oneshot::Receiver<Vec<tether::session::Answer>>, String> {
        Err("no questions here".into())
    }
    fn permission<'a>(
        &'a mut self,
        _: &str,
        _: &serde_json::Value,
        _: &str,
    ) -> futures_util::future::BoxFuture<'a, Result<tether::agent::PermissionCheck, String>> {
        Box::pin(async { Ok(tether::agent::PermissionCheck::Allowed) })
    }
    fn propose(
        &mut self,
        _: &str,
        _: &[tether::session::PlanPhase],
    ) -> Result<tokio::sync::oneshot::Receiver<tether::session::PlanDecision>, String> {
        Err("no plans here".into())
    }
}

/// The agent loop's own cost per tool call, in process: a model that answers at once, a
/// real `read_file` in a real worktree, events serialized as the log would. The tool's own
/// time (`durationMs`) is taken out.
async fn bench_loop_in_process() {
    let env = TestEnv::new();
    let calls = 2_000;
    let provider = InstantModel {
        calls,
        served: std::sync::atomic::AtomicUsize::new(0),
    };
    let settings = tether::agent::TurnSettings {
        tools: Some(tether::agent::tools::ToolContext {
            read_only: false,
            ask_permission: false,
            allowed_scopes: Vec::new(),
            command_timeout: Duration::from_secs(10),
            jail: tether::sandbox::Jail {
                mode: tether::sandbox::SandboxMode::Off,
                worktree: env.repo().canonicalize().expect("repo"),
                temp_dir: env.home().join("tmp"),
                writable: Vec::new(),
                network: true,
                hidden_env: Vec::new(),
                owner: "bench".into(),
                records: env.home().join("records"),
            },
            git: tether::workspace::SessionWorktree {
                work_tree: env.repo().canonicalize().expect("repo"),
                git_dir: env.repo().join(".git"),
            },
            private_index: env.home().join("index"),
        }),
        max_steps: calls + 1,
        price: None,
        context_window: None,
        budget_left_usd: None,
        turn_timeout: None,
        mcp: None,
        instructions: None,
    };
    let request = tether::provider::ChatRequest {
        model: "instant".into(),
        messages: vec![tether::provider::ChatMessage::new(
            tether::provider::ChatRole::User,
            "go",
        )],
        tools: tether::agent::tools::definitions(),
        temperature: None,
        max_tokens: None,
    };
    let mut sink = MemorySink(Vec::new());
    let cancel = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let outcome = tether::agent::run_turn(&provider, request, &settings, &cancel, &mut sink).await;
    let wall = started.elapsed();
    assert_eq!(outcome.reason, tether::session::TurnEndReason::EndTurn);
    let tool_ms: u64 = sink
        .0
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["phase"] == "completed" && event["item"]["type"] == "toolCall")
        .filter_map(|event| event["item"]["durationMs"].as_u64())
        .sum();
    let per_call = (wall.as_secs_f64() * 1000.0 - tool_ms as f64) / calls as f64;
    println!(
        "agent loop in process, {calls} tool calls (model answering at once): {:.3} ms per call excluding the tool ({} ms of tool time in {} ms)   (target < 1 ms)",
        per_call,
        tool_ms,
        wall.as_millis()
    );
}

/// The agent loop's own cost per tool call: 500 rounds of one `list_directory` call each,
/// against a model that answers at once; the tools' own time (`durationMs`) is taken out.
async fn bench_tool_orchestration() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::tool_calls(&[("list_directory", "{}")]));
    let rounds = 500;
    let mut settings = model.settings();
    settings["session"] = json!({"max_turns": rounds});
    let mut client = env.server_with(settings).await;
    let started = Instant::now();
    let (_, id) = client.create(json!({"prompt": "list forever"})).await;
    client.wait_for_status(&id, "running").await;
    let running_at = Instant::now();
    client.wait_for_status(&id, "stopped").await;
    let loop_time = running_at.elapsed();
    let events = client.session_events(&id);
    let tool_ms: u64 = events
        .iter()
        .filter(|params| {
            params["event"]["phase"] == "completed" && params["event"]["item"]["type"] == "toolCall"
        })
        .filter_map(|params| params["event"]["item"]["durationMs"].as_u64())
        .sum();
    let peak = status_field_kib(client.pid(), "VmHWM:");
    client.shutdown().await;
    let per_round = loop_time / rounds as u32;
    println!(
        "agent loop, {rounds} rounds of one tool call (model answering at once): {} per round incl. the model's HTTP round trip with the whole, growing conversation (1,000 messages by the end); tools' own time {} ms in all; whole run {}; peak RSS {:.1} MB",
        ms(per_round),
        tool_ms,
        ms(started.elapsed()),
        peak as f64 / 1024.0
    );

    // The scripted task of the end-to-end tests: read, search, edit two files, run a command.
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
    model.push(Reply::tool_calls(&[(
        "run_command",
        r#"{"command": "ls > listing.txt"}"#,
    )]));
    model.push(Reply::text(&["Done."]));
    let mut client = env.server(&model).await;
    let started = Instant::now();
    let (_, id) = client.create(json!({"prompt": "the scripted task"})).await;
    client.wait_for_status(&id, "waiting").await;
    let wall = started.elapsed();
    let peak = status_field_kib(client.pid(), "VmHWM:");
    client.shutdown().await;
    println!(
        "scripted task (create, worktree, 4 model calls, 5 tools incl. a command): {} wall, peak RSS {:.1} MB",
        ms(wall),
        peak as f64 / 1024.0
    );
}

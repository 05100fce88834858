//! The session host: `tether daemon` guards its socket, exactly one serves a state folder,
//! a stale socket is replaced, it exits when idle, and a session started through it goes on
//! after the command that started it is killed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{FakeModel, Reply, TestEnv, isolated_command};

/// Waits (up to 30 s) until `probe` gives a value.
async fn until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn socket(env: &TestEnv) -> PathBuf {
    env.home().join("state/tether.sock")
}

/// Starts `tether daemon` in the foreground of a child process.
fn spawn_daemon(env: &TestEnv) -> tokio::process::Child {
    isolated_command(env.home())
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the daemon")
}

async fn status(env: &TestEnv) -> Option<Value> {
    let output = env.tether(&["daemon", "status", "--json"]).await;
    output
        .status
        .success()
        .then(|| serde_json::from_slice(&output.stdout).expect("status JSON"))
}

/// `tether sessions list --json` for `repo`, run synchronously (for polling in `until`).
fn sessions_of(env: &TestEnv, repo: &str) -> Option<Value> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["sessions", "list", "--json", "--repo", repo])
        .env("TETHER_HOME", env.home().join("state"))
        .env("XDG_CONFIG_HOME", env.home().join("config"))
        .env("XDG_DATA_HOME", env.home().join("data"))
        .output()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

/// `tether daemon stop`, then waits for the daemon's process to end.
async fn stop(env: &TestEnv, mut daemon: tokio::process::Child) {
    let _ = env.tether(&["daemon", "stop"]).await;
    let _ = tokio::time::timeout(Duration::from_secs(20), daemon.wait()).await;
}

async fn wait_for_socket(env: &TestEnv) {
    let socket = socket(env);
    until("the daemon's socket", || socket.exists().then_some(())).await;
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_two_daemons_serves_behind_a_socket_only_its_user_can_open() {
    let env = TestEnv::new();
    let mut first = spawn_daemon(&env);
    let mut second = spawn_daemon(&env);
    wait_for_socket(&env).await;
    // One of the two finds the other serving and leaves, saying so, with success.
    let (left, stayed) = tokio::select! {
        status = first.wait() => (status.expect("wait"), second),
        status = second.wait() => (status.expect("wait"), first),
    };
    assert!(left.success(), "{left:?}");
    let serving = status(&env).await.expect("a daemon answers");
    assert_eq!(
        serving["pid"].as_u64(),
        stayed.id().map(u64::from),
        "{serving}"
    );
    assert_eq!(serving["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(mode(&socket(&env)), 0o600);
    assert_eq!(mode(&env.home().join("state")), 0o700);

    let stopped = env.tether(&["daemon", "stop"]).await;
    assert!(stopped.status.success(), "{stopped:?}");
    let mut stayed = stayed;
    let exit = tokio::time::timeout(Duration::from_secs(20), stayed.wait())
        .await
        .expect("the daemon exits after stop")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert!(!socket(&env).exists(), "the socket goes with the daemon");
    let none = env.tether(&["daemon", "status"]).await;
    assert_eq!(none.status.code(), Some(3), "{none:?}");
    assert!(String::from_utf8_lossy(&none.stderr).contains("no daemon is running"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_is_replaced_and_an_open_folder_is_closed() {
    let env = TestEnv::new();
    let state = env.home().join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    // A socket nobody listens on any more: what a killed daemon leaves.
    drop(std::os::unix::net::UnixListener::bind(socket(&env)).expect("bind"));
    assert!(socket(&env).exists());
    assert!(status(&env).await.is_none(), "a stale socket is no daemon");

    let daemon = spawn_daemon(&env);
    until("the daemon to answer", || {
        std::os::unix::net::UnixStream::connect(socket(&env))
            .ok()
            .map(drop)
    })
    .await;
    let serving = status(&env).await.expect("the new daemon answers");
    assert_eq!(serving["pid"].as_u64(), daemon.id().map(u64::from));
    assert_eq!(mode(&state), 0o700, "the folder is closed to others");
    stop(&env, daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_another_user_is_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        // Only root can make a folder another user owns; the open-folder test covers the
        // rest of the check for everyone.
        eprintln!("skipped: needs root to chown");
        return;
    }
    let env = TestEnv::new();
    let state = env.home().join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).expect("chown");
    let output = env.tether(&["daemon"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    assert!(!socket(&env).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_must_say_hello_first_and_learns_the_daemons_version() {
    let env = TestEnv::new();
    let daemon = spawn_daemon(&env);
    wait_for_socket(&env).await;
    let stream = tokio::net::UnixStream::connect(socket(&env))
        .await
        .expect("connect");
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    writer
        .write_all(
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tether/session/list\",\"params\":{}}\n",
        )
        .await
        .expect("write");
    let refused: Value =
        serde_json::from_str(&lines.next_line().await.expect("read").expect("a line"))
            .expect("JSON");
    assert_eq!(refused["id"], 1);
    assert_eq!(refused["error"]["code"], -31101, "{refused}");
    writer
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"daemon/hello\",\"params\":{\"version\":\"0.0.0-elsewhere\"}}\n")
        .await
        .expect("write");
    let welcome: Value =
        serde_json::from_str(&lines.next_line().await.expect("read").expect("a line"))
            .expect("JSON");
    assert_eq!(
        welcome["result"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{welcome}"
    );
    writer
        .write_all(
            b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tether/session/list\",\"params\":{}}\n",
        )
        .await
        .expect("write");
    let listed: Value =
        serde_json::from_str(&lines.next_line().await.expect("read").expect("a line"))
            .expect("JSON");
    assert_eq!(
        listed["result"]["sessions"],
        serde_json::json!([]),
        "{listed}"
    );
    // Garbage closes this connection only; the daemon serves on.
    writer.write_all(b"not json\n").await.expect("write");
    assert!(lines.next_line().await.expect("read").is_none());
    assert!(status(&env).await.is_some());
    stop(&env, daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_exits_when_idle() {
    let env = TestEnv::new();
    env.write_user_config("[daemon]\nidle_exit_mins = 0.02\n");
    let mut daemon = spawn_daemon(&env);
    wait_for_socket(&env).await;
    let exit = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .expect("the idle daemon exits by itself")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert!(!socket(&env).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_started_through_the_daemon_goes_on_when_its_command_is_killed() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text_paced(
        &["one ", "two ", "three ", "four ", "five ", "six"],
        Duration::from_millis(300),
    ));
    env.write_user_config(&model.user_config());
    let daemon = spawn_daemon(&env);
    wait_for_socket(&env).await;

    let repo = env.repo();
    let repo_arg = repo.to_str().expect("utf-8 path");
    let mut run = isolated_command(env.home())
        .args([
            "run",
            "--repo",
            repo_arg,
            "--name",
            "outlives",
            "Count slowly",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("tether run");
    let stdout = run.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    // It says it runs in the daemon, then streams; it is killed mid-reply.
    let mut said_daemon = false;
    while let Some(line) = lines.next_line().await.expect("read") {
        said_daemon |= line.contains("in the tether daemon");
        if line.contains("two") {
            break;
        }
    }
    assert!(said_daemon);
    run.start_kill().expect("kill -9 tether run");
    let _ = run.wait().await;

    // The reply finishes in the daemon; the session is there for the next command.
    let sessions = until("the session to finish in the daemon", || {
        let sessions = sessions_of(&env, repo_arg)?;
        (sessions[0]["status"] == "waiting").then_some(sessions)
    })
    .await;
    assert_eq!(sessions[0]["name"], "outlives", "{sessions}");
    let shown = env
        .tether(&["sessions", "show", "outlives", "--repo", repo_arg])
        .await;
    let transcript = String::from_utf8_lossy(&shown.stdout);
    assert!(
        transcript.contains("one two three four five six"),
        "{transcript}"
    );
    let serving = status(&env).await.expect("the daemon serves on");
    assert_eq!(serving["sessions"], 1, "{serving}");
    stop(&env, daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_user_is_refused_even_when_the_socket_is_opened_up() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: needs root to connect as another user");
        return;
    }
    let env = TestEnv::new();
    let daemon = spawn_daemon(&env);
    wait_for_socket(&env).await;
    // As if the folder and socket had been opened to everyone: the peer check still holds.
    for path in [
        env.home().to_owned(),
        env.home().join("state"),
        socket(&env),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let script = r#"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(10)
# The daemon may close the connection before the request is even written: also a refusal.
try:
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"daemon/hello","params":{"version":"x"}}\n')
    data = s.recv(4096)
except (ConnectionResetError, BrokenPipeError):
    data = b""
print("answered" if data else "closed")
"#;
    let output = {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new("python3");
        command
            .args(["-c", script])
            .arg(socket(&env))
            .uid(65534)
            .gid(65534);
        tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("python3")
    };
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "closed",
        "{output:?}"
    );
    assert!(
        status(&env).await.is_some(),
        "the daemon serves its own user"
    );
    stop(&env, daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_missed_while_the_daemon_was_down_starts_once_at_its_next_start() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["Nightly work done."]));
    let repo = env.repo();
    let repo_arg = repo.to_str().expect("utf-8 path");
    env.write_user_config(
        &format!(
            "{}\n[[schedules]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\nprompt = \"Tidy the README\"\nroot = \"{repo_arg}\"\n",
            model.user_config()
        ),
    );
    // The last run was three days ago: the daemon was down since.
    let state = env.home().join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    let three_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - 3 * 24 * 3600 * 1000;
    std::fs::write(
        state.join("schedules.json"),
        format!("{{\"last_run\": {{\"nightly\": {three_days_ago}}}}}"),
    )
    .expect("write the record");

    let list = || sessions_of(&env, repo_arg);
    let daemon = spawn_daemon(&env);
    wait_for_socket(&env).await;
    let sessions = until("the missed run to start and finish", || {
        let sessions = list()?;
        (sessions[0]["status"] == "waiting").then_some(sessions)
    })
    .await;
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    assert_eq!(
        sessions[0]["startedBy"],
        serde_json::json!({"kind": "schedule", "name": "nightly"}),
        "{sessions}"
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(state.join("schedules.json")).expect("record"))
            .expect("JSON");
    assert!(
        record["last_run"]["nightly"].as_i64().unwrap_or_default() > three_days_ago,
        "{record}"
    );
    // A daemon with schedules stays up; stopped and started again, it owes nothing.
    stop(&env, daemon).await;
    let daemon = spawn_daemon(&env);
    wait_for_socket(&env).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sessions = list().expect("list");
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    stop(&env, daemon).await;
}

/// A daemon started from a folder that is deleted while it runs (an editor opened from a
/// scratch folder, say) still serves: it works from `/`, and fronts send absolute paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_whose_starting_folder_was_deleted_still_serves() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["still fine"]));
    env.write_user_config(&model.user_config());
    let scratch = env.home().join("scratch");
    std::fs::create_dir_all(&scratch).expect("mkdir");
    let daemon = isolated_command(env.home())
        .arg("daemon")
        .current_dir(&scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the daemon");
    wait_for_socket(&env).await;
    std::fs::remove_dir_all(&scratch).expect("rm");
    let repo = env.repo();
    let output = env
        .tether(&[
            "run",
            "--repo",
            repo.to_str().expect("utf-8"),
            "still there?",
        ])
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("still fine"));
    stop(&env, daemon).await;
}

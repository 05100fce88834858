//! The session host: how long the first front waits for a daemon it starts (cold start: spawn
//! → `daemon/hello` answered) and how long a front takes to attach to a running one (connect
//! → `daemon/hello` answered), and a request round trip over the socket.

use std::path::Path;
use std::time::{Duration, Instant};

use tether::daemon::client::DaemonClient;
use tether::daemon::paths::DaemonPaths;

use super::{ms, percentile};

async fn connect(paths: &DaemonPaths) -> Option<DaemonClient> {
    let (notifications, _) = tokio::sync::mpsc::unbounded_channel();
    DaemonClient::connect(paths, "bench", notifications)
        .await
        .ok()
        .flatten()
}

/// The daemon's files for a bench home: state, socket and lock in `<home>/state`.
pub fn paths(home: &Path) -> DaemonPaths {
    let state = home.join("state");
    DaemonPaths::in_folder(&state, &state)
}

/// Starts `tether daemon` for a bench home (its state, config and data folders inside it).
pub fn spawn_daemon(home: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("daemon")
        .env("TETHER_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tether daemon")
}

/// Waits until the daemon listens, then attaches with `notifications` for its events.
pub async fn attach(
    paths: &DaemonPaths,
    notifications: tokio::sync::mpsc::UnboundedSender<(String, serde_json::Value)>,
) -> DaemonClient {
    while std::os::unix::net::UnixStream::connect(&paths.socket).is_err() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    DaemonClient::connect(paths, "bench", notifications)
        .await
        .expect("connect")
        .expect("a daemon")
}

pub async fn bench_daemon() {
    let home = tempfile::tempdir().expect("tempdir");
    let paths = paths(home.path());
    let spawn = || spawn_daemon(home.path());

    let mut cold = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let mut child = spawn();
        let client = loop {
            if let Some(client) = connect(&paths).await {
                break client;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        cold.push(started.elapsed());
        let _ = client
            .call_value(tether::daemon::wire::STOP, serde_json::json!({}))
            .await;
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    }
    cold.sort();

    let mut child = spawn();
    while connect(&paths).await.is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut attach = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let client = connect(&paths).await.expect("attach");
        attach.push(started.elapsed());
        drop(client);
    }
    attach.sort();
    let client = connect(&paths).await.expect("attach");
    let mut round_trips = Vec::new();
    for _ in 0..500 {
        let started = Instant::now();
        client
            .call_value("tether/session/list", serde_json::json!({}))
            .await
            .expect("list");
        round_trips.push(started.elapsed());
    }
    round_trips.sort();
    let _ = client
        .call_value(tether::daemon::wire::STOP, serde_json::json!({}))
        .await;
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;

    println!("session host over its socket");
    println!(
        "  cold start (spawn → hello answered, 20 runs): p50 {} · max {}   (target < 100 ms)",
        ms(percentile(&cold, 0.5)),
        ms(cold[cold.len() - 1])
    );
    println!(
        "  attach to a running daemon (connect → hello answered, 200 runs): p50 {} · p99 {}   (target < 20 ms)",
        ms(percentile(&attach, 0.5)),
        ms(percentile(&attach, 0.99))
    );
    println!(
        "  `list` round trip, no sessions (500 runs): p50 {} · p99 {}\n",
        ms(percentile(&round_trips, 0.5)),
        ms(percentile(&round_trips, 0.99))
    );
}

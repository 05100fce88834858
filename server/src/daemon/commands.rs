//! `tether daemon`, `tether daemon status`, `tether daemon stop`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use super::client::DaemonClient;
use super::paths::DaemonPaths;
use super::server::{self, DaemonOptions, DaemonStatus, StartError};
use super::wire;
use crate::config::ConfigSources;
use crate::session::SessionManager;

/// What `tether daemon` does.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum DaemonCommand {
    /// Serve in the foreground (what `tether lsp` starts, detached, when none runs).
    Run,
    /// Print the running daemon's pid, version, uptime, sessions and fronts.
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the daemon: sessions stop resumably, logs are flushed.
    Stop,
}

/// Serves in the foreground until stopped; a second daemon for the same state exits at once.
pub async fn run() -> anyhow::Result<ExitCode> {
    let paths = DaemonPaths::current();
    // Fronts send absolute paths; the folder the daemon was started from may be deleted
    // while it runs (and every git it starts would fail in it), so it works from `/`.
    std::env::set_current_dir("/").context("cannot leave the folder tether was started in")?;
    let sources = ConfigSources::default();
    let idle_exit_mins = sources
        .resolve(None)
        .map(|config| config.daemon.idle_exit_mins)
        .unwrap_or(crate::config::DaemonSettings::default().idle_exit_mins);
    let idle_exit = Duration::try_from_secs_f64(idle_exit_mins.max(0.0) * 60.0)
        .unwrap_or(Duration::from_secs(30 * 60))
        .max(Duration::from_millis(100));
    let manager = SessionManager::new(paths.state_home.clone(), sources)
        .context("cannot load the configuration")?;
    match server::serve(manager, DaemonOptions { paths, idle_exit }).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(StartError::AlreadyRunning(state)) => {
            eprintln!("tether: a daemon already serves {}", state.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(StartError::Failed(message)) => anyhow::bail!(message),
    }
}

/// Connects to the running daemon, if any.
async fn running(paths: &DaemonPaths) -> anyhow::Result<Option<DaemonClient>> {
    let (notifications, _) = mpsc::unbounded_channel();
    DaemonClient::connect(paths, "cli", notifications)
        .await
        .map_err(anyhow::Error::from)
}

/// The running daemon's status, or `None` when none runs for `paths`.
pub async fn running_status(paths: &DaemonPaths) -> anyhow::Result<Option<DaemonStatus>> {
    let Some(client) = running(paths).await? else {
        return Ok(None);
    };
    let status = client
        .call(wire::STATUS, &serde_json::json!({}))
        .await
        .context("the daemon did not answer")?;
    Ok(Some(status))
}

pub async fn status(json: bool) -> anyhow::Result<ExitCode> {
    let paths = DaemonPaths::current();
    let Some(status) = running_status(&paths).await? else {
        eprintln!(
            "tether: no daemon is running for {} (it starts with the first editor)",
            paths.state_home.display()
        );
        return Ok(ExitCode::from(3));
    };
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&status)?)?;
    } else {
        writeln!(
            out,
            "tether daemon {} (pid {}), up {} s\nsessions: {} ({} working)\nfronts: {}\nsocket: {}\nlog: {}",
            status.version,
            status.pid,
            status.uptime_secs,
            status.sessions,
            status.working,
            status.clients,
            status.socket.display(),
            status.log.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn stop() -> anyhow::Result<ExitCode> {
    let paths = DaemonPaths::current();
    let Some(client) = running(&paths).await? else {
        eprintln!(
            "tether: no daemon is running for {}",
            paths.state_home.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let pid = client.daemon_pid;
    // The answer comes once every session is stopped and every log flushed.
    let stopped = tokio::time::timeout(
        Duration::from_secs(60),
        client.call::<_, serde_json::Value>(wire::STOP, &serde_json::json!({})),
    )
    .await;
    match stopped {
        Ok(Ok(_)) => {}
        // The daemon closes the connection on its way out: stopped all the same.
        Ok(Err(super::client::CallError::Disconnected)) => {}
        Ok(Err(error)) => anyhow::bail!("the daemon did not take the stop: {error}"),
        Err(_) => anyhow::bail!(
            "the daemon (pid {pid}) is still stopping after 60 s; see {}",
            paths.log.display()
        ),
    }
    eprintln!("tether: the daemon (pid {pid}) stopped; its sessions resume when asked");
    Ok(ExitCode::SUCCESS)
}

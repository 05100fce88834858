//! The `tether` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use tether::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

/// Serves LSP on a thread of its own (the main one), while sessions stream on the worker
/// runtime: a request is never queued behind busy session tasks. Requests that touch git or
/// the disk run on the worker runtime too (its blocking pool), which is not waited for on
/// the way out.
///
/// By default the sessions live in the daemon (started on demand) and this process is the
/// editor's front; with `--no-daemon` or `TETHER_DAEMON=off` they live here.
fn serve_lsp(
    sessions_runtime: &tokio::runtime::Runtime,
    no_daemon: bool,
) -> anyhow::Result<ExitCode> {
    let sessions = if tether::daemon::client::daemon_wanted(no_daemon) {
        let paths = tether::daemon::paths::DaemonPaths::current();
        tether::front::Sessions::Remote(tether::front::Remote::start(
            paths,
            sessions_runtime.handle(),
        ))
    } else {
        let _inside = sessions_runtime.enter();
        tether::front::Sessions::Local(tether::session::SessionManager::new(
            tether::store::state_home(),
            Default::default(),
        )?)
    };
    let lsp_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    lsp_runtime.block_on(tether::lsp::serve_stdio(
        sessions,
        sessions_runtime.handle().clone(),
    ));
    Ok(ExitCode::SUCCESS)
}

/// Session work (streaming, parsing, git) runs a little below the LSP thread's priority, so
/// that on a busy machine the editor's requests are served first.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory effects; on Linux, who = 0 names the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 5);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr: stdout is the LSP channel; the daemon's stderr is its log file, so
    // it says a little more by default. `TETHER_LOG` sets the filter.
    let default_filter = match cli.command {
        Some(Command::Daemon { command: None }) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_env("TETHER_LOG")
                .unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(lower_thread_priority)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tether: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command.unwrap_or(Command::Lsp { no_daemon: false }) {
        Command::Lsp { no_daemon } => serve_lsp(&runtime, no_daemon),
        Command::Run(args) => runtime.block_on(tether::cli::run(args)),
        Command::Sessions(command) => runtime.block_on(tether::cli::sessions(command)),
        Command::Completions { shell } => {
            tether::cli::print_completions(shell);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => tether::cli::print_man().map(|()| ExitCode::SUCCESS),
        Command::Doctor { repo, json } => runtime.block_on(tether::cli::doctor(&repo, json)),
        Command::Daemon { command } => {
            use tether::daemon::commands::{self, DaemonCommand};
            runtime.block_on(async {
                match command.unwrap_or(DaemonCommand::Run) {
                    DaemonCommand::Run => commands::run().await,
                    DaemonCommand::Status { json } => commands::status(json).await,
                    DaemonCommand::Stop => commands::stop().await,
                }
            })
        }
    };
    // Don't wait for stray blocking tasks (a git process, a slow read) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tether: {error:#}");
            ExitCode::FAILURE
        }
    }
}

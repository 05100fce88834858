//! The `tether` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use tether::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr: stdout is the LSP channel. `TETHER_LOG` sets the filter.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_env("TETHER_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tether: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Lsp) {
            Command::Lsp => {
                let manager = tether::session::SessionManager::new(
                    tether::store::state_home(),
                    Default::default(),
                )?;
                tether::lsp::serve_stdio(manager).await;
                Ok(ExitCode::SUCCESS)
            }
            Command::Run(args) => tether::cli::run(args).await,
            Command::Sessions(command) => tether::cli::sessions(command).await,
        }
    });
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

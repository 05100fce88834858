//! The command line: `tether [lsp]`, `tether run`, `tether sessions …`. Every command drives
//! the same [`SessionManager`] the language server uses.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

mod doctor;
mod run;

pub use doctor::{Check, CheckStatus, Report, doctor};
pub use run::run;

use crate::api::{self, Method};
use crate::config::ConfigSources;
use crate::session::{Event, ItemPhase, MessageRole, SessionManager, export};
use crate::store;

#[derive(Debug, Parser)]
#[command(
    name = "tether",
    version,
    about = "AI coding-agent sessions in your editor, over LSP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Language Server Protocol on stdin/stdout (the default): a front of the
    /// session daemon, which it starts when none runs.
    Lsp {
        /// Run the sessions in this process instead (they stop when the editor does); the
        /// same as `TETHER_DAEMON=off`.
        #[arg(long)]
        no_daemon: bool,
    },
    /// Run one session headless, printing its events as they happen.
    Run(RunArgs),
    /// Inspect the sessions stored for a repository.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// The session host: serve (default), or ask the running one for its status, or stop it.
    Daemon {
        #[command(subcommand)]
        command: Option<crate::daemon::commands::DaemonCommand>,
    },
    /// Print the shell's completion script for tether (e.g. `tether completions bash >
    /// ~/.local/share/bash-completion/completions/tether`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print tether's manual page (roff; e.g. `tether man | man -l -`).
    Man,
    /// Check what sessions need here (git, the kernel sandbox, settings, providers, the
    /// daemon, the state folder), one line each with how to fix what fails; exits 1 when
    /// something fails. API keys are never printed.
    Doctor {
        /// The repository whose settings count too (any path inside it).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Writes `shell`'s completion script for the command line to stdout.
pub fn print_completions(shell: clap_complete::Shell) {
    use clap::CommandFactory as _;
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "tether", &mut std::io::stdout());
}

/// Writes the manual page to stdout.
pub fn print_man() -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .map_err(|error| anyhow::anyhow!("cannot write the manual page: {error}"))
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The repository to work on (any path inside it).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// A provider from the configuration (default: `default_provider`, else OpenAI when
    /// OPENAI_API_KEY is set, else the local model).
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// The branch to start from (default: the repository's current branch).
    #[arg(long = "base")]
    pub base_branch: Option<String>,
    /// The session's name (default: from the prompt).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, value_enum, default_value_t = ModeArg::Develop)]
    pub mode: ModeArg,
    /// Print events as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// What the agent should do.
    pub prompt: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Develop,
    Chat,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List the sessions of a repository.
    List {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show one session (by id or name) and its transcript.
    Show {
        id: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
    /// Export one session (by id or name).
    Export {
        id: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long, value_enum, default_value_t = FormatArg::Markdown)]
        format: FormatArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Markdown,
    Json,
}

fn manager(command_line: serde_json::Value) -> anyhow::Result<SessionManager> {
    let sources = ConfigSources {
        command_line,
        ..ConfigSources::default()
    };
    SessionManager::new(store::state_home(), sources).context("cannot load the configuration")
}

pub(crate) fn print_event(out: &mut impl Write, event: &Event) -> std::io::Result<()> {
    match event {
        Event::Status {
            status, activity, ..
        } => match activity {
            Some(activity) => writeln!(out, "\n[{status}: {}]", activity.as_str()),
            None => writeln!(out, "\n[{status}]"),
        },
        Event::Item {
            phase: ItemPhase::Started,
            item: crate::session::Item::Message { role, .. },
        } => match role {
            MessageRole::Agent => write!(out, "\nagent: "),
            MessageRole::Thinking => write!(out, "\nthinking: "),
            _ => Ok(()),
        },
        Event::Item {
            phase: ItemPhase::Completed,
            item:
                crate::session::Item::Message {
                    role: MessageRole::User,
                    text,
                    ..
                },
        } => writeln!(out, "\nuser: {text}"),
        Event::Item {
            phase: ItemPhase::Completed,
            item:
                crate::session::Item::Review {
                    status,
                    findings,
                    run,
                    ..
                }
                | crate::session::Item::Verification {
                    status,
                    findings,
                    run,
                    ..
                },
        } => {
            let kind = match event {
                Event::Item {
                    item: crate::session::Item::Review { .. },
                    ..
                } => "review",
                _ => "verification",
            };
            write!(out, "\n[{kind}: {status}, {} findings", findings.len())?;
            if let Some(error) = &run.error {
                write!(out, ": {error}")?;
            }
            writeln!(out, "]")?;
            for finding in findings {
                let place = finding
                    .file
                    .as_ref()
                    .map(|file| format!("{file}:{}: ", finding.start_line))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "  {place}{:?} {}: {}",
                    finding.severity, finding.category, finding.title
                )?;
            }
            Ok(())
        }
        Event::Delta { text, .. } => write!(out, "{text}"),
        Event::Usage { usage, .. } => writeln!(
            out,
            "\n[usage: {} input, {} output tokens]",
            usage.input_tokens, usage.output_tokens
        ),
        Event::TurnEnded { reason, message } => match message {
            Some(message) => writeln!(out, "\n[turn ended: {}: {message}]", reason.as_str()),
            None => writeln!(out, "\n[turn ended: {}]", reason.as_str()),
        },
        _ => Ok(()),
    }
}

/// `tether sessions …`: through the daemon when one runs (its sessions are live there), else
/// from the logs in this process.
pub async fn sessions(command: SessionsCommand) -> anyhow::Result<ExitCode> {
    let repo = match &command {
        SessionsCommand::List { repo, .. }
        | SessionsCommand::Show { repo, .. }
        | SessionsCommand::Export { repo, .. } => repo.clone(),
    };
    let source = Sessions::open(&repo).await?;
    let all = source.list().await?;
    let find = |key: &str| {
        all.iter()
            .find(|info| info.id == key || info.name == key)
            .cloned()
            .with_context(|| format!("no session with id or name {key:?} in {}", repo.display()))
    };
    let mut out = std::io::stdout().lock();
    match &command {
        SessionsCommand::List { json, .. } => {
            if *json {
                writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
            } else if all.is_empty() {
                writeln!(out, "no sessions in {}", repo.display())?;
            } else {
                for info in &all {
                    writeln!(
                        out,
                        "{:<32} {:<10} {:<8} {}  {}",
                        info.name,
                        info.status.as_str(),
                        info.mode.as_str(),
                        info.updated_at,
                        info.id
                    )?;
                }
            }
        }
        SessionsCommand::Show { id, .. } => {
            let info = find(id)?;
            write!(
                out,
                "{}",
                source.export(&info.id, api::ExportFormat::Markdown).await?
            )?;
        }
        SessionsCommand::Export { id, format, .. } => {
            let info = find(id)?;
            let format = match format {
                FormatArg::Markdown => api::ExportFormat::Markdown,
                FormatArg::Json => api::ExportFormat::Json,
            };
            writeln!(out, "{}", source.export(&info.id, format).await?.trim_end())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `tether sessions` reads: the daemon, or the logs.
enum Sessions {
    Daemon {
        client: crate::daemon::client::DaemonClient,
        repo: PathBuf,
    },
    InProcess(SessionManager),
}

impl Sessions {
    async fn open(repo: &std::path::Path) -> anyhow::Result<Sessions> {
        let paths = crate::daemon::paths::DaemonPaths::current();
        let (notifications, _) = tokio::sync::mpsc::unbounded_channel();
        if crate::daemon::client::daemon_wanted(false)
            && let Some(client) =
                crate::daemon::client::DaemonClient::connect(&paths, "cli", notifications).await?
        {
            let root = std::path::absolute(repo)?;
            let opened: serde_json::Value = client
                .call(
                    crate::daemon::wire::OPEN,
                    &serde_json::json!({ "root": root }),
                )
                .await
                .with_context(|| format!("cannot open the sessions of {}", repo.display()))?;
            let repo = opened["repo"]
                .as_str()
                .map(PathBuf::from)
                .context("the daemon named no repository")?;
            return Ok(Sessions::Daemon { client, repo });
        }
        let manager = manager(serde_json::Value::Null)?;
        manager
            .open_repository(repo)
            .with_context(|| format!("cannot open the sessions of {}", repo.display()))?;
        Ok(Sessions::InProcess(manager))
    }

    async fn list(&self) -> anyhow::Result<Vec<api::SessionInfo>> {
        Ok(match self {
            Sessions::InProcess(manager) => manager
                .list(&Default::default())
                .into_iter()
                .map(api::SessionInfo::from)
                .collect(),
            Sessions::Daemon { client, repo } => {
                let listed: api::ListResult = client
                    .call(api::methods::List::NAME, &api::ListParams::default())
                    .await?;
                // The daemon serves every repository; this command shows one.
                listed
                    .sessions
                    .into_iter()
                    .filter(|info| info.repo == *repo)
                    .collect()
            }
        })
    }

    async fn export(&self, id: &str, format: api::ExportFormat) -> anyhow::Result<String> {
        Ok(match self {
            Sessions::InProcess(manager) => {
                let (info, events) = manager.all_events(id)?;
                match format {
                    api::ExportFormat::Markdown => export::to_markdown(&info, &events),
                    api::ExportFormat::Json => export::to_json(&info, &events),
                }
            }
            Sessions::Daemon { client, .. } => {
                let exported: api::ExportResult = client
                    .call(
                        api::methods::Export::NAME,
                        &api::ExportParams {
                            id: id.to_owned(),
                            format,
                        },
                    )
                    .await?;
                exported.content
            }
        })
    }
}

//! The command line: `tether [lsp]`, `tether run`, `tether sessions …`. Every command drives
//! the same [`SessionManager`] the language server uses.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::config::ConfigSources;
use crate::session::{
    CreateSession, Event, ItemPhase, MessageRole, Mode, SessionManager, SessionStatus, export,
};
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
    /// Serve the Language Server Protocol on stdin/stdout (the default).
    Lsp,
    /// Run one session headless, printing its events as they happen.
    Run(RunArgs),
    /// Inspect the sessions stored for a repository.
    #[command(subcommand)]
    Sessions(SessionsCommand),
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

/// `tether run`: create a session, print its events until its turn is over.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let manager = manager(serde_json::Value::Null)?;
    // What the repository's file tried and was refused. An error here (no repository, a
    // broken file) is left for `create` to report.
    if let Ok((repository, warnings)) = manager.config_warnings(&args.repo) {
        for warning in warnings {
            eprintln!("warning: {}: {warning}", repository.display());
        }
    }
    let mut events = manager.subscribe();
    let info = manager
        .create(CreateSession {
            prompt: args.prompt,
            mode: match args.mode {
                ModeArg::Develop => Mode::Develop,
                ModeArg::Chat => Mode::Chat,
            },
            name: args.name,
            root: args.repo,
            base_branch: args.base_branch,
            provider: args.provider,
            model: args.model,
            toggles: Default::default(),
        })
        .await
        .context("cannot start the session")?;
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "session {} ({}) on branch {} from {}, model {}/{}\nworktree: {}",
            info.name,
            info.id,
            info.branch,
            info.base_branch,
            info.provider,
            info.model,
            info.worktree.display()
        )?;
    }
    drop(out);

    let mut interrupted = false;
    let mut awaiting_reviews = false;
    let final_status = loop {
        let announced = tokio::select! {
            received = events.next() => match received {
                Some(announced) => announced,
                None => bail!("the session manager stopped"),
            },
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                eprintln!("\nstopping the session (it stays resumable)…");
                manager.stop(&info.id).await?;
                continue;
            }
        };
        if *announced.session_id != *info.id {
            continue;
        }
        let record = &announced.record;
        let mut out = std::io::stdout().lock();
        if args.json {
            let line = json!({"sessionId": &*announced.session_id, "seq": record.seq, "at": record.at, "event": record.event});
            writeln!(out, "{line}")?;
        } else {
            print_event(&mut out, &record.event)?;
        }
        out.flush()?;
        // After the turn, the automatic verification and review finish before we exit.
        if awaiting_reviews && !manager.reviews_running(&info.id) {
            break SessionStatus::Waiting;
        }
        if let Event::Status {
            status: SessionStatus::Waiting,
            ..
        } = &record.event
            && manager.reviews_running(&info.id)
        {
            awaiting_reviews = true;
            continue;
        }
        if let Event::Status { status, reason, .. } = &record.event
            && matches!(
                status,
                SessionStatus::Waiting
                    | SessionStatus::Completed
                    | SessionStatus::Stopped
                    | SessionStatus::Failed
            )
        {
            if *status == SessionStatus::Failed {
                let reason = reason.as_deref().unwrap_or("unknown reason");
                eprintln!("\nsession failed: {reason}");
                if reason.contains(&crate::config::local_model_url()) {
                    eprintln!(
                        "hint: start the local model with `scripts/local-model.sh start`, or set OPENAI_API_KEY"
                    );
                }
            }
            break *status;
        }
    };
    manager.shutdown().await;
    Ok(match final_status {
        SessionStatus::Failed => ExitCode::FAILURE,
        SessionStatus::Stopped if interrupted => ExitCode::from(130),
        SessionStatus::Stopped => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

fn print_event(out: &mut impl Write, event: &Event) -> std::io::Result<()> {
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

/// `tether sessions …`
pub async fn sessions(command: SessionsCommand) -> anyhow::Result<ExitCode> {
    let manager = manager(serde_json::Value::Null)?;
    let repo = match &command {
        SessionsCommand::List { repo, .. }
        | SessionsCommand::Show { repo, .. }
        | SessionsCommand::Export { repo, .. } => repo.clone(),
    };
    manager
        .open_repository(&repo)
        .with_context(|| format!("cannot open the sessions of {}", repo.display()))?;
    let all = manager.list(&Default::default());
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
            let (info, events) = manager.all_events(&info.id)?;
            write!(out, "{}", export::to_markdown(&info, &events))?;
        }
        SessionsCommand::Export { id, format, .. } => {
            let info = find(id)?;
            let (info, events) = manager.all_events(&info.id)?;
            let content = match format {
                FormatArg::Markdown => export::to_markdown(&info, &events),
                FormatArg::Json => export::to_json(&info, &events),
            };
            writeln!(out, "{}", content.trim_end())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `tether run`: create a session, print its events until its turn (and the automatic
//! verification and review after it) is over. Through the daemon, started when none runs, so
//! that it works beside an open editor and the session stays in the daemon afterwards; in
//! process only with `TETHER_DAEMON=off`. (Run in process while an editor's daemon starts,
//! it would hold the repository's lock and leave the daemon that repository read-only.)

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ModeArg, RunArgs, manager, print_event};
use crate::api::{self, Method, methods};
use crate::daemon::client::DaemonClient;
use crate::daemon::paths::DaemonPaths;
use crate::daemon::wire;
use crate::session::{
    CreateSession, Event, EventRecord, Item, ItemPhase, Mode, SessionManager, SessionStatus,
    Subscription,
};

/// Where the session runs.
enum Host {
    InProcess {
        manager: SessionManager,
        events: Subscription,
    },
    Daemon {
        client: DaemonClient,
        events: mpsc::UnboundedReceiver<(String, Value)>,
    },
}

impl Host {
    /// The daemon of this state folder (started when none runs), else, with
    /// `TETHER_DAEMON=off`, sessions in this process.
    async fn find() -> anyhow::Result<Host> {
        let paths = DaemonPaths::current();
        let (notifications, events) = mpsc::unbounded_channel();
        if crate::daemon::client::daemon_wanted(false) {
            let client = DaemonClient::connect_or_start(&paths, "cli", notifications).await?;
            if client.daemon_version != crate::daemon::server::VERSION {
                eprintln!(
                    "warning: the running tether daemon is version {}, this command {}; stop it with `tether daemon stop` to run this version",
                    client.daemon_version,
                    crate::daemon::server::VERSION
                );
            }
            let _: Value = client.call(wire::SUBSCRIBE, &json!({})).await?;
            return Ok(Host::Daemon { client, events });
        }
        let manager = manager(Value::Null)?;
        let events = manager.subscribe();
        Ok(Host::InProcess { manager, events })
    }

    async fn create(&self, request: CreateSession) -> anyhow::Result<api::SessionInfo> {
        match self {
            Host::InProcess { manager, .. } => Ok(manager.create(request).await?.into()),
            Host::Daemon { client, .. } => {
                let root = std::path::absolute(&request.root)
                    .with_context(|| format!("cannot resolve {}", request.root.display()))?;
                let params = api::CreateParams {
                    prompt: request.prompt,
                    mode: Some(request.mode),
                    name: request.name,
                    root: Some(root.display().to_string()),
                    base_branch: request.base_branch,
                    provider: request.provider,
                    model: request.model,
                    toggles: request.toggles,
                    started_by: request.started_by,
                    settings_profile: None,
                    attachments: request.attachments,
                };
                Ok(client.call(methods::Create::NAME, &params).await?)
            }
        }
    }

    async fn stop(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Host::InProcess { manager, .. } => {
                manager.stop(id).await?;
            }
            Host::Daemon { client, .. } => {
                let _: api::SessionInfo = client
                    .call(methods::Stop::NAME, &api::IdParams { id: id.to_owned() })
                    .await?;
            }
        }
        Ok(())
    }

    /// The next event of any session: its session id and record.
    async fn next(&mut self) -> anyhow::Result<(String, EventRecord)> {
        match self {
            Host::InProcess { events, .. } => {
                let announced = events.next().await.context("the session manager stopped")?;
                Ok((
                    announced.session_id.to_string(),
                    (*announced.record).clone(),
                ))
            }
            Host::Daemon { events, .. } => loop {
                let Some((method, params)) = events.recv().await else {
                    bail!(
                        "the connection to the tether daemon was lost; the session goes on there (see `tether sessions list`)"
                    );
                };
                if method != api::SESSION_EVENT {
                    continue;
                }
                let event: api::SessionEventParams = serde_json::from_value(params)
                    .context("the daemon sent an unreadable event")?;
                return Ok((
                    event.session_id,
                    EventRecord {
                        seq: event.seq,
                        at: event.at,
                        event: event.event,
                    },
                ));
            },
        }
    }

    async fn finish(self) {
        if let Host::InProcess { manager, .. } = self {
            manager.shutdown().await;
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut host = Host::find().await?;
    // What the repository's file tried and was refused, read here (the daemon reads the same
    // files). An error (no repository, a broken file) is left for `create` to report.
    if let Ok(repository) = crate::workspace::discover(&args.repo)
        && let Ok(resolved) =
            crate::config::ConfigSources::default().resolve_with_warnings(Some(&repository.root))
    {
        for warning in &resolved.warnings {
            eprintln!("warning: {}: {warning}", repository.root.display());
        }
    }
    let info = host
        .create(CreateSession {
            prompt: args.prompt,
            mode: match args.mode {
                ModeArg::Develop => Mode::Develop,
                ModeArg::Chat => Mode::Chat,
            },
            name: args.name,
            root: args.repo,
            base_branch: args.base_branch,
            base_commit: None,
            provider: args.provider,
            model: args.model,
            toggles: Default::default(),
            started_by: Some(crate::vocab::StartedBy::Cli),
            settings_profile: None,
            attachments: Vec::new(),
        })
        .await
        .context("cannot start the session")?;
    if !args.json {
        let mut out = std::io::stdout().lock();
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
        if matches!(host, Host::Daemon { .. }) {
            writeln!(
                out,
                "(in the tether daemon: it goes on if this command stops)"
            )?;
        }
    }

    let mut interrupted = false;
    // Reviews and verifications started and not finished: the turn is over when they are.
    let mut open_runs: HashSet<String> = HashSet::new();
    let mut waiting = false;
    let final_status = loop {
        let (session_id, record) = tokio::select! {
            next = host.next() => next?,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                eprintln!("\nstopping the session (it stays resumable)…");
                host.stop(&info.id).await?;
                continue;
            }
        };
        if session_id != info.id {
            continue;
        }
        let mut out = std::io::stdout().lock();
        if args.json {
            let line = json!({"sessionId": session_id, "seq": record.seq, "at": record.at, "event": record.event});
            writeln!(out, "{line}")?;
        } else {
            print_event(&mut out, &record.event)?;
        }
        out.flush()?;
        match &record.event {
            Event::Item {
                phase,
                item: item @ (Item::Review { .. } | Item::Verification { .. }),
            } => {
                if *phase == ItemPhase::Started {
                    open_runs.insert(item.id().to_owned());
                } else {
                    open_runs.remove(item.id());
                }
                if waiting && open_runs.is_empty() {
                    break SessionStatus::Waiting;
                }
            }
            Event::Status {
                status: SessionStatus::Waiting,
                ..
            } => {
                // The automatic runs were registered before `waiting`: wait for them.
                if open_runs.is_empty() {
                    break SessionStatus::Waiting;
                }
                waiting = true;
            }
            Event::Status { status, reason, .. }
                if matches!(
                    status,
                    SessionStatus::Completed | SessionStatus::Stopped | SessionStatus::Failed
                ) =>
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
            Event::Status { .. } => waiting = false,
            _ => {}
        }
    };
    host.finish().await;
    Ok(match final_status {
        SessionStatus::Failed => ExitCode::FAILURE,
        SessionStatus::Stopped if interrupted => ExitCode::from(130),
        SessionStatus::Stopped => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

//! `tether doctor`: whether this machine can run sessions, one line per thing Tether needs
//! (git, the kernel sandbox, the settings, each provider, the daemon, the state folder), with
//! how to fix what fails. The Neovim health check and VS Code's "Tether: Doctor" show the
//! same report (`--json`).
//!
//! A key is never printed: a provider's line names the variable that holds it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::config::{ConfigSources, ProviderKind, SandboxMode};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    /// Worth knowing, nothing wrong (an optional agent not installed).
    Info,
    /// Works, but less well than it could.
    Warn,
    /// Sessions (or some of them) cannot run until it is fixed.
    Fail,
}

impl CheckStatus {
    fn label(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Info => "info",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
    /// What to do about it, when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(name: impl Into<String>, status: CheckStatus, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// The whole report, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// Runs every check for `repo` (any folder; a repository's settings count when it is one)
/// and prints the report. Exits 1 when a check failed.
pub async fn doctor(repo: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let report = report(repo).await;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        for check in &report.checks {
            writeln!(
                out,
                "{:<5} {:<20} {}",
                check.status.label(),
                check.name,
                check.detail
            )?;
            if let Some(fix) = &check.fix {
                writeln!(out, "{:<26} fix: {fix}", "")?;
            }
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn report(repo: &Path) -> Report {
    let mut checks = vec![
        Check::new(
            "tether",
            CheckStatus::Ok,
            match std::env::current_exe() {
                Ok(exe) => format!("{} ({})", env!("CARGO_PKG_VERSION"), exe.display()),
                Err(_) => env!("CARGO_PKG_VERSION").to_owned(),
            },
        ),
        git().await,
    ];
    let root = crate::workspace::discover(repo)
        .ok()
        .map(|repository| repository.root);
    let config = match ConfigSources::default().resolve_with_warnings(root.as_deref()) {
        Ok(resolved) => {
            let mut check = Check::new(
                "settings",
                CheckStatus::Ok,
                match &root {
                    Some(root) => format!("read for {}", root.display()),
                    None => "read (not in a git repository: your own settings only)".to_owned(),
                },
            );
            if !resolved.warnings.is_empty() {
                let ignored: Vec<String> = resolved
                    .warnings
                    .iter()
                    .map(|warning| warning.to_string())
                    .collect();
                check = Check::new("settings", CheckStatus::Warn, ignored.join("; "))
                    .fix("the repository's .tether/config.toml may only tighten your settings");
            }
            checks.push(check);
            Some(resolved.config)
        }
        Err(error) => {
            checks.push(
                Check::new("settings", CheckStatus::Fail, error.to_string())
                    .fix("correct the file it names (docs: README.md, Configuration)"),
            );
            None
        }
    };
    checks.push(sandbox(
        config.as_ref().map(|config| config.session.sandbox),
    ));
    if let Some(config) = &config {
        checks.extend(providers(config).await);
    }
    checks.push(daemon().await);
    checks.push(state_folder(&crate::store::state_home()));
    Report {
        version: env!("CARGO_PKG_VERSION"),
        ok: checks.iter().all(|check| check.status != CheckStatus::Fail),
        checks,
    }
}

async fn git() -> Check {
    let output = tokio::process::Command::new("git")
        .arg("--version")
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(10), output).await {
        Ok(Ok(output)) if output.status.success() => Check::new(
            "git",
            CheckStatus::Ok,
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        ),
        Ok(Ok(output)) => Check::new(
            "git",
            CheckStatus::Fail,
            format!(
                "`git --version` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        )
        .fix("reinstall git"),
        Ok(Err(error)) => Check::new(
            "git",
            CheckStatus::Fail,
            format!("git cannot be run: {error}"),
        )
        .fix("install git (e.g. `apt install git`) and make sure it is on PATH"),
        Err(_) => Check::new(
            "git",
            CheckStatus::Fail,
            "`git --version` did not answer in 10 s",
        ),
    }
}

fn sandbox(mode: Option<SandboxMode>) -> Check {
    let abi = crate::sandbox::kernel_abi();
    match (mode.unwrap_or_default(), abi) {
        (SandboxMode::Off, _) => Check::new(
            "sandbox",
            CheckStatus::Warn,
            "off in your settings: the agent's commands can write anywhere you can",
        )
        .fix("remove `sandbox = \"off\"` from [session] in your settings"),
        (_, Some(abi)) => Check::new(
            "sandbox",
            CheckStatus::Ok,
            format!("Landlock ABI {abi}: commands write only in their worktree"),
        ),
        (SandboxMode::Required, None) => Check::new(
            "sandbox",
            CheckStatus::Fail,
            "this kernel has no Landlock and your settings require it: commands are refused",
        )
        .fix("run Linux 5.13 or newer with Landlock enabled (the `lsm=` boot option)"),
        (SandboxMode::Auto, None) => Check::new(
            "sandbox",
            CheckStatus::Warn,
            "this kernel has no Landlock: the agent's commands run unconfined",
        )
        .fix("run Linux 5.13 or newer with Landlock enabled (the `lsm=` boot option)"),
    }
}

/// One line per provider: an agent's program found, an API's key variable set (never its
/// value) and its server reachable. Only the default provider failing fails the report;
/// the others are there to pick from. The servers are asked all at once, so a report waits
/// for the slowest of them, not for their sum.
async fn providers(config: &crate::config::Config) -> Vec<Check> {
    let presets = crate::config::builtin_providers();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let entries = crate::host::provider_entries(config, &presets, &path);
    futures_util::future::join_all(entries.into_iter().map(|entry| provider(config, entry)))
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The line of one provider (none for one that names no settings).
async fn provider(
    config: &crate::config::Config,
    entry: crate::api::ProviderEntry,
) -> Option<Check> {
    let name = format!("provider {}", entry.name);
    let default = if entry.default { " (default)" } else { "" };
    let unusable = if entry.default {
        CheckStatus::Fail
    } else if entry.preset {
        CheckStatus::Info
    } else {
        CheckStatus::Warn
    };
    if !entry.available {
        let missing = entry.missing.unwrap_or_default();
        return Some(Check::new(name, unusable, format!("not set up{default}")).fix(missing));
    }
    let provider = config.providers.get(&entry.name)?;
    Some(match entry.kind {
        ProviderKind::Acp => {
            let found = entry
                .path
                .map(|path| path.display().to_string())
                .unwrap_or_default();
            Check::new(
                name,
                CheckStatus::Ok,
                format!("agent found{default}: {found}"),
            )
        }
        ProviderKind::Openai | ProviderKind::Anthropic => {
            let key = provider
                .api_key_env
                .as_ref()
                .map(|variable| format!(", key in {variable}"))
                .unwrap_or_default();
            let Some(url) = provider.base_url.as_deref() else {
                return Some(Check::new(
                    name,
                    CheckStatus::Ok,
                    format!("set up{default}{key}"),
                ));
            };
            match reachable(url).await {
                Ok(answer) => Check::new(
                    name,
                    CheckStatus::Ok,
                    format!("{url} answers ({answer}){default}{key}"),
                ),
                Err(why) => {
                    let fix = if url == crate::config::local_model_url() {
                        "start the local model (`scripts/local-model.sh start` in tether's repository), or set OPENAI_API_KEY".to_owned()
                    } else {
                        format!("check the network, or `providers.{}.base_url`", entry.name)
                    };
                    Check::new(
                        name,
                        unusable,
                        format!("{url} cannot be reached{default}: {why}"),
                    )
                    .fix(fix)
                }
            }
        }
    })
}

/// Whether an HTTP server answers at `url` (any status counts): no key is sent.
async fn reachable(url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| error.to_string())?;
    match client.get(url).send().await {
        Ok(response) => Ok(format!("HTTP {}", response.status().as_u16())),
        Err(error) if error.is_timeout() => Err("no answer in 5 s".to_owned()),
        Err(error) => {
            // reqwest's own message is generic ("error sending request"): say its causes.
            let error = error.without_url();
            let mut why = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                why.push_str(": ");
                why.push_str(&cause.to_string());
                source = cause.source();
            }
            Err(why)
        }
    }
}

async fn daemon() -> Check {
    let paths = crate::daemon::paths::DaemonPaths::current();
    match crate::daemon::commands::running_status(&paths).await {
        Ok(Some(status)) if status.version == env!("CARGO_PKG_VERSION") => Check::new(
            "daemon",
            CheckStatus::Ok,
            format!(
                "running (pid {}, {} session(s), {} working)",
                status.pid, status.sessions, status.working
            ),
        ),
        Ok(Some(status)) => Check::new(
            "daemon",
            CheckStatus::Warn,
            format!(
                "running version {} (pid {}), not this binary's {}",
                status.version,
                status.pid,
                env!("CARGO_PKG_VERSION")
            ),
        )
        .fix("`tether daemon stop`: the next editor starts this version (sessions resume)"),
        Ok(None) => Check::new(
            "daemon",
            CheckStatus::Info,
            "not running: the first editor starts it",
        ),
        Err(error) => Check::new("daemon", CheckStatus::Warn, format!("{error:#}"))
            .fix(format!("see its log, {}", paths.log.display())),
    }
}

/// The state folder exists (or can be made) and takes a file.
fn state_folder(home: &Path) -> Check {
    let probe: PathBuf = home.join(format!(".doctor-{}", std::process::id()));
    let written = std::fs::create_dir_all(home).and_then(|()| std::fs::write(&probe, b"ok"));
    let _ = std::fs::remove_file(&probe);
    match written {
        Ok(()) => Check::new(
            "state folder",
            CheckStatus::Ok,
            format!("{} (writable)", home.display()),
        ),
        Err(error) => Check::new(
            "state folder",
            CheckStatus::Fail,
            format!("{} cannot be written: {error}", home.display()),
        )
        .fix("make it writable, or set TETHER_HOME (or XDG_STATE_HOME) to a folder that is"),
    }
}

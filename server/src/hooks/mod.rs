//! Lifecycle hooks: commands from `.tether/config.toml` run on a session's events
//! (`on_init`, `on_start`, `on_agent_finish`, `on_done`, `on_cancel`).
//!
//! A hook gets the session as JSON on stdin. Exit 0 is success; exit 2 blocks (its stderr
//! goes to the agent); any other exit is a failure that blocks nothing. Nothing here knows
//! sessions: [`HookRunner::run`] takes the hooks and the input and returns what each did.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::sandbox::Jail;
pub use crate::vocab::HookStatus;

/// Consecutive failures (across sessions) after which a hook is switched off for a while.
const BREAKER_FAILURES: u32 = 3;
/// How long a tripped hook stays off.
const BREAKER_COOL_OFF: Duration = Duration::from_secs(10 * 60);
/// Output kept in a hook's event ("truncated").
const OUTPUT_EXCERPT: usize = 2_000;

pub use crate::config::hooks::{FailedOutput, HookConfig, HookEvent, HooksConfig, TaskConfig};

/// What a hook is told on stdin.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookInput {
    pub session_id: String,
    pub transcript_path: String,
    pub worktree: String,
    pub branch: String,
    pub event: HookEvent,
    pub changed_files: Vec<String>,
    pub in_loop: bool,
}

/// What one hook did.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRun {
    pub name: String,
    /// `success`, `blocked`, `failed`, `timeout`, `skipped` (filters) or `disabled` (the
    /// circuit breaker).
    pub status: HookStatus,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// An excerpt of stdout and stderr.
    pub output: String,
    /// For the agent: a blocking hook's stderr, or a failure as `failed_output` says.
    pub message_for_agent: Option<String>,
}

#[derive(Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// Runs hooks, keeping each hook's circuit breaker across sessions. A hook is known by its
/// repository, event, name and configuration: changing the configuration resets it.
#[derive(Default)]
pub struct HookRunner {
    breakers: Mutex<HashMap<String, Breaker>>,
}

impl HookRunner {
    /// Runs the event's hooks in order, in the jail's worktree and inside it: a hook runs what
    /// the agent wrote (tests, build scripts), so it is confined as the agent's commands are.
    pub async fn run(
        &self,
        config: &HooksConfig,
        repo: &Path,
        jail: &Jail,
        input: &HookInput,
    ) -> Vec<HookRun> {
        let mut runs = Vec::new();
        for hook in config.for_event(input.event) {
            let Some(command) = config.command_of(hook) else {
                continue;
            };
            if let Some(reason) = filtered_out(hook, input) {
                runs.push(skipped(hook, HookStatus::Skipped, reason));
                continue;
            }
            let key = format!(
                "{}|{}|{}",
                repo.display(),
                input.event.as_str(),
                serde_json::to_string(hook).unwrap_or_default()
            );
            if self.is_open(&key) {
                runs.push(skipped(
                    hook,
                    HookStatus::Disabled,
                    format!(
                        "it failed {BREAKER_FAILURES} times in a row; it is off for {} minutes, or until its configuration changes",
                        BREAKER_COOL_OFF.as_secs() / 60
                    ),
                ));
                continue;
            }
            let run = run_with_retries(hook, command, jail, input).await;
            self.record(&key, run.status);
            let stop = !matches!(run.status, HookStatus::Success | HookStatus::Blocked)
                && hook.stop_on_failure;
            runs.push(run);
            if stop {
                break;
            }
        }
        runs
    }

    fn is_open(&self, key: &str) -> bool {
        let mut breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(breaker) = breakers.get_mut(key) else {
            return false;
        };
        match breaker.open_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                // Cooled off: one more chance.
                breaker.open_until = None;
                breaker.consecutive_failures = BREAKER_FAILURES - 1;
                false
            }
            None => false,
        }
    }

    fn record(&self, key: &str, status: HookStatus) {
        let mut breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let breaker = breakers.entry(key.to_owned()).or_default();
        if status.is_failure() {
            breaker.consecutive_failures += 1;
            if breaker.consecutive_failures >= BREAKER_FAILURES {
                breaker.open_until = Some(Instant::now() + BREAKER_COOL_OFF);
            }
        } else {
            breaker.consecutive_failures = 0;
        }
    }
}

fn skipped(hook: &HookConfig, status: HookStatus, reason: String) -> HookRun {
    HookRun {
        name: hook.name.clone(),
        status,
        exit_code: None,
        duration_ms: 0,
        output: reason,
        message_for_agent: None,
    }
}

/// Why the hook's filters leave it out of this run, if they do.
fn filtered_out(hook: &HookConfig, input: &HookInput) -> Option<String> {
    if hook.skip_in_loops && input.in_loop {
        return Some("not run in loops".to_owned());
    }
    if let Some(pattern) = &hook.branches {
        let matcher = globset::Glob::new(pattern).ok()?.compile_matcher();
        if !matcher.is_match(&input.branch) {
            return Some(format!("branch {} does not match {pattern}", input.branch));
        }
    }
    if let Some(pattern) = &hook.changed_files {
        let matcher = globset::Glob::new(pattern).ok()?.compile_matcher();
        if !input
            .changed_files
            .iter()
            .any(|file| matcher.is_match(file))
        {
            return Some(format!("no changed file matches {pattern}"));
        }
    }
    None
}

async fn run_with_retries(
    hook: &HookConfig,
    command: &str,
    jail: &Jail,
    input: &HookInput,
) -> HookRun {
    let mut attempt = 0;
    loop {
        let run = run_once(hook, command, jail, input).await;
        let failed = run.status.is_failure();
        if !failed || attempt >= hook.max_retries {
            return run;
        }
        attempt += 1;
    }
}

async fn run_once(hook: &HookConfig, command: &str, jail: &Jail, input: &HookInput) -> HookRun {
    let started = Instant::now();
    let finish = |status: HookStatus, exit_code: Option<i32>, stdout: &[u8], stderr: &[u8]| {
        let stdout = String::from_utf8_lossy(stdout);
        let stderr = String::from_utf8_lossy(stderr);
        let output = excerpt(&format!("{stdout}{stderr}"));
        let message_for_agent = match status {
            HookStatus::Blocked => Some(format!(
                "The {} hook `{}` blocked: {}",
                input.event.as_str(),
                hook.name,
                stderr.trim()
            )),
            HookStatus::Failed | HookStatus::Timeout => match hook.failed_output {
                FailedOutput::None => None,
                FailedOutput::Command => Some(format!(
                    "The {} hook `{}` failed running `{command}`.",
                    input.event.as_str(),
                    hook.name
                )),
                FailedOutput::Truncated => Some(format!(
                    "The {} hook `{}` failed:\n{output}",
                    input.event.as_str(),
                    hook.name
                )),
                FailedOutput::Full => Some(format!(
                    "The {} hook `{}` failed:\n{stdout}{stderr}",
                    input.event.as_str(),
                    hook.name
                )),
            },
            _ => None,
        };
        HookRun {
            name: hook.name.clone(),
            status,
            exit_code,
            duration_ms: started.elapsed().as_millis() as u64,
            output,
            message_for_agent,
        }
    };
    let mut child = std::process::Command::new("sh");
    child
        .arg("-c")
        .arg(command)
        .current_dir(&jail.worktree)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut spawned = match crate::sandbox::groups::spawn(jail, child) {
        Ok(spawned) => spawned,
        Err(error) => return finish(HookStatus::Failed, None, b"", error.as_bytes()),
    };
    if let Some(mut stdin) = spawned.stdin.take() {
        let json = serde_json::to_vec(input).unwrap_or_default();
        tokio::spawn(async move {
            let _ = stdin.write_all(&json).await;
        });
    }
    match tokio::time::timeout(Duration::from_secs(hook.timeout_secs), spawned.output()).await {
        Ok((status, stdout, stderr)) => {
            let code = status.and_then(|status| status.code());
            let status = match code {
                Some(0) => HookStatus::Success,
                Some(2) => HookStatus::Blocked,
                _ => HookStatus::Failed,
            };
            finish(status, code, &stdout, &stderr)
        }
        Err(_) => {
            // The whole process group: a hook's children die with it.
            spawned.kill();
            finish(
                HookStatus::Timeout,
                None,
                b"",
                format!("timed out after {} s", hook.timeout_secs).as_bytes(),
            )
        }
    }
}

fn excerpt(text: &str) -> String {
    if text.len() <= OUTPUT_EXCERPT {
        return text.to_owned();
    }
    let mut end = OUTPUT_EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes more)", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(name: &str, command: &str) -> HookConfig {
        HookConfig {
            name: name.to_owned(),
            command: Some(command.to_owned()),
            ..HookConfig::default()
        }
    }

    /// The sandbox the tests' hooks run in: the temp dir is the worktree.
    fn jail(dir: &std::path::Path) -> Jail {
        Jail {
            mode: crate::sandbox::SandboxMode::Auto,
            worktree: dir.to_owned(),
            temp_dir: dir.join(".tmp"),
            writable: Vec::new(),
            network: true,
            hidden_env: Vec::new(),
            owner: "hook-tests".into(),
            records: dir.join(".records"),
        }
    }

    fn input(event: HookEvent) -> HookInput {
        HookInput {
            session_id: "s1".to_owned(),
            transcript_path: "/t.md".to_owned(),
            worktree: "/w".to_owned(),
            branch: "tether/x".to_owned(),
            event,
            changed_files: vec!["src/lib.rs".to_owned()],
            in_loop: false,
        }
    }

    #[tokio::test]
    async fn exit_codes_mean_success_block_and_failure_and_stdin_has_the_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = HooksConfig {
            on_agent_finish: vec![
                hook(
                    "reads-stdin",
                    "grep -q '\"event\":\"on_agent_finish\"' && echo ok",
                ),
                hook("blocks", "echo 'tests fail' >&2; exit 2"),
                hook("fails", "echo broken; exit 1"),
            ],
            ..HooksConfig::default()
        };
        config.validate().expect("valid");
        let runs = HookRunner::default()
            .run(
                &config,
                dir.path(),
                &jail(dir.path()),
                &input(HookEvent::OnAgentFinish),
            )
            .await;
        let statuses: Vec<&str> = runs.iter().map(|run| run.status.as_str()).collect();
        assert_eq!(statuses, ["success", "blocked", "failed"]);
        assert_eq!(runs[1].exit_code, Some(2));
        assert!(
            runs[1]
                .message_for_agent
                .as_deref()
                .is_some_and(|m| m.contains("tests fail"))
        );
        assert!(
            runs[2]
                .message_for_agent
                .as_deref()
                .is_some_and(|m| m.contains("broken"))
        );
    }

    #[tokio::test]
    async fn timeouts_filters_and_the_circuit_breaker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let slow = HookConfig {
            timeout_secs: 1,
            ..hook("slow", "sleep 30")
        };
        let filtered = HookConfig {
            changed_files: Some("docs/**".to_owned()),
            ..hook("docs-only", "true")
        };
        let config = HooksConfig {
            on_done: vec![slow, filtered],
            ..HooksConfig::default()
        };
        let runner = HookRunner::default();
        let started = Instant::now();
        let runs = runner
            .run(
                &config,
                dir.path(),
                &jail(dir.path()),
                &input(HookEvent::OnDone),
            )
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the sleep was killed"
        );
        assert_eq!(runs[0].status, HookStatus::Timeout);
        assert_eq!(runs[1].status, HookStatus::Skipped);
        for _ in 1..BREAKER_FAILURES {
            runner
                .run(
                    &config,
                    dir.path(),
                    &jail(dir.path()),
                    &input(HookEvent::OnDone),
                )
                .await;
        }
        let runs = runner
            .run(
                &config,
                dir.path(),
                &jail(dir.path()),
                &input(HookEvent::OnDone),
            )
            .await;
        assert_eq!(runs[0].status, HookStatus::Disabled, "{runs:?}");
        // A changed configuration is a new hook: the breaker starts closed.
        let changed = HooksConfig {
            on_done: vec![HookConfig {
                timeout_secs: 2,
                ..hook("slow", "true")
            }],
            ..HooksConfig::default()
        };
        let runs = runner
            .run(
                &changed,
                dir.path(),
                &jail(dir.path()),
                &input(HookEvent::OnDone),
            )
            .await;
        assert_eq!(runs[0].status, HookStatus::Success);
    }

    #[test]
    fn bad_hooks_are_refused_naming_the_place() {
        let config = HooksConfig {
            on_init: vec![HookConfig {
                timeout_secs: 0,
                ..hook("zero", "true")
            }],
            ..HooksConfig::default()
        };
        let error = config.validate().expect_err("invalid");
        assert!(
            error.contains("hooks.on_init[0]") && error.contains("timeout_secs"),
            "{error}"
        );
        let config = HooksConfig {
            on_done: vec![HookConfig {
                command: None,
                task: Some("nope".to_owned()),
                ..hook("t", "")
            }],
            ..HooksConfig::default()
        };
        assert!(config.validate().expect_err("no task").contains("nope"));
    }
}

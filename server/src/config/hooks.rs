//! `[hooks]` settings: named tasks and the hooks of each session event, and their checks.
//! Running them is [`crate::hooks`]'s job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::vocab::HookEvent;

/// `[hooks]`: named tasks and the hooks of each event.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// Commands hooks can name with `task`.
    pub tasks: BTreeMap<String, TaskConfig>,
    pub on_init: Vec<HookConfig>,
    pub on_start: Vec<HookConfig>,
    pub on_agent_finish: Vec<HookConfig>,
    pub on_done: Vec<HookConfig>,
    pub on_cancel: Vec<HookConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub command: String,
}

/// One hook.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HookConfig {
    pub name: String,
    /// A shell command, run in the worktree…
    pub command: Option<String>,
    /// …or the name of a task in `[hooks.tasks]`.
    pub task: Option<String>,
    /// 1–3600.
    pub timeout_secs: u64,
    /// Runs again after a failure (not after a block), 0–10 times.
    pub max_retries: u32,
    /// A failure stops the hooks after it for this event.
    pub stop_on_failure: bool,
    /// What of a failed hook's output the agent is told: `none`, `truncated`, `full`, or
    /// `command` (only which command failed).
    pub failed_output: FailedOutput,
    /// Run only when a changed file matches this glob.
    pub changed_files: Option<String>,
    /// Run only on session branches matching this glob.
    pub branches: Option<String>,
    /// Not in loop iterations.
    pub skip_in_loops: bool,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            name: String::new(),
            command: None,
            task: None,
            timeout_secs: 300,
            max_retries: 0,
            stop_on_failure: false,
            failed_output: FailedOutput::Truncated,
            changed_files: None,
            branches: None,
            skip_in_loops: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailedOutput {
    None,
    #[default]
    Truncated,
    Full,
    Command,
}

impl HooksConfig {
    pub fn for_event(&self, event: HookEvent) -> &[HookConfig] {
        match event {
            HookEvent::OnInit => &self.on_init,
            HookEvent::OnStart => &self.on_start,
            HookEvent::OnAgentFinish => &self.on_agent_finish,
            HookEvent::OnDone => &self.on_done,
            HookEvent::OnCancel => &self.on_cancel,
        }
    }

    pub fn is_empty(&self) -> bool {
        [
            HookEvent::OnInit,
            HookEvent::OnStart,
            HookEvent::OnAgentFinish,
            HookEvent::OnDone,
            HookEvent::OnCancel,
        ]
        .into_iter()
        .all(|event| self.for_event(event).is_empty())
    }

    /// Checks every hook: a name, one command or a known task, limits in range, valid globs.
    pub fn validate(&self) -> Result<(), String> {
        for event in [
            HookEvent::OnInit,
            HookEvent::OnStart,
            HookEvent::OnAgentFinish,
            HookEvent::OnDone,
            HookEvent::OnCancel,
        ] {
            for (index, hook) in self.for_event(event).iter().enumerate() {
                let at = format!("hooks.{}[{index}]", event.as_str());
                if hook.name.trim().is_empty() {
                    return Err(format!("{at}: a hook needs a `name`"));
                }
                match (&hook.command, &hook.task) {
                    (Some(_), None) => {}
                    (None, Some(task)) if self.tasks.contains_key(task) => {}
                    (None, Some(task)) => {
                        return Err(format!("{at}: no task {task:?} in [hooks.tasks]"));
                    }
                    _ => return Err(format!("{at}: give one of `command` or `task`")),
                }
                if !(1..=3600).contains(&hook.timeout_secs) {
                    return Err(format!("{at}: `timeout_secs` is 1–3600"));
                }
                if hook.max_retries > 10 {
                    return Err(format!("{at}: `max_retries` is 0–10"));
                }
                for glob in [&hook.changed_files, &hook.branches].into_iter().flatten() {
                    globset::Glob::new(glob)
                        .map_err(|error| format!("{at}: bad glob {glob:?}: {error}"))?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn command_of<'a>(&'a self, hook: &'a HookConfig) -> Option<&'a str> {
        hook.command.as_deref().or_else(|| {
            hook.task
                .as_ref()
                .and_then(|task| self.tasks.get(task))
                .map(|task| task.command.as_str())
        })
    }
}

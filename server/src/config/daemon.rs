//! The session host's settings: `[daemon]` and `[[schedules]]`, from the user's own settings
//! only (a repository's file may not schedule sessions; see [`super::refusals`]).

use std::path::PathBuf;

use serde::Deserialize;

/// `[daemon]`: the session host, read from your own settings (and the editor's) only: the
/// daemon serves every repository, so no repository's file is asked.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonSettings {
    /// Minutes after the last front left, with no session working, before the daemon exits.
    pub idle_exit_mins: f64,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            idle_exit_mins: 30.0,
        }
    }
}

/// One `[[schedules]]` entry: a session the daemon starts at the times `cron` names (five
/// fields, local time: minute hour day-of-month month day-of-week).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    pub cron: String,
    pub prompt: String,
    /// The repository (any path inside it).
    pub root: PathBuf,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

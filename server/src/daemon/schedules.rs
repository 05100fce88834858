//! `[[schedules]]`: sessions the daemon starts on time (the seeds' triggers). Each schedule's
//! last run is kept in `schedules.json` in the state folder, so that a run missed while the
//! daemon was down starts once, at its next start; a schedule seen for the first time only
//! starts at its next time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{Local, TimeZone};
use serde::{Deserialize, Serialize};

use crate::config::ScheduleConfig;
use crate::session::{CreateSession, SessionManager};
use crate::vocab::StartedBy;

/// How often the settings are read again when no run is due sooner.
const RECHECK: Duration = Duration::from_secs(60);

/// The last run of each schedule, by name (milliseconds since the epoch).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub last_run: BTreeMap<String, i64>,
}

impl Record {
    fn path(state_home: &Path) -> PathBuf {
        state_home.join("schedules.json")
    }

    pub fn load(state_home: &Path) -> Record {
        std::fs::read(Record::path(state_home))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn save(&self, state_home: &Path) {
        let path = Record::path(state_home);
        let temporary = path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&temporary, bytes))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(error) = written {
            tracing::warn!("cannot record schedule runs in {}: {error}", path.display());
        }
    }
}

/// A schedule's cron, or why it cannot be used.
fn cron_of(schedule: &ScheduleConfig) -> Result<croner::Cron, String> {
    croner::Cron::from_str(&schedule.cron).map_err(|error| {
        format!(
            "schedule {:?}: cron {:?}: {error}",
            schedule.name, schedule.cron
        )
    })
}

/// What is due at `now` for a schedule last run at `last` (none: never seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Not yet: the next time, if the cron has one.
    Later(Option<i64>),
    /// Run now (once, however many times were missed).
    Now,
    /// First seen: nothing runs; its record starts now.
    Start,
}

/// Decides for one schedule. Times are milliseconds since the epoch, read in `zone`.
pub fn due<Z: TimeZone>(cron: &croner::Cron, last: Option<i64>, now: i64, zone: &Z) -> Due {
    let Some(last) = last else {
        return Due::Start;
    };
    let Some(after_last) = zone.timestamp_millis_opt(last).single() else {
        return Due::Start;
    };
    match cron.find_next_occurrence(&after_last, false) {
        Ok(next) if next.timestamp_millis() <= now => Due::Now,
        Ok(next) => Due::Later(Some(next.timestamp_millis())),
        Err(_) => Due::Later(None),
    }
}

/// Runs the schedules until the daemon stops.
pub async fn run(manager: SessionManager, state_home: PathBuf) {
    let mut record = Record::load(&state_home);
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let schedules = match manager.user_settings() {
            Ok(settings) => settings.config.schedules.clone(),
            Err(error) => {
                tracing::warn!("schedules not read: {error}");
                Vec::new()
            }
        };
        let now = Local::now().timestamp_millis();
        let mut wake = now + RECHECK.as_millis() as i64;
        let mut changed = false;
        for schedule in &schedules {
            let cron = match cron_of(schedule) {
                Ok(cron) => cron,
                Err(error) => {
                    if reported
                        .insert(schedule.name.clone(), error.clone())
                        .as_ref()
                        != Some(&error)
                    {
                        tracing::error!("{error}");
                    }
                    continue;
                }
            };
            match due(
                &cron,
                record.last_run.get(&schedule.name).copied(),
                now,
                &Local,
            ) {
                Due::Start => {
                    record.last_run.insert(schedule.name.clone(), now);
                    changed = true;
                }
                Due::Now => {
                    record.last_run.insert(schedule.name.clone(), now);
                    changed = true;
                    start(&manager, schedule).await;
                }
                Due::Later(Some(next)) => wake = wake.min(next),
                Due::Later(None) => {}
            }
        }
        if changed {
            record.save(&state_home);
        }
        let pause = Duration::from_millis((wake - Local::now().timestamp_millis()).max(50) as u64);
        tokio::time::sleep(pause.min(RECHECK)).await;
    }
}

/// Starts one scheduled session.
async fn start(manager: &SessionManager, schedule: &ScheduleConfig) {
    let started = manager
        .create(CreateSession {
            prompt: schedule.prompt.clone(),
            mode: Default::default(),
            name: None,
            root: schedule.root.clone(),
            base_branch: None,
            base_commit: None,
            provider: schedule.provider.clone(),
            model: schedule.model.clone(),
            toggles: Default::default(),
            started_by: Some(StartedBy::Schedule {
                name: schedule.name.clone(),
            }),
            settings_profile: None,
            attachments: Vec::new(),
        })
        .await;
    match started {
        Ok(info) => tracing::info!("schedule {:?} started session {}", schedule.name, info.name),
        Err(error) => tracing::error!("schedule {:?} could not start: {error}", schedule.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .timestamp_millis()
    }

    #[test]
    fn a_missed_run_runs_once_and_a_new_schedule_waits_for_its_time() {
        let daily = croner::Cron::from_str("0 3 * * *").expect("cron");
        // Never seen: nothing runs now.
        assert_eq!(
            due(&daily, None, at("2026-12-02T10:00:00Z"), &Utc),
            Due::Start
        );
        // Last run yesterday at 03:00, now 10:00: today's 03:00 was missed, run once.
        assert_eq!(
            due(
                &daily,
                Some(at("2026-12-01T03:00:00Z")),
                at("2026-12-02T10:00:00Z"),
                &Utc
            ),
            Due::Now
        );
        // Down for three days: still one run, and the record moves to now.
        assert_eq!(
            due(
                &daily,
                Some(at("2026-11-28T03:00:00Z")),
                at("2026-12-02T10:00:00Z"),
                &Utc
            ),
            Due::Now
        );
        // Ran today at 03:00; at 10:00 the next is tomorrow at 03:00.
        assert_eq!(
            due(
                &daily,
                Some(at("2026-12-02T03:00:00Z")),
                at("2026-12-02T10:00:00Z"),
                &Utc
            ),
            Due::Later(Some(at("2026-12-03T03:00:00Z")))
        );
    }

    #[test]
    fn every_minute_is_due_once_a_minute_has_passed() {
        let minutely = croner::Cron::from_str("* * * * *").expect("cron");
        let last = at("2026-12-02T10:00:10Z");
        assert_eq!(
            due(&minutely, Some(last), at("2026-12-02T10:00:59Z"), &Utc),
            Due::Later(Some(at("2026-12-02T10:01:00Z")))
        );
        assert_eq!(
            due(&minutely, Some(last), at("2026-12-02T10:01:00Z"), &Utc),
            Due::Now
        );
    }

    #[test]
    fn the_record_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut record = Record::default();
        record.last_run.insert("nightly".to_owned(), 42);
        record.save(dir.path());
        assert_eq!(Record::load(dir.path()), record);
    }
}

//! A trial as its task shows it: its session's status, usage and evidence from the view the
//! session publishes, and its diff's size, counted from the diff and kept until the session
//! moves on (re-counted at most every two seconds while it works).

use std::time::{Duration, Instant};

use super::super::actor::SessionView;
use super::super::{SessionError, SessionManager, lock};
use crate::vocab::{
    FindingCounts, SessionStatus, TaskInfo, TrialSpec, TrialSummary, format_timestamp,
};

/// How often a working trial's diff is counted again.
const WORKING_RECOUNT: Duration = Duration::from_secs(2);

/// A trial's diff, counted as of one `seq` of its session.
#[derive(Debug, Clone, Copy)]
pub(super) struct CachedStats {
    seq: u64,
    at: Instant,
    stats: DiffStats,
}

#[derive(Debug, Clone, Copy, Default)]
struct DiffStats {
    files: u32,
    additions: u64,
    deletions: u64,
}

impl SessionManager {
    /// A task as it stands now.
    pub async fn task_info(&self, id: &str) -> Result<TaskInfo, SessionError> {
        let record = self.inner.tasks.entry(id)?.record;
        let mut trials = Vec::with_capacity(record.trials.len());
        for trial in &record.trials {
            trials.push(self.trial_summary(trial).await);
        }
        Ok(TaskInfo {
            id: record.id.clone(),
            name: record.name.clone(),
            title: record.title.clone(),
            prompt: record.prompt.clone(),
            status: TaskInfo::status_of(&trials, record.promoted.is_some()),
            repo: record.repo.clone(),
            base_branch: record.base_branch.clone(),
            base_commit: record.base_commit.clone(),
            created_at: format_timestamp(record.created_at),
            trials,
            promoted: record.promoted.clone(),
        })
    }

    async fn trial_summary(&self, trial: &TrialSpec) -> TrialSummary {
        let Ok(view) = self.view(&trial.session_id) else {
            return TrialSummary {
                index: trial.index,
                session_id: trial.session_id.clone(),
                name: String::new(),
                branch: String::new(),
                provider: trial.provider.clone(),
                model: trial.model.clone(),
                status: SessionStatus::Failed,
                activity: None,
                status_reason: Some("the trial's session was deleted".to_owned()),
                files_changed: 0,
                additions: 0,
                deletions: 0,
                findings: FindingCounts::default(),
                verification: None,
                review: None,
                hooks: Vec::new(),
                hooks_passed: None,
                cost_usd: 0.0,
                input_tokens: 0,
                output_tokens: 0,
                duration_ms: 0,
                pull_request: None,
                gone: true,
            };
        };
        let stats = self.diff_stats(&view).await;
        let mut findings = FindingCounts::default();
        for (_, finding) in view.findings.iter() {
            findings.add(finding.severity);
        }
        let info = &view.info;
        TrialSummary {
            index: trial.index,
            session_id: trial.session_id.clone(),
            name: info.name.clone(),
            branch: info.branch.clone(),
            provider: info.provider.clone(),
            model: info.model.clone(),
            status: info.status,
            activity: info.activity,
            status_reason: info.status_reason.clone(),
            files_changed: stats.files,
            additions: stats.additions,
            deletions: stats.deletions,
            findings,
            verification: view.evidence.verification,
            review: view.evidence.review,
            hooks: view.evidence.hooks.clone(),
            hooks_passed: view.evidence.hooks_passed(),
            cost_usd: info.usage.cost_usd,
            input_tokens: info.usage.input_tokens,
            output_tokens: info.usage.output_tokens,
            duration_ms: view.updated_at.saturating_sub(view.spec.created_at),
            pull_request: view.evidence.pull_request.clone(),
            gone: false,
        }
    }

    /// The size of a trial's diff: counted again when the session moved on (while it
    /// works, at most every [`WORKING_RECOUNT`]).
    async fn diff_stats(&self, view: &SessionView) -> DiffStats {
        let id = &view.spec.id;
        let seq = view.info.last_seq;
        let cached = lock(&self.inner.tasks.stats).get(id).copied();
        if let Some(cached) = cached
            && (cached.seq == seq
                || (view.info.status.is_active() && cached.at.elapsed() < WORKING_RECOUNT))
        {
            return cached.stats;
        }
        let stats = match self.diff(id).await {
            Ok(files) => DiffStats {
                files: files.len() as u32,
                additions: files.iter().map(|file| file.additions).sum(),
                deletions: files.iter().map(|file| file.deletions).sum(),
            },
            Err(error) => {
                tracing::debug!("counting the diff of {}: {error}", view.spec.name);
                return cached.map(|cached| cached.stats).unwrap_or_default();
            }
        };
        lock(&self.inner.tasks.stats).insert(
            id.clone(),
            CachedStats {
                seq,
                at: Instant::now(),
                stats,
            },
        );
        stats
    }
}

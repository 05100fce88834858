//! Reviews and verifications of a session's diff, and the findings they leave: started by the
//! user or after a develop turn that changed files, run one of each kind at a time, recorded
//! as `review` / `verification` items; findings are dismissed or sent back to fix.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::actor::{SessionActor, SessionHandle};
use super::{SessionError, SessionManager};
use crate::provider::build_provider;
use crate::review;
use crate::vocab::{
    Event, Finding, FindingSource, Item, ItemPhase, MessageRole, Mode, Resolution, RunFacts,
    RunStatus, new_item_id,
};

/// At most this many findings per review or verification (DESIGN.md).
const MAX_FINDINGS: usize = 20;

/// A review registered to run: its kind, its item and how to cancel it.
pub(super) type ReviewRun = (FindingSource, String, CancellationToken);

/// A review or verification item.
pub(super) fn review_item(
    kind: FindingSource,
    id: String,
    status: RunStatus,
    findings: Vec<Finding>,
    run: RunFacts,
) -> Item {
    match kind {
        FindingSource::Review => Item::Review {
            id,
            status,
            findings,
            run,
        },
        FindingSource::Verification => Item::Verification {
            id,
            status,
            findings,
            run,
        },
    }
}

impl SessionActor {
    /// Records the run as started and registers it; one of each kind at a time.
    pub fn begin_review(
        &mut self,
        kind: FindingSource,
        status: RunStatus,
    ) -> Result<(String, CancellationToken), SessionError> {
        if self.running_reviews.contains_key(&kind) {
            return Err(self.invalid(
                match kind {
                    FindingSource::Review => "start a second review of",
                    FindingSource::Verification => "start a second verification of",
                },
                "; one is running: wait for it or cancel it",
            ));
        }
        let item_id = new_item_id();
        let cancel = CancellationToken::new();
        self.running_reviews.insert(kind, cancel.clone());
        self.emit_item(
            ItemPhase::Started,
            review_item(
                kind,
                item_id.clone(),
                status,
                Vec::new(),
                RunFacts::default(),
            ),
        )?;
        Ok((item_id, cancel))
    }

    /// Verification, then review, as `kinds` (what settings and toggles leave) asks: the
    /// first runs now, the next waits for it. Registered in the step that shows `waiting`,
    /// so that whoever sees `waiting` also sees them running.
    pub fn register_reviews(&mut self, kinds: &[FindingSource]) -> Vec<ReviewRun> {
        let mut registered = Vec::new();
        for &kind in kinds {
            let status = if registered.is_empty() {
                RunStatus::Running
            } else {
                RunStatus::Pending
            };
            match self.begin_review(kind, status) {
                Ok((item_id, cancel)) => registered.push((kind, item_id, cancel)),
                Err(error) => tracing::info!("session {}: {error}", self.id),
            }
        }
        registered
    }
}

impl SessionManager {
    /// Records what a review or verification found; it supersedes the last one's findings.
    /// Returns the item's id.
    pub async fn record_findings(
        &self,
        id: &str,
        source: FindingSource,
        status: RunStatus,
        findings: Vec<Finding>,
    ) -> Result<String, SessionError> {
        if findings.len() > MAX_FINDINGS {
            return Err(SessionError::InvalidParams {
                field: "findings",
                message: format!(
                    "at most {MAX_FINDINGS} findings at a time, not {}",
                    findings.len()
                ),
            });
        }
        let mut seen = HashSet::new();
        for finding in &findings {
            if finding.id.is_empty() || !seen.insert(finding.id.as_str()) {
                return Err(SessionError::InvalidParams {
                    field: "findings",
                    message: format!("finding ids must be unique and not empty: {:?}", finding.id),
                });
            }
        }
        let handle = self.writable_handle(id)?;
        handle
            .run(move |actor| {
                let item_id = new_item_id();
                let item = review_item(
                    source,
                    item_id.clone(),
                    status,
                    findings,
                    RunFacts::default(),
                );
                actor.emit_item(ItemPhase::Completed, item)?;
                Ok(item_id)
            })
            .await
    }

    /// Starts a verification or code review of the session's changes; answers at once with
    /// the run's item id (the run is a `review` / `verification` item, `running` until done).
    pub async fn start_review(
        &self,
        id: &str,
        kind: FindingSource,
    ) -> Result<String, SessionError> {
        let handle = self.writable_handle(id)?;
        let (item_id, cancel) = handle
            .run(move |actor| actor.begin_review(kind, RunStatus::Running))
            .await?;
        let manager = self.clone();
        let run_id = item_id.clone();
        self.inner.runtime.spawn(async move {
            manager.finish_review(&handle, kind, run_id, cancel).await;
        });
        Ok(item_id)
    }

    /// Cancels the running review or verification of a session.
    pub async fn cancel_review(&self, id: &str, kind: FindingSource) -> Result<(), SessionError> {
        let handle = self.writable_handle(id)?;
        handle
            .run(move |actor| match actor.running_reviews.get(&kind) {
                Some(cancel) => {
                    cancel.cancel();
                    Ok(())
                }
                None => Err(actor.invalid(
                    "cancel a review or verification of",
                    "; none of that kind is running",
                )),
            })
            .await
    }

    /// Which automatic runs follow a develop turn that changed files: verification, then
    /// review, unless settings or the session's toggles turn them off.
    pub(super) fn automatic_reviews(&self, handle: &SessionHandle) -> Vec<FindingSource> {
        let spec = handle.view().spec.clone();
        let Some(resolved) =
            self.settings_or_report(handle, "automatic verification and review".to_owned())
        else {
            return Vec::new();
        };
        let config = &resolved.config;
        if !config.review.auto || spec.mode != Mode::Develop {
            return Vec::new();
        }
        [
            (FindingSource::Verification, "verification"),
            (FindingSource::Review, "review"),
        ]
        .into_iter()
        .filter(|(_, toggle)| spec.toggles.get(*toggle) != Some(&false))
        .map(|(kind, _)| kind)
        .collect()
    }

    /// Runs registered reviews one after the other.
    pub(super) fn run_reviews(&self, handle: &Arc<SessionHandle>, runs: Vec<ReviewRun>) {
        if runs.is_empty() {
            return;
        }
        let manager = self.clone();
        let handle = handle.clone();
        self.inner.runtime.spawn(async move {
            for (kind, item_id, cancel) in runs {
                manager.finish_review(&handle, kind, item_id, cancel).await;
            }
        });
    }

    /// Runs a registered review to its end and records what it came to.
    async fn finish_review(
        &self,
        handle: &Arc<SessionHandle>,
        kind: FindingSource,
        item_id: String,
        cancel: CancellationToken,
    ) {
        let started = std::time::Instant::now();
        let outcome = self.review_outcome(handle, kind, &cancel).await;
        let duration_ms = Some(started.elapsed().as_millis() as u64);
        let (status, findings, facts, usage) = match outcome {
            Ok(None) => (RunStatus::Skipped, Vec::new(), RunFacts::default(), None),
            Ok(Some((outcome, price))) => {
                let mut usage = outcome.usage;
                usage.cost_usd = price.map_or(0.0, |price| price.cost(&usage));
                let facts = RunFacts {
                    cost_usd: Some(usage.cost_usd),
                    ..RunFacts::default()
                };
                (RunStatus::Completed, outcome.findings, facts, Some(usage))
            }
            Err(failure) => {
                let (status, error) = match failure {
                    review::Failure::Canceled => (RunStatus::Cancelled, None),
                    review::Failure::TimedOut => (
                        RunStatus::Failed,
                        Some("the run took longer than review.timeout_secs".to_owned()),
                    ),
                    review::Failure::Failed(error) => (RunStatus::Failed, Some(error)),
                };
                let facts = RunFacts {
                    error,
                    ..RunFacts::default()
                };
                (status, Vec::new(), facts, None)
            }
        };
        let facts = RunFacts {
            duration_ms,
            ..facts
        };
        let recorded = handle
            .run(move |actor| {
                actor.running_reviews.remove(&kind);
                if let Some(usage) =
                    usage.filter(|usage| usage.input_tokens + usage.output_tokens > 0)
                {
                    let _ = actor.emit(Event::Usage {
                        context_window: None,
                        item_id: Some(item_id.clone()),
                        usage,
                    });
                }
                actor.emit_item(
                    ItemPhase::Completed,
                    review_item(kind, item_id, status, findings, facts),
                )
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!("session {}: cannot record the review: {error}", handle.id);
        }
    }

    /// Asks the model about the session's diff; `None` when there is nothing to look at.
    async fn review_outcome(
        &self,
        handle: &Arc<SessionHandle>,
        kind: FindingSource,
        cancel: &CancellationToken,
    ) -> Result<Option<(review::Outcome, Option<crate::config::Price>)>, review::Failure> {
        let failed = |error: &dyn std::fmt::Display| review::Failure::Failed(error.to_string());
        let spec = handle.view().spec.clone();
        let diff = self.diff(&spec.id).await.map_err(|error| failed(&error))?;
        if diff.is_empty() {
            return Ok(None);
        }
        let patch: Vec<&str> = diff.iter().map(|file| file.patch.as_str()).collect();
        let task = self
            .first_prompt(&spec.id)
            .unwrap_or_else(|| spec.title.clone());
        let resolved = self.config_of(&spec).map_err(|error| failed(&error))?;
        let config = &resolved.config;
        let provider_name = match &config.review.provider {
            Some(name) => name.clone(),
            // An ACP agent answers prompts, not review requests: the default model does.
            None if config
                .provider(&spec.provider)
                .is_ok_and(|provider| provider.kind == crate::config::ProviderKind::Acp) =>
            {
                match config.default_provider_name() {
                    name if name == spec.provider => {
                        return Err(failed(&format!(
                            "the session's provider {name} is an ACP agent, which cannot review; set review.provider to a model API provider"
                        )));
                    }
                    name => name,
                }
            }
            None => spec.provider.clone(),
        };
        let provider_config = config
            .provider(&provider_name)
            .map_err(|error| failed(&error))?;
        let model = match (&config.review.model, &config.review.provider) {
            (Some(model), _) => model.clone(),
            (None, Some(_)) => provider_config
                .model
                .clone()
                .unwrap_or_else(|| spec.model.clone()),
            (None, None) => spec.model.clone(),
        };
        let provider =
            build_provider(&provider_name, provider_config).map_err(|error| failed(&error))?;
        let request = review::request(kind, &model, &task, &patch.join("\n"));
        let timeout = Duration::from_secs(config.review.timeout_secs.max(1));
        let outcome = review::run(provider.as_ref(), request, kind, timeout, cancel).await?;
        Ok(Some((outcome, config.price_of(&provider_name, &model))))
    }

    /// The session's first user message: the task a review checks the diff against.
    fn first_prompt(&self, id: &str) -> Option<String> {
        let (_, events) = self.all_events(id).ok()?;
        events.into_iter().find_map(|record| match record.event {
            Event::Item {
                phase: ItemPhase::Completed,
                item:
                    Item::Message {
                        role: MessageRole::User,
                        text,
                        ..
                    },
            } => Some(text),
            _ => None,
        })
    }

    /// Dismisses a finding: its diagnostic goes away, and it stays dismissed.
    pub async fn dismiss_finding(&self, id: &str, finding_id: &str) -> Result<(), SessionError> {
        self.finding(id, finding_id)?;
        let handle = self.writable_handle(id)?;
        let finding_id = finding_id.to_owned();
        handle
            .run(move |actor| {
                actor.emit(Event::Resolved {
                    item_id: finding_id,
                    outcome: Resolution::Dismissed,
                })?;
                Ok(())
            })
            .await
    }

    /// Asks the session to fix a finding: a follow-up naming it. Returns whether it queued.
    pub async fn fix_finding(
        &self,
        id: &str,
        finding_id: &str,
    ) -> Result<super::Sent, SessionError> {
        let (source, finding) = self.finding(id, finding_id)?;
        let place = match &finding.file {
            Some(file) if finding.start_line > 0 => {
                format!(
                    " in {file}, lines {}–{}",
                    finding.start_line,
                    finding.end_line.max(finding.start_line)
                )
            }
            Some(file) => format!(" in {file}"),
            None => String::new(),
        };
        let from = match source {
            FindingSource::Review => "review",
            FindingSource::Verification => "verification",
        };
        let text = format!(
            "Please fix this {from} finding{place}: {} ({:?}, {}).\n\n{}",
            finding.title, finding.severity, finding.category, finding.body
        );
        self.send(id, text.trim_end().to_owned()).await
    }
}

//! The session methods: create, list, get, send, stop, resume, complete, clone, delete,
//! export, resetContext, answer, decidePlan, rewind, diff, git, loop, stopLoop, trust.

use std::path::PathBuf;

use super::{HostError, HostMethod};
use crate::api::{self, methods};
use crate::session::{CreateSession, LoopRequest, PlanDecision, SessionManager, export};

/// The repository a request names: a front always names one (its first workspace folder by
/// default), since the host has no editor to ask.
pub(super) fn root_of(root: Option<String>) -> Result<PathBuf, HostError> {
    match root {
        Some(root) if !root.is_empty() => Ok(PathBuf::from(root)),
        _ => Err(HostError::invalid_params(
            "invalid `root`: no workspace folder is open, so name the repository with `root`",
        )),
    }
}

impl HostMethod for methods::Create {
    async fn run(
        manager: SessionManager,
        params: api::CreateParams,
    ) -> Result<api::SessionInfo, HostError> {
        let root = root_of(params.root)?;
        let info = manager
            .create(CreateSession {
                prompt: params.prompt,
                mode: params.mode.unwrap_or_default(),
                name: params.name,
                root,
                base_branch: params.base_branch,
                base_commit: None,
                provider: params.provider,
                model: params.model,
                toggles: params.toggles,
                started_by: params.started_by,
                settings_profile: params.settings_profile,
                attachments: params.attachments,
            })
            .await?;
        Ok(info.into())
    }
}

impl HostMethod for methods::List {
    async fn run(
        manager: SessionManager,
        params: api::ListParams,
    ) -> Result<api::ListResult, HostError> {
        let sessions = manager.list(&params.into());
        Ok(api::ListResult {
            sessions: sessions.into_iter().map(api::SessionInfo::from).collect(),
        })
    }
}

impl HostMethod for methods::Get {
    async fn run(
        manager: SessionManager,
        params: api::GetParams,
    ) -> Result<api::GetResult, HostError> {
        let snapshot = manager.get(&params.id, params.since)?;
        Ok(api::GetResult {
            session: snapshot.session.into(),
            events: snapshot.events,
        })
    }
}

impl HostMethod for methods::Send {
    async fn run(
        manager: SessionManager,
        params: api::SendParams,
    ) -> Result<api::QueuedResult, HostError> {
        let sent = manager
            .send_with(&params.id, params.text, &params.attachments)
            .await?;
        Ok(sent.into())
    }
}

impl HostMethod for methods::Stop {
    async fn run(
        manager: SessionManager,
        params: api::IdParams,
    ) -> Result<api::SessionInfo, HostError> {
        Ok(manager.stop(&params.id).await?.into())
    }
}

impl HostMethod for methods::Resume {
    async fn run(
        manager: SessionManager,
        params: api::ResumeParams,
    ) -> Result<api::SessionInfo, HostError> {
        Ok(manager.resume(&params.id, params.text).await?.into())
    }
}

impl HostMethod for methods::Complete {
    async fn run(
        manager: SessionManager,
        params: api::IdParams,
    ) -> Result<api::SessionInfo, HostError> {
        Ok(manager.complete_after_hooks(&params.id).await?.into())
    }
}

impl HostMethod for methods::Clone {
    async fn run(
        manager: SessionManager,
        params: api::IdParams,
    ) -> Result<api::SessionInfo, HostError> {
        Ok(manager.clone_session(&params.id).await?.into())
    }
}

impl HostMethod for methods::Delete {
    async fn run(
        manager: SessionManager,
        params: api::IdParams,
    ) -> Result<api::DeleteResult, HostError> {
        manager.delete(&params.id).await?;
        Ok(api::DeleteResult { deleted: true })
    }
}

impl HostMethod for methods::Export {
    async fn run(
        manager: SessionManager,
        params: api::ExportParams,
    ) -> Result<api::ExportResult, HostError> {
        let (info, events) = manager.all_events(&params.id)?;
        let content = match params.format {
            api::ExportFormat::Markdown => export::to_markdown(&info, &events),
            api::ExportFormat::Json => export::to_json(&info, &events),
        };
        Ok(api::ExportResult { content })
    }
}

impl HostMethod for methods::ResetContext {
    async fn run(
        manager: SessionManager,
        params: api::ResetContextParams,
    ) -> Result<api::SessionInfo, HostError> {
        Ok(manager
            .reset_context(&params.id, params.summary)
            .await?
            .into())
    }
}

impl HostMethod for methods::Answer {
    async fn run(
        manager: SessionManager,
        params: api::AnswerParams,
    ) -> Result<api::SessionInfo, HostError> {
        Ok(manager
            .answer(&params.id, &params.question_id, params.answers)
            .await?
            .into())
    }
}

impl HostMethod for methods::DecidePlan {
    async fn run(
        manager: SessionManager,
        params: api::DecidePlanParams,
    ) -> Result<api::SessionInfo, HostError> {
        let decision = PlanDecision {
            approved: params.approve,
            feedback: params
                .feedback
                .filter(|feedback| !feedback.trim().is_empty()),
        };
        Ok(manager
            .decide_plan(&params.id, &params.plan_id, decision)
            .await?
            .into())
    }
}

impl HostMethod for methods::Rewind {
    async fn run(
        manager: SessionManager,
        params: api::RewindParams,
    ) -> Result<api::RewindResult, HostError> {
        let checkpoint = params.checkpoint().ok_or_else(|| {
            HostError::invalid_params(
                "invalid params for tether/session/rewind: give one of `checkpoint` or `turn`",
            )
        })?;
        let undo = manager.rewind(&params.id, &checkpoint).await?;
        Ok(api::RewindResult { undo })
    }
}

impl HostMethod for methods::Checkpoints {
    async fn run(
        manager: SessionManager,
        params: api::IdParams,
    ) -> Result<api::CheckpointsResult, HostError> {
        let checkpoints = manager
            .checkpoints(&params.id)
            .await?
            .into_iter()
            .map(|entry| api::CheckpointInfo {
                turn: entry
                    .name
                    .strip_prefix("turn-")
                    .and_then(|n| n.parse().ok()),
                files: entry
                    .files
                    .into_iter()
                    .filter_map(|change| {
                        Some(api::CheckpointFile {
                            status: api::FileChange::from_name(change.status)?,
                            path: change.path,
                            old_path: change.old_path,
                            additions: change.additions,
                            deletions: change.deletions,
                        })
                    })
                    .collect(),
                name: entry.name,
                commit: entry.commit,
                at: entry.at,
                undoes: entry.undoes,
            })
            .collect();
        Ok(api::CheckpointsResult { checkpoints })
    }
}

impl HostMethod for methods::Diff {
    async fn run(
        manager: SessionManager,
        params: api::IdParams,
    ) -> Result<api::DiffResult, HostError> {
        let files = manager
            .diff(&params.id)
            .await?
            .into_iter()
            .map(api::FileDiff::try_from)
            .collect::<Result<_, _>>()
            .map_err(HostError::internal)?;
        Ok(api::DiffResult { files })
    }
}

impl HostMethod for methods::Git {
    async fn run(
        manager: SessionManager,
        params: api::GitParams,
    ) -> Result<api::GitResult, HostError> {
        let outcome = manager
            .git(
                &params.id,
                crate::session::GitRequest {
                    operation: params.op,
                    paths: params.paths.as_deref(),
                    message: params.message.as_deref(),
                    branch: params.branch.as_deref(),
                    title: params.title.as_deref(),
                    body: params.body.as_deref(),
                },
            )
            .await?;
        Ok(api::GitResult {
            status: outcome.status.into(),
            commit: outcome.commit,
            pull_request: outcome.pull_request,
        })
    }
}

impl HostMethod for methods::Loop {
    async fn run(
        manager: SessionManager,
        params: api::LoopParams,
    ) -> Result<api::LoopResult, HostError> {
        manager
            .start_loop(
                &params.id,
                LoopRequest {
                    prompt: params.prompt,
                    max_iterations: params.max_iterations,
                    stop_on_exit_signal: params.stop_on_exit_signal,
                    reset_context: params.reset_context,
                    model: params.model,
                },
            )
            .await?;
        Ok(api::LoopResult { started: true })
    }
}

impl HostMethod for methods::StopLoop {
    async fn run(
        manager: SessionManager,
        params: api::IdParams,
    ) -> Result<api::StopLoopResult, HostError> {
        manager.stop_loop(&params.id).await?;
        Ok(api::StopLoopResult { stopping: true })
    }
}

impl HostMethod for methods::Trust {
    async fn run(
        manager: SessionManager,
        params: api::TrustParams,
    ) -> Result<api::TrustResult, HostError> {
        let root = root_of(params.root)?;
        manager.trust_hooks(&root)?;
        Ok(api::TrustResult { trusted: root })
    }
}

impl HostMethod for methods::Feedback {
    async fn run(
        manager: SessionManager,
        params: api::FeedbackParams,
    ) -> Result<api::ItemResult, HostError> {
        let item_id = manager
            .feedback(&params.id, params.item_id, params.rating, params.comment)
            .await?;
        Ok(api::ItemResult { item_id })
    }
}

impl HostMethod for methods::EditMessage {
    async fn run(
        manager: SessionManager,
        params: api::EditMessageParams,
    ) -> Result<api::SessionInfo, HostError> {
        let info = manager
            .edit_message(&params.id, &params.item_id, params.text)
            .await?;
        Ok(info.into())
    }
}

impl HostMethod for methods::DeleteMessage {
    async fn run(
        manager: SessionManager,
        params: api::MessageParams,
    ) -> Result<api::DeleteResult, HostError> {
        manager
            .withdraw_message(&params.id, &params.item_id)
            .await?;
        Ok(api::DeleteResult { deleted: true })
    }
}

impl HostMethod for methods::Compact {
    async fn run(
        manager: SessionManager,
        params: api::IdParams,
    ) -> Result<api::SessionInfo, HostError> {
        Ok(manager.compact(&params.id).await?.into())
    }
}

impl HostMethod for methods::Attachment {
    async fn run(
        manager: SessionManager,
        params: api::AttachmentParams,
    ) -> Result<api::AttachmentResult, HostError> {
        use base64::Engine as _;
        let bytes = manager.attachment(&params.id, &params.sha256)?;
        Ok(api::AttachmentResult {
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    }
}

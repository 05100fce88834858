//! A session's life: create, send, stop, resume, complete, clone, delete, and the notes and
//! context resets between. Each change is one step of the session's actor.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::actor::{Driver, SessionActor, SessionHandle};
use super::driver::{drive, redactor_for};
use super::{CreateSession, STOP_GRACE, Sent, SessionError, SessionInfo, SessionManager};
use crate::config::ProviderKind;
use crate::hooks::HookEvent;
use crate::session::{slug_from_prompt, validate_session_name};
use crate::store;
use crate::vocab::{
    AttachmentSource, Event, EventRecord, Item, ItemPhase, MessageRole, Mode, SessionSpec,
    SessionState, SessionStatus, new_item_id, now_millis,
};
use crate::workspace::{self, SESSION_BRANCH_PREFIX};
use tokio_util::sync::CancellationToken;

/// What a new session is made from: a request, or the session it clones.
pub(super) struct NewSession {
    /// Chosen ahead (a task records its trials' ids before they start); default a new one.
    pub id: Option<String>,
    pub root: PathBuf,
    pub preferred_name: String,
    pub exact_name: bool,
    pub title: String,
    pub mode: Mode,
    pub base_branch: Option<String>,
    pub base_commit: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub toggles: BTreeMap<String, bool>,
    pub cloned_from: Option<String>,
    pub prompt: Option<String>,
    pub started_by: Option<crate::vocab::StartedBy>,
    pub settings_profile: Option<String>,
    /// Files attached to the prompt.
    pub attachments: Vec<AttachmentSource>,
}

/// A settings profile id a request names must be one.
pub(super) fn check_profile(profile: Option<&str>) -> Result<(), SessionError> {
    match profile {
        Some(profile) if !crate::config::valid_profile_id(profile) => {
            Err(SessionError::InvalidParams {
                field: "settingsProfile",
                message: format!("{profile:?} is not a profile id (letters, digits, - and _)"),
            })
        }
        _ => Ok(()),
    }
}

/// The provider and model a session runs on: those asked for, else the default provider and
/// its model (an ACP agent runs the model it is set up with: `default`).
pub(super) fn provider_and_model(
    config: &crate::config::Config,
    provider: Option<String>,
    model: Option<String>,
) -> Result<(String, &crate::config::ProviderConfig, String), SessionError> {
    let provider = provider.unwrap_or_else(|| config.default_provider_name());
    let provider_config = config.provider(&provider)?;
    let model = model
        .or_else(|| provider_config.model.clone())
        .or_else(|| (provider_config.kind == ProviderKind::Acp).then(|| "default".to_owned()))
        .ok_or_else(|| SessionError::InvalidParams {
            field: "model",
            message: format!("provider {provider:?} sets no default model; name one"),
        })?;
    Ok((provider, provider_config, model))
}

/// Where the worktrees of `repo`'s sessions go.
pub(super) fn worktrees_of(config: &crate::config::Config, repo: &std::path::Path) -> PathBuf {
    config
        .session
        .worktree_dir
        .clone()
        .unwrap_or_else(store::default_worktrees_home)
        .join(store::repo_key(repo))
}

impl SessionManager {
    /// Whether a session of `repository` may not be named `name`: names are unique per
    /// repository, so no other session, branch or folder may have it.
    pub(super) fn session_name_taken(
        &self,
        repository: &workspace::Repository,
        worktrees: &std::path::Path,
        name: &str,
    ) -> Result<bool, SessionError> {
        let in_use = self.inner.sessions.iter().any(|entry| {
            let view = entry.value().view();
            view.spec.repo == repository.root && view.spec.name == name
        });
        Ok(in_use
            || repository.branch_exists(&format!("{SESSION_BRANCH_PREFIX}{name}"))?
            || worktrees.join(name).exists())
    }
}

impl SessionActor {
    /// Moves the session to `pending` (`fresh`: it was just created) and starts the task
    /// that drives it.
    pub fn start_driver(
        &mut self,
        manager: &SessionManager,
        handle: Arc<SessionHandle>,
        fresh: bool,
    ) -> Result<(), SessionError> {
        if fresh {
            // A new session is born pending; its first status event says so explicitly.
            self.emit(Event::Status {
                status: SessionStatus::Pending,
                activity: None,
                reason: None,
            })?;
        } else {
            self.set_status(SessionStatus::Pending, None, None)?;
        }
        let cancel = CancellationToken::new();
        let task = manager
            .inner
            .runtime
            .spawn(drive(manager.clone(), handle, cancel.clone()));
        self.driver = Some(Driver {
            cancel,
            stop_reason: None,
            failure: None,
            task: Some(task),
        });
        Ok(())
    }
}

impl SessionManager {
    /// Creates a session and starts it; answers at once (the turn streams as events).
    pub async fn create(&self, mut request: CreateSession) -> Result<SessionInfo, SessionError> {
        if request.prompt.trim().is_empty() {
            return Err(SessionError::InvalidParams {
                field: "prompt",
                message: "a session needs a prompt".to_owned(),
            });
        }
        // The repository's commands make prompts; `@` mentions attach files.
        let repo = workspace::discover(&request.root)?.root;
        if let Some((name, arguments)) = crate::session::commands::parse(&request.prompt) {
            let command =
                crate::session::commands::custom_command(&repo, name).ok_or_else(|| {
                    SessionError::InvalidParams {
                        field: "prompt",
                        message: format!(
                            "/{name} is not one of the repository's commands ({}); Tether's own \
                         commands work on a session that exists",
                            crate::session::commands::COMMANDS_DIR
                        ),
                    }
                })?;
            request.prompt = command.expand(arguments);
        }
        let mentioned = crate::session::mentions::attachments_of(&repo, &request.prompt).map_err(
            |outside| SessionError::InvalidParams {
                field: "prompt",
                message: outside.to_string(),
            },
        )?;
        request.attachments.extend(mentioned);
        let title = crate::session::title_of(&request.prompt);
        let preferred_name = match &request.name {
            Some(name) => {
                validate_session_name(name).map_err(|message| SessionError::InvalidParams {
                    field: "name",
                    message,
                })?;
                name.clone()
            }
            None => slug_from_prompt(&request.prompt),
        };
        self.new_session(NewSession {
            id: None,
            root: request.root,
            preferred_name,
            exact_name: request.name.is_some(),
            title,
            mode: request.mode,
            base_branch: request.base_branch,
            base_commit: request.base_commit,
            provider: request.provider,
            model: request.model,
            temperature: None,
            max_tokens: None,
            toggles: request.toggles,
            cloned_from: None,
            prompt: Some(request.prompt),
            started_by: request.started_by,
            settings_profile: request.settings_profile,
            attachments: request.attachments,
        })
        .await
    }

    /// Records and starts a new session; returns its info as it was born (`pending`: its
    /// task may have moved it on by the time the caller could read it again).
    pub(super) async fn new_session(&self, new: NewSession) -> Result<SessionInfo, SessionError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(SessionError::ShuttingDown);
        }
        let repository = workspace::discover(&new.root)?;
        let store = self.open_store(&repository.root)?;
        if !store.is_writable() {
            return Err(SessionError::ReadOnly(store.read_only_reason()));
        }
        check_profile(new.settings_profile.as_deref())?;
        let resolved = self.config(&repository.root, new.settings_profile.as_deref())?;
        let (config, config_warnings) = (&resolved.config, &resolved.warnings);
        let (provider, provider_config, model) =
            provider_and_model(config, new.provider.clone(), new.model.clone())?;
        let base_branch = repository.resolve_base_branch(new.base_branch.as_deref())?;
        let attachments = super::attachments::take_in(&store, &repository.root, &new.attachments)?;
        super::attachments::check_vision(&provider, provider_config, &attachments)?;
        let worktrees = worktrees_of(config, &repository.root);
        let taken = |name: &str| self.session_name_taken(&repository, &worktrees, name);
        let mut name = new.preferred_name.clone();
        let mut suffix = 2;
        while taken(&name)? {
            if new.exact_name {
                return Err(SessionError::InvalidParams {
                    field: "name",
                    message: format!(
                        "a session, branch or folder named {name:?} already exists in {}",
                        repository.root.display()
                    ),
                });
            }
            name = format!("{}-{suffix}", new.preferred_name);
            suffix += 1;
        }

        let id = new
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
        let spec = SessionSpec {
            id: id.clone(),
            branch: format!("{SESSION_BRANCH_PREFIX}{name}"),
            worktree: worktrees.join(&name),
            name,
            title: new.title,
            mode: new.mode,
            repo: repository.root.clone(),
            base_branch,
            base_commit: new.base_commit,
            provider,
            model,
            temperature: new.temperature.or(provider_config.temperature),
            max_tokens: new.max_tokens.or(provider_config.max_tokens),
            toggles: new.toggles,
            created_at: now_millis(),
            cloned_from: new.cloned_from,
            started_by: new.started_by,
            settings_profile: new.settings_profile,
        };
        if let Some(profile) = &spec.settings_profile {
            // Kept on disk: the session follows its editor's settings after the editor
            // leaves and after the daemon restarts.
            self.inner.config.keep_profile(profile)?;
        }
        let log = store.create_log(&id)?;
        let id: Arc<str> = Arc::from(id.as_str());
        let created = EventRecord {
            seq: 0,
            at: spec.created_at,
            event: Event::Created {
                session: Box::new(spec.clone()),
            },
        };
        let mut state = SessionState::new(spec.clone(), &created);
        // Seq 1 is the `created` event itself.
        state.last_seq = 0;
        let mut actor = SessionActor::new(
            id.clone(),
            store,
            state,
            Some(log),
            self.inner.events.clone(),
        );
        actor.redactor = redactor_for(config)?;
        actor.emit(created.event)?;
        // What the repository's file tried and was refused, in the session itself so that
        // every client and the transcript show it (before the prompt: the agent gets it as
        // a note with the prompt, so it knows why, say, it has no network).
        for warning in config_warnings {
            actor.emit_item(
                ItemPhase::Completed,
                Item::Message {
                    id: new_item_id(),
                    role: MessageRole::System,
                    text: warning.to_string(),
                    interrupted: false,
                    attachments: Vec::new(),
                },
            )?;
        }
        if let Some(prompt) = new.prompt {
            actor.emit_item(
                ItemPhase::Completed,
                Item::Message {
                    id: new_item_id(),
                    role: MessageRole::User,
                    text: prompt,
                    interrupted: false,
                    attachments,
                },
            )?;
        }
        let handle = Arc::new(actor.spawn(&self.inner.runtime));
        self.inner.sessions.insert(id.to_string(), handle.clone());
        let manager = self.clone();
        let driven = handle.clone();
        handle
            .run(move |actor| {
                actor.start_driver(&manager, driven, true)?;
                Ok(actor.info())
            })
            .await
    }

    /// Sends a follow-up. Returns whether it was queued behind a turn in progress (`true`)
    /// or starts a turn now (`false`).
    /// (Tether's own follow-ups: the text as it is, no commands, no mentions.)
    pub async fn send(&self, id: &str, text: String) -> Result<Sent, SessionError> {
        self.deliver(id, text, &[]).await
    }

    /// Sends the user's message: a slash command runs (or expands), `@` mentions attach
    /// their files, after `sources`.
    pub async fn send_with(
        &self,
        id: &str,
        text: String,
        sources: &[AttachmentSource],
    ) -> Result<Sent, SessionError> {
        let handle = self.writable_handle(id)?;
        let (text, sources) = match self
            .prepare_message(&handle, text, sources.to_vec())
            .await?
        {
            super::commands::Prepared::Ran(command) => {
                return Ok(Sent {
                    queued: false,
                    item_id: String::new(),
                    command: Some(command),
                });
            }
            super::commands::Prepared::Send { text, sources } => (text, sources),
        };
        self.deliver(id, text, &sources).await
    }

    /// Queues a message (a turn starts for it if none is running).
    async fn deliver(
        &self,
        id: &str,
        text: String,
        sources: &[AttachmentSource],
    ) -> Result<Sent, SessionError> {
        if text.trim().is_empty() {
            return Err(SessionError::InvalidParams {
                field: "text",
                message: "the message is empty".to_owned(),
            });
        }
        let handle = self.writable_handle(id)?;
        let attachments = if sources.is_empty() {
            Vec::new()
        } else {
            let spec = handle.view().spec.clone();
            let attachments = super::attachments::take_in(&handle.store, &spec.repo, sources)?;
            let resolved = self.config_of(&spec)?;
            super::attachments::check_vision(
                &spec.provider,
                resolved.config.provider(&spec.provider)?,
                &attachments,
            )?;
            attachments
        };
        let manager = self.clone();
        let driven = handle.clone();
        handle
            .run(move |actor| {
                let queued = match actor.state.status {
                    SessionStatus::Pending | SessionStatus::Creating | SessionStatus::Running => {
                        true
                    }
                    SessionStatus::Waiting => false,
                    SessionStatus::Stopped | SessionStatus::Failed => {
                        return Err(
                            actor.invalid("send to", "; resume it (with this text) instead")
                        );
                    }
                    SessionStatus::Completed => {
                        return Err(actor.invalid("send to", "; clone it to continue the work"));
                    }
                };
                let item_id = new_item_id();
                actor.emit(Event::FollowUpQueued {
                    item_id: item_id.clone(),
                    text,
                    attachments,
                })?;
                if !queued {
                    actor.start_driver(&manager, driven, false)?;
                }
                Ok(Sent {
                    queued,
                    item_id,
                    command: None,
                })
            })
            .await
    }

    /// Stops a session gracefully; it stays resumable. Returns once the stop is recorded.
    pub async fn stop(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let task = handle
            .run(|actor| match actor.state.status {
                SessionStatus::Waiting => {
                    // Its agent (an ACP agent between turns) ends with it.
                    if let Some(mut agent) = actor.agent.take() {
                        agent.kill();
                    }
                    actor.set_status(
                        SessionStatus::Stopped,
                        None,
                        Some("stopped by the user".to_owned()),
                    )?;
                    Ok(None)
                }
                status if status.is_active() => Ok(actor.driver.as_mut().and_then(|driver| {
                    driver.stop_reason = Some("stopped by the user".to_owned());
                    driver.cancel.cancel();
                    driver.task.take()
                })),
                _ => Err(actor.invalid("stop", "; it is not working")),
            })
            .await?;
        if let Some(task) = task {
            let _ = tokio::time::timeout(STOP_GRACE, task).await;
        }
        let manager = self.clone();
        let stopped = handle.clone();
        self.inner.runtime.spawn(async move {
            let runs = manager.run_hooks(&stopped, HookEvent::OnCancel).await;
            if let Err(error) = manager.tell_agent(&stopped, runs, false).await {
                tracing::warn!("session {}: {error}", stopped.id);
            }
        });
        Ok(handle.info())
    }

    /// Starts a stopped or failed session again, with an optional new message.
    pub async fn resume(
        &self,
        id: &str,
        text: Option<String>,
    ) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let manager = self.clone();
        let driven = handle.clone();
        handle
            .run(move |actor| {
                if !matches!(
                    actor.state.status,
                    SessionStatus::Stopped | SessionStatus::Failed
                ) {
                    let hint = if actor.state.status == SessionStatus::Waiting {
                        "; send it a message instead"
                    } else {
                        ""
                    };
                    return Err(actor.invalid("resume", hint));
                }
                if let Some(text) = text.filter(|text| !text.trim().is_empty()) {
                    actor.emit(Event::FollowUpQueued {
                        item_id: new_item_id(),
                        text,
                        attachments: Vec::new(),
                    })?;
                }
                actor.start_driver(&manager, driven, false)?;
                Ok(actor.info())
            })
            .await
    }

    /// Marks a session done.
    pub async fn complete(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        handle
            .run(|actor| {
                actor.require_idle("complete")?;
                actor.set_status(SessionStatus::Completed, None, None)?;
                Ok(actor.info())
            })
            .await
    }

    /// Clears the model's conversation (the transcript stays), keeping `summary` if given.
    pub async fn reset_context(
        &self,
        id: &str,
        summary: Option<String>,
    ) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        handle
            .run(|actor| {
                actor.require_idle("reset the context of")?;
                let summary = summary.filter(|summary| !summary.trim().is_empty());
                actor.emit(Event::ContextReset { summary })?;
                Ok(actor.info())
            })
            .await
    }

    /// Records a note from tether (what the user applied or rejected, say): shown in the
    /// session's history and given to the agent with the next message it gets.
    pub async fn note(&self, id: &str, text: String) -> Result<(), SessionError> {
        let handle = self.writable_handle(id)?;
        handle
            .run(|actor| {
                actor.emit_item(
                    ItemPhase::Completed,
                    Item::Message {
                        id: new_item_id(),
                        role: MessageRole::System,
                        text,
                        interrupted: false,
                        attachments: Vec::new(),
                    },
                )
            })
            .await
    }

    /// A new session with the same configuration and no history.
    pub async fn clone_session(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let spec = self.view(id)?.spec.clone();
        self.new_session(NewSession {
            id: None,
            root: spec.repo.clone(),
            preferred_name: format!("{}-clone", spec.name),
            exact_name: false,
            title: spec.title.clone(),
            mode: spec.mode,
            base_branch: Some(spec.base_branch.clone()),
            base_commit: None,
            provider: Some(spec.provider.clone()),
            model: Some(spec.model.clone()),
            temperature: spec.temperature,
            max_tokens: spec.max_tokens,
            toggles: spec.toggles.clone(),
            cloned_from: Some(spec.id.clone()),
            prompt: None,
            started_by: spec.started_by.clone(),
            settings_profile: spec.settings_profile.clone(),
            attachments: Vec::new(),
        })
        .await
    }

    /// Deletes a session: stops it, removes its worktree and its `tether/` branch, then its
    /// log. If git cannot remove the worktree, the session is kept and the error says why.
    pub async fn delete(&self, id: &str) -> Result<(), SessionError> {
        let handle = self.writable_handle(id)?;
        if handle.view().info.status.is_active() {
            self.stop(id).await?;
        }
        handle
            .run(|actor| {
                for cancel in actor.running_reviews.values() {
                    cancel.cancel();
                }
                if let Some(mut agent) = actor.agent.take() {
                    agent.kill();
                }
                Ok(())
            })
            .await?;
        let spec = handle.view().spec.clone();
        let repository = workspace::Repository {
            root: spec.repo.clone(),
        };
        {
            let worktree_lock = self.worktree_lock(&spec.repo);
            let _serialized = worktree_lock.lock().await;
            repository
                .remove_worktree(&spec.worktree, &spec.branch)
                .await?;
        }
        workspace::Checkpoints::delete_all(&spec.repo, &handle.id).await?;
        handle.store.remove_log(&handle.id)?;
        crate::sandbox::end_owner(&handle.id);
        let _ = std::fs::remove_dir_all(self.temp_dir(&handle.id));
        let _ = std::fs::remove_dir_all(self.inner.home.join("private").join(&*handle.id));
        self.inner.sessions.remove(id);
        let _ = self.inner.removed.send(id.to_owned());
        Ok(())
    }

    /// Sessions deleted from now on, by id.
    pub fn subscribe_removed(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.inner.removed.subscribe()
    }
}

//! The task that drives one activation of a session: it waits for a working slot, makes the
//! worktree if there is none, runs the start hooks, then runs turns while there is something
//! to answer, and ends `waiting`, `stopped` or `failed`. Every change to the session is a
//! command to its actor; the turn's events reach it through [`TurnSink`], in order.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::actor::{Pending, SessionActor, SessionHandle};
use super::git::end_programs;
use super::reviews::ReviewRun;
use super::{SessionError, SessionManager};
use crate::acp::AgentLaunch;
use crate::agent::tools::ToolContext;
use crate::agent::{self, EventSink, PermissionCheck, TurnSettings};
use crate::config::{Config, PermissionMode, ProviderKind};
use crate::hooks::HookEvent;
use crate::mcp::McpTools;
use crate::provider::{ChatMessage, ChatRequest, ChatRole, ModelProvider, build_provider};
use crate::session::Redactor;
use crate::store;
use crate::vocab::{
    Activity, Answer, Event, Mode, PlanDecision, PlanPhase, Question, SessionSpec, SessionStatus,
    TurnEndReason,
};
use crate::workspace;

/// How a drive ended, when it did not end `waiting`.
enum DriveEnd {
    Stopped,
    /// A limit was reached (cost budget, turn timeout): stopped, resumable, with this reason.
    Halted(String),
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for DriveEnd {
    fn from(error: E) -> Self {
        DriveEnd::Failed(error.to_string())
    }
}

/// What the driver does next, decided in one actor step.
enum Step {
    Turn(ChatRequest),
    /// Nothing to answer: the session waits, with these reviews to run.
    Idle(Vec<ReviewRun>),
}

/// Drives one activation of a session to its end, and records how it ended.
pub(super) async fn drive(
    manager: SessionManager,
    handle: Arc<SessionHandle>,
    cancel: CancellationToken,
) {
    let outcome = drive_turns(&manager, &handle, &cancel).await;
    let recorded = handle.run(move |actor| actor.end_drive(outcome)).await;
    if let Err(error) = recorded {
        tracing::error!("session {}: {error}", handle.id);
    }
}

impl SessionActor {
    /// Records how a drive ended. A drive that ended `waiting` already let go of the session,
    /// in the step that set `waiting`; a follow-up may have started the next driver since.
    fn end_drive(&mut self, outcome: Result<(), DriveEnd>) -> Result<(), SessionError> {
        let end = match outcome {
            Ok(()) => return Ok(()),
            Err(end) => end,
        };
        // What the ended turn waited on can no longer be answered. (A drive that ended
        // `waiting` left nothing pending, and the next drive may have opened a prompt since.)
        self.pending = Pending::Nothing;
        let driver = self.driver.take();
        let (status, reason) = match (end, driver) {
            (_, Some(driver)) if driver.failure.is_some() => {
                (SessionStatus::Failed, driver.failure.unwrap_or_default())
            }
            (DriveEnd::Stopped, driver) => (
                SessionStatus::Stopped,
                driver
                    .and_then(|driver| driver.stop_reason)
                    .unwrap_or_else(|| "stopped".to_owned()),
            ),
            (DriveEnd::Halted(reason), _) => (SessionStatus::Stopped, reason),
            (DriveEnd::Failed(reason), _) => (SessionStatus::Failed, reason),
        };
        self.set_status(status, None, Some(reason))
    }

    /// Delivers every follow-up that waited (the model sees them all at once), then decides:
    /// another turn, or `waiting` with `reviews` registered in the same step, so that no
    /// follow-up slips in between and whoever sees `waiting` sees the reviews too.
    fn next_step(
        &mut self,
        with_tools: bool,
        agent_backend: bool,
        reviews: &[crate::vocab::FindingSource],
    ) -> Result<Step, SessionError> {
        self.deliver_queued(false)?;
        let owed = if agent_backend {
            self.state.awaits_agent_reply()
        } else {
            self.state.awaits_reply()
        };
        if owed {
            let mut request = chat_request(
                &self.state.spec,
                self.state.history.as_deref().unwrap_or_default(),
                with_tools,
            );
            if let Some(model) = self.model_override.as_ref().or(self.state.model.as_ref()) {
                request.model.clone_from(model);
            }
            return Ok(Step::Turn(request));
        }
        let runs = self.register_reviews(reviews);
        let reason = self.settings_problem.take();
        self.set_status(SessionStatus::Waiting, None, reason)?;
        self.driver = None;
        Ok(Step::Idle(runs))
    }
}

async fn drive_turns(
    manager: &SessionManager,
    handle: &Arc<SessionHandle>,
    cancel: &CancellationToken,
) -> Result<(), DriveEnd> {
    let _permit = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(DriveEnd::Stopped),
        permit = manager.inner.working_slots.clone().acquire_owned() => permit?,
    };
    let view = handle.view();
    let spec = view.spec.clone();
    if !view.worktree_ready {
        make_worktree(manager, handle, &spec, cancel).await?;
    }
    handle
        .run(|actor| actor.set_status(SessionStatus::Running, Some(Activity::Working), None))
        .await?;
    run_start_hooks(manager, handle, !view.worktree_ready).await?;
    if !view.worktree_ready {
        manager
            .record_checkpoint(handle, &spec, super::git::START_CHECKPOINT.to_owned())
            .await;
    }

    let resolved = manager.config_of(&spec)?;
    let config = &resolved.config;
    let provider_config = config.provider(&spec.provider)?;
    let (mut settings, workspace) = turn_settings(manager, handle, &spec, config).await?;
    let mcp_servers = super::mcp::servers(handle, &spec, config).await?;
    let backend = match provider_config.kind {
        ProviderKind::Acp => Backend::Agent(Box::new((
            AgentLaunch::new(
                &spec.provider,
                provider_config,
                workspace.jail.clone(),
                if workspace.read_only {
                    "read-only"
                } else if workspace.ask_permission {
                    "ask"
                } else {
                    "auto"
                },
            )
            .map_err(DriveEnd::Failed)?
            .with_model(&spec.model)
            .with_mcp_servers(mcp_servers),
            workspace,
        ))),
        ProviderKind::Openai | ProviderKind::Anthropic => {
            if settings.tools.is_some() && !mcp_servers.is_empty() {
                let (tools, problems) = McpTools::start(&mcp_servers, &workspace.jail).await;
                super::mcp::report(handle, problems).await?;
                settings.mcp = Some(Arc::new(tools));
            }
            Backend::Model(build_provider(&spec.provider, provider_config)?)
        }
    };
    let budget = config.session.budget_usd;
    load_history(handle).await?;
    // Whether a turn of this activation changed files: verification and review follow.
    let mut changed_files = false;
    let compaction_share = config.context.compaction_share();
    loop {
        if let Backend::Model(provider) = &backend {
            super::compaction::before_turn(
                handle,
                provider.as_ref(),
                &settings,
                compaction_share,
                cancel,
            )
            .await?;
            if cancel.is_cancelled() {
                return Err(DriveEnd::Stopped);
            }
        }
        let reviews = if changed_files {
            manager.automatic_reviews(handle)
        } else {
            Vec::new()
        };
        let with_tools = settings.tools.is_some();
        let agent_backend = matches!(backend, Backend::Agent(..));
        let step = handle
            .run(move |actor| actor.next_step(with_tools, agent_backend, &reviews))
            .await?;
        let request = match step {
            Step::Turn(request) => request,
            Step::Idle(reviews) => {
                manager.run_reviews(handle, reviews);
                return Ok(());
            }
        };
        let mut request = super::attachments::with_attachment_data(handle, request)
            .await
            .map_err(DriveEnd::Failed)?;
        if let Some(mcp) = &settings.mcp
            && !request.tools.is_empty()
        {
            request.tools.extend(mcp.definitions());
        }
        let mut settings = settings.clone();
        // A loop may run its turns on another model.
        if request.model != spec.model {
            settings.context_window = Some(config.context.window_of(&request.model));
            settings.price = config.price_of(&spec.provider, &request.model);
        }
        if let Some(budget) = budget {
            let spent = spent_usd(handle).await?;
            if spent >= budget {
                return Err(DriveEnd::Halted(format!(
                    "the cost budget is spent (${spent:.4} of ${budget:.4}); raise session.budget_usd to continue"
                )));
            }
            settings.budget_left_usd = Some(budget - spent);
        }
        let reason = match &backend {
            Backend::Model(provider) => {
                run_turn(handle, provider.as_ref(), request, &settings, cancel).await?
            }
            Backend::Agent(agent) => {
                let (launch, workspace) = &**agent;
                let mut sink = TurnSink {
                    handle: handle.clone(),
                };
                let outcome = super::agents::run_agent_turn(
                    handle, launch, workspace, request, &settings, cancel, &mut sink,
                )
                .await?;
                // The terminals it opened end with the turn.
                end_programs(&handle.id, &workspace.git);
                end_turn(handle, outcome).await?
            }
        };
        changed_files |= manager.record_turn_checkpoint(handle, &spec).await?;
        after_turn(manager, handle, reason, &settings, budget).await?;
    }
}

/// Makes the session's worktree and branch (removing what a crash mid-creation left).
async fn make_worktree(
    manager: &SessionManager,
    handle: &SessionHandle,
    spec: &SessionSpec,
    cancel: &CancellationToken,
) -> Result<(), DriveEnd> {
    handle
        .run(|actor| actor.set_status(SessionStatus::Creating, None, None))
        .await?;
    let repository = workspace::Repository {
        root: spec.repo.clone(),
    };
    {
        // Only the worktree's entry is made under the repository's lock: the checkout, the
        // slow part, runs beside other sessions' (a task's trials start together).
        let worktree_lock = manager.worktree_lock(&spec.repo);
        let _serialized = worktree_lock.lock().await;
        // Left over from a crash mid-creation: remove it (only ever a `tether/` branch).
        repository
            .remove_worktree(&spec.worktree, &spec.branch)
            .await?;
        repository
            .add_worktree_entry(
                &spec.worktree,
                &spec.branch,
                spec.base_commit.as_deref().unwrap_or(&spec.base_branch),
            )
            .await?;
    }
    if let Err(error) = repository.check_out_worktree(&spec.worktree).await {
        // Undone under the lock, as it was made.
        let worktree_lock = manager.worktree_lock(&spec.repo);
        let _serialized = worktree_lock.lock().await;
        let _ = repository
            .remove_worktree(&spec.worktree, &spec.branch)
            .await;
        let _ = repository.prune_worktrees().await;
        return Err(error.into());
    }
    if cancel.is_cancelled() {
        return Err(DriveEnd::Stopped);
    }
    Ok(())
}

/// Hooks: `on_init` once the worktree exists, `on_start` on every activation. What they say
/// reaches the agent as notes; they cannot hold the session back.
async fn run_start_hooks(
    manager: &SessionManager,
    handle: &Arc<SessionHandle>,
    fresh_worktree: bool,
) -> Result<(), DriveEnd> {
    let mut runs = Vec::new();
    if fresh_worktree {
        runs.extend(manager.run_hooks(handle, HookEvent::OnInit).await);
    }
    runs.extend(manager.run_hooks(handle, HookEvent::OnStart).await);
    manager.tell_agent(handle, runs, false).await?;
    handle
        .run(|actor| {
            actor.hook_blocks = 0;
            Ok(())
        })
        .await?;
    Ok(())
}

/// Who answers a session's turns.
enum Backend {
    /// Tether's own agent, on a model API.
    Model(Box<dyn ModelProvider>),
    /// An ACP agent, with the worktree it works in (whether `session.tools` is on or not:
    /// it serves the agent's file and terminal requests).
    Agent(Box<(AgentLaunch, ToolContext)>),
}

/// How this activation's turns run: tools, sandbox, limits, price; and the worktree's tool
/// context (the same as `tools`, read-only when tools are off).
async fn turn_settings(
    manager: &SessionManager,
    handle: &SessionHandle,
    spec: &SessionSpec,
    config: &Config,
) -> Result<(TurnSettings, ToolContext), DriveEnd> {
    let worktree = spec.worktree.canonicalize().map_err(|error| {
        DriveEnd::Failed(format!(
            "the worktree {} is missing ({error}); delete the session or restore it",
            spec.worktree.display()
        ))
    })?;
    let redactor = redactor_for(config)?;
    handle
        .run(move |actor| {
            actor.redactor = redactor;
            Ok(())
        })
        .await?;
    let git = workspace::SessionWorktree::pin(&spec.repo, &worktree)?;
    let context = ToolContext {
        read_only: spec.mode == Mode::Chat
            || config.session.permission_mode == PermissionMode::ReadOnly
            || !config.session.tools,
        ask_permission: config.session.permission_mode == PermissionMode::Ask,
        allowed_scopes: config.session.allow.clone(),
        command_timeout: Duration::from_secs(config.session.command_timeout_secs.max(1)),
        jail: manager.jail(&handle.store, spec, &worktree, config),
        git,
        private_index: manager.private_index(spec),
    };
    let settings = TurnSettings {
        tools: config.session.tools.then(|| context.clone()),
        max_steps: config.session.max_turns,
        price: config.price_of(&spec.provider, &spec.model),
        context_window: Some(config.context.window_of(&spec.model)),
        budget_left_usd: None,
        turn_timeout: config.session.turn_timeout_secs.map(Duration::from_secs),
        mcp: None,
        instructions: Some(agent::instructions::Instructions::new(
            spec,
            &worktree,
            config.session.tools,
        )),
    };
    Ok((settings, context))
}

/// A session reloaded from its snapshot has no conversation in memory yet: it is folded from
/// the log off the actor (a replay reads the whole log), then handed to it.
async fn load_history(handle: &SessionHandle) -> Result<(), DriveEnd> {
    if handle
        .run(|actor| Ok(actor.state.history.is_some()))
        .await?
    {
        return Ok(());
    }
    let store = handle.store.clone();
    let id = handle.id.clone();
    let replayed = tokio::task::spawn_blocking(move || store.read_events(&id, 0))
        .await
        .map_err(|error| DriveEnd::Failed(format!("the log replay panicked: {error}")))??;
    let replayed = store::fold(replayed).ok_or_else(|| {
        DriveEnd::Failed("the session's log does not start with `created`".to_owned())
    })?;
    handle
        .run(move |actor| {
            if actor.state.history.is_none() {
                actor.state.history = replayed.history;
                actor.state.message_marks = replayed.message_marks;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

async fn spent_usd(handle: &SessionHandle) -> Result<f64, SessionError> {
    handle.run(|actor| Ok(actor.state.usage.cost_usd)).await
}

/// Records the end of a turn.
async fn end_turn(
    handle: &SessionHandle,
    outcome: agent::TurnOutcome,
) -> Result<(TurnEndReason, Option<String>), DriveEnd> {
    let reason = outcome.reason;
    let message = outcome.message.clone();
    handle
        .run(move |actor| {
            actor.emit(Event::TurnEnded {
                reason: outcome.reason,
                message: outcome.message,
            })?;
            Ok(())
        })
        .await?;
    Ok((reason, message))
}

/// Runs one turn against the model and records its end.
async fn run_turn(
    handle: &Arc<SessionHandle>,
    provider: &dyn ModelProvider,
    request: ChatRequest,
    settings: &TurnSettings,
    cancel: &CancellationToken,
) -> Result<(TurnEndReason, Option<String>), DriveEnd> {
    let mut sink = TurnSink {
        handle: handle.clone(),
    };
    let outcome = agent::run_turn(provider, request, settings, cancel, &mut sink).await;
    // What the turn's commands left running ends with the turn.
    if let Some(tools) = &settings.tools {
        end_programs(&handle.id, &tools.git);
    }
    end_turn(handle, outcome).await
}

/// What the end of a turn leads to: the next turn (a blocking `on_agent_finish` hook is a
/// user message the loop answers), or the end of the drive.
async fn after_turn(
    manager: &SessionManager,
    handle: &Arc<SessionHandle>,
    (reason, message): (TurnEndReason, Option<String>),
    settings: &TurnSettings,
    budget: Option<f64>,
) -> Result<(), DriveEnd> {
    match reason {
        TurnEndReason::EndTurn => {
            let runs = manager.run_hooks(handle, HookEvent::OnAgentFinish).await;
            manager.tell_agent(handle, runs, true).await?;
            Ok(())
        }
        TurnEndReason::Stopped => Err(DriveEnd::Stopped),
        TurnEndReason::MaxTurns => Err(DriveEnd::Halted(format!(
            "the turn made session.max_turns ({}) model calls; resume to let it go on",
            settings.max_steps
        ))),
        TurnEndReason::Timeout => Err(DriveEnd::Halted(format!(
            "{}; resume to continue",
            message.unwrap_or_else(|| "the turn timed out".to_owned())
        ))),
        TurnEndReason::Budget => {
            let spent = spent_usd(handle).await?;
            Err(DriveEnd::Halted(format!(
                "the cost budget was reached (${spent:.4} of ${:.4}); raise session.budget_usd and resume to continue",
                budget.unwrap_or_default()
            )))
        }
        _ => Err(DriveEnd::Failed(
            message.unwrap_or_else(|| reason.as_str().to_owned()),
        )),
    }
}

/// Hands a turn's events and prompts to the session's actor, in the order the turn makes
/// them. Emitting does not wait: the actor records events in order, and a failure to record
/// one stops the turn (see [`SessionActor::emit_for_turn`]).
struct TurnSink {
    handle: Arc<SessionHandle>,
}

impl EventSink for TurnSink {
    fn emit(&mut self, event: Event) -> Result<(), String> {
        self.handle.tell(move |actor| actor.emit_for_turn(event));
        Ok(())
    }

    fn ask(
        &mut self,
        item_id: &str,
        questions: &[Question],
    ) -> Result<oneshot::Receiver<Vec<Answer>>, String> {
        let (reply, answers) = oneshot::channel();
        let item_id = item_id.to_owned();
        let questions = questions.to_vec();
        self.handle.tell(move |actor| {
            // If it cannot be opened, `reply` is dropped and the turn hears so.
            if let Err(error) = actor.open_question(item_id, questions, reply) {
                tracing::error!("session {}: {error}", actor.id);
            }
        });
        Ok(answers)
    }

    fn permission<'a>(
        &'a mut self,
        tool: &str,
        input: &serde_json::Value,
        scope: &str,
    ) -> futures_util::future::BoxFuture<'a, Result<PermissionCheck, String>> {
        let (tool, input, scope) = (tool.to_owned(), input.clone(), scope.to_owned());
        async move {
            self.handle
                .run(move |actor| actor.check_permission(tool, input, scope))
                .await
                .map_err(|error| error.to_string())
        }
        .boxed()
    }

    fn propose(
        &mut self,
        item_id: &str,
        phases: &[PlanPhase],
    ) -> Result<oneshot::Receiver<PlanDecision>, String> {
        let (reply, decision) = oneshot::channel();
        let item_id = item_id.to_owned();
        let phases = phases.to_vec();
        self.handle.tell(move |actor| {
            if let Err(error) = actor.open_plan(item_id, phases, reply) {
                tracing::error!("session {}: {error}", actor.id);
            }
        });
        Ok(decision)
    }

    fn steer(&mut self) -> futures_util::future::BoxFuture<'_, Result<Vec<String>, String>> {
        async move {
            self.handle
                .run(|actor| actor.deliver_queued(true))
                .await
                .map_err(|error| error.to_string())
        }
        .boxed()
    }
}

/// The redactor for a session under `config`: its key variables' values and its patterns.
pub(super) fn redactor_for(config: &Config) -> Result<Arc<Redactor>, SessionError> {
    Redactor::new(config.secret_values(), &config.secrets.patterns)
        .map(Arc::new)
        .map_err(|message| SessionError::InvalidParams {
            field: "secrets.patterns",
            message,
        })
}

fn chat_request(spec: &SessionSpec, history: &[ChatMessage], with_tools: bool) -> ChatRequest {
    let mut messages = vec![ChatMessage::new(
        ChatRole::System,
        agent::instructions::base_prompt(spec, with_tools),
    )];
    messages.extend(history.iter().cloned());
    ChatRequest {
        model: spec.model.clone(),
        messages,
        tools: if with_tools {
            agent::tools::definitions()
        } else {
            Vec::new()
        },
        temperature: spec.temperature,
        max_tokens: spec.max_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::manager::actor::tests::started;

    #[tokio::test]
    async fn a_drive_that_ended_waiting_leaves_the_next_drives_prompt_open() {
        let (handle, _events, _home) = started();
        let (reply, _answers) = oneshot::channel();
        handle
            .run(move |actor| {
                actor.set_status(SessionStatus::Running, Some(Activity::Working), None)?;
                // The next drive asked a question before the last one's end was recorded.
                actor.open_question("q1".into(), Vec::new(), reply)?;
                actor.end_drive(Ok(()))?;
                Ok(())
            })
            .await
            .expect("the actor answers");
        let open = handle
            .run(|actor| Ok(matches!(actor.pending, Pending::Question { .. })))
            .await
            .expect("the actor answers");
        assert!(open, "the question must stay answerable");
        // A drive that ends stopped takes what it waited on with it.
        let cleared = handle
            .run(|actor| {
                actor.end_drive(Err(DriveEnd::Halted("limit".into())))?;
                Ok(matches!(actor.pending, Pending::Nothing))
            })
            .await
            .expect("the actor answers");
        assert!(cleared);
        assert_eq!(handle.view().info.status, SessionStatus::Stopped);
    }
}

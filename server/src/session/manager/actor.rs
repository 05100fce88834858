//! A session as an actor: one task owns its state, its log file and the prompt it waits on.
//! Everyone else holds a [`SessionHandle`]: they read the immutable [`SessionView`] the actor
//! publishes after every event, or send it a command (a closure run on its state) and get
//! the answer over a oneshot.
//!
//! Commands run one at a time, in the order they were sent, and never await: what used to be
//! "under the session's lock" is now "in one actor step". [`SessionActor::emit`] gives an
//! event its `seq`, writes it to the log, folds it into the state, publishes the new view and
//! only then announces it, so the log always holds at least what any client was told and a
//! subscriber that re-reads the view sees the event it was told about.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{AnnouncedEvent, SessionError, SessionInfo};
use crate::session::Redactor;
use crate::store::{EventLog, RepoStore, StoreError};
use crate::vocab::{
    Activity, Answer, Event, EventRecord, Finding, FindingSource, Item, ItemPhase,
    PermissionDecision, PlanDecision, PlanPhase, Question, Resolution, SessionSpec, SessionState,
    SessionStatus, check_transition, format_timestamp, now_millis,
};

/// Work for a session's actor: run on its state, in order, without awaiting.
type Command = Box<dyn FnOnce(&mut SessionActor) + Send>;

/// What a session's task owns.
pub(super) struct SessionActor {
    pub id: Arc<str>,
    pub state: SessionState,
    /// Applied to every event before it is written.
    pub redactor: Arc<Redactor>,
    pub store: Arc<RepoStore>,
    /// Open while the session is active; closed when it settles, so a thousand idle sessions
    /// hold no file descriptors.
    log: Option<EventLog>,
    /// The task driving the session, while there is one.
    pub driver: Option<Driver>,
    /// The question, plan or permission the agent waits on.
    pub pending: Pending,
    /// The review and verification running now (one of each at most), to cancel them.
    pub running_reviews: HashMap<FindingSource, CancellationToken>,
    /// The loop running on the session, to stop it.
    pub active_loop: Option<CancellationToken>,
    /// The model a loop's turns use instead of the session's.
    pub model_override: Option<String>,
    /// The user asked for the conversation to be compacted before the next turn.
    pub compact_requested: bool,
    /// How often hooks blocked this activation's turns (capped by `hooks::MAX_HOOK_BLOCKS`).
    pub hook_blocks: u32,
    /// How often `on_done` hooks kept this session from completing (same cap).
    pub done_blocks: u32,
    /// Why hooks or reviews could not run (the settings do not parse): the reason the
    /// session gives when it next waits.
    pub settings_problem: Option<String>,
    /// The session's ACP agent between turns, still running with its session open (a turn
    /// takes it; one that ends well puts it back).
    pub agent: Option<crate::acp::AgentSession>,
    events: broadcast::Sender<AnnouncedEvent>,
    view: watch::Sender<Arc<SessionView>>,
    /// The last `seq` its log held when this process took it up (0 for a new session).
    loaded_seq: u64,
}

/// What the agent waits on from the user: at most one thing at a time.
pub(super) enum Pending {
    Nothing,
    Question {
        item_id: String,
        questions: Vec<Question>,
        reply: oneshot::Sender<Vec<Answer>>,
    },
    Plan {
        item_id: String,
        phases: Vec<PlanPhase>,
        reply: oneshot::Sender<PlanDecision>,
    },
    Permission {
        item: Item,
        reply: oneshot::Sender<(PermissionDecision, Option<String>)>,
    },
}

pub(super) struct Driver {
    pub cancel: CancellationToken,
    /// Why it is being stopped, for the `stopped` status event.
    pub stop_reason: Option<String>,
    /// Set when the session's events could not be recorded: the drive ends `failed`.
    pub failure: Option<String>,
    pub task: Option<JoinHandle<()>>,
}

/// A session as readers see it between two events: immutable, cheap to share.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub info: SessionInfo,
    pub spec: Arc<SessionSpec>,
    pub worktree_ready: bool,
    /// The questions, plans and permissions it waits on, as started items.
    pub open_questions: Arc<Vec<Item>>,
    /// Findings that are not dismissed.
    pub findings: Arc<Vec<(FindingSource, Finding)>>,
    pub in_loop: bool,
    /// How its work went (a task's trial is compared on it).
    pub evidence: crate::vocab::Evidence,
    /// Its last event's time (milliseconds since the epoch).
    pub updated_at: u64,
    /// The agent's latest whole reply, by item id.
    pub last_reply: Option<String>,
    /// Its checkpoints, oldest first.
    pub checkpoints: Arc<Vec<String>>,
    /// Rewinds so far: the last one is undone by checkpoint `before-rewind-<rewinds>`.
    pub rewinds: u64,
}

impl SessionView {
    fn of(actor: &SessionActor) -> SessionView {
        SessionView::build(
            &actor.state,
            !actor.store.is_writable(),
            actor.active_loop.is_some(),
        )
    }

    /// Whether `event` changes nothing a view shows but its counters (a streamed delta, a
    /// message or tool call starting): the view is then copied, not rebuilt.
    pub fn moves_only_counters(event: &Event) -> bool {
        matches!(
            event,
            Event::Delta { .. }
                | Event::Item {
                    phase: ItemPhase::Started,
                    item: Item::Message { .. } | Item::ToolCall { .. },
                }
        )
    }

    /// This view with `state`'s counters (its last `seq`, when it last changed).
    pub fn with_counters(&self, state: &SessionState) -> SessionView {
        let mut view = self.clone();
        view.info.last_seq = state.last_seq;
        view.info.updated_at = format_timestamp(state.updated_at);
        view
    }

    /// The view of a session in `state`; `read_only`: its store is another tether's.
    pub fn build(state: &SessionState, read_only: bool, in_loop: bool) -> SessionView {
        SessionView {
            info: info_of(state, read_only),
            spec: Arc::new(state.spec.clone()),
            worktree_ready: state.worktree_ready,
            open_questions: Arc::new(state.open_questions.values().cloned().collect()),
            findings: Arc::new(state.findings.values().cloned().collect()),
            in_loop,
            evidence: state.evidence.clone(),
            updated_at: state.updated_at,
            last_reply: state.last_reply.clone(),
            checkpoints: Arc::new(state.checkpoints.clone()),
            rewinds: state.rewinds,
        }
    }
}

/// The manager's way to one session.
pub(super) struct SessionHandle {
    pub id: Arc<str>,
    pub store: Arc<RepoStore>,
    /// The last `seq` its log held when this process took it up: every later event was
    /// announced here (see [`super::fanout`]).
    pub loaded_seq: u64,
    commands: mpsc::UnboundedSender<Command>,
    view: watch::Receiver<Arc<SessionView>>,
}

impl SessionHandle {
    /// The session as of its last event.
    pub fn view(&self) -> Arc<SessionView> {
        self.view.borrow().clone()
    }

    pub fn info(&self) -> SessionInfo {
        self.view().info.clone()
    }

    /// Runs `work` on the session's state after every command sent before it; its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut SessionActor) -> Result<T, SessionError> + Send + 'static,
    ) -> Result<T, SessionError> {
        let (reply, answer) = oneshot::channel();
        self.tell(move |actor| {
            let _ = reply.send(work(actor));
        });
        answer.await.map_err(|_| SessionError::ShuttingDown)?
    }

    /// Sends `work` without waiting for it; it runs after every command sent before it.
    pub fn tell(&self, work: impl FnOnce(&mut SessionActor) + Send + 'static) {
        if self.commands.send(Box::new(work)).is_err() {
            tracing::error!(
                "session {}: its task is gone; the command was dropped",
                self.id
            );
        }
    }
}

impl SessionActor {
    pub fn new(
        id: Arc<str>,
        store: Arc<RepoStore>,
        state: SessionState,
        log: Option<EventLog>,
        events: broadcast::Sender<AnnouncedEvent>,
    ) -> SessionActor {
        let view = watch::Sender::new(Arc::new(SessionView::build(
            &state,
            !store.is_writable(),
            false,
        )));
        SessionActor {
            loaded_seq: state.last_seq,
            id,
            state,
            // Built-in patterns until the session's configuration adds its own.
            redactor: Redactor::built_in(),
            store,
            log,
            driver: None,
            pending: Pending::Nothing,
            running_reviews: HashMap::new(),
            active_loop: None,
            model_override: None,
            compact_requested: false,
            hook_blocks: 0,
            done_blocks: 0,
            settings_problem: None,
            agent: None,
            events,
            view,
        }
    }

    /// Starts the task that owns the session from now on; the handle reaches it.
    pub fn spawn(self, runtime: &tokio::runtime::Handle) -> SessionHandle {
        let (commands, mut inbox) = mpsc::unbounded_channel::<Command>();
        let handle = SessionHandle {
            id: self.id.clone(),
            store: self.store.clone(),
            loaded_seq: self.loaded_seq,
            commands,
            view: self.view.subscribe(),
        };
        let mut actor = self;
        runtime.spawn(async move {
            while let Some(command) = inbox.recv().await {
                let step = std::panic::AssertUnwindSafe(|| command(&mut actor));
                if std::panic::catch_unwind(step).is_err() {
                    // One bad command must not take the session with it.
                    tracing::error!("session {}: a command panicked", actor.id);
                }
            }
        });
        handle
    }

    /// The session's info as of its last event.
    pub fn info(&self) -> SessionInfo {
        self.view.borrow().info.clone()
    }

    /// Publishes the view after a change that no event records (a review registered, a loop).
    pub fn publish(&mut self) {
        self.view.send_replace(Arc::new(SessionView::of(self)));
    }

    /// After a streamed delta only the counters move: the rest of the view is shared.
    fn publish_counters(&mut self) {
        let view = self.view.borrow().with_counters(&self.state);
        self.view.send_replace(Arc::new(view));
    }

    pub fn emit(&mut self, event: Event) -> Result<u64, StoreError> {
        let record = EventRecord {
            seq: self.state.last_seq + 1,
            at: now_millis(),
            event: self.redactor.redact(event),
        };
        if !self.store.is_writable() {
            // Callers check writability first; a read-only session never emits.
            return Ok(self.state.last_seq);
        }
        let log = match &mut self.log {
            Some(log) => log,
            None => self.log.insert(self.store.open_log(&self.state.spec.id)?),
        };
        log.append(&record)?;
        self.state.apply(&record);
        if SessionView::moves_only_counters(&record.event) {
            self.publish_counters();
        } else {
            self.publish();
        }
        let _ = self.events.send(AnnouncedEvent {
            session_id: self.id.clone(),
            record: Arc::new(record),
        });
        Ok(self.state.last_seq)
    }

    /// Emits an event a turn sent; if it cannot be recorded, the turn is stopped and the
    /// session ends `failed` saying why.
    pub fn emit_for_turn(&mut self, event: Event) {
        if let Err(error) = self.emit(event) {
            tracing::error!("session {}: {error}", self.id);
            if let Some(driver) = &mut self.driver {
                driver.failure = Some(format!("cannot record the session's events: {error}"));
                driver.cancel.cancel();
            }
        }
    }

    pub fn emit_item(&mut self, phase: ItemPhase, item: Item) -> Result<(), SessionError> {
        self.emit(Event::Item { phase, item })?;
        Ok(())
    }

    pub fn set_status(
        &mut self,
        status: SessionStatus,
        activity: Option<Activity>,
        reason: Option<String>,
    ) -> Result<(), SessionError> {
        let from = self.state.status;
        if !check_transition(from, status) {
            return Err(SessionError::InvalidState {
                name: self.state.spec.name.clone(),
                status: from,
                operation: "move",
                hint: "",
            });
        }
        self.emit(Event::Status {
            status,
            activity,
            reason,
        })?;
        if !status.is_active() {
            self.settle()?;
        }
        Ok(())
    }

    /// Makes a settled session cheap to keep and quick to reload: fsyncs and closes its log
    /// and writes the snapshot the next start-up reads instead of replaying the log.
    pub fn settle(&mut self) -> Result<(), StoreError> {
        if let Some(log) = self.log.take() {
            log.sync()?;
        }
        if self.store.is_writable() {
            self.store.write_snapshot(&self.state)?;
        }
        Ok(())
    }

    /// Records a settled question, plan or permission: its completed item, the `resolved`
    /// event every client clears its prompt on, and the agent back at work.
    pub fn settle_pending(&mut self, item: Item, outcome: Resolution) -> Result<(), SessionError> {
        let item_id = item.id().to_owned();
        self.emit_item(ItemPhase::Completed, item)?;
        self.emit(Event::Resolved { item_id, outcome })?;
        self.set_status(SessionStatus::Running, Some(Activity::Working), None)
    }

    /// Announces `item` (a question, plan or permission) and shows that the turn waits for
    /// the user; the caller registers it as pending in the same step, so a client that sees
    /// the item can always settle it.
    pub fn open_for_user(&mut self, item: Item, activity: Activity) -> Result<(), SessionError> {
        self.emit_item(ItemPhase::Started, item)?;
        self.set_status(SessionStatus::Running, Some(activity), None)
    }

    /// Says in the session that settings kept something from running: a `system` message
    /// now, and the reason the session gives when it next waits.
    pub fn report_settings_problem(&mut self, problem: String) {
        let note = Item::Message {
            id: crate::vocab::new_item_id(),
            role: crate::vocab::MessageRole::System,
            text: problem.clone(),
            interrupted: false,
            attachments: Vec::new(),
        };
        if let Err(error) = self.emit_item(ItemPhase::Completed, note) {
            tracing::warn!("session {}: {error}", self.id);
        }
        self.settings_problem = Some(problem);
    }

    /// Refuses `operation` unless the session is settled enough for it (waiting, stopped or
    /// failed: no turn is running).
    pub fn require_idle(&self, operation: &'static str) -> Result<(), SessionError> {
        match self.state.status {
            SessionStatus::Waiting | SessionStatus::Stopped | SessionStatus::Failed => Ok(()),
            _ => Err(self.invalid(operation, "; stop it first")),
        }
    }

    pub fn invalid(&self, operation: &'static str, hint: &'static str) -> SessionError {
        SessionError::InvalidState {
            name: self.state.spec.name.clone(),
            status: self.state.status,
            operation,
            hint,
        }
    }
}

fn info_of(state: &SessionState, read_only: bool) -> SessionInfo {
    let spec = &state.spec;
    SessionInfo {
        id: spec.id.clone(),
        name: spec.name.clone(),
        title: spec.title.clone(),
        mode: spec.mode,
        status: state.status,
        activity: state.activity,
        status_reason: state.status_reason.clone(),
        provider: spec.provider.clone(),
        model: state.model.clone().unwrap_or_else(|| spec.model.clone()),
        branch: spec.branch.clone(),
        base_branch: spec.base_branch.clone(),
        repo: spec.repo.clone(),
        worktree: spec.worktree.clone(),
        created_at: format_timestamp(spec.created_at),
        updated_at: format_timestamp(state.updated_at),
        usage: state.usage,
        queued_messages: state.queued.len(),
        last_seq: state.last_seq,
        read_only,
        started_by: spec.started_by.clone(),
        agent: state.agent_facts.clone(),
        pull_request: state.evidence.pull_request.clone(),
        context: state.context,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::vocab::new_item_id;

    /// A fresh session `id` of the repository `/repo`, logged under `home`, its `created`
    /// event emitted on `events`; not yet running.
    pub(in crate::session::manager) fn new_actor(
        home: &Path,
        id: &str,
        events: broadcast::Sender<AnnouncedEvent>,
    ) -> SessionActor {
        let spec = crate::vocab::sample_spec(id);
        let store = Arc::new(RepoStore::open(home, Path::new("/repo")).expect("open the store"));
        let log = store.create_log(id).expect("create the log");
        let created = EventRecord {
            seq: 0,
            at: 1,
            event: Event::Created {
                session: Box::new(spec.clone()),
            },
        };
        let mut state = SessionState::new(spec, &created);
        state.last_seq = 0;
        let mut actor = SessionActor::new(id.into(), store, state, Some(log), events);
        actor.emit(created.event).expect("emit created");
        actor
    }

    /// A running actor for a fresh session, its events' channel, and the folder it logs in.
    pub(in crate::session::manager) fn started() -> (
        SessionHandle,
        broadcast::Receiver<AnnouncedEvent>,
        tempfile::TempDir,
    ) {
        let home = tempfile::tempdir().expect("tempdir");
        let (events, receiver) = broadcast::channel(1024);
        let actor = new_actor(home.path(), "actor-test", events);
        (
            actor.spawn(&tokio::runtime::Handle::current()),
            receiver,
            home,
        )
    }

    fn delta(text: &str) -> Event {
        Event::Delta {
            item_id: "m1".into(),
            text: text.into(),
        }
    }

    use std::path::Path;

    #[tokio::test]
    async fn commands_run_in_the_order_they_were_sent() {
        let (handle, _events, _home) = started();
        for n in 0..100 {
            handle.tell(move |actor| actor.emit_for_turn(delta(&n.to_string())));
        }
        // A command sent after the hundred sees all of them, and the log holds them in order.
        let last_seq = handle
            .run(|actor| Ok(actor.state.last_seq))
            .await
            .expect("the actor answers");
        assert_eq!(last_seq, 101);
        let texts: Vec<String> = handle
            .store
            .read_events("actor-test", 1)
            .expect("read the log")
            .into_iter()
            .map(|record| match record.event {
                Event::Delta { text, .. } => text,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let sent: Vec<String> = (0..100).map(|n: i32| n.to_string()).collect();
        assert_eq!(texts, sent);
    }

    #[tokio::test]
    async fn a_subscriber_told_of_an_event_reads_a_view_that_holds_it() {
        let (handle, mut events, _home) = started();
        let _ = events.recv().await.expect("created");
        for n in 0..20 {
            handle.tell(move |actor| actor.emit_for_turn(delta(&n.to_string())));
            handle.tell(|actor| {
                let _ = actor.set_status(SessionStatus::Running, Some(Activity::Working), None);
            });
        }
        for _ in 0..40 {
            let announced = events.recv().await.expect("an event");
            let view = handle.view();
            assert!(
                view.info.last_seq >= announced.record.seq,
                "told of seq {} but the view is at {}",
                announced.record.seq,
                view.info.last_seq
            );
            if let Event::Status { status, .. } = announced.record.event {
                // The view changes only after the next event, which has not been sent yet
                // when the status is the latest.
                if view.info.last_seq == announced.record.seq {
                    assert_eq!(view.info.status, status);
                }
            }
        }
    }

    #[tokio::test]
    async fn a_prompt_is_announced_and_registered_in_one_step() {
        let (handle, mut events, _home) = started();
        let _ = events.recv().await.expect("created");
        handle
            .run(|actor| actor.set_status(SessionStatus::Running, Some(Activity::Working), None))
            .await
            .expect("running");
        let (reply, _answers) = oneshot::channel();
        let question = Question {
            id: "q".into(),
            prompt: "Which?".into(),
            kind: crate::vocab::QuestionKind::Text,
            options: Vec::new(),
        };
        let item_id = new_item_id();
        let opened = item_id.clone();
        handle.tell(move |actor| {
            actor
                .open_question(opened, vec![question], reply)
                .expect("open the question");
        });
        // Whoever sees the started item finds it open, in the view and in the actor.
        loop {
            let announced = events.recv().await.expect("an event");
            if let Event::Item {
                phase: ItemPhase::Started,
                item: Item::Question { id, .. },
            } = &announced.record.event
            {
                assert_eq!(id, &item_id);
                break;
            }
        }
        let pending = handle
            .run(move |actor| Ok(matches!(&actor.pending, Pending::Question { item_id: open, .. } if *open == item_id)))
            .await
            .expect("the actor answers");
        assert!(pending, "the question is pending once announced");
        assert_eq!(handle.view().open_questions.len(), 1);
    }

    #[tokio::test]
    async fn a_panicking_command_leaves_the_session_working() {
        let (handle, _events, _home) = started();
        handle.tell(|_| panic!("a bad command"));
        let last_seq = handle
            .run(|actor| Ok(actor.state.last_seq))
            .await
            .expect("the actor still answers");
        assert_eq!(last_seq, 1);
    }
}

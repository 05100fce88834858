//! The session manager: creates sessions, drives each in its own task, and is the one way in
//! for the LSP layer and `tether run` alike.
//!
//! Every event goes through [`SessionInner::emit`], under the session's lock: it is given the
//! next `seq`, written to the log, folded into the state and only then announced, so the log
//! always holds at least what any client was told, in the same order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{
    Mode, Redactor, format_timestamp, now_millis, slug_from_prompt, validate_session_name,
};
use crate::agent::tools::ToolContext;
use crate::agent::{self, EventSink, PermissionCheck, TurnSettings, new_item_id};
use crate::config::{
    ConfigError, ConfigSources, ConfigWarning, EditorLayer, PermissionMode, ProviderKind,
};
use crate::hooks::HookEvent;
use crate::provider::{ChatMessage, ChatRequest, ChatRole, ProviderError, build_provider};
use crate::review;
use crate::store::{self, EventLog, RepoStore, StoreError};
use crate::vocab::{
    Activity, Answer, Event, EventRecord, Finding, FindingSource, Item, ItemPhase, MessageRole,
    PlanDecision, PlanPhase, Question, QuestionKind, RunFacts, SessionSpec, SessionStatus,
    TokenUsage, ToolCallStatus, TurnEndReason,
};
use crate::vocab::{SessionState, check_transition};
use crate::workspace::{self, GitError, SESSION_BRANCH_PREFIX};

mod hooks;
mod loops;

pub use loops::{EXIT_SIGNAL, LoopRequest};

/// At most this many findings per review or verification (DESIGN.md).
const MAX_FINDINGS: usize = 20;

/// How long `stop` and shutdown wait for a session's task to notice and record the stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("unknown session {0:?}")]
    UnknownSession(String),
    #[error("cannot {operation} session {name:?}: it is {status}{hint}")]
    InvalidState {
        name: String,
        status: SessionStatus,
        operation: &'static str,
        hint: &'static str,
    },
    #[error("invalid `{field}`: {message}")]
    InvalidParams {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    ReadOnly(String),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("tether is shutting down; the session was not changed")]
    ShuttingDown,
    /// A git operation that cannot proceed; the repository is as it was.
    #[error("{0}")]
    GitRefused(String),
}

/// What `tether/session/create` (and `tether run`) asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateSession {
    pub prompt: String,
    pub mode: Mode,
    pub name: Option<String>,
    /// Any path inside the repository.
    pub root: PathBuf,
    pub base_branch: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub toggles: BTreeMap<String, bool>,
}

/// A session as lists and pickers show it (SessionInfo in docs/protocol.md).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub id: String,
    pub name: String,
    pub title: String,
    pub mode: Mode,
    pub status: SessionStatus,
    pub activity: Option<Activity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub provider: String,
    pub model: String,
    pub branch: String,
    pub base_branch: String,
    pub repo: PathBuf,
    pub worktree: PathBuf,
    pub created_at: String,
    pub updated_at: String,
    pub usage: TokenUsage,
    pub queued_messages: usize,
    pub last_seq: u64,
    pub read_only: bool,
}

/// A session's info with the events after a given `seq`, consistent with each other.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSnapshot {
    pub session: SessionInfo,
    pub events: Vec<EventRecord>,
}

/// One session's open findings.
#[derive(Debug, Clone)]
pub struct SessionFindings {
    pub session_id: String,
    pub name: String,
    pub repo: PathBuf,
    pub findings: Vec<(FindingSource, Finding)>,
}

/// An event as announced to subscribers (the LSP layer, `tether run`).
#[derive(Debug, Clone)]
pub struct AnnouncedEvent {
    pub session_id: Arc<str>,
    pub record: Arc<EventRecord>,
}

#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<ManagerInner>,
}

struct ManagerInner {
    home: PathBuf,
    /// Where session tasks run: the runtime the manager was made in. The LSP edge may serve
    /// on a thread of its own, so that requests never queue behind streaming sessions.
    runtime: tokio::runtime::Handle,
    sources: RwLock<ConfigSources>,
    repos: Mutex<HashMap<PathBuf, Arc<RepoStore>>>,
    sessions: dashmap::DashMap<String, Arc<SessionHandle>>,
    events: broadcast::Sender<AnnouncedEvent>,
    working_slots: Arc<Semaphore>,
    max_working: Mutex<usize>,
    /// One per repository: `git worktree add/remove` are not safe to run concurrently in one
    /// repository (one reads the other's half-made `.git/worktrees/<name>`).
    worktree_locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    shutting_down: AtomicBool,
    /// Runs lifecycle hooks; keeps their circuit breakers across sessions.
    hooks: crate::hooks::HookRunner,
}

struct SessionHandle {
    id: Arc<str>,
    store: Arc<RepoStore>,
    /// Read by lists without taking `inner`, which a session's task holds while it logs.
    summary: Arc<Summary>,
    inner: Mutex<SessionInner>,
}

struct SessionInner {
    state: SessionState,
    summary: Arc<Summary>,
    /// Applied to every event before it is written.
    redactor: Arc<Redactor>,
    store: Arc<RepoStore>,
    /// Open while the session is active; closed when it settles, so a thousand idle sessions
    /// hold no file descriptors.
    log: Option<EventLog>,
    /// The task driving the session, while there is one.
    driver: Option<Driver>,
    /// The question the agent waits on, while it waits.
    pending_question: Option<PendingQuestion>,
    /// The plan the agent waits on, while it waits.
    pending_plan: Option<PendingPlan>,
    /// The permission the agent waits on, while it waits.
    pending_permission: Option<PendingPermission>,
    /// The review and verification running now (one of each at most), to cancel them.
    running_reviews: HashMap<FindingSource, CancellationToken>,
    /// The loop running on the session, to stop it.
    active_loop: Option<CancellationToken>,
    /// The model a loop's turns use instead of the session's.
    model_override: Option<String>,
    /// How often hooks blocked this activation's turns (capped by `hooks::MAX_HOOK_BLOCKS`).
    hook_blocks: u32,
    /// How often `on_done` hooks kept this session from completing (same cap).
    done_blocks: u32,
}

struct PendingPermission {
    item: Item,
    reply: tokio::sync::oneshot::Sender<(String, Option<String>)>,
}

/// The decisions a permission request offers.
const PERMISSION_DECISIONS: &[&str] = &[
    "allow_once",
    "allow_always_session",
    "allow_always_project",
    "reject_once",
    "reject_always",
];

struct PendingPlan {
    item_id: String,
    phases: Vec<PlanPhase>,
    reply: tokio::sync::oneshot::Sender<PlanDecision>,
}

struct PendingQuestion {
    item_id: String,
    questions: Vec<Question>,
    reply: tokio::sync::oneshot::Sender<Vec<Answer>>,
}

struct Driver {
    cancel: CancellationToken,
    /// Why it is being stopped, for the `stopped` status event.
    stop_reason: Arc<Mutex<Option<String>>>,
    task: Option<JoinHandle<()>>,
}

/// A session's info as lists show it, kept current by every event. Streamed deltas only move
/// the two counters; other events rebuild the info (they are rare).
struct Summary {
    info: Mutex<Arc<SessionInfo>>,
    last_seq: AtomicU64,
    updated_at: AtomicU64,
}

impl Summary {
    fn new(state: &SessionState, read_only: bool) -> Arc<Summary> {
        Arc::new(Summary {
            info: Mutex::new(Arc::new(info_of(state, read_only))),
            last_seq: AtomicU64::new(state.last_seq),
            updated_at: AtomicU64::new(state.updated_at),
        })
    }

    fn record(&self, state: &SessionState, event: &Event) {
        let only_counters = matches!(
            event,
            Event::Delta { .. }
                | Event::Item {
                    phase: ItemPhase::Started,
                    ..
                }
        );
        if !only_counters {
            let read_only = lock(&self.info).read_only;
            let info = Arc::new(info_of(state, read_only));
            *lock(&self.info) = info;
        }
        self.updated_at.store(state.updated_at, Ordering::Release);
        self.last_seq.store(state.last_seq, Ordering::Release);
    }

    fn snapshot(&self) -> SessionInfo {
        let base = lock(&self.info).clone();
        let mut info = (*base).clone();
        info.last_seq = info.last_seq.max(self.last_seq.load(Ordering::Acquire));
        let updated_at = self.updated_at.load(Ordering::Acquire);
        info.updated_at = format_timestamp(updated_at);
        info
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a session's lock must not wedge every later request.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionInner {
    fn emit(
        &mut self,
        id: &Arc<str>,
        event: Event,
        events: &broadcast::Sender<AnnouncedEvent>,
    ) -> Result<u64, StoreError> {
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
        self.summary.record(&self.state, &record.event);
        let _ = events.send(AnnouncedEvent {
            session_id: id.clone(),
            record: Arc::new(record),
        });
        Ok(self.state.last_seq)
    }

    fn set_status(
        &mut self,
        id: &Arc<str>,
        status: SessionStatus,
        activity: Option<Activity>,
        reason: Option<String>,
        events: &broadcast::Sender<AnnouncedEvent>,
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
        self.emit(
            id,
            Event::Status {
                status,
                activity,
                reason,
            },
            events,
        )?;
        if !status.is_active() {
            self.settle()?;
        }
        Ok(())
    }

    /// Makes a settled session cheap to keep and quick to reload: fsyncs and closes its log
    /// and writes the snapshot the next start-up reads instead of replaying the log.
    fn settle(&mut self) -> Result<(), StoreError> {
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
    fn settle_pending(
        &mut self,
        id: &Arc<str>,
        item: Item,
        outcome: &str,
        events: &broadcast::Sender<AnnouncedEvent>,
    ) -> Result<(), SessionError> {
        let item_id = item.id().to_owned();
        self.emit(
            id,
            Event::Item {
                phase: ItemPhase::Completed,
                item,
            },
            events,
        )?;
        self.emit(
            id,
            Event::Resolved {
                item_id,
                outcome: outcome.to_owned(),
            },
            events,
        )?;
        self.set_status(
            id,
            SessionStatus::Running,
            Some(Activity::Working),
            None,
            events,
        )
    }

    fn invalid(&self, operation: &'static str, hint: &'static str) -> SessionError {
        SessionError::InvalidState {
            name: self.state.spec.name.clone(),
            status: self.state.status,
            operation,
            hint,
        }
    }
}

impl SessionHandle {
    fn new(
        id: Arc<str>,
        store: Arc<RepoStore>,
        state: SessionState,
        log: Option<EventLog>,
    ) -> Self {
        let summary = Summary::new(&state, !store.is_writable());
        SessionHandle {
            id,
            store: store.clone(),
            summary: summary.clone(),
            inner: Mutex::new(SessionInner {
                state,
                summary,
                // Built-in patterns until the session's configuration adds its own.
                redactor: Redactor::built_in(),
                store,
                log,
                driver: None,
                pending_question: None,
                pending_plan: None,
                pending_permission: None,
                running_reviews: HashMap::new(),
                active_loop: None,
                model_override: None,
                hook_blocks: 0,
                done_blocks: 0,
            }),
        }
    }

    fn info(&self) -> SessionInfo {
        self.summary.snapshot()
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
        model: spec.model.clone(),
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
    }
}

/// Filters for `list`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<SessionStatus>,
    pub mode: Option<Mode>,
    /// Matched, case-insensitively, against the name and the title.
    pub query: Option<String>,
}

impl SessionManager {
    /// A manager keeping its state under `home` (see [`store::state_home`]). Must be called
    /// inside a Tokio runtime: the session tasks run there.
    pub fn new(home: PathBuf, sources: ConfigSources) -> Result<SessionManager, SessionError> {
        // A broken settings file must not keep the editor's server from starting: every
        // session operation reports it (naming the file) until it is fixed.
        let max_working = match sources.resolve(None) {
            Ok(config) => config.session.max_working.max(1),
            Err(error) => {
                tracing::error!("{error}");
                crate::config::SessionSettings::default().max_working
            }
        };
        let (events, _) = broadcast::channel(16_384);
        Ok(SessionManager {
            inner: Arc::new(ManagerInner {
                home,
                runtime: tokio::runtime::Handle::current(),
                sources: RwLock::new(sources),
                repos: Mutex::new(HashMap::new()),
                sessions: dashmap::DashMap::new(),
                events,
                working_slots: Arc::new(Semaphore::new(max_working)),
                max_working: Mutex::new(max_working),
                worktree_locks: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                hooks: Default::default(),
            }),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AnnouncedEvent> {
        self.inner.events.subscribe()
    }

    /// Replaces one of the editor's layers of settings (`initializationOptions`, or the
    /// latest `didChangeConfiguration`), and resizes the working cap. Settings that are not
    /// an object, or that do not parse, are refused and the layers stay as they were.
    pub fn set_editor_layer(
        &self,
        layer: EditorLayer,
        settings: serde_json::Value,
    ) -> Result<(), SessionError> {
        let mut sources = self.sources();
        // Settings files that were already broken are not the new layer's fault: it is kept,
        // and the files' error is reported where sessions need them.
        let broken_before = sources.resolve(None).is_err();
        sources.set_editor_layer(layer, settings)?;
        let resolved = match sources.resolve(None) {
            Err(error) if !broken_before => return Err(error.into()),
            resolved => resolved,
        };
        *self
            .inner
            .sources
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sources;
        if let Ok(config) = resolved {
            self.resize_working_slots(config.session.max_working.max(1));
        }
        Ok(())
    }

    fn resize_working_slots(&self, wanted: usize) {
        let mut current = lock(&self.inner.max_working);
        if wanted > *current {
            self.inner.working_slots.add_permits(wanted - *current);
            *current = wanted;
        } else if wanted < *current {
            // Only free slots can be taken back; busy ones shrink as they free up.
            let removed = self.inner.working_slots.forget_permits(*current - wanted);
            *current -= removed;
        }
    }

    /// A session's own temp dir: its programs' `TMPDIR`, writable in the sandbox.
    fn temp_dir(&self, session_id: &str) -> PathBuf {
        self.inner.home.join("tmp").join(session_id)
    }

    /// The sandbox a session's commands and hooks run in.
    fn jail(
        &self,
        store: &RepoStore,
        spec: &SessionSpec,
        worktree: &Path,
        config: &crate::config::Config,
    ) -> crate::sandbox::Jail {
        crate::sandbox::Jail {
            mode: config.session.sandbox,
            worktree: worktree.to_owned(),
            temp_dir: self.temp_dir(&spec.id),
            network: config.session.network,
            hidden_env: config.secret_variables(),
            owner: Arc::from(spec.id.as_str()),
            records: store.processes_dir(),
        }
    }

    /// The lock that serializes worktree changes in `repo`.
    fn worktree_lock(&self, repo: &Path) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.inner.worktree_locks)
            .entry(repo.to_owned())
            .or_default()
            .clone()
    }

    fn sources(&self) -> ConfigSources {
        self.inner
            .sources
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The repository containing `path`, and what its `.tether/config.toml` tried that was
    /// ignored (settings looser than the user's).
    pub fn config_warnings(
        &self,
        path: &Path,
    ) -> Result<(PathBuf, Vec<ConfigWarning>), SessionError> {
        let repository = workspace::discover(path)?;
        let resolved = self
            .sources()
            .resolve_with_warnings(Some(&repository.root))?;
        Ok((repository.root, resolved.warnings))
    }

    /// Opens the store of the repository containing `path`, rebuilding its sessions from
    /// their logs the first time. Sessions a crash interrupted come back `stopped`.
    pub fn open_repository(&self, path: &Path) -> Result<Arc<RepoStore>, SessionError> {
        let repository = workspace::discover(path)?;
        self.open_store(&repository.root)
    }

    fn open_store(&self, repo_root: &Path) -> Result<Arc<RepoStore>, SessionError> {
        let mut repos = lock(&self.inner.repos);
        if let Some(store) = repos.get(repo_root) {
            return Ok(store.clone());
        }
        let store = Arc::new(RepoStore::open(&self.inner.home, repo_root)?);
        if !store.is_writable() {
            tracing::warn!("{}", store.read_only_reason());
        } else {
            // The lock is ours, so whoever held it is gone: end what its commands left.
            let ended = crate::sandbox::end_leftovers(&store.processes_dir());
            if ended > 0 {
                tracing::warn!(
                    "{}: ended {ended} command group(s) a previous tether left running",
                    repo_root.display()
                );
            }
        }
        for loaded in store.load_all()? {
            let id: Arc<str> = Arc::from(loaded.state.spec.id.as_str());
            let handle = SessionHandle::new(id.clone(), store.clone(), loaded.state, None);
            if store.is_writable() {
                let mut inner = lock(&handle.inner);
                let replayed = inner.state.history.is_some();
                if !inner.state.open_runs.is_empty() {
                    close_interrupted_reviews(&id, &mut inner, &self.inner.events)?;
                }
                if inner.state.status.is_active() {
                    recover_interrupted(&id, &mut inner, &self.inner.events)?;
                } else if replayed {
                    // No usable snapshot: leave one, so the next start need not replay, and
                    // keep no conversation in memory for a session nobody is using.
                    inner.settle()?;
                    inner.state.history = None;
                }
            }
            self.inner.sessions.insert(id.to_string(), Arc::new(handle));
        }
        repos.insert(repo_root.to_owned(), store.clone());
        Ok(store)
    }

    fn handle(&self, id: &str) -> Result<Arc<SessionHandle>, SessionError> {
        self.inner
            .sessions
            .get(id)
            .map(|entry| entry.value().clone())
            .ok_or_else(|| SessionError::UnknownSession(id.to_owned()))
    }

    fn writable_handle(&self, id: &str) -> Result<Arc<SessionHandle>, SessionError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(SessionError::ShuttingDown);
        }
        let handle = self.handle(id)?;
        if !handle.store.is_writable() {
            return Err(SessionError::ReadOnly(handle.store.read_only_reason()));
        }
        Ok(handle)
    }

    /// Creates a session and starts it; answers at once (the turn streams as events).
    pub async fn create(&self, request: CreateSession) -> Result<SessionInfo, SessionError> {
        if request.prompt.trim().is_empty() {
            return Err(SessionError::InvalidParams {
                field: "prompt",
                message: "a session needs a prompt".to_owned(),
            });
        }
        let title = request
            .prompt
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .chars()
            .take(80)
            .collect();
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
        let info = self
            .new_session(NewSession {
                root: request.root,
                preferred_name,
                exact_name: request.name.is_some(),
                title,
                mode: request.mode,
                base_branch: request.base_branch,
                provider: request.provider,
                model: request.model,
                temperature: None,
                max_tokens: None,
                toggles: request.toggles,
                cloned_from: None,
                prompt: Some(request.prompt),
            })
            .await?;
        Ok(info)
    }

    /// Records and starts a new session; returns its info as it was born (`pending`: its
    /// task may have moved it on by the time the caller could read it again).
    async fn new_session(&self, new: NewSession) -> Result<SessionInfo, SessionError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(SessionError::ShuttingDown);
        }
        let repository = workspace::discover(&new.root)?;
        let store = self.open_store(&repository.root)?;
        if !store.is_writable() {
            return Err(SessionError::ReadOnly(store.read_only_reason()));
        }
        let crate::config::Resolved {
            config,
            warnings: config_warnings,
        } = self
            .sources()
            .resolve_with_warnings(Some(&repository.root))?;
        let provider = new
            .provider
            .clone()
            .unwrap_or_else(|| config.default_provider_name());
        let provider_config = config.provider(&provider)?;
        if provider_config.kind == ProviderKind::Acp {
            // Fail now, not after a worktree was made.
            build_provider(&provider, provider_config)?;
        }
        let model = new
            .model
            .clone()
            .or_else(|| provider_config.model.clone())
            .ok_or_else(|| SessionError::InvalidParams {
                field: "model",
                message: format!("provider {provider:?} sets no default model; name one"),
            })?;
        let base_branch = repository.resolve_base_branch(new.base_branch.as_deref())?;
        let worktrees = config
            .session
            .worktree_dir
            .clone()
            .unwrap_or_else(store::default_worktrees_home)
            .join(store::repo_key(&repository.root));

        // Names are unique per repository: no other session, branch or folder may have it.
        let taken = |name: &str| -> Result<bool, SessionError> {
            let in_use = self.inner.sessions.iter().any(|entry| {
                let inner = lock(&entry.value().inner);
                inner.state.spec.repo == repository.root && inner.state.spec.name == name
            });
            Ok(in_use
                || repository.branch_exists(&format!("{SESSION_BRANCH_PREFIX}{name}"))?
                || worktrees.join(name).exists())
        };
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

        let id = uuid::Uuid::now_v7().simple().to_string();
        let spec = SessionSpec {
            id: id.clone(),
            branch: format!("{SESSION_BRANCH_PREFIX}{name}"),
            worktree: worktrees.join(&name),
            name,
            title: new.title,
            mode: new.mode,
            repo: repository.root.clone(),
            base_branch,
            provider,
            model,
            temperature: new.temperature.or(provider_config.temperature),
            max_tokens: new.max_tokens.or(provider_config.max_tokens),
            toggles: new.toggles,
            created_at: now_millis(),
            cloned_from: new.cloned_from,
        };
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
        let handle = Arc::new(SessionHandle::new(id.clone(), store, state, Some(log)));
        let mut inner = lock(&handle.inner);
        inner.redactor = redactor_for(&config)?;
        inner.emit(&id, created.event, &self.inner.events)?;
        // What the repository's file tried and was refused, in the session itself so that
        // every client and the transcript show it (before the prompt: the agent gets it as
        // a note with the prompt, so it knows why, say, it has no network).
        for warning in config_warnings {
            inner.emit(
                &id,
                Event::Item {
                    phase: ItemPhase::Completed,
                    item: Item::Message {
                        id: new_item_id(),
                        role: MessageRole::System,
                        text: warning.to_string(),
                        interrupted: false,
                    },
                },
                &self.inner.events,
            )?;
        }
        if let Some(prompt) = new.prompt {
            inner.emit(
                &id,
                Event::Item {
                    phase: ItemPhase::Completed,
                    item: Item::Message {
                        id: new_item_id(),
                        role: MessageRole::User,
                        text: prompt,
                        interrupted: false,
                    },
                },
                &self.inner.events,
            )?;
        }
        self.inner.sessions.insert(id.to_string(), handle.clone());
        self.start_driver(&handle, &mut inner, true)?;
        let info = info_of(&inner.state, false);
        drop(inner);
        Ok(info)
    }

    /// Moves the session to `pending` (`fresh`: it was just created) and starts the task
    /// that drives it.
    fn start_driver(
        &self,
        handle: &Arc<SessionHandle>,
        inner: &mut SessionInner,
        fresh: bool,
    ) -> Result<(), SessionError> {
        if fresh {
            // A new session is born pending; its first status event says so explicitly.
            inner.emit(
                &handle.id,
                Event::Status {
                    status: SessionStatus::Pending,
                    activity: None,
                    reason: None,
                },
                &self.inner.events,
            )?;
        } else {
            inner.set_status(
                &handle.id,
                SessionStatus::Pending,
                None,
                None,
                &self.inner.events,
            )?;
        }
        let cancel = CancellationToken::new();
        let stop_reason = Arc::new(Mutex::new(None));
        let task = self.inner.runtime.spawn(drive(
            self.clone(),
            handle.clone(),
            cancel.clone(),
            stop_reason.clone(),
        ));
        inner.driver = Some(Driver {
            cancel,
            stop_reason,
            task: Some(task),
        });
        Ok(())
    }

    pub fn list(&self, filter: &ListFilter) -> Vec<SessionInfo> {
        let query = filter.query.as_ref().map(|query| query.to_lowercase());
        let mut sessions: Vec<SessionInfo> = self
            .inner
            .sessions
            .iter()
            .map(|entry| entry.value().info())
            .filter(|info| filter.status.is_none_or(|status| info.status == status))
            .filter(|info| filter.mode.is_none_or(|mode| info.mode == mode))
            .filter(|info| {
                query.as_ref().is_none_or(|query| {
                    info.name.to_lowercase().contains(query)
                        || info.title.to_lowercase().contains(query)
                })
            })
            .collect();
        sessions.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        sessions
    }

    /// The questions, plans and permissions a session waits on, as started items.
    pub fn pending_items(&self, id: &str) -> Result<Vec<Item>, SessionError> {
        let handle = self.handle(id)?;
        let inner = lock(&handle.inner);
        Ok(inner.state.open_questions.values().cloned().collect())
    }

    pub fn info(&self, id: &str) -> Result<SessionInfo, SessionError> {
        Ok(self.handle(id)?.info())
    }

    /// The session and its events after `since`, read from the log.
    pub fn get(&self, id: &str, since: u64) -> Result<SessionSnapshot, SessionError> {
        let handle = self.handle(id)?;
        let session = handle.info();
        let events = handle
            .store
            .read_events(&handle.id, since)?
            .into_iter()
            .filter(|record| record.seq <= session.last_seq)
            .collect();
        Ok(SessionSnapshot { session, events })
    }

    /// Sends a follow-up. Returns whether it was queued behind a turn in progress (`true`)
    /// or starts a turn now (`false`).
    pub fn send(&self, id: &str, text: String) -> Result<bool, SessionError> {
        if text.trim().is_empty() {
            return Err(SessionError::InvalidParams {
                field: "text",
                message: "the message is empty".to_owned(),
            });
        }
        let handle = self.writable_handle(id)?;
        let mut inner = lock(&handle.inner);
        let status = inner.state.status;
        let queued = match status {
            SessionStatus::Pending | SessionStatus::Creating | SessionStatus::Running => true,
            SessionStatus::Waiting => false,
            SessionStatus::Stopped | SessionStatus::Failed => {
                return Err(inner.invalid("send to", "; resume it (with this text) instead"));
            }
            SessionStatus::Completed => {
                return Err(inner.invalid("send to", "; clone it to continue the work"));
            }
        };
        inner.emit(
            &handle.id,
            Event::FollowUpQueued {
                item_id: new_item_id(),
                text,
            },
            &self.inner.events,
        )?;
        if !queued {
            self.start_driver(&handle, &mut inner, false)?;
        }
        Ok(queued)
    }

    /// Stops a session gracefully; it stays resumable. Returns once the stop is recorded.
    pub async fn stop(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let task = {
            let mut inner = lock(&handle.inner);
            match inner.state.status {
                SessionStatus::Waiting => {
                    inner.set_status(
                        &handle.id,
                        SessionStatus::Stopped,
                        None,
                        Some("stopped by the user".to_owned()),
                        &self.inner.events,
                    )?;
                    None
                }
                status if status.is_active() => inner.driver.as_mut().and_then(|driver| {
                    *lock(&driver.stop_reason) = Some("stopped by the user".to_owned());
                    driver.cancel.cancel();
                    driver.task.take()
                }),
                _ => return Err(inner.invalid("stop", "; it is not working")),
            }
        };
        if let Some(task) = task {
            let _ = tokio::time::timeout(STOP_GRACE, task).await;
        }
        let manager = self.clone();
        let stopped = handle.clone();
        self.inner.runtime.spawn(async move {
            let runs = manager.run_hooks(&stopped, HookEvent::OnCancel).await;
            if let Err(error) = manager.tell_agent(&stopped, &runs, false) {
                tracing::warn!("session {}: {error}", stopped.id);
            }
        });
        Ok(handle.info())
    }

    /// Starts a stopped or failed session again, with an optional new message.
    pub fn resume(&self, id: &str, text: Option<String>) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let mut inner = lock(&handle.inner);
        if !matches!(
            inner.state.status,
            SessionStatus::Stopped | SessionStatus::Failed
        ) {
            let hint = if inner.state.status == SessionStatus::Waiting {
                "; send it a message instead"
            } else {
                ""
            };
            return Err(inner.invalid("resume", hint));
        }
        if let Some(text) = text.filter(|text| !text.trim().is_empty()) {
            inner.emit(
                &handle.id,
                Event::FollowUpQueued {
                    item_id: new_item_id(),
                    text,
                },
                &self.inner.events,
            )?;
        }
        self.start_driver(&handle, &mut inner, false)?;
        Ok(info_of(&inner.state, false))
    }

    /// Marks a session done.
    pub fn complete(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let mut inner = lock(&handle.inner);
        if !matches!(
            inner.state.status,
            SessionStatus::Waiting | SessionStatus::Stopped | SessionStatus::Failed
        ) {
            return Err(inner.invalid("complete", "; stop it first"));
        }
        inner.set_status(
            &handle.id,
            SessionStatus::Completed,
            None,
            None,
            &self.inner.events,
        )?;
        Ok(info_of(&inner.state, false))
    }

    /// Answers the open question `question_id`; the turn goes on with the answers.
    pub fn answer(
        &self,
        id: &str,
        question_id: &str,
        answers: Vec<Answer>,
    ) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let mut inner = lock(&handle.inner);
        let is_permission = inner
            .pending_permission
            .as_ref()
            .is_some_and(|pending| pending.item.id() == question_id);
        if is_permission {
            return self.decide_permission(&handle, &mut inner, answers);
        }
        let open = inner
            .pending_question
            .as_ref()
            .is_some_and(|pending| pending.item_id == question_id);
        if !open {
            return Err(SessionError::InvalidParams {
                field: "questionId",
                message: format!(
                    "question {question_id:?} is not open in session {:?} (already answered, cancelled, or never asked)",
                    inner.state.spec.name
                ),
            });
        }
        let Some(pending) = inner.pending_question.take() else {
            return Err(inner.invalid("answer", ""));
        };
        if let Err(message) = check_answers(&pending.questions, &answers) {
            inner.pending_question = Some(pending);
            return Err(SessionError::InvalidParams {
                field: "answers",
                message,
            });
        }
        inner.settle_pending(
            &handle.id,
            Item::Question {
                id: pending.item_id,
                questions: pending.questions,
                answers: Some(answers.clone()),
            },
            "answered",
            &self.inner.events,
        )?;
        // The turn may have been stopped in the meantime; then nobody listens, which is fine.
        let _ = pending.reply.send(answers);
        Ok(info_of(&inner.state, false))
    }

    /// Settles the open permission request with `answers`: `[decision]` or
    /// `[decision, feedback]`.
    fn decide_permission(
        &self,
        handle: &SessionHandle,
        inner: &mut SessionInner,
        answers: Vec<Answer>,
    ) -> Result<SessionInfo, SessionError> {
        let mut answers = answers.into_iter();
        let decision = match answers.next() {
            Some(Answer::Text(decision)) if PERMISSION_DECISIONS.contains(&decision.as_str()) => {
                decision
            }
            _ => {
                return Err(SessionError::InvalidParams {
                    field: "answers",
                    message: format!(
                        "a permission takes one of {} (then, optionally, feedback for the agent)",
                        PERMISSION_DECISIONS.join(", ")
                    ),
                });
            }
        };
        let feedback = match answers.next() {
            Some(Answer::Text(text)) if !text.trim().is_empty() => Some(text),
            _ => None,
        };
        let Some(pending) = inner.pending_permission.take() else {
            return Err(inner.invalid("answer", ""));
        };
        let Item::Permission {
            id,
            tool,
            input,
            scope,
            decisions,
            ..
        } = pending.item
        else {
            return Err(inner.invalid("answer", ""));
        };
        if decision == "allow_always_project" {
            handle.store.add_project_grant(&scope)?;
        }
        inner.settle_pending(
            &handle.id,
            Item::Permission {
                id,
                tool,
                input,
                scope,
                decisions,
                decision: Some(decision.clone()),
                feedback: feedback.clone(),
            },
            &decision,
            &self.inner.events,
        )?;
        let _ = pending.reply.send((decision, feedback));
        Ok(info_of(&inner.state, false))
    }

    /// Approves or rejects (with feedback) the open plan `plan_id`; the turn goes on.
    pub fn decide_plan(
        &self,
        id: &str,
        plan_id: &str,
        decision: PlanDecision,
    ) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let mut inner = lock(&handle.inner);
        let pending = match inner.pending_plan.take() {
            Some(pending) if pending.item_id == plan_id => pending,
            other => {
                inner.pending_plan = other;
                return Err(SessionError::InvalidParams {
                    field: "planId",
                    message: format!(
                        "plan {plan_id:?} is not open in session {:?} (already decided, cancelled, or never proposed)",
                        inner.state.spec.name
                    ),
                });
            }
        };
        let outcome = if decision.approved {
            "approved"
        } else {
            "rejected"
        };
        inner.settle_pending(
            &handle.id,
            Item::Plan {
                id: pending.item_id,
                phases: pending.phases,
                decision: Some(decision.clone()),
            },
            outcome,
            &self.inner.events,
        )?;
        let _ = pending.reply.send(decision);
        Ok(info_of(&inner.state, false))
    }

    /// The session's changes against its base branch, untracked files included.
    pub async fn diff(&self, id: &str) -> Result<Vec<workspace::FileDiff>, SessionError> {
        let handle = self.handle(id)?;
        let (spec, ready) = {
            let inner = lock(&handle.inner);
            (inner.state.spec.clone(), inner.state.worktree_ready)
        };
        if !ready || !spec.worktree.exists() {
            return Ok(Vec::new());
        }
        // An index of its own, per diff: a diff may be asked for while a command uses the
        // session's index, and while another diff (a review, a hook, apply) runs.
        let index = private_index(self, &spec)
            .with_file_name(format!("tether-diff-index-{}", new_item_id()));
        if let Some(parent) = index.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let worktree = workspace::SessionWorktree::pin(&spec.repo, &spec.worktree)?;
        let files = checkpoints(&spec, &worktree, &index)
            .diff(&spec.base_branch)
            .await;
        let _ = std::fs::remove_file(&index);
        Ok(files?)
    }

    /// Puts the worktree back to checkpoint `name` (`turn-<n>`, or the `before-rewind-<k>` a
    /// rewind leaves, which undoes it). Returns the checkpoint that undoes this rewind.
    pub async fn rewind(&self, id: &str, name: &str) -> Result<String, SessionError> {
        let handle = self.writable_handle(id)?;
        let (spec, rewinds) = {
            let inner = lock(&handle.inner);
            if !matches!(
                inner.state.status,
                SessionStatus::Waiting | SessionStatus::Stopped | SessionStatus::Failed
            ) {
                return Err(inner.invalid("rewind", "; stop it first"));
            }
            (inner.state.spec.clone(), inner.state.rewinds)
        };
        let index = private_index(self, &spec);
        if let Some(parent) = index.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let worktree = workspace::SessionWorktree::pin(&spec.repo, &spec.worktree)?;
        let checkpoints = checkpoints(&spec, &worktree, &index);
        if !checkpoints.exists(name).await {
            return Err(SessionError::InvalidParams {
                field: "checkpoint",
                message: format!("session {:?} has no checkpoint {name:?}", spec.name),
            });
        }
        let undo = format!("before-rewind-{}", rewinds + 1);
        let commit = checkpoints.record(&undo).await?;
        checkpoints.restore(name).await?;
        let mut inner = lock(&handle.inner);
        inner.emit(
            &handle.id,
            Event::Checkpoint {
                name: undo.clone(),
                commit,
            },
            &self.inner.events,
        )?;
        inner.emit(
            &handle.id,
            Event::Rewound {
                name: name.to_owned(),
                undo: undo.clone(),
            },
            &self.inner.events,
        )?;
        Ok(undo)
    }

    /// Clears the model's conversation (the transcript stays), keeping `summary` if given.
    pub fn reset_context(
        &self,
        id: &str,
        summary: Option<String>,
    ) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let mut inner = lock(&handle.inner);
        if !matches!(
            inner.state.status,
            SessionStatus::Waiting | SessionStatus::Stopped | SessionStatus::Failed
        ) {
            return Err(inner.invalid("reset the context of", "; stop it first"));
        }
        let summary = summary.filter(|summary| !summary.trim().is_empty());
        inner.emit(
            &handle.id,
            Event::ContextReset { summary },
            &self.inner.events,
        )?;
        Ok(info_of(&inner.state, false))
    }

    /// Records a note from tether (what the user applied or rejected, say): shown in the
    /// session's history and given to the agent with the next message it gets.
    pub fn note(&self, id: &str, text: String) -> Result<(), SessionError> {
        let handle = self.writable_handle(id)?;
        self.emit_item(
            &handle,
            ItemPhase::Completed,
            Item::Message {
                id: new_item_id(),
                role: MessageRole::System,
                text,
                interrupted: false,
            },
        )
    }

    /// Logs and announces one item event of a session.
    fn emit_item(
        &self,
        handle: &SessionHandle,
        phase: ItemPhase,
        item: Item,
    ) -> Result<(), SessionError> {
        lock(&handle.inner).emit(&handle.id, Event::Item { phase, item }, &self.inner.events)?;
        Ok(())
    }

    /// Records what a review or verification found; it supersedes the last one's findings.
    /// Returns the item's id.
    pub fn record_findings(
        &self,
        id: &str,
        source: FindingSource,
        status: String,
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
        let mut inner = lock(&handle.inner);
        let item_id = new_item_id();
        let item = review_item(
            source,
            item_id.clone(),
            &status,
            findings,
            RunFacts::default(),
        );
        inner.emit(
            &handle.id,
            Event::Item {
                phase: ItemPhase::Completed,
                item,
            },
            &self.inner.events,
        )?;
        Ok(item_id)
    }

    /// Starts a verification or code review of the session's changes; answers at once with
    /// the run's item id (the run is a `review` / `verification` item, `running` until done).
    pub fn start_review(&self, id: &str, kind: FindingSource) -> Result<String, SessionError> {
        let handle = self.writable_handle(id)?;
        let (item_id, cancel) = self.begin_review(&handle, kind)?;
        let manager = self.clone();
        let run_id = item_id.clone();
        self.inner.runtime.spawn(async move {
            manager.finish_review(&handle, kind, run_id, cancel).await;
        });
        Ok(item_id)
    }

    /// Cancels the running review or verification of a session.
    pub fn cancel_review(&self, id: &str, kind: FindingSource) -> Result<(), SessionError> {
        let handle = self.writable_handle(id)?;
        let inner = lock(&handle.inner);
        match inner.running_reviews.get(&kind) {
            Some(cancel) => {
                cancel.cancel();
                Ok(())
            }
            None => Err(inner.invalid(
                "cancel a review or verification of",
                "; none of that kind is running",
            )),
        }
    }

    /// Verification, then review, after a develop turn that changed files, unless settings
    /// or the session's toggles turn them off. Registered under the caller's lock, before
    /// the session shows `waiting`, so that whoever sees `waiting` also sees them running.
    fn register_automatic_reviews(
        &self,
        id: &Arc<str>,
        inner: &mut SessionInner,
    ) -> Vec<(FindingSource, String, CancellationToken)> {
        let spec = inner.state.spec.clone();
        let Ok(config) = self.sources().resolve(Some(&spec.repo)) else {
            return Vec::new();
        };
        if !config.review.auto || spec.mode != Mode::Develop {
            return Vec::new();
        }
        let mut registered = Vec::new();
        for (kind, toggle) in [
            (FindingSource::Verification, "verification"),
            (FindingSource::Review, "review"),
        ] {
            if spec.toggles.get(toggle) == Some(&false) {
                continue;
            }
            // The first runs now; the next waits for it.
            let status = if registered.is_empty() {
                "running"
            } else {
                "pending"
            };
            match self.begin_review_locked(id, inner, kind, status) {
                Ok((item_id, cancel)) => registered.push((kind, item_id, cancel)),
                Err(error) => tracing::info!("session {id}: {error}"),
            }
        }
        registered
    }

    /// Runs registered reviews one after the other.
    fn run_reviews(
        &self,
        handle: &Arc<SessionHandle>,
        runs: Vec<(FindingSource, String, CancellationToken)>,
    ) {
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

    /// Whether a review or verification of the session is running or waiting to.
    pub fn reviews_running(&self, id: &str) -> bool {
        self.handle(id)
            .is_ok_and(|handle| !lock(&handle.inner).running_reviews.is_empty())
    }

    /// Records the run as started and registers it; one of each kind at a time.
    fn begin_review(
        &self,
        handle: &Arc<SessionHandle>,
        kind: FindingSource,
    ) -> Result<(String, CancellationToken), SessionError> {
        let mut inner = lock(&handle.inner);
        self.begin_review_locked(&handle.id, &mut inner, kind, "running")
    }

    fn begin_review_locked(
        &self,
        id: &Arc<str>,
        inner: &mut SessionInner,
        kind: FindingSource,
        status: &str,
    ) -> Result<(String, CancellationToken), SessionError> {
        if inner.running_reviews.contains_key(&kind) {
            return Err(inner.invalid(
                match kind {
                    FindingSource::Review => "start a second review of",
                    FindingSource::Verification => "start a second verification of",
                },
                "; one is running: wait for it or cancel it",
            ));
        }
        let item_id = new_item_id();
        inner.emit(
            id,
            Event::Item {
                phase: ItemPhase::Started,
                item: review_item(
                    kind,
                    item_id.clone(),
                    status,
                    Vec::new(),
                    RunFacts::default(),
                ),
            },
            &self.inner.events,
        )?;
        let cancel = CancellationToken::new();
        inner.running_reviews.insert(kind, cancel.clone());
        Ok((item_id, cancel))
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
            Ok(None) => ("skipped", Vec::new(), RunFacts::default(), None),
            Ok(Some((outcome, price))) => {
                let mut usage = outcome.usage;
                usage.cost_usd = price.map_or(0.0, |price| price.cost(&usage));
                let facts = RunFacts {
                    cost_usd: Some(usage.cost_usd),
                    ..RunFacts::default()
                };
                ("completed", outcome.findings, facts, Some(usage))
            }
            Err(failure) => {
                let (status, error) = match failure {
                    review::Failure::Canceled => ("canceled", None),
                    review::Failure::TimedOut => (
                        "failed",
                        Some("the run took longer than review.timeout_secs".to_owned()),
                    ),
                    review::Failure::Failed(error) => ("failed", Some(error)),
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
        let mut inner = lock(&handle.inner);
        inner.running_reviews.remove(&kind);
        if let Some(usage) = usage.filter(|usage| usage.input_tokens + usage.output_tokens > 0) {
            let _ = inner.emit(
                &handle.id,
                Event::Usage {
                    item_id: Some(item_id.clone()),
                    usage,
                },
                &self.inner.events,
            );
        }
        let result = inner.emit(
            &handle.id,
            Event::Item {
                phase: ItemPhase::Completed,
                item: review_item(kind, item_id, status, findings, facts),
            },
            &self.inner.events,
        );
        if let Err(error) = result {
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
        let spec = lock(&handle.inner).state.spec.clone();
        let diff = self.diff(&spec.id).await.map_err(|error| failed(&error))?;
        if diff.is_empty() {
            return Ok(None);
        }
        let patch: Vec<&str> = diff.iter().map(|file| file.patch.as_str()).collect();
        let task = self
            .first_prompt(&spec.id)
            .unwrap_or_else(|| spec.title.clone());
        let config = self
            .sources()
            .resolve(Some(&spec.repo))
            .map_err(|error| failed(&error))?;
        let provider_name = config
            .review
            .provider
            .clone()
            .unwrap_or_else(|| spec.provider.clone());
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

    /// Runs a git operation on the session's branch (status any time; the others only while
    /// the agent is not working). Answers with the status after it, and the commit made.
    pub async fn git(
        &self,
        id: &str,
        operation: workspace::operations::Operation,
        paths: Option<&[String]>,
        message: Option<&str>,
        branch: Option<&str>,
    ) -> Result<serde_json::Value, SessionError> {
        use workspace::operations::{Operation, Refusal};
        let handle = if operation.writes() {
            self.writable_handle(id)?
        } else {
            self.handle(id)?
        };
        let spec = {
            let inner = lock(&handle.inner);
            if operation.writes() && inner.state.status.is_active() {
                return Err(inner.invalid(
                    "run a git operation on",
                    "; wait for the turn to end or stop the session",
                ));
            }
            if !inner.state.worktree_ready || !inner.state.spec.worktree.exists() {
                return Err(inner.invalid("run a git operation on", "; it has no worktree"));
            }
            inner.state.spec.clone()
        };
        let worktree = workspace::SessionWorktree::pin(&spec.repo, &spec.worktree)?;
        let git = workspace::operations::SessionGit {
            worktree: &worktree,
            repo: &spec.repo,
            branch: &spec.branch,
            base_branch: &spec.base_branch,
        };
        let refusal = |refusal: Refusal| match refusal {
            Refusal::Refused(message) => SessionError::GitRefused(message),
            Refusal::Git(error) => SessionError::Git(error),
        };
        git.pathspecs(paths).map_err(refusal)?;
        let mut commit = None;
        {
            // Merging into the base touches the user's repository: one git writer at a time.
            let worktree_lock = self.worktree_lock(&spec.repo);
            let _serialized = worktree_lock.lock().await;
            match operation {
                Operation::Status => {}
                Operation::Stage => git.stage(paths).await.map_err(refusal)?,
                Operation::Unstage => git.unstage(paths).await.map_err(refusal)?,
                Operation::Discard => git.discard(paths).await.map_err(refusal)?,
                Operation::Commit => commit = Some(git.commit(message).await.map_err(refusal)?),
                Operation::Push => git.push().await.map_err(refusal)?,
                Operation::Pull => git.pull().await.map_err(refusal)?,
                Operation::PullBranch => git.pull_branch(branch).await.map_err(refusal)?,
                Operation::MergeToBase => git.merge_to_base().await.map_err(refusal)?,
                Operation::PullFromBase => git.pull_from_base().await.map_err(refusal)?,
            }
        }
        let status = git.status().await.map_err(refusal)?;
        let mut answer = serde_json::json!({ "status": status });
        if let Some(commit) = commit {
            answer["commit"] = serde_json::Value::String(commit);
        }
        Ok(answer)
    }

    /// The findings of every session that are not dismissed.
    pub fn open_findings(&self) -> Vec<SessionFindings> {
        self.inner
            .sessions
            .iter()
            .filter_map(|entry| {
                let handle = entry.value();
                let inner = lock(&handle.inner);
                (!inner.state.findings.is_empty()).then(|| SessionFindings {
                    session_id: handle.id.to_string(),
                    name: inner.state.spec.name.clone(),
                    repo: inner.state.spec.repo.clone(),
                    findings: inner.state.findings.values().cloned().collect(),
                })
            })
            .collect()
    }

    /// The findings of one session that are not dismissed.
    pub fn session_findings(
        &self,
        id: &str,
    ) -> Result<Vec<(FindingSource, Finding)>, SessionError> {
        let handle = self.handle(id)?;
        let inner = lock(&handle.inner);
        Ok(inner.state.findings.values().cloned().collect())
    }

    /// The open finding `finding_id` of a session.
    pub fn finding(
        &self,
        id: &str,
        finding_id: &str,
    ) -> Result<(FindingSource, Finding), SessionError> {
        let handle = self.handle(id)?;
        let inner = lock(&handle.inner);
        inner
            .state
            .findings
            .get(finding_id)
            .cloned()
            .ok_or_else(|| SessionError::InvalidParams {
                field: "findingId",
                message: format!(
                    "{finding_id:?} is not an open finding of {} (dismissed, or superseded by a newer review)",
                    inner.state.spec.name
                ),
            })
    }

    /// Dismisses a finding: its diagnostic goes away, and it stays dismissed.
    pub fn dismiss_finding(&self, id: &str, finding_id: &str) -> Result<(), SessionError> {
        self.finding(id, finding_id)?;
        let handle = self.writable_handle(id)?;
        let mut inner = lock(&handle.inner);
        inner.emit(
            &handle.id,
            Event::Resolved {
                item_id: finding_id.to_owned(),
                outcome: "dismissed".to_owned(),
            },
            &self.inner.events,
        )?;
        Ok(())
    }

    /// Asks the session to fix a finding: a follow-up naming it. Returns whether it queued.
    pub fn fix_finding(&self, id: &str, finding_id: &str) -> Result<bool, SessionError> {
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
        self.send(id, text.trim_end().to_owned())
    }

    /// A new session with the same configuration and no history.
    pub async fn clone_session(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let source = self.handle(id)?;
        let spec = lock(&source.inner).state.spec.clone();
        let info = self
            .new_session(NewSession {
                root: spec.repo.clone(),
                preferred_name: format!("{}-clone", spec.name),
                exact_name: false,
                title: spec.title.clone(),
                mode: spec.mode,
                base_branch: Some(spec.base_branch.clone()),
                provider: Some(spec.provider.clone()),
                model: Some(spec.model.clone()),
                temperature: spec.temperature,
                max_tokens: spec.max_tokens,
                toggles: spec.toggles.clone(),
                cloned_from: Some(spec.id.clone()),
                prompt: None,
            })
            .await?;
        Ok(info)
    }

    /// Deletes a session: stops it, removes its worktree and its `tether/` branch, then its
    /// log. If git cannot remove the worktree, the session is kept and the error says why.
    pub async fn delete(&self, id: &str) -> Result<(), SessionError> {
        let handle = self.writable_handle(id)?;
        let is_active = lock(&handle.inner).state.status.is_active();
        if is_active {
            self.stop(id).await?;
        }
        for cancel in lock(&handle.inner).running_reviews.values() {
            cancel.cancel();
        }
        let spec = lock(&handle.inner).state.spec.clone();
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
        Ok(())
    }

    /// Every event of a session, for exports.
    pub fn all_events(&self, id: &str) -> Result<(SessionInfo, Vec<EventRecord>), SessionError> {
        let snapshot = self.get(id, 0)?;
        Ok((snapshot.session, snapshot.events))
    }

    /// Stops every working session (they stay resumable) and flushes every log.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let mut tasks = Vec::new();
        for entry in self.inner.sessions.iter() {
            let mut inner = lock(&entry.value().inner);
            if let Some(driver) = inner.driver.as_mut() {
                *lock(&driver.stop_reason) =
                    Some("tether shut down; resume the session to continue".to_owned());
                driver.cancel.cancel();
                if let Some(task) = driver.task.take() {
                    tasks.push(task);
                }
            }
        }
        let _ = tokio::time::timeout(STOP_GRACE, futures_util::future::join_all(tasks)).await;
        for entry in self.inner.sessions.iter() {
            let mut inner = lock(&entry.value().inner);
            if inner.store.is_writable()
                && let Err(error) = inner.settle()
            {
                tracing::warn!("{error}");
            }
        }
    }
}

struct NewSession {
    root: PathBuf,
    preferred_name: String,
    exact_name: bool,
    title: String,
    mode: Mode,
    base_branch: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    toggles: BTreeMap<String, bool>,
    cloned_from: Option<String>,
    prompt: Option<String>,
}

/// A review or verification item.
fn review_item(
    kind: FindingSource,
    id: String,
    status: &str,
    findings: Vec<Finding>,
    run: RunFacts,
) -> Item {
    let status = status.to_owned();
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

/// Reviews and verifications the previous process left running are closed as failed.
fn close_interrupted_reviews(
    id: &Arc<str>,
    inner: &mut SessionInner,
    events: &broadcast::Sender<AnnouncedEvent>,
) -> Result<(), SessionError> {
    let open_runs = std::mem::take(&mut inner.state.open_runs);
    for (_, item) in open_runs {
        let (kind, item_id) = match &item {
            Item::Review { id, .. } => (FindingSource::Review, id.clone()),
            Item::Verification { id, .. } => (FindingSource::Verification, id.clone()),
            _ => continue,
        };
        let facts = RunFacts {
            error: Some("interrupted: tether stopped while it ran".to_owned()),
            ..RunFacts::default()
        };
        inner.emit(
            id,
            Event::Item {
                phase: ItemPhase::Completed,
                item: review_item(kind, item_id, "failed", Vec::new(), facts),
            },
            events,
        )?;
    }
    Ok(())
}

/// A session the previous process left working: its open items are closed as interrupted
/// and it becomes `stopped`, ready to resume.
fn recover_interrupted(
    id: &Arc<str>,
    inner: &mut SessionInner,
    events: &broadcast::Sender<AnnouncedEvent>,
) -> Result<(), SessionError> {
    if !inner.state.status.is_active() {
        return Ok(());
    }
    let open_items = std::mem::take(&mut inner.state.open_items);
    for (item_id, (role, text)) in open_items {
        inner.emit(
            id,
            Event::Item {
                phase: ItemPhase::Completed,
                item: Item::Message {
                    id: item_id,
                    role,
                    text,
                    interrupted: true,
                },
            },
            events,
        )?;
    }
    let open_questions = std::mem::take(&mut inner.state.open_questions);
    for (item_id, item) in open_questions {
        inner.emit(
            id,
            Event::Item {
                phase: ItemPhase::Completed,
                item,
            },
            events,
        )?;
        inner.emit(
            id,
            Event::Resolved {
                item_id,
                outcome: "cancelled".to_owned(),
            },
            events,
        )?;
    }
    let open_tool_calls = std::mem::take(&mut inner.state.open_tool_calls);
    for (_, mut item) in open_tool_calls {
        if let Item::ToolCall { status, output, .. } = &mut item {
            *status = ToolCallStatus::Failed;
            *output = Some("interrupted: tether stopped while this tool ran".to_owned());
        }
        inner.emit(
            id,
            Event::Item {
                phase: ItemPhase::Completed,
                item,
            },
            events,
        )?;
    }
    inner.set_status(
        id,
        SessionStatus::Stopped,
        None,
        Some(
            "interrupted: tether stopped while the session was working; resume it to continue"
                .to_owned(),
        ),
        events,
    )
}

/// Logs and announces a turn's events under the session's lock.
struct TurnSink<'a> {
    handle: &'a SessionHandle,
    events: &'a broadcast::Sender<AnnouncedEvent>,
}

impl TurnSink<'_> {
    /// Announces `item` (a question, plan or permission) and shows that the turn waits for
    /// the user. Callers register the pending item under the same lock, so a client that sees
    /// the item can always settle it.
    fn open_for_user(
        &self,
        inner: &mut SessionInner,
        item: Item,
        activity: Activity,
    ) -> Result<(), String> {
        inner
            .emit(
                &self.handle.id,
                Event::Item {
                    phase: ItemPhase::Started,
                    item,
                },
                self.events,
            )
            .map_err(|error| error.to_string())?;
        inner
            .set_status(
                &self.handle.id,
                SessionStatus::Running,
                Some(activity),
                None,
                self.events,
            )
            .map_err(|error| error.to_string())
    }
}

impl EventSink for TurnSink<'_> {
    fn emit(&mut self, event: Event) -> Result<(), String> {
        lock(&self.handle.inner)
            .emit(&self.handle.id, event, self.events)
            .map(drop)
            .map_err(|error| error.to_string())
    }

    fn ask(
        &mut self,
        item_id: &str,
        questions: &[Question],
    ) -> Result<tokio::sync::oneshot::Receiver<Vec<Answer>>, String> {
        let (reply, answers) = tokio::sync::oneshot::channel();
        let mut inner = lock(&self.handle.inner);
        let item = Item::Question {
            id: item_id.to_owned(),
            questions: questions.to_vec(),
            answers: None,
        };
        self.open_for_user(&mut inner, item, Activity::WaitingInput)?;
        inner.pending_question = Some(PendingQuestion {
            item_id: item_id.to_owned(),
            questions: questions.to_vec(),
            reply,
        });
        Ok(answers)
    }

    fn permission(
        &mut self,
        tool: &str,
        input: &serde_json::Value,
        scope: &str,
    ) -> Result<PermissionCheck, String> {
        let mut inner = lock(&self.handle.inner);
        if inner.state.denied_scopes.contains(scope) {
            return Ok(PermissionCheck::Denied);
        }
        if inner.state.allowed_scopes.contains(scope)
            || self.handle.store.project_grants().contains(scope)
        {
            return Ok(PermissionCheck::Allowed);
        }
        let item = Item::Permission {
            id: new_item_id(),
            tool: tool.to_owned(),
            input: input.clone(),
            scope: scope.to_owned(),
            decisions: PERMISSION_DECISIONS
                .iter()
                .map(|d| (*d).to_owned())
                .collect(),
            decision: None,
            feedback: None,
        };
        let item_id = item.id().to_owned();
        self.open_for_user(&mut inner, item.clone(), Activity::WaitingInput)?;
        let (reply, decision) = tokio::sync::oneshot::channel();
        inner.pending_permission = Some(PendingPermission { item, reply });
        Ok(PermissionCheck::Ask { item_id, decision })
    }

    fn propose(
        &mut self,
        item_id: &str,
        phases: &[PlanPhase],
    ) -> Result<tokio::sync::oneshot::Receiver<PlanDecision>, String> {
        let (reply, decision) = tokio::sync::oneshot::channel();
        let mut inner = lock(&self.handle.inner);
        let item = Item::Plan {
            id: item_id.to_owned(),
            phases: phases.to_vec(),
            decision: None,
        };
        self.open_for_user(&mut inner, item, Activity::AwaitingPlanApproval)?;
        inner.pending_plan = Some(PendingPlan {
            item_id: item_id.to_owned(),
            phases: phases.to_vec(),
            reply,
        });
        Ok(decision)
    }
}

/// Checks answers against their questions: one per question, a text for `text` and
/// `single` (an answer outside the options is the "other" answer), options for `multi`.
fn check_answers(questions: &[Question], answers: &[Answer]) -> Result<(), String> {
    if questions.len() != answers.len() {
        return Err(format!(
            "{} answers for {} questions; send one per question, in order",
            answers.len(),
            questions.len()
        ));
    }
    for (index, (question, answer)) in questions.iter().zip(answers).enumerate() {
        match (question.kind, answer) {
            (QuestionKind::Text | QuestionKind::Single, Answer::Text(text)) => {
                if text.trim().is_empty() {
                    return Err(format!("answer {} is empty", index + 1));
                }
            }
            (QuestionKind::Multi, Answer::Choices(choices)) => {
                if let Some(unknown) = choices
                    .iter()
                    .find(|choice| !question.options.contains(choice))
                {
                    return Err(format!(
                        "answer {}: {unknown:?} is not one of the options",
                        index + 1
                    ));
                }
            }
            (QuestionKind::Multi, Answer::Text(_)) => {
                return Err(format!(
                    "answer {} must be a list of options (multi-select)",
                    index + 1
                ));
            }
            (_, Answer::Choices(_)) => {
                return Err(format!("answer {} must be a single string", index + 1));
            }
        }
    }
    Ok(())
}

/// What the driver does next, decided under the session's lock.
enum Step {
    Turn(ChatRequest),
    /// Nothing to answer: the session waits, with these reviews to run.
    Idle(Vec<(FindingSource, String, CancellationToken)>),
}

/// Drives one activation of a session: waits for a working slot, makes the worktree if it
/// has none, then runs turns while there is something to answer. Ends `waiting`, `stopped`
/// or `failed`.
async fn drive(
    manager: SessionManager,
    handle: Arc<SessionHandle>,
    cancel: CancellationToken,
    stop_reason: Arc<Mutex<Option<String>>>,
) {
    let events = &manager.inner.events;
    let outcome = drive_inner(&manager, &handle, &cancel).await;
    let mut inner = lock(&handle.inner);
    inner.pending_question = None;
    inner.pending_plan = None;
    inner.pending_permission = None;
    let result = match outcome {
        // The driver already let go of the session, under the lock that set `waiting`; a
        // follow-up may have started the next driver since.
        Ok(()) => Ok(()),
        Err(DriveEnd::Stopped) => {
            inner.driver = None;
            let reason = lock(&stop_reason)
                .take()
                .unwrap_or_else(|| "stopped".to_owned());
            inner.set_status(
                &handle.id,
                SessionStatus::Stopped,
                None,
                Some(reason),
                events,
            )
        }
        Err(DriveEnd::Halted(reason)) => {
            inner.driver = None;
            inner.set_status(
                &handle.id,
                SessionStatus::Stopped,
                None,
                Some(reason),
                events,
            )
        }
        Err(DriveEnd::Failed(reason)) => {
            inner.driver = None;
            inner.set_status(
                &handle.id,
                SessionStatus::Failed,
                None,
                Some(reason),
                events,
            )
        }
    };
    if let Err(error) = result {
        tracing::error!("session {}: {error}", handle.id);
    }
}

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

async fn drive_inner(
    manager: &SessionManager,
    handle: &Arc<SessionHandle>,
    cancel: &CancellationToken,
) -> Result<(), DriveEnd> {
    let events = &manager.inner.events;
    let _permit = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(DriveEnd::Stopped),
        permit = manager.inner.working_slots.clone().acquire_owned() => permit?,
    };

    let (spec, worktree_ready) = {
        let inner = lock(&handle.inner);
        (inner.state.spec.clone(), inner.state.worktree_ready)
    };
    if !worktree_ready {
        lock(&handle.inner).set_status(&handle.id, SessionStatus::Creating, None, None, events)?;
        let repository = workspace::Repository {
            root: spec.repo.clone(),
        };
        let worktree_lock = manager.worktree_lock(&spec.repo);
        let _serialized = worktree_lock.lock().await;
        // Left over from a crash mid-creation: remove it (only ever a `tether/` branch).
        repository
            .remove_worktree(&spec.worktree, &spec.branch)
            .await?;
        repository
            .add_worktree(&spec.worktree, &spec.branch, &spec.base_branch)
            .await?;
        if cancel.is_cancelled() {
            return Err(DriveEnd::Stopped);
        }
    }
    lock(&handle.inner).set_status(
        &handle.id,
        SessionStatus::Running,
        Some(Activity::Working),
        None,
        events,
    )?;
    {
        // Hooks: on_init once the worktree exists, on_start on every activation. What they
        // say reaches the agent as notes; they cannot hold the session back.
        let mut runs = Vec::new();
        if !worktree_ready {
            runs.extend(manager.run_hooks(handle, HookEvent::OnInit).await);
        }
        runs.extend(manager.run_hooks(handle, HookEvent::OnStart).await);
        manager.tell_agent(handle, &runs, false)?;
        lock(&handle.inner).hook_blocks = 0;
    }

    let config = manager.sources().resolve(Some(&spec.repo))?;
    let provider = build_provider(&spec.provider, config.provider(&spec.provider)?)?;
    let worktree = spec.worktree.canonicalize().map_err(|error| {
        DriveEnd::Failed(format!(
            "the worktree {} is missing ({error}); delete the session or restore it",
            spec.worktree.display()
        ))
    })?;
    lock(&handle.inner).redactor =
        redactor_for(&config).map_err(|error| DriveEnd::Failed(error.to_string()))?;
    let git = workspace::SessionWorktree::pin(&spec.repo, &worktree)?;
    let settings = TurnSettings {
        tools: config.session.tools.then(|| ToolContext {
            read_only: spec.mode == Mode::Chat
                || config.session.permission_mode == PermissionMode::ReadOnly,
            ask_permission: config.session.permission_mode == PermissionMode::Ask,
            allowed_scopes: config.session.allow.clone(),
            command_timeout: Duration::from_secs(config.session.command_timeout_secs.max(1)),
            jail: manager.jail(&handle.store, &spec, &worktree, &config),
            git,
            private_index: private_index(manager, &spec),
        }),
        max_steps: config.session.max_turns,
        price: config.price_of(&spec.provider, &spec.model),
        budget_left_usd: None,
        turn_timeout: config.session.turn_timeout_secs.map(Duration::from_secs),
    };
    let budget = config.session.budget_usd;
    {
        // A session reloaded from its snapshot has no conversation in memory yet.
        let mut inner = lock(&handle.inner);
        if inner.state.history.is_none() {
            let records = handle.store.read_events(&handle.id, 0)?;
            let replayed = store::fold(records).ok_or_else(|| {
                DriveEnd::Failed("the session's log does not start with `created`".to_owned())
            })?;
            inner.state.history = replayed.history;
        }
    }
    // Whether a turn of this activation changed files: verification and review follow.
    let mut changed_files = false;
    loop {
        let step = {
            let mut inner = lock(&handle.inner);
            // Deliver every follow-up that waited: the model sees them all at once.
            while let Some((item_id, text)) = inner.state.queued.front().cloned() {
                inner.emit(
                    &handle.id,
                    Event::Item {
                        phase: ItemPhase::Completed,
                        item: Item::Message {
                            id: item_id,
                            role: MessageRole::User,
                            text,
                            interrupted: false,
                        },
                    },
                    events,
                )?;
            }
            if inner.state.awaits_reply() {
                let mut request = chat_request(
                    &inner.state.spec,
                    inner.state.history.as_deref().unwrap_or_default(),
                    settings.tools.is_some(),
                );
                if let Some(model) = &inner.model_override {
                    request.model.clone_from(model);
                }
                Step::Turn(request)
            } else {
                let reviews = if changed_files {
                    manager.register_automatic_reviews(&handle.id, &mut inner)
                } else {
                    Vec::new()
                };
                // Under the same lock as the queue check, so no follow-up slips between.
                inner.set_status(&handle.id, SessionStatus::Waiting, None, None, events)?;
                inner.driver = None;
                Step::Idle(reviews)
            }
        };
        let request = match step {
            Step::Turn(request) => request,
            Step::Idle(reviews) => {
                manager.run_reviews(handle, reviews);
                return Ok(());
            }
        };
        let mut sink = TurnSink { handle, events };
        let mut settings = settings.clone();
        if let Some(budget) = budget {
            let spent = lock(&handle.inner).state.usage.cost_usd;
            if spent >= budget {
                return Err(DriveEnd::Halted(format!(
                    "the cost budget is spent (${spent:.4} of ${budget:.4}); raise session.budget_usd to continue"
                )));
            }
            settings.budget_left_usd = Some(budget - spent);
        }
        let outcome =
            agent::run_turn(provider.as_ref(), request, &settings, cancel, &mut sink).await;
        // What the turn's commands left running ends with the turn.
        if let Some(tools) = &settings.tools {
            end_programs(&handle.id, &tools.git);
        }
        lock(&handle.inner).emit(
            &handle.id,
            Event::TurnEnded {
                reason: outcome.reason,
                message: outcome.message.clone(),
            },
            events,
        )?;
        changed_files |= record_turn_checkpoint(manager, handle, &spec).await;
        match outcome.reason {
            TurnEndReason::EndTurn => {
                // A blocking on_agent_finish hook is a user message: the loop answers it.
                let runs = manager.run_hooks(handle, HookEvent::OnAgentFinish).await;
                manager.tell_agent(handle, &runs, true)?;
            }
            TurnEndReason::Stopped => return Err(DriveEnd::Stopped),
            TurnEndReason::MaxTurns => {
                return Err(DriveEnd::Halted(format!(
                    "the turn made session.max_turns ({}) model calls; resume to let it go on",
                    settings.max_steps
                )));
            }
            TurnEndReason::Timeout => {
                return Err(DriveEnd::Halted(format!(
                    "{}; resume to continue",
                    outcome
                        .message
                        .unwrap_or_else(|| "the turn timed out".to_owned())
                )));
            }
            TurnEndReason::Budget => {
                let spent = lock(&handle.inner).state.usage.cost_usd;
                return Err(DriveEnd::Halted(format!(
                    "the cost budget was reached (${spent:.4} of ${:.4}); raise session.budget_usd and resume to continue",
                    budget.unwrap_or_default()
                )));
            }
            _ => {
                return Err(DriveEnd::Failed(
                    outcome
                        .message
                        .unwrap_or_else(|| outcome.reason.as_str().to_owned()),
                ));
            }
        }
    }
}

/// Ends what a session's commands or hooks left running and puts back the worktree's `.git`
/// if they changed it (Tether's git does not read it; the user's and the agent's do).
fn end_programs(session_id: &str, worktree: &workspace::SessionWorktree) {
    crate::sandbox::end_owner(session_id);
    if let Err(error) = worktree.restore_gitlink() {
        tracing::warn!("session {session_id}: cannot restore the worktree's .git: {error}");
    }
}

/// The checkpoints of a session, kept through its private index.
fn checkpoints<'a>(
    spec: &'a SessionSpec,
    worktree: &'a workspace::SessionWorktree,
    index: &'a Path,
) -> workspace::Checkpoints<'a> {
    workspace::Checkpoints {
        worktree,
        session_id: &spec.id,
        index,
    }
}

/// The session's private index file (shared with the tools' before/after comparison). It is
/// kept out of the temp dir, which the agent's commands may write: an index they could edit
/// could hide their changes from diffs and reviews.
fn private_index(manager: &SessionManager, spec: &SessionSpec) -> PathBuf {
    manager
        .inner
        .home
        .join("private")
        .join(&spec.id)
        .join("index")
}

/// After a turn that changed files, records checkpoint `turn-<n>`; returns whether the turn
/// changed files. A failure is logged, not fatal: the turn's work is in the worktree either way.
async fn record_turn_checkpoint(
    manager: &SessionManager,
    handle: &SessionHandle,
    spec: &SessionSpec,
) -> bool {
    let (changed, turn) = {
        let inner = lock(&handle.inner);
        (inner.state.changed_since_checkpoint, inner.state.turns)
    };
    if !changed {
        return false;
    }
    let index = private_index(manager, spec);
    if let Some(parent) = index.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let name = format!("turn-{turn}");
    let recorded = match workspace::SessionWorktree::pin(&spec.repo, &spec.worktree) {
        Ok(worktree) => checkpoints(spec, &worktree, &index).record(&name).await,
        Err(error) => Err(error),
    };
    match recorded {
        Ok(commit) => {
            let result = lock(&handle.inner).emit(
                &handle.id,
                Event::Checkpoint { name, commit },
                &manager.inner.events,
            );
            if let Err(error) = result {
                tracing::warn!("session {}: {error}", handle.id);
            }
        }
        Err(error) => tracing::warn!(
            "session {}: cannot record checkpoint {name}: {error}",
            handle.id
        ),
    }
    true
}

/// The redactor for a session under `config`: its key variables' values and its patterns.
fn redactor_for(config: &crate::config::Config) -> Result<Arc<Redactor>, SessionError> {
    Redactor::from_environment(&config.secret_variables(), &config.secrets.patterns)
        .map(Arc::new)
        .map_err(|message| SessionError::InvalidParams {
            field: "secrets.patterns",
            message,
        })
}

fn chat_request(spec: &SessionSpec, history: &[ChatMessage], with_tools: bool) -> ChatRequest {
    let mut messages = vec![ChatMessage::new(ChatRole::System, system_prompt(spec))];
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

fn system_prompt(spec: &SessionSpec) -> String {
    let mut prompt = format!(
        "You are a coding agent working in a git worktree of the repository {} on branch {} (based on {}). Mode: {}.",
        spec.repo.display(),
        spec.branch,
        spec.base_branch,
        spec.mode.as_str()
    );
    let enabled: Vec<&str> = spec
        .toggles
        .iter()
        .filter(|(_, on)| **on)
        .map(|(name, _)| name.as_str())
        .collect();
    if !enabled.is_empty() {
        prompt.push_str(&format!(" Apply these practices: {}.", enabled.join(", ")));
    }
    prompt
}

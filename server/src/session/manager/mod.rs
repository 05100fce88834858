//! The session manager: the one way in for the LSP layer and `tether run` alike. It keeps a
//! [`SessionHandle`] per session; each session is an actor ([`actor`]) that owns its state and
//! its log. Reads answer from the view the actor publishes; changes are commands to it.
//!
//! The files, one job each: [`lifecycle`] (create, send, stop, resume, complete, clone,
//! delete), [`driver`] (the task that runs a session's turns), [`prompts`] (questions, plans,
//! permissions), [`reviews`] (reviews, verifications, findings), [`git`] (diff, rewind, git
//! operations, checkpoints), [`recovery`] (what a crash left open), [`hooks`], [`loops`],
//! [`tasks`] (tasks and their trials), [`views`] (what readers are given: infos, filters).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast};

use crate::config::{ConfigCache, ConfigError, ConfigSources, ConfigWarning, EditorLayer};
use crate::provider::ProviderError;
use crate::store::{RepoStore, StoreError};
use crate::vocab::{EventRecord, Finding, FindingSource, Item, Mode, SessionStatus};
use crate::workspace::{self, GitError};

mod actor;
mod agents;
mod attachments;
mod commands;
mod compaction;
mod conversation;
mod driver;
mod fanout;
mod feedback;
mod git;
mod hooks;
mod lifecycle;
mod loops;
mod mcp;
mod prompts;
mod recovery;
mod reviews;
mod tasks;
mod views;

pub use actor::SessionView;
use actor::{SessionActor, SessionHandle};
pub use fanout::{EventSource, Subscription};
pub use git::{GitOutcome, GitRequest};

pub use loops::{EXIT_SIGNAL, LoopRequest};
pub use tasks::{
    Agreement, ComparedFile, ComparedRegion, CreateTask, FileInTrial, PromoteRequest, Promoted,
    TaskComparison, TrialPatch, TrialRequest, Variant, task_document,
};
pub use views::{ListFilter, Sent, SessionFindings, SessionInfo, SessionSnapshot};

/// How long `stop` and shutdown wait for a session's task to notice and record the stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("unknown session {0:?}")]
    UnknownSession(String),
    #[error("unknown task {0:?}")]
    UnknownTask(String),
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
    /// Tether's own fault (a worker thread that panicked).
    #[error("{0}")]
    Internal(String),
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
    /// The commit its worktree starts from (a task's trials); default the base branch's tip
    /// when the worktree is made.
    pub base_commit: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub toggles: BTreeMap<String, bool>,
    /// Who asks: an editor (by name), `tether run`, a schedule.
    pub started_by: Option<crate::vocab::StartedBy>,
    /// The editor settings profile the session follows (`None`: the host's settings).
    pub settings_profile: Option<String>,
    /// Files attached to the prompt.
    pub attachments: Vec<crate::vocab::AttachmentSource>,
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
    /// Settings, parsed once per change.
    config: ConfigCache,
    repos: Mutex<HashMap<PathBuf, Arc<RepoStore>>>,
    sessions: dashmap::DashMap<String, Arc<SessionHandle>>,
    events: broadcast::Sender<AnnouncedEvent>,
    /// Sessions deleted (there is no event for it): a daemon tells its fronts.
    removed: broadcast::Sender<String>,
    /// Tasks and the trials racing in them.
    tasks: tasks::TaskBoard,
    working_slots: Arc<Semaphore>,
    max_working: Mutex<usize>,
    /// One per repository: `git worktree add/remove` are not safe to run concurrently in one
    /// repository (one reads the other's half-made `.git/worktrees/<name>`).
    worktree_locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    shutting_down: AtomicBool,
    /// Runs lifecycle hooks; keeps their circuit breakers across sessions.
    hooks: crate::hooks::HookRunner,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock must not wedge every later request.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Filters for `list`.
impl SessionManager {
    /// A manager keeping its state under `home` (see [`crate::store::state_home`]). Must be
    /// called inside a Tokio runtime: the session tasks run there.
    pub fn new(home: PathBuf, sources: ConfigSources) -> Result<SessionManager, SessionError> {
        SessionManager::with_event_capacity(home, sources, 16_384)
    }

    /// A manager whose event channel holds `capacity` events for a subscriber that lags.
    fn with_event_capacity(
        home: PathBuf,
        sources: ConfigSources,
        capacity: usize,
    ) -> Result<SessionManager, SessionError> {
        // A broken settings file must not keep the editor's server from starting: every
        // session operation reports it (naming the file) until it is fixed.
        let max_working = match sources.resolve(None) {
            Ok(config) => config.session.max_working.max(1),
            Err(error) => {
                tracing::error!("{error}");
                crate::config::SessionSettings::default().max_working
            }
        };
        let (events, _) = broadcast::channel(capacity);
        let config = ConfigCache::with_profiles_dir(sources, home.join("editors"));
        let manager = SessionManager {
            inner: Arc::new(ManagerInner {
                home,
                runtime: tokio::runtime::Handle::current(),
                config,
                repos: Mutex::new(HashMap::new()),
                sessions: dashmap::DashMap::new(),
                events,
                removed: broadcast::channel(1024).0,
                tasks: tasks::TaskBoard::default(),
                working_slots: Arc::new(Semaphore::new(max_working)),
                max_working: Mutex::new(max_working),
                worktree_locks: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                hooks: Default::default(),
            }),
        };
        manager.watch_tasks();
        Ok(manager)
    }

    /// Replaces one of the editor's layers of settings (`initializationOptions`, or the
    /// latest `didChangeConfiguration`), and resizes the working cap. Settings that are not
    /// an object, or that do not parse, are refused and the layers stay as they were.
    pub fn set_editor_layer(
        &self,
        layer: EditorLayer,
        settings: serde_json::Value,
    ) -> Result<(), SessionError> {
        if let Some(resolved) = self.inner.config.set_editor_layer(layer, settings)? {
            self.resize_working_slots(resolved.config.session.max_working.max(1));
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
        spec: &crate::vocab::SessionSpec,
        worktree: &Path,
        config: &crate::config::Config,
    ) -> crate::sandbox::Jail {
        crate::sandbox::Jail {
            mode: config.session.sandbox,
            worktree: worktree.to_owned(),
            temp_dir: self.temp_dir(&spec.id),
            writable: Vec::new(),
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

    /// The settings outside any repository (the user's file, the editor's layers).
    pub fn user_settings(&self) -> Result<Arc<crate::config::Resolved>, ConfigError> {
        self.inner.config.resolve(None)
    }

    /// The settings for a session's hooks or reviews; when they cannot be used, the session
    /// says so (`what` did not run) and there is nothing to run.
    fn settings_or_report(
        &self,
        handle: &SessionHandle,
        what: String,
    ) -> Option<Arc<crate::config::Resolved>> {
        let spec = handle.view().spec.clone();
        match self.config_of(&spec) {
            Ok(resolved) => Some(resolved),
            Err(error) => {
                handle.tell(move |actor| {
                    actor.report_settings_problem(format!(
                        "{what} did not run: the settings cannot be used: {error}"
                    ));
                });
                None
            }
        }
    }

    /// The settings for sessions of `repo` that follow editor profile `profile`, parsed
    /// again only when they changed.
    fn config(
        &self,
        repo: &Path,
        profile: Option<&str>,
    ) -> Result<Arc<crate::config::Resolved>, ConfigError> {
        self.inner.config.resolve_for(Some(repo), profile)
    }

    /// The settings for sessions of the repository holding `root` (none: outside any
    /// repository) that follow editor profile `profile`.
    pub fn settings_for(
        &self,
        root: Option<&Path>,
        profile: Option<&str>,
    ) -> Result<Arc<crate::config::Resolved>, SessionError> {
        match root {
            Some(root) => {
                let repository = workspace::discover(root)?;
                Ok(self.config(&repository.root, profile)?)
            }
            None => Ok(self.inner.config.resolve_for(None, profile)?),
        }
    }

    /// The settings a session runs with: its repository's, with its editor's layers.
    fn config_of(
        &self,
        spec: &crate::vocab::SessionSpec,
    ) -> Result<Arc<crate::config::Resolved>, ConfigError> {
        self.config(&spec.repo, spec.settings_profile.as_deref())
    }

    /// Whether the session runs on an ACP agent (which keeps its own context and models).
    fn runs_on_agent(&self, spec: &crate::vocab::SessionSpec) -> Result<bool, SessionError> {
        let resolved = self.config_of(spec)?;
        Ok(resolved.config.provider(&spec.provider)?.kind == crate::config::ProviderKind::Acp)
    }

    /// Replaces the layers of an editor's profile: the sessions that editor started follow
    /// them from their next step.
    pub fn set_profile(
        &self,
        id: &str,
        layers: crate::config::EditorLayers,
        keys: crate::config::ProfileKeys,
    ) -> Result<(), SessionError> {
        self.inner.config.set_profile(id, layers)?;
        self.inner.config.set_profile_keys(id, keys);
        Ok(())
    }

    /// The repository containing `path`, and what its `.tether/config.toml` tried that was
    /// ignored (settings looser than the user's).
    pub fn config_warnings(
        &self,
        path: &Path,
    ) -> Result<(PathBuf, Vec<ConfigWarning>), SessionError> {
        let repository = workspace::discover(path)?;
        let resolved = self.config(&repository.root, None)?;
        Ok((repository.root, resolved.warnings.clone()))
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
            let mut actor = SessionActor::new(
                id.clone(),
                store.clone(),
                loaded.state,
                None,
                self.inner.events.clone(),
            );
            if store.is_writable() {
                actor.recover()?;
            }
            let handle = actor.spawn(&self.inner.runtime);
            self.inner.sessions.insert(id.to_string(), Arc::new(handle));
        }
        self.inner.tasks.load(&store);
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

    pub fn list(&self, filter: &ListFilter) -> Vec<SessionInfo> {
        filter.select(self.inner.sessions.iter().map(|entry| entry.value().view()))
    }

    /// A session as of its last event.
    pub fn view(&self, id: &str) -> Result<Arc<SessionView>, SessionError> {
        Ok(self.handle(id)?.view())
    }

    /// The folded state of sessions `ids` (every session: `None`), without their
    /// conversations, and whether each is read-only: what a front mirrors.
    pub async fn states(
        &self,
        ids: Option<Vec<String>>,
    ) -> Vec<(crate::vocab::SessionState, bool, u64)> {
        let handles: Vec<Arc<SessionHandle>> = match ids {
            Some(ids) => ids.iter().filter_map(|id| self.handle(id).ok()).collect(),
            None => self
                .inner
                .sessions
                .iter()
                .map(|entry| entry.value().clone())
                .collect(),
        };
        let mut states = Vec::with_capacity(handles.len());
        for handle in handles {
            let read_only = !handle.store.is_writable();
            let state = handle
                .run(|actor| {
                    // The conversation stays: it is not serialized, and can be long.
                    let history = actor.state.history.take();
                    let state = actor.state.clone();
                    actor.state.history = history;
                    Ok(state)
                })
                .await;
            if let Ok(state) = state {
                states.push((state, read_only, handle.loaded_seq));
            }
        }
        states
    }

    /// The questions, plans and permissions a session waits on, as started items.
    pub fn pending_items(&self, id: &str) -> Result<Vec<Item>, SessionError> {
        Ok(self.view(id)?.open_questions.to_vec())
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

    /// Every event of a session, for exports.
    pub fn all_events(&self, id: &str) -> Result<(SessionInfo, Vec<EventRecord>), SessionError> {
        let snapshot = self.get(id, 0)?;
        Ok((snapshot.session, snapshot.events))
    }

    /// The findings of every session that are not dismissed.
    pub fn open_findings(&self) -> Vec<SessionFindings> {
        SessionFindings::of(self.inner.sessions.iter().map(|entry| entry.value().view()))
    }

    /// The findings of one session that are not dismissed.
    pub fn session_findings(
        &self,
        id: &str,
    ) -> Result<Vec<(FindingSource, Finding)>, SessionError> {
        Ok(self.view(id)?.findings.to_vec())
    }

    /// The open finding `finding_id` of a session.
    pub fn finding(
        &self,
        id: &str,
        finding_id: &str,
    ) -> Result<(FindingSource, Finding), SessionError> {
        let view = self.view(id)?;
        view.findings
            .iter()
            .find(|(_, finding)| finding.id == finding_id)
            .cloned()
            .ok_or_else(|| SessionError::InvalidParams {
                field: "findingId",
                message: format!(
                    "{finding_id:?} is not an open finding of {} (dismissed, or superseded by a newer review)",
                    view.spec.name
                ),
            })
    }

    /// Stops every working session (they stay resumable) and flushes every log.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let handles: Vec<Arc<SessionHandle>> = self
            .inner
            .sessions
            .iter()
            .map(|entry| entry.value().clone())
            .collect();
        let mut tasks = Vec::new();
        for handle in &handles {
            let task = handle
                .run(|actor| {
                    Ok(actor.driver.as_mut().and_then(|driver| {
                        driver.stop_reason =
                            Some("tether shut down; resume the session to continue".to_owned());
                        driver.cancel.cancel();
                        driver.task.take()
                    }))
                })
                .await;
            if let Ok(Some(task)) = task {
                tasks.push(task);
            }
        }
        let _ = tokio::time::timeout(STOP_GRACE, futures_util::future::join_all(tasks)).await;
        for handle in &handles {
            let settled = handle
                .run(|actor| {
                    if actor.store.is_writable() {
                        actor.settle()?;
                    }
                    Ok(())
                })
                .await;
            if let Err(error) = settled {
                tracing::warn!("{error}");
            }
        }
    }
}

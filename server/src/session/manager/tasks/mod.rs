//! Tasks (DESIGN.md, "Tasks and trials"): one objective raced by 1–8 trials, each a develop
//! session on `tether/<task>-<k>` from the same base commit, with its own provider and model.
//!
//! The board keeps each task's record (the prompt, the trials' sessions, the promotion),
//! written to the repository's store before any trial starts; what a [`TaskInfo`] shows of a
//! trial is read from its session's view and its diff, so the sessions' logs stay the one
//! truth. A watcher turns the trials' events into `TaskInfo` updates for the editors, at most
//! every quarter second per task.
//!
//! The files: this one (the board, create, list, stop, delete, the watcher), [`summary`]
//! (a trial's evidence), [`compare`] (trials side by side), [`promote`] (landing one).

mod compare;
mod document;
mod promote;
mod summary;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

pub use compare::{
    Agreement, ComparedFile, ComparedRegion, FileInTrial, TaskComparison, TrialPatch, Variant,
};
pub use document::task_document;
pub use promote::{PromoteRequest, Promoted};

use super::actor::SessionView;
use super::lifecycle::{NewSession, check_profile, provider_and_model, worktrees_of};
use super::{SessionError, SessionManager, lock};
use crate::session::{slug_from_prompt, validate_session_name};
use crate::store::RepoStore;
use crate::vocab::{MAX_TRIALS, Mode, StartedBy, TaskInfo, TaskRecord, TrialSpec, now_millis};
use crate::workspace;

/// How long the watcher gathers trials' events before it tells the editors.
const TASK_EVENT_FRAME: Duration = Duration::from_millis(250);

/// What `tether/task/create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateTask {
    pub prompt: String,
    pub trials: Vec<TrialRequest>,
    pub name: Option<String>,
    /// Any path inside the repository.
    pub root: PathBuf,
    pub base_branch: Option<String>,
    pub toggles: BTreeMap<String, bool>,
    /// The editor settings profile the trials follow.
    pub settings_profile: Option<String>,
}

/// One trial to start: its provider and model (defaults as for a session).
#[derive(Debug, Clone, Default)]
pub struct TrialRequest {
    pub provider: Option<String>,
    pub model: Option<String>,
}

/// The tasks this process knows, and who hears of their changes.
pub(in crate::session::manager) struct TaskBoard {
    tasks: Mutex<BTreeMap<String, TaskEntry>>,
    /// Each trial's session id → its task's id.
    trials: Mutex<HashMap<String, String>>,
    events: broadcast::Sender<TaskInfo>,
    stats: Mutex<HashMap<String, summary::CachedStats>>,
}

impl Default for TaskBoard {
    fn default() -> Self {
        TaskBoard {
            tasks: Mutex::default(),
            trials: Mutex::default(),
            events: broadcast::channel(256).0,
            stats: Mutex::default(),
        }
    }
}

#[derive(Clone)]
struct TaskEntry {
    record: Arc<TaskRecord>,
    store: Arc<RepoStore>,
}

impl TaskBoard {
    /// Takes up the tasks recorded in `store` (when its repository is opened).
    pub fn load(&self, store: &Arc<RepoStore>) {
        for record in store.load_tasks() {
            self.insert(record, store.clone());
        }
    }

    fn insert(&self, record: TaskRecord, store: Arc<RepoStore>) {
        let mut trials = lock(&self.trials);
        for trial in &record.trials {
            trials.insert(trial.session_id.clone(), record.id.clone());
        }
        lock(&self.tasks).insert(
            record.id.clone(),
            TaskEntry {
                record: Arc::new(record),
                store,
            },
        );
    }

    fn remove(&self, id: &str) {
        if let Some(entry) = lock(&self.tasks).remove(id) {
            let mut trials = lock(&self.trials);
            for trial in &entry.record.trials {
                trials.remove(&trial.session_id);
            }
        }
    }

    fn entry(&self, id: &str) -> Result<TaskEntry, SessionError> {
        lock(&self.tasks)
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::UnknownTask(id.to_owned()))
    }

    /// The task a session is a trial of.
    fn task_of(&self, session_id: &str) -> Option<String> {
        lock(&self.trials).get(session_id).cloned()
    }

    fn name_taken(&self, repo: &Path, name: &str) -> bool {
        lock(&self.tasks)
            .values()
            .any(|entry| entry.record.repo == repo && entry.record.name == name)
    }
}

impl SessionManager {
    /// Records a task and starts its trials; its info as it was born. Every trial's provider
    /// and model are checked before anything is made, and a trial that cannot be created
    /// undoes the task: nothing is left half-made.
    pub async fn create_task(&self, request: CreateTask) -> Result<TaskInfo, SessionError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(SessionError::ShuttingDown);
        }
        if request.prompt.trim().is_empty() {
            return Err(SessionError::InvalidParams {
                field: "prompt",
                message: "a task needs a prompt".to_owned(),
            });
        }
        if request.trials.is_empty() || request.trials.len() > MAX_TRIALS {
            return Err(SessionError::InvalidParams {
                field: "trials",
                message: format!(
                    "a task races 1 to {MAX_TRIALS} trials; {} were asked for",
                    request.trials.len()
                ),
            });
        }
        check_profile(request.settings_profile.as_deref())?;
        let repository = workspace::discover(&request.root)?;
        let store = self.open_store(&repository.root)?;
        if !store.is_writable() {
            return Err(SessionError::ReadOnly(store.read_only_reason()));
        }
        let resolved = self.config(&repository.root, request.settings_profile.as_deref())?;
        let config = &resolved.config;
        let mut planned = Vec::new();
        for (index, trial) in request.trials.iter().enumerate() {
            let (provider, _, model) =
                provider_and_model(config, trial.provider.clone(), trial.model.clone()).map_err(
                    |error| SessionError::InvalidParams {
                        field: "trials",
                        message: match error {
                            SessionError::InvalidParams { message, .. } => {
                                format!("trial {}: {message}", index + 1)
                            }
                            other => format!("trial {}: {other}", index + 1),
                        },
                    },
                )?;
            planned.push((provider, model));
        }
        let base_branch = repository.resolve_base_branch(request.base_branch.as_deref())?;
        let base_commit = repository.tip_of(&base_branch).await?;

        let worktrees = worktrees_of(config, &repository.root);
        let preferred = match &request.name {
            Some(name) => {
                validate_session_name(name).map_err(|message| SessionError::InvalidParams {
                    field: "name",
                    message: message.replace("session name", "task name"),
                })?;
                name.clone()
            }
            None => slug_from_prompt(&request.prompt),
        };
        let taken = |name: &str| -> Result<bool, SessionError> {
            if self.inner.tasks.name_taken(&repository.root, name) {
                return Ok(true);
            }
            for k in 1..=planned.len() {
                if self.session_name_taken(&repository, &worktrees, &format!("{name}-{k}"))? {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        let mut name = preferred.clone();
        let mut suffix = 2;
        while taken(&name)? {
            if request.name.is_some() {
                return Err(SessionError::InvalidParams {
                    field: "name",
                    message: format!(
                        "a task, or a session, branch or folder of one of its trials, is named {name:?} already in {}",
                        repository.root.display()
                    ),
                });
            }
            name = format!("{preferred}-{suffix}");
            suffix += 1;
        }

        let title = crate::session::title_of(&request.prompt);
        let id = uuid::Uuid::now_v7().simple().to_string();
        let record = TaskRecord {
            id: id.clone(),
            name: name.clone(),
            title: title.clone(),
            prompt: request.prompt.clone(),
            repo: repository.root.clone(),
            base_branch: base_branch.clone(),
            base_commit: base_commit.clone(),
            created_at: now_millis(),
            trials: planned
                .iter()
                .zip(1..)
                .map(|((provider, model), index)| TrialSpec {
                    index,
                    session_id: uuid::Uuid::now_v7().simple().to_string(),
                    provider: provider.clone(),
                    model: model.clone(),
                })
                .collect(),
            promoted: None,
        };
        // The record first: after a crash its trials are found (or known gone).
        store.write_task(&record)?;
        self.inner.tasks.insert(record.clone(), store.clone());
        for trial in &record.trials {
            let created = self
                .new_session(NewSession {
                    id: Some(trial.session_id.clone()),
                    root: repository.root.clone(),
                    preferred_name: format!("{name}-{}", trial.index),
                    exact_name: true,
                    title: title.clone(),
                    mode: Mode::Develop,
                    base_branch: Some(base_branch.clone()),
                    base_commit: Some(base_commit.clone()),
                    provider: Some(trial.provider.clone()),
                    model: Some(trial.model.clone()),
                    temperature: None,
                    max_tokens: None,
                    toggles: request.toggles.clone(),
                    cloned_from: None,
                    prompt: Some(request.prompt.clone()),
                    started_by: Some(StartedBy::Task {
                        id: id.clone(),
                        trial: trial.index,
                    }),
                    settings_profile: request.settings_profile.clone(),
                    attachments: Vec::new(),
                })
                .await;
            if let Err(error) = created {
                tracing::warn!(
                    "task {name}: trial {} failed to start: {error}",
                    trial.index
                );
                let _ = self.delete_task(&id).await;
                return Err(error);
            }
        }
        self.task_info(&id).await
    }

    /// The tasks of the repository holding `root` (every task when `None`), oldest first.
    pub async fn tasks(&self, root: Option<&Path>) -> Result<Vec<TaskInfo>, SessionError> {
        let repo = match root {
            Some(root) => Some(self.open_repository(root)?.repo().to_owned()),
            None => None,
        };
        let ids: Vec<String> = lock(&self.inner.tasks.tasks)
            .values()
            .filter(|entry| repo.as_ref().is_none_or(|repo| &entry.record.repo == repo))
            .map(|entry| entry.record.id.clone())
            .collect();
        let mut tasks = Vec::new();
        for id in ids {
            // One deleted meanwhile is simply not listed.
            if let Ok(info) = self.task_info(&id).await {
                tasks.push(info);
            }
        }
        tasks.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(tasks)
    }

    /// Stops every trial still working; they stay resumable and browsable.
    pub async fn stop_task(&self, id: &str) -> Result<TaskInfo, SessionError> {
        let entry = self.inner.tasks.entry(id)?;
        self.stop_trials(&entry.record, None).await;
        self.task_info(id).await
    }

    /// Stops the trials still working, but `keep`.
    async fn stop_trials(&self, record: &TaskRecord, keep: Option<&str>) {
        for trial in &record.trials {
            if Some(trial.session_id.as_str()) == keep {
                continue;
            }
            let working = self
                .view(&trial.session_id)
                .is_ok_and(|view| view.info.status.is_active());
            if working && let Err(error) = self.stop(&trial.session_id).await {
                tracing::warn!(
                    "task {}: stopping trial {}: {error}",
                    record.name,
                    trial.index
                );
            }
        }
    }

    /// Deletes a task: its trials' sessions (worktrees, branches, logs) and its record.
    pub async fn delete_task(&self, id: &str) -> Result<(), SessionError> {
        let entry = self.inner.tasks.entry(id)?;
        if !entry.store.is_writable() {
            return Err(SessionError::ReadOnly(entry.store.read_only_reason()));
        }
        for trial in &entry.record.trials {
            match self.delete(&trial.session_id).await {
                Ok(()) | Err(SessionError::UnknownSession(_)) => {}
                Err(error) => return Err(error),
            }
            lock(&self.inner.tasks.stats).remove(&trial.session_id);
        }
        entry.store.remove_task(id)?;
        self.inner.tasks.remove(id);
        Ok(())
    }

    /// Task infos from now on, each when one of its trials changed what the task shows.
    pub fn subscribe_tasks(&self) -> broadcast::Receiver<TaskInfo> {
        self.inner.tasks.events.subscribe()
    }

    /// Replaces a task's record, on disk first.
    fn update_task(
        &self,
        id: &str,
        change: impl FnOnce(&mut TaskRecord),
    ) -> Result<Arc<TaskRecord>, SessionError> {
        let entry = self.inner.tasks.entry(id)?;
        let mut record = (*entry.record).clone();
        change(&mut record);
        entry.store.write_task(&record)?;
        let record = Arc::new(record);
        if let Some(kept) = lock(&self.inner.tasks.tasks).get_mut(id) {
            kept.record = record.clone();
        }
        Ok(record)
    }

    /// Starts the task that tells subscribers when a trial changed what its task shows.
    pub(in crate::session::manager) fn watch_tasks(&self) {
        let manager = Arc::downgrade(&self.inner);
        let mut events = self.inner.events.subscribe();
        self.inner.runtime.spawn(async move {
            use broadcast::error::RecvError;
            let mut dirty = BTreeSet::new();
            loop {
                let mut deadline = None;
                loop {
                    let received = match deadline.as_mut() {
                        None => events.recv().await,
                        Some(deadline) => tokio::select! {
                            received = events.recv() => received,
                            () = deadline => break,
                        },
                    };
                    let Some(inner) = manager.upgrade() else {
                        return;
                    };
                    let board = &inner.tasks;
                    match received {
                        Ok(announced) => {
                            if SessionView::moves_only_counters(&announced.record.event) {
                                continue;
                            }
                            if let Some(task) = board.task_of(&announced.session_id) {
                                dirty.insert(task);
                            }
                        }
                        Err(RecvError::Lagged(_)) => {
                            dirty.extend(lock(&board.tasks).keys().cloned());
                        }
                        Err(RecvError::Closed) => return,
                    }
                    if !dirty.is_empty() && deadline.is_none() {
                        deadline = Some(Box::pin(tokio::time::sleep(TASK_EVENT_FRAME)));
                    }
                }
                let Some(inner) = manager.upgrade() else {
                    return;
                };
                let manager = SessionManager { inner };
                let due = std::mem::take(&mut dirty);
                if manager.inner.tasks.events.receiver_count() == 0 {
                    continue;
                }
                for id in due {
                    if let Ok(info) = manager.task_info(&id).await {
                        let _ = manager.inner.tasks.events.send(info);
                    }
                }
            }
        });
    }
}

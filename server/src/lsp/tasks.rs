//! Tasks in the editor: `tether/task/event` for clients that opted in, the task documents
//! (`.tether/tasks/<name>.md`, the comparison as Markdown, kept current while the task
//! changes once it was opened) and the code actions on them ("Promote trial k…"), which is
//! all an editor with nothing but standard LSP (Helix) needs to race agents and pick one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use dashmap::DashMap;
use tower_lsp_server::ls_types::CodeActionOrCommand;

use super::Backend;
use super::ext::TaskEventNotification;
use super::handlers::code_action::action;
use crate::api::{self, methods};
use crate::beneath::Beneath;
use crate::front::Sessions;
use crate::host::HostError;
use crate::vocab::{PromoteHow, SessionStatus, TaskInfo, TaskStatus};

/// Where task documents go in a repository (kept out of git through `info/exclude`).
pub const TASK_DIR: &str = ".tether/tasks";

/// The tasks this editor heard of, and the documents it opened for them.
#[derive(Default)]
pub struct KnownTasks {
    tasks: DashMap<String, TaskInfo>,
    /// Task id → its document, once opened: kept current from then on.
    documents: DashMap<String, PathBuf>,
}

impl KnownTasks {
    pub fn remember(&self, task: &TaskInfo) {
        self.tasks.insert(task.id.clone(), task.clone());
    }

    pub fn forget(&self, id: &str) {
        self.tasks.remove(id);
        self.documents.remove(id);
    }

    /// The sessions of a task's trials, as last heard.
    pub fn trial_sessions(&self, id: &str) -> Vec<String> {
        self.tasks
            .get(id)
            .map(|task| {
                task.trials
                    .iter()
                    .map(|trial| trial.session_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The task whose document is at `path`.
    fn by_document(&self, path: &Path) -> Option<TaskInfo> {
        self.tasks
            .iter()
            .find(|task| document_path(task.value()) == path)
            .map(|task| task.value().clone())
    }
}

/// A task's document.
pub fn document_path(task: &TaskInfo) -> PathBuf {
    task.repo.join(TASK_DIR).join(format!("{}.md", task.name))
}

/// Renders `task`'s document (with its comparison) and writes it; its path.
pub async fn write_document(
    sessions: &Sessions,
    known: &KnownTasks,
    id: &str,
) -> Result<PathBuf, HostError> {
    let compared = sessions
        .call::<methods::TaskCompare>(api::TaskCompareParams {
            id: id.to_owned(),
            session_ids: None,
        })
        .await?;
    known.remember(&compared.task);
    let path = document_path(&compared.task);
    let repo = compared.task.repo.clone();
    if let Err(error) = crate::workspace::exclude_locally(&repo, &format!("/{TASK_DIR}/")).await {
        tracing::warn!("{}: {error}", repo.display());
    }
    let relative = path
        .strip_prefix(&repo)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(TASK_DIR));
    let text = compared.document;
    tokio::task::spawn_blocking(move || {
        // Beneath the repository: its `.tether` may be a link to somewhere else.
        let beneath = Beneath::open(&repo).map_err(|error| error.to_string())?;
        beneath
            .replace(&relative, text.as_bytes())
            .map_err(|error| error.describe(&relative.display().to_string()))
    })
    .await
    .map_err(HostError::internal)?
    .map_err(|error| HostError::internal(format!("cannot write the task document: {error}")))?;
    known
        .documents
        .insert(compared.task.id.clone(), path.clone());
    Ok(path)
}

/// Follows the tasks' changes for as long as the editor is connected: tells an opted-in
/// client, and re-renders the documents it opened.
pub fn start(backend: &Backend) {
    let backend = backend.clone();
    let mut events = backend.sessions.task_events();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let task = match events.recv().await {
                Ok(task) => task,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            backend.tasks.remember(&task);
            if backend.state.opted_in.load(Ordering::SeqCst) {
                backend
                    .client
                    .send_notification::<TaskEventNotification>(api::TaskEventParams {
                        task_id: task.id.clone(),
                        task: task.clone(),
                    })
                    .await;
            }
            if backend.tasks.documents.contains_key(&task.id) {
                let backend = backend.clone();
                tokio::spawn(async move {
                    if let Err(error) =
                        write_document(&backend.sessions, &backend.tasks, &task.id).await
                    {
                        tracing::warn!("re-rendering task {}: {error}", task.name);
                    }
                });
            }
        }
    });
}

/// The actions on a task's document: promote each trial that can be (three ways), stop
/// the task while it runs, compare again.
pub fn document_actions(known: &Arc<KnownTasks>, document: &Path) -> Vec<CodeActionOrCommand> {
    let Some(task) = known.by_document(document) else {
        return Vec::new();
    };
    let mut actions = Vec::new();
    if task.status == TaskStatus::Running {
        actions.push(action::<methods::TaskStop>(
            format!("tether: Stop task {}", task.name),
            &api::IdParams {
                id: task.id.clone(),
            },
        ));
    }
    if task.promoted.is_none() {
        for trial in &task.trials {
            let promotable =
                !trial.gone && !trial.status.is_active() && trial.status != SessionStatus::Failed;
            if !promotable {
                continue;
            }
            for (how, words) in [
                (PromoteHow::Apply, "apply to my files"),
                (PromoteHow::Merge, format_merge(&task).as_str()),
                (PromoteHow::Pr, "open a pull request"),
            ] {
                actions.push(action::<methods::TaskPromote>(
                    format!(
                        "tether: Promote trial {} ({}/{}): {words}",
                        trial.index, trial.provider, trial.model
                    ),
                    &api::TaskPromoteParams {
                        id: task.id.clone(),
                        session_id: trial.session_id.clone(),
                        how,
                        reason: None,
                        discard_others: false,
                        title: None,
                        body: None,
                    },
                ));
            }
        }
    }
    actions.push(action::<methods::TaskOpen>(
        format!("tether: Compare task {} again", task.name),
        &api::IdParams {
            id: task.id.clone(),
        },
    ));
    actions
}

fn format_merge(task: &TaskInfo) -> String {
    format!("merge into {}", task.base_branch)
}

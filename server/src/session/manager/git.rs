//! A session's worktree through git: its diff against the base, checkpoints and rewinds, and
//! the git operations on its branch (status, stage, commit, push, merge…).

use std::path::{Path, PathBuf};

use super::actor::SessionHandle;
use super::{SessionError, SessionManager};
use crate::vocab::{Event, SessionSpec, new_item_id};
use crate::workspace;

/// What a git operation leaves: the status after it, the commit it made, the pull request
/// it opened.
#[derive(Debug, Clone)]
pub struct GitOutcome {
    pub status: workspace::operations::Status,
    pub commit: Option<String>,
    pub pull_request: Option<String>,
}

/// A git operation on a session's branch (`tether/session/git`).
#[derive(Debug, Clone, Copy)]
pub struct GitRequest<'a> {
    pub operation: workspace::operations::Operation,
    pub paths: Option<&'a [String]>,
    /// A commit's message.
    pub message: Option<&'a str>,
    /// The branch of `pullBranch`.
    pub branch: Option<&'a str>,
    /// A pull request's title and description.
    pub title: Option<&'a str>,
    pub body: Option<&'a str>,
}

impl GitRequest<'_> {
    /// `operation` with nothing more said.
    pub fn of(operation: workspace::operations::Operation) -> Self {
        GitRequest {
            operation,
            paths: None,
            message: None,
            branch: None,
            title: None,
            body: None,
        }
    }
}

impl SessionManager {
    /// The session's changes against its base branch (a trial's: against its task's base
    /// commit), untracked files included.
    pub async fn diff(&self, id: &str) -> Result<Vec<workspace::FileDiff>, SessionError> {
        let view = self.view(id)?;
        let spec = &view.spec;
        if !view.worktree_ready || !spec.worktree.exists() {
            return Ok(Vec::new());
        }
        // An index of its own, per diff: a diff may be asked for while a command uses the
        // session's index, and while another diff (a review, a hook, apply) runs.
        let index = self
            .private_index(spec)
            .with_file_name(format!("tether-diff-index-{}", new_item_id()));
        if let Some(parent) = index.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let worktree = workspace::SessionWorktree::pin(&spec.repo, &spec.worktree)?;
        let files = checkpoints(spec, &worktree, &index)
            // A task's trial against the commit every trial started from: once one is merged
            // into the base branch, its own work must still show.
            .diff(spec.base_commit.as_deref().unwrap_or(&spec.base_branch))
            .await;
        let _ = std::fs::remove_file(&index);
        Ok(files?)
    }

    /// The session's checkpoints, oldest first, each with what it changed since the one
    /// before (no files once the worktree is gone).
    pub async fn checkpoints(&self, id: &str) -> Result<Vec<CheckpointEntry>, SessionError> {
        let snapshot = self.get(id, 0)?;
        let view = self.view(id)?;
        let spec = &view.spec;
        let mut undone = std::collections::HashMap::new();
        let mut entries = Vec::new();
        for record in &snapshot.events {
            match &record.event {
                Event::Checkpoint { name, commit } => entries.push(CheckpointEntry {
                    name: name.clone(),
                    commit: commit.clone(),
                    at: record.at,
                    undoes: None,
                    files: Vec::new(),
                }),
                Event::Rewound { name, undo } => {
                    undone.insert(undo.clone(), name.clone());
                }
                _ => {}
            }
        }
        for entry in &mut entries {
            entry.undoes = undone.get(&entry.name).cloned();
        }
        if !spec.worktree.exists() {
            return Ok(entries);
        }
        let worktree = workspace::SessionWorktree::pin(&spec.repo, &spec.worktree)?;
        let index = self.private_index(spec);
        let checkpoints = checkpoints(spec, &worktree, &index);
        let base = spec.base_commit.as_deref().unwrap_or(&spec.base_branch);
        let mut previous: Option<String> = None;
        for entry in &mut entries {
            entry.files = checkpoints
                .changes_between(previous.as_deref(), &entry.commit, base)
                .await
                .unwrap_or_default();
            previous = Some(entry.commit.clone());
        }
        Ok(entries)
    }

    /// Puts the worktree back to checkpoint `name` (`turn-<n>`, or the `before-rewind-<k>` a
    /// rewind leaves, which undoes it). Returns the checkpoint that undoes this rewind.
    pub async fn rewind(&self, id: &str, name: &str) -> Result<String, SessionError> {
        let handle = self.writable_handle(id)?;
        let (spec, rewinds) = handle
            .run(|actor| {
                actor.require_idle("rewind")?;
                Ok((actor.state.spec.clone(), actor.state.rewinds))
            })
            .await?;
        let rewound = self.restore_checkpoint(&spec, rewinds, name).await?;
        let undo = rewound.undo.clone();
        handle
            .run(move |actor| {
                for event in rewound.events() {
                    actor.emit(event)?;
                }
                Ok(())
            })
            .await?;
        Ok(undo)
    }

    /// Puts the worktree back to checkpoint `name`, first recording what it was as checkpoint
    /// `before-rewind-<rewinds + 1>`; what to record once it is done.
    pub(super) async fn restore_checkpoint(
        &self,
        spec: &SessionSpec,
        rewinds: u64,
        name: &str,
    ) -> Result<Rewound, SessionError> {
        let index = self.private_index(spec);
        if let Some(parent) = index.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let worktree = workspace::SessionWorktree::pin(&spec.repo, &spec.worktree)?;
        let checkpoints = checkpoints(spec, &worktree, &index);
        if !checkpoints.exists(name).await {
            return Err(SessionError::InvalidParams {
                field: "checkpoint",
                message: format!("session {:?} has no checkpoint {name:?}", spec.name),
            });
        }
        let undo = format!("before-rewind-{}", rewinds + 1);
        let undo_commit = checkpoints.record(&undo).await?;
        checkpoints.restore(name).await?;
        Ok(Rewound {
            name: name.to_owned(),
            undo,
            undo_commit,
        })
    }

    /// Runs a git operation on the session's branch (status any time; the others only while
    /// the agent is not working). Answers with the status after it, and the commit made.
    /// Only a merge into the base waits for the repository's lock: a push or pull holds no
    /// lock while it talks to the remote.
    pub async fn git(&self, id: &str, request: GitRequest<'_>) -> Result<GitOutcome, SessionError> {
        use workspace::operations::{Operation, Refusal};
        let GitRequest {
            operation,
            paths,
            message,
            branch,
            title,
            body,
        } = request;
        let handle = if operation.writes() {
            self.writable_handle(id)?
        } else {
            self.handle(id)?
        };
        let view = handle.view();
        if operation.writes() && view.info.status.is_active() {
            return Err(SessionError::InvalidState {
                name: view.spec.name.clone(),
                status: view.info.status,
                operation: "run a git operation on",
                hint: "; wait for the turn to end or stop the session",
            });
        }
        if !view.worktree_ready || !view.spec.worktree.exists() {
            return Err(SessionError::InvalidState {
                name: view.spec.name.clone(),
                status: view.info.status,
                operation: "run a git operation on",
                hint: "; it has no worktree",
            });
        }
        let spec = &view.spec;
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
        let mut pull_request = None;
        {
            // Merging into the base touches the user's repository: one writer there at a time
            // (worktrees are added and removed under the same lock). Everything else changes
            // only this session's branch and worktree, where git's own locks suffice.
            let worktree_lock = self.worktree_lock(&spec.repo);
            let _serialized = match operation {
                Operation::MergeToBase => Some(worktree_lock.lock().await),
                _ => None,
            };
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
                Operation::Pr => {
                    let url = git.pull_request(title, body).await.map_err(refusal)?;
                    handle
                        .run({
                            let url = url.clone();
                            move |actor| Ok(actor.emit(Event::PullRequest { url })?)
                        })
                        .await?;
                    pull_request = Some(url);
                }
            }
        }
        let status = git.status().await.map_err(refusal)?;
        Ok(GitOutcome {
            status,
            commit,
            pull_request,
        })
    }

    /// Commits everything in the session's worktree (a trial being promoted), as the user;
    /// the commit, or `None` when everything was committed already.
    pub(super) async fn commit_session_work(
        &self,
        id: &str,
        message: &str,
    ) -> Result<Option<String>, SessionError> {
        use workspace::operations::Operation;
        let staged = self.git(id, GitRequest::of(Operation::Stage)).await?;
        if staged.status.files.is_empty() {
            return Ok(None);
        }
        let committed = self
            .git(
                id,
                GitRequest {
                    message: Some(message),
                    ..GitRequest::of(Operation::Commit)
                },
            )
            .await?;
        Ok(committed.commit)
    }

    /// The session's private index file (shared with the tools' before/after comparison). It
    /// is kept out of the temp dir, which the agent's commands may write: an index they could
    /// edit could hide their changes from diffs and reviews.
    pub(super) fn private_index(&self, spec: &SessionSpec) -> PathBuf {
        self.inner.home.join("private").join(&spec.id).join("index")
    }

    /// After a turn that changed files, records checkpoint `turn-<n>`; returns whether the
    /// turn changed files. A failure is logged, not fatal: the turn's work is in the worktree
    /// either way.
    pub(super) async fn record_turn_checkpoint(
        &self,
        handle: &SessionHandle,
        spec: &SessionSpec,
    ) -> Result<bool, SessionError> {
        let (changed, turn) = handle
            .run(|actor| Ok((actor.state.changed_since_checkpoint, actor.state.turns)))
            .await?;
        if !changed {
            return Ok(false);
        }
        self.record_checkpoint(handle, spec, format!("turn-{turn}"))
            .await;
        Ok(true)
    }

    /// Records the worktree as checkpoint `name` and tells the session. A failure is logged,
    /// not fatal: what it would have kept is in the worktree either way.
    pub(super) async fn record_checkpoint(
        &self,
        handle: &SessionHandle,
        spec: &SessionSpec,
        name: String,
    ) {
        let index = self.private_index(spec);
        if let Some(parent) = index.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let recorded = match workspace::SessionWorktree::pin(&spec.repo, &spec.worktree) {
            Ok(worktree) => checkpoints(spec, &worktree, &index).record(&name).await,
            Err(error) => Err(error),
        };
        match recorded {
            Ok(commit) => {
                handle.tell(move |actor| {
                    if let Err(error) = actor.emit(Event::Checkpoint { name, commit }) {
                        tracing::warn!("session {}: {error}", actor.id);
                    }
                });
            }
            Err(error) => tracing::warn!(
                "session {}: cannot record checkpoint {name}: {error}",
                handle.id
            ),
        }
    }
}

/// The checkpoint of a new worktree, before the agent's first turn: where an edit of the
/// first message goes back to.
pub(super) const START_CHECKPOINT: &str = "start";

/// A rewind done on disk, to be recorded: checkpoint `undo` holds what the worktree was.
pub(super) struct Rewound {
    name: String,
    pub undo: String,
    undo_commit: String,
}

impl Rewound {
    /// The `checkpoint` of the undo, then the `rewound`.
    pub fn events(self) -> [Event; 2] {
        [
            Event::Checkpoint {
                name: self.undo.clone(),
                commit: self.undo_commit,
            },
            Event::Rewound {
                name: self.name,
                undo: self.undo,
            },
        ]
    }
}

/// Ends what a session's commands or hooks left running and puts back the worktree's `.git`
/// if they changed it (Tether's git does not read it; the user's and the agent's do).
pub(super) fn end_programs(session_id: &str, worktree: &workspace::SessionWorktree) {
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

/// One checkpoint of a session's timeline: when it was recorded, the rewind it undoes (a
/// `before-rewind-<k>`: the checkpoint that rewind went to), and the files it changed since
/// the one before.
#[derive(Debug, Clone)]
pub struct CheckpointEntry {
    pub name: String,
    pub commit: String,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    pub undoes: Option<String>,
    pub files: Vec<workspace::TreeChange>,
}

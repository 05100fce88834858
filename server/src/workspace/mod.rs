//! Git: finding the repository, checking branches, making and removing session worktrees.
//!
//! Reads go through gix. `git worktree add/remove` and `git branch -D` go through the git
//! CLI, because gix has no API to create or remove linked worktrees yet (docs/architecture.md
//! keeps that list); every git command runs through [`git`], hardened, and in a session
//! worktree with its git directory pinned ([`worktree`]). Only branches under `tether/` are
//! ever deleted.

mod checkpoints;
pub mod edits;
pub mod file_index;
pub mod git;
pub mod operations;
pub mod pull_request;
pub mod snapshot;
pub mod worktree;

use std::path::{Path, PathBuf};

pub use checkpoints::{Checkpoints, FileDiff, TreeChange};
use git::GitPlace;
pub use worktree::SessionWorktree;

/// The branch prefix of every session branch, and the only branches Tether deletes.
pub const SESSION_BRANCH_PREFIX: &str = "tether/";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path} is not inside a git repository; run `git init` there (and commit once) first")]
    NotARepository { path: PathBuf },
    #[error("{path} is a bare repository; sessions need a repository with a work tree")]
    Bare { path: PathBuf },
    #[error("{repo} has no commits yet; commit once so a session has a base to branch from")]
    NoCommits { repo: PathBuf },
    #[error(
        "{repo} has a detached HEAD; name a base branch for the session (`baseBranch`/`--base`)"
    )]
    DetachedHead { repo: PathBuf },
    #[error("base branch {branch:?} does not exist in {repo}")]
    MissingBranch { repo: PathBuf, branch: String },
    #[error("branch {branch:?} already exists in {repo}; choose another session name")]
    BranchExists { repo: PathBuf, branch: String },
    #[error("{path} already exists; remove it or choose another session name")]
    WorktreePathExists { path: PathBuf },
    #[error("cannot read the repository at {repo}: {message}")]
    Read { repo: PathBuf, message: String },
    #[error("`git {command}` failed in {repo}: {stderr}")]
    Command {
        repo: PathBuf,
        command: String,
        stderr: String,
    },
    #[error("cannot run git (is it installed and on PATH?): {0}")]
    Spawn(#[source] std::io::Error),
}

/// A repository as a session sees it.
#[derive(Debug, Clone)]
pub struct Repository {
    /// The top of the work tree, canonicalized.
    pub root: PathBuf,
}

/// Finds the repository that contains `path`.
pub fn discover(path: &Path) -> Result<Repository, GitError> {
    let not_a_repo = || GitError::NotARepository {
        path: path.to_owned(),
    };
    let canonical = path.canonicalize().map_err(|_| not_a_repo())?;
    let repository = gix::discover(&canonical).map_err(|_| not_a_repo())?;
    let root = repository.workdir().ok_or_else(|| GitError::Bare {
        path: canonical.clone(),
    })?;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    Ok(Repository { root })
}

impl Repository {
    fn open(&self) -> Result<gix::Repository, GitError> {
        gix::open(&self.root).map_err(|error| GitError::Read {
            repo: self.root.clone(),
            message: error.to_string(),
        })
    }

    /// The branch to start from: `requested` if given (it must exist), else the branch the
    /// user's checkout is on.
    pub fn resolve_base_branch(&self, requested: Option<&str>) -> Result<String, GitError> {
        let repository = self.open()?;
        let branch = match requested {
            Some(branch) => branch
                .strip_prefix("refs/heads/")
                .unwrap_or(branch)
                .to_owned(),
            None => {
                let head = repository.head_name().map_err(|error| GitError::Read {
                    repo: self.root.clone(),
                    message: error.to_string(),
                })?;
                match head {
                    Some(name) => name.shorten().to_string(),
                    None => {
                        return Err(GitError::DetachedHead {
                            repo: self.root.clone(),
                        });
                    }
                }
            }
        };
        if !self.branch_exists_in(&repository, &branch)? {
            if requested.is_none() {
                return Err(GitError::NoCommits {
                    repo: self.root.clone(),
                });
            }
            return Err(GitError::MissingBranch {
                repo: self.root.clone(),
                branch,
            });
        }
        Ok(branch)
    }

    pub fn branch_exists(&self, branch: &str) -> Result<bool, GitError> {
        let repository = self.open()?;
        self.branch_exists_in(&repository, branch)
    }

    fn branch_exists_in(
        &self,
        repository: &gix::Repository,
        branch: &str,
    ) -> Result<bool, GitError> {
        let full_name = format!("refs/heads/{branch}");
        match repository.try_find_reference(full_name.as_str()) {
            Ok(reference) => Ok(reference.is_some()),
            // A name git cannot even store is a branch that does not exist.
            Err(_) => Ok(false),
        }
    }

    /// Checks out the files of a worktree [`Repository::add_worktree_entry`] made. Worktrees of
    /// one repository may be checked out at the same time (only the entries are serialized).
    /// On failure the caller removes the worktree (under its lock).
    pub async fn check_out_worktree(&self, path: &Path) -> Result<(), GitError> {
        let worktree = SessionWorktree::pin(&self.root, path)?;
        // Parallel checkout (one worker per core) makes a large worktree several times
        // faster to check out than git's default of one.
        git::tether(
            worktree.place(),
            &[
                "-c",
                "checkout.workers=0",
                "reset",
                "--hard",
                "--quiet",
                "HEAD",
            ],
            None,
        )
        .await
        .map(drop)
    }

    /// Forgets worktree entries whose folders are gone.
    pub async fn prune_worktrees(&self) -> Result<(), GitError> {
        self.git(&["worktree", "prune"]).await
    }

    /// Makes the entry of a linked worktree at `path` on a new branch from `base`, without
    /// its files ([`Repository::check_out_worktree`] checks them out). `git worktree add`s
    /// of one repository must not run at the same time; this is the part that must be
    /// serialized, and it is quick. On failure nothing is left behind: no folder, no branch,
    /// no worktree entry.
    pub async fn add_worktree_entry(
        &self,
        path: &Path,
        branch: &str,
        base: &str,
    ) -> Result<(), GitError> {
        if path.exists() {
            return Err(GitError::WorktreePathExists {
                path: path.to_owned(),
            });
        }
        if self.branch_exists(branch)? {
            return Err(GitError::BranchExists {
                repo: self.root.clone(),
                branch: branch.to_owned(),
            });
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| GitError::Command {
                repo: self.root.clone(),
                command: "worktree add".into(),
                stderr: format!("cannot create {}: {error}", parent.display()),
            })?;
        }
        let path_arg = path.to_string_lossy();
        let result = self
            .git(&[
                "worktree",
                "add",
                "--quiet",
                "--no-checkout",
                "-b",
                branch,
                &path_arg,
                base,
            ])
            .await;
        if result.is_err() {
            // Undo whatever part git managed before failing.
            let _ = self
                .git(&["worktree", "remove", "--force", &path_arg])
                .await;
            let _ = std::fs::remove_dir_all(path);
            let _ = self.git(&["worktree", "prune"]).await;
            let _ = self.delete_session_branch(branch).await;
        }
        result
    }

    /// Removes a session's worktree and its `tether/` branch. Missing pieces are not errors:
    /// delete must finish even when the user removed the folder by hand.
    pub async fn remove_worktree(&self, path: &Path, branch: &str) -> Result<(), GitError> {
        if path.exists() {
            let path_arg = path.to_string_lossy();
            self.git(&["worktree", "remove", "--force", &path_arg])
                .await?;
        }
        self.git(&["worktree", "prune"]).await?;
        self.delete_session_branch(branch).await
    }

    async fn delete_session_branch(&self, branch: &str) -> Result<(), GitError> {
        if !branch.starts_with(SESSION_BRANCH_PREFIX) {
            // Never touch a branch Tether did not make, whatever the log says.
            return Ok(());
        }
        if self.branch_exists(branch)? {
            self.git(&["branch", "-D", "--", branch]).await?;
        }
        Ok(())
    }

    async fn git(&self, args: &[&str]) -> Result<(), GitError> {
        git::tether(GitPlace::Repository(&self.root), args, None)
            .await
            .map(drop)
    }

    /// The commit `branch` points at now: where a task's trials all start from.
    pub async fn tip_of(&self, branch: &str) -> Result<String, GitError> {
        let name = format!("refs/heads/{branch}^{{commit}}");
        git::tether(
            GitPlace::Repository(&self.root),
            &["rev-parse", "--verify", "--quiet", &name],
            None,
        )
        .await
        .map(|commit| commit.trim().to_owned())
    }
}

/// Adds `pattern` to the repository's `info/exclude` (local, never committed) unless it is
/// there already.
pub async fn exclude_locally(repo: &Path, pattern: &str) -> Result<(), GitError> {
    let relative = git::tether(
        GitPlace::Repository(repo),
        &["rev-parse", "--git-path", "info/exclude"],
        None,
    )
    .await?;
    let path = repo.join(relative);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current.lines().any(|line| line.trim() == pattern) {
        return Ok(());
    }
    let io_error = |error: std::io::Error| GitError::Command {
        repo: repo.to_owned(),
        command: format!("write {}", path.display()),
        stderr: error.to_string(),
    };
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(io_error)?;
    }
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(pattern);
    text.push('\n');
    std::fs::write(&path, text).map_err(io_error)
}

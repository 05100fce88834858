//! Git: finding the repository, checking branches, making and removing session worktrees.
//!
//! Reads go through gix. `git worktree add/remove` and `git branch -D` go through the git
//! CLI, because gix has no API to create or remove linked worktrees yet (docs/architecture.md
//! keeps that list). Only branches under `tether/` are ever deleted.

use std::path::{Path, PathBuf};
use std::process::Stdio;

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

    /// Makes a linked worktree at `path` on a new branch from `base`. On failure nothing is
    /// left behind: no folder, no branch, no worktree entry.
    pub async fn add_worktree(
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
        // Parallel checkout (one worker per core) makes a large worktree several times
        // faster to check out than git's default of one.
        let result = self
            .git(&[
                "-c",
                "checkout.workers=0",
                "worktree",
                "add",
                "--quiet",
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
        git_output(&self.root, args, None).await.map(drop)
    }
}

/// Runs git in `dir` (with `index` as its index file when given); returns trimmed stdout.
async fn git_output(dir: &Path, args: &[&str], index: Option<&Path>) -> Result<String, GitError> {
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        // Checkpoint commits are tether's, whoever the user is.
        .env("GIT_AUTHOR_NAME", "tether")
        .env("GIT_AUTHOR_EMAIL", "tether@localhost")
        .env("GIT_COMMITTER_NAME", "tether")
        .env("GIT_COMMITTER_EMAIL", "tether@localhost");
    if let Some(index) = index {
        command.env("GIT_INDEX_FILE", index);
    }
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(GitError::Spawn)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(GitError::Command {
            repo: dir.to_owned(),
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// One changed file of a session's diff.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDiff {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// `added`, `modified`, `deleted` or `renamed`.
    pub status: &'static str,
    pub additions: u64,
    pub deletions: u64,
    pub patch: String,
}

/// Checkpoints of a session's worktree: private refs `refs/tether/<session>/<name>`, each a
/// commit of every file in the worktree (honouring .gitignore), built through the session's
/// own index file so the worktree's index is never touched.
pub struct Checkpoints<'a> {
    pub worktree: &'a Path,
    pub session_id: &'a str,
    /// The session's private index file.
    pub index: &'a Path,
}

impl Checkpoints<'_> {
    fn reference(&self, name: &str) -> String {
        format!("refs/tether/{}/{name}", self.session_id)
    }

    /// Records the worktree as checkpoint `name`; returns its commit id.
    pub async fn record(&self, name: &str) -> Result<String, GitError> {
        let index = Some(self.index);
        git_output(self.worktree, &["add", "-A"], index).await?;
        let tree = git_output(self.worktree, &["write-tree"], index).await?;
        let parent = git_output(self.worktree, &["rev-parse", "HEAD"], None).await?;
        let message = format!("tether checkpoint {name}");
        let commit = git_output(
            self.worktree,
            &["commit-tree", &tree, "-p", &parent, "-m", &message],
            None,
        )
        .await?;
        git_output(
            self.worktree,
            &["update-ref", &self.reference(name), &commit],
            None,
        )
        .await?;
        Ok(commit)
    }

    /// Puts the worktree back to checkpoint `name`: files it had are restored, files made
    /// since are removed.
    pub async fn restore(&self, name: &str) -> Result<(), GitError> {
        let index = Some(self.index);
        let commit = git_output(
            self.worktree,
            &[
                "rev-parse",
                "--verify",
                &format!("{}^{{commit}}", self.reference(name)),
            ],
            None,
        )
        .await?;
        // The private index first describes the worktree as it is, so that read-tree knows
        // which files to remove.
        git_output(self.worktree, &["add", "-A"], index).await?;
        git_output(
            self.worktree,
            &["read-tree", "-u", "--reset", &commit],
            index,
        )
        .await?;
        Ok(())
    }

    /// The worktree's changes against `base` (a branch or commit): every file that differs,
    /// untracked ones included, with line counts and its patch.
    pub async fn diff(&self, base: &str) -> Result<Vec<FileDiff>, GitError> {
        let index = Some(self.index);
        git_output(self.worktree, &["add", "-A"], index).await?;
        let tree = git_output(self.worktree, &["write-tree"], index).await?;
        let base_tree = format!("{base}^{{tree}}");
        let status = git_output(
            self.worktree,
            &["diff-tree", "-r", "-M", "--name-status", &base_tree, &tree],
            None,
        )
        .await?;
        let numstat = git_output(
            self.worktree,
            &["diff-tree", "-r", "-M", "--numstat", &base_tree, &tree],
            None,
        )
        .await?;
        let mut files = Vec::new();
        for (status_line, count_line) in status.lines().zip(numstat.lines()) {
            let mut status_fields = status_line.split('\t');
            let code = status_fields.next().unwrap_or_default();
            let paths: Vec<&str> = status_fields.collect();
            let mut counts = count_line.split('\t');
            let additions = counts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let deletions = counts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let (status, old_path, path) = match (code.chars().next(), paths.as_slice()) {
                (Some('R'), [from, to]) => ("renamed", Some((*from).to_owned()), (*to).to_owned()),
                (Some('A'), [path]) => ("added", None, (*path).to_owned()),
                (Some('D'), [path]) => ("deleted", None, (*path).to_owned()),
                (_, [path, ..]) => ("modified", None, (*path).to_owned()),
                _ => continue,
            };
            let mut patch_args = vec!["diff", "-M", &base_tree, &tree, "--"];
            if let Some(old_path) = &old_path {
                patch_args.push(old_path);
            }
            patch_args.push(&path);
            let patch = git_output(self.worktree, &patch_args, None).await?;
            files.push(FileDiff {
                path,
                old_path,
                status,
                additions,
                deletions,
                patch,
            });
        }
        Ok(files)
    }

    /// Whether checkpoint `name` exists.
    pub async fn exists(&self, name: &str) -> bool {
        git_output(
            self.worktree,
            &["rev-parse", "--verify", "--quiet", &self.reference(name)],
            None,
        )
        .await
        .is_ok()
    }

    /// Deletes every checkpoint of the session (run from the repository).
    pub async fn delete_all(repo: &Path, session_id: &str) -> Result<(), GitError> {
        let refs = git_output(
            repo,
            &[
                "for-each-ref",
                "--format=%(refname)",
                &format!("refs/tether/{session_id}/"),
            ],
            None,
        )
        .await?;
        for reference in refs.lines().filter(|line| !line.is_empty()) {
            git_output(repo, &["update-ref", "-d", reference], None).await?;
        }
        Ok(())
    }
}

//! Git: finding the repository, checking branches, making and removing session worktrees.
//!
//! Reads go through gix. `git worktree add/remove` and `git branch -D` go through the git
//! CLI, because gix has no API to create or remove linked worktrees yet (docs/architecture.md
//! keeps that list). Only branches under `tether/` are ever deleted.

pub mod edits;
pub mod operations;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

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

/// Adds `pattern` to the repository's `info/exclude` (local, never committed) unless it is
/// there already.
pub async fn exclude_locally(repo: &Path, pattern: &str) -> Result<(), GitError> {
    let relative = git_output(repo, &["rev-parse", "--git-path", "info/exclude"], None).await?;
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

/// The contents of the blobs `specs` name (`<tree-ish>:<path>`), in order, read through one
/// `git cat-file --batch`.
async fn read_blobs<'a>(
    dir: &Path,
    specs: impl Iterator<Item = &'a str>,
) -> Result<Vec<Vec<u8>>, GitError> {
    let mut input = String::new();
    for spec in specs {
        input.push_str(spec);
        input.push('\n');
    }
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let failed = |stderr: String| GitError::Command {
        repo: dir.to_owned(),
        command: "cat-file --batch".to_owned(),
        stderr,
    };
    let mut child = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["cat-file", "--batch"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(GitError::Spawn)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| failed("no stdin".to_owned()))?;
    // Written beside the read, so that a large answer never blocks the question.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let output = child.wait_with_output().await.map_err(GitError::Spawn)?;
    let _ = writer.await;
    if !output.status.success() {
        return Err(failed(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    let mut rest = output.stdout.as_slice();
    let mut blobs = Vec::new();
    while !rest.is_empty() {
        let header_end = rest
            .iter()
            .position(|&byte| byte == b'\n')
            .ok_or_else(|| failed("a truncated answer".to_owned()))?;
        let header = String::from_utf8_lossy(&rest[..header_end]).into_owned();
        let size: usize = match header.rsplit(' ').next().map(str::parse) {
            Some(Ok(size)) if header.split(' ').nth(1) == Some("blob") => size,
            _ => return Err(failed(format!("unexpected answer {header:?}"))),
        };
        let body_start = header_end + 1;
        let body = rest
            .get(body_start..body_start + size)
            .ok_or_else(|| failed("a truncated blob".to_owned()))?;
        blobs.push(body.to_vec());
        rest = rest.get(body_start + size + 1..).unwrap_or_default();
    }
    Ok(blobs)
}

/// Runs git in `dir` (with `index` as its index file when given); returns trimmed stdout.
/// Commits it makes (checkpoints) are tether's, whoever the user is.
async fn git_output(dir: &Path, args: &[&str], index: Option<&Path>) -> Result<String, GitError> {
    run_git(dir, args, index, true).await
}

/// Runs git in `dir` as the user (their identity on commits and merges).
async fn git_as_user(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    run_git(dir, args, None, false).await
}

async fn run_git(
    dir: &Path,
    args: &[&str],
    index: Option<&Path>,
    as_tether: bool,
) -> Result<String, GitError> {
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0");
    if as_tether {
        command
            .env("GIT_AUTHOR_NAME", "tether")
            .env("GIT_AUTHOR_EMAIL", "tether@localhost")
            .env("GIT_COMMITTER_NAME", "tether")
            .env("GIT_COMMITTER_EMAIL", "tether@localhost");
    }
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
    /// A unified diff whose `@@` hunks are numbered from 0 by `tether/session/apply`.
    pub patch: String,
    /// The file at the base (`None` when added); `None` too when either side is binary.
    #[serde(skip)]
    pub base_text: Option<String>,
    /// The file in the worktree (`None` when deleted, or binary).
    #[serde(skip)]
    pub new_text: Option<String>,
    /// Either side is not UTF-8 text.
    pub binary: bool,
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
        // The session's own changes: against where it forked, so that commits made on the
        // base branch since are not shown as the session undoing them.
        let base = git_output(self.worktree, &["merge-base", base, "HEAD"], None)
            .await
            .unwrap_or_else(|_| base.to_owned());
        let base = base.as_str();
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
        let mut changes = Vec::new();
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
            changes.push((status, old_path, path, additions, deletions));
        }
        // Both sides of every file through one `git cat-file --batch`.
        let mut wanted = Vec::new();
        for (status, old_path, path, ..) in &changes {
            let base_path = old_path.as_deref().unwrap_or(path);
            wanted.push((*status != "added").then(|| format!("{base}:{base_path}")));
            wanted.push((*status != "deleted").then(|| format!("{tree}:{path}")));
        }
        let blobs = read_blobs(self.worktree, wanted.iter().flatten().map(String::as_str)).await?;
        let mut blobs = blobs.into_iter();
        let mut files = Vec::new();
        for ((status, old_path, path, additions, deletions), sides) in
            changes.into_iter().zip(wanted.chunks(2))
        {
            let mut next_side = |wanted: &Option<String>| -> Option<Vec<u8>> {
                wanted.as_ref().and_then(|_| blobs.next())
            };
            let base_bytes = next_side(&sides[0]);
            let new_bytes = next_side(&sides[1]);
            let text = |bytes: &Option<Vec<u8>>| match bytes {
                None => Some(String::new()),
                Some(bytes) => String::from_utf8(bytes.clone()).ok(),
            };
            let (base_text, new_text, binary) = match (text(&base_bytes), text(&new_bytes)) {
                (Some(base_text), Some(new_text)) => (Some(base_text), Some(new_text), false),
                _ => (None, None, true),
            };
            let old_name = old_path.as_deref().unwrap_or(&path);
            let patch = match (&base_text, &new_text) {
                (Some(base_text), Some(new_text)) => edits::unified_patch(
                    &if base_bytes.is_some() {
                        format!("a/{old_name}")
                    } else {
                        "/dev/null".to_owned()
                    },
                    &if new_bytes.is_some() {
                        format!("b/{path}")
                    } else {
                        "/dev/null".to_owned()
                    },
                    base_text,
                    new_text,
                ),
                _ => format!("Binary files a/{old_name} and b/{path} differ\n"),
            };
            files.push(FileDiff {
                base_text: base_text.filter(|_| base_bytes.is_some()),
                new_text: new_text.filter(|_| new_bytes.is_some()),
                path,
                old_path,
                status,
                additions,
                deletions,
                patch,
                binary,
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

//! Git operations on a session's branch, as the user runs them from the editor: status,
//! stage, unstage, discard, commit, push, pull, pull a named branch, merge into the base
//! branch, pull the base in.
//!
//! They go through the git CLI, as the user (their identity, their remotes and credentials
//! helpers): gix has no porcelain for staging, merging or pushing with the user's
//! configuration yet. Each refuses clearly when it cannot proceed and leaves the repository
//! as it was: a merge that conflicts is aborted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::git::{self, GitPlace};
use super::{GitError, SessionWorktree};

/// What the user asks for (`op` in `tether/session/git`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    Status,
    Stage,
    Unstage,
    Discard,
    Commit,
    Push,
    Pull,
    PullBranch,
    MergeToBase,
    PullFromBase,
    /// Push the branch and open a pull request into the base branch (`gh`).
    Pr,
}

impl Operation {
    /// Whether it changes files or history (and so waits until the agent is not working).
    pub fn writes(self) -> bool {
        self != Operation::Status
    }
}

/// Where the operation runs.
pub struct SessionGit<'a> {
    /// The session's worktree (on its branch), with its pinned git directory.
    pub worktree: &'a SessionWorktree,
    /// The user's repository (its main work tree).
    pub repo: &'a Path,
    pub branch: &'a str,
    pub base_branch: &'a str,
}

/// The worktree's state: its files, and how far the branch is from its base and upstream.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub branch: String,
    pub base_branch: String,
    /// Commits on the session branch that the base branch lacks, and the other way round.
    pub ahead_of_base: u64,
    pub behind_base: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
    pub files: Vec<FileStatus>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Upstream {
    pub name: String,
    pub ahead: u64,
    pub behind: u64,
}

/// One file as `git status --porcelain` shows it: `index` and `worktree` are its two
/// status letters (`M`, `A`, `D`, `R`, `?`, ` `…).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FileStatus {
    pub path: String,
    pub index: String,
    pub worktree: String,
}

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Git(#[from] GitError),
}

fn refused(message: impl Into<String>) -> Refusal {
    Refusal::Refused(message.into())
}

impl SessionGit<'_> {
    async fn git(&self, args: &[&str]) -> Result<String, GitError> {
        git::as_user(self.worktree.place(), args).await
    }

    /// The paths given, checked to name files inside the worktree (every operation checks
    /// them, status included); `None` means all. Git takes them literally
    /// (`GIT_LITERAL_PATHSPECS`), so no pathspec magic gets through either.
    pub fn pathspecs(&self, paths: Option<&[String]>) -> Result<Option<Vec<String>>, Refusal> {
        let Some(paths) = paths else {
            return Ok(None);
        };
        if paths.is_empty() {
            return Err(refused("`paths` is empty; leave it out to mean every file"));
        }
        for path in paths {
            let relative = PathBuf::from(path);
            let outside = path.is_empty()
                || path.contains('\0')
                || relative.is_absolute()
                || relative.components().any(|part| match part {
                    std::path::Component::ParentDir
                    | std::path::Component::RootDir
                    | std::path::Component::Prefix(_) => true,
                    std::path::Component::Normal(name) => name == ".git",
                    std::path::Component::CurDir => false,
                });
            if outside {
                return Err(refused(format!(
                    "{path:?} is not a path inside the session's worktree"
                )));
            }
        }
        Ok(Some(paths.to_vec()))
    }

    pub async fn status(&self) -> Result<Status, Refusal> {
        let porcelain = self.git(&["status", "--porcelain=v1", "-z"]).await?;
        let mut files = Vec::new();
        let mut entries = porcelain.split('\0').filter(|entry| !entry.is_empty());
        while let Some(entry) = entries.next() {
            let (codes, path) = entry.split_at(entry.len().min(3));
            let mut letters = codes.chars();
            let index = letters.next().unwrap_or(' ');
            let worktree = letters.next().unwrap_or(' ');
            if index == 'R' || index == 'C' {
                entries.next(); // the name it was renamed or copied from
            }
            files.push(FileStatus {
                path: path.to_owned(),
                index: index.to_string(),
                worktree: worktree.to_string(),
            });
        }
        let (ahead_of_base, behind_base) = self.ahead_behind("HEAD", self.base_branch).await?;
        let upstream = match self
            .git(&[
                "rev-parse",
                "--abbrev-ref",
                "--symbolic-full-name",
                "@{upstream}",
            ])
            .await
        {
            Ok(name) if !name.is_empty() => {
                let (ahead, behind) = self.ahead_behind("HEAD", &name).await?;
                Some(Upstream {
                    name,
                    ahead,
                    behind,
                })
            }
            _ => None,
        };
        Ok(Status {
            branch: self.branch.to_owned(),
            base_branch: self.base_branch.to_owned(),
            ahead_of_base,
            behind_base,
            upstream,
            files,
        })
    }

    async fn ahead_behind(&self, ours: &str, theirs: &str) -> Result<(u64, u64), GitError> {
        let counts = self
            .git(&[
                "rev-list",
                "--left-right",
                "--count",
                &format!("{ours}...{theirs}"),
            ])
            .await?;
        let mut numbers = counts.split_whitespace().map(|n| n.parse().unwrap_or(0));
        Ok((numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)))
    }

    pub async fn stage(&self, paths: Option<&[String]>) -> Result<(), Refusal> {
        let mut args = vec!["add", "-A", "--"];
        let paths = self.pathspecs(paths)?;
        args.extend(paths.iter().flatten().map(String::as_str));
        self.git(&args).await?;
        Ok(())
    }

    pub async fn unstage(&self, paths: Option<&[String]>) -> Result<(), Refusal> {
        let mut args = vec!["reset", "-q", "HEAD", "--"];
        let paths = self.pathspecs(paths)?;
        args.extend(paths.iter().flatten().map(String::as_str));
        self.git(&args).await?;
        Ok(())
    }

    /// Throws away changes: tracked files go back to the last commit, untracked ones are
    /// removed (ignored files are kept).
    pub async fn discard(&self, paths: Option<&[String]>) -> Result<(), Refusal> {
        let paths = self.pathspecs(paths)?;
        let mut restore = vec!["checkout", "HEAD", "--"];
        let mut clean = vec!["clean", "-fdq", "--"];
        match &paths {
            Some(paths) => {
                // Only tracked paths can be checked out; the rest are untracked.
                let mut tracked = Vec::new();
                for path in paths {
                    if self
                        .git(&["cat-file", "-e", &format!("HEAD:{path}")])
                        .await
                        .is_ok()
                    {
                        tracked.push(path.as_str());
                    }
                }
                if !tracked.is_empty() {
                    restore.extend(tracked);
                    self.git(&restore).await?;
                }
                clean.extend(paths.iter().map(String::as_str));
                self.git(&clean).await?;
                // Staged-only additions of the paths leave the index too.
                let mut reset = vec!["reset", "-q", "HEAD", "--"];
                reset.extend(paths.iter().map(String::as_str));
                self.git(&reset).await?;
            }
            None => {
                self.git(&["reset", "-q", "--hard", "HEAD"]).await?;
                self.git(&["clean", "-fdq"]).await?;
            }
        }
        Ok(())
    }

    pub async fn commit(&self, message: Option<&str>) -> Result<String, Refusal> {
        let message = message
            .map(str::trim)
            .filter(|message| !message.is_empty())
            .ok_or_else(|| refused("a commit needs a `message`"))?;
        if self.git(&["diff", "--cached", "--quiet"]).await.is_ok() {
            return Err(refused("nothing is staged; stage files first"));
        }
        self.git(&["commit", "-q", "-m", message]).await?;
        Ok(self.git(&["rev-parse", "HEAD"]).await?)
    }

    async fn require_origin(&self) -> Result<(), Refusal> {
        let remotes = self.git(&["remote"]).await?;
        if remotes.lines().any(|remote| remote == "origin") {
            Ok(())
        } else {
            Err(refused(
                "the repository has no remote named origin; add one to push or pull",
            ))
        }
    }

    /// Pushes the session branch to origin (setting it as upstream). A push that is not a
    /// fast-forward is refused by the remote, and nothing changes.
    pub async fn push(&self) -> Result<(), Refusal> {
        self.require_origin().await?;
        match self
            .git(&["push", "--porcelain", "-u", "origin", self.branch])
            .await
        {
            Ok(_) => Ok(()),
            Err(GitError::Command { stderr, .. })
                if stderr.contains("non-fast-forward")
                    || stderr.contains("rejected")
                    || stderr.contains("fetch first") =>
            {
                Err(refused(format!(
                    "origin has commits on {} that this branch lacks (not a fast-forward); pull first",
                    self.branch
                )))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Fetches the branch from origin and fast-forwards to it; anything else is refused.
    pub async fn pull(&self) -> Result<(), Refusal> {
        self.require_origin().await?;
        self.git(&["fetch", "-q", "origin", self.branch]).await?;
        self.fast_forward("FETCH_HEAD", &format!("origin/{}", self.branch))
            .await
    }

    async fn fast_forward(&self, target: &str, name: &str) -> Result<(), Refusal> {
        match self.git(&["merge", "--ff-only", "-q", target]).await {
            Ok(_) => Ok(()),
            Err(GitError::Command { .. }) => Err(refused(format!(
                "{name} and this branch have both moved on (not a fast-forward); nothing was changed"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// Merges a branch of origin into the session branch.
    pub async fn pull_branch(&self, branch: Option<&str>) -> Result<(), Refusal> {
        let branch = branch
            .map(str::trim)
            .filter(|branch| !branch.is_empty())
            .ok_or_else(|| refused("pullBranch needs a `branch`"))?;
        // Git would take a name that starts with `-` for an option (`--upload-pack=…` runs a
        // program); no branch is named so.
        if branch.starts_with('-') {
            return Err(refused(format!("{branch:?} is not a branch name")));
        }
        self.require_origin().await?;
        self.git(&["fetch", "-q", "origin", "--", branch]).await?;
        self.merge_into(
            self.worktree.place(),
            "FETCH_HEAD",
            &format!("origin/{branch}"),
        )
        .await
    }

    /// Brings the base branch's new commits into the session branch.
    pub async fn pull_from_base(&self) -> Result<(), Refusal> {
        self.merge_into(self.worktree.place(), self.base_branch, self.base_branch)
            .await
    }

    /// Pushes the branch and opens a pull request into the base branch; its URL. What is not
    /// committed is not in a pull request, so uncommitted changes are refused, and so is a
    /// branch with nothing the base lacks.
    pub async fn pull_request(
        &self,
        title: Option<&str>,
        body: Option<&str>,
    ) -> Result<String, Refusal> {
        let uncommitted = self.git(&["status", "--porcelain", "-z"]).await?;
        let uncommitted = uncommitted
            .split('\0')
            .filter(|entry| !entry.is_empty())
            .count();
        if uncommitted > 0 {
            return Err(refused(format!(
                "{uncommitted} file(s) have changes that are not committed; commit them (or discard them) first, so the pull request has what you see"
            )));
        }
        let (ahead, _) = self.ahead_behind("HEAD", self.base_branch).await?;
        if ahead == 0 {
            return Err(refused(format!(
                "{} has no commit that {} lacks; commit the session's changes first",
                self.branch, self.base_branch
            )));
        }
        self.push().await?;
        let subject = self.git(&["log", "-1", "--format=%s"]).await?;
        let title = title
            .map(str::trim)
            .filter(|title| !title.is_empty())
            .unwrap_or(&subject);
        let body = body.unwrap_or_default();
        super::pull_request::PullRequest {
            repo: self.repo,
            head: self.branch,
            base: self.base_branch,
            title,
            body,
        }
        .open()
        .await
        .map_err(|declined| Refusal::Refused(declined.0))
    }

    /// Merges the session branch into the base branch, in the user's repository when the
    /// base is checked out there (its work tree must be clean), else as a fast-forward of
    /// the base branch.
    pub async fn merge_to_base(&self) -> Result<(), Refusal> {
        let checked_out = git::as_user(
            GitPlace::Repository(self.repo),
            &["symbolic-ref", "--quiet", "--short", "HEAD"],
        )
        .await
        .unwrap_or_default();
        if checked_out == self.base_branch {
            let dirty = git::as_user(
                GitPlace::Repository(self.repo),
                &["status", "--porcelain", "--untracked-files=no"],
            )
            .await?;
            if !dirty.is_empty() {
                return Err(refused(format!(
                    "{} has uncommitted changes in {}; commit or stash them first",
                    self.base_branch,
                    self.repo.display()
                )));
            }
            return self
                .merge_into(GitPlace::Repository(self.repo), self.branch, self.branch)
                .await;
        }
        match git::as_user(
            GitPlace::Repository(self.repo),
            &[
                "fetch",
                "-q",
                ".",
                &format!("{}:{}", self.branch, self.base_branch),
            ],
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(GitError::Command { .. }) => Err(refused(format!(
                "{} is not checked out and cannot be fast-forwarded to {}; check it out and merge again",
                self.base_branch, self.branch
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// `git merge` in `dir`; a conflict is aborted and refused, so nothing changes.
    async fn merge_into(
        &self,
        place: GitPlace<'_>,
        target: &str,
        name: &str,
    ) -> Result<(), Refusal> {
        match git::as_user(place, &["merge", "--no-edit", "-q", target]).await {
            Ok(_) => Ok(()),
            Err(GitError::Command { stderr, .. }) => {
                let conflicted = git::as_user(place, &["diff", "--name-only", "--diff-filter=U"])
                    .await
                    .unwrap_or_default();
                let _ = git::as_user(place, &["merge", "--abort"]).await;
                Err(refused(if conflicted.is_empty() {
                    format!("merging {name} failed, nothing was changed: {stderr}")
                } else {
                    format!(
                        "merging {name} conflicts in {}; nothing was changed",
                        conflicted.lines().collect::<Vec<_>>().join(", ")
                    )
                }))
            }
            Err(error) => Err(error.into()),
        }
    }
}

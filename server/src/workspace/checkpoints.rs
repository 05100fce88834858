//! Checkpoints of a session's worktree and its diff against the base, computed through the
//! session's private index (never the worktree's own).

use std::path::Path;

use super::git::{self, GitPlace};
use super::snapshot::DIFF_FILE_LIMIT;
use super::{GitError, SessionWorktree, edits, snapshot};

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

/// One file that differs between two trees, renames found, with git's line counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeChange {
    /// `added`, `deleted`, `modified` or `renamed` (as [`FileDiff::status`]).
    pub status: &'static str,
    /// The path before a rename.
    pub old_path: Option<String>,
    pub path: String,
    pub additions: u64,
    pub deletions: u64,
}

/// Checkpoints of a session's worktree: private refs `refs/tether/<session>/<name>`, each a
/// commit of every file in the worktree (honouring .gitignore), built through the session's
/// own index file so the worktree's index is never touched.
pub struct Checkpoints<'a> {
    pub worktree: &'a SessionWorktree,
    pub session_id: &'a str,
    /// The session's private index file.
    pub index: &'a Path,
}

impl Checkpoints<'_> {
    fn reference(&self, name: &str) -> String {
        format!("refs/tether/{}/{name}", self.session_id)
    }

    /// Records the worktree as checkpoint `name`; returns its commit id. In process when it
    /// can ([`snapshot::record`]); through git otherwise.
    pub async fn record(&self, name: &str) -> Result<String, GitError> {
        let message = format!("tether checkpoint {name}");
        match snapshot::record(self.worktree, self.index, &self.reference(name), &message).await {
            Ok(commit) => return Ok(commit),
            Err(error) => tracing::debug!("checkpoint {name} through git: {error}"),
        }
        let index = Some(self.index);
        git::add_everything(self.worktree.place(), self.index).await?;
        let tree = git::tether(self.worktree.place(), &["write-tree"], index).await?;
        let parent = git::tether(self.worktree.place(), &["rev-parse", "HEAD"], None).await?;
        let commit = git::tether(
            self.worktree.place(),
            &["commit-tree", &tree, "-p", &parent, "-m", &message],
            None,
        )
        .await?;
        git::tether(
            self.worktree.place(),
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
        let commit = git::tether(
            self.worktree.place(),
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
        git::add_everything(self.worktree.place(), self.index).await?;
        git::tether(
            self.worktree.place(),
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
        git::add_everything(self.worktree.place(), self.index).await?;
        let tree = git::tether(self.worktree.place(), &["write-tree"], index).await?;
        // The session's own changes: against where it forked, so that commits made on the
        // base branch since are not shown as the session undoing them.
        let base = git::tether(self.worktree.place(), &["merge-base", base, "HEAD"], None)
            .await
            .unwrap_or_else(|_| base.to_owned());
        let base = base.as_str();
        let changes = self
            .changed_files(&format!("{base}^{{tree}}"), &tree)
            .await?;
        // Both sides of every file through one `git cat-file --batch`.
        let mut wanted = Vec::new();
        for change in &changes {
            let base_path = change.old_path.as_deref().unwrap_or(&change.path);
            wanted.push((change.status != "added").then(|| format!("{base}:{base_path}")));
            wanted.push((change.status != "deleted").then(|| format!("{tree}:{}", change.path)));
        }
        let blobs = git::read_blobs(
            self.worktree.place(),
            wanted.iter().flatten().map(String::as_str),
            DIFF_FILE_LIMIT,
        )
        .await?;
        let mut blobs = blobs.into_iter();
        let mut files = Vec::new();
        for (change, sides) in changes.into_iter().zip(wanted.chunks(2)) {
            let TreeChange {
                status,
                old_path,
                path,
                additions,
                deletions,
            } = change;
            let mut next_side = |wanted: &Option<String>| -> Option<git::Blob> {
                wanted.as_ref().and_then(|_| blobs.next())
            };
            let base_bytes = next_side(&sides[0]);
            let new_bytes = next_side(&sides[1]);
            // Too large to show counts as binary: shown as such, never read.
            let text = |bytes: &Option<git::Blob>| match bytes {
                None => Some(String::new()),
                Some(git::Blob::Bytes(bytes)) => String::from_utf8(bytes.clone()).ok(),
                Some(git::Blob::TooLarge(_)) => None,
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
                _ => match [&base_bytes, &new_bytes]
                    .into_iter()
                    .find_map(|side| match side {
                        Some(git::Blob::TooLarge(size)) => Some(*size),
                        _ => None,
                    }) {
                    Some(size) => format!(
                        "Files a/{old_name} and b/{path} differ (a side of {size} bytes is too large to show)\n"
                    ),
                    None => format!("Binary files a/{old_name} and b/{path} differ\n"),
                },
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

    /// What changed from tree-ish `from` to `to`, file by file.
    async fn changed_files(&self, from: &str, to: &str) -> Result<Vec<TreeChange>, GitError> {
        let place = self.worktree.place();
        let names = ["diff-tree", "-r", "-M", "--name-status", from, to];
        let counts = ["diff-tree", "-r", "-M", "--numstat", from, to];
        let (status, numstat) = tokio::try_join!(
            git::tether(place, &names, None),
            git::tether(place, &counts, None)
        )?;
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
            changes.push(TreeChange {
                status,
                old_path,
                path,
                additions,
                deletions,
            });
        }
        Ok(changes)
    }

    /// What checkpoint commit `to` changed since commit `from` (`None`: since where the
    /// session forked from `base`), file by file with line counts.
    pub async fn changes_between(
        &self,
        from: Option<&str>,
        to: &str,
        base: &str,
    ) -> Result<Vec<TreeChange>, GitError> {
        let from = match from {
            Some(from) => from.to_owned(),
            None => git::tether(self.worktree.place(), &["merge-base", base, to], None)
                .await
                .unwrap_or_else(|_| base.to_owned()),
        };
        self.changed_files(
            &format!("{}^{{tree}}", from.trim()),
            &format!("{to}^{{tree}}"),
        )
        .await
    }

    /// Whether checkpoint `name` exists.
    pub async fn exists(&self, name: &str) -> bool {
        git::tether(
            self.worktree.place(),
            &["rev-parse", "--verify", "--quiet", &self.reference(name)],
            None,
        )
        .await
        .is_ok()
    }

    /// Deletes every checkpoint of the session (run from the repository).
    pub async fn delete_all(repo: &Path, session_id: &str) -> Result<(), GitError> {
        let refs = git::tether(
            GitPlace::Repository(repo),
            &[
                "for-each-ref",
                "--format=%(refname)",
                &format!("refs/tether/{session_id}/"),
            ],
            None,
        )
        .await?;
        for reference in refs.lines().filter(|line| !line.is_empty()) {
            git::tether(
                GitPlace::Repository(repo),
                &["update-ref", "-d", reference],
                None,
            )
            .await?;
        }
        Ok(())
    }
}

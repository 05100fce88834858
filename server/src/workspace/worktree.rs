//! A session's worktree with its git directory pinned.
//!
//! A linked worktree's `.git` is a one-line file (`gitdir: <repo>/.git/worktrees/<name>`)
//! inside the worktree, where the agent's commands can rewrite it. Tether therefore never
//! reads it: it finds the worktree's git directory in the repository's own records
//! (`<common dir>/worktrees/*/gitdir`, which point back at each worktree and live where the
//! sandbox cannot write), runs git with that directory ([`super::git::GitPlace::Worktree`]),
//! and puts the gitlink back after every command, so the user's and the agent's own git see
//! the right repository too.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::GitError;
use super::git::GitPlace;

/// A session worktree and the git directory Tether uses for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWorktree {
    pub work_tree: PathBuf,
    pub git_dir: PathBuf,
}

/// Paths compared as the file system sees them (symlinked temp dirs and all).
fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

impl SessionWorktree {
    /// Finds the git directory the repository at `repo` keeps for `work_tree`, from the
    /// repository's records alone.
    pub fn pin(repo: &Path, work_tree: &Path) -> Result<SessionWorktree, GitError> {
        let read_error = |message: String| GitError::Read {
            repo: repo.to_owned(),
            message,
        };
        let repository = gix::open(repo).map_err(|error| read_error(error.to_string()))?;
        let records = repository.common_dir().join("worktrees");
        let points_here = |candidate: &Path| -> bool {
            std::fs::read_to_string(candidate.join("gitdir"))
                .ok()
                .map(|text| PathBuf::from(text.trim_end_matches(['\n', '\r'])))
                .and_then(|gitlink| {
                    let gitlink = if gitlink.is_relative() {
                        candidate.join(gitlink)
                    } else {
                        gitlink
                    };
                    gitlink.parent().map(|folder| same_path(folder, work_tree))
                })
                .unwrap_or(false)
        };
        // Git names the record after the worktree's folder (with a number when taken).
        let by_name = work_tree.file_name().map(|name| records.join(name));
        let found = by_name
            .filter(|candidate| points_here(candidate))
            .or_else(|| {
                std::fs::read_dir(&records)
                    .ok()?
                    .flatten()
                    .map(|entry| entry.path())
                    .find(|candidate| points_here(candidate))
            });
        match found {
            Some(git_dir) => Ok(SessionWorktree {
                work_tree: work_tree.to_owned(),
                git_dir,
            }),
            None => Err(read_error(format!(
                "{} is not one of its worktrees (nothing in {} points at it); delete the session or recreate the worktree",
                work_tree.display(),
                records.display()
            ))),
        }
    }

    /// Where git runs for this worktree.
    pub fn place(&self) -> GitPlace<'_> {
        GitPlace::Worktree {
            work_tree: &self.work_tree,
            git_dir: &self.git_dir,
        }
    }

    /// The gitlink's text as git writes it.
    fn gitlink(&self) -> String {
        format!("gitdir: {}\n", self.git_dir.display())
    }

    /// Puts the worktree's `.git` back to the pinned git directory if anything changed it
    /// (replaced it by a folder or a symbolic link, or pointed it elsewhere). Returns whether
    /// it had to.
    pub fn restore_gitlink(&self) -> std::io::Result<bool> {
        let path = self.work_tree.join(".git");
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => Some(metadata),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        if let Some(metadata) = &metadata
            && metadata.is_file()
            && let Ok(text) = std::fs::read_to_string(&path)
            && let Some(target) = text.trim_end().strip_prefix("gitdir: ")
        {
            let target = Path::new(target);
            let target = if target.is_relative() {
                self.work_tree.join(target)
            } else {
                target.to_owned()
            };
            if same_path(&target, &self.git_dir) {
                return Ok(false);
            }
        }
        // A command running in the background may race us: a few tries, then an error.
        for _ in 0..3 {
            match std::fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(&path)?,
                Ok(_) => std::fs::remove_file(&path)?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path);
            match created {
                Ok(mut file) => {
                    file.write_all(self.gitlink().as_bytes())?;
                    return Ok(true);
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
        Err(std::io::Error::other(format!(
            "{} keeps being replaced",
            path.display()
        )))
    }
}

//! Running the git CLI, the one way every part of Tether does it.
//!
//! Tether's git runs outside the sandbox, on worktrees the agent's commands write to, so
//! nothing those commands can write may decide what git executes:
//! - In a session worktree git never reads the worktree's `.git` file: the git directory is
//!   pinned ([`GitPlace::Worktree`], from the repository's own records, see
//!   [`super::worktree`]), so a rewritten gitlink cannot point git at a repository (and a
//!   config) of the command's making.
//! - Settings that run programs are switched off on the command line, which outranks every
//!   config file: `core.fsmonitor`, `core.hooksPath` (hooks would run the agent's code, and
//!   a relative hooks path such as husky's `.husky` lives in the worktree), the `ext::`
//!   transport; no pager, no editor, no external diff, no prompt. textconv is never asked for
//!   (plumbing only). Filter drivers can only come from the user's own config files, which
//!   the sandbox cannot write; a worktree's `.gitattributes` merely picks among them.
//! - Pathspecs are literal (`GIT_LITERAL_PATHSPECS`): no `:(top)`, `:/` or globs from a path
//!   a client sent.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::GitError;

/// Where a git command runs.
#[derive(Debug, Clone, Copy)]
pub enum GitPlace<'a> {
    /// The user's repository (its main work tree, which the sandbox cannot write): git finds
    /// its `.git` as usual.
    Repository(&'a Path),
    /// A session's worktree, with the git directory Tether pinned for it.
    Worktree {
        work_tree: &'a Path,
        git_dir: &'a Path,
    },
}

impl GitPlace<'_> {
    fn dir(&self) -> &Path {
        match self {
            GitPlace::Repository(root) => root,
            GitPlace::Worktree { work_tree, .. } => work_tree,
        }
    }
}

/// Whose name goes on the commits a command makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Checkpoints and snapshots: Tether's own, whoever the user is.
    Tether,
    /// The user's operations (commit, merge): their configured identity.
    User,
}

/// Settings that would make git run a program, switched off for every call.
const HARDENING: &[&str] = &[
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "core.pager=cat",
    "-c",
    "core.editor=true",
    "-c",
    "sequence.editor=true",
];

/// A git command for `place`, hardened as the module says.
pub(crate) fn command(
    place: GitPlace<'_>,
    args: &[&str],
    index: Option<&Path>,
    identity: Identity,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("git");
    command
        .args(HARDENING)
        .args(args)
        .current_dir(place.dir())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PAGER", "cat")
        .env("GIT_EDITOR", "true")
        .env("GIT_LITERAL_PATHSPECS", "1")
        .env("GIT_NO_LAZY_FETCH", "1")
        .env_remove("GIT_EXTERNAL_DIFF")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
        .env_remove("GIT_COMMON_DIR");
    match place {
        GitPlace::Repository(_) => {
            command.env_remove("GIT_DIR").env_remove("GIT_WORK_TREE");
        }
        GitPlace::Worktree { work_tree, git_dir } => {
            command
                .env("GIT_DIR", git_dir)
                .env("GIT_WORK_TREE", work_tree);
        }
    }
    if identity == Identity::Tether {
        command
            .env("GIT_AUTHOR_NAME", "tether")
            .env("GIT_AUTHOR_EMAIL", "tether@localhost")
            .env("GIT_COMMITTER_NAME", "tether")
            .env("GIT_COMMITTER_EMAIL", "tether@localhost");
    }
    if let Some(index) = index {
        command.env("GIT_INDEX_FILE", index);
    }
    command
}

/// Runs git; returns its trimmed stdout, or its stderr as the error.
pub(crate) async fn run(
    place: GitPlace<'_>,
    args: &[&str],
    index: Option<&Path>,
    identity: Identity,
) -> Result<String, GitError> {
    let output = command(place, args, index, identity)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(GitError::Spawn)?;
    if output.status.success() {
        // Trailing whitespace only: a leading space means something (`git status --porcelain`
        // starts an unstaged change with one).
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned())
    } else {
        Err(GitError::Command {
            repo: place.dir().to_owned(),
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Tether's own git call (checkpoints, snapshots, worktrees) in `place`.
pub(crate) async fn tether(
    place: GitPlace<'_>,
    args: &[&str],
    index: Option<&Path>,
) -> Result<String, GitError> {
    run(place, args, index, Identity::Tether).await
}

/// The user's git call (their identity on commits and merges) in `place`.
pub(crate) async fn as_user(place: GitPlace<'_>, args: &[&str]) -> Result<String, GitError> {
    run(place, args, None, Identity::User).await
}

/// Puts every file of the worktree in `index` (honouring .gitignore), for a snapshot. What git
/// cannot add (a nested repository with no commit, which any command can make) is left out
/// rather than failing the snapshot: the rest must still be seen, diffed and reviewed.
pub(crate) async fn add_everything(place: GitPlace<'_>, index: &Path) -> Result<(), GitError> {
    match tether(place, &["add", "-A", "--ignore-errors"], Some(index)).await {
        Ok(_) => Ok(()),
        Err(GitError::Command { stderr, .. }) => {
            tracing::warn!("some files were left out of a snapshot: {stderr}");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// A blob as [`read_blobs`] gives it.
pub(crate) enum Blob {
    Bytes(Vec<u8>),
    /// Larger than the limit: not read (a command can write a file of any size, and a diff
    /// must not take Tether's memory with it).
    TooLarge(u64),
}

/// Runs one `git cat-file` batch over `input` (one spec per line); its stdout.
async fn cat_file(place: GitPlace<'_>, mode: &str, input: String) -> Result<Vec<u8>, GitError> {
    let failed = |stderr: String| GitError::Command {
        repo: place.dir().to_owned(),
        command: format!("cat-file {mode}"),
        stderr,
    };
    let mut child = command(place, &["cat-file", mode], None, Identity::Tether)
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
    Ok(output.stdout)
}

/// The blobs `specs` name (`<tree-ish>:<path>`), in order: those of at most `limit` bytes
/// read whole, the others only sized.
pub(crate) async fn read_blobs<'a>(
    place: GitPlace<'_>,
    specs: impl Iterator<Item = &'a str>,
    limit: u64,
) -> Result<Vec<Blob>, GitError> {
    let specs: Vec<&str> = specs.collect();
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let failed = |stderr: String| GitError::Command {
        repo: place.dir().to_owned(),
        command: "cat-file --batch".to_owned(),
        stderr,
    };
    let question = |specs: &[&str]| {
        specs.iter().fold(String::new(), |mut input, spec| {
            input.push_str(spec);
            input.push('\n');
            input
        })
    };
    // Sizes first (`<id> blob <size>` per line), then the contents of the small ones.
    let checked = cat_file(place, "--batch-check", question(&specs)).await?;
    let mut sizes = Vec::new();
    for line in String::from_utf8_lossy(&checked).lines() {
        let mut fields = line.split(' ');
        match (fields.nth(1), fields.next().map(str::parse::<u64>)) {
            (Some("blob"), Some(Ok(size))) => sizes.push(size),
            _ => return Err(failed(format!("unexpected answer {line:?}"))),
        }
    }
    if sizes.len() != specs.len() {
        return Err(failed("a truncated answer".to_owned()));
    }
    let small: Vec<&str> = specs
        .iter()
        .zip(&sizes)
        .filter(|(_, size)| **size <= limit)
        .map(|(spec, _)| *spec)
        .collect();
    let output = if small.is_empty() {
        Vec::new()
    } else {
        cat_file(place, "--batch", question(&small)).await?
    };
    let mut rest = output.as_slice();
    let mut contents = Vec::new();
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
        contents.push(body.to_vec());
        rest = rest.get(body_start + size + 1..).unwrap_or_default();
    }
    let mut contents = contents.into_iter();
    sizes
        .into_iter()
        .map(|size| {
            if size > limit {
                Ok(Blob::TooLarge(size))
            } else {
                contents
                    .next()
                    .map(Blob::Bytes)
                    .ok_or_else(|| failed("a truncated answer".to_owned()))
            }
        })
        .collect()
}

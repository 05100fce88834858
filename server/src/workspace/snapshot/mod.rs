//! Snapshots of a session's worktree: what `git add -A` would put in the session's private
//! index, found in process, and the files that differ between two snapshots with their line
//! counts, as `git diff-tree --numstat` would give them.
//!
//! A snapshot is the private index brought up to date, as git does it: a walk of the
//! worktree ([`walk`]) that honours `.gitignore`, `info/exclude` and the user's
//! `core.excludesFile`, keeps tracked files even when ignored, and compares each file's stat
//! data with its index row, hashing only the files whose stat data changed or whose row is
//! "racy" (modified too close to when the index was written for its stat data to prove
//! anything). New content is stored as blobs and the index rewritten, with git's lock and in
//! git's format, so that git can take over at any time: checkpoints, rewinds and diffs still
//! run git on the same index, and find nothing left to hash.
//!
//! Where git would do something the walk does not reproduce — line-ending conversion or a
//! clean filter, a nested repository, a name git refuses, an unreadable folder, a special
//! index entry — the snapshot is taken by `git add -A` instead ([`SnapshotError::Unsupported`]
//! says why), and read back from the index. Either way the result is the same index.
//!
//! This module never reads the worktree's `.git`, never runs anything (except git through
//! [`super::git`] when it gives way), never follows a symbolic link in the worktree and never
//! opens anything there but regular files.

mod commit;
mod settings;
mod store;
#[cfg(test)]
mod tests;
mod walk;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gix::hash::ObjectId;
use gix::index::entry::{Mode, Stat};

use super::{GitError, SessionWorktree, git};
use settings::Settings;
use store::{Blob, Objects};

/// Files larger than this are shown in a diff as binary, and never read into memory.
pub(crate) const DIFF_FILE_LIMIT: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Git would treat something here in a way the in-process walk does not reproduce.
    #[error("the worktree needs git's own snapshot: {0}")]
    Unsupported(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the session's private index {path} cannot be used ({message}); it is rebuilt by the next checkpoint"
    )]
    Index { path: PathBuf, message: String },
    #[error("the repository's objects at {path} cannot be used: {message}")]
    Objects { path: PathBuf, message: String },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// One file of a snapshot: an index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    /// Relative to the worktree, `/`-separated, as git stores it.
    path: Vec<u8>,
    mode: Mode,
    id: ObjectId,
    stat: Stat,
}

/// Who took a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakenBy {
    /// The in-process walk.
    Tether,
    /// `git add -A`, where the walk gives way.
    Git,
}

/// The worktree's files as `git add -A` would record them.
#[derive(Debug, Clone)]
pub struct Snapshot {
    rows: Vec<Row>,
    /// Files read while taking it, by blob id, so that counting lines need not read them
    /// back from the object database.
    contents: HashMap<ObjectId, Arc<Vec<u8>>>,
    taken_by: TakenBy,
}

impl Snapshot {
    pub fn taken_by(&self) -> TakenBy {
        self.taken_by
    }

    pub fn file_count(&self) -> usize {
        self.rows.len()
    }

    /// Every path with its mode and blob id, as `git ls-files -s` lists them.
    pub fn files(&self) -> impl Iterator<Item = (String, u32, String)> + '_ {
        self.rows.iter().map(|row| {
            (
                String::from_utf8_lossy(&row.path).into_owned(),
                row.mode.bits(),
                row.id.to_string(),
            )
        })
    }
}

/// A file that differs between two snapshots, with git's line counts (0 and 0 for a binary
/// file, or one too large to read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    pub path: String,
    pub additions: u64,
    pub deletions: u64,
}

/// The private index starts as a copy of the worktree's, so that only changed files are
/// hashed the first time.
fn prepare_index(worktree: &SessionWorktree, index: &Path) {
    if !index.exists() {
        if let Some(folder) = index.parent() {
            let _ = std::fs::create_dir_all(folder);
        }
        let _ = std::fs::copy(worktree.git_dir.join("index"), index);
    }
}

/// Brings the private `index` up to date with the worktree, as `git add -A` would, and
/// returns it: in process when it can, through git when it must.
pub async fn take(worktree: &SessionWorktree, index: &Path) -> Result<Snapshot, SnapshotError> {
    prepare_index(worktree, index);
    let settings = match settings::load(worktree).await {
        Ok(settings) => settings,
        Err(error) => {
            tracing::debug!("snapshot through git: {error}");
            return take_with_git(worktree, index).await;
        }
    };
    let work_tree = worktree.work_tree.clone();
    let index_path = index.to_owned();
    let walked =
        tokio::task::spawn_blocking(move || in_process(&work_tree, &index_path, &settings))
            .await
            .unwrap_or_else(|error| Err(SnapshotError::Unsupported(error.to_string())));
    match walked {
        Ok(snapshot) => Ok(snapshot),
        Err(SnapshotError::Unsupported(why)) => {
            tracing::debug!(
                "snapshot of {} through git: {why}",
                worktree.work_tree.display()
            );
            take_with_git(worktree, index).await
        }
        Err(error) => {
            tracing::warn!(
                "snapshot of {} through git: {error}",
                worktree.work_tree.display()
            );
            take_with_git(worktree, index).await
        }
    }
}

/// [`take`] by `git add -A`, as before the in-process walk; kept for what the walk does not
/// reproduce, and for comparing the two.
pub async fn take_with_git(
    worktree: &SessionWorktree,
    index: &Path,
) -> Result<Snapshot, SnapshotError> {
    prepare_index(worktree, index);
    git::add_everything(worktree.place(), index).await?;
    let index = index.to_owned();
    let read = tokio::task::spawn_blocking(move || store::read_index(&index, false))
        .await
        .map_err(|error| SnapshotError::Unsupported(error.to_string()))??;
    Ok(Snapshot {
        rows: read.rows,
        contents: HashMap::new(),
        taken_by: TakenBy::Git,
    })
}

/// The largest ignore or attributes file read from outside the worktree.
const SETTINGS_FILE_LIMIT: u64 = 1024 * 1024;

/// Reads an ignore or attributes file that git's config names: the repository's config is
/// not trusted, so only a regular file of bounded size is read (a FIFO would hang the read,
/// `/dev/zero` would never end); anything else counts as absent.
fn read_settings_file(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() || metadata.len() > SETTINGS_FILE_LIMIT {
        tracing::warn!(
            "{} is not a regular file of at most {SETTINGS_FILE_LIMIT} bytes; ignored",
            path.display()
        );
        return None;
    }
    let mut bytes = Vec::new();
    file.take(SETTINGS_FILE_LIMIT)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// The ignore files outside the worktree, in git's order of precedence: the repository's
/// `info/exclude`, then the user's `core.excludesFile`.
fn global_excludes(
    root: &Path,
    settings: &Settings,
) -> Result<Vec<ignore::gitignore::Gitignore>, SnapshotError> {
    let files = [
        Some(settings.common_dir.join("info/exclude")),
        settings.excludes_file.clone(),
    ];
    let mut matchers = Vec::new();
    for file in files.into_iter().flatten() {
        if let Some(bytes) = read_settings_file(&file) {
            let matcher = walk::gitignore(root, &bytes)?;
            if !matcher.is_empty() {
                matchers.push(matcher);
            }
        }
    }
    Ok(matchers)
}

fn in_process(root: &Path, index: &Path, settings: &Settings) -> Result<Snapshot, SnapshotError> {
    if let Some(why) = &settings.unsupported {
        return Err(SnapshotError::Unsupported(why.clone()));
    }
    for file in [
        Some(settings.common_dir.join("info/attributes")),
        settings.attributes_file.clone(),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(bytes) = read_settings_file(&file)
            && let Some(why) = settings::converting_attribute(&bytes)
        {
            return Err(SnapshotError::Unsupported(why));
        }
    }
    let read = store::read_index(index, true)?;
    let objects = Objects::open(&settings.common_dir)?;
    let globals = global_excludes(root, settings)?;
    let walked = walk::Walk::new(root, &read.rows, read.written_secs, &globals, &objects).run()?;
    if walked.index_outdated {
        // The snapshot stands without it: the next one hashes again what this one did.
        if let Err(error) = store::write_index(index, &walked.rows) {
            tracing::warn!("{error}");
        }
    }
    Ok(Snapshot {
        rows: walked.rows,
        contents: walked.contents,
        taken_by: TakenBy::Tether,
    })
}

/// Records the worktree as a commit on its HEAD, in Tether's name, and points `reference` at
/// it (a checkpoint): a snapshot, then its trees, the commit and the ref, in process. Returns
/// the commit id.
pub async fn record(
    worktree: &SessionWorktree,
    index: &Path,
    reference: &str,
    message: &str,
) -> Result<String, SnapshotError> {
    let snapshot = take(worktree, index).await?;
    let git_dir = worktree.git_dir.clone();
    let (reference, message) = (reference.to_owned(), message.to_owned());
    tokio::task::spawn_blocking(move || {
        let common_dir = settings::common_dir(&git_dir);
        let objects = Objects::open(&common_dir)?;
        commit::commit(
            &snapshot.rows,
            &git_dir,
            &common_dir,
            &objects,
            &reference,
            &message,
        )
        .map(|id| id.to_string())
    })
    .await
    .map_err(|error| SnapshotError::Unsupported(error.to_string()))?
}

/// The files that differ between `before` and `after`, in path order, with their line
/// counts.
pub async fn changes(
    worktree: &SessionWorktree,
    before: Snapshot,
    after: Snapshot,
) -> Result<Vec<ChangedFile>, SnapshotError> {
    // Small changes whose both sides were read while snapshotting (most commands' changes)
    // are counted here; blobs to read back and long texts go to the blocking pool.
    if let Some(counted) = count(&before, &after, None)? {
        return Ok(counted);
    }
    let common_dir = settings::common_dir(&worktree.git_dir);
    tokio::task::spawn_blocking(move || {
        let objects = Objects::open(&common_dir)?;
        Ok(count(&before, &after, Some(&objects))?.unwrap_or_default())
    })
    .await
    .map_err(|error| SnapshotError::Unsupported(error.to_string()))?
}

/// At most this much text is diffed outside the blocking pool.
const INLINE_DIFF_LIMIT: usize = 256 * 1024;

/// The changed files with their counts; `None` without `objects` when a side would have to
/// be read from them, or the texts are too long to diff in place.
fn count(
    before: &Snapshot,
    after: &Snapshot,
    objects: Option<&Objects>,
) -> Result<Option<Vec<ChangedFile>>, SnapshotError> {
    let differing = differing(&before.rows, &after.rows);
    let in_memory = |id: &ObjectId| before.contents.get(id).or_else(|| after.contents.get(id));
    if objects.is_none() {
        let mut total = 0;
        for id in differing
            .iter()
            .flat_map(|(_, old, new)| [old, new])
            .flatten()
        {
            match in_memory(id) {
                Some(bytes) => total += bytes.len(),
                None => return Ok(None),
            }
        }
        if total > INLINE_DIFF_LIMIT {
            return Ok(None);
        }
    }
    let content = |id: Option<ObjectId>| -> Result<Option<Side>, SnapshotError> {
        let Some(id) = id else {
            return Ok(Some(Side::Absent));
        };
        if let Some(bytes) = in_memory(&id) {
            return Ok(Some(Side::Bytes(bytes.clone())));
        }
        let Some(objects) = objects else {
            return Ok(None);
        };
        Ok(match objects.blob(&id, DIFF_FILE_LIMIT)? {
            Blob::Bytes(bytes) => Some(Side::Bytes(Arc::new(bytes))),
            Blob::TooLarge | Blob::Missing => None,
        })
    };
    differing
        .into_iter()
        .map(|(path, old, new)| {
            let (additions, deletions) = match (content(old)?, content(new)?) {
                (Some(old), Some(new)) => line_counts(old.bytes(), new.bytes()),
                _ => (0, 0),
            };
            Ok(ChangedFile {
                path: String::from_utf8_lossy(path).into_owned(),
                additions,
                deletions,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// One side of a changed file.
enum Side {
    Absent,
    Bytes(Arc<Vec<u8>>),
}

impl Side {
    fn bytes(&self) -> &[u8] {
        match self {
            Side::Absent => &[],
            Side::Bytes(bytes) => bytes,
        }
    }
}

/// The paths whose mode or content differ, with the blob on each side (`None`: absent).
fn differing<'a>(
    before: &'a [Row],
    after: &'a [Row],
) -> Vec<(&'a [u8], Option<ObjectId>, Option<ObjectId>)> {
    let mut found = Vec::new();
    let (mut old, mut new) = (before.iter().peekable(), after.iter().peekable());
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => a.path.cmp(&b.path),
        };
        match order {
            std::cmp::Ordering::Less => {
                if let Some(a) = old.next() {
                    found.push((a.path.as_slice(), Some(a.id), None));
                }
            }
            std::cmp::Ordering::Greater => {
                if let Some(b) = new.next() {
                    found.push((b.path.as_slice(), None, Some(b.id)));
                }
            }
            std::cmp::Ordering::Equal => {
                if let (Some(a), Some(b)) = (old.next(), new.next())
                    && (a.id != b.id || a.mode != b.mode)
                {
                    found.push((b.path.as_slice(), Some(a.id), Some(b.id)));
                }
            }
        }
    }
    found
}

/// Git's test for binary content: a NUL byte among the first 8,000.
fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8000)].contains(&0)
}

/// Lines added and removed from `old` to `new`, as `git diff --numstat` counts them (Myers
/// on lines, each with its line ending); 0 and 0 if either side is binary.
pub(crate) fn line_counts(old: &[u8], new: &[u8]) -> (u64, u64) {
    if is_binary(old) || is_binary(new) {
        return (0, 0);
    }
    let input = imara_diff::InternedInput::new(old, new);
    let diff = imara_diff::Diff::compute(imara_diff::Algorithm::Myers, &input);
    (
        u64::from(diff.count_additions()),
        u64::from(diff.count_removals()),
    )
}

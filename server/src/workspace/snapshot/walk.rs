//! The walk behind an in-process snapshot: every file `git add -A` would put in the index,
//! with the index's row for it, hashing only the files whose stat data changed (or may have
//! changed unseen: "racy" files, modified too close to when the index was written).
//!
//! The worktree is untrusted, so the walk goes by descriptors: each folder is opened from its
//! parent's descriptor with `O_NOFOLLOW`, each entry looked at with `fstatat(…,
//! AT_SYMLINK_NOFOLLOW)`, each file opened `O_NOFOLLOW | O_NONBLOCK` and checked with `fstat`
//! before a byte is read. A symbolic link is recorded as a link (its target is its content),
//! never followed; a folder swapped for a link mid-walk is not entered; a FIFO, socket or
//! device is never opened. `.gitignore` and `.gitattributes` are read the same way (git too
//! ignores them when they are links). Anything git would treat in a way this walk does not
//! reproduce (a nested repository, a name git refuses, an attribute that converts files, a
//! folder it may not read) ends the walk with [`SnapshotError::Unsupported`], and git takes
//! the snapshot instead.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use gix::hash::ObjectId;
use gix::index::entry::{Mode, Stat, stat::Time};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rustix::fs::{AtFlags, FileType, OFlags};
use rustix::io::Errno;

use super::DIFF_FILE_LIMIT;
use super::store::{self, Objects};
use super::{Row, SnapshotError, settings};

/// More entries than this, or folders deeper than this, and git takes over.
const MAX_ENTRIES: usize = 2_000_000;
const MAX_DEPTH: usize = 1_000;
/// At most this much of the files read is kept for counting lines; the rest is read back
/// from the object database if needed.
const CONTENTS_BUDGET: usize = 64 * 1024 * 1024;
/// `.gitignore` and `.gitattributes` files larger than this are not read (git's own limit
/// for attributes is 100 MB).
const RULES_FILE_LIMIT: u64 = 16 * 1024 * 1024;

fn unsupported(why: impl Into<String>) -> SnapshotError {
    SnapshotError::Unsupported(why.into())
}

/// The ignore rules of one folder, with those of the folders above it.
struct Rules {
    matcher: Gitignore,
    parent: Option<Arc<Rules>>,
}

/// A folder still to walk.
struct Job {
    /// The folder holding it, and its name there (`None` for the worktree itself).
    parent: Option<(Arc<OwnedFd>, Vec<u8>)>,
    /// Its path with a trailing `/` (empty for the worktree).
    prefix: Vec<u8>,
    rules: Option<Arc<Rules>>,
    /// Ignored: walked only for the files the index already tracks.
    ignored: bool,
}

/// What a walk found.
pub(super) struct Walked {
    /// Sorted by path.
    pub rows: Vec<Row>,
    /// Files read on the way (each at most [`DIFF_FILE_LIMIT`]), by blob id.
    pub contents: HashMap<ObjectId, Arc<Vec<u8>>>,
    /// The index should be written: its rows differ, or rewriting it makes racy rows safe.
    pub index_outdated: bool,
}

pub(super) struct Walk<'a> {
    root: &'a Path,
    old: &'a [Row],
    /// Rows modified at or after this second may have changed without their stat data
    /// showing it (file systems keep times as coarse as 2 s).
    racy_from_secs: i64,
    now_secs: i64,
    globals: &'a [Gitignore],
    objects: &'a Objects,
    rows: Vec<Row>,
    contents: HashMap<ObjectId, Arc<Vec<u8>>>,
    kept: usize,
    entries: usize,
    racy_rows_settled: bool,
}

/// Opens `name` in `dir` without following a link, without blocking on a FIFO.
fn open_at(dir: &OwnedFd, name: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
}

/// Whether an error means the entry went away or became something else mid-walk (a command
/// in the background may be changing the worktree): it is then simply not there.
fn vanished(errno: Errno) -> bool {
    matches!(
        errno,
        Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NXIO | Errno::ISDIR
    )
}

fn io_error(root: &Path, path: &[u8], errno: Errno) -> SnapshotError {
    if errno == Errno::ACCESS || errno == Errno::PERM {
        return unsupported(format!("{} cannot be read", String::from_utf8_lossy(path)));
    }
    SnapshotError::Io {
        path: root.join(OsStr::from_bytes(path)),
        source: errno.into(),
    }
}

/// The bytes of a regular file of at most `limit` bytes named `name` in `dir`; `None` if
/// it is not there or not a regular file.
fn read_rules_file(
    root: &Path,
    dir: &OwnedFd,
    prefix: &[u8],
    name: &[u8],
) -> Result<Option<Vec<u8>>, SnapshotError> {
    let path = [prefix, name].concat();
    let file = match open_at(dir, name, OFlags::RDONLY) {
        Ok(file) => file,
        Err(errno) if vanished(errno) => return Ok(None),
        Err(errno) => return Err(io_error(root, &path, errno)),
    };
    let stat = rustix::fs::fstat(&file).map_err(|errno| io_error(root, &path, errno))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    if stat.st_size as u64 > RULES_FILE_LIMIT {
        return Err(unsupported(format!(
            "{} is too large to read",
            String::from_utf8_lossy(&path)
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(file)
        .take(RULES_FILE_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(|source| SnapshotError::Io {
            path: root.join(OsStr::from_bytes(&path)),
            source,
        })?;
    Ok(Some(bytes))
}

/// A matcher for the ignore file `bytes` whose patterns are relative to `folder`.
pub(super) fn gitignore(folder: &Path, bytes: &[u8]) -> Result<Gitignore, SnapshotError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    let mut builder = GitignoreBuilder::new(folder);
    for line in text.split('\n') {
        builder
            .add_line(None, line.strip_suffix('\r').unwrap_or(line))
            .map_err(|error| {
                unsupported(format!("an ignore pattern git may read otherwise: {error}"))
            })?;
    }
    builder
        .build()
        .map_err(|error| unsupported(format!("ignore patterns git may read otherwise: {error}")))
}

/// Names git refuses to add (`.git` in any case, with trailing dots or spaces, its NTFS
/// short name): git leaves such files out with an error this walk does not imitate.
fn refused_name(name: &[u8]) -> bool {
    name.split(|&byte| byte == b'\\').any(|segment| {
        let lower = segment.to_ascii_lowercase();
        let end = lower
            .iter()
            .rposition(|&byte| byte != b' ' && byte != b'.')
            .map_or(0, |last| last + 1);
        let stem = lower.split(|&byte| byte == b':').next().unwrap_or_default();
        matches!(&lower[..end], b".git" | b"git~1") || matches!(stem, b".git" | b"git~1")
    })
}

fn index_stat(stat: &rustix::fs::Stat) -> Stat {
    // Truncated to 32 bits, as git's index keeps them.
    Stat {
        mtime: Time {
            secs: stat.st_mtime as u32,
            nsecs: stat.st_mtime_nsec as u32,
        },
        ctime: Time {
            secs: stat.st_ctime as u32,
            nsecs: stat.st_ctime_nsec as u32,
        },
        dev: stat.st_dev as u32,
        ino: stat.st_ino as u32,
        uid: stat.st_uid,
        gid: stat.st_gid,
        size: stat.st_size as u32,
    }
}

/// Git's comparison of stat data (the device is not compared, as git does not by default).
fn same_stat(a: &Stat, b: &Stat) -> bool {
    Stat { dev: 0, ..*a } == Stat { dev: 0, ..*b }
}

fn mode_of(stat: &rustix::fs::Stat) -> Option<Mode> {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Symlink => Some(Mode::SYMLINK),
        // Git keeps only the owner's execute bit.
        FileType::RegularFile if stat.st_mode & 0o100 != 0 => Some(Mode::FILE_EXECUTABLE),
        FileType::RegularFile => Some(Mode::FILE),
        _ => None,
    }
}

impl<'a> Walk<'a> {
    pub fn new(
        root: &'a Path,
        old: &'a [Row],
        index_written_secs: i64,
        globals: &'a [Gitignore],
        objects: &'a Objects,
    ) -> Walk<'a> {
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        Walk {
            root,
            old,
            racy_from_secs: index_written_secs - 1,
            now_secs,
            globals,
            objects,
            rows: Vec::new(),
            contents: HashMap::new(),
            kept: 0,
            entries: 0,
            racy_rows_settled: false,
        }
    }

    pub fn run(mut self) -> Result<Walked, SnapshotError> {
        let root = rustix::fs::open(
            self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|errno| io_error(self.root, b"", errno))?;
        let mut root = Some(root);
        let mut stack = vec![Job {
            parent: None,
            prefix: Vec::new(),
            rules: None,
            ignored: false,
        }];
        while let Some(job) = stack.pop() {
            let folder = match &job.parent {
                None => root.take().map(Arc::new),
                Some((parent, name)) => {
                    match open_at(parent, name, OFlags::RDONLY | OFlags::DIRECTORY) {
                        Ok(folder) => Some(Arc::new(folder)),
                        Err(errno) if vanished(errno) => None,
                        Err(errno) => return Err(io_error(self.root, &job.prefix, errno)),
                    }
                }
            };
            if let Some(folder) = folder {
                self.folder(folder, job, &mut stack)?;
            }
        }
        self.rows.sort_by(|a, b| a.path.cmp(&b.path));
        // Git reads a tracked `.gitattributes` from the index when the worktree lacks it.
        for row in self.old {
            if row.path.rsplit(|&byte| byte == b'/').next() == Some(b".gitattributes")
                && self
                    .row(&row.path)
                    .is_none_or(|new| new.mode == Mode::SYMLINK)
            {
                return Err(unsupported("a tracked .gitattributes is missing or a link"));
            }
        }
        let index_outdated = self.racy_rows_settled
            || self.rows.len() != self.old.len()
            || self.rows.iter().zip(self.old).any(|(new, old)| new != old);
        Ok(Walked {
            rows: self.rows,
            contents: self.contents,
            index_outdated,
        })
    }

    /// The index's row for `path`, if it tracks it.
    fn tracked(&self, path: &[u8]) -> Option<&'a Row> {
        self.old
            .binary_search_by(|row| row.path.as_slice().cmp(path))
            .ok()
            .map(|at| &self.old[at])
    }

    /// The new row for `path`, once the rows are sorted.
    fn row(&self, path: &[u8]) -> Option<&Row> {
        self.rows
            .binary_search_by(|row| row.path.as_slice().cmp(path))
            .ok()
            .map(|at| &self.rows[at])
    }

    /// Whether the index tracks anything inside the folder `path`.
    fn tracks_inside(&self, path: &[u8]) -> bool {
        let prefix = [path, b"/"].concat();
        let at = self
            .old
            .partition_point(|row| row.path.as_slice() < prefix.as_slice());
        self.old
            .get(at)
            .is_some_and(|row| row.path.starts_with(&prefix))
    }

    /// Whether git's ignore rules leave `path` out: the folder's own rules first, deepest
    /// first, then `info/exclude`, then `core.excludesFile`; the first rule that matches
    /// (ignoring or re-including) decides.
    fn ignored(&self, rules: Option<&Arc<Rules>>, path: &[u8], is_dir: bool) -> bool {
        if rules.is_none() && self.globals.is_empty() {
            return false;
        }
        let full = self.root.join(OsStr::from_bytes(path));
        let mut level = rules;
        let chain = std::iter::from_fn(|| {
            let rules = level?;
            level = rules.parent.as_ref();
            Some(&rules.matcher)
        });
        for matcher in chain.chain(self.globals) {
            match matcher.matched(&full, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }

    fn folder(
        &mut self,
        folder: Arc<OwnedFd>,
        job: Job,
        stack: &mut Vec<Job>,
    ) -> Result<(), SnapshotError> {
        let depth = job.prefix.iter().filter(|&&byte| byte == b'/').count();
        if depth > MAX_DEPTH {
            return Err(unsupported("folders nested too deep"));
        }
        let mut names: Vec<Vec<u8>> = Vec::new();
        let listing = rustix::fs::Dir::read_from(&*folder)
            .map_err(|errno| io_error(self.root, &job.prefix, errno))?;
        for entry in listing {
            let entry = entry.map_err(|errno| io_error(self.root, &job.prefix, errno))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        self.entries += names.len();
        if self.entries > MAX_ENTRIES {
            return Err(unsupported("too many files"));
        }
        names.sort();
        let has = |wanted: &[u8]| {
            names
                .binary_search_by(|name| name.as_slice().cmp(wanted))
                .is_ok()
        };
        if has(b".gitattributes")
            && let Some(bytes) =
                read_rules_file(self.root, &folder, &job.prefix, b".gitattributes")?
            && let Some(why) = settings::converting_attribute(&bytes)
        {
            return Err(unsupported(why));
        }
        let mut rules = job.rules.clone();
        if !job.ignored
            && has(b".gitignore")
            && let Some(bytes) = read_rules_file(self.root, &folder, &job.prefix, b".gitignore")?
        {
            let matcher = gitignore(&self.root.join(OsStr::from_bytes(&job.prefix)), &bytes)?;
            if !matcher.is_empty() {
                rules = Some(Arc::new(Rules {
                    matcher,
                    parent: rules,
                }));
            }
        }
        for name in names {
            if name == b".git" {
                if job.prefix.is_empty() {
                    // The worktree's own gitlink, which git never adds.
                    continue;
                }
                return Err(unsupported(format!(
                    "{} holds a .git (a nested repository)",
                    String::from_utf8_lossy(&job.prefix)
                )));
            }
            if refused_name(&name) {
                return Err(unsupported(format!(
                    "git refuses the name {:?}",
                    String::from_utf8_lossy(&name)
                )));
            }
            let path = [job.prefix.as_slice(), &name].concat();
            let stat = match rustix::fs::statat(
                &*folder,
                OsStr::from_bytes(&name),
                AtFlags::SYMLINK_NOFOLLOW,
            ) {
                Ok(stat) => stat,
                Err(errno) if vanished(errno) => continue,
                Err(errno) => return Err(io_error(self.root, &path, errno)),
            };
            let tracked = self.tracked(&path);
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => {
                    let ignored = job.ignored || self.ignored(rules.as_ref(), &path, true);
                    if ignored && !self.tracks_inside(&path) {
                        continue;
                    }
                    let mut prefix = path;
                    prefix.push(b'/');
                    stack.push(Job {
                        parent: Some((folder.clone(), name)),
                        prefix,
                        rules: rules.clone(),
                        ignored,
                    });
                }
                FileType::RegularFile | FileType::Symlink => {
                    if tracked.is_none()
                        && (job.ignored || self.ignored(rules.as_ref(), &path, false))
                    {
                        continue;
                    }
                    if stat.st_mode & 0o170000 == 0o120000
                        && name.to_ascii_lowercase().starts_with(b".git")
                    {
                        return Err(unsupported(format!(
                            "{} is a symbolic link, which git refuses for its own files",
                            String::from_utf8_lossy(&path)
                        )));
                    }
                    self.file(&folder, &name, path, &stat, tracked)?;
                }
                // Git cannot add a FIFO, a socket or a device: an untracked one is left
                // out, a tracked one keeps what the index had.
                _ => self.rows.extend(tracked.cloned()),
            }
        }
        Ok(())
    }

    fn keep(&mut self, id: ObjectId, bytes: Vec<u8>) {
        if self.kept + bytes.len() <= CONTENTS_BUDGET {
            self.kept += bytes.len();
            self.contents.insert(id, Arc::new(bytes));
        }
    }

    /// Records the file or link `name` (at `path`): the index's row if its stat data shows
    /// no change, else a new row from its content, stored as a blob.
    fn file(
        &mut self,
        folder: &OwnedFd,
        name: &[u8],
        path: Vec<u8>,
        stat: &rustix::fs::Stat,
        tracked: Option<&'a Row>,
    ) -> Result<(), SnapshotError> {
        let Some(mode) = mode_of(stat) else {
            return Ok(());
        };
        let seen = index_stat(stat);
        let mut racy_row = None;
        if let Some(row) = tracked
            && row.mode == mode
            && same_stat(&row.stat, &seen)
        {
            if i64::from(row.stat.mtime.secs) < self.racy_from_secs {
                self.rows.push(row.clone());
                return Ok(());
            }
            racy_row = Some(row);
        }
        let (mode, stat, id) = if mode == Mode::SYMLINK {
            let target = match rustix::fs::readlinkat(folder, OsStr::from_bytes(name), Vec::new()) {
                Ok(target) => target.into_bytes(),
                Err(errno) if vanished(errno) || errno == Errno::INVAL => return Ok(()),
                Err(errno) => return Err(io_error(self.root, &path, errno)),
            };
            let id = store::blob_id(&target)?;
            self.objects.store(id, &target)?;
            self.keep(id, target);
            (mode, seen, id)
        } else {
            let file = match open_at(folder, name, OFlags::RDONLY) {
                Ok(file) => file,
                Err(errno) if vanished(errno) => return Ok(()),
                Err(errno) => return Err(io_error(self.root, &path, errno)),
            };
            // The descriptor's own stat data: the file read is the file recorded.
            let opened =
                rustix::fs::fstat(&file).map_err(|errno| io_error(self.root, &path, errno))?;
            let Some(mode) = mode_of(&opened).filter(|mode| *mode != Mode::SYMLINK) else {
                return Ok(());
            };
            let size = opened.st_size as u64;
            let mut file = std::fs::File::from(file);
            let id = if size <= DIFF_FILE_LIMIT {
                let mut bytes = Vec::with_capacity(size as usize);
                (&mut file)
                    .take(DIFF_FILE_LIMIT + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|source| SnapshotError::Io {
                        path: self.root.join(OsStr::from_bytes(&path)),
                        source,
                    })?;
                if bytes.len() as u64 > DIFF_FILE_LIMIT {
                    return Err(unsupported("a file grew while it was read"));
                }
                let id = store::blob_id(&bytes)?;
                self.objects.store(id, &bytes)?;
                self.keep(id, bytes);
                id
            } else {
                self.objects.store_stream(file, size)?
            };
            (mode, index_stat(&opened), id)
        };
        if let Some(row) = racy_row
            && row.id == id
            && i64::from(row.stat.mtime.secs) < self.now_secs - 1
        {
            // Unchanged after all; writing the index now makes the row safe to trust.
            self.racy_rows_settled = true;
        }
        self.rows.push(Row {
            path,
            mode,
            id,
            stat,
        });
        Ok(())
    }
}

//! The two stores a snapshot lives in: the session's private index (read and written with
//! gix-index, in the format and with the lock git uses, so that git can take over at any
//! time) and the repository's object database (blobs read and written with gix-odb, as
//! `git add` and `git cat-file` would).

use std::io::Read;
use std::path::{Path, PathBuf};

use gix::hash::{Kind, ObjectId};
use gix::index::entry::{Flags, Mode, Stage};
use gix::objs::{Exists, Find, FindHeader, Write};

use super::{Row, SnapshotError};

/// The private index's rows (sorted by path) and when it was written (seconds since the
/// epoch: a file whose modification time is not safely older may have changed unseen).
pub(super) struct IndexRead {
    pub rows: Vec<Row>,
    pub written_secs: i64,
}

fn index_error(path: &Path, message: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Index {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Reads the private index. Entries the in-process snapshot does not keep the way git does
/// (conflicts, intent-to-add, skip-worktree, assume-unchanged, submodules, sparse folders, a
/// split index) are [`SnapshotError::Unsupported`] when `strict`.
pub(super) fn read_index(path: &Path, strict: bool) -> Result<IndexRead, SnapshotError> {
    if !path.exists() {
        return Ok(IndexRead {
            rows: Vec::new(),
            written_secs: 0,
        });
    }
    // Not checksummed: the file is Tether's own, where no command can write, and checking it
    // would double the cost of reading it.
    let file = gix::index::File::at(path, Kind::Sha1, true, Default::default())
        .map_err(|error| index_error(path, error))?;
    let unsupported = |why: &str| Err(SnapshotError::Unsupported(why.to_owned()));
    if strict && file.link().is_some() {
        return unsupported("the private index is split");
    }
    let special = Flags::INTENT_TO_ADD | Flags::SKIP_WORKTREE | Flags::ASSUME_VALID;
    let mut rows = Vec::with_capacity(file.entries().len());
    for entry in file.entries() {
        if strict {
            if entry.stage() != Stage::Unconflicted {
                return unsupported("the private index holds a conflict");
            }
            if entry.flags.intersects(special) {
                return unsupported(
                    "the private index marks entries (intent-to-add, skip-worktree or assume-unchanged)",
                );
            }
            if !matches!(
                entry.mode,
                Mode::FILE | Mode::FILE_EXECUTABLE | Mode::SYMLINK
            ) {
                return unsupported("the private index holds a submodule or a sparse folder");
            }
        }
        rows.push(Row {
            path: entry.path(&file).to_vec(),
            mode: entry.mode,
            id: entry.id,
            stat: entry.stat,
        });
    }
    Ok(IndexRead {
        rows,
        written_secs: file.timestamp().unix_seconds(),
    })
}

/// Writes `rows` (sorted by path) as the private index, under git's `index.lock`.
pub(super) fn write_index(path: &Path, rows: &[Row]) -> Result<(), SnapshotError> {
    let mut state = gix::index::State::new(Kind::Sha1);
    for row in rows {
        state.dangerously_push_entry(
            row.stat,
            row.id,
            Flags::empty(),
            row.mode,
            row.path.as_slice().into(),
        );
    }
    state.sort_entries();
    let mut file = gix::index::File::from_state(state, path);
    file.write(gix::index::write::Options {
        extensions: gix::index::write::Extensions::None,
        // No trailing checksum (git's `index.skipHash`, read by every git since 2.13): it
        // cost as much as the rest of the write, for a file only Tether's git reads.
        skip_hash: true,
    })
    .map_err(|error| index_error(path, error))
}

/// The repository's object database.
pub(super) struct Objects {
    handle: gix::odb::Handle,
    path: PathBuf,
}

/// What [`Objects::blob`] found.
pub(super) enum Blob {
    Bytes(Vec<u8>),
    /// Larger than the limit: not read.
    TooLarge,
    Missing,
}

/// A reader that fails rather than end before `left` bytes: a file that shrinks while it is
/// stored must not become a blob whose header promises more than it holds.
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let wanted = buffer
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buffer[..wanted])?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= read as u64;
        Ok(read)
    }
}

impl Objects {
    pub fn open(common_dir: &Path) -> Result<Objects, SnapshotError> {
        let path = common_dir.join("objects");
        let handle = gix::odb::at(&path, Kind::Sha1).map_err(|source| SnapshotError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Objects { handle, path })
    }

    fn error(&self, message: impl std::fmt::Display) -> SnapshotError {
        SnapshotError::Objects {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    /// Stores `bytes` as blob `id` (its hash, computed by the caller) unless it is there.
    pub fn store(&self, id: ObjectId, bytes: &[u8]) -> Result<(), SnapshotError> {
        if self.handle.exists(&id) {
            return Ok(());
        }
        self.handle
            .write_buf_with_known_id(gix::objs::Kind::Blob, bytes, id)
            .map(drop)
            .map_err(|error| self.error(error))
    }

    /// Stores an encoded object (a tree, a commit) unless it is there; its id.
    pub fn store_object(
        &self,
        kind: gix::objs::Kind,
        bytes: &[u8],
    ) -> Result<ObjectId, SnapshotError> {
        let id =
            gix::objs::compute_hash(Kind::Sha1, kind, bytes).map_err(|error| self.error(error))?;
        if !self.handle.exists(&id) {
            self.handle
                .write_buf_with_known_id(kind, bytes, id)
                .map_err(|error| self.error(error))?;
        }
        Ok(id)
    }

    /// Stores `size` bytes from `file` as a blob without holding them in memory; its id.
    pub fn store_stream(&self, file: impl Read, size: u64) -> Result<ObjectId, SnapshotError> {
        let mut exactly = Exactly {
            inner: file,
            left: size,
        };
        self.handle
            .write_stream(gix::objs::Kind::Blob, size, &mut exactly)
            .map_err(|error| self.error(error))
    }

    /// Blob `id`, read whole if it has at most `limit` bytes.
    pub fn blob(&self, id: &ObjectId, limit: u64) -> Result<Blob, SnapshotError> {
        match self
            .handle
            .try_header(id)
            .map_err(|error| self.error(error))?
        {
            None => return Ok(Blob::Missing),
            Some(header) if header.size > limit => return Ok(Blob::TooLarge),
            Some(_) => {}
        }
        let mut buffer = Vec::new();
        match self
            .handle
            .try_find(id, &mut buffer)
            .map_err(|error| self.error(error))?
        {
            Some(data) => Ok(Blob::Bytes(data.data.to_vec())),
            None => Ok(Blob::Missing),
        }
    }
}

/// The id git gives a blob of `bytes`.
pub(super) fn blob_id(bytes: &[u8]) -> Result<ObjectId, SnapshotError> {
    gix::objs::compute_hash(Kind::Sha1, gix::objs::Kind::Blob, bytes).map_err(|error| {
        SnapshotError::Objects {
            path: PathBuf::new(),
            message: error.to_string(),
        }
    })
}

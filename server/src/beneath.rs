//! Files beneath a folder Tether does not trust the contents of (a session's worktree, the
//! user's repository), each resolved and opened in one step, so that nothing there (a folder
//! swapped for a symbolic link by a command, a link committed to the repository) can lead a
//! read or a write outside it.
//!
//! Every open goes through `openat2(2)` from a descriptor of the worktree with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: the kernel refuses, atomically, any path whose
//! resolution leaves the worktree, through `..` or a symbolic link (absolute links included),
//! and `/proc` magic links. Folders are made, files removed and renamed with the `*at` calls
//! relative to a folder opened the same way. Only regular files are read or written (a FIFO
//! would block a read forever), never the worktree's `.git`, and never more than a limit.
//!
//! Kernels before 5.6 have no `openat2`: there every component is opened with `O_NOFOLLOW`,
//! so symbolic links are refused altogether, which is safe if less convenient.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};

/// Why a file operation failed, in words for the model.
#[derive(Debug)]
pub enum FileError {
    /// The path resolves outside the worktree.
    Outside,
    NotFound,
    /// Not a regular file (a folder, a FIFO, a socket, a device).
    NotAFile,
    /// The worktree's `.git`, reached through a symbolic link.
    GitLink,
    TooLarge(u64),
    Exists,
    Io(io::Error),
}

impl FileError {
    fn from_io(error: io::Error) -> FileError {
        match error.raw_os_error() {
            Some(libc::EXDEV) => FileError::Outside,
            Some(libc::ELOOP) => FileError::Outside,
            Some(libc::ENOENT) => FileError::NotFound,
            Some(libc::EEXIST) => FileError::Exists,
            Some(libc::EISDIR) | Some(libc::ENXIO) => FileError::NotAFile,
            _ => FileError::Io(error),
        }
    }

    /// The message the model reads about `path`.
    pub fn describe(&self, path: &str) -> String {
        match self {
            FileError::Outside => {
                format!("{path:?} leads outside the repository through a symbolic link")
            }
            FileError::NotFound => format!("{path} does not exist"),
            FileError::NotAFile => format!("{path} is not a regular file"),
            FileError::GitLink => {
                format!("{path:?} is the worktree's .git, which tools may not touch")
            }
            FileError::TooLarge(size) => {
                format!("{path} is too large ({size} bytes) for this tool")
            }
            FileError::Exists => format!("{path} already exists"),
            FileError::Io(error) => format!("{path}: {error}"),
        }
    }
}

impl From<rustix::io::Errno> for FileError {
    fn from(errno: rustix::io::Errno) -> FileError {
        FileError::from_io(io::Error::from(errno))
    }
}

/// A folder, held open.
pub struct Beneath {
    root: OwnedFd,
}

/// How every path is resolved: beneath the root, no magic links.
fn resolve_flags() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

/// The components of a relative path that has no `..`, `.` or root (the tools' lexical
/// check gives such paths).
fn parts(relative: &Path) -> Vec<&std::ffi::OsStr> {
    relative
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect()
}

impl Beneath {
    pub fn open(worktree: &Path) -> io::Result<Beneath> {
        let root = rustix::fs::open(
            worktree,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Beneath { root })
    }

    /// Opens `relative` beneath the root, in one step.
    fn open_at(&self, relative: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, FileError> {
        // openat2 refuses flags that O_PATH ignores, such as O_NOCTTY.
        let flags = if flags.contains(OFlags::PATH) {
            flags | OFlags::CLOEXEC
        } else {
            flags | OFlags::CLOEXEC | OFlags::NOCTTY
        };
        let path = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        match rustix::fs::openat2(&self.root, path, flags, mode, resolve_flags()) {
            Err(rustix::io::Errno::NOSYS) => self.open_without_links(relative, flags, mode),
            result => result.map_err(FileError::from),
        }
    }

    /// `open_at` for kernels without `openat2`: no symbolic link is followed anywhere.
    fn open_without_links(
        &self,
        relative: &Path,
        flags: OFlags,
        mode: Mode,
    ) -> Result<OwnedFd, FileError> {
        let parts = parts(relative);
        let Some((last, folders)) = parts.split_last() else {
            return rustix::fs::openat(&self.root, ".", flags, mode).map_err(FileError::from);
        };
        let mut folder: Option<OwnedFd> = None;
        for part in folders {
            let next = rustix::fs::openat(
                folder.as_ref().map_or(self.root.as_fd(), AsFd::as_fd),
                *part,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            folder = Some(next);
        }
        rustix::fs::openat(
            folder.as_ref().map_or(self.root.as_fd(), AsFd::as_fd),
            *last,
            flags | OFlags::NOFOLLOW,
            mode,
        )
        .map_err(FileError::from)
    }

    /// Refuses what is not a regular file, and the worktree's own `.git`.
    fn check_regular(&self, file: &OwnedFd) -> Result<u64, FileError> {
        let stat = rustix::fs::fstat(file)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(FileError::NotAFile);
        }
        if let Ok(gitlink) = rustix::fs::statat(&self.root, ".git", AtFlags::SYMLINK_NOFOLLOW)
            && gitlink.st_dev == stat.st_dev
            && gitlink.st_ino == stat.st_ino
        {
            return Err(FileError::GitLink);
        }
        Ok(stat.st_size as u64)
    }

    /// The file's bytes, if it is a regular file of at most `limit` bytes.
    pub fn read(&self, relative: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
        // Non-blocking, so that opening a FIFO never waits for a writer.
        let file = self.open_at(relative, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?;
        let size = self.check_regular(&file)?;
        if size > limit {
            return Err(FileError::TooLarge(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        std::fs::File::from(file)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(FileError::Io)?;
        if bytes.len() as u64 > limit {
            return Err(FileError::TooLarge(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// Whether something exists at `relative` (a dangling link counts as nothing).
    pub fn exists(&self, relative: &Path) -> bool {
        self.open_at(relative, OFlags::PATH, Mode::empty()).is_ok()
    }

    /// Makes the folders above `relative`, each beneath the root.
    fn make_parents(&self, relative: &Path) -> Result<(), FileError> {
        let parts = parts(relative);
        let mut prefix = PathBuf::new();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            let parent = self.open_at(&prefix, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
            match rustix::fs::mkdirat(&parent, *part, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(errno) => return Err(errno.into()),
            }
            prefix.push(part);
        }
        Ok(())
    }

    /// Writes `bytes` to `relative`, making its folders; returns what the file held before
    /// (empty for a new file).
    pub fn write(&self, relative: &Path, bytes: &[u8], limit: u64) -> Result<Vec<u8>, FileError> {
        self.make_parents(relative)?;
        let file = self.open_at(
            relative,
            OFlags::RDWR | OFlags::CREATE | OFlags::NONBLOCK,
            Mode::from_raw_mode(0o666),
        )?;
        self.check_regular(&file)?;
        let mut file = std::fs::File::from(file);
        let mut before = Vec::new();
        (&mut file)
            .take(limit + 1)
            .read_to_end(&mut before)
            .map_err(FileError::Io)?;
        if before.len() as u64 > limit {
            // Too large to count what changed: count it as empty.
            before.clear();
        }
        file.set_len(0).map_err(FileError::Io)?;
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(0)).map_err(FileError::Io)?;
        file.write_all(bytes).map_err(FileError::Io)?;
        Ok(before)
    }

    /// Replaces the file at `relative` with `bytes` atomically (a temporary file renamed over
    /// it), making its folders; a symbolic link at either name is replaced, never followed.
    pub fn replace(&self, relative: &Path, bytes: &[u8]) -> Result<(), FileError> {
        self.make_parents(relative)?;
        let (folder, name) = self.parent_of(relative)?;
        let mut temporary = name.to_owned();
        temporary.push(".tmp");
        match rustix::fs::unlinkat(&folder, temporary.as_os_str(), AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(errno) => return Err(errno.into()),
        }
        let file = rustix::fs::openat(
            &folder,
            temporary.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )?;
        std::fs::File::from(file)
            .write_all(bytes)
            .map_err(FileError::Io)?;
        rustix::fs::renameat(&folder, temporary.as_os_str(), &folder, name).map_err(FileError::from)
    }

    /// The folder holding `relative`, opened beneath the root, and the name in it.
    fn parent_of<'p>(
        &self,
        relative: &'p Path,
    ) -> Result<(OwnedFd, &'p std::ffi::OsStr), FileError> {
        let name = relative.file_name().ok_or(FileError::NotAFile)?;
        let parent = relative.parent().unwrap_or(Path::new(""));
        let folder = self.open_at(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((folder, name))
    }

    /// Removes the file at `relative` (never a folder, and never what a link points at).
    pub fn remove(&self, relative: &Path) -> Result<(), FileError> {
        let (folder, name) = self.parent_of(relative)?;
        let stat = rustix::fs::statat(&folder, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            return Err(FileError::NotAFile);
        }
        rustix::fs::unlinkat(&folder, name, AtFlags::empty()).map_err(FileError::from)
    }

    /// Renames `from` to `to`, never over something that exists; makes `to`'s folders.
    pub fn rename(&self, from: &Path, to: &Path) -> Result<(), FileError> {
        self.make_parents(to)?;
        let (from_folder, from_name) = self.parent_of(from)?;
        let (to_folder, to_name) = self.parent_of(to)?;
        rustix::fs::renameat_with(
            &from_folder,
            from_name,
            &to_folder,
            to_name,
            RenameFlags::NOREPLACE,
        )
        .map_err(FileError::from)
    }

    /// The entries of the folder at `relative`: names, and whether each is a folder.
    pub fn list(&self, relative: &Path) -> Result<Vec<(String, bool)>, FileError> {
        let folder = self.open_at(relative, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let mut entries = Vec::new();
        for entry in rustix::fs::Dir::read_from(&folder)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            let is_folder = match entry.file_type() {
                FileType::Directory => true,
                FileType::Unknown => {
                    rustix::fs::statat(&folder, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|stat| {
                            FileType::from_raw_mode(stat.st_mode) == FileType::Directory
                        })
                }
                _ => false,
            };
            entries.push((name, is_folder));
        }
        Ok(entries)
    }
}

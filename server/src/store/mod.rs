//! Durable storage: one append-only JSON Lines event log per session, grouped per repository,
//! guarded by a per-repository lock so two `tether` processes never write the same logs.
//!
//! An event is written (one `write` of one whole line) before anyone is told about it, so a
//! `kill -9` loses nothing that was announced. A crash in the middle of a write leaves a torn
//! last line; replay drops it with a warning and cuts it off the file so appends stay clean.
//!
//! The store knows events and files; it never runs sessions and never touches git.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::vocab::{Event, EventRecord, SessionState};

mod attachments;
mod tasks;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot encode an event for {path}: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Where Tether keeps its state: `$TETHER_HOME`, else `$XDG_STATE_HOME/tether`, else
/// `~/.local/state/tether`.
pub fn state_home() -> PathBuf {
    if let Some(home) = env_path("TETHER_HOME") {
        return home;
    }
    if let Some(state) = env_path("XDG_STATE_HOME") {
        return state.join("tether");
    }
    user_home().join(".local/state/tether")
}

/// Where session worktrees go by default: `$TETHER_HOME/worktrees`, else
/// `$XDG_DATA_HOME/tether/worktrees`, else `~/.local/share/tether/worktrees`.
pub fn default_worktrees_home() -> PathBuf {
    if let Some(home) = env_path("TETHER_HOME") {
        return home.join("worktrees");
    }
    if let Some(data) = env_path("XDG_DATA_HOME") {
        return data.join("tether/worktrees");
    }
    user_home().join(".local/share/tether/worktrees")
}

/// A folder named by a variable, made absolute against the current folder: a daemon leaves
/// the folder it was started in, and must find the same state.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .map(|path| std::path::absolute(&path).unwrap_or(path))
}

fn user_home() -> PathBuf {
    env_path("HOME").unwrap_or_else(std::env::temp_dir)
}

/// A stable folder name for a repository: its base name and a hash of its full path.
pub fn repo_key(repo: &Path) -> String {
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in repo.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let base: String = repo
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(32)
        .collect();
    format!("{base}-{hash:016x}")
}

/// The sessions of one repository on disk.
#[derive(Debug)]
pub struct RepoStore {
    repo: PathBuf,
    dir: PathBuf,
    /// Held for as long as this process writes here; `None` when another process does.
    lock: Option<File>,
    /// Who holds the lock when we do not (as written in the lock file).
    lock_holder: Option<String>,
}

/// A session rebuilt from its log.
#[derive(Debug)]
pub struct LoadedSession {
    pub state: SessionState,
    pub log_path: PathBuf,
}

impl RepoStore {
    /// Opens (creating if needed) the store of `repo` under `home`. Takes the repository's
    /// lock if it is free; otherwise the store is read-only and says who holds it.
    pub fn open(home: &Path, repo: &Path) -> Result<RepoStore, StoreError> {
        let dir = home.join("repos").join(repo_key(repo));
        let sessions = dir.join("sessions");
        fs::create_dir_all(&sessions).map_err(io_error("create", &sessions))?;
        let repo_file = dir.join("repo.txt");
        if !repo_file.exists() {
            fs::write(&repo_file, repo.as_os_str().as_encoded_bytes())
                .map_err(io_error("write", &repo_file))?;
        }

        let lock_path = dir.join("lock");
        let mut lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_error("open", &lock_path))?;
        let (lock, lock_holder) = match lock_file.try_lock() {
            Ok(()) => {
                lock_file
                    .set_len(0)
                    .map_err(io_error("write", &lock_path))?;
                writeln!(lock_file, "pid {}", std::process::id())
                    .map_err(io_error("write", &lock_path))?;
                (Some(lock_file), None)
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock_file.read_to_string(&mut holder);
                (None, Some(holder.trim().to_owned()))
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(StoreError::Io {
                    action: "lock",
                    path: lock_path,
                    source,
                });
            }
        };
        Ok(RepoStore {
            repo: repo.to_owned(),
            dir,
            lock,
            lock_holder,
        })
    }

    pub fn repo(&self) -> &Path {
        &self.repo
    }

    pub fn is_writable(&self) -> bool {
        self.lock.is_some()
    }

    /// A sentence for users when the store is read-only.
    pub fn read_only_reason(&self) -> String {
        format!(
            "another tether process ({}) is running sessions for {}; this one serves them read-only. Close the other editor or `tether run`, then restart this server",
            self.lock_holder.as_deref().unwrap_or("unknown pid"),
            self.repo.display()
        )
    }

    /// Where the process groups of running commands are recorded (see
    /// [`crate::sandbox::end_leftovers`]).
    pub fn processes_dir(&self) -> PathBuf {
        self.dir.join("processes")
    }

    pub fn log_path(&self, session_id: &str) -> PathBuf {
        self.dir
            .join("sessions")
            .join(format!("{session_id}.jsonl"))
    }

    /// Creates the log of a new session; fails if one exists already.
    pub fn create_log(&self, session_id: &str) -> Result<EventLog, StoreError> {
        let path = self.log_path(session_id);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error("create", &path))?;
        Ok(EventLog { file, path })
    }

    /// Opens an existing log to append to it.
    pub fn open_log(&self, session_id: &str) -> Result<EventLog, StoreError> {
        let path = self.log_path(session_id);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        Ok(EventLog { file, path })
    }

    fn snapshot_path(&self, session_id: &str) -> PathBuf {
        self.dir
            .join("sessions")
            .join(format!("{session_id}.snapshot.json"))
    }

    /// Removes a session's log and snapshot.
    pub fn remove_log(&self, session_id: &str) -> Result<(), StoreError> {
        for path in [self.snapshot_path(session_id), self.log_path(session_id)] {
            match fs::remove_file(&path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error("remove", &path)(error));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the user trusted this repository's hooks (`tether/session/trust`).
    pub fn hooks_trusted(&self) -> bool {
        self.dir.join("trusted-hooks").exists()
    }

    /// Trusts this repository's hooks from now on.
    pub fn trust_hooks(&self) -> Result<(), StoreError> {
        let path = self.dir.join("trusted-hooks");
        fs::write(&path, b"trusted by the user\n").map_err(io_error("write", &path))
    }

    fn grants_path(&self) -> PathBuf {
        self.dir.join("permissions.json")
    }

    /// Scopes allowed for every session of this repository ("allow always, project").
    pub fn project_grants(&self) -> std::collections::BTreeSet<String> {
        fs::read(self.grants_path())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Adds a project-wide grant (written to a temporary file, then renamed).
    pub fn add_project_grant(&self, scope: &str) -> Result<(), StoreError> {
        let mut grants = self.project_grants();
        grants.insert(scope.to_owned());
        let path = self.grants_path();
        let bytes = serde_json::to_vec_pretty(&grants).map_err(|source| StoreError::Encode {
            path: path.clone(),
            source,
        })?;
        let temporary = path.with_extension("json.tmp");
        fs::write(&temporary, bytes).map_err(io_error("write", &temporary))?;
        fs::rename(&temporary, &path).map_err(io_error("write", &path))
    }

    /// Records a settled session's folded state beside its log, with the log's length: at
    /// start-up a snapshot whose length still matches stands for the whole log. Written to a
    /// temporary file and renamed, so a crash leaves the old snapshot or the new one.
    pub fn write_snapshot(&self, state: &SessionState) -> Result<(), StoreError> {
        let log_path = self.log_path(&state.spec.id);
        let log_len = fs::metadata(&log_path)
            .map_err(io_error("read", &log_path))?
            .len();
        let path = self.snapshot_path(&state.spec.id);
        let snapshot = serde_json::to_vec(&Snapshot {
            log_len,
            state: state.clone(),
        })
        .map_err(|source| StoreError::Encode {
            path: path.clone(),
            source,
        })?;
        let temporary = path.with_extension("json.tmp");
        fs::write(&temporary, snapshot).map_err(io_error("write", &temporary))?;
        fs::rename(&temporary, &path).map_err(io_error("write", &path))
    }

    /// A session's state from its snapshot, if the snapshot still matches the log.
    fn read_snapshot(&self, session_id: &str, log_len: u64) -> Option<SessionState> {
        let bytes = fs::read(self.snapshot_path(session_id)).ok()?;
        let snapshot: Snapshot = serde_json::from_slice(&bytes).ok()?;
        (snapshot.log_len == log_len).then_some(snapshot.state)
    }

    /// Rebuilds every session from its log. A log that cannot be read is skipped with a
    /// warning, never a failed start.
    pub fn load_all(&self) -> Result<Vec<LoadedSession>, StoreError> {
        let sessions_dir = self.dir.join("sessions");
        let entries = fs::read_dir(&sessions_dir).map_err(io_error("read", &sessions_dir))?;
        let mut loaded = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "jsonl") {
                continue;
            }
            let snapshot = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .zip(entry.metadata().ok())
                .and_then(|(id, metadata)| self.read_snapshot(id, metadata.len()));
            if let Some(state) = snapshot {
                loaded.push(LoadedSession {
                    state,
                    log_path: path,
                });
                continue;
            }
            match replay(&path, self.is_writable()) {
                Ok(replayed) => match fold(replayed.records) {
                    Some(state) => loaded.push(LoadedSession {
                        state,
                        log_path: path,
                    }),
                    None => tracing::warn!(
                        "skipping {}: it does not start with a `created` event",
                        path.display()
                    ),
                },
                Err(error) => tracing::warn!("skipping a session log: {error}"),
            }
        }
        loaded.sort_by_key(|session| session.state.spec.created_at);
        Ok(loaded)
    }

    /// The events of one session with `seq > since`, read from its log.
    pub fn read_events(
        &self,
        session_id: &str,
        since: u64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let replayed = replay(&self.log_path(session_id), false)?;
        Ok(replayed
            .records
            .into_iter()
            .filter(|record| record.seq > since)
            .collect())
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot {
    log_len: u64,
    state: SessionState,
}

/// The append side of one session's log.
#[derive(Debug)]
pub struct EventLog {
    file: File,
    path: PathBuf,
}

impl EventLog {
    /// Writes one record as one line, in a single `write` of the whole line, so that a crash
    /// leaves either the whole line or a torn tail that replay drops.
    pub fn append(&mut self, record: &EventRecord) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(record).map_err(|source| StoreError::Encode {
            path: self.path.clone(),
            source,
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(io_error("append to", &self.path))
    }

    /// Forces what was written to the disk (for shutdown and status changes; a `kill -9`
    /// needs no fsync, the kernel keeps what was written).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(io_error("sync", &self.path))
    }
}

/// What replaying a log found.
#[derive(Debug)]
pub struct Replay {
    pub records: Vec<EventRecord>,
    /// A torn last line was found (and, when writable, cut off the file).
    pub dropped_torn_line: bool,
}

/// Reads a log. Unreadable lines in the middle are skipped with a warning; a torn last line
/// is dropped, and cut off the file when `repair` is set.
pub fn replay(path: &Path, repair: bool) -> Result<Replay, StoreError> {
    let bytes = fs::read(path).map_err(io_error("read", path))?;
    let mut records = Vec::new();
    let mut dropped_torn_line = false;
    let mut offset = 0usize;
    let mut good_end = 0usize;
    let mut line_number = 0usize;
    while offset < bytes.len() {
        line_number += 1;
        let (line, next, complete) = match bytes[offset..].iter().position(|b| *b == b'\n') {
            Some(newline) => (&bytes[offset..offset + newline], offset + newline + 1, true),
            None => (&bytes[offset..], bytes.len(), false),
        };
        let is_last = next >= bytes.len();
        match serde_json::from_slice::<EventRecord>(line) {
            Ok(record) if complete => {
                records.push(record);
                good_end = next;
            }
            _ if line.iter().all(u8::is_ascii_whitespace) => good_end = next,
            _ if is_last => {
                tracing::warn!(
                    "{}: dropping a torn last line ({} bytes), left by a crash mid-write",
                    path.display(),
                    line.len()
                );
                dropped_torn_line = true;
            }
            Ok(_) | Err(_) => {
                tracing::warn!("{}: skipping unreadable line {line_number}", path.display());
                good_end = next;
            }
        }
        offset = next;
    }
    if dropped_torn_line && repair {
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_error("repair", path))?;
        file.set_len(good_end as u64)
            .and_then(|()| file.seek(SeekFrom::End(0)).map(drop))
            .map_err(io_error("repair", path))?;
    }
    Ok(Replay {
        records,
        dropped_torn_line,
    })
}

/// Folds a session's records into its state; `None` if the first is not `created`.
pub fn fold(records: Vec<EventRecord>) -> Option<SessionState> {
    let mut records = records.into_iter();
    let first = records.next()?;
    let Event::Created { session } = &first.event else {
        return None;
    };
    let mut state = SessionState::new((**session).clone(), &first);
    for record in records {
        state.apply(&record);
    }
    Some(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{SessionSpec, SessionStatus};

    fn spec() -> SessionSpec {
        crate::vocab::sample_spec("s1")
    }

    fn write_two_events(store: &RepoStore) -> PathBuf {
        let mut log = store.create_log("s1").expect("create log");
        for (seq, event) in [
            (
                1,
                Event::Created {
                    session: Box::new(spec()),
                },
            ),
            (
                2,
                Event::Status {
                    status: SessionStatus::Running,
                    activity: None,
                    reason: None,
                },
            ),
        ] {
            log.append(&EventRecord {
                seq,
                at: seq,
                event,
            })
            .expect("append");
        }
        store.log_path("s1")
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_cut_off() {
        let home = tempfile::tempdir().expect("tempdir");
        let store = RepoStore::open(home.path(), Path::new("/repo")).expect("open");
        let path = write_two_events(&store);
        let intact_len = fs::metadata(&path).expect("metadata").len();
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(br#"{"seq":3,"at":3,"event":{"kind":"sta"#)
            .expect("write");

        let replayed = replay(&path, true).expect("replay");
        assert!(replayed.dropped_torn_line);
        assert_eq!(replayed.records.len(), 2);
        assert_eq!(fs::metadata(&path).expect("metadata").len(), intact_len);
        let state = fold(replayed.records).expect("fold");
        assert_eq!(state.status, SessionStatus::Running);
    }

    #[test]
    fn a_snapshot_stands_for_its_log_until_the_log_grows() {
        let home = tempfile::tempdir().expect("tempdir");
        let store = RepoStore::open(home.path(), Path::new("/repo")).expect("open");
        let path = write_two_events(&store);
        let replayed = fold(replay(&path, false).expect("replay").records).expect("fold");
        store.write_snapshot(&replayed).expect("snapshot");

        let loaded = store.load_all().expect("load");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].state.status, SessionStatus::Running);
        assert!(loaded[0].state.history.is_none(), "read from the snapshot");

        let mut log = store.open_log("s1").expect("open log");
        log.append(&EventRecord {
            seq: 3,
            at: 3,
            event: Event::Status {
                status: SessionStatus::Waiting,
                activity: None,
                reason: None,
            },
        })
        .expect("append");
        let loaded = store.load_all().expect("load");
        assert_eq!(
            loaded[0].state.status,
            SessionStatus::Waiting,
            "stale snapshot ignored"
        );
        assert!(loaded[0].state.history.is_some(), "replayed from the log");

        store.remove_log("s1").expect("remove");
        assert!(store.load_all().expect("load").is_empty());
        assert_eq!(
            fs::read_dir(path.parent().expect("dir"))
                .expect("dir")
                .count(),
            0
        );
    }

    #[test]
    fn a_second_store_on_the_same_repo_is_read_only() {
        let home = tempfile::tempdir().expect("tempdir");
        let first = RepoStore::open(home.path(), Path::new("/repo")).expect("open");
        assert!(first.is_writable());
        // Locks are per open file description, so a second open in this process models a
        // second process.
        let second = RepoStore::open(home.path(), Path::new("/repo")).expect("open");
        assert!(!second.is_writable());
        assert!(
            second
                .read_only_reason()
                .contains(&format!("pid {}", std::process::id()))
        );
        drop(first);
        let third = RepoStore::open(home.path(), Path::new("/repo")).expect("open");
        assert!(third.is_writable());
    }

    #[test]
    fn repo_keys_are_stable_and_distinct() {
        assert_eq!(
            repo_key(Path::new("/a/my repo")),
            repo_key(Path::new("/a/my repo"))
        );
        assert_ne!(repo_key(Path::new("/a/x")), repo_key(Path::new("/b/x")));
        assert!(repo_key(Path::new("/a/my repo")).starts_with("my_repo-"));
    }
}

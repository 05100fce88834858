//! Tasks on disk: one JSON file per task (`tasks/<id>.json` beside the repository's session
//! logs), replaced whole. A task's record changes rarely (created, promoted), so it is
//! written to a temporary file, synced and renamed, and the folder synced: a `kill -9` leaves
//! the old record or the new one, never half of one. The trials' own history is in their
//! sessions' logs.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;

use super::{RepoStore, StoreError, io_error};
use crate::vocab::TaskRecord;

impl RepoStore {
    fn tasks_dir(&self) -> PathBuf {
        self.dir.join("tasks")
    }

    fn task_path(&self, task_id: &str) -> PathBuf {
        self.tasks_dir().join(format!("{task_id}.json"))
    }

    /// Writes a task's record, durably, replacing the last one.
    pub fn write_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let dir = self.tasks_dir();
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let path = self.task_path(&task.id);
        let bytes = serde_json::to_vec_pretty(task).map_err(|source| StoreError::Encode {
            path: path.clone(),
            source,
        })?;
        let temporary = path.with_extension("json.tmp");
        let mut file = File::create(&temporary).map_err(io_error("write", &temporary))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_error("write", &temporary))?;
        fs::rename(&temporary, &path).map_err(io_error("write", &path))?;
        File::open(&dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error("sync", &dir))
    }

    /// Every task recorded here. A record that cannot be read is skipped with a warning,
    /// never a failed start.
    pub fn load_tasks(&self) -> Vec<TaskRecord> {
        let dir = self.tasks_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(error) => {
                tracing::warn!("cannot read {}: {error}", dir.display());
                return Vec::new();
            }
        };
        let mut tasks: Vec<TaskRecord> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "json")
            })
            .filter_map(|path| {
                let read = fs::read(&path)
                    .map_err(|error| error.to_string())
                    .and_then(|bytes| {
                        serde_json::from_slice::<TaskRecord>(&bytes)
                            .map_err(|error| error.to_string())
                    });
                read.inspect_err(|error| {
                    tracing::warn!("skipping the task record {}: {error}", path.display())
                })
                .ok()
            })
            .collect();
        tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        tasks
    }

    /// Removes a task's record (its trials' sessions are deleted on their own).
    pub fn remove_task(&self, task_id: &str) -> Result<(), StoreError> {
        let path = self.task_path(task_id);
        match fs::remove_file(&path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                Err(io_error("remove", &path)(error))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{TrialSpec, now_millis};

    fn task(id: &str, created_at: u64) -> TaskRecord {
        TaskRecord {
            id: id.into(),
            name: format!("task-{id}"),
            title: "Add tests".into(),
            prompt: "Add tests".into(),
            repo: "/repo".into(),
            base_branch: "main".into(),
            base_commit: "0".repeat(40),
            created_at,
            trials: vec![TrialSpec {
                index: 1,
                session_id: "s1".into(),
                provider: "local".into(),
                model: "m".into(),
            }],
            promoted: None,
        }
    }

    #[test]
    fn tasks_are_written_read_back_in_order_and_removed() {
        let home = tempfile::tempdir().expect("temp dir");
        let store = RepoStore::open(home.path(), std::path::Path::new("/repo")).expect("store");
        assert!(store.load_tasks().is_empty());
        let now = now_millis();
        store.write_task(&task("b", now + 1)).expect("write b");
        store.write_task(&task("a", now)).expect("write a");
        // A torn or foreign file does not hide the others.
        fs::write(store.tasks_dir().join("junk.json"), b"{\"id\":").expect("junk");
        let loaded = store.load_tasks();
        assert_eq!(
            loaded
                .iter()
                .map(|task| task.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(loaded[0], task("a", now));
        store.remove_task("a").expect("remove");
        store.remove_task("a").expect("removing twice is fine");
        assert_eq!(store.load_tasks().len(), 1);
    }
}

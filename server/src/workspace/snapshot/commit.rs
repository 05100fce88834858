//! A checkpoint commit made in process from a snapshot: its trees (what `git write-tree`
//! makes of the private index), a commit of them on the worktree's HEAD (what `git
//! commit-tree` makes, in Tether's name) and the checkpoint's ref (what `git update-ref`
//! does, with git's lock files and no reflog).
//!
//! HEAD is read from the pinned git directory, never from the worktree.

use std::path::Path;

use gix::hash::ObjectId;
use gix::objs::WriteTo;
use gix::objs::tree::{Entry, EntryKind};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};

use super::store::Objects;
use super::{Row, SnapshotError};

fn reference_error(message: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Unsupported(format!("references: {message}"))
}

/// The tree of `rows` (sorted by path) below `prefix` (empty, or ending in `/`), with every
/// tree under it, stored; its id.
fn write_tree(rows: &[Row], prefix: &[u8], objects: &Objects) -> Result<ObjectId, SnapshotError> {
    let mut entries = Vec::new();
    let mut at = 0;
    while at < rows.len() {
        let rest = &rows[at].path[prefix.len()..];
        match rest.iter().position(|&byte| byte == b'/') {
            None => {
                let kind = match rows[at].mode.to_tree_entry_mode() {
                    Some(mode) => mode,
                    None => return Err(SnapshotError::Unsupported("an unknown file mode".into())),
                };
                entries.push(Entry {
                    mode: kind,
                    filename: rest.into(),
                    oid: rows[at].id,
                });
                at += 1;
            }
            Some(slash) => {
                let folder = [prefix, &rest[..=slash]].concat();
                let end = at + rows[at..].partition_point(|row| row.path.starts_with(&folder));
                let id = write_tree(&rows[at..end], &folder, objects)?;
                entries.push(Entry {
                    mode: EntryKind::Tree.into(),
                    filename: rest[..slash].into(),
                    oid: id,
                });
                at = end;
            }
        }
    }
    entries.sort();
    let tree = gix::objs::Tree { entries };
    let mut bytes = Vec::new();
    tree.write_to(&mut bytes)
        .map_err(|source| SnapshotError::Io {
            path: Default::default(),
            source,
        })?;
    objects.store_object(gix::objs::Kind::Tree, &bytes)
}

/// The ref store of the worktree whose git directory is `git_dir`.
fn references(git_dir: &Path, common_dir: &Path) -> gix::refs::file::Store {
    let mut store = if git_dir == common_dir {
        gix::refs::file::Store::at(git_dir.to_owned(), gix::hash::Kind::Sha1)
    } else {
        gix::refs::file::Store::for_linked_worktree(
            git_dir.to_owned(),
            common_dir.to_owned(),
            gix::hash::Kind::Sha1,
        )
    };
    store.write_reflog = gix::refs::store::WriteReflog::Disable;
    store
}

/// The commit the worktree's HEAD points at.
fn head(store: &gix::refs::file::Store) -> Result<ObjectId, SnapshotError> {
    let mut reference = store.find("HEAD").map_err(reference_error)?;
    for _ in 0..5 {
        match reference.target {
            gix::refs::Target::Object(id) => return Ok(id),
            gix::refs::Target::Symbolic(name) => {
                reference = store.find(name.as_ref()).map_err(reference_error)?;
            }
        }
    }
    Err(reference_error("HEAD is a chain of symbolic references"))
}

/// Commits `rows` on HEAD as `message` and points `reference` at the commit; its id.
pub(super) fn commit(
    rows: &[Row],
    git_dir: &Path,
    common_dir: &Path,
    objects: &Objects,
    reference: &str,
    message: &str,
) -> Result<ObjectId, SnapshotError> {
    let tree = write_tree(rows, b"", objects)?;
    let store = references(git_dir, common_dir);
    let parent = head(&store)?;
    let signature = gix::actor::Signature {
        name: "tether".into(),
        email: "tether@localhost".into(),
        time: gix::date::Time::now_local_or_utc(),
    };
    let commit = gix::objs::Commit {
        tree,
        parents: [parent].into_iter().collect(),
        author: signature.clone(),
        committer: signature,
        encoding: None,
        // `git commit-tree -m` ends the message with a newline.
        message: format!("{message}\n").into(),
        extra_headers: Vec::new(),
    };
    let mut bytes = Vec::new();
    commit
        .write_to(&mut bytes)
        .map_err(|source| SnapshotError::Io {
            path: Default::default(),
            source,
        })?;
    let id = objects.store_object(gix::objs::Kind::Commit, &bytes)?;
    let name = gix::refs::FullName::try_from(reference).map_err(reference_error)?;
    store
        .transaction()
        .prepare(
            [RefEdit {
                change: Change::Update {
                    log: LogChange {
                        mode: RefLog::AndReference,
                        force_create_reflog: false,
                        message: message.into(),
                    },
                    expected: PreviousValue::Any,
                    new: gix::refs::Target::Object(id),
                },
                name,
                deref: false,
            }],
            gix::lock::acquire::Fail::Immediately,
            gix::lock::acquire::Fail::Immediately,
        )
        .and_then(|transaction| transaction.commit(None))
        .map_err(reference_error)?;
    Ok(id)
}

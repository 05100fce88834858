//! The in-process snapshot against git's own: each test builds a worktree, takes the snapshot
//! both ways from the same index, and expects the same files, modes and blobs; the line counts
//! are checked against `git diff-tree --numstat`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    worktree: SessionWorktree,
    index: PathBuf,
}

fn git_in(root: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(root)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A repository with `files` committed; its work tree stands in for a session's worktree.
fn repo(files: &[(&str, &str)]) -> Repo {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("wt");
    std::fs::create_dir_all(&root).expect("mkdir");
    let root = root.canonicalize().expect("canonical");
    git_in(&root, &["init", "-q"]);
    for (path, text) in files {
        write(&root, path, text);
    }
    git_in(&root, &["add", "-A"]);
    git_in(&root, &["commit", "-q", "--allow-empty", "-m", "base"]);
    let index = dir.path().join("private/index");
    Repo {
        worktree: SessionWorktree {
            work_tree: root.clone(),
            git_dir: root.join(".git"),
        },
        root,
        index,
        _dir: dir,
    }
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

impl Repo {
    /// The snapshot in process, after checking it against git's from the same index.
    async fn snapshot(&self) -> Snapshot {
        self.snapshot_by(TakenBy::Tether).await
    }

    /// The snapshot, taken by `by`, after checking it against git's from the same index.
    async fn snapshot_by(&self, by: TakenBy) -> Snapshot {
        prepare_index(&self.worktree, &self.index);
        let git_index = self.index.with_file_name("git-index");
        std::fs::copy(&self.index, &git_index).expect("copy index");
        let ours = take(&self.worktree, &self.index).await.expect("snapshot");
        let theirs = take_with_git(&self.worktree, &git_index)
            .await
            .expect("git snapshot");
        let ours_files: Vec<_> = ours.files().collect();
        let theirs_files: Vec<_> = theirs.files().collect();
        assert_eq!(ours_files, theirs_files, "the snapshot differs from git's");
        assert_eq!(ours.taken_by(), by);
        ours
    }

    /// A tree of the private index as it is now, written by git.
    fn tree(&self) -> String {
        let output = Command::new("git")
            .arg("write-tree")
            .current_dir(&self.root)
            .env("GIT_INDEX_FILE", &self.index)
            .output()
            .expect("write-tree");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The changes between two snapshots, checked against git's numstat of their trees.
    async fn changes(
        &self,
        before: Snapshot,
        before_tree: &str,
        after: Snapshot,
    ) -> Vec<ChangedFile> {
        let after_tree = self.tree();
        let changed = changes(&self.worktree, before, after)
            .await
            .expect("changes");
        let numstat = git_in(
            &self.root,
            &["diff-tree", "-r", "--numstat", before_tree, &after_tree],
        );
        let expected: Vec<ChangedFile> = numstat
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.splitn(3, '\t').collect();
                ChangedFile {
                    path: fields[2].to_owned(),
                    additions: fields[0].parse().unwrap_or(0),
                    deletions: fields[1].parse().unwrap_or(0),
                }
            })
            .collect();
        assert_eq!(changed, expected, "the changes differ from git's numstat");
        changed
    }
}

fn change(path: &str, additions: u64, deletions: u64) -> ChangedFile {
    ChangedFile {
        path: path.to_owned(),
        additions,
        deletions,
    }
}

#[tokio::test]
async fn ignored_files_are_left_out_as_git_leaves_them() {
    let repo = repo(&[
        ("tracked.log", "kept although ignored later\n"),
        ("build/keep.txt", "tracked inside an ignored folder\n"),
        ("src/main.rs", "fn main() {}\n"),
    ]);
    write(
        &repo.root,
        ".gitignore",
        "*.log\n!important.log\nbuild/\n/top-only.txt\n",
    );
    write(&repo.root, "src/.gitignore", "/local\ngenerated-*\n");
    write(&repo.root, ".git/info/exclude", "secret.txt\n");
    for path in [
        "debug.log",
        "important.log",
        "build/output.o",
        "build/keep.txt",
        "top-only.txt",
        "src/top-only.txt",
        "src/local/x.txt",
        "src/generated-1.rs",
        "src/deep/generated-2.rs",
        "secret.txt",
        "src/secret.txt",
        "tracked.log",
        "notes.md",
    ] {
        write(&repo.root, path, &format!("{path}\n"));
    }
    let snapshot = repo.snapshot().await;
    let paths: Vec<String> = snapshot.files().map(|(path, ..)| path).collect();
    assert_eq!(
        paths,
        [
            ".gitignore",
            "build/keep.txt",
            "important.log",
            "notes.md",
            "src/.gitignore",
            "src/main.rs",
            "src/top-only.txt",
            "tracked.log",
        ]
    );
}

#[tokio::test]
async fn new_deleted_renamed_and_rewritten_files_are_counted_as_git_counts_them() {
    let repo = repo(&[
        ("a.txt", "one\ntwo\nthree\n"),
        ("b.txt", "b\n"),
        ("c.txt", "unchanged\n"),
    ]);
    let before = repo.snapshot().await;
    let before_tree = repo.tree();
    std::fs::create_dir_all(repo.root.join("moved")).expect("mkdir");
    std::fs::rename(repo.root.join("a.txt"), repo.root.join("moved/a.txt")).expect("rename");
    std::fs::remove_file(repo.root.join("b.txt")).expect("remove");
    write(&repo.root, "new.txt", "fresh\nlines\n");
    write(&repo.root, "no-newline.txt", "last");
    let after = repo.snapshot().await;
    let changed = repo.changes(before, &before_tree, after).await;
    assert_eq!(
        changed,
        [
            change("a.txt", 0, 3),
            change("b.txt", 0, 1),
            change("moved/a.txt", 3, 0),
            change("new.txt", 2, 0),
            change("no-newline.txt", 1, 0),
        ]
    );
}

#[tokio::test]
async fn a_mode_change_is_a_change_of_no_lines() {
    let repo = repo(&[("run.sh", "echo hi\n")]);
    let before = repo.snapshot().await;
    let before_tree = repo.tree();
    let script = repo.root.join("run.sh");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let after = repo.snapshot().await;
    assert_eq!(
        repo.changes(before, &before_tree, after).await,
        [change("run.sh", 0, 0)]
    );
}

#[tokio::test]
async fn links_are_recorded_as_links_and_never_followed_out() {
    let repo = repo(&[("a.txt", "a\n")]);
    let outside = repo.root.parent().expect("parent").join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("secret.txt"), "SECRET\nSECRET\n").expect("write");
    let before = repo.snapshot().await;
    let before_tree = repo.tree();
    std::os::unix::fs::symlink(&outside, repo.root.join("escape")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("secret.txt"), repo.root.join("secret-link"))
        .expect("symlink");
    std::os::unix::fs::symlink("a.txt", repo.root.join("inside-link")).expect("symlink");
    let after = repo.snapshot().await;
    let files: Vec<(String, u32)> = after.files().map(|(path, mode, _)| (path, mode)).collect();
    assert_eq!(
        files,
        [
            ("a.txt".to_owned(), 0o100644),
            ("escape".to_owned(), 0o120000),
            ("inside-link".to_owned(), 0o120000),
            ("secret-link".to_owned(), 0o120000),
        ]
    );
    // A link's content is its target (one line), never what it points at.
    assert_eq!(
        repo.changes(before, &before_tree, after).await,
        [
            change("escape", 1, 0),
            change("inside-link", 1, 0),
            change("secret-link", 1, 0),
        ]
    );
}

#[tokio::test]
async fn a_same_size_rewrite_with_its_time_put_back_is_seen() {
    let repo = repo(&[("same.txt", "aaaa\n")]);
    let before = repo.snapshot().await;
    let before_tree = repo.tree();
    let path = repo.root.join("same.txt");
    let modified = std::fs::metadata(&path)
        .and_then(|metadata| metadata.modified())
        .expect("mtime");
    std::fs::write(&path, "bbbb\n").expect("rewrite");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|file| file.set_modified(modified))
        .expect("set mtime");
    let after = repo.snapshot().await;
    assert_eq!(
        repo.changes(before, &before_tree, after).await,
        [change("same.txt", 1, 1)]
    );
}

/// The racy case itself: the index's row has the file's exact stat data but another blob,
/// as when a file is rewritten (same size) within the time stamps' granularity after the
/// index was written. Only hashing can tell, and the walk must hash.
#[tokio::test]
async fn a_racy_row_is_hashed_rather_than_trusted() {
    let repo = repo(&[("racy.txt", "real\n")]);
    let snapshot = repo.snapshot().await;
    let mut rows = snapshot.rows.clone();
    let wrong = store::blob_id(b"stale\n").expect("hash");
    rows[0].id = wrong;
    store::write_index(&repo.index, &rows).expect("write index");
    let again = take(&repo.worktree, &repo.index).await.expect("snapshot");
    assert_eq!(again.rows[0].id, snapshot.rows[0].id);
    // The same row written long after the file's time is trusted: stat data alone decides.
    rows[0].stat.mtime.secs -= 10;
    let path = repo.root.join("racy.txt");
    let old = std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::new(u64::from(rows[0].stat.mtime.secs), rows[0].stat.mtime.nsecs);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|file| file.set_modified(old))
        .expect("set mtime");
    let metadata = std::fs::symlink_metadata(&path).expect("stat");
    rows[0].stat.ctime.secs = std::os::unix::fs::MetadataExt::ctime(&metadata) as u32;
    rows[0].stat.ctime.nsecs = std::os::unix::fs::MetadataExt::ctime_nsec(&metadata) as u32;
    store::write_index(&repo.index, &rows).expect("write index");
    let trusted = take(&repo.worktree, &repo.index).await.expect("snapshot");
    assert_eq!(trusted.rows[0].id, wrong);
}

#[tokio::test]
async fn fifos_are_never_opened_and_tracked_ones_keep_their_row() {
    let repo = repo(&[("was-a-file", "content\n")]);
    std::fs::remove_file(repo.root.join("was-a-file")).expect("remove");
    for name in ["was-a-file", "pipe"] {
        let path = std::ffi::CString::new(repo.root.join(name).as_os_str().as_encoded_bytes())
            .expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    }
    let snapshot = tokio::time::timeout(std::time::Duration::from_secs(20), repo.snapshot())
        .await
        .expect("a FIFO blocked the snapshot");
    let paths: Vec<String> = snapshot.files().map(|(path, ..)| path).collect();
    assert_eq!(paths, ["was-a-file"]);
}

#[tokio::test]
async fn binary_and_oversized_files_count_no_lines() {
    let repo = repo(&[]);
    let before = repo.snapshot().await;
    let before_tree = repo.tree();
    std::fs::write(repo.root.join("blob.bin"), b"a\nb\0c\n").expect("write");
    let large = "x\n".repeat((DIFF_FILE_LIMIT / 2 + 1) as usize);
    std::fs::write(repo.root.join("large.txt"), &large).expect("write");
    let after = repo.snapshot().await;
    let changed = changes(&repo.worktree, before, after)
        .await
        .expect("changes");
    assert_eq!(
        changed,
        [change("blob.bin", 0, 0), change("large.txt", 0, 0)]
    );
    // git counts the large file's lines; Tether does not read files that large.
    let numstat = git_in(
        &repo.root,
        &["diff-tree", "-r", "--numstat", &before_tree, &repo.tree()],
    );
    assert!(numstat.starts_with("-\t-\tblob.bin\n"), "{numstat}");
}

#[tokio::test]
async fn git_takes_over_where_the_walk_would_differ() {
    let repo = repo(&[("a.txt", "a\n")]);
    write(&repo.root, ".gitattributes", "*.png binary\n*.rs -text\n");
    repo.snapshot().await;
    write(&repo.root, ".gitattributes", "* text=auto\n");
    write(&repo.root, "crlf.txt", "one\r\ntwo\r\n");
    repo.snapshot_by(TakenBy::Git).await;
    // The converted file goes with the attributes: whether git hashes a tracked file again
    // after its attributes change depends on the index's time stamp (git's own "racy" rule,
    // which `git add --renormalize` exists for), and the two indexes compared here are
    // written moments apart.
    std::fs::remove_file(repo.root.join(".gitattributes")).expect("remove");
    std::fs::remove_file(repo.root.join("crlf.txt")).expect("remove");
    git_in(&repo.root, &["init", "-q", "nested"]);
    repo.snapshot_by(TakenBy::Git).await;
    std::fs::remove_dir_all(repo.root.join("nested")).expect("remove");
    repo.snapshot().await;
}

#[test]
fn attributes_that_convert_are_found() {
    for plain in [
        "*.png binary",
        "*.rs -text diff=rust",
        "# text\n*.c !eol",
        "[attr]x -crlf",
    ] {
        assert_eq!(
            settings::converting_attribute(plain.as_bytes()),
            None,
            "{plain}"
        );
    }
    for converting in [
        "* text=auto",
        "*.sh eol=lf",
        "*.bin filter=lfs diff=lfs merge=lfs -text",
        "*.c ident",
        "[attr]mine text",
        "\"a b\" crlf",
    ] {
        assert!(
            settings::converting_attribute(converting.as_bytes()).is_some(),
            "{converting}"
        );
    }
}

#[test]
fn configuration_that_changes_adding_is_found() {
    let plain = settings::from_listing(
        "core.autocrlf\nfalse\0core.filemode\ntrue\0user.name\nx\0",
        PathBuf::new(),
    );
    assert_eq!(plain.unsupported, None);
    for listing in [
        "core.autocrlf\ninput\0",
        "core.autocrlf\0",
        "core.filemode\nfalse\0",
        "core.ignorecase\ntrue\0",
        "core.excludesfile\n.in-the-worktree\0",
    ] {
        let settings = settings::from_listing(listing, PathBuf::new());
        assert!(settings.unsupported.is_some(), "{listing:?}");
    }
    let excludes = settings::from_listing("core.excludesfile\n/tmp/ignore-these\0", PathBuf::new());
    assert_eq!(
        excludes.excludes_file,
        Some(PathBuf::from("/tmp/ignore-these"))
    );
}

#[tokio::test]
async fn a_checkpoint_commits_the_tree_git_would_write_on_head() {
    let repo = repo(&[
        ("a-b", "1\n"),
        ("a/x", "2\n"),
        ("a0", "3\n"),
        ("deep/er/file.txt", "4\n"),
        ("gone.txt", "5\n"),
    ]);
    write(&repo.root, "run.sh", "echo\n");
    std::fs::set_permissions(
        repo.root.join("run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("a0", repo.root.join("link")).expect("symlink");
    std::fs::remove_file(repo.root.join("gone.txt")).expect("remove");
    write(&repo.root, "a/y/new.txt", "6\n");
    let reference = "refs/tether/session/turn-1";
    let commit = record(
        &repo.worktree,
        &repo.index,
        reference,
        "tether checkpoint turn-1",
    )
    .await
    .expect("record");
    let rev = |spec: &str| git_in(&repo.root, &["rev-parse", spec]).trim().to_owned();
    assert_eq!(rev(reference), commit);
    assert_eq!(rev(&format!("{reference}^{{tree}}")), repo.tree());
    assert_eq!(rev(&format!("{reference}^")), rev("HEAD"));
    let shown = git_in(&repo.root, &["cat-file", "-p", &commit]);
    assert!(
        shown.contains("\nauthor tether <tether@localhost> "),
        "{shown}"
    );
    assert!(shown.ends_with("\n\ntether checkpoint turn-1\n"), "{shown}");
    git_in(&repo.root, &["fsck", "--no-dangling", "--strict"]);
}

/// A file whose row the index proves unchanged is not read while snapshotting; its old side
/// is read back from the object database when a command changes it.
#[tokio::test]
async fn the_old_side_of_an_untouched_file_comes_from_the_object_database() {
    let repo = repo(&[("old.txt", "one\ntwo\n")]);
    let path = repo.root.join("old.txt");
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|file| file.set_modified(long_ago))
        .expect("set mtime");
    repo.snapshot().await;
    let before = repo.snapshot().await;
    assert!(
        before.contents.is_empty(),
        "the walk read a file it could trust"
    );
    let before_tree = repo.tree();
    std::fs::write(&path, "one\nthree\nfour\n").expect("write");
    let after = repo.snapshot().await;
    assert_eq!(
        repo.changes(before, &before_tree, after).await,
        [change("old.txt", 2, 1)]
    );
}

#[tokio::test]
async fn an_excludes_file_the_repository_points_at_a_fifo_or_dev_zero_is_not_read() {
    let repo = repo(&[("kept.txt", "kept\n")]);
    let fifo = repo.root.join(".git/hostile-fifo");
    let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    for target in [fifo.to_str().expect("utf-8"), "/dev/zero"] {
        git_in(&repo.root, &["config", "core.excludesFile", target]);
        write(&repo.root, "new.txt", target);
        prepare_index(&repo.worktree, &repo.index);
        // Git itself would hang on the FIFO or read /dev/zero forever: only Tether's walk runs.
        let snapshot = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            take(&repo.worktree, &repo.index),
        )
        .await
        .unwrap_or_else(|_| panic!("core.excludesFile = {target} held up the snapshot"))
        .expect("snapshot");
        let paths: Vec<String> = snapshot.files().map(|(path, ..)| path).collect();
        assert!(paths.contains(&"new.txt".to_owned()), "{paths:?}");
    }
}

//! A repository's files for `@` completion: walked as git sees them (what `.gitignore`,
//! `.ignore` and `info/exclude` leave out is left out; `.git` is never entered), kept per repository, and
//! re-walked in the background once a few seconds old, so a completion never waits on more
//! than the first walk. Matched fuzzily with nucleo (Helix's matcher), paths scored as paths.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nucleo_matcher::pattern::{CaseMatching, Normalization, Pattern};
use nucleo_matcher::{Config, Matcher, Utf32Str};

/// How old a walk may be before the next use re-walks (in the background).
const FRESH_FOR: Duration = Duration::from_secs(5);
/// The most files a repository's index holds.
const MAX_FILES: usize = 200_000;

struct Walked {
    files: Arc<Vec<String>>,
    at: Instant,
    refreshing: bool,
}

/// The files of every repository completions were asked in.
#[derive(Default, Clone)]
pub struct FileIndex {
    walked: Arc<Mutex<HashMap<PathBuf, Walked>>>,
}

impl FileIndex {
    /// `root`'s files, relative, with `/`: the last walk (re-walked in the background if it
    /// is stale), or a walk now if there is none. Blocking: call it off the LSP thread.
    pub fn files(&self, root: &Path) -> Arc<Vec<String>> {
        {
            let mut walked = self.lock();
            if let Some(known) = walked.get_mut(root) {
                if known.at.elapsed() > FRESH_FOR && !known.refreshing {
                    known.refreshing = true;
                    let index = self.clone();
                    let root = root.to_owned();
                    std::thread::spawn(move || index.walk_into(&root));
                }
                return known.files.clone();
            }
        }
        self.walk_into(root)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Walked>> {
        self.walked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn walk_into(&self, root: &Path) -> Arc<Vec<String>> {
        let files = Arc::new(walk(root));
        self.lock().insert(
            root.to_owned(),
            Walked {
                files: files.clone(),
                at: Instant::now(),
                refreshing: false,
            },
        );
        files
    }
}

/// The files under `root` as git sees them, sorted.
fn walk(root: &Path) -> Vec<String> {
    let found = Mutex::new(Vec::new());
    ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .require_git(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build_parallel()
        .run(|| {
            let found = &found;
            Box::new(move |entry| {
                let Ok(entry) = entry else {
                    return ignore::WalkState::Continue;
                };
                if entry.file_type().is_some_and(|kind| kind.is_file())
                    && let Ok(relative) = entry.path().strip_prefix(root)
                    && let Some(relative) = relative.to_str()
                {
                    let mut found = found
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if found.len() >= MAX_FILES {
                        return ignore::WalkState::Quit;
                    }
                    found.push(relative.replace('\\', "/"));
                }
                ignore::WalkState::Continue
            })
        });
    let mut files = found
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    files.sort_unstable();
    files
}

/// The `limit` files that match `query` best (fuzzily; an empty query: the shortest paths).
pub fn best_matches(files: &[String], query: &str, limit: usize) -> Vec<String> {
    if query.is_empty() {
        let mut shortest: Vec<&String> = files.iter().collect();
        shortest.sort_by_key(|path| (path.matches('/').count(), path.len()));
        return shortest.into_iter().take(limit).cloned().collect();
    }
    let pattern = Pattern::parse(query, CaseMatching::Smart, Normalization::Smart);
    let mut matcher = Matcher::new(Config::DEFAULT.match_paths());
    let mut buffer = Vec::new();
    let mut scored: Vec<(u32, &String)> = files
        .iter()
        .filter_map(|path| {
            pattern
                .score(Utf32Str::new(path, &mut buffer), &mut matcher)
                .map(|score| (score, path))
        })
        .collect();
    scored.sort_by(|(a, a_path), (b, b_path)| {
        b.cmp(a)
            .then(a_path.len().cmp(&b_path.len()))
            .then(a_path.cmp(b_path))
    });
    scored
        .into_iter()
        .take(limit)
        .map(|(_, path)| path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_skips_what_git_ignores_and_matching_is_fuzzy() {
        let root = tempfile::tempdir().expect("a temp dir");
        let root = root.path();
        for path in [
            "src/main.rs",
            "src/lib.rs",
            "docs/guide.md",
            "target/debug/out.rs",
            ".hidden/x.rs",
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, "x").expect("write");
        }
        std::fs::write(root.join(".gitignore"), "target/\n").expect("write");
        let index = FileIndex::default();
        let files = index.files(root);
        assert_eq!(
            *files,
            [
                ".gitignore",
                ".hidden/x.rs",
                "docs/guide.md",
                "src/lib.rs",
                "src/main.rs"
            ]
            .map(String::from)
        );
        assert_eq!(best_matches(&files, "smain", 5), ["src/main.rs"]);
        assert_eq!(best_matches(&files, "rs", 1).len(), 1);
        assert_eq!(best_matches(&files, "", 2), [".gitignore", "src/lib.rs"]);
    }
}

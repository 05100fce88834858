//! What git would take into account when adding files, found once per configuration: the
//! ignore files outside the worktree (the repository's `info/exclude`, the user's
//! `core.excludesFile`) and whether anything would make `git add` store something other than
//! a file's bytes (line-ending conversion, clean filters), in which case the in-process
//! snapshot gives way to git itself.
//!
//! The configuration is git's own answer (`git config -l`, through the hardened runner, in the
//! pinned git directory): the system, global and repository files a session's commands cannot
//! write. It is asked again only when one of those files changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;

use super::SnapshotError;
use crate::workspace::SessionWorktree;
use crate::workspace::git;

/// Git's settings that bear on what `git add -A` puts in an index.
#[derive(Debug, Clone, Default)]
pub(super) struct Settings {
    /// Why git must take the snapshot itself here, if it must.
    pub unsupported: Option<String>,
    /// The repository's common git directory (where objects and `info/` live).
    pub common_dir: PathBuf,
    /// `core.excludesFile`, or git's default for it.
    pub excludes_file: Option<PathBuf>,
    /// `core.attributesFile`, or git's default for it.
    pub attributes_file: Option<PathBuf>,
}

/// When a configuration file was last seen: its modification time and size, if it exists.
type Stamp = Option<(SystemTime, u64)>;

/// Settings by git directory, with the stamps of the configuration files they came from.
type Cache = HashMap<PathBuf, (Vec<Stamp>, Arc<Settings>)>;

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Default::default);

/// The repository's common directory: where `commondir` in a linked worktree's git directory
/// points (a file of the repository's own records, not of the worktree).
pub(super) fn common_dir(git_dir: &Path) -> PathBuf {
    match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(text) => {
            let relative = Path::new(text.trim_end_matches(['\n', '\r']));
            git_dir.join(relative)
        }
        Err(_) => git_dir.to_owned(),
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
}

/// `$XDG_CONFIG_HOME/git/<name>`, or `~/.config/git/<name>`.
fn xdg_git_file(name: &str) -> Option<PathBuf> {
    match std::env::var_os("XDG_CONFIG_HOME").filter(|value| !value.is_empty()) {
        Some(config) => Some(PathBuf::from(config).join("git").join(name)),
        None => home().map(|home| home.join(".config/git").join(name)),
    }
}

/// The files git reads its configuration from, for noticing that they changed.
fn config_files(git_dir: &Path, common_dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![
        common_dir.join("config"),
        git_dir.join("config.worktree"),
        std::env::var_os("GIT_CONFIG_SYSTEM")
            .map_or_else(|| "/etc/gitconfig".into(), PathBuf::from),
    ];
    match std::env::var_os("GIT_CONFIG_GLOBAL") {
        Some(global) => files.push(PathBuf::from(global)),
        None => {
            files.extend(home().map(|home| home.join(".gitconfig")));
            files.extend(xdg_git_file("config"));
        }
    }
    files
}

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// The settings for `worktree`, from the cache while its configuration files are unchanged.
pub(super) async fn load(worktree: &SessionWorktree) -> Result<Arc<Settings>, SnapshotError> {
    let common_dir = common_dir(&worktree.git_dir);
    let stamps: Vec<Stamp> = config_files(&worktree.git_dir, &common_dir)
        .iter()
        .map(|file| stamp(file))
        .collect();
    if let Ok(cache) = CACHE.lock()
        && let Some((seen, settings)) = cache.get(&worktree.git_dir)
        && *seen == stamps
    {
        return Ok(settings.clone());
    }
    let listing = git::tether(worktree.place(), &["config", "-z", "-l"], None).await?;
    let settings = Arc::new(from_listing(&listing, common_dir));
    if let Ok(mut cache) = CACHE.lock() {
        cache.insert(worktree.git_dir.clone(), (stamps, settings.clone()));
    }
    Ok(settings)
}

/// Git's reading of a boolean value (`key` alone means true).
fn boolean(value: Option<&str>) -> Option<bool> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true" | "yes" | "on" | "1") => Some(true),
        Some("false" | "no" | "off" | "0" | "") => Some(false),
        _ => None,
    }
}

/// A path setting as `git config --path` expands it (`~/` is the home folder).
fn path_value(value: &str) -> Option<PathBuf> {
    match value.strip_prefix("~/") {
        Some(rest) => home().map(|home| home.join(rest)),
        None if value.is_empty() => None,
        None => Some(PathBuf::from(value)),
    }
}

/// Settings from `git config -z -l` (`key\nvalue\0` each, `key\0` for a bare key; keys
/// lower-cased by git, the last one winning).
pub(super) fn from_listing(listing: &str, common_dir: PathBuf) -> Settings {
    let mut values: HashMap<&str, Option<&str>> = HashMap::new();
    for record in listing.split('\0').filter(|record| !record.is_empty()) {
        let (key, value) = match record.split_once('\n') {
            Some((key, value)) => (key, Some(value)),
            None => (record, None),
        };
        values.insert(key.trim_start_matches('\n'), value);
    }
    let get = |key: &str| values.get(key).copied();
    let mut reasons = Vec::new();
    match get("core.autocrlf") {
        None => {}
        Some(value) if boolean(value) == Some(false) => {}
        Some(_) => reasons.push("core.autocrlf converts line endings"),
    }
    for (key, normal) in [
        ("core.filemode", true),
        ("core.symlinks", true),
        ("core.ignorecase", false),
        ("core.sparsecheckout", false),
        ("core.splitindex", false),
    ] {
        if let Some(value) = get(key)
            && boolean(value) != Some(normal)
        {
            reasons.push(match key {
                "core.filemode" => "core.fileMode is off",
                "core.symlinks" => "core.symlinks is off",
                "core.ignorecase" => "core.ignoreCase is on",
                "core.sparsecheckout" => "the worktree is a sparse checkout",
                _ => "the index is split",
            });
        }
    }
    let file = |key: &str, default: &str| match get(key) {
        Some(Some(value)) => path_value(value),
        _ => xdg_git_file(default),
    };
    let excludes_file = file("core.excludesfile", "ignore");
    let attributes_file = file("core.attributesfile", "attributes");
    // Git reads a relative one from the worktree, where a command could have written it.
    if [&excludes_file, &attributes_file]
        .into_iter()
        .flatten()
        .any(|path| path.is_relative())
    {
        reasons.push("core.excludesFile or core.attributesFile is a relative path");
    }
    Settings {
        unsupported: (!reasons.is_empty()).then(|| reasons.join(", ")),
        common_dir,
        excludes_file,
        attributes_file,
    }
}

/// Attributes that change what `git add` stores for a file (line endings, clean filters,
/// `$Id$` expansion, re-encoding). Unsetting one (`-text`) or leaving it unspecified
/// (`!text`) changes nothing; nor do `diff`, `merge`, `binary` and the rest.
const CONVERTING: &[&str] = &[
    "text",
    "eol",
    "crlf",
    "filter",
    "ident",
    "working-tree-encoding",
];

/// Whether the attribute lines in `text` leave every file's bytes as they are; if not, why.
/// Macros (`[attr]name …`) are read like any line, so a macro that sets one of these counts
/// wherever it is used.
pub(super) fn converting_attribute(text: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // A quoted pattern may hold spaces: look at every word of such a line.
        let words: Box<dyn Iterator<Item = &str>> = if line.starts_with('"') {
            Box::new(line.split_whitespace())
        } else {
            Box::new(line.split_whitespace().skip(1))
        };
        for word in words {
            if word.starts_with(['-', '!']) {
                continue;
            }
            let name = word.split('=').next().unwrap_or_default();
            if CONVERTING.contains(&name) {
                return Some(format!(
                    "the attribute {word:?} converts files when git adds them"
                ));
            }
        }
    }
    None
}

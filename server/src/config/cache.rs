//! Settings parsed once and read again only when they change: the editor's layers are set
//! through [`ConfigCache::set_editor_layer`], and a settings file counts as changed when its
//! size, times or inode differ from when it was parsed (a stat per file per lookup, instead
//! of reading and parsing both files at every use).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use super::files::user_config_path;
use super::{ConfigError, ConfigSources, EditorLayer, REPOSITORY_FILE, Resolved};

/// What identifies one version of a settings file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    inode: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

fn stamp_of(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        len: metadata.len(),
        inode: metadata.ino(),
        modified: (metadata.mtime(), metadata.mtime_nsec()),
        changed: (metadata.ctime(), metadata.ctime_nsec()),
    })
}

/// The two files a repository's settings come from, as they are now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamps {
    user: Option<FileStamp>,
    repository: Option<FileStamp>,
}

fn stamps(repo: Option<&Path>) -> Stamps {
    Stamps {
        user: user_config_path().as_deref().and_then(stamp_of),
        repository: repo.and_then(|repo| stamp_of(&repo.join(REPOSITORY_FILE))),
    }
}

struct Cached {
    stamps: Stamps,
    /// The editor layers' generation it was parsed with.
    generation: u64,
    resolved: Arc<Resolved>,
}

/// The settings of every repository, parsed once per change.
#[derive(Default)]
pub struct ConfigCache {
    /// The editor's layers and their generation, bumped by every change.
    sources: RwLock<(ConfigSources, u64)>,
    resolved: Mutex<HashMap<Option<PathBuf>, Cached>>,
}

impl ConfigCache {
    pub fn new(sources: ConfigSources) -> ConfigCache {
        ConfigCache {
            sources: RwLock::new((sources, 0)),
            resolved: Mutex::default(),
        }
    }

    /// The layers that do not depend on the repository.
    pub fn sources(&self) -> ConfigSources {
        self.layers().0
    }

    fn layers(&self) -> (ConfigSources, u64) {
        self.sources
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The settings for sessions of `repo` (none: the user's and the editor's only), and what
    /// the repository's file tried that was ignored. A file that cannot be used is an error
    /// every time it is asked for, naming the file, until it is fixed.
    pub fn resolve(&self, repo: Option<&Path>) -> Result<Arc<Resolved>, ConfigError> {
        let key = repo.map(Path::to_owned);
        let now = stamps(repo);
        let (sources, generation) = self.layers();
        if let Some(cached) = self.cache().get(&key)
            && cached.stamps == now
            && cached.generation == generation
        {
            return Ok(cached.resolved.clone());
        }
        let resolved = Arc::new(sources.resolve_with_warnings(repo)?);
        let mut cache = self.cache();
        // Parsed with layers that were replaced meanwhile: answer it, do not keep it.
        if self.layers().1 == generation {
            cache.insert(
                key,
                Cached {
                    stamps: now,
                    generation,
                    resolved: resolved.clone(),
                },
            );
        }
        Ok(resolved)
    }

    /// Replaces one of the editor's layers. Settings that are not an object, or that do not
    /// parse, are refused and the layers stay as they were; settings files that were broken
    /// already are not the new layer's fault (their error is reported where it is needed).
    /// Returns the settings that now apply outside any repository.
    pub fn set_editor_layer(
        &self,
        layer: EditorLayer,
        settings: Value,
    ) -> Result<Option<Arc<Resolved>>, ConfigError> {
        let (mut sources, generation) = self.layers();
        let broken_before = sources.resolve_with_warnings(None).is_err();
        sources.set_editor_layer(layer, settings)?;
        let resolved = match sources.resolve_with_warnings(None) {
            Err(error) if !broken_before => return Err(error),
            resolved => resolved.ok().map(Arc::new),
        };
        *self
            .sources
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (sources, generation + 1);
        self.cache().clear();
        Ok(resolved)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Option<PathBuf>, Cached>> {
        self.resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_file_is_parsed_again_only_when_it_changes() {
        let repo = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(repo.path().join(".tether")).expect("mkdir");
        let file = repo.path().join(REPOSITORY_FILE);
        std::fs::write(&file, "[session]\nmax_turns = 7\n").expect("write");
        let cache = ConfigCache::default();
        let first = cache.resolve(Some(repo.path())).expect("resolve");
        let again = cache.resolve(Some(repo.path())).expect("resolve");
        assert!(
            Arc::ptr_eq(&first, &again),
            "unchanged: the parsed settings are shared"
        );
        assert_eq!(first.config.session.max_turns, 7);

        // An editor writes a new file and renames it over the old one.
        let new_file = repo.path().join(".tether/config.toml.new");
        std::fs::write(&new_file, "[session]\nmax_turns = 9\n").expect("write");
        std::fs::rename(&new_file, &file).expect("rename");
        let changed = cache.resolve(Some(repo.path())).expect("resolve");
        assert_eq!(changed.config.session.max_turns, 9);

        // A file that does not parse is an error each time, not the last good settings.
        std::fs::write(&file, "[session\nmax_turns = 9\n").expect("write");
        for _ in 0..2 {
            let error = cache.resolve(Some(repo.path())).expect_err("broken");
            assert!(error.to_string().contains("config.toml"), "{error}");
        }
    }

    #[test]
    fn new_editor_settings_replace_what_was_parsed() {
        let cache = ConfigCache::default();
        let before = cache.resolve(None).expect("resolve");
        cache
            .set_editor_layer(
                EditorLayer::Settings,
                serde_json::json!({"session": {"max_turns": 3}}),
            )
            .expect("set");
        let after = cache.resolve(None).expect("resolve");
        assert!(!Arc::ptr_eq(&before, &after));
        assert_eq!(after.config.session.max_turns, 3);
        assert!(
            cache
                .set_editor_layer(EditorLayer::Settings, serde_json::json!([1]))
                .is_err()
        );
        assert_eq!(
            cache
                .resolve(None)
                .expect("resolve")
                .config
                .session
                .max_turns,
            3
        );
    }
}

//! Settings parsed once and read again only when they change: the editor's layers are set
//! through [`ConfigCache::set_editor_layer`], and a settings file counts as changed when its
//! size, times or inode differ from when it was parsed (a stat per file per lookup, instead
//! of reading and parsing both files at every use).
//!
//! When sessions live in the daemon, each editor's layers are a *profile*
//! ([`ConfigCache::set_profile`]): a session records the profile of the editor that started
//! it and resolves its settings with that editor's layers, also after the editor left and
//! after the daemon restarted (a profile some session uses is kept on disk).

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

/// An editor's two layers of settings: what a profile holds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EditorLayers {
    #[serde(default)]
    pub initialization: Value,
    #[serde(default)]
    pub settings: Value,
}

/// Whether `id` may name a profile: it names a file, so nothing but letters, digits, `-`
/// and `_`, and not too long.
pub fn valid_profile_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Values of key variables an editor's front passed along with its profile, by variable.
pub type ProfileKeys = std::collections::BTreeMap<String, super::SecretValue>;

/// A repository (none: outside any) and an editor profile (none: the cache's own layers).
type CacheKey = (Option<PathBuf>, Option<String>);

struct Cached {
    stamps: Stamps,
    /// The editor layers' generation it was parsed with.
    generation: u64,
    resolved: Arc<Resolved>,
}

/// The settings of every repository, parsed once per change.
#[derive(Default)]
pub struct ConfigCache {
    /// The editor's layers and their generation, bumped by every change (of a profile too).
    sources: RwLock<(ConfigSources, u64)>,
    /// Editors' layers by profile id; read from `profiles_dir` when first needed.
    profiles: RwLock<HashMap<String, EditorLayers>>,
    /// Editors' key values by profile id: in memory only, never kept on disk.
    keys: RwLock<HashMap<String, ProfileKeys>>,
    /// Where profiles that sessions use are kept (`None`: in memory only).
    profiles_dir: Option<PathBuf>,
    resolved: Mutex<HashMap<CacheKey, Cached>>,
}

impl ConfigCache {
    pub fn new(sources: ConfigSources) -> ConfigCache {
        ConfigCache {
            sources: RwLock::new((sources, 0)),
            profiles: RwLock::default(),
            keys: RwLock::default(),
            profiles_dir: None,
            resolved: Mutex::default(),
        }
    }

    /// A cache that keeps the profiles sessions use in `dir`.
    pub fn with_profiles_dir(sources: ConfigSources, dir: PathBuf) -> ConfigCache {
        ConfigCache {
            profiles_dir: Some(dir),
            ..ConfigCache::new(sources)
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
        self.resolve_for(repo, None)
    }

    /// [`ConfigCache::resolve`] with the layers of editor profile `profile` in place of the
    /// cache's own editor layers. A profile that is known nowhere (its file was removed)
    /// counts as an editor that set nothing.
    pub fn resolve_for(
        &self,
        repo: Option<&Path>,
        profile: Option<&str>,
    ) -> Result<Arc<Resolved>, ConfigError> {
        let key = (repo.map(Path::to_owned), profile.map(str::to_owned));
        let now = stamps(repo);
        let (mut sources, generation) = self.layers();
        if let Some(profile) = profile {
            let layers = self.profile(profile).unwrap_or_default();
            sources.initialization = layers.initialization;
            sources.settings = layers.settings;
        }
        if let Some(cached) = self.cache().get(&key)
            && cached.stamps == now
            && cached.generation == generation
        {
            return Ok(cached.resolved.clone());
        }
        let mut resolved = sources.resolve_with_warnings(repo)?;
        if let Some(keys) = profile.and_then(|profile| {
            self.keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(profile)
                .cloned()
        }) {
            for provider in resolved.config.providers.values_mut() {
                if let Some(value) = provider
                    .api_key_env
                    .as_ref()
                    .and_then(|name| keys.get(name))
                {
                    provider.api_key_value = Some(value.clone());
                }
            }
        }
        let resolved = Arc::new(resolved);
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

    /// Replaces the layers of editor profile `id`. Layers that are not objects, or that do
    /// not parse, are refused and the profile stays as it was. A profile kept on disk is
    /// written again.
    pub fn set_profile(&self, id: &str, layers: EditorLayers) -> Result<(), ConfigError> {
        if !valid_profile_id(id) {
            return Err(ConfigError::Invalid {
                key: "profile".to_owned(),
                message: format!("{id:?} is not a profile id (letters, digits, - and _)"),
            });
        }
        let mut sources = self.layers().0;
        let broken_before = sources.resolve_with_warnings(None).is_err();
        sources.set_editor_layer(EditorLayer::Initialization, layers.initialization.clone())?;
        sources.set_editor_layer(EditorLayer::Settings, layers.settings.clone())?;
        // A settings file that was broken already is not the profile's fault: its error is
        // reported where the settings are needed, and the profile applies once it is fixed.
        if let Err(error) = sources.resolve_with_warnings(None)
            && !broken_before
        {
            return Err(error);
        }
        let kept = self
            .profile_file(id)
            .filter(|file| file.exists())
            .map(|_| self.keep(id, &layers));
        self.profiles
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), layers);
        self.bump();
        match kept {
            Some(Err(error)) => Err(error),
            _ => Ok(()),
        }
    }

    /// Replaces the key values editor profile `id` passed along (the values of the variables
    /// its settings name in `api_key_env`, from the editor's environment).
    pub fn set_profile_keys(&self, id: &str, keys: ProfileKeys) {
        let mut all = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if all.get(id) == Some(&keys) {
            return;
        }
        all.insert(id.to_owned(), keys);
        drop(all);
        self.bump();
    }

    /// Writes profile `id` to disk, so that the sessions using it keep its settings after
    /// the editor leaves and the daemon restarts.
    pub fn keep_profile(&self, id: &str) -> Result<(), ConfigError> {
        match self.profile(id) {
            Some(layers) => self.keep(id, &layers),
            None => Ok(()),
        }
    }

    fn keep(&self, id: &str, layers: &EditorLayers) -> Result<(), ConfigError> {
        let Some(file) = self.profile_file(id) else {
            return Ok(());
        };
        let failed = |source: std::io::Error| ConfigError::Read {
            path: file.clone(),
            source,
        };
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let text = serde_json::to_vec(layers).map_err(|error| failed(error.into()))?;
        // Only the user reads it: it names providers and where their keys are.
        let partial = file.with_extension("json.partial");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)
                .map_err(failed)?;
            out.write_all(&text).map_err(failed)?;
            out.sync_all().map_err(failed)?;
        }
        std::fs::rename(&partial, &file).map_err(failed)
    }

    /// Profile `id`, from memory or from its file.
    fn profile(&self, id: &str) -> Option<EditorLayers> {
        if let Some(layers) = self
            .profiles
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
        {
            return Some(layers.clone());
        }
        let file = self.profile_file(id)?;
        // Bounded: a profile is a few settings, never megabytes.
        if std::fs::metadata(&file).ok()?.len() > 1 << 20 {
            tracing::warn!("{} is too large; using no editor settings", file.display());
            return None;
        }
        let text = std::fs::read(&file).ok()?;
        let layers: EditorLayers = match serde_json::from_slice(&text) {
            Ok(layers) => layers,
            Err(error) => {
                tracing::warn!("{}: {error}; using no editor settings", file.display());
                return None;
            }
        };
        self.profiles
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), layers.clone());
        Some(layers)
    }

    fn profile_file(&self, id: &str) -> Option<PathBuf> {
        let dir = self.profiles_dir.as_ref()?;
        valid_profile_id(id).then(|| dir.join(format!("{id}.json")))
    }

    /// The layers changed: what was parsed with the old ones is dropped.
    fn bump(&self) {
        let mut sources = self
            .sources
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sources.1 += 1;
        drop(sources);
        self.cache().clear();
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Cached>> {
        self.resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

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

    #[test]
    fn a_profile_kept_by_a_session_outlives_the_cache_that_set_it() {
        let home = tempfile::tempdir().expect("tempdir");
        let dir = home.path().join("editors");
        let cache = ConfigCache::with_profiles_dir(ConfigSources::default(), dir.clone());
        let layers = EditorLayers {
            initialization: serde_json::json!({"session": {"max_turns": 4}}),
            settings: serde_json::json!({"session": {"max_turns": 5}}),
        };
        cache.set_profile("editor-1", layers.clone()).expect("set");
        // Not kept until a session uses it: editors that start nothing leave no file.
        assert!(!dir.join("editor-1.json").exists());
        let resolved = cache.resolve_for(None, Some("editor-1")).expect("resolve");
        assert_eq!(
            resolved.config.session.max_turns, 5,
            "the latest layer wins"
        );
        let own = cache.resolve(None).expect("resolve");
        assert_ne!(
            own.config.session.max_turns, 5,
            "the host's own layers are apart"
        );

        cache.keep_profile("editor-1").expect("keep");
        let mode = std::fs::metadata(dir.join("editor-1.json"))
            .expect("kept")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Kept profiles are written again when they change.
        let changed = EditorLayers {
            settings: serde_json::json!({"session": {"max_turns": 6}}),
            ..layers
        };
        cache.set_profile("editor-1", changed).expect("set");
        let restarted = ConfigCache::with_profiles_dir(ConfigSources::default(), dir);
        let resolved = restarted
            .resolve_for(None, Some("editor-1"))
            .expect("resolve");
        assert_eq!(resolved.config.session.max_turns, 6);
        // An unknown profile is an editor that set nothing.
        let unknown = restarted.resolve_for(None, Some("gone")).expect("resolve");
        assert_eq!(
            unknown.config.session.max_turns,
            restarted
                .resolve(None)
                .expect("resolve")
                .config
                .session
                .max_turns
        );
    }

    #[test]
    fn profiles_with_a_path_for_a_name_or_bad_layers_are_refused() {
        let home = tempfile::tempdir().expect("tempdir");
        let cache =
            ConfigCache::with_profiles_dir(ConfigSources::default(), home.path().join("editors"));
        for id in ["../escape", "", "a/b", "x.json"] {
            assert!(
                cache.set_profile(id, EditorLayers::default()).is_err(),
                "{id:?} was taken"
            );
        }
        let bad = EditorLayers {
            initialization: serde_json::json!([1]),
            settings: Value::Null,
        };
        assert!(cache.set_profile("ok", bad).is_err());
        assert!(
            cache.profile("ok").is_none(),
            "a refused profile is not kept"
        );
        assert!(!home.path().join("escape.json").exists());
    }

    #[test]
    fn an_editors_keys_reach_its_providers_and_never_its_file() {
        let home = tempfile::tempdir().expect("tempdir");
        let dir = home.path().join("editors");
        let cache = ConfigCache::with_profiles_dir(ConfigSources::default(), dir.clone());
        let layers = EditorLayers {
            initialization: serde_json::json!({"providers": {"mine": {
                "kind": "openai", "base_url": "http://127.0.0.1:1", "api_key_env": "MY_KEY"}}}),
            settings: Value::Null,
        };
        cache.set_profile("keyed", layers).expect("set");
        let keys = ProfileKeys::from([(
            "MY_KEY".to_owned(),
            super::super::SecretValue("sk-planted-999".to_owned()),
        )]);
        cache.set_profile_keys("keyed", keys);
        cache.keep_profile("keyed").expect("keep");
        let resolved = cache.resolve_for(None, Some("keyed")).expect("resolve");
        let provider = &resolved.config.providers["mine"];
        assert_eq!(
            provider
                .api_key_value
                .as_ref()
                .map(|value| value.0.as_str()),
            Some("sk-planted-999")
        );
        assert!(
            resolved
                .config
                .secret_values()
                .contains(&"sk-planted-999".to_owned())
        );
        assert!(
            !format!("{resolved:?}").contains("sk-planted"),
            "Debug hides it"
        );
        let kept = std::fs::read_to_string(dir.join("keyed.json")).expect("kept");
        assert!(!kept.contains("sk-planted"), "{kept}");
        // Another editor's sessions do not get it.
        let other = cache.resolve_for(None, Some("other")).expect("resolve");
        assert!(!other.config.providers.contains_key("mine"));
    }
}

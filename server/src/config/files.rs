//! Reading settings files: the user's, and the repository's beneath the repository, each a
//! regular file of bounded size.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ConfigError;

pub(super) fn user_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("tether/config.toml"))
}

/// The largest settings file read.
const SETTINGS_FILE_LIMIT: u64 = 1024 * 1024;

/// Reads a settings file: a regular file (a FIFO or `/dev/zero` would hang or exhaust the
/// reader) of at most [`SETTINGS_FILE_LIMIT`]. A repository's file is read beneath the
/// repository, so a link it commits cannot make Tether read a file of its choosing.
fn read_settings_file(path: &Path, repository: Option<&Path>) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let bytes = match repository {
        Some(root) => {
            let relative = path.strip_prefix(root).map_err(std::io::Error::other)?;
            let beneath = crate::beneath::Beneath::open(root)?;
            match beneath.read(relative, SETTINGS_FILE_LIMIT) {
                Ok(bytes) => bytes,
                Err(crate::beneath::FileError::NotFound) => return Ok(None),
                Err(error) => {
                    return Err(std::io::Error::other(
                        error.describe(&path.display().to_string()),
                    ));
                }
            }
        }
        None => {
            use std::os::unix::fs::OpenOptionsExt;
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
            {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error),
            };
            let metadata = file.metadata()?;
            if !metadata.is_file() || metadata.len() > SETTINGS_FILE_LIMIT {
                return Err(std::io::Error::other(format!(
                    "not a regular file of at most {SETTINGS_FILE_LIMIT} bytes"
                )));
            }
            let mut bytes = Vec::new();
            file.take(SETTINGS_FILE_LIMIT).read_to_end(&mut bytes)?;
            bytes
        }
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| std::io::Error::other("not UTF-8"))
}

pub(super) fn read_toml_if_present(
    path: &Path,
    repository: Option<&Path>,
) -> Result<Value, ConfigError> {
    let text = match read_settings_file(path, repository) {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(Value::Null),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    toml::from_str::<Value>(&text).map_err(|error| ConfigError::Toml {
        path: path.to_owned(),
        message: error.to_string(),
    })
}

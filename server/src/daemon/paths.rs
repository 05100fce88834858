//! Where the daemon listens and logs, and the checks that keep the socket the user's own: a
//! folder only the user can enter (0700), a socket only the user can open (0600).
//!
//! One daemon serves one state folder. With `TETHER_HOME` set (tests, a second setup), the
//! socket lives in it; otherwise in `$XDG_RUNTIME_DIR/tether/`, else in the state folder.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The daemon's files.
#[derive(Debug, Clone)]
pub struct DaemonPaths {
    /// The folder the socket is in (0700).
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// Held (flock) by the one daemon serving this state folder.
    pub lock: PathBuf,
    /// The daemon's log (its stderr).
    pub log: PathBuf,
    /// The state folder it serves.
    pub state_home: PathBuf,
}

impl DaemonPaths {
    /// The daemon's files for this process: the state folder a front started the daemon for
    /// (`TETHER_DAEMON_STATE`, set only in the daemon), else the user's.
    pub fn current() -> DaemonPaths {
        let state_home = std::env::var_os("TETHER_DAEMON_STATE")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(crate::store::state_home);
        let state_home = std::path::absolute(&state_home).unwrap_or(state_home);
        DaemonPaths::for_state_home(&state_home)
    }

    /// The daemon's files for the state folder `state_home`, as the environment places them.
    pub fn for_state_home(state_home: &Path) -> DaemonPaths {
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from);
        let explicit_home = std::env::var_os("TETHER_HOME").is_some_and(|value| !value.is_empty());
        let dir = match runtime_dir {
            Some(runtime_dir) if !explicit_home => runtime_dir.join("tether"),
            _ => state_home.to_owned(),
        };
        DaemonPaths::in_folder(&dir, state_home)
    }

    /// The socket and lock in `dir`, serving `state_home`.
    pub fn in_folder(dir: &Path, state_home: &Path) -> DaemonPaths {
        DaemonPaths {
            socket: dir.join("tether.sock"),
            lock: dir.join("tether.lock"),
            log: state_home.join("daemon.log"),
            state_home: state_home.to_owned(),
            dir: dir.to_owned(),
        }
    }
}

/// Makes the socket's folder, or checks the one there: it must be the user's own and closed
/// to everyone else. A folder of another user is refused (someone could be listening there);
/// one of the user's that others may enter is closed (0700).
pub fn prepare_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let metadata = std::fs::symlink_metadata(dir)
        .map_err(|error| format!("cannot read {}: {error}", dir.display()))?;
    if !metadata.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    let uid = rustix::process::getuid().as_raw();
    if metadata.uid() != uid {
        return Err(format!(
            "{} belongs to uid {}, not to you (uid {uid}); refusing to put the session socket there",
            dir.display(),
            metadata.uid()
        ));
    }
    if metadata.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|error| format!("cannot close {} to others: {error}", dir.display()))?;
    }
    Ok(())
}

/// Checks a socket file before connecting to it: it must be a socket, the user's own.
pub fn check_socket(socket: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let metadata = std::fs::symlink_metadata(socket)
        .map_err(|error| format!("{}: {error}", socket.display()))?;
    if !metadata.file_type().is_socket() {
        return Err(format!("{} is not a socket", socket.display()));
    }
    let uid = rustix::process::getuid().as_raw();
    if metadata.uid() != uid {
        return Err(format!(
            "{} belongs to uid {}, not to you (uid {uid}); refusing to connect",
            socket.display(),
            metadata.uid()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_open_to_others_is_closed() {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("run");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        prepare_dir(&dir).expect("prepared");
        let mode = std::fs::metadata(&dir).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_refused() {
        let base = tempfile::tempdir().expect("tempdir");
        let file = base.path().join("tether.sock");
        std::fs::write(&file, "not a socket").expect("write");
        let error = check_socket(&file).expect_err("refused");
        assert!(error.contains("not a socket"), "{error}");
    }
}

//! Attached files on disk: `attachments/<sha256>` beside the repository's session logs, each
//! kept once however many messages attach it. Written to a temporary file, synced and renamed
//! before the message that names it is logged, so a logged attachment is always there.

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{RepoStore, StoreError, io_error};

impl RepoStore {
    fn attachment_path(&self, sha256: &str) -> Option<PathBuf> {
        // Only ever a hash: a name from the wire never becomes a path.
        let valid = sha256.len() == 64 && sha256.bytes().all(|byte| byte.is_ascii_hexdigit());
        valid.then(|| self.dir.join("attachments").join(sha256))
    }

    /// Keeps `bytes`; returns their SHA-256 in hex.
    pub fn put_attachment(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let sha256: String = Sha256::digest(bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let dir = self.dir.join("attachments");
        let path = dir.join(&sha256);
        if path.exists() {
            return Ok(sha256);
        }
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let temporary = dir.join(format!("{sha256}.{}.tmp", std::process::id()));
        let mut file = File::create(&temporary).map_err(io_error("write", &temporary))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_error("write", &temporary))?;
        fs::rename(&temporary, &path).map_err(io_error("write", &path))?;
        Ok(sha256)
    }

    /// The bytes of the attachment `sha256`.
    pub fn read_attachment(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let path = self
            .attachment_path(sha256)
            .unwrap_or_else(|| self.dir.join("attachments").join("not-a-hash"));
        fs::read(&path).map_err(io_error("read", &path))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn attachments_are_kept_once_and_only_a_hash_names_one() {
        let home = tempfile::tempdir().expect("a temp dir");
        let store = RepoStore::open(home.path(), Path::new("/repo")).expect("open");
        let first = store.put_attachment(b"bytes").expect("kept");
        assert_eq!(store.put_attachment(b"bytes").expect("kept again"), first);
        assert_eq!(store.read_attachment(&first).expect("read"), b"bytes");
        // A file beside the store's folder, which a path in the name would reach.
        std::fs::write(store.dir.join("secret"), "key").expect("write");
        for name in [
            "../secret",
            "../../secret",
            "/etc/passwd",
            "secret",
            &first[..63],
        ] {
            assert!(store.read_attachment(name).is_err(), "{name}");
        }
    }
}

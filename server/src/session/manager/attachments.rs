//! Taking attachments in: each file a request names (a path, a `file:` URI, or base64 data)
//! is read, checked (count, type, size, that an image is the image it says, that text is
//! UTF-8) and kept in the repository's state folder by its hash, before the message that
//! names it is logged. Anything wrong is a clear error naming the attachment, and nothing is
//! sent.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::SessionError;
use crate::store::RepoStore;
use crate::vocab::{Attachment, AttachmentKind, AttachmentSource, MAX_ATTACHMENTS, mime_type_of};

fn invalid(message: String) -> SessionError {
    SessionError::InvalidParams {
        field: "attachments",
        message,
    }
}

impl super::SessionManager {
    /// The bytes of file `sha256` attached in session `id`.
    pub fn attachment(&self, id: &str, sha256: &str) -> Result<Vec<u8>, SessionError> {
        let handle = self.handle(id)?;
        handle
            .store
            .read_attachment(sha256)
            .map_err(|_| SessionError::InvalidParams {
                field: "sha256",
                message: format!("no file {sha256:?} is attached in this repository's sessions"),
            })
    }
}

/// Reads, checks and keeps `sources` (paths relative to `repo`); what the message names.
pub(super) fn take_in(
    store: &RepoStore,
    repo: &Path,
    sources: &[AttachmentSource],
) -> Result<Vec<Attachment>, SessionError> {
    if sources.len() > MAX_ATTACHMENTS {
        return Err(invalid(format!(
            "{} attachments; a message takes at most {MAX_ATTACHMENTS}",
            sources.len()
        )));
    }
    let mut taken = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        let number = index + 1;
        let (name, bytes, mime_type) = read(repo, source, number)?;
        let label = format!("attachment {number} ({name})");
        let mime_type = mime_type.to_ascii_lowercase();
        let kind = AttachmentKind::of(&mime_type).ok_or_else(|| {
            invalid(format!(
                "{label}: {mime_type} is not a type Tether attaches (images: PNG, JPEG, GIF, \
                 WebP; PDF; text)"
            ))
        })?;
        let size = bytes.len() as u64;
        if size > kind.max_bytes() {
            return Err(invalid(format!(
                "{label}: {} is more than {} may be ({})",
                megabytes(size),
                match kind {
                    AttachmentKind::Image => "an image",
                    AttachmentKind::Pdf => "a PDF",
                    AttachmentKind::Text => "a text file",
                },
                megabytes(kind.max_bytes())
            )));
        }
        if size == 0 {
            return Err(invalid(format!("{label}: the file is empty")));
        }
        match kind {
            AttachmentKind::Image if !looks_like(&mime_type, &bytes) => {
                return Err(invalid(format!(
                    "{label}: the data is not a {mime_type} image"
                )));
            }
            AttachmentKind::Pdf if !bytes.starts_with(b"%PDF-") => {
                return Err(invalid(format!("{label}: the data is not a PDF")));
            }
            AttachmentKind::Text if std::str::from_utf8(&bytes).is_err() => {
                return Err(invalid(format!("{label}: the file is not UTF-8 text")));
            }
            _ => {}
        }
        let sha256 = store.put_attachment(&bytes)?;
        taken.push(Attachment {
            name,
            mime_type,
            size,
            sha256,
        });
    }
    Ok(taken)
}

/// Whether `provider` takes what is attached: a provider set `vision = false` takes no
/// images or PDFs.
pub(super) fn check_vision(
    provider: &str,
    provider_config: &crate::config::ProviderConfig,
    attachments: &[Attachment],
) -> Result<(), SessionError> {
    let visual = attachments.iter().find(|file| {
        matches!(
            file.kind(),
            Some(AttachmentKind::Image | AttachmentKind::Pdf)
        )
    });
    match visual {
        Some(file) if provider_config.vision == Some(false) => Err(SessionError::InvalidParams {
            field: "attachments",
            message: format!(
                "{} is {}, and provider {provider:?} takes no images or PDFs (set vision = true \
                 in [providers.{provider}] if its model does)",
                file.name, file.mime_type
            ),
        }),
        _ => Ok(()),
    }
}

/// The request with the bytes of the files attached to its user messages (the conversation
/// in memory only names them), read from the state folder off the session's task. A file that
/// cannot be read is sent as a line saying so.
pub(super) async fn with_attachment_data(
    handle: &super::actor::SessionHandle,
    mut request: crate::provider::ChatRequest,
) -> Result<crate::provider::ChatRequest, String> {
    if request
        .messages
        .iter()
        .all(|message| message.attachments.is_empty())
    {
        return Ok(request);
    }
    let store = handle.store.clone();
    let id = handle.id.clone();
    tokio::task::spawn_blocking(move || {
        for message in &mut request.messages {
            for attached in &mut message.attachments {
                match store.read_attachment(&attached.file.sha256) {
                    Ok(bytes) => attached.data = Some(std::sync::Arc::new(bytes)),
                    Err(error) => tracing::warn!("session {id}: {error}"),
                }
            }
        }
        request
    })
    .await
    .map_err(|error| format!("reading the attachments panicked: {error}"))
}

/// One source's name, bytes and MIME type.
fn read(
    repo: &Path,
    source: &AttachmentSource,
    number: usize,
) -> Result<(String, Vec<u8>, String), SessionError> {
    let given = [&source.path, &source.uri, &source.data]
        .iter()
        .filter(|value| value.is_some())
        .count();
    if given != 1 {
        return Err(invalid(format!(
            "attachment {number}: give exactly one of path, uri or data"
        )));
    }
    if let Some(data) = &source.data {
        let compact: String = data.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|error| {
                invalid(format!("attachment {number}: data is not base64 ({error})"))
            })?;
        let mime_type = source
            .mime_type
            .clone()
            .or_else(|| {
                source
                    .name
                    .as_deref()
                    .and_then(mime_type_of)
                    .map(str::to_owned)
            })
            .ok_or_else(|| invalid(format!("attachment {number}: data needs a mimeType")))?;
        let name = source.name.clone().unwrap_or_else(|| {
            format!(
                "attachment-{number}.{}",
                mime_type.rsplit('/').next().unwrap_or("bin")
            )
        });
        return Ok((name, bytes, mime_type));
    }
    let path = match &source.path {
        Some(path) => repo.join(path),
        None => {
            let uri = source.uri.as_deref().unwrap_or_default();
            path_of_uri(uri).ok_or_else(|| {
                invalid(format!("attachment {number}: {uri:?} is not a file: URI"))
            })?
        }
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("attachment-{number}"));
    let name = source.name.clone().unwrap_or(file_name);
    let mime_type = source
        .mime_type
        .clone()
        .or_else(|| mime_type_of(&name).map(str::to_owned))
        .ok_or_else(|| {
            invalid(format!(
                "attachment {number} ({name}): say its mimeType (its name does not)"
            ))
        })?;
    let kind_limit = AttachmentKind::of(&mime_type).map_or(u64::MAX, AttachmentKind::max_bytes);
    let metadata = std::fs::metadata(&path).map_err(|error| {
        invalid(format!(
            "attachment {number}: cannot read {}: {error}",
            path.display()
        ))
    })?;
    if !metadata.is_file() {
        return Err(invalid(format!(
            "attachment {number}: {} is not a file",
            path.display()
        )));
    }
    // Not read at all when it is too large to take.
    if metadata.len() > kind_limit {
        return Err(invalid(format!(
            "attachment {number} ({name}): {} is more than the {} such a file may be",
            megabytes(metadata.len()),
            megabytes(kind_limit)
        )));
    }
    let bytes = std::fs::read(&path).map_err(|error| {
        invalid(format!(
            "attachment {number}: cannot read {}: {error}",
            path.display()
        ))
    })?;
    Ok((name, bytes, mime_type))
}

/// The path of a `file:` URI (percent-decoded), if it is one.
fn path_of_uri(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = path.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            decoded.push(byte);
            index += 3;
            continue;
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    Some(PathBuf::from(String::from_utf8(decoded).ok()?))
}

/// Whether `bytes` start as an image of `mime_type` does.
fn looks_like(mime_type: &str, bytes: &[u8]) -> bool {
    match mime_type {
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(&[0xff, 0xd8, 0xff]),
        "image/gif" => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
        "image/webp" => bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP",
        _ => false,
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_048_576.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_are_decoded_and_others_refused() {
        assert_eq!(
            path_of_uri("file:///home/me/My%20Shot.png"),
            Some(PathBuf::from("/home/me/My Shot.png"))
        );
        assert_eq!(path_of_uri("https://example.com/a.png"), None);
        assert_eq!(path_of_uri("file://server/share/a.png"), None);
    }

    #[test]
    fn an_image_is_checked_against_what_it_says_it_is() {
        assert!(looks_like("image/png", b"\x89PNG\r\n\x1a\nrest"));
        assert!(!looks_like("image/png", b"GIF89a"));
        assert!(looks_like("image/webp", b"RIFF\0\0\0\0WEBPVP8 "));
    }
}

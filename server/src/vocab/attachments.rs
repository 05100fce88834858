//! Files attached to a user's message: images, PDFs and text. The log holds only what names
//! each one; the bytes are kept once, by content hash, in the repository's state folder.

use serde::{Deserialize, Serialize};

/// An attached file, as the log and the protocol name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub name: String,
    pub mime_type: String,
    pub size: u64,
    /// The SHA-256 of its bytes, in hex: where the state folder keeps them.
    pub sha256: String,
}

/// A file to attach, as a request gives it: one of `path` (absolute, or relative to the
/// repository), `uri` (`file:`) or `data` (base64, with its `mimeType`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachmentSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Default: from the file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What the model is given an attachment as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentKind {
    /// Image content (PNG, JPEG, GIF, WebP).
    Image,
    /// A document (PDF).
    Pdf,
    /// Text, put into the message.
    Text,
}

impl AttachmentKind {
    /// The kind a MIME type is, if Tether takes it.
    pub fn of(mime_type: &str) -> Option<AttachmentKind> {
        let mime_type = mime_type.trim().to_ascii_lowercase();
        match mime_type.as_str() {
            "image/png" | "image/jpeg" | "image/gif" | "image/webp" => Some(AttachmentKind::Image),
            "application/pdf" => Some(AttachmentKind::Pdf),
            "application/json"
            | "application/xml"
            | "application/toml"
            | "application/yaml"
            | "application/x-yaml"
            | "application/javascript"
            | "application/x-sh" => Some(AttachmentKind::Text),
            text if text.starts_with("text/") => Some(AttachmentKind::Text),
            _ => None,
        }
    }

    /// The largest attachment of this kind, in bytes (images as the hosted APIs take them).
    pub fn max_bytes(self) -> u64 {
        match self {
            AttachmentKind::Image => 5 * 1024 * 1024,
            AttachmentKind::Pdf => 10 * 1024 * 1024,
            AttachmentKind::Text => 512 * 1024,
        }
    }
}

impl Attachment {
    pub fn kind(&self) -> Option<AttachmentKind> {
        AttachmentKind::of(&self.mime_type)
    }
}

/// At most this many attachments on one message.
pub const MAX_ATTACHMENTS: usize = 10;

/// The MIME type a file name says, for attachments named without one.
pub fn mime_type_of(name: &str) -> Option<&'static str> {
    let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "json" => "application/json",
        "xml" => "application/xml",
        "toml" => "application/toml",
        "yaml" | "yml" => "application/yaml",
        "md" | "markdown" => "text/markdown",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "txt" | "log" | "rs" | "py" | "js" | "ts" | "tsx" | "jsx" | "go" | "java" | "c" | "h"
        | "cpp" | "hpp" | "cc" | "rb" | "sh" | "lua" | "css" | "sql" | "kt" | "swift" | "cs"
        | "php" | "zig" | "ex" | "exs" | "hs" | "ml" | "scala" | "proto" | "ini" | "cfg"
        | "diff" | "patch" => "text/plain",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_names() {
        assert_eq!(AttachmentKind::of("image/PNG"), Some(AttachmentKind::Image));
        assert_eq!(
            AttachmentKind::of("application/pdf"),
            Some(AttachmentKind::Pdf)
        );
        assert_eq!(
            AttachmentKind::of("text/x-rust"),
            Some(AttachmentKind::Text)
        );
        assert_eq!(AttachmentKind::of("application/zip"), None);
        assert_eq!(
            AttachmentKind::of("image/svg+xml"),
            None,
            "SVG is script, not an image"
        );
        assert_eq!(mime_type_of("Shot.PNG"), Some("image/png"));
        assert_eq!(mime_type_of("main.rs"), Some("text/plain"));
        assert_eq!(mime_type_of("archive.zip"), None);
        assert_eq!(mime_type_of("Makefile"), None);
    }
}

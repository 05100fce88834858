//! A user message's attachments in the parts every provider sends: its text (with text files
//! put into it), then its images and PDFs as base64.

use base64::Engine as _;

use crate::vocab::{AttachmentKind, ChatMessage};

/// A text file as it is put into a message: named and fenced (with a fence its text does not
/// hold).
pub fn inline_text(name: &str, data: &[u8]) -> String {
    let content = String::from_utf8_lossy(data);
    let fence = if content.contains("```") {
        "~~~~"
    } else {
        "```"
    };
    format!(
        "\n\nAttached file `{name}`:\n{fence}\n{}\n{fence}",
        content.trim_end()
    )
}

/// One part of a user message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Part<'a> {
    Text(String),
    Image { mime_type: &'a str, base64: String },
    Pdf { name: &'a str, base64: String },
}

/// The parts of `message`: its text first (text files appended, and a line for each file
/// whose bytes were not read), then each image and PDF.
pub(super) fn parts(message: &ChatMessage) -> Vec<Part<'_>> {
    let mut text = message.content.clone();
    let mut files = Vec::new();
    for attached in &message.attachments {
        let file = &attached.file;
        let Some(data) = &attached.data else {
            text.push_str(&format!(
                "\n\n[attached: {} ({}), not available]",
                file.name, file.mime_type
            ));
            continue;
        };
        match file.kind() {
            Some(AttachmentKind::Text) => text.push_str(&inline_text(&file.name, data)),
            Some(AttachmentKind::Image) => files.push(Part::Image {
                mime_type: &file.mime_type,
                base64: base64::engine::general_purpose::STANDARD.encode(data.as_slice()),
            }),
            Some(AttachmentKind::Pdf) => files.push(Part::Pdf {
                name: &file.name,
                base64: base64::engine::general_purpose::STANDARD.encode(data.as_slice()),
            }),
            None => text.push_str(&format!(
                "\n\n[attached: {} ({}), a type the model is not sent]",
                file.name, file.mime_type
            )),
        }
    }
    let mut all = vec![Part::Text(text)];
    all.extend(files);
    all
}

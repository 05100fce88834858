//! The buffers the editor has open, kept in ropes from `didOpen`/`didChange`/`didClose`.
//!
//! tower-lsp-server may run notification handlers out of order, so handlers only queue the
//! notification; one task applies them in the order they were queued, and a change whose
//! version does not go up marks the buffer out of sync instead of corrupting it. Readers ask
//! the same task, so they see every change queued before them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ropey::Rope;
use tokio::sync::{mpsc, oneshot};
use tower_lsp_server::ls_types::{Position, Range, TextDocumentContentChangeEvent, TextEdit};

use crate::workspace::edits::{LinePosition, TextChange};

/// One open buffer.
#[derive(Clone)]
pub struct OpenDocument {
    pub version: i32,
    pub text: Rope,
    /// False once a change arrived out of order: the text can no longer be trusted.
    pub in_sync: bool,
}

enum Message {
    Open {
        path: PathBuf,
        version: i32,
        text: String,
    },
    Change {
        path: PathBuf,
        version: i32,
        changes: Vec<TextDocumentContentChangeEvent>,
    },
    Saved {
        path: PathBuf,
        text: Option<String>,
    },
    Close {
        path: PathBuf,
    },
    Read {
        paths: Vec<PathBuf>,
        reply: oneshot::Sender<HashMap<PathBuf, OpenDocument>>,
    },
}

/// A saved buffer: its path and its text as saved.
pub struct SavedDocument {
    pub path: PathBuf,
    pub text: String,
}

/// The handle handlers use; cheap to clone.
#[derive(Clone)]
pub struct Documents {
    sender: mpsc::UnboundedSender<Message>,
    utf8: Arc<AtomicBool>,
}

impl Documents {
    /// Starts the task that owns the buffers. Saved buffers are passed on to `saved`.
    pub fn start(saved: mpsc::UnboundedSender<SavedDocument>) -> Documents {
        let (sender, receiver) = mpsc::unbounded_channel();
        let utf8 = Arc::new(AtomicBool::new(false));
        tokio::spawn(run(receiver, utf8.clone(), saved));
        Documents { sender, utf8 }
    }

    /// Positions count UTF-8 bytes (true) or UTF-16 code units (false, LSP's default).
    pub fn set_utf8(&self, utf8: bool) {
        self.utf8.store(utf8, Ordering::SeqCst);
    }

    pub fn utf8(&self) -> bool {
        self.utf8.load(Ordering::SeqCst)
    }

    pub fn open(&self, path: PathBuf, version: i32, text: String) {
        let _ = self.sender.send(Message::Open {
            path,
            version,
            text,
        });
    }

    pub fn change(
        &self,
        path: PathBuf,
        version: i32,
        changes: Vec<TextDocumentContentChangeEvent>,
    ) {
        let _ = self.sender.send(Message::Change {
            path,
            version,
            changes,
        });
    }

    pub fn saved(&self, path: PathBuf, text: Option<String>) {
        let _ = self.sender.send(Message::Saved { path, text });
    }

    pub fn close(&self, path: PathBuf) {
        let _ = self.sender.send(Message::Close { path });
    }

    /// The open buffers among `paths`, as of every notification received so far.
    pub async fn read(&self, paths: Vec<PathBuf>) -> HashMap<PathBuf, OpenDocument> {
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Message::Read { paths, reply }).is_err() {
            return HashMap::new();
        }
        answer.await.unwrap_or_default()
    }
}

async fn run(
    mut receiver: mpsc::UnboundedReceiver<Message>,
    utf8: Arc<AtomicBool>,
    saved: mpsc::UnboundedSender<SavedDocument>,
) {
    let mut open: HashMap<PathBuf, OpenDocument> = HashMap::new();
    while let Some(message) = receiver.recv().await {
        match message {
            Message::Open {
                path,
                version,
                text,
            } => {
                open.insert(
                    path,
                    OpenDocument {
                        version,
                        text: Rope::from_str(&text),
                        in_sync: true,
                    },
                );
            }
            Message::Change {
                path,
                version,
                changes,
            } => {
                let Some(document) = open.get_mut(&path) else {
                    tracing::warn!("didChange for {} which is not open", path.display());
                    continue;
                };
                if version <= document.version {
                    tracing::warn!(
                        "{}: version {version} after {}; the buffer is out of sync until reopened",
                        path.display(),
                        document.version
                    );
                    document.in_sync = false;
                    continue;
                }
                let utf8 = utf8.load(Ordering::SeqCst);
                for change in changes {
                    apply_change(&mut document.text, change, utf8);
                }
                document.version = version;
            }
            Message::Saved { path, text } => {
                let text = match (text, open.get(&path)) {
                    (Some(text), _) => text,
                    (None, Some(document)) => document.text.to_string(),
                    (None, None) => match std::fs::read_to_string(&path) {
                        Ok(text) => text,
                        Err(_) => continue,
                    },
                };
                let _ = saved.send(SavedDocument { path, text });
            }
            Message::Close { path } => {
                open.remove(&path);
            }
            Message::Read { paths, reply } => {
                let found = paths
                    .into_iter()
                    .filter_map(|path| {
                        let document = open.get(&path)?.clone();
                        Some((path, document))
                    })
                    .collect();
                let _ = reply.send(found);
            }
        }
    }
}

fn apply_change(text: &mut Rope, change: TextDocumentContentChangeEvent, utf8: bool) {
    match change.range {
        None => *text = Rope::from_str(&change.text),
        Some(range) => {
            let start = char_index(text, range.start, utf8);
            let end = char_index(text, range.end, utf8).max(start);
            text.remove(start..end);
            text.insert(start, &change.text);
        }
    }
}

/// The rope's char index of an LSP position; a column past the line's end means its end.
pub fn char_index(text: &Rope, position: Position, utf8: bool) -> usize {
    let line_index = position.line as usize;
    if line_index >= text.len_lines() {
        return text.len_chars();
    }
    let line = text.line(line_index);
    let content_chars = line.len_chars()
        - line
            .chars_at(line.len_chars())
            .reversed()
            .take_while(|c| matches!(c, '\n' | '\r'))
            .count();
    let column = position.character as usize;
    let within_line = if utf8 {
        line.byte_to_char(column.min(line.char_to_byte(content_chars)))
    } else {
        line.utf16_cu_to_char(column.min(line.char_to_utf16_cu(content_chars)))
    };
    text.line_to_char(line_index) + within_line.min(content_chars)
}

/// `changes` as LSP text edits, columns in UTF-8 bytes or UTF-16 units.
pub fn text_edits(changes: &[TextChange], utf8: bool) -> Vec<TextEdit> {
    let position = |at: LinePosition| {
        let character = if utf8 { at.byte } else { at.utf16 };
        Position::new(at.line as u32, character as u32)
    };
    changes
        .iter()
        .map(|change| TextEdit {
            range: Range::new(position(change.start), position(change.end)),
            new_text: change.new_text.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(line: u32, from: u32, to: u32, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: Some(Range::new(
                Position::new(line, from),
                Position::new(line, to),
            )),
            range_length: None,
            text: text.to_owned(),
        }
    }

    #[test]
    fn columns_follow_the_negotiated_encoding() {
        // "👍" is 2 UTF-16 units and 4 UTF-8 bytes; "é" (e + combining acute) is 2 chars.
        let original = "a👍b\r\ne\u{301}x\n";
        let mut utf16 = Rope::from_str(original);
        apply_change(&mut utf16, edit(0, 3, 4, "B"), false);
        apply_change(&mut utf16, edit(1, 2, 3, "X"), false);
        assert_eq!(utf16.to_string(), "a👍B\r\ne\u{301}X\n");

        let mut utf8 = Rope::from_str(original);
        apply_change(&mut utf8, edit(0, 5, 6, "B"), true);
        apply_change(&mut utf8, edit(1, 3, 4, "X"), true);
        assert_eq!(utf8.to_string(), "a👍B\r\ne\u{301}X\n");
    }

    #[test]
    fn a_column_past_the_end_of_a_line_is_its_end() {
        let mut text = Rope::from_str("ab\r\ncd\n");
        apply_change(&mut text, edit(0, 99, 99, "!"), false);
        assert_eq!(text.to_string(), "ab!\r\ncd\n");
    }

    #[tokio::test]
    async fn changes_out_of_order_mark_the_buffer_out_of_sync() {
        let (saved, _) = mpsc::unbounded_channel();
        let documents = Documents::start(saved);
        let path = PathBuf::from("/tmp/x.rs");
        documents.open(path.clone(), 1, "one\n".to_owned());
        documents.change(path.clone(), 2, vec![edit(0, 0, 3, "two")]);
        let read = documents.read(vec![path.clone()]).await;
        assert_eq!(read[&path].text.to_string(), "two\n");
        assert!(read[&path].in_sync);

        documents.change(path.clone(), 2, vec![edit(0, 0, 3, "old")]);
        let read = documents.read(vec![path.clone()]).await;
        assert_eq!(
            read[&path].text.to_string(),
            "two\n",
            "the stale change is not applied"
        );
        assert!(!read[&path].in_sync);

        documents.close(path.clone());
        assert!(documents.read(vec![path]).await.is_empty());
    }
}

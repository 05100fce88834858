//! Code actions on the messages of a transcript document, for what the VS Code panel's
//! buttons do (Helix has nothing but code actions): edit a user message and run again from
//! it, take back a queued one.
//!
//! "Edit" writes the message under `## Reply` with an edit marker: the user changes it and
//! saves, and the saved reply is sent as `tether/session/editMessage`.

use std::path::Path;

use tower_lsp_server::ls_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, Position, Range, TextEdit, Uri, WorkspaceEdit,
};

use super::code_action::action;
use crate::api::{self, methods};
use crate::front::Sessions;
use crate::lsp::transcripts::session_of_transcript;
use crate::session::transcript::{self, REPLY_HEADING};

/// The actions for the message on line `line` of transcript `path` (whose text is `text`).
pub fn actions(
    sessions: &Sessions,
    uri: &Uri,
    path: &Path,
    text: &str,
    line: u32,
) -> Vec<CodeActionOrCommand> {
    let mut actions = Vec::new();
    let Some(session) = session_of_transcript(sessions, path) else {
        return actions;
    };
    if session.read_only {
        return actions;
    }
    let line = line as usize;
    if let Some(item_id) = transcript::queued_at(text, line) {
        actions.push(action::<methods::DeleteMessage>(
            "tether: Take back this queued message".to_owned(),
            &api::MessageParams {
                id: session.id.clone(),
                item_id,
            },
        ));
    }
    if !session.status.is_active()
        && let Some((item_id, message)) = transcript::message_at(text, line)
        && let Some(edit) = reply_edit(uri, text, &transcript::edit_reply(&item_id, &message))
    {
        actions.push(CodeActionOrCommand::CodeAction(CodeAction {
            title: "tether: Edit this message and run again from it (save to send)".to_owned(),
            kind: Some(CodeActionKind::EMPTY),
            edit: Some(edit),
            ..Default::default()
        }));
    }
    actions
}

/// An edit that puts `reply` under the transcript's last `## Reply` heading, in place of
/// what is written there.
fn reply_edit(uri: &Uri, text: &str, reply: &str) -> Option<WorkspaceEdit> {
    let heading = text
        .split('\n')
        .enumerate()
        .filter(|(_, line)| line.trim_end() == REPLY_HEADING)
        .map(|(index, _)| index)
        .last()?;
    let last_line = text.split('\n').count() - 1;
    let last_width = text
        .rsplit('\n')
        .next()
        .map_or(0, |line| line.encode_utf16().count());
    let end = Position::new(last_line as u32, last_width as u32);
    // A heading on the last line (no newline after it) gets the reply after it.
    let start = if heading < last_line {
        Position::new(heading as u32 + 1, 0)
    } else {
        end
    };
    let range = Range { start, end };
    let edit = TextEdit {
        range,
        new_text: format!("\n{reply}"),
    };
    Some(WorkspaceEdit {
        changes: Some([(uri.clone(), vec![edit])].into_iter().collect()),
        ..Default::default()
    })
}

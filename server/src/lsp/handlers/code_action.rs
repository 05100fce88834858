//! `textDocument/codeAction`: everything a user can do with sessions, as actions, so that
//! clients with nothing but standard LSP (Helix) lose no feature: one action per choice a
//! session waits on, fix or dismiss the finding under the cursor, start a session about the
//! selection, and for every session apply, stop, or open its transcript.

use serde_json::json;
use tower_lsp_server::ls_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, Command,
};

use crate::lsp::ext::command_name;
use crate::session::{Activity, Item, QuestionKind, SessionInfo, SessionManager, SessionStatus};

fn action(title: String, command: &str, argument: serde_json::Value) -> CodeActionOrCommand {
    CodeActionOrCommand::CodeAction(CodeAction {
        title: title.clone(),
        kind: Some(CodeActionKind::EMPTY),
        command: Some(Command {
            title,
            command: command_name(command),
            arguments: Some(vec![argument]),
        }),
        ..Default::default()
    })
}

/// The actions at `params`' place, then those for every session of the workspace.
pub fn actions(manager: &SessionManager, params: &CodeActionParams) -> Vec<CodeActionOrCommand> {
    let mut actions = Vec::new();
    finding_actions(manager, params, &mut actions);
    let range = params.range;
    if range.start != range.end {
        actions.push(action(
            "tether: Start a session about this selection".to_owned(),
            "newSession",
            json!({"uri": params.text_document.uri, "range": range}),
        ));
    }
    actions.push(action(
        "tether: New session…".to_owned(),
        "newSession",
        json!({}),
    ));
    for session in manager.list(&Default::default()) {
        if session.status == SessionStatus::Running
            && matches!(
                session.activity,
                Some(Activity::WaitingInput | Activity::AwaitingPlanApproval)
            )
        {
            for item in manager.pending_items(&session.id).unwrap_or_default() {
                pending_actions(&session, &item, &mut actions);
            }
        }
        if session.status.is_active() {
            actions.push(action(
                format!("tether: Stop {}", session.name),
                "stop",
                json!({"id": session.id}),
            ));
        }
        // Not while it works: half a turn's changes are not worth applying.
        if !session.status.is_active() && !session.read_only {
            actions.push(action(
                format!("tether: Apply changes of {}", session.name),
                "apply",
                json!({"id": session.id}),
            ));
        }
        actions.push(action(
            format!("tether: Open transcript of {}", session.name),
            "openTranscript",
            json!({"id": session.id}),
        ));
    }
    actions
}

/// "Ask the session to fix this" and "Dismiss" for each finding on the lines in `params`.
fn finding_actions(
    manager: &SessionManager,
    params: &CodeActionParams,
    actions: &mut Vec<CodeActionOrCommand>,
) {
    let Some(path) = params.text_document.uri.to_file_path() else {
        return;
    };
    // Lines from 1, as findings count them; a range may come end first, and the last line
    // a client can name has no line after it.
    let (start, end) = (params.range.start.line, params.range.end.line);
    let first = start.min(end).saturating_add(1);
    let last = start.max(end).saturating_add(1);
    for session in manager.open_findings() {
        for (_, finding) in &session.findings {
            let Some(file) = &finding.file else {
                continue;
            };
            let end_line = finding.end_line.max(finding.start_line);
            if session.repo.join(file) != *path || finding.start_line > last || end_line < first {
                continue;
            }
            let argument = json!({"id": session.session_id, "findingId": finding.id});
            actions.push(action(
                format!(
                    "tether: {}: Ask the session to fix this: {}",
                    session.name, finding.title
                ),
                "fixFinding",
                argument.clone(),
            ));
            actions.push(action(
                format!("tether: {}: Dismiss: {}", session.name, finding.title),
                "dismissFinding",
                argument,
            ));
        }
    }
}

fn pending_actions(session: &SessionInfo, item: &Item, actions: &mut Vec<CodeActionOrCommand>) {
    let name = &session.name;
    match item {
        Item::Plan { id, .. } => {
            actions.push(action(
                format!("tether: {name}: Approve plan"),
                "decidePlan",
                json!({"id": session.id, "planId": id, "approve": true}),
            ));
            actions.push(action(
                format!("tether: {name}: Reject plan…"),
                "decidePlan",
                json!({"id": session.id, "planId": id, "approve": false}),
            ));
        }
        Item::Permission {
            id, tool, scope, ..
        } => {
            use crate::vocab::PermissionDecision;
            for (label, decision) in [
                ("Allow once", PermissionDecision::AllowOnce),
                (
                    "Allow always (this session)",
                    PermissionDecision::AllowAlwaysSession,
                ),
                (
                    "Allow always (this project)",
                    PermissionDecision::AllowAlwaysProject,
                ),
                ("Deny", PermissionDecision::RejectOnce),
            ] {
                actions.push(action(
                    format!("tether: {name}: {label}: {tool} ({scope})"),
                    "answer",
                    json!({"id": session.id, "questionId": id, "answers": [decision]}),
                ));
            }
        }
        // One question with choices: one action per choice. Free text and several
        // questions at once are answered in the transcript document.
        Item::Question { id, questions, .. } if questions.len() == 1 => {
            let question = &questions[0];
            if question.kind == QuestionKind::Single {
                for option in &question.options {
                    actions.push(action(
                        format!("tether: {name}: Answer: {option}"),
                        "answer",
                        json!({"id": session.id, "questionId": id, "answers": [option]}),
                    ));
                }
            }
        }
        _ => {}
    }
}

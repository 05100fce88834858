//! `textDocument/codeAction`: what a session waits on, as one action per choice, so that
//! clients with nothing but standard LSP (Helix) can answer, decide and stop.

use serde_json::json;
use tower_lsp_server::ls_types::{CodeAction, CodeActionKind, CodeActionOrCommand, Command};

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

/// The actions for every session of the workspace.
pub fn actions(manager: &SessionManager) -> Vec<CodeActionOrCommand> {
    let mut actions = Vec::new();
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
                format!("tether: stop {}", session.name),
                "stop",
                json!({"id": session.id}),
            ));
        }
    }
    actions
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
                format!("tether: {name}: Reject plan"),
                "decidePlan",
                json!({"id": session.id, "planId": id, "approve": false}),
            ));
        }
        Item::Permission {
            id, tool, scope, ..
        } => {
            for (label, decision) in [
                ("Allow once", "allow_once"),
                ("Allow always (this session)", "allow_always_session"),
                ("Allow always (this project)", "allow_always_project"),
                ("Deny", "reject_once"),
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

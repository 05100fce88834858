//! `textDocument/codeAction`: everything a user can do with sessions, as actions, so that
//! clients with nothing but standard LSP (Helix) lose no feature: one action per choice a
//! session waits on, fix or dismiss the finding under the cursor, start a session about the
//! selection, and for every session apply, stop, or open its transcript.

use tower_lsp_server::ls_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, Command,
};

use crate::api::{self, Method, MethodInfo, methods};
use crate::front::Sessions;
use crate::session::{Activity, Answer, Item, QuestionKind, SessionInfo, SessionStatus};

/// An action that runs `M`'s command with `params`, typed as the request takes them.
pub(in crate::lsp) fn action<M: Method>(title: String, params: &M::Params) -> CodeActionOrCommand {
    // Params are plain structs with string keys: writing them as JSON cannot fail.
    let argument = serde_json::to_value(params).unwrap_or_default();
    CodeActionOrCommand::CodeAction(CodeAction {
        title: title.clone(),
        kind: Some(CodeActionKind::EMPTY),
        command: Some(Command {
            title,
            command: MethodInfo::of::<M>().command(),
            arguments: Some(vec![argument]),
        }),
        ..Default::default()
    })
}

fn id_params(session: &SessionInfo) -> api::IdParams {
    api::IdParams {
        id: session.id.clone(),
    }
}

fn position(position: tower_lsp_server::ls_types::Position) -> api::Position {
    api::Position {
        line: position.line,
        character: position.character,
    }
}

/// The actions at `params`' place, then those for every session of the workspace.
pub fn actions(manager: &Sessions, params: &CodeActionParams) -> Vec<CodeActionOrCommand> {
    let mut actions = Vec::new();
    finding_actions(manager, params, &mut actions);
    let range = params.range;
    if range.start != range.end {
        actions.push(action::<methods::NewSession>(
            "tether: Start a session about this selection".to_owned(),
            &api::NewSessionParams {
                root: None,
                uri: Some(params.text_document.uri.to_string()),
                range: Some(api::Range {
                    start: position(range.start),
                    end: position(range.end),
                }),
            },
        ));
    }
    actions.push(action::<methods::NewSession>(
        "tether: New session…".to_owned(),
        &api::NewSessionParams::default(),
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
            actions.push(action::<methods::Stop>(
                format!("tether: Stop {}", session.name),
                &id_params(&session),
            ));
        }
        // Not while it works: half a turn's changes are not worth applying.
        if !session.status.is_active() && !session.read_only {
            actions.push(action::<methods::Apply>(
                format!("tether: Apply changes of {}", session.name),
                &api::ApplyParams {
                    id: session.id.clone(),
                    files: None,
                    hunks: None,
                    reject: None,
                },
            ));
        }
        if !session.status.is_active() && !session.read_only {
            rewind_actions(manager, &session, &mut actions);
        }
        // Tether's agent's conversation (the only kind with a context it reports) can be
        // compacted between turns.
        if !session.status.is_active() && !session.read_only && session.context.is_some() {
            actions.push(action::<methods::Compact>(
                format!("tether: Compact the conversation of {}", session.name),
                &id_params(&session),
            ));
        }
        // The latest reply can be rated once the turn is over.
        if !session.status.is_active()
            && !session.read_only
            && let Ok(view) = manager.view(&session.id)
            && let Some(reply) = &view.last_reply
        {
            for (rating, words) in [
                (crate::vocab::Rating::Up, "👍 Good reply"),
                (crate::vocab::Rating::Down, "👎 Bad reply"),
            ] {
                actions.push(action::<methods::Feedback>(
                    format!("tether: {words} from {}", session.name),
                    &api::FeedbackParams {
                        id: session.id.clone(),
                        item_id: Some(reply.clone()),
                        rating,
                        comment: None,
                    },
                ));
            }
        }
        actions.push(action::<methods::OpenTranscript>(
            format!("tether: Open transcript of {}", session.name),
            &id_params(&session),
        ));
    }
    actions
}

/// The checkpoints a session can go back to: the latest three turns and its start, newest
/// first (not the latest checkpoint: the worktree is there already), and the undo of its
/// last rewind.
fn rewind_actions(
    manager: &Sessions,
    session: &SessionInfo,
    actions: &mut Vec<CodeActionOrCommand>,
) {
    let Ok(view) = manager.view(&session.id) else {
        return;
    };
    let name = &session.name;
    if view.rewinds > 0 {
        let undo = format!("before-rewind-{}", view.rewinds);
        if view.checkpoints.contains(&undo) {
            actions.push(action::<methods::Rewind>(
                format!("tether: {name}: Undo the last rewind ({undo})"),
                &api::RewindParams {
                    id: session.id.clone(),
                    checkpoint: Some(undo),
                    turn: None,
                },
            ));
        }
    }
    let latest = view.checkpoints.last();
    let earlier = |checkpoint: &&String| Some(*checkpoint) != latest;
    let turns = view
        .checkpoints
        .iter()
        .rev()
        .filter(|checkpoint| checkpoint.starts_with("turn-"))
        .filter(earlier)
        .take(3);
    let start = view
        .checkpoints
        .iter()
        .filter(|checkpoint| *checkpoint == "start")
        .filter(earlier);
    for checkpoint in turns.chain(start) {
        actions.push(action::<methods::Rewind>(
            format!("tether: {name}: Rewind to {checkpoint}"),
            &api::RewindParams {
                id: session.id.clone(),
                checkpoint: Some(checkpoint.clone()),
                turn: None,
            },
        ));
    }
}

/// "Ask the session to fix this" and "Dismiss" for each finding on the lines in `params`.
fn finding_actions(
    manager: &Sessions,
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
            let argument = api::FindingParams {
                id: session.session_id.clone(),
                finding_id: finding.id.clone(),
            };
            actions.push(action::<methods::FixFinding>(
                format!(
                    "tether: {}: Ask the session to fix this: {}",
                    session.name, finding.title
                ),
                &argument,
            ));
            actions.push(action::<methods::DismissFinding>(
                format!("tether: {}: Dismiss: {}", session.name, finding.title),
                &argument,
            ));
        }
    }
}

fn pending_actions(session: &SessionInfo, item: &Item, actions: &mut Vec<CodeActionOrCommand>) {
    let name = &session.name;
    match item {
        Item::Plan { id, .. } => {
            for (label, approve) in [("Approve plan", true), ("Reject plan…", false)] {
                actions.push(action::<methods::DecidePlan>(
                    format!("tether: {name}: {label}"),
                    &api::DecidePlanParams {
                        id: session.id.clone(),
                        plan_id: id.clone(),
                        approve,
                        feedback: None,
                    },
                ));
            }
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
                actions.push(action::<methods::Answer>(
                    format!("tether: {name}: {label}: {tool} ({scope})"),
                    &answer(session, id, decision.as_str()),
                ));
            }
        }
        // One question with choices: one action per choice. Free text and several
        // questions at once are answered in the transcript document.
        Item::Question { id, questions, .. } if questions.len() == 1 => {
            let question = &questions[0];
            if question.kind == QuestionKind::Single {
                for option in &question.options {
                    actions.push(action::<methods::Answer>(
                        format!("tether: {name}: Answer: {option}"),
                        &answer(session, id, option),
                    ));
                }
            }
        }
        _ => {}
    }
}

/// The one answer `text` to the question or permission `question_id`.
fn answer(session: &SessionInfo, question_id: &str, text: &str) -> api::AnswerParams {
    api::AnswerParams {
        id: session.id.clone(),
        question_id: question_id.to_owned(),
        answers: vec![Answer::Text(text.to_owned())],
    }
}

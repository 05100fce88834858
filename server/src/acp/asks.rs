//! What an agent asks of the user during a turn: its permission requests (answered by the
//! session's permission mode, by what the user granted before, or put to the user as a
//! `permission` item; leaving plan mode as a `plan` item) and its elicitations (a `question`
//! item). Each waits without holding up the turn's loop; a stop cancels them.

use std::task::Poll;

use agent_client_protocol::v1::schema::{
    CreateElicitationRequest, ElicitationMode, PermissionOptionKind, RequestPermissionRequest,
    ToolKind,
};
use tokio::sync::oneshot;

use super::connection::Responder;
use super::serve::answer;
use crate::agent::tools::ToolContext;
use crate::agent::{EventSink, PermissionCheck, new_item_id};
use crate::vocab::{
    Answer, Event, Item, ItemPhase, PermissionDecision, PlanPhase, Question, QuestionKind,
    Resolution,
};

/// A permission request waiting for the user.
pub(super) struct PendingPermission {
    item_id: String,
    responder: Responder,
    request: RequestPermissionRequest,
    decision: oneshot::Receiver<(PermissionDecision, Option<String>)>,
}

/// An elicitation waiting for the user's answers.
pub(super) struct PendingQuestion {
    item_id: String,
    questions: Vec<Question>,
    kinds: Vec<String>,
    responder: Responder,
    answers: oneshot::Receiver<Vec<Answer>>,
}

/// A permission request: answered at once in `auto` and `read-only` modes, by what the
/// user already granted or denied, else put to the user. Leaving plan mode is a plan
/// for the user to approve, whatever the mode.
pub(super) async fn permission(
    provider: &str,
    request: RequestPermissionRequest,
    responder: Responder,
    tools: &ToolContext,
    permissions: &mut Vec<PendingPermission>,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    if tools.read_only {
        respond_permission(responder, &request, Some(PermissionDecision::RejectOnce));
        return Ok(());
    }
    let fields = &request.tool_call.fields;
    let title = fields
        .title
        .clone()
        .unwrap_or_else(|| "tool call".to_owned());
    let kind = fields.kind.unwrap_or(ToolKind::Other);
    if kind == ToolKind::SwitchMode {
        // Leaving plan mode: the plan is the user's to approve, in every mode.
        let plan = fields
            .raw_input
            .as_ref()
            .and_then(|input| input["plan"].as_str())
            .unwrap_or(&title)
            .to_owned();
        let item_id = new_item_id();
        let decided = sink.propose(&item_id, &phases_of(&plan))?;
        let (decision, receiver) = oneshot::channel();
        tokio::spawn(async move {
            if let Ok(decided) = decided.await {
                let answer = if decided.approved {
                    PermissionDecision::AllowOnce
                } else {
                    PermissionDecision::RejectOnce
                };
                let _ = decision.send((answer, decided.feedback));
            }
        });
        permissions.push(PendingPermission {
            item_id,
            responder,
            request,
            decision: receiver,
        });
        return Ok(());
    }
    if !tools.ask_permission {
        respond_permission(responder, &request, Some(PermissionDecision::AllowOnce));
        return Ok(());
    }
    let input = fields
        .raw_input
        .clone()
        .unwrap_or_else(|| serde_json::json!({ "title": title, "kind": kind }));
    let scope = format!(
        "{}:{}",
        provider,
        serde_json::to_value(kind)
            .ok()
            .and_then(|kind| kind.as_str().map(str::to_owned))
            .unwrap_or_else(|| "other".to_owned())
    );
    match sink.permission(&title, &input, &scope).await? {
        PermissionCheck::Allowed => {
            respond_permission(responder, &request, Some(PermissionDecision::AllowOnce));
        }
        PermissionCheck::Denied => {
            respond_permission(responder, &request, Some(PermissionDecision::RejectOnce));
        }
        PermissionCheck::Ask { item_id, decision } => permissions.push(PendingPermission {
            item_id,
            responder,
            request,
            decision,
        }),
    }
    Ok(())
}

/// A plan's text as phases: its headings, list items and numbered steps, else the whole
/// text as one.
fn phases_of(plan: &str) -> Vec<PlanPhase> {
    let phases: Vec<PlanPhase> = plan
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            let step = line
                .strip_prefix('#')
                .map(|rest| rest.trim_start_matches('#'))
                .or_else(|| line.strip_prefix("- "))
                .or_else(|| line.strip_prefix("* "))
                .or_else(|| {
                    let digits = line.find(|c: char| !c.is_ascii_digit())?;
                    (digits > 0)
                        .then(|| line[digits..].strip_prefix(". "))
                        .flatten()
                })?;
            let step = step.trim();
            (!step.is_empty()).then(|| PlanPhase {
                title: step.to_owned(),
                subtasks: Vec::new(),
            })
        })
        .collect();
    if phases.is_empty() {
        vec![PlanPhase {
            title: plan.trim().to_owned(),
            subtasks: Vec::new(),
        }]
    } else {
        phases
    }
}

/// The first permission the user decided, and its decision.
pub(super) fn next(
    pending: &mut [PendingPermission],
) -> impl Future<
    Output = (
        usize,
        Result<(PermissionDecision, Option<String>), oneshot::error::RecvError>,
    ),
> + '_ {
    std::future::poll_fn(move |cx| {
        for (index, waiting) in pending.iter_mut().enumerate() {
            if let Poll::Ready(decision) = std::pin::Pin::new(&mut waiting.decision).poll(cx) {
                return Poll::Ready((index, decision));
            }
        }
        Poll::Pending
    })
}

pub(super) fn next_answer(
    pending: &mut [PendingQuestion],
) -> impl Future<Output = (usize, Result<Vec<Answer>, oneshot::error::RecvError>)> + '_ {
    std::future::poll_fn(move |cx| {
        for (index, waiting) in pending.iter_mut().enumerate() {
            if let Poll::Ready(answers) = std::pin::Pin::new(&mut waiting.answers).poll(cx) {
                return Poll::Ready((index, answers));
            }
        }
        Poll::Pending
    })
}

pub(super) fn settle_permission(
    pending: PendingPermission,
    decision: Result<(PermissionDecision, Option<String>), oneshot::error::RecvError>,
) {
    let decision = decision.ok().map(|(decision, _)| decision);
    respond_permission(pending.responder, &pending.request, decision);
}

/// Answers a permission request with the agent's option closest to `decision` (`None`:
/// cancelled).
fn respond_permission(
    responder: Responder,
    request: &RequestPermissionRequest,
    decision: Option<PermissionDecision>,
) {
    let wanted: &[PermissionOptionKind] = match decision {
        Some(PermissionDecision::AllowOnce) => &[
            PermissionOptionKind::AllowOnce,
            PermissionOptionKind::AllowAlways,
        ],
        Some(PermissionDecision::AllowAlwaysSession | PermissionDecision::AllowAlwaysProject) => &[
            PermissionOptionKind::AllowAlways,
            PermissionOptionKind::AllowOnce,
        ],
        Some(PermissionDecision::RejectOnce) => &[
            PermissionOptionKind::RejectOnce,
            PermissionOptionKind::RejectAlways,
        ],
        Some(PermissionDecision::RejectAlways) => &[
            PermissionOptionKind::RejectAlways,
            PermissionOptionKind::RejectOnce,
        ],
        None => &[],
    };
    let chosen = wanted.iter().find_map(|kind| {
        request
            .options
            .iter()
            .find(|option| option.kind == *kind)
            .map(|option| option.option_id.0.to_string())
    });
    let outcome = match chosen {
        Some(option_id) => serde_json::json!({ "outcome": "selected", "optionId": option_id }),
        None => serde_json::json!({ "outcome": "cancelled" }),
    };
    answer(
        responder,
        Ok::<_, agent_client_protocol::Error>(serde_json::json!({ "outcome": outcome })),
    );
}

pub(super) fn cancel_permission(
    pending: PendingPermission,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    sink.emit(Event::Resolved {
        item_id: pending.item_id.clone(),
        outcome: Resolution::Cancelled,
    })?;
    respond_permission(pending.responder, &pending.request, None);
    Ok(())
}

/// An elicitation: a form becomes a `question` item, a question per field; a URL is
/// declined (Tether has no browser to send the user to).
pub(super) fn ask_elicitation(
    request: CreateElicitationRequest,
    responder: Responder,
    questions: &mut Vec<PendingQuestion>,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let ElicitationMode::Form(form) = &request.mode else {
        answer(
            responder,
            Ok::<_, agent_client_protocol::Error>(serde_json::json!({ "action": "decline" })),
        );
        return Ok(());
    };
    let mut asked = Vec::new();
    let mut kinds = Vec::new();
    for (name, property) in &form.requested_schema.properties {
        let property = serde_json::to_value(property).unwrap_or_default();
        let kind = property["type"].as_str().unwrap_or("string").to_owned();
        let options: Vec<String> = property["enum"]
            .as_array()
            .or_else(|| property["items"]["enum"].as_array())
            .map(|values| {
                values
                    .iter()
                    .filter_map(|value| value.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let label = property["title"]
            .as_str()
            .or_else(|| property["description"].as_str())
            .unwrap_or(name);
        asked.push(Question {
            id: name.clone(),
            prompt: if asked.is_empty() {
                format!("{}\n{label}", request.message)
            } else {
                label.to_owned()
            },
            kind: match (kind.as_str(), options.is_empty()) {
                ("array", false) => QuestionKind::Multi,
                (_, false) => QuestionKind::Single,
                ("boolean", true) => QuestionKind::Single,
                _ => QuestionKind::Text,
            },
            options: if kind == "boolean" && options.is_empty() {
                vec!["true".to_owned(), "false".to_owned()]
            } else {
                options
            },
        });
        kinds.push(kind);
    }
    if asked.is_empty() {
        asked.push(Question {
            id: "confirm".to_owned(),
            prompt: request.message.clone(),
            kind: QuestionKind::Single,
            options: vec!["accept".to_owned(), "decline".to_owned()],
        });
        kinds.push("confirm".to_owned());
    }
    let item_id = new_item_id();
    let answers = sink.ask(&item_id, &asked)?;
    questions.push(PendingQuestion {
        item_id,
        questions: asked,
        kinds,
        responder,
        answers,
    });
    Ok(())
}

pub(super) fn settle_question(
    pending: PendingQuestion,
    answers: Result<Vec<Answer>, oneshot::error::RecvError>,
) {
    let Ok(answers) = answers else {
        answer(
            pending.responder,
            Ok::<_, agent_client_protocol::Error>(serde_json::json!({ "action": "cancel" })),
        );
        return;
    };
    if pending.kinds.first().map(String::as_str) == Some("confirm") {
        let accepted = matches!(answers.first(), Some(Answer::Choices(choices)) if choices.iter().any(|choice| choice == "accept"))
            || matches!(answers.first(), Some(Answer::Text(text)) if text == "accept");
        let action = if accepted { "accept" } else { "decline" };
        answer(
            pending.responder,
            Ok::<_, agent_client_protocol::Error>(serde_json::json!({ "action": action })),
        );
        return;
    }
    let mut content = serde_json::Map::new();
    for ((question, kind), reply) in pending.questions.iter().zip(&pending.kinds).zip(answers) {
        let text = match &reply {
            Answer::Text(text) => text.clone(),
            Answer::Choices(choices) => choices.join(","),
        };
        let value = match (kind.as_str(), reply) {
            ("array", Answer::Choices(choices)) => serde_json::json!(choices),
            ("integer", _) => text
                .trim()
                .parse::<i64>()
                .map_or(serde_json::json!(text), |number| serde_json::json!(number)),
            ("number", _) => text
                .trim()
                .parse::<f64>()
                .map_or(serde_json::json!(text), |number| serde_json::json!(number)),
            ("boolean", _) => serde_json::json!(text.trim() == "true"),
            _ => serde_json::json!(text),
        };
        content.insert(question.id.clone(), value);
    }
    answer(
        pending.responder,
        Ok::<_, agent_client_protocol::Error>(
            serde_json::json!({ "action": "accept", "content": content }),
        ),
    );
}

pub(super) fn cancel_question(
    pending: PendingQuestion,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    sink.emit(Event::Item {
        phase: ItemPhase::Completed,
        item: Item::Question {
            id: pending.item_id.clone(),
            questions: pending.questions.clone(),
            answers: None,
        },
    })?;
    sink.emit(Event::Resolved {
        item_id: pending.item_id.clone(),
        outcome: Resolution::Cancelled,
    })?;
    answer(
        pending.responder,
        Ok::<_, agent_client_protocol::Error>(serde_json::json!({ "action": "cancel" })),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_plans_steps_are_its_phases() {
        let phases = super::phases_of("# Plan\n\n1. Read the code\n2. Fix it\n- then test\nprose");
        let titles: Vec<&str> = phases.iter().map(|phase| phase.title.as_str()).collect();
        assert_eq!(titles, ["Plan", "Read the code", "Fix it", "then test"]);
        assert_eq!(super::phases_of("just do it")[0].title, "just do it");
    }
}

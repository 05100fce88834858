//! The tools that wait for the user: `ask_user` (a question), `propose_plan` (a plan to
//! approve) and the permission asked before a tool runs in `ask` mode. Each gives up the
//! moment the turn is stopped, closing its item as cancelled.

use tokio_util::sync::CancellationToken;

use super::{EventSink, PermissionCheck, new_item_id, tools};
use crate::provider::ToolCallRequest;
use crate::vocab::{
    Answer, Event, Item, ItemPhase, PlanDecision, PlanPhase, Question, QuestionKind, Resolution,
};

#[derive(serde::Deserialize)]
struct AskArgs {
    questions: Vec<AskQuestion>,
}

#[derive(serde::Deserialize)]
struct AskQuestion {
    prompt: String,
    #[serde(default)]
    kind: Option<QuestionKind>,
    #[serde(default)]
    options: Vec<String>,
}

/// The `ask_user` tool: a `question` item the user answers through `tether/session/answer`.
pub(super) async fn ask_user(
    arguments: &str,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<tools::ToolOutcome, String> {
    let args: AskArgs = match serde_json::from_str(arguments) {
        Ok(args) => args,
        Err(error) => {
            return Ok(tools::ToolOutcome::error(format!(
                "invalid arguments for ask_user ({error}); send {{\"questions\": [{{\"prompt\", \"kind\": \"text\"|\"single\"|\"multi\", \"options\"}}]}}"
            )));
        }
    };
    if args.questions.is_empty() {
        return Ok(tools::ToolOutcome::error(
            "ask_user needs at least one question",
        ));
    }
    let mut questions = Vec::new();
    for (index, question) in args.questions.into_iter().enumerate() {
        let kind = question.kind.unwrap_or(if question.options.is_empty() {
            QuestionKind::Text
        } else {
            QuestionKind::Single
        });
        if kind != QuestionKind::Text && question.options.is_empty() {
            return Ok(tools::ToolOutcome::error(format!(
                "question {} is {kind:?} but offers no options",
                index + 1
            )));
        }
        questions.push(Question {
            id: format!("q{}", index + 1),
            prompt: question.prompt,
            kind,
            options: question.options,
        });
    }
    let id = new_item_id();
    let answers = sink.ask(&id, &questions)?;
    tokio::select! {
        biased;
        () = cancel.cancelled() => {
            sink.emit(Event::Item {
                phase: ItemPhase::Completed,
                item: Item::Question { id: id.clone(), questions, answers: None },
            })?;
            sink.emit(Event::Resolved { item_id: id, outcome: Resolution::Cancelled })?;
            Ok(tools::ToolOutcome::error("the session was stopped before the user answered"))
        }
        answers = answers => match answers {
            Ok(answers) => {
                let mut output = String::new();
                for (question, answer) in questions.iter().zip(&answers) {
                    let answer = match answer {
                        Answer::Text(text) => text.clone(),
                        Answer::Choices(choices) => choices.join(", "),
                    };
                    output.push_str(&format!("{}\nAnswer: {answer}\n", question.prompt));
                }
                Ok(tools::ToolOutcome::ok(output))
            }
            Err(_) => Ok(tools::ToolOutcome::error("the question was withdrawn before it was answered")),
        },
    }
}

/// Asks for permission to run `call`; `None` when it may run, else the outcome to report.
pub(super) async fn ask_permission(
    call: &ToolCallRequest,
    input: &serde_json::Value,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<Option<tools::ToolOutcome>, String> {
    let scope = tools::permission_scope(&call.name, input);
    let (item_id, decision) = match sink.permission(&call.name, input, &scope).await? {
        PermissionCheck::Allowed => return Ok(None),
        PermissionCheck::Denied => {
            return Ok(Some(tools::ToolOutcome::error(format!(
                "the user denied {scope} for this session"
            ))));
        }
        PermissionCheck::Ask { item_id, decision } => (item_id, decision),
    };
    tokio::select! {
        biased;
        () = cancel.cancelled() => {
            sink.emit(Event::Resolved { item_id, outcome: Resolution::Cancelled })?;
            Ok(Some(tools::ToolOutcome::error("the session was stopped before permission was given")))
        }
        decision = decision => match decision {
            Ok((decision, _)) if decision.allows() => Ok(None),
            Ok((_, feedback)) => Ok(Some(tools::ToolOutcome::error(format!(
                "The user rejected this {} call{}",
                call.name,
                feedback.map(|feedback| format!(": {feedback}")).unwrap_or_default()
            )))),
            Err(_) => Ok(Some(tools::ToolOutcome::error("the permission request was withdrawn"))),
        },
    }
}

#[derive(serde::Deserialize)]
struct PlanArgs {
    phases: Vec<PlanPhase>,
}

/// The `propose_plan` tool: a `plan` item the user approves or rejects (with feedback)
/// through `tether/session/decidePlan`.
pub(super) async fn propose_plan(
    arguments: &str,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<tools::ToolOutcome, String> {
    let phases = match serde_json::from_str::<PlanArgs>(arguments) {
        Ok(args) if !args.phases.is_empty() => args.phases,
        Ok(_) => return Ok(tools::ToolOutcome::error("a plan needs at least one phase")),
        Err(error) => {
            return Ok(tools::ToolOutcome::error(format!(
                "invalid arguments for propose_plan ({error}); send {{\"phases\": [{{\"title\", \"subtasks\": [...]}}]}}"
            )));
        }
    };
    let id = new_item_id();
    let decision = sink.propose(&id, &phases)?;
    tokio::select! {
        biased;
        () = cancel.cancelled() => {
            sink.emit(Event::Item {
                phase: ItemPhase::Completed,
                item: Item::Plan { id: id.clone(), phases, decision: None },
            })?;
            sink.emit(Event::Resolved { item_id: id, outcome: Resolution::Cancelled })?;
            Ok(tools::ToolOutcome::error("the session was stopped before the plan was decided"))
        }
        decision = decision => match decision {
            Ok(PlanDecision { approved: true, feedback }) => Ok(tools::ToolOutcome::ok(match feedback {
                Some(feedback) => format!("The user approved the plan, noting: {feedback}\nCarry it out."),
                None => "The user approved the plan. Carry it out.".to_owned(),
            })),
            Ok(PlanDecision { approved: false, feedback }) => Ok(tools::ToolOutcome::error(format!(
                "The user rejected the plan{}. Revise it and propose again.",
                feedback.map(|feedback| format!(": {feedback}")).unwrap_or_default()
            ))),
            Err(_) => Ok(tools::ToolOutcome::error("the plan was withdrawn before it was decided")),
        },
    }
}

//! What the agent asks of the user: questions, plans to approve and permissions. Opening one
//! and registering it happen in one actor step, and so do settling it and waking the turn.

use tokio::sync::oneshot;

use super::actor::{Pending, SessionActor};
use super::{SessionError, SessionInfo, SessionManager};
use crate::agent::PermissionCheck;
use crate::vocab::{
    Activity, Answer, Item, PermissionDecision, PlanDecision, PlanPhase, Question, QuestionKind,
    Resolution, new_item_id,
};

impl SessionActor {
    /// Opens a question the turn waits on; `reply` gets the answers.
    pub fn open_question(
        &mut self,
        item_id: String,
        questions: Vec<Question>,
        reply: oneshot::Sender<Vec<Answer>>,
    ) -> Result<(), SessionError> {
        let item = Item::Question {
            id: item_id.clone(),
            questions: questions.clone(),
            answers: None,
        };
        self.open_for_user(item, Activity::WaitingInput)?;
        self.pending = Pending::Question {
            item_id,
            questions,
            reply,
        };
        Ok(())
    }

    /// Opens a plan the turn waits on; `reply` gets the user's decision.
    pub fn open_plan(
        &mut self,
        item_id: String,
        phases: Vec<PlanPhase>,
        reply: oneshot::Sender<PlanDecision>,
    ) -> Result<(), SessionError> {
        let item = Item::Plan {
            id: item_id.clone(),
            phases: phases.clone(),
            decision: None,
        };
        self.open_for_user(item, Activity::AwaitingPlanApproval)?;
        self.pending = Pending::Plan {
            item_id,
            phases,
            reply,
        };
        Ok(())
    }

    /// Whether a tool call may run: granted or denied by an earlier "always" decision, or
    /// asked now (a `permission` item the user settles).
    pub fn check_permission(
        &mut self,
        tool: String,
        input: serde_json::Value,
        scope: String,
    ) -> Result<PermissionCheck, SessionError> {
        if self.state.denied_scopes.contains(&scope) {
            return Ok(PermissionCheck::Denied);
        }
        if self.state.allowed_scopes.contains(&scope)
            || self.store.project_grants().contains(&scope)
        {
            return Ok(PermissionCheck::Allowed);
        }
        let item = Item::Permission {
            id: new_item_id(),
            tool,
            input,
            scope,
            decisions: PermissionDecision::ALL.to_vec(),
            decision: None,
            feedback: None,
        };
        let item_id = item.id().to_owned();
        self.open_for_user(item.clone(), Activity::WaitingInput)?;
        let (reply, decision) = oneshot::channel();
        self.pending = Pending::Permission { item, reply };
        Ok(PermissionCheck::Ask { item_id, decision })
    }

    /// Settles the open permission request with `answers`: `[decision]` or
    /// `[decision, feedback]`.
    fn decide_permission(&mut self, answers: Vec<Answer>) -> Result<SessionInfo, SessionError> {
        let mut answers = answers.into_iter();
        let decision = match answers.next() {
            Some(Answer::Text(word)) if let Some(decision) = PermissionDecision::parse(&word) => {
                decision
            }
            _ => {
                let words: Vec<&str> = PermissionDecision::ALL
                    .iter()
                    .map(|decision| decision.as_str())
                    .collect();
                return Err(SessionError::InvalidParams {
                    field: "answers",
                    message: format!(
                        "a permission takes one of {} (then, optionally, feedback for the agent)",
                        words.join(", ")
                    ),
                });
            }
        };
        let feedback = match answers.next() {
            Some(Answer::Text(text)) if !text.trim().is_empty() => Some(text),
            _ => None,
        };
        let Pending::Permission { item, reply } =
            std::mem::replace(&mut self.pending, Pending::Nothing)
        else {
            return Err(self.invalid("answer", ""));
        };
        let Item::Permission {
            id,
            tool,
            input,
            scope,
            decisions,
            ..
        } = item
        else {
            return Err(self.invalid("answer", ""));
        };
        if decision == PermissionDecision::AllowAlwaysProject {
            self.store.add_project_grant(&scope)?;
        }
        self.settle_pending(
            Item::Permission {
                id,
                tool,
                input,
                scope,
                decisions,
                decision: Some(decision),
                feedback: feedback.clone(),
            },
            Resolution::Decided(decision),
        )?;
        let _ = reply.send((decision, feedback));
        Ok(self.info())
    }

    fn answer(
        &mut self,
        question_id: &str,
        answers: Vec<Answer>,
    ) -> Result<SessionInfo, SessionError> {
        let pending = std::mem::replace(&mut self.pending, Pending::Nothing);
        match pending {
            Pending::Permission { ref item, .. } if item.id() == question_id => {
                self.pending = pending;
                self.decide_permission(answers)
            }
            Pending::Question {
                item_id,
                questions,
                reply,
            } if item_id == question_id => {
                if let Err(message) = check_answers(&questions, &answers) {
                    self.pending = Pending::Question {
                        item_id,
                        questions,
                        reply,
                    };
                    return Err(SessionError::InvalidParams {
                        field: "answers",
                        message,
                    });
                }
                self.settle_pending(
                    Item::Question {
                        id: item_id,
                        questions,
                        answers: Some(answers.clone()),
                    },
                    Resolution::Answered,
                )?;
                // The turn may have been stopped in the meantime; then nobody listens.
                let _ = reply.send(answers);
                Ok(self.info())
            }
            other => {
                self.pending = other;
                Err(SessionError::InvalidParams {
                    field: "questionId",
                    message: format!(
                        "question {question_id:?} is not open in session {:?} (already answered, cancelled, or never asked)",
                        self.state.spec.name
                    ),
                })
            }
        }
    }

    fn decide_plan(
        &mut self,
        plan_id: &str,
        decision: PlanDecision,
    ) -> Result<SessionInfo, SessionError> {
        let (item_id, phases, reply) = match std::mem::replace(&mut self.pending, Pending::Nothing)
        {
            Pending::Plan {
                item_id,
                phases,
                reply,
            } if item_id == plan_id => (item_id, phases, reply),
            other => {
                self.pending = other;
                return Err(SessionError::InvalidParams {
                    field: "planId",
                    message: format!(
                        "plan {plan_id:?} is not open in session {:?} (already decided, cancelled, or never proposed)",
                        self.state.spec.name
                    ),
                });
            }
        };
        let outcome = if decision.approved {
            Resolution::Approved
        } else {
            Resolution::Rejected
        };
        self.settle_pending(
            Item::Plan {
                id: item_id,
                phases,
                decision: Some(decision.clone()),
            },
            outcome,
        )?;
        let _ = reply.send(decision);
        Ok(self.info())
    }
}

impl SessionManager {
    /// Answers the open question (or permission) `question_id`; the turn goes on.
    pub async fn answer(
        &self,
        id: &str,
        question_id: &str,
        answers: Vec<Answer>,
    ) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let question_id = question_id.to_owned();
        handle
            .run(move |actor| actor.answer(&question_id, answers))
            .await
    }

    /// Approves or rejects (with feedback) the open plan `plan_id`; the turn goes on.
    pub async fn decide_plan(
        &self,
        id: &str,
        plan_id: &str,
        decision: PlanDecision,
    ) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let plan_id = plan_id.to_owned();
        handle
            .run(move |actor| actor.decide_plan(&plan_id, decision))
            .await
    }
}

/// Checks answers against their questions: one per question, a text for `text` and
/// `single` (an answer outside the options is the "other" answer), options for `multi`.
fn check_answers(questions: &[Question], answers: &[Answer]) -> Result<(), String> {
    if questions.len() != answers.len() {
        return Err(format!(
            "{} answers for {} questions; send one per question, in order",
            answers.len(),
            questions.len()
        ));
    }
    for (index, (question, answer)) in questions.iter().zip(answers).enumerate() {
        match (question.kind, answer) {
            (QuestionKind::Text | QuestionKind::Single, Answer::Text(text)) => {
                if text.trim().is_empty() {
                    return Err(format!("answer {} is empty", index + 1));
                }
            }
            (QuestionKind::Multi, Answer::Choices(choices)) => {
                if let Some(unknown) = choices
                    .iter()
                    .find(|choice| !question.options.contains(choice))
                {
                    return Err(format!(
                        "answer {}: {unknown:?} is not one of the options",
                        index + 1
                    ));
                }
            }
            (QuestionKind::Multi, Answer::Text(_)) => {
                return Err(format!(
                    "answer {} must be a list of options (multi-select)",
                    index + 1
                ));
            }
            (_, Answer::Choices(_)) => {
                return Err(format!("answer {} must be a single string", index + 1));
            }
        }
    }
    Ok(())
}

//! The state machine and the state a session's events fold into.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::chat::{ChatAttachment, ChatMessage, ChatRole, ToolCallRequest};
use super::outcomes::{PermissionDecision, RunStatus};

use super::events::{
    Activity, Event, EventRecord, Finding, FindingSource, Item, MessageRole, SessionSpec,
    SessionStatus,
};
use super::usage::{ContextUse, TokenUsage};

/// Whether `from → to` is a legal move. Staying in `running` is legal (the activity changes).
pub fn check_transition(from: SessionStatus, to: SessionStatus) -> bool {
    use SessionStatus::*;
    matches!(
        (from, to),
        (Pending, Creating | Running | Stopped | Failed)
            | (Creating, Running | Waiting | Stopped | Failed)
            | (Running, Running | Waiting | Completed | Stopped | Failed)
            | (Waiting, Pending | Running | Completed | Stopped)
            | (Stopped | Failed, Pending | Running | Completed)
    )
}

/// Everything known about a session, rebuilt by folding its events in order (or read from
/// the snapshot a settled session leaves, see [`crate::store`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionState {
    pub spec: SessionSpec,
    pub status: SessionStatus,
    pub activity: Option<Activity>,
    /// Why the session failed or was stopped by the server, from the last status event.
    pub status_reason: Option<String>,
    pub usage: TokenUsage,
    pub updated_at: u64,
    pub last_seq: u64,
    /// What the model is sent: user and completed agent messages, in order. `None` when the
    /// state came from a snapshot: the conversation is read from the log when a turn needs
    /// it, so start-up reads no message text.
    #[serde(skip)]
    pub history: Option<Vec<ChatMessage>>,
    /// What tether told the agent since its last user message (rejected hunks, say): sent
    /// with the next one.
    #[serde(default)]
    pub notes_for_agent: Vec<String>,
    /// Reviews and verifications started and not finished: what a crash leaves open.
    #[serde(default)]
    pub open_runs: BTreeMap<String, Item>,
    /// Findings of the latest review and verification that are not dismissed, by id.
    #[serde(default)]
    pub findings: BTreeMap<String, (FindingSource, Finding)>,
    /// Follow-ups waiting for the turn to end: (item id, text).
    pub queued: VecDeque<(String, String)>,
    /// The files attached to queued follow-ups, by item id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub queued_attachments: BTreeMap<String, Vec<super::Attachment>>,
    /// Messages started but not completed: what a crash mid-stream leaves open.
    pub open_items: BTreeMap<String, (MessageRole, String)>,
    /// Tool calls started but not completed: what a crash mid-tool leaves open.
    #[serde(default)]
    pub open_tool_calls: BTreeMap<String, Item>,
    /// Turns ended so far.
    #[serde(default)]
    pub turns: u64,
    /// Rewinds so far.
    #[serde(default)]
    pub rewinds: u64,
    /// A tool changed files since the last checkpoint.
    #[serde(default)]
    pub changed_since_checkpoint: bool,
    /// The checkpoints recorded, oldest first (what a rewind can go back to).
    #[serde(default)]
    pub checkpoints: Vec<String>,
    /// Scopes the user allowed or denied for the whole session ("always" decisions).
    #[serde(default)]
    pub allowed_scopes: std::collections::BTreeSet<String>,
    #[serde(default)]
    pub denied_scopes: std::collections::BTreeSet<String>,
    /// Questions asked, plans proposed and permissions requested, not yet settled.
    #[serde(default)]
    pub open_questions: BTreeMap<String, Item>,
    /// Whether the worktree was made (the session reached `running` or `waiting` since it
    /// last entered `creating`).
    pub worktree_ready: bool,
    /// The ACP session its agent last opened: (provider, session id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session: Option<(String, String)>,
    /// What its ACP agent last said about its session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_facts: Option<super::AgentFacts>,
    /// How its work went: its latest verification, its `on_agent_finish` hooks, its pull
    /// request (what a task compares its trials on).
    #[serde(default)]
    pub evidence: super::Evidence,
    /// The agent's latest whole reply (what a rating without an item rates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply: Option<String>,
    /// The model the user chose since the session was made (`/model`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How full the conversation is, from the last turn's usage (none before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextUse>,
    /// How long `history` was before each user message since the last context reset: where
    /// an edit of that message cuts the conversation. Kept with `history`.
    #[serde(skip)]
    pub message_marks: std::collections::HashMap<String, usize>,
}

/// The message a summary of the conversation so far takes in the model's context.
fn summary_message(summary: &str) -> ChatMessage {
    ChatMessage::new(
        ChatRole::Assistant,
        format!("Summary of our conversation so far:\n{summary}"),
    )
}

/// What a finished review or verification came to.
fn verdict_of(status: RunStatus, findings: &[super::Finding]) -> super::Verdict {
    match status {
        RunStatus::Completed if findings.is_empty() => super::Verdict::Passed,
        RunStatus::Completed => super::Verdict::Failed,
        RunStatus::Failed => super::Verdict::Error,
        RunStatus::Cancelled => super::Verdict::Cancelled,
        RunStatus::Pending | RunStatus::Running => super::Verdict::Running,
        RunStatus::Skipped => super::Verdict::Skipped,
    }
}

impl SessionState {
    /// The state right after the `created` event.
    pub fn new(spec: SessionSpec, record: &EventRecord) -> Self {
        SessionState {
            status: SessionStatus::Pending,
            activity: None,
            status_reason: None,
            usage: TokenUsage::default(),
            updated_at: record.at,
            last_seq: record.seq,
            history: Some(Vec::new()),
            notes_for_agent: Vec::new(),
            findings: BTreeMap::new(),
            open_runs: BTreeMap::new(),
            queued: VecDeque::new(),
            queued_attachments: BTreeMap::new(),
            open_items: BTreeMap::new(),
            open_tool_calls: BTreeMap::new(),
            open_questions: BTreeMap::new(),
            turns: 0,
            rewinds: 0,
            changed_since_checkpoint: false,
            checkpoints: Vec::new(),
            allowed_scopes: Default::default(),
            denied_scopes: Default::default(),
            worktree_ready: false,
            agent_session: None,
            agent_facts: None,
            evidence: super::Evidence::default(),
            last_reply: None,
            message_marks: Default::default(),
            context: None,
            model: None,
            spec,
        }
    }

    /// Applies one event. Folding never fails: the log is the truth, even where it records a
    /// move the current code would refuse (a log written by another version, say).
    pub fn apply(&mut self, record: &EventRecord) {
        self.last_seq = record.seq;
        self.updated_at = record.at;
        match &record.event {
            Event::Created { .. } => {}
            Event::TurnEnded { .. } => self.turns += 1,
            Event::Checkpoint { name, .. } => {
                self.changed_since_checkpoint = false;
                self.checkpoints.retain(|known| known != name);
                self.checkpoints.push(name.clone());
            }
            Event::Rewound { .. } => self.rewinds += 1,
            Event::Resolved { item_id, .. } => {
                self.open_questions.remove(item_id);
                self.findings.remove(item_id);
            }
            Event::Delta { item_id, text } => {
                if let Some((_, so_far)) = self.open_items.get_mut(item_id) {
                    so_far.push_str(text);
                }
            }
            Event::Status {
                status,
                activity,
                reason,
            } => {
                match status {
                    SessionStatus::Creating => self.worktree_ready = false,
                    SessionStatus::Running | SessionStatus::Waiting => self.worktree_ready = true,
                    _ => {}
                }
                self.status = *status;
                self.activity = *activity;
                self.status_reason = reason.clone();
            }
            Event::Item { phase, item } => match phase {
                super::ItemPhase::Started => match item {
                    Item::Message { id, role, text, .. } => {
                        self.open_items.insert(id.clone(), (*role, text.clone()));
                    }
                    Item::ToolCall { id, .. } => {
                        self.open_tool_calls.insert(id.clone(), item.clone());
                    }
                    Item::Question { id, .. }
                    | Item::Plan { id, .. }
                    | Item::Permission { id, .. } => {
                        self.open_questions.insert(id.clone(), item.clone());
                    }
                    Item::Review { id, .. } => {
                        self.open_runs.insert(id.clone(), item.clone());
                        self.evidence.review = Some(super::Verdict::Running);
                    }
                    Item::Verification { id, .. } => {
                        self.open_runs.insert(id.clone(), item.clone());
                        self.evidence.verification = Some(super::Verdict::Running);
                    }
                    Item::FileChange { .. } | Item::LoopIteration { .. } | Item::Hook { .. } => {}
                },
                super::ItemPhase::Completed => {
                    if matches!(item, Item::FileChange { .. }) {
                        self.changed_since_checkpoint = true;
                    }
                    self.open_items.remove(item.id());
                    self.open_tool_calls.remove(item.id());
                    self.open_runs.remove(item.id());
                    self.open_questions.remove(item.id());
                    self.apply_completed_item(item);
                }
            },
            Event::FollowUpQueued {
                item_id,
                text,
                attachments,
            } => {
                self.queued.push_back((item_id.clone(), text.clone()));
                if !attachments.is_empty() {
                    self.queued_attachments
                        .insert(item_id.clone(), attachments.clone());
                }
            }
            Event::FollowUpWithdrawn { item_id } => {
                self.queued.retain(|(queued, _)| queued != item_id);
                self.queued_attachments.remove(item_id);
            }
            Event::Superseded { item_id } => {
                // An ACP agent's own conversation cannot be cut: it starts a new one, primed
                // with what is left.
                self.agent_session = None;
                self.notes_for_agent.clear();
                if let (Some(history), Some(&cut)) =
                    (&mut self.history, self.message_marks.get(item_id))
                {
                    history.truncate(cut);
                    self.message_marks.retain(|_, mark| *mark < cut);
                }
            }
            Event::Usage {
                usage,
                context_window,
                ..
            } => {
                self.usage.add(usage);
                if let Some(window) = context_window {
                    self.context = Some(ContextUse::of(usage, *window));
                }
            }
            Event::AgentSession {
                provider,
                session_id,
            } => self.agent_session = Some((provider.clone(), session_id.clone())),
            Event::AgentFacts { facts } => self.agent_facts = Some(facts.clone()),
            Event::PullRequest { url } => self.evidence.pull_request = Some(url.clone()),
            Event::Feedback { .. } => {}
            Event::ModelChanged { model } => self.model = Some(model.clone()),
            Event::ContextReset { summary } => {
                // The agent's own conversation starts over too.
                self.agent_session = None;
                self.message_marks.clear();
                if let Some(context) = &mut self.context {
                    context.used_tokens = summary.as_deref().map_or(0, ContextUse::estimate);
                }
                if let Some(history) = &mut self.history {
                    history.clear();
                    if let Some(summary) = summary {
                        history.push(summary_message(summary));
                    }
                }
            }
        }
    }

    fn apply_completed_item(&mut self, item: &Item) {
        self.gather_evidence(item);
        if let Item::Permission {
            scope,
            decision: Some(decision),
            ..
        } = item
        {
            match decision {
                PermissionDecision::AllowAlwaysSession | PermissionDecision::AllowAlwaysProject => {
                    self.allowed_scopes.insert(scope.clone());
                }
                PermissionDecision::RejectAlways => {
                    self.denied_scopes.insert(scope.clone());
                }
                PermissionDecision::AllowOnce | PermissionDecision::RejectOnce => {}
            }
        }
        let reported = match item {
            Item::Review {
                status, findings, ..
            } if *status == RunStatus::Completed => Some((FindingSource::Review, findings)),
            Item::Verification {
                status, findings, ..
            } if *status == RunStatus::Completed => Some((FindingSource::Verification, findings)),
            _ => None,
        };
        if let Some((source, findings)) = reported {
            // The latest review (or verification) supersedes the last one's findings.
            self.findings.retain(|_, (kept, _)| *kept != source);
            for finding in findings {
                self.findings
                    .insert(finding.id.clone(), (source, finding.clone()));
            }
        }
        if let Item::Message {
            id,
            role: MessageRole::Agent,
            interrupted: false,
            ..
        } = item
        {
            self.last_reply = Some(id.clone());
        }
        if let Item::Message {
            role: MessageRole::Summary,
            text,
            interrupted: false,
            ..
        } = item
        {
            // What came before can no longer be edited: the model does not have it.
            self.message_marks.clear();
            if let Some(context) = &mut self.context {
                context.used_tokens = ContextUse::estimate(text);
            }
        }
        if let Item::Message { id, role, .. } = item
            && *role == MessageRole::User
        {
            // Delivering a queued follow-up takes it off the queue.
            self.queued.retain(|(queued_id, _)| queued_id != id);
            self.queued_attachments.remove(id);
        }
        let Some(history) = &mut self.history else {
            return;
        };
        match item {
            Item::Message {
                id,
                role,
                text,
                interrupted: false,
                attachments,
            } => match role {
                MessageRole::User => {
                    self.message_marks.insert(id.clone(), history.len());
                    let text = if self.notes_for_agent.is_empty() {
                        text.clone()
                    } else {
                        let mut notes = std::mem::take(&mut self.notes_for_agent).join("\n\n");
                        notes.push_str("\n\n");
                        notes.push_str(text);
                        notes
                    };
                    history.push(ChatMessage {
                        attachments: attachments
                            .iter()
                            .map(|file| ChatAttachment {
                                file: file.clone(),
                                data: None,
                            })
                            .collect(),
                        ..ChatMessage::new(ChatRole::User, text)
                    })
                }
                MessageRole::System => self.notes_for_agent.push(text.clone()),
                MessageRole::Agent => {
                    history.push(ChatMessage::new(ChatRole::Assistant, text.clone()))
                }
                // A compaction: the summary replaces the conversation up to the model's last
                // reply; what the user said since stays, to be answered.
                MessageRole::Summary => {
                    let unanswered = history.split_off(super::chat::answered_len(history));
                    history.clear();
                    history.push(summary_message(text));
                    history.extend(unanswered);
                }
                _ => {}
            },
            Item::ToolCall {
                call_id,
                tool,
                input,
                output,
                ..
            } => {
                // The call belongs to the reply that asked for it: the last assistant message.
                if let Some(reply) = history
                    .iter_mut()
                    .rev()
                    .find(|message| message.role == ChatRole::Assistant)
                {
                    reply.tool_calls.push(ToolCallRequest {
                        id: call_id.clone(),
                        name: tool.clone(),
                        arguments: match input {
                            serde_json::Value::String(raw) => raw.clone(),
                            other => other.to_string(),
                        },
                    });
                }
                history.push(ChatMessage {
                    tool_call_id: Some(call_id.clone()),
                    ..ChatMessage::new(ChatRole::Tool, output.clone().unwrap_or_default())
                });
            }
            _ => {}
        }
    }

    /// What a finished item says about how the work went.
    fn gather_evidence(&mut self, item: &Item) {
        match item {
            Item::Verification {
                status, findings, ..
            } => self.evidence.verification = Some(verdict_of(*status, findings)),
            Item::Review {
                status, findings, ..
            } => self.evidence.review = Some(verdict_of(*status, findings)),
            Item::Hook {
                event: super::HookEvent::OnAgentFinish,
                name,
                status,
                exit_code,
                ..
            } => self.evidence.hook_ran(super::HookResult {
                name: name.clone(),
                status: *status,
                exit_code: *exit_code,
            }),
            _ => {}
        }
    }

    /// Whether the model owes an answer: the last thing in the conversation is the user's.
    pub fn awaits_reply(&self) -> bool {
        self.history
            .as_ref()
            .and_then(|history| history.last())
            .is_some_and(|message| matches!(message.role, ChatRole::User | ChatRole::Tool))
    }

    /// Whether an ACP agent owes an answer: the user spoke last, not counting the tool calls
    /// the agent made (it ran them itself; their results need no turn of their own).
    pub fn awaits_agent_reply(&self) -> bool {
        self.history
            .as_ref()
            .and_then(|history| {
                history
                    .iter()
                    .rev()
                    .find(|message| message.role != ChatRole::Tool)
            })
            .is_some_and(|message| message.role == ChatRole::User)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionStatus::*;

    #[test]
    fn completed_is_terminal() {
        for to in [Pending, Creating, Running, Waiting, Stopped, Failed] {
            assert!(!check_transition(Completed, to), "completed → {to}");
        }
    }

    #[test]
    fn the_happy_path_is_legal() {
        for (from, to) in [
            (Pending, Creating),
            (Creating, Running),
            (Running, Waiting),
            (Waiting, Running),
            (Running, Stopped),
            (Stopped, Pending),
            (Pending, Running),
            (Waiting, Completed),
        ] {
            assert!(check_transition(from, to), "{from} → {to}");
        }
    }

    #[test]
    fn skipping_steps_is_illegal() {
        for (from, to) in [
            (Pending, Waiting),
            (Pending, Completed),
            (Creating, Completed),
            (Waiting, Waiting),
            (Stopped, Stopped),
            (Failed, Waiting),
            (Stopped, Creating),
        ] {
            assert!(!check_transition(from, to), "{from} → {to}");
        }
    }
}

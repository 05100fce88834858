//! Compaction: when a conversation fills most of the model's context window (`[context]
//! compact_at`), or the user asks (`compact`, `/compact`), the model summarizes it, and the
//! summary (a `summary` message) replaces it in the model's context before the next turn.
//! The transcript keeps everything. Only tether's own agent is compacted: an ACP agent keeps
//! its own context.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::actor::SessionHandle;
use super::{SessionError, SessionInfo, SessionManager};
use crate::agent::TurnSettings;
use crate::provider::{ChatMessage, ChatRequest, ChatRole, ModelProvider};
use crate::vocab::{Event, Item, ItemPhase, MessageRole, answered_len, new_item_id};

/// What the model is asked, after the conversation.
const COMPACT_PROMPT: &str = "The conversation is about to be cut to save room. Write a \
summary that lets you carry on the work without it: the user's goal and every requirement \
they stated; decisions made and why; the files you read or changed and what each change \
was; commands you ran and what they showed (tests passing or failing); what is done, what \
is left, and the next step; anything the user asked you to remember. Be complete but \
brief: facts, not narration. Reply with the summary only.";

/// How a compaction went.
enum Compacted {
    /// Not due, not asked for, or nothing to compact.
    No,
    Done,
    /// The model could not write the summary (the conversation is kept): why.
    Failed(String),
}

impl SessionManager {
    /// Compacts session `id`'s conversation now: the session runs once to write the summary
    /// (its status says so), then waits again.
    pub async fn compact(&self, id: &str) -> Result<SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let spec = handle.view().spec.clone();
        if self.runs_on_agent(&spec)? {
            return Err(SessionError::InvalidParams {
                field: "id",
                message: format!(
                    "session {:?} runs on the agent {:?}, which keeps its own context (send it \
                     its own /compact command if it has one)",
                    spec.name, spec.provider
                ),
            });
        }
        let manager = self.clone();
        let driven = handle.clone();
        handle
            .run(move |actor| {
                actor.require_idle("compact")?;
                if actor.state.turns == 0 {
                    return Err(SessionError::InvalidParams {
                        field: "id",
                        message: format!(
                            "session {:?} has no conversation to compact yet",
                            actor.state.spec.name
                        ),
                    });
                }
                actor.compact_requested = true;
                actor.start_driver(&manager, driven, false)?;
                Ok(actor.info())
            })
            .await
    }
}

/// Before a turn: compacts the conversation if it is due. A summary that cannot be written
/// is the reason the session gives when it next waits; the turn goes on with the whole
/// conversation.
pub(super) async fn before_turn(
    handle: &Arc<SessionHandle>,
    provider: &dyn ModelProvider,
    settings: &TurnSettings,
    share: Option<f64>,
    cancel: &CancellationToken,
) -> Result<(), SessionError> {
    if let Compacted::Failed(why) =
        compact_if_due(handle, provider, settings, share, cancel).await?
    {
        tracing::warn!("session {}: compaction failed: {why}", handle.id);
        handle
            .run(move |actor| {
                actor.settings_problem =
                    Some(format!("the conversation could not be compacted: {why}"));
                Ok(())
            })
            .await?;
    }
    Ok(())
}

/// Compacts the conversation if the user asked, or if it filled `share` of the window.
async fn compact_if_due(
    handle: &Arc<SessionHandle>,
    provider: &dyn ModelProvider,
    settings: &TurnSettings,
    share: Option<f64>,
    cancel: &CancellationToken,
) -> Result<Compacted, SessionError> {
    let due = handle
        .run(move |actor| {
            let asked = std::mem::take(&mut actor.compact_requested);
            // Automatically only when a turn follows, so it is never for nothing.
            let turn_follows = !actor.state.queued.is_empty() || actor.state.awaits_reply();
            let full = turn_follows
                && share.is_some_and(|share| {
                    actor
                        .state
                        .context
                        .is_some_and(|context| context.reached(share))
                });
            let mut history = actor.state.history.clone().unwrap_or_default();
            // What the model answered is summarized; what the user said since stays as it
            // is. Tool results waiting for the model's next step are never cut from the
            // call that asked for them.
            let unanswered = history.split_off(answered_len(&history));
            let mid_step = unanswered
                .iter()
                .any(|message| message.role == ChatRole::Tool);
            // A conversation that is only a summary already cannot get shorter.
            let worth_it = history.len() > 1 && !mid_step;
            Ok(((asked || full) && worth_it).then(|| (actor.state.spec.clone(), history)))
        })
        .await?;
    let Some((spec, history)) = due else {
        return Ok(Compacted::No);
    };
    let mut messages = vec![ChatMessage::new(
        ChatRole::System,
        "You are a coding agent summarizing your own work so far for yourself.",
    )];
    messages.extend(history);
    messages.push(ChatMessage::new(ChatRole::User, COMPACT_PROMPT));
    let request = ChatRequest {
        model: spec.model.clone(),
        messages,
        tools: Vec::new(),
        temperature: spec.temperature,
        max_tokens: spec.max_tokens,
    };
    let written = tokio::select! {
        biased;
        () = cancel.cancelled() => return Ok(Compacted::No),
        written = crate::provider::complete_text(provider, &request) => written,
    };
    let (summary, mut usage) = match written {
        Ok((summary, usage)) if !summary.trim().is_empty() => (summary, usage),
        Ok(_) => {
            return Ok(Compacted::Failed(
                "the model wrote an empty summary".to_owned(),
            ));
        }
        Err(error) => return Ok(Compacted::Failed(error.to_string())),
    };
    usage.cost_usd = settings
        .price
        .as_ref()
        .map_or(0.0, |price| price.cost(&usage));
    let id = new_item_id();
    handle
        .run(move |actor| {
            actor.emit_item(
                ItemPhase::Completed,
                Item::Message {
                    id: id.clone(),
                    role: MessageRole::Summary,
                    text: summary.trim().to_owned(),
                    interrupted: false,
                    attachments: Vec::new(),
                },
            )?;
            // Not the conversation's size: the summary is now.
            actor.emit(Event::Usage {
                item_id: Some(id),
                usage,
                context_window: None,
            })?;
            Ok(())
        })
        .await?;
    Ok(Compacted::Done)
}

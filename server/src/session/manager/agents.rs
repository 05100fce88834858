//! Turns of a session whose agent is an ACP agent ([`crate::acp`]): the agent process lives
//! between turns in the session's actor, with its ACP session open; a turn that does not end
//! well (stopped, failed, timed out) ends it, and the next turn starts a new one that
//! restores the ACP session the log names, or opens a new one primed with the transcript.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::SessionError;
use super::actor::SessionHandle;
use crate::acp::{AgentLaunch, AgentSession, Opened, TurnContext};
use crate::agent::tools::ToolContext;
use crate::agent::{EventSink, TurnOutcome, TurnSettings};
use crate::provider::{ChatMessage, ChatRequest, ChatRole};
use crate::vocab::{Event, TurnEndReason};

/// The most of the transcript a new ACP session is primed with (its tail is kept).
const PRIMER_LIMIT: usize = 60_000;

/// Runs one turn on the session's agent, starting the agent first if none is running; how
/// it ended (the driver records it).
pub(super) async fn run_agent_turn(
    handle: &Arc<SessionHandle>,
    launch: &AgentLaunch,
    tools: &ToolContext,
    request: ChatRequest,
    settings: &TurnSettings,
    cancel: &CancellationToken,
    sink: &mut dyn EventSink,
) -> Result<TurnOutcome, SessionError> {
    let (earlier, new, files) = split_new_messages(&request.messages);
    let outcome = match agent_for_turn(handle, launch, tools, cancel).await? {
        Err(outcome) => outcome,
        Ok(mut agent) => {
            let prompt = if agent.opened == Opened::New && worth_priming(&earlier) {
                primed(&earlier, &new)
            } else {
                new
            };
            let context = TurnContext {
                tools,
                turn_timeout: settings.turn_timeout,
                budget_left_usd: settings.budget_left_usd,
            };
            let outcome = agent.run_turn(prompt, files, context, cancel, sink).await;
            // The agent's session is restored from where it stopped next time; only an
            // agent that ended its turn well is kept running.
            agent.opened = Opened::Restored;
            if outcome.reason == TurnEndReason::EndTurn && agent.is_alive() {
                handle
                    .run(move |actor| {
                        actor.agent = Some(agent);
                        Ok(())
                    })
                    .await?;
            } else {
                agent.kill();
            }
            outcome
        }
    };
    Ok(outcome)
}

/// The session's running agent, or a new one (restoring the ACP session the log names);
/// `Err` with the turn's outcome when none can be started.
async fn agent_for_turn(
    handle: &Arc<SessionHandle>,
    launch: &AgentLaunch,
    tools: &ToolContext,
    cancel: &CancellationToken,
) -> Result<Result<AgentSession, TurnOutcome>, SessionError> {
    let (running, logged) = handle
        .run(|actor| Ok((actor.agent.take(), actor.state.agent_session.clone())))
        .await?;
    let previous = logged
        .filter(|(provider, _)| *provider == launch.provider)
        .map(|(_, id)| id);
    if let Some(mut agent) = running {
        if agent.is_alive() && previous.as_deref() == Some(agent.session_id()) {
            return Ok(Ok(agent));
        }
        agent.kill();
    }
    let started = tokio::select! {
        biased;
        () = cancel.cancelled() => {
            return Ok(Err(TurnOutcome { reason: TurnEndReason::Stopped, message: None }));
        }
        started = AgentSession::start(launch.clone(), tools.worktree(), previous.as_deref()) => started,
    };
    let mut agent = match started {
        Ok(agent) => agent,
        Err(message) => {
            return Ok(Err(TurnOutcome {
                reason: TurnEndReason::Failed,
                message: Some(message),
            }));
        }
    };
    let mut events = Vec::new();
    if agent.opened == Opened::New {
        events.push(Event::AgentSession {
            provider: launch.provider.clone(),
            session_id: agent.session_id().to_owned(),
        });
    }
    if let Some(facts) = agent.new_facts() {
        events.push(Event::AgentFacts { facts });
    }
    handle
        .run(move |actor| {
            for event in events {
                actor.emit(event)?;
            }
            Ok(())
        })
        .await?;
    Ok(Ok(agent))
}

/// The conversation before the user's newest messages (those since the agent last spoke),
/// and those messages as one prompt. The system prompt is left out: it is Tether's own
/// agent's, and an ACP agent has its own.
fn split_new_messages(
    messages: &[ChatMessage],
) -> (Vec<ChatMessage>, String, Vec<crate::vocab::ChatAttachment>) {
    let last_reply = messages
        .iter()
        .rposition(|message| message.role == ChatRole::Assistant);
    let (mut earlier, mut new, mut files) = (Vec::new(), Vec::new(), Vec::new());
    for (index, message) in messages.iter().enumerate() {
        if message.role == ChatRole::System {
            continue;
        }
        if message.role == ChatRole::User && last_reply.is_none_or(|last| index > last) {
            new.push(message.content.as_str());
            files.extend(message.attachments.iter().cloned());
        } else {
            earlier.push(message.clone());
        }
    }
    (earlier, new.join("\n\n"), files)
}

/// Whether `earlier` holds a conversation worth priming a new ACP session with (a user's or
/// the agent's words, not only tool results).
fn worth_priming(earlier: &[ChatMessage]) -> bool {
    earlier
        .iter()
        .any(|message| matches!(message.role, ChatRole::User | ChatRole::Assistant))
}

/// A first prompt for a new ACP session of a conversation that went on before: the
/// transcript so far (its tail, when long), then the new messages.
fn primed(earlier: &[ChatMessage], new: &str) -> String {
    let mut transcript = String::new();
    for message in earlier {
        let speaker = match message.role {
            ChatRole::User => "User",
            ChatRole::Assistant => "You",
            ChatRole::Tool => "Tool result",
            ChatRole::System => continue,
        };
        if message.content.is_empty() {
            continue;
        }
        transcript.push_str(&format!("{speaker}: {}\n\n", message.content));
    }
    if transcript.len() > PRIMER_LIMIT {
        let cut = transcript.ceil_char_boundary(transcript.len() - PRIMER_LIMIT);
        transcript = format!("[… earlier part cut …]\n{}", &transcript[cut..]);
    }
    format!(
        "This session continues an earlier conversation whose agent is no longer running. The transcript so far:\n\n{transcript}---\n\n{new}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: ChatRole, text: &str) -> ChatMessage {
        ChatMessage::new(role, text)
    }

    #[test]
    fn the_newest_user_messages_are_the_prompt() {
        let messages = [
            message(ChatRole::System, "system"),
            message(ChatRole::User, "first"),
            message(ChatRole::Assistant, "done"),
            message(ChatRole::User, "second"),
            message(ChatRole::User, "third"),
        ];
        let (earlier, new, _) = split_new_messages(&messages);
        assert_eq!(earlier.len(), 2);
        assert_eq!(new, "second\n\nthird");
        let prompt = primed(&earlier, &new);
        assert!(prompt.contains("User: first"), "{prompt}");
        assert!(prompt.contains("You: done"), "{prompt}");
        assert!(prompt.ends_with("second\n\nthird"), "{prompt}");
        assert!(!prompt.contains("system"), "{prompt}");
    }

    #[test]
    fn a_first_prompt_has_nothing_before_it() {
        let messages = [
            message(ChatRole::System, "system"),
            message(ChatRole::User, "hello"),
        ];
        let (earlier, new, _) = split_new_messages(&messages);
        assert!(earlier.is_empty());
        assert_eq!(new, "hello");
    }

    #[test]
    fn the_agents_own_tool_calls_are_not_the_users_words() {
        // A stopped turn: the user asked, the agent ran a tool, and said nothing yet.
        let messages = [
            message(ChatRole::System, "system"),
            message(ChatRole::User, "work"),
            message(ChatRole::Tool, "killed"),
        ];
        let (earlier, new, _) = split_new_messages(&messages);
        assert_eq!(new, "work");
        assert!(!worth_priming(&earlier));
    }
}

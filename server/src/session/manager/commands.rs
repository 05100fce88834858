//! What a message is before it is sent: a slash command (Tether's own run here; the
//! repository's expanded into its prompt; an ACP agent's passed on as written), and the files
//! its `@` mentions attach.

use super::actor::SessionHandle;
use super::{LoopRequest, SessionError, SessionManager};
use crate::session::{commands, mentions};
use crate::vocab::{AttachmentSource, Event, FindingSource};

/// A message made ready.
pub(super) enum Prepared {
    /// It was one of Tether's commands, and ran.
    Ran(String),
    Send {
        text: String,
        sources: Vec<AttachmentSource>,
    },
}

fn invalid(message: String) -> SessionError {
    SessionError::InvalidParams {
        field: "text",
        message,
    }
}

impl SessionManager {
    /// Runs the message's command if it is one of Tether's; otherwise the text to send (a
    /// repository command expanded) with the files its mentions attach after `sources`.
    pub(super) async fn prepare_message(
        &self,
        handle: &SessionHandle,
        text: String,
        mut sources: Vec<AttachmentSource>,
    ) -> Result<Prepared, SessionError> {
        let view = handle.view();
        let spec = view.spec.clone();
        let id = spec.id.as_str();
        let agent_takes = |name: &str| {
            view.info
                .agent
                .as_ref()
                .is_some_and(|facts| facts.commands.iter().any(|command| command.name == name))
        };
        let text = match commands::parse(&text) {
            None => text,
            // What Tether cannot do for an ACP agent (its context, its model) goes to the
            // agent when it has a command of that name.
            Some((name @ ("compact" | "model"), _)) if agent_takes(name) => text,
            Some((name, arguments)) => {
                let ran = |name: &str| Ok(Prepared::Ran(format!("/{name}")));
                match name {
                    "review" | "verify" => {
                        let kind = if name == "review" {
                            FindingSource::Review
                        } else {
                            FindingSource::Verification
                        };
                        self.start_review(id, kind).await?;
                        return ran(name);
                    }
                    "compact" => {
                        self.compact(id).await?;
                        return ran(name);
                    }
                    "stop" => {
                        self.stop(id).await?;
                        return ran(name);
                    }
                    "loop" => {
                        let (count, prompt) =
                            arguments.split_once(char::is_whitespace).ok_or_else(|| {
                                invalid(
                                    "/loop takes a number of iterations, then a prompt".to_owned(),
                                )
                            })?;
                        let max_iterations = count.parse::<u32>().map_err(|_| {
                            invalid(format!(
                                "/loop takes a number of iterations first, not {count:?}"
                            ))
                        })?;
                        self.start_loop(
                            id,
                            LoopRequest {
                                prompt: prompt.trim().to_owned(),
                                max_iterations,
                                stop_on_exit_signal: true,
                                reset_context: false,
                                model: None,
                            },
                        )
                        .await?;
                        return ran(name);
                    }
                    "model" => {
                        self.change_model(handle, arguments).await?;
                        return ran(name);
                    }
                    "diff" | "apply" => {
                        return Err(invalid(format!(
                            "/{name} runs in the editor: use its {name} command (tether.{name}; \
                             in Helix, :lsp-workspace-command tether.{name})"
                        )));
                    }
                    _ => {}
                }
                let agent_takes_it = agent_takes(name);
                match commands::custom_command(&spec.repo, name) {
                    Some(command) => command.expand(arguments),
                    None if agent_takes_it => text,
                    None => {
                        return Err(invalid(unknown_command(
                            name,
                            &spec.repo,
                            view.info.agent.as_ref(),
                        )));
                    }
                }
            }
        };
        let mentioned = mentions::attachments_of(&spec.repo, &text)
            .map_err(|outside| invalid(outside.to_string()))?;
        sources.extend(mentioned);
        Ok(Prepared::Send { text, sources })
    }

    /// `/model NAME`: the session's next turns use model `NAME` (Tether's agent only).
    async fn change_model(&self, handle: &SessionHandle, model: &str) -> Result<(), SessionError> {
        let spec = handle.view().spec.clone();
        let model = model.trim();
        if model.is_empty() || model.contains(char::is_whitespace) {
            return Err(invalid("/model takes one model name".to_owned()));
        }
        if self.runs_on_agent(&spec)? {
            return Err(invalid(format!(
                "{:?} is an agent that chooses its own models; use its own command for that",
                spec.provider
            )));
        }
        let model = model.to_owned();
        handle
            .run(move |actor| {
                actor.emit(Event::ModelChanged { model })?;
                Ok(())
            })
            .await
    }
}

/// Says a command is unknown, with the ones there are.
fn unknown_command(
    name: &str,
    repo: &std::path::Path,
    agent: Option<&crate::vocab::AgentFacts>,
) -> String {
    let mut known: Vec<String> = commands::BUILT_INS
        .iter()
        .map(|(name, ..)| format!("/{name}"))
        .collect();
    known.extend(
        commands::custom_commands(repo)
            .into_iter()
            .map(|command| format!("/{}", command.name)),
    );
    if let Some(agent) = agent {
        known.extend(
            agent
                .commands
                .iter()
                .map(|command| format!("/{}", command.name)),
        );
    }
    format!(
        "unknown command /{name}; the commands are {}",
        known.join(", ")
    )
}

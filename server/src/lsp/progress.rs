//! `$/progress` for working turns: one work-done token per turn, titled with the session's
//! name, its message saying what the agent is doing now.
//!
//! It runs as its own task with its own event subscription, because creating a token is a
//! request to the client: awaiting it here never holds up a handler or the event stream.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::request::WorkDoneProgressCreate;
use tower_lsp_server::ls_types::{NumberOrString, WorkDoneProgressCreateParams};

use crate::front::Sessions;
use crate::session::{Activity, Event, Item, ItemPhase, SessionStatus, Subscription};

/// How long the client has to accept a new progress token.
const CREATE_TIMEOUT: Duration = Duration::from_secs(5);

type Ongoing = tower_lsp_server::OngoingProgress<
    tower_lsp_server::Unbounded,
    tower_lsp_server::NotCancellable,
>;

/// Starts reporting progress to `client` for every session of `manager`.
/// `message`, after the loop label when there is one.
fn labelled(label: Option<&String>, message: &str) -> String {
    match label {
        Some(label) => format!("{label}: {message}"),
        None => message.to_owned(),
    }
}

pub fn start(client: Client, manager: Sessions, mut events: Subscription) {
    tokio::spawn(async move {
        let mut ongoing: HashMap<String, Ongoing> = HashMap::new();
        // "loop 2/10" for sessions in a loop: put before what the turn does.
        let mut loop_labels: HashMap<String, String> = HashMap::new();
        loop {
            let Some(announced) = events.next().await else {
                break;
            };
            let session_id = announced.session_id.to_string();
            match &announced.record.event {
                Event::Status {
                    status: SessionStatus::Running,
                    activity,
                    ..
                } => {
                    let message = match activity {
                        Some(Activity::WaitingInput) => "waiting for your answer",
                        Some(Activity::AwaitingPlanApproval) => {
                            "waiting for your decision on a plan"
                        }
                        _ => "working",
                    };
                    let message = labelled(loop_labels.get(&session_id), message);
                    match ongoing.get(&session_id) {
                        Some(progress) => progress.report(message).await,
                        None => {
                            if let Some(progress) =
                                begin(&client, &manager, &session_id, announced.record.seq).await
                            {
                                if loop_labels.contains_key(&session_id) {
                                    progress.report(message).await;
                                }
                                ongoing.insert(session_id, progress);
                            }
                        }
                    }
                }
                Event::Item {
                    phase: ItemPhase::Started,
                    item: Item::ToolCall { tool, input, .. },
                } => {
                    if let Some(progress) = ongoing.get(&session_id) {
                        let message = describe_tool(tool, input);
                        progress
                            .report(labelled(loop_labels.get(&session_id), &message))
                            .await;
                    }
                }
                Event::Item {
                    phase,
                    item:
                        Item::LoopIteration {
                            iteration,
                            max_iterations,
                            ..
                        },
                } => {
                    if *phase == ItemPhase::Started {
                        loop_labels
                            .insert(session_id, format!("loop {iteration}/{max_iterations}"));
                    } else {
                        loop_labels.remove(&session_id);
                    }
                }
                Event::TurnEnded { reason, .. } => {
                    if let Some(progress) = ongoing.remove(&session_id) {
                        progress
                            .finish_with_message(format!("turn ended: {}", reason.as_str()))
                            .await;
                    }
                }
                Event::Status { status, .. } => {
                    if let Some(progress) = ongoing.remove(&session_id) {
                        progress.finish_with_message(status.as_str()).await;
                    }
                }
                _ => {}
            }
        }
    });
}

/// Creates a token for a session's turn and begins its progress.
async fn begin(client: &Client, manager: &Sessions, session_id: &str, seq: u64) -> Option<Ongoing> {
    let token = NumberOrString::String(format!("tether/{session_id}/{seq}"));
    let created = tokio::time::timeout(
        CREATE_TIMEOUT,
        client.send_request::<WorkDoneProgressCreate>(WorkDoneProgressCreateParams {
            token: token.clone(),
        }),
    )
    .await;
    if !matches!(created, Ok(Ok(()))) {
        tracing::debug!("the client did not accept a progress token for {session_id}");
        return None;
    }
    let title = manager
        .info(session_id)
        .map(|info| format!("tether: {}", info.name))
        .unwrap_or_else(|_| "tether".to_owned());
    Some(
        client
            .progress(token, title)
            .with_message("working")
            .begin()
            .await,
    )
}

/// What a tool call is doing, in a few words: "running cargo test", "editing src/lib.rs".
fn describe_tool(tool: &str, input: &Value) -> String {
    let field = |name: &str| input.get(name).and_then(Value::as_str).unwrap_or_default();
    let text = match tool {
        "run_command" => format!("running {}", field("command")),
        "read_file" => format!("reading {}", field("path")),
        "edit_file" => format!("editing {}", field("path")),
        "write_file" => format!("writing {}", field("path")),
        "delete_file" => format!("deleting {}", field("path")),
        "move_file" => format!("moving {} to {}", field("from"), field("to")),
        "search" => format!("searching for {}", field("pattern")),
        "list_directory" => "listing files".to_owned(),
        "ask_user" => "asking you".to_owned(),
        "propose_plan" => "proposing a plan".to_owned(),
        other => format!("using {other}"),
    };
    text.chars().take(120).collect()
}

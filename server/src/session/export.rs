//! Exports of a session: Markdown for people, JSON for tools.

use std::fmt::Write as _;

use serde_json::json;

use super::{Event, EventRecord, Item, ItemPhase, MessageRole, SessionInfo, TokenUsage};

/// The whole session as JSON: its info and every event, as the log holds them.
pub fn to_json(info: &SessionInfo, events: &[EventRecord]) -> String {
    let document = json!({ "session": info, "events": events });
    serde_json::to_string_pretty(&document)
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
}

/// The transcript as Markdown: the metadata, then each completed message in order.
pub fn to_markdown(info: &SessionInfo, events: &[EventRecord]) -> String {
    markdown(info, events, false)
}

/// A file's size as a person reads it.
fn size_of(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

/// `12345` as `12,345`.
fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The marker a transcript document puts on each user message's heading (what its code
/// actions find the message by).
pub const MESSAGE_MARKER: &str = "<!-- tether:message ";

/// The heading of the messages still waiting to be delivered.
const QUEUED_HEADING: &str = "## Queued (not delivered yet)";
/// The marker a transcript document puts on each queued message's line.
pub const QUEUED_MARKER: &str = "<!-- tether:queued ";

/// The follow-ups still waiting to be delivered, in order: (item id, text).
fn queued_messages(events: &[EventRecord]) -> Vec<(&str, &str)> {
    let mut queued: Vec<(&str, &str)> = Vec::new();
    for record in events {
        match &record.event {
            Event::FollowUpQueued { item_id, text, .. } => queued.push((item_id, text)),
            Event::FollowUpWithdrawn { item_id }
            | Event::Item {
                phase: ItemPhase::Completed,
                item: Item::Message { id: item_id, .. },
            } => queued.retain(|(id, _)| id != item_id),
            _ => {}
        }
    }
    queued
}

/// Which events an edit superseded: from the edited message to its `superseded` event.
fn superseded_events(events: &[EventRecord]) -> Vec<bool> {
    let mut superseded = vec![false; events.len()];
    for (end, record) in events.iter().enumerate() {
        let Event::Superseded { item_id } = &record.event else {
            continue;
        };
        let start = events[..end].iter().position(|record| {
            matches!(
                &record.event,
                Event::Item {
                    phase: ItemPhase::Completed,
                    item: Item::Message { id, role: MessageRole::User, .. },
                } if id == item_id
            )
        });
        if let Some(start) = start {
            superseded[start..end].fill(true);
        }
    }
    superseded
}

/// The transcript as Markdown; with `markers`, each user message's heading carries its id
/// (for the transcript document).
pub(super) fn markdown(info: &SessionInfo, events: &[EventRecord], markers: bool) -> String {
    let mut out = String::new();
    let title = if info.title.is_empty() {
        &info.name
    } else {
        &info.title
    };
    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(out, "- Session: `{}` ({})", info.name, info.id);
    let _ = writeln!(
        out,
        "- Mode: {} · Status: {}",
        info.mode.as_str(),
        info.status
    );
    let _ = writeln!(
        out,
        "- Branch: `{}` from `{}`",
        info.branch, info.base_branch
    );
    if let Some(url) = &info.pull_request {
        let _ = writeln!(out, "- Pull request: {url}");
    }
    let _ = writeln!(out, "- Model: {} / {}", info.provider, info.model);
    let _ = writeln!(
        out,
        "- Created: {} · Updated: {}",
        info.created_at, info.updated_at
    );
    let _ = writeln!(
        out,
        "- Usage: {} input tokens, {} output tokens, ${:.4}",
        info.usage.input_tokens, info.usage.output_tokens, info.usage.cost_usd
    );
    if let Some(context) = &info.context {
        let _ = writeln!(
            out,
            "- Context: {} of {} tokens ({}%)",
            thousands(context.used_tokens),
            thousands(context.window_tokens),
            context.used_tokens * 100 / context.window_tokens.max(1)
        );
    }
    // The user's latest rating of each reply, and what each cost, shown under it.
    let mut ratings = std::collections::HashMap::new();
    let mut costs: std::collections::HashMap<&str, TokenUsage> = Default::default();
    for record in events {
        match &record.event {
            Event::Feedback {
                item_id,
                rating,
                comment,
            } => {
                ratings.insert(item_id.as_str(), (*rating, comment.as_deref()));
            }
            Event::Usage {
                item_id: Some(item_id),
                usage,
                ..
            } => costs.entry(item_id.as_str()).or_default().add(usage),
            _ => {}
        }
    }
    let superseded = superseded_events(events);
    let mut folded = false;
    for (record, superseded) in events.iter().zip(superseded) {
        // What an edit replaced stays, folded away.
        if superseded != folded {
            folded = superseded;
            if folded {
                let _ = writeln!(out, "\n<details><summary>Superseded by an edit</summary>");
            } else {
                let _ = writeln!(out, "\n</details>");
            }
        }
        match &record.event {
            Event::Item {
                phase: ItemPhase::Completed,
                item:
                    Item::Message {
                        id,
                        role,
                        text,
                        interrupted,
                        attachments,
                    },
            } => {
                let heading = match role {
                    MessageRole::User => "User",
                    MessageRole::Agent => "Agent",
                    MessageRole::Thinking => "Thinking",
                    MessageRole::System => "System",
                    MessageRole::Summary => "Summary",
                    MessageRole::HookFailure => "Hook failure",
                };
                if markers && *role == MessageRole::User && !superseded {
                    let _ = writeln!(out, "\n## {heading} {MESSAGE_MARKER}{id} -->\n");
                } else {
                    let _ = writeln!(out, "\n## {heading}\n");
                }
                let _ = writeln!(out, "{}", text.trim_end());
                if !attachments.is_empty() {
                    let _ = writeln!(out);
                    for file in attachments {
                        let _ = writeln!(
                            out,
                            "- Attached: `{}` ({}, {})",
                            file.name,
                            file.mime_type,
                            size_of(file.size)
                        );
                    }
                }
                if *interrupted {
                    let _ = writeln!(out, "\n*(interrupted)*");
                }
                if let Some((rating, comment)) = ratings.get(id.as_str()) {
                    let mark = match rating {
                        crate::vocab::Rating::Up => "👍",
                        crate::vocab::Rating::Down => "👎",
                    };
                    let _ = write!(out, "\n*Your feedback: {mark} {}", rating.as_str());
                    if let Some(comment) = comment {
                        let _ = write!(out, " — {comment}");
                    }
                    let _ = writeln!(out, "*");
                }
                if let Some(usage) = costs.get(id.as_str()) {
                    let _ = writeln!(
                        out,
                        "\n*${:.4} · {} tokens in, {} out*",
                        usage.cost_usd,
                        thousands(
                            usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
                        ),
                        thousands(usage.output_tokens)
                    );
                }
            }
            Event::Item {
                phase: ItemPhase::Completed,
                item:
                    item @ (Item::Review {
                        status,
                        findings,
                        run,
                        ..
                    }
                    | Item::Verification {
                        status,
                        findings,
                        run,
                        ..
                    }),
            } => {
                let kind = if matches!(item, Item::Review { .. }) {
                    "Review"
                } else {
                    "Verification"
                };
                let _ = writeln!(out, "\n## {kind}: {status}, {} findings\n", findings.len());
                if let Some(error) = &run.error {
                    let _ = writeln!(out, "{error}");
                }
                for finding in findings {
                    let place = finding
                        .file
                        .as_ref()
                        .map(|file| format!("`{file}:{}` ", finding.start_line))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "- {place}**{}** ({:?}, {}) {}",
                        finding.title,
                        finding.severity,
                        finding.category,
                        finding.body.trim()
                    );
                }
            }
            Event::Item {
                phase: ItemPhase::Completed,
                item:
                    Item::LoopIteration {
                        iteration,
                        max_iterations,
                        outcome,
                        stop_reason,
                        ..
                    },
            } => {
                let _ = write!(
                    out,
                    "\n> Loop iteration {iteration} of {max_iterations}: {outcome}"
                );
                if let Some(reason) = stop_reason {
                    let _ = write!(out, "; the loop stopped: {reason}");
                }
                out.push('\n');
            }
            Event::ContextReset { summary } => {
                let _ = writeln!(out, "\n> Context reset: the model starts over from here.");
                if let Some(summary) = summary {
                    let _ = writeln!(out, ">\n> Summary kept: {summary}");
                }
            }
            Event::TurnEnded { reason, message } if reason.as_str() != "end_turn" => {
                let _ = write!(out, "\n> Turn ended: {}", reason.as_str());
                if let Some(message) = message {
                    let _ = write!(out, ": {message}");
                }
                out.push('\n');
            }
            _ => {}
        }
    }
    if folded {
        let _ = writeln!(out, "\n</details>");
    }
    let queued = queued_messages(events);
    if !queued.is_empty() {
        let _ = writeln!(out, "\n{QUEUED_HEADING}\n");
        for (id, text) in queued {
            let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if markers {
                let _ = writeln!(out, "- {line} {QUEUED_MARKER}{id} -->");
            } else {
                let _ = writeln!(out, "- {line}");
            }
        }
    }
    out
}

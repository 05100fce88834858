//! What an agent reports (`session/update`) as Tether events: message and thought chunks
//! become streamed `message` items, tool calls `toolCall` items, the agent's plan a `plan`
//! item, its running cost `usage` events. One [`Translator`] per turn.

use std::collections::HashMap;
use std::time::Instant;

use agent_client_protocol::v1::schema::{
    ContentBlock, Plan, PlanEntryStatus, SessionUpdate, ToolCall, ToolCallContent,
    ToolCallStatus as AcpStatus, ToolCallUpdate, UsageUpdate,
};

use crate::agent::{EventSink, StreamingItem, new_item_id, push_text};
use crate::vocab::{Event, Item, ItemPhase, MessageRole, PlanPhase, TokenUsage, ToolCallStatus};

/// At most this much of a tool call's output is kept in its item.
const OUTPUT_LIMIT: usize = 8_000;

/// A tool call the agent started and has not finished.
struct OpenTool {
    item_id: String,
    title: String,
    input: serde_json::Value,
    output: String,
    started: Instant,
}

/// A tool call that just finished: the turn looks for the files it changed.
pub struct ToolFinished;

/// Turns one turn's updates into events, in the order they came.
#[derive(Default)]
pub struct Translator {
    message: Option<StreamingItem>,
    thought: Option<StreamingItem>,
    tools: HashMap<String, OpenTool>,
    plan_id: Option<String>,
    /// The session's cost the agent last reported (its updates carry the running total).
    cost_reported: Option<f64>,
}

impl Translator {
    /// A translator that knows the cost the agent reported before this turn.
    pub fn new(cost_reported: Option<f64>) -> Translator {
        Translator {
            cost_reported,
            ..Translator::default()
        }
    }

    /// The running cost the agent last reported.
    pub fn cost_reported(&self) -> Option<f64> {
        self.cost_reported
    }

    /// Handles one update; says when a tool call finished.
    pub fn update(
        &mut self,
        update: SessionUpdate,
        terminals: &dyn Fn(&str) -> Option<String>,
        sink: &mut dyn EventSink,
    ) -> Result<Option<ToolFinished>, String> {
        match update {
            SessionUpdate::AgentMessageChunk(chunk) => {
                if let Some(text) = text_of(&chunk.content) {
                    self.close_thought(sink)?;
                    push_text(&mut self.message, MessageRole::Agent, &text, sink)?;
                }
            }
            SessionUpdate::AgentThoughtChunk(chunk) => {
                if let Some(text) = text_of(&chunk.content) {
                    push_text(&mut self.thought, MessageRole::Thinking, &text, sink)?;
                }
            }
            SessionUpdate::ToolCall(call) => {
                self.close_messages(sink)?;
                return self.tool_call(call, terminals, sink);
            }
            SessionUpdate::ToolCallUpdate(update) => {
                return self.tool_call_update(update, terminals, sink);
            }
            SessionUpdate::Plan(plan) => self.plan(plan, sink)?,
            SessionUpdate::UsageUpdate(usage) => self.usage(usage, sink)?,
            // The user's own words come from Tether; the rest describes the agent's session
            // (commands, modes, options, title), which the transcript does not show.
            _ => {}
        }
        Ok(None)
    }

    /// Sends the text streamed since the last frame.
    pub fn flush(&mut self, sink: &mut dyn EventSink) -> Result<(), String> {
        for item in [&mut self.thought, &mut self.message].into_iter().flatten() {
            item.flush(sink)?;
        }
        Ok(())
    }

    /// Ends the turn: completes the open messages (cut short when `interrupted`) and the
    /// tool calls the agent never finished.
    pub fn finish(&mut self, interrupted: bool, sink: &mut dyn EventSink) -> Result<(), String> {
        if let Some(item) = self.thought.take() {
            item.complete(interrupted, sink)?;
        }
        if let Some(item) = self.message.take() {
            item.complete(interrupted, sink)?;
        }
        let mut open: Vec<(String, OpenTool)> = self.tools.drain().collect();
        open.sort_by_key(|(_, tool)| tool.started);
        for (call_id, mut tool) in open {
            if !tool.output.is_empty() {
                tool.output.push('\n');
            }
            tool.output
                .push_str("[the turn ended before the tool call finished]");
            complete_tool(&call_id, tool, ToolCallStatus::Failed, sink)?;
        }
        Ok(())
    }

    fn close_thought(&mut self, sink: &mut dyn EventSink) -> Result<(), String> {
        match self.thought.take() {
            Some(item) => item.complete(false, sink),
            None => Ok(()),
        }
    }

    fn close_messages(&mut self, sink: &mut dyn EventSink) -> Result<(), String> {
        self.close_thought(sink)?;
        match self.message.take() {
            Some(item) => item.complete(false, sink),
            None => Ok(()),
        }
    }

    fn tool_call(
        &mut self,
        call: ToolCall,
        terminals: &dyn Fn(&str) -> Option<String>,
        sink: &mut dyn EventSink,
    ) -> Result<Option<ToolFinished>, String> {
        let call_id = call.tool_call_id.0.to_string();
        let input = call.raw_input.clone().unwrap_or_else(|| {
            serde_json::json!({
                "kind": call.kind,
                "locations": call.locations,
            })
        });
        let tool = OpenTool {
            item_id: new_item_id(),
            title: call.title.clone(),
            input,
            output: output_of(&call.content, terminals),
            started: Instant::now(),
        };
        let status = status_of(call.status);
        sink.emit(Event::Item {
            phase: ItemPhase::Started,
            item: tool_item(&call_id, &tool, ToolCallStatus::Running, None),
        })?;
        if status == ToolCallStatus::Running {
            self.tools.insert(call_id, tool);
            return Ok(None);
        }
        complete_tool(&call_id, tool, status, sink)?;
        Ok(Some(ToolFinished))
    }

    fn tool_call_update(
        &mut self,
        update: ToolCallUpdate,
        terminals: &dyn Fn(&str) -> Option<String>,
        sink: &mut dyn EventSink,
    ) -> Result<Option<ToolFinished>, String> {
        let call_id = update.tool_call_id.0.to_string();
        let fields = update.fields;
        let Some(tool) = self.tools.get_mut(&call_id) else {
            // An update for a call this turn never saw started (or already finished).
            return Ok(None);
        };
        if let Some(title) = fields.title {
            tool.title = title;
        }
        if let Some(input) = fields.raw_input {
            tool.input = input;
        }
        if let Some(content) = &fields.content {
            tool.output = output_of(content, terminals);
        }
        if let Some(output) = fields.raw_output
            && tool.output.is_empty()
        {
            tool.output = cap(&match output {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            });
        }
        let status = fields.status.map_or(ToolCallStatus::Running, status_of);
        if status == ToolCallStatus::Running {
            return Ok(None);
        }
        if let Some(tool) = self.tools.remove(&call_id) {
            complete_tool(&call_id, tool, status, sink)?;
        }
        Ok(Some(ToolFinished))
    }

    fn plan(&mut self, plan: Plan, sink: &mut dyn EventSink) -> Result<(), String> {
        let id = self.plan_id.get_or_insert_with(new_item_id).clone();
        let phases = plan
            .entries
            .iter()
            .map(|entry| PlanPhase {
                title: format!(
                    "{} {}",
                    match entry.status {
                        PlanEntryStatus::Completed => "[x]",
                        PlanEntryStatus::InProgress => "[~]",
                        _ => "[ ]",
                    },
                    entry.content
                ),
                subtasks: Vec::new(),
            })
            .collect();
        // Each update replaces the last: the completed form is authoritative.
        sink.emit(Event::Item {
            phase: ItemPhase::Completed,
            item: Item::Plan {
                id,
                phases,
                decision: None,
            },
        })
    }

    fn usage(&mut self, usage: UsageUpdate, sink: &mut dyn EventSink) -> Result<(), String> {
        let Some(cost) = usage.cost else {
            return Ok(());
        };
        if !cost.currency.eq_ignore_ascii_case("USD") || !cost.amount.is_finite() {
            return Ok(());
        }
        let before = self.cost_reported.replace(cost.amount).unwrap_or(0.0);
        let spent = cost.amount - before;
        if spent <= 0.0 {
            return Ok(());
        }
        sink.emit(Event::Usage {
            context_window: None,
            item_id: None,
            usage: TokenUsage {
                cost_usd: spent,
                ..TokenUsage::default()
            },
        })
    }
}

fn complete_tool(
    call_id: &str,
    tool: OpenTool,
    status: ToolCallStatus,
    sink: &mut dyn EventSink,
) -> Result<(), String> {
    let duration = tool.started.elapsed().as_millis() as u64;
    sink.emit(Event::Item {
        phase: ItemPhase::Completed,
        item: tool_item(call_id, &tool, status, Some(duration)),
    })
}

fn tool_item(
    call_id: &str,
    tool: &OpenTool,
    status: ToolCallStatus,
    duration_ms: Option<u64>,
) -> Item {
    Item::ToolCall {
        id: tool.item_id.clone(),
        call_id: call_id.to_owned(),
        tool: tool.title.clone(),
        input: tool.input.clone(),
        status,
        output: (status != ToolCallStatus::Running || !tool.output.is_empty())
            .then(|| tool.output.clone()),
        duration_ms,
    }
}

fn status_of(status: AcpStatus) -> ToolCallStatus {
    match status {
        AcpStatus::Completed => ToolCallStatus::Completed,
        AcpStatus::Failed => ToolCallStatus::Failed,
        _ => ToolCallStatus::Running,
    }
}

fn text_of(content: &ContentBlock) -> Option<String> {
    match content {
        ContentBlock::Text(text) => Some(text.text.clone()),
        ContentBlock::ResourceLink(link) => Some(format!("[{}]({})", link.name, link.uri)),
        _ => None,
    }
}

/// A tool call's content as text: its text blocks, a line for each diff, and what each of
/// its terminals printed (as Tether ran them).
fn output_of(content: &[ToolCallContent], terminals: &dyn Fn(&str) -> Option<String>) -> String {
    let mut text = String::new();
    for block in content {
        let part = match block {
            ToolCallContent::Content(content) => text_of(&content.content),
            ToolCallContent::Diff(diff) => Some(format!("edited {}", diff.path.display())),
            ToolCallContent::Terminal(terminal) => Some(
                terminals(&terminal.terminal_id.0)
                    .unwrap_or_else(|| format!("[terminal {}]", terminal.terminal_id.0)),
            ),
            _ => None,
        };
        if let Some(part) = part {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&part);
        }
    }
    cap(&text)
}

fn cap(text: &str) -> String {
    if text.len() <= OUTPUT_LIMIT {
        return text.to_owned();
    }
    format!(
        "{}\n[… {} bytes cut]",
        &text[..text.floor_char_boundary(OUTPUT_LIMIT)],
        text.len() - OUTPUT_LIMIT
    )
}

//! Anthropic's Messages API (`POST {base_url}/v1/messages`, streamed as SSE): text, thinking
//! and tool_use content blocks, with usage from `message_start` and `message_delta`.

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;
use serde_json::{Value, json};

use super::attachments::Part;
use super::http::{Endpoint, ReplyParser, SseReader, reply_stream};
use super::{
    ChatMessage, ChatRequest, ChatRole, ModelProvider, ProviderError, StreamEvent, StreamFuture,
    ToolCallRequest,
};
use crate::config::ProviderConfig;
use crate::vocab::TokenUsage;

const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; this is used when the configuration sets none.
const DEFAULT_MAX_TOKENS: u32 = 8192;

#[derive(Debug)]
pub struct AnthropicProvider {
    endpoint: Endpoint,
}

impl AnthropicProvider {
    pub fn new(name: &str, config: &ProviderConfig) -> Result<AnthropicProvider, ProviderError> {
        Ok(AnthropicProvider {
            endpoint: Endpoint::new(name, config, "/v1/messages")?,
        })
    }

    fn body(request: &ChatRequest) -> Value {
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|message| message.role == ChatRole::System)
            .map(|message| message.content.as_str())
            .collect();
        // Prompt caching: the tools, the system prompt and the conversation so far are a prefix
        // the next call repeats, so each ends with a cache breakpoint (Anthropic allows four).
        let mut messages = wire_messages(&request.messages);
        if let Some(last) = messages
            .last_mut()
            .and_then(|message| message["content"].as_array_mut())
            .and_then(|blocks| blocks.last_mut())
        {
            last["cache_control"] = json!({"type": "ephemeral"});
        }
        let mut body = json!({
            "model": request.model,
            "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
            "stream": true,
        });
        if !system.is_empty() {
            body["system"] = json!([{"type": "text", "text": system.join("\n\n"),
                                     "cache_control": {"type": "ephemeral"}}]);
        }
        if !request.tools.is_empty() {
            let mut tools: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    json!({"name": tool.name, "description": tool.description,
                           "input_schema": tool.parameters})
                })
                .collect();
            if let Some(last) = tools.last_mut() {
                last["cache_control"] = json!({"type": "ephemeral"});
            }
            body["tools"] = Value::Array(tools);
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature);
        }
        body
    }
}

/// Messages in Anthropic's shape: content blocks, tool results as user blocks, and
/// consecutive messages of one role merged (the API wants the roles to alternate).
fn wire_messages(messages: &[ChatMessage]) -> Vec<Value> {
    let mut wire: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, blocks) = match message.role {
            ChatRole::System => continue,
            ChatRole::User => (
                "user",
                super::attachments::parts(message)
                    .into_iter()
                    .map(|part| match part {
                        Part::Text(text) => json!({"type": "text", "text": text}),
                        Part::Image { mime_type, base64 } => json!({"type": "image",
                            "source": {"type": "base64", "media_type": mime_type, "data": base64}}),
                        Part::Pdf { base64, .. } => json!({"type": "document",
                            "source": {"type": "base64", "media_type": "application/pdf", "data": base64}}),
                    })
                    .collect(),
            ),
            ChatRole::Tool => (
                "user",
                vec![json!({"type": "tool_result",
                            "tool_use_id": message.tool_call_id.clone().unwrap_or_default(),
                            "content": message.content})],
            ),
            ChatRole::Assistant => {
                let mut blocks = Vec::new();
                if !message.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": message.content}));
                }
                for call in &message.tool_calls {
                    let input = serde_json::from_str::<Value>(&call.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                }
                if blocks.is_empty() {
                    // An empty reply still holds its place in the conversation.
                    blocks.push(json!({"type": "text", "text": "(no reply)"}));
                }
                ("assistant", blocks)
            }
        };
        match wire.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => wire.push((role, blocks)),
        }
    }
    wire.into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect()
}

impl ModelProvider for AnthropicProvider {
    fn stream_chat<'a>(&'a self, request: &'a ChatRequest) -> StreamFuture<'a> {
        Box::pin(async move {
            let mut headers = vec![(
                reqwest::header::HeaderName::from_static("anthropic-version"),
                reqwest::header::HeaderValue::from_static(API_VERSION),
            )];
            if let Some(key) = self.endpoint.api_key()? {
                headers.push((
                    reqwest::header::HeaderName::from_static("x-api-key"),
                    self.endpoint.secret_header(&key)?,
                ));
            }
            let response = self.endpoint.post(&Self::body(request), &headers).await?;
            let parser = BlockReader {
                pending: VecDeque::new(),
                done: false,
                tool_uses: BTreeMap::new(),
                usage: TokenUsage::default(),
                stop_reason: None,
                url: self.endpoint.url.clone(),
            };
            Ok(reply_stream(
                SseReader::new(response, &self.endpoint),
                parser,
            ))
        })
    }
}

struct BlockReader {
    pending: VecDeque<StreamEvent>,
    done: bool,
    /// tool_use blocks being streamed, by block index.
    tool_uses: BTreeMap<usize, ToolCallRequest>,
    usage: TokenUsage,
    stop_reason: Option<String>,
    url: String,
}

/// One event of the stream, by its `type`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamMessage {
    MessageStart {
        message: MessageStartBody,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        usage: Option<Usage>,
    },
    MessageStop,
    Ping,
    Error {
        error: Value,
    },
}

#[derive(Deserialize)]
struct MessageStartBody {
    usage: Option<Usage>,
}

#[derive(Deserialize, Default)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

impl ReplyParser for BlockReader {
    fn take_event(&mut self) -> Option<StreamEvent> {
        self.pending.pop_front()
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn on_data(&mut self, data: &str) -> Result<(), ProviderError> {
        handle(data, self)
    }

    fn on_end(&mut self) -> bool {
        // A reply is complete only with `message_stop`.
        false
    }
}

fn handle(data: &str, reader: &mut BlockReader) -> Result<(), ProviderError> {
    let message: StreamMessage =
        serde_json::from_str(data).map_err(|error| ProviderError::MalformedChunk {
            message: error.to_string(),
            excerpt: data.chars().take(200).collect(),
        })?;
    match message {
        StreamMessage::MessageStart { message } => {
            if let Some(usage) = message.usage {
                reader.usage.input_tokens = usage.input_tokens.unwrap_or(0);
                reader.usage.output_tokens = usage.output_tokens.unwrap_or(0);
                reader.usage.cache_read_tokens = usage.cache_read_input_tokens.unwrap_or(0);
                reader.usage.cache_write_tokens = usage.cache_creation_input_tokens.unwrap_or(0);
            }
        }
        StreamMessage::ContentBlockStart {
            index,
            content_block,
        } => match content_block {
            Block::Text { text } if !text.is_empty() => {
                reader.pending.push_back(StreamEvent::TextDelta(text));
            }
            Block::Thinking { thinking } if !thinking.is_empty() => {
                reader
                    .pending
                    .push_back(StreamEvent::ThinkingDelta(thinking));
            }
            Block::ToolUse { id, name } => {
                reader.tool_uses.insert(
                    index,
                    ToolCallRequest {
                        id,
                        name,
                        arguments: String::new(),
                    },
                );
            }
            _ => {}
        },
        StreamMessage::ContentBlockDelta { index, delta } => match delta {
            BlockDelta::TextDelta { text } => {
                reader.pending.push_back(StreamEvent::TextDelta(text))
            }
            BlockDelta::ThinkingDelta { thinking } => {
                reader
                    .pending
                    .push_back(StreamEvent::ThinkingDelta(thinking));
            }
            BlockDelta::InputJsonDelta { partial_json } => {
                if let Some(call) = reader.tool_uses.get_mut(&index) {
                    call.arguments.push_str(&partial_json);
                }
            }
            BlockDelta::Other => {}
        },
        StreamMessage::ContentBlockStop { index } => {
            if let Some(mut call) = reader.tool_uses.remove(&index) {
                if call.arguments.trim().is_empty() {
                    call.arguments = "{}".to_owned();
                }
                reader.pending.push_back(StreamEvent::ToolCall(call));
            }
        }
        StreamMessage::MessageDelta { delta, usage } => {
            if let Some(reason) = delta.stop_reason {
                reader.stop_reason = Some(reason);
            }
            if let Some(usage) = usage {
                if let Some(input) = usage.input_tokens {
                    reader.usage.input_tokens = input;
                }
                if let Some(output) = usage.output_tokens {
                    reader.usage.output_tokens = output;
                }
            }
        }
        StreamMessage::MessageStop => {
            reader.done = true;
            reader.pending.push_back(StreamEvent::Usage(reader.usage));
            let reason = reader.stop_reason.take();
            reader.pending.push_back(StreamEvent::Finished(reason));
        }
        StreamMessage::Ping => {}
        StreamMessage::Error { error } => {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string());
            return Err(ProviderError::Http {
                url: reader.url.clone(),
                status: 200,
                body: format!("error inside the stream: {message}"),
                retry_after_secs: None,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_and_follow_ups_merge_into_alternating_turns() {
        let messages = vec![
            ChatMessage::new(ChatRole::System, "be brief"),
            ChatMessage::new(ChatRole::User, "hi"),
            ChatMessage {
                tool_calls: vec![
                    ToolCallRequest {
                        id: "a".into(),
                        name: "read_file".into(),
                        arguments: r#"{"path":"x"}"#.into(),
                    },
                    ToolCallRequest {
                        id: "b".into(),
                        name: "search".into(),
                        arguments: "not json".into(),
                    },
                ],
                ..ChatMessage::new(ChatRole::Assistant, "")
            },
            ChatMessage {
                tool_call_id: Some("a".into()),
                ..ChatMessage::new(ChatRole::Tool, "one")
            },
            ChatMessage {
                tool_call_id: Some("b".into()),
                ..ChatMessage::new(ChatRole::Tool, "two")
            },
            ChatMessage::new(ChatRole::User, "and?"),
        ];
        let wire = wire_messages(&messages);
        let roles: Vec<_> = wire.iter().map(|message| message["role"].clone()).collect();
        assert_eq!(roles, [json!("user"), json!("assistant"), json!("user")]);
        assert_eq!(wire[1]["content"][0]["type"], "tool_use");
        assert_eq!(wire[1]["content"][0]["input"]["path"], "x");
        assert_eq!(wire[1]["content"][1]["input"], json!({}));
        let last = wire[2]["content"].as_array().expect("blocks");
        assert_eq!(last.len(), 3);
        assert_eq!(last[0]["tool_use_id"], "a");
        assert_eq!(last[2]["text"], "and?");
    }
}

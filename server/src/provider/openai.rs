//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`, streamed as SSE):
//! OpenAI itself, Ollama, vLLM, llama.cpp's server, LM Studio, OpenRouter.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{Value, json};

use super::attachments::Part;
use super::http::{Endpoint, ReplyParser, SseReader, reply_stream};
use super::{ChatRequest, ChatRole, ModelProvider, ProviderError, StreamEvent, StreamFuture};
use crate::config::ProviderConfig;
use crate::vocab::TokenUsage;

#[derive(Debug)]
pub struct OpenAiProvider {
    endpoint: Endpoint,
}

impl OpenAiProvider {
    pub fn new(name: &str, config: &ProviderConfig) -> Result<OpenAiProvider, ProviderError> {
        Ok(OpenAiProvider {
            endpoint: Endpoint::new(name, config, "/chat/completions")?,
        })
    }

    fn body(request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|message| {
                let role = match message.role {
                    ChatRole::System => "system",
                    ChatRole::User => "user",
                    ChatRole::Assistant => "assistant",
                    ChatRole::Tool => "tool",
                };
                // Always a string: some servers reject `content: null` (LOCAL_MODEL.md).
                let mut wire = json!({ "role": role, "content": message.content });
                let parts = super::attachments::parts(message);
                if let [Part::Text(text)] = parts.as_slice() {
                    // Text files only: still one string, which every server takes.
                    wire["content"] = json!(text);
                } else {
                    wire["content"] = parts
                        .into_iter()
                        .map(|part| match part {
                            Part::Text(text) => json!({"type": "text", "text": text}),
                            Part::Image { mime_type, base64 } => json!({"type": "image_url",
                                "image_url": {"url": format!("data:{mime_type};base64,{base64}")}}),
                            Part::Pdf { name, base64 } => json!({"type": "file", "file": {
                                "filename": name,
                                "file_data": format!("data:application/pdf;base64,{base64}")}}),
                        })
                        .collect();
                }
                if !message.tool_calls.is_empty() {
                    wire["tool_calls"] = message
                        .tool_calls
                        .iter()
                        .map(|call| {
                            json!({"id": call.id, "type": "function",
                                   "function": {"name": call.name, "arguments": call.arguments}})
                        })
                        .collect();
                }
                if let Some(id) = &message.tool_call_id {
                    wire["tool_call_id"] = json!(id);
                }
                wire
            })
            .collect();
        let mut body = json!({
            "model": request.model,
            "messages": messages,
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({"type": "function", "function": {
                        "name": tool.name, "description": tool.description, "parameters": tool.parameters}})
                })
                .collect();
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature);
        }
        if let Some(max_tokens) = request.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        body
    }
}

impl ModelProvider for OpenAiProvider {
    fn stream_chat<'a>(&'a self, request: &'a ChatRequest) -> StreamFuture<'a> {
        Box::pin(async move {
            let mut headers = Vec::new();
            if let Some(key) = self.endpoint.api_key()? {
                headers.push((
                    reqwest::header::AUTHORIZATION,
                    self.endpoint.secret_header(&format!("Bearer {key}"))?,
                ));
            }
            let response = self.endpoint.post(&Self::body(request), &headers).await?;
            let parser = ChunkReader {
                pending: VecDeque::new(),
                done: false,
                finish_reason: None,
                tool_calls: Vec::new(),
                url: self.endpoint.url.clone(),
            };
            Ok(reply_stream(
                SseReader::new(response, &self.endpoint),
                parser,
            ))
        })
    }
}

struct ChunkReader {
    pending: VecDeque<StreamEvent>,
    done: bool,
    finish_reason: Option<String>,
    tool_calls: Vec<PartialToolCall>,
    url: String,
}

impl ChunkReader {
    /// The reply is complete: hand out the assembled tool calls, then the finish.
    fn finish(&mut self) {
        self.done = true;
        for (index, call) in std::mem::take(&mut self.tool_calls).into_iter().enumerate() {
            if call.name.is_empty() {
                continue;
            }
            let id = if call.id.is_empty() {
                format!("call_{index}")
            } else {
                call.id
            };
            self.pending
                .push_back(StreamEvent::ToolCall(super::ToolCallRequest {
                    id,
                    name: call.name,
                    arguments: call.arguments,
                }));
        }
        let reason = self.finish_reason.take();
        self.pending.push_back(StreamEvent::Finished(reason));
    }
}

impl ReplyParser for ChunkReader {
    fn take_event(&mut self) -> Option<StreamEvent> {
        self.pending.pop_front()
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn on_data(&mut self, data: &str) -> Result<(), ProviderError> {
        if data.trim() == "[DONE]" {
            self.finish();
            return Ok(());
        }
        parse_chunk(data, self)
    }

    fn on_end(&mut self) -> bool {
        // Some servers end without `[DONE]` once they have said why they stopped.
        if self.finish_reason.is_some() {
            self.finish();
            return true;
        }
        false
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
    /// Reasoning text, as DeepSeek, vLLM and llama.cpp send it.
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallDelta>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: usize,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    arguments: Option<String>,
}

/// A tool call being assembled from streamed pieces.
#[derive(Default)]
struct PartialToolCall {
    id: String,
    name: String,
    arguments: String,
}

impl PartialToolCall {
    fn absorb(&mut self, delta: ToolCallDelta) {
        if let Some(id) = delta.id.filter(|id| !id.is_empty())
            && self.id.is_empty()
        {
            self.id = id;
        }
        let Some(function) = delta.function else {
            return;
        };
        // Some servers (llama.cpp's) repeat the whole name in every chunk: a name that is
        // already complete is not appended again.
        if let Some(name) = function.name.filter(|name| !name.is_empty())
            && name != self.name
        {
            self.name.push_str(&name);
        }
        if let Some(arguments) = function.arguments {
            self.arguments.push_str(&arguments);
        }
    }
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: u64,
}

fn parse_chunk(data: &str, reader: &mut ChunkReader) -> Result<(), ProviderError> {
    let chunk: Chunk =
        serde_json::from_str(data).map_err(|error| ProviderError::MalformedChunk {
            message: error.to_string(),
            excerpt: data.chars().take(200).collect(),
        })?;
    if let Some(error) = chunk.error {
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
    for choice in chunk.choices {
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.reasoning_content.filter(|text| !text.is_empty()) {
                reader.pending.push_back(StreamEvent::ThinkingDelta(text));
            }
            if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
                reader.pending.push_back(StreamEvent::TextDelta(text));
            }
            for call in delta.tool_calls {
                if reader.tool_calls.len() <= call.index {
                    reader
                        .tool_calls
                        .resize_with(call.index + 1, PartialToolCall::default);
                }
                reader.tool_calls[call.index].absorb(call);
            }
        }
        if let Some(reason) = choice.finish_reason {
            reader.finish_reason = Some(reason);
        }
    }
    if let Some(usage) = chunk.usage {
        // `prompt_tokens` counts cached tokens too; they are priced apart.
        let cached = usage
            .prompt_tokens_details
            .map_or(0, |details| details.cached_tokens)
            .min(usage.prompt_tokens);
        reader.pending.push_back(StreamEvent::Usage(TokenUsage {
            input_tokens: usage.prompt_tokens - cached,
            output_tokens: usage.completion_tokens,
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            cost_usd: 0.0,
        }));
    }
    Ok(())
}

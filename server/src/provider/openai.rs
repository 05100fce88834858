//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`, streamed as SSE):
//! OpenAI itself, Ollama, vLLM, llama.cpp's server, LM Studio, OpenRouter.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ChatRequest, ChatRole, EventStream, ModelProvider, ProviderError, StreamEvent, StreamFuture,
    backoff_delay,
};
use crate::config::ProviderConfig;
use crate::session::TokenUsage;

/// At most this much of an error body goes into an error message.
const ERROR_BODY_EXCERPT: usize = 500;

pub struct OpenAiProvider {
    name: String,
    client: reqwest::Client,
    url: String,
    api_key_env: Option<String>,
    timeout: Duration,
    max_retries: u32,
    retry_backoff_ms: u64,
}

impl std::fmt::Debug for OpenAiProvider {
    // By hand, so that nothing key-like could ever be printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    pub fn new(name: &str, config: &ProviderConfig) -> Result<OpenAiProvider, ProviderError> {
        let config_error = |message: String| ProviderError::Config {
            provider: name.to_owned(),
            message,
        };
        let base_url = config
            .base_url
            .as_deref()
            .ok_or_else(|| config_error("`base_url` is not set".to_owned()))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| config_error(format!("cannot build an HTTP client: {error}")))?;
        Ok(OpenAiProvider {
            name: name.to_owned(),
            client,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key_env: config.api_key_env.clone(),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            max_retries: config.max_retries,
            retry_backoff_ms: config.retry_backoff_ms,
        })
    }

    fn api_key(&self) -> Result<Option<String>, ProviderError> {
        let Some(variable) = &self.api_key_env else {
            return Ok(None);
        };
        match std::env::var(variable) {
            Ok(key) if !key.is_empty() => Ok(Some(key)),
            _ => Err(ProviderError::MissingKey {
                provider: self.name.clone(),
                variable: variable.clone(),
            }),
        }
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

    async fn send_once(
        &self,
        body: &Value,
        api_key: Option<&str>,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut builder = self.client.post(&self.url).json(body);
        if let Some(key) = api_key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ProviderError::Config {
                    provider: self.name.clone(),
                    message: "the API key holds characters an HTTP header cannot carry".to_owned(),
                })?;
            value.set_sensitive(true);
            builder = builder.header(reqwest::header::AUTHORIZATION, value);
        }
        let response = tokio::time::timeout(self.timeout, builder.send())
            .await
            .map_err(|_| ProviderError::Timeout {
                url: self.url.clone(),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|error| ProviderError::Connect {
                url: self.url.clone(),
                message: error_chain(&error),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        let text = tokio::time::timeout(self.timeout, response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Err(ProviderError::Http {
            url: self.url.clone(),
            status: status.as_u16(),
            body: text.chars().take(ERROR_BODY_EXCERPT).collect(),
            retry_after_secs: retry_after,
        })
    }

    fn retry_after_hint(error: &ProviderError) -> Option<Duration> {
        match error {
            ProviderError::Http {
                retry_after_secs: Some(seconds),
                ..
            } => Some(Duration::from_secs((*seconds).min(30))),
            _ => None,
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

impl ModelProvider for OpenAiProvider {
    fn stream_chat<'a>(&'a self, request: &'a ChatRequest) -> StreamFuture<'a> {
        Box::pin(async move {
            let api_key = self.api_key()?;
            let body = Self::body(request);
            let mut attempt = 0;
            let response = loop {
                match self.send_once(&body, api_key.as_deref()).await {
                    Ok(response) => break response,
                    Err(error) if error.is_retryable() && attempt < self.max_retries => {
                        let delay = Self::retry_after_hint(&error)
                            .unwrap_or_else(|| backoff_delay(self.retry_backoff_ms, attempt));
                        tracing::warn!(
                            "{} (attempt {} of {}); retrying in {:?}",
                            error,
                            attempt + 1,
                            self.max_retries + 1,
                            delay
                        );
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    Err(error) => return Err(error),
                }
            };
            let sse = response.bytes_stream().eventsource();
            let state = ChunkReader {
                sse: Box::pin(sse),
                idle: Box::pin(tokio::time::sleep(self.timeout)),
                last_chunk: tokio::time::Instant::now(),
                pending: VecDeque::new(),
                done: false,
                saw_data: false,
                finish_reason: None,
                tool_calls: Vec::new(),
                idle_timeout: self.timeout,
                url: self.url.clone(),
            };
            let stream: EventStream = Box::pin(futures_util::stream::unfold(state, next_event));
            Ok(stream)
        })
    }
}

type SseStream = Pin<
    Box<
        dyn Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

struct ChunkReader {
    sse: SseStream,
    /// Fires `idle_timeout` after the last chunk. Reset lazily: a chunk only records when it
    /// came, and the timer is moved when it fires early, so a fast stream costs no timer
    /// update per chunk.
    idle: Pin<Box<tokio::time::Sleep>>,
    last_chunk: tokio::time::Instant,
    pending: VecDeque<StreamEvent>,
    done: bool,
    saw_data: bool,
    finish_reason: Option<String>,
    tool_calls: Vec<PartialToolCall>,
    idle_timeout: Duration,
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

async fn next_event(
    mut reader: ChunkReader,
) -> Option<(Result<StreamEvent, ProviderError>, ChunkReader)> {
    loop {
        if let Some(event) = reader.pending.pop_front() {
            return Some((Ok(event), reader));
        }
        if reader.done {
            return None;
        }
        let next = next_with_idle_timeout(&mut reader).await;
        let outcome = match next {
            Err(()) => Err(ProviderError::Timeout {
                url: reader.url.clone(),
                seconds: reader.idle_timeout.as_secs(),
            }),
            Ok(Some(Ok(event))) => {
                reader.saw_data = true;
                if event.data.trim() == "[DONE]" {
                    reader.finish();
                    continue;
                }
                parse_chunk(&event.data, &mut reader)
            }
            Ok(Some(Err(_))) => Err(ProviderError::StreamCut),
            Ok(None) if reader.finish_reason.is_some() => {
                // Some servers end without `[DONE]` once they have said why they stopped.
                reader.finish();
                continue;
            }
            Ok(None) if !reader.saw_data => Err(ProviderError::EmptyReply),
            Ok(None) => Err(ProviderError::StreamCut),
        };
        if let Err(error) = outcome {
            reader.done = true;
            return Some((Err(error), reader));
        }
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
}

/// The next SSE event, or `Err` when none came for `idle_timeout`.
async fn next_with_idle_timeout(
    reader: &mut ChunkReader,
) -> Result<
    Option<Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>>,
    (),
> {
    loop {
        tokio::select! {
            biased;
            next = reader.sse.next() => {
                reader.last_chunk = tokio::time::Instant::now();
                return Ok(next);
            }
            () = reader.idle.as_mut() => {
                let deadline = reader.last_chunk + reader.idle_timeout;
                if deadline <= tokio::time::Instant::now() {
                    return Err(());
                }
                reader.idle.as_mut().reset(deadline);
            }
        }
    }
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
        reader.pending.push_back(StreamEvent::Usage(TokenUsage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
            cost_usd: 0.0,
        }));
    }
    Ok(())
}

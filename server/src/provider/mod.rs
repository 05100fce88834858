//! Model back ends behind one streaming trait.
//!
//! A provider turns a [`ChatRequest`] into a stream of [`StreamEvent`]s. Retries (429, 5xx,
//! connection errors) happen before the stream is handed out; once text has streamed, a
//! failure ends the turn instead, so nothing is ever said twice.

mod anthropic;
pub mod attachments;
mod http;
mod openai;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;

pub use anthropic::AnthropicProvider;
pub use openai::OpenAiProvider;

use crate::config::{ProviderConfig, ProviderKind};
use crate::vocab::TokenUsage;
pub use crate::vocab::{ChatMessage, ChatRole, ToolCallRequest};

/// A tool the model may call: its name, what it does, and its parameters' JSON schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    pub name: std::borrow::Cow<'static, str>,
    pub description: std::borrow::Cow<'static, str>,
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolDefinition>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    TextDelta(String),
    ThinkingDelta(String),
    /// A complete tool call, sent once its streamed pieces are all in.
    ToolCall(ToolCallRequest),
    Usage(TokenUsage),
    /// The model finished its reply (`finish_reason`, when the server gave one).
    Finished(Option<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the model server at {url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
        /// The server's `Retry-After`, in seconds, when it sent one.
        retry_after_secs: Option<u64>,
    },
    #[error("cannot reach the model server at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the model server at {url} sent nothing for {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("the model server sent a chunk that is not valid JSON ({message}): {excerpt}")]
    MalformedChunk { message: String, excerpt: String },
    #[error("the model's reply stream ended before it finished (connection cut)")]
    StreamCut,
    #[error("the model server returned an empty reply")]
    EmptyReply,
    /// A successful answer that was not a stream of events: usually an error or a whole
    /// reply as JSON from a server that ignored `stream: true`.
    #[error(
        "the model server at {url} answered {status} with {content_type} instead of an event stream: {excerpt}"
    )]
    NotAStream {
        url: String,
        status: u16,
        content_type: String,
        /// The start of the body.
        excerpt: String,
    },
    #[error(
        "environment variable {variable} (named by `api_key_env` of provider {provider:?}) is not set"
    )]
    MissingKey { provider: String, variable: String },
    #[error("provider {provider:?}: {message}")]
    Config { provider: String, message: String },
}

impl ProviderError {
    /// Whether trying the same request again may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Http { status, .. } => *status == 429 || *status >= 500,
            ProviderError::Connect { .. } | ProviderError::Timeout { .. } => true,
            _ => false,
        }
    }
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;
pub type StreamFuture<'a> =
    Pin<Box<dyn Future<Output = Result<EventStream, ProviderError>> + Send + 'a>>;

/// A model back end.
pub trait ModelProvider: Send + Sync {
    /// Starts a streamed reply; retries transient failures before returning the stream.
    fn stream_chat<'a>(&'a self, request: &'a ChatRequest) -> StreamFuture<'a>;
}

/// Builds the provider a session's configuration names.
pub fn build_provider(
    name: &str,
    config: &ProviderConfig,
) -> Result<Box<dyn ModelProvider>, ProviderError> {
    match config.kind {
        ProviderKind::Openai => Ok(Box::new(OpenAiProvider::new(name, config)?)),
        ProviderKind::Anthropic => Ok(Box::new(AnthropicProvider::new(name, config)?)),
        ProviderKind::Acp => Err(ProviderError::Config {
            provider: name.to_owned(),
            message: "it is an ACP agent, which runs whole sessions and does not answer single model requests; use a kind = \"openai\" or \"anthropic\" provider here".to_owned(),
        }),
    }
}

/// The delay before retry number `attempt` (0-based): doubling from `base`, capped at 30 s.
pub fn backoff_delay(base_ms: u64, attempt: u32) -> Duration {
    let factor = 1u64 << attempt.min(16);
    Duration::from_millis(base_ms.saturating_mul(factor).min(30_000))
}

/// One model call, its reply read whole: the text (thinking and tool calls left out) and
/// what it used.
pub async fn complete_text(
    provider: &dyn ModelProvider,
    request: &ChatRequest,
) -> Result<(String, TokenUsage), ProviderError> {
    let mut stream = provider.stream_chat(request).await?;
    let mut text = String::new();
    let mut usage = TokenUsage::default();
    while let Some(event) = futures_util::StreamExt::next(&mut stream).await {
        match event? {
            StreamEvent::TextDelta(delta) => text.push_str(&delta),
            StreamEvent::Usage(more) => usage.add(&more),
            StreamEvent::Finished(_) => break,
            StreamEvent::ThinkingDelta(_) | StreamEvent::ToolCall(_) => {}
        }
    }
    Ok((text, usage))
}

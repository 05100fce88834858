//! What every HTTP provider shares: the endpoint (key from the environment, retries with
//! backoff before a reply starts) and a reader of server-sent events with an idle timeout.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::{EventStream, ProviderError, StreamEvent, backoff_delay};
use crate::config::ProviderConfig;

/// At most this much of an error body goes into an error message.
const ERROR_BODY_EXCERPT: usize = 500;

/// At most this many characters of a body that is not an event stream go into the error.
const NOT_A_STREAM_EXCERPT: usize = 300;

/// The bytes kept of a body's start to show when it turns out not to be an event stream:
/// enough for [`NOT_A_STREAM_EXCERPT`] characters of UTF-8.
const KEPT_BODY_BYTES: usize = NOT_A_STREAM_EXCERPT * 4;

/// One URL of one provider.
pub struct Endpoint {
    pub provider: String,
    client: reqwest::Client,
    pub url: String,
    api_key_env: Option<String>,
    /// The key an editor passed along, before the environment's.
    api_key_value: Option<crate::config::SecretValue>,
    pub timeout: Duration,
    max_retries: u32,
    retry_backoff_ms: u64,
}

impl std::fmt::Debug for Endpoint {
    // By hand, so that nothing key-like could ever be printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("provider", &self.provider)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// `path` is appended to the configured `base_url`.
    pub fn new(name: &str, config: &ProviderConfig, path: &str) -> Result<Endpoint, ProviderError> {
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
        Ok(Endpoint {
            provider: name.to_owned(),
            client,
            url: format!("{}{path}", base_url.trim_end_matches('/')),
            api_key_env: config.api_key_env.clone(),
            api_key_value: config.api_key_value.clone(),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            max_retries: config.max_retries,
            retry_backoff_ms: config.retry_backoff_ms,
        })
    }

    /// The key, from the variable `api_key_env` names; `None` when no variable is named.
    pub fn api_key(&self) -> Result<Option<String>, ProviderError> {
        let Some(variable) = &self.api_key_env else {
            return Ok(None);
        };
        if let Some(value) = &self.api_key_value {
            return Ok(Some(value.0.clone()));
        }
        match std::env::var(variable) {
            Ok(key) if !key.is_empty() => Ok(Some(key)),
            _ => Err(ProviderError::MissingKey {
                provider: self.provider.clone(),
                variable: variable.clone(),
            }),
        }
    }

    /// A header carrying a secret: marked sensitive, so it is never printed.
    pub fn secret_header(&self, value: &str) -> Result<HeaderValue, ProviderError> {
        let mut header = HeaderValue::from_str(value).map_err(|_| ProviderError::Config {
            provider: self.provider.clone(),
            message: "the API key holds characters an HTTP header cannot carry".to_owned(),
        })?;
        header.set_sensitive(true);
        Ok(header)
    }

    /// POSTs `body`, retrying 429, 5xx, connection errors and timeouts with doubling backoff
    /// (or the server's `Retry-After`), and returns the first successful response.
    pub async fn post(
        &self,
        body: &Value,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<reqwest::Response, ProviderError> {
        let headers: HeaderMap = headers.iter().cloned().collect();
        let mut attempt = 0;
        loop {
            match self.post_once(body, headers.clone()).await {
                Ok(response) => return Ok(response),
                Err(error) if error.is_retryable() && attempt < self.max_retries => {
                    let delay = retry_after_hint(&error)
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
        }
    }

    async fn post_once(
        &self,
        body: &Value,
        headers: HeaderMap,
    ) -> Result<reqwest::Response, ProviderError> {
        let builder = self.client.post(&self.url).headers(headers).json(body);
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

/// Server-sent events of one response, with an idle timeout between them.
pub struct SseReader {
    sse: SseStream,
    /// Fires `idle_timeout` after the last event. Reset lazily: an event only records when it
    /// came, and the timer is moved when it fires early, so a fast stream costs no timer
    /// update per event.
    idle: Pin<Box<tokio::time::Sleep>>,
    last_event: tokio::time::Instant,
    idle_timeout: Duration,
    url: String,
    status: u16,
    /// The response's `Content-Type`, if it had one.
    content_type: Option<String>,
    /// The body's first [`KEPT_BODY_BYTES`] bytes, to say what came when no event did.
    body_start: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl SseReader {
    pub fn new(response: reqwest::Response, endpoint: &Endpoint) -> SseReader {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let status = response.status().as_u16();
        let body_start = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = body_start.clone();
        let bytes = response.bytes_stream().inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                let mut kept = kept
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let room = KEPT_BODY_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
        });
        SseReader {
            sse: Box::pin(bytes.eventsource()),
            idle: Box::pin(tokio::time::sleep(endpoint.timeout)),
            last_event: tokio::time::Instant::now(),
            idle_timeout: endpoint.timeout,
            url: endpoint.url.clone(),
            status,
            content_type,
            body_start,
        }
    }

    /// The error for a body that ended without a single event: empty, or something other
    /// than an event stream, in which case the error shows what it was.
    fn no_events_error(&self) -> ProviderError {
        let body = self
            .body_start
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let is_event_stream = self.content_type.as_deref().is_some_and(|content_type| {
            content_type.split(';').next().is_some_and(|media_type| {
                media_type.trim().eq_ignore_ascii_case("text/event-stream")
            })
        });
        if is_event_stream || (body.is_empty() && self.content_type.is_none()) {
            return ProviderError::EmptyReply;
        }
        let text = String::from_utf8_lossy(&body);
        let text = text.trim();
        let mut excerpt: String = text.chars().take(NOT_A_STREAM_EXCERPT).collect();
        if excerpt.len() < text.len() {
            excerpt.push('…');
        }
        if excerpt.is_empty() {
            excerpt = "(an empty body)".to_owned();
        }
        ProviderError::NotAStream {
            url: self.url.clone(),
            status: self.status,
            content_type: self
                .content_type
                .clone()
                .unwrap_or_else(|| "no content type".to_owned()),
            excerpt,
        }
    }

    /// The next event; `None` at the end of the body; an error when the connection broke or
    /// nothing came for the idle timeout.
    pub async fn next(&mut self) -> Option<Result<eventsource_stream::Event, ProviderError>> {
        loop {
            tokio::select! {
                biased;
                next = self.sse.next() => {
                    self.last_event = tokio::time::Instant::now();
                    return next.map(|event| event.map_err(|_| ProviderError::StreamCut));
                }
                () = self.idle.as_mut() => {
                    let deadline = self.last_event + self.idle_timeout;
                    if deadline <= tokio::time::Instant::now() {
                        return Some(Err(ProviderError::Timeout {
                            url: self.url.clone(),
                            seconds: self.idle_timeout.as_secs(),
                        }));
                    }
                    self.idle.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// A provider's reading of one streamed reply, fed one SSE event's data at a time.
pub trait ReplyParser: Send + 'static {
    /// The next event it has ready.
    fn take_event(&mut self) -> Option<StreamEvent>;
    /// Whether the reply is complete (once its ready events are taken).
    fn is_done(&self) -> bool;
    fn on_data(&mut self, data: &str) -> Result<(), ProviderError>;
    /// The body ended: whether that completes the reply (otherwise the stream was cut).
    fn on_end(&mut self) -> bool;
}

struct ReplyState<P> {
    sse: SseReader,
    parser: P,
    saw_data: bool,
    failed: bool,
}

/// The stream of a reply: the parser's events, then the end; an empty body or one that
/// stops before the parser is done is an error.
pub fn reply_stream<P: ReplyParser>(sse: SseReader, parser: P) -> EventStream {
    let state = ReplyState {
        sse,
        parser,
        saw_data: false,
        failed: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(event) = state.parser.take_event() {
                    return Some((Ok(event), state));
                }
                if state.failed || state.parser.is_done() {
                    return None;
                }
                let outcome = match state.sse.next().await {
                    Some(Err(error)) => Err(error),
                    Some(Ok(event)) => {
                        state.saw_data = true;
                        state.parser.on_data(&event.data)
                    }
                    None if state.parser.on_end() => continue,
                    None if !state.saw_data => Err(state.sse.no_events_error()),
                    None => Err(ProviderError::StreamCut),
                };
                if let Err(error) = outcome {
                    state.failed = true;
                    return Some((Err(error), state));
                }
            }
        },
    ))
}

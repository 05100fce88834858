//! The router seam: what a router takes never waits in tower's four slots, and its answers
//! go out through the one writer, even after the input ends.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tower_lsp_server::jsonrpc::{self, Request};
use tower_lsp_server::ls_types::{InitializeParams, InitializeResult};
use tower_lsp_server::{LanguageServer, LspService, Server};

use super::*;

struct Minimal;

impl LanguageServer for Minimal {
    async fn initialize(&self, _: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        Ok(InitializeResult::default())
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        Ok(())
    }
}

/// Takes `slow` requests (answered once `released` is true) and `quick` ones (at once), and
/// `note` notifications, which it records in arrival order.
struct Slow {
    released: watch::Receiver<bool>,
    notes: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Router for Slow {
    fn route(&mut self, message: Request, replies: &Replies) -> Route {
        let (method, id, params) = message.into_parts();
        match (method.as_ref(), id) {
            ("slow", Some(id)) => {
                let mut released = self.released.clone();
                replies.answer(id, async move {
                    let _ = released.wait_for(|released| *released).await;
                    Ok(json!("slow"))
                });
                Route::Taken
            }
            ("quick", Some(id)) => {
                replies.answer(id, async { Ok(json!("quick")) });
                Route::Taken
            }
            ("note", None) => {
                self.notes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(params.unwrap_or_default());
                Route::Taken
            }
            _ => Route::Tower,
        }
    }
}

fn request(id: i64, method: &str) -> Bytes {
    let body =
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"capabilities": {}}});
    framed(&body)
}

fn framed(body: &Value) -> Bytes {
    let body = body.to_string();
    Bytes::from(format!("Content-Length: {}\r\n\r\n{body}", body.len()))
}

/// Reads `count` frames from `reader`, failing after 10 s.
async fn replies(reader: &mut DuplexStream, framer: &mut Framer, count: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    while frames.len() < count {
        match framer.next() {
            Some(Framed::Frame(body)) => frames.push(serde_json::from_slice(&body).expect("JSON")),
            Some(Framed::Skipped(skip)) => panic!("garbage in the output: {skip:?}"),
            None => {
                let read = tokio::time::timeout(
                    Duration::from_secs(10),
                    reader.read_buf(framer.read_buffer()),
                )
                .await
                .expect("output within 10 s")
                .expect("read");
                assert_ne!(read, 0, "the output ended after {frames:?}");
            }
        }
    }
    frames
}

#[tokio::test]
async fn taken_requests_wait_without_holding_tower_and_answer_after_the_input_ends() {
    let (service, socket) = LspService::new(|_| Minimal);
    let (release, released) = watch::channel(false);
    let notes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let router = Slow {
        released,
        notes: notes.clone(),
    };
    let (sender, receiver) = mpsc::channel(64);
    let (mut client_end, server_end) = tokio::io::duplex(1 << 20);
    let serving = tokio::spawn(async move {
        serve(receiver, server_end, router, |input, output| {
            Server::new(input, output, socket).serve(service)
        })
        .await;
    });
    let mut framer = Framer::default();

    // Six slow ones, more than tower's four slots; then tower's own and a quick one.
    for id in 1..=6 {
        sender.send(request(id, "slow")).await.expect("queued");
    }
    for (index, text) in ["one", "two", "three"].iter().enumerate() {
        let note =
            json!({"jsonrpc": "2.0", "method": "note", "params": {"n": index, "text": text}});
        sender.send(framed(&note)).await.expect("queued");
    }
    sender.send(request(7, "initialize")).await.expect("queued");
    sender.send(request(8, "quick")).await.expect("queued");
    let mut answered: Vec<Value> = replies(&mut client_end, &mut framer, 2)
        .await
        .iter()
        .map(|reply| reply["id"].clone())
        .collect();
    answered.sort_by_key(|id| id.as_i64());
    assert_eq!(answered, [json!(7), json!(8)], "served past the stuck ones");
    let texts: Vec<Value> = notes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|note| note["text"].clone())
        .collect();
    assert_eq!(texts, [json!("one"), json!("two"), json!("three")]);

    // The client stops writing; the slow ones are still answered, then the server ends.
    drop(sender);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!serving.is_finished(), "it waits for the answers it owes");
    release.send_replace(true);
    let mut slow: Vec<i64> = replies(&mut client_end, &mut framer, 6)
        .await
        .iter()
        .map(|reply| {
            assert_eq!(reply["result"], "slow", "{reply}");
            reply["id"].as_i64().expect("an id")
        })
        .collect();
    slow.sort_unstable();
    assert_eq!(slow, [1, 2, 3, 4, 5, 6]);
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the server ends with its input")
        .expect("no panic");
}

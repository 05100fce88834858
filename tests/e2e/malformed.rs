//! Malformed and mis-framed input on stdin: each message gets the JSON-RPC error the spec
//! names (or is skipped when no reply is allowed), and the same server process goes on.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv};

/// What one malformed message must get back.
enum Expect {
    /// One error response with this code and id.
    Reply { code: i64, id: Value },
    /// No reply at all (a notification, a response, or bytes that are no message).
    Nothing,
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn with_header(header: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

fn list_request(id: i64) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tether/session/list", "params": {}})
        .to_string()
        .into_bytes()
}

fn parse_error() -> Expect {
    Expect::Reply {
        code: -32700,
        id: Value::Null,
    }
}

fn invalid_request(id: Value) -> Expect {
    Expect::Reply { code: -32600, id }
}

/// Every class of malformed message the issue lists, and a few neighbours.
fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let request = list_request(1100);
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1003,"method":"tether/session/list","params":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let mut invalid_utf8 =
        br#"{"jsonrpc":"2.0","id":1002,"method":"tether/session/list","params":{"query":""#
            .to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe\"}}");
    vec![
        ("one byte of JSON", framed(b"{"), parse_error()),
        ("invalid UTF-8", framed(&invalid_utf8), parse_error()),
        (
            "a trailing comma",
            framed(br#"{"jsonrpc":"2.0","id":1004,"method":"tether/session/list",}"#),
            parse_error(),
        ),
        ("deep nesting", framed(deep.as_bytes()), parse_error()),
        ("an empty body", framed(b""), parse_error()),
        (
            "an id that is an object",
            framed(br#"{"jsonrpc":"2.0","id":{"n":1},"method":"tether/session/list"}"#),
            invalid_request(Value::Null),
        ),
        (
            "an id that is a float",
            framed(br#"{"jsonrpc":"2.0","id":1.5,"method":"tether/session/list"}"#),
            invalid_request(Value::Null),
        ),
        (
            "an id that is a bool",
            framed(br#"{"jsonrpc":"2.0","id":true,"method":"tether/session/list"}"#),
            invalid_request(Value::Null),
        ),
        (
            "an id beyond i64",
            framed(br#"{"jsonrpc":"2.0","id":9223372036854775808,"method":"tether/session/list"}"#),
            invalid_request(Value::Null),
        ),
        (
            "a wrong jsonrpc",
            framed(br#"{"jsonrpc":"1.0","id":1005,"method":"tether/session/list"}"#),
            invalid_request(json!(1005)),
        ),
        (
            "a missing jsonrpc",
            framed(br#"{"id":"case-6","method":"tether/session/list"}"#),
            invalid_request(json!("case-6")),
        ),
        (
            "a method that is not a string",
            framed(br#"{"jsonrpc":"2.0","id":1007,"method":42}"#),
            invalid_request(json!(1007)),
        ),
        (
            "params that are a string",
            framed(br#"{"jsonrpc":"2.0","id":1008,"method":"tether/session/list","params":"x"}"#),
            invalid_request(json!(1008)),
        ),
        (
            "a batch",
            framed(format!("[{}]", String::from_utf8_lossy(&list_request(1009))).as_bytes()),
            invalid_request(Value::Null),
        ),
        (
            "a bare string",
            framed(br#""hello""#),
            invalid_request(Value::Null),
        ),
        ("a bare null", framed(b"null"), invalid_request(Value::Null)),
        (
            "a malformed notification",
            framed(br#"{"jsonrpc":"1.0","method":"$/setTrace","params":{"value":"off"}}"#),
            Expect::Nothing,
        ),
        (
            "a response with an object id",
            framed(br#"{"jsonrpc":"2.0","id":{"n":1},"result":null}"#),
            Expect::Nothing,
        ),
        (
            "a Content-Length that is short",
            with_header("Content-Length: 10\r\n\r\n", &request),
            parse_error(),
        ),
        (
            "a negative Content-Length",
            with_header("Content-Length: -5\r\n\r\n", &request),
            Expect::Nothing,
        ),
        (
            "a Content-Length that is not a number",
            with_header("Content-Length: ten\r\n\r\n", &request),
            Expect::Nothing,
        ),
        (
            "a Content-Length over 2^64",
            with_header("Content-Length: 18446744073709551616\r\n\r\n", &request),
            Expect::Nothing,
        ),
        (
            "a missing Content-Length",
            with_header(
                "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
                &request,
            ),
            Expect::Nothing,
        ),
        (
            "a garbage header line",
            with_header(
                &format!(
                    "Content-Length: {}\r\nthis is not a header\r\n\r\n",
                    request.len()
                ),
                &request,
            ),
            Expect::Nothing,
        ),
        (
            "garbage before a header",
            b"\x00\xffnot a frame at all\r\n\r\n".to_vec(),
            Expect::Nothing,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_message_gets_its_error_and_the_server_goes_on() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let mut client = env.server(&model).await;

    for (name, bytes, expect) in cases() {
        eprintln!("case: {name}");
        let before = client.unmatched_responses().len();
        client.send_raw(&bytes).await;
        let replies = match expect {
            Expect::Reply { code, id } => {
                let reply = client.wait_for_unmatched(before + 1).await;
                assert_eq!(reply["error"]["code"], code, "{name}: {reply}");
                assert_eq!(reply["id"], id, "{name}: {reply}");
                assert_eq!(reply["jsonrpc"], "2.0", "{name}: {reply}");
                1
            }
            Expect::Nothing => 0,
        };
        let listed = client.call("tether/session/list", json!({})).await;
        assert!(listed["sessions"].is_array(), "{name}: {listed}");
        // Errors are written before the replies to later messages, so any stray reply to
        // this case would be here by now.
        let unmatched = client.unmatched_responses();
        assert_eq!(
            unmatched.len(),
            before + replies,
            "{name}: unexpected replies {:#?}",
            &unmatched[before..]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dollar_request_gets_method_not_found() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let mut client = env.server(&model).await;

    let error = client.call_err("$/tether/unknown", json!({})).await;
    assert_eq!(error["code"], -32601, "{error}");
    let error = client.call_err("$/setTrace", json!({"value": "off"})).await;
    assert_eq!(error["code"], -32601, "{error}");

    // The same names as notifications pass through to the server, which takes them quietly.
    client.notify("$/setTrace", json!({"value": "off"})).await;
    client.notify("$/cancelRequest", json!({"id": 12345})).await;
    client.notify("$/tether/unknown", json!({})).await;
    let listed = client.call("tether/session/list", json!({})).await;
    assert!(listed["sessions"].is_array(), "{listed}");
    assert_eq!(client.unmatched_responses(), Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_is_refused_at_once() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let mut client = env.server(&model).await;

    client.send_raw(b"Content-Length: 100000000\r\n\r\n").await;
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        client.request("tether/session/list", json!({})),
    )
    .await;
    match answered {
        Ok(Ok(listed)) => assert!(listed["sessions"].is_array(), "{listed}"),
        Ok(Err(error)) => panic!("the request after the huge header failed: {error}"),
        Err(_) => panic!(
            "the request after a 100 MB Content-Length was not answered within 5 s: the \
             server waits for the body"
        ),
    }
    assert_eq!(client.unmatched_responses(), Vec::<Value>::new());
}

/// A tiny xorshift PRNG: the same seed gives the same messages on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Harmless messages to mutate: none of them (or a few flipped bytes of them) changes state.
fn fuzz_base(id: i64) -> Vec<Value> {
    vec![
        json!({"jsonrpc": "2.0", "id": id, "method": "tether/session/list", "params": {}}),
        json!({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": id}}),
        json!({"jsonrpc": "2.0", "method": "$/setTrace", "params": {"value": "off"}}),
        json!({"jsonrpc": "2.0", "id": id, "result": null}),
        json!({"jsonrpc": "2.0", "id": id, "method": "textDocument/hover",
               "params": {"textDocument": {"uri": "file:///nowhere.rs"},
                          "position": {"line": 0, "character": 0}}}),
    ]
}

/// One malformed, mis-framed or (sometimes) valid message.
fn fuzz_message(rng: &mut XorShift, id: i64) -> Vec<u8> {
    let base = fuzz_base(id);
    let body = rng.pick(&base).to_string().into_bytes();
    match rng.below(12) {
        0 => framed(&body),
        // Cut short, with a Content-Length that matches the cut.
        1 => framed(&body[..rng.below(body.len())]),
        // Cut short under the full length: the frame eats into the next message.
        2 => {
            let cut = body.len() - 1 - rng.below(body.len().min(64));
            with_header(
                &format!("Content-Length: {}\r\n\r\n", body.len()),
                &body[..cut],
            )
        }
        // A length a little off either way.
        3 => {
            let delta = 1 + rng.below(64);
            let length = if rng.below(2) == 0 {
                body.len() + delta
            } else {
                body.len().saturating_sub(delta)
            };
            with_header(&format!("Content-Length: {length}\r\n\r\n"), &body)
        }
        // Flipped bytes.
        4 => {
            let mut body = body;
            for _ in 0..=rng.below(3) {
                let at = rng.below(body.len());
                body[at] = rng.next() as u8;
            }
            framed(&body)
        }
        5 => {
            let length = body.len();
            let header = match rng.below(7) {
                0 => format!("Content-Lenght: {length}\r\n\r\n"),
                1 => format!("Content-Length: {length}\r\nX garbage line\r\n\r\n"),
                2 => format!("}}]junk\r\nContent-Length: {length}\r\n\r\n"),
                3 => format!("Content-Length: {length}\r\n"),
                4 => format!("content-length: {length}\r\n\r\n"),
                5 => format!("Content-Length: {length}\r\nContent-Length: {length}\r\n\r\n"),
                _ => format!("garbage{}Content-Length: {length}\r\n\r\n", rng.next()),
            };
            with_header(&header, &body)
        }
        // Lengths that must be refused without waiting for their bytes.
        6 => {
            let lengths = [
                "67108865",
                "100000000",
                "18446744073709551615",
                "99999999999999999999999",
                "-1",
                "0x10",
                "",
                "1 2",
            ];
            with_header(
                &format!("Content-Length: {}\r\n\r\n", rng.pick(&lengths)),
                &body,
            )
        }
        // Nested arrays, balanced or not, under and over the depth limit.
        7 => {
            let depth = 1 + rng.below(400);
            let closing = if rng.below(4) == 0 { depth / 2 } else { depth };
            framed(
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tether/session/list","params":{}{}}}"#,
                    "[".repeat(depth),
                    "]".repeat(closing)
                )
                .as_bytes(),
            )
        }
        // Odd ids.
        8 => {
            let ids = [
                "{}",
                r#"{"a":1}"#,
                "1.5",
                "true",
                "false",
                "1e3",
                "18446744073709551616",
                "-9223372036854775809",
                "[1]",
                r#""text""#,
                "null",
            ];
            framed(
                format!(
                    r#"{{"jsonrpc":"2.0","id":{},"method":"tether/session/list"}}"#,
                    rng.pick(&ids)
                )
                .as_bytes(),
            )
        }
        // Batches.
        9 => {
            let items: Vec<String> = (0..=rng.below(3))
                .map(|_| rng.pick(&base).to_string())
                .collect();
            framed(format!("[{}]", items.join(",")).as_bytes())
        }
        // Random bytes, unframed.
        10 => (0..=rng.below(200)).map(|_| rng.next() as u8).collect(),
        // Bare values and invalid envelopes.
        _ => {
            let bodies = [
                "null".to_owned(),
                r#""text""#.to_owned(),
                "42".to_owned(),
                "true".to_owned(),
                "{}".to_owned(),
                format!(r#"{{"jsonrpc":"1.0","id":{id},"method":"tether/session/list"}}"#),
                format!(r#"{{"id":{id},"method":"tether/session/list"}}"#),
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":7}}"#),
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tether/session/list","params":1}}"#
                ),
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"$/tether/fuzz"}}"#),
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":1,"error":{{"code":1,"message":"x"}}}}"#
                ),
            ];
            framed(rng.pick(&bodies).as_bytes())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_malformed_messages_leave_a_server_that_runs_a_session() {
    const MESSAGES: i64 = 4_000;
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["ok"]));
    let mut client = env.server(&model).await;

    let mut rng = XorShift(0x7e7e_2024_0bad_f00d);
    let mut stream = Vec::new();
    for index in 0..MESSAGES {
        // Ids far above the client's own, so a late reply can never answer one of its requests.
        stream.extend(fuzz_message(&mut rng, 7_000_000 + index));
    }
    // Written in uneven pieces, so messages arrive split at every kind of place.
    let mut rest = stream.as_slice();
    while !rest.is_empty() {
        let (piece, after) = rest.split_at((1 + rng.below(8192)).min(rest.len()));
        client.send_raw(piece).await;
        rest = after;
    }
    // The last message may have promised more bytes than it sent (at most a few hundred) or
    // left a partial header: 8 KiB of filler completes any such body and overflows any header.
    client.send_raw(&[b'x'; 8192]).await;

    let listed = client.call("tether/session/list", json!({})).await;
    assert!(listed["sessions"].is_array(), "{listed}");
    let replies = client.unmatched_responses();
    assert!(
        replies.len() > 100,
        "the malformed requests got {} replies",
        replies.len()
    );
    for reply in &replies {
        if reply["error"]["code"] == -32700 {
            assert_eq!(
                reply["id"],
                Value::Null,
                "a parse error names no id: {reply}"
            );
        }
    }

    // The same process still runs a session to its end.
    let (_, id) = client.create(json!({"prompt": "after the storm"})).await;
    client.wait_for_status(&id, "waiting").await;
    assert!(
        !client.stderr().contains("panicked"),
        "stderr: {}",
        client.stderr()
    );
    let status = client.shutdown().await;
    assert!(status.success(), "{status}");
}

/// The harness itself: a frame the client writes raw is the same as one it writes itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_valid_frame_is_answered_like_any_request() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let client: LspClient = env.server(&model).await;
    client.send_raw(&framed(&list_request(4242))).await;
    let reply = client.wait_for_unmatched(1).await;
    assert_eq!(reply["id"], 4242, "{reply}");
    assert!(reply["result"]["sessions"].is_array(), "{reply}");
}

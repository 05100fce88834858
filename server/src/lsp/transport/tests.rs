use std::time::Duration;

use serde_json::{Value, json};
use tower_lsp_server::jsonrpc::{self, ErrorCode, Id};
use tower_lsp_server::ls_types::{InitializeParams, InitializeResult};
use tower_lsp_server::{LanguageServer, LspService, Server};

use super::message::{Verdict, check_message};
use super::*;

const VALID: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tether/session/list","params":{}}"#;

fn frame(body: &str) -> String {
    format!("Content-Length: {}\r\n\r\n{body}", body.len())
}

/// What the framer makes of `input` fed `chunk` bytes at a time, then ended: `frame:<body>`
/// or `skip:<bytes>:<reason>` per event.
fn framed(input: &[u8], chunk: usize) -> Vec<String> {
    let mut framer = Framer::default();
    let mut seen = Vec::new();
    for piece in input.chunks(chunk) {
        framer.extend(piece);
        while let Some(event) = framer.next() {
            seen.push(describe(event));
        }
    }
    if let Some(skip) = framer.finish() {
        seen.push(describe(Framed::Skipped(skip)));
    }
    seen
}

fn describe(event: Framed) -> String {
    match event {
        Framed::Frame(body) => format!("frame:{}", String::from_utf8_lossy(&body)),
        Framed::Skipped(skip) => format!("skip:{}:{}", skip.bytes, skip.reason),
    }
}

/// `framed` in one piece, checked to give the same at every chunk size (byte at a time too).
fn framed_any_way(input: &[u8]) -> Vec<String> {
    let whole = framed(input, input.len().max(1));
    for chunk in 1..input.len() {
        assert_eq!(framed(input, chunk), whole, "chunks of {chunk}");
    }
    whole
}

#[test]
fn frames_messages_however_the_input_is_split() {
    let input = [
        frame(VALID),
        "content-length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}"
            .to_owned(),
        "Content-Type: x\r\nContent-Length:   3\t\r\n\r\n[1]".to_owned(),
        "Content-Length: 4\n\nnull".to_owned(),
        frame(""),
    ]
    .concat();
    assert_eq!(
        framed_any_way(input.as_bytes()),
        [
            format!("frame:{VALID}"),
            "frame:{}".to_owned(),
            "frame:[1]".to_owned(),
            "frame:null".to_owned(),
            "frame:".to_owned(),
        ]
    );
}

#[test]
fn a_short_content_length_leaves_garbage_skipped_up_to_the_next_frame() {
    let input = format!("Content-Length: 1\r\n\r\n{VALID}{}", frame(VALID));
    assert_eq!(
        framed_any_way(input.as_bytes()),
        [
            "frame:{".to_owned(),
            format!(
                "skip:{}:`{}` is no header name",
                VALID.len() - 1,
                escape(&VALID.as_bytes()[1..10])
            ),
            format!("frame:{VALID}"),
        ]
    );
}

#[test]
fn bad_headers_are_skipped_up_to_the_next_frame() {
    let cases = [
        (
            "Content-Length: -5\r\n\r\n",
            "Content-Length `-5` is not a decimal length",
        ),
        (
            "Content-Length: ten\r\n\r\n",
            "Content-Length `ten` is not a decimal length",
        ),
        (
            "Content-Length: \r\n\r\n",
            "Content-Length `` is not a decimal length",
        ),
        (
            "Content-Length: 1 2\r\n\r\n",
            "Content-Length `1 2` is not a decimal length",
        ),
        (
            "Content-Length: 18446744073709551616\r\n\r\n",
            "is over 2^64",
        ),
        (
            "Content-Length: 67108865\r\n\r\n",
            "over the limit of 67108864 bytes",
        ),
        (
            "Content-Type: text/plain\r\n\r\n",
            "the header has no Content-Length",
        ),
        ("\r\n", "the header has no Content-Length"),
        (
            "Content-Length: 2\r\nContent-Length: 2\r\n\r\n",
            "two Content-Lengths",
        ),
        (
            "Content-Length: 2\r\nnot a header\r\n\r\n",
            "`not a header` is no header line",
        ),
        (
            "Content-Length : 2\r\n\r\n",
            "`Content-Length ` is no header name",
        ),
        ("}garbage", "no header name"),
        ("\u{0}\u{ff}noise\r\n", "is no header line"),
    ];
    for (header, reason) in cases {
        let input = format!("{header}{VALID}{}", frame(VALID));
        let seen = framed_any_way(input.as_bytes());
        assert_eq!(seen.len(), 2, "{header:?}: {seen:?}");
        assert!(seen[0].starts_with("skip:"), "{header:?}: {seen:?}");
        assert!(seen[0].contains(reason), "{header:?}: {seen:?}");
        assert_eq!(seen[1], format!("frame:{VALID}"), "{header:?}");
    }
}

#[test]
fn a_huge_content_length_is_refused_without_waiting_for_its_bytes() {
    let input = format!("Content-Length: 100000000\r\n\r\n{}", frame(VALID));
    assert_eq!(
        framed_any_way(input.as_bytes()),
        [
            "skip:29:Content-Length 100000000 is over the limit of 67108864 bytes".to_owned(),
            format!("frame:{VALID}"),
        ]
    );
    // The limit itself is allowed: the framer waits for the body.
    let mut framer = Framer::default();
    framer.extend(format!("Content-Length: {MAX_BODY}\r\n\r\n").as_bytes());
    assert_eq!(framer.next(), None);
    assert!(matches!(framer.state, State::Body(MAX_BODY)));
}

#[test]
fn a_header_that_never_ends_is_garbage_once_it_passes_4_kib() {
    let mut framer = Framer::default();
    framer.extend(b"Content-Length: 5\r\n");
    for _ in 0..1000 {
        framer.extend(b"X-Filler: yes\r\n");
        // The skip is counted now and reported where the next frame starts.
        assert_eq!(framer.next(), None);
        assert!(framer.buffer.len() <= MAX_HEADER_BLOCK + 64);
    }
    assert!(matches!(framer.state, State::Resync(_)));
    framer.extend(frame(VALID).as_bytes());
    let seen: Vec<_> = std::iter::from_fn(|| framer.next()).map(describe).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].contains("the header is longer than 4096 bytes"),
        "{seen:?}"
    );
    assert_eq!(seen[1], format!("frame:{VALID}"));
}

#[test]
fn garbage_is_thrown_away_as_it_comes() {
    let mut framer = Framer::default();
    let garbage = vec![b'x'; 4096];
    for _ in 0..256 {
        framer.extend(&garbage);
        assert_eq!(framer.next(), None);
        assert!(framer.buffer.len() <= MAX_HEADER_BLOCK + garbage.len());
    }
    framer.extend(frame(VALID).as_bytes());
    let Some(Framed::Skipped(skip)) = framer.next() else {
        panic!("expected a skip");
    };
    assert_eq!(skip.bytes, 256 * 4096);
    assert_eq!(skip.preview, format!("{}…", "x".repeat(PREVIEW)));
    assert_eq!(framer.next().map(describe), Some(format!("frame:{VALID}")));
}

#[test]
fn a_frame_start_split_across_reads_after_garbage_is_found() {
    let mut framer = Framer::default();
    let mut seen = Vec::new();
    for piece in ["}}}\r\n", "co", "NTENT-len", "gth: 2\r\n", "\r\n{}"] {
        framer.extend(piece.as_bytes());
        seen.extend(std::iter::from_fn(|| framer.next()).map(describe));
    }
    assert_eq!(seen, ["skip:5:`}}}` is no header line", "frame:{}"]);
}

#[test]
fn the_end_of_input_reports_what_was_left() {
    assert_eq!(framed(b"", 1), Vec::<String>::new());
    assert_eq!(
        framed(b"Content-Len", 4),
        ["skip:11:the input ended inside a header"]
    );
    assert_eq!(
        framed(b"Content-Length: 10\r\n\r\n{\"a\"", 4),
        ["skip:4:the input ended 4 bytes into a body of 10"]
    );
    assert_eq!(
        framed(b"Content-Length: x\r\n\r\nabc", 4),
        ["skip:24:Content-Length `x` is not a decimal length"]
    );
}

/// The code and id of a reply verdict; panics on any other.
fn replied(body: &str) -> (i64, Value) {
    match check_message(body.as_bytes()) {
        Verdict::Reply(response, _) => {
            let reply = serde_json::to_value(&response).expect("a response serializes");
            assert_eq!(reply["jsonrpc"], "2.0");
            let code = reply["error"]["code"].as_i64().expect("an error code");
            (code, reply["id"].clone())
        }
        other => panic!("{body}: expected a reply, got {other:?}"),
    }
}

#[test]
fn valid_messages_are_forwarded() {
    let deep_but_allowed = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{}{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    for body in [
        VALID,
        r#"{"jsonrpc":"2.0","id":"abc","method":"initialize","params":{"capabilities":{}}}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"shutdown"}"#,
        r#"{"jsonrpc":"2.0","id":-9223372036854775808,"method":"shutdown","params":null}"#,
        r#"{"jsonrpc":"2.0","method":"exit"}"#,
        r#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":3}}"#,
        r#"{"jsonrpc":"2.0","method":"$/setTrace","params":{"value":"off"}}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"m","params":[1,2],"extra":true}"#,
        r#"{"jsonrpc":"2.0","id":5,"result":null}"#,
        r#"{"jsonrpc":"2.0","id":"x","error":{"code":-32800,"message":"canceled"}}"#,
        " \r\n{\"jsonrpc\":\"2.0\",\"method\":\"initialized\",\"params\":{}}\n",
        &deep_but_allowed,
    ] {
        assert!(
            matches!(check_message(body.as_bytes()), Verdict::Forward(_)),
            "{body}"
        );
    }
}

#[test]
fn undecodable_bodies_are_parse_errors_with_a_null_id() {
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let mut not_utf8 = br#"{"jsonrpc":"2.0","id":1,"method":"m","params":[""#.to_vec();
    not_utf8.extend_from_slice(b"\xff\"]}");
    assert!(matches!(
        check_message(&not_utf8),
        Verdict::Reply(ref response, _) if response.id() == &Id::Null
            && response.error().map(|error| error.code) == Some(ErrorCode::ParseError)
    ));
    for body in [
        "",
        "{",
        r#"{"jsonrpc":"2.0","id":1,"method":"m",}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"m"} {}"#,
        &deep,
    ] {
        assert_eq!(replied(body), (-32700, Value::Null), "{body}");
    }
}

#[test]
fn invalid_requests_get_32600_with_their_id_when_it_reads() {
    let cases = [
        (r#"[{"jsonrpc":"2.0","id":1,"method":"m"}]"#, Value::Null),
        ("[]", Value::Null),
        (r#""text""#, Value::Null),
        ("null", Value::Null),
        ("42", Value::Null),
        (
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"m"}"#,
            Value::Null,
        ),
        (r#"{"jsonrpc":"2.0","id":1.5,"method":"m"}"#, Value::Null),
        (r#"{"jsonrpc":"2.0","id":1e3,"method":"m"}"#, Value::Null),
        (r#"{"jsonrpc":"2.0","id":true,"method":"m"}"#, Value::Null),
        (r#"{"jsonrpc":"2.0","id":[1],"method":"m"}"#, Value::Null),
        (
            r#"{"jsonrpc":"2.0","id":9223372036854775808,"method":"m"}"#,
            Value::Null,
        ),
        (r#"{"jsonrpc":"1.0","id":7,"method":"m"}"#, json!(7)),
        (r#"{"jsonrpc":2.0,"id":7,"method":"m"}"#, json!(7)),
        (r#"{"id":"s","method":"m"}"#, json!("s")),
        (r#"{"jsonrpc":"2.0","id":8,"method":42}"#, json!(8)),
        (r#"{"jsonrpc":"2.0","id":8}"#, json!(8)),
        (
            r#"{"jsonrpc":"2.0","id":9,"method":"m","params":"x"}"#,
            json!(9),
        ),
        (
            r#"{"jsonrpc":"2.0","id":9,"method":"m","params":3}"#,
            json!(9),
        ),
        (
            r#"{"jsonrpc":"2.0","id":10,"method":"m","result":1}"#,
            json!(10),
        ),
        (
            r#"{"jsonrpc":"2.0","id":11,"method":"m","method":"n"}"#,
            json!(11),
        ),
    ];
    for (body, id) in cases {
        assert_eq!(replied(body), (-32600, id), "{body}");
    }
}

#[test]
fn dollar_requests_get_method_not_found() {
    assert_eq!(
        replied(r#"{"jsonrpc":"2.0","id":3,"method":"$/cancelRequest","params":{"id":1}}"#),
        (-32601, json!(3))
    );
    assert_eq!(
        replied(r#"{"jsonrpc":"2.0","id":null,"method":"$/anything"}"#),
        (-32601, Value::Null)
    );
}

#[test]
fn malformed_notifications_and_responses_are_dropped_without_a_reply() {
    for body in [
        "{}",
        r#"{"jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"1.0","method":"initialized"}"#,
        r#"{"method":"initialized"}"#,
        r#"{"jsonrpc":"2.0","method":7}"#,
        r#"{"jsonrpc":"2.0","method":"exit","params":"now"}"#,
        r#"{"jsonrpc":"2.0","method":"m","method":"n"}"#,
        r#"{"jsonrpc":"2.0","id":{"a":1},"result":null}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"error":{"code":1,"message":"m"}}"#,
        r#"{"jsonrpc":"2.0","result":null}"#,
        r#"{"jsonrpc":"1.0","id":1,"result":null}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":"bad"}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":1}}"#,
    ] {
        assert!(
            matches!(check_message(body.as_bytes()), Verdict::Drop(_)),
            "{body}: {:?}",
            check_message(body.as_bytes())
        );
    }
}

/// The bodies of the frames in `output`.
fn output_bodies(output: &[u8]) -> Vec<Bytes> {
    let mut framer = Framer::default();
    framer.extend(output);
    std::iter::from_fn(|| framer.next())
        .map(|event| match event {
            Framed::Frame(body) => body,
            Framed::Skipped(skip) => panic!("the output has garbage: {skip:?}"),
        })
        .collect()
}

/// One line per output message: `echo <method>` or `error <code> id <id>`.
fn summarize(output: &[u8]) -> Vec<String> {
    output_bodies(output)
        .iter()
        .map(|body| {
            let message: Value = serde_json::from_slice(body).expect("JSON output");
            match message.get("error") {
                Some(error) => format!("error {} id {}", error["code"], message["id"]),
                None if message.get("method").is_some() => format!("echo {}", message["method"]),
                None => format!("result {} id {}", message["result"], message["id"]),
            }
        })
        .collect()
}

/// A stand-in for tower: sends each frame it gets straight back, then ends with its input.
async fn echo(mut input: DuplexStream, mut output: DuplexStream) {
    let mut framer = Framer::default();
    loop {
        while let Some(Framed::Frame(body)) = framer.next() {
            write_frame(&mut output, &body).await.expect("echo");
        }
        match input.read_buf(framer.read_buffer()).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Feeds `input` to the returned receiver one byte at a time, then ends it.
fn byte_at_a_time(input: String) -> mpsc::Receiver<Bytes> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        for byte in input.bytes() {
            if sender.send(Bytes::copy_from_slice(&[byte])).await.is_err() {
                return;
            }
        }
    });
    receiver
}

#[tokio::test]
async fn valid_messages_pass_byte_for_byte_and_errors_precede_later_output() {
    let odd_but_valid = "{ \"method\" : \"a\",\"jsonrpc\":\"2.0\" ,\"id\":1 }";
    let input = [
        frame(odd_but_valid),
        frame("{"),
        "Content-Length: nope\r\n\r\n".to_owned(),
        frame(r#"{"jsonrpc":"2.0","id":2,"method":"b"}"#),
        frame(r#"{"jsonrpc":"2.0","id":3,"method":"$/c"}"#),
        frame(r#"{"jsonrpc":"2.0","method":"d"}"#),
    ]
    .concat();
    let mut output = Vec::new();
    serve(byte_at_a_time(input), &mut output, TowerOnly, echo).await;

    assert!(output_bodies(&output).contains(&Bytes::from(odd_but_valid)));
    let summary = summarize(&output);
    let position = |line: &str| {
        summary
            .iter()
            .position(|seen| seen == line)
            .unwrap_or_else(|| panic!("no `{line}` in {summary:?}"))
    };
    assert_eq!(summary.len(), 5, "{summary:?}");
    // Echoes keep the input's order; an error comes before the output of any later message.
    assert!(position("echo \"a\"") < position("echo \"b\""));
    assert!(position("echo \"b\"") < position("echo \"d\""));
    assert!(position("error -32700 id null") < position("echo \"b\""));
    assert!(position("error -32601 id 3") < position("echo \"d\""));
}

/// The router that takes nothing: everything goes to tower.
pub(super) struct TowerOnly;

impl Router for TowerOnly {
    fn route(&mut self, _: Request, _: &Replies) -> Route {
        Route::Tower
    }
}

struct Minimal;

impl LanguageServer for Minimal {
    async fn initialize(&self, _: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        Ok(InitializeResult::default())
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        Ok(())
    }
}

/// Reads from `reader` until `count` more frames are in; returns their bodies as JSON.
async fn read_frames(reader: &mut DuplexStream, framer: &mut Framer, count: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    while frames.len() < count {
        match framer.next() {
            Some(Framed::Frame(body)) => {
                frames.push(serde_json::from_slice(&body).expect("JSON output"));
            }
            Some(Framed::Skipped(skip)) => panic!("the output has garbage: {skip:?}"),
            None => {
                let read = tokio::time::timeout(
                    Duration::from_secs(5),
                    reader.read_buf(framer.read_buffer()),
                )
                .await
                .expect("output within 5 s")
                .expect("read");
                assert_ne!(read, 0, "the output ended after {frames:?}");
            }
        }
    }
    frames
}

/// The real tower `Server` behind the transport: garbage does not stop it, and `exit` does,
/// though the input stays open.
#[tokio::test]
async fn tower_lives_through_garbage_and_stops_on_exit_with_input_open() {
    let (service, socket) = LspService::new(|_| Minimal);
    let (sender, receiver) = mpsc::channel(64);
    let (mut client_end, server_end) = tokio::io::duplex(1 << 20);
    let serving = tokio::spawn(async move {
        serve(receiver, server_end, TowerOnly, |input, output| {
            Server::new(input, output, socket).serve(service)
        })
        .await;
    });
    let mut framer = Framer::default();
    let send = |message: String| sender.send(Bytes::from(message));

    send(frame(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}"#,
    ))
    .await
    .expect("queued");
    let initialized = read_frames(&mut client_end, &mut framer, 1).await;
    assert_eq!(initialized[0]["id"], 1, "{initialized:?}");
    assert!(
        initialized[0]["result"]["capabilities"].is_object(),
        "{initialized:?}"
    );

    for message in [
        frame("{"),
        frame(r#"{"jsonrpc":"2.0","id":{},"method":"shutdown"}"#),
        frame(r#"{"jsonrpc":"2.0","id":2,"method":"shutdown","method":"exit"}"#),
        "Content-Length: -1\r\n\r\n{}".to_owned(),
        frame("[]"),
        frame(r#"{"jsonrpc":"2.0","id":3,"method":"shutdown","params":null}"#),
    ] {
        send(message).await.expect("queued");
    }
    let mut replies: Vec<String> = read_frames(&mut client_end, &mut framer, 5)
        .await
        .iter()
        .map(|reply| {
            format!(
                "{} {}",
                reply["id"],
                reply
                    .get("error")
                    .map_or(Value::Null, |error| error["code"].clone())
            )
        })
        .collect();
    replies.sort();
    assert_eq!(
        replies,
        [
            "2 -32600",
            "3 null",
            "null -32600",
            "null -32600",
            "null -32700"
        ]
    );

    send(frame(r#"{"jsonrpc":"2.0","method":"exit"}"#))
        .await
        .expect("queued");
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("the server stops on exit although the input is open")
        .expect("no panic");
    let mut rest = Vec::new();
    client_end.read_to_end(&mut rest).await.expect("read");
    assert_eq!(String::from_utf8_lossy(&rest), "", "nothing after exit");
}

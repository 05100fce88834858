//! Crash safety: `kill -9` mid-stream loses nothing the client was told.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use crate::support::{FakeModel, LspClient, Reply, TestEnv, agent_messages, assert_gap_free};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_recovers_every_session() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["I am done."]));
    let slow: Vec<&str> = vec!["word "; 200];
    model.push(Reply::text_paced(&slow, Duration::from_millis(20)));
    let client = env.server(&model).await;
    let mut client = client;

    let (_, idle_id) = client
        .create(json!({"prompt": "finish quickly", "name": "idle"}))
        .await;
    client.wait_for_status(&idle_id, "waiting").await;
    let (_, busy_id) = client
        .create(json!({"prompt": "talk for a while", "name": "busy"}))
        .await;
    // Let several coalesced deltas arrive, then pull the plug.
    for _ in 0..200 {
        let deltas = client
            .session_events(&busy_id)
            .iter()
            .filter(|params| params["event"]["kind"] == "delta")
            .count();
        if deltas >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen_busy = client.session_events(&busy_id);
    let seen_idle = client.session_events(&idle_id);
    // The editor and the session host both die, as in a power cut.
    client.kill().await;
    env.kill_daemon();
    let seen_busy_after_kill = seen_busy.len();
    assert!(
        seen_busy
            .iter()
            .filter(|params| params["event"]["kind"] == "delta")
            .count()
            >= 5,
        "the stream was under way: {seen_busy:#?}"
    );

    // A crash mid-write leaves a torn line: simulate one on the busy session's log.
    let busy_log = env
        .log_files()
        .into_iter()
        .find(|path| path.to_string_lossy().contains(&busy_id))
        .expect("busy log");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&busy_log)
        .expect("open log");
    file.write_all(br#"{"seq":99999,"at":1,"event":{"kind":"del"#)
        .expect("tear");
    drop(file);

    model.push(Reply::text(&["Picking up where I left off."]));
    let mut client = env.server(&model).await;
    let listed = client.call("tether/session/list", json!({})).await;
    let sessions = listed["sessions"].as_array().expect("sessions").clone();
    assert_eq!(sessions.len(), 2, "{listed}");
    let by_id = |id: &str| {
        sessions
            .iter()
            .find(|info| info["id"] == id)
            .cloned()
            .expect("listed")
    };
    assert_eq!(by_id(&idle_id)["status"], "waiting");
    let busy_info = by_id(&busy_id);
    assert_eq!(busy_info["status"], "stopped");
    assert!(
        busy_info["statusReason"]
            .as_str()
            .unwrap_or_default()
            .contains("interrupted"),
        "{busy_info}"
    );
    // Said where the sessions are recovered: in the new daemon's log.
    let daemon_log =
        std::fs::read_to_string(env.home().join("state/daemon.log")).unwrap_or_default();
    assert!(daemon_log.contains("torn last line"), "{daemon_log}");

    // Every event the first client was sent is in the log, unchanged, in order.
    for (id, seen) in [(&busy_id, &seen_busy), (&idle_id, &seen_idle)] {
        let stored = client
            .call("tether/session/get", json!({"id": id, "since": 0}))
            .await;
        let stored = stored["events"].as_array().expect("events").clone();
        assert_gap_free(&stored);
        assert!(stored.len() >= seen.len());
        for (sent, kept) in seen.iter().zip(&stored) {
            assert_eq!(sent["seq"], kept["seq"]);
            assert_eq!(sent["event"], kept["event"]);
        }
    }
    // Recovery closed the half-streamed reply, marked interrupted, with what had streamed.
    let stored = client
        .call(
            "tether/session/get",
            json!({"id": busy_id, "since": seen_busy_after_kill}),
        )
        .await;
    let recovered = agent_messages(
        &stored["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|record| json!({"event": record["event"]}))
            .collect::<Vec<_>>(),
    );
    assert_eq!(recovered.len(), 1, "{stored}");
    assert_eq!(recovered[0]["interrupted"], true);
    assert!(
        recovered[0]["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("word word")
    );

    // The interrupted session resumes and finishes its turn.
    client
        .call("tether/session/resume", json!({"id": busy_id}))
        .await;
    client.wait_for_status(&busy_id, "waiting").await;
    let replies = agent_messages(&client.session_events(&busy_id));
    assert_eq!(
        replies.last().expect("reply")["text"],
        "Picking up where I left off."
    );

    // The idle session came back from its snapshot; its conversation is read back from the
    // log when it next needs the model.
    model.push(Reply::text(&["Still here."]));
    client
        .call(
            "tether/session/send",
            json!({"id": idle_id, "text": "and then?"}),
        )
        .await;
    client.wait_for_status(&idle_id, "waiting").await;
    let request = model.requests().last().cloned().expect("a request");
    let contents: Vec<_> = request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| message["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        contents[1..],
        ["finish quickly", "I am done.", "and then?"],
        "{request}"
    );
    client.shutdown().await;

    // A clean shutdown leaves every session settled for the next start.
    let client = LspClient::spawn(env.home()).await;
    let mut client = client;
    client.initialize(&env.repo(), model.settings(), true).await;
    let listed = client.call("tether/session/list", json!({})).await;
    for info in listed["sessions"].as_array().expect("sessions") {
        assert_eq!(info["status"], "waiting", "{info}");
    }
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_working_sessions_resumably() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let slow: Vec<&str> = vec!["zzz "; 100];
    model.push(Reply::text_paced(&slow, Duration::from_millis(50)));
    let mut client = env.server_in_process(&model).await;
    let (_, id) = client.create(json!({"prompt": "sleep"})).await;
    client
        .wait_for_event(&id, |event| event["kind"] == "delta")
        .await;
    let status = client.shutdown().await;
    assert!(status.success());

    let mut client = env.server_in_process(&model).await;
    let got = client.call("tether/session/get", json!({"id": id})).await;
    assert_eq!(got["session"]["status"], "stopped");
    assert!(
        got["session"]["statusReason"]
            .as_str()
            .unwrap_or_default()
            .contains("shut down"),
        "{got}"
    );
    client.shutdown().await;
}

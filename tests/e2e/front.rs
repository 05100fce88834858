//! `tether lsp` as a front of the daemon: sessions outlive the editor that started them,
//! editors on one repository share them live, and a daemon killed mid-stream is replaced
//! without the editor noticing more than a pause.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv};

/// The `seq`s an editor was sent for a session, in the order they came.
fn seqs(client: &LspClient, id: &str) -> Vec<u64> {
    client
        .session_events(id)
        .iter()
        .filter_map(|params| params["seq"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_goes_on_after_its_editor_exits_and_the_next_editor_sees_all_of_it() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let pieces: Vec<String> = (0..30).map(|n| format!("word{n} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    model.push(Reply::text_paced(&pieces, Duration::from_millis(30)));
    let mut first = env.server(&model).await;
    let (info, id) = first.create(json!({"prompt": "a long answer"})).await;
    assert_eq!(info["startedBy"]["kind"], "editor", "{info}");
    first
        .wait_for_event(&id, |event| event["kind"] == "delta")
        .await;
    // The editor goes mid-stream; the session does not.
    first.shutdown().await;

    // The next editor (without any settings of its own) sees the session finish, and its
    // whole history.
    let mut second = LspClient::spawn(env.home()).await;
    second.initialize(&env.repo(), json!({}), true).await;
    let listed = second.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"][0]["id"], id.as_str(), "{listed}");
    second.wait_for_status(&id, "waiting").await;
    let got = second.call("tether/session/get", json!({"id": id})).await;
    let text: String = got["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|record| record["event"]["kind"] == "delta")
        .filter_map(|record| record["event"]["text"].as_str())
        .collect();
    assert_eq!(text, pieces.concat(), "every delta is in the log");
    assert_eq!(model.requests().len(), 1, "one turn, not restarted");
    // The session used the first editor's provider settings, which it keeps.
    model.push(Reply::text(&["again"]));
    second
        .call("tether/session/send", json!({"id": id, "text": "more"}))
        .await;
    second.wait_for_nth_status(&id, "waiting", 2).await;
    assert_eq!(model.requests().len(), 2);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_editors_see_the_same_question_and_an_answer_from_one_resolves_it_in_both() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "ask_user",
        r#"{"questions": [{"prompt": "Which color?", "kind": "single", "options": ["red", "blue"]}]}"#,
    )]));
    model.push(Reply::text(&["blue it is"]));
    let mut one = env.server(&model).await;
    let mut two = env.server(&model).await;
    let (_, id) = one.create(json!({"prompt": "paint it"})).await;
    let asked = |event: &Value| {
        event["kind"] == "item"
            && event["phase"] == "started"
            && event["item"]["type"] == "question"
    };
    let question = one.wait_for_event(&id, asked).await;
    two.wait_for_event(&id, asked).await;
    two.wait_for_event(&id, |event| event["activity"] == "waiting_input")
        .await;
    let question_id = question["event"]["item"]["id"]
        .as_str()
        .expect("question id")
        .to_owned();
    // The second editor offers the answer as a code action too.
    let readme = env.repo().join("README.md");
    let uri = format!("file://{}", readme.display());
    let actions = two.code_actions(&uri, (0, 0), (0, 0)).await;
    assert!(
        actions.iter().any(|action| action["title"]
            .as_str()
            .is_some_and(|title| title.contains("blue"))),
        "{actions:#?}"
    );
    two.call(
        "tether/session/answer",
        json!({"id": id, "questionId": question_id, "answers": ["blue"]}),
    )
    .await;
    let resolved = |event: &Value| {
        event["kind"] == "item"
            && event["phase"] == "completed"
            && event["item"]["type"] == "question"
    };
    one.wait_for_event(&id, resolved).await;
    two.wait_for_event(&id, resolved).await;
    one.wait_for_status(&id, "waiting").await;
    two.wait_for_status(&id, "waiting").await;
    assert_eq!(
        seqs(&one, &id),
        seqs(&two, &id),
        "both saw the same events: {:#?}\n{:#?}",
        one.session_events(&id),
        two.session_events(&id)
    );
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_stream_is_replaced_and_the_editor_misses_no_event() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let pieces: Vec<String> = (0..200).map(|n| format!("w{n} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    model.push(Reply::text_paced(&pieces, Duration::from_millis(20)));
    model.set_fallback(Reply::text(&["after the restart"]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "stream a lot"})).await;
    client
        .wait_for_event(&id, |event| event["kind"] == "delta")
        .await;
    let pid = env.daemon_pid().expect("a daemon runs");
    // SAFETY: kill(2) on a pid this test's tether started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    // The front starts a new daemon, which recovers the session (stopped by the crash), and
    // the editor hears of it in order.
    client.wait_for_status(&id, "stopped").await;
    let new_pid = env.daemon_pid().expect("a new daemon runs");
    assert_ne!(new_pid, pid);
    let seen = seqs(&client, &id);
    let expected: Vec<u64> = (seen[0]..seen[0] + seen.len() as u64).collect();
    assert_eq!(seen, expected, "gap-free and in order");
    let logged = client.call("tether/session/get", json!({"id": id})).await;
    let last_logged = logged["events"]
        .as_array()
        .and_then(|events| events.last())
        .and_then(|record| record["seq"].as_u64())
        .expect("events");
    assert_eq!(
        seen.last().copied(),
        Some(last_logged),
        "nothing logged was missed"
    );
    // And the editor goes on working with the new daemon.
    client
        .call("tether/session/resume", json!({"id": id, "text": "go on"}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_daemon_sessions_live_and_stop_with_the_editor() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["here"]));
    for how in [
        ("TETHER_DAEMON", "off"),
        ("TETHER_DAEMON_FLAG", "--no-daemon"),
    ] {
        let mut client = if how.0 == "TETHER_DAEMON" {
            LspClient::spawn_with_env(env.home(), &[how]).await
        } else {
            LspClient::spawn_configured(env.home(), |command| {
                command.arg("--no-daemon");
            })
            .await
        };
        client.initialize(&env.repo(), model.settings(), true).await;
        let (_, id) = client.create(json!({"prompt": "in process"})).await;
        client.wait_for_status(&id, "waiting").await;
        client.shutdown().await;
        assert!(
            !env.home().join("state/tether.sock").exists(),
            "{how:?}: no daemon was started"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tether_run_beside_an_open_editor_shows_in_the_editor_live() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["from the command line"]));
    env.write_user_config(&model.user_config());
    let mut client = env.server(&model).await;
    // Answered once the editor's front is attached to the daemon it started.
    client.call("tether/session/list", json!({})).await;
    let repo = env.repo();
    let output = env
        .tether(&[
            "run",
            "--repo",
            repo.to_str().expect("utf-8"),
            "--name",
            "from-cli",
            "hi",
        ])
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The editor heard of it as it ran: created by the command line, then waiting.
    let created = client
        .wait_until_event(|params| params["event"]["kind"] == "created")
        .await;
    assert_eq!(
        created["event"]["session"]["startedBy"]["kind"], "cli",
        "{created}"
    );
    let id = created["sessionId"].as_str().expect("id").to_owned();
    client.wait_for_status(&id, "waiting").await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_edits_only_the_workspace_of_the_editor_that_asked() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "write_file",
        r##"{"path": "README.md", "content": "# changed\n"}"##,
    )]));
    model.push(Reply::text(&["written"]));
    let mut one = env.server(&model).await;
    let mut two = env.server(&model).await;
    let (_, id) = one.create(json!({"prompt": "write a file"})).await;
    two.wait_for_status(&id, "waiting").await;
    let reply = two.call("tether/session/apply", json!({"id": id})).await;
    assert_eq!(reply["sent"], true, "{reply}");
    let edit = two.wait_for_message("workspace/applyEdit").await;
    assert!(edit.to_string().contains("README.md"), "{edit}");
    // The apply is noted in the session, which both editors see; only one was asked to edit.
    let noted = |event: &Value| {
        event["kind"] == "item"
            && event["item"]["text"]
                .as_str()
                .is_some_and(|text| text.contains("Applied to the workspace"))
    };
    one.wait_for_event(&id, noted).await;
    assert!(one.messages("workspace/applyEdit").is_empty());
    one.shutdown().await;
    two.shutdown().await;
}

/// How a [`fake_daemon`] behaves.
#[derive(Clone, Copy, PartialEq)]
enum Fake {
    /// Says nothing at all.
    Mute,
    /// Has a session working: it cannot be restarted.
    Busy,
    /// Has nothing working, and stops when asked (its socket goes).
    Idle,
}

/// Something listening on the daemon's socket that answers `daemon/hello` with `version` and
/// everything else with what a daemon with no sessions would say (see [`Fake`]).
fn fake_daemon(env: &TestEnv, version: &'static str, how: Fake) -> tokio::task::JoinHandle<()> {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let state = env.home().join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let socket = state.join("tether.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let socket = socket.clone();
            tokio::spawn(async move {
                let (reader, mut writer) = stream.into_split();
                let mut lines = BufReader::new(reader).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if how == Fake::Mute {
                        continue;
                    }
                    let request: Value = serde_json::from_str(&line).expect("JSON");
                    let method = request["method"].as_str().unwrap_or_default().to_owned();
                    let result = match method.as_str() {
                        "daemon/hello" => json!({"version": version, "pid": 1}),
                        "daemon/status" => json!({"pid": 1, "version": version, "uptimeSecs": 1,
                            "sessions": 1, "working": u32::from(how == Fake::Busy), "clients": 1,
                            "socket": socket, "log": "/dev/null"}),
                        "daemon/stop" => json!({"stopped": true}),
                        "daemon/subscribe" => json!({"subscribed": true, "positions": {}}),
                        "daemon/states" | "tether/session/list" => json!({"sessions": []}),
                        _ => json!({}),
                    };
                    let reply = json!({"jsonrpc": "2.0", "id": request["id"], "result": result});
                    let mut bytes = serde_json::to_vec(&reply).expect("JSON");
                    bytes.push(b'\n');
                    if writer.write_all(&bytes).await.is_err() {
                        return;
                    }
                    if method == "daemon/stop" {
                        // Gone, as a stopped daemon is: the next front starts a real one.
                        let _ = std::fs::remove_file(&socket);
                        return;
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_attached_to_a_daemon_of_another_version_is_told_what_to_do() {
    let env = TestEnv::new();
    let _daemon = fake_daemon(&env, "0.0.0-other", Fake::Busy);
    let mut client = LspClient::spawn(env.home()).await;
    client.initialize(&env.repo(), json!({}), true).await;
    // It works with it meanwhile.
    let listed = client.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"], json!([]), "{listed}");
    let shown = client
        .wait_for_message_matching("window/showMessage", |params| {
            params["message"]
                .as_str()
                .is_some_and(|text| text.contains("0.0.0-other"))
        })
        .await;
    let text = shown["params"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("tether daemon stop"), "{text}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_never_answers_gets_a_clear_error_and_the_editor_stays_up() {
    let env = TestEnv::new();
    let _daemon = fake_daemon(&env, "unused", Fake::Mute);
    let mut client = LspClient::spawn(env.home()).await;
    client.initialize(&env.repo(), json!({}), true).await;
    let shown = client
        .wait_for_message_matching("window/showMessage", |params| {
            params["message"]
                .as_str()
                .is_some_and(|text| text.contains("daemon"))
        })
        .await;
    let text = shown["params"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("did not answer"), "{text}");
    assert!(text.contains("daemon.log"), "names the log: {text}");
    // Requests are answered at once with the reason, and the editor's own features work.
    let listed = client.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"], json!([]), "{listed}");
    let error = client
        .call_err("tether/session/create", json!({"prompt": "hello?"}))
        .await;
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|text| text.contains("did not answer")),
        "{error}"
    );
    let readme = env.repo().join("README.md");
    let uri = format!("file://{}", readme.display());
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "markdown", "version": 1, "text": "# sample\n"}}),
        )
        .await;
    client.code_actions(&uri, (0, 0), (0, 0)).await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_that_disconnects_mid_request_leaves_the_daemon_and_the_session_intact() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["still here"]));
    // The raw front below names no settings profile: the user's file names the model.
    env.write_user_config(&model.user_config());
    let mut client = env.server(&model).await;
    client.call("tether/session/list", json!({})).await;
    // A second front asks for a session and is gone before the answer.
    let socket = env.home().join("state/tether.sock");
    let stream = tokio::net::UnixStream::connect(&socket)
        .await
        .expect("connect");
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let version = env!("CARGO_PKG_VERSION");
    writer
        .write_all(
            format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon/hello\",\"params\":{{\"version\":\"{version}\"}}}}\n")
                .as_bytes(),
        )
        .await
        .expect("hello");
    lines.next_line().await.expect("read").expect("welcome");
    let repo = env.repo();
    let create = json!({"jsonrpc": "2.0", "id": 2, "method": "tether/session/create",
        "params": {"prompt": "started by a front that left", "root": repo, "name": "orphan"}});
    writer
        .write_all(format!("{create}\n").as_bytes())
        .await
        .expect("create");
    drop(writer);
    drop(lines);
    // The daemon created it anyway; the editor sees it through, and keeps working.
    let created = client
        .wait_until_event(|params| {
            params["event"]["kind"] == "created" && params["event"]["session"]["name"] == "orphan"
        })
        .await;
    let id = created["sessionId"].as_str().expect("id").to_owned();
    client.wait_for_status(&id, "waiting").await;
    let listed = client.call("tether/session/list", json!({})).await;
    assert_eq!(listed["sessions"][0]["name"], "orphan", "{listed}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_editor_sees_the_sessions_of_its_own_repositories() {
    let env = TestEnv::new();
    let other = env.home().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    crate::support::git(&other, &["init", "-q", "-b", "main"]);
    std::fs::write(other.join("README.md"), "# other\n").expect("write");
    crate::support::git(&other, &["add", "."]);
    crate::support::git(&other, &["commit", "-q", "-m", "initial"]);
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["ok"]));
    let mut here = env.server(&model).await;
    let mut there = LspClient::spawn(env.home()).await;
    there.initialize(&other, model.settings(), true).await;
    let (_, mine) = here.create(json!({"prompt": "here"})).await;
    let (_, theirs) = there.create(json!({"prompt": "there"})).await;
    here.wait_for_status(&mine, "waiting").await;
    there.wait_for_status(&theirs, "waiting").await;
    let names = |listed: &Value| -> Vec<String> {
        listed["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .filter_map(|info| info["id"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        names(&here.call("tether/session/list", json!({})).await),
        std::slice::from_ref(&mine)
    );
    assert_eq!(
        names(&there.call("tether/session/list", json!({})).await),
        std::slice::from_ref(&theirs)
    );
    assert!(here.session_events(&theirs).is_empty());
    assert!(there.session_events(&mine).is_empty());
    // Starting a session in another repository follows that repository from then on.
    let (_, visiting) = here
        .create(json!({"prompt": "visit", "root": other.to_str().expect("utf-8")}))
        .await;
    here.wait_for_status(&visiting, "waiting").await;
    let listed = names(&here.call("tether/session/list", json!({})).await);
    assert_eq!(listed.len(), 3, "{listed:?}");
    here.shutdown().await;
    there.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_daemon_of_another_version_is_restarted_with_the_editors() {
    let env = TestEnv::new();
    let _daemon = fake_daemon(&env, "0.0.0-old", Fake::Idle);
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["new daemon"]));
    let mut client = env.server(&model).await;
    let shown = client
        .wait_for_message_matching("window/showMessage", |params| {
            params["message"]
                .as_str()
                .is_some_and(|text| text.contains("0.0.0-old"))
        })
        .await;
    let text = shown["params"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("restarted"), "{text}");
    // The editor works with a daemon of its own version now.
    let (_, id) = client.create(json!({"prompt": "hello"})).await;
    client.wait_for_status(&id, "waiting").await;
    let pid = env.daemon_pid().expect("a real daemon runs");
    assert_ne!(pid, 1);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editors_starting_together_share_the_one_daemon_that_wins() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.set_fallback(Reply::text(&["shared"]));
    let spawn = || async {
        let mut client = LspClient::spawn(env.home()).await;
        client.initialize(&env.repo(), model.settings(), true).await;
        client
    };
    let (mut a, mut b, mut c) = tokio::join!(spawn(), spawn(), spawn());
    for client in [&mut a, &mut b, &mut c] {
        client.call("tether/session/list", json!({})).await;
    }
    // The daemons the others started find the lock taken and leave at once.
    let serving = || -> Vec<i32> {
        crate::support::daemons_of(&env.home().join("state"))
            .into_iter()
            .filter(|pid| crate::support::running(*pid))
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while serving().len() > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let daemons = serving();
    assert_eq!(daemons.len(), 1, "one daemon serves: {daemons:?}");
    assert_eq!(env.daemon_pid(), daemons.first().copied());
    let (_, id) = a.create(json!({"prompt": "seen by all"})).await;
    for client in [&b, &c] {
        client.wait_for_status(&id, "waiting").await;
    }
    for client in [a, b, c] {
        client.shutdown().await;
    }
}

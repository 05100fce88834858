//! The checkpoints timeline: `tether/session/checkpoints` lists each checkpoint with what it
//! changed, code actions rewind to one and undo the rewind, and a rewind while the agent
//! works, or to a name that climbs out of the session's checkpoints, is refused.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{FakeModel, Reply, TestEnv, error_message};

fn files_of(checkpoint: &Value) -> Vec<(String, String, u64, u64)> {
    checkpoint["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|file| {
            (
                file["path"].as_str().unwrap_or_default().to_owned(),
                file["status"].as_str().unwrap_or_default().to_owned(),
                file["additions"].as_u64().unwrap_or_default(),
                file["deletions"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_lists_checkpoints_and_code_actions_rewind_and_undo() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&[(
        "write_file",
        r#"{"path": "a.txt", "content": "one\n"}"#,
    )]));
    model.push(Reply::text(&["first turn done"]));
    model.push(Reply::tool_calls(&[
        ("write_file", r#"{"path": "a.txt", "content": "two\n"}"#),
        ("write_file", r#"{"path": "b.txt", "content": "new\n"}"#),
    ]));
    model.push(Reply::text(&["second turn done"]));
    let mut client = env.server(&model).await;
    let (info, id) = client.create(json!({"prompt": "write a"})).await;
    let name = info["name"].as_str().expect("name").to_owned();
    client.wait_for_nth_status(&id, "waiting", 1).await;
    client
        .call("tether/session/send", json!({"id": id, "text": "now b"}))
        .await;
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let worktree = PathBuf::from(info["worktree"].as_str().expect("worktree"));

    let listed = client
        .call("tether/session/checkpoints", json!({"id": id}))
        .await;
    let checkpoints = listed["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .clone();
    let names: Vec<&str> = checkpoints
        .iter()
        .filter_map(|checkpoint| checkpoint["name"].as_str())
        .collect();
    assert_eq!(names, ["start", "turn-1", "turn-2"], "{listed}");
    assert!(files_of(&checkpoints[0]).is_empty(), "{listed}");
    assert_eq!(
        files_of(&checkpoints[1]),
        [("a.txt".to_owned(), "added".to_owned(), 1, 0)]
    );
    assert_eq!(
        files_of(&checkpoints[2]),
        [
            ("a.txt".to_owned(), "modified".to_owned(), 1, 1),
            ("b.txt".to_owned(), "added".to_owned(), 1, 0)
        ]
    );
    assert_eq!(checkpoints[2]["turn"], 2);
    let at = |index: usize| checkpoints[index]["at"].as_u64().unwrap_or_default();
    assert!(at(0) > 0 && at(0) <= at(1) && at(1) <= at(2), "{listed}");

    // Code actions, from any file: the earlier turns and the start, newest first (not the
    // latest checkpoint: the worktree is there); no undo yet.
    let uri = format!("file://{}", env.repo().join("README.md").display());
    let rewinds = |actions: &[Value]| -> Vec<Value> {
        actions
            .iter()
            .filter(|action| {
                action["title"].as_str().is_some_and(|title| {
                    title.contains("Rewind to") || title.contains("Undo the last rewind")
                })
            })
            .cloned()
            .collect()
    };
    let offered = rewinds(&client.code_actions(&uri, (0, 0), (0, 0)).await);
    let titles: Vec<&str> = offered.iter().filter_map(|a| a["title"].as_str()).collect();
    assert_eq!(
        titles,
        [
            format!("tether: {name}: Rewind to turn-1"),
            format!("tether: {name}: Rewind to start"),
        ]
    );
    let rewound = client
        .execute_action(&offered[0])
        .await
        .expect("rewind runs");
    assert_eq!(rewound["undo"], "before-rewind-1", "{rewound}");
    assert_eq!(
        std::fs::read_to_string(worktree.join("a.txt")).expect("a"),
        "one\n"
    );
    assert!(!worktree.join("b.txt").exists());

    // The rewind left its undo in the timeline and as an action.
    let listed = client
        .call("tether/session/checkpoints", json!({"id": id}))
        .await;
    let last = listed["checkpoints"]
        .as_array()
        .and_then(|checkpoints| checkpoints.last())
        .cloned()
        .expect("a checkpoint");
    assert_eq!(last["name"], "before-rewind-1", "{listed}");
    assert_eq!(last["undoes"], "turn-1", "{listed}");
    let offered = rewinds(&client.code_actions(&uri, (0, 0), (0, 0)).await);
    let titles: Vec<&str> = offered.iter().filter_map(|a| a["title"].as_str()).collect();
    assert_eq!(
        titles,
        [
            format!("tether: {name}: Undo the last rewind (before-rewind-1)"),
            format!("tether: {name}: Rewind to turn-2"),
            format!("tether: {name}: Rewind to turn-1"),
            format!("tether: {name}: Rewind to start"),
        ]
    );
    client.execute_action(&offered[0]).await.expect("undo runs");
    assert_eq!(
        std::fs::read_to_string(worktree.join("a.txt")).expect("a"),
        "two\n"
    );
    assert_eq!(
        std::fs::read_to_string(worktree.join("b.txt")).expect("b"),
        "new\n"
    );

    // A rewind while the agent works is refused, saying so; nothing changes.
    model.push(Reply::text_paced(
        &["slow", " reply"],
        Duration::from_millis(400),
    ));
    client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "take your time"}),
        )
        .await;
    client.wait_for_nth_status(&id, "running", 3).await;
    let error = client
        .call_err("tether/session/rewind", json!({"id": id, "turn": 1}))
        .await;
    assert_eq!(error["code"], -31002, "{error}");
    assert!(error_message(&error).contains("rewind"), "{error}");
    assert_eq!(
        std::fs::read_to_string(worktree.join("a.txt")).expect("a"),
        "two\n"
    );
    client.wait_for_nth_status(&id, "waiting", 3).await;

    // A checkpoint name is the client's: one that climbs out of the session's own refs (to
    // the user's main branch, or back in by another way) names no checkpoint; nothing moves.
    for bad in [
        format!("../{id}/turn-1"),
        "turn-1/../../../heads/main".to_owned(),
        format!("--output={}", env.home().join("written").display()),
    ] {
        let error = client
            .call_err(
                "tether/session/rewind",
                json!({"id": id, "checkpoint": bad}),
            )
            .await;
        assert_eq!(error["code"], -32602, "{bad}: {error}");
        assert!(
            error_message(&error).contains("has no checkpoint"),
            "{bad}: {error}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(worktree.join("a.txt")).expect("a"),
        "two\n"
    );
    assert!(!env.home().join("written").exists());
    client.shutdown().await;
}

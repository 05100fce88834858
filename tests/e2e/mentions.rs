//! `@` mentions and `/` commands in what the user sends: mentioned files and line ranges
//! reach the model; Tether's commands run instead of being sent; the repository's commands
//! expand into prompts; unknown commands and mentions outside the repository are refused.

use serde_json::{Value, json};

use crate::support::{FakeModel, Reply, TestEnv, error_message, git, last_message};

fn user_text(request: &Value) -> String {
    last_message(request)
}

fn repository(env: &TestEnv) {
    let repo = env.repo();
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    std::fs::write(
        repo.join("src/lib.rs"),
        "fn one() {}\nfn two() {}\nfn three() {}\n",
    )
    .expect("write");
    std::fs::create_dir_all(repo.join(".tether/commands")).expect("mkdir");
    std::fs::write(
        repo.join(".tether/commands/fix-issue.md"),
        "---\ndescription: Fix an issue\n---\nFix issue #$ARGUMENTS, with a test.\n",
    )
    .expect("write");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "code"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentioned_files_and_ranges_reach_the_model_and_outside_ones_are_refused() {
    let env = TestEnv::new();
    repository(&env);
    let model = FakeModel::start().await;
    model.push(Reply::text(&["read them"]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "compare @src/lib.rs:2-3 with @README.md, mail me@example.com"}))
        .await;
    client.wait_for_status(&id, "waiting").await;
    let text = user_text(&model.requests()[0]);
    assert!(
        text.starts_with("compare @src/lib.rs:2-3 with @README.md, mail me@example.com")
            && text
                .contains("Attached file `src/lib.rs:2-3`:\n```\nfn two() {}\nfn three() {}\n```")
            && text.contains("Attached file `README.md`:\n```\n# sample\n```")
            && !text.contains("fn one"),
        "{text}"
    );
    for outside in ["@../secret.txt", "@/etc/passwd"] {
        let error = client
            .call_err(
                "tether/session/send",
                json!({"id": id, "text": format!("read {outside}")}),
            )
            .await;
        assert_eq!(error["code"], -32602, "{error}");
        assert!(
            error_message(&error).contains("outside the repository"),
            "{error}"
        );
    }
    assert_eq!(model.requests().len(), 1, "nothing sent");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_run_expand_or_are_refused() {
    let env = TestEnv::new();
    repository(&env);
    let model = FakeModel::start().await;
    model.push(Reply::text(&["done"]));
    model.push(Reply::text(&["on the other model"]));
    model.push(Reply::text(&["fixed"]));
    let mut client = env.server(&model).await;
    // A repository command makes the first prompt.
    let (info, id) = client.create(json!({"prompt": "/fix-issue 42"})).await;
    assert_eq!(info["title"], "Fix issue #42, with a test.");
    client.wait_for_status(&id, "waiting").await;
    assert_eq!(
        user_text(&model.requests()[0]),
        "Fix issue #42, with a test."
    );

    // /review runs a review (skipped: nothing changed yet); nothing is sent to the agent.
    let sent = client
        .call("tether/session/send", json!({"id": id, "text": "/review"}))
        .await;
    assert_eq!(sent["command"], "/review");
    client
        .wait_for_event(&id, |event| {
            event["kind"] == "item"
                && event["phase"] == "completed"
                && event["item"]["type"] == "review"
        })
        .await;

    // /model switches the next turns' model.
    let sent = client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "/model other-model"}),
        )
        .await;
    assert_eq!(sent["command"], "/model");
    let session = client.call("tether/session/get", json!({"id": id})).await;
    assert_eq!(session["session"]["model"], "other-model");
    client
        .call("tether/session/send", json!({"id": id, "text": "go on"}))
        .await;
    client
        .wait_for_event(&id, |event| event["item"]["text"] == "on the other model")
        .await;
    assert_eq!(model.requests()[1]["model"], "other-model");

    // The repository's command expands on a follow-up too.
    client
        .call(
            "tether/session/send",
            json!({"id": id, "text": "/fix-issue 7"}),
        )
        .await;
    client.wait_for_nth_status(&id, "waiting", 3).await;
    assert_eq!(
        user_text(&model.requests()[2]),
        "Fix issue #7, with a test."
    );

    for (text, words) in [
        (
            "/frobnicate now",
            "unknown command /frobnicate; the commands are /review, /verify",
        ),
        ("/apply", "runs in the editor"),
        ("/loop many fix it", "a number of iterations"),
        ("/model", "one model name"),
    ] {
        let error = client
            .call_err("tether/session/send", json!({"id": id, "text": text}))
            .await;
        assert_eq!(error["code"], -32602, "{text}: {error}");
        assert!(error_message(&error).contains(words), "{text}: {error}");
    }
    let error = client
        .call_err("tether/session/create", json!({"prompt": "/review please"}))
        .await;
    assert!(
        error_message(&error).contains("not one of the repository's commands"),
        "{error}"
    );
    let unknown = error_message(
        &client
            .call_err("tether/session/send", json!({"id": id, "text": "/nope"}))
            .await,
    )
    .to_owned();
    assert!(unknown.contains("/fix-issue"), "{unknown}");
    assert_eq!(
        model.requests().len(),
        3,
        "no refused message reached the model"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_commands_complete_in_the_message_box_and_in_a_transcript() {
    let env = TestEnv::new();
    repository(&env);
    std::fs::write(env.repo().join(".gitignore"), "build/\n").expect("write");
    std::fs::create_dir_all(env.repo().join("build")).expect("mkdir");
    std::fs::write(env.repo().join("build/lib.rs"), "generated").expect("write");
    let model = FakeModel::start().await;
    model.push(Reply::text(&["hello"]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "hi", "name": "completing"}))
        .await;
    client.wait_for_status(&id, "waiting").await;

    // The message box's method: the last word, and what completes it.
    let got = client
        .call(
            "tether/session/completions",
            json!({"id": id, "text": "compare @srli"}),
        )
        .await;
    assert_eq!(got["word"], "@srli");
    let labels: Vec<&str> = got["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["label"].as_str())
        .collect();
    assert_eq!(labels.first(), Some(&"@src/lib.rs"), "{got}");
    assert!(
        !labels.contains(&"@build/lib.rs"),
        "ignored files are left out: {got}"
    );
    assert_eq!(got["items"][0]["insert"], "@src/lib.rs ");
    assert_eq!(got["items"][0]["kind"], "file");
    let got = client
        .call(
            "tether/session/completions",
            json!({"id": id, "text": "/fi"}),
        )
        .await;
    assert_eq!(got["items"][0]["label"], "/fix-issue");
    assert_eq!(got["items"][0]["detail"], "Fix an issue");
    let got = client
        .call("tether/session/completions", json!({"text": "/"}))
        .await;
    let labels: Vec<&str> = got["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["label"].as_str())
        .collect();
    for wanted in [
        "/review",
        "/verify",
        "/loop",
        "/compact",
        "/model",
        "/diff",
        "/apply",
        "/stop",
        "/fix-issue",
    ] {
        assert!(labels.contains(&wanted), "{wanted} in {labels:?}");
    }
    let got = client
        .call(
            "tether/session/completions",
            json!({"text": "nothing to complete"}),
        )
        .await;
    assert_eq!(got, json!({"word": "", "items": []}));

    // textDocument/completion in the session's transcript, at the reply.
    let path = env.repo().join(".tether/sessions/completing.md");
    let text = crate::support::wait_for_file(&path, |text| text.contains("hello")).await;
    let uri = format!("file://{}", path.display());
    let written = format!("{text}look at @lib");
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "markdown", "version": 1, "text": written}}),
        )
        .await;
    let line = written.lines().count() as u32 - 1;
    let character = "look at @lib".len() as u32;
    let completion = client
        .call(
            "textDocument/completion",
            json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}),
        )
        .await;
    let first = &completion["items"][0];
    assert_eq!(first["label"], "@src/lib.rs", "{completion}");
    assert_eq!(
        first["textEdit"],
        json!({"range": {"start": {"line": line, "character": 8}, "end": {"line": line, "character": character}},
               "newText": "@src/lib.rs "})
    );
    // Nothing in other documents.
    let elsewhere = client
        .call(
            "textDocument/completion",
            json!({"textDocument": {"uri": format!("file://{}", env.repo().join("README.md").display())},
                   "position": {"line": 0, "character": 0}}),
        )
        .await;
    assert!(elsewhere.is_null(), "{elsewhere}");
    client.shutdown().await;
}

//! Review and verification findings as diagnostics, and the code actions on them.

use serde_json::{Value, json};

use crate::support::{FakeModel, LspClient, Reply, TestEnv, error_message, git};

fn diagnostics_for<'a>(params: &'a Value, uri: &str) -> Option<&'a Vec<Value>> {
    (params["uri"] == uri)
        .then(|| params["diagnostics"].as_array())
        .flatten()
}

async fn actions_at(client: &mut LspClient, uri: &str, line: u32) -> Vec<Value> {
    client.code_actions(uri, (line, 0), (line, 0)).await
}

fn titled<'a>(actions: &'a [Value], part: &str) -> Vec<&'a Value> {
    actions
        .iter()
        .filter(|action| {
            action["title"]
                .as_str()
                .is_some_and(|title| title.contains(part))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_are_diagnostics_until_dismissed_fixed_or_deleted() {
    let env = TestEnv::new();
    std::fs::write(
        env.repo().join("calc.py"),
        "def add(a, b):\n    return a - b\n\n\ndef sub(a, b): return a-b\n",
    )
    .expect("write");
    git(&env.repo(), &["add", "."]);
    git(&env.repo(), &["commit", "-q", "-m", "calc"]);
    let model = FakeModel::start().await;
    model.push(Reply::text(&["looked"]));
    let mut client = env.server(&model).await;
    let (_, id) = client
        .create(json!({"prompt": "look", "name": "reviewer"}))
        .await;
    client.wait_for_status(&id, "waiting").await;

    let recorded = client
        .call(
            "tether/session/findings",
            json!({"id": id, "findings": [
                {"id": "f1", "file": "calc.py", "startLine": 2, "endLine": 2, "severity": "high",
                 "category": "bug", "title": "add subtracts", "body": "use a + b"},
                {"id": "f2", "file": "calc.py", "startLine": 5, "endLine": 5, "severity": "low",
                 "category": "style", "title": "one-line def"},
                {"id": "f3", "severity": "medium", "category": "tests", "title": "no tests at all"},
            ]}),
        )
        .await;
    assert!(recorded["itemId"].is_string(), "{recorded}");

    let uri = format!("file://{}", env.repo().join("calc.py").display());
    let published = client
        .wait_for_message_matching("textDocument/publishDiagnostics", |params| {
            diagnostics_for(params, &uri).is_some_and(|list| list.len() == 2)
        })
        .await;
    let diagnostics = published["params"]["diagnostics"].as_array().expect("list");
    let bug = diagnostics
        .iter()
        .find(|diagnostic| diagnostic["code"] == "bug")
        .expect("the bug");
    assert_eq!(bug["severity"], 1, "high is an error");
    assert_eq!(bug["source"], "tether review");
    assert_eq!(bug["range"]["start"], json!({"line": 1, "character": 0}));
    assert_eq!(bug["data"], json!({"sessionId": id, "findingId": "f1"}));
    assert!(
        bug["message"]
            .as_str()
            .is_some_and(|m| m.contains("add subtracts"))
    );
    let style = diagnostics
        .iter()
        .find(|diagnostic| diagnostic["code"] == "style")
        .expect("the style finding");
    assert_eq!(style["severity"], 3, "low is information");

    // A finding with no file is in the transcript instead.
    let transcript = env.repo().join(".tether/sessions/reviewer.md");
    for _ in 0..200 {
        if std::fs::read_to_string(&transcript).is_ok_and(|text| text.contains("no tests at all")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        std::fs::read_to_string(&transcript)
            .is_ok_and(|text| text.contains("## Findings") && text.contains("no tests at all")),
        "the file-less finding is in the transcript"
    );

    // On the finding's line: fix and dismiss, for that finding only.
    let actions = actions_at(&mut client, &uri, 1).await;
    let fix = titled(&actions, "Ask the session to fix this");
    let dismiss = titled(&actions, "Dismiss");
    assert_eq!((fix.len(), dismiss.len()), (1, 1), "{actions:#?}");
    assert!(
        fix[0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("add subtracts"))
    );
    let dismiss = dismiss[0].clone();
    client.execute_action(&dismiss).await.expect("dismiss");
    client
        .wait_for_message_matching("textDocument/publishDiagnostics", |params| {
            diagnostics_for(params, &uri)
                .is_some_and(|list| list.len() == 1 && list[0]["code"] == "style")
        })
        .await;
    let stale = client.execute_action(&dismiss).await.expect_err("stale");
    assert!(
        error_message(&stale).contains("not an open finding"),
        "{stale}"
    );

    // Fixing sends the finding to the session as a follow-up.
    model.push(Reply::text(&["fixed"]));
    let actions = actions_at(&mut client, &uri, 4).await;
    let fix = titled(&actions, "Ask the session to fix this")[0].clone();
    client.execute_action(&fix).await.expect("fix");
    client.wait_for_nth_status(&id, "waiting", 2).await;
    let requests = model.requests();
    let asked = requests
        .last()
        .and_then(|request| request["messages"].as_array())
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        asked.contains("Please fix this review finding in calc.py, lines 5–5: one-line def"),
        "{asked}"
    );

    // Deleting the session clears its diagnostics.
    client
        .call("tether/session/delete", json!({"id": id}))
        .await;
    client
        .wait_for_message_matching("textDocument/publishDiagnostics", |params| {
            diagnostics_for(params, &uri).is_some_and(Vec::is_empty)
        })
        .await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_findings_map_severity_and_supersede_the_last_verification() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    model.push(Reply::text(&["ok"]));
    let mut client = env.server(&model).await;
    let (_, id) = client.create(json!({"prompt": "verify"})).await;
    client.wait_for_status(&id, "waiting").await;
    let uri = format!("file://{}", env.repo().join("README.md").display());
    let finding = |id: &str, severity: &str| {
        json!({"id": id, "file": "README.md", "startLine": 1, "endLine": 1,
               "severity": severity, "category": "claim", "title": format!("{id} {severity}")})
    };
    client
        .call(
            "tether/session/findings",
            json!({"id": id, "source": "verification",
                   "findings": [finding("v1", "critical"), finding("v2", "medium")]}),
        )
        .await;
    let published = client
        .wait_for_message_matching("textDocument/publishDiagnostics", |params| {
            diagnostics_for(params, &uri).is_some_and(|list| list.len() == 2)
        })
        .await;
    let severities: Vec<&Value> = published["params"]["diagnostics"]
        .as_array()
        .expect("list")
        .iter()
        .map(|diagnostic| &diagnostic["severity"])
        .collect();
    assert!(
        severities.contains(&&json!(1)) && severities.contains(&&json!(2)),
        "{severities:?}"
    );
    assert_eq!(
        published["params"]["diagnostics"][0]["source"],
        "tether verification"
    );

    // The next verification replaces the last one's findings.
    client
        .call(
            "tether/session/findings",
            json!({"id": id, "source": "verification", "findings": [finding("v3", "low")]}),
        )
        .await;
    client
        .wait_for_message_matching("textDocument/publishDiagnostics", |params| {
            diagnostics_for(params, &uri)
                .is_some_and(|list| list.len() == 1 && list[0]["data"]["findingId"] == "v3")
        })
        .await;

    // Bad findings are refused, naming the problem.
    let error = client
        .call_err(
            "tether/session/findings",
            json!({"id": id, "findings": [finding("same", "low"), finding("same", "low")]}),
        )
        .await;
    assert_eq!(error["code"], -32602);
    assert!(error_message(&error).contains("unique"), "{error}");
    let error = client
        .call_err(
            "tether/session/findings",
            json!({"id": id, "findings": [{"id": "x", "severity": "dire", "category": "c", "title": "t"}]}),
        )
        .await;
    assert!(error_message(&error).contains("severity"), "{error}");
    client.shutdown().await;
}

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Value, json};

use super::*;

const PROTOCOL: &str = include_str!("../../../docs/protocol.md");

/// The cells of a Markdown table row, `\|` inside a cell kept as a `|`.
fn cells(row: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = row.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            other => cell.push(other),
        }
    }
    cells
}

/// docs/protocol.md's "Requests" table: method → (schedule, side), as written there.
fn documented_methods() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let header = PROTOCOL
        .lines()
        .find(|line| line.starts_with("| method |"))
        .expect("docs/protocol.md has the Requests table");
    let columns = cells(header);
    let column = |name: &str| {
        columns
            .iter()
            .position(|column| column == name)
            .unwrap_or_else(|| panic!("the Requests table has no `{name}` column: {columns:?}"))
    };
    let (method, schedule, side) = (column("method"), column("schedule"), column("side"));
    let mut documented: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for row in PROTOCOL.lines().filter(|line| {
        line.starts_with("| `tether/session/")
            || line.starts_with("| `tether/providers/")
            || line.starts_with("| `tether/task/")
    }) {
        let row = cells(row);
        documented
            .entry(row[method].trim_matches('`').to_owned())
            .or_default()
            .insert((row[schedule].clone(), row[side].clone()));
    }
    documented
}

#[test]
fn the_table_has_each_method_once_under_its_own_name() {
    let mut names = HashSet::new();
    let mut shorts = HashSet::new();
    for method in METHODS {
        assert!(names.insert(method.name), "{} twice", method.name);
        assert!(shorts.insert(method.short), "{} twice", method.short);
        // Session methods are `tether/session/<short>`; the few that are not about one
        // session name themselves (`tether/providers/list`) but keep a short name for
        // their command.
        if method.name.starts_with(METHOD_PREFIX) {
            assert_eq!(method.name, format!("{METHOD_PREFIX}{}", method.short));
        } else {
            assert!(method.name.starts_with("tether/"), "{}", method.name);
        }
        assert_eq!(MethodInfo::named(method.name), Some(method));
        assert_eq!(MethodInfo::for_command(&method.command()), Some(method));
    }
    assert_eq!(MethodInfo::named("tether/session/frobnicate"), None);
    assert_eq!(MethodInfo::for_command("tether.frobnicate"), None);
    assert_eq!(MethodInfo::for_command("list"), None);
}

#[test]
fn the_table_matches_the_protocol_document() {
    let documented = documented_methods();
    let side = |side: Side| match side {
        Side::Host => "host",
        Side::Front => "front",
    };
    let in_code: BTreeMap<String, BTreeSet<(String, String)>> = METHODS
        .iter()
        .map(|method| {
            let runs = (
                method.schedule.as_str().to_owned(),
                side(method.side).to_owned(),
            );
            (method.name.to_owned(), BTreeSet::from([runs]))
        })
        .collect();
    assert_eq!(
        documented, in_code,
        "docs/protocol.md's Requests table (method, schedule, side) and api::METHODS differ"
    );
}

#[test]
fn only_cheap_reads_run_on_the_lsp_thread() {
    // Whatever touches git, the disk or the network must be off the LSP thread.
    for slow in [
        methods::Create::NAME,
        methods::Get::NAME,
        methods::Export::NAME,
        methods::Diff::NAME,
        methods::Apply::NAME,
        methods::Git::NAME,
        methods::Delete::NAME,
        methods::Rewind::NAME,
        methods::Stop::NAME,
        methods::TaskCreate::NAME,
        methods::TaskList::NAME,
        methods::TaskCompare::NAME,
        methods::TaskPromote::NAME,
        methods::TaskDelete::NAME,
    ] {
        let method = MethodInfo::named(slow).expect("in the table");
        assert_ne!(method.schedule, Schedule::Snapshot, "{slow}");
    }
    let front: Vec<&str> = METHODS
        .iter()
        .filter(|method| method.side == Side::Front)
        .map(|method| method.short)
        .collect();
    assert_eq!(
        front,
        [
            "apply",
            "completions",
            "newSession",
            "openTranscript",
            "taskPromote",
            "taskOpen"
        ]
    );
}

#[test]
fn bad_params_name_the_field_at_fault() {
    let error = parse_params::<methods::Get>(json!({"id": "x", "since": "yesterday"}))
        .expect_err("refused");
    assert!(
        error
            .0
            .starts_with("invalid params for tether/session/get: `since`: invalid type"),
        "{error}"
    );
    let error = parse_params::<methods::Create>(json!({})).expect_err("refused");
    assert_eq!(
        error.0,
        "invalid params for tether/session/create: missing field `prompt`"
    );
    let error =
        parse_params::<methods::Create>(json!({"prompt": "x", "mode": "yolo"})).expect_err("no");
    assert!(error.0.contains("`mode`"), "{error}");
    let error = parse_params::<methods::Git>(json!({"id": "x", "op": "status", "force": true}))
        .expect_err("unknown fields are refused where they always were");
    assert!(error.0.contains("unknown field `force`"), "{error}");
    // No params where a session is needed: the same words as ever.
    let error = parse_params::<methods::Stop>(Value::Null).expect_err("refused");
    assert_eq!(
        error.0,
        "invalid params for tether/session/stop: invalid type: null, expected struct IdParams"
    );
}

#[test]
fn no_params_mean_defaults_only_where_every_field_is_optional() {
    for none in [Value::Null, json!([]), json!({})] {
        assert_eq!(
            parse_params::<methods::List>(none.clone()).expect("defaults"),
            ListParams::default()
        );
        assert_eq!(
            parse_params::<methods::Trust>(none.clone()).expect("defaults"),
            TrustParams::default()
        );
        assert_eq!(
            parse_params::<methods::NewSession>(none).expect("defaults"),
            NewSessionParams::default()
        );
    }
    // A Lua client's empty table is `{}` for every method.
    let error = parse_params::<methods::Get>(json!([])).expect_err("needs an id");
    assert!(error.0.contains("missing field `id`"), "{error}");
}

#[test]
fn params_read_back_what_they_write() {
    fn round_trip<M: Method>(params: Value)
    where
        M::Params: PartialEq + std::fmt::Debug,
    {
        let parsed = parse_params::<M>(params.clone()).expect("valid params");
        let written = serde_json::to_value(&parsed).expect("serializes");
        let reparsed = parse_params::<M>(written).expect("reads back");
        assert_eq!(parsed, reparsed, "{}: {params}", M::NAME);
    }
    round_trip::<methods::Create>(
        json!({"prompt": "p", "mode": "chat", "toggles": {"review": false}}),
    );
    round_trip::<methods::List>(json!({"status": "waiting", "query": "x"}));
    round_trip::<methods::Get>(json!({"id": "a", "since": 4}));
    round_trip::<methods::Answer>(
        json!({"id": "a", "questionId": "q", "answers": ["x", ["y", "z"]]}),
    );
    round_trip::<methods::Apply>(json!({"id": "a", "hunks": {"src/a.rs": [2, 0]}}));
    round_trip::<methods::Findings>(json!({"id": "a", "source": "verification"}));
    round_trip::<methods::Git>(json!({"id": "a", "op": "pullBranch", "branch": "main"}));
    round_trip::<methods::Loop>(json!({"id": "a", "prompt": "p", "maxIterations": 3}));
    round_trip::<methods::Rewind>(json!({"id": "a", "turn": 2}));
    round_trip::<methods::NewSession>(json!({
        "uri": "file:///r/a.rs",
        "range": {"start": {"line": 1, "character": 0}, "end": {"line": 3, "character": 2}}
    }));
}

fn domain_info() -> crate::session::SessionInfo {
    crate::session::SessionInfo {
        id: "019".to_owned(),
        name: "fix-login".to_owned(),
        title: "Fix the login bug".to_owned(),
        mode: crate::session::Mode::Develop,
        status: crate::session::SessionStatus::Running,
        activity: None,
        status_reason: Some("why".to_owned()),
        provider: "local".to_owned(),
        model: "smollm2".to_owned(),
        branch: "tether/fix-login".to_owned(),
        base_branch: "main".to_owned(),
        repo: "/home/me/app".into(),
        worktree: "/w/fix-login".into(),
        created_at: "2026-11-22T00:10:00.000Z".to_owned(),
        updated_at: "2026-11-22T00:10:03.120Z".to_owned(),
        usage: crate::session::TokenUsage::default(),
        queued_messages: 2,
        last_seq: 17,
        read_only: false,
        started_by: Some(crate::vocab::StartedBy::Editor {
            name: Some("Neovim".to_owned()),
        }),
        agent: Some(crate::vocab::AgentFacts {
            commands: vec![crate::vocab::AgentCommand {
                name: "review".to_owned(),
                description: "Review the changes".to_owned(),
            }],
            mode: Some("default".to_owned()),
            modes: vec!["default".to_owned(), "plan".to_owned()],
            model: Some("sonnet".to_owned()),
            models: vec!["sonnet".to_owned(), "opus".to_owned()],
        }),
        pull_request: Some("https://github.com/me/app/pull/7".to_owned()),
        context: Some(crate::vocab::ContextUse {
            used_tokens: 12_000,
            window_tokens: 200_000,
        }),
    }
}

#[test]
fn wire_copies_write_exactly_what_the_domain_writes() {
    let info = domain_info();
    let domain = serde_json::to_value(&info).expect("domain");
    let wire = serde_json::to_value(SessionInfo::from(info.clone())).expect("wire");
    assert_eq!(wire, domain);
    let mut info_without_reason = info;
    info_without_reason.status_reason = None;
    assert_eq!(
        serde_json::to_value(SessionInfo::from(info_without_reason.clone())).expect("wire"),
        serde_json::to_value(&info_without_reason).expect("domain"),
    );
    let read: SessionInfo = serde_json::from_value(domain).expect("reads back");
    assert_eq!(read.last_seq, 17);

    for (status, old_path) in [
        ("added", None),
        ("modified", None),
        ("deleted", None),
        ("renamed", Some("old.rs".to_owned())),
    ] {
        let file = crate::workspace::FileDiff {
            path: "src/a.rs".to_owned(),
            old_path,
            status,
            additions: 3,
            deletions: 1,
            patch: "@@ -1 +1 @@\n-a\n+b\n".to_owned(),
            base_text: Some("a\n".to_owned()),
            new_text: Some("b\n".to_owned()),
            binary: false,
        };
        let domain = serde_json::to_value(&file).expect("domain");
        let wire = serde_json::to_value(FileDiff::try_from(file).expect("known")).expect("wire");
        assert_eq!(wire, domain);
    }

    let status = crate::workspace::operations::Status {
        branch: "tether/x".to_owned(),
        base_branch: "main".to_owned(),
        ahead_of_base: 1,
        behind_base: 0,
        upstream: Some(crate::workspace::operations::Upstream {
            name: "origin/tether/x".to_owned(),
            ahead: 0,
            behind: 2,
        }),
        files: vec![crate::workspace::operations::FileStatus {
            path: "a.txt".to_owned(),
            index: "A".to_owned(),
            worktree: " ".to_owned(),
        }],
    };
    let domain = serde_json::to_value(&status).expect("domain");
    assert_eq!(
        serde_json::to_value(GitStatus::from(status)).expect("wire"),
        domain
    );
}

#[test]
fn findings_answer_in_their_two_shapes() {
    let finding: crate::session::Finding = serde_json::from_value(json!({
        "id": "r1", "startLine": 1, "endLine": 2, "severity": "high",
        "category": "bug", "title": "t", "body": "b"
    }))
    .expect("a finding");
    let open = FindingsResult::Open {
        findings: vec![SourcedFinding {
            finding: finding.clone(),
            source: crate::session::FindingSource::Review,
        }],
    };
    let mut expected = serde_json::to_value(&finding).expect("finding");
    expected["source"] = json!("review");
    let written = serde_json::to_value(&open).expect("open");
    assert_eq!(written, json!({"findings": [expected]}));
    assert_eq!(
        serde_json::from_value::<FindingsResult>(written).expect("reads back"),
        open
    );
    let recorded = FindingsResult::Recorded(ItemResult {
        item_id: "i1".to_owned(),
    });
    let written = serde_json::to_value(&recorded).expect("recorded");
    assert_eq!(written, json!({"itemId": "i1"}));
    assert_eq!(
        serde_json::from_value::<FindingsResult>(written).expect("reads back"),
        recorded
    );
}

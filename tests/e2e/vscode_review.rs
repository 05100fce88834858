//! A session's changes in a real VS Code (code-server): hunk-by-hunk review of a three-file
//! diff (tests/vscode/drive_review.mjs), accepting some hunks and rejecting others from the
//! review panel and the diff editor's title bar, what lands in the files and what the agent
//! is told, and the checkpoints timeline; the Git panel against a bare remote
//! (tests/vscode/drive_git.mjs); and a binary that is missing or of another version
//! (tests/vscode/drive_install.mjs).

use crate::support::{FakeModel, Reply, assert_shows, git, last_message};
use crate::vscode::{Workbench, sample_repository};

/// Two hunks in calc/ops.py (lines 5 and 23, far enough apart), one in README.md, a new file.
const CHANGES: &[(&str, &str)] = &[
    (
        "edit_file",
        r#"{"path": "calc/ops.py", "old_string": "    \"\"\"Return a + b.\"\"\"\n", "new_string": "    \"\"\"Return the sum of a and b.\"\"\"\n"}"#,
    ),
    (
        "edit_file",
        r#"{"path": "calc/ops.py", "old_string": "    return a / b\n", "new_string": "    return a / b  # true division\n"}"#,
    ),
    (
        "edit_file",
        r##"{"path": "README.md", "old_string": "# calc\n", "new_string": "# calc, a sample\n"}"##,
    ),
    (
        "write_file",
        r#"{"path": "calc/extra.py", "content": "def extra():\n    return 42\n"}"#,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs code-server, Chromium and the packaged extension: scripts/code-server.sh installs them, scripts/test.sh runs this"]
async fn vs_code_reviews_a_three_file_diff_hunk_by_hunk() {
    let env = sample_repository();
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(CHANGES));
    model.push(Reply::text(&["tidied up"]));
    model.push(Reply::text(&["understood"]));
    env.write_user_config(&format!(
        "default_provider = \"fake\"\n\n[review]\nauto = false\n\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake-model\"\nmax_retries = 0\ntimeout_secs = 10\n",
        model.base_url()
    ));

    let workbench = Workbench::start(&env, &[]).await;
    let results = workbench.drive("drive_review.mjs", &[]).await;

    assert_shows(
        &results,
        &[
            ("progress_start", "0 of 4 hunks reviewed"),
            ("progress_after_readme", "1 of 4 hunks reviewed"),
            ("progress_after_reject", "2 of 4 hunks reviewed"),
            ("progress_after_title_action", "3 of 4 hunks reviewed"),
            ("progress_end", "4 of 4 hunks reviewed"),
        ],
    );
    // The conflict: shown on the hunk and said, nothing written, the hunk still open.
    let section = results["conflict_section"].as_str().unwrap_or_default();
    assert!(
        section.contains("You changed these lines too: not applied"),
        "{results:#}"
    );
    assert!(
        results["progress_conflict"]
            .as_str()
            .is_some_and(|text| text.contains("0 of 4")),
        "{results:#}"
    );
    assert!(
        results["conflict_notice"]
            .as_str()
            .is_some_and(|text| text.contains("README.md hunk #0: you changed the same lines")),
        "{results:#}"
    );
    assert!(
        results["readme_after_conflict"]
            .as_str()
            .is_some_and(|text| text.starts_with("# calc (mine)\n")),
        "{results:#}"
    );
    // The buffers: the accepted hunks, not the rejected ones; the rejected new file is not made.
    let ops = results["ops_buffer"].as_str().unwrap_or_default();
    assert!(ops.contains("return a / b  # true division"), "{ops}");
    assert!(ops.contains("\"\"\"Return a + b.\"\"\""), "{ops}");
    assert!(!ops.contains("the sum of a and b"), "{ops}");
    let readme = results["readme_buffer"].as_str().unwrap_or_default();
    assert!(readme.starts_with("# calc, a sample"), "{readme}");
    assert!(!env.repo().join("calc/extra.py").exists());

    // The follow-up carries what the user rejected, and only that.
    let requests = model.requests();
    assert_eq!(requests.len(), 3, "every scripted reply was asked for");
    let told = last_message(&requests[2]);
    assert!(
        told.contains("rejected these hunks")
            && told.contains("calc/ops.py hunk #0")
            && told.contains("calc/extra.py hunk #0")
            && !told.contains("calc/ops.py hunk #1")
            && !told.contains("README.md hunk"),
        "{told}"
    );
    assert!(told.ends_with("thanks"), "{told}");

    // The timeline: the turn with its files and counts; a rewind to the start, then its undo.
    assert_shows(
        &results,
        &[
            ("timeline", "turn 1 · 3 files +5 −3"),
            ("timeline", "calc/extra.py (added) +2 −0"),
            ("timeline", "Rewind here"),
            ("timeline_rewound", "before the rewind to start"),
            ("timeline_undone", "before the rewind to before-rewind-1"),
        ],
    );
    let worktree = std::fs::read_dir(env.home().join("state/worktrees"))
        .expect("worktrees")
        .flatten()
        .flat_map(|repo| {
            std::fs::read_dir(repo.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|entry| entry.path())
        .next()
        .expect("the session's worktree");
    assert!(
        worktree.join("calc/extra.py").exists(),
        "the undo put back what the rewind took: {worktree:?}"
    );
    workbench.assert_screenshots(&[
        "review",
        "review-conflict",
        "review-diff",
        "reviewed",
        "timeline",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs code-server, Chromium and the packaged extension: scripts/code-server.sh installs them, scripts/test.sh runs this"]
async fn vs_code_git_panel_stages_commits_pushes_and_merges() {
    let env = sample_repository();
    env.identify_user();
    let remote = env.home().join("remote.git");
    git(
        env.home(),
        &["init", "-q", "--bare", remote.to_str().expect("path")],
    );
    git(
        &env.repo(),
        &["remote", "add", "origin", remote.to_str().expect("path")],
    );
    let model = FakeModel::start().await;
    model.push(Reply::tool_calls(&CHANGES[2..]));
    model.push(Reply::text(&["tidied up"]));
    env.write_user_config(&format!(
        "default_provider = \"fake\"\n\n[review]\nauto = false\n\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake-model\"\nmax_retries = 0\ntimeout_secs = 10\n",
        model.base_url()
    ));

    let workbench = Workbench::start(&env, &[]).await;
    let results = workbench
        .drive(
            "drive_git.mjs",
            &[("TETHER_REMOTE", remote.to_str().expect("path"))],
        )
        .await;

    assert_shows(
        &results,
        &[
            ("git_before", "Changes (2)"),
            ("git_before", "U calc/extra.py"),
            ("git_before", "M README.md"),
            ("git_before", "0 ahead, 0 behind · not pushed yet"),
            ("git_refusal", "nothing is staged; stage files first"),
            ("git_one_staged", "Staged (1)"),
            ("git_committed", "1 ahead, 0 behind"),
            ("git_pushed", ": up to date"),
            ("git_push_refused", "not a fast-forward"),
            ("git_merged", "0 ahead, 0 behind"),
        ],
    );
    // The branch reached the remote; the commit is on main, in the user's files too.
    let branch = git(
        &remote,
        &["for-each-ref", "--format=%(refname)", "refs/heads/tether/"],
    );
    assert!(
        branch.contains("refs/heads/tether/tidy-the-calculator"),
        "{branch}"
    );
    // The refused push left the other commit on the remote's branch.
    let remote_log = git(
        &remote,
        &[
            "log",
            "--format=%s",
            "refs/heads/tether/tidy-the-calculator",
        ],
    );
    assert!(remote_log.starts_with("theirs"), "{remote_log}");
    let log = git(&env.repo(), &["log", "--format=%s", "main"]);
    assert!(log.contains("Tidy the calculator"), "{log}");
    assert!(env.repo().join("calc/extra.py").exists());
    workbench.assert_screenshots(&["git", "git-push-refused", "git-merged"]);
}

/// The binary missing, then of another version: a clear message with the exact install
/// command, and the ways forward as buttons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs code-server, Chromium and the packaged extension: scripts/code-server.sh installs them, scripts/test.sh runs this"]
async fn vs_code_says_when_the_binary_is_missing_or_another_version() {
    let env = sample_repository();
    let missing = env.home().join("no-such-dir/tether");
    let workbench =
        Workbench::start(&env, &[("tether.path", missing.to_str().expect("path"))]).await;
    let results = workbench
        .drive("drive_install.mjs", &[("TETHER_INSTALL_CASE", "missing")])
        .await;
    let notice = results["notice"].as_str().unwrap_or_default();
    assert!(
        notice.contains("no-such-dir/tether does not exist")
            && notice
                .contains("cargo install --locked --git https://example.invalid/tether.git tether"),
        "{results:#}"
    );
    assert_eq!(
        results["buttons"],
        serde_json::json!(["Install with cargo", "Set tether.path"]),
        "{results:#}"
    );
    drop(workbench);

    // A binary of another version: said, with the same offer.
    let other = env.home().join("bin/tether");
    std::fs::create_dir_all(other.parent().expect("parent")).expect("mkdir");
    std::fs::write(&other, "#!/bin/sh\necho 'tether 9.9.0'\n").expect("write");
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let workbench = Workbench::start(&env, &[("tether.path", other.to_str().expect("path"))]).await;
    let results = workbench
        .drive("drive_install.mjs", &[("TETHER_INSTALL_CASE", "version")])
        .await;
    let notice = results["notice"].as_str().unwrap_or_default();
    assert!(
        notice.contains("is tether 9.9.0, but this extension is 0.1.0"),
        "{results:#}"
    );
    workbench.assert_screenshots(&["binary-missing", "binary-version"]);
}

//! `tether doctor`: the report on a healthy set-up and on a broken one, and that a key's value
//! never appears in it.

use serde_json::Value;

use crate::support::{FakeModel, TestEnv, isolated_command};

const SECRET: &str = "sk-doctor-secret-value-0451";

async fn doctor(env: &TestEnv, extra: &[(&str, &str)], json: bool) -> std::process::Output {
    let mut command = isolated_command(env.home());
    command.args(["doctor", "--repo"]).arg(env.repo());
    if json {
        command.arg("--json");
    }
    command
        .envs(extra.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run tether doctor")
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|check| check["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_set_up_and_never_prints_a_key() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    env.write_user_config(&format!(
        "default_provider = \"fake\"\n\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{url}\"\n\n\
         [providers.keyed]\nkind = \"openai\"\nbase_url = \"{url}\"\napi_key_env = \"TETHER_DOCTOR_KEY\"\n",
        url = model.base_url()
    ));
    // An editor starts the daemon; the doctor sees it.
    let server = env.server(&model).await;
    let output = doctor(&env, &[("TETHER_DOCTOR_KEY", SECRET)], true).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(!stdout.contains(SECRET), "the key is printed: {stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(check(&report, "git")["status"], "ok", "{report}");
    assert!(
        check(&report, "git")["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("git version")),
        "{report}"
    );
    // The kernel decides this one: confined, or said plainly that it is not.
    let sandbox = check(&report, "sandbox");
    assert!(
        sandbox["status"] == "ok" || sandbox["fix"].is_string(),
        "{sandbox}"
    );
    let fake = check(&report, "provider fake");
    assert_eq!(fake["status"], "ok", "{fake}");
    assert!(
        fake["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("answers") && detail.contains("(default)")),
        "{fake}"
    );
    let keyed = check(&report, "provider keyed");
    assert_eq!(keyed["status"], "ok", "{keyed}");
    assert!(
        keyed["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("key in TETHER_DOCTOR_KEY")),
        "{keyed}"
    );
    // Built-in agents that are not installed are worth knowing, not failures.
    assert_eq!(
        check(&report, "provider claude")["status"],
        "info",
        "{report}"
    );
    assert_eq!(check(&report, "daemon")["status"], "ok", "{report}");
    assert_eq!(check(&report, "state folder")["status"], "ok", "{report}");
    // No model was asked anything: reachability is a plain request without the key.
    assert!(
        model
            .requests()
            .iter()
            .all(|request| !request.to_string().contains(SECRET)),
        "the key was sent"
    );
    // The text report: one line each.
    let text = doctor(&env, &[("TETHER_DOCTOR_KEY", SECRET)], false).await;
    let text_out = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success(), "{text:?}");
    assert!(!text_out.contains(SECRET), "{text_out}");
    assert!(
        text_out
            .lines()
            .any(|line| line.starts_with("ok") && line.contains("provider fake")),
        "{text_out}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_what_is_broken_and_how_to_fix_it() {
    let env = TestEnv::new();
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    env.write_user_config(&format!(
        "default_provider = \"gone\"\n\n[providers.gone]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{closed}/v1\"\n\n\
         [providers.keyless]\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:{closed}\"\napi_key_env = \"TETHER_DOCTOR_UNSET\"\n\n\
         [providers.agent]\nkind = \"acp\"\ncommand = \"no-such-agent-acp\"\n"
    ));
    // The repository tries to loosen the sandbox: ignored, and said.
    std::fs::create_dir_all(env.repo().join(".tether")).expect("mkdir");
    std::fs::write(
        env.repo().join(".tether/config.toml"),
        "[session]\nsandbox = \"off\"\n",
    )
    .expect("write");
    // The state folder is a file; git is not on PATH.
    let state = env.home().join("state-is-a-file");
    std::fs::write(&state, "").expect("write");
    let empty_path = env.home().join("empty-bin");
    std::fs::create_dir_all(&empty_path).expect("mkdir");
    let state_env = state.to_string_lossy().into_owned();
    let path_env = empty_path.to_string_lossy().into_owned();
    let vars = [
        ("TETHER_HOME", state_env.as_str()),
        ("PATH", path_env.as_str()),
    ];
    let output = doctor(&env, &vars, true).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["ok"], false);
    let git = check(&report, "git");
    assert_eq!(git["status"], "fail", "{git}");
    assert!(
        git["fix"]
            .as_str()
            .is_some_and(|fix| fix.contains("install git")),
        "{git}"
    );
    let settings = check(&report, "settings");
    assert_eq!(settings["status"], "warn", "{settings}");
    assert!(
        settings["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("session.sandbox")),
        "{settings}"
    );
    let gone = check(&report, "provider gone");
    assert_eq!(gone["status"], "fail", "the default provider: {gone}");
    assert!(
        gone["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("cannot be reached")),
        "{gone}"
    );
    assert!(
        gone["fix"]
            .as_str()
            .is_some_and(|fix| fix.contains("base_url")),
        "{gone}"
    );
    let keyless = check(&report, "provider keyless");
    assert_eq!(keyless["status"], "warn", "{keyless}");
    assert!(
        keyless["fix"]
            .as_str()
            .is_some_and(|fix| fix.contains("TETHER_DOCTOR_UNSET")),
        "{keyless}"
    );
    let agent = check(&report, "provider agent");
    assert_eq!(agent["status"], "warn", "{agent}");
    assert!(
        agent["fix"]
            .as_str()
            .is_some_and(|fix| fix.contains("no-such-agent-acp")),
        "{agent}"
    );
    assert_eq!(check(&report, "daemon")["status"], "info", "{report}");
    let folder = check(&report, "state folder");
    assert_eq!(folder["status"], "fail", "{folder}");
    assert!(
        folder["fix"]
            .as_str()
            .is_some_and(|fix| fix.contains("TETHER_HOME")),
        "{folder}"
    );

    // Settings that cannot be read fail, naming the file; the rest is still checked.
    env.write_user_config("default_provider = [\n");
    let output = doctor(&env, &[], false).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|line| line.contains("settings"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.starts_with("FAIL") && line.contains("config.toml"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("ok") && line.contains("git")),
        "{text}"
    );
}

/// The clients check the binary's version against their own: all three must move together.
#[test]
fn the_editor_clients_carry_the_binarys_version() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let package: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("editors/vscode/package.json")).expect("package.json"),
    )
    .expect("JSON");
    assert_eq!(package["version"], env!("CARGO_PKG_VERSION"));
    let plugin =
        std::fs::read_to_string(root.join("editors/nvim/lua/tether/init.lua")).expect("init.lua");
    let wanted = format!("M.version = \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(plugin.contains(&wanted), "the Neovim plugin says {wanted}");
}

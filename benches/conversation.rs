//! Compaction of a 200-turn session: what the summary's model call is sent (bytes, tokens),
//! how long `tether/session/compact` takes to the recorded summary (a fake model that answers
//! at once, so the figure is tether's own work: the history, the request, the events), and
//! how much smaller the next turn's request is.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::ms;
use super::support::{FakeModel, LspClient, Reply, TestEnv};

const TURNS: usize = 200;

async fn wait_for_turns(client: &LspClient, id: &str, waiting: usize) {
    while client
        .session_events(id)
        .iter()
        .filter(|params| {
            params["event"]["kind"] == "status" && params["event"]["status"] == "waiting"
        })
        .count()
        < waiting
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn tokens_of(request: &Value) -> usize {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|message| message["content"].as_str().unwrap_or_default().len())
        .sum::<usize>()
        / 4
}

pub async fn bench_compaction() {
    let env = TestEnv::new();
    let model = FakeModel::start().await;
    let reply = "Done: I changed the handler, ran the tests (all 214 pass) and updated the docs. "
        .repeat(5);
    model.set_fallback(Reply::text_with_usage(&[&reply], 1_000, 100));
    let mut settings = model.settings();
    // No automatic compaction while the session grows.
    settings["context"] = json!({"compact_at": 0});
    let mut client = LspClient::spawn(env.home()).await;
    client.initialize(&env.repo(), settings, true).await;
    let ask = "Please look at the next module, fix what the tests say and tell me what you did. "
        .repeat(3);
    let (_, id) = client.create(json!({"prompt": ask, "name": "long"})).await;
    wait_for_turns(&client, &id, 1).await;
    let grown = Instant::now();
    for turn in 2..=TURNS {
        client
            .call("tether/session/send", json!({"id": id, "text": ask}))
            .await;
        wait_for_turns(&client, &id, turn).await;
    }
    let growing = grown.elapsed();
    let before = model.requests().last().cloned().unwrap_or_default();

    let summary = "The user asked for 200 modules to be fixed; each was, tests pass. ".repeat(20);
    model.push(Reply::text_with_usage(&[&summary], 60_000, 400));
    let started = Instant::now();
    client
        .call("tether/session/compact", json!({"id": id}))
        .await;
    while !client.session_events(&id).iter().any(|params| {
        params["event"]["kind"] == "item" && params["event"]["item"]["role"] == "summary"
    }) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let compacting = started.elapsed();
    wait_for_turns(&client, &id, TURNS + 1).await;
    let asked = model.requests().last().cloned().unwrap_or_default();
    client
        .call("tether/session/send", json!({"id": id, "text": ask}))
        .await;
    wait_for_turns(&client, &id, TURNS + 2).await;
    let after = model.requests().last().cloned().unwrap_or_default();

    println!("compaction of a {TURNS}-turn session (fake model answering at once)");
    println!(
        "  {TURNS} turns grown in {} ({} per turn)",
        ms(growing),
        ms(growing / TURNS as u32)
    );
    println!(
        "  the summary's call: {} messages, {} KiB, ~{} tokens sent; summary ~{} tokens",
        asked["messages"].as_array().map_or(0, Vec::len),
        asked.to_string().len() / 1024,
        tokens_of(&asked),
        summary.len() / 4
    );
    println!(
        "  compact → summary recorded: {} (target: the model's time plus < 50 ms)",
        ms(compacting)
    );
    println!(
        "  next turn's request: {} → {} messages, ~{} → ~{} tokens\n",
        before["messages"].as_array().map_or(0, Vec::len),
        after["messages"].as_array().map_or(0, Vec::len),
        tokens_of(&before),
        tokens_of(&after)
    );
    client.shutdown().await;
}

/// `@` completion on the 20,000-file repository, over stdio: the first call (the walk and
/// the match) and warm ones (the kept walk, the match).
pub async fn bench_completion() {
    let env = TestEnv::new();
    let big = env.home().join("big");
    super::generated_repo(&big, 20_000);
    let model = FakeModel::start().await;
    let mut client = LspClient::spawn(env.home()).await;
    client.initialize(&big, model.settings(), true).await;
    let root = big.display().to_string();
    let ask = |text: &'static str| json!({"root": root, "text": text});
    let started = Instant::now();
    let first = client
        .call("tether/session/completions", ask("look at @mod12"))
        .await;
    let cold = started.elapsed();
    let mut warm = Vec::new();
    for query in ["@mod12", "@src/module_001", "@rs", "@m5f3", "@lib"]
        .iter()
        .cycle()
        .take(200)
    {
        let started = Instant::now();
        let got = client
            .call(
                "tether/session/completions",
                json!({"root": root, "text": query}),
            )
            .await;
        warm.push(started.elapsed());
        assert!(got["items"].is_array());
    }
    warm.sort();
    println!("@ completion on a 20,000-file repository (round trip over stdio)");
    println!(
        "  first: {} with {} items (target < 50 ms)",
        ms(cold),
        first["items"].as_array().map_or(0, Vec::len)
    );
    println!(
        "  warm: p50 {}, p95 {}, max {} (target < 10 ms)\n",
        ms(super::percentile(&warm, 0.5)),
        ms(super::percentile(&warm, 0.95)),
        ms(*warm.last().unwrap_or(&Duration::ZERO))
    );
    client.shutdown().await;
}

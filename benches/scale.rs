//! One daemon holding 10, 100 and 1,000 sessions, a tenth of them streaming from the fake
//! model: the daemon's RSS, `list` over its socket (p50, p99), and how fast streamed events
//! reach a subscribed front.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether::session::{Event, EventRecord, Item, ItemPhase, MessageRole};

use super::support::{FakeModel, Reply, TestEnv};
use super::{bench_spec, ms, percentile, rss_kib};

/// Writes `count` settled sessions of 100 events each into the state folder.
fn write_idle_sessions(state: &Path, repo: &Path, count: usize) {
    let store = tether::store::RepoStore::open(state, repo).expect("store");
    for session in 0..count {
        let id = format!("idle{session:05}");
        let mut log = store.create_log(&id).expect("log");
        let spec = bench_spec(&id, &format!("idle-{session}"), repo, state, session as u64);
        let mut events = vec![
            Event::Created {
                session: Box::new(spec),
            },
            Event::Item {
                phase: ItemPhase::Started,
                item: Item::Message {
                    id: "a".into(),
                    role: MessageRole::Agent,
                    text: String::new(),
                    interrupted: false,
                    attachments: Vec::new(),
                },
            },
        ];
        while events.len() < 98 {
            events.push(Event::Delta {
                item_id: "a".into(),
                text: "words ".into(),
            });
        }
        events.push(Event::Item {
            phase: ItemPhase::Completed,
            item: Item::Message {
                id: "a".into(),
                role: MessageRole::Agent,
                text: "words ".repeat(96),
                interrupted: false,
                attachments: Vec::new(),
            },
        });
        events.push(Event::Status {
            status: tether::session::SessionStatus::Waiting,
            activity: None,
            reason: None,
        });
        for (seq, event) in events.into_iter().enumerate() {
            log.append(&EventRecord {
                seq: seq as u64 + 1,
                at: seq as u64,
                event,
            })
            .expect("append");
        }
    }
}

async fn one_size(total: usize) {
    let working = (total / 10).max(1);
    let env = TestEnv::new();
    let state = env.home().join("state");
    let repo = env.repo().canonicalize().expect("canonical repo");
    write_idle_sessions(&state, &repo, total - working);
    let model = FakeModel::start().await;
    let words: Vec<String> = (0..2_000).map(|n| format!("w{n} ")).collect();
    let pieces: Vec<&str> = words.iter().map(String::as_str).collect();
    model.set_fallback(Reply::text_paced(&pieces, Duration::from_millis(5)));
    let config = env.home().join("config/tether");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("config.toml"),
        format!(
            "default_provider = \"fake\"\n[review]\nauto = false\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake\"\n[session]\nmax_working = {working}\n",
            model.base_url()
        ),
    )
    .expect("config");
    let mut daemon = super::daemon::spawn_daemon(env.home());
    let (notifications, mut events) = tokio::sync::mpsc::unbounded_channel();
    let client = super::daemon::attach(&super::daemon::paths(env.home()), notifications).await;
    let opened = Instant::now();
    let _: Value = client
        .call("daemon/open", &json!({"root": repo}))
        .await
        .expect("open");
    let load = opened.elapsed();
    let _: Value = client
        .call("daemon/subscribe", &json!({}))
        .await
        .expect("subscribe");
    for index in 0..working {
        let _: Value = client
            .call(
                "tether/session/create",
                &json!({"prompt": format!("stream {index}"), "root": repo}),
            )
            .await
            .expect("create");
    }
    // Let every working session reach its stream.
    let settle = Instant::now() + Duration::from_secs(20);
    let mut deltas = 0usize;
    while Instant::now() < settle && deltas < working * 20 {
        if let Ok(Some((_, params))) =
            tokio::time::timeout(Duration::from_millis(100), events.recv()).await
            && params["event"]["kind"] == "delta"
        {
            deltas += 1;
        }
    }
    // Events reaching the front while `list` is asked, 300 times, each timed from when the
    // daemon logged it (its `at`, in ms) to when the front read it.
    let latencies = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let reader = {
        let latencies = latencies.clone();
        tokio::spawn(async move {
            while let Some((_, params)) = events.recv().await {
                let now = tether::session::now_millis();
                if let Some(at) = params["at"].as_u64() {
                    latencies.lock().expect("lock").push(now.saturating_sub(at));
                }
            }
        })
    };
    let mut lists = Vec::new();
    let counting = Instant::now();
    for _ in 0..300 {
        let started = Instant::now();
        client
            .call_value("tether/session/list", json!({}))
            .await
            .expect("list");
        lists.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("lock"));
    let rate = latencies.len() as f64 / counting.elapsed().as_secs_f64();
    reader.abort();
    lists.sort();
    latencies.sort_unstable();
    let latency = |fraction: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * fraction) as usize)
            .copied()
            .unwrap_or_default()
    };
    let rss = rss_kib(daemon.id());
    println!(
        "  {total:>5} sessions ({working} streaming): load {} · RSS {:.1} MB · list p50 {} p99 {} · {:.0} events/s to the front, logged → read p50 {} ms p99 {} ms",
        ms(load),
        rss as f64 / 1024.0,
        ms(percentile(&lists, 0.5)),
        ms(percentile(&lists, 0.99)),
        rate,
        latency(0.5),
        latency(0.99)
    );
    let _ = client.call_value("daemon/stop", json!({})).await;
    let _ = tokio::task::spawn_blocking(move || daemon.wait()).await;
}

pub async fn bench_scale() {
    println!("one daemon, many sessions (a tenth streaming, 5 ms between chunks)");
    for total in [10, 100, 1_000] {
        one_size(total).await;
    }
    println!();
}

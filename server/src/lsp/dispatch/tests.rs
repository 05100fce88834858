use std::time::Duration;

use tower_lsp_server::jsonrpc::ErrorCode;

use super::*;

/// How many requests tower-lsp-server runs at once; the dispatcher must do better.
const TOWER_SLOTS: usize = 4;

/// The session runtime, as `main` builds it (two workers).
fn work_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The LSP thread's runtime, as `main` builds it.
fn lsp_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn a_snapshot_answers_while_more_blocking_requests_than_tower_has_slots_are_stuck() {
    let work = work_runtime();
    let scheduler = Scheduler::new(work.handle().clone());
    let lsp = lsp_runtime();
    let stuck = TOWER_SLOTS + 2;
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Arc::new(std::sync::Mutex::new(gate));
    let (started, mut started_count) = tokio::sync::mpsc::unbounded_channel();
    lsp.block_on(async {
        let mut slow = Vec::new();
        for index in 0..stuck {
            let gate = gate.clone();
            let started = started.clone();
            let scheduler = scheduler.clone();
            // Each holds its thread in a plain blocking wait, as a hung `git push` does.
            slow.push(tokio::spawn(async move {
                scheduler
                    .run(Schedule::Blocking, "tether/session/git", async move {
                        let _ = started.send(index);
                        let _ = gate
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        Ok(index)
                    })
                    .await
            }));
        }
        // Every slow one is running on a thread of its own (one holds the gate's lock, the
        // rest wait for it): together they hold more threads than tower has slots.
        for _ in 0..stuck {
            tokio::time::timeout(Duration::from_secs(30), started_count.recv())
                .await
                .expect("every slow request starts")
                .expect("a start");
        }

        let lsp_thread = std::thread::current().id();
        let listed = scheduler
            .run(Schedule::Snapshot, "tether/session/list", async move {
                Ok(std::thread::current().id())
            })
            .await
            .expect("answered");
        assert_eq!(listed, lsp_thread, "a snapshot read runs on the LSP thread");
        let awaited = scheduler
            .run(Schedule::Runtime, "tether/session/stop", async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(std::thread::current().id())
            })
            .await
            .expect("async work is not held up by blocked threads either");
        assert_ne!(awaited, lsp_thread);
        assert!(
            slow.iter().all(|task| !task.is_finished()),
            "the slow ones are still stuck"
        );

        for _ in 0..stuck {
            release.send(()).expect("released");
        }
        let mut finished = Vec::new();
        for task in slow {
            finished.push(task.await.expect("joined").expect("answered"));
        }
        finished.sort_unstable();
        assert_eq!(finished, (0..stuck).collect::<Vec<_>>());
    });
    drop(lsp);
    work.shutdown_timeout(Duration::from_secs(5));
}

#[test]
fn blocking_work_leaves_the_lsp_thread_and_can_await() {
    let work = work_runtime();
    let scheduler = Scheduler::new(work.handle().clone());
    lsp_runtime().block_on(async {
        let lsp_thread = std::thread::current().id();
        let ran_on = scheduler
            .run(Schedule::Blocking, "tether/session/get", async {
                // What a handler awaits inside (a git process, a spawned task) still runs.
                let spawned = tokio::spawn(async { 7 }).await.expect("joined");
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok((std::thread::current().id(), spawned))
            })
            .await
            .expect("answered");
        assert_ne!(ran_on.0, lsp_thread);
        assert_eq!(ran_on.1, 7);
    });
    work.shutdown_timeout(Duration::from_secs(5));
}

#[test]
fn a_panicking_handler_answers_with_an_internal_error_on_every_schedule() {
    let work = work_runtime();
    let scheduler = Scheduler::new(work.handle().clone());
    lsp_runtime().block_on(async {
        for schedule in [Schedule::Snapshot, Schedule::Runtime, Schedule::Blocking] {
            let answer: jsonrpc::Result<u8> = scheduler
                .run(schedule, "tether/session/list", async {
                    let items: Vec<u8> = Vec::new();
                    #[allow(clippy::indexing_slicing)]
                    let first = items[3];
                    Ok(first)
                })
                .await;
            let error = answer.expect_err("a panic is an error reply");
            assert_eq!(
                error.code,
                ErrorCode::ServerError(api::error_code::INTERNAL),
                "{schedule:?}"
            );
            assert!(
                error.message.contains("tether/session/list"),
                "{}",
                error.message
            );
            assert!(
                error.message.contains("index out of bounds"),
                "{}",
                error.message
            );
            let fine = scheduler
                .run(schedule, "tether/session/list", async { Ok(3) })
                .await;
            assert_eq!(fine.expect("passes through"), 3);
        }
    });
    work.shutdown_timeout(Duration::from_secs(5));
}

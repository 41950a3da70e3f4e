//! Timeouts and cancellation: cooperative at `await`, asynchronous exceptions for CPU loops, no stale interrupts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bifrost_engine::ExecutionStatus;
use common::*;
use serde_json::json;

const SRC: &str = r#"
import asyncio, time
from bifrost import workflow

@workflow(name="to_spin", description="cpu loop")
async def to_spin():
    while True:
        pass

@workflow(name="to_spin_swallow", description="cpu loop that swallows Exception")
async def to_spin_swallow():
    while True:
        try:
            while True:
                pass
        except Exception:
            pass

@workflow(name="to_sleep", description="sleeps an hour")
async def to_sleep():
    await asyncio.sleep(3600)

@workflow(name="to_sync_spin", description="plain def cpu loop")
def to_sync_spin():
    n = 0
    while True:
        n += 1

@workflow(name="to_short", description="own timeout", timeout_seconds=1)
async def to_short():
    await asyncio.sleep(30)

@workflow(name="to_quick", description="quick")
async def to_quick(i: int = 0):
    await asyncio.sleep(0)
    total = 0
    for k in range(2000):
        total += k
    return {"i": i, "total": total}
"#;

/// Tests that hog an engine thread take this lock, so at most one thread spins at a time
/// and the least-loaded dispatch always has a free thread for the others.
static SPIN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn setup() -> tokio::sync::MutexGuard<'static, ()> {
    let guard = SPIN.lock().await;
    add("timeouts_wf.py", SRC).await;
    guard
}

#[tokio::test]
async fn cpu_loop_times_out_and_thread_stays_clean() {
    let _spin = setup().await;
    let t = Instant::now();
    let o = run_with_timeout("to_spin", json!({}), Duration::from_millis(300)).await;
    assert_eq!(o.status, ExecutionStatus::Timeout, "{o:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let err = o.error.unwrap();
    assert_eq!(err.error_type, "Timeout");
    assert!(
        err.message.contains("timed out after 0.3 seconds"),
        "{}",
        err.message
    );
    // No stale interrupt leaks into later work on either thread.
    for i in 0..200 {
        let o = run("to_quick", json!({"i": i})).await;
        assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    }
}

#[tokio::test]
async fn except_exception_does_not_swallow_the_timeout() {
    let _spin = setup().await;
    let o = run_with_timeout("to_spin_swallow", json!({}), Duration::from_millis(300)).await;
    assert_eq!(o.status, ExecutionStatus::Timeout, "{o:?}");
}

#[tokio::test]
async fn awaiting_workflow_times_out_cooperatively() {
    let _spin = setup().await;
    let t = Instant::now();
    let o = run_with_timeout("to_sleep", json!({}), Duration::from_millis(200)).await;
    assert_eq!(o.status, ExecutionStatus::Timeout, "{o:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn workflow_timeout_seconds_applies_without_override() {
    let _spin = setup().await;
    let t = Instant::now();
    let o = run("to_short", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Timeout, "{o:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn plain_def_cpu_loop_times_out() {
    let _spin = setup().await;
    let o = run_with_timeout("to_sync_spin", json!({}), Duration::from_millis(300)).await;
    assert_eq!(o.status, ExecutionStatus::Timeout, "{o:?}");
}

#[tokio::test]
async fn cancel_sleeping_and_spinning_executions() {
    let _spin = setup().await;
    let engine = &env().engine;
    for (name, id) in [("to_sleep", "cancel-sleep"), ("to_spin", "cancel-spin")] {
        let mut req = request(name, json!({}));
        req.execution_id = id.into();
        let e2 = engine.clone();
        let handle = tokio::spawn(async move { e2.execute(req).await.unwrap() });
        // Wait until it runs.
        let t = Instant::now();
        while !engine.cancel(id) {
            assert!(t.elapsed() < Duration::from_secs(5), "{id} never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let o = tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o.status, ExecutionStatus::Cancelled, "{o:?}");
        assert_eq!(o.error.unwrap().message, "Execution was cancelled");
    }
    assert!(!engine.cancel("no-such-execution"));
}

#[tokio::test]
async fn other_work_proceeds_while_a_thread_spins() {
    let _spin = setup().await;
    let engine = env().engine.clone();
    let mut req = request("to_spin", json!({}));
    req.execution_id = "spin-while-others-run".into();
    req.timeout = Some(Duration::from_secs(30));
    let e2 = engine.clone();
    let spin = tokio::spawn(async move { e2.execute(req).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..20 {
        let o = run("to_quick", json!({"i": i})).await;
        assert_eq!(o.status, ExecutionStatus::Success);
    }
    // All quick runs finished on the other thread while the spin still holds its own.
    assert!(!spin.is_finished());
    assert!(engine.cancel("spin-while-others-run"));
    assert_eq!(spin.await.unwrap().status, ExecutionStatus::Cancelled);
}

#[tokio::test]
async fn dropping_the_future_cancels_the_execution() {
    let _spin = setup().await;
    let engine = &env().engine;
    let mut req = request("to_sleep", json!({}));
    req.execution_id = "dropped-future".into();
    let fut = engine.execute(req);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), fut)
            .await
            .is_err()
    );
    let t = Instant::now();
    while engine.cancel("dropped-future") {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "dropped execution still running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

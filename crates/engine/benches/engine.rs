//! Engine benchmarks (harness = false): dispatch throughput, concurrent async waits, workspace discovery.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-engine cargo bench -p bifrost-engine`.
//! Depends only on the engine's public API; prints one line per figure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_engine::{Engine, EngineConfig, ExecutionRequest, ExecutionStatus};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(ws.join("gen")).unwrap();
    std::fs::write(
        ws.join("bench_wf.py"),
        r#"
import asyncio
from bifrost import workflow

@workflow(name="bench_trivial", description="trivial")
async def bench_trivial(n: int = 0):
    return {"n": n}

@workflow(name="bench_sleep", description="sleep 50 ms")
async def bench_sleep():
    await asyncio.sleep(0.05)
    return True
"#,
    )
    .unwrap();
    let threads: usize = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let engine = Engine::start(EngineConfig {
        workspace_dirs: vec![ws.clone()],
        threads,
        runtime: Some(rt.handle().clone()),
        ..EngineConfig::default()
    })
    .unwrap();
    println!(
        "python {} | engine threads {threads}",
        engine.python_version()
    );

    rt.block_on(async {
        // Warm-up.
        run_many(&engine, "bench_trivial", 2_000, 256).await;
        for (n, conc) in [(50_000usize, 256usize), (50_000, 1024)] {
            let t = Instant::now();
            run_many(&engine, "bench_trivial", n, conc).await;
            let el = t.elapsed();
            println!(
                "dispatch trivial async workflow: {n} executions, {conc} in flight: {:.0} ms -> {:.0} executions/s",
                el.as_secs_f64() * 1e3,
                n as f64 / el.as_secs_f64()
            );
        }
        let mut sequential = Duration::ZERO;
        for i in 0..2_000 {
            let t = Instant::now();
            let o = engine.execute(req("bench_trivial", i)).await.unwrap();
            sequential += t.elapsed();
            assert_eq!(o.status, ExecutionStatus::Success);
        }
        println!("sequential round trip: {:.1} us per execution", sequential.as_secs_f64() * 1e6 / 2_000.0);

        for _ in 0..3 {
            let t = Instant::now();
            run_many(&engine, "bench_sleep", 500, 500).await;
            println!("500 concurrent workflows awaiting 50 ms: {:.1} ms total", t.elapsed().as_secs_f64() * 1e3);
        }
    });

    // Discovery of a generated 200-file workspace.
    for i in 0..200 {
        std::fs::write(
            ws.join("gen").join(format!("wf_{i:03}.py")),
            format!(
                r#"
import logging
from bifrost import workflow, param, ExecutionContext

logger = logging.getLogger(__name__)

@workflow(name="gen_{i:03}", description="generated workflow {i}", category="Generated", tags=["gen"])
@param("name", "string", label="Name", required=True, help_text="Who")
@param("count", "int", default_value=1)
async def gen_{i:03}(context: ExecutionContext, name: str, count: int = 1):
    """Generated workflow.

    Args:
        name: who to greet
        count: how often
    """
    logger.info("hi %s", name)
    return {{"name": name, "count": count}}

def helper_{i:03}(x: int) -> int:
    return x * 2
"#
            ),
        )
        .unwrap();
    }
    let t = Instant::now();
    let report = engine.rescan_blocking().unwrap();
    println!(
        "discovery of 200 new files: {:.0} ms ({} imported, {} workflows registered)",
        t.elapsed().as_secs_f64() * 1e3,
        report.imported.len(),
        report.registry.workflows.len()
    );
    let t = Instant::now();
    let report = engine.rescan_blocking().unwrap();
    println!(
        "rescan with nothing changed: {:.2} ms ({} imported)",
        t.elapsed().as_secs_f64() * 1e3,
        report.imported.len()
    );
    engine.stop();
}

fn req(name: &str, i: usize) -> ExecutionRequest {
    let mut input = serde_json::Map::new();
    input.insert("n".into(), serde_json::json!(i));
    ExecutionRequest {
        name: name.into(),
        input,
        ..ExecutionRequest::default()
    }
}

async fn run_many(engine: &Engine, name: &'static str, n: usize, concurrency: usize) {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let permit = Arc::clone(&sem).acquire_owned().await.unwrap();
        let engine = engine.clone();
        handles.push(tokio::spawn(async move {
            let o = engine.execute(req(name, i)).await.unwrap();
            drop(permit);
            assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

//! Load test of the HTTP API over loopback (issue: "GET /api/executions?limit=50 ≥ 10,000 req/s,
//! p99 < 10 ms with 100,000 stored executions; key authentication adds < 50 µs").
//!
//! Seeds the embedded backend with executions directly through the storage layer, creates a
//! platform-wide function key with the CLI (an operator's dashboard view of one organization via
//! `X-Organization-Id`), starts the release binary and drives it from this process with
//! `BENCH_CONNECTIONS` keep-alive connections for `BENCH_SECONDS`. Run:
//! `cargo bench -p bifrost --bench api` (env: BENCH_EXECUTIONS, BENCH_CONNECTIONS, BENCH_SECONDS).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost::executions::{ExecutionRecord, ExecutionStatus, Executions};
use bifrost_store::blob::LocalBlobs;
use bifrost_store::table::SqliteTables;
use bifrost_store::{OrgId, Scope};
use serde_json::json;

use support::{BenchServer, env_num};

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let executions_total = env_num("BENCH_EXECUTIONS", 100_000);
    let connections = env_num("BENCH_CONNECTIONS", 32) as usize;
    let seconds = env_num("BENCH_SECONDS", 10);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();

    // Seed: executions in one org's partition, as the API stores them.
    let org = OrgId::parse("bench-org").unwrap();
    let scope = Scope::Org(org.clone());
    {
        let tables = Arc::new(SqliteTables::open(&data.join("tables.sqlite")).unwrap());
        let blobs = Arc::new(LocalBlobs::open(&data.join("blobs")).unwrap());
        let ex = Executions::new(tables, blobs);
        ex.ensure_storage().await.unwrap();
        let started = Instant::now();
        let base = time::OffsetDateTime::now_utc() - time::Duration::days(30);
        for i in 0..executions_total {
            let record = ExecutionRecord {
                execution_id: format!("exec-{i:08}"),
                workflow_name: ["user_onboarding", "license_report", "simple_greeting"]
                    [(i % 3) as usize]
                    .into(),
                org_id: Some(org.to_string()),
                form_id: None,
                executed_by: format!("user-{}", i % 17),
                executed_by_email: format!("user{}@contoso.example", i % 17),
                executed_by_name: format!("User {}", i % 17),
                status: ExecutionStatus::Success,
                input_data: json!({"name": "Ada", "n": i}),
                result: Some(json!({"ok": true, "n": i})),
                result_type: Some("json".into()),
                error_type: None,
                error_message: None,
                duration_ms: Some(12),
                started_at: base + time::Duration::seconds(i as i64),
                completed_at: Some(base + time::Duration::seconds(i as i64 + 1)),
                attempt: 1,
                rights: Default::default(),
            };
            ex.create(&scope, &record).await.unwrap();
        }
        eprintln!(
            "seeded {executions_total} executions in {:.1?}",
            started.elapsed()
        );
    }

    let server = BenchServer::start(&data, &workspace);
    let (key, port) = (server.key.clone(), server.port);
    let url = format!("http://127.0.0.1:{port}/api/executions?limit=50");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client
            .get(&url)
            .header("x-functions-key", &key)
            .header("x-organization-id", org.as_str())
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.unwrap();
            let listed = body["executions"].as_array().map_or(0, Vec::len);
            assert_eq!(listed, 50, "the page must hold 50 executions: {body}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for (label, with_key) in [("with key", true)] {
        let stop = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let client = client.clone();
            let url = url.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < stop {
                    let t = Instant::now();
                    let mut req = client.get(&url).header("x-organization-id", "bench-org");
                    if with_key {
                        req = req.header("x-functions-key", &key);
                    }
                    let res = req.send().await.unwrap();
                    assert_eq!(res.status(), 200);
                    res.bytes().await.unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        println!(
            "GET /api/executions?limit=50 ({label}, {executions_total} stored, {connections} connections, {seconds}s): {:.0} req/s, p50 {:.2?}, p99 {:.2?}",
            all.len() as f64 / seconds as f64,
            pct(0.50),
            pct(0.99)
        );
    }
    drop(server);
}

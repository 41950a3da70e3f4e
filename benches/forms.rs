//! Forms over loopback HTTP against the release binary (issue: "form fetch p99 < 5 ms, cached data
//! provider p99 < 2 ms, server-side validation of a 50-field submission < 1 ms").
//!
//! Starts the release binary on the embedded backend with a workspace that holds a data provider
//! and a 50-field `*.form.json` (text, email, number, select, checkbox and datetime fields with
//! patterns, bounds, options and visibility expressions), a platform-wide function key, then
//! measures, one request at a time over one keep-alive connection (latency, not throughput):
//! 1. `GET /api/forms/{id}`;
//! 2. `POST /api/forms/{id}/data-providers/sites` answered from the shared cache;
//! 3. `POST /api/forms/{id}/validate` of a complete, valid 50-field submission (end to end,
//!    which bounds the validation itself from above).
//!
//! Run: `cargo bench -p bifrost --bench forms` (`BENCH_REQUESTS`, default 2000 per measurement).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use support::{BenchServer, env_num, pct};

const WORKSPACE: &str = r#"
from bifrost import workflow, param, data_provider


@workflow(name="submit", execution_mode="sync")
async def submit(context):
    return {"ok": True}


@data_provider(name="sites", cache_ttl_seconds=3600)
@param("region", "string", required=True)
async def sites(region: str):
    return [{"label": f"{region}-{i}", "value": f"{region}{i}"} for i in range(20)]
"#;

const FIELDS: usize = 50;

/// Field `i` of the form and a valid value for it.
fn field(i: usize) -> (Value, Value) {
    let name = format!("f{i}");
    match i % 6 {
        0 => (
            json!({"name": name, "label": format!("Text {i}"), "type": "text", "required": true,
                   "validation": {"pattern": "^[A-Za-z ]{2,40}$", "message": "letters only"}}),
            json!("Ada Lovelace"),
        ),
        1 => (
            json!({"name": name, "label": format!("Email {i}"), "type": "email", "required": true}),
            json!("ada@contoso.example"),
        ),
        2 => (
            json!({"name": name, "label": format!("Number {i}"), "type": "number",
                   "validation": {"min": 0, "max": 1000}}),
            json!(42),
        ),
        3 => (
            json!({"name": name, "label": format!("Select {i}"), "type": "select",
                   "options": [{"label": "One", "value": "one"}, {"label": "Two", "value": "two"}]}),
            json!("two"),
        ),
        4 => (
            json!({"name": name, "label": format!("Check {i}"), "type": "checkbox",
                   "visibilityExpression": format!("context.field.f{} == 'two'", i - 1)}),
            json!(true),
        ),
        _ => (
            json!({"name": name, "label": format!("When {i}"), "type": "datetime"}),
            json!("2026-11-26T10:00:00Z"),
        ),
    }
}

async fn measure(label: &str, n: usize, req: reqwest::RequestBuilder) {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let res = req.try_clone().unwrap().send().await.unwrap();
        let status = res.status();
        let body = res.bytes().await.unwrap();
        assert!(
            status.is_success(),
            "{label}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        latencies.push(t.elapsed());
    }
    latencies.sort();
    println!(
        "{label} ({n} requests, one connection): p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        pct(&latencies, 0.50),
        pct(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let n = env_num("BENCH_REQUESTS", 2000) as usize;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("bench.py"), WORKSPACE).unwrap();
    let mut fields: Vec<Value> = Vec::new();
    let mut values = Map::new();
    for i in 0..FIELDS - 1 {
        let (f, v) = field(i);
        values.insert(f["name"].as_str().unwrap().to_owned(), v);
        fields.push(f);
    }
    fields.push(
        json!({"name": "site", "label": "Site", "type": "select", "dataProvider": "sites",
        "dataProviderInputs": {"region": {"mode": "static", "value": "eu"}}}),
    );
    values.insert("site".into(), json!("eu3"));
    std::fs::write(
        workspace.join("bench.form.json"),
        json!({"id": "bench-form", "name": "Bench", "linkedWorkflow": "submit",
               "accessLevel": "authenticated", "formSchema": {"fields": fields}})
        .to_string(),
    )
    .unwrap();

    let server = BenchServer::start(&data, &workspace);
    let (key, port) = (server.key.clone(), server.port);
    let base = format!("http://127.0.0.1:{port}/api/forms/bench-form");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client
            .get(&base)
            .header("x-functions-key", &key)
            .send()
            .await
        {
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            break;
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    measure(
        "GET /api/forms/{id} (50 fields)",
        n,
        client.get(&base).header("x-functions-key", &key),
    )
    .await;

    let provider = client
        .post(format!("{base}/data-providers/sites"))
        .header("x-functions-key", &key)
        .json(&json!({"formData": {}}));
    let first: Value = provider
        .try_clone()
        .unwrap()
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        first["options"].as_array().map(Vec::len),
        Some(20),
        "{first}"
    );
    measure("data provider answered from the cache", n, provider).await;

    measure(
        "POST /api/forms/{id}/validate (50 valid fields)",
        n,
        client
            .post(format!("{base}/validate"))
            .header("x-functions-key", &key)
            .json(&json!({"formData": values})),
    )
    .await;

    drop(server);
}

//! Executions under crashes, timers and scale-out, against the real binary: `kill -9` with 100
//! async runs in flight, live logs while a run goes (storage and SSE), the Functions host's timer
//! and queue invocations, two instances sharing Azure Storage (Azurite) without a duplicate
//! scheduled run, metrics and trigger-now.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Server, ServerBuilder, client};

const WORKFLOWS: &str = r#"
import asyncio
import logging
from bifrost import workflow, param

logger = logging.getLogger(__name__)


@workflow(name="durable", execution_mode="async", retry_policy={"max_attempts": 3, "backoff_seconds": 0})
@param("log_path", "string", required=True)
async def durable(context, log_path: str):
    with open(log_path, "a") as f:
        f.write(f"start {context.execution_id}\n")
    await asyncio.sleep(0.4)
    return "ok"


@workflow(name="chatty", execution_mode="async")
async def chatty():
    logger.info("first line")
    await asyncio.sleep(2.5)
    logger.info("second line")
    return "done"


@workflow(name="quick", execution_mode="sync")
async def quick():
    return 1


@workflow(name="nightly", schedule="0 3 * * *")
async def nightly():
    return "ran"
"#;

fn workspace(extra: &str) -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("flows.py"), format!("{WORKFLOWS}\n{extra}")).unwrap();
    ws
}

fn builder(ws: &tempfile::TempDir) -> ServerBuilder {
    ServerBuilder::new()
        .env("BIFROST_WORKSPACE_LOCATION", ws.path().to_str().unwrap())
        .env("BIFROST_DEV_IDENTITY", "admin")
        .env("BIFROST_RATE_LIMIT", "0")
}

async fn post(server: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    let res = client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(server: &Server, path: &str) -> Value {
    let res = client().get(server.url(path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.json().await.unwrap()
}

#[tokio::test]
async fn kill_9_with_100_async_runs_loses_none_and_runs_none_twice() {
    let ws = workspace("");
    let starts = ws.path().join("starts.log");
    let fast_recovery = |b: ServerBuilder| {
        b.env("BIFROST_EXECUTION_LEASE_SECONDS", "2")
            .env("BIFROST_TIMER_EXECUTION_CLEANUP", "* * * * * *")
            .env("BIFROST_WORKER_SLOTS", "8")
    };
    let server = fast_recovery(builder(&ws)).start();
    let mut ids = Vec::new();
    for _ in 0..100 {
        let (status, body) = post(
            &server,
            "/api/workflows/execute",
            json!({"workflowName": "durable", "inputData": {"log_path": starts.to_str().unwrap()}}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(body["executionId"].as_str().unwrap().to_owned());
    }
    // Kill it while runs are in flight (some done, some running, most queued).
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&starts)
        .unwrap_or_default()
        .lines()
        .count()
        < 12
    {
        assert!(Instant::now() < deadline, "runs did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data = server.kill9();
    let restarted = fast_recovery(builder(&ws)).reuse_data(data).start();

    let deadline = Instant::now() + Duration::from_secs(120);
    let records = loop {
        let mut records = HashMap::new();
        for id in &ids {
            let r = get(&restarted, &format!("/api/executions/{id}")).await;
            records.insert(id.clone(), r);
        }
        let unfinished = records
            .values()
            .filter(|r| !matches!(r["status"].as_str(), Some("Success" | "Failed")))
            .count();
        if unfinished == 0 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} executions never finished after the restart"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let log = std::fs::read_to_string(&starts).unwrap();
    let mut started: HashMap<&str, u32> = HashMap::new();
    for line in log.lines() {
        *started
            .entry(line.trim_start_matches("start "))
            .or_default() += 1;
    }
    let mut retried = 0;
    for (id, record) in &records {
        assert_eq!(record["status"], "Success", "{record}");
        let attempt = record["attempt"].as_u64().unwrap() as u32;
        let runs = started.get(id.as_str()).copied().unwrap_or(0);
        assert!(
            (1..=attempt).contains(&runs),
            "{id} started {runs} times in {attempt} attempts"
        );
        if attempt > 1 {
            retried += 1;
        }
    }
    assert!(
        retried >= 1,
        "the runs in flight at the kill were recovered as new attempts"
    );
}

#[tokio::test]
async fn live_logs_are_stored_and_streamed_while_the_run_goes() {
    let ws = workspace("");
    let server = builder(&ws).start();
    let (status, body) = post(
        &server,
        "/api/workflows/execute",
        json!({"workflowName": "chatty"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["executionId"].as_str().unwrap().to_owned();
    let mut stream = client()
        .get(server.url(&format!("/api/executions/{id}/logs/stream")))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut text = String::new();
    let started = Instant::now();
    while !text.contains("first line") {
        let chunk = tokio::time::timeout(Duration::from_secs(20), stream.chunk())
            .await
            .expect("no event")
            .unwrap()
            .expect("stream ended early");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The first line arrives while the run is still sleeping, and is already stored.
    let record = get(&server, &format!("/api/executions/{id}")).await;
    assert_eq!(record["status"], "Running", "{text}");
    assert!(started.elapsed() < Duration::from_secs(2), "{text}");
    let logs = get(&server, &format!("/api/executions/{id}/logs")).await;
    assert_eq!(logs["logs"][0]["message"], "first line", "{logs}");
    let since = logs["lastSequence"].as_u64().unwrap();
    // The stream ends with the status once the run is over.
    while !text.contains("event:status") {
        match tokio::time::timeout(Duration::from_secs(20), stream.chunk())
            .await
            .expect("no final event")
            .unwrap()
        {
            Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
            None => break,
        }
    }
    assert!(text.contains("second line"), "{text}");
    assert!(text.contains(r#"{"status":"Success"}"#), "{text}");
    let rest = get(&server, &format!("/api/executions/{id}/logs?since={since}")).await;
    assert_eq!(rest["logs"][0]["message"], "second line", "{rest}");
}

#[tokio::test]
async fn host_timer_and_queue_invocations_run_the_jobs() {
    let ws = workspace("");
    // Under the host (the payload routes exist only there), where the development identity is
    // refused: the API calls carry a key.
    let builder = ServerBuilder::new()
        .env("BIFROST_WORKSPACE_LOCATION", ws.path().to_str().unwrap())
        .env("BIFROST_RATE_LIMIT", "0")
        .under_host();
    let key = crate::support::cli_key(&builder.data_dir().join("data"), "host-admin", None);
    let server = builder.start();
    let post = |server: &Server, path: &str, body: Value| {
        let key = key.clone();
        let url = server.url(path);
        async move {
            let res = client()
                .post(url)
                .header("x-functions-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status();
            let text = res.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
            )
        }
    };
    let get = |server: &Server, path: &str| {
        let key = key.clone();
        let url = server.url(path);
        async move {
            let res = client()
                .get(url)
                .header("x-functions-key", key)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()
        }
    };
    // Timer invocations as the Functions host sends them.
    let timer = json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": true}},
        "Metadata": {"sys": {"MethodName": "execution_cleanup", "UtcNow": "2026-11-26T10:00:00Z", "RandGuid": "x"}}
    });
    let (status, body) = post(&server, "/execution_cleanup", timer.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ReturnValue"]["failed"], 0, "{body}");
    assert!(body["Logs"][0].as_str().unwrap().contains("past due"));
    let (status, body) = post(&server, "/schedule_processor", timer.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(&server, "/retention", timer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ReturnValue"]["purged"], 0, "{body}");
    assert_eq!(body["ReturnValue"]["cachePurged"], 0, "{body}");

    // A queue-trigger delivery of an execution that already ran is not run again.
    let (_, run) = post(
        &server,
        "/api/workflows/execute",
        json!({"workflowName": "quick"}),
    )
    .await;
    let id = run["executionId"].as_str().unwrap();
    let message = json!({"executionId": id, "scope": "GLOBAL", "workflowName": "quick"});
    for data in [Value::String(message.to_string()), message.clone()] {
        let (status, body) = post(
            &server,
            "/workflow_executions",
            json!({"Data": {"message": data}, "Metadata": {"DequeueCount": 1}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["ReturnValue"]["outcome"], "skipped: already Success");
    }
    let (status, _) = post(
        &server,
        "/workflow_executions",
        json!({"Data": {}, "Metadata": {}}),
    )
    .await;
    assert!(
        !status.is_success(),
        "a delivery without a message fails the invocation"
    );
    let (status, body) = post(
        &server,
        "/workflow_executions_poison",
        json!({"Data": {"message": message.to_string()}, "Metadata": {"DequeueCount": "5"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = get(&server, &format!("/api/executions/{id}")).await;
    assert_eq!(
        record["status"], "Success",
        "a poisoned copy of a finished run changes nothing"
    );
}

#[tokio::test]
async fn metrics_and_trigger_now() {
    let ws = workspace("");
    let server = builder(&ws).start();
    for _ in 0..3 {
        post(
            &server,
            "/api/workflows/execute",
            json!({"workflowName": "quick"}),
        )
        .await;
    }
    let (status, body) = post(&server, "/api/schedules/nightly/trigger", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["executionId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(&server, &format!("/api/executions/{id}")).await;
        if r["status"] == "Success" {
            assert_eq!(r["executedBy"], "system:scheduler", "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let schedules = get(&server, "/api/schedules").await;
    assert_eq!(schedules["schedules"][0]["lastExecutionId"], id.as_str());
    assert_eq!(
        schedules["schedules"][0]["executionCount"], 1,
        "{schedules}"
    );
    let (status, _) = post(&server, "/api/schedules/quick/trigger", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "quick has no schedule");

    let metrics = get(&server, "/api/metrics?hours=1").await;
    assert_eq!(metrics["total"], 4, "{metrics}");
    assert_eq!(metrics["byStatus"]["Success"], 4, "{metrics}");
    assert_eq!(metrics["successRate"], 1.0);
    assert_eq!(metrics["byWorkflow"]["quick"]["total"], 3, "{metrics}");
    assert_eq!(metrics["byOrg"]["GLOBAL"]["total"], 4, "{metrics}");
    assert!(metrics["byWorkflow"]["quick"]["p95DurationMs"].is_u64());
    assert_eq!(metrics["queue"]["pending"], 0);
    let res = client()
        .get(server.url("/api/metrics?hours=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (status, report) = post(&server, "/api/executions/cleanup/trigger", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["requeued"], 0);
}

#[tokio::test]
async fn two_instances_on_azure_storage_run_each_scheduled_slot_once() {
    let conn = std::env::var("BIFROST_TEST_AZURITE")
        .expect("BIFROST_TEST_AZURITE is not set: run the suite through scripts/test.sh, which starts Azurite");
    // A fresh workflow name: Azurite's tables outlive one test run when run by hand.
    let name = format!(
        "tick_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let ws = workspace(&format!(
        "@workflow(name=\"{name}\", schedule=\"*/2 * * * * *\")\nasync def {name}():\n    return 1\n"
    ));
    let start = || {
        builder(&ws)
            .azurite_data()
            .env("BIFROST_STORAGE", "azure")
            .env("AzureWebJobsStorage", &conn)
            .env("BIFROST_TIMER_SCHEDULE_PROCESSOR", "* * * * * *")
            .start()
    };
    let (a, b) = (start(), start());
    tokio::time::sleep(Duration::from_secs(9)).await;
    drop(a);
    // Let runs that were queued finish on the remaining instance.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let list = get(
        &b,
        &format!("/api/executions?workflowName={name}&limit=100"),
    )
    .await;
    let runs = list["executions"].as_array().unwrap();
    assert!(runs.len() >= 2, "the schedule ran: {list}");
    let schedules = get(&b, "/api/schedules").await;
    let row = schedules["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["workflowName"] == name.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        row["executionCount"].as_u64().unwrap() as usize,
        runs.len(),
        "one execution per claimed slot: {row}"
    );
    let mut started: Vec<time::OffsetDateTime> = runs
        .iter()
        .map(|r| {
            time::OffsetDateTime::parse(
                r["startedAt"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    started.sort();
    for pair in started.windows(2) {
        assert!(
            pair[1] - pair[0] >= time::Duration::milliseconds(1000),
            "two runs for one two-second slot: {started:?}"
        );
    }
    for r in runs {
        assert_eq!(r["executedBy"], "system:scheduler");
    }
}

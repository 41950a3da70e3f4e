//! `/api/schedules` against the real binary: the list built from the workspace's
//! `@workflow(schedule=...)` declarations, the expression validator, enable/disable, and who may
//! call them.

use serde_json::{Value, json};

use crate::support::{Server, ServerBuilder, bin, client};

const WORKFLOWS: &str = r#"
from bifrost import workflow


@workflow(name="nightly", description="x", schedule="0 2 * * *")
async def nightly():
    return {"ok": True}


@workflow(name="typo", description="bad schedule", schedule="61 * * * *")
async def typo():
    return {"ok": True}


@workflow(name="manual", description="not scheduled")
async def manual():
    return {"ok": True}
"#;

fn start() -> (Server, tempfile::TempDir) {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("flows.py"), WORKFLOWS).unwrap();
    let server = ServerBuilder::new()
        .env("BIFROST_WORKSPACE_LOCATION", ws.path().to_str().unwrap())
        .env("BIFROST_DEV_IDENTITY", "admin")
        .env("BIFROST_RATE_LIMIT", "0")
        .start();
    (server, ws)
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let res = client().get(server.url(path)).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn post(server: &Server, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut req = client().post(server.url(path));
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

fn schedule<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["workflowName"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {list}"))
}

#[tokio::test]
async fn list_shows_scheduled_workflows_with_runs_and_errors() {
    let (server, _ws) = start();
    let (status, list) = get(&server, "/api/schedules").await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["workflowName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["nightly", "typo"],
        "unscheduled workflows are not listed"
    );

    let nightly = schedule(&list, "nightly");
    assert_eq!(nightly["cronExpression"], "0 2 * * *");
    assert_eq!(nightly["humanReadable"], "At 02:00.");
    assert_eq!(nightly["enabled"], true);
    assert_eq!(nightly["intervalSeconds"], 86_400);
    assert_eq!(nightly["executionCount"], 0);
    assert_eq!(nightly["validationError"], Value::Null);
    assert_eq!(nightly["warning"], Value::Null);
    let runs = nightly["nextRuns"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    for run in runs {
        assert!(run.as_str().unwrap().ends_with("T02:00:00Z"), "{run}");
    }
    assert_eq!(nightly["nextRunAt"], runs[0]);

    let typo = schedule(&list, "typo");
    assert_eq!(typo["enabled"], false);
    assert_eq!(typo["disabledReason"], "invalidExpression");
    assert_eq!(typo["nextRuns"], json!([]));
    let error = typo["validationError"].as_str().unwrap();
    assert!(
        error.contains("minute") && error.contains("'61'"),
        "{error}"
    );
}

#[tokio::test]
async fn validate_describes_or_explains_and_rejects_only_malformed_bodies() {
    let (server, _ws) = start();
    let (status, body) = post(
        &server,
        "/api/schedules/validate",
        Some(r#"{"expression":"30 9 * * MON-FRI"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], true);
    assert_eq!(
        body["humanReadable"],
        "At 09:30, on Monday, Tuesday, Wednesday, Thursday, and Friday."
    );
    assert_eq!(body["nextRuns"].as_array().unwrap().len(), 5);
    assert_eq!(body["intervalSeconds"], 86_400);
    assert_eq!(body["warning"], Value::Null);
    assert_eq!(body["error"], Value::Null);

    let (_, body) = post(
        &server,
        "/api/schedules/validate",
        Some(r#"{"expression":"*/5 * * * *"}"#),
    )
    .await;
    assert_eq!(body["humanReadable"], "At every 5 minutes.");
    assert_eq!(body["intervalSeconds"], 300);
    assert_eq!(body["warning"], Value::Null);

    let (_, body) = post(
        &server,
        "/api/schedules/validate",
        Some(r#"{"expression":"*/10 * * * * *"}"#),
    )
    .await;
    assert_eq!(body["valid"], true);
    assert_eq!(body["intervalSeconds"], 10);
    assert!(
        body["warning"].as_str().unwrap().contains("5 minutes"),
        "{body}"
    );

    for (expression, needle) in [
        ("61 * * * *", "minute"),
        ("0 0 2 * * * 2030", "7 fields"),
        ("0 0 * * FUNDAY", "day-of-week"),
        ("", "empty"),
    ] {
        let payload = json!({ "expression": expression }).to_string();
        let (status, body) = post(&server, "/api/schedules/validate", Some(&payload)).await;
        assert_eq!(status, 200, "{expression}: {body}");
        assert_eq!(body["valid"], false, "{expression}");
        assert_eq!(body["nextRuns"], json!([]));
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(needle), "{expression}: {error}");
    }

    for malformed in [
        Some("{}"),
        Some(r#"{"expression": 5}"#),
        Some(r#"{"expression":"* * * * *","extra":1}"#),
        Some("not json"),
        None,
    ] {
        let (status, body) = post(&server, "/api/schedules/validate", malformed).await;
        assert_eq!(status, 400, "{malformed:?}: {body}");
    }
}

#[tokio::test]
async fn enable_and_disable_flip_the_stored_state() {
    let (server, _ws) = start();
    let (status, body) = post(&server, "/api/schedules/nightly/disable", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], false);
    assert_eq!(body["disabledReason"], "admin");
    assert_eq!(body["nextRunAt"], Value::Null);

    let (_, list) = get(&server, "/api/schedules").await;
    assert_eq!(schedule(&list, "nightly")["enabled"], false);
    // Idempotent.
    let (status, _) = post(&server, "/api/schedules/nightly/disable", None).await;
    assert_eq!(status, 200);

    let (status, body) = post(&server, "/api/schedules/nightly/enable", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["disabledReason"], Value::Null);
    assert!(
        body["nextRunAt"].as_str().unwrap().ends_with("T02:00:00Z"),
        "{body}"
    );
    let (_, list) = get(&server, "/api/schedules").await;
    assert_eq!(schedule(&list, "nightly")["enabled"], true);

    let (status, body) = post(&server, "/api/schedules/typo/enable", None).await;
    assert_eq!(
        status, 409,
        "an invalid expression cannot be enabled: {body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("minute"),
        "{body}"
    );
    for missing in ["manual", "nope"] {
        let (status, body) = post(&server, &format!("/api/schedules/{missing}/enable"), None).await;
        assert_eq!(status, 404, "{missing}: {body}");
    }

    // The switch is audited (as a config change naming the workflow).
    let (status, audit) = get(&server, "/api/audit?eventType=config_changed").await;
    assert_eq!(status, 200, "{audit}");
    let text = audit.to_string();
    assert!(
        text.contains("nightly") && text.contains("disable"),
        "{audit}"
    );
}

#[tokio::test]
async fn org_keys_may_validate_but_not_administer() {
    let (server, _ws) = start();
    let (status, org) = post(
        &server,
        "/api/organizations",
        Some(r#"{"name":"Contoso","domain":"contoso.example"}"#),
    )
    .await;
    assert_eq!(status, 201, "{org}");
    let out = std::process::Command::new(bin())
        .args(["keys", "create", "sched-org", "--data-dir"])
        .arg(server.data.path().join("data"))
        .args(["--org", org["id"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let c = client();
    let res = c
        .post(server.url("/api/schedules/validate"))
        .header("x-functions-key", &key)
        .json(&json!({"expression": "0 2 * * *"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c
        .get(server.url("/api/schedules"))
        .header("x-functions-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = c
        .post(server.url("/api/schedules/nightly/disable"))
        .header("x-functions-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Still enabled: the refused call changed nothing.
    let (_, list) = get(&server, "/api/schedules").await;
    assert_eq!(schedule(&list, "nightly")["enabled"], true);
}

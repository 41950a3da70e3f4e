//! Running workflows over HTTP against the real binary: `POST /api/workflows/execute` (sync,
//! async through the queue worker, transient, the wait budget), cancellation of a queued run, and
//! `/api/endpoints/{name}` (public and key-protected, methods, query/body merge and coercion).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, ServerBuilder, client};

const WORKFLOWS: &str = r#"
import asyncio
import logging
from bifrost import workflow, param, UserError

logger = logging.getLogger(__name__)


@workflow(name="greet", execution_mode="sync")
@param("name", "string", required=True)
@param("count", "int", default_value=1)
async def greet(context, name: str, count: int = 1):
    logger.info("greeting %s", name)
    return {"greeting": f"Hello, {name}!", "count": count}


@workflow(name="queued", execution_mode="async")
@param("n", "int", required=True)
async def queued(n: int):
    logger.info("doubling %s", n)
    return {"double": n * 2}


@workflow(name="boom", execution_mode="sync", endpoint_enabled=True)
async def boom():
    raise ValueError("secret internal detail")


@workflow(name="refuse", endpoint_enabled=True)
async def refuse():
    raise UserError("mailbox not found")


@workflow(name="sleepy", execution_mode="async", timeout_seconds=300)
async def sleepy():
    await asyncio.sleep(120)
    return "woke up"


@workflow(name="slow_sync", execution_mode="sync", timeout_seconds=60)
async def slow_sync():
    await asyncio.sleep(4)
    return "late"


@workflow(name="hook", endpoint_enabled=True, allowed_methods=["GET", "POST"], public_endpoint=True)
@param("count", "int", required=True)
@param("flag", "bool")
@param("label", "string")
async def hook(count: int, flag: bool = False, label: str = ""):
    return {"count": count, "flag": flag, "label": label}


@workflow(name="private_hook", endpoint_enabled=True)
async def private_hook(context):
    return {"user": context.user_id, "org": context.org_id}
"#;

struct World {
    server: Server,
    _ws: tempfile::TempDir,
}

impl World {
    fn start() -> Self {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("flows.py"), WORKFLOWS).unwrap();
        let server = ServerBuilder::new()
            .env("BIFROST_WORKSPACE_LOCATION", ws.path().to_str().unwrap())
            .env("BIFROST_DEV_IDENTITY", "admin")
            .env("BIFROST_RATE_LIMIT", "0")
            .start();
        Self { server, _ws: ws }
    }

    fn get(&self, path: &str) -> RequestBuilder {
        client().get(self.server.url(path))
    }

    fn post(&self, path: &str) -> RequestBuilder {
        client().post(self.server.url(path))
    }

    fn execute(&self, body: Value) -> RequestBuilder {
        self.post("/api/workflows/execute").json(&body)
    }

    /// An organization and a function key scoped to it: `(org id, raw key, key id)`.
    async fn org_key(&self) -> (String, String, String) {
        let org = json_of(
            self.post("/api/organizations")
                .json(&json!({"name": "Contoso", "domain": "contoso.example"})),
            StatusCode::CREATED,
        )
        .await;
        let org = org["id"].as_str().unwrap().to_owned();
        let key = json_of(
            self.post("/api/keys")
                .json(&json!({"name": "runner", "orgId": org})),
            StatusCode::CREATED,
        )
        .await;
        (
            org,
            key["rawKey"].as_str().unwrap().to_owned(),
            key["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Polls the record until its status is `want` (panics after 60 s, showing the last status).
    async fn wait_for(&self, status_url: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let record = json_of(self.get(status_url), StatusCode::OK).await;
            if record["status"] == want {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "still {} after 60 s, waiting for {want}",
                record["status"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn json_of(req: RequestBuilder, status: StatusCode) -> Value {
    let res = req.send().await.unwrap();
    let got = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn bad_field(req: RequestBuilder) -> String {
    let body = json_of(req, StatusCode::BAD_REQUEST).await;
    body["details"]["field"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn run_sync_returns_the_result_and_is_recorded_with_logs() {
    let w = World::start();
    let run = json_of(
        w.execute(json!({"workflowName": "greet", "inputData": {"name": "Ada", "count": 2}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(run["status"], "Success", "{run}");
    assert_eq!(
        run["result"],
        json!({"greeting": "Hello, Ada!", "count": 2})
    );
    assert_eq!(run["resultType"], "json");
    assert_eq!(run["isTransient"], false);
    assert!(
        run["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "greeting Ada"),
        "{run}"
    );
    let id = run["executionId"].as_str().unwrap();
    let record = json_of(w.get(&format!("/api/executions/{id}")), StatusCode::OK).await;
    assert_eq!(record["status"], "Success");
    assert_eq!(record["workflowName"], "greet");
    assert_eq!(record["inputData"], json!({"name": "Ada", "count": 2}));
    assert_eq!(record["executedBy"], "local-developer");
    assert!(record["completedAt"].is_string());
    let logs = json_of(w.get(&format!("/api/executions/{id}/logs")), StatusCode::OK).await;
    assert!(
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "greeting Ada"),
        "{logs}"
    );

    // transient: the same run without a record.
    let transient = json_of(
        w.execute(json!({"workflowName": "greet", "inputData": {"name": "Bo"}, "transient": true})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(transient["isTransient"], true);
    assert_eq!(
        transient["result"]["count"], 1,
        "the parameter default applies"
    );
    let id = transient["executionId"].as_str().unwrap();
    json_of(
        w.get(&format!("/api/executions/{id}")),
        StatusCode::NOT_FOUND,
    )
    .await;

    // A sync run that outlives the wait budget answers 202 and finishes on its own.
    let started = Instant::now();
    let accepted = json_of(
        w.post("/api/workflows/execute?maxWaitSeconds=1")
            .json(&json!({"workflowName": "slow_sync"})),
        StatusCode::ACCEPTED,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(accepted["status"], "Running");
    let done = w
        .wait_for(accepted["statusUrl"].as_str().unwrap(), "Success")
        .await;
    let id = done["executionId"].as_str().unwrap();
    let result = json_of(
        w.get(&format!("/api/executions/{id}/result")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(result["result"], "late", "{result}");
}

#[tokio::test]
async fn run_input_is_checked_before_any_record_exists() {
    let w = World::start();
    assert_eq!(
        bad_field(w.execute(json!({"workflowName": "greet", "inputData": {}}))).await,
        "inputData.name"
    );
    assert_eq!(
        bad_field(
            w.execute(json!({"workflowName": "greet", "inputData": {"name": "Ada", "count": "3"}}))
        )
        .await,
        "inputData.count",
        "JSON callers get no string coercion"
    );
    assert_eq!(
        bad_field(w.execute(json!({"workflowName": "queued", "inputData": {"n": true}}))).await,
        "inputData.n",
        "async runs are checked before they are queued"
    );
    assert_eq!(
        bad_field(
            w.execute(json!({"workflowName": "greet", "inputData": {"name": "Ada"}}))
                .query(&[("maxWaitSeconds", "0")])
        )
        .await,
        "maxWaitSeconds"
    );
    assert_eq!(
        bad_field(w.execute(json!({"workflowName": " "}))).await,
        "workflowName"
    );
    json_of(
        w.execute(json!({"workflowName": "nope"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    let none = json_of(w.get("/api/executions"), StatusCode::OK).await;
    assert_eq!(
        none["executions"],
        json!([]),
        "rejected runs leave no record"
    );
}

#[tokio::test]
async fn run_async_is_queued_completes_and_can_be_cancelled() {
    let w = World::start();
    let accepted = json_of(
        w.execute(json!({"workflowName": "queued", "inputData": {"n": 21}})),
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(accepted["status"], "Pending");
    let url = accepted["statusUrl"].as_str().unwrap().to_owned();
    let id = accepted["executionId"].as_str().unwrap();
    assert_eq!(url, format!("/api/executions/{id}"));
    w.wait_for(&url, "Success").await;
    let result = json_of(
        w.get(&format!("/api/executions/{id}/result")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(result["result"], json!({"double": 42}));
    let logs = json_of(w.get(&format!("/api/executions/{id}/logs")), StatusCode::OK).await;
    assert!(
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "doubling 21"),
        "{logs}"
    );

    // A long async run: running in the worker, cancelled through the history route.
    let accepted = json_of(
        w.execute(json!({"workflowName": "sleepy"})),
        StatusCode::ACCEPTED,
    )
    .await;
    let url = accepted["statusUrl"].as_str().unwrap().to_owned();
    let id = accepted["executionId"].as_str().unwrap();
    w.wait_for(&url, "Running").await;
    // The engine may finish stopping it before the route answers: 200 `Cancelled` then,
    // otherwise 202 `Cancelling`.
    let res = w
        .post(&format!("/api/executions/{id}/cancel"))
        .send()
        .await
        .unwrap();
    let code = res.status();
    let cancel: Value = res.json().await.unwrap();
    match code {
        StatusCode::ACCEPTED => assert_eq!(cancel["status"], "Cancelling", "{cancel}"),
        StatusCode::OK => assert_eq!(cancel["status"], "Cancelled", "{cancel}"),
        other => panic!("cancel answered {other}: {cancel}"),
    }
    let started = Instant::now();
    let cancelled = w.wait_for(&url, "Cancelled").await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cancellation took {:?}",
        started.elapsed()
    );
    assert!(cancelled["completedAt"].is_string());
}

#[tokio::test]
async fn run_failures_show_error_detail_by_role() {
    let w = World::start();
    let failed = json_of(w.execute(json!({"workflowName": "boom"})), StatusCode::OK).await;
    assert_eq!(failed["status"], "Failed");
    assert_eq!(
        failed["error"], "secret internal detail",
        "admins see the message"
    );
    assert_eq!(failed["errorType"], "ValueError");
    let id = failed["executionId"].as_str().unwrap();
    let record = json_of(w.get(&format!("/api/executions/{id}")), StatusCode::OK).await;
    assert_eq!(record["status"], "Failed");
    assert_eq!(record["errorMessage"], "secret internal detail");

    // An org key is not an admin: a UserError's message only, otherwise the generic text.
    let (org, key, key_id) = w.org_key().await;
    let as_key = |req: RequestBuilder| req.header("x-functions-key", &key);
    let refused = json_of(as_key(w.post("/api/endpoints/refuse")), StatusCode::OK).await;
    assert_eq!(refused["status"], "Failed");
    assert_eq!(refused["error"], "mailbox not found");
    assert!(refused.get("errorType").is_none(), "{refused}");
    let boom = json_of(as_key(w.post("/api/endpoints/boom")), StatusCode::OK).await;
    assert_eq!(boom["status"], "Failed");
    assert_eq!(boom["error"], "An error occurred during execution");
    let id = boom["executionId"].as_str().unwrap();
    let seen_by_key = json_of(
        as_key(w.get(&format!("/api/executions/{id}"))),
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen_by_key["executedBy"], format!("api_key:{key_id}"));
    assert_eq!(seen_by_key["orgId"], org);
    assert_eq!(
        seen_by_key["errorMessage"],
        "An error occurred during execution"
    );
    let seen_by_admin = json_of(
        w.get(&format!("/api/executions/{id}"))
            .header("x-organization-id", &org),
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen_by_admin["errorMessage"], "secret internal detail");
    // Org keys may not use the admin entry point.
    json_of(
        as_key(w.execute(json!({"workflowName": "greet", "inputData": {"name": "x"}}))),
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn run_endpoints_check_keys_methods_and_coerce_input() {
    let w = World::start();
    // Public: no key; query strings are coerced to the parameter types.
    let run = json_of(
        w.get("/api/endpoints/hook?count=3&flag=yes&label=x"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(run["status"], "Success", "{run}");
    assert_eq!(
        run["result"],
        json!({"count": 3, "flag": true, "label": "x"})
    );
    assert!(run.get("logs").is_none());
    let id = run["executionId"].as_str().unwrap();
    let record = json_of(w.get(&format!("/api/executions/{id}")), StatusCode::OK).await;
    assert_eq!(record["executedBy"], "public:anonymous");
    // The JSON body wins over the query string.
    let run = json_of(
        w.post("/api/endpoints/hook?count=3&label=q")
            .json(&json!({"count": 5})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        run["result"],
        json!({"count": 5, "flag": false, "label": "q"})
    );
    assert_eq!(
        bad_field(w.get("/api/endpoints/hook?count=abc")).await,
        "count"
    );
    assert_eq!(bad_field(w.get("/api/endpoints/hook")).await, "count");
    assert_eq!(
        bad_field(w.post("/api/endpoints/hook").body("[1]")).await,
        "body"
    );
    // Methods outside allowed_methods.
    let res = client()
        .put(w.server.url("/api/endpoints/hook?count=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, POST");
    // Not endpoint-enabled, or unknown: 404.
    json_of(w.post("/api/endpoints/greet"), StatusCode::NOT_FOUND).await;
    json_of(w.post("/api/endpoints/nope"), StatusCode::NOT_FOUND).await;

    // Not public: a function key is required (the development identity does not count).
    json_of(
        w.post("/api/endpoints/private_hook"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    json_of(
        w.post("/api/endpoints/private_hook")
            .header("x-functions-key", "bfk_nope_notakey"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let (org, key, key_id) = w.org_key().await;
    let run = json_of(
        w.post("/api/endpoints/private_hook")
            .header("x-functions-key", &key),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        run["result"],
        json!({"user": format!("api_key:{key_id}"), "org": org})
    );
    // `?code=` is the key, not an input.
    let run = json_of(
        w.get(&format!("/api/endpoints/hook?count=2&code={key}")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(run["result"]["count"], 2);
}

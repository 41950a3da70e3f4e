//! Workflow metadata, execution history and the audit endpoints, against the real binary.
//!
//! Executions come from `bifrost run` on the server's own data folder (the CLI and the server
//! share the SQLite file) and, where a test needs a record the CLI cannot make (another user's,
//! a still-running one), straight through `bifrost::executions::Executions` on the same file.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use bifrost::domain::UserService;
use bifrost::executions::{ExecutionRecord, ExecutionStatus, Executions};
use bifrost_engine::ExecutionStatus as Outcome;
use bifrost_engine::{ExecutionError, ExecutionOutcome, LogEntry};
use bifrost_store::blob::LocalBlobs;
use bifrost_store::table::{IfMatch, SqliteTables, TableName, TableStore, WriteMode};
use bifrost_store::{OrgId, RowKey, Scope};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::{Server, ServerBuilder, bin, cli_key, client};

const WORKFLOWS: &str = r#"
import logging
from bifrost import workflow, param, data_provider, UserError

logger = logging.getLogger(__name__)


@workflow(name="hello", description="Say hello", category="Tests", tags=["t1"])
@param("name", "string", required=True, help_text="Who")
async def hello(context, name: str):
    logger.debug("debug detail")
    logger.info("hello %s", name)
    return {"greeting": f"Hello, {name}!"}


@workflow(name="explodes", description="Fails with an internal error")
async def explodes():
    raise ValueError("db password wrong for host x")


@workflow(name="refuses", description="Fails with a user error")
async def refuses():
    raise UserError("mailbox not found")


@data_provider(name="colours", description="Colour choices", cache_ttl_seconds=60)
def colours():
    return [{"label": "Red", "value": "red"}]
"#;

fn easy_auth(email: &str, oid: &str) -> String {
    let principal = json!({
        "auth_typ": "aad",
        "claims": [
            {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": oid},
            {"typ": "preferred_username", "val": email},
            {"typ": "name", "val": email},
        ],
        "name_typ": "name",
        "role_typ": "roles",
    });
    base64::engine::general_purpose::STANDARD.encode(principal.to_string())
}

/// A server on a workspace of test workflows (plus one broken file), with Easy Auth on: an
/// admin, one organization and an org user of it.
struct World {
    server: Server,
    ws: tempfile::TempDir,
    admin: String,
    bob: String,
    org: String,
}

impl World {
    async fn start() -> Self {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join("sub")).unwrap();
        std::fs::write(ws.path().join("sub/flows.py"), WORKFLOWS).unwrap();
        std::fs::write(ws.path().join("broken.py"), "x = (1 +\n").unwrap();
        let server = ServerBuilder::new()
            .env("BIFROST_WORKSPACE_LOCATION", ws.path().to_str().unwrap())
            .env("WEBSITE_AUTH_ENABLED", "true")
            .env("BIFROST_RATE_LIMIT", "0")
            .start();
        let admin = easy_auth("admin@msp.example", "00000000-0000-4000-8000-0000000000aa");
        let res = client()
            .post(server.url("/api/organizations"))
            .header("x-ms-client-principal", &admin)
            .json(&json!({"name": "Contoso", "domain": "contoso.example"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        let org: Value = res.json().await.unwrap();
        let bob = easy_auth(
            "bob@contoso.example",
            "00000000-0000-4000-8000-0000000000bb",
        );
        Self {
            server,
            ws,
            admin,
            bob,
            org: org["id"].as_str().unwrap().to_owned(),
        }
    }

    fn data(&self) -> PathBuf {
        self.server.data.path().join("data")
    }

    fn get(&self, path: &str) -> RequestBuilder {
        client().get(self.server.url(path))
    }

    fn post(&self, path: &str) -> RequestBuilder {
        client().post(self.server.url(path))
    }

    fn tables(&self) -> Arc<SqliteTables> {
        Arc::new(SqliteTables::open(&self.data().join("tables.sqlite")).unwrap())
    }

    fn executions(&self) -> Executions {
        let blobs = Arc::new(LocalBlobs::open(&self.data().join("blobs")).unwrap());
        Executions::new(self.tables(), blobs)
    }

    /// `bifrost run` on the server's data folder; returns the execution id.
    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(bin())
            .arg("run")
            .args(args)
            .arg("--workspace")
            .arg(self.ws.path())
            .arg("--data-dir")
            .arg(self.data())
            .env_remove("BIFROST_STORAGE")
            .output()
            .unwrap();
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "bifrost run {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        summary["executionId"].as_str().unwrap().to_owned()
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

fn ids(list: &Value) -> Vec<String> {
    list["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["executionId"].as_str().unwrap().to_owned())
        .collect()
}

fn record(id: &str, workflow: &str, by: &str, status: &str, org: &str) -> ExecutionRecord {
    ExecutionRecord {
        execution_id: id.into(),
        workflow_name: workflow.into(),
        org_id: Some(org.into()),
        form_id: None,
        executed_by: by.into(),
        executed_by_email: format!("{by}@contoso.example"),
        executed_by_name: by.into(),
        status: ExecutionStatus::parse(status).expect("a status name"),
        input_data: json!({}),
        result: None,
        result_type: None,
        error_type: None,
        error_message: None,
        duration_ms: None,
        started_at: OffsetDateTime::now_utc(),
        completed_at: None,
        attempt: 1,
        rights: Default::default(),
    }
}

fn log(sequence: u64, level: &str, message: &str) -> LogEntry {
    LogEntry {
        sequence,
        timestamp: OffsetDateTime::now_utc(),
        level: level.into(),
        message: message.into(),
        source: "engine".into(),
        data: None,
    }
}

#[tokio::test]
async fn workflow_metadata_shows_relative_sources_and_admin_only_tracebacks() {
    let w = World::start().await;
    let list = json_of(
        w.get("/api/workflows")
            .header("x-ms-client-principal", &w.admin),
        StatusCode::OK,
    )
    .await;
    let hello = list["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "hello")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(hello["sourceFile"], "sub/flows.py");
    assert_eq!(hello["category"], "Tests");
    assert_eq!(hello["tags"], json!(["t1"]));
    assert_eq!(hello["parameters"][0]["name"], "name");
    assert_eq!(hello["parameters"][0]["required"], true);
    assert!(hello["line"].as_u64().unwrap() > 1);
    assert!(hello["timeoutSeconds"].as_u64().unwrap() > 0);
    assert!(hello["executionMode"] == "sync" || hello["executionMode"] == "async");
    let errors = list["importErrors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{list}");
    assert_eq!(errors[0]["file"], "broken.py");
    assert!(errors[0]["traceback"].as_str().is_some());
    let text = list.to_string();
    assert!(
        !text.contains(w.ws.path().to_str().unwrap()),
        "no absolute server paths: {text}"
    );

    let as_bob = json_of(
        w.get("/api/workflows")
            .header("x-ms-client-principal", &w.bob),
        StatusCode::OK,
    )
    .await;
    assert_eq!(as_bob["importErrors"][0]["file"], "broken.py");
    assert!(
        as_bob["importErrors"][0].get("traceback").is_none(),
        "tracebacks are for platform admins: {as_bob}"
    );

    let one = json_of(
        w.get("/api/workflows/hello")
            .header("x-ms-client-principal", &w.bob),
        StatusCode::OK,
    )
    .await;
    assert_eq!(one["description"], "Say hello");
    json_of(
        w.get("/api/workflows/nope")
            .header("x-ms-client-principal", &w.bob),
        StatusCode::NOT_FOUND,
    )
    .await;
    let providers = json_of(
        w.get("/api/data-providers")
            .header("x-ms-client-principal", &w.bob),
        StatusCode::OK,
    )
    .await;
    assert_eq!(providers["dataProviders"][0]["name"], "colours");
    assert_eq!(providers["dataProviders"][0]["cacheTtlSeconds"], 60);
    assert_eq!(providers["dataProviders"][0]["sourceFile"], "sub/flows.py");
    let anonymous = w.get("/api/workflows").send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn execution_history_is_scoped_filtered_and_redacted_by_caller() {
    let w = World::start().await;
    let org = w.org.as_str();
    let as_admin = |req: RequestBuilder| {
        req.header("x-ms-client-principal", &w.admin)
            .header("x-organization-id", org)
    };
    let as_bob = |req: RequestBuilder| req.header("x-ms-client-principal", &w.bob);

    // Bob's first request provisions him as a user of the org; he has no executions yet.
    let empty = json_of(as_bob(w.get("/api/executions")), StatusCode::OK).await;
    assert_eq!(empty["executions"], json!([]));
    let reader = bifrost::audit::AuditLog::reader(w.tables()).unwrap();
    let bob_id = UserService::new(
        w.tables(),
        bifrost::domain::ChangeLog::new(Arc::new(reader)),
    )
    .find_by_email("bob@contoso.example")
    .await
    .unwrap()
    .unwrap()
    .id
    .to_string();

    // Three CLI runs in the org, one in GLOBAL.
    let ok_run = w.run(&["hello", "--org", org, "--param", "name=Ada"]);
    let failed_run = w.run(&["explodes", "--org", org]);
    let global_run = w.run(&["hello", "--param", "name=Global"]);

    // Bob's own executions, written as the execution entry points will.
    let ex = w.executions();
    let scope = Scope::Org(OrgId::parse(org).unwrap());
    let mut mine = record("bob-failed", "explodes", &bob_id, "Running", org);
    ex.create(&scope, &mine).await.unwrap();
    let outcome = ExecutionOutcome {
        execution_id: "bob-failed".into(),
        status: Outcome::Failed,
        result: None,
        result_type: None,
        error: Some(ExecutionError {
            error_type: "ValueError".into(),
            message: "db password wrong for host x".into(),
            traceback: "Traceback (most recent call last):\nValueError".into(),
            is_user_error: false,
        }),
        logs: vec![
            log(1, "DEBUG", "debug detail"),
            log(2, "INFO", "working"),
            log(3, "ERROR", "An error occurred during execution"),
            log(4, "TRACEBACK", "Traceback (most recent call last):"),
        ],
        duration: std::time::Duration::from_millis(5),
    };
    mine.complete(&outcome);
    ex.update(&scope, &mine).await.unwrap();
    ex.record_outcome(&scope, &outcome).await.unwrap();
    let mut refused = record("bob-refused", "refuses", &bob_id, "Failed", org);
    refused.error_type = Some("UserError".into());
    refused.error_message = Some("mailbox not found".into());
    ex.create(&scope, &refused).await.unwrap();
    ex.record_outcome(
        &scope,
        &ExecutionOutcome {
            execution_id: "bob-refused".into(),
            status: Outcome::Failed,
            result: None,
            result_type: None,
            error: Some(ExecutionError {
                error_type: "UserError".into(),
                message: "mailbox not found".into(),
                traceback: "tb".into(),
                is_user_error: true,
            }),
            logs: vec![],
            duration: std::time::Duration::from_millis(1),
        },
    )
    .await
    .unwrap();
    ex.create(
        &scope,
        &record("bob-running", "hello", &bob_id, "Running", org),
    )
    .await
    .unwrap();
    ex.create(
        &scope,
        &record("bob-pending", "hello", &bob_id, "Pending", org),
    )
    .await
    .unwrap();

    // The admin sees the whole org scope; GLOBAL is a different scope.
    let all = json_of(as_admin(w.get("/api/executions")), StatusCode::OK).await;
    let all_ids = ids(&all);
    for id in [
        &ok_run,
        &failed_run,
        "bob-failed",
        "bob-refused",
        "bob-running",
    ] {
        assert!(all_ids.iter().any(|x| x == id), "{id} missing: {all}");
    }
    assert!(!all_ids.contains(&global_run));
    let global = json_of(
        w.get("/api/executions")
            .header("x-ms-client-principal", &w.admin),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&global), std::slice::from_ref(&global_run));
    json_of(
        w.get(&format!("/api/executions/{ok_run}"))
            .header("x-ms-client-principal", &w.admin),
        StatusCode::NOT_FOUND,
    )
    .await;

    // Filters and paging.
    let hellos = json_of(
        as_admin(w.get("/api/executions?workflowName=hello&status=Success")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&hellos), std::slice::from_ref(&ok_run));
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let url = match &token {
            Some(t) => format!("/api/executions?limit=2&continuationToken={t}"),
            None => "/api/executions?limit=2".to_owned(),
        };
        let page = json_of(as_admin(w.get(&url)), StatusCode::OK).await;
        assert!(page["executions"].as_array().unwrap().len() <= 2);
        paged.extend(ids(&page));
        match page["continuationToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, all_ids, "paging walks the same list");
    let future = json_of(
        as_admin(w.get("/api/executions?startDate=2999-01-01")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(future["executions"], json!([]));
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("status=Bogus", "status"),
        ("startDate=yesterday", "startDate"),
        ("endDate=2024-13-01", "endDate"),
        ("continuationToken=not-a-token", "continuationToken"),
        ("workflow=hello", "workflow"),
    ] {
        assert_eq!(
            bad_field(as_admin(w.get(&format!("/api/executions?{query}")))).await,
            field,
            "{query}"
        );
    }

    // Bob sees only his own, with redacted error detail.
    let his = json_of(as_bob(w.get("/api/executions")), StatusCode::OK).await;
    let mut his_ids = ids(&his);
    his_ids.sort();
    assert_eq!(
        his_ids,
        ["bob-failed", "bob-pending", "bob-refused", "bob-running"]
    );
    for id in [&ok_run, &failed_run] {
        for suffix in ["", "/result", "/logs"] {
            json_of(
                as_bob(w.get(&format!("/api/executions/{id}{suffix}"))),
                StatusCode::NOT_FOUND,
            )
            .await;
        }
    }
    let failed = json_of(as_bob(w.get("/api/executions/bob-failed")), StatusCode::OK).await;
    assert_eq!(failed["status"], "Failed");
    assert_eq!(failed["errorMessage"], "An error occurred during execution");
    assert!(failed.get("errorType").is_none() && failed.get("errorTraceback").is_none());
    let refused = json_of(as_bob(w.get("/api/executions/bob-refused")), StatusCode::OK).await;
    assert_eq!(refused["errorMessage"], "mailbox not found");
    let listed_refused = his["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["executionId"] == "bob-refused")
        .unwrap();
    assert_eq!(listed_refused["errorMessage"], "mailbox not found");
    let admin_view = json_of(
        as_admin(w.get("/api/executions/bob-failed")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(admin_view["errorMessage"], "db password wrong for host x");
    assert_eq!(admin_view["errorType"], "ValueError");
    assert!(
        admin_view["errorTraceback"]
            .as_str()
            .unwrap()
            .contains("Traceback")
    );

    // Logs: DEBUG and TRACEBACK are admin-only; `since` continues.
    let levels = |v: &Value| -> Vec<String> {
        v["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["level"].as_str().unwrap().to_owned())
            .collect()
    };
    let bob_logs = json_of(
        as_bob(w.get("/api/executions/bob-failed/logs")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(levels(&bob_logs), ["INFO", "ERROR"]);
    assert_eq!(bob_logs["lastSequence"], 4);
    let admin_logs = json_of(
        as_admin(w.get("/api/executions/bob-failed/logs")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(levels(&admin_logs), ["DEBUG", "INFO", "ERROR", "TRACEBACK"]);
    let later = json_of(
        as_admin(w.get("/api/executions/bob-failed/logs?since=2")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(levels(&later), ["ERROR", "TRACEBACK"]);
    assert_eq!(
        bad_field(as_admin(w.get("/api/executions/bob-failed/logs?since=-1"))).await,
        "since"
    );

    // The CLI run persisted its logs and result; its failure has a real traceback.
    let run_logs = json_of(
        as_admin(w.get(&format!("/api/executions/{ok_run}/logs"))),
        StatusCode::OK,
    )
    .await;
    let messages: Vec<&str> = run_logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert!(messages.contains(&"hello Ada"), "{run_logs}");
    assert!(levels(&run_logs).contains(&"DEBUG".to_owned()));
    let result = json_of(
        as_admin(w.get(&format!("/api/executions/{ok_run}/result"))),
        StatusCode::OK,
    )
    .await;
    assert_eq!(result["status"], "Success");
    assert_eq!(result["result"], json!({"greeting": "Hello, Ada!"}));
    let cli_failed = json_of(
        as_admin(w.get(&format!("/api/executions/{failed_run}"))),
        StatusCode::OK,
    )
    .await;
    assert_eq!(cli_failed["errorType"], "ValueError");
    assert!(
        cli_failed["errorTraceback"]
            .as_str()
            .unwrap()
            .contains("db password wrong")
    );

    // Cancellation.
    let cancelling = json_of(
        as_bob(w.post("/api/executions/bob-running/cancel")),
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(cancelling["status"], "Cancelling");
    let now = json_of(as_bob(w.get("/api/executions/bob-running")), StatusCode::OK).await;
    assert_eq!(now["status"], "Cancelling");
    let cancelled = json_of(
        as_bob(w.post("/api/executions/bob-pending/cancel")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(cancelled["status"], "Cancelled");
    json_of(
        as_bob(w.post("/api/executions/bob-failed/cancel")),
        StatusCode::CONFLICT,
    )
    .await;
    json_of(
        as_bob(w.post(&format!("/api/executions/{ok_run}/cancel"))),
        StatusCode::NOT_FOUND,
    )
    .await;
    json_of(
        as_admin(w.post(&format!("/api/executions/{ok_run}/cancel"))),
        StatusCode::CONFLICT,
    )
    .await;

    // An org-scoped function key sees only what it started.
    let key = cli_key(&w.data(), "history-key", Some(org));
    let key_id = key.split('_').nth(1).unwrap().to_owned();
    let via_key = json_of(
        w.get("/api/executions").header("x-functions-key", &key),
        StatusCode::OK,
    )
    .await;
    assert_eq!(via_key["executions"], json!([]));
    ex.create(
        &scope,
        &record(
            "key-run",
            "hello",
            &format!("api_key:{key_id}"),
            "Success",
            org,
        ),
    )
    .await
    .unwrap();
    let via_key = json_of(
        w.get("/api/executions").header("x-functions-key", &key),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&via_key), ["key-run"]);
    json_of(
        w.get("/api/executions/bob-failed")
            .header("x-functions-key", &key),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn audit_entries_are_listed_and_a_tampered_entry_is_named_by_verify() {
    let server = ServerBuilder::new()
        .env("BIFROST_DEV_IDENTITY", "admin")
        .env("BIFROST_RATE_LIMIT", "0")
        .start();
    let data = server.data.path().join("data");
    let global_key = cli_key(&data, "audit-global", None);
    let org_key = cli_key(&data, "audit-org", Some("org-audit"));
    // Using the keys records key_used entries.
    for key in [&global_key, &org_key] {
        let res = client()
            .get(server.url("/api/workflows"))
            .header("x-functions-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let get = |path: &str| client().get(server.url(path));

    let all = json_of(get("/api/audit"), StatusCode::OK).await;
    let entries = all["entries"].as_array().unwrap();
    assert!(entries.len() >= 4, "{all}");
    let seqs: Vec<u64> = entries
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(entries[1]["prevHash"], entries[0]["hash"]);

    let created = json_of(get("/api/audit?eventType=key_created"), StatusCode::OK).await;
    let created = created["entries"].as_array().unwrap();
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|e| e["eventType"] == "key_created"));
    let in_org = json_of(get("/api/audit?orgId=org-audit"), StatusCode::OK).await;
    assert!(!in_org["entries"].as_array().unwrap().is_empty());
    assert!(
        in_org["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["scope"] == "org-audit")
    );
    let page = json_of(get("/api/audit?limit=1"), StatusCode::OK).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let token = page["continuationToken"].as_str().unwrap();
    let next = json_of(
        get(&format!("/api/audit?limit=1&continuationToken={token}")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(next["entries"][0]["sequence"], 2);
    let none = json_of(get("/api/audit?since=2999-01-01"), StatusCode::OK).await;
    assert_eq!(none["entries"], json!([]));
    for (query, field) in [
        ("eventType=nope", "eventType"),
        ("orgId=bad%20id", "orgId"),
        ("limit=0", "limit"),
        ("since=soon", "since"),
        ("continuationToken=garbage", "continuationToken"),
    ] {
        assert_eq!(
            bad_field(get(&format!("/api/audit?{query}"))).await,
            field,
            "{query}"
        );
    }
    // Org-scoped keys are not platform admins.
    let denied = client()
        .get(server.url("/api/audit"))
        .header("x-functions-key", &org_key)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    let verified = json_of(get("/api/audit/verify"), StatusCode::OK).await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["firstBroken"], Value::Null);
    assert!(verified["checked"].as_u64().unwrap() >= 4);

    // Edit entry 2 behind the log's back.
    let tables = SqliteTables::open(&data.join("tables.sqlite")).unwrap();
    let table = TableName::new("AuditLog").unwrap();
    let mut entity = tables
        .get(
            &table,
            &Scope::Global.partition_key(),
            &RowKey::new(format!("{:020}", 2)).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    entity.set("Actor", "user:mallory");
    tables
        .update(&table, &entity, WriteMode::Merge, &IfMatch::Any)
        .await
        .unwrap();

    // The default pass starts at its last checkpoint (entry 2 lies behind it); the full pass
    // walks the whole chain and names the edit.
    let broken = json_of(get("/api/audit/verify?full=true"), StatusCode::OK).await;
    assert_eq!(broken["ok"], false, "{broken}");
    assert_eq!(broken["firstBroken"]["sequence"], 2);
    assert_eq!(broken["firstBroken"]["reason"], "hash_mismatch");
    assert_eq!(broken["checked"], 1);
}

//! The attacks of the security review (issue 12), each performed against the real binary over
//! HTTP or as a workflow, each asserting the refusal. Every test here was run against the code
//! before its fix and failed there; the test names say what the attacker tried.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Server, ServerBuilder, cli_key, cli_key_with, client, free_port};

/// Workflows the attacks use. `thief` is the hostile author's code: it walks every object it can
/// reach, looking for another run's rights.
const WORKFLOWS: &str = r#"
import asyncio
import contextvars
import gc
import json
import os
import sys
from bifrost import workflow, param, data_provider, config, secrets, files


@workflow(name="rights", execution_mode="async", endpoint_enabled=True)
async def rights(context):
    return {"admin": context.is_platform_admin, "user": context.user_id, "org": context.org_id}


@workflow(name="other", execution_mode="async", endpoint_enabled=True)
async def other(context):
    return {"admin": context.is_platform_admin, "ran": "other"}


@workflow(name="victim", execution_mode="async", timeout_seconds=60)
async def victim(context):
    value = await secrets.get("alpha-secret")
    await asyncio.sleep(4)
    return {"read": value is not None}


def _jobs():
    seen = []
    for obj in gc.get_objects():
        if type(obj).__name__ == "Job" and obj not in seen:
            seen.append(obj)
    return seen


def _victim_runs(i):
    return [r for r in list(i._running.values()) if getattr(r.job, "name", "") == "victim"]


async def _attempts(i, runs, jobs, org_a):
    out = {}
    payload = json.dumps({"key": "alpha-secret"})

    def record(name, fn):
        try:
            value = fn()
            out[name] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        except BaseException as e:  # noqa: BLE001 - every refusal is a result here
            out[name] = "refused: " + type(e).__name__

    async def record_async(name, make):
        try:
            value = await make()
            out[name] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        except BaseException as e:  # noqa: BLE001
            out[name] = "refused: " + type(e).__name__

    for n, job in enumerate(jobs):
        for variant, args in (
            ("old", (job, "secrets.get", org_a, payload)),
            ("new", ("secrets.get", org_a, payload)),
            ("job_first_no_org", (job, "secrets.get", None, payload)),
        ):
            def call(args=args):
                reply = i._bridge.host_call_blocking(*args)
                return i._host_result(reply)
            record(f"bridge_{variant}_{n}", call)
    for n, run in enumerate(runs):
        token = i._current_run.set(run)
        try:
            await record_async(f"sdk_secrets_as_victim_{n}", lambda: secrets.get("alpha-secret"))
            await record_async(
                f"host_as_victim_{n}", lambda: i.host("secrets.get", {"key": "alpha-secret"}, org_a)
            )
            await record_async(f"config_as_victim_{n}", lambda: config.get("alpha_setting", org_id=org_a))
        finally:
            i._current_run.reset(token)
        # Run a task inside the victim's own context (its contextvars), found through gc.
        ctx = None
        for obj in gc.get_objects():
            if isinstance(obj, contextvars.Context) and obj.get(i._current_run) is run:
                ctx = obj
                break
        if ctx is not None:
            async def inside():
                return await secrets.get("alpha-secret")
            await record_async(
                f"task_in_victim_context_{n}",
                lambda: asyncio.get_running_loop().create_task(inside(), context=ctx),
            )
    return out


@workflow(name="thief", execution_mode="async", timeout_seconds=60, endpoint_enabled=True)
async def thief(context, org_a: str):
    from bifrost import _sdk
    i = _sdk._i
    deadline = asyncio.get_running_loop().time() + 10
    runs = _victim_runs(i)
    while not runs and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        runs = _victim_runs(i)
    jobs = [j for j in _jobs() if getattr(j, "name", "") == "victim"]
    report = {"found_victim_runs": len(runs), "found_victim_jobs": len(jobs)}
    report["during"] = await _attempts(i, runs, jobs, org_a)
    # Keep what was captured and try again once the victim has finished.
    while _victim_runs(i) and asyncio.get_running_loop().time() < deadline + 10:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    report["after"] = await _attempts(i, runs, jobs, org_a)
    return report


@workflow(name="env_dump", execution_mode="sync")
def env_dump():
    names = sorted(os.environ)
    return {"environ": dict(os.environ), "names": names}


@workflow(name="file_op", endpoint_enabled=True, execution_mode="sync")
def file_op(op: str, path: str, content: str = "", location: str = "workspace"):
    try:
        if op == "write":
            files.write(path, content, location=location)
            return {"ok": True}
        if op == "read":
            return {"ok": True, "content": files.read(path, location=location)}
        if op == "list":
            return {"ok": True, "names": files.list(path, location=location)}
        if op == "delete":
            return {"ok": True, "deleted": files.delete(path, location=location)}
        if op == "exists":
            return {"ok": True, "exists": files.exists(path, location=location)}
    except Exception as e:  # noqa: BLE001 - the refusal is the answer
        return {"ok": False, "error": type(e).__name__, "message": str(e)}
    return {"ok": False, "error": "unknown op"}


@workflow(name="launch", description="launch workflow of the public form", execution_mode="sync")
async def launch():
    return {"greeting": "hi"}


@workflow(name="quiet_long", execution_mode="async", timeout_seconds=120)
async def quiet_long():
    await asyncio.sleep(60)
    return "done"


@data_provider(name="who_is_asking", cache_ttl_seconds=300)
async def who_is_asking(context):
    return [{"label": context.user_id, "value": context.user_id}]


@workflow(name="sdk_admin_changes", execution_mode="sync")
async def sdk_admin_changes(context):
    from bifrost import organizations
    org = await organizations.create("Made By Workflow", domain="workflow.example")
    await organizations.update(org.id, name="Made By Workflow, Renamed")
    return {"org": org.id}
"#;

/// A workspace with [`WORKFLOWS`].
fn workspace() -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("attacks.py"), WORKFLOWS).unwrap();
    ws
}

struct Call {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

async fn send(builder: reqwest::RequestBuilder) -> Call {
    let res = builder.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Call {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// A server on the security workspace, no development identity, with a GLOBAL admin key.
struct World {
    server: Server,
    admin: String,
    _ws: tempfile::TempDir,
}

impl World {
    fn start(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Self {
        Self::start_with_env(&[], configure)
    }

    /// `env` goes to the server and to the CLI that makes the admin key.
    fn start_with_env(
        env: &[(&str, &str)],
        configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
    ) -> Self {
        let ws = workspace();
        let mut builder = ServerBuilder::new()
            .env("BIFROST_WORKSPACE_LOCATION", ws.path().to_str().unwrap())
            .env("BIFROST_RATE_LIMIT", "0");
        for (k, v) in env {
            builder = builder.env(k, v);
        }
        let builder = configure(builder);
        let data = builder.data_dir().join("data");
        let admin = cli_key_with(&data, env, "security-admin", None);
        let server = builder.start();
        Self {
            server,
            admin,
            _ws: ws,
        }
    }

    fn data(&self) -> PathBuf {
        self.server.data.path().join("data")
    }

    fn key(&self, name: &str, org: Option<&str>) -> String {
        cli_key(&self.data(), name, org)
    }

    fn req(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, self.server.url(path))
            .header("x-functions-key", key)
    }

    async fn admin_post(&self, path: &str, org: Option<&str>, body: Value) -> Call {
        let mut b = self
            .req(reqwest::Method::POST, path, &self.admin)
            .json(&body);
        if let Some(org) = org {
            b = b.header("X-Organization-Id", org);
        }
        send(b).await
    }

    async fn admin_get(&self, path: &str) -> Call {
        send(self.req(reqwest::Method::GET, path, &self.admin)).await
    }

    async fn org(&self, name: &str) -> String {
        let created = self
            .admin_post("/api/organizations", None, json!({"name": name}))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        created.body["id"].as_str().unwrap().to_owned()
    }

    /// Polls an execution (of `org`, or GLOBAL) until it leaves `Pending`/`Running`.
    async fn finished(&self, id: &str, org: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut req = self.req(
                reqwest::Method::GET,
                &format!("/api/executions/{id}"),
                &self.admin,
            );
            if let Some(org) = org {
                req = req.header("X-Organization-Id", org);
            }
            let r = send(req).await;
            let status = r.body["status"].as_str().unwrap_or_default().to_owned();
            if !matches!(status.as_str(), "Pending" | "Running" | "Cancelling" | "") {
                return r.body;
            }
            assert!(Instant::now() < deadline, "{id} did not finish: {}", r.text);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn audit(&self, event_type: &str) -> Vec<Value> {
        let r = self
            .admin_get(&format!("/api/audit?eventType={event_type}&limit=1000"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["entries"].as_array().cloned().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Host-call routes in standalone mode

#[tokio::test]
async fn standalone_server_does_not_serve_the_functions_payload_routes() {
    let w = World::start(|b| b.env("WEBSITE_AUTH_ENABLED", "true"));
    // (a) An HTTP trigger whose headers come from the JSON body: a forged Easy Auth name would be
    // the first login ever, hence platform admin, and POST /api/keys would hand out a GLOBAL key.
    let forged = json!({
        "Data": {"req": {
            "Url": format!("{}/api/keys", w.server.base),
            "Method": "POST",
            "Headers": {
                "X-MS-CLIENT-PRINCIPAL-NAME": ["mallory@evil.example"],
                "X-MS-CLIENT-PRINCIPAL-ID": ["oid-mallory"],
                "X-MS-CLIENT-PRINCIPAL-IDP": ["aad"],
                "Content-Type": ["application/json"]
            },
            "Body": "{\"name\": \"pwned\"}"
        }},
        "Metadata": {}
    });
    let r = send(client().post(w.server.url("/http_api")).json(&forged)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert!(!r.text.contains("bfk_"), "a key was handed out: {}", r.text);
    // (b) A queue message naming any workflow with platform-admin rights.
    let message = json!({"executionId": "00000000-0000-0000-0000-000000000001", "scope": "GLOBAL",
                         "workflowName": "rights", "isPlatformAdmin": true});
    // (c) The platform's timer jobs and the poison handler, fired at will.
    let timer = json!({"Data": {"timer": {"IsPastDue": false}}, "Metadata": {}});
    for (path, body) in [
        (
            "/workflow_executions",
            json!({"Data": {"message": message.to_string()}, "Metadata": {"DequeueCount": 1}}),
        ),
        (
            "/workflow_executions_poison",
            json!({"Data": {"message": message.to_string()}, "Metadata": {}}),
        ),
        ("/retention", timer.clone()),
        ("/execution_cleanup", timer.clone()),
        ("/schedule_processor", timer),
    ] {
        let r = send(client().post(w.server.url(path)).json(&body)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
    }
    let keys = w.admin_get("/api/keys").await;
    assert!(!keys.text.contains("pwned"), "{}", keys.text);
}

// ---------------------------------------------------------------------------------------------
// 2. Queue messages trusted over the stored record

#[tokio::test]
async fn a_forged_queue_message_cannot_change_the_workflow_or_the_rights_of_a_run() {
    let conn = std::env::var("BIFROST_TEST_AZURITE")
        .expect("BIFROST_TEST_AZURITE is not set: run the suite through scripts/test.sh");
    let ws = workspace();
    let port = free_port();
    let azure = [
        ("BIFROST_STORAGE", "azure"),
        ("AzureWebJobsStorage", conn.as_str()),
    ];
    let builder = ServerBuilder::new()
        .env("BIFROST_WORKSPACE_LOCATION", ws.path().to_str().unwrap())
        .env("BIFROST_RATE_LIMIT", "0")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", &port.to_string())
        .env("BIFROST_STORAGE", "azure")
        .env("AzureWebJobsStorage", &conn)
        .azurite_data();
    let data = crate::support::azurite_data_dir();
    // Fresh key names per run: Azurite outlives one run of the suite when it is run by hand.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let admin = cli_key_with(&data, &azure, &format!("queue-admin-{stamp}"), None);
    let server = builder.start();
    let post = |path: &str, key: &str, body: Value| {
        client()
            .post(server.url(path))
            .header("x-functions-key", key)
            .json(&body)
    };
    let created = send(post(
        "/api/organizations",
        &admin,
        json!({"name": "Queue Tenant"}),
    ))
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let org = created.body["id"].as_str().unwrap().to_owned();
    let tenant = cli_key_with(&data, &azure, &format!("queue-tenant-{stamp}"), Some(&org));

    // The tenant's own async run (through a form of its org): recorded Pending; under the host
    // with Azure Storage the host's queue trigger delivers it, so nothing runs it until a
    // message arrives.
    let form = send(
        post(
            "/api/forms",
            &admin,
            json!({"name": "Rights", "linkedWorkflow": "rights", "accessLevel": "authenticated",
                   "formSchema": {"fields": []}}),
        )
        .header("X-Organization-Id", &org),
    )
    .await;
    assert_eq!(form.status, StatusCode::CREATED, "{}", form.text);
    let form = form.body["id"].as_str().unwrap().to_owned();
    let queued = send(post(
        &format!("/api/forms/{form}/execute"),
        &tenant,
        json!({"formData": {}}),
    ))
    .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text);
    let id = queued.body["executionId"].as_str().unwrap().to_owned();

    // A forged delivery: same execution, another workflow, platform-admin rights.
    let forged = json!({"executionId": id, "scope": org, "workflowName": "other",
                        "isPlatformAdmin": true, "isFunctionKey": false});
    let r =
        send(client().post(server.url("/workflow_executions")).json(
            &json!({"Data": {"message": forged.to_string()}, "Metadata": {"DequeueCount": 1}}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let get = |path: String| {
        client()
            .get(server.url(&path))
            .header("x-functions-key", &admin)
            .header("X-Organization-Id", &org)
    };
    let record = send(get(format!("/api/executions/{id}"))).await;
    assert_eq!(
        record.body["status"], "Pending",
        "the forged message ran the execution: {}",
        record.text
    );
    let rejected = send(get("/api/audit?eventType=queue_message_rejected".into())).await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.text);
    assert!(
        rejected.text.contains(&id),
        "the refusal is audited: {}",
        rejected.text
    );

    // The genuine message (what the runner sends: the record's locator only) runs it as recorded.
    let genuine = json!({"executionId": id, "scope": org, "attempt": 1});
    let r =
        send(client().post(server.url("/workflow_executions")).json(
            &json!({"Data": {"message": genuine.to_string()}, "Metadata": {"DequeueCount": 1}}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let record = send(get(format!("/api/executions/{id}"))).await;
    assert_eq!(record.body["status"], "Success", "{}", record.text);
    assert_eq!(record.body["workflowName"], "rights");
    let result = send(get(format!("/api/executions/{id}/result"))).await;
    assert_eq!(result.body["result"]["admin"], false, "{}", result.text);
}

// ---------------------------------------------------------------------------------------------
// 3. One run acting as another inside Python

#[tokio::test]
async fn a_workflow_cannot_obtain_another_runs_rights_through_python_objects() {
    let w = World::start(|b| b);
    let alpha = w.org("Alpha Victim Org").await;
    let bravo = w.org("Bravo Thief Org").await;
    let secret = w
        .admin_post(
            "/api/secrets",
            Some(&alpha),
            json!({"name": "alpha-secret", "value": "ALPHA-SECRET-VALUE-7731"}),
        )
        .await;
    assert_eq!(secret.status, StatusCode::CREATED, "{}", secret.text);
    // The victim: a platform admin's run in Alpha that read Alpha's secret and is still running.
    let victim = w
        .admin_post(
            "/api/workflows/execute",
            Some(&alpha),
            json!({"workflowName": "victim"}),
        )
        .await;
    assert_eq!(victim.status, StatusCode::ACCEPTED, "{}", victim.text);
    let victim_id = victim.body["executionId"].as_str().unwrap().to_owned();
    // The thief: a run in Bravo with the rights of Bravo's (non-admin) function key.
    let bravo_key = w.key("bravo-runner", Some(&bravo));
    let thief = send(
        w.req(reqwest::Method::POST, "/api/endpoints/thief", &bravo_key)
            .json(&json!({"org_a": alpha})),
    )
    .await;
    assert!(
        matches!(thief.status, StatusCode::OK | StatusCode::ACCEPTED),
        "{}",
        thief.text
    );
    let thief_id = thief.body["executionId"].as_str().unwrap().to_owned();
    let record = w.finished(&thief_id, Some(&bravo)).await;
    assert_eq!(record["status"], "Success", "{record}");
    let result = send(
        w.req(
            reqwest::Method::GET,
            &format!("/api/executions/{thief_id}/result"),
            &w.admin,
        )
        .header("X-Organization-Id", &bravo),
    )
    .await;
    let report = &result.body["result"];
    assert!(
        report["found_victim_runs"].as_u64().unwrap() >= 1
            && report["found_victim_jobs"].as_u64().unwrap() >= 1,
        "the thief must find the victim's objects, or this test proves nothing: {report}"
    );
    let text = report.to_string();
    assert!(
        !text.contains("ALPHA-SECRET-VALUE-7731"),
        "the thief read the victim's secret: {report}"
    );
    for phase in ["during", "after"] {
        for (name, outcome) in report[phase].as_object().unwrap() {
            let refused =
                outcome.as_str().is_some_and(|s| s.starts_with("refused")) || outcome.is_null();
            assert!(refused, "{phase}/{name} was not refused: {outcome}");
        }
    }
    let victim = w.finished(&victim_id, Some(&alpha)).await;
    assert_eq!(victim["status"], "Success", "{victim}");
}

// ---------------------------------------------------------------------------------------------
// 4. The platform's credentials in the workflow's environment

#[tokio::test]
async fn workflow_code_does_not_see_the_platforms_credentials() {
    let secrets = [
        (
            "BIFROST_MASTER_KEY",
            "c2VjcmV0LW1hc3Rlci1rZXktMzItYnl0ZXMtbG9uZyE=",
        ),
        (
            "AzureWebJobsStorage",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=U1RPUkFHRS1LRVktOTkx;",
        ),
        ("IDENTITY_HEADER", "identity-header-secret-5521"),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
        ("MSI_SECRET", "msi-secret-5521"),
        ("AZURE_CLIENT_SECRET", "azure-client-secret-5521"),
    ];
    let w = World::start_with_env(&secrets, |b| b);
    let run = w
        .admin_post(
            "/api/workflows/execute",
            None,
            json!({"workflowName": "env_dump"}),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    let names = run.body["result"]["names"].as_array().unwrap();
    assert!(
        names.iter().any(|n| n == "PATH"),
        "an ordinary variable stays: {names:?}"
    );
    for (name, value) in secrets {
        assert!(
            !names.iter().any(|n| n == name),
            "{name} is visible to workflows"
        );
        assert!(!run.text.contains(value), "the value of {name} leaked");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. files.* in the shared, hot-reloaded workspace

#[tokio::test]
async fn sdk_files_are_per_organization_and_never_written_into_the_workspace() {
    let w = World::start(|b| b);
    let alpha = w.org("Files Alpha").await;
    let bravo = w.org("Files Bravo").await;
    let alpha_key = w.key("files-alpha", Some(&alpha));
    let bravo_key = w.key("files-bravo", Some(&bravo));
    let op = |key: &str, body: Value| {
        let b = w
            .req(reqwest::Method::POST, "/api/endpoints/file_op", key)
            .json(&body);
        async move {
            let r = send(b).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.body["result"].clone()
        }
    };
    for location in ["workspace", "temp"] {
        let wrote = op(
            &alpha_key,
            json!({"op": "write", "path": "r.csv", "content": "ALPHA-ROWS", "location": location}),
        )
        .await;
        assert_eq!(wrote["ok"], true, "{wrote}");
        let own = op(
            &alpha_key,
            json!({"op": "read", "path": "r.csv", "location": location}),
        )
        .await;
        assert_eq!(own["content"], "ALPHA-ROWS", "{own}");
        let other = op(
            &bravo_key,
            json!({"op": "read", "path": "r.csv", "location": location}),
        )
        .await;
        assert_eq!(other["ok"], false, "Bravo read Alpha's file: {other}");
        let listed = op(
            &bravo_key,
            json!({"op": "list", "path": "", "location": location}),
        )
        .await;
        assert!(!listed.to_string().contains("r.csv"), "{listed}");
    }
    // A written Python file never becomes server code.
    let pwn = "from bifrost import workflow\n\n@workflow(name='pwned')\ndef pwned():\n    return 'owned'\n";
    op(
        &alpha_key,
        json!({"op": "write", "path": "pwn.py", "content": pwn}),
    )
    .await;
    assert!(!w._ws.path().join("pwn.py").exists());
    tokio::time::sleep(Duration::from_millis(2600)).await; // one workspace rescan
    let workflows = w.admin_get("/api/workflows").await;
    assert!(!workflows.text.contains("pwned"), "{}", workflows.text);
    // The workspace itself is read-only to the SDK.
    let overwrite = op(&alpha_key, json!({"op": "delete", "path": "attacks.py"})).await;
    assert_ne!(overwrite["deleted"], true, "{overwrite}");
    assert!(w._ws.path().join("attacks.py").exists());
    // Traversal in every spelling is refused.
    std::os::unix::fs::symlink("/etc", w._ws.path().join("etc_link")).unwrap();
    for path in [
        "../outside.txt",
        "/etc/passwd",
        "a\u{0}b",
        "etc_link/passwd",
        "sub/../../x",
    ] {
        for location in ["workspace", "temp"] {
            let read = op(
                &alpha_key,
                json!({"op": "read", "path": path, "location": location}),
            )
            .await;
            assert_eq!(read["ok"], false, "{path} ({location}): {read}");
            assert!(
                !read.to_string().contains("root:"),
                "{path} ({location}) read a system file: {read}"
            );
            if path == "etc_link/passwd" {
                continue; // a plain name in the org's own area: writing it is harmless
            }
            let write = op(
                &alpha_key,
                json!({"op": "write", "path": path, "content": "x", "location": location}),
            )
            .await;
            assert_eq!(write["ok"], false, "{path} ({location}): {write}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Anonymous floods and bodies read before authentication

async fn public_form(w: &World) -> String {
    let form = w
        .admin_post(
            "/api/forms",
            None,
            json!({"name": "Public intake", "linkedWorkflow": "launch", "launchWorkflowId": "launch",
                   "accessLevel": "public",
                   "formSchema": {"fields": [{"name": "note", "label": "Note", "type": "text"}]}}),
        )
        .await;
    assert_eq!(form.status, StatusCode::CREATED, "{}", form.text);
    form.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn anonymous_callers_are_rate_limited_by_address_and_their_bodies_capped() {
    let w = World::start(|b| b.env("BIFROST_ANONYMOUS_RATE_LIMIT", "5"));
    let form = public_form(&w).await;
    // The launch workflow of a public form runs for anyone: a flood must be turned away, and a
    // forged X-Forwarded-For from an untrusted peer does not buy a fresh bucket.
    let mut limited = None;
    for n in 0..60 {
        let r = send(
            client()
                .get(w.server.url(&format!("/api/forms/{form}/startup")))
                .header("X-Forwarded-For", format!("203.0.113.{n}"))
                .header("X-Azure-ClientIP", format!("198.51.100.{n}")),
        )
        .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let limited = limited.expect("60 anonymous launches in a row were never limited");
    assert!(limited.headers.contains_key("retry-after"));

    // An anonymous body is capped small before anything reads it (the limit is 10 MB for
    // authenticated callers); a key holder may still send more.
    let w = World::start(|b| b);
    let form = public_form(&w).await;
    let big = json!({"formData": {"note": "x".repeat(100 * 1024)}}).to_string();
    let anonymous = send(
        client()
            .post(w.server.url(&format!("/api/forms/{form}/validate")))
            .header("content-type", "application/json")
            .body(big.clone()),
    )
    .await;
    assert_eq!(
        anonymous.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        anonymous.text
    );
    let keyed = send(
        w.req(
            reqwest::Method::POST,
            &format!("/api/forms/{form}/validate"),
            &w.admin,
        )
        .header("content-type", "application/json")
        .body(big),
    )
    .await;
    assert_ne!(
        keyed.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        keyed.text
    );
}

#[tokio::test]
async fn a_configured_trusted_proxy_supplies_the_client_address() {
    let w = World::start(|b| {
        b.env("BIFROST_ANONYMOUS_RATE_LIMIT", "2")
            .env("BIFROST_TRUSTED_PROXIES", "127.0.0.1/32")
    });
    let form = public_form(&w).await;
    // Through the trusted proxy every client has its own bucket...
    for n in 0..30 {
        let r = send(
            client()
                .get(w.server.url(&format!("/api/forms/{form}/startup")))
                .header("X-Forwarded-For", format!("203.0.113.{n}, 127.0.0.1")),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "client {n}: {}", r.text);
    }
    // ...and one client is still limited.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = send(
            client()
                .get(w.server.url(&format!("/api/forms/{form}/startup")))
                .header("X-Forwarded-For", "192.0.2.77"),
        )
        .await;
        statuses.push(r.status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Growing the audit log without bound

#[tokio::test]
async fn failed_key_floods_do_not_grow_the_audit_log() {
    let w = World::start(|b| b.env("BIFROST_ANONYMOUS_RATE_LIMIT", "0"));
    let before = w.audit("key_rejected").await.len();
    for n in 0..300 {
        let r = send(client().get(w.server.url("/api/workflows")).header(
            "x-functions-key",
            format!("bfk_{n:016x}_{}", "A".repeat(43)),
        ))
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let org = w.org("Flood Org").await;
    let tenant = w.key("flood-tenant", Some(&org));
    for _ in 0..100 {
        let r = send(
            w.req(reqwest::Method::GET, "/api/config", &tenant)
                .header("X-Organization-Id", "someone-else"),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    // The flood is recorded, aggregated: a handful of entries whose counts add up.
    let rejected = w.audit("key_rejected").await;
    assert!(
        rejected.len() - before <= 3,
        "{} entries for 300 failed key checks",
        rejected.len() - before
    );
    let counted: u64 = rejected
        .iter()
        .map(|e| e["details"]["count"].as_u64().unwrap_or(1))
        .sum();
    assert!(counted >= 1, "{rejected:?}");
    let denied = w.audit("cross_org_denied").await;
    assert!(
        denied.len() <= 3,
        "{} entries for 100 denials",
        denied.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Unaudited changes to users, roles, assignments and organizations

#[tokio::test]
async fn changes_to_users_roles_and_organizations_are_audited_through_api_and_sdk() {
    let w = World::start(|b| b);
    let org = w.org("Audited Org").await;
    let patch = |path: String, body: Value| {
        send(w.req(reqwest::Method::PATCH, &path, &w.admin).json(&body))
    };
    let renamed = patch(
        format!("/api/organizations/{org}"),
        json!({"name": "Audited Org Renamed"}),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    let user = w
        .admin_post(
            "/api/users",
            None,
            json!({"email": "ann@audited.example", "isPlatformAdmin": false, "orgId": org}),
        )
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{}", user.text);
    let user_id = user.body["id"].as_str().unwrap().to_owned();
    let off = patch(format!("/api/users/{user_id}"), json!({"isActive": false})).await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    let role = w
        .admin_post("/api/roles", Some(&org), json!({"name": "Auditors"}))
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.text);
    let role_id = role.body["id"].as_str().unwrap().to_owned();
    let granted = w
        .admin_post(
            &format!("/api/roles/{role_id}/users"),
            Some(&org),
            json!({"userIds": [user_id]}),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    let forms = w
        .admin_post(
            &format!("/api/roles/{role_id}/forms"),
            Some(&org),
            json!({"formIds": ["some-form"]}),
        )
        .await;
    assert_eq!(forms.status, StatusCode::OK, "{}", forms.text);
    let deleted = send(w.req(
        reqwest::Method::DELETE,
        &format!("/api/users/{user_id}"),
        &w.admin,
    ))
    .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);

    let changes = w.audit("admin_change").await;
    let has = |action: &str, target: &str| {
        changes.iter().any(|e| {
            e["details"]["action"] == action
                && e["details"]["target"]
                    .as_str()
                    .is_some_and(|t| t.contains(target))
        })
    };
    for (action, target) in [
        ("organization.create", org.as_str()),
        ("organization.update", org.as_str()),
        ("user.create", user_id.as_str()),
        ("user.update", user_id.as_str()),
        ("role.create", role_id.as_str()),
        ("role.assign_users", role_id.as_str()),
        ("role.assign_forms", role_id.as_str()),
        ("user.delete", user_id.as_str()),
    ] {
        assert!(has(action, target), "no {action} of {target}: {changes:#?}");
    }
    let update = changes
        .iter()
        .find(|e| e["details"]["action"] == "user.update")
        .unwrap();
    assert_eq!(update["details"]["before"]["isActive"], true, "{update}");
    assert_eq!(update["details"]["after"]["isActive"], false, "{update}");
    assert!(update["actor"].as_str().unwrap().starts_with("key:"));

    // Through the SDK, too.
    let run = w
        .admin_post(
            "/api/workflows/execute",
            None,
            json!({"workflowName": "sdk_admin_changes"}),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    let made = run.body["result"]["org"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", run.text))
        .to_owned();
    let changes = w.audit("admin_change").await;
    let via_sdk = changes
        .iter()
        .find(|e| {
            e["details"]["action"] == "organization.create"
                && e["details"]["target"].as_str() == Some(made.as_str())
        })
        .unwrap_or_else(|| panic!("the SDK's organization create is not audited: {changes:#?}"));
    assert_eq!(via_sdk["details"]["via"], "sdk", "{via_sdk}");
}

#[tokio::test]
async fn an_admin_change_fails_when_it_cannot_be_audited() {
    use bifrost_store::table::{Entity, SqliteTables, TableName, TableStore, Value as Prop};
    use bifrost_store::{RowKey, Scope};
    let w = World::start(|b| b);
    // Jam the chain: a row at the next sequence number that the head never reaches, so every
    // append loses its race until it gives up (the audit log is unavailable).
    let tables = SqliteTables::open(&w.data().join("tables.sqlite")).unwrap();
    let table = TableName::new("AuditLog").unwrap();
    let pk = Scope::Global.partition_key();
    let head = tables
        .get(&table, &pk, &RowKey::new("head").unwrap())
        .await
        .unwrap();
    let next = match head.as_ref().and_then(|h| h.get("Seq")) {
        Some(Prop::Int64(n)) => *n as u64 + 1,
        _ => 1,
    };
    tables
        .insert(
            &table,
            &Entity::new(pk.clone(), RowKey::new(format!("{next:020}")).unwrap())
                .with("Seq", Prop::Int64(next as i64)),
        )
        .await
        .unwrap();
    let refused = w
        .admin_post(
            "/api/organizations",
            None,
            json!({"name": "Never Audited Org"}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text
    );
    assert!(refused.headers.contains_key("retry-after"));
    let orgs = w.admin_get("/api/organizations").await;
    assert!(
        !orgs.text.contains("Never Audited Org"),
        "the change was made without an audit entry: {}",
        orgs.text
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Cross-site request forgery with the Easy Auth cookie

fn easy_principal(email: &str, oid: &str) -> String {
    use base64::Engine as _;
    let p = json!({"identityProvider": "aad", "userId": oid, "userDetails": email,
                   "userRoles": ["authenticated"]});
    base64::engine::general_purpose::STANDARD.encode(p.to_string())
}

#[tokio::test]
async fn browser_requests_must_be_json_from_the_apps_own_origin() {
    let w = World::start(|b| {
        b.env("WEBSITE_AUTH_ENABLED", "true")
            .env("BIFROST_ALLOWED_ORIGINS", "https://portal.msp.example")
    });
    let principal = easy_principal("admin@msp.example", "oid-admin");
    let browser = |content_type: &str, origin: Option<&str>, name: &str| {
        let mut b = client()
            .post(w.server.url("/api/organizations"))
            .header("X-MS-CLIENT-PRINCIPAL", &principal)
            .header("Cookie", "AppServiceAuthSession=abc123")
            .header("content-type", content_type)
            .body(json!({"name": name}).to_string());
        if let Some(origin) = origin {
            b = b.header("Origin", origin);
        }
        send(b)
    };
    // A cross-site form post: text/plain is a "simple" request the browser sends without asking.
    let r = browser("text/plain", Some(&w.server.base), "Forged Plain").await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    let r = browser(
        "application/json",
        Some("https://evil.example"),
        "Forged Origin",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = browser("application/json", None, "No Origin").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = browser("application/json", Some(&w.server.base), "Own Origin Org").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = browser(
        "application/json",
        Some("https://portal.msp.example"),
        "Allowed Origin Org",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Function-key callers are not browsers.
    let keyed = send(
        w.req(reqwest::Method::POST, "/api/organizations", &w.admin)
            .header("content-type", "text/plain")
            .body(json!({"name": "Key Org"}).to_string()),
    )
    .await;
    assert_eq!(keyed.status, StatusCode::CREATED, "{}", keyed.text);
}

// ---------------------------------------------------------------------------------------------
// 10. Log streams outliving their clients

#[tokio::test]
async fn log_streams_are_capped_per_caller_and_released_when_the_client_leaves() {
    let w = World::start(|b| b.env("BIFROST_MAX_STREAMS_PER_CALLER", "2"));
    let run = w
        .admin_post(
            "/api/workflows/execute",
            None,
            json!({"workflowName": "quiet_long"}),
        )
        .await;
    assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.text);
    let id = run.body["executionId"].as_str().unwrap().to_owned();
    let path = format!("/api/executions/{id}/logs/stream");
    let open = || async {
        client()
            .get(w.server.url(&path))
            .header("x-functions-key", &w.admin)
            .send()
            .await
            .unwrap()
    };
    let first = open().await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = open().await;
    assert_eq!(second.status(), StatusCode::OK);
    let third = open().await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key("retry-after"));
    // A client that goes away frees its slot promptly, although the run stays quiet.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let again = open().await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream still counts after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);
    let _ = w
        .admin_post(&format!("/api/executions/{id}/cancel"), None, json!({}))
        .await;
}

// ---------------------------------------------------------------------------------------------
// 11. The data-provider cache and the caller

#[tokio::test]
async fn a_cached_provider_answer_is_not_served_to_another_caller() {
    let w = World::start(|b| b);
    let org = w.org("Cache Org").await;
    let form = w
        .admin_post(
            "/api/forms",
            Some(&org),
            json!({"name": "Who", "linkedWorkflow": "launch", "accessLevel": "authenticated",
            "formSchema": {"fields": [
                {"name": "who", "label": "Who", "type": "select", "dataProvider": "who_is_asking"}
            ]}}),
        )
        .await;
    assert_eq!(form.status, StatusCode::CREATED, "{}", form.text);
    let form = form.body["id"].as_str().unwrap().to_owned();
    let one = w.key("cache-one", Some(&org));
    let two = w.key("cache-two", Some(&org));
    let ask = |key: &str| {
        send(
            w.req(
                reqwest::Method::POST,
                &format!("/api/forms/{form}/data-providers/who_is_asking"),
                key,
            )
            .json(&json!({})),
        )
    };
    let first = ask(&one).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let second = ask(&two).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_ne!(
        first.body["options"][0]["value"], second.body["options"][0]["value"],
        "the second caller got the first caller's cached answer: {}",
        second.text
    );
    // The first caller's own answer is still cached for them.
    let again = ask(&one).await;
    assert_eq!(again.body["cached"], true, "{}", again.text);
    assert_eq!(again.body["options"], first.body["options"]);
}

// ---------------------------------------------------------------------------------------------
// 12. Smaller items

#[test]
fn the_development_identity_refuses_a_non_loopback_address() {
    let (status, stderr) = ServerBuilder::new()
        .env("BIFROST_DEV_IDENTITY", "admin")
        .env("BIFROST_BIND", "0.0.0.0")
        .arg("--port")
        .arg("0")
        .run_to_exit_within(Duration::from_secs(30));
    let status = status.expect("the server started serving on 0.0.0.0 with the dev identity on");
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("BIFROST_DEV_IDENTITY"), "{stderr}");
}

#[tokio::test]
async fn every_response_says_nosniff_and_raw_keys_are_not_cached() {
    let w = World::start(|b| b);
    for (method, path) in [
        (reqwest::Method::GET, "/api/health"),
        (reqwest::Method::GET, "/api/no-such-route"),
        (reqwest::Method::GET, "/api/workflows"),
    ] {
        let r = send(client().request(method, w.server.url(path))).await;
        assert_eq!(
            r.headers
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path} ({})",
            r.status
        );
    }
    for (path, body) in [
        ("/api/keys", json!({"name": "cache-check"})),
        ("/api/workflow-keys", json!({"workflowName": "rights"})),
    ] {
        let r = w.admin_post(path, None, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(
            r.headers.get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_deactivated_user_is_refused_at_once() {
    let w = World::start(|b| b.env("WEBSITE_AUTH_ENABLED", "true"));
    let org = w.org("Deactivation Org").await;
    let user = w
        .admin_post(
            "/api/users",
            None,
            json!({"email": "dee@deactivation.example", "isPlatformAdmin": false, "orgId": org}),
        )
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{}", user.text);
    let user_id = user.body["id"].as_str().unwrap().to_owned();
    let as_user = || {
        send(client().get(w.server.url("/api/executions")).header(
            "X-MS-CLIENT-PRINCIPAL",
            easy_principal("dee@deactivation.example", "oid-dee"),
        ))
    };
    let before = as_user().await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    let off = send(
        w.req(
            reqwest::Method::PATCH,
            &format!("/api/users/{user_id}"),
            &w.admin,
        )
        .json(&json!({"isActive": false})),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    let after = as_user().await;
    assert_eq!(after.status, StatusCode::FORBIDDEN, "{}", after.text);
}

#[tokio::test]
async fn rewriting_the_audit_table_or_cutting_its_tail_is_detected() {
    use bifrost::audit::entry_hash;
    use bifrost_store::table::{
        IfMatch, SqliteTables, TableName, TableStore, Value as Prop, WriteMode,
    };
    use bifrost_store::{RowKey, Scope};

    let w = World::start(|b| b);
    for n in 0..6 {
        let key = w
            .admin_post("/api/keys", None, json!({"name": format!("chain-{n}")}))
            .await;
        assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    }
    let verified = w.admin_get("/api/audit/verify").await;
    assert_eq!(verified.body["ok"], true, "{}", verified.text);
    let tables = SqliteTables::open(&w.data().join("tables.sqlite")).unwrap();
    let table = TableName::new("AuditLog").unwrap();
    let pk = Scope::Global.partition_key();
    let row = |seq: u64| RowKey::new(format!("{seq:020}")).unwrap();
    let head = tables
        .get(&table, &pk, &RowKey::new("head").unwrap())
        .await
        .unwrap()
        .unwrap();
    let last = match head.get("Seq") {
        Some(Prop::Int64(n)) => *n as u64,
        other => panic!("head Seq: {other:?}"),
    };
    assert!(last >= 6);

    // Cut the tail: drop the newest two entries and point the head at the one before.
    let s = |e: &bifrost_store::table::Entity, name: &str| match e.get(name) {
        Some(Prop::String(v)) => v.clone(),
        other => panic!("{name}: {other:?}"),
    };
    for seq in [last, last - 1] {
        let entity = tables.get(&table, &pk, &row(seq)).await.unwrap().unwrap();
        tables
            .delete(&table, &pk, &entity.row_key, &IfMatch::Any)
            .await
            .unwrap();
    }
    let new_last = tables
        .get(&table, &pk, &row(last - 2))
        .await
        .unwrap()
        .unwrap();
    let mut head = head;
    head.set("Seq", Prop::Int64((last - 2) as i64));
    head.set("Hash", s(&new_last, "Hash"));
    tables
        .update(&table, &head, WriteMode::Replace, &IfMatch::Any)
        .await
        .unwrap();
    let cut = w.admin_get("/api/audit/verify").await;
    assert_eq!(
        cut.body["ok"], false,
        "a cut tail went unnoticed: {}",
        cut.text
    );

    // Rewrite an early entry and re-hash the whole chain after it, as someone without the
    // platform's audit key would: plain SHA-256 over the documented canonical form.
    let mut prev: Option<String> = None;
    let mut final_hash = String::new();
    for seq in 1..=(last - 2) {
        let mut e = tables.get(&table, &pk, &row(seq)).await.unwrap().unwrap();
        if seq == 2 {
            e.set("Actor", "user:mallory");
        }
        if let Some(p) = &prev {
            e.set("PrevHash", p.clone());
        }
        let at = match e.get("OccurredAt") {
            Some(Prop::DateTime(t)) => *t,
            other => panic!("OccurredAt: {other:?}"),
        };
        let hash = entry_hash(
            seq,
            at,
            &s(&e, "EventType"),
            &s(&e, "Actor"),
            &s(&e, "Scope"),
            &s(&e, "Details"),
            &s(&e, "PrevHash"),
        );
        e.set("Hash", hash.clone());
        tables
            .update(&table, &e, WriteMode::Replace, &IfMatch::Any)
            .await
            .unwrap();
        prev = Some(hash.clone());
        final_hash = hash;
    }
    let mut head = tables
        .get(&table, &pk, &RowKey::new("head").unwrap())
        .await
        .unwrap()
        .unwrap();
    head.set("Hash", final_hash);
    tables
        .update(&table, &head, WriteMode::Replace, &IfMatch::Any)
        .await
        .unwrap();
    let rewritten = w.admin_get("/api/audit/verify").await;
    assert_eq!(
        rewritten.body["ok"], false,
        "a rewritten chain went unnoticed: {}",
        rewritten.text
    );
}

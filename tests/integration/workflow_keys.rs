//! Workflow API keys against the real binary: `/api/workflow-keys` (create, list, revoke) and
//! `Authorization: Bearer wk_...` on `/api/endpoints/{name}` — per-workflow and global keys,
//! `disable_global_key` (decorator and per key), revocation, the caller recorded in the history,
//! and that raw keys reach neither listings nor the server's logs. Expiry is covered by the unit
//! tests of `src/auth/workflow_keys.rs` (injectable clock).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, ServerBuilder, client};

const WORKFLOWS: &str = r#"
from bifrost import workflow


@workflow(name="alpha", endpoint_enabled=True)
async def alpha(context):
    return {"user": context.user_id, "org": context.org_id, "admin": context.is_platform_admin}


@workflow(name="beta", endpoint_enabled=True, allowed_methods=["GET", "POST"])
async def beta(context):
    return {"user": context.user_id}


@workflow(name="locked", endpoint_enabled=True, disable_global_key=True)
async def locked(context):
    return {"user": context.user_id}


@workflow(name="open_hook", endpoint_enabled=True, public_endpoint=True)
async def open_hook(context):
    return {"user": context.user_id}
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
            // Our own debug logs too: a raw key must not appear at any of our levels.
            .env("BIFROST_LOG", "info,bifrost=debug")
            .start();
        Self { server, _ws: ws }
    }

    fn get(&self, path: &str) -> RequestBuilder {
        client().get(self.server.url(path))
    }

    fn post(&self, path: &str) -> RequestBuilder {
        client().post(self.server.url(path))
    }

    fn delete(&self, path: &str) -> RequestBuilder {
        client().delete(self.server.url(path))
    }

    /// Creates a key: `(id, raw key, full answer)`.
    async fn create(&self, body: Value) -> (String, String, Value) {
        let created = json_of(
            self.post("/api/workflow-keys").json(&body),
            StatusCode::CREATED,
        )
        .await;
        (
            created["id"].as_str().unwrap().to_owned(),
            created["rawKey"].as_str().unwrap().to_owned(),
            created,
        )
    }

    fn call(&self, workflow: &str, key: &str) -> RequestBuilder {
        self.post(&format!("/api/endpoints/{workflow}"))
            .bearer_auth(key)
    }
}

async fn json_of(req: RequestBuilder, status: StatusCode) -> Value {
    let res = req.send().await.unwrap();
    let got = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn status_of(req: RequestBuilder) -> StatusCode {
    req.send().await.unwrap().status()
}

async fn message(req: RequestBuilder, status: StatusCode) -> String {
    json_of(req, status).await["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn bad_field(req: RequestBuilder) -> String {
    let body = json_of(req, StatusCode::BAD_REQUEST).await;
    body["details"]["field"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The secret part of a raw key (`wk_<id>_<secret>`).
/// The secret part of `wk_{id}_{secret}`. The secret is base64url and may itself contain `_`,
/// so split at the first two separators only.
fn secret_of(raw: &str) -> &str {
    raw.splitn(3, '_').nth(2).unwrap()
}

#[tokio::test]
async fn workflow_and_global_keys_open_endpoints() {
    let w = World::start();
    let (alpha_id, alpha_key, created) = w
        .create(json!({"workflowName": "alpha", "description": "CI runner"}))
        .await;
    assert!(alpha_key.starts_with("wk_"), "{created}");
    assert!(alpha_key.contains(&alpha_id));
    assert_eq!(created["workflowName"], "alpha");
    assert_eq!(created["workflowId"], "alpha");
    assert_eq!(created["global"], false);
    assert_eq!(created["description"], "CI runner");
    assert_eq!(created["expiresAt"], Value::Null);
    assert_eq!(created["revoked"], false);
    assert_eq!(created["createdBy"], "local-developer");
    let (global_id, global_key, created) = w.create(json!({})).await;
    assert_eq!(created["global"], true);
    assert_eq!(created["workflowName"], Value::Null);
    // v1's body: `workflowId`, `disableGlobalKey` always sent.
    let (_, beta_key, created) = w
        .create(json!({"workflowId": "beta", "disableGlobalKey": false}))
        .await;
    assert_eq!(created["workflowName"], "beta");

    // A workflow key runs its workflow; the history names the key.
    let run = json_of(w.call("alpha", &alpha_key), StatusCode::OK).await;
    assert_eq!(run["status"], "Success", "{run}");
    let caller = format!("api_key:wk_{alpha_id}");
    assert_eq!(
        run["result"],
        json!({"user": caller, "org": null, "admin": true})
    );
    let id = run["executionId"].as_str().unwrap();
    let record = json_of(w.get(&format!("/api/executions/{id}")), StatusCode::OK).await;
    assert_eq!(record["executedBy"], caller.as_str());
    let history = json_of(w.get("/api/executions?workflowName=alpha"), StatusCode::OK).await;
    assert!(
        history["executions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["executedBy"] == caller.as_str()),
        "{history}"
    );
    json_of(
        w.get("/api/endpoints/beta").bearer_auth(&beta_key),
        StatusCode::OK,
    )
    .await;

    // A key of another workflow: 403, saying why.
    let text = message(w.call("beta", &alpha_key), StatusCode::FORBIDDEN).await;
    assert!(text.contains("'beta'"), "{text}");
    message(w.call("locked", &alpha_key), StatusCode::FORBIDDEN).await;

    // A global key runs any workflow, except one with disable_global_key=True.
    let run = json_of(w.call("alpha", &global_key), StatusCode::OK).await;
    assert_eq!(run["result"]["user"], format!("api_key:wk_{global_id}"));
    let text = message(w.call("locked", &global_key), StatusCode::FORBIDDEN).await;
    assert!(text.contains("does not accept global keys"), "{text}");
    // A workflow key of beta created with disableGlobalKey refuses global keys on beta only.
    json_of(w.call("beta", &global_key), StatusCode::OK).await;
    let (opt_out_id, _, _) = w
        .create(json!({"workflowName": "beta", "disableGlobalKey": true}))
        .await;
    message(w.call("beta", &global_key), StatusCode::FORBIDDEN).await;
    json_of(w.call("alpha", &global_key), StatusCode::OK).await;
    assert_eq!(
        status_of(w.delete(&format!("/api/workflow-keys/{opt_out_id}"))).await,
        StatusCode::NO_CONTENT
    );
    json_of(w.call("beta", &global_key), StatusCode::OK).await;

    // Missing, foreign-scheme and bogus credentials: 401.
    let text = message(w.post("/api/endpoints/alpha"), StatusCode::UNAUTHORIZED).await;
    assert!(text.contains("Authorization: Bearer"), "{text}");
    message(
        w.post("/api/endpoints/alpha")
            .header("authorization", "Basic dXNlcjpwYXNz"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let forged = format!("wk_{alpha_id}_{}", "A".repeat(43));
    for bogus in ["bogus-token-7f3a", forged.as_str()] {
        let text = message(w.call("alpha", bogus), StatusCode::UNAUTHORIZED).await;
        assert_eq!(text, "invalid workflow key");
    }
    // A public endpoint needs no key and ignores whatever Authorization says.
    let run = json_of(w.call("open_hook", "a-third-party-token"), StatusCode::OK).await;
    assert_eq!(run["result"]["user"], "public:anonymous");

    // Revocation: 401 at once, saying so; revoking twice is a conflict.
    assert_eq!(
        status_of(w.delete(&format!("/api/workflow-keys/{alpha_id}"))).await,
        StatusCode::NO_CONTENT
    );
    let text = message(w.call("alpha", &alpha_key), StatusCode::UNAUTHORIZED).await;
    assert!(text.contains("revoked"), "{text}");
    json_of(
        w.delete(&format!("/api/workflow-keys/{alpha_id}")),
        StatusCode::CONFLICT,
    )
    .await;
    json_of(
        w.delete("/api/workflow-keys/00000000000000ff"),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        bad_field(w.delete("/api/workflow-keys/not-an-id")).await,
        "keyId"
    );

    // The list: metadata only, filterable, with last use and revocation.
    let res = w.get("/api/workflow-keys").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    for raw in [&alpha_key, &global_key, &beta_key] {
        assert!(!text.contains(raw.as_str()), "raw key listed: {text}");
        assert!(!text.contains(secret_of(raw)), "secret listed: {text}");
    }
    assert!(!text.to_ascii_lowercase().contains("hash"), "{text}");
    assert!(!text.contains("sha256"), "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4, "{list}");
    let alpha = keys.iter().find(|k| k["id"] == alpha_id.as_str()).unwrap();
    assert_eq!(alpha["revoked"], true);
    assert_eq!(alpha["revokedBy"], "local-developer");
    assert!(alpha["lastUsedAt"].is_string(), "{alpha}");
    assert!(alpha.get("rawKey").is_none());
    let only_beta = json_of(
        w.get("/api/workflow-keys?workflowName=beta"),
        StatusCode::OK,
    )
    .await;
    let only_beta = only_beta["keys"].as_array().unwrap();
    assert_eq!(only_beta.len(), 2);
    assert!(only_beta.iter().all(|k| k["workflowName"] == "beta"));
    assert_eq!(
        bad_field(w.get("/api/workflow-keys?workflow=beta")).await,
        "workflow"
    );

    // Audited with ids, never the key.
    let audit = json_of(w.get("/api/audit?eventType=key_created"), StatusCode::OK).await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["details"]["kind"] == "workflow_key"
                && e["details"]["key_id"] == alpha_id.as_str()),
        "{audit}"
    );
    let revoked = json_of(w.get("/api/audit?eventType=key_revoked"), StatusCode::OK).await;
    assert!(
        revoked["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["details"]["key_id"] == alpha_id.as_str()),
        "{revoked}"
    );
    let rejected = json_of(w.get("/api/audit?eventType=key_rejected"), StatusCode::OK).await;
    assert!(
        rejected["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["details"]["reason"] == "other_workflow"),
        "{rejected}"
    );
    let all_audit = w
        .get("/api/audit")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Nothing of a raw key in the logs or the audit log.
    let logs = w.server.stderr();
    assert!(
        logs.contains("/api/endpoints/alpha"),
        "request lines are logged"
    );
    for raw in [&alpha_key, &global_key, &beta_key] {
        assert!(!logs.contains(secret_of(raw)), "raw key in logs:\n{logs}");
        assert!(!all_audit.contains(secret_of(raw)), "raw key audited");
    }
    for header_value in ["a-third-party-token", "dXNlcjpwYXNz", "bogus-token-7f3a"] {
        assert!(
            !logs.contains(header_value),
            "Authorization header in logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn create_checks_its_input() {
    let w = World::start();
    let cases = [
        (json!({"workflowName": 5}), "workflowName"),
        (json!({"workflowName": ""}), "workflowName"),
        (json!({"workflowName": "nope"}), "workflowName"),
        (json!({"workflowId": "nope"}), "workflowName"),
        (
            json!({"workflowName": "alpha", "workflowId": "beta"}),
            "workflowId",
        ),
        (json!({"expiresInDays": 0}), "expiresInDays"),
        (json!({"expiresInDays": 3651}), "expiresInDays"),
        (json!({"expiresInDays": 1.5}), "expiresInDays"),
        (json!({"expiresInDays": "10"}), "expiresInDays"),
        (json!({"description": "d".repeat(501)}), "description"),
        (json!({"description": 1}), "description"),
        (json!({"disableGlobalKey": "yes"}), "disableGlobalKey"),
        // A global key cannot opt a workflow out of global keys.
        (json!({"disableGlobalKey": true}), "disableGlobalKey"),
        (json!({"workflowName": "alpha", "bogus": 1}), "bogus"),
    ];
    for (body, field) in cases {
        assert_eq!(
            bad_field(w.post("/api/workflow-keys").json(&body)).await,
            field,
            "{body}"
        );
    }
    json_of(
        w.post("/api/workflow-keys").json(&json!([1])),
        StatusCode::BAD_REQUEST,
    )
    .await;
    json_of(
        w.post("/api/workflow-keys")
            .header("content-type", "application/json")
            .body("{"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        json_of(w.get("/api/workflow-keys"), StatusCode::OK).await["keys"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was created"
    );

    // An expiring key: expiresAt one day out, not yet expired, and it works.
    let (_, raw, created) = w
        .create(json!({"workflowName": "alpha", "expiresInDays": 1}))
        .await;
    let expires = time::OffsetDateTime::parse(
        created["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_a_day = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    assert!(
        (expires - in_a_day).abs() < time::Duration::minutes(1),
        "{created}"
    );
    assert_eq!(created["expired"], false);
    json_of(w.call("alpha", &raw), StatusCode::OK).await;
}

//! The admin resources (organizations, users, roles, config, secrets, function keys) against
//! the real binary: CRUD happy paths, 400s that name the field, ETag preconditions, masking,
//! secret values that never come back, and the function-key lifecycle. Every response of every
//! test is checked to be below 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use base64::Engine as _;
use bifrost::audit::{AuditEntry, AuditEventType, AuditLog, AuditQuery};
use bifrost_store::table::SqliteTables;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::support::{Server, ServerBuilder, client};

/// One answer, already checked not to be a server error.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The field a 400 names (`details.field`).
    pub fn field(&self) -> String {
        assert_eq!(self.status, 400, "expected a 400: {}", self.text);
        self.json()["details"]["field"]
            .as_str()
            .unwrap_or_else(|| panic!("400 without details.field: {}", self.text))
            .to_owned()
    }
}

/// A caller: the server, a client and the headers it sends on every request.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: reqwest::Client,
    headers: Vec<(String, String)>,
}

impl Api {
    pub fn new(server: &Server) -> Self {
        Self {
            base: server.url(""),
            client: client(),
            headers: Vec::new(),
        }
    }

    /// This caller with one more header on every request.
    pub fn with(&self, name: &str, value: &str) -> Self {
        let mut api = self.clone();
        api.headers.push((name.to_owned(), value.to_owned()));
        api
    }

    pub async fn raw(&self, method: &str, path: &str, body: Option<String>) -> Reply {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        assert!(status < 500, "{method} {path} answered {status}: {text}");
        Reply {
            status,
            headers,
            text,
        }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.raw(method, path, body.map(Value::to_string)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send("PUT", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send("PATCH", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None).await
    }

    /// POSTs and expects 201; returns the body.
    pub async fn create(&self, path: &str, body: &Value) -> Value {
        let reply = self.post(path, body).await;
        assert_eq!(reply.status, 201, "POST {path}: {}", reply.text);
        reply.json()
    }
}

/// A server whose anonymous callers act as the local platform admin.
pub fn dev_server() -> Server {
    ServerBuilder::new()
        .env("BIFROST_DEV_IDENTITY", "admin")
        .env("BIFROST_RATE_LIMIT", "0")
        .start()
}

/// A server that trusts Easy Auth headers (the first login becomes platform admin).
pub fn easy_auth_server() -> Server {
    ServerBuilder::new()
        .env("WEBSITE_AUTH_ENABLED", "true")
        .env("BIFROST_RATE_LIMIT", "0")
        .start()
}

/// A Static Web Apps style `X-MS-CLIENT-PRINCIPAL` for `email`.
pub fn principal(email: &str, user_id: &str) -> String {
    let p = json!({
        "identityProvider": "aad",
        "userId": user_id,
        "userDetails": email,
        "userRoles": ["authenticated"],
    });
    base64::engine::general_purpose::STANDARD.encode(p.to_string())
}

/// Every audit entry of `event_type` the server has recorded so far.
pub async fn audit_entries(server: &Server, event_type: AuditEventType) -> Vec<AuditEntry> {
    let tables =
        Arc::new(SqliteTables::open(&server.data.path().join("data/tables.sqlite")).unwrap());
    let log = AuditLog::reader(tables).unwrap();
    let mut query = AuditQuery {
        event_type: Some(event_type),
        page_size: Some(1000),
        ..Default::default()
    };
    let mut entries = Vec::new();
    loop {
        let page = log.list(&query).await.unwrap();
        entries.extend(page.entries);
        match page.continuation {
            Some(token) => query.continuation = Some(token),
            None => break,
        }
    }
    entries
}

/// Every audit entry of every type, serialized, for "this value never appears" checks.
pub async fn whole_audit_log(server: &Server) -> String {
    let mut all = String::new();
    for t in AuditEventType::ALL {
        for e in audit_entries(server, *t).await {
            all.push_str(&format!(
                "{} {} {} {}\n",
                e.event_type,
                e.actor,
                e.scope,
                Value::Object(e.details)
            ));
        }
    }
    all
}

fn etag_header(reply: &Reply) -> String {
    reply.headers["etag"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn organizations_crud_with_etags_and_field_errors() {
    let server = dev_server();
    let api = Api::new(&server);

    let created = api
        .post(
            "/api/organizations",
            &json!({"name": "  Contoso  ", "domain": "@Contoso.Example"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let org = created.json();
    assert_eq!(org["name"], "Contoso");
    assert_eq!(org["domain"], "contoso.example", "domains are normalized");
    assert_eq!(org["isActive"], true);
    assert_eq!(org["createdBy"], "local-developer");
    assert_eq!(etag_header(&created), org["etag"].as_str().unwrap());
    let id = org["id"].as_str().unwrap().to_owned();
    let other = api
        .create("/api/organizations", &json!({"name": "Fabrikam"}))
        .await;
    assert_eq!(other["domain"], Value::Null);

    // Reads: one, and the list in pages.
    let got = api.get(&format!("/api/organizations/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["name"], "Contoso");
    let first = api.get("/api/organizations?limit=1").await.json();
    assert_eq!(first["organizations"].as_array().unwrap().len(), 1);
    let token = first["continuationToken"].as_str().expect("a second page");
    let second = api
        .get(&format!(
            "/api/organizations?limit=1&continuationToken={token}"
        ))
        .await
        .json();
    let mut seen: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|p| p["organizations"].as_array().unwrap().clone())
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    let mut want = vec![id.clone(), other["id"].as_str().unwrap().to_owned()];
    want.sort();
    assert_eq!(seen, want);

    // Bad input names the field.
    let cases = [
        (json!({"domain": "x.example"}), "name"),
        (json!({"name": "  "}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "A", "domain": "not a domain"}), "domain"),
        (json!({"name": "A", "domain": "nodot"}), "domain"),
        (json!({"name": "A", "domain": "a@b.example"}), "domain"),
        (json!({"name": "A", "isActive": "yes"}), "isActive"),
        (json!({"name": "A", "colour": "red"}), "colour"),
    ];
    for (body, field) in cases {
        let reply = api.post("/api/organizations", &body).await;
        assert_eq!(reply.field(), field, "{body}: {}", reply.text);
    }
    let bad_json = api
        .raw("POST", "/api/organizations", Some("{\"name\": ".into()))
        .await;
    assert_eq!(bad_json.status, 400);
    assert_eq!(bad_json.json()["error"], "InvalidJson");
    let not_object = api.post("/api/organizations", &json!(["Contoso"])).await;
    assert_eq!(not_object.status, 400);
    assert_eq!(api.get("/api/organizations?limit=0").await.field(), "limit");
    assert_eq!(
        api.get("/api/organizations?continuationToken=bogus!")
            .await
            .field(),
        "continuationToken"
    );
    let taken = api
        .post(
            "/api/organizations",
            &json!({"name": "Copycat", "domain": "contoso.example"}),
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.text);

    // Unknown and malformed ids.
    let missing = api
        .get("/api/organizations/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(api.get("/api/organizations/a'b").await.field(), "orgId");

    // PATCH: stale ETag → 412, current → 200; null removes the domain.
    let etag = org["etag"].as_str().unwrap();
    let changed = api
        .with("If-Match", etag)
        .patch(
            &format!("/api/organizations/{id}"),
            &json!({"name": "Contoso Ltd", "domain": null}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let changed_body = changed.json();
    assert_eq!(changed_body["name"], "Contoso Ltd");
    assert_eq!(changed_body["domain"], Value::Null);
    assert_ne!(changed_body["etag"], org["etag"]);
    assert_eq!(
        etag_header(&changed),
        changed_body["etag"].as_str().unwrap()
    );
    let stale = api
        .with("If-Match", etag)
        .patch(
            &format!("/api/organizations/{id}"),
            &json!({"name": "Lost"}),
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    assert_eq!(
        api.patch(&format!("/api/organizations/{id}"), &json!({"isActive": 0}))
            .await
            .field(),
        "isActive"
    );
    let unconditional = api
        .patch(
            &format!("/api/organizations/{id}"),
            &json!({"isActive": false}),
        )
        .await;
    assert_eq!(unconditional.status, 200);
    assert_eq!(unconditional.json()["isActive"], false);

    // DELETE: stale → 412, then gone.
    let stale_delete = api
        .with("If-Match", etag)
        .delete(&format!("/api/organizations/{id}"))
        .await;
    assert_eq!(stale_delete.status, 412);
    assert_eq!(
        api.delete(&format!("/api/organizations/{id}")).await.status,
        204
    );
    assert_eq!(
        api.get(&format!("/api/organizations/{id}")).await.status,
        404
    );
    assert_eq!(
        api.delete(&format!("/api/organizations/{id}")).await.status,
        404
    );
}

#[tokio::test]
async fn users_crud_and_the_org_id_rule() {
    let server = dev_server();
    let api = Api::new(&server);
    let org = api
        .create(
            "/api/organizations",
            &json!({"name": "Contoso", "domain": "contoso.example"}),
        )
        .await;
    let org_id = org["id"].as_str().unwrap();

    let user = api
        .create(
            "/api/users",
            &json!({"email": "Bob@Contoso.example", "displayName": "Bob", "isPlatformAdmin": false, "orgId": org_id}),
        )
        .await;
    assert_eq!(user["email"], "bob@contoso.example");
    assert_eq!(user["userType"], "ORG");
    assert_eq!(user["orgId"], org_id);
    assert_eq!(user["isPlatformAdmin"], false);
    let user_id = user["id"].as_str().unwrap().to_owned();
    let admin = api
        .create(
            "/api/users",
            &json!({"email": "ops@msp.example", "isPlatformAdmin": true}),
        )
        .await;
    assert_eq!(admin["userType"], "PLATFORM");
    assert_eq!(admin["orgId"], Value::Null);
    assert_eq!(admin["displayName"], "ops", "defaults to the local part");

    let cases = [
        (
            json!({"email": "x@contoso.example", "isPlatformAdmin": false}),
            "orgId",
        ),
        (
            json!({"email": "x@msp.example", "isPlatformAdmin": true, "orgId": org_id}),
            "orgId",
        ),
        (
            json!({"email": "x@contoso.example", "orgId": org_id}),
            "isPlatformAdmin",
        ),
        (
            json!({"email": "not-an-email", "isPlatformAdmin": true}),
            "email",
        ),
        (json!({"isPlatformAdmin": true}), "email"),
        (
            json!({"email": "x@y.example", "isPlatformAdmin": "no"}),
            "isPlatformAdmin",
        ),
        (
            json!({"email": "x@contoso.example", "isPlatformAdmin": false, "orgId": "00000000-0000-4000-8000-000000000000"}),
            "orgId",
        ),
        (
            json!({"email": "x@contoso.example", "isPlatformAdmin": false, "orgId": "bad id"}),
            "orgId",
        ),
        (
            json!({"email": "x@msp.example", "isPlatformAdmin": true, "role": "admin"}),
            "role",
        ),
    ];
    for (body, field) in cases {
        let reply = api.post("/api/users", &body).await;
        assert_eq!(reply.field(), field, "{body}: {}", reply.text);
    }
    let duplicate = api
        .post(
            "/api/users",
            &json!({"email": "bob@contoso.example", "isPlatformAdmin": false, "orgId": org_id}),
        )
        .await;
    assert_eq!(duplicate.status, 409);

    // Listing by type and org; bad filters name the parameter.
    let org_users = api
        .get(&format!("/api/users?type=org&orgId={org_id}"))
        .await
        .json();
    let ids: Vec<&str> = org_users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![user_id.as_str()]);
    let platform = api.get("/api/users?type=platform").await.json();
    assert!(
        platform["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["userType"] == "PLATFORM")
    );
    let switched = api
        .with("X-Organization-Id", org_id)
        .get("/api/users")
        .await
        .json();
    assert_eq!(switched["users"].as_array().unwrap().len(), 1);
    assert_eq!(api.get("/api/users?type=guest").await.field(), "type");
    assert_eq!(api.get("/api/users?orgId=a%27b").await.field(), "orgId");

    // Read, update with ETag, roles.
    let path = format!("/api/users/{user_id}");
    assert_eq!(api.get(&path).await.json()["displayName"], "Bob");
    let etag = user["etag"].as_str().unwrap();
    let renamed = api
        .with("If-Match", etag)
        .patch(&path, &json!({"displayName": "Robert"}))
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.json()["displayName"], "Robert");
    let stale = api
        .with("If-Match", etag)
        .patch(&path, &json!({"displayName": "Bobby"}))
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(
        api.patch(&path, &json!({"isPlatformAdmin": true, "orgId": org_id}))
            .await
            .field(),
        "orgId"
    );
    assert_eq!(
        api.patch(
            &format!("/api/users/{}", admin["id"].as_str().unwrap()),
            &json!({"isPlatformAdmin": false})
        )
        .await
        .field(),
        "orgId"
    );
    assert_eq!(
        api.patch(&path, &json!({"email": "nope"})).await.field(),
        "email"
    );

    let role = api
        .with("X-Organization-Id", org_id)
        .create("/api/roles", &json!({"name": "Helpdesk"}))
        .await;
    let role_id = role["id"].as_str().unwrap();
    let assigned = api
        .with("X-Organization-Id", org_id)
        .post(
            &format!("/api/roles/{role_id}/users"),
            &json!({"userIds": [user_id]}),
        )
        .await;
    assert_eq!(assigned.status, 200, "{}", assigned.text);
    let roles = api.get(&format!("{path}/roles")).await.json();
    assert_eq!(roles["roles"][0]["id"], role_id);
    assert_eq!(roles["roles"][0]["name"], "Helpdesk");

    // Unknown and malformed ids; delete.
    assert_eq!(api.get("/api/users/no-such-user").await.status, 404);
    assert_eq!(api.get("/api/users/bad%20id").await.field(), "userId");
    assert_eq!(api.delete(&path).await.status, 204);
    assert_eq!(api.get(&path).await.status, 404);
    assert_eq!(api.get(&format!("{path}/roles")).await.status, 404);
    let members = api
        .with("X-Organization-Id", org_id)
        .get(&format!("/api/roles/{role_id}/users"))
        .await
        .json();
    assert_eq!(
        members["userIds"],
        json!([]),
        "a deleted user's assignments go with them"
    );
}

#[tokio::test]
async fn roles_and_assignments_are_bound_to_the_request_org() {
    let server = dev_server();
    let api = Api::new(&server);
    let org = api
        .create("/api/organizations", &json!({"name": "Contoso"}))
        .await;
    let org_id = org["id"].as_str().unwrap();
    let other = api
        .create("/api/organizations", &json!({"name": "Fabrikam"}))
        .await;
    let user = api
        .create(
            "/api/users",
            &json!({"email": "amy@contoso.example", "isPlatformAdmin": false, "orgId": org_id}),
        )
        .await;
    let user_id = user["id"].as_str().unwrap();
    let outsider = api
        .create(
            "/api/users",
            &json!({"email": "zed@fabrikam.example", "isPlatformAdmin": false, "orgId": other["id"]}),
        )
        .await;

    // GLOBAL scope has no roles; an unknown org is not found.
    assert_eq!(api.get("/api/roles").await.field(), "X-Organization-Id");
    let ghost = api
        .with("X-Organization-Id", "00000000-0000-4000-8000-000000000000")
        .get("/api/roles")
        .await;
    assert_eq!(ghost.status, 404, "{}", ghost.text);
    assert_eq!(
        api.with("X-Organization-Id", "bad id!")
            .get("/api/roles")
            .await
            .field(),
        "X-Organization-Id"
    );

    let api = api.with("X-Organization-Id", org_id);
    let created = api
        .post(
            "/api/roles",
            &json!({"name": "Helpdesk", "description": "first line"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let role = created.json();
    assert_eq!(etag_header(&created), role["etag"].as_str().unwrap());
    assert_eq!(role["orgId"], org_id);
    assert_eq!(role["description"], "first line");
    let role_id = role["id"].as_str().unwrap().to_owned();
    let path = format!("/api/roles/{role_id}");

    assert_eq!(
        api.post("/api/roles", &json!({"name": "helpdesk"}))
            .await
            .status,
        409,
        "names are unique per org, case-insensitively"
    );
    assert_eq!(
        api.post("/api/roles", &json!({"description": "x"}))
            .await
            .field(),
        "name"
    );
    assert_eq!(
        api.post("/api/roles", &json!({"name": ["x"]}))
            .await
            .field(),
        "name"
    );
    let list = api.get("/api/roles").await.json();
    assert_eq!(list["roles"].as_array().unwrap().len(), 1);
    assert_eq!(api.get(&path).await.json()["name"], "Helpdesk");

    // PUT with ETags.
    let etag = role["etag"].as_str().unwrap();
    let updated = api
        .with("If-Match", etag)
        .put(&path, &json!({"name": "Service desk", "isActive": false}))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json()["isActive"], false);
    let stale = api
        .with("If-Match", etag)
        .put(&path, &json!({"name": "Lost"}))
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(
        api.put(&path, &json!({"isActive": "no"})).await.field(),
        "isActive"
    );

    // Users: members only, ids named by index.
    let users = format!("{path}/users");
    let assigned = api.post(&users, &json!({"userIds": [user_id]})).await;
    assert_eq!(assigned.status, 200, "{}", assigned.text);
    assert_eq!(assigned.json()["userIds"], json!([user_id]));
    assert_eq!(
        api.post(&users, &json!({"userIds": [outsider["id"]]}))
            .await
            .field(),
        "userIds"
    );
    assert_eq!(
        api.post(&users, &json!({"userIds": "amy"})).await.field(),
        "userIds"
    );
    assert_eq!(
        api.post(&users, &json!({"userIds": ["ok", 7]}))
            .await
            .field(),
        "userIds[1]"
    );
    assert_eq!(
        api.post(&users, &json!({"userIds": ["bad id"]}))
            .await
            .field(),
        "userIds[0]"
    );
    assert_eq!(api.post(&users, &json!({})).await.field(), "userIds");
    assert_eq!(api.get(&users).await.json()["userIds"], json!([user_id]));
    assert_eq!(api.delete(&format!("{users}/{user_id}")).await.status, 204);
    assert_eq!(api.delete(&format!("{users}/{user_id}")).await.status, 404);

    // Forms.
    let forms = format!("{path}/forms");
    let linked = api
        .post(&forms, &json!({"formIds": ["form-1", "form-2", "form-1"]}))
        .await;
    assert_eq!(linked.status, 200, "{}", linked.text);
    assert_eq!(linked.json()["formIds"], json!(["form-1", "form-2"]));
    assert_eq!(
        api.post(&forms, &json!({"formIds": ["a/b"]})).await.field(),
        "formIds[0]"
    );
    assert_eq!(api.delete(&format!("{forms}/form-1")).await.status, 204);
    assert_eq!(api.get(&forms).await.json()["formIds"], json!(["form-2"]));

    // Unknown ids, including another org's view of this role.
    assert_eq!(api.get("/api/roles/no-such-role").await.status, 404);
    assert_eq!(api.get("/api/roles/no-such-role/users").await.status, 404);
    assert_eq!(api.get("/api/roles/bad%20id").await.field(), "roleId");
    let from_other = Api::new(&server)
        .with("X-Organization-Id", other["id"].as_str().unwrap())
        .get(&path)
        .await;
    assert_eq!(from_other.status, 404);

    assert_eq!(api.delete(&path).await.status, 204);
    assert_eq!(api.get(&path).await.status, 404);
    assert_eq!(api.get(&forms).await.status, 404);
}

#[tokio::test]
async fn config_is_masked_typed_and_audited_without_values() {
    let server = dev_server();
    let api = Api::new(&server);
    const SECRET: &str = "TOPSECRET-value-0451";
    const TOKENISH: &str = "looks-plain-but-key-named-0452";

    let created = api
        .post(
            "/api/config",
            &json!({"key": "smtp_host", "value": "mail.example", "type": "string", "description": "outbound"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let entry = created.json();
    assert_eq!(entry["value"], "mail.example");
    assert_eq!(entry["scope"], "GLOBAL");
    assert_eq!(entry["updatedBy"], "local-developer");
    let replaced = api
        .post(
            "/api/config",
            &json!({"key": "smtp_host", "value": "mail2.example", "type": "string"}),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(
        api.post(
            "/api/config",
            &json!({"key": "retries", "value": 3, "type": "int"})
        )
        .await
        .json()["value"],
        "3"
    );
    assert_eq!(
        api.post(
            "/api/config",
            &json!({"key": "flags", "value": {"a": [1, 2]}, "type": "json"})
        )
        .await
        .json()["value"],
        r#"{"a":[1,2]}"#
    );
    let tokenish = api
        .post(
            "/api/config",
            &json!({"key": "halo_api_token", "value": TOKENISH, "type": "string"}),
        )
        .await;
    assert_eq!(tokenish.json()["value"], "***");

    // A secret value goes to the secret store and never comes back.
    let secret = api
        .post(
            "/api/config",
            &json!({"key": "halo_client", "secretValue": SECRET, "type": "secret_ref"}),
        )
        .await;
    assert_eq!(secret.status, 201, "{}", secret.text);
    assert_eq!(secret.json()["value"], "***");
    assert_eq!(secret.json()["type"], "secret_ref");
    let names = api.get("/api/secrets").await.json();
    assert!(
        names["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "halo-client"),
        "set_secret stored it: {names}"
    );

    let list = api.get("/api/config").await;
    assert_eq!(list.status, 200);
    let keys: Vec<String> = list.json()["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        vec![
            "flags",
            "halo_api_token",
            "halo_client",
            "retries",
            "smtp_host"
        ]
    );
    let one = api.get("/api/config/halo_client").await;
    assert_eq!(one.json()["value"], "***");
    for reply in [&list, &one, &secret, &tokenish] {
        assert!(!reply.text.contains(SECRET), "{}", reply.text);
        assert!(!reply.text.contains(TOKENISH), "{}", reply.text);
    }

    // Field errors.
    let cases = [
        (json!({"key": "n", "value": "abc", "type": "int"}), "value"),
        (
            json!({"key": "n", "value": "maybe", "type": "bool"}),
            "value",
        ),
        (json!({"key": "n", "value": "{", "type": "json"}), "value"),
        (json!({"key": "n", "value": 5, "type": "string"}), "value"),
        (json!({"key": "n", "value": "1.5", "type": "float"}), "type"),
        (json!({"key": "n", "value": "x"}), "type"),
        (
            json!({"key": "bad-key", "value": "x", "type": "string"}),
            "key",
        ),
        (json!({"value": "x", "type": "string"}), "key"),
        (json!({"key": "n", "type": "string"}), "value"),
        (
            json!({"key": "n", "secretValue": "s", "type": "string"}),
            "secretValue",
        ),
        (
            json!({"key": "n", "secretValue": "s", "value": "v", "type": "secret_ref"}),
            "secretValue",
        ),
        (
            json!({"key": "n", "value": "bifrost-global-x", "type": "secret_ref", "scope": "x"}),
            "scope",
        ),
    ];
    for (body, field) in cases {
        let reply = api.post("/api/config", &body).await;
        assert_eq!(reply.field(), field, "{body}: {}", reply.text);
    }
    assert_eq!(api.get("/api/config/bad-key").await.field(), "key");

    // An org sees its own rows and the GLOBAL ones it does not override.
    let org = api
        .create("/api/organizations", &json!({"name": "Contoso"}))
        .await;
    let org_id = org["id"].as_str().unwrap();
    let in_org = api.with("X-Organization-Id", org_id);
    let own = in_org
        .post(
            "/api/config",
            &json!({"key": "smtp_host", "value": "mail.contoso.example", "type": "string"}),
        )
        .await;
    assert_eq!(own.status, 201);
    assert_eq!(own.json()["scope"], "org");
    assert_eq!(own.json()["orgId"], org_id);
    let effective = in_org.get("/api/config").await.json();
    let by_key = |k: &str| {
        effective["config"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == k)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_key("smtp_host")["value"], "mail.contoso.example");
    assert_eq!(by_key("smtp_host")["scope"], "org");
    assert_eq!(by_key("retries")["scope"], "GLOBAL");
    assert_eq!(
        in_org.get("/api/config/retries").await.json()["scope"],
        "GLOBAL"
    );
    // A secret_ref may not point at a GLOBAL secret from an org.
    assert_eq!(
        in_org
            .post(
                "/api/config",
                &json!({"key": "borrowed", "value": "bifrost-global-halo-client", "type": "secret_ref"})
            )
            .await
            .field(),
        "value"
    );

    // Delete: only in the request's scope.
    assert_eq!(in_org.delete("/api/config/retries").await.status, 404);
    assert_eq!(in_org.delete("/api/config/smtp_host").await.status, 204);
    assert_eq!(
        in_org.get("/api/config/smtp_host").await.json()["value"],
        "mail2.example",
        "the GLOBAL value shows through again"
    );
    assert_eq!(api.delete("/api/config/smtp_host").await.status, 204);
    assert_eq!(api.get("/api/config/smtp_host").await.status, 404);

    // Audited, by key and action, never with a value.
    let changes = audit_entries(&server, AuditEventType::ConfigChanged).await;
    let actions: Vec<(String, String)> = changes
        .iter()
        .map(|e| {
            (
                e.details["config_key"].as_str().unwrap().to_owned(),
                e.details["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("smtp_host", "created"),
        ("smtp_host", "updated"),
        ("halo_client", "created"),
        ("smtp_host", "deleted"),
    ] {
        assert!(
            actions.iter().any(|(k, a)| k == want.0 && a == want.1),
            "{want:?} missing from {actions:?}"
        );
    }
    let log = whole_audit_log(&server).await;
    assert!(log.contains("secret_written"), "{log}");
    assert!(!log.contains(SECRET) && !log.contains(TOKENISH), "{log}");
    assert!(!log.contains("mail2.example"), "values are not audited");
    assert!(!server.stderr().contains(SECRET));
}

#[tokio::test]
async fn secrets_are_write_only() {
    let server = dev_server();
    let api = Api::new(&server);
    const FIRST: &str = "first-secret-value-7731";
    const SECOND: &str = "second-secret-value-7732";

    let created = api
        .post(
            "/api/secrets",
            &json!({"name": "Halo_Client", "value": FIRST}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["name"], "halo-client");
    assert_eq!(created.json()["secretName"], "bifrost-global-halo-client");
    let again = api
        .post(
            "/api/secrets",
            &json!({"name": "halo-client", "value": "other"}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    let rotated = api
        .put("/api/secrets/halo_client", &json!({"value": SECOND}))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let upserted = api
        .put("/api/secrets/new-one", &json!({"value": "x"}))
        .await;
    assert_eq!(upserted.status, 200);

    let list = api.get("/api/secrets").await;
    let names: Vec<String> = list.json()["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["halo-client", "new-one"]);
    assert_eq!(list.json()["count"], 2);

    // Org scope: its own names only.
    let org = api
        .create("/api/organizations", &json!({"name": "Contoso"}))
        .await;
    let in_org = api.with("X-Organization-Id", org["id"].as_str().unwrap());
    assert_eq!(in_org.get("/api/secrets").await.json()["count"], 0);
    in_org
        .create(
            "/api/secrets",
            &json!({"name": "halo-client", "value": "org"}),
        )
        .await;
    assert_eq!(in_org.get("/api/secrets").await.json()["count"], 1);
    assert_eq!(api.get("/api/secrets").await.json()["count"], 2);

    // Field errors.
    let cases = [
        (json!({"value": "x"}), "name"),
        (json!({"name": "bad/name", "value": "x"}), "name"),
        (json!({"name": "---", "value": "x"}), "name"),
        (json!({"name": "a".repeat(101), "value": "x"}), "name"),
        (json!({"name": "ok"}), "value"),
        (json!({"name": "ok", "value": 5}), "value"),
        (json!({"name": "ok", "value": ""}), "value"),
        (
            json!({"name": "ok", "value": "x".repeat(26 * 1024)}),
            "value",
        ),
        (json!({"name": "ok", "value": "x", "extra": 1}), "extra"),
    ];
    for (body, field) in cases {
        let reply = api.post("/api/secrets", &body).await;
        assert_eq!(reply.field(), field, "{}", reply.text);
    }
    assert_eq!(
        api.put("/api/secrets/ok", &json!({"value": true}))
            .await
            .field(),
        "value"
    );
    assert_eq!(
        api.put("/api/secrets/bad%20name", &json!({"value": "x"}))
            .await
            .field(),
        "name"
    );

    assert_eq!(api.delete("/api/secrets/halo-client").await.status, 204);
    assert_eq!(api.delete("/api/secrets/halo-client").await.status, 404);
    assert_eq!(in_org.get("/api/secrets").await.json()["count"], 1);

    for reply in [&created, &rotated, &list] {
        assert!(!reply.text.contains(FIRST) && !reply.text.contains(SECOND));
    }
    let written = audit_entries(&server, AuditEventType::SecretWritten).await;
    assert!(written.len() >= 4, "{written:?}");
    assert!(
        written
            .iter()
            .any(|e| e.details["secret_name"] == "bifrost-global-halo-client"
                && e.details["action"] == "updated")
    );
    let deleted = audit_entries(&server, AuditEventType::SecretDeleted).await;
    assert_eq!(deleted.len(), 1);
    let log = whole_audit_log(&server).await;
    assert!(!log.contains(FIRST) && !log.contains(SECOND), "{log}");
    let stderr = server.stderr();
    assert!(!stderr.contains(FIRST) && !stderr.contains(SECOND));
}

#[tokio::test]
async fn a_function_key_works_until_revoked() {
    let server = easy_auth_server();
    let admin = Api::new(&server).with(
        "X-MS-CLIENT-PRINCIPAL",
        &principal("admin@msp.example", "admin-oid-1"),
    );
    let anonymous = Api::new(&server);
    assert_eq!(
        admin.get("/api/organizations").await.status,
        200,
        "the first login is the platform admin"
    );
    assert_eq!(anonymous.get("/api/organizations").await.status, 401);

    let created = admin
        .post(
            "/api/keys",
            &json!({"name": "ci.deploy", "expiresInDays": 30}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let key = created.json();
    let raw = key["rawKey"].as_str().unwrap().to_owned();
    assert!(raw.starts_with("bfk_"), "{raw}");
    assert_eq!(key["scope"], "GLOBAL");
    assert_eq!(key["revoked"], false);
    assert!(key["expiresAt"].is_string());
    let key_id = key["id"].as_str().unwrap().to_owned();

    let with_key = anonymous.with("x-functions-key", &raw);
    assert_eq!(with_key.get("/api/organizations").await.status, 200);
    let org = with_key
        .create("/api/organizations", &json!({"name": "Made by CI"}))
        .await;
    assert_eq!(org["createdBy"], format!("key:{key_id}"));

    // The list shows metadata only.
    let list = admin.get("/api/keys").await;
    let keys = list.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], key_id.as_str());
    assert!(
        !list.text.contains(&raw[20..]),
        "the secret part is never listed"
    );
    assert!(!list.text.contains("sha256"), "nor its hash");
    assert!(keys[0].get("rawKey").is_none());

    // An org key, listed in its org only.
    let org_id = org["id"].as_str().unwrap();
    let org_key = admin
        .create("/api/keys", &json!({"name": "tenant", "orgId": org_id}))
        .await;
    assert_eq!(org_key["scope"], org_id);
    let in_org = admin.with("X-Organization-Id", org_id);
    assert_eq!(
        in_org.get("/api/keys").await.json()["keys"][0]["name"],
        "tenant"
    );
    assert_eq!(
        admin.get("/api/keys").await.json()["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        in_org.delete(&format!("/api/keys/{key_id}")).await.status,
        404,
        "another scope's key is not found"
    );

    // Field errors.
    let cases = [
        (json!({}), "name"),
        (json!({"name": "bad name!"}), "name"),
        (json!({"name": "x".repeat(65)}), "name"),
        (json!({"name": "k", "expiresInDays": 0}), "expiresInDays"),
        (json!({"name": "k", "expiresInDays": "7"}), "expiresInDays"),
        (json!({"name": "k", "expiresInDays": 1.5}), "expiresInDays"),
        (
            json!({"name": "k", "orgId": "00000000-0000-4000-8000-000000000000"}),
            "orgId",
        ),
        (json!({"name": "k", "orgId": "bad id"}), "orgId"),
        (json!({"name": "k", "scope": "GLOBAL"}), "scope"),
    ];
    for (body, field) in cases {
        let reply = admin.post("/api/keys", &body).await;
        assert_eq!(reply.field(), field, "{body}: {}", reply.text);
    }
    let other = admin
        .create("/api/organizations", &json!({"name": "Other"}))
        .await;
    assert_eq!(
        in_org
            .post("/api/keys", &json!({"name": "k", "orgId": other["id"]}))
            .await
            .field(),
        "orgId"
    );

    // Revoke: the key stops working at once.
    assert_eq!(
        admin.delete(&format!("/api/keys/{key_id}")).await.status,
        204
    );
    assert_eq!(with_key.get("/api/organizations").await.status, 401);
    assert_eq!(
        admin.delete(&format!("/api/keys/{key_id}")).await.status,
        409,
        "already revoked"
    );
    assert_eq!(
        admin.get("/api/keys").await.json()["keys"][0]["revoked"],
        true
    );
    assert_eq!(admin.delete("/api/keys/0123456789abcdef").await.status, 404);
    assert_eq!(admin.delete("/api/keys/NOT-HEX").await.field(), "keyId");

    let created_events = audit_entries(&server, AuditEventType::KeyCreated).await;
    assert!(
        created_events
            .iter()
            .any(|e| e.details["key_id"] == key_id.as_str())
    );
    let revoked = audit_entries(&server, AuditEventType::KeyRevoked).await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].details["key_id"], key_id.as_str());
    let log = whole_audit_log(&server).await;
    assert!(!log.contains(&raw[20..]), "raw keys are never audited");
}

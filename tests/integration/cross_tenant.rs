//! Cross-tenant attacks on the admin API, against the real binary: org A's function key and an
//! org user of A (Easy Auth) try every read and write of org B's data — by id, with
//! `X-Organization-Id: <B>` and with `GLOBAL` — and must be denied without any of B's names,
//! values or ids in the answer, with every header attempt recorded as `cross_org_denied`. B's data
//! must be unchanged afterwards. A platform admin switching orgs with the header sees exactly the
//! chosen org's data, and another org's ids are "not found" there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use bifrost::audit::AuditEventType;
use bifrost::http::access::{Access, Route, all_routes};
use serde_json::{Value, json};

use crate::api_admin::{Api, audit_entries, easy_auth_server, principal};

/// Every route of the admin resources this test must attack.
fn admin_routes() -> Vec<&'static Route> {
    let resources = [
        "organizations",
        "users",
        "roles",
        "config",
        "secrets",
        "keys",
    ];
    all_routes()
        .into_iter()
        .filter(|r| resources.contains(&r.id.split('.').next().unwrap_or("")))
        .collect()
}

struct Attack {
    route: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
}

fn attack(route: &'static str, method: &'static str, path: String, body: Option<Value>) -> Attack {
    Attack {
        route,
        method,
        path,
        body,
    }
}

#[tokio::test]
async fn org_a_cannot_read_or_write_org_b_data() {
    let server = easy_auth_server();
    let admin = Api::new(&server).with(
        "X-MS-CLIENT-PRINCIPAL",
        &principal("admin@msp.example", "oid-admin"),
    );

    // Two organizations with data in each, set up by the platform admin.
    let a = admin
        .create(
            "/api/organizations",
            &json!({"name": "Alpha Org", "domain": "alpha.example"}),
        )
        .await;
    let b = admin
        .create(
            "/api/organizations",
            &json!({"name": "Bravo Hidden Org", "domain": "bravo.example"}),
        )
        .await;
    let a_id = a["id"].as_str().unwrap().to_owned();
    let b_id = b["id"].as_str().unwrap().to_owned();
    let in_a = admin.with("X-Organization-Id", &a_id);
    let in_b = admin.with("X-Organization-Id", &b_id);

    let b_user = admin
        .create(
            "/api/users",
            &json!({"email": "bea@bravo.example", "isPlatformAdmin": false, "orgId": b_id}),
        )
        .await;
    let b_user_id = b_user["id"].as_str().unwrap().to_owned();
    let b_role = in_b
        .create("/api/roles", &json!({"name": "Bravo-Role-Name-3391"}))
        .await;
    let b_role_id = b_role["id"].as_str().unwrap().to_owned();
    let members = in_b
        .post(
            &format!("/api/roles/{b_role_id}/users"),
            &json!({"userIds": [b_user_id]}),
        )
        .await;
    assert_eq!(members.status, 200, "{}", members.text);
    let forms = in_b
        .post(
            &format!("/api/roles/{b_role_id}/forms"),
            &json!({"formIds": ["bravo-form-3391"]}),
        )
        .await;
    assert_eq!(forms.status, 200, "{}", forms.text);
    in_b.create(
        "/api/config",
        &json!({"key": "bravo_setting", "value": "BRAVO-CONFIG-VALUE-3391", "type": "string"}),
    )
    .await;
    in_b.create(
        "/api/config",
        &json!({"key": "bravo_vault", "secretValue": "BRAVO-SECRET-VALUE-3391", "type": "secret_ref"}),
    )
    .await;
    in_b.create(
        "/api/secrets",
        &json!({"name": "bravo-secret-3391", "value": "BRAVO-RAW-SECRET-3391"}),
    )
    .await;
    let b_key = admin
        .create(
            "/api/keys",
            &json!({"name": "bravo-key-3391", "orgId": b_id}),
        )
        .await;
    let b_key_id = b_key["id"].as_str().unwrap().to_owned();
    let b_raw_key = b_key["rawKey"].as_str().unwrap().to_owned();

    let a_role = in_a
        .create("/api/roles", &json!({"name": "Alpha-Role"}))
        .await;
    in_a.create(
        "/api/config",
        &json!({"key": "alpha_setting", "value": "alpha-value", "type": "string"}),
    )
    .await;
    in_a.create(
        "/api/secrets",
        &json!({"name": "alpha-secret", "value": "alpha-secret-value"}),
    )
    .await;
    let a_key = admin
        .create("/api/keys", &json!({"name": "alpha-key", "orgId": a_id}))
        .await;
    let a_key_id = a_key["id"].as_str().unwrap().to_owned();

    // The attackers: A's org-scoped key, and an org user of A signed in through Easy Auth.
    let key_a = Api::new(&server).with("x-functions-key", a_key["rawKey"].as_str().unwrap());
    let user_a = Api::new(&server).with(
        "X-MS-CLIENT-PRINCIPAL",
        &principal("alice@alpha.example", "oid-alice"),
    );
    assert_eq!(user_a.get("/api/roles").await.status, 403, "alice signs in");
    let a_users = admin.get(&format!("/api/users?orgId={a_id}")).await.json();
    let alice = a_users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "alice@alpha.example")
        .cloned()
        .expect("alice joined org A by her email domain");
    assert_eq!(alice["userType"], "ORG");
    let alice_id = alice["id"].as_str().unwrap().to_owned();

    // Every admin route, aimed at B's data.
    let role = format!("/api/roles/{b_role_id}");
    let attacks = vec![
        attack(
            "organizations.list",
            "GET",
            "/api/organizations".into(),
            None,
        ),
        attack(
            "organizations.create",
            "POST",
            "/api/organizations".into(),
            Some(json!({"name": "Evil", "domain": "evil.example"})),
        ),
        attack(
            "organizations.get",
            "GET",
            format!("/api/organizations/{b_id}"),
            None,
        ),
        attack(
            "organizations.update",
            "PATCH",
            format!("/api/organizations/{b_id}"),
            Some(json!({"name": "pwned", "domain": null})),
        ),
        attack(
            "organizations.delete",
            "DELETE",
            format!("/api/organizations/{b_id}"),
            None,
        ),
        attack(
            "users.list",
            "GET",
            format!("/api/users?orgId={b_id}"),
            None,
        ),
        attack(
            "users.create",
            "POST",
            "/api/users".into(),
            Some(json!({"email": "evil@alpha.example", "isPlatformAdmin": true})),
        ),
        attack("users.get", "GET", format!("/api/users/{b_user_id}"), None),
        attack(
            "users.update",
            "PATCH",
            format!("/api/users/{b_user_id}"),
            Some(json!({"orgId": a_id})),
        ),
        attack(
            "users.delete",
            "DELETE",
            format!("/api/users/{b_user_id}"),
            None,
        ),
        attack(
            "users.roles",
            "GET",
            format!("/api/users/{b_user_id}/roles"),
            None,
        ),
        attack("roles.list", "GET", "/api/roles".into(), None),
        attack(
            "roles.create",
            "POST",
            "/api/roles".into(),
            Some(json!({"name": "evil"})),
        ),
        attack("roles.get", "GET", role.clone(), None),
        attack(
            "roles.update",
            "PUT",
            role.clone(),
            Some(json!({"name": "pwned", "isActive": false})),
        ),
        attack("roles.delete", "DELETE", role.clone(), None),
        attack("roles.users.list", "GET", format!("{role}/users"), None),
        attack(
            "roles.users.assign",
            "POST",
            format!("{role}/users"),
            Some(json!({"userIds": [alice_id]})),
        ),
        attack(
            "roles.users.unassign",
            "DELETE",
            format!("{role}/users/{b_user_id}"),
            None,
        ),
        attack("roles.forms.list", "GET", format!("{role}/forms"), None),
        attack(
            "roles.forms.assign",
            "POST",
            format!("{role}/forms"),
            Some(json!({"formIds": ["evil-form"]})),
        ),
        attack(
            "roles.forms.unassign",
            "DELETE",
            format!("{role}/forms/bravo-form-3391"),
            None,
        ),
        attack("config.list", "GET", "/api/config".into(), None),
        attack(
            "config.set",
            "POST",
            "/api/config".into(),
            Some(json!({"key": "bravo_setting", "value": "pwned", "type": "string"})),
        ),
        attack(
            "config.get",
            "GET",
            "/api/config/bravo_setting".into(),
            None,
        ),
        attack(
            "config.delete",
            "DELETE",
            "/api/config/bravo_setting".into(),
            None,
        ),
        attack("secrets.list", "GET", "/api/secrets".into(), None),
        attack(
            "secrets.create",
            "POST",
            "/api/secrets".into(),
            Some(json!({"name": "planted", "value": "pwned"})),
        ),
        attack(
            "secrets.set",
            "PUT",
            "/api/secrets/bravo-secret-3391".into(),
            Some(json!({"value": "pwned"})),
        ),
        attack(
            "secrets.delete",
            "DELETE",
            "/api/secrets/bravo-secret-3391".into(),
            None,
        ),
        attack("keys.list", "GET", "/api/keys".into(), None),
        attack(
            "keys.create",
            "POST",
            "/api/keys".into(),
            Some(json!({"name": "evil", "orgId": b_id})),
        ),
        attack(
            "keys.revoke",
            "DELETE",
            format!("/api/keys/{b_key_id}"),
            None,
        ),
    ];
    let attacked: BTreeSet<&str> = attacks.iter().map(|a| a.route).collect();
    let declared: BTreeSet<&str> = admin_routes().iter().map(|r| r.id).collect();
    assert_eq!(attacked, declared, "every admin route is attacked");
    for a in &attacks {
        let route = admin_routes()
            .into_iter()
            .find(|r| r.id == a.route)
            .unwrap();
        assert_eq!(route.method, a.method, "{}", a.route);
    }

    // What must never show up in an attacker's answer (unless the attacker sent it).
    let markers = [
        "Bravo Hidden Org",
        "bravo.example",
        "Bravo-Role-Name-3391",
        "BRAVO-CONFIG-VALUE-3391",
        "BRAVO-SECRET-VALUE-3391",
        "BRAVO-RAW-SECRET-3391",
        "bravo-secret-3391",
        "bravo_vault",
        "bravo-key-3391",
        "bea@bravo.example",
        "bravo-form-3391",
        b_id.as_str(),
        b_role_id.as_str(),
        b_user_id.as_str(),
        b_key_id.as_str(),
    ];
    let attackers = [
        ("org A's function key", &key_a, format!("key:{a_key_id}")),
        ("org user of A", &user_a, format!("user:{alice_id}")),
    ];
    let mut header_attempts = 0;
    for (who, attacker, _) in &attackers {
        for org_header in [None, Some(b_id.as_str()), Some("GLOBAL")] {
            let caller = match org_header {
                Some(h) => attacker.with("X-Organization-Id", h),
                None => (*attacker).clone(),
            };
            for a in &attacks {
                let reply = caller.send(a.method, &a.path, a.body.as_ref()).await;
                assert_eq!(
                    reply.status, 403,
                    "{who} {} {} (header {org_header:?}): {}",
                    a.method, a.path, reply.text
                );
                let sent = format!(
                    "{} {}",
                    a.path,
                    a.body.as_ref().map(Value::to_string).unwrap_or_default()
                );
                for marker in markers.iter().filter(|m| !sent.contains(**m)) {
                    assert!(
                        !reply.text.contains(marker),
                        "{who} {} {} leaked {marker}: {}",
                        a.method,
                        a.path,
                        reply.text
                    );
                }
                if org_header.is_some() {
                    header_attempts += 1;
                }
            }
        }
    }

    // Every other guarded route refuses to act for B as well.
    for route in all_routes()
        .into_iter()
        .filter(|r| r.access != Access::Public)
    {
        let path = fill(route.path, &b_id);
        let body = (route.method != "GET" && route.method != "DELETE").then(|| json!({}));
        for (who, attacker, _) in &attackers {
            let reply = attacker
                .with("X-Organization-Id", &b_id)
                .send(route.method, &path, body.as_ref())
                .await;
            assert!(
                reply.status == 403 || reply.status == 404,
                "{who} {} {path} as B answered {}: {}",
                route.method,
                reply.status,
                reply.text
            );
            if reply.status == 403 {
                header_attempts += 1;
            }
            for marker in &markers[..11] {
                assert!(!reply.text.contains(marker), "{who} {path} leaked {marker}");
            }
        }
    }

    // The attempts with the header are on the audit log, naming the attacker and the target,
    // aggregated (one entry per attacker and target per minute, counting the repeats) so that
    // nobody can flood the log with them.
    let denied = audit_entries(&server, AuditEventType::CrossOrgDenied).await;
    assert!(header_attempts > 0);
    assert!(
        denied.len() <= 2 * attackers.len(),
        "{} cross_org_denied entries for {header_attempts} attempts: not aggregated",
        denied.len()
    );
    for (who, _, actor) in &attackers {
        let at_b = denied
            .iter()
            .filter(|e| e.actor == *actor && e.details["requested"] == b_id.as_str())
            .count();
        assert_eq!(
            at_b, 1,
            "{who}: the attempts aimed at B are one aggregated entry"
        );
        assert!(
            denied
                .iter()
                .any(|e| e.actor == *actor && e.details["requested"] == "GLOBAL"),
            "{who}: asking for GLOBAL is audited too"
        );
        assert!(
            denied
                .iter()
                .filter(|e| e.actor == *actor)
                .all(|e| e.scope.to_string() == a_id),
            "{who}: entries are recorded in the attacker's home org"
        );
    }

    // B's data is untouched.
    let org_b = admin
        .get(&format!("/api/organizations/{b_id}"))
        .await
        .json();
    assert_eq!(org_b["name"], "Bravo Hidden Org");
    assert_eq!(org_b["domain"], "bravo.example");
    let role_b = in_b.get(&role).await.json();
    assert_eq!(role_b["name"], "Bravo-Role-Name-3391");
    assert_eq!(role_b["isActive"], true);
    assert_eq!(
        in_b.get(&format!("{role}/users")).await.json()["userIds"],
        json!([b_user_id])
    );
    assert_eq!(
        in_b.get(&format!("{role}/forms")).await.json()["formIds"],
        json!(["bravo-form-3391"])
    );
    assert_eq!(
        in_b.get("/api/config/bravo_setting").await.json()["value"],
        "BRAVO-CONFIG-VALUE-3391"
    );
    let b_secrets = in_b.get("/api/secrets").await.json();
    let names: Vec<&str> = b_secrets["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["bravo-secret-3391", "bravo-vault"]);
    assert_eq!(
        admin.get(&format!("/api/users/{b_user_id}")).await.status,
        200
    );
    let b_keys = in_b.get("/api/keys").await.json();
    assert_eq!(b_keys["keys"].as_array().unwrap().len(), 1);
    assert_eq!(b_keys["keys"][0]["revoked"], false);
    assert_eq!(
        admin.get("/api/organizations").await.json()["organizations"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "no organization was planted"
    );

    // A platform admin switching orgs sees exactly the chosen org's data.
    let a_roles = in_a.get("/api/roles").await.json();
    assert_eq!(a_roles["roles"].as_array().unwrap().len(), 1);
    assert_eq!(a_roles["roles"][0]["id"], a_role["id"]);
    let b_roles = in_b.get("/api/roles").await.json();
    assert_eq!(b_roles["roles"].as_array().unwrap().len(), 1);
    assert_eq!(b_roles["roles"][0]["id"], b_role_id.as_str());
    assert_eq!(in_a.get(&role).await.status, 404);
    assert_eq!(in_a.get(&format!("{role}/users")).await.status, 404);
    assert_eq!(in_a.delete(&role).await.status, 404);
    assert_eq!(in_b.get(&role).await.status, 200, "still there");
    let a_config = in_a.get("/api/config").await;
    assert!(a_config.text.contains("alpha_setting"));
    assert!(!a_config.text.contains("bravo"), "{}", a_config.text);
    assert_eq!(in_a.get("/api/config/bravo_setting").await.status, 404);
    assert_eq!(in_a.delete("/api/config/bravo_setting").await.status, 404);
    let a_secrets = in_a.get("/api/secrets").await;
    assert_eq!(a_secrets.json()["secrets"][0]["name"], "alpha-secret");
    assert_eq!(a_secrets.json()["count"], 1);
    assert_eq!(
        in_a.delete("/api/secrets/bravo-secret-3391").await.status,
        404
    );
    let b_secret_name = b_secrets["secrets"][0]["secretName"].as_str().unwrap();
    assert_eq!(
        in_a.post(
            "/api/config",
            &json!({"key": "borrowed", "value": b_secret_name, "type": "secret_ref"})
        )
        .await
        .field(),
        "value",
        "an org's config cannot point at another org's secret"
    );
    let a_keys = in_a.get("/api/keys").await.json();
    assert_eq!(a_keys["keys"].as_array().unwrap().len(), 1);
    assert_eq!(a_keys["keys"][0]["id"], a_key_id.as_str());
    assert_eq!(
        in_a.delete(&format!("/api/keys/{b_key_id}")).await.status,
        404
    );
    // B's key still authenticates (403 on an admin route, not 401).
    let key_b = Api::new(&server).with("x-functions-key", &b_raw_key);
    assert_eq!(key_b.get("/api/keys").await.status, 403);
    assert_eq!(
        in_a.post("/api/roles", &json!({"name": "Alpha-Two"}))
            .await
            .status,
        201
    );
    assert_eq!(
        in_b.get("/api/roles").await.json()["roles"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A route template with every `{param}` replaced by a probe id.
fn fill(template: &str, org_id: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let name = &rest[start + 1..end];
        out.push_str(if name == "orgId" { org_id } else { "probe-id" });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

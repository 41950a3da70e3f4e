//! The permission matrix: every declared route × every kind of caller, against the real binary.
//!
//! Expected statuses follow from the route's declared access: anonymous and invalid-key callers
//! get 401 on every non-public route, org users and org-scoped keys get 403 on admin routes, a
//! browser session's state-changing request from a foreign origin gets 403 on every route, and
//! nobody gets a 5xx. The Functions host's payload routes do not exist on a standalone server. Dummy ids and empty bodies may make a handler answer 400/404/405 — that is
//! fine: the point is that authorization happened before the handler and nothing crashed.

use base64::Engine as _;
use bifrost::http::access::{Access, all_routes};
use serde_json::{Value, json};

use crate::support::{ServerBuilder, cli_key, client};

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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    Anonymous,
    InvalidKey,
    OrgUser,
    OrgKey,
    PlatformAdmin,
    GlobalKey,
    /// The platform admin's browser session (cookie), driven by another site.
    CrossSiteBrowser,
}

#[tokio::test]
async fn every_route_times_every_principal() {
    let server = ServerBuilder::new()
        .env("WEBSITE_AUTH_ENABLED", "true")
        .env("BIFROST_RATE_LIMIT", "0")
        .start();
    let data = server.data.path().join("data");
    let c = client();
    let admin_principal = easy_auth("admin@msp.example", "00000000-0000-4000-8000-0000000000aa");

    // The first Easy Auth login becomes the platform admin; it creates the customer org.
    let res = c
        .post(server.url("/api/organizations"))
        .header("x-ms-client-principal", &admin_principal)
        .json(&json!({"name": "Contoso", "domain": "contoso.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let org: Value = res.json().await.unwrap();
    let org_id = org["id"].as_str().unwrap().to_owned();
    let user_principal = easy_auth(
        "bob@contoso.example",
        "00000000-0000-4000-8000-0000000000bb",
    );
    let global_key = cli_key(&data, "matrix-global", None);
    let org_key = cli_key(&data, "matrix-org", Some(&org_id));

    let callers = [
        Caller::Anonymous,
        Caller::InvalidKey,
        Caller::OrgUser,
        Caller::OrgKey,
        Caller::PlatformAdmin,
        Caller::GlobalKey,
        Caller::CrossSiteBrowser,
    ];
    let routes = all_routes();
    for access in [Access::Public, Access::Authenticated, Access::PlatformAdmin] {
        assert!(
            routes.iter().any(|r| r.access == access),
            "no {access:?} route: the matrix would be vacuous"
        );
    }
    let mut failures = Vec::new();
    for route in routes {
        let path = fill(route.path, &org_id);
        for caller in callers {
            let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
            let mut req = c.request(method, server.url(&path));
            req = match caller {
                Caller::Anonymous => req,
                Caller::InvalidKey => req.header(
                    "x-functions-key",
                    "bfk_0123456789abcdef_notarealsecretnotarealsecretnotarealsecr",
                ),
                Caller::OrgUser => req.header("x-ms-client-principal", &user_principal),
                Caller::OrgKey => req.header("x-functions-key", &org_key),
                Caller::PlatformAdmin => req.header("x-ms-client-principal", &admin_principal),
                Caller::GlobalKey => req.header("x-functions-key", &global_key),
                Caller::CrossSiteBrowser => req
                    .header("x-ms-client-principal", &admin_principal)
                    .header("cookie", "AppServiceAuthSession=stolen-by-riding")
                    .header("origin", "https://evil.example"),
            };
            if matches!(route.method, "POST" | "PUT" | "PATCH") {
                req = req.json(&json!({}));
            }
            let status = req.send().await.unwrap().status().as_u16();
            let denied_as_anonymous = matches!(caller, Caller::Anonymous | Caller::InvalidKey);
            let limited = matches!(caller, Caller::OrgUser | Caller::OrgKey);
            let expected_ok = match route.access {
                _ if caller == Caller::CrossSiteBrowser && route.method != "GET" => status == 403,
                _ if caller == Caller::CrossSiteBrowser => !matches!(status, 401 | 403),
                // A presented-but-invalid key is refused even where no key is needed.
                Access::Public if caller == Caller::InvalidKey => {
                    matches!(status, 401) || status < 400
                }
                Access::Public => !matches!(status, 401 | 403),
                Access::Authenticated if denied_as_anonymous => status == 401,
                Access::Authenticated => !matches!(status, 401 | 403),
                Access::PlatformAdmin if denied_as_anonymous => status == 401,
                Access::PlatformAdmin if limited => status == 403,
                Access::PlatformAdmin => !matches!(status, 401 | 403),
            };
            if !expected_ok || status >= 500 {
                failures.push(format!(
                    "{} {} as {caller:?}: {status} (access {:?})",
                    route.method, path, route.access
                ));
            }
        }
    }
    // The host's payload routes: each function of `functions/` answers 404 standalone.
    let functions = std::fs::read_dir(crate::support::repo_root().join("functions")).unwrap();
    for entry in functions {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let status = c
            .post(server.url(&format!("/{name}")))
            .json(&json!({"Data": {}, "Metadata": {}}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status != 404 {
            failures.push(format!(
                "POST /{name} (a payload route) standalone: {status}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "permission matrix violations:\n{}",
        failures.join("\n")
    );
}

/// Replaces `{param}` placeholders with plausible values (the org's own id for org ids).
fn fill(template: &str, org_id: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .unwrap_or(rest.len() - 1);
        let name = &rest[start + 1..end];
        out.push_str(match name {
            "orgId" => org_id,
            "name" | "workflowName" => "simple_greeting",
            _ => "00000000-0000-4000-8000-000000000001",
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

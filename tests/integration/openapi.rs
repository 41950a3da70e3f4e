//! The served OpenAPI document against the route table: every declared route is documented,
//! nothing undeclared is, and every path parameter is described.

use std::collections::BTreeSet;

use bifrost::http::access::{Access, all_routes};
use serde_json::Value;

use crate::support::{ServerBuilder, client};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[tokio::test]
async fn the_document_matches_the_route_table() {
    // No dev identity: the document must be public.
    let server = ServerBuilder::new().start();
    let res = client()
        .get(server.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    let with_bad_key = client()
        .get(server.url("/api/openapi.json"))
        .header("x-functions-key", "bfk_0123456789abcdef_notarealsecret")
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_bad_key.status(),
        200,
        "a stale key must not hide the document"
    );

    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        doc["info"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let paths = doc["paths"].as_object().expect("paths is an object");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["functionKey"]["type"], "apiKey");
    assert_eq!(schemes["functionKey"]["in"], "header");
    assert_eq!(schemes["functionKey"]["name"], "x-functions-key");
    assert_eq!(schemes["functionKeyQuery"]["in"], "query");
    assert_eq!(schemes["functionKeyQuery"]["name"], "code");
    assert!(schemes.contains_key("easyAuth"));

    // Declared → documented, with the declared id, summary, security and path parameters.
    let routes = all_routes();
    let mut declared = BTreeSet::new();
    for route in &routes {
        declared.insert((route.path.to_owned(), route.method.to_ascii_lowercase()));
        let op = &paths
            .get(route.path)
            .unwrap_or_else(|| panic!("{} {} is not documented", route.method, route.path))
            [route.method.to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is not documented",
            route.method,
            route.path
        );
        assert_eq!(op["operationId"], route.id);
        assert_eq!(op["summary"], route.summary);
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{} has no responses",
            route.id
        );
        match route.access {
            Access::Public => assert_eq!(op["security"], serde_json::json!([]), "{}", route.id),
            _ => assert!(
                op.get("security").is_none(),
                "{} inherits security",
                route.id
            ),
        }
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let path_params: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(
                    p["required"], true,
                    "{}: path params are required",
                    route.id
                );
                p["name"].as_str().unwrap()
            })
            .collect();
        let in_template: BTreeSet<&str> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        assert_eq!(path_params, in_template, "{} path parameters", route.id);
    }

    // Documented → declared.
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                assert!(
                    declared.contains(&(path.clone(), method.clone())),
                    "{method} {path} is documented but no route declares it"
                );
            }
        }
    }

    // Documented schemas exist, and the operations this document describes in detail carry them.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for name in text
        .split("\"#/components/schemas/")
        .skip(1)
        .filter_map(|s| s.split('"').next())
    {
        assert!(
            schemas.contains_key(name),
            "dangling schema reference {name}"
        );
    }
    let list = &paths["/api/executions"]["get"];
    let query: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in [
        "workflowName",
        "status",
        "startDate",
        "endDate",
        "limit",
        "continuationToken",
    ] {
        assert!(query.contains(&name), "executions.list lacks {name}");
    }
    assert_eq!(
        list["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ExecutionList"
    );
    let execution = &schemas["ExecutionDto"]["properties"];
    assert!(execution["executionId"].is_object() && execution["startedAt"].is_object());
}

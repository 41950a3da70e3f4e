//! `GET /api/openapi.json`: the API's OpenAPI 3.1 description, generated from the code.
//!
//! Every operation comes from its declaration ([`crate::http::endpoints`]): path, method,
//! operation id, summary, access and security from its route; query parameters, the request
//! body, answers, extra error statuses and links from its description, whose schemas are
//! derived from the wire DTOs with `schemars` (JSON Schema 2020-12, the dialect of OpenAPI 3.1).
//! A declared operation cannot be missing from the document, and the document cannot list one
//! that does not exist (the integration test checks both against the running binary). Path
//! parameters named `...Id` are ids (`input::ID_PATTERN`) unless declared otherwise.
//!
//! Built once per process (the route table is static). Must not depend on request state.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use crate::http::access::{Access, Route};
use crate::http::endpoint::{Doc, Endpoint, Link};
use crate::http::input::{ID_PATTERN, ORG_ID_PATTERN};

/// Served without authorization: the document is public and static, and a caller's stale or
/// invalid key must not hide it.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "openapi.get",
            "/api/openapi.json",
            Access::Public,
            "This API's OpenAPI 3.1 description",
        )
        .answers::<Value>(200, "The OpenAPI 3.1 document")
        .public(|_state, _call| async move {
            let mut response = Response::new(document_bytes().clone().into());
            *response.status_mut() = StatusCode::OK;
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            Ok(response)
        }),
    ]
}

/// The serialized document, built on first use.
pub fn document_bytes() -> &'static Bytes {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    DOC.get_or_init(|| Bytes::from(document().to_string()))
}

/// The body of every error answer (`src/http/error.rs`).
#[derive(JsonSchema)]
#[allow(dead_code)] // only its schema is used
struct ApiErrorBody {
    /// Stable machine-readable code, e.g. `BadRequest`, `NotFound`, `ServiceUnavailable`.
    error: String,
    message: String,
    /// e.g. `{"field": "limit"}` for a 400 naming the offending input.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Map<String, Value>>,
}

/// `GLOBAL` or an organization id (`bifrost_store::OrgId`'s alphabet and length).
const SCOPE_PATTERN: &str = "^(GLOBAL|[A-Za-z0-9_-]{1,64})$";

/// The `{name}` segments of a path template, in order.
pub fn path_parameters(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    })
}

/// Builds the whole document from the route table and the registry.
pub fn document() -> Value {
    let mut responses_gen = settings().for_serialize().into_generator();
    let mut requests_gen = settings().for_deserialize().into_generator();
    let error_schema = responses_gen.subschema_for::<ApiErrorBody>();

    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut tags: Vec<&str> = Vec::new();
    let declared: Vec<_> = crate::http::endpoints()
        .iter()
        .map(|e| {
            (
                &e.route,
                Parts::of_doc(&e.doc, &mut responses_gen, &mut requests_gen),
            )
        })
        .collect();
    for (route, parts) in declared {
        let tag = route.id.split('.').next().unwrap_or(route.id);
        if !tags.contains(&tag) {
            tags.push(tag);
        }
        let operation = operation(route, tag, &parts, &error_schema);
        paths
            .entry(route.path)
            .or_default()
            .insert(route.method.to_ascii_lowercase(), operation);
    }

    let mut schemas = responses_gen.take_definitions(true);
    for (name, schema) in requests_gen.take_definitions(true) {
        schemas.entry(name).or_insert(schema);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Bifrost API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Workflow automation for MSPs. Every route declares who may call it \
                (`x-bifrost-access`: Public, Authenticated or PlatformAdmin). Platform-wide \
                callers choose the organization a request acts for with `X-Organization-Id`; \
                org-bound callers always act in their own organization, and another \
                organization's ids answer 404. Errors are `{error, message, details?}`.",
            "license": { "name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later" },
        },
        "servers": [{ "url": "/" }],
        "tags": tags.iter().map(|t| json!({ "name": t })).collect::<Vec<_>>(),
        "security": [
            { "functionKey": [] },
            { "functionKeyQuery": [] },
            { "easyAuth": [] },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": {
                "OrganizationId": {
                    "name": "X-Organization-Id",
                    "in": "header",
                    "required": false,
                    "description": "Platform-wide callers only: act for this organization \
                        (`GLOBAL` or an organization id; absent = GLOBAL). Org-bound callers \
                        naming another organization get 403.",
                    "schema": { "type": "string", "pattern": SCOPE_PATTERN },
                },
            },
            "securitySchemes": {
                "workflowKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A workflow API key (`POST /api/workflow-keys`, `wk_...`) as \
                        `Authorization: Bearer <key>`, accepted by `/api/endpoints/{workflowName}` \
                        only: a key for that workflow, or a global key unless the workflow refuses \
                        global keys. Public endpoints need no key.",
                },
                "functionKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-functions-key",
                    "description": "A Bifrost function key (`bifrost keys create` or \
                        `POST /api/keys`). A GLOBAL key acts platform-wide, an organization key \
                        in its organization only.",
                },
                "functionKeyQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "code",
                    "description": "The same function key as a `code` query parameter (the \
                        header wins when both are sent).",
                },
                "easyAuth": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-MS-CLIENT-PRINCIPAL",
                    "description": "App Service Authentication (Easy Auth, Microsoft Entra ID). \
                        Users sign in through `/.auth/login/aad`; the platform front end then \
                        injects `X-MS-CLIENT-PRINCIPAL` (base64 JSON claims), \
                        `X-MS-CLIENT-PRINCIPAL-ID` and `X-MS-CLIENT-PRINCIPAL-NAME`. Honoured \
                        only when `WEBSITE_AUTH_ENABLED=true` (the platform strips client-sent \
                        copies); otherwise these headers are ignored. The first user to sign in \
                        becomes platform administrator; later users join the organization whose \
                        domain matches their email.",
                },
            },
        },
    })
}

/// What the document says of one operation beyond its route, with its schemas generated.
#[derive(Default)]
struct Parts {
    query: Vec<Value>,
    /// `(name, schema)` of path parameters more precise than a string.
    path_params: Vec<(&'static str, Value)>,
    request: Option<(&'static str, Value)>,
    /// `None`: not documented yet (a generic `2XX`).
    responses: Option<Vec<(u16, &'static str, Option<Value>)>>,
    errors: Vec<u16>,
    links: Vec<Link>,
    event_stream: bool,
}

impl Parts {
    fn of_doc(
        doc: &Doc,
        responses_gen: &mut SchemaGenerator,
        requests_gen: &mut SchemaGenerator,
    ) -> Self {
        let query = doc
            .query
            .map(|schema| query_parameters(&schema(requests_gen)))
            .unwrap_or_default();
        let request = match (doc.request, doc.raw_request) {
            (Some(schema), _) => Some(("application/json", schema(requests_gen).to_value())),
            (None, Some(media)) => Some((media, json!({ "type": "string", "format": "binary" }))),
            (None, None) => None,
        };
        let responses = doc
            .responses
            .iter()
            .map(|(status, description, schema)| {
                (
                    *status,
                    *description,
                    schema.map(|s| s(responses_gen).to_value()),
                )
            })
            .collect();
        Self {
            query,
            path_params: doc.params.clone(),
            request,
            responses: Some(responses),
            errors: doc.errors.clone(),
            links: doc.links.clone(),
            event_stream: doc.event_stream,
        }
    }
}

/// The properties of a query type's schema as OpenAPI query parameters.
fn query_parameters(schema: &Schema) -> Vec<Value> {
    let value = schema.as_value();
    let required: Vec<&str> = value["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = value["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, schema)| {
            let mut schema = schema.clone();
            let description = schema
                .as_object_mut()
                .and_then(|s| s.remove("description"))
                .unwrap_or(Value::Null);
            not_null(&mut schema);
            let mut parameter = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": schema,
            });
            if !description.is_null() {
                parameter["description"] = description;
            }
            parameter
        })
        .collect()
}

/// A query parameter is absent or has a value; `null` is not something a URL can say.
fn not_null(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            object.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(options)) = object.get_mut("anyOf") {
        options.retain(|o| o.get("type").is_none_or(|t| t != "null"));
        if options.len() == 1 {
            let only = options.remove(0);
            object.remove("anyOf");
            if let Value::Object(only) = only {
                object.extend(only);
            }
        }
    }
}

/// A path parameter's schema unless its operation declares one: `...Id` parameters are ids
/// (`[A-Za-z0-9_-]{1,64}`: what every id type parses), `orgId` not `GLOBAL`; anything else is a
/// non-empty string.
fn default_path_schema(name: &str) -> Value {
    match name {
        "orgId" => json!({ "type": "string", "pattern": ORG_ID_PATTERN }),
        n if n.ends_with("Id") => json!({ "type": "string", "pattern": ID_PATTERN }),
        _ => json!({ "type": "string", "minLength": 1 }),
    }
}

fn operation(route: &Route, tag: &str, parts: &Parts, error_schema: &Schema) -> Value {
    let path_params = path_parameters(route.path);
    let mut parameters: Vec<Value> = path_params
        .iter()
        .map(|name| {
            let schema = parts
                .path_params
                .iter()
                .find(|(n, _)| n == name)
                .map_or_else(|| default_path_schema(name), |(_, s)| s.clone());
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": schema,
            })
        })
        .collect();
    parameters.extend(parts.query.iter().cloned());
    if route.access != Access::Public {
        parameters.push(json!({ "$ref": "#/components/parameters/OrganizationId" }));
    }

    let mut responses = Map::new();
    match &parts.responses {
        Some(success) => {
            for (status, description, schema) in success {
                let mut response = json!({ "description": description });
                if parts.event_stream {
                    response["content"] =
                        json!({ "text/event-stream": { "schema": { "type": "string" } } });
                } else if let Some(schema) = schema {
                    response["content"] = json!({ "application/json": { "schema": schema } });
                }
                if !parts.links.is_empty() && (200..300).contains(status) {
                    let links: Map<String, Value> = parts
                        .links
                        .iter()
                        .map(|l| {
                            (
                                l.name.to_owned(),
                                json!({
                                    "operationId": l.operation,
                                    "parameters": l
                                        .parameters
                                        .iter()
                                        .map(|(p, e)| ((*p).to_owned(), json!(e)))
                                        .collect::<Map<String, Value>>(),
                                }),
                            )
                        })
                        .collect();
                    response["links"] = Value::Object(links);
                }
                responses.insert(status.to_string(), response);
            }
        }
        None => {
            responses.insert("2XX".into(), json!({ "description": "Success" }));
        }
    }
    let mut errors: Vec<(u16, &str)> = Vec::new();
    if !parameters.is_empty() || parts.request.is_some() {
        errors.push((400, "Invalid input; `details.field` names it"));
    }
    if route.access != Access::Public {
        errors.push((
            401,
            "Authentication required, or the credentials are invalid",
        ));
        errors.push((
            403,
            "The caller may not use this route or act for that organization",
        ));
        errors.push((429, "Rate limit exceeded; see Retry-After"));
    }
    if !path_params.is_empty() {
        errors.push((404, "Not found (also for another organization's ids)"));
    }
    for status in &parts.errors {
        errors.push((
            *status,
            match status {
                401 => "Authentication required, or the credentials are invalid",
                403 => "The caller may not use this route",
                404 => "Not found",
                405 => "The method is not allowed here",
                409 => "Conflict with the current state",
                412 => "The If-Match precondition failed",
                413 => "The body is too large",
                415 => "The content type is not accepted",
                429 => "Rate limit exceeded; see Retry-After",
                _ => "Error",
            },
        ));
    }
    errors.push((
        503,
        "Storage or another dependency is unavailable; see Retry-After",
    ));
    for (status, description) in errors {
        if responses.contains_key(&status.to_string()) {
            continue;
        }
        responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": { "application/json": { "schema": error_schema } },
            }),
        );
    }

    let mut op = json!({
        "operationId": route.id,
        "summary": route.summary,
        "tags": [tag],
        "x-bifrost-access": format!("{:?}", route.access),
        "parameters": parameters,
        "responses": responses,
    });
    if let Some((media, schema)) = &parts.request {
        op["requestBody"] = json!({
            "required": true,
            "content": { *media: { "schema": schema } },
        });
    }
    if route.access == Access::Public {
        op["security"] = json!([]);
    }
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_leads_to_a_declared_operation_and_parameter() {
        let endpoints = crate::http::endpoints();
        let mut links = 0;
        for endpoint in endpoints {
            for link in &endpoint.doc.links {
                links += 1;
                let target = endpoints
                    .iter()
                    .find(|e| e.route.id == link.operation)
                    .unwrap_or_else(|| {
                        panic!("{}: no operation {}", endpoint.route.id, link.operation)
                    });
                for (parameter, expression) in &link.parameters {
                    assert!(
                        path_parameters(target.route.path).contains(parameter),
                        "{} links to {} parameter {parameter}, which its path lacks",
                        endpoint.route.id,
                        link.operation,
                    );
                    let own = expression
                        .strip_prefix("$request.path.")
                        .is_none_or(|p| path_parameters(endpoint.route.path).contains(&p));
                    assert!(
                        expression.starts_with("$response.body#/") || own,
                        "{}: {expression}",
                        endpoint.route.id
                    );
                    assert!(
                        expression.starts_with("$response.body#/")
                            || expression.starts_with("$request.path."),
                        "{}: {expression}",
                        endpoint.route.id
                    );
                }
            }
        }
        assert!(links > 30, "only {links} links");
    }

    #[test]
    fn path_parameters_come_from_the_template() {
        assert_eq!(
            path_parameters("/api/roles/{roleId}/users/{userId}"),
            ["roleId", "userId"]
        );
        assert!(path_parameters("/api/health").is_empty());
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        fn walk(v: &Value, found: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        found.push(r.clone());
                    }
                    m.values().for_each(|v| walk(v, found));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, found)),
                _ => {}
            }
        }
        let mut refs = Vec::new();
        walk(&doc, &mut refs);
        assert!(refs.iter().any(|r| r.ends_with("/WorkflowList")));
        for r in refs {
            if let Some(name) = r.strip_prefix("#/components/schemas/") {
                assert!(schemas.contains_key(name), "dangling {r}");
            } else {
                assert_eq!(r, "#/components/parameters/OrganizationId");
            }
        }
        let list = &doc["paths"]["/api/executions"]["get"];
        assert_eq!(list["operationId"], "executions.list");
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"continuationToken") && names.contains(&"status"));
        assert_eq!(
            doc["paths"]["/api/openapi.json"]["get"]["security"],
            json!([])
        );
    }
}

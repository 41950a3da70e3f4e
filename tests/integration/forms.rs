//! Forms over HTTP against the real binary: CRUD and the v1 JSON round trip, `*.form.json`
//! import, server-side validation of every field type, visibility driven by a launch workflow,
//! multi-step validation, data providers (three input modes, required inputs, the shared cache
//! and its bypass, failures), file uploads read by the workflow, the access matrix, and a
//! submission whose workflow receives exactly the validated values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, ServerBuilder, client};

const WORKFLOWS: &str = r#"
from bifrost import workflow, param, data_provider, files, UserError

CALLS = {"sites": 0}


@workflow(name="echo", execution_mode="sync")
async def echo(context):
    return {"inputs": context.extra_inputs, "org": context.org_id, "user": context.user_id}


@workflow(name="launch", execution_mode="sync")
@param("ticket", "string")
@param("mode", "string")
async def launch(context, ticket: str = "", mode: str = ""):
    return {"show_extra": ticket == "vip", "user": "bob", "ticket": ticket, "mode": mode}


@workflow(name="read_upload", execution_mode="sync")
async def read_upload(context):
    f = context.extra_inputs["doc"]
    data = files.read_bytes("form-uploads/" + f["fileId"] + "/" + f["name"], location="temp")
    return {"text": data.decode("utf-8"), "file": f}


@data_provider(name="sites", cache_ttl_seconds=300)
@param("region", "string", required=True)
@param("prefix", "string")
@param("who", "string")
async def sites(region: str, prefix: str = "", who: str = ""):
    CALLS["sites"] += 1
    return [
        {"label": f"{prefix}{region}-{i}", "value": f"{region}{i}",
         "metadata": {"call": CALLS["sites"], "who": who}}
        for i in range(2)
    ]


@data_provider(name="colors", cache_ttl_seconds=0)
async def colors():
    return [{"label": "Red", "value": "red"}, {"label": "Blue", "value": "blue"}]


@data_provider(name="broken", cache_ttl_seconds=0)
async def broken():
    raise ValueError("secret internal detail")


@data_provider(name="refusing", cache_ttl_seconds=0)
async def refusing():
    raise UserError("the PSA is down")
"#;

struct World {
    server: Server,
    ws: tempfile::TempDir,
}

impl World {
    fn start(easy_auth: bool) -> Self {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("flows.py"), WORKFLOWS).unwrap();
        std::fs::create_dir_all(ws.path().join("forms")).unwrap();
        std::fs::write(
            ws.path().join("forms/imported.form.json"),
            json!({
                "id": "imported-form", "name": "Imported from git", "linkedWorkflow": "echo",
                "accessLevel": "authenticated",
                "formSchema": {"fields": [{"name": "note", "label": "Note", "type": "text"}]}
            })
            .to_string(),
        )
        .unwrap();
        let mut builder = ServerBuilder::new()
            .env("BIFROST_WORKSPACE_LOCATION", ws.path().to_str().unwrap())
            .env("BIFROST_RATE_LIMIT", "0");
        builder = if easy_auth {
            builder.env("WEBSITE_AUTH_ENABLED", "true")
        } else {
            builder.env("BIFROST_DEV_IDENTITY", "admin")
        };
        Self {
            server: builder.start(),
            ws,
        }
    }

    fn get(&self, path: &str) -> RequestBuilder {
        client().get(self.server.url(path))
    }

    fn post(&self, path: &str) -> RequestBuilder {
        client().post(self.server.url(path))
    }

    fn put(&self, path: &str) -> RequestBuilder {
        client().put(self.server.url(path))
    }

    fn delete(&self, path: &str) -> RequestBuilder {
        client().delete(self.server.url(path))
    }

    /// Creates a form (as the caller of `req`'s credentials, admin by default); returns it.
    async fn create(&self, body: Value) -> Value {
        json_of(self.post("/api/forms").json(&body), StatusCode::CREATED).await
    }
}

async fn json_of(req: RequestBuilder, status: StatusCode) -> Value {
    let res = req.send().await.unwrap();
    let got = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap()
    }
}

/// The `details.fields[].field` of a 400.
async fn bad_fields(req: RequestBuilder) -> Vec<String> {
    let body = json_of(req, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "BadRequest", "{body}");
    body["details"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no details.fields: {body}"))
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect()
}

fn form_body(name: &str, workflow: &str, fields: Value) -> Value {
    json!({"name": name, "linkedWorkflow": workflow, "formSchema": {"fields": fields},
           "accessLevel": "authenticated"})
}

#[tokio::test]
async fn crud_round_trip_and_workspace_import() {
    let w = World::start(false);

    // The workspace file was imported at start-up, GLOBAL and read-only.
    let list = json_of(w.get("/api/forms"), StatusCode::OK).await;
    let imported = list["forms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "imported-form")
        .cloned()
        .unwrap_or_else(|| panic!("imported form missing: {list}"));
    assert_eq!(imported["orgId"], "GLOBAL");
    assert_eq!(imported["accessLevel"], "authenticated");
    let res = w
        .put("/api/forms/imported-form")
        .json(&imported)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("imported.form.json"));
    assert_eq!(
        w.delete("/api/forms/imported-form")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CONFLICT
    );

    // A v1 form document (with properties we do not know) round-trips.
    let v1 = json!({
        "name": "Onboard user", "description": "New starter", "linkedWorkflow": "echo",
        "isActive": true, "isGlobal": true, "accessLevel": "role_based",
        "launchWorkflowId": "launch", "allowedQueryParams": ["ticket"],
        "defaultLaunchParams": {"mode": "new"},
        "legacyProperty": {"kept": false},
        "formSchema": {"fields": [
            {"name": "email", "label": "Email", "type": "email", "required": true,
             "validation": {"pattern": ".*@contoso\\.example", "message": "Contoso addresses only"}},
            {"name": "site", "label": "Site", "type": "select", "required": false,
             "dataProvider": "sites",
             "dataProviderInputs": {"region": {"mode": "static", "value": "eu"},
                                     "prefix": {"mode": "fieldRef", "fieldName": "email"}}},
            {"name": "intro", "type": "markdown", "content": "# Welcome", "required": false},
            {"name": "photo", "label": "Photo", "type": "file", "required": false,
             "allowedTypes": ["image/*"],
             "maxSizeMB": 2}
        ]}
    });
    let created = w.create(v1.clone()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["orgId"], "GLOBAL");
    assert_eq!(created["createdBy"], "local-developer");
    assert_eq!(created["formSchema"], v1["formSchema"]);
    assert!(created.get("legacyProperty").is_none());
    let fetched = json_of(w.get(&format!("/api/forms/{id}")), StatusCode::OK).await;
    assert_eq!(fetched, created);

    // PUT of the document as read (v1 clients send the whole form back).
    let mut edited = fetched.clone();
    edited["name"] = json!("Onboard a user");
    edited["formSchema"]["fields"][0]["required"] = json!(false);
    let updated = json_of(
        w.put(&format!("/api/forms/{id}")).json(&edited),
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["name"], "Onboard a user");
    assert_eq!(updated["createdAt"], created["createdAt"]);
    assert_eq!(updated["formSchema"], edited["formSchema"]);
    assert_eq!(
        json_of(w.get(&format!("/api/forms/{id}")), StatusCode::OK).await["name"],
        "Onboard a user"
    );

    // Every definition problem at once, with its JSON path.
    let fields = bad_fields(w.post("/api/forms").json(&json!({
        "name": " ", "linkedWorkflow": "no_such_workflow",
        "formSchema": {"fields": [
            {"name": "a", "label": "A", "type": "text", "validation": {"pattern": "(unclosed"}},
            {"name": "b", "label": "B", "type": "select", "dataProvider": "no_such_provider"},
            {"name": "a", "label": "A again", "type": "number"}
        ]}
    })))
    .await;
    for expected in [
        "name",
        "formSchema.fields[0].validation.pattern",
        "formSchema.fields[2].name",
        "linkedWorkflow",
        "formSchema.fields[1].dataProvider",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} in {fields:?}"
        );
    }
    // orgId must name an existing organization.
    let body = json_of(
        w.post("/api/forms").json(
            &json!({"orgId": "nope", "name": "x", "linkedWorkflow": "echo",
                          "formSchema": {"fields": []}}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["details"]["field"], "orgId");

    // Generated forms.
    let generated = json_of(w.get("/api/workflows/launch/form"), StatusCode::OK).await;
    assert_eq!(generated["linkedWorkflow"], "launch");
    let names: Vec<_> = generated["formSchema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ticket", "mode"]);
    assert_eq!(
        w.get("/api/workflows/nope/form")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // Import on demand: a new file appears, a removed one disappears.
    std::fs::write(
        w.ws.path().join("forms/second.form.json"),
        json!({"id": "second-form", "name": "Second", "linkedWorkflow": "echo",
               "formSchema": {"fields": []}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(w.ws.path().join("forms/broken.form.json"), "{ nope").unwrap();
    std::fs::remove_file(w.ws.path().join("forms/imported.form.json")).unwrap();
    let report = json_of(w.post("/api/forms/import"), StatusCode::OK).await;
    // The periodic import may have picked the changes up first; the outcome is the same.
    for (list, id) in [("imported", "second-form"), ("removed", "imported-form")] {
        let ids = report[list].as_array().unwrap();
        assert!(ids.is_empty() || ids == &[json!(id)], "{report}");
    }
    assert_eq!(report["errors"][0]["file"], "forms/broken.form.json");
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(
        w.get("/api/forms/imported-form")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    json_of(w.get("/api/forms/second-form"), StatusCode::OK).await;

    // Delete.
    assert_eq!(
        w.delete(&format!("/api/forms/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        w.get(&format!("/api/forms/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.delete(&format!("/api/forms/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn validation_visibility_steps_files_and_submission() {
    let w = World::start(false);

    // Every field type, each with its own rule.
    let all = w
        .create(form_body(
            "All types",
            "echo",
            json!([
                {"name": "title", "label": "Title", "type": "text", "required": true,
                 "validation": {"pattern": "[A-Z][a-z]+", "min": 3, "max": 10}},
                {"name": "mail", "label": "Mail", "type": "email", "required": true},
                {"name": "seats", "label": "Seats", "type": "number",
                 "validation": {"min": 1, "max": 50, "integer": true}},
                {"name": "plan", "label": "Plan", "type": "select",
                 "options": [{"label": "Basic", "value": "basic"}, {"label": "Pro", "value": "pro"}]},
                {"name": "addons", "label": "Add-ons", "type": "multiselect",
                 "options": [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}],
                 "validation": {"max": 1}},
                {"name": "agree", "label": "Agree", "type": "checkbox", "required": true},
                {"name": "notes", "label": "Notes", "type": "textarea",
                 "validation": {"max": 5, "message": "Keep it short"}},
                {"name": "size", "label": "Size", "type": "radio",
                 "options": [{"label": "S", "value": 1}, {"label": "L", "value": 2}]},
                {"name": "start", "label": "Start", "type": "datetime"},
                {"name": "doc", "label": "Doc", "type": "file", "allowedTypes": [".pdf"],
                 "maxSizeMB": 1},
                {"name": "intro", "type": "markdown", "content": "Hello"}
            ]),
        ))
        .await;
    let all_id = all["id"].as_str().unwrap();
    let invalid = json!({"formData": {
        "title": "lowercase", "mail": "not-an-email", "seats": 2.5, "plan": "gold",
        "addons": ["a", "b"], "agree": "maybe", "notes": "far too long", "size": 3,
        "start": "tomorrow",
        "doc": {"fileId": "x", "name": "a.exe", "contentType": "application/x-msdownload", "size": 10},
        "stray": 1
    }});
    let fields = bad_fields(
        w.post(&format!("/api/forms/{all_id}/validate"))
            .json(&invalid),
    )
    .await;
    assert_eq!(
        fields,
        [
            "stray", "title", "mail", "seats", "plan", "addons", "agree", "notes", "size", "start",
            "doc"
        ]
    );
    // The same answer from the submission route, and nothing runs.
    let body = json_of(
        w.post(&format!("/api/forms/{all_id}/execute"))
            .json(&invalid),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("11 fields are invalid"),
        "{body}"
    );
    assert!(
        body["details"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field"] == "notes" && f["message"] == "Keep it short")
    );
    let required = bad_fields(
        w.post(&format!("/api/forms/{all_id}/validate"))
            .json(&json!({"formData": {}})),
    )
    .await;
    assert_eq!(required, ["title", "mail", "agree"]);

    // Valid values come back converted; the submission's workflow receives exactly them.
    let valid = json!({"form_data": {
        "title": "Hello", "mail": "a@b.example", "seats": "7", "plan": "pro",
        "addons": ["b"], "agree": "true", "notes": "ok", "size": "2",
        "start": "2025-01-31T09:30", "intro": "ignored"
    }});
    let checked = json_of(
        w.post(&format!("/api/forms/{all_id}/validate"))
            .json(&valid),
        StatusCode::OK,
    )
    .await;
    let cleaned = checked["values"].clone();
    assert_eq!(
        cleaned,
        json!({"title": "Hello", "mail": "a@b.example", "seats": 7, "plan": "pro",
               "addons": ["b"], "agree": true, "notes": "ok", "size": 2,
               "start": "2025-01-31T09:30:00Z"})
    );
    let run = json_of(
        w.post(&format!("/api/forms/{all_id}/execute")).json(&valid),
        StatusCode::OK,
    )
    .await;
    assert_eq!(run["status"], "Success", "{run}");
    assert_eq!(run["result"]["inputs"], cleaned);
    let record = json_of(
        w.get(&format!(
            "/api/executions/{}",
            run["executionId"].as_str().unwrap()
        )),
        StatusCode::OK,
    )
    .await;
    assert_eq!(record["formId"], all_id);

    // Visibility from the launch workflow: `context.workflow.show_extra` hides a required field.
    let vis = w
        .create(json!({
            "name": "VIP", "linkedWorkflow": "echo", "launchWorkflowId": "launch",
            "allowedQueryParams": ["ticket"], "defaultLaunchParams": {"mode": "default"},
            "formSchema": {"fields": [
                {"name": "summary", "label": "Summary", "type": "text", "required": true},
                {"name": "vip_note", "label": "VIP note", "type": "text", "required": true,
                 "visibilityExpression": "context.workflow.show_extra === true"},
                {"name": "ticket_copy", "label": "Ticket", "type": "text",
                 "visibilityExpression": "context.query.ticket == '42'"}
            ]}
        }))
        .await;
    let vis_id = vis["id"].as_str().unwrap();
    let started = json_of(
        w.get(&format!("/api/forms/{vis_id}/startup?ticket=vip&other=x")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        started["result"],
        json!({"show_extra": true, "user": "bob", "ticket": "vip", "mode": "default"})
    );
    let posted = json_of(
        w.post(&format!("/api/forms/{vis_id}/startup"))
            .json(&json!({"formData": {"mode": "posted"}, "query": {"ticket": "t"}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(posted["result"]["mode"], "posted");
    assert_eq!(posted["result"]["ticket"], "t");
    // Hidden (regular ticket): not required, and dropped if sent.
    let ok = json_of(
        w.post(&format!("/api/forms/{vis_id}/execute?ticket=regular"))
            .json(&json!({"formData": {"summary": "s", "vip_note": "dropped"}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ok["result"]["inputs"], json!({"summary": "s"}));
    // Shown (VIP ticket): required.
    assert_eq!(
        bad_fields(
            w.post(&format!("/api/forms/{vis_id}/execute"))
                .json(&json!({"formData": {"summary": "s"}, "query": {"ticket": "vip"}}))
        )
        .await,
        ["vip_note"]
    );
    let ok = json_of(
        w.post(&format!("/api/forms/{vis_id}/execute?ticket=42"))
            .json(&json!({"formData": {"summary": "s", "ticket_copy": "42"}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        ok["result"]["inputs"],
        json!({"summary": "s", "ticket_copy": "42"})
    );

    // Multi-step: each step checks its own fields and sees the others' values.
    let wizard = w
        .create(json!({
            "name": "Wizard", "linkedWorkflow": "echo",
            "formSchema": {"fields": [], "steps": [
                {"title": "Who", "fields": [
                    {"name": "user", "label": "User", "type": "text", "required": true}]},
                {"title": "What", "fields": [
                    {"name": "count", "label": "Count", "type": "number", "required": true,
                     "validation": {"min": 5}},
                    {"name": "why", "label": "Why", "type": "text", "required": true,
                     "visibilityExpression": "context.field.user == 'admin'"}]}
            ]}
        }))
        .await;
    let wid = wizard["id"].as_str().unwrap();
    let step = |n: &str| format!("/api/forms/{wid}/validate?step={n}");
    assert_eq!(
        bad_fields(w.post(&step("0")).json(&json!({"formData": {}}))).await,
        ["user"]
    );
    let first = json_of(
        w.post(&step("0"))
            .json(&json!({"formData": {"user": "admin"}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["values"], json!({"user": "admin"}));
    assert_eq!(first["step"], 0);
    assert_eq!(
        bad_fields(
            w.post(&step("1"))
                .json(&json!({"formData": {"user": "admin", "count": 2}}))
        )
        .await,
        ["count", "why"]
    );
    let second = json_of(
        w.post(&step("1"))
            .json(&json!({"formData": {"user": "bob", "count": "6"}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["values"], json!({"count": 6}));
    let body = json_of(
        w.post(&step("2")).json(&json!({"formData": {}})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["details"]["field"], "step");
    assert_eq!(
        bad_fields(
            w.post(&format!("/api/forms/{wid}/validate"))
                .json(&json!({}))
        )
        .await,
        ["user", "count"]
    );

    // Files: uploaded with the field's rules, checked on submission, readable by the workflow.
    let files = w
        .create(form_body(
            "Files",
            "read_upload",
            json!([{"name": "doc", "label": "Doc", "type": "file", "required": true,
                    "allowedTypes": ["text/plain", ".csv"], "maxSizeMB": 1}]),
        ))
        .await;
    let fid = files["id"].as_str().unwrap();
    let upload = |name: &str, ct: &str, body: Vec<u8>| {
        w.post(&format!("/api/forms/{fid}/files?field=doc&fileName={name}"))
            .header("content-type", ct)
            .body(body)
    };
    let file = json_of(
        upload("hello.txt", "text/plain", b"hello form".to_vec()),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(file["name"], "hello.txt");
    assert_eq!(file["size"], 10);
    assert_eq!(
        upload("x.png", "image/png", b"png".to_vec())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        upload("big.txt", "text/plain", vec![b'x'; 1024 * 1024 + 1])
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let bad = json_of(
        w.post(&format!("/api/forms/{fid}/files?fileName=a.txt"))
            .body("x"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(bad["details"]["field"], "field");
    // A reference that was never uploaded here is refused.
    let mut forged = file.clone();
    forged["fileId"] = json!("00000000-0000-4000-8000-000000000000");
    assert_eq!(
        bad_fields(
            w.post(&format!("/api/forms/{fid}/execute"))
                .json(&json!({"formData": {"doc": forged}}))
        )
        .await,
        ["doc"]
    );
    let read = json_of(
        w.post(&format!("/api/forms/{fid}/execute"))
            .json(&json!({"formData": {"doc": file}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["status"], "Success", "{read}");
    assert_eq!(read["result"]["text"], "hello form");
    assert_eq!(read["result"]["file"], file);
}

#[tokio::test]
async fn data_providers_modes_cache_and_failures() {
    let w = World::start(false);
    let form = w
        .create(json!({
            "name": "Providers", "linkedWorkflow": "echo", "launchWorkflowId": "launch",
            "allowedQueryParams": ["ticket"],
            "formSchema": {"fields": [
                {"name": "pfx", "label": "Prefix", "type": "text"},
                {"name": "region_field", "label": "Region", "type": "text"},
                {"name": "site", "label": "Site", "type": "select", "required": false,
             "dataProvider": "sites",
                 "dataProviderInputs": {
                    "region": {"mode": "static", "value": "eu"},
                    "prefix": {"mode": "fieldRef", "fieldName": "pfx"},
                    "who": {"mode": "expression",
                            "expression": "context.workflow.user + '/' + context.query.ticket"}}},
                {"name": "site2", "label": "Site 2", "type": "select", "dataProvider": "sites",
                 "dataProviderInputs": {
                    "region": {"mode": "fieldRef", "fieldName": "region_field"}}},
                {"name": "color", "label": "Color", "type": "select", "dataProvider": "colors"},
                {"name": "b", "label": "B", "type": "select", "dataProvider": "broken"},
                {"name": "r", "label": "R", "type": "select", "dataProvider": "refusing"}
            ]}
        }))
        .await;
    let id = form["id"].as_str().unwrap();
    let sites = |body: Value| {
        w.post(&format!("/api/forms/{id}/data-providers/sites?ticket=T1"))
            .json(&body)
    };

    // All three modes: static region, fieldRef prefix, expression over launch result + query.
    let first = json_of(sites(json!({"formData": {"pfx": "P-"}})), StatusCode::OK).await;
    assert_eq!(first["provider"], "sites");
    assert_eq!(first["cached"], false);
    assert_eq!(first["options"][0]["label"], "P-eu-0");
    assert_eq!(first["options"][0]["value"], "eu0");
    assert_eq!(first["options"][0]["metadata"]["who"], "bob/T1");
    let call = first["options"][0]["metadata"]["call"].clone();
    assert!(first["cacheExpiresAt"].is_string());

    // Same inputs: served from the cache (no new provider call).
    let second = json_of(sites(json!({"formData": {"pfx": "P-"}})), StatusCode::OK).await;
    assert_eq!(second["cached"], true);
    assert_eq!(second["options"], first["options"]);
    assert_eq!(second["cacheExpiresAt"], first["cacheExpiresAt"]);

    // noCache runs the provider again and refreshes the entry.
    let fresh = json_of(
        sites(json!({"formData": {"pfx": "P-"}, "noCache": true})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(fresh["cached"], false);
    assert_ne!(fresh["options"][0]["metadata"]["call"], call);
    let after = json_of(sites(json!({"formData": {"pfx": "P-"}})), StatusCode::OK).await;
    assert_eq!(after["cached"], true);
    assert_eq!(after["options"], fresh["options"]);

    // Other inputs are another cache entry; a non-admin could not override the static input,
    // but callers fill what the configuration leaves open.
    let other = json_of(sites(json!({"formData": {"pfx": "Q-"}})), StatusCode::OK).await;
    assert_eq!(other["cached"], false);
    assert_eq!(other["options"][1]["label"], "Q-eu-1");

    // A required input the configuration leaves missing: 400 naming it.
    let missing = bad_fields(sites(json!({"field": "site2", "formData": {}}))).await;
    assert_eq!(missing, ["inputs.region"]);
    let by_ref = json_of(
        sites(json!({"field": "site2", "formData": {"region_field": "us"}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(by_ref["options"][0]["value"], "us0");
    let by_input = json_of(
        sites(json!({"field": "site2", "inputs": {"region": "apac"}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(by_input["options"][0]["value"], "apac0");
    let body = json_of(sites(json!({"field": "color"})), StatusCode::BAD_REQUEST).await;
    assert_eq!(body["details"]["field"], "field");

    // No caching when the provider says so.
    let colors = json_of(
        w.post(&format!("/api/forms/{id}/data-providers/colors")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        colors["options"][1],
        json!({"label": "Blue", "value": "blue"})
    );
    assert!(colors["cacheExpiresAt"].is_null());

    // Failures: a clear 502 naming the provider, never a traceback.
    let res = w
        .post(&format!("/api/forms/{id}/data-providers/broken"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "WorkflowFailed");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("data provider 'broken' failed"),
        "{message}"
    );
    assert!(
        message.contains("ValueError"),
        "admins see the exception: {message}"
    );
    assert!(
        !message.contains("Traceback") && !message.contains("line "),
        "{message}"
    );
    let body = json_of(
        w.post(&format!("/api/forms/{id}/data-providers/refusing")),
        StatusCode::BAD_GATEWAY,
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the PSA is down")
    );
    assert_eq!(
        w.post(&format!("/api/forms/{id}/data-providers/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

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
enum Who {
    Anonymous,
    WithRole,
    WithoutRole,
    OtherOrg,
    Admin,
}

#[tokio::test]
async fn access_matrix_and_inactive_forms() {
    let w = World::start(true);
    let admin = easy_auth("admin@msp.example", "00000000-0000-4000-8000-0000000000aa");
    let as_admin = |req: RequestBuilder| req.header("x-ms-client-principal", &admin);

    let org = |name: &str, domain: &str| {
        as_admin(w.post("/api/organizations")).json(&json!({"name": name, "domain": domain}))
    };
    let contoso = json_of(org("Contoso", "contoso.example"), StatusCode::CREATED).await;
    let contoso = contoso["id"].as_str().unwrap().to_owned();
    let fabrikam = json_of(org("Fabrikam", "fabrikam.example"), StatusCode::CREATED).await;
    let fabrikam = fabrikam["id"].as_str().unwrap().to_owned();
    let user = |email: &str, org: &str| {
        as_admin(w.post("/api/users"))
            .json(&json!({"email": email, "isPlatformAdmin": false, "orgId": org}))
    };
    let bob = json_of(user("bob@contoso.example", &contoso), StatusCode::CREATED).await;
    json_of(user("carol@contoso.example", &contoso), StatusCode::CREATED).await;
    json_of(
        user("dave@fabrikam.example", &fabrikam),
        StatusCode::CREATED,
    )
    .await;

    let in_contoso = |req: RequestBuilder| as_admin(req).header("x-organization-id", &contoso);
    let mut ids = Vec::new();
    for level in ["public", "authenticated", "role_based"] {
        let form = json_of(
            in_contoso(w.post("/api/forms")).json(&json!({
                "name": format!("{level} form"), "linkedWorkflow": "echo",
                "launchWorkflowId": "launch", "accessLevel": level,
                "formSchema": {"fields": [
                    {"name": "note", "label": "Note", "type": "text"},
                    {"name": "color", "label": "Color", "type": "select", "dataProvider": "colors"}
                ]}
            })),
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(form["orgId"], contoso.as_str());
        ids.push(form["id"].as_str().unwrap().to_owned());
    }
    let role = json_of(
        in_contoso(w.post("/api/roles")).json(&json!({"name": "Helpdesk"})),
        StatusCode::CREATED,
    )
    .await;
    let role = role["id"].as_str().unwrap().to_owned();
    json_of(
        in_contoso(w.post(&format!("/api/roles/{role}/users")))
            .json(&json!({"userIds": [bob["id"]]})),
        StatusCode::OK,
    )
    .await;
    json_of(
        in_contoso(w.post(&format!("/api/roles/{role}/forms"))).json(&json!({"formIds": ids})),
        StatusCode::OK,
    )
    .await;

    let principals = [
        (Who::Anonymous, None),
        (
            Who::WithRole,
            Some(easy_auth(
                "bob@contoso.example",
                "00000000-0000-4000-8000-0000000000b1",
            )),
        ),
        (
            Who::WithoutRole,
            Some(easy_auth(
                "carol@contoso.example",
                "00000000-0000-4000-8000-0000000000c1",
            )),
        ),
        (
            Who::OtherOrg,
            Some(easy_auth(
                "dave@fabrikam.example",
                "00000000-0000-4000-8000-0000000000d1",
            )),
        ),
        (Who::Admin, Some(admin.clone())),
    ];
    let expected = |level: &str, who: Who| -> u16 {
        match (level, who) {
            ("public", _) => 200,
            (_, Who::Anonymous) => 401,
            (_, Who::OtherOrg) => 404,
            ("role_based", Who::WithoutRole) => 403,
            _ => 200,
        }
    };
    let mut failures = Vec::new();
    for (level, id) in ["public", "authenticated", "role_based"].iter().zip(&ids) {
        for (who, principal) in &principals {
            let ops: [(&str, RequestBuilder); 4] = [
                ("view", w.get(&format!("/api/forms/{id}"))),
                ("startup", w.get(&format!("/api/forms/{id}/startup"))),
                (
                    "provider",
                    w.post(&format!("/api/forms/{id}/data-providers/colors")),
                ),
                (
                    "execute",
                    w.post(&format!("/api/forms/{id}/execute"))
                        .json(&json!({"formData": {"note": "hi"}})),
                ),
            ];
            for (op, mut req) in ops {
                if let Some(p) = principal {
                    req = req.header("x-ms-client-principal", p);
                }
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                let body = res.text().await.unwrap();
                let want = expected(level, *who);
                if status != want {
                    failures.push(format!(
                        "{level} {op} as {who:?}: {status} (want {want}) {body}"
                    ));
                } else if op == "execute" && status == 200 {
                    let run: Value = serde_json::from_str(&body).unwrap();
                    // Runs act for the form's organization.
                    if run["result"]["org"] != contoso.as_str() {
                        failures.push(format!(
                            "{level} execute as {who:?} ran in {}",
                            run["result"]["org"]
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "access matrix:\n{}",
        failures.join("\n")
    );

    // Listing follows the same rules.
    let listed = |p: &str| {
        let p = p.to_owned();
        let w = &w;
        async move {
            let list = json_of(
                w.get("/api/forms").header("x-ms-client-principal", &p),
                StatusCode::OK,
            )
            .await;
            let mut names: Vec<String> = list["forms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_owned())
                .filter(|n| n.ends_with(" form"))
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(
        listed(&principals[1].1.clone().unwrap()).await,
        ["authenticated form", "public form", "role_based form"]
    );
    assert_eq!(
        listed(&principals[2].1.clone().unwrap()).await,
        ["authenticated form", "public form"]
    );
    assert!(listed(&principals[3].1.clone().unwrap()).await.is_empty());
    assert_eq!(
        w.get("/api/forms").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Inactive forms: invisible to users, still there for administrators.
    let current = json_of(
        as_admin(w.get(&format!("/api/forms/{}", ids[1]))),
        StatusCode::OK,
    )
    .await;
    let mut inactive = current.clone();
    inactive["isActive"] = json!(false);
    json_of(
        as_admin(w.put(&format!("/api/forms/{}", ids[1]))).json(&inactive),
        StatusCode::OK,
    )
    .await;
    let bob_principal = principals[1].1.clone().unwrap();
    for path in [
        format!("/api/forms/{}", ids[1]),
        format!("/api/forms/{}/startup", ids[1]),
    ] {
        assert_eq!(
            w.get(&path)
                .header("x-ms-client-principal", &bob_principal)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        w.post(&format!("/api/forms/{}/execute", ids[1]))
            .header("x-ms-client-principal", &bob_principal)
            .json(&json!({"formData": {}}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        listed(&bob_principal).await,
        ["public form", "role_based form"]
    );
    json_of(
        as_admin(w.get(&format!("/api/forms/{}", ids[1]))),
        StatusCode::OK,
    )
    .await;

    // Non-administrators see no exception details of a failing provider.
    let global = json_of(
        as_admin(w.post("/api/forms")).json(&json!({
            "orgId": "GLOBAL", "name": "Global", "linkedWorkflow": "echo",
            "accessLevel": "authenticated",
            "formSchema": {"fields": [
                {"name": "b", "label": "B", "type": "select", "dataProvider": "broken"}]}
        })),
        StatusCode::CREATED,
    )
    .await;
    let gid = global["id"].as_str().unwrap();
    let dave = principals[3].1.clone().unwrap();
    let body = json_of(
        w.post(&format!("/api/forms/{gid}/data-providers/broken"))
            .header("x-ms-client-principal", &dave),
        StatusCode::BAD_GATEWAY,
    )
    .await;
    let message = body["message"].as_str().unwrap();
    assert!(
        !message.contains("secret") && !message.contains("ValueError"),
        "{message}"
    );
    // A GLOBAL form runs for the caller's organization.
    let run = json_of(
        w.post(&format!("/api/forms/{gid}/execute"))
            .header("x-ms-client-principal", &dave)
            .json(&json!({"formData": {"b": "x"}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(run["result"]["org"], fabrikam.as_str());
    // Org users cannot manage forms.
    assert_eq!(
        w.delete(&format!("/api/forms/{gid}"))
            .header("x-ms-client-principal", &dave)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
}

//! `/api/forms`: forms per organization (and GLOBAL forms for every organization), their
//! server-side validation, launch workflows, data providers, file uploads and submission, plus
//! `GET /api/workflows/{workflowName}/form` (a form generated from a workflow's parameters).
//!
//! Wire shapes: a form is v1's `Form` JSON (`forms::model`); lists are `{forms}`. Submissions
//! and launch calls take `{formData, query?}` (`form_data` is accepted, as v1 sent it; `query`
//! holds the URL query parameters the form was opened with, also read from this request's own
//! query string; only `allowedQueryParams` are kept). Invalid values answer 400 with every
//! failing field in `details.fields` (`{field, message}`; field = the form field's name).
//!
//! Who may open a form is `forms::access` (the view, startup, validate, data-provider, upload
//! and execute operations are declared `Public` because a form's `accessLevel` decides);
//! launch workflows and their cache are `forms::launch`, a field's options `forms::field_options`,
//! the hand-over of uploaded files `forms::files`. This module reads requests and writes
//! answers. Workspace code failures (launch workflows, data providers) answer 502
//! `WorkflowFailed` with a message fit for the caller.
//!
//! Workspace forms (`*.form.json`, imported at start-up, every `forms::import::FORM_IMPORT_INTERVAL`
//! and on `POST /api/forms/import`) are read-only here: PUT/DELETE answer 409 naming the file.
//! Generated workflow forms are for display: their workflows run through
//! `POST /api/workflows/execute` (administrators), never through a generated form.

use std::sync::Arc;

use bifrost_store::Scope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::audit::{AuditEvent, AuditEventType};
use crate::executions::RunRequest;
use crate::executions::input::Coercion;
use crate::forms::access::{self, OpenedForm};
use crate::forms::definition;
use crate::forms::error::FormError;
use crate::forms::field_options::{OptionSources, OptionsRequest, field_errors, field_options};
use crate::forms::files::{MAX_UPLOAD_BYTES, UploadError, Uploads};
use crate::forms::generated::form_for_workflow;
use crate::forms::launch::reads_launch_result;
use crate::forms::model::{FieldType, Form, FormInput};
use crate::forms::query::allowed_query;
use crate::forms::store::{FormSource, FormStoreError, ImportReport, StoredForm};
use crate::forms::validate::FileRef;
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::{RequestContext, audit};
use crate::http::endpoint::{Call, Endpoint};
use crate::http::error::{ApiError, json_response};
use crate::http::input::{no_content, timestamp};
use crate::http::run::{Detail, RunAccepted, RunResult, start_run};

const FORM_LINK: &str = "$response.body#/id";

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "forms.list",
            "/api/forms",
            Access::Authenticated,
            "Forms the caller may open: its organization's and the GLOBAL ones (administrators also see inactive forms)",
        )
        .ok::<FormList>("The forms")
        .guarded(|state, ctx, _call| async move { list(&state, &ctx).await }),
        Endpoint::post(
            "forms.create",
            "/api/forms",
            Access::PlatformAdmin,
            "Create a form (orgId absent = the request's scope)",
        )
        .body::<FormInput>()
        .created::<Form>("Created")
        .errors(&[409])
        .link("GetForm", "forms.get", "formId", FORM_LINK)
        .link("UpdateForm", "forms.update", "formId", FORM_LINK)
        .link("DeleteForm", "forms.delete", "formId", FORM_LINK)
        .link("ValidateForm", "forms.validate", "formId", FORM_LINK)
        .link("StartForm", "forms.startupGet", "formId", FORM_LINK)
        .link("SubmitForm", "forms.execute", "formId", FORM_LINK)
        .link("StartFormWith", "forms.startupPost", "formId", FORM_LINK)
        .link("UploadFile", "forms.upload", "formId", FORM_LINK)
        .guarded(|state, ctx, mut call| async move { create(&state, &ctx, call.json().await?).await }),
        Endpoint::post(
            "forms.import",
            "/api/forms/import",
            Access::PlatformAdmin,
            "Import the workspace's *.form.json files now (also done at start-up and periodically)",
        )
        .ok::<ImportResult>("What changed")
        .guarded(|state, ctx, _call| async move { import(&state, &ctx).await }),
        Endpoint::get(
            "forms.get",
            "/api/forms/{formId}",
            Access::Public,
            "One form, if the caller may open it (its access level decides)",
        )
        .ok::<Form>("The form")
        .errors(&[401, 403])
        .public(|state, mut call| async move {
            let opened = open(&state, &mut call, "forms.get").await?;
            Ok(json_response(StatusCode::OK, opened.form()))
        }),
        Endpoint::put(
            "forms.update",
            "/api/forms/{formId}",
            Access::PlatformAdmin,
            "Replace a form's editable properties (workspace forms are read-only: 409)",
        )
        .body::<FormInput>()
        .ok::<Form>("The form")
        .errors(&[409, 412])
        .guarded(|state, ctx, mut call| async move {
            let input = call.json().await?;
            update(&state, &ctx, call.param("formId"), input).await
        }),
        Endpoint::delete(
            "forms.delete",
            "/api/forms/{formId}",
            Access::PlatformAdmin,
            "Delete a form (workspace forms are read-only: 409)",
        )
        .empty(204, "Deleted")
        .errors(&[409])
        .guarded(|state, ctx, call| async move { delete(&state, &ctx, call.param("formId")).await }),
        Endpoint::post(
            "forms.validate",
            "/api/forms/{formId}/validate",
            Access::Public,
            "Validate {formData} against the whole form or one step (?step=N, 0-based): the cleaned values or 400 listing every invalid field",
        )
        .query::<ValidateQuery>()
        .body::<SubmitRequest>()
        .ok::<ValidationResult>("Valid: the values the workflow would receive")
        .errors(&[401, 403, 502])
        .public(|state, call| async move { validate(&state, call).await }),
        Endpoint::get(
            "forms.startupGet",
            "/api/forms/{formId}/startup",
            Access::Public,
            "Run the form's launch workflow (allowed query parameters as inputs): {result}",
        )
        .ok::<StartupResult>("The launch result")
        .errors(&[401, 403, 502])
        .public(|state, call| async move { startup(&state, call, "forms.startupGet").await }),
        Endpoint::post(
            "forms.startupPost",
            "/api/forms/{formId}/startup",
            Access::Public,
            "Run the form's launch workflow with {formData, query}: {result}",
        )
        .body::<SubmitRequest>()
        .ok::<StartupResult>("The launch result")
        .errors(&[401, 403, 502])
        .public(|state, call| async move { startup(&state, call, "forms.startupPost").await }),
        Endpoint::post(
            "forms.dataProvider",
            "/api/forms/{formId}/data-providers/{providerName}",
            Access::Public,
            "Options of a field's data provider {inputs?, formData?, query?, noCache?, field?}: {provider, options, cached, cacheExpiresAt}",
        )
        .body::<ProviderRequest>()
        .ok::<ProviderResult>("The options")
        .errors(&[401, 403, 502])
        .public(|state, call| async move { data_provider(&state, call).await }),
        Endpoint::post(
            "forms.upload",
            "/api/forms/{formId}/files",
            Access::Public,
            "Upload a file for a file field (?field=&fileName=, raw body, Content-Type): the file reference to submit",
        )
        .query::<UploadQuery>()
        .raw_body("application/octet-stream")
        .created::<FileRef>("Stored: submit this reference as the field's value")
        .errors(&[401, 403, 413, 415])
        .public(|state, call| async move { upload(&state, call).await }),
        Endpoint::post(
            "forms.execute",
            "/api/forms/{formId}/execute",
            Access::Public,
            "Submit {formData}: validated, then the linked workflow runs (sync result, or 202 with its status URL)",
        )
        .body::<SubmitRequest>()
        .ok::<RunResult>("The run finished")
        .accepted::<RunAccepted>("Queued (async workflow) or still running; poll statusUrl")
        .errors(&[401, 403, 502])
        .link(
            "GetExecution",
            "executions.get",
            "executionId",
            "$response.body#/executionId",
        )
        .public(|state, call| async move { execute(&state, call).await }),
        Endpoint::get(
            "forms.workflowForm",
            "/api/workflows/{workflowName}/form",
            Access::Authenticated,
            "A form generated from a workflow's parameters",
        )
        .ok::<Form>("The form")
        .guarded(|state, _ctx, call| async move {
            workflow_form(&state, call.param("workflowName"))
        }),
    ]
}

/// `POST .../validate` options (the form's `allowedQueryParams` may come along too).
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ValidateQuery {
    /// Validate only this step (0-based); absent = the whole form.
    step: Option<usize>,
}

/// `POST .../files` parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadQuery {
    /// The file field's name.
    #[schemars(length(min = 1, max = 200))]
    field: Option<String>,
    /// The file's name.
    #[serde(alias = "file_name")]
    #[schemars(length(min = 1, max = 200))]
    file_name: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct FormList {
    pub forms: Vec<Form>,
}

/// A submission, a validation or a launch call.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmitRequest {
    /// The form's values by field name.
    #[serde(default, alias = "form_data")]
    pub form_data: Map<String, Value>,
    /// The URL query parameters the form was opened with (only `allowedQueryParams` count).
    #[serde(default)]
    pub query: Map<String, Value>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationResult {
    pub valid: bool,
    /// The validated step (absent: the whole form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The values the workflow would receive: visible fields only, converted, defaults filled.
    pub values: Map<String, Value>,
}

#[derive(Serialize, JsonSchema)]
pub struct StartupResult {
    /// The launch workflow's result (`null` without a launch workflow): `context.workflow`.
    pub result: Value,
}

/// A data-provider call.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderRequest {
    /// Values for the provider's parameters that the field's configuration leaves open.
    #[serde(default)]
    pub inputs: Map<String, Value>,
    /// The form's current values (read by `fieldRef` and `expression` inputs).
    #[serde(default, alias = "form_data")]
    pub form_data: Map<String, Value>,
    #[serde(default)]
    pub query: Map<String, Value>,
    /// Skip the cache and refresh it.
    #[serde(default, alias = "no_cache")]
    pub no_cache: bool,
    /// The field whose configuration applies when several fields use the provider.
    #[serde(default)]
    pub field: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct OptionDto {
    pub label: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderResult {
    pub provider: String,
    pub options: Vec<OptionDto>,
    /// Served from the cache.
    pub cached: bool,
    /// When the cached options expire (RFC 3339); absent when they are not cached.
    pub cache_expires_at: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    pub imported: Vec<String>,
    pub unchanged: usize,
    pub removed: Vec<String>,
    pub errors: Vec<ImportErrorDto>,
}

#[derive(Serialize, JsonSchema)]
pub struct ImportErrorDto {
    /// Relative to the workspace folder.
    pub file: String,
    pub message: String,
}

impl From<ImportReport> for ImportResult {
    fn from(r: ImportReport) -> Self {
        Self {
            imported: r.imported,
            unchanged: r.unchanged,
            removed: r.removed,
            errors: r
                .errors
                .into_iter()
                .map(|e| ImportErrorDto {
                    file: e.file,
                    message: e.message,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Access

/// Authorizes the caller of a public form operation and opens the form it names.
async fn open(state: &ApiState, call: &mut Call, route: &str) -> Result<OpenedForm, ApiError> {
    let ctx = call.authorize(state, route).await?;
    let services = &state.services;
    let id = call.param("formId").to_owned();
    Ok(access::open(
        &services.forms,
        &services.roles,
        ctx.principal,
        &ctx.scope,
        &id,
    )
    .await?)
}

/// The context of an opened form's request again (for the body and upload limits).
fn request_of(opened: &OpenedForm, call: &Call) -> RequestContext {
    RequestContext {
        principal: opened.principal.clone(),
        scope: opened.run_scope.clone(),
        client: call.client,
    }
}

// ---------------------------------------------------------------------------------------------
// CRUD

async fn list(state: &ApiState, ctx: &RequestContext) -> Result<Response, ApiError> {
    let services = &state.services;
    let forms =
        access::visible(&services.forms, &services.roles, &ctx.principal, &ctx.scope).await?;
    Ok(json_response(StatusCode::OK, &FormList { forms }))
}

/// The definition's problems against the workspace, every one listed.
fn check_definition(state: &ApiState, input: &FormInput) -> Result<(), ApiError> {
    let issues = definition::problems(input, &state.runner.registry());
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(
            issues.into_iter().map(|i| (i.field, i.message)),
        ))
    }
}

fn audit_form(ctx: &RequestContext, scope: &Scope, action: &str, form_id: &str) -> AuditEvent {
    AuditEvent::new(AuditEventType::ConfigChanged, ctx.actor(), scope.clone())
        .detail("setting", "form")
        .detail("action", action)
        .detail("formId", form_id)
}

async fn create(
    state: &ApiState,
    ctx: &RequestContext,
    input: FormInput,
) -> Result<Response, ApiError> {
    check_definition(state, &input)?;
    let scope = definition::target_scope(&state.services.orgs, &ctx.scope, &input).await?;
    let now = OffsetDateTime::now_utc();
    let mut form = input.into_form(
        uuid::Uuid::new_v4().to_string(),
        scope.to_string(),
        ctx.actor(),
        now,
    );
    form.is_global = scope == Scope::Global;
    let stored = state.services.forms.create(form).await?;
    audit(state, audit_form(ctx, &scope, "create", &stored.form.id)).await;
    Ok(json_response(StatusCode::CREATED, &stored.form))
}

async fn import(state: &ApiState, ctx: &RequestContext) -> Result<Response, ApiError> {
    let report = state
        .services
        .forms
        .import_workspace(&state.settings.workspace)
        .await?;
    audit(
        state,
        AuditEvent::new(AuditEventType::ConfigChanged, ctx.actor(), Scope::Global)
            .detail("setting", "form")
            .detail("action", "import")
            .detail("imported", report.imported.len())
            .detail("removed", report.removed.len()),
    )
    .await;
    Ok(json_response(StatusCode::OK, &ImportResult::from(report)))
}

/// The stored form for a write, read past the cache so its ETag is current.
async fn current(state: &ApiState, id: &str) -> Result<Arc<StoredForm>, ApiError> {
    state
        .services
        .forms
        .load(id)
        .await
        .map_err(|e| match e {
            FormStoreError::InvalidId(_) => ApiError::NotFound(format!("form '{id}' not found")),
            other => other.into(),
        })?
        .ok_or_else(|| ApiError::NotFound(format!("form '{id}' not found")))
}

async fn update(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    input: FormInput,
) -> Result<Response, ApiError> {
    let current = current(state, id).await?;
    if let FormSource::Workspace { file } = &current.source {
        return Err(FormStoreError::ReadOnly {
            id: id.to_owned(),
            file: file.clone(),
        }
        .into());
    }
    check_definition(state, &input)?;
    if let Some(org) = input.org_id.as_deref().map(str::trim)
        && !org.is_empty()
        && !org.eq_ignore_ascii_case(&current.form.org_id)
    {
        return Err(ApiError::bad_request(
            "orgId",
            "cannot be changed; create the form in the other scope instead",
        ));
    }
    let mut form = current.form.clone();
    form.apply(input, OffsetDateTime::now_utc());
    form.is_global = current.scope == Scope::Global;
    let stored = state.services.forms.replace(&current, form).await?;
    audit(state, audit_form(ctx, &current.scope, "update", id)).await;
    Ok(json_response(StatusCode::OK, &stored.form))
}

async fn delete(state: &ApiState, ctx: &RequestContext, id: &str) -> Result<Response, ApiError> {
    let current = current(state, id).await?;
    state.services.forms.delete(&current).await?;
    audit(state, audit_form(ctx, &current.scope, "delete", id)).await;
    Ok(no_content())
}

fn workflow_form(state: &ApiState, name: &str) -> Result<Response, ApiError> {
    let registry = state.runner.registry();
    let workflow = registry
        .workflow(name)
        .ok_or_else(|| ApiError::NotFound(format!("workflow '{name}' not found")))?;
    Ok(json_response(StatusCode::OK, &form_for_workflow(workflow)))
}

// ---------------------------------------------------------------------------------------------
// Launch, validation and submission

/// The launch workflow's result for this caller, when the form reads it.
async fn launch_if_read(
    state: &ApiState,
    opened: &OpenedForm,
    values: &Map<String, Value>,
    query: &Map<String, Value>,
) -> Result<Value, ApiError> {
    if !reads_launch_result(opened.form()) {
        return Ok(Value::Null);
    }
    let launches = &state.services.launches;
    Ok(launches
        .result(&state.runner, opened, values, query, false)
        .await?)
}

async fn startup(state: &ApiState, mut call: Call, route: &str) -> Result<Response, ApiError> {
    let opened = open(state, &mut call, route).await?;
    let request: SubmitRequest = call.json_or_default().await?;
    let query = allowed_query(opened.form(), &call.query, &request.query);
    let launches = &state.services.launches;
    let result = launches
        .result(&state.runner, &opened, &request.form_data, &query, true)
        .await?;
    Ok(json_response(StatusCode::OK, &StartupResult { result }))
}

async fn validate(state: &ApiState, mut call: Call) -> Result<Response, ApiError> {
    let opened = open(state, &mut call, "forms.validate").await?;
    let step = call.query::<ValidateQuery>()?.step;
    let request: SubmitRequest = call.json_or_default().await?;
    let form = opened.form();
    let query = allowed_query(form, &call.query, &request.query);
    let validator = match step {
        None => opened.stored.validator(),
        Some(n) => opened.stored.step_validator(n).ok_or_else(|| {
            ApiError::bad_request(
                "step",
                format!(
                    "the form has {} step(s), numbered from 0",
                    form.form_schema.step_count()
                ),
            )
        })?,
    };
    let launch = launch_if_read(state, &opened, &request.form_data, &query).await?;
    let values = validator
        .validate(&request.form_data, &launch, &query)
        .map_err(field_errors)?;
    Ok(json_response(
        StatusCode::OK,
        &ValidationResult {
            valid: true,
            step,
            values,
        },
    ))
}

async fn execute(state: &ApiState, mut call: Call) -> Result<Response, ApiError> {
    let opened = open(state, &mut call, "forms.execute").await?;
    let request: SubmitRequest = call.json_or_default().await?;
    let form = opened.form();
    let query = allowed_query(form, &call.query, &request.query);
    let launch = launch_if_read(state, &opened, &request.form_data, &query).await?;
    let values = opened
        .stored
        .validator()
        .validate(&request.form_data, &launch, &query)
        .map_err(field_errors)?;
    let services = &state.services;
    services
        .uploads
        .hand_over(&services.files, &opened.run_scope, form, &values)
        .await?;
    let runner = &state.runner;
    let (workflow, input) = runner
        .prepare(&form.linked_workflow, values, Coercion::FromStrings)
        .map_err(|e| FormError::run(e, ""))?;
    let run = RunRequest::new(workflow, input, opened.run_context()).for_form(form.id.clone());
    let detail = if opened.is_admin() {
        Detail::Admin
    } else {
        Detail::Caller
    };
    start_run(runner, run, detail).await
}

async fn upload(state: &ApiState, mut call: Call) -> Result<Response, ApiError> {
    let opened = open(state, &mut call, "forms.upload").await?;
    let query: UploadQuery = call.query()?;
    let field_name = query
        .field
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("field", "the file field's name is required"))?;
    let file_name = query
        .file_name
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("fileName", "the file's name is required"))?;
    let form = opened.form();
    let field = form
        .form_schema
        .field(&field_name)
        .filter(|f| f.field_type == FieldType::File)
        .ok_or_else(|| UploadError::NotAFileField(field_name.clone()))?;
    let content_type = call.header("content-type").unwrap_or_default().to_owned();
    let limit = Uploads::limit(field).min(MAX_UPLOAD_BYTES);
    let body = call
        .upload(state, &request_of(&opened, &call), limit)
        .await?;
    let file: FileRef = state
        .services
        .uploads
        .save(
            &opened.run_scope,
            &form.id,
            field,
            &file_name,
            &content_type,
            body,
        )
        .await?;
    Ok(json_response(StatusCode::CREATED, &file))
}

async fn data_provider(state: &ApiState, mut call: Call) -> Result<Response, ApiError> {
    let opened = open(state, &mut call, "forms.dataProvider").await?;
    let request: ProviderRequest = call.json_or_default().await?;
    let name = call.param("providerName").to_owned();
    let query = allowed_query(opened.form(), &call.query, &request.query);
    let services = &state.services;
    let sources = OptionSources {
        runner: &state.runner,
        cache: &services.provider_cache,
        launches: &services.launches,
    };
    let options = field_options(
        sources,
        &opened,
        OptionsRequest {
            provider: &name,
            inputs: &request.inputs,
            values: &request.form_data,
            query: &query,
            no_cache: request.no_cache,
            field: request.field.as_deref(),
        },
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &ProviderResult {
            provider: name,
            options: options
                .options
                .into_iter()
                .map(|o| OptionDto {
                    label: o.label,
                    value: o.value,
                    metadata: o.metadata,
                })
                .collect(),
            cached: options.cached,
            cache_expires_at: options.expires_at.map(timestamp),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::endpoint::parse_json;

    #[test]
    fn bodies_accept_v1_spellings_and_refuse_unknown_fields() {
        let v1: SubmitRequest = parse_json(br#"{"form_data": {"a": 1}}"#).unwrap();
        assert_eq!(v1.form_data["a"], 1);
        assert!(parse_json::<SubmitRequest>(br#"{"nope": 1}"#).is_err());
        let p: ProviderRequest = parse_json(br#"{"noCache": true, "inputs": {"a": 1}}"#).unwrap();
        assert!(p.no_cache);
    }
}

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
//! Access (enforced here, because the route table cannot know a form's `accessLevel`; the view,
//! startup, validate, data-provider, upload and execute routes are declared `Public`):
//! - managers — platform administrators (all forms), function keys (forms of their scope and
//!   GLOBAL) — see inactive forms and may call any data provider through any form;
//! - everybody else, in this order: an inactive form is 404; `public` admits anyone; any other
//!   level is 401 for anonymous callers and 404 for a form of another organization;
//!   `authenticated` then admits the caller, `role_based` only org users holding an active role
//!   the form is assigned to (403 for others).
//! - The scope a request acts in (runs, provider calls, caches, uploads) is the form's
//!   organization, or for a GLOBAL form the caller's own scope (anonymous: GLOBAL).
//!
//! Launch workflows run without an execution record (as v1), only with the inputs the launch
//! workflow declares (`defaultLaunchParams` ← form values ← allowed query parameters). Their
//! results are kept in memory for [`LAUNCH_TTL`] per form, scope, caller and inputs, so
//! validation and submission evaluate `context.workflow` on the server without running the
//! launch workflow again (`startup` always runs it afresh). Workspace code failures (launch
//! workflows, data providers) answer 502 `WorkflowFailed` with a message fit for the caller:
//! administrators see the exception type and message, others only a `UserError`'s message.
//!
//! Workspace forms (`*.form.json`, imported at start-up, every `forms::import::FORM_IMPORT_INTERVAL` and on
//! `POST /api/forms/import`) are read-only here: PUT/DELETE answer 409 naming the file.
//! Generated workflow forms are for display: their workflows run through
//! `POST /api/workflows/execute` (administrators), never through a generated form.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bifrost_engine::{
    DataProviderInfo, EngineError, ExecutionContextInfo, ExecutionError, ExecutionOutcome,
    ExecutionStatus, Organization,
};
use bifrost_store::{OrgId, Scope};
use bytes::Bytes;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::audit::{AuditEvent, AuditEventType};
use crate::auth::Principal;
use crate::domain::{FormId, UserId};
use crate::executions::input::Coercion;
use crate::executions::{RunError, RunRequest};
use crate::forms::files::{MAX_UPLOAD_BYTES, UploadError, Uploads, file_refs};
use crate::forms::generated::form_for_workflow;
use crate::forms::model::{AccessLevel, FieldIssue, FieldType, Form, FormInput, FormSchema};
use crate::forms::providers::{
    CacheCaller, InputContext, cache_key, caller_cache_key, check_parameters, needs_launch_result,
    resolve_inputs,
};
use crate::forms::store::{FormStoreError, ImportReport, StoredForm, TtlCache};
use crate::forms::validate::{FieldError, FileRef};
use crate::http::ApiState;
use crate::http::access::{Access, Route};
use crate::http::body;
use crate::http::context::{PublicRequest, RequestContext, audit, guard, public_request};
use crate::http::error::{ApiError, json_response};
use crate::http::input::{no_content, respond, timestamp, with_state};
use crate::http::openapi::{OperationSpec, QueryParam};
use crate::http::run::{caller_of, run_error, start_run};

pub const ROUTES: &[Route] = &[
    Route {
        id: "forms.list",
        method: "GET",
        path: "/api/forms",
        access: Access::Authenticated,
        summary: "Forms the caller may open: its organization's and the GLOBAL ones (administrators also see inactive forms)",
    },
    Route {
        id: "forms.create",
        method: "POST",
        path: "/api/forms",
        access: Access::PlatformAdmin,
        summary: "Create a form (orgId absent = the request's scope)",
    },
    Route {
        id: "forms.import",
        method: "POST",
        path: "/api/forms/import",
        access: Access::PlatformAdmin,
        summary: "Import the workspace's *.form.json files now (also done at start-up and periodically)",
    },
    Route {
        id: "forms.get",
        method: "GET",
        path: "/api/forms/{formId}",
        access: Access::Public,
        summary: "One form, if the caller may open it (its access level decides)",
    },
    Route {
        id: "forms.update",
        method: "PUT",
        path: "/api/forms/{formId}",
        access: Access::PlatformAdmin,
        summary: "Replace a form's editable properties (workspace forms are read-only: 409)",
    },
    Route {
        id: "forms.delete",
        method: "DELETE",
        path: "/api/forms/{formId}",
        access: Access::PlatformAdmin,
        summary: "Delete a form (workspace forms are read-only: 409)",
    },
    Route {
        id: "forms.validate",
        method: "POST",
        path: "/api/forms/{formId}/validate",
        access: Access::Public,
        summary: "Validate {formData} against the whole form or one step (?step=N, 0-based): the cleaned values or 400 listing every invalid field",
    },
    Route {
        id: "forms.startupGet",
        method: "GET",
        path: "/api/forms/{formId}/startup",
        access: Access::Public,
        summary: "Run the form's launch workflow (allowed query parameters as inputs): {result}",
    },
    Route {
        id: "forms.startupPost",
        method: "POST",
        path: "/api/forms/{formId}/startup",
        access: Access::Public,
        summary: "Run the form's launch workflow with {formData, query}: {result}",
    },
    Route {
        id: "forms.dataProvider",
        method: "POST",
        path: "/api/forms/{formId}/data-providers/{providerName}",
        access: Access::Public,
        summary: "Options of a field's data provider {inputs?, formData?, query?, noCache?, field?}: {provider, options, cached, cacheExpiresAt}",
    },
    Route {
        id: "forms.upload",
        method: "POST",
        path: "/api/forms/{formId}/files",
        access: Access::Public,
        summary: "Upload a file for a file field (?field=&fileName=, raw body, Content-Type): the file reference to submit",
    },
    Route {
        id: "forms.execute",
        method: "POST",
        path: "/api/forms/{formId}/execute",
        access: Access::Public,
        summary: "Submit {formData}: validated, then the linked workflow runs (sync result, or 202 with its status URL)",
    },
    Route {
        id: "forms.workflowForm",
        method: "GET",
        path: "/api/workflows/{workflowName}/form",
        access: Access::Authenticated,
        summary: "A form generated from a workflow's parameters",
    },
];

/// How long a launch workflow's result is reused by validation, providers and submission.
pub const LAUNCH_TTL: Duration = Duration::from_secs(300);
const LAUNCH_CACHE_MAX: usize = 10_000;

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

pub fn routes(state: Arc<ApiState>) -> BoxedFilter<(Response,)> {
    let limit = state.settings.max_body_bytes;

    let list = warp::path!("api" / "forms")
        .and(warp::get())
        .and(guard(state.clone(), "forms.list"))
        .and(with_state(state.clone()))
        .then(|ctx, state: Arc<ApiState>| async move { respond(list(&state, &ctx).await) })
        .boxed();

    let create = warp::path!("api" / "forms")
        .and(warp::post())
        .and(guard(state.clone(), "forms.create"))
        .and(body::json::<FormInput>(limit))
        .and(with_state(state.clone()))
        .then(|ctx, input, state: Arc<ApiState>| async move {
            respond(create(&state, &ctx, input).await)
        })
        .boxed();

    let import = warp::path!("api" / "forms" / "import")
        .and(warp::post())
        .and(guard(state.clone(), "forms.import"))
        .and(with_state(state.clone()))
        .then(|ctx, state: Arc<ApiState>| async move { respond(import(&state, &ctx).await) })
        .boxed();

    let get = warp::path!("api" / "forms" / String)
        .and(warp::get())
        .and(public_request())
        .and(with_state(state.clone()))
        .then(
            |id: String, req: PublicRequest, state: Arc<ApiState>| async move {
                respond(get(&state, &id, req).await)
            },
        )
        .boxed();

    let update = warp::path!("api" / "forms" / String)
        .and(warp::put())
        .and(guard(state.clone(), "forms.update"))
        .and(body::json::<FormInput>(limit))
        .and(with_state(state.clone()))
        .then(|id: String, ctx, input, state: Arc<ApiState>| async move {
            respond(update(&state, &ctx, &id, input).await)
        })
        .boxed();

    let delete = warp::path!("api" / "forms" / String)
        .and(warp::delete())
        .and(guard(state.clone(), "forms.delete"))
        .and(with_state(state.clone()))
        .then(|id: String, ctx, state: Arc<ApiState>| async move {
            respond(delete(&state, &ctx, &id).await)
        })
        .boxed();

    let validate = warp::path!("api" / "forms" / String / "validate")
        .and(warp::post())
        .and(public_request())
        .and(with_state(state.clone()))
        .then(
            |id: String, req: PublicRequest, state: Arc<ApiState>| async move {
                respond(validate(&state, &id, req).await)
            },
        )
        .boxed();

    let startup = warp::path!("api" / "forms" / String / "startup")
        .and(warp::get().or(warp::post()).unify())
        .and(public_request())
        .and(with_state(state.clone()))
        .then(
            |id: String, req: PublicRequest, state: Arc<ApiState>| async move {
                respond(startup(&state, &id, req).await)
            },
        )
        .boxed();

    let provider = warp::path!("api" / "forms" / String / "data-providers" / String)
        .and(warp::post())
        .and(public_request())
        .and(with_state(state.clone()))
        .then(
            |id: String, name: String, req: PublicRequest, state: Arc<ApiState>| async move {
                respond(data_provider(&state, &id, &name, req).await)
            },
        )
        .boxed();

    let upload = warp::path!("api" / "forms" / String / "files")
        .and(warp::post())
        .and(public_request())
        .and(with_state(state.clone()))
        .then(
            |id: String, req: PublicRequest, state: Arc<ApiState>| async move {
                respond(upload(&state, &id, req).await)
            },
        )
        .boxed();

    let execute = warp::path!("api" / "forms" / String / "execute")
        .and(warp::post())
        .and(public_request())
        .and(with_state(state.clone()))
        .then(
            |id: String, req: PublicRequest, state: Arc<ApiState>| async move {
                respond(execute(&state, &id, req).await)
            },
        )
        .boxed();

    let workflow_form = warp::path!("api" / "workflows" / String / "form")
        .and(warp::get())
        .and(guard(state.clone(), "forms.workflowForm"))
        .and(with_state(state))
        .then(|name: String, _ctx, state: Arc<ApiState>| async move {
            respond(workflow_form(&state, &name))
        })
        .boxed();
    crate::http::one_of(
        list,
        [
            create,
            import,
            get,
            update,
            delete,
            validate,
            startup,
            provider,
            upload,
            execute,
            workflow_form,
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Access

/// A form the caller may use, and how.
struct Opened {
    ctx: RequestContext,
    stored: Arc<StoredForm>,
    /// The scope this request's runs, provider calls, caches and uploads act in.
    run_scope: Scope,
    /// Sees inactive forms and may call any provider (see the module documentation).
    manager: bool,
}

impl Opened {
    fn form(&self) -> &Form {
        &self.stored.form
    }

    fn is_function_key(&self) -> bool {
        matches!(self.ctx.principal, Principal::FunctionKey { .. })
    }
}

fn is_manager_principal(ctx: &RequestContext) -> bool {
    ctx.is_platform_admin() || matches!(ctx.principal, Principal::FunctionKey { .. })
}

/// Loads form `id` and applies the access rules of the module documentation.
async fn open_form(state: &ApiState, ctx: RequestContext, id: &str) -> Result<Opened, ApiError> {
    let not_found = || ApiError::NotFound(format!("form '{id}' not found"));
    let stored = state
        .services
        .forms
        .get(id)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    let form = &stored.form;
    let platform = ctx.is_platform_admin();
    let (home, key) = match &ctx.principal {
        Principal::OrgUser { org, .. } => (Some(org), false),
        Principal::FunctionKey {
            scope: Scope::Org(org),
            ..
        } => (Some(org), true),
        Principal::FunctionKey { .. } => (None, true),
        _ => (None, false),
    };
    let in_reach = platform
        || match &stored.scope {
            Scope::Global => true,
            Scope::Org(org) => home == Some(org),
        };
    let manager = platform || (key && in_reach);
    if !manager {
        if !form.is_active {
            return Err(not_found());
        }
        if form.access_level != AccessLevel::Public {
            if !ctx.principal.is_authenticated() {
                return Err(ApiError::Unauthorized("sign in to open this form".into()));
            }
            if !in_reach {
                return Err(not_found());
            }
        }
        if form.access_level == AccessLevel::RoleBased {
            let granted = match &ctx.principal {
                Principal::OrgUser { org, user_id, .. } => {
                    has_form_role(state, org, user_id, &form.id).await?
                }
                _ => false,
            };
            if !granted {
                return Err(ApiError::Forbidden(
                    "none of your roles grants this form".into(),
                ));
            }
        }
    }
    let run_scope = match &stored.scope {
        Scope::Org(org) => Scope::Org(org.clone()),
        Scope::Global => ctx.scope.clone(),
    };
    Ok(Opened {
        ctx,
        stored,
        run_scope,
        manager,
    })
}

/// Whether one of the user's active roles in `org` is assigned to the form.
async fn has_form_role(
    state: &ApiState,
    org: &OrgId,
    user_id: &str,
    form_id: &str,
) -> Result<bool, ApiError> {
    let (Ok(user), Ok(form)) = (UserId::parse(user_id), FormId::parse(form_id)) else {
        return Ok(false);
    };
    let roles = &state.services.roles;
    let mine: HashSet<String> = roles
        .roles_of_user(org, &user)
        .await?
        .into_iter()
        .filter(|r| r.is_active)
        .map(|r| r.id.to_string())
        .collect();
    if mine.is_empty() {
        return Ok(false);
    }
    Ok(roles
        .roles_of_form(org, &form)
        .await?
        .iter()
        .any(|r| mine.contains(r.id.as_str())))
}

/// The ids of the forms the user's active roles in `org` grant.
async fn granted_forms(
    state: &ApiState,
    org: &OrgId,
    user_id: &str,
) -> Result<HashSet<String>, ApiError> {
    let Ok(user) = UserId::parse(user_id) else {
        return Ok(HashSet::new());
    };
    let roles = &state.services.roles;
    let mut granted = HashSet::new();
    for role in roles.roles_of_user(org, &user).await? {
        if role.is_active {
            for form in roles.forms_of_role(org, &role.id).await? {
                granted.insert(form.to_string());
            }
        }
    }
    Ok(granted)
}

fn store_error(e: FormStoreError) -> ApiError {
    match e {
        FormStoreError::Store(e) => e.into(),
        e @ (FormStoreError::ReadOnly { .. } | FormStoreError::Exists(_)) => {
            ApiError::Conflict(e.to_string())
        }
        e @ FormStoreError::TooLarge { .. } => ApiError::bad_request("formSchema", e.to_string()),
        e @ FormStoreError::InvalidId(_) => ApiError::bad_request("formId", e.to_string()),
        e @ FormStoreError::Corrupt { .. } => ApiError::Internal(e.to_string()),
    }
}

fn field_errors(errors: Vec<FieldError>) -> ApiError {
    ApiError::invalid_fields(errors.into_iter().map(|e| (e.field, e.message)))
}

fn issues_error(issues: Vec<FieldIssue>) -> ApiError {
    ApiError::invalid_fields(issues.into_iter().map(|i| (i.field, i.message)))
}

/// An optional JSON body: empty means `T::default()`.
fn parse_body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid_json(&e))
}

/// The form's `allowedQueryParams` found in the request's query string and in `sent` (the
/// parameters the page was opened with). `code` (a function key) never counts.
fn allowed_query(form: &Form, raw: &str, sent: &Map<String, Value>) -> Map<String, Value> {
    let allowed = form.allowed_query_params.as_deref().unwrap_or_default();
    let ok = |k: &str| k != "code" && allowed.iter().any(|a| a == k);
    let mut query = Map::new();
    for (k, v) in sent {
        if ok(k) {
            query.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if ok(&k) {
            query.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    query
}

// ---------------------------------------------------------------------------------------------
// CRUD

async fn list(state: &ApiState, ctx: &RequestContext) -> Result<Response, ApiError> {
    let forms = state
        .services
        .forms
        .list(&ctx.scope)
        .await
        .map_err(store_error)?;
    let forms: Vec<Form> = if is_manager_principal(ctx) {
        forms.iter().map(|f| f.form.clone()).collect()
    } else {
        let granted = match &ctx.principal {
            Principal::OrgUser { org, user_id, .. } => granted_forms(state, org, user_id).await?,
            _ => HashSet::new(),
        };
        forms
            .iter()
            .map(|f| &f.form)
            .filter(|f| {
                f.is_active
                    && match f.access_level {
                        AccessLevel::Public | AccessLevel::Authenticated => true,
                        AccessLevel::RoleBased => granted.contains(&f.id),
                    }
            })
            .cloned()
            .collect()
    };
    Ok(json_response(StatusCode::OK, &FormList { forms }))
}

/// The definition checks of a save, plus: the workflows and data providers the form names
/// exist in the workspace. Every problem is listed.
fn check_definition(state: &ApiState, input: &FormInput) -> Result<(), ApiError> {
    let mut issues = input.check().err().unwrap_or_default();
    let registry = state.runner.registry();
    let linked = input.linked_workflow.trim();
    if !linked.is_empty() && registry.workflow(linked).is_none() {
        issues.push(FieldIssue::new(
            "linkedWorkflow",
            format!("workflow '{linked}' is not in the workspace"),
        ));
    }
    if let Some(launch) = input.launch_workflow_id.as_deref()
        && !launch.trim().is_empty()
        && registry.workflow(launch).is_none()
    {
        issues.push(FieldIssue::new(
            "launchWorkflowId",
            format!("workflow '{launch}' is not in the workspace"),
        ));
    }
    for (path, field) in located_fields(&input.form_schema) {
        if let Some(provider) = field.data_provider.as_deref()
            && registry.data_provider(provider).is_none()
        {
            issues.push(FieldIssue::new(
                format!("{path}.dataProvider"),
                format!("data provider '{provider}' is not in the workspace"),
            ));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues_error(issues))
    }
}

/// Every field with its JSON path (`formSchema.fields[i]` or `formSchema.steps[s].fields[i]`).
fn located_fields(schema: &FormSchema) -> Vec<(String, &crate::forms::model::FormField)> {
    let mut located: Vec<_> = schema
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("formSchema.fields[{i}]"), f))
        .collect();
    for (s, step) in schema.steps.iter().flatten().enumerate() {
        located.extend(
            step.fields
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("formSchema.steps[{s}].fields[{i}]"), f)),
        );
    }
    located
}

/// Where a new form goes: `orgId` (`GLOBAL` or an existing organization), else `GLOBAL` when
/// `isGlobal` is true, else the request's scope.
async fn target_scope(
    state: &ApiState,
    ctx: &RequestContext,
    input: &FormInput,
) -> Result<Scope, ApiError> {
    let scope = match input.org_id.as_deref().map(str::trim) {
        None | Some("") if input.is_global == Some(true) => Scope::Global,
        None | Some("") => ctx.scope.clone(),
        Some(raw) => {
            Scope::parse(raw).map_err(|e| ApiError::bad_request("orgId", e.to_string()))?
        }
    };
    if let Scope::Org(org) = &scope
        && state.services.orgs.find(org).await?.is_none()
    {
        return Err(ApiError::bad_request(
            "orgId",
            format!("organization '{org}' does not exist"),
        ));
    }
    if input.is_global == Some(true) && scope != Scope::Global {
        return Err(ApiError::bad_request(
            "isGlobal",
            "is true but orgId names an organization; use orgId GLOBAL",
        ));
    }
    Ok(scope)
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
    let scope = target_scope(state, ctx, &input).await?;
    let now = OffsetDateTime::now_utc();
    let mut form = input.into_form(
        uuid::Uuid::new_v4().to_string(),
        scope.to_string(),
        ctx.actor(),
        now,
    );
    form.is_global = scope == Scope::Global;
    let stored = state
        .services
        .forms
        .create(form)
        .await
        .map_err(store_error)?;
    audit(state, audit_form(ctx, &scope, "create", &stored.form.id)).await;
    Ok(json_response(StatusCode::CREATED, &stored.form))
}

async fn import(state: &ApiState, ctx: &RequestContext) -> Result<Response, ApiError> {
    let report = state
        .services
        .forms
        .import_workspace(&state.settings.workspace)
        .await
        .map_err(store_error)?;
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

async fn get(state: &ApiState, id: &str, req: PublicRequest) -> Result<Response, ApiError> {
    let ctx = req.authorize(state, "forms.get").await?;
    let opened = open_form(state, ctx, id).await?;
    Ok(json_response(StatusCode::OK, opened.form()))
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
            other => store_error(other),
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
    if current.is_read_only() {
        return Err(store_error(FormStoreError::ReadOnly {
            id: id.to_owned(),
            file: match &current.source {
                crate::forms::store::FormSource::Workspace { file } => file.clone(),
                crate::forms::store::FormSource::Api => String::new(),
            },
        }));
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
    let stored = state
        .services
        .forms
        .replace(&current, form)
        .await
        .map_err(store_error)?;
    audit(state, audit_form(ctx, &current.scope, "update", id)).await;
    Ok(json_response(StatusCode::OK, &stored.form))
}

async fn delete(state: &ApiState, ctx: &RequestContext, id: &str) -> Result<Response, ApiError> {
    let current = current(state, id).await?;
    state
        .services
        .forms
        .delete(&current)
        .await
        .map_err(store_error)?;
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
// Launch workflows

fn launches() -> &'static TtlCache<String, Value> {
    static CACHE: OnceLock<TtlCache<String, Value>> = OnceLock::new();
    CACHE.get_or_init(|| TtlCache::new(LAUNCH_TTL, LAUNCH_CACHE_MAX))
}

/// Whether a visibility expression of the form reads `context.workflow`.
fn reads_launch_result(form: &Form) -> bool {
    form.launch_workflow_id.is_some()
        && form.form_schema.all_fields().any(|f| {
            f.visibility_expression
                .as_deref()
                .is_some_and(|e| e.contains("workflow"))
        })
}

/// The launch workflow's result for this caller (`null` without one). `fresh` runs it even
/// when a recent result is known.
async fn launch_result(
    state: &ApiState,
    opened: &Opened,
    values: &Map<String, Value>,
    query: &Map<String, Value>,
    fresh: bool,
) -> Result<Value, ApiError> {
    let form = opened.form();
    let Some(name) = form
        .launch_workflow_id
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    else {
        return Ok(Value::Null);
    };
    let runner = state.runner.clone();
    let Some(workflow) = runner.workflow(name) else {
        return Err(ApiError::WorkflowFailed(format!(
            "the form's launch workflow '{name}' is not in the workspace"
        )));
    };
    let mut inputs = form.default_launch_params.clone().unwrap_or_default();
    inputs.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
    inputs.extend(query.iter().map(|(k, v)| (k.clone(), v.clone())));
    inputs.retain(|k, _| workflow.parameters.iter().any(|p| p.name == *k));
    let key = format!(
        "{}|{}|{}|{}",
        form.id,
        opened.run_scope,
        opened.ctx.actor(),
        cache_key(name, &inputs)
    );
    if !fresh && let Some(hit) = launches().get(&key) {
        return Ok(hit);
    }
    let (workflow, input) = runner
        .prepare(name, inputs, Coercion::FromStrings)
        .map_err(|e| run_error(e, "launchInputs."))?;
    let ctx = &opened.ctx;
    let mut request = RunRequest::new(
        workflow,
        input,
        opened.run_scope.clone(),
        caller_of(&ctx.principal),
        ctx.actor(),
    );
    request.is_platform_admin = ctx.is_platform_admin();
    request.is_function_key = opened.is_function_key();
    request.form_id = Some(form.id.clone());
    let finished = runner
        .run(request, true)
        .await
        .map_err(|e| run_error(e, "launchInputs."))?;
    let outcome = &finished.outcome;
    match outcome.status {
        ExecutionStatus::Success | ExecutionStatus::CompletedWithErrors => {
            let result = outcome.result.clone().unwrap_or(Value::Null);
            launches().put(key, result.clone());
            Ok(result)
        }
        _ => Err(workspace_failure(
            &format!("the form's launch workflow '{name}'"),
            outcome,
            ctx.is_platform_admin(),
        )),
    }
}

/// A 502 for failed workspace code: administrators see the exception type and message, others a
/// `UserError`'s message or a generic text. Never the traceback.
fn workspace_failure(what: &str, outcome: &ExecutionOutcome, admin: bool) -> ApiError {
    let error: Option<&ExecutionError> = outcome.error.as_ref();
    if let Some(e) = error {
        tracing::warn!(what, error_type = %e.error_type, message = %e.message, "workspace code failed");
    }
    let detail = match (outcome.status, error) {
        (ExecutionStatus::Timeout, _) => "it timed out".to_owned(),
        (ExecutionStatus::Cancelled, _) => "it was cancelled".to_owned(),
        (_, Some(e)) if admin => format!("{}: {}", e.error_type, e.message),
        (_, Some(e)) if e.is_user_error => e.message.clone(),
        _ => "an error occurred; an administrator can see the details in the logs".to_owned(),
    };
    ApiError::WorkflowFailed(format!("{what} failed: {detail}"))
}

async fn startup(state: &ApiState, id: &str, req: PublicRequest) -> Result<Response, ApiError> {
    let get = req.method == Method::GET;
    let route = if get {
        "forms.startupGet"
    } else {
        "forms.startupPost"
    };
    let ctx = req.authorize(state, route).await?;
    let opened = open_form(state, ctx, id).await?;
    let raw_query = req.query.clone();
    let request: SubmitRequest = if get {
        SubmitRequest::default()
    } else {
        parse_body(&req.body(state, &opened.ctx).await?)?
    };
    let query = allowed_query(opened.form(), &raw_query, &request.query);
    let result = launch_result(state, &opened, &request.form_data, &query, true).await?;
    Ok(json_response(StatusCode::OK, &StartupResult { result }))
}

// ---------------------------------------------------------------------------------------------
// Validation and submission

async fn validate(state: &ApiState, id: &str, req: PublicRequest) -> Result<Response, ApiError> {
    let ctx = req.authorize(state, "forms.validate").await?;
    let opened = open_form(state, ctx, id).await?;
    let raw_query = req.query.clone();
    let body = req.body(state, &opened.ctx).await?;
    let raw_query = raw_query.as_str();
    let mut step = None;
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        if k == "step" {
            step = Some(v.trim().parse::<usize>().map_err(|_| {
                ApiError::bad_request("step", "must be a step number (0 is the first step)")
            })?);
        }
    }
    let request: SubmitRequest = parse_body(&body)?;
    let form = opened.form();
    let query = allowed_query(form, raw_query, &request.query);
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
    let launch = if reads_launch_result(form) {
        launch_result(state, &opened, &request.form_data, &query, false).await?
    } else {
        Value::Null
    };
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

async fn execute(state: &ApiState, id: &str, req: PublicRequest) -> Result<Response, ApiError> {
    let ctx = req.authorize(state, "forms.execute").await?;
    let opened = open_form(state, ctx, id).await?;
    let raw_query = req.query.clone();
    let request: SubmitRequest = parse_body(&req.body(state, &opened.ctx).await?)?;
    let form = opened.form();
    let query = allowed_query(form, &raw_query, &request.query);
    let launch = if reads_launch_result(form) {
        launch_result(state, &opened, &request.form_data, &query, false).await?
    } else {
        Value::Null
    };
    let values = opened
        .stored
        .validator()
        .validate(&request.form_data, &launch, &query)
        .map_err(field_errors)?;
    hand_over_files(state, &opened, &values).await?;
    let runner = state.runner.clone();
    let (workflow, input) = runner
        .prepare(&form.linked_workflow, values, Coercion::FromStrings)
        .map_err(|e| run_error(e, ""))?;
    let ctx = &opened.ctx;
    let mut run = RunRequest::new(
        workflow,
        input,
        opened.run_scope.clone(),
        caller_of(&ctx.principal),
        ctx.actor(),
    );
    run.is_platform_admin = ctx.is_platform_admin();
    run.is_function_key = opened.is_function_key();
    run.form_id = Some(form.id.clone());
    start_run(&runner, run, ctx.is_platform_admin()).await
}

/// Checks every submitted file against its upload and copies it where the workflow's SDK reads
/// it (`forms::files`).
async fn hand_over_files(
    state: &ApiState,
    opened: &Opened,
    values: &Map<String, Value>,
) -> Result<(), ApiError> {
    let uploads = &state.services.uploads;
    let form = opened.form();
    let mut errors = Vec::new();
    let mut found = Vec::new();
    for field in form
        .form_schema
        .all_fields()
        .filter(|f| f.field_type == FieldType::File)
    {
        let Some(value) = values.get(&field.name) else {
            continue;
        };
        for file in file_refs(value) {
            match uploads.verify(&opened.run_scope, &form.id, &file).await? {
                Ok(path) => found.push((file, path)),
                Err(message) => errors.push((field.name.clone(), message)),
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    for (file, path) in found {
        uploads
            .materialize(&state.services.files, &opened.run_scope, &file, &path)
            .await
            .map_err(upload_error)?;
    }
    Ok(())
}

fn upload_error(e: UploadError) -> ApiError {
    match e {
        UploadError::Store(e) => e.into(),
        UploadError::Rejected(message) => ApiError::UnsupportedMediaType(message),
        UploadError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
        e @ UploadError::NotAFileField(_) => ApiError::bad_request("field", e.to_string()),
    }
}

async fn upload(state: &ApiState, id: &str, req: PublicRequest) -> Result<Response, ApiError> {
    let ctx = req.authorize(state, "forms.upload").await?;
    let opened = open_form(state, ctx, id).await?;
    let raw_query = req.query.clone();
    let headers = req.headers.clone();
    let (mut field_name, mut file_name) = (None, None);
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match k.as_ref() {
            "field" => field_name = Some(v.into_owned()),
            "fileName" | "file_name" => file_name = Some(v.into_owned()),
            _ => {}
        }
    }
    let field_name = field_name
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("field", "the file field's name is required"))?;
    let file_name = file_name
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("fileName", "the file's name is required"))?;
    let form = opened.form();
    let field = form
        .form_schema
        .field(&field_name)
        .filter(|f| f.field_type == FieldType::File)
        .ok_or_else(|| upload_error(UploadError::NotAFileField(field_name.clone())))?;
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let limit = Uploads::limit(field).min(MAX_UPLOAD_BYTES);
    let body = req.upload(state, &opened.ctx, limit).await?;
    let file: FileRef = state
        .services
        .uploads
        .save(
            &opened.run_scope,
            &form.id,
            field,
            &file_name,
            content_type,
            body,
        )
        .await
        .map_err(upload_error)?;
    Ok(json_response(StatusCode::CREATED, &file))
}

// ---------------------------------------------------------------------------------------------
// Data providers

async fn data_provider(
    state: &ApiState,
    id: &str,
    name: &str,
    req: PublicRequest,
) -> Result<Response, ApiError> {
    let ctx = req.authorize(state, "forms.dataProvider").await?;
    let opened = open_form(state, ctx, id).await?;
    let raw_query = req.query.clone();
    let raw_query = raw_query.as_str();
    let request: ProviderRequest = parse_body(&req.body(state, &opened.ctx).await?)?;
    let form = opened.form();
    let using: Vec<_> = form
        .form_schema
        .all_fields()
        .filter(|f| f.data_provider.as_deref() == Some(name))
        .collect();
    let field = match &request.field {
        Some(wanted) => Some(
            using
                .iter()
                .find(|f| f.name == *wanted)
                .copied()
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "field",
                        format!(
                            "field '{wanted}' of this form does not use data provider '{name}'"
                        ),
                    )
                })?,
        ),
        None => using.first().copied(),
    };
    if field.is_none() && !opened.manager {
        return Err(ApiError::NotFound(format!(
            "no field of form '{id}' uses data provider '{name}'"
        )));
    }
    let registry = state.runner.registry();
    let provider: &DataProviderInfo = registry
        .data_provider(name)
        .ok_or_else(|| ApiError::NotFound(format!("data provider '{name}' not found")))?;

    let config = field.and_then(|f| f.data_provider_inputs.as_ref());
    let query = allowed_query(form, raw_query, &request.query);
    let launch = if needs_launch_result(config) {
        launch_result(state, &opened, &request.form_data, &query, false).await?
    } else {
        Value::Null
    };
    let context = InputContext {
        values: &request.form_data,
        launch: &launch,
        query: &query,
    };
    let inputs =
        resolve_inputs(config, &context, &request.inputs, opened.manager).map_err(field_errors)?;
    let inputs = check_parameters(provider, inputs).map_err(field_errors)?;

    let cache = &state.services.provider_cache;
    let ttl = provider.cache_ttl_seconds;
    // A provider sees its caller: one caller's answer is not another's, unless the provider
    // declared that it does not look (the organization is the cache's partition already).
    let caller = caller_of(&opened.ctx.principal);
    let cache_caller = CacheCaller {
        user_id: &caller.user_id,
        is_platform_admin: opened.ctx.is_platform_admin(),
    };
    let key = caller_cache_key(
        name,
        &inputs,
        (!provider.caller_independent).then_some(&cache_caller),
    );
    let now = OffsetDateTime::now_utc();
    if ttl > 0 && !request.no_cache {
        match cache.get(&opened.run_scope, &key, now).await {
            Ok(Some(hit)) => {
                return Ok(provider_response(
                    name,
                    hit.options,
                    true,
                    Some(hit.expires_at),
                ));
            }
            Ok(None) => {}
            // The cache is an optimization: a storage hiccup costs a provider run, not the answer.
            Err(e) => {
                tracing::warn!(error = %e, provider = name, "data provider cache read failed")
            }
        }
    }

    let ctx = &opened.ctx;
    let context = ExecutionContextInfo {
        caller: caller_of(&ctx.principal),
        organization: organization(state, &opened.run_scope).await?,
        is_platform_admin: ctx.is_platform_admin(),
        is_function_key: opened.is_function_key(),
    };
    let outcome = state
        .runner
        .run_data_provider(name, inputs, context)
        .await
        .map_err(|e| match e {
            RunError::Engine(EngineError::DataProviderNotFound(_)) => {
                ApiError::NotFound(format!("data provider '{name}' not found"))
            }
            other => ApiError::Unavailable {
                reason: other.to_string(),
                retry_after: Duration::from_secs(5),
            },
        })?;
    let what = format!("data provider '{name}'");
    if outcome.status != ExecutionStatus::Success {
        return Err(workspace_failure(&what, &outcome, ctx.is_platform_admin()));
    }
    let options = outcome.options().ok_or_else(|| {
        ApiError::WorkflowFailed(format!(
            "{what} failed: it did not return a list of {{label, value}} options"
        ))
    })?;
    let mut expires = None;
    if ttl > 0 {
        // Whole seconds: what is stored is what is answered, on every backend.
        let at = OffsetDateTime::from_unix_timestamp(now.unix_timestamp() + i64::from(ttl))
            .unwrap_or(now);
        match cache.put(&opened.run_scope, &key, name, &options, at).await {
            Ok(true) => expires = Some(at),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, provider = name, "data provider cache write failed")
            }
        }
    }
    Ok(provider_response(name, options, false, expires))
}

fn provider_response(
    name: &str,
    options: Vec<bifrost_engine::DataProviderOption>,
    cached: bool,
    expires: Option<OffsetDateTime>,
) -> Response {
    json_response(
        StatusCode::OK,
        &ProviderResult {
            provider: name.to_owned(),
            options: options
                .into_iter()
                .map(|o| OptionDto {
                    label: o.label,
                    value: o.value,
                    metadata: o.metadata,
                })
                .collect(),
            cached,
            cache_expires_at: expires.map(timestamp),
        },
    )
}

/// The engine's view of the organization a provider runs for (`None` = GLOBAL).
async fn organization(state: &ApiState, scope: &Scope) -> Result<Option<Organization>, ApiError> {
    let Some(org) = scope.org_id() else {
        return Ok(None);
    };
    Ok(Some(match state.services.orgs.find(org).await? {
        Some(o) => Organization {
            id: o.id.to_string(),
            name: o.name,
            is_active: o.is_active,
        },
        None => Organization {
            id: org.to_string(),
            name: org.to_string(),
            is_active: false,
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// Workspace import

// ---------------------------------------------------------------------------------------------
// OpenAPI

/// This module's entries of the OpenAPI registry (`http::openapi::specs`).
pub fn openapi_specs() -> Vec<(&'static str, OperationSpec)> {
    type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;
    let form = || -> Vec<(u16, &'static str, Option<SchemaFn>)> {
        vec![(200, "The form", Some(|g| g.subschema_for::<Form>()))]
    };
    vec![
        (
            "forms.list",
            OperationSpec {
                query: vec![],
                request: None,
                success: vec![(200, "The forms", Some(|g| g.subschema_for::<FormList>()))],
                errors: &[],
            },
        ),
        (
            "forms.create",
            OperationSpec {
                query: vec![],
                request: Some(|g| g.subschema_for::<FormInput>()),
                success: vec![(201, "Created", Some(|g| g.subschema_for::<Form>()))],
                errors: &[409],
            },
        ),
        (
            "forms.import",
            OperationSpec {
                query: vec![],
                request: None,
                success: vec![(
                    200,
                    "What changed",
                    Some(|g| g.subschema_for::<ImportResult>()),
                )],
                errors: &[],
            },
        ),
        (
            "forms.get",
            OperationSpec {
                query: vec![],
                request: None,
                success: form(),
                errors: &[401, 403],
            },
        ),
        (
            "forms.update",
            OperationSpec {
                query: vec![],
                request: Some(|g| g.subschema_for::<FormInput>()),
                success: form(),
                errors: &[409, 412],
            },
        ),
        (
            "forms.delete",
            OperationSpec {
                query: vec![],
                request: None,
                success: vec![(204, "Deleted", None)],
                errors: &[409],
            },
        ),
        (
            "forms.validate",
            OperationSpec {
                query: vec![QueryParam {
                    name: "step",
                    description: "Validate only this step (0-based); absent = the whole form",
                    schema: serde_json::json!({ "type": "integer", "minimum": 0 }),
                }],
                request: Some(|g| g.subschema_for::<SubmitRequest>()),
                success: vec![(
                    200,
                    "Valid: the values the workflow would receive",
                    Some(|g| g.subschema_for::<ValidationResult>()),
                )],
                errors: &[401, 403, 502],
            },
        ),
        (
            "forms.startupGet",
            OperationSpec {
                query: vec![],
                request: None,
                success: vec![(
                    200,
                    "The launch result",
                    Some(|g| g.subschema_for::<StartupResult>()),
                )],
                errors: &[401, 403, 502],
            },
        ),
        (
            "forms.startupPost",
            OperationSpec {
                query: vec![],
                request: Some(|g| g.subschema_for::<SubmitRequest>()),
                success: vec![(
                    200,
                    "The launch result",
                    Some(|g| g.subschema_for::<StartupResult>()),
                )],
                errors: &[401, 403, 502],
            },
        ),
        (
            "forms.dataProvider",
            OperationSpec {
                query: vec![],
                request: Some(|g| g.subschema_for::<ProviderRequest>()),
                success: vec![(
                    200,
                    "The options",
                    Some(|g| g.subschema_for::<ProviderResult>()),
                )],
                errors: &[401, 403, 502],
            },
        ),
        (
            "forms.upload",
            OperationSpec {
                query: vec![
                    QueryParam {
                        name: "field",
                        description: "The file field's name",
                        schema: serde_json::json!({ "type": "string" }),
                    },
                    QueryParam {
                        name: "fileName",
                        description: "The file's name",
                        schema: serde_json::json!({ "type": "string" }),
                    },
                ],
                request: None,
                success: vec![(
                    201,
                    "Stored: submit this reference as the field's value",
                    Some(|g| g.subschema_for::<FileRef>()),
                )],
                errors: &[401, 403, 413, 415],
            },
        ),
        (
            "forms.execute",
            OperationSpec {
                query: vec![],
                request: Some(|g| g.subschema_for::<SubmitRequest>()),
                success: vec![
                    (
                        200,
                        "The run finished",
                        Some(|g| g.subschema_for::<crate::http::run::RunResult>()),
                    ),
                    (
                        202,
                        "Queued (async workflow) or still running; poll statusUrl",
                        Some(|g| g.subschema_for::<crate::http::run::RunAccepted>()),
                    ),
                ],
                errors: &[401, 403, 502],
            },
        ),
        (
            "forms.workflowForm",
            OperationSpec {
                query: vec![],
                request: None,
                success: form(),
                errors: &[],
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(allowed: Option<Vec<&str>>) -> Form {
        let mut f: Form = serde_json::from_value(json!({
            "id": "f", "orgId": "GLOBAL", "name": "F", "linkedWorkflow": "w",
            "formSchema": {"fields": []}, "createdBy": "me",
            "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z"
        }))
        .unwrap();
        f.allowed_query_params = allowed.map(|a| a.into_iter().map(str::to_owned).collect());
        f
    }

    #[test]
    fn only_allowed_query_parameters_count_and_never_the_key() {
        let f = form(Some(vec!["ticket", "code"]));
        let sent = json!({"ticket": "1", "other": "x"});
        let q = allowed_query(&f, "ticket=2&code=secret&step=1", sent.as_object().unwrap());
        assert_eq!(Value::Object(q), json!({"ticket": "2"}));
        assert!(allowed_query(&form(None), "ticket=2", &Map::new()).is_empty());
    }

    #[test]
    fn optional_bodies() {
        let empty: SubmitRequest = parse_body(&Bytes::from_static(b"  ")).unwrap();
        assert!(empty.form_data.is_empty());
        let v1: SubmitRequest =
            parse_body(&Bytes::from_static(br#"{"form_data": {"a": 1}}"#)).unwrap();
        assert_eq!(v1.form_data["a"], 1);
        assert!(parse_body::<SubmitRequest>(&Bytes::from_static(br#"{"nope": 1}"#)).is_err());
        let p: ProviderRequest = parse_body(&Bytes::from_static(
            br#"{"noCache": true, "inputs": {"a": 1}}"#,
        ))
        .unwrap();
        assert!(p.no_cache);
    }

    #[test]
    fn failures_never_show_tracebacks_to_users() {
        let outcome = ExecutionOutcome {
            execution_id: "x".into(),
            status: ExecutionStatus::Failed,
            result: None,
            result_type: None,
            error: Some(ExecutionError {
                error_type: "ValueError".into(),
                message: "db password wrong".into(),
                traceback: "Traceback (most recent call last)".into(),
                is_user_error: false,
            }),
            logs: vec![],
            duration: Duration::ZERO,
        };
        let user = workspace_failure("data provider 'p'", &outcome, false).to_string();
        assert!(
            !user.contains("password") && !user.contains("Traceback"),
            "{user}"
        );
        let admin = workspace_failure("data provider 'p'", &outcome, true).to_string();
        assert!(admin.contains("ValueError: db password wrong") && !admin.contains("Traceback"));
    }
}

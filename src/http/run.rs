//! The entry points that run workflows: `POST /api/workflows/execute` (platform administrators)
//! and `/api/endpoints/{workflowName}` (workflows that opt in with `endpoint_enabled`).
//!
//! Both go through [`crate::executions::Runner`]: input is checked against the workflow's
//! parameters before a record exists, then the run is recorded, audited, executed and completed.
//! Sync runs are awaited up to a budget ([`SYNC_WAIT`]; admins may lower it per request with
//! `?maxWaitSeconds=`); a run that outlives it keeps going and the answer is 202 with its status
//! URL. Async workflows are recorded `Pending` and queued for the worker (`executions::worker`).
//!
//! `/api/endpoints/*` is declared [`Access::Public`] because whether it needs a key depends on
//! the workflow (`public_endpoint`), which the route table cannot know. The handler enforces it:
//! a non-public endpoint needs a Bifrost function key or a workflow API key
//! (`Authorization: Bearer wk_...`, [`crate::http::workflow_keys::authenticate_endpoint`]: 401
//! without a valid one, 403 for a valid key of another workflow or a global key the workflow
//! refuses); the development identity does not count, endpoints are for machine callers. A
//! function-key run is recorded as `api_key:{keyId}` (`Caller::api_key`) so the key sees its
//! own runs in the history; a workflow-key run as `api_key:wk_{keyId}`, in GLOBAL with v1's
//! API-key rights (admin, function key). Public runs act as v1's anonymous webhook caller in
//! GLOBAL, whatever `Authorization` says. Order of checks: 404 (unknown or not
//! endpoint-enabled), 401/403, 405 (with `Allow`), 400 (input).
//!
//! Depends on the runner and the HTTP framework; never on the engine directly.

use std::time::Duration;

use bifrost_engine::{ExecutionError, WorkflowInfo};
use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use crate::auth::Principal;
use crate::executions::input::Coercion;
use crate::executions::{ExecutionStatus, Finished, RunContext, RunError, RunRequest, Runner};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::{RequestContext, take_anonymous, take_token};
use crate::http::endpoint::{Call, Endpoint};
use crate::http::error::{ApiError, json_response, reply};
use crate::http::executions::{GENERIC_ERROR, LogLineDto};
use crate::http::input::{TEXT_PATTERN, existing_scope, timestamp as rfc3339};
use crate::http::workflow_keys;

pub fn endpoints() -> Vec<Endpoint> {
    let mut endpoints = vec![
        Endpoint::post(
            "workflows.execute",
            "/api/workflows/execute",
            Access::PlatformAdmin,
            "Run a workflow: sync workflows answer with the result, async ones are queued",
        )
        .query::<ExecuteQuery>()
        .body::<ExecuteRequest>()
        .ok::<RunResult>("The run finished")
        .accepted::<RunAccepted>(
            "Queued (async workflow) or still running after the wait budget; poll statusUrl",
        )
        .errors(&[404])
        .link(
            "GetExecution",
            "executions.get",
            "executionId",
            EXECUTION_LINK,
        )
        .link("GetLogs", "executions.logs", "executionId", EXECUTION_LINK)
        .link("Cancel", "executions.cancel", "executionId", EXECUTION_LINK)
        .guarded(|state, ctx, mut call| async move {
            let query: ExecuteQuery = call.query()?;
            let body = call.json().await?;
            execute(&state, &ctx, query, body).await
        }),
    ];
    let methods = [
        ("endpoints.get", Endpoint::get as fn(_, _, _, _) -> _),
        ("endpoints.post", Endpoint::post),
        ("endpoints.put", Endpoint::put),
        ("endpoints.delete", Endpoint::delete),
    ];
    for (id, declare) in methods {
        endpoints.push(
            declare(
                id,
                "/api/endpoints/{workflowName}",
                Access::Public,
                "Run an endpoint-enabled workflow (key required unless public)",
            )
            .ok::<RunResult>("The run finished")
            .accepted::<RunAccepted>(
                "Queued (async workflow) or still running after the wait budget; poll statusUrl",
            )
            // 401/403: no valid key, or a workflow key that does not cover this workflow.
            .errors(&[401, 403, 404, 405])
            .public(move |state, call| async move { endpoint(&state, id, call).await }),
        );
    }
    endpoints
}

const EXECUTION_LINK: &str = "$response.body#/executionId";

/// `POST /api/workflows/execute` options.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecuteQuery {
    /// How long a sync run is awaited before the answer becomes 202 (it keeps running).
    #[schemars(range(min = 1, max = MAX_WAIT_SECONDS))]
    max_wait_seconds: Option<u64>,
}

/// How long a sync run is awaited before the answer becomes 202 (the run continues).
pub const SYNC_WAIT: Duration = Duration::from_secs(200);
/// `maxWaitSeconds` may only lower the budget.
pub const MAX_WAIT_SECONDS: u64 = 200;

/// `POST /api/workflows/execute` body (v1's, without scripts: `code`/`scriptName` are not
/// supported and rejected as unknown fields).
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecuteRequest {
    #[schemars(length(min = 1, max = 256), regex(pattern = TEXT_PATTERN))]
    pub workflow_name: String,
    /// The workflow's parameters by name.
    #[serde(default)]
    pub input_data: Option<Map<String, Value>>,
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub form_id: Option<String>,
    /// Run without an execution record (v1 `transient`).
    #[serde(default)]
    pub transient: bool,
}

/// A finished run (v1's sync answer).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub execution_id: String,
    /// `Success`, `Failed`, `CompletedWithErrors`, `Timeout` or `Cancelled`.
    pub status: ExecutionStatus,
    pub result: Option<Value>,
    /// `json`, `html` or `text`.
    pub result_type: Option<String>,
    /// Non-admins: a `UserError`'s message, otherwise a generic text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Python exception class name; platform administrators only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    pub duration_ms: u64,
    /// RFC 3339.
    pub started_at: String,
    pub completed_at: Option<String>,
    pub is_transient: bool,
    /// Captured log lines (`/api/workflows/execute` only; DEBUG/TRACEBACK for admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<Vec<LogLineDto>>,
}

/// A queued run, or a sync run still going after the wait budget.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunAccepted {
    pub execution_id: String,
    /// `Pending` (queued) or `Running`.
    pub status: ExecutionStatus,
    /// Poll this (`GET /api/executions/{executionId}`) for the outcome.
    pub status_url: String,
    pub message: String,
}

async fn execute(
    state: &ApiState,
    ctx: &RequestContext,
    query: ExecuteQuery,
    body: ExecuteRequest,
) -> Result<Response, ApiError> {
    let wait = match query.max_wait_seconds {
        None => SYNC_WAIT,
        Some(seconds) if (1..=MAX_WAIT_SECONDS).contains(&seconds) => Duration::from_secs(seconds),
        Some(_) => {
            return Err(ApiError::bad_request(
                "maxWaitSeconds",
                format!("must be an integer from 1 to {MAX_WAIT_SECONDS}"),
            ));
        }
    };
    if body.workflow_name.trim().is_empty() {
        return Err(ApiError::bad_request("workflowName", "is required"));
    }
    if let Some(form) = &body.form_id
        && (form.is_empty() || form.len() > 64)
    {
        return Err(ApiError::bad_request(
            "formId",
            "must be 1 to 64 characters",
        ));
    }
    let runner = state.runner.clone();
    let (workflow, input) = runner
        .prepare(
            &body.workflow_name,
            body.input_data.unwrap_or_default(),
            Coercion::Strict,
        )
        .map_err(|e| run_error(e, "inputData."))?;
    let scope = existing_scope(state, ctx).await?;
    let mut request = RunRequest::new(
        workflow.clone(),
        input,
        RunContext::of_principal(&ctx.principal, scope),
    );
    request.form_id = body.form_id;
    if Runner::is_async(&workflow) && !body.transient {
        let record = runner
            .enqueue(&request)
            .await
            .map_err(|e| run_error(e, ""))?;
        return Ok(accepted(
            &record.execution_id,
            ExecutionStatus::Pending,
            "queued",
        ));
    }
    let answer = Answer {
        wait,
        detail: Detail::Admin,
        with_logs: true,
    };
    let recording = if body.transient {
        Recording::Transient
    } else {
        Recording::Recorded
    };
    run_sync(&runner, request, recording, answer).await
}

async fn endpoint(state: &ApiState, route_id: &str, mut call: Call) -> Result<Response, ApiError> {
    let ctx = call.authorize(state, route_id).await?;
    let name = call.param("workflowName").to_owned();
    let name = name.as_str();
    let runner = state.runner.clone();
    let not_found = || ApiError::NotFound(format!("endpoint '{name}' not found"));
    let workflow = runner.workflow(name).ok_or_else(not_found)?;
    if !workflow.endpoint_enabled {
        return Err(not_found());
    }
    // A function key wins (`authorize` already checked it); a public endpoint ignores any
    // `Authorization` header (third-party webhooks send their own); otherwise a workflow key,
    // checked before the body is read.
    let workflow_key = match &ctx.principal {
        Principal::FunctionKey { .. } => None,
        _ if workflow.public_endpoint => {
            if !ctx.principal.is_authenticated() {
                // Skipped by `authorize` because of the Authorization header.
                take_anonymous(state, ctx.client)?;
            }
            None
        }
        _ => match workflow_keys::authenticate_endpoint(state, &workflow, &call.headers).await {
            Ok(key) => {
                take_token(
                    state,
                    &format!("wkey:{}", key.key_id),
                    state.settings.rate_limit_per_second,
                )?;
                Some(key)
            }
            Err(e) => {
                take_anonymous(state, ctx.client)?;
                return Err(e);
            }
        },
    };
    let method = call.method.clone();
    let method = &method;
    let query = call.query.clone();
    let query = query.as_str();
    let limit = if workflow_key.is_some() || ctx.principal.is_authenticated() {
        state.settings.max_body_bytes
    } else {
        state.settings.limits.anonymous_max_body
    };
    let body = call.bytes_up_to(limit).await?;
    let body = &body;
    let key = matches!(ctx.principal, Principal::FunctionKey { .. });
    let allowed = allowed_methods(&workflow);
    if !allowed.iter().any(|m| m == method.as_str()) {
        let mut response = ApiError::MethodNotAllowed(method.as_str().to_owned()).into_response();
        if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
            response.headers_mut().insert("allow", value);
        }
        return Ok(response);
    }
    let input = endpoint_input(query, body)?;
    let (workflow, input) = runner
        .prepare(name, input, Coercion::FromStrings)
        .map_err(|e| run_error(e, ""))?;
    let context = match workflow_key {
        // v1's API-key context: GLOBAL, platform admin, function key; the caller names the key.
        // The answer still hides internal error details (UserError messages are shown).
        Some(wk) => RunContext::workflow_key(&wk.key_id.caller_id(), &wk.key_id.to_string()),
        None if key => RunContext::of_principal(&ctx.principal, existing_scope(state, &ctx).await?),
        None => RunContext::public_webhook(ctx.actor()),
    };
    let detail = if key && ctx.is_platform_admin() {
        Detail::Admin
    } else {
        Detail::Caller
    };
    let request = RunRequest::new(workflow, input, context);
    run_sync(&runner, request, Recording::Recorded, Answer::sync(detail)).await
}

/// v1's default for an endpoint without `allowed_methods` is POST.
fn allowed_methods(workflow: &WorkflowInfo) -> Vec<String> {
    let methods: Vec<String> = workflow
        .allowed_methods
        .iter()
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect();
    if methods.is_empty() {
        vec!["POST".into()]
    } else {
        methods
    }
}

/// Query parameters merged with a JSON object body; the body wins. `code` is the function key,
/// never input.
fn endpoint_input(query: &str, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let mut input = Map::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name != "code" {
            input.insert(name.into_owned(), Value::String(value.into_owned()));
        }
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => input.extend(fields),
            Ok(_) => {
                return Err(ApiError::bad_request(
                    "body",
                    "must be a JSON object of input values",
                ));
            }
            Err(e) => return Err(ApiError::invalid_json(&e)),
        }
    }
    Ok(input)
}

/// Whether a run gets an execution record (v1's `transient` runs have none).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Recording {
    Recorded,
    Transient,
}

/// How much of a failure the answer shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The exception type and message.
    Admin,
    /// A `UserError`'s message, otherwise a generic text.
    Caller,
}

/// How an entry point answers a sync run.
struct Answer {
    /// How long the run is awaited before the answer becomes 202.
    wait: Duration,
    detail: Detail,
    /// Include the captured log lines (`/api/workflows/execute`).
    with_logs: bool,
}

impl Answer {
    fn sync(detail: Detail) -> Self {
        Self {
            wait: SYNC_WAIT,
            detail,
            with_logs: false,
        }
    }
}

/// Starts a prepared, recorded run the way its workflow asks: async workflows are queued (202
/// with the status URL), sync ones awaited up to [`SYNC_WAIT`] (200 with the result, or 202).
/// For entry points other than `/api/workflows/execute` (forms).
pub async fn start_run(
    runner: &Runner,
    request: RunRequest,
    detail: Detail,
) -> Result<Response, ApiError> {
    if Runner::is_async(&request.workflow) {
        let record = runner
            .enqueue(&request)
            .await
            .map_err(|e| run_error(e, ""))?;
        return Ok(accepted(
            &record.execution_id,
            ExecutionStatus::Pending,
            "queued",
        ));
    }
    run_sync(runner, request, Recording::Recorded, Answer::sync(detail)).await
}

async fn run_sync(
    runner: &Runner,
    request: RunRequest,
    recording: Recording,
    answer: Answer,
) -> Result<Response, ApiError> {
    let id = request.execution_id.clone();
    let transient = recording == Recording::Transient;
    let Answer {
        wait,
        detail,
        with_logs,
    } = answer;
    let admin = detail == Detail::Admin;
    let record = if transient {
        None
    } else {
        Some(
            runner
                .start(&request, ExecutionStatus::Running)
                .await
                .map_err(|e| run_error(e, ""))?,
        )
    };
    let task_runner = runner.clone();
    // The run is its own task: the answer may come before the run ends (budget), and a client
    // that disconnects must not cancel a recorded run.
    let run = tokio::spawn(async move {
        match record {
            Some(record) => task_runner.execute(request, record, false).await,
            None => task_runner.run(request, true).await,
        }
    });
    let joined = if transient {
        // Without a record there is nothing to poll later: a transient run is awaited.
        Ok(run.await)
    } else {
        tokio::time::timeout(wait, run).await
    };
    match joined {
        Ok(Ok(Ok(finished))) => Ok(json_response(
            StatusCode::OK,
            &run_result(&finished, admin, with_logs),
        )),
        Ok(Ok(Err(e))) => Err(run_error(e, "")),
        Ok(Err(e)) => Err(ApiError::Internal(format!("execution task failed: {e}"))),
        Err(_) => Ok(accepted(
            &id,
            ExecutionStatus::Running,
            "still running after the wait budget",
        )),
    }
}

fn accepted(id: &str, status: ExecutionStatus, message: &str) -> Response {
    reply(
        StatusCode::ACCEPTED,
        Ok(RunAccepted {
            execution_id: id.to_owned(),
            status,
            status_url: format!("/api/executions/{id}"),
            message: format!("execution {message}; poll statusUrl for the outcome"),
        }),
    )
}

fn run_result(finished: &Finished, admin: bool, with_logs: bool) -> RunResult {
    let record = &finished.record;
    let error = finished.outcome.error.as_ref();
    RunResult {
        execution_id: record.execution_id.clone(),
        status: record.status,
        result: record.result.clone(),
        result_type: record.result_type.clone(),
        error: error.map(|e| visible_error(e, admin)),
        error_type: error.filter(|_| admin).map(|e| e.error_type.clone()),
        duration_ms: record.duration_ms.unwrap_or_default(),
        started_at: rfc3339(record.started_at),
        completed_at: record.completed_at.map(rfc3339),
        is_transient: finished.transient,
        logs: with_logs.then(|| {
            finished
                .outcome
                .logs
                .iter()
                .filter(|l| admin || !matches!(l.level.as_str(), "DEBUG" | "TRACEBACK"))
                .map(|l| LogLineDto {
                    sequence: l.sequence,
                    timestamp: rfc3339(l.timestamp),
                    level: l.level.clone(),
                    message: l.message.clone(),
                    source: l.source.clone(),
                    data: l.data.clone(),
                })
                .collect()
        }),
    }
}

fn visible_error(error: &ExecutionError, admin: bool) -> String {
    if admin || error.is_user_error {
        error.message.clone()
    } else {
        GENERIC_ERROR.to_owned()
    }
}

/// `field_prefix` turns a parameter name into the request field (`inputData.count`).
pub fn run_error(error: RunError, field_prefix: &str) -> ApiError {
    match error {
        RunError::UnknownWorkflow(name) => {
            ApiError::NotFound(format!("workflow '{name}' not found"))
        }
        RunError::Input(e) => {
            ApiError::bad_request(format!("{field_prefix}{}", e.field), e.message)
        }
        RunError::Store(e) => ApiError::from(e),
        RunError::Organization(reason) => ApiError::Unavailable {
            reason,
            retry_after: Duration::from_secs(5),
        },
        RunError::Engine(e) => ApiError::Unavailable {
            reason: e.to_string(),
            retry_after: Duration::from_secs(5),
        },
        RunError::LeaseLost(id) => ApiError::Conflict(format!(
            "execution {id} was taken over by another instance; see its record"
        )),
    }
}

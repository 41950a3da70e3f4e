//! `/api/schedules`: the workspace's cron-scheduled workflows, an expression validator, and
//! enable/disable switches for platform administrators.
//!
//! Wire shapes (camelCase): a schedule is `{workflowName, description, cronExpression,
//! humanReadable, nextRuns[5], intervalSeconds, enabled, disabledReason, nextRunAt, lastRunAt,
//! lastExecutionId, executionCount, validationError, warning}`, the list is `{schedules}`;
//! validation answers `{valid, humanReadable, nextRuns[5], intervalSeconds, warning, error}`.
//!
//! The engine registry decides which workflows are scheduled; [`crate::schedules::ScheduleStore`]
//! rows add the run state. Listing is read-only: it shows what the next registry sync will store
//! (a workflow without a row yet reads as enabled when its expression is valid). Enable/disable
//! sync the registry first so the row exists, then flip it. Trigger-now queues a run through the
//! scheduler's own path (`Jobs::trigger_now`). Invariants: an invalid expression is a
//! `valid: false` answer (or a `validationError` in the list), never a 4xx/5xx; timestamps are
//! UTC RFC 3339.
//!
//! One declaration per operation ([`endpoints`]); depends on the schedule store, the registry
//! and the jobs through `ApiState`, never on storage directly.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use warp::http::StatusCode;
use warp::reply::Response;

use bifrost_engine::WorkflowInfo;
use bifrost_store::Scope;

use crate::audit::{AuditEvent, AuditEventType};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::{RequestContext, audit};
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};
use crate::http::input::timestamp;
use crate::schedules::{Cron, DisabledReason, INTERVAL_SAMPLES, ScheduleError, ScheduleState};

/// How many upcoming runs the API shows.
pub const NEXT_RUNS: usize = 5;

/// The workflow name of the first listed schedule, for links from the list.
const FIRST_SCHEDULED: &str = "$response.body#/schedules/0/workflowName";

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "schedules.list",
            "/api/schedules",
            Access::PlatformAdmin,
            "Every cron-scheduled workflow with its next runs, description and run state",
        )
        .ok::<ScheduleList>("The scheduled workflows, by name")
        .link(
            "EnableSchedule",
            "schedules.enable",
            "workflowName",
            FIRST_SCHEDULED,
        )
        .link(
            "DisableSchedule",
            "schedules.disable",
            "workflowName",
            FIRST_SCHEDULED,
        )
        .link(
            "TriggerSchedule",
            "schedules.trigger",
            "workflowName",
            FIRST_SCHEDULED,
        )
        .guarded(|state, _ctx, _call| async move { list(&state).await }),
        Endpoint::post(
            "schedules.validate",
            "/api/schedules/validate",
            Access::Authenticated,
            "Check a cron expression {expression}: description, next runs, interval, warning",
        )
        .body::<ValidateRequest>()
        .ok::<ValidationDto>("The verdict; an invalid expression is `valid: false`, not a 4xx")
        .guarded(|_state, _ctx, mut call| async move {
            let body: ValidateRequest = call.json().await?;
            Ok(json_response(
                StatusCode::OK,
                &validation(&body.expression, OffsetDateTime::now_utc()),
            ))
        }),
        Endpoint::post(
            "schedules.enable",
            "/api/schedules/{workflowName}/enable",
            Access::PlatformAdmin,
            "Enable a workflow's schedule (next run computed from now)",
        )
        .param("workflowName", workflow_name())
        .ok::<ScheduleDto>("The schedule, enabled")
        .errors(&[404, 409])
        .guarded(|state, ctx, call| async move {
            set_enabled(&state, &ctx, call.param("workflowName"), true).await
        }),
        Endpoint::post(
            "schedules.disable",
            "/api/schedules/{workflowName}/disable",
            Access::PlatformAdmin,
            "Disable a workflow's schedule",
        )
        .param("workflowName", workflow_name())
        .ok::<ScheduleDto>("The schedule, disabled")
        .errors(&[404])
        .guarded(|state, ctx, call| async move {
            set_enabled(&state, &ctx, call.param("workflowName"), false).await
        }),
        Endpoint::post(
            "schedules.trigger",
            "/api/schedules/{workflowName}/trigger",
            Access::PlatformAdmin,
            "Run a scheduled workflow now, as the scheduler would (queued; 202 with its status URL)",
        )
        .param("workflowName", workflow_name())
        .accepted::<TriggeredDto>("The run, queued")
        .errors(&[404, 503])
        .link(
            "GetExecution",
            "executions.get",
            "executionId",
            "$response.body#/executionId",
        )
        .guarded(|state, ctx, call| async move {
            trigger(&state, &ctx, call.param("workflowName")).await
        }),
    ]
}

/// A workflow's name as `@workflow` accepts it (`decorators.py`); an unknown one is a 404.
fn workflow_name() -> serde_json::Value {
    json!({ "type": "string", "pattern": WORKFLOW_NAME_PATTERN })
}

/// The names `@workflow(name=...)` accepts.
const WORKFLOW_NAME_PATTERN: &str = "^[a-z0-9_]+$";

/// A run started by trigger-now.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggeredDto {
    pub workflow_name: String,
    pub execution_id: String,
    pub status: &'static str,
    pub status_url: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidateRequest {
    /// Five fields (`min hour day month weekday`) or six with leading seconds.
    pub expression: String,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationDto {
    pub valid: bool,
    pub human_readable: Option<String>,
    /// The next runs after now, UTC RFC 3339.
    pub next_runs: Vec<String>,
    /// The shortest gap between upcoming runs.
    pub interval_seconds: Option<i64>,
    pub warning: Option<String>,
    /// Why the expression is invalid, naming the field and token.
    pub error: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleDto {
    pub workflow_name: String,
    pub description: String,
    pub cron_expression: String,
    pub human_readable: Option<String>,
    pub next_runs: Vec<String>,
    pub interval_seconds: Option<i64>,
    pub enabled: bool,
    /// `admin`, `removed` or `invalidExpression` when not enabled.
    pub disabled_reason: Option<&'static str>,
    pub next_run_at: Option<String>,
    pub last_run_at: Option<String>,
    pub last_execution_id: Option<String>,
    pub execution_count: i64,
    pub validation_error: Option<String>,
    pub warning: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleDto>,
}

/// Describes an expression; an invalid one is an answer (`valid: false`), not an error.
pub fn validation(expression: &str, now: OffsetDateTime) -> ValidationDto {
    match Cron::parse(expression) {
        Ok(cron) => ValidationDto {
            valid: true,
            human_readable: Some(cron.describe()),
            next_runs: cron
                .next_runs(now, NEXT_RUNS)
                .into_iter()
                .map(timestamp)
                .collect(),
            interval_seconds: cron.min_interval(now, INTERVAL_SAMPLES),
            warning: cron.warning(now),
            error: None,
        },
        Err(e) => ValidationDto {
            valid: false,
            human_readable: None,
            next_runs: Vec::new(),
            interval_seconds: None,
            warning: None,
            error: Some(e.to_string()),
        },
    }
}

fn schedule_error(e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::NotFound(name) => {
            ApiError::NotFound(format!("no scheduled workflow named '{name}'"))
        }
        ScheduleError::InvalidName(reason) => ApiError::bad_request("workflowName", reason),
        e @ ScheduleError::InvalidExpression { .. } => ApiError::Conflict(e.to_string()),
        ScheduleError::Store(e) => e.into(),
    }
}

fn dto(workflow: &WorkflowInfo, expression: &str, row: Option<&ScheduleState>) -> ScheduleDto {
    let now = OffsetDateTime::now_utc();
    let parsed = Cron::parse(expression);
    let check = validation(expression, now);
    // Mirrors what the next sync stores, so the list does not depend on when sync last ran.
    let admin_disabled = row.is_some_and(|r| r.disabled_reason == Some(DisabledReason::Admin));
    let (enabled, disabled_reason) = match (&parsed, admin_disabled) {
        (_, true) => (false, Some(DisabledReason::Admin)),
        (Err(_), false) => (false, Some(DisabledReason::InvalidExpression)),
        (Ok(_), false) => (true, None),
    };
    let stored_next = row
        .filter(|r| r.enabled && r.cron_expression == expression)
        .and_then(|r| r.next_run_at);
    let next_run_at = match (&parsed, enabled) {
        (Ok(cron), true) => stored_next.or_else(|| cron.next_after(now)),
        _ => None,
    };
    ScheduleDto {
        workflow_name: workflow.name.clone(),
        description: workflow.description.clone(),
        cron_expression: expression.to_owned(),
        human_readable: check.human_readable,
        next_runs: check.next_runs,
        interval_seconds: check.interval_seconds,
        enabled,
        disabled_reason: disabled_reason.map(DisabledReason::as_str),
        next_run_at: next_run_at.map(timestamp),
        last_run_at: row.and_then(|r| r.last_run_at).map(timestamp),
        last_execution_id: row.and_then(|r| r.last_execution_id.clone()),
        execution_count: row.map_or(0, |r| r.execution_count),
        validation_error: check.error,
        warning: check.warning,
    }
}

async fn list(state: &ApiState) -> Result<Response, ApiError> {
    let store = &state.services.schedules;
    let rows = store.list().await.map_err(schedule_error)?;
    let registry = state.runner.registry();
    let mut schedules: Vec<ScheduleDto> = registry
        .workflows
        .iter()
        .filter_map(|w| {
            let expression = w.schedule.as_deref()?;
            let row = rows.iter().find(|r| r.workflow_name == w.name);
            Some(dto(w, expression, row))
        })
        .collect();
    schedules.sort_by(|a, b| a.workflow_name.cmp(&b.workflow_name));
    Ok(json_response(StatusCode::OK, &ScheduleList { schedules }))
}

async fn set_enabled(
    state: &ApiState,
    ctx: &RequestContext,
    name: &str,
    enabled: bool,
) -> Result<Response, ApiError> {
    let registry = state.runner.registry();
    let Some((workflow, expression)) = registry
        .workflows
        .iter()
        .find(|w| w.name == name)
        .and_then(|w| w.schedule.as_deref().map(|s| (w, s)))
    else {
        return Err(schedule_error(ScheduleError::NotFound(name.to_owned())));
    };
    let store = &state.services.schedules;
    let now = OffsetDateTime::now_utc();
    store
        .sync_from_registry(&crate::schedules::declared(&registry.workflows), now)
        .await
        .map_err(schedule_error)?;
    let row = store
        .set_enabled(name, enabled, now)
        .await
        .map_err(schedule_error)?;
    audit(
        state,
        AuditEvent::new(AuditEventType::ConfigChanged, ctx.actor(), Scope::Global)
            .detail("setting", "schedule")
            .detail("workflowName", name)
            .detail("action", if enabled { "enable" } else { "disable" }),
    )
    .await;
    Ok(json_response(
        StatusCode::OK,
        &dto(workflow, expression, Some(&row)),
    ))
}

/// Trigger-now: the scheduler's own path (queued, GLOBAL, run by `system:scheduler`), recorded
/// on the schedule row like a timed run; the audit log says which administrator asked.
async fn trigger(state: &ApiState, ctx: &RequestContext, name: &str) -> Result<Response, ApiError> {
    let registry = state.runner.registry();
    let Some(workflow) = registry.workflow(name) else {
        return Err(ApiError::NotFound(format!("workflow '{name}' not found")));
    };
    if workflow.schedule.is_none() {
        return Err(ApiError::NotFound(format!(
            "workflow '{name}' has no schedule"
        )));
    }
    let run = state
        .jobs()
        .trigger_now(name, OffsetDateTime::now_utc())
        .await;
    let Some(execution_id) = run.execution_id else {
        return Err(ApiError::Unavailable {
            reason: run
                .error
                .unwrap_or_else(|| "the run could not be queued".into()),
            retry_after: std::time::Duration::from_secs(5),
        });
    };
    audit(
        state,
        AuditEvent::new(AuditEventType::ExecutionStarted, ctx.actor(), Scope::Global)
            .detail("execution_id", execution_id.clone())
            .detail("workflow", name)
            .detail("trigger", "schedule"),
    )
    .await;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &TriggeredDto {
            workflow_name: name.to_owned(),
            status_url: format!("/api/executions/{execution_id}"),
            execution_id,
            status: "Pending",
        },
    ))
}

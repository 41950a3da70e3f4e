//! `/api/executions`: execution history, results, logs and cancellation, within the request's
//! scope.
//!
//! Visibility rules (v1's, enforced here on top of the route's `Authenticated` access):
//! - a request sees only its scope's executions (the store partition); another scope's id is 404;
//! - platform-wide principals see every execution in the scope; an org user sees only the
//!   executions they started (`executedBy == user id`), and an org-scoped function key only those
//!   it started (`executedBy == "api_key:{keyId}"`, [`bifrost_engine::Caller::api_key`], the
//!   identity the execution entry points must record); anybody else's id is 404;
//! - error detail: the traceback and the error type are admin-only; non-admins see the message
//!   of a `UserError` and otherwise "An error occurred during execution"; `DEBUG` and
//!   `TRACEBACK` log lines are admin-only.
//!
//! Depends on [`crate::executions::Executions`] and the engine handle (for cancellation only).

use std::sync::Arc;

use bifrost_engine::{Caller, ExecutionError, LogEntry};
use bifrost_store::table::ContinuationToken;
use futures::StreamExt;
use futures::future::join_all;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::auth::Principal;
use crate::executions::{
    ExecutionQuery, ExecutionRecord, ExecutionStatus, MAX_LOG_PAGE, MAX_LOG_SEQUENCE,
};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::RequestContext;
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};
use crate::http::input::{
    NoQuery, continuation_error, date_schema, query_datetime, query_limit, timestamp as rfc3339,
};

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "executions.list",
            "/api/executions",
            Access::Authenticated,
            "Executions in the request's scope, newest first (org users: their own only)",
        )
        .query::<ExecutionsQuery>()
        .ok::<ExecutionList>("One page of executions")
        .link("GetExecution", "executions.get", "executionId", FIRST_EXECUTION)
        .link("GetResult", "executions.result", "executionId", FIRST_EXECUTION)
        .link("GetLogs", "executions.logs", "executionId", FIRST_EXECUTION)
        .link("StreamLogs", "executions.logs.stream", "executionId", FIRST_EXECUTION)
        .link("Cancel", "executions.cancel", "executionId", FIRST_EXECUTION)
        .guarded(|state, ctx, call| async move {
            Ok(json_response(StatusCode::OK, &list(&state, &ctx, call.query()?).await?))
        }),
        Endpoint::get(
            "executions.get",
            "/api/executions/{executionId}",
            Access::Authenticated,
            "One execution's record",
        )
        .query::<NoQuery>()
        .ok::<ExecutionDto>("The execution")
        .guarded(|state, ctx, call| async move {
            call.query::<NoQuery>()?;
            let id = call.param("executionId");
            Ok(json_response(StatusCode::OK, &get(&state, &ctx, id).await?))
        }),
        Endpoint::get(
            "executions.result",
            "/api/executions/{executionId}/result",
            Access::Authenticated,
            "One execution's result",
        )
        .query::<NoQuery>()
        .ok::<ExecutionResultDto>("The result")
        .guarded(|state, ctx, call| async move {
            call.query::<NoQuery>()?;
            let id = call.param("executionId");
            Ok(json_response(StatusCode::OK, &result(&state, &ctx, id).await?))
        }),
        Endpoint::get(
            "executions.logs",
            "/api/executions/{executionId}/logs",
            Access::Authenticated,
            "One execution's log lines after sequence `since` (DEBUG/TRACEBACK: admins only)",
        )
        .query::<LogsQuery>()
        .ok::<ExecutionLogs>("One page of log lines")
        .guarded(|state, ctx, call| async move {
            let id = call.param("executionId");
            Ok(json_response(StatusCode::OK, &logs(&state, &ctx, id, call.query()?).await?))
        }),
        Endpoint::get(
            "executions.logs.stream",
            "/api/executions/{executionId}/logs/stream",
            Access::Authenticated,
            "Live log lines as Server-Sent Events (`log` events, then one `status` event when the run ends); resumes after `Last-Event-ID` or `?since=`",
        )
        .query::<StreamQuery>()
        .event_stream("`log` events, then one `status` event")
        .errors(&[429])
        .guarded(|state, ctx, call| async move {
            let query: StreamQuery = call.query()?;
            let last_event_id = match call.header("last-event-id") {
                None => None,
                Some(raw) => Some(raw.trim().parse::<u64>().map_err(|_| {
                    ApiError::bad_request("Last-Event-ID", "must be a log sequence number")
                })?),
            };
            let id = call.param("executionId").to_owned();
            stream_logs(state, ctx, id, query.since.unwrap_or(0), last_event_id).await
        }),
        Endpoint::post(
            "executions.cancel",
            "/api/executions/{executionId}/cancel",
            Access::Authenticated,
            "Request cancellation of a pending or running execution",
        )
        .accepted::<CancelResponse>(
            "Cancellation requested; the run stops at its next interruption point",
        )
        .ok::<CancelResponse>("The execution had not started and is now Cancelled")
        .errors(&[409])
        .guarded(|state, ctx, call| async move {
            let (status, body) = cancel(&state, &ctx, call.param("executionId")).await?;
            Ok(json_response(status, &body))
        }),
    ]
}

/// The first listed execution's id, for the document's links.
const FIRST_EXECUTION: &str = "$response.body#/executions/0/executionId";

/// `GET /api/executions` filters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecutionsQuery {
    /// Only this workflow's executions.
    #[schemars(length(max = 256))]
    workflow_name: Option<String>,
    /// Only executions in this status.
    status: Option<ExecutionStatus>,
    /// Started at or after (a date: its first instant).
    #[serde(default)]
    #[schemars(schema_with = "date_schema")]
    start_date: Option<String>,
    /// Started at or before (a date: its last instant).
    #[serde(default)]
    #[schemars(schema_with = "date_schema")]
    end_date: Option<String>,
    /// Page size (default 25).
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    limit: Option<u16>,
    /// The `continuationToken` of the previous page.
    continuation_token: Option<String>,
}

/// `GET .../logs` paging.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogsQuery {
    /// Only lines with a greater sequence number (default 0: from the start).
    #[schemars(range(max = MAX_LOG_SEQUENCE))]
    since: Option<u64>,
    /// Page size.
    #[schemars(range(min = 1, max = MAX_LOG_PAGE))]
    limit: Option<u16>,
}

/// `GET .../logs/stream` start.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StreamQuery {
    /// Start after this sequence number (`Last-Event-ID` wins when both are sent).
    #[schemars(range(max = MAX_LOG_SEQUENCE))]
    since: Option<u64>,
}

/// Default and largest page of the listing (v1: 25, ≤ 1000).
pub const DEFAULT_LIMIT: u16 = 25;
pub const MAX_LIMIT: u16 = 1000;
/// What non-admins see instead of a non-`UserError` message (v1's text).
pub const GENERIC_ERROR: &str = "An error occurred during execution";
const ADMIN_ONLY_LEVELS: &[&str] = &["DEBUG", "TRACEBACK"];

/// One execution (v1 `WorkflowExecution`, without logs).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDto {
    pub execution_id: String,
    pub workflow_name: String,
    pub org_id: Option<String>,
    pub form_id: Option<String>,
    pub executed_by: String,
    pub executed_by_email: String,
    pub executed_by_name: String,
    pub status: ExecutionStatus,
    pub input_data: Value,
    /// `json`, `html` or `text`.
    pub result_type: Option<String>,
    /// The error message (non-admins: only a `UserError`'s, else a generic text).
    pub error_message: Option<String>,
    /// Python exception class name; platform administrators only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Platform administrators only, on single-execution reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_traceback: Option<String>,
    pub duration_ms: Option<u64>,
    /// RFC 3339.
    pub started_at: String,
    pub completed_at: Option<String>,
    /// 1 for the first try; retries of an async run count up.
    pub attempt: u32,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionList {
    pub executions: Vec<ExecutionDto>,
    /// Pass back as `continuationToken` for the next page; `null` on the last page.
    pub continuation_token: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionResultDto {
    pub execution_id: String,
    pub status: ExecutionStatus,
    /// `null` until the execution finished successfully.
    pub result: Option<Value>,
    pub result_type: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogLineDto {
    /// 1-based, in capture order.
    pub sequence: u64,
    /// RFC 3339.
    pub timestamp: String,
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL` or `TRACEBACK`.
    pub level: String,
    pub message: String,
    /// `logging:<logger>`, `stdout`, `stderr`, `context` or `engine`.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionLogs {
    pub execution_id: String,
    pub status: ExecutionStatus,
    pub logs: Vec<LogLineDto>,
    /// The last sequence read; pass it as `since` to poll for newer lines.
    pub last_sequence: Option<u64>,
    /// True when more lines are ready right away.
    pub more: bool,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelResponse {
    pub execution_id: String,
    /// `Cancelling` (the run stops at its next interruption point) or `Cancelled`.
    pub status: ExecutionStatus,
}

/// The `executedBy` a non-platform-wide caller is limited to; `None` = sees the whole scope.
fn own_executions_only(principal: &Principal) -> Option<String> {
    if principal.is_platform_admin() {
        return None;
    }
    Some(match principal {
        Principal::OrgUser { user_id, .. } => user_id.clone(),
        Principal::FunctionKey { key_id, .. } => Caller::api_key(&key_id.to_string()).user_id,
        // Unreachable behind `Authenticated`, but must never widen visibility.
        other => other.audit_actor(),
    })
}

async fn list(
    state: &ApiState,
    ctx: &RequestContext,
    q: ExecutionsQuery,
) -> Result<ExecutionList, ApiError> {
    let status = q.status;
    let workflow_name = q.workflow_name;
    if workflow_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 256)
    {
        return Err(ApiError::bad_request(
            "workflowName",
            "must be at most 256 characters",
        ));
    }
    let started_after = query_datetime("startDate", q.start_date.as_deref(), false)?;
    let started_before = query_datetime("endDate", q.end_date.as_deref(), true)?;
    if let (Some(a), Some(b)) = (started_after, started_before)
        && a > b
    {
        return Err(ApiError::bad_request(
            "endDate",
            "must not be before startDate",
        ));
    }
    let query = ExecutionQuery {
        workflow_name,
        status,
        executed_by: own_executions_only(&ctx.principal),
        started_after,
        started_before,
        limit: Some(query_limit("limit", q.limit, DEFAULT_LIMIT, MAX_LIMIT)?),
        continuation: q.continuation_token.map(ContinuationToken::new),
    };
    let (records, next) = state
        .services
        .executions
        .list(&ctx.scope, &query)
        .await
        .map_err(|e| continuation_error(e, "continuationToken"))?;
    let admin = ctx.is_platform_admin();
    // Non-admins may see a UserError's message: that needs the stored error detail.
    let details = join_all(records.iter().map(|r| async {
        if admin || r.error_message.is_none() {
            return Ok(None);
        }
        state
            .services
            .executions
            .error_detail(&ctx.scope, &r.execution_id)
            .await
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    Ok(ExecutionList {
        executions: records
            .iter()
            .zip(details)
            .map(|(r, d)| execution_dto(r, d.as_ref(), admin, false))
            .collect(),
        continuation_token: next.map(|t| t.as_str().to_owned()),
    })
}

/// The record if it exists in the scope and the caller may see it; 404 otherwise.
async fn visible(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> Result<ExecutionRecord, ApiError> {
    let record = state.services.executions.get(&ctx.scope, id).await?;
    let only = own_executions_only(&ctx.principal);
    record
        .filter(|r| only.as_ref().is_none_or(|me| *me == r.executed_by))
        .ok_or_else(|| ApiError::NotFound(format!("execution {id} not found")))
}

async fn get(state: &ApiState, ctx: &RequestContext, id: &str) -> Result<ExecutionDto, ApiError> {
    let record = visible(state, ctx, id).await?;
    let detail = if record.error_message.is_some() || record.error_type.is_some() {
        state
            .services
            .executions
            .error_detail(&ctx.scope, id)
            .await?
    } else {
        None
    };
    Ok(execution_dto(
        &record,
        detail.as_ref(),
        ctx.is_platform_admin(),
        true,
    ))
}

async fn result(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> Result<ExecutionResultDto, ApiError> {
    let record = visible(state, ctx, id).await?;
    Ok(ExecutionResultDto {
        execution_id: record.execution_id,
        status: record.status,
        result: record.result,
        result_type: record.result_type,
    })
}

async fn logs(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    q: LogsQuery,
) -> Result<ExecutionLogs, ApiError> {
    let since = q.since.unwrap_or(0);
    let limit = query_limit("limit", q.limit, MAX_LOG_PAGE, MAX_LOG_PAGE)?;
    let record = visible(state, ctx, id).await?;
    let page = state
        .services
        .executions
        .logs(&ctx.scope, id, since, limit)
        .await?;
    let admin = ctx.is_platform_admin();
    Ok(ExecutionLogs {
        execution_id: record.execution_id,
        status: record.status,
        logs: page
            .entries
            .iter()
            .filter(|e| admin || !ADMIN_ONLY_LEVELS.contains(&e.level.as_str()))
            .map(log_dto)
            .collect(),
        last_sequence: page.last_sequence,
        more: page.more,
    })
}

async fn cancel(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> Result<(StatusCode, CancelResponse), ApiError> {
    let record = visible(state, ctx, id).await?;
    let finished = |status: ExecutionStatus| {
        ApiError::Conflict(format!(
            "execution {id} has already finished with status {status}"
        ))
    };
    if record.status.is_finished() {
        return Err(finished(record.status));
    }
    let executions = &state.services.executions;
    let running_here = state.runner.cancel(id);
    // Running here: the engine stops it and its runner records `Cancelled`. Running elsewhere:
    // `Cancelling` asks that instance's runner. Never started: nothing will run it, so it is
    // `Cancelled` at once.
    let target = if !running_here && record.status == ExecutionStatus::Pending {
        ExecutionStatus::Cancelled
    } else {
        ExecutionStatus::Cancelling
    };
    let now = executions
        .transition(
            &ctx.scope,
            id,
            &[ExecutionStatus::Pending, ExecutionStatus::Running],
            target,
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("execution {id} not found")))?;
    // The engine may stop the run and its runner record `Cancelled` before this transition:
    // that is this request's own cancellation succeeding, not a conflict.
    let cancelled_by_us = running_here && now == ExecutionStatus::Cancelled;
    if now.is_finished() && now != target && !cancelled_by_us {
        return Err(finished(now));
    }
    let status = if now == ExecutionStatus::Cancelled {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        CancelResponse {
            execution_id: id.to_owned(),
            status: now,
        },
    ))
}

fn execution_dto(
    r: &ExecutionRecord,
    detail: Option<&ExecutionError>,
    admin: bool,
    with_traceback: bool,
) -> ExecutionDto {
    let error_message = r.error_message.as_ref().map(|message| {
        if admin || detail.is_some_and(|d| d.is_user_error) {
            message.clone()
        } else {
            GENERIC_ERROR.to_owned()
        }
    });
    ExecutionDto {
        execution_id: r.execution_id.clone(),
        workflow_name: r.workflow_name.clone(),
        org_id: r.org_id.clone(),
        form_id: r.form_id.clone(),
        executed_by: r.executed_by.clone(),
        executed_by_email: r.executed_by_email.clone(),
        executed_by_name: r.executed_by_name.clone(),
        status: r.status,
        input_data: r.input_data.clone(),
        result_type: r.result_type.clone(),
        error_message,
        error_type: r.error_type.clone().filter(|_| admin),
        error_traceback: detail
            .filter(|_| admin && with_traceback)
            .map(|d| d.traceback.clone())
            .filter(|t| !t.is_empty()),
        duration_ms: r.duration_ms,
        started_at: rfc3339(r.started_at),
        completed_at: r.completed_at.map(rfc3339),
        attempt: r.attempt,
    }
}

fn log_dto(e: &LogEntry) -> LogLineDto {
    LogLineDto {
        sequence: e.sequence,
        timestamp: rfc3339(e.timestamp),
        level: e.level.clone(),
        message: e.message.clone(),
        source: e.source.clone(),
        data: e.data.clone(),
    }
}

/// How often a live stream looks for new lines and the run's status.
const STREAM_POLL: std::time::Duration = std::time::Duration::from_millis(300);
/// Longest wait between reads while storage keeps failing (the wait doubles from
/// [`STREAM_POLL`] on each consecutive failure).
const STREAM_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(5);
/// A comment goes out this often; writing it is how a client that went away is noticed.
const STREAM_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// `GET .../logs/stream`: Server-Sent Events read from storage, so a stream works on every
/// instance whichever one runs the workflow. Events: `log` (a line, `id` = its sequence, so a
/// reconnecting client resumes with `Last-Event-ID`) and a final `status` (`{status}`) once the
/// run has finished and every line was sent. Same visibility rules as `GET .../logs`.
///
/// A caller holds at most `BIFROST_MAX_STREAMS_PER_CALLER` streams open (429 beyond); a stream's
/// reader stops as soon as its client is gone (the keep-alive write fails and drops the body,
/// which closes the channel the reader waits on), and it backs off while storage fails.
async fn stream_logs(
    state: Arc<ApiState>,
    ctx: RequestContext,
    id: String,
    since: u64,
    last_event_id: Option<u64>,
) -> Result<Response, ApiError> {
    visible(&state, &ctx, &id).await?;
    let slot = crate::http::context::open_stream(&state, &ctx)?;
    let admin = ctx.is_platform_admin();
    let start = last_event_id.unwrap_or(since);
    // The storage futures are not `Sync`, which warp's SSE body needs: read on a task and hand
    // the events over a channel. The task ends when the run does or the client goes away.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<warp::sse::Event>(64);
    tokio::spawn(async move {
        let _slot = slot;
        let executions = &state.services.executions;
        let mut since = start;
        let mut wait = std::time::Duration::ZERO;
        loop {
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(wait) => {}
            }
            // Status first: a run that finished before this read has all its lines stored.
            let status = match executions.get(&ctx.scope, &id).await {
                Ok(Some(r)) => r.status,
                Ok(None) => {
                    let _ = tx.send(status_event("NotFound")).await;
                    return;
                }
                Err(e) => {
                    wait = backoff(wait);
                    tracing::debug!(error = %e, execution_id = %id, "log stream: storage read failed; backing off");
                    continue;
                }
            };
            let page = match executions.logs(&ctx.scope, &id, since, MAX_LOG_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    wait = backoff(wait);
                    tracing::debug!(error = %e, execution_id = %id, "log stream: storage read failed; backing off");
                    continue;
                }
            };
            wait = STREAM_POLL;
            if let Some(last) = page.last_sequence {
                since = last;
            }
            for entry in page
                .entries
                .iter()
                .filter(|e| admin || !ADMIN_ONLY_LEVELS.contains(&e.level.as_str()))
            {
                if let Ok(event) = warp::sse::Event::default()
                    .event("log")
                    .id(entry.sequence.to_string())
                    .json_data(log_dto(entry))
                    && tx.send(event).await.is_err()
                {
                    return;
                }
            }
            if page.more {
                wait = std::time::Duration::ZERO;
            } else if status.is_finished() {
                let _ = tx.send(status_event(status.as_str())).await;
                return;
            }
        }
    });
    let events = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(warp::reply::Reply::into_response(warp::sse::reply(
        warp::sse::keep_alive()
            .interval(STREAM_KEEP_ALIVE)
            .stream(events.map(Ok::<_, std::convert::Infallible>)),
    )))
}

/// The next wait after a failed read: doubled, from [`STREAM_POLL`] up to [`STREAM_BACKOFF_MAX`].
fn backoff(wait: std::time::Duration) -> std::time::Duration {
    (wait.max(STREAM_POLL / 2) * 2).min(STREAM_BACKOFF_MAX)
}

fn status_event(status: &str) -> warp::sse::Event {
    warp::sse::Event::default()
        .event("status")
        .data(serde_json::json!({ "status": status }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(e: ApiError) -> Option<String> {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn query_parameters_are_checked_and_name_the_field() {
        use crate::http::endpoint::parse_query;
        let q: ExecutionsQuery = parse_query("limit=5&code=abc&startDate=2024-01-02").unwrap();
        assert_eq!(query_limit("limit", q.limit, 25, 1000).unwrap(), 5);
        assert_eq!(
            query_datetime("startDate", q.start_date.as_deref(), false)
                .unwrap()
                .map(rfc3339)
                .as_deref(),
            Some("2024-01-02T00:00:00Z")
        );
        let q: ExecutionsQuery = parse_query("endDate=2024-01-02").unwrap();
        assert_eq!(
            query_datetime("endDate", q.end_date.as_deref(), true)
                .unwrap()
                .map(rfc3339)
                .as_deref(),
            Some("2024-01-02T23:59:59.999999Z")
        );
        for (raw, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=x", "limit"),
            ("startDate=yesterday", "startDate"),
            ("lmit=5", "lmit"),
            ("limit=1&limit=2", "limit"),
        ] {
            let err = parse_query::<ExecutionsQuery>(raw)
                .and_then(|q| {
                    query_limit("limit", q.limit, 25, 1000)?;
                    query_datetime("startDate", q.start_date.as_deref(), false)
                })
                .unwrap_err();
            assert_eq!(field_of(err).as_deref(), Some(field), "{raw}");
        }
    }

    fn failed(is_user_error: bool) -> (ExecutionRecord, ExecutionError) {
        let record = ExecutionRecord {
            execution_id: "e1".into(),
            workflow_name: "w".into(),
            org_id: Some("org-a".into()),
            form_id: None,
            executed_by: "u1".into(),
            executed_by_email: "u1@x.com".into(),
            executed_by_name: "U".into(),
            status: ExecutionStatus::Failed,
            input_data: json!({}),
            result: None,
            result_type: None,
            error_type: Some("ValueError".into()),
            error_message: Some("db password wrong for host x".into()),
            duration_ms: Some(1),
            started_at: time::OffsetDateTime::UNIX_EPOCH,
            completed_at: None,
            attempt: 1,
            rights: Default::default(),
        };
        let detail = ExecutionError {
            error_type: "ValueError".into(),
            message: "db password wrong for host x".into(),
            traceback: "Traceback (most recent call last): ...".into(),
            is_user_error,
        };
        (record, detail)
    }

    #[test]
    fn error_detail_is_shown_by_role() {
        let (record, detail) = failed(false);
        let user = execution_dto(&record, Some(&detail), false, true);
        assert_eq!(user.error_message.as_deref(), Some(GENERIC_ERROR));
        assert!(user.error_type.is_none() && user.error_traceback.is_none());

        let admin = execution_dto(&record, Some(&detail), true, true);
        assert_eq!(
            admin.error_message.as_deref(),
            Some("db password wrong for host x")
        );
        assert_eq!(admin.error_type.as_deref(), Some("ValueError"));
        assert!(admin.error_traceback.is_some());
        assert!(
            execution_dto(&record, Some(&detail), true, false)
                .error_traceback
                .is_none(),
            "listings carry no tracebacks"
        );

        let (record, detail) = failed(true);
        let user = execution_dto(&record, Some(&detail), false, true);
        assert_eq!(
            user.error_message.as_deref(),
            Some("db password wrong for host x"),
            "a UserError's message is meant for the user"
        );
        assert!(user.error_type.is_none());
    }

    #[test]
    fn only_platform_wide_principals_see_the_whole_scope() {
        let user = Principal::OrgUser {
            user_id: "u7".into(),
            email: "u@x.com".into(),
            name: "U".into(),
            org: bifrost_store::OrgId::parse("org-a").unwrap(),
        };
        assert_eq!(own_executions_only(&user).as_deref(), Some("u7"));
        assert_eq!(own_executions_only(&Principal::LocalDeveloper), None);
    }
}

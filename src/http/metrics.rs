//! `GET /api/metrics`: the execution dashboard's numbers for platform administrators — counts by
//! status, success rate, p50/p95 duration per workflow and per organization over a window
//! (`?hours=`, default 24, at most 720), and the queue depth of async executions. Also
//! `POST /api/executions/cleanup/trigger`, which runs `execution_cleanup` now (v1's manual
//! cleanup) and answers what it did.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use bifrost_store::queue::QueueName;

use crate::executions::CleanupReport;
use crate::executions::metrics::Metrics;
use crate::executions::runner::QUEUE;
use crate::http::ApiState;
use crate::http::access::{Access, Route};
use crate::http::context::{RequestContext, guard};
use crate::http::error::{ApiError, reply};
use crate::http::executions::QueryParams;

pub const ROUTES: &[Route] = &[
    Route {
        id: "metrics.get",
        method: "GET",
        path: "/api/metrics",
        access: Access::PlatformAdmin,
        summary: "Execution counts by status, success rate, p50/p95 durations per workflow and organization, queue depth",
    },
    Route {
        id: "executions.cleanup",
        method: "POST",
        path: "/api/executions/cleanup/trigger",
        access: Access::PlatformAdmin,
        summary: "Run execution_cleanup now: recover runs whose instance stopped",
    },
];

const DEFAULT_HOURS: u16 = 24;
const MAX_HOURS: u16 = 720;

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsDto {
    /// RFC 3339: the window's start.
    pub since: String,
    pub hours: u16,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub queue: QueueDepth,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueDepth {
    /// Approximate number of queued async executions (includes delayed retries).
    pub pending: u64,
    /// Messages the worker gave up on (their executions are marked `Failed`).
    pub poison: u64,
}

pub fn routes(state: Arc<ApiState>) -> BoxedFilter<(Response,)> {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let raw_query = || warp::query::raw().or(warp::any().map(String::new)).unify();
    let metrics = warp::path!("api" / "metrics")
        .and(warp::get())
        .and(guard(state.clone(), "metrics.get"))
        .and(raw_query())
        .and(with_state.clone())
        .then(
            |_ctx: RequestContext, query: String, state: Arc<ApiState>| async move {
                reply(StatusCode::OK, metrics(&state, &query).await)
            },
        );
    let cleanup = warp::path!("api" / "executions" / "cleanup" / "trigger")
        .and(warp::post())
        .and(guard(state.clone(), "executions.cleanup"))
        .and(with_state)
        .then(|_ctx: RequestContext, state: Arc<ApiState>| async move {
            reply(StatusCode::OK, cleanup(&state).await)
        });
    metrics.or(cleanup).unify().boxed()
}

async fn metrics(state: &ApiState, raw: &str) -> Result<MetricsDto, ApiError> {
    let q = QueryParams::parse(raw, &["hours"])?;
    let hours = q.limit("hours", DEFAULT_HOURS, MAX_HOURS)?;
    let since = OffsetDateTime::now_utc() - time::Duration::hours(i64::from(hours));
    let metrics = state.services.executions.metrics(since).await?;
    let queues = &state.backends.queues;
    let queue = QueueName::new(QUEUE)?;
    let depth = |name: QueueName| async move {
        match queues.approximate_count(&name).await {
            Ok(n) => Ok(n),
            // Not created yet: nothing was ever queued.
            Err(bifrost_store::StoreError::NotFound { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    };
    Ok(MetricsDto {
        since: crate::http::executions::rfc3339(since),
        hours,
        metrics,
        queue: QueueDepth {
            pending: depth(queue.clone()).await?,
            poison: depth(queue.poison()?).await?,
        },
    })
}

async fn cleanup(state: &ApiState) -> Result<CleanupReport, ApiError> {
    state
        .jobs()
        .cleanup(OffsetDateTime::now_utc())
        .await
        .map_err(|e| ApiError::Unavailable {
            reason: e.to_string(),
            retry_after: std::time::Duration::from_secs(5),
        })
}

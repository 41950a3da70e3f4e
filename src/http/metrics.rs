//! `GET /api/metrics`: the execution dashboard's numbers for platform administrators — counts by
//! status, success rate, p50/p95 duration per workflow and per organization over a window
//! (`?hours=`, default 24, at most 720), and the queue depth of async executions. Also
//! `POST /api/executions/cleanup/trigger`, which runs `execution_cleanup` now (v1's manual
//! cleanup) and answers what it did.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use warp::http::StatusCode;

use bifrost_store::queue::QueueName;

use crate::executions::CleanupReport;
use crate::executions::metrics::Metrics;
use crate::executions::runner::QUEUE;
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};
use crate::http::input::{query_limit, timestamp};

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "metrics.get",
            "/api/metrics",
            Access::PlatformAdmin,
            "Execution counts by status, success rate, p50/p95 durations per workflow and organization, queue depth",
        )
        .query::<MetricsQuery>()
        .ok::<MetricsDto>("The dashboard's numbers")
        .guarded(|state, _ctx, call| async move {
            Ok(json_response(StatusCode::OK, &metrics(&state, call.query()?).await?))
        }),
        Endpoint::post(
            "executions.cleanup",
            "/api/executions/cleanup/trigger",
            Access::PlatformAdmin,
            "Run execution_cleanup now: recover runs whose instance stopped",
        )
        .ok::<CleanupReport>("What the cleanup did")
        .guarded(|state, _ctx, _call| async move {
            Ok(json_response(StatusCode::OK, &cleanup(&state).await?))
        }),
    ]
}

/// `GET /api/metrics` window.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsQuery {
    /// The window, in hours back from now (default 24).
    #[schemars(range(min = 1, max = MAX_HOURS))]
    hours: Option<u16>,
}

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

async fn metrics(state: &ApiState, q: MetricsQuery) -> Result<MetricsDto, ApiError> {
    let hours = query_limit("hours", q.hours, DEFAULT_HOURS, MAX_HOURS)?;
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
        since: timestamp(since),
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

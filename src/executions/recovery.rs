//! Durability of running executions: leases, retries and the recovery of orphans.
//!
//! A running execution holds a lease: row `run:{executionId}` in its scope's `Executions`
//! partition, `{Row, LeaseUntil}`. It is taken in the same atomic write that moves the record to
//! `Running`, renewed by the runner's heartbeat every third of the lease, and released when the
//! run finishes. If the instance dies (crash, `kill -9`, scale-in) the heartbeat stops and the
//! lease runs out. `execution_cleanup` ([`recover_orphans`]) then claims the orphan by deleting
//! its run row with the row's ETag: of several cleaners exactly one wins, and a heartbeat that
//! renewed the lease meanwhile makes the claim fail. The claimed run is re-queued when its
//! workflow is async and its `retry_policy` allows another attempt, otherwise marked `Failed`
//! with the reason. A runner whose heartbeat finds its run row gone has lost the lease: it stops
//! the workflow and leaves the record to whoever recovered it, so one execution id never runs
//! twice at once.
//!
//! `retry_policy` is v1's `RetryPolicy{maxAttempts (1..10, default 3), backoffSeconds (2),
//! maxBackoffSeconds (60)}`, given as a dict in snake or camel case. v1 stored it and never used
//! it; here an async run that ends `Failed` or `Timeout`, or is orphaned, runs again after an
//! exponential backoff until its attempts are used up. Without a policy a run gets one attempt.
//! Each attempt's log lines are numbered from `(attempt - 1) * ATTEMPT_LOG_SPAN`, so retries
//! never overwrite the lines of an earlier attempt.
//!
//! The run rows are also how per-organization concurrency is counted ([`Executions::running_count`]):
//! a range read of one partition, as large as the number of runs in progress.
//!
//! A queued execution holds a *queued* lease (the same row with `Queued = true`), written with
//! its `Pending` record (atomically) or with its reset for a retry, lasting the retry delay plus
//! [`QUEUED_GRACE`]. Its message is sent after the record is written, so an instance that dies
//! in between leaves a `Pending` record nobody will ever dequeue. When such a lease runs out and
//! the record is still `Pending`, the cleaner sends the message again and takes a fresh queued
//! lease. A message that was only slow (a long backlog) is then queued twice; the worker's
//! ETag-guarded `Pending → Running` move lets one copy run and drops the other.

use std::time::Duration;

use bifrost_engine::WorkflowInfo;
use bifrost_store::table::{Column, IfMatch, Properties, Query, Value as TableValue, WriteMode};
use bifrost_store::{RowKey, Scope, StoreError, StoreResult};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::{ExecutionStatus, Executions, table_name};

/// A running execution's lease without a heartbeat (`BIFROST_EXECUTION_LEASE_SECONDS`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Log sequence numbers reserved per attempt.
pub const ATTEMPT_LOG_SPAN: u64 = 10_000_000;
/// Most attempts a policy may ask for (v1's bound).
pub const MAX_ATTEMPTS: u32 = 10;

/// How long a queued execution may wait for a worker before its message is presumed lost and
/// sent again (a duplicate is harmless, see the module comment).
pub const QUEUED_GRACE: Duration = Duration::from_secs(15 * 60);

pub(crate) fn run_row_key(execution_id: &str) -> StoreResult<RowKey> {
    RowKey::new(format!("run:{execution_id}"))
}

/// How often, and how patiently, an async workflow is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// One attempt, no retries: workflows without a `retry_policy`.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(60),
    };

    /// The workflow's policy; unreadable members take v1's defaults.
    pub fn of(workflow: &WorkflowInfo) -> RetryPolicy {
        let Some(Value::Object(policy)) = &workflow.retry_policy else {
            return RetryPolicy::NONE;
        };
        let number = |snake: &str, camel: &str| {
            policy
                .get(snake)
                .or_else(|| policy.get(camel))
                .and_then(Value::as_f64)
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let seconds = |v: f64| Duration::from_millis((v.min(86_400.0) * 1000.0) as u64);
        RetryPolicy {
            max_attempts: number("max_attempts", "maxAttempts")
                .map_or(3, |v| v as u32)
                .clamp(1, MAX_ATTEMPTS),
            backoff: number("backoff_seconds", "backoffSeconds")
                .map_or(Duration::from_secs(2), seconds),
            max_backoff: number("max_backoff_seconds", "maxBackoffSeconds")
                .map_or(Duration::from_secs(60), seconds),
        }
    }

    /// Whether attempt number `attempt` (from 1) may run.
    pub fn allows(&self, attempt: u32) -> bool {
        attempt <= self.max_attempts
    }

    /// The wait before attempt `attempt` (2 and up): `backoff * 2^(attempt - 2)`, capped.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(20);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// A lease that ran out, as found by [`Executions::expired_leases`].
#[derive(Clone, Debug)]
pub struct ExpiredLease {
    pub scope: Scope,
    pub execution_id: String,
    pub lease_until: Option<OffsetDateTime>,
    /// A queued lease (the run had not started), not a running one.
    pub queued: bool,
    etag: Option<bifrost_store::table::ETag>,
}

/// What one `execution_cleanup` pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    /// Orphans queued for another attempt.
    pub requeued: usize,
    /// Orphans marked `Failed` (no attempts left, or a sync run).
    pub failed: usize,
    /// `Pending` runs whose message was presumed lost: sent again.
    pub resent: usize,
    /// Orphans that were `Cancelling`: now `Cancelled`.
    pub cancelled: usize,
    /// Lease rows of runs that had finished (a crash between completion and release).
    pub stale: usize,
    /// Expired leases another instance (or a late heartbeat) claimed first.
    pub skipped: usize,
}

impl Executions {
    /// The run row's properties with a fresh lease.
    pub(crate) fn lease_properties(&self, row: &RowKey) -> Properties {
        let mut props = Properties::new();
        props.insert("Row".into(), TableValue::from(row.as_str()));
        props.insert(
            "LeaseUntil".into(),
            (OffsetDateTime::now_utc() + self.lease).into(),
        );
        props
    }

    /// The run row's properties for an execution waiting in the queue for `delay` at most.
    pub(crate) fn queued_properties(row: &RowKey, delay: Duration) -> Properties {
        let mut props = Properties::new();
        props.insert("Row".into(), TableValue::from(row.as_str()));
        props.insert(
            "LeaseUntil".into(),
            (OffsetDateTime::now_utc() + delay + QUEUED_GRACE).into(),
        );
        props.insert("Queued".into(), TableValue::Boolean(true));
        props
    }

    /// Takes a fresh queued lease after the message was sent again. `Ok(false)`: the run row
    /// exists already (a worker started the run meanwhile), which is left alone.
    pub(crate) async fn renew_queued(
        &self,
        scope: &Scope,
        record: &super::ExecutionRecord,
    ) -> StoreResult<bool> {
        let row = super::record_row_key(record)?;
        match self
            .scoped(scope)?
            .insert(
                run_row_key(&record.execution_id)?,
                Self::queued_properties(&row, Duration::ZERO),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Drops the run's lease row (absent is fine: released already, or claimed by a cleaner).
    pub(crate) async fn release(&self, scope: &Scope, execution_id: &str) -> StoreResult<()> {
        match self
            .scoped(scope)?
            .delete(&run_row_key(execution_id)?, &IfMatch::Any)
            .await
        {
            Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Extends the lease of a running execution. `Ok(false)`: the lease is gone (the run
    /// finished, or a cleaner recovered it as an orphan): the caller must stop running it.
    pub async fn renew_lease(&self, scope: &Scope, execution_id: &str) -> StoreResult<bool> {
        let mut props = Properties::new();
        props.insert(
            "LeaseUntil".into(),
            (OffsetDateTime::now_utc() + self.lease).into(),
        );
        match self
            .scoped(scope)?
            .update(
                run_row_key(execution_id)?,
                props,
                WriteMode::Merge,
                &IfMatch::Any,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Executions of `scope` running now (lease not expired), on any instance.
    pub async fn running_count(&self, scope: &Scope, now: OffsetDateTime) -> StoreResult<usize> {
        let rows = self
            .scoped(scope)?
            .query_all(
                &Query::new()
                    .filter(Column::RowKey.ge("run:") & Column::RowKey.lt("run;"))
                    .select(["LeaseUntil", "Queued"]),
            )
            .await?;
        Ok(rows
            .iter()
            .filter(|e| !is_queued(e))
            .filter(|e| {
                e.get("LeaseUntil")
                    .and_then(TableValue::as_datetime)
                    .is_some_and(|until| until > now)
            })
            .count())
    }

    /// Every lease, in every scope, that ran out before `now`. A platform job's read: the
    /// partition of each row becomes the [`Scope`] every later write goes through.
    pub async fn expired_leases(&self, now: OffsetDateTime) -> StoreResult<Vec<ExpiredLease>> {
        let rows = self
            .tables
            .query_all(
                &table_name()?,
                &Query::new()
                    .filter(Column::RowKey.ge("run:") & Column::RowKey.lt("run;"))
                    .select(["LeaseUntil", "Queued"]),
            )
            .await?;
        let mut expired = Vec::new();
        for row in rows {
            let lease_until = row.get("LeaseUntil").and_then(TableValue::as_datetime);
            if lease_until.is_some_and(|until| until > now) {
                continue;
            }
            let (Ok(scope), Some(id)) = (
                Scope::parse(row.partition_key.as_str()),
                row.row_key.as_str().strip_prefix("run:"),
            ) else {
                tracing::warn!(partition = %row.partition_key.as_str(), row = %row.row_key.as_str(), "lease row outside any scope; ignored");
                continue;
            };
            expired.push(ExpiredLease {
                scope,
                execution_id: id.to_owned(),
                lease_until,
                queued: is_queued(&row),
                etag: row.etag.clone(),
            });
        }
        Ok(expired)
    }

    /// Takes an expired lease for recovery. `Ok(false)`: someone else has it (another cleaner,
    /// or the runner renewed it after all).
    pub async fn claim_expired(&self, lease: &ExpiredLease) -> StoreResult<bool> {
        let Some(etag) = lease.etag.clone() else {
            return Ok(false);
        };
        match self
            .scoped(&lease.scope)?
            .delete(&run_row_key(&lease.execution_id)?, &IfMatch::from(etag))
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::PreconditionFailed { .. } | StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Puts a run back to `Pending` for attempt `attempt`, clearing the last attempt's outcome,
    /// if it is still in one of `from` (ETag-guarded). Returns whether it moved.
    pub async fn reset_for_retry(
        &self,
        scope: &Scope,
        execution_id: &str,
        from: &[ExecutionStatus],
        attempt: u32,
        delay: Duration,
    ) -> StoreResult<bool> {
        let table = self.scoped(scope)?;
        for _ in 0..5 {
            let Some((row, entity)) = self.record_entity(scope, execution_id).await? else {
                return Ok(false);
            };
            let mut record = self.record_from(scope, &entity.properties).await?;
            if !from.contains(&record.status) {
                return Ok(false);
            }
            let Some(etag) = entity.etag.clone() else {
                return Err(StoreError::Backend("stored record without an ETag".into()));
            };
            record.status = ExecutionStatus::Pending;
            record.attempt = attempt;
            record.result = None;
            record.result_type = None;
            record.error_type = None;
            record.error_message = None;
            record.duration_ms = None;
            record.completed_at = None;
            let props = self.properties_of(scope, &record).await?;
            let queued = Self::queued_properties(&row, delay);
            match table
                .update(row, props, WriteMode::Replace, &IfMatch::from(etag))
                .await
            {
                Ok(_) => {
                    // The attempt's lease becomes the queued lease of the next one.
                    table
                        .upsert(run_row_key(execution_id)?, queued, WriteMode::Replace)
                        .await?;
                    return Ok(true);
                }
                Err(StoreError::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::PreconditionFailed {
            what: format!("execution {execution_id}"),
        })
    }
}

fn is_queued(row: &bifrost_store::table::Entity) -> bool {
    matches!(row.get("Queued"), Some(TableValue::Boolean(true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workflow(policy: Option<Value>) -> WorkflowInfo {
        WorkflowInfo {
            name: "w".into(),
            description: String::new(),
            category: "General".into(),
            tags: vec![],
            execution_mode: bifrost_engine::ExecutionMode::Async,
            timeout_seconds: 60,
            retry_policy: policy,
            schedule: None,
            endpoint_enabled: false,
            allowed_methods: vec![],
            disable_global_key: false,
            public_endpoint: false,
            source: None,
            source_file_path: Default::default(),
            parameters: vec![],
            parameters_inferred: false,
            module: String::new(),
            function: String::new(),
            line: 1,
            is_async: false,
        }
    }

    #[test]
    fn policies_read_v1_shapes_and_back_off_exponentially() {
        assert_eq!(RetryPolicy::of(&workflow(None)), RetryPolicy::NONE);
        let p = RetryPolicy::of(&workflow(Some(
            json!({"max_attempts": 4, "backoff_seconds": 1.5}),
        )));
        assert_eq!(p.max_attempts, 4);
        assert!(p.allows(4) && !p.allows(5));
        assert_eq!(p.delay_before(2), Duration::from_millis(1500));
        assert_eq!(p.delay_before(3), Duration::from_millis(3000));
        assert_eq!(p.delay_before(4), Duration::from_millis(6000));
        let camel = RetryPolicy::of(&workflow(Some(
            json!({"maxAttempts": 50, "backoffSeconds": 10, "maxBackoffSeconds": 15}),
        )));
        assert_eq!(camel.max_attempts, MAX_ATTEMPTS, "clamped to v1's bound");
        assert_eq!(camel.delay_before(3), Duration::from_secs(15), "capped");
        let defaults = RetryPolicy::of(&workflow(Some(json!({}))));
        assert_eq!(defaults.max_attempts, 3);
        let junk = RetryPolicy::of(&workflow(Some(
            json!({"max_attempts": "many", "backoff_seconds": -1}),
        )));
        assert_eq!(junk.max_attempts, 3);
        assert_eq!(junk.backoff, Duration::from_secs(2));
    }
}

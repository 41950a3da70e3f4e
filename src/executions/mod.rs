//! Execution records: who ran which workflow, for which organization, with what outcome.
//!
//! Records live in the `Executions` table, one partition per [`Scope`], so an organization's
//! history is only reachable through its scope. Two rows per execution, written atomically in one
//! batch (same partition): `x:{reverse-ms}_{id}` holds the record and makes listings newest-first
//! without sorting; `id:{id}` points at it for lookups by id. Results larger than
//! [`INLINE_RESULT_CHARS`] go to blob storage (`execution-data/{scope}/{id}/result.json`).
//!
//! A failed run also has an `err:{id}` row (full error detail, incl. traceback), and its log lines
//! are in table `ExecutionLogs` with the same per-scope partitioning: see `logs.rs`.
//!
//! `runner.rs` is the shared execution service every entry point uses, `worker.rs` the queue
//! worker of async runs, `input.rs` the parameter checks.
//!
//! May depend on: `bifrost-store`, `bifrost-engine`, the audit log and org service. Not on HTTP.

pub mod context;
pub mod input;
mod logs;
pub mod metrics;
pub mod recovery;
mod retention;
pub mod runner;
mod status;
pub mod worker;

pub use context::{RunContext, RunRights, caller_of};
pub use logs::{LOG_BATCH, LOGS_TABLE, LogPage, MAX_LOG_PAGE, MAX_LOG_SEQUENCE, Transition};
pub use recovery::{CleanupReport, RetryPolicy};
pub use runner::{Finished, QueuedExecution, RunError, RunRequest, Runner};
pub use status::ExecutionStatus;

use std::sync::Arc;

use bifrost_engine::ExecutionOutcome;
use bifrost_store::blob::{BlobPath, BlobStore, ContainerName};
use bifrost_store::table::{
    Column, ContinuationToken, Filter, IfMatch, Properties, Query, ScopedBatch, ScopedTable,
    TableName, TableStore, Value as TableValue, WriteMode, prop,
};
use bifrost_store::{RowKey, Scope, StoreError, StoreResult};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

pub const TABLE: &str = "Executions";
pub const RESULT_CONTAINER: &str = "execution-data";
/// Results up to this many characters are stored in the record; larger ones in a blob.
pub const INLINE_RESULT_CHARS: usize = 30_000;
/// Largest page a listing returns.
pub const MAX_LIST: u16 = 1000;

/// One execution, as the API and the SDK's `executions` namespace show it (v1's shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    pub execution_id: String,
    pub workflow_name: String,
    pub org_id: Option<String>,
    pub form_id: Option<String>,
    pub executed_by: String,
    pub executed_by_email: String,
    pub executed_by_name: String,
    pub status: ExecutionStatus,
    pub input_data: Value,
    pub result: Option<Value>,
    pub result_type: Option<String>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub completed_at: Option<OffsetDateTime>,
    /// Which try this is, from 1; a retried async run counts up (see `recovery.rs`).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The rights the run was started with, for its retries (never shown).
    #[serde(skip)]
    pub rights: RunRights,
}

fn first_attempt() -> u32 {
    1
}

impl ExecutionRecord {
    /// Fills the outcome of a finished run into the record.
    pub fn complete(&mut self, outcome: &ExecutionOutcome) {
        self.status = outcome.status.into();
        self.result = outcome.result.clone();
        self.result_type = Some(
            serde_json::to_value(outcome.result_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "json".into()),
        );
        self.error_type = outcome.error.as_ref().map(|e| e.error_type.clone());
        self.error_message = outcome.error.as_ref().map(|e| e.message.clone());
        self.duration_ms = Some(outcome.duration.as_millis() as u64);
        self.completed_at = Some(OffsetDateTime::now_utc());
    }
}

/// Filters for [`Executions::list`].
#[derive(Clone, Debug, Default)]
pub struct ExecutionQuery {
    pub workflow_name: Option<String>,
    pub status: Option<ExecutionStatus>,
    /// Only this caller's executions (the rule for non-admins).
    pub executed_by: Option<String>,
    pub started_after: Option<OffsetDateTime>,
    pub started_before: Option<OffsetDateTime>,
    pub limit: Option<u16>,
    pub continuation: Option<ContinuationToken>,
}

#[derive(Clone)]
pub struct Executions {
    tables: Arc<dyn TableStore>,
    blobs: Arc<dyn BlobStore>,
    /// How long a running execution's lease lasts without a heartbeat (see `recovery.rs`).
    lease: std::time::Duration,
}

impl Executions {
    pub fn new(tables: Arc<dyn TableStore>, blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            tables,
            blobs,
            lease: recovery::DEFAULT_LEASE,
        }
    }

    /// Sets the lease of running executions (`BIFROST_EXECUTION_LEASE_SECONDS`).
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = lease.max(std::time::Duration::from_secs(1));
        self
    }

    pub fn lease(&self) -> std::time::Duration {
        self.lease
    }

    pub async fn ensure_storage(&self) -> StoreResult<()> {
        self.tables.create_table_if_missing(&table_name()?).await?;
        self.tables
            .create_table_if_missing(&logs::logs_table_name()?)
            .await?;
        self.blobs.create_container(&container()?).await
    }

    fn scoped(&self, scope: &Scope) -> StoreResult<ScopedTable> {
        Ok(ScopedTable::new(self.tables.clone(), table_name()?, scope))
    }

    /// Records a new execution (both rows in one atomic batch).
    pub async fn create(&self, scope: &Scope, record: &ExecutionRecord) -> StoreResult<()> {
        let table = self.scoped(scope)?;
        let row = record_row_key(record)?;
        let mut pointer = Properties::new();
        pointer.insert("Row".into(), TableValue::from(row.as_str()));
        let props = self.properties_of(scope, record).await?;
        let mut batch = ScopedBatch::new()
            .insert(row.clone(), props)
            .insert(id_row_key(&record.execution_id)?, pointer);
        match record.status {
            ExecutionStatus::Running => {
                batch = batch.insert(
                    recovery::run_row_key(&record.execution_id)?,
                    self.lease_properties(&row),
                );
            }
            ExecutionStatus::Pending => {
                batch = batch.insert(
                    recovery::run_row_key(&record.execution_id)?,
                    Self::queued_properties(&row, std::time::Duration::ZERO),
                );
            }
            _ => {}
        }
        table.batch(batch).await?;
        Ok(())
    }

    /// Replaces the stored record (status changes, completion). A finished or again `Pending`
    /// record gives up its lease in the same batch.
    pub async fn update(&self, scope: &Scope, record: &ExecutionRecord) -> StoreResult<()> {
        let table = self.scoped(scope)?;
        let props = self.properties_of(scope, record).await?;
        let row = record_row_key(record)?;
        if record.status.is_finished() || record.status == ExecutionStatus::Pending {
            let batch = ScopedBatch::new()
                .update(row.clone(), props.clone(), WriteMode::Replace, IfMatch::Any)
                .delete(recovery::run_row_key(&record.execution_id)?, IfMatch::Any);
            match table.batch(batch).await {
                Ok(_) => return Ok(()),
                // No lease left (a cleaner took it, or it was released before): just the record.
                Err(StoreError::BatchFailed { index: 1, source })
                    if matches!(*source, StoreError::NotFound { .. }) => {}
                Err(StoreError::BatchFailed { source, .. }) => return Err(*source),
                Err(e) => return Err(e),
            }
        }
        table
            .update(row, props, WriteMode::Replace, &IfMatch::Any)
            .await?;
        Ok(())
    }

    /// The execution with this id in this scope; `None` if it does not exist here (another
    /// scope's id is indistinguishable from a missing one).
    pub async fn get(
        &self,
        scope: &Scope,
        execution_id: &str,
    ) -> StoreResult<Option<ExecutionRecord>> {
        match self.record_entity(scope, execution_id).await? {
            Some((_, entity)) => self.record_from(scope, &entity.properties).await.map(Some),
            None => Ok(None),
        }
    }

    /// The record row (key and stored entity, with its ETag) of an execution in this scope.
    async fn record_entity(
        &self,
        scope: &Scope,
        execution_id: &str,
    ) -> StoreResult<Option<(RowKey, bifrost_store::table::Entity)>> {
        let Ok(id_key) = id_row_key(execution_id) else {
            return Ok(None);
        };
        let table = self.scoped(scope)?;
        let Some(pointer) = table.get(&id_key).await? else {
            return Ok(None);
        };
        let Some(row) = pointer.get("Row").and_then(TableValue::as_str) else {
            return Err(StoreError::Backend(format!(
                "execution {execution_id}: index row without target"
            )));
        };
        let row = RowKey::new(row)?;
        Ok(table.get(&row).await?.map(|entity| (row, entity)))
    }

    /// Newest first, filtered, one page at a time.
    pub async fn list(
        &self,
        scope: &Scope,
        query: &ExecutionQuery,
    ) -> StoreResult<(Vec<ExecutionRecord>, Option<ContinuationToken>)> {
        let table = self.scoped(scope)?;
        let mut filter: Filter = Column::RowKey.ge("x:") & Column::RowKey.lt("x;");
        if let Some(name) = &query.workflow_name {
            filter = filter & prop("WorkflowName").eq(name.as_str());
        }
        if let Some(status) = &query.status {
            filter = filter & prop("Status").eq(status.as_str());
        }
        if let Some(user) = &query.executed_by {
            filter = filter & prop("ExecutedBy").eq(user.as_str());
        }
        if let Some(after) = query.started_after {
            filter = filter & prop("StartedAt").ge(after);
        }
        if let Some(before) = query.started_before {
            filter = filter & prop("StartedAt").le(before);
        }
        let page = table
            .query(
                &Query::new()
                    .filter(filter)
                    .page_size(query.limit.unwrap_or(50).clamp(1, MAX_LIST))
                    .continuation(query.continuation.clone()),
            )
            .await?;
        let mut records = Vec::with_capacity(page.entities.len());
        for entity in &page.entities {
            records.push(self.record_from(scope, &entity.properties).await?);
        }
        Ok((records, page.continuation))
    }

    async fn properties_of(&self, scope: &Scope, r: &ExecutionRecord) -> StoreResult<Properties> {
        let mut p = Properties::new();
        let mut put = |k: &str, v: TableValue| {
            p.insert(k.to_owned(), v);
        };
        put("ExecutionId", r.execution_id.as_str().into());
        put("WorkflowName", r.workflow_name.as_str().into());
        put("ExecutedBy", r.executed_by.as_str().into());
        put("ExecutedByEmail", r.executed_by_email.as_str().into());
        put("ExecutedByName", r.executed_by_name.as_str().into());
        put("Status", r.status.as_str().into());
        put("InputData", r.input_data.to_string().into());
        put("StartedAt", r.started_at.into());
        if let Some(v) = &r.org_id {
            put("OrgId", v.as_str().into());
        }
        if let Some(v) = &r.form_id {
            put("FormId", v.as_str().into());
        }
        if let Some(v) = &r.result_type {
            put("ResultType", v.as_str().into());
        }
        if let Some(v) = &r.error_type {
            put("ErrorType", v.as_str().into());
        }
        if let Some(v) = &r.error_message {
            put("ErrorMessage", truncate(v, 8_000).into());
        }
        if let Some(v) = r.duration_ms {
            put("DurationMs", TableValue::Int64(v as i64));
        }
        if let Some(v) = r.completed_at {
            put("CompletedAt", v.into());
        }
        if r.rights.is_platform_admin {
            put("RunAsAdmin", true.into());
        }
        if r.rights.is_function_key {
            put("RunAsFunctionKey", true.into());
        }
        if r.attempt > 1 {
            put(
                "Attempt",
                TableValue::Int32(r.attempt.min(i32::MAX as u32) as i32),
            );
        }
        if let Some(result) = &r.result {
            let text = result.to_string();
            if text.chars().count() <= INLINE_RESULT_CHARS {
                put("Result", text.into());
            } else {
                self.blobs
                    .put(
                        &container()?,
                        &result_path(scope, &r.execution_id)?,
                        Bytes::from(text),
                        "application/json",
                    )
                    .await?;
                put("ResultInBlob", true.into());
            }
        }
        Ok(p)
    }

    async fn record_from(&self, scope: &Scope, p: &Properties) -> StoreResult<ExecutionRecord> {
        let text = |k: &str| p.get(k).and_then(TableValue::as_str).map(str::to_owned);
        let result = if p.get("ResultInBlob").and_then(TableValue::as_bool) == Some(true) {
            let id = text("ExecutionId").unwrap_or_default();
            let (bytes, _) = self
                .blobs
                .get(&container()?, &result_path(scope, &id)?)
                .await?;
            serde_json::from_slice(&bytes).ok()
        } else {
            text("Result").and_then(|t| serde_json::from_str(&t).ok())
        };
        Ok(ExecutionRecord {
            execution_id: text("ExecutionId").unwrap_or_default(),
            workflow_name: text("WorkflowName").unwrap_or_default(),
            org_id: text("OrgId"),
            form_id: text("FormId"),
            executed_by: text("ExecutedBy").unwrap_or_default(),
            executed_by_email: text("ExecutedByEmail").unwrap_or_default(),
            executed_by_name: text("ExecutedByName").unwrap_or_default(),
            // Every status ever written is one of v1's names; anything else is no run we know.
            status: text("Status")
                .and_then(|s| ExecutionStatus::parse(&s))
                .unwrap_or(ExecutionStatus::Failed),
            input_data: text("InputData")
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null),
            result,
            result_type: text("ResultType"),
            error_type: text("ErrorType"),
            error_message: text("ErrorMessage"),
            duration_ms: p
                .get("DurationMs")
                .and_then(TableValue::as_i64)
                .map(|v| v.max(0) as u64),
            started_at: p
                .get("StartedAt")
                .and_then(TableValue::as_datetime)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            completed_at: p.get("CompletedAt").and_then(TableValue::as_datetime),
            attempt: p
                .get("Attempt")
                .and_then(TableValue::as_i32)
                .map_or(1, |v| v.max(1) as u32),
            rights: RunRights {
                is_platform_admin: p.get("RunAsAdmin").and_then(TableValue::as_bool) == Some(true),
                is_function_key: p.get("RunAsFunctionKey").and_then(TableValue::as_bool)
                    == Some(true),
            },
        })
    }
}

fn table_name() -> StoreResult<TableName> {
    TableName::new(TABLE)
}

fn container() -> StoreResult<ContainerName> {
    ContainerName::new(RESULT_CONTAINER)
}

fn result_path(scope: &Scope, execution_id: &str) -> StoreResult<BlobPath> {
    BlobPath::new(format!("{scope}/{execution_id}/result.json"))
}

/// Execution ids are UUIDs or similar tokens; anything else cannot name a stored execution.
fn id_row_key(execution_id: &str) -> StoreResult<RowKey> {
    let ok = !execution_id.is_empty()
        && execution_id.len() <= 64
        && execution_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(StoreError::invalid("executionId", "is not an execution id"));
    }
    RowKey::new(format!("id:{execution_id}"))
}

/// Newest first: 13-digit reverse milliseconds, as v1's `9999999999999 - epoch_ms`.
fn record_row_key(record: &ExecutionRecord) -> StoreResult<RowKey> {
    id_row_key(&record.execution_id)?;
    let ms =
        (record.started_at.unix_timestamp_nanos() / 1_000_000).clamp(0, 9_999_999_999_999) as i64;
    RowKey::new(format!(
        "x:{:013}_{}",
        9_999_999_999_999 - ms,
        record.execution_id
    ))
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max_chars).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bifrost_store::OrgId;
    use bifrost_store::blob::LocalBlobs;
    use bifrost_store::table::SqliteTables;
    use serde_json::json;

    pub(super) fn record(
        id: &str,
        workflow: &str,
        by: &str,
        started: OffsetDateTime,
    ) -> ExecutionRecord {
        ExecutionRecord {
            execution_id: id.into(),
            workflow_name: workflow.into(),
            org_id: None,
            form_id: None,
            executed_by: by.into(),
            executed_by_email: format!("{by}@example.com"),
            executed_by_name: by.into(),
            status: ExecutionStatus::Running,
            input_data: json!({"name": "Ada"}),
            result: None,
            result_type: None,
            error_type: None,
            error_message: None,
            duration_ms: None,
            started_at: started,
            completed_at: None,
            attempt: 1,
            rights: Default::default(),
        }
    }

    pub(super) async fn executions(dir: &std::path::Path) -> Executions {
        let tables = Arc::new(SqliteTables::open(&dir.join("t.sqlite")).unwrap());
        let blobs = Arc::new(LocalBlobs::open(&dir.join("blobs")).unwrap());
        let e = Executions::new(tables, blobs);
        e.ensure_storage().await.unwrap();
        e
    }

    #[tokio::test]
    async fn records_round_trip_newest_first_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        let ex = executions(dir.path()).await;
        let scope = Scope::Org(OrgId::parse("org-a").unwrap());
        let t0 = OffsetDateTime::now_utc();
        for (i, (wf, by)) in [("a", "u1"), ("b", "u2"), ("a", "u2")].iter().enumerate() {
            let r = record(
                &format!("e{i}"),
                wf,
                by,
                t0 + time::Duration::seconds(i as i64),
            );
            ex.create(&scope, &r).await.unwrap();
        }
        let (all, _) = ex.list(&scope, &ExecutionQuery::default()).await.unwrap();
        let ids: Vec<_> = all.iter().map(|r| r.execution_id.as_str()).collect();
        assert_eq!(ids, ["e2", "e1", "e0"]);
        let (mine, _) = ex
            .list(
                &scope,
                &ExecutionQuery {
                    executed_by: Some("u2".into()),
                    workflow_name: Some("a".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].execution_id, "e2");

        let mut r = ex.get(&scope, "e1").await.unwrap().unwrap();
        assert_eq!(r.input_data, json!({"name": "Ada"}));
        r.status = ExecutionStatus::Success;
        r.result = Some(json!({"big": "x".repeat(INLINE_RESULT_CHARS + 10)}));
        ex.update(&scope, &r).await.unwrap();
        let back = ex.get(&scope, "e1").await.unwrap().unwrap();
        assert_eq!(back.status, ExecutionStatus::Success);
        assert_eq!(
            back.result, r.result,
            "large results round-trip through blob storage"
        );
    }

    #[tokio::test]
    async fn another_orgs_execution_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let ex = executions(dir.path()).await;
        let a = Scope::Org(OrgId::parse("org-a").unwrap());
        let b = Scope::Org(OrgId::parse("org-b").unwrap());
        ex.create(
            &a,
            &record("secret-run", "w", "u", OffsetDateTime::now_utc()),
        )
        .await
        .unwrap();
        assert!(ex.get(&b, "secret-run").await.unwrap().is_none());
        assert!(
            ex.list(&b, &ExecutionQuery::default())
                .await
                .unwrap()
                .0
                .is_empty()
        );
        assert!(
            ex.get(&a, "../x").await.unwrap().is_none(),
            "malformed ids are simply not found"
        );
    }
}

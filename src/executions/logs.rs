//! What a run produced besides its record: the captured log lines and the full error detail.
//!
//! Log lines live in the `ExecutionLogs` table, one partition per [`Scope`] (the execution's), row
//! key `{executionId}:{sequence:08}`, so "this execution's lines after sequence N" is one row-key
//! range inside the scope's partition and another scope's lines are unreachable. Lines are written
//! in batches of at most [`LOG_BATCH`] (the Table service's batch limit) and of bounded size
//! (its 4 MiB request limit), as idempotent upserts, so a retried write does not duplicate lines.
//!
//! The error detail (type, message, traceback, whether it is a `UserError`) is one row
//! `err:{executionId}` in the `Executions` partition, beside the record: the record keeps the
//! v1 shape, and the traceback is only read when an admin asks for it.
//!
//! May depend on: `bifrost-store`, `bifrost-engine`'s outcome types. Not on HTTP; who may see
//! which level is the caller's rule, not this module's.

use bifrost_engine::{ExecutionError, ExecutionOutcome, LogEntry};
use bifrost_store::table::{
    Column, IfMatch, Properties, Query, ScopedBatch, ScopedTable, TableName, Value as TableValue,
    WriteMode,
};
use bifrost_store::{RowKey, Scope, StoreError, StoreResult};
use time::OffsetDateTime;

use super::{ExecutionStatus, Executions, id_row_key, truncate};

pub const LOGS_TABLE: &str = "ExecutionLogs";
/// Most operations per batch (the Table service's limit).
pub const LOG_BATCH: usize = 100;
/// A batch is flushed early when its payload estimate passes this (the service takes 4 MiB).
const LOG_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Longest stored message and data text; longer ones are cut (a table property holds 64 KiB).
const MAX_LOG_CHARS: usize = 8_000;
const MAX_TRACEBACK_CHARS: usize = 30_000;
/// Sequence numbers are stored zero-padded to 8 digits; later lines would sort wrongly.
pub const MAX_LOG_SEQUENCE: u64 = 99_999_999;
/// Most lines [`Executions::logs`] returns per call.
pub const MAX_LOG_PAGE: u16 = 1000;

pub(super) fn logs_table_name() -> StoreResult<TableName> {
    TableName::new(LOGS_TABLE)
}

fn log_row_key(execution_id: &str, sequence: u64) -> StoreResult<RowKey> {
    RowKey::new(format!("{execution_id}:{sequence:08}"))
}

fn error_row_key(execution_id: &str) -> StoreResult<RowKey> {
    RowKey::new(format!("err:{execution_id}"))
}

/// One page of log lines, in sequence order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// The highest sequence read (including lines the caller may filter out); pass it as the next
    /// `since` to continue. `None` when nothing was read.
    pub last_sequence: Option<u64>,
    /// True when more lines may follow right away.
    pub more: bool,
}

impl Executions {
    pub(super) fn logs_table(&self, scope: &Scope) -> StoreResult<ScopedTable> {
        Ok(ScopedTable::new(
            self.tables.clone(),
            logs_table_name()?,
            scope,
        ))
    }

    /// Persists a finished run's logs and error detail. Call before [`Executions::update`]
    /// marks the record finished: readers take a finished record to mean every line is stored.
    pub async fn record_outcome(
        &self,
        scope: &Scope,
        outcome: &ExecutionOutcome,
    ) -> StoreResult<()> {
        self.append_logs(scope, &outcome.execution_id, &outcome.logs)
            .await?;
        if let Some(error) = &outcome.error {
            self.save_error(scope, &outcome.execution_id, error).await?;
        }
        Ok(())
    }

    /// Stores log lines of `execution_id` (idempotent per sequence number).
    pub async fn append_logs(
        &self,
        scope: &Scope,
        execution_id: &str,
        logs: &[LogEntry],
    ) -> StoreResult<()> {
        id_row_key(execution_id)?;
        let table = self.logs_table(scope)?;
        let mut batch = ScopedBatch::new();
        let mut bytes = 0usize;
        for entry in logs.iter().filter(|e| e.sequence <= MAX_LOG_SEQUENCE) {
            let props = log_properties(entry);
            let size = props_size(&props);
            if batch.len() >= LOG_BATCH || (bytes + size > LOG_BATCH_BYTES && !batch.is_empty()) {
                table.batch(std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += size;
            batch = batch.upsert(
                log_row_key(execution_id, entry.sequence)?,
                props,
                WriteMode::Replace,
            );
        }
        if !batch.is_empty() {
            table.batch(batch).await?;
        }
        Ok(())
    }

    /// Lines of `execution_id` with a sequence greater than `since`, at most `limit`.
    /// An id that is not an execution id has no lines.
    pub async fn logs(
        &self,
        scope: &Scope,
        execution_id: &str,
        since: u64,
        limit: u16,
    ) -> StoreResult<LogPage> {
        if id_row_key(execution_id).is_err() || since >= MAX_LOG_SEQUENCE {
            return Ok(LogPage::default());
        }
        let limit = limit.clamp(1, MAX_LOG_PAGE);
        let table = self.logs_table(scope)?;
        let from = log_row_key(execution_id, since + 1)?;
        // ';' is the character after ':', so this ends right after the last padded sequence.
        let to = format!("{execution_id};");
        let mut page = LogPage::default();
        let mut query = Query::new()
            .filter(Column::RowKey.ge(from.as_str()) & Column::RowKey.lt(to.as_str()))
            .page_size(limit);
        loop {
            let result = table.query(&query).await?;
            for entity in &result.entities {
                if page.entries.len() >= usize::from(limit) {
                    page.more = true;
                    return Ok(page);
                }
                if let Some(entry) = log_from(&entity.properties) {
                    page.last_sequence = Some(entry.sequence);
                    page.entries.push(entry);
                }
            }
            match result.continuation {
                Some(token) if page.entries.len() < usize::from(limit) => {
                    query.continuation = Some(token)
                }
                Some(_) => {
                    page.more = true;
                    return Ok(page);
                }
                None => return Ok(page),
            }
        }
    }

    async fn save_error(
        &self,
        scope: &Scope,
        execution_id: &str,
        error: &ExecutionError,
    ) -> StoreResult<()> {
        id_row_key(execution_id)?;
        let mut p = Properties::new();
        p.insert("ErrorType".into(), error.error_type.as_str().into());
        p.insert(
            "Message".into(),
            truncate(&error.message, MAX_LOG_CHARS).into(),
        );
        p.insert(
            "Traceback".into(),
            truncate(&error.traceback, MAX_TRACEBACK_CHARS).into(),
        );
        p.insert("IsUserError".into(), error.is_user_error.into());
        self.scoped(scope)?
            .upsert(error_row_key(execution_id)?, p, WriteMode::Replace)
            .await?;
        Ok(())
    }

    /// The stored error detail of a finished execution, if it failed.
    pub async fn error_detail(
        &self,
        scope: &Scope,
        execution_id: &str,
    ) -> StoreResult<Option<ExecutionError>> {
        if id_row_key(execution_id).is_err() {
            return Ok(None);
        }
        let Some(entity) = self
            .scoped(scope)?
            .get(&error_row_key(execution_id)?)
            .await?
        else {
            return Ok(None);
        };
        let text = |k: &str| {
            entity
                .get(k)
                .and_then(TableValue::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Some(ExecutionError {
            error_type: text("ErrorType"),
            message: text("Message"),
            traceback: text("Traceback"),
            is_user_error: entity.get("IsUserError").and_then(TableValue::as_bool) == Some(true),
        }))
    }

    /// Moves the record from one of `from` to `to`, unless it changed meanwhile. Returns the
    /// status found: `Ok(Some(to))` when moved, `Ok(Some(other))` when the record is in a status
    /// not in `from`, `Ok(None)` when there is no such execution in this scope.
    pub async fn transition(
        &self,
        scope: &Scope,
        execution_id: &str,
        from: &[ExecutionStatus],
        to: ExecutionStatus,
    ) -> StoreResult<Option<ExecutionStatus>> {
        Ok(
            match self.try_transition(scope, execution_id, from, to).await? {
                Transition::Moved => Some(to),
                Transition::Unchanged(current) => Some(current),
                Transition::Missing => None,
            },
        )
    }

    /// [`Executions::transition`], telling "moved" apart from "already in the target status"
    /// (a queue worker must not run an execution another worker already moved to `Running`).
    pub async fn try_transition(
        &self,
        scope: &Scope,
        execution_id: &str,
        from: &[ExecutionStatus],
        to: ExecutionStatus,
    ) -> StoreResult<Transition> {
        self.try_transition_with(scope, execution_id, from, to, Properties::new())
            .await
    }

    /// [`Executions::try_transition`] that also merges `extra` into the record. Moving to
    /// `Running` takes the run's lease (the `run:` row) in the same atomic batch; moving to a
    /// finished status or back to `Pending` releases it.
    pub async fn try_transition_with(
        &self,
        scope: &Scope,
        execution_id: &str,
        from: &[ExecutionStatus],
        to: ExecutionStatus,
        extra: Properties,
    ) -> StoreResult<Transition> {
        let Ok(id_key) = id_row_key(execution_id) else {
            return Ok(Transition::Missing);
        };
        let table = self.scoped(scope)?;
        // A finishing run replaces the record concurrently; re-read and retry when the ETag moved.
        for _ in 0..5 {
            let Some(pointer) = table.get(&id_key).await? else {
                return Ok(Transition::Missing);
            };
            let Some(row) = pointer.get("Row").and_then(TableValue::as_str) else {
                return Ok(Transition::Missing);
            };
            let row = RowKey::new(row)?;
            let Some(entity) = table.get(&row).await? else {
                return Ok(Transition::Missing);
            };
            let current = entity
                .get("Status")
                .and_then(TableValue::as_str)
                .and_then(ExecutionStatus::parse);
            match current {
                Some(status) if from.contains(&status) => {}
                // Every status ever written is one of v1's names; anything else is not runnable.
                other => {
                    return Ok(Transition::Unchanged(
                        other.unwrap_or(ExecutionStatus::Failed),
                    ));
                }
            }
            let Some(etag) = entity.etag.clone() else {
                return Err(StoreError::Backend("stored record without an ETag".into()));
            };
            let mut change = extra.clone();
            change.insert("Status".into(), to.as_str().into());
            if to == ExecutionStatus::Cancelled {
                change.insert("CompletedAt".into(), OffsetDateTime::now_utc().into());
            }
            let written = if to == ExecutionStatus::Running {
                let lease = self.lease_properties(&row);
                table
                    .batch(
                        ScopedBatch::new()
                            .update(row, change, WriteMode::Merge, IfMatch::from(etag))
                            .upsert(
                                super::recovery::run_row_key(execution_id)?,
                                lease,
                                WriteMode::Replace,
                            ),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| match e {
                        StoreError::BatchFailed { source, .. } => *source,
                        other => other,
                    })
            } else {
                table
                    .update(row, change, WriteMode::Merge, &IfMatch::from(etag))
                    .await
                    .map(|_| ())
            };
            match written {
                Ok(()) => {
                    if to.is_finished() || to == ExecutionStatus::Pending {
                        self.release(scope, execution_id).await?;
                    }
                    return Ok(Transition::Moved);
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

/// What [`Executions::try_transition`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The record was in one of the expected statuses and is now in the target one.
    Moved,
    /// The record is in this other status; nothing was written.
    Unchanged(ExecutionStatus),
    /// No such execution in this scope.
    Missing,
}

fn log_properties(entry: &LogEntry) -> Properties {
    let mut p = Properties::new();
    p.insert(
        "Seq".into(),
        TableValue::Int64(i64::try_from(entry.sequence).unwrap_or(i64::MAX)),
    );
    p.insert("LoggedAt".into(), entry.timestamp.into());
    p.insert("Level".into(), entry.level.as_str().into());
    p.insert(
        "Message".into(),
        truncate(&entry.message, MAX_LOG_CHARS).into(),
    );
    p.insert("Source".into(), entry.source.as_str().into());
    if let Some(data) = &entry.data {
        let text = data.to_string();
        // Cut JSON would not parse back; an oversized payload is replaced by a note.
        let stored = if text.chars().count() <= MAX_LOG_CHARS {
            text
        } else {
            serde_json::json!({ "truncated": true, "chars": text.chars().count() }).to_string()
        };
        p.insert("Data".into(), stored.into());
    }
    p
}

/// A rough payload size for batching: UTF-16 doubling of the text plus overhead per property.
fn props_size(p: &Properties) -> usize {
    p.values()
        .map(|v| 64 + v.as_str().map_or(16, |s| s.len() * 2))
        .sum()
}

fn log_from(p: &Properties) -> Option<LogEntry> {
    let text = |k: &str| p.get(k).and_then(TableValue::as_str).map(str::to_owned);
    Some(LogEntry {
        sequence: p
            .get("Seq")
            .and_then(TableValue::as_i64)
            .and_then(|s| u64::try_from(s).ok())?,
        timestamp: p
            .get("LoggedAt")
            .and_then(TableValue::as_datetime)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        level: text("Level").unwrap_or_default(),
        message: text("Message").unwrap_or_default(),
        source: text("Source").unwrap_or_default(),
        data: text("Data").and_then(|t| serde_json::from_str(&t).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{executions, record};
    use super::*;
    use bifrost_engine::ExecutionStatus as Outcome;
    use bifrost_store::OrgId;
    use serde_json::json;

    fn line(sequence: u64, level: &str) -> LogEntry {
        LogEntry {
            sequence,
            timestamp: OffsetDateTime::now_utc(),
            level: level.into(),
            message: format!("line {sequence}"),
            source: "logging:root".into(),
            data: (sequence == 2).then(|| json!({"k": [1, 2]})),
        }
    }

    #[tokio::test]
    async fn logs_are_stored_in_batches_and_read_by_range_within_the_scope() {
        let dir = tempfile::tempdir().unwrap();
        let ex = executions(dir.path()).await;
        let a = Scope::Org(OrgId::parse("org-a").unwrap());
        let b = Scope::Org(OrgId::parse("org-b").unwrap());
        // 250 lines: three batches; a neighbouring execution must not bleed into the range.
        let lines: Vec<_> = (1..=250).map(|i| line(i, "INFO")).collect();
        ex.append_logs(&a, "run-1", &lines).await.unwrap();
        ex.append_logs(&a, "run-10", &[line(1, "INFO")])
            .await
            .unwrap();
        ex.append_logs(&a, "run-1", &lines[..5]).await.unwrap();

        let page = ex.logs(&a, "run-1", 0, 1000).await.unwrap();
        assert_eq!(page.entries.len(), 250, "re-appending does not duplicate");
        assert_eq!(page.last_sequence, Some(250));
        assert!(!page.more);
        assert_eq!(page.entries[1].data, Some(json!({"k": [1, 2]})));
        let seqs: Vec<u64> = page.entries.iter().map(|e| e.sequence).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));

        let after = ex.logs(&a, "run-1", 240, 5).await.unwrap();
        assert_eq!(
            after.entries.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [241, 242, 243, 244, 245]
        );
        assert!(after.more);

        assert!(
            ex.logs(&b, "run-1", 0, 100)
                .await
                .unwrap()
                .entries
                .is_empty()
        );
        assert!(
            ex.logs(&a, "../x", 0, 100)
                .await
                .unwrap()
                .entries
                .is_empty()
        );
    }

    #[tokio::test]
    async fn outcome_error_detail_round_trips_and_transitions_respect_the_current_status() {
        let dir = tempfile::tempdir().unwrap();
        let ex = executions(dir.path()).await;
        let scope = Scope::Global;
        let r = record("run-2", "w", "u", OffsetDateTime::now_utc());
        ex.create(&scope, &r).await.unwrap();
        let outcome = ExecutionOutcome {
            execution_id: "run-2".into(),
            status: Outcome::Failed,
            result: None,
            result_type: None,
            error: Some(ExecutionError {
                error_type: "ValueError".into(),
                message: "bad".into(),
                traceback: "Traceback...\nValueError: bad".into(),
                is_user_error: false,
            }),
            logs: vec![line(1, "ERROR"), line(2, "TRACEBACK")],
            duration: std::time::Duration::from_millis(3),
        };
        ex.record_outcome(&scope, &outcome).await.unwrap();
        assert_eq!(
            ex.error_detail(&scope, "run-2").await.unwrap(),
            outcome.error
        );
        assert_eq!(
            ex.logs(&scope, "run-2", 0, 10).await.unwrap().entries.len(),
            2
        );
        assert!(ex.error_detail(&scope, "nope").await.unwrap().is_none());

        use ExecutionStatus::{Cancelled, Cancelling, Running};
        assert_eq!(
            ex.transition(&scope, "run-2", &[Running], Cancelling)
                .await
                .unwrap(),
            Some(Cancelling)
        );
        assert_eq!(
            ex.get(&scope, "run-2").await.unwrap().unwrap().status,
            Cancelling
        );
        assert_eq!(
            ex.transition(&scope, "run-2", &[Running], Cancelled)
                .await
                .unwrap(),
            Some(Cancelling),
            "a status outside `from` is reported, not overwritten"
        );
        assert!(
            ex.transition(
                &Scope::Org(OrgId::parse("org-x").unwrap()),
                "run-2",
                &[Running],
                Cancelled
            )
            .await
            .unwrap()
            .is_none()
        );
    }
}

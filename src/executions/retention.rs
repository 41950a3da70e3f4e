//! Forgetting old runs: what the `retention` job deletes for one scope.
//!
//! A finished execution older than the cutoff goes with everything it owns: the record and its
//! `id:` pointer, the error detail, its log lines and a result blob. Records are newest-first by
//! row key, so "started before the cutoff" is one row-key range of the scope's partition. Runs
//! still in progress are kept whatever their age. Deletes tolerate rows that are already gone,
//! so an interrupted pass (or two instances) simply finish the work.

use bifrost_store::table::{Column, IfMatch, Query, ScopedBatch, Value as TableValue};
use bifrost_store::{RowKey, Scope, StoreError, StoreResult};
use time::OffsetDateTime;

use super::logs::LOG_BATCH;
use super::{ExecutionStatus, Executions, container, id_row_key, result_path};

/// Records examined per page.
const PAGE: u16 = 200;

impl Executions {
    /// Deletes the finished executions of `scope` that started before `cutoff`; returns how
    /// many went.
    pub async fn purge_before(&self, scope: &Scope, cutoff: OffsetDateTime) -> StoreResult<usize> {
        let table = self.scoped(scope)?;
        let ms = (cutoff.unix_timestamp_nanos() / 1_000_000).clamp(0, 9_999_999_999_999) as i64;
        let first = format!("x:{:013}", 9_999_999_999_999 - ms);
        let mut purged = 0;
        let mut continuation = None;
        loop {
            let page = table
                .query(
                    &Query::new()
                        .filter(Column::RowKey.ge(first.as_str()) & Column::RowKey.lt("x;"))
                        .select(["ExecutionId", "Status", "ResultInBlob"])
                        .page_size(PAGE)
                        .continuation(continuation),
                )
                .await?;
            for entity in &page.entities {
                let status = entity
                    .get("Status")
                    .and_then(TableValue::as_str)
                    .unwrap_or("");
                let Some(id) = entity.get("ExecutionId").and_then(TableValue::as_str) else {
                    continue;
                };
                if !ExecutionStatus::parse(status).is_some_and(ExecutionStatus::is_finished) {
                    continue;
                }
                self.delete_logs(scope, id).await?;
                if entity.get("ResultInBlob").and_then(TableValue::as_bool) == Some(true) {
                    match self
                        .blobs
                        .delete(&container()?, &result_path(scope, id)?)
                        .await
                    {
                        Ok(_) | Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                for key in [
                    RowKey::new(format!("err:{id}"))?,
                    id_row_key(id)?,
                    entity.row_key.clone(),
                ] {
                    match table.delete(&key, &IfMatch::Any).await {
                        Ok(()) | Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                purged += 1;
            }
            continuation = page.continuation;
            if continuation.is_none() {
                return Ok(purged);
            }
        }
    }

    async fn delete_logs(&self, scope: &Scope, execution_id: &str) -> StoreResult<()> {
        let table = self.logs_table(scope)?;
        let lines = table
            .query_all(
                &Query::new()
                    .filter(
                        Column::RowKey.ge(format!("{execution_id}:").as_str())
                            & Column::RowKey.lt(format!("{execution_id};").as_str()),
                    )
                    .select(["Level"]),
            )
            .await?;
        for chunk in lines.chunks(LOG_BATCH) {
            let mut batch = ScopedBatch::new();
            for line in chunk {
                batch = batch.delete(line.row_key.clone(), IfMatch::Any);
            }
            match table.batch(batch).await {
                Ok(_) => {}
                // A concurrent purge took some lines first: delete the rest one by one.
                Err(StoreError::BatchFailed { .. }) => {
                    for line in chunk {
                        match table.delete(&line.row_key, &IfMatch::Any).await {
                            Ok(()) | Err(StoreError::NotFound { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

//! Azure-Tables-shaped entity storage: the [`TableStore`] contract, its typed data model and
//! filter builder, the tenant-confined [`ScopedTable`] view, and two backends —
//! [`SqliteTables`] (embedded, WAL-mode SQLite) and [`AzureTables`] (Azure Tables / Azurite).
//!
//! Must not depend on anything outside this crate. Invariants:
//! - both backends validate every input with the same code (`validate.rs`) before touching
//!   storage, and give the same answers (checked by `tests/table_conformance.rs`);
//! - queries are built only from [`Filter`] values, never from strings;
//! - tenant rows are reached through [`ScopedTable`], which pins every operation and query to
//!   `Scope::partition_key()`; the unscoped [`TableStore`] is for system tables keyed otherwise.

mod azure;
mod batch;
mod filter;
mod model;
mod scoped;
mod sqlite;
mod validate;

use async_trait::async_trait;

pub use azure::{AzureTables, AzureTablesOptions};
pub use batch::{Batch, BatchOp};
pub use filter::{CmpOp, Column, Filter, MAX_COMPARISONS, prop};
pub use model::{
    ContinuationToken, ETag, EdmType, Entity, IfMatch, MAX_PAGE_SIZE, Page, Properties, Query,
    TableName, Value, WriteMode,
};
pub use scoped::{ScopedBatch, ScopedTable};
pub use sqlite::{SqliteTables, SqliteTablesOptions};
pub use validate::{
    MAX_BATCH_BYTES, MAX_BATCH_OPERATIONS, MAX_BINARY_BYTES, MAX_ENTITY_BYTES, MAX_PROPERTIES,
    MAX_PROPERTY_NAME, MAX_STRING_UTF16,
};

use crate::error::StoreResult;
use crate::keys::{PartitionKey, RowKey};

/// The table storage contract. Every method validates its input first and returns
/// `StoreError::Invalid` (naming the field) without contacting the backend.
///
/// Errors: a missing table or entity is `NotFound`; inserting an existing entity is
/// `AlreadyExists`; a stale `If-Match` ETag is `PreconditionFailed`; an unreachable backend is
/// `Unavailable`.
#[async_trait]
pub trait TableStore: Send + Sync + std::fmt::Debug {
    /// Short backend name for logs and health output (`sqlite`, `azure`).
    fn backend(&self) -> &'static str;

    /// A cheap round trip proving the backend is reachable; `Unavailable` otherwise.
    async fn health(&self) -> StoreResult<()>;

    async fn create_table_if_missing(&self, table: &TableName) -> StoreResult<()>;

    /// Inserts a new entity; `AlreadyExists` if one has the same keys.
    async fn insert(&self, table: &TableName, entity: &Entity) -> StoreResult<ETag>;

    /// Inserts, or merges into / replaces an existing entity, unconditionally.
    async fn upsert(
        &self,
        table: &TableName,
        entity: &Entity,
        mode: WriteMode,
    ) -> StoreResult<ETag>;

    /// Merges into / replaces an existing entity; `NotFound` if missing, `PreconditionFailed` if
    /// `if_match` names a stale ETag.
    async fn update(
        &self,
        table: &TableName,
        entity: &Entity,
        mode: WriteMode,
        if_match: &IfMatch,
    ) -> StoreResult<ETag>;

    /// Deletes an entity; `NotFound` if missing, `PreconditionFailed` on a stale ETag.
    async fn delete(
        &self,
        table: &TableName,
        partition_key: &PartitionKey,
        row_key: &RowKey,
        if_match: &IfMatch,
    ) -> StoreResult<()>;

    /// Point read; `Ok(None)` if the entity does not exist (`NotFound` if the table does not).
    async fn get(
        &self,
        table: &TableName,
        partition_key: &PartitionKey,
        row_key: &RowKey,
    ) -> StoreResult<Option<Entity>>;

    /// One page of a query, ordered by PartitionKey then RowKey. Pages may be short or empty
    /// and still carry a continuation token.
    async fn query(&self, table: &TableName, query: &Query) -> StoreResult<Page>;

    /// Runs the batch atomically; one result per operation (new ETag, `None` for deletes).
    /// A failing operation aborts the whole batch with `BatchFailed { index }`.
    async fn batch(&self, table: &TableName, batch: &Batch) -> StoreResult<Vec<Option<ETag>>>;

    /// Follows continuation tokens until the query is exhausted (empty pages included).
    async fn query_all(&self, table: &TableName, query: &Query) -> StoreResult<Vec<Entity>> {
        let mut query = query.clone();
        let mut all = Vec::new();
        loop {
            let page = self.query(table, &query).await?;
            all.extend(page.entities);
            match page.continuation {
                Some(token) => query.continuation = Some(token),
                None => return Ok(all),
            }
        }
    }
}

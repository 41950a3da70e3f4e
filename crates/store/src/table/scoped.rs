//! A table view confined to one tenant's partition.
//!
//! Depends on the [`TableStore`] contract only. Invariant (tenant isolation by construction):
//! the partition key of every read, write, query and batch issued through a [`ScopedTable`] is
//! `Scope::partition_key()` of the scope it was built from. Callers pass row keys and
//! properties, never partition keys, and every query is `PartitionKey eq <scope> and (<filter>)`
//! — the caller's filter cannot widen it, whatever values it contains.

use std::sync::Arc;

use crate::error::StoreResult;
use crate::keys::{PartitionKey, RowKey};
use crate::scope::Scope;
use crate::table::TableStore;
use crate::table::batch::Batch;
use crate::table::filter::Column;
use crate::table::model::{ETag, Entity, IfMatch, Page, Properties, Query, TableName, WriteMode};

/// One tenant's (or the platform's `GLOBAL`) rows of one table.
#[derive(Clone, Debug)]
pub struct ScopedTable {
    store: Arc<dyn TableStore>,
    table: TableName,
    partition: PartitionKey,
}

impl ScopedTable {
    pub fn new(store: Arc<dyn TableStore>, table: TableName, scope: &Scope) -> Self {
        Self {
            store,
            table,
            partition: scope.partition_key(),
        }
    }

    /// The underlying store (for table management such as `create_table_if_missing`).
    pub fn store(&self) -> &Arc<dyn TableStore> {
        &self.store
    }

    pub fn table(&self) -> &TableName {
        &self.table
    }

    pub fn partition_key(&self) -> &PartitionKey {
        &self.partition
    }

    fn entity(&self, row_key: RowKey, properties: Properties) -> Entity {
        let mut entity = Entity::new(self.partition.clone(), row_key);
        entity.properties = properties;
        entity
    }

    pub async fn get(&self, row_key: &RowKey) -> StoreResult<Option<Entity>> {
        self.store.get(&self.table, &self.partition, row_key).await
    }

    pub async fn insert(&self, row_key: RowKey, properties: Properties) -> StoreResult<ETag> {
        self.store
            .insert(&self.table, &self.entity(row_key, properties))
            .await
    }

    pub async fn upsert(
        &self,
        row_key: RowKey,
        properties: Properties,
        mode: WriteMode,
    ) -> StoreResult<ETag> {
        self.store
            .upsert(&self.table, &self.entity(row_key, properties), mode)
            .await
    }

    pub async fn update(
        &self,
        row_key: RowKey,
        properties: Properties,
        mode: WriteMode,
        if_match: &IfMatch,
    ) -> StoreResult<ETag> {
        self.store
            .update(
                &self.table,
                &self.entity(row_key, properties),
                mode,
                if_match,
            )
            .await
    }

    pub async fn delete(&self, row_key: &RowKey, if_match: &IfMatch) -> StoreResult<()> {
        self.store
            .delete(&self.table, &self.partition, row_key, if_match)
            .await
    }

    /// One page of this partition's rows matching `query.filter`.
    pub async fn query(&self, query: &Query) -> StoreResult<Page> {
        self.store.query(&self.table, &self.confine(query)).await
    }

    /// All of this partition's rows matching `query.filter`, following continuations.
    pub async fn query_all(&self, query: &Query) -> StoreResult<Vec<Entity>> {
        self.store
            .query_all(&self.table, &self.confine(query))
            .await
    }

    pub async fn batch(&self, batch: ScopedBatch) -> StoreResult<Vec<Option<ETag>>> {
        let mut full = Batch::new();
        for op in batch.ops {
            full = match op {
                ScopedOp::Insert(rk, props) => full.insert(self.entity(rk, props)),
                ScopedOp::Upsert(rk, props, mode) => full.upsert(self.entity(rk, props), mode),
                ScopedOp::Update(rk, props, mode, if_match) => {
                    full.update(self.entity(rk, props), mode, if_match)
                }
                ScopedOp::Delete(rk, if_match) => full.delete(self.partition.clone(), rk, if_match),
            };
        }
        self.store.batch(&self.table, &full).await
    }

    fn confine(&self, query: &Query) -> Query {
        let mut confined = query.clone();
        let partition = Column::PartitionKey.eq(self.partition.as_str());
        confined.filter = Some(match query.filter.clone() {
            Some(filter) => partition.and(filter),
            None => partition,
        });
        confined
    }
}

#[derive(Clone, Debug)]
enum ScopedOp {
    Insert(RowKey, Properties),
    Upsert(RowKey, Properties, WriteMode),
    Update(RowKey, Properties, WriteMode, IfMatch),
    Delete(RowKey, IfMatch),
}

/// A batch against a [`ScopedTable`]: operations name row keys only.
#[derive(Clone, Debug, Default)]
pub struct ScopedBatch {
    ops: Vec<ScopedOp>,
}

impl ScopedBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(mut self, row_key: RowKey, properties: Properties) -> Self {
        self.ops.push(ScopedOp::Insert(row_key, properties));
        self
    }

    pub fn upsert(mut self, row_key: RowKey, properties: Properties, mode: WriteMode) -> Self {
        self.ops.push(ScopedOp::Upsert(row_key, properties, mode));
        self
    }

    pub fn update(
        mut self,
        row_key: RowKey,
        properties: Properties,
        mode: WriteMode,
        if_match: IfMatch,
    ) -> Self {
        self.ops
            .push(ScopedOp::Update(row_key, properties, mode, if_match));
        self
    }

    pub fn delete(mut self, row_key: RowKey, if_match: IfMatch) -> Self {
        self.ops.push(ScopedOp::Delete(row_key, if_match));
        self
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::scope::OrgId;

    #[test]
    fn hostile_filter_values_stay_inside_the_partition() {
        #[derive(Debug)]
        struct Never;
        #[async_trait::async_trait]
        impl TableStore for Never {
            fn backend(&self) -> &'static str {
                "never"
            }
            async fn health(&self) -> StoreResult<()> {
                unreachable!()
            }
            async fn create_table_if_missing(&self, _: &TableName) -> StoreResult<()> {
                unreachable!()
            }
            async fn insert(&self, _: &TableName, _: &Entity) -> StoreResult<ETag> {
                unreachable!()
            }
            async fn upsert(&self, _: &TableName, _: &Entity, _: WriteMode) -> StoreResult<ETag> {
                unreachable!()
            }
            async fn update(
                &self,
                _: &TableName,
                _: &Entity,
                _: WriteMode,
                _: &IfMatch,
            ) -> StoreResult<ETag> {
                unreachable!()
            }
            async fn delete(
                &self,
                _: &TableName,
                _: &PartitionKey,
                _: &RowKey,
                _: &IfMatch,
            ) -> StoreResult<()> {
                unreachable!()
            }
            async fn get(
                &self,
                _: &TableName,
                _: &PartitionKey,
                _: &RowKey,
            ) -> StoreResult<Option<Entity>> {
                unreachable!()
            }
            async fn query(&self, _: &TableName, _: &Query) -> StoreResult<Page> {
                unreachable!()
            }
            async fn batch(&self, _: &TableName, _: &Batch) -> StoreResult<Vec<Option<ETag>>> {
                unreachable!()
            }
        }
        let scope = Scope::Org(OrgId::parse("orgA").unwrap());
        let view = ScopedTable::new(Arc::new(Never), TableName::new("things").unwrap(), &scope);
        let hostile = Query::new().filter(Column::PartitionKey.eq("x' or PartitionKey ne '"));
        let confined = view.confine(&hostile).filter.unwrap();
        assert_eq!(
            confined.to_odata(),
            "(PartitionKey eq 'orgA') and (PartitionKey eq 'x'' or PartitionKey ne ''')"
        );
    }
}

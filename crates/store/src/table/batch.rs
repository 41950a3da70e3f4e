//! Atomic batches (Azure "entity group transactions"): up to 100 writes to one partition that
//! all succeed or all fail.
//!
//! Backend-neutral. Invariant: the rules (one partition, ≤ 100 operations, ≤ 4 MiB, each entity
//! once) are checked by `validate::validate_batch` before a backend sees the batch; a failure
//! inside a valid batch is reported as `StoreError::BatchFailed { index }` and leaves nothing
//! written.

use crate::keys::{PartitionKey, RowKey};
use crate::table::model::{Entity, IfMatch, WriteMode};

/// One write inside a [`Batch`].
#[derive(Clone, Debug, PartialEq)]
pub enum BatchOp {
    Insert(Entity),
    Upsert(Entity, WriteMode),
    Update(Entity, WriteMode, IfMatch),
    Delete {
        partition_key: PartitionKey,
        row_key: RowKey,
        if_match: IfMatch,
    },
}

impl BatchOp {
    pub fn partition_key(&self) -> &PartitionKey {
        match self {
            BatchOp::Insert(e) | BatchOp::Upsert(e, _) | BatchOp::Update(e, _, _) => {
                &e.partition_key
            }
            BatchOp::Delete { partition_key, .. } => partition_key,
        }
    }

    pub fn row_key(&self) -> &RowKey {
        match self {
            BatchOp::Insert(e) | BatchOp::Upsert(e, _) | BatchOp::Update(e, _, _) => &e.row_key,
            BatchOp::Delete { row_key, .. } => row_key,
        }
    }
}

/// An ordered list of writes to run atomically. The result of running it is one entry per
/// operation: the new ETag, or `None` for deletes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(mut self, entity: Entity) -> Self {
        self.ops.push(BatchOp::Insert(entity));
        self
    }

    pub fn upsert(mut self, entity: Entity, mode: WriteMode) -> Self {
        self.ops.push(BatchOp::Upsert(entity, mode));
        self
    }

    pub fn update(mut self, entity: Entity, mode: WriteMode, if_match: IfMatch) -> Self {
        self.ops.push(BatchOp::Update(entity, mode, if_match));
        self
    }

    pub fn delete(
        mut self,
        partition_key: PartitionKey,
        row_key: RowKey,
        if_match: IfMatch,
    ) -> Self {
        self.ops.push(BatchOp::Delete {
            partition_key,
            row_key,
            if_match,
        });
        self
    }

    pub fn push(&mut self, op: BatchOp) {
        self.ops.push(op);
    }

    pub fn operations(&self) -> &[BatchOp] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

//! Signed positions of the audit chain, kept apart from it in table `AuditAnchor`:
//! - `anchor`: the newest chain position any instance has seen written, so cutting the chain's
//!   tail (and moving its head row back) is found by verification;
//! - `checkpoint`: the newest position a verification checked from the start or from the
//!   previous checkpoint, so the next verification only walks what came after it.
//!
//! Each row carries an HMAC over its fields with the audit key, so it cannot be forged by
//! someone who can write tables but not read the secret store. Rows only move forward
//! (ETag-guarded), so a slow instance never moves the anchor back.
//!
//! Known limit (documented in ARCHITECTURE.md): someone who can write the tables may put back an
//! older signed row and cut the chain down to it; the key only stops them inventing new rows.

use bifrost_store::table::{IfMatch, Properties, ScopedTable, Value, WriteMode};
use bifrost_store::{RowKey, StoreError};

use super::key::AuditKey;
use super::log::AuditError;

/// The two signed rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    Anchor,
    Checkpoint,
}

impl Mark {
    fn row(self) -> &'static str {
        match self {
            Mark::Anchor => "anchor",
            Mark::Checkpoint => "checkpoint",
        }
    }
}

/// A chain position: entry `sequence` has hash `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub sequence: u64,
    pub hash: String,
}

/// What a stored mark says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    Absent,
    /// Its signature does not match: written by someone without the key.
    Forged,
    Valid(Position),
}

/// Reads and moves the signed marks.
#[derive(Clone, Debug)]
pub(crate) struct Marks {
    table: ScopedTable,
}

impl Marks {
    pub fn new(table: ScopedTable) -> Self {
        Self { table }
    }

    fn signature(mark: Mark, key: &AuditKey, at: &Position) -> String {
        key.mac(
            format!(
                "{}|{}|{}|{}|{}",
                mark.row(),
                at.sequence,
                at.hash,
                key.keyed_from(),
                key.id()
            )
            .as_bytes(),
        )
    }

    pub async fn read(&self, mark: Mark, key: &AuditKey) -> Result<Stored, AuditError> {
        Ok(self.read_row(mark, key).await?.0)
    }

    async fn read_row(
        &self,
        mark: Mark,
        key: &AuditKey,
    ) -> Result<(Stored, Option<bifrost_store::table::ETag>), AuditError> {
        let Some(row) = self.table.get(&RowKey::new(mark.row())?).await? else {
            return Ok((Stored::Absent, None));
        };
        let sequence = row
            .get("Seq")
            .and_then(Value::as_i64)
            .and_then(|n| u64::try_from(n).ok());
        let hash = row.get("Hash").and_then(Value::as_str);
        let mac = row.get("Mac").and_then(Value::as_str);
        let stored = match (sequence, hash, mac) {
            (Some(sequence), Some(hash), Some(mac)) => {
                let at = Position {
                    sequence,
                    hash: hash.to_owned(),
                };
                if Self::signature(mark, key, &at) == mac {
                    Stored::Valid(at)
                } else {
                    Stored::Forged
                }
            }
            _ => Stored::Forged,
        };
        Ok((stored, row.etag.clone()))
    }

    /// Moves `mark` to `at` unless it is already there or further; a forged or unreadable row
    /// is replaced.
    pub async fn advance(
        &self,
        mark: Mark,
        key: &AuditKey,
        at: &Position,
    ) -> Result<(), AuditError> {
        for _ in 0..5 {
            let (stored, etag) = self.read_row(mark, key).await?;
            if let Stored::Valid(current) = &stored
                && current.sequence >= at.sequence
            {
                return Ok(());
            }
            let mut row = Properties::new();
            row.insert(
                "Seq".into(),
                Value::Int64(i64::try_from(at.sequence).unwrap_or(i64::MAX)),
            );
            row.insert("Hash".into(), at.hash.as_str().into());
            row.insert("Mac".into(), Self::signature(mark, key, at).into());
            let rk = RowKey::new(mark.row())?;
            let written = match etag {
                Some(etag) => {
                    self.table
                        .update(rk, row, WriteMode::Replace, &IfMatch::ETag(etag))
                        .await
                }
                None => self.table.insert(rk, row).await,
            };
            match written {
                Ok(_) => return Ok(()),
                // Another writer moved it meanwhile: look again.
                Err(StoreError::PreconditionFailed { .. } | StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bifrost_store::Scope;
    use bifrost_store::table::{SqliteTables, TableName, TableStore};
    use std::sync::Arc;

    #[tokio::test]
    async fn marks_are_signed_and_only_move_forward() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TableStore> =
            Arc::new(SqliteTables::open(&dir.path().join("t.sqlite")).unwrap());
        let name = TableName::new("AuditAnchor").unwrap();
        store.create_table_if_missing(&name).await.unwrap();
        let marks = Marks::new(ScopedTable::new(
            store.clone(),
            name.clone(),
            &Scope::Global,
        ));
        let key = AuditKey::new("k1", [1u8; 32], 1);
        assert_eq!(
            marks.read(Mark::Anchor, &key).await.unwrap(),
            Stored::Absent
        );
        let at = |n: u64| Position {
            sequence: n,
            hash: format!("{n:064}"),
        };
        marks.advance(Mark::Anchor, &key, &at(5)).await.unwrap();
        marks.advance(Mark::Anchor, &key, &at(3)).await.unwrap();
        assert_eq!(
            marks.read(Mark::Anchor, &key).await.unwrap(),
            Stored::Valid(at(5))
        );
        // Another key (someone who wrote the row without ours) reads as forged.
        let other = AuditKey::new("k1", [2u8; 32], 1);
        assert_eq!(
            marks.read(Mark::Anchor, &other).await.unwrap(),
            Stored::Forged
        );
        // The checkpoint is a separate mark.
        assert_eq!(
            marks.read(Mark::Checkpoint, &key).await.unwrap(),
            Stored::Absent
        );
    }
}

//! Validation shared by both table backends, run before any request or write.
//!
//! Depends only on the model types. Invariant: an entity, query or batch that passes here is
//! accepted by Azure Tables and Azurite alike, and the embedded backend accepts exactly the same
//! set — so code that works locally works in Azure. Errors name the offending field.

use std::collections::HashSet;

use time::macros::datetime;

use crate::error::{StoreError, StoreResult};
use crate::table::batch::{Batch, BatchOp};
use crate::table::model::{Entity, MAX_PAGE_SIZE, Query, Value};

/// User properties per entity (255 minus PartitionKey, RowKey, Timestamp).
pub const MAX_PROPERTIES: usize = 252;
/// Longest property name, in characters.
pub const MAX_PROPERTY_NAME: usize = 255;
/// Edm.String limit: 64 KiB of UTF-16, i.e. 32,768 code units.
pub const MAX_STRING_UTF16: usize = 32 * 1024;
/// Edm.Binary limit.
pub const MAX_BINARY_BYTES: usize = 64 * 1024;
/// Entity size limit, by Azure's own accounting (see [`entity_size`]).
pub const MAX_ENTITY_BYTES: usize = 1024 * 1024;
/// Operations per entity group transaction.
pub const MAX_BATCH_OPERATIONS: usize = 100;
/// Payload limit of an entity group transaction.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

const SYSTEM_PROPERTIES: [&str; 3] = ["PartitionKey", "RowKey", "Timestamp"];

/// Property names are C#-identifier style. We accept the ASCII subset
/// (`[A-Za-z_][A-Za-z0-9_]*`), which both Azure and Azurite accept and which is safe in OData.
pub(crate) fn validate_property_name(name: &str) -> StoreResult<()> {
    let field = || format!("property name {name:?}");
    let mut chars = name.chars();
    if !chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    {
        return Err(StoreError::invalid(
            field(),
            "must start with a letter or '_'",
        ));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StoreError::invalid(
            field(),
            "may contain only letters, digits and '_'",
        ));
    }
    if name.len() > MAX_PROPERTY_NAME {
        return Err(StoreError::invalid(
            field(),
            format!("longer than {MAX_PROPERTY_NAME} characters"),
        ));
    }
    if SYSTEM_PROPERTIES.contains(&name) {
        return Err(StoreError::invalid(
            field(),
            "is a system property and cannot be set",
        ));
    }
    Ok(())
}

fn validate_value(name: &str, value: &Value) -> StoreResult<()> {
    let field = || format!("property {name:?}");
    match value {
        Value::String(s) if s.encode_utf16().count() > MAX_STRING_UTF16 => {
            Err(StoreError::invalid(
                field(),
                format!("string longer than {MAX_STRING_UTF16} UTF-16 code units (64 KiB)"),
            ))
        }
        Value::Binary(b) if b.len() > MAX_BINARY_BYTES => Err(StoreError::invalid(
            field(),
            format!("binary value longer than {MAX_BINARY_BYTES} bytes"),
        )),
        Value::DateTime(d) => {
            let d = d.to_offset(time::UtcOffset::UTC);
            if d < datetime!(1601-01-01 0:00 UTC)
                || d > datetime!(9999-12-31 23:59:59.999_999_999 UTC)
            {
                Err(StoreError::invalid(
                    field(),
                    "DateTime must be between 1601-01-01 and 9999-12-31 (UTC)",
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Azure's size accounting: 4 bytes + 2 bytes per key character + for each property
/// 8 bytes + 2 bytes per name character + the value's size.
pub(crate) fn entity_size(entity: &Entity) -> usize {
    let utf16 = |s: &str| s.encode_utf16().count() * 2;
    4 + utf16(entity.partition_key.as_str())
        + utf16(entity.row_key.as_str())
        + entity
            .properties
            .iter()
            .map(|(name, value)| {
                8 + utf16(name)
                    + match value {
                        Value::String(s) => 4 + utf16(s),
                        Value::Binary(b) => 4 + b.len(),
                        Value::Int32(_) => 4,
                        Value::Int64(_) | Value::Double(_) | Value::DateTime(_) => 8,
                        Value::Boolean(_) => 1,
                        Value::Guid(_) => 16,
                    }
            })
            .sum::<usize>()
}

/// Checks an entity about to be written.
pub(crate) fn validate_entity(entity: &Entity) -> StoreResult<()> {
    if entity.properties.len() > MAX_PROPERTIES {
        return Err(StoreError::invalid(
            "properties",
            format!(
                "{} user properties; at most {MAX_PROPERTIES} are allowed",
                entity.properties.len()
            ),
        ));
    }
    for (name, value) in &entity.properties {
        validate_property_name(name)?;
        validate_value(name, value)?;
    }
    let size = entity_size(entity);
    if size > MAX_ENTITY_BYTES {
        return Err(StoreError::invalid(
            "entity",
            format!("is {size} bytes; at most {MAX_ENTITY_BYTES} (1 MiB) are allowed"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_query(query: &Query) -> StoreResult<()> {
    let size = query.effective_page_size();
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(StoreError::invalid(
            "page size",
            format!("must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    if let Some(filter) = &query.filter {
        filter.validate()?;
    }
    if let Some(select) = &query.select {
        if select.is_empty() {
            return Err(StoreError::invalid(
                "select",
                "must name at least one property",
            ));
        }
        for name in select {
            if !SYSTEM_PROPERTIES.contains(&name.as_str()) {
                validate_property_name(name)?;
            }
        }
    }
    if let Some(token) = &query.continuation {
        token.position()?;
    }
    Ok(())
}

/// Batch rules: one partition, at most 100 operations and 4 MiB, each row key once.
pub(crate) fn validate_batch(batch: &Batch) -> StoreResult<()> {
    let ops = batch.operations();
    if ops.len() > MAX_BATCH_OPERATIONS {
        return Err(StoreError::invalid(
            "batch",
            format!(
                "has {} operations; at most {MAX_BATCH_OPERATIONS} are allowed",
                ops.len()
            ),
        ));
    }
    let Some(first) = ops.first() else {
        return Ok(());
    };
    let partition = first.partition_key();
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for (index, op) in ops.iter().enumerate() {
        if op.partition_key() != partition {
            return Err(StoreError::invalid(
                format!("batch[{index}].PartitionKey"),
                "all operations of a batch must share one partition key",
            ));
        }
        if !seen.insert(op.row_key()) {
            return Err(StoreError::invalid(
                format!("batch[{index}].RowKey"),
                "an entity may appear only once in a batch",
            ));
        }
        match op {
            BatchOp::Insert(e) | BatchOp::Upsert(e, _) | BatchOp::Update(e, _, _) => {
                validate_entity(e).map_err(|err| StoreError::BatchFailed {
                    index,
                    source: Box::new(err),
                })?;
                total += entity_size(e);
            }
            BatchOp::Delete { .. } => total += 256,
        }
    }
    if total > MAX_BATCH_BYTES {
        return Err(StoreError::invalid(
            "batch",
            format!("is about {total} bytes; at most {MAX_BATCH_BYTES} (4 MiB) are allowed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::keys::{PartitionKey, RowKey};

    fn entity() -> Entity {
        Entity::new(PartitionKey::new("p").unwrap(), RowKey::new("r").unwrap())
    }

    #[test]
    fn property_names() {
        for ok in ["a", "_x", "Name1", &"a".repeat(255)] {
            assert!(validate_property_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "a-b",
            "a b",
            "é",
            "PartitionKey",
            "RowKey",
            "Timestamp",
            &"a".repeat(256),
        ] {
            assert!(validate_property_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn value_limits() {
        assert!(validate_entity(&entity().with("S", "x".repeat(MAX_STRING_UTF16))).is_ok());
        let err =
            validate_entity(&entity().with("S", "x".repeat(MAX_STRING_UTF16 + 1))).unwrap_err();
        assert!(err.to_string().contains("\"S\""), "{err}");
        assert!(validate_entity(&entity().with("B", vec![0u8; MAX_BINARY_BYTES + 1])).is_err());
        let old = time::macros::datetime!(1600-12-31 23:59:59 UTC);
        assert!(validate_entity(&entity().with("D", old)).is_err());
    }
}

//! The Azure Tables data model shared by both table backends: table names, typed property values,
//! entities, ETags, queries, pages and continuation tokens.
//!
//! Depends only on `crate::keys`/`crate::error`; knows nothing about SQLite or HTTP.
//! Invariants: a [`TableName`] is always valid; [`Value::DateTime`] values are stored with
//! 100-ns precision (what Azure keeps), so both backends truncate identically; a
//! [`ContinuationToken`] is opaque to callers and only its backend can read it.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::keys::{PartitionKey, RowKey};
use crate::table::filter::Filter;

/// Most entities one query page may hold (Azure's limit, also the default page size).
pub const MAX_PAGE_SIZE: u16 = 1000;

/// A validated table name: `^[A-Za-z][A-Za-z0-9]{2,62}$`, not the reserved name `tables`.
/// Names are case-insensitive (as in Azure); the spelling given is kept for requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName(String);

impl TableName {
    pub fn new(value: impl Into<String>) -> StoreResult<Self> {
        let value = value.into();
        let field = "table name";
        let mut chars = value.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
            return Err(StoreError::invalid(
                field,
                "must start with a letter (A-Z, a-z)",
            ));
        }
        if !chars.all(|c| c.is_ascii_alphanumeric()) {
            return Err(StoreError::invalid(
                field,
                "may contain only letters and digits",
            ));
        }
        if !(3..=63).contains(&value.len()) {
            return Err(StoreError::invalid(
                field,
                "must be 3 to 63 characters long",
            ));
        }
        if value.eq_ignore_ascii_case("tables") {
            return Err(StoreError::invalid(field, "'tables' is reserved"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form used to compare names, as Azure does.
    pub(crate) fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Edm type of a property value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdmType {
    String,
    Int32,
    Int64,
    Double,
    Boolean,
    DateTime,
    Guid,
    Binary,
}

impl EdmType {
    /// The `@odata.type` annotation value, e.g. `Edm.Int64`.
    pub fn odata_name(self) -> &'static str {
        match self {
            EdmType::String => "Edm.String",
            EdmType::Int32 => "Edm.Int32",
            EdmType::Int64 => "Edm.Int64",
            EdmType::Double => "Edm.Double",
            EdmType::Boolean => "Edm.Boolean",
            EdmType::DateTime => "Edm.DateTime",
            EdmType::Guid => "Edm.Guid",
            EdmType::Binary => "Edm.Binary",
        }
    }

    pub(crate) fn from_odata_name(name: &str) -> Option<Self> {
        Some(match name {
            "Edm.String" => EdmType::String,
            "Edm.Int32" => EdmType::Int32,
            "Edm.Int64" => EdmType::Int64,
            "Edm.Double" => EdmType::Double,
            "Edm.Boolean" => EdmType::Boolean,
            "Edm.DateTime" => EdmType::DateTime,
            "Edm.Guid" => EdmType::Guid,
            "Edm.Binary" => EdmType::Binary,
            _ => return None,
        })
    }
}

/// A typed property value. There is no null: omit a property instead (as in Azure).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    String(String),
    Int32(i32),
    Int64(i64),
    Double(f64),
    Boolean(bool),
    /// UTC instant; kept with 100-ns precision by both backends.
    DateTime(OffsetDateTime),
    Guid(Uuid),
    Binary(Vec<u8>),
}

impl Value {
    pub fn edm_type(&self) -> EdmType {
        match self {
            Value::String(_) => EdmType::String,
            Value::Int32(_) => EdmType::Int32,
            Value::Int64(_) => EdmType::Int64,
            Value::Double(_) => EdmType::Double,
            Value::Boolean(_) => EdmType::Boolean,
            Value::DateTime(_) => EdmType::DateTime,
            Value::Guid(_) => EdmType::Guid,
            Value::Binary(_) => EdmType::Binary,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Value::Int32(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int64(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Double(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_datetime(&self) -> Option<OffsetDateTime> {
        match self {
            Value::DateTime(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_guid(&self) -> Option<Uuid> {
        match self {
            Value::Guid(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Value::Binary(v) => Some(v),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int32(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int64(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<OffsetDateTime> for Value {
    fn from(v: OffsetDateTime) -> Self {
        Value::DateTime(v)
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Value::Guid(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Binary(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Binary(v.to_vec())
    }
}

/// User properties of an entity, by name (case-sensitive).
pub type Properties = BTreeMap<String, Value>;

/// An opaque entity version. Changes on every write; send it back byte-for-byte in `If-Match`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ETag(String);

impl ETag {
    /// Wraps an ETag previously returned by a store (e.g. echoed back by an HTTP client).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `If-Match` condition of an update or delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// Unconditional (`If-Match: *`): the entity must exist.
    Any,
    /// Only if the entity still has this ETag; otherwise `PreconditionFailed`.
    ETag(ETag),
}

impl From<ETag> for IfMatch {
    fn from(etag: ETag) -> Self {
        IfMatch::ETag(etag)
    }
}

impl From<&ETag> for IfMatch {
    fn from(etag: &ETag) -> Self {
        IfMatch::ETag(etag.clone())
    }
}

/// How an update or upsert treats properties the new entity does not mention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Keep them (Azure `MERGE`).
    Merge,
    /// Remove them (Azure `PUT`).
    Replace,
}

/// One stored row: keys, user properties and the store-managed `Timestamp` and ETag.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    pub partition_key: PartitionKey,
    pub row_key: RowKey,
    pub properties: Properties,
    /// Set by the store on every write; ignored on input.
    pub timestamp: Option<OffsetDateTime>,
    /// Set by the store on every write; ignored on input (pass [`IfMatch`] instead).
    pub etag: Option<ETag>,
}

impl Entity {
    pub fn new(partition_key: PartitionKey, row_key: RowKey) -> Self {
        Self {
            partition_key,
            row_key,
            properties: Properties::new(),
            timestamp: None,
            etag: None,
        }
    }

    /// Builder-style property setter.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.properties.insert(name.into(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.properties.get(name)
    }
}

/// Where the next page of a query starts. Opaque: callers hand it back unchanged (it is URL-safe
/// base64, so it can travel through an HTTP API as is).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContinuationToken(String);

impl ContinuationToken {
    /// Accepts a token string previously produced by [`ContinuationToken::as_str`].
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Both backends continue at a `(next partition key, next row key)` position.
    pub(crate) fn from_position(partition_key: &str, row_key: Option<&str>) -> Self {
        let json = serde_json::json!([partition_key, row_key]);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string()))
    }

    pub(crate) fn position(&self) -> StoreResult<(String, Option<String>)> {
        let bad = || {
            StoreError::invalid(
                "continuation",
                "not a continuation token issued by this store",
            )
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&self.0)
            .map_err(|_| bad())?;
        serde_json::from_slice::<(String, Option<String>)>(&raw).map_err(|_| bad())
    }
}

impl fmt::Display for ContinuationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A query over a table: an optional typed filter, an optional projection, a page size
/// (1..=1000, default 1000) and where to continue.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    pub filter: Option<Filter>,
    /// Property names to return (`$select`); keys, Timestamp and ETag always come back.
    pub select: Option<Vec<String>>,
    pub page_size: Option<u16>,
    pub continuation: Option<ContinuationToken>,
}

impl Query {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    pub fn select<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.select = Some(names.into_iter().map(Into::into).collect());
        self
    }

    pub fn page_size(mut self, size: u16) -> Self {
        self.page_size = Some(size);
        self
    }

    pub fn continuation(mut self, token: Option<ContinuationToken>) -> Self {
        self.continuation = token;
        self
    }

    pub(crate) fn effective_page_size(&self) -> u16 {
        self.page_size.unwrap_or(MAX_PAGE_SIZE)
    }
}

/// One page of query results, ordered by PartitionKey then RowKey. A page may be empty and still
/// carry a continuation: keep asking until `continuation` is `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub entities: Vec<Entity>,
    pub continuation: Option<ContinuationToken>,
}

/// 100-ns ticks since the Unix epoch (negative before 1970), the DateTime precision Azure keeps.
pub(crate) fn datetime_to_ticks(value: OffsetDateTime) -> i64 {
    // Within 1601..=9999 the tick count is about ±2.5e18, inside i64.
    (value.unix_timestamp_nanos().div_euclid(100)) as i64
}

pub(crate) fn ticks_to_datetime(ticks: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ticks) * 100)
        .map_err(|e| StoreError::Backend(format!("stored DateTime out of range: {e}")))
}

/// Truncates to 100 ns, as Azure stores it.
pub(crate) fn truncate_datetime(value: OffsetDateTime) -> OffsetDateTime {
    let value = value.to_offset(time::UtcOffset::UTC);
    let nanos = value.nanosecond();
    value
        .replace_nanosecond(nanos - nanos % 100)
        .unwrap_or(value)
}

/// `YYYY-MM-DDThh:mm:ss.fffffffZ`, the form Azure uses for Edm.DateTime.
pub(crate) fn format_datetime(value: OffsetDateTime) -> String {
    let v = truncate_datetime(value);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        v.year(),
        u8::from(v.month()),
        v.day(),
        v.hour(),
        v.minute(),
        v.second(),
        v.nanosecond() / 100
    )
}

pub(crate) fn parse_datetime(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        for ok in ["abc", "Users", "a1b2c3", &"a".repeat(63)] {
            assert!(TableName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "1abc",
            "ab-c",
            "ab c",
            "tables",
            "Tables",
            &"a".repeat(64),
            "abç",
        ] {
            let err = TableName::new(bad).unwrap_err();
            assert!(err.to_string().contains("table name"), "{bad}: {err}");
        }
    }

    #[test]
    fn datetime_format_and_ticks_round_trip() {
        let dt = time::macros::datetime!(1601-01-01 00:00:00.123_456_789 UTC);
        assert_eq!(format_datetime(dt), "1601-01-01T00:00:00.1234567Z");
        let truncated = truncate_datetime(dt);
        assert_eq!(
            ticks_to_datetime(datetime_to_ticks(truncated)).unwrap(),
            truncated
        );
        assert_eq!(parse_datetime(&format_datetime(dt)).unwrap(), truncated);
        let late = time::macros::datetime!(9999-12-31 23:59:59.999_999_9 UTC);
        assert_eq!(ticks_to_datetime(datetime_to_ticks(late)).unwrap(), late);
    }

    #[test]
    fn continuation_tokens_round_trip_and_reject_garbage() {
        let t = ContinuationToken::from_position("p'1", Some("r/2"));
        assert_eq!(
            t.position().unwrap(),
            ("p'1".to_owned(), Some("r/2".to_owned()))
        );
        let err = ContinuationToken::new("%%%").position().unwrap_err();
        assert!(err.to_string().contains("continuation"), "{err}");
    }
}

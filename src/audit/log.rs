//! The stored audit chain: append (concurrency-safe across instances), filtered listing, and
//! chain verification.
//!
//! Depends on the table contract only. Table `AuditLog`, one chain in partition `GLOBAL`:
//! - entry rows, RowKey = sequence zero-padded to 20 digits (so RowKey order is chain order):
//!   `Seq` (Int64), `OccurredAt` (DateTime, µs), `EventType`, `Actor`, `Scope` (`GLOBAL` or org
//!   id), `Details` (canonical JSON text), `PrevHash`, `Hash`;
//! - the `head` row (sorts after every digit): `Seq`, `Hash` of the newest entry.
//!
//! Invariant: entries and the head row are written in one atomic batch that inserts the entry
//! rows (one or, for a group of concurrent appends, several consecutive ones) before it moves
//! the head. A taken sequence number fails the batch, so exactly one appender wins each number;
//! the losers re-read the head and retry. Hence no forks and no gaps, on any number of
//! instances.

use std::sync::Arc;
use std::time::Duration;

use bifrost_store::table::{
    Column, ContinuationToken, Entity, MAX_PAGE_SIZE, Properties, Query, ScopedBatch, ScopedTable,
    TableName, TableStore, Value, WriteMode, prop,
};
use bifrost_store::{RowKey, Scope, StoreError};
use rand::Rng as _;
use serde_json::Value as Json;
use time::OffsetDateTime;

use crate::audit::event::{
    AuditEntry, AuditEvent, AuditEventType, GENESIS_HASH, canonical_json, entry_hash,
};

/// The table holding the chain.
pub const AUDIT_TABLE: &str = "AuditLog";
/// Longest actor string accepted.
pub const MAX_ACTOR_LEN: usize = 256;
/// Largest canonical details JSON accepted, in bytes (well inside a 64 KiB table property).
pub const MAX_DETAILS_BYTES: usize = 16 * 1024;
/// Default page size of [`AuditLog::list`].
pub const DEFAULT_PAGE_SIZE: u16 = 100;

const HEAD_ROW: &str = "head";
/// Entry row keys are digits; `:` is the next character after `9`.
const ENTRY_ROWS_END: &str = ":";
/// Appends give up after this many lost races (each one means another writer made progress).
const MAX_APPEND_ATTEMPTS: u32 = 200;

#[derive(Clone, Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },

    #[error(
        "audit field '{field}' looks like a secret value or a raw key; record key ids and secret \
         names, never values"
    )]
    SensitiveDetail { field: String },

    #[error("audit log head kept moving; gave up after {attempts} attempts")]
    Contention { attempts: u32 },

    #[error("audit entry {row_key} is malformed: {reason}")]
    Malformed { row_key: String, reason: String },

    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Filters of [`AuditLog::list`]; all optional and combined with "and".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditQuery {
    /// Entries at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Entries strictly before this instant.
    pub until: Option<OffsetDateTime>,
    pub event_type: Option<AuditEventType>,
    /// Only entries recorded in this scope (an org, or GLOBAL).
    pub scope: Option<Scope>,
    /// 1..=1000, default 100.
    pub page_size: Option<u16>,
    pub continuation: Option<ContinuationToken>,
}

/// One page of entries in chain order. May be short or empty and still carry a continuation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub continuation: Option<ContinuationToken>,
}

/// Result of [`AuditLog::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub ok: bool,
    /// Entries verified before the first break (all of them when `ok`).
    pub checked: u64,
    pub first_broken: Option<BrokenLink>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    pub sequence: u64,
    pub reason: BreakReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakReason {
    /// The entry's stored hash does not match its contents (the entry was edited).
    HashMismatch,
    /// The entry's `PrevHash` is not the previous entry's hash (an earlier entry was replaced,
    /// or entries were reordered).
    WrongPreviousHash,
    /// No entry has this sequence number although later ones (or the head) exist.
    MissingSequence,
    /// A field is missing or of the wrong type.
    Malformed { field: String },
    /// The head row disagrees with the newest entry.
    HeadMismatch,
}

/// The audit log service. One per process; share it behind an `Arc`.
#[derive(Debug)]
pub struct AuditLog {
    table: ScopedTable,
    /// The head as last seen by this instance; appends are serialized per instance so they do
    /// not race each other, only other instances.
    head: Arc<tokio::sync::Mutex<Option<Head>>>,
    /// Events waiting for the next group write (see [`AuditLog::append`]).
    waiting: Arc<std::sync::Mutex<Vec<Waiting>>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    sequence: u64,
    hash: String,
}

impl Head {
    fn genesis() -> Self {
        Self {
            sequence: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }
}

/// An entry row's stored values, as hashed.
struct RawEntry {
    sequence: u64,
    timestamp: OffsetDateTime,
    event_type: String,
    actor: String,
    scope: String,
    details: String,
    prev_hash: String,
    hash: String,
}

impl RawEntry {
    fn computed_hash(&self) -> String {
        entry_hash(
            self.sequence,
            self.timestamp,
            &self.event_type,
            &self.actor,
            &self.scope,
            &self.details,
            &self.prev_hash,
        )
    }

    fn into_entry(self, row_key: &str) -> Result<AuditEntry, AuditError> {
        let malformed = |reason: String| AuditError::Malformed {
            row_key: row_key.to_owned(),
            reason,
        };
        let details = match serde_json::from_str::<Json>(&self.details) {
            Ok(Json::Object(map)) => map,
            _ => return Err(malformed("Details is not a JSON object".into())),
        };
        Ok(AuditEntry {
            sequence: self.sequence,
            timestamp: self.timestamp,
            event_type: self.event_type.parse().map_err(malformed)?,
            actor: self.actor,
            scope: Scope::parse(&self.scope).map_err(|e| malformed(e.to_string()))?,
            details,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

impl AuditLog {
    /// Opens the log over `store`, creating the `AuditLog` table if missing.
    pub async fn open(store: Arc<dyn TableStore>) -> Result<Self, AuditError> {
        let log = Self::new(store)?;
        log.ensure_table().await?;
        Ok(log)
    }

    /// The log without touching storage; call [`AuditLog::ensure_table`] before first use.
    pub fn new(store: Arc<dyn TableStore>) -> Result<Self, AuditError> {
        Ok(Self {
            table: ScopedTable::new(store, TableName::new(AUDIT_TABLE)?, &Scope::Global),
            head: Arc::new(tokio::sync::Mutex::new(None)),
            waiting: Arc::default(),
        })
    }

    pub async fn ensure_table(&self) -> Result<(), AuditError> {
        Ok(self
            .table
            .store()
            .create_table_if_missing(self.table.table())
            .await?)
    }

    /// Appends `event` as the next link of the chain and returns the stored entry.
    ///
    /// Appends of one instance are chained in groups: while one group is being written, the
    /// events that arrive wait, and the next writer links all of them in one batch. Under load
    /// that is one storage round trip for many events instead of one each, in sequence.
    pub async fn append(&self, event: AuditEvent) -> Result<AuditEntry, AuditError> {
        let details = Self::check(&event)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        lock(&self.waiting).push(Waiting {
            event,
            details,
            reply,
        });
        let known = self.head.clone().lock_owned().await;
        let group = std::mem::take(&mut *lock(&self.waiting));
        if group.is_empty() {
            // An earlier writer took this event into its group.
            drop(known);
        } else {
            // Its own task, so the group is written even if this caller stops waiting.
            let write = tokio::spawn(write_group(self.table.clone(), known, group));
            if write.await.is_err() {
                tracing::error!("an audit group write failed unexpectedly");
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(AuditError::Store(StoreError::Backend(
                "the audit append was interrupted".into(),
            )))
        })
    }

    /// The event's canonical details, if the event may be stored.
    fn check(event: &AuditEvent) -> Result<String, AuditError> {
        if event.actor.trim().is_empty() || event.actor.chars().count() > MAX_ACTOR_LEN {
            return Err(AuditError::Invalid {
                field: "actor".into(),
                reason: format!("must be 1 to {MAX_ACTOR_LEN} characters"),
            });
        }
        if let Some(field) = event.sensitive_field() {
            return Err(AuditError::SensitiveDetail { field });
        }
        let details = canonical_json(&Json::Object(event.details.clone()));
        if details.len() > MAX_DETAILS_BYTES {
            return Err(AuditError::Invalid {
                field: "details".into(),
                reason: format!(
                    "{} bytes of canonical JSON; at most {MAX_DETAILS_BYTES}",
                    details.len()
                ),
            });
        }
        Ok(details)
    }

    /// One page of entries matching `query`, in chain order.
    pub async fn list(&self, query: &AuditQuery) -> Result<AuditPage, AuditError> {
        let page_size = query.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(AuditError::Invalid {
                field: "page_size".into(),
                reason: format!("must be 1 to {MAX_PAGE_SIZE}"),
            });
        }
        let mut filter = entry_rows();
        if let Some(since) = query.since {
            filter = filter.and(prop("OccurredAt").ge(since));
        }
        if let Some(until) = query.until {
            filter = filter.and(prop("OccurredAt").lt(until));
        }
        if let Some(event_type) = query.event_type {
            filter = filter.and(prop("EventType").eq(event_type.as_str()));
        }
        if let Some(scope) = &query.scope {
            filter = filter.and(prop("Scope").eq(scope.to_string()));
        }
        let page = self
            .table
            .query(
                &Query::new()
                    .filter(filter)
                    .page_size(page_size)
                    .continuation(query.continuation.clone()),
            )
            .await?;
        let entries = page
            .entities
            .iter()
            .map(|e| raw_entry(e).and_then(|raw| raw.into_entry(e.row_key.as_str())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AuditPage {
            entries,
            continuation: page.continuation,
        })
    }

    /// Walks the whole chain and reports the first broken link, if any.
    pub async fn verify(&self) -> Result<VerifyReport, AuditError> {
        let mut expected: u64 = 1;
        let mut prev_hash = GENESIS_HASH.to_owned();
        let mut checked: u64 = 0;
        let broken = |checked, sequence, reason| VerifyReport {
            ok: false,
            checked,
            first_broken: Some(BrokenLink { sequence, reason }),
        };
        let mut query = Query::new().filter(entry_rows()).page_size(MAX_PAGE_SIZE);
        loop {
            let page = self.table.query(&query).await?;
            for entity in &page.entities {
                let sequence = match entity.row_key.as_str().parse::<u64>() {
                    Ok(s) => s,
                    Err(_) => {
                        return Ok(broken(
                            checked,
                            expected,
                            BreakReason::Malformed {
                                field: "RowKey".into(),
                            },
                        ));
                    }
                };
                if sequence != expected {
                    return Ok(broken(checked, expected, BreakReason::MissingSequence));
                }
                let raw = match raw_entry(entity) {
                    Ok(raw) if raw.sequence == sequence => raw,
                    Ok(_) => {
                        return Ok(broken(
                            checked,
                            sequence,
                            BreakReason::Malformed {
                                field: "Seq".into(),
                            },
                        ));
                    }
                    Err(AuditError::Malformed { reason, .. }) => {
                        return Ok(broken(
                            checked,
                            sequence,
                            BreakReason::Malformed { field: reason },
                        ));
                    }
                    Err(other) => return Err(other),
                };
                if raw.prev_hash != prev_hash {
                    return Ok(broken(checked, sequence, BreakReason::WrongPreviousHash));
                }
                if raw.computed_hash() != raw.hash {
                    return Ok(broken(checked, sequence, BreakReason::HashMismatch));
                }
                checked += 1;
                expected += 1;
                prev_hash = raw.hash;
            }
            match page.continuation {
                Some(token) => query.continuation = Some(token),
                None => break,
            }
        }
        // Deleting the newest entries leaves no gap between entries; the head row still knows.
        if let Some(row) = self.table.get(&RowKey::new(HEAD_ROW)?).await? {
            let head_seq = row
                .get("Seq")
                .and_then(Value::as_i64)
                .and_then(|s| u64::try_from(s).ok());
            let head_hash = row.get("Hash").and_then(Value::as_str);
            match head_seq {
                Some(seq) if seq >= expected => {
                    return Ok(broken(checked, expected, BreakReason::MissingSequence));
                }
                Some(seq) if seq + 1 == expected && head_hash == Some(prev_hash.as_str()) => {}
                Some(seq) => return Ok(broken(checked, seq, BreakReason::HeadMismatch)),
                None => return Ok(broken(checked, expected, BreakReason::HeadMismatch)),
            }
        } else if checked > 0 {
            return Ok(broken(checked, checked, BreakReason::HeadMismatch));
        }
        Ok(VerifyReport {
            ok: true,
            checked,
            first_broken: None,
        })
    }
}

fn entry_rows() -> bifrost_store::table::Filter {
    Column::RowKey
        .ge("0")
        .and(Column::RowKey.lt(ENTRY_ROWS_END))
}

/// An event waiting for its group to be written.
#[derive(Debug)]
struct Waiting {
    event: AuditEvent,
    /// Canonical details JSON, as hashed and stored.
    details: String,
    reply: tokio::sync::oneshot::Sender<Result<AuditEntry, AuditError>>,
}

/// Most entries per group batch: the Table service takes 100 operations, one is the head row.
const MAX_GROUP: usize = 99;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `group` as the next links of the chain, in order, and answers each event.
async fn write_group(
    table: ScopedTable,
    mut known: tokio::sync::OwnedMutexGuard<Option<Head>>,
    mut group: Vec<Waiting>,
) {
    while !group.is_empty() {
        let rest = group.split_off(group.len().min(MAX_GROUP));
        let chunk = std::mem::replace(&mut group, rest);
        match write_chunk(&table, &mut known, &chunk).await {
            Ok(entries) => {
                for (waiting, entry) in chunk.into_iter().zip(entries) {
                    let _ = waiting.reply.send(Ok(entry));
                }
            }
            Err(error) => {
                for waiting in chunk {
                    let _ = waiting.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// One batch: the entries of `chunk` after the head, and the new head row.
async fn write_chunk(
    table: &ScopedTable,
    known: &mut Option<Head>,
    chunk: &[Waiting],
) -> Result<Vec<AuditEntry>, AuditError> {
    for attempt in 0..MAX_APPEND_ATTEMPTS {
        if attempt >= 2 {
            // Several lost races in a row: spread the contenders out a little.
            let cap = u64::from(attempt.min(25)) * 2;
            let pause = rand::thread_rng().gen_range(0..=cap);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        let head = match known.take() {
            Some(head) => head,
            None => read_head(table).await?,
        };
        let mut batch = ScopedBatch::new();
        let mut entries = Vec::with_capacity(chunk.len());
        let mut prev = head;
        for waiting in chunk {
            let event = &waiting.event;
            let sequence = prev.sequence + 1;
            let timestamp = now_micros();
            let event_type = event.event_type.as_str();
            let scope = event.scope.to_string();
            let hash = entry_hash(
                sequence,
                timestamp,
                event_type,
                &event.actor,
                &scope,
                &waiting.details,
                &prev.hash,
            );
            let mut row = Properties::new();
            row.insert("Seq".into(), Value::Int64(seq_i64(sequence)?));
            row.insert("OccurredAt".into(), Value::DateTime(timestamp));
            row.insert("EventType".into(), event_type.into());
            row.insert("Actor".into(), event.actor.as_str().into());
            row.insert("Scope".into(), scope.as_str().into());
            row.insert("Details".into(), waiting.details.as_str().into());
            row.insert("PrevHash".into(), prev.hash.as_str().into());
            row.insert("Hash".into(), hash.as_str().into());
            batch = batch.insert(entry_row_key(sequence)?, row);
            entries.push(AuditEntry {
                sequence,
                timestamp,
                event_type: event.event_type,
                actor: event.actor.clone(),
                scope: event.scope.clone(),
                details: event.details.clone(),
                prev_hash: std::mem::take(&mut prev.hash),
                hash: hash.clone(),
            });
            prev = Head { sequence, hash };
        }
        let mut head_row = Properties::new();
        head_row.insert("Seq".into(), Value::Int64(seq_i64(prev.sequence)?));
        head_row.insert("Hash".into(), prev.hash.as_str().into());
        let batch = batch.upsert(RowKey::new(HEAD_ROW)?, head_row, WriteMode::Replace);
        match table.batch(batch).await {
            Ok(_) => {
                *known = Some(prev);
                return Ok(entries);
            }
            // Another instance took one of these sequence numbers: re-read the head and retry.
            Err(StoreError::BatchFailed { source, .. })
                if matches!(*source, StoreError::AlreadyExists { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Err(AuditError::Contention {
        attempts: MAX_APPEND_ATTEMPTS,
    })
}

/// The newest entry: the head row, then forward probing in case it lags (it cannot through
/// this code, which writes both atomically, but a restored backup or a hand edit might).
async fn read_head(table: &ScopedTable) -> Result<Head, AuditError> {
    let mut head = match table.get(&RowKey::new(HEAD_ROW)?).await? {
        Some(row) => Head {
            sequence: row
                .get("Seq")
                .and_then(Value::as_i64)
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(|| malformed_row(&row, "Seq"))?,
            hash: row
                .get("Hash")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed_row(&row, "Hash"))?
                .to_owned(),
        },
        None => Head::genesis(),
    };
    while let Some(next) = table.get(&entry_row_key(head.sequence + 1)?).await? {
        head = Head {
            sequence: head.sequence + 1,
            hash: next
                .get("Hash")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed_row(&next, "Hash"))?
                .to_owned(),
        };
    }
    Ok(head)
}

fn entry_row_key(sequence: u64) -> Result<RowKey, StoreError> {
    RowKey::new(format!("{sequence:020}"))
}

fn seq_i64(sequence: u64) -> Result<i64, AuditError> {
    i64::try_from(sequence).map_err(|_| AuditError::Invalid {
        field: "sequence".into(),
        reason: "exceeds the Int64 range".into(),
    })
}

fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let nanos = now.nanosecond();
    now.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(now)
}

fn malformed_row(entity: &Entity, field: &str) -> AuditError {
    AuditError::Malformed {
        row_key: entity.row_key.to_string(),
        reason: field.to_owned(),
    }
}

fn raw_entry(entity: &Entity) -> Result<RawEntry, AuditError> {
    let text = |field: &str| {
        entity
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| malformed_row(entity, field))
    };
    Ok(RawEntry {
        sequence: entity
            .get("Seq")
            .and_then(Value::as_i64)
            .and_then(|s| u64::try_from(s).ok())
            .ok_or_else(|| malformed_row(entity, "Seq"))?,
        timestamp: entity
            .get("OccurredAt")
            .and_then(Value::as_datetime)
            .ok_or_else(|| malformed_row(entity, "OccurredAt"))?,
        event_type: text("EventType")?,
        actor: text("Actor")?,
        scope: text("Scope")?,
        details: text("Details")?,
        prev_hash: text("PrevHash")?,
        hash: text("Hash")?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeSet;

    use bifrost_store::OrgId;
    use bifrost_store::table::{IfMatch, SqliteTables};
    use serde_json::json;

    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        store: Arc<dyn TableStore>,
        log: AuditLog,
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn TableStore> = Arc::new(SqliteTables::open(dir.path()).unwrap());
            let log = AuditLog::open(store.clone()).await.unwrap();
            Self { dir, store, log }
        }

        async fn append_n(&self, n: u64) -> Vec<AuditEntry> {
            let mut out = Vec::new();
            for i in 0..n {
                out.push(self.log.append(event(i)).await.unwrap());
            }
            out
        }

        fn table(&self) -> TableName {
            TableName::new(AUDIT_TABLE).unwrap()
        }

        async fn entity(&self, sequence: u64) -> Entity {
            self.store
                .get(
                    &self.table(),
                    &Scope::Global.partition_key(),
                    &entry_row_key(sequence).unwrap(),
                )
                .await
                .unwrap()
                .unwrap()
        }

        async fn tamper(&self, sequence: u64, field: &str, value: Value) {
            let mut entity = self.entity(sequence).await;
            entity.set(field, value);
            self.store
                .update(&self.table(), &entity, WriteMode::Merge, &IfMatch::Any)
                .await
                .unwrap();
        }

        async fn remove(&self, sequence: u64) {
            self.store
                .delete(
                    &self.table(),
                    &Scope::Global.partition_key(),
                    &entry_row_key(sequence).unwrap(),
                    &IfMatch::Any,
                )
                .await
                .unwrap();
        }
    }

    fn event(n: u64) -> AuditEvent {
        AuditEvent::new(
            AuditEventType::KeyUsed,
            "key:0123456789abcdef",
            Scope::Global,
        )
        .detail("n", n)
        .detail("endpoint", "/api/workflows/x")
    }

    fn broken_at(report: &VerifyReport) -> (u64, BreakReason) {
        assert!(!report.ok, "{report:?}");
        let link = report.first_broken.clone().unwrap();
        (link.sequence, link.reason)
    }

    #[tokio::test]
    async fn appends_link_entries_and_verify_accepts_them() {
        let f = Fixture::new().await;
        assert_eq!(
            f.log.verify().await.unwrap(),
            VerifyReport {
                ok: true,
                checked: 0,
                first_broken: None
            }
        );
        let entries = f.append_n(5).await;
        assert_eq!(
            entries.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(entries[0].prev_hash, GENESIS_HASH);
        for pair in entries.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
        }
        assert_eq!(
            f.log.verify().await.unwrap(),
            VerifyReport {
                ok: true,
                checked: 5,
                first_broken: None
            }
        );
        // What list returns is what append returned.
        let listed = f.log.list(&AuditQuery::default()).await.unwrap();
        assert_eq!(listed.entries, entries);
        assert_eq!(listed.continuation, None);
    }

    #[tokio::test]
    async fn a_reopened_log_continues_the_chain() {
        let f = Fixture::new().await;
        let before = f.append_n(3).await;
        let reopened = AuditLog::open(f.store.clone()).await.unwrap();
        let next = reopened.append(event(9)).await.unwrap();
        assert_eq!(next.sequence, 4);
        assert_eq!(next.prev_hash, before[2].hash);
        // The first instance's cached head is stale: it must notice and not fork.
        let after = f.log.append(event(10)).await.unwrap();
        assert_eq!(after.sequence, 5);
        assert_eq!(after.prev_hash, next.hash);
        assert!(f.log.verify().await.unwrap().ok);
    }

    #[tokio::test]
    async fn an_edited_entry_is_named_as_the_first_broken_link() {
        let f = Fixture::new().await;
        f.append_n(5).await;
        f.tamper(3, "Actor", Value::from("user:mallory")).await;
        let report = f.log.verify().await.unwrap();
        assert_eq!(broken_at(&report), (3, BreakReason::HashMismatch));
        assert_eq!(report.checked, 2);
    }

    #[tokio::test]
    async fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
        let f = Fixture::new().await;
        f.append_n(5).await;
        let original = f.entity(2).await;
        let details = r#"{"endpoint":"/elsewhere","n":1}"#;
        let forged = entry_hash(
            2,
            original.get("OccurredAt").unwrap().as_datetime().unwrap(),
            "key_used",
            "key:0123456789abcdef",
            "GLOBAL",
            details,
            original.get("PrevHash").unwrap().as_str().unwrap(),
        );
        f.tamper(2, "Details", Value::from(details)).await;
        f.tamper(2, "Hash", Value::from(forged)).await;
        assert_eq!(
            broken_at(&f.log.verify().await.unwrap()),
            (3, BreakReason::WrongPreviousHash)
        );
    }

    #[tokio::test]
    async fn deleted_entries_are_found() {
        let f = Fixture::new().await;
        f.append_n(5).await;
        f.remove(3).await;
        assert_eq!(
            broken_at(&f.log.verify().await.unwrap()),
            (3, BreakReason::MissingSequence)
        );

        let g = Fixture::new().await;
        g.append_n(5).await;
        g.remove(5).await;
        let report = g.log.verify().await.unwrap();
        assert_eq!(broken_at(&report), (5, BreakReason::MissingSequence));
        assert_eq!(report.checked, 4);
    }

    #[tokio::test]
    async fn a_mistyped_field_is_reported_as_malformed() {
        let f = Fixture::new().await;
        f.append_n(2).await;
        f.tamper(2, "Seq", Value::Int32(2)).await;
        assert_eq!(
            broken_at(&f.log.verify().await.unwrap()),
            (
                2,
                BreakReason::Malformed {
                    field: "Seq".into()
                }
            )
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_that_queue_up_are_chained_as_groups() {
        let f = Fixture::new().await;
        let log = Arc::new(AuditLog::open(f.store.clone()).await.unwrap());
        // Hold the writer's lock so every append queues, then let one writer take them all:
        // more than one batch holds, so the group is split.
        let held = log.head.clone().lock_owned().await;
        let mut tasks = Vec::new();
        for n in 0..150u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move { log.append(event(n)).await }));
        }
        while lock(&log.waiting).len() < 150 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(held);
        let mut by_sequence = std::collections::BTreeMap::new();
        for task in tasks {
            let entry = task.await.unwrap().unwrap();
            by_sequence.insert(entry.sequence, entry);
        }
        assert_eq!(
            by_sequence.keys().copied().collect::<Vec<_>>(),
            (1..=150).collect::<Vec<_>>()
        );
        for (sequence, entry) in &by_sequence {
            if let Some(prev) = by_sequence.get(&(sequence - 1)) {
                assert_eq!(entry.prev_hash, prev.hash, "entry {sequence}");
            }
        }
        let report = f.log.verify().await.unwrap();
        assert!(report.ok && report.checked == 150, "{report:?}");
        assert_eq!(log.append(event(150)).await.unwrap().sequence, 151);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_from_several_instances_form_one_chain() {
        let f = Fixture::new().await;
        // Two handles on the same database file behave like two processes.
        let second_store: Arc<dyn TableStore> = Arc::new(SqliteTables::open(f.dir.path()).unwrap());
        let mut logs = Vec::new();
        for store in [&f.store, &second_store, &f.store, &second_store] {
            logs.push(Arc::new(AuditLog::open(store.clone()).await.unwrap()));
        }
        let mut tasks = Vec::new();
        for n in 0..20u64 {
            let log = logs[(n % 4) as usize].clone();
            tasks.push(tokio::spawn(async move { log.append(event(n)).await }));
        }
        let mut sequences = BTreeSet::new();
        for task in tasks {
            assert!(sequences.insert(task.await.unwrap().unwrap().sequence));
        }
        assert_eq!(sequences, (1..=20).collect());
        let report = f.log.verify().await.unwrap();
        assert_eq!(
            report,
            VerifyReport {
                ok: true,
                checked: 20,
                first_broken: None
            }
        );
        let listed = f.log.list(&AuditQuery::default()).await.unwrap().entries;
        let ns: BTreeSet<u64> = listed
            .iter()
            .map(|e| e.details["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, (0..20).collect());
    }

    #[tokio::test]
    async fn list_filters_and_pages() {
        let f = Fixture::new().await;
        let org_a = Scope::Org(OrgId::parse("orgA").unwrap());
        f.log
            .append(AuditEvent::new(
                AuditEventType::Login,
                "user:u1",
                Scope::Global,
            ))
            .await
            .unwrap();
        let mid = f
            .log
            .append(
                AuditEvent::new(AuditEventType::SecretRead, "user:u1", org_a.clone())
                    .detail("secret_name", "halo"),
            )
            .await
            .unwrap();
        for _ in 0..3 {
            f.log
                .append(AuditEvent::new(
                    AuditEventType::CrossOrgDenied,
                    "user:u2",
                    org_a.clone(),
                ))
                .await
                .unwrap();
        }
        let seqs = |page: AuditPage| page.entries.iter().map(|e| e.sequence).collect::<Vec<_>>();
        let by_type = AuditQuery {
            event_type: Some(AuditEventType::CrossOrgDenied),
            ..Default::default()
        };
        assert_eq!(seqs(f.log.list(&by_type).await.unwrap()), vec![3, 4, 5]);
        let by_scope = AuditQuery {
            scope: Some(org_a.clone()),
            ..Default::default()
        };
        assert_eq!(seqs(f.log.list(&by_scope).await.unwrap()), vec![2, 3, 4, 5]);
        let global = AuditQuery {
            scope: Some(Scope::Global),
            ..Default::default()
        };
        assert_eq!(seqs(f.log.list(&global).await.unwrap()), vec![1]);
        let window = AuditQuery {
            since: Some(mid.timestamp),
            until: Some(mid.timestamp + time::Duration::microseconds(1)),
            event_type: Some(AuditEventType::SecretRead),
            ..Default::default()
        };
        let found = f.log.list(&window).await.unwrap();
        assert_eq!(found.entries, vec![mid.clone()]);
        assert_eq!(found.entries[0].details["secret_name"], json!("halo"));
        let before_mid = AuditQuery {
            until: Some(mid.timestamp),
            scope: Some(org_a.clone()),
            ..Default::default()
        };
        assert!(f.log.list(&before_mid).await.unwrap().entries.is_empty());

        let mut query = AuditQuery {
            page_size: Some(2),
            ..Default::default()
        };
        let mut all = Vec::new();
        let mut pages = 0;
        loop {
            let page = f.log.list(&query).await.unwrap();
            pages += 1;
            all.extend(page.entries.iter().map(|e| e.sequence));
            match page.continuation {
                Some(token) => query.continuation = Some(token),
                None => break,
            }
        }
        assert_eq!(all, vec![1, 2, 3, 4, 5]);
        assert!(pages >= 3);
        let bad = AuditQuery {
            page_size: Some(0),
            ..Default::default()
        };
        assert!(
            f.log
                .list(&bad)
                .await
                .unwrap_err()
                .to_string()
                .contains("page_size")
        );
    }

    #[tokio::test]
    async fn secrets_and_bad_input_are_refused_before_anything_is_written() {
        let f = Fixture::new().await;
        let cases = [
            (
                AuditEvent::new(AuditEventType::SecretWritten, "user:u", Scope::Global)
                    .detail("secret_name", "x")
                    .detail("value", "hunter2"),
                "details.value",
            ),
            (
                AuditEvent::new(AuditEventType::KeyRejected, "anonymous", Scope::Global)
                    .detail("presented", "bfk_0123456789abcdef_secretsecret"),
                "details.presented",
            ),
            (
                AuditEvent::new(AuditEventType::Login, "", Scope::Global),
                "actor",
            ),
            (
                AuditEvent::new(
                    AuditEventType::Login,
                    "a".repeat(MAX_ACTOR_LEN + 1),
                    Scope::Global,
                ),
                "actor",
            ),
            (
                AuditEvent::new(AuditEventType::Login, "user:u", Scope::Global)
                    .detail("blob", "x".repeat(MAX_DETAILS_BYTES)),
                "details",
            ),
        ];
        for (event, field) in cases {
            let err = f.log.append(event).await.unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
            assert!(!err.to_string().contains("hunter2"));
        }
        assert_eq!(f.log.verify().await.unwrap().checked, 0);
        assert!(
            f.log
                .list(&AuditQuery::default())
                .await
                .unwrap()
                .entries
                .is_empty()
        );
    }
}

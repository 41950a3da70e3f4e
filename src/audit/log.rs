//! The stored audit chain: append (concurrency-safe across instances), filtered listing, and
//! chain verification.
//!
//! Depends on the table and secret-store contracts only. Table `AuditLog`, one chain in
//! partition `GLOBAL`:
//! - entry rows, RowKey = sequence zero-padded to 20 digits (so RowKey order is chain order):
//!   `Seq` (Int64), `OccurredAt` (DateTime, µs), `EventType`, `Actor`, `Scope` (`GLOBAL` or org
//!   id), `Details` (canonical JSON text), `PrevHash`, `Hash`, `Alg` (`hmac-sha256:<key id>`:
//!   `Hash` is keyed with the audit key, [`super::key`]; absent on entries written before the
//!   key existed, whose `Hash` is plain SHA-256);
//! - the `head` row (sorts after every digit): `Seq`, `Hash` of the newest entry.
//!
//! Table `AuditAnchor` holds the key's `keyring` row and the signed `anchor` and `checkpoint`
//! positions ([`super::anchor`]): verification refuses a chain shorter than its anchor, and
//! walks only what came after its last checkpoint unless asked for a full walk.
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

use bifrost_secrets::SecretStore;

use crate::audit::anchor::{Mark, Marks, Position, Stored};
use crate::audit::event::{
    AuditEntry, AuditEvent, AuditEventType, GENESIS_HASH, canonical_entry, canonical_json,
    entry_hash,
};
use crate::audit::flood::{Admit, Aggregator};
use crate::audit::key::{AuditKey, KeySource};

/// The table holding the chain.
pub const AUDIT_TABLE: &str = "AuditLog";
/// The table holding the key's name and the signed anchor and checkpoint.
pub const ANCHOR_TABLE: &str = "AuditAnchor";
/// How long after an append the anchor follows the head (at most).
const ANCHOR_DELAY: Duration = Duration::from_millis(500);
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
    /// The first sequence number this pass walked (after the last checkpoint, or 1).
    pub from: u64,
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
    /// An entry that must be keyed is not (written by someone without the audit key).
    Unkeyed,
    /// An entry names an audit key that is not the platform's.
    UnknownKey,
    /// The chain ends before its signed anchor: entries were cut off its tail.
    Truncated,
    /// The entry at the anchor or checkpoint is not the one that was signed.
    MarkMismatch,
    /// The anchor or checkpoint row's signature is wrong.
    ForgedMark,
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
    /// Signs entries; `None` for a read-only log (listing only).
    signer: Option<Arc<Signer>>,
    marks: Marks,
    /// The newest head this instance wrote, for the anchor task.
    written: tokio::sync::watch::Sender<Option<Head>>,
    anchoring: std::sync::Once,
    flood: Aggregator,
}

/// The audit key, loaded (or created) on first use.
#[derive(Debug)]
struct Signer {
    keys: KeySource,
    key: tokio::sync::OnceCell<AuditKey>,
}

impl Signer {
    /// The key appends sign with, created when the chain has none yet.
    async fn for_append(&self, table: &ScopedTable) -> Result<AuditKey, AuditError> {
        self.key
            .get_or_try_init(|| async {
                let head = read_head(table).await?;
                self.keys.current_or_create(head.sequence + 1).await
            })
            .await
            .cloned()
    }

    /// The key, if the chain has one (an old chain may have none yet).
    async fn for_verify(&self) -> Result<Option<AuditKey>, AuditError> {
        if let Some(key) = self.key.get() {
            return Ok(Some(key.clone()));
        }
        let key = self.keys.current().await?;
        if let Some(key) = &key {
            let _ = self.key.set(key.clone());
        }
        Ok(key)
    }
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
    /// `hmac-sha256:<key id>` on keyed entries.
    alg: Option<String>,
}

impl RawEntry {
    fn canonical(&self) -> String {
        canonical_entry(
            self.sequence,
            self.timestamp,
            &self.event_type,
            &self.actor,
            &self.scope,
            &self.details,
            &self.prev_hash,
        )
    }

    /// Why the entry's own hash does not hold, if it does not: keyed entries must be signed
    /// with `key`, and from the key's first sequence on every entry must be keyed.
    fn check_hash(&self, key: Option<&AuditKey>) -> Option<BreakReason> {
        let must_be_keyed = key.is_some_and(|k| self.sequence >= k.keyed_from());
        match (&self.alg, key) {
            (None, _) if must_be_keyed => Some(BreakReason::Unkeyed),
            (None, _) => (entry_hash(
                self.sequence,
                self.timestamp,
                &self.event_type,
                &self.actor,
                &self.scope,
                &self.details,
                &self.prev_hash,
            ) != self.hash)
                .then_some(BreakReason::HashMismatch),
            (Some(alg), Some(key)) if *alg == key.alg() => (key.mac(self.canonical().as_bytes())
                != self.hash)
                .then_some(BreakReason::HashMismatch),
            (Some(_), _) => Some(BreakReason::UnknownKey),
        }
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
    /// Opens the log over `store`, creating its tables if missing. The audit key is read from
    /// (or, the first time, created in) `secrets`.
    pub async fn open(
        store: Arc<dyn TableStore>,
        secrets: Arc<dyn SecretStore>,
    ) -> Result<Self, AuditError> {
        let log = Self::new(store, secrets)?;
        log.ensure_table().await?;
        Ok(log)
    }

    /// The log without touching storage; call [`AuditLog::ensure_table`] before first use.
    pub fn new(
        store: Arc<dyn TableStore>,
        secrets: Arc<dyn SecretStore>,
    ) -> Result<Self, AuditError> {
        let mut log = Self::reader(store)?;
        log.signer = Some(Arc::new(Signer {
            keys: KeySource::new(secrets, log.marks_table()?),
            key: tokio::sync::OnceCell::new(),
        }));
        Ok(log)
    }

    /// A log that can only list entries (tools reading a data folder): appends and
    /// verification need the audit key and are refused.
    pub fn reader(store: Arc<dyn TableStore>) -> Result<Self, AuditError> {
        let marks = ScopedTable::new(store.clone(), TableName::new(ANCHOR_TABLE)?, &Scope::Global);
        Ok(Self {
            table: ScopedTable::new(store, TableName::new(AUDIT_TABLE)?, &Scope::Global),
            head: Arc::new(tokio::sync::Mutex::new(None)),
            waiting: Arc::default(),
            signer: None,
            marks: Marks::new(marks),
            written: tokio::sync::watch::Sender::new(None),
            anchoring: std::sync::Once::new(),
            flood: Aggregator::default(),
        })
    }

    fn marks_table(&self) -> Result<ScopedTable, AuditError> {
        Ok(ScopedTable::new(
            self.table.store().clone(),
            TableName::new(ANCHOR_TABLE)?,
            &Scope::Global,
        ))
    }

    fn signer(&self) -> Result<&Arc<Signer>, AuditError> {
        self.signer.as_ref().ok_or_else(|| AuditError::Invalid {
            field: "audit log".into(),
            reason: "opened read-only: appending and verifying need the audit key".into(),
        })
    }

    pub async fn ensure_table(&self) -> Result<(), AuditError> {
        let store = self.table.store();
        store.create_table_if_missing(self.table.table()).await?;
        store
            .create_table_if_missing(&TableName::new(ANCHOR_TABLE)?)
            .await?;
        Ok(())
    }

    /// Appends an event anyone can cause (a failed key check, a cross-organization denial)
    /// through the flood aggregator (see `flood.rs`): at most one entry per `source` and
    /// `reason` per minute is written at once, the rest are counted into a summary entry.
    pub async fn append_aggregated(
        &self,
        event: AuditEvent,
        source: &str,
        reason: &str,
    ) -> Result<(), AuditError> {
        self.flush_summaries().await?;
        match self
            .flood
            .admit(event, source, reason, std::time::Instant::now())
        {
            Admit::Write(event) => self.append(event).await.map(drop),
            Admit::Counted => Ok(()),
        }
    }

    /// Writes the summaries of flood windows that have closed. Called at the start of each
    /// aggregated append and periodically by the server (so a flood that stopped is summarized).
    pub async fn flush_summaries(&self) -> Result<usize, AuditError> {
        let closed = self.flood.closed(std::time::Instant::now());
        let n = closed.len();
        for event in closed {
            self.append(event).await?;
        }
        Ok(n)
    }

    /// Appends `event` as the next link of the chain and returns the stored entry.
    ///
    /// Appends of one instance are chained in groups: while one group is being written, the
    /// events that arrive wait, and the next writer links all of them in one batch. Under load
    /// that is one storage round trip for many events instead of one each, in sequence.
    pub async fn append(&self, event: AuditEvent) -> Result<AuditEntry, AuditError> {
        let details = Self::check(&event)?;
        let signer = self.signer()?.clone();
        self.start_anchoring(&signer);
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
            let write = tokio::spawn(write_group(
                self.table.clone(),
                signer,
                self.written.clone(),
                known,
                group,
            ));
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

    /// Starts the task that moves the signed anchor after the head this instance writes (at
    /// most every [`ANCHOR_DELAY`], so appends never wait for it).
    fn start_anchoring(&self, signer: &Arc<Signer>) {
        self.anchoring.call_once(|| {
            let mut written = self.written.subscribe();
            let marks = self.marks.clone();
            let signer = signer.clone();
            tokio::spawn(async move {
                while written.changed().await.is_ok() {
                    tokio::time::sleep(ANCHOR_DELAY).await;
                    let Some(head) = written.borrow_and_update().clone() else {
                        continue;
                    };
                    let Some(key) = signer.key.get() else {
                        continue;
                    };
                    let at = Position {
                        sequence: head.sequence,
                        hash: head.hash,
                    };
                    if let Err(e) = marks.advance(Mark::Anchor, key, &at).await {
                        tracing::warn!(error = %e, "could not move the audit anchor");
                    }
                }
            });
        });
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

    /// Walks the chain and reports the first broken link, if any: from the last signed
    /// checkpoint on (or, `full`, from the first entry), then checks the head row and that the
    /// chain reaches its signed anchor. A chain that verifies moves the checkpoint and the
    /// anchor to its newest entry.
    pub async fn verify(&self, full: bool) -> Result<VerifyReport, AuditError> {
        let key = self.signer()?.for_verify().await?;
        let mut walk = Walk {
            key: key.clone(),
            expected: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            checked: 0,
            from: 1,
            anchor: None,
        };
        if let Some(key) = &key {
            walk.anchor = match self.marks.read(Mark::Anchor, key).await? {
                Stored::Absent => None,
                Stored::Forged => return Ok(walk.broken(0, BreakReason::ForgedMark)),
                Stored::Valid(at) => Some(at),
            };
            if !full {
                match self.marks.read(Mark::Checkpoint, key).await? {
                    Stored::Absent => {}
                    Stored::Forged => return Ok(walk.broken(0, BreakReason::ForgedMark)),
                    Stored::Valid(at) => {
                        if let Some(report) = self.resume_at(&mut walk, &at).await? {
                            return Ok(report);
                        }
                    }
                }
            }
        }
        let start = if walk.expected > 1 {
            Column::RowKey
                .ge(entry_row_key(walk.expected)?.as_str())
                .and(Column::RowKey.lt(ENTRY_ROWS_END))
        } else {
            entry_rows()
        };
        let mut query = Query::new().filter(start).page_size(MAX_PAGE_SIZE);
        loop {
            let page = self.table.query(&query).await?;
            for entity in &page.entities {
                if let Some(report) = walk.step(entity)? {
                    return Ok(report);
                }
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
                Some(seq) if seq >= walk.expected => {
                    return Ok(walk.broken(walk.expected, BreakReason::MissingSequence));
                }
                Some(seq)
                    if seq + 1 == walk.expected && head_hash == Some(walk.prev_hash.as_str()) => {}
                Some(seq) => return Ok(walk.broken(seq, BreakReason::HeadMismatch)),
                None => return Ok(walk.broken(walk.expected, BreakReason::HeadMismatch)),
            }
        } else if walk.expected > 1 {
            return Ok(walk.broken(walk.expected - 1, BreakReason::HeadMismatch));
        }
        // ... and so does the anchor, which the head row cannot vouch for.
        let last = walk.expected - 1;
        if let Some(anchor) = &walk.anchor {
            if anchor.sequence > last {
                return Ok(walk.broken(last + 1, BreakReason::Truncated));
            }
            if anchor.sequence < walk.from
                && anchor.sequence > 0
                && self.stored_hash(anchor.sequence).await?.as_deref() != Some(anchor.hash.as_str())
            {
                return Ok(walk.broken(anchor.sequence, BreakReason::MarkMismatch));
            }
        }
        if let Some(key) = &key
            && last > 0
        {
            let at = Position {
                sequence: last,
                hash: walk.prev_hash.clone(),
            };
            self.marks.advance(Mark::Checkpoint, key, &at).await?;
            self.marks.advance(Mark::Anchor, key, &at).await?;
        }
        Ok(VerifyReport {
            ok: true,
            checked: walk.checked,
            from: walk.from,
            first_broken: None,
        })
    }

    /// Starts `walk` after checkpoint `at`, once the entry there is the one that was signed.
    async fn resume_at(
        &self,
        walk: &mut Walk,
        at: &Position,
    ) -> Result<Option<VerifyReport>, AuditError> {
        let Some(entity) = self.table.get(&entry_row_key(at.sequence)?).await? else {
            return Ok(Some(walk.broken(at.sequence, BreakReason::MissingSequence)));
        };
        let raw = match raw_entry(&entity) {
            Ok(raw) => raw,
            Err(AuditError::Malformed { reason, .. }) => {
                return Ok(Some(
                    walk.broken(at.sequence, BreakReason::Malformed { field: reason }),
                ));
            }
            Err(other) => return Err(other),
        };
        if raw.hash != at.hash {
            return Ok(Some(walk.broken(at.sequence, BreakReason::MarkMismatch)));
        }
        if let Some(reason) = raw.check_hash(walk.key.as_ref()) {
            return Ok(Some(walk.broken(at.sequence, reason)));
        }
        walk.expected = at.sequence + 1;
        walk.from = walk.expected;
        walk.prev_hash = raw.hash;
        Ok(None)
    }

    async fn stored_hash(&self, sequence: u64) -> Result<Option<String>, AuditError> {
        Ok(self
            .table
            .get(&entry_row_key(sequence)?)
            .await?
            .and_then(|e| e.get("Hash").and_then(Value::as_str).map(str::to_owned)))
    }
}

/// The state of one verification pass over consecutive entries.
struct Walk {
    key: Option<AuditKey>,
    expected: u64,
    prev_hash: String,
    checked: u64,
    from: u64,
    anchor: Option<Position>,
}

impl Walk {
    fn broken(&self, sequence: u64, reason: BreakReason) -> VerifyReport {
        VerifyReport {
            ok: false,
            checked: self.checked,
            from: self.from,
            first_broken: Some(BrokenLink { sequence, reason }),
        }
    }

    /// Checks the next entry; `Some` is the report of the break it shows.
    fn step(&mut self, entity: &Entity) -> Result<Option<VerifyReport>, AuditError> {
        let expected = self.expected;
        let Ok(sequence) = entity.row_key.as_str().parse::<u64>() else {
            return Ok(Some(self.broken(
                expected,
                BreakReason::Malformed {
                    field: "RowKey".into(),
                },
            )));
        };
        if sequence != expected {
            return Ok(Some(self.broken(expected, BreakReason::MissingSequence)));
        }
        let raw = match raw_entry(entity) {
            Ok(raw) if raw.sequence == sequence => raw,
            Ok(_) => {
                return Ok(Some(self.broken(
                    sequence,
                    BreakReason::Malformed {
                        field: "Seq".into(),
                    },
                )));
            }
            Err(AuditError::Malformed { reason, .. }) => {
                return Ok(Some(
                    self.broken(sequence, BreakReason::Malformed { field: reason }),
                ));
            }
            Err(other) => return Err(other),
        };
        if raw.prev_hash != self.prev_hash {
            return Ok(Some(self.broken(sequence, BreakReason::WrongPreviousHash)));
        }
        if let Some(reason) = raw.check_hash(self.key.as_ref()) {
            return Ok(Some(self.broken(sequence, reason)));
        }
        if let Some(anchor) = &self.anchor
            && anchor.sequence == sequence
            && anchor.hash != raw.hash
        {
            return Ok(Some(self.broken(sequence, BreakReason::MarkMismatch)));
        }
        self.checked += 1;
        self.expected += 1;
        self.prev_hash = raw.hash;
        Ok(None)
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
    signer: Arc<Signer>,
    written: tokio::sync::watch::Sender<Option<Head>>,
    mut known: tokio::sync::OwnedMutexGuard<Option<Head>>,
    mut group: Vec<Waiting>,
) {
    let key = match signer.for_append(&table).await {
        Ok(key) => key,
        Err(error) => {
            tracing::error!(error = %error, "the audit key is unavailable; nothing can be audited");
            for waiting in group {
                let _ = waiting.reply.send(Err(error.clone()));
            }
            return;
        }
    };
    while !group.is_empty() {
        let rest = group.split_off(group.len().min(MAX_GROUP));
        let chunk = std::mem::replace(&mut group, rest);
        match write_chunk(&table, &key, &mut known, &chunk).await {
            Ok(entries) => {
                written.send_replace(known.clone());
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
    key: &AuditKey,
    known: &mut Option<Head>,
    chunk: &[Waiting],
) -> Result<Vec<AuditEntry>, AuditError> {
    let alg = key.alg();
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
            let hash = key.mac(
                canonical_entry(
                    sequence,
                    timestamp,
                    event_type,
                    &event.actor,
                    &scope,
                    &waiting.details,
                    &prev.hash,
                )
                .as_bytes(),
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
            row.insert("Alg".into(), alg.as_str().into());
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
        alg: entity.get("Alg").and_then(Value::as_str).map(str::to_owned),
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
        secrets: Arc<dyn SecretStore>,
        log: AuditLog,
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn TableStore> = Arc::new(SqliteTables::open(dir.path()).unwrap());
            let secrets: Arc<dyn SecretStore> = Arc::new(
                bifrost_secrets::LocalSecrets::open(&dir.path().join("secrets"), None).unwrap(),
            );
            let log = AuditLog::open(store.clone(), secrets.clone())
                .await
                .unwrap();
            Self {
                dir,
                store,
                secrets,
                log,
            }
        }

        /// Another handle on the same log (another instance, in effect).
        async fn reopen(&self, store: &Arc<dyn TableStore>) -> AuditLog {
            AuditLog::open(store.clone(), self.secrets.clone())
                .await
                .unwrap()
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

        async fn remove_field(&self, sequence: u64, field: &str) {
            let mut entity = self.entity(sequence).await;
            entity.properties.remove(field);
            self.store
                .update(&self.table(), &entity, WriteMode::Replace, &IfMatch::Any)
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
            f.log.verify(true).await.unwrap(),
            VerifyReport {
                ok: true,
                checked: 0,
                from: 1,
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
            f.log.verify(true).await.unwrap(),
            VerifyReport {
                ok: true,
                checked: 5,
                from: 1,
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
        let reopened = f.reopen(&f.store).await;
        let next = reopened.append(event(9)).await.unwrap();
        assert_eq!(next.sequence, 4);
        assert_eq!(next.prev_hash, before[2].hash);
        // The first instance's cached head is stale: it must notice and not fork.
        let after = f.log.append(event(10)).await.unwrap();
        assert_eq!(after.sequence, 5);
        assert_eq!(after.prev_hash, next.hash);
        assert!(f.log.verify(true).await.unwrap().ok);
    }

    #[tokio::test]
    async fn an_edited_entry_is_named_as_the_first_broken_link() {
        let f = Fixture::new().await;
        f.append_n(5).await;
        f.tamper(3, "Actor", Value::from("user:mallory")).await;
        let report = f.log.verify(true).await.unwrap();
        assert_eq!(broken_at(&report), (3, BreakReason::HashMismatch));
        assert_eq!(report.checked, 2);
    }

    #[tokio::test]
    async fn an_edit_re_hashed_without_the_key_is_caught_at_the_entry() {
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
        f.tamper(2, "Hash", Value::from(forged.clone())).await;
        // Entries are keyed: a plain SHA-256 does not pass for the entry's own hash.
        assert_eq!(
            broken_at(&f.log.verify(true).await.unwrap()),
            (2, BreakReason::HashMismatch)
        );
        // Nor does claiming the entry predates the key.
        f.remove_field(2, "Alg").await;
        assert_eq!(
            broken_at(&f.log.verify(true).await.unwrap()),
            (2, BreakReason::Unkeyed)
        );
    }

    #[tokio::test]
    async fn a_chain_written_before_the_key_existed_still_verifies_and_continues_keyed() {
        let f = Fixture::new().await;
        // Two entries as an earlier version wrote them: plain SHA-256, no `Alg`, no key yet.
        let mut prev = GENESIS_HASH.to_owned();
        for seq in 1..=2u64 {
            let at = now_micros();
            let hash = entry_hash(seq, at, "login", "user:old", "GLOBAL", "{}", &prev);
            let mut row = Properties::new();
            row.insert("Seq".into(), Value::Int64(seq as i64));
            row.insert("OccurredAt".into(), Value::DateTime(at));
            row.insert("EventType".into(), "login".into());
            row.insert("Actor".into(), "user:old".into());
            row.insert("Scope".into(), "GLOBAL".into());
            row.insert("Details".into(), "{}".into());
            row.insert("PrevHash".into(), prev.as_str().into());
            row.insert("Hash".into(), hash.as_str().into());
            let mut head = Properties::new();
            head.insert("Seq".into(), Value::Int64(seq as i64));
            head.insert("Hash".into(), hash.as_str().into());
            let table = ScopedTable::new(f.store.clone(), f.table(), &Scope::Global);
            table
                .batch(
                    ScopedBatch::new()
                        .insert(entry_row_key(seq).unwrap(), row)
                        .upsert(RowKey::new(HEAD_ROW).unwrap(), head, WriteMode::Replace),
                )
                .await
                .unwrap();
            prev = hash;
        }
        // The first append of this version creates the key; keying starts after the old tail.
        let appended = f.append_n(2).await;
        assert_eq!(appended[0].sequence, 3);
        assert_eq!(appended[0].prev_hash, prev);
        let report = f.log.verify(true).await.unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.checked, 4);
        // An unkeyed entry after keying started is refused.
        f.remove_field(4, "Alg").await;
        assert_eq!(
            broken_at(&f.log.verify(true).await.unwrap()),
            (4, BreakReason::Unkeyed)
        );
    }

    #[tokio::test]
    async fn verification_resumes_at_its_checkpoint_and_a_cut_tail_is_found_by_the_anchor() {
        let f = Fixture::new().await;
        f.append_n(5).await;
        let full = f.log.verify(false).await.unwrap();
        assert_eq!((full.ok, full.checked, full.from), (true, 5, 1));
        f.append_n(2).await;
        // Only what came after the checkpoint is walked again.
        let next = f.log.verify(false).await.unwrap();
        assert_eq!((next.ok, next.checked, next.from), (true, 2, 6));
        // Cut the last two entries and move the head back: the signed anchor knows better.
        for seq in [7u64, 6] {
            f.remove(seq).await;
        }
        let five = f.entity(5).await;
        let table = ScopedTable::new(f.store.clone(), f.table(), &Scope::Global);
        let mut head = Properties::new();
        head.insert("Seq".into(), Value::Int64(5));
        head.insert("Hash".into(), five.get("Hash").unwrap().clone());
        table
            .upsert(RowKey::new(HEAD_ROW).unwrap(), head, WriteMode::Replace)
            .await
            .unwrap();
        let cut = f.log.verify(true).await.unwrap();
        assert_eq!(broken_at(&cut), (6, BreakReason::Truncated));
    }

    #[tokio::test]
    async fn deleted_entries_are_found() {
        let f = Fixture::new().await;
        f.append_n(5).await;
        f.remove(3).await;
        assert_eq!(
            broken_at(&f.log.verify(true).await.unwrap()),
            (3, BreakReason::MissingSequence)
        );

        let g = Fixture::new().await;
        g.append_n(5).await;
        g.remove(5).await;
        let report = g.log.verify(true).await.unwrap();
        assert_eq!(broken_at(&report), (5, BreakReason::MissingSequence));
        assert_eq!(report.checked, 4);
    }

    #[tokio::test]
    async fn a_mistyped_field_is_reported_as_malformed() {
        let f = Fixture::new().await;
        f.append_n(2).await;
        f.tamper(2, "Seq", Value::Int32(2)).await;
        assert_eq!(
            broken_at(&f.log.verify(true).await.unwrap()),
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
        let log = Arc::new(f.reopen(&f.store).await);
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
        let report = f.log.verify(true).await.unwrap();
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
            logs.push(Arc::new(f.reopen(store).await));
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
        let report = f.log.verify(true).await.unwrap();
        assert_eq!(
            report,
            VerifyReport {
                ok: true,
                checked: 20,
                from: 1,
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
        assert_eq!(f.log.verify(true).await.unwrap().checked, 0);
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

//! The embedded table backend: one SQLite database file (WAL mode) holding every table.
//!
//! Depends on `rusqlite` and the table model only. Invariants:
//! - semantics match Azure Tables: the same validation, ETags that change on every write,
//!   a store-set Timestamp, ordinal PartitionKey/RowKey order, opaque continuation tokens,
//!   all-or-nothing batches, and filters evaluated by [`Filter::matches`] (Azure's rules);
//! - SQLite is blocking and allows one writer: writes go to the one writer thread, which
//!   commits whatever queued up meanwhile as one transaction, one savepoint per write
//!   (`group_commit.rs`); reads run on tokio's blocking pool on a small pool of reader
//!   connections (WAL lets them run next to the writer);
//! - SQL text is fixed; keys, values and bounds are always bound parameters.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use time::OffsetDateTime;

use crate::error::{StoreError, StoreResult};
use crate::group_commit::GroupCommit;
use crate::keys::{PartitionKey, RowKey};
use crate::table::TableStore;
use crate::table::batch::{Batch, BatchOp};
use crate::table::filter::{CmpOp, Column, Filter};
use crate::table::model::{
    ContinuationToken, ETag, Entity, IfMatch, Page, Properties, Query, TableName, Value, WriteMode,
    datetime_to_ticks, ticks_to_datetime, truncate_datetime,
};
use crate::table::validate::{validate_batch, validate_entity, validate_query};

/// File name used when [`SqliteTables::open`] is given a folder.
pub const DEFAULT_FILE_NAME: &str = "tables.sqlite3";

/// Tuning knobs of the embedded backend.
#[derive(Clone, Debug)]
pub struct SqliteTablesOptions {
    /// Rows a single query page may examine before it returns (possibly empty) with a
    /// continuation token — the embedded counterpart of Azure's 5-second page limit, so a
    /// selective filter over a huge partition cannot hold a connection for long.
    pub max_scan_per_page: usize,
    /// Reader connections: at most this many reads run at once, each on a connection that stays
    /// open. Opening a connection per read (cold page cache, schema parse, WAL mapping) cost
    /// milliseconds under concurrency; waiting for a warm one costs microseconds.
    pub max_readers: usize,
}

impl Default for SqliteTablesOptions {
    fn default() -> Self {
        Self {
            max_scan_per_page: 10_000,
            max_readers: 4,
        }
    }
}

/// Embedded SQLite table store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteTables {
    inner: Arc<Inner>,
    /// The writer thread (it holds the write connection and its own handle on `inner`).
    writer: Arc<GroupCommit<Inner>>,
}

struct Inner {
    path: PathBuf,
    options: SqliteTablesOptions,
    readers: Mutex<Vec<Connection>>,
    /// One permit per reader connection; bounds how many connections can exist.
    reader_slots: Arc<tokio::sync::Semaphore>,
    /// Folded names of tables known to exist (tables are never dropped through this API).
    tables: RwLock<HashSet<String>>,
    etag_prefix: String,
    etag_counter: AtomicU64,
}

impl std::fmt::Debug for SqliteTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTables")
            .field("path", &self.inner.path)
            .finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bifrost_tables (
    name_key TEXT PRIMARY KEY,
    name TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bifrost_entities (
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    rk TEXT NOT NULL,
    ts INTEGER NOT NULL,
    etag TEXT NOT NULL,
    props BLOB NOT NULL,
    PRIMARY KEY (tbl, pk, rk)
) WITHOUT ROWID;
";

fn sql_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(code, _)
            if matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::unavailable(format!("sqlite busy: {e}"))
        }
        _ => StoreError::Backend(format!("sqlite: {e}")),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the connection usable: any open transaction is
    // rolled back by the next `BEGIN`'s failure path or by SQLite on the next statement.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_connection(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sql_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql_err)?;
    // In WAL mode NORMAL is durable against application crashes; only an OS crash or power
    // loss can drop the last commits.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql_err)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

impl SqliteTables {
    /// Opens (creating if needed) the database at `path`; if `path` is a folder, the file
    /// `tables.sqlite3` inside it. Missing parent folders are created.
    pub fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, SqliteTablesOptions::default())
    }

    pub fn open_with(path: &Path, options: SqliteTablesOptions) -> StoreResult<Self> {
        let path = if path.is_dir() {
            path.join(DEFAULT_FILE_NAME)
        } else {
            path.to_path_buf()
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let writer = open_connection(&path)?;
        writer.execute_batch(SCHEMA).map_err(sql_err)?;
        let mut tables = HashSet::new();
        {
            let mut stmt = writer
                .prepare("SELECT name_key FROM bifrost_tables")
                .map_err(sql_err)?;
            let names = stmt
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(sql_err)?;
            for name in names {
                tables.insert(name.map_err(sql_err)?);
            }
        }
        let etag_prefix = format!("{:08x}", uuid::Uuid::new_v4().as_u128() as u32);
        let reader_slots = Arc::new(tokio::sync::Semaphore::new(options.max_readers.max(1)));
        let inner = Arc::new(Inner {
            path,
            options,
            readers: Mutex::new(Vec::new()),
            reader_slots,
            tables: RwLock::new(tables),
            etag_prefix,
            etag_counter: AtomicU64::new(0),
        });
        // Checkpoints (copying the WAL into the database file, with an fsync) run on their own
        // connection and thread; on the writer they stalled every write behind the fsync.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sql_err)?;
        // When the WAL starts over, a file grown by a burst shrinks back to this.
        writer
            .pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(sql_err)?;
        let checkpoints = open_connection(&inner.path)?;
        let writer =
            GroupCommit::start("sqlite-tables", writer, checkpoints, inner.clone(), sql_err)?;
        Ok(Self {
            inner,
            writer: Arc::new(writer),
        })
    }

    /// The database file in use.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Inner) -> StoreResult<T> + Send + 'static,
    {
        self.writer.write(f).await
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Inner) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let permit = inner
            .reader_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("sqlite reader pool closed".into()))?;
        tokio::task::spawn_blocking(move || {
            // Holding a permit guarantees at most `max_readers` connections exist, so every
            // connection goes back to the pool.
            let _permit = permit;
            let pooled = lock(&inner.readers).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.path)?,
            };
            let result = f(&conn, &inner);
            lock(&inner.readers).push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite worker failed: {e}")))?
    }
}

impl Inner {
    fn ensure_table(&self, conn: &Connection, table: &TableName) -> StoreResult<String> {
        let key = table.folded();
        if self
            .tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return Ok(key);
        }
        // Another process may have created it since we opened the file.
        let exists = conn
            .prepare_cached("SELECT 1 FROM bifrost_tables WHERE name_key = ?1")
            .and_then(|mut s| s.query_row([&key], |_| Ok(())).optional())
            .map_err(sql_err)?
            .is_some();
        if !exists {
            return Err(StoreError::not_found(format!("table {table}")));
        }
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        Ok(key)
    }

    fn next_etag(&self) -> ETag {
        let n = self.etag_counter.fetch_add(1, Ordering::Relaxed);
        ETag::new(format!("W/\"{}.{n:x}\"", self.etag_prefix))
    }

    /// Applies one write inside the caller's transaction.
    fn apply(
        &self,
        conn: &Connection,
        tbl: &str,
        op: &BatchOp,
        now: i64,
    ) -> StoreResult<Option<ETag>> {
        let what = || format!("entity ({}, {})", op.partition_key(), op.row_key());
        let pk = op.partition_key().as_str();
        let rk = op.row_key().as_str();
        let current = |conn: &Connection| -> StoreResult<Option<(String, Vec<u8>)>> {
            conn.prepare_cached(
                "SELECT etag, props FROM bifrost_entities WHERE tbl = ?1 AND pk = ?2 AND rk = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![tbl, pk, rk], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql_err)
        };
        let check = |stored_etag: &str, if_match: &IfMatch| match if_match {
            IfMatch::ETag(expected) if expected.as_str() != stored_etag => {
                Err(StoreError::PreconditionFailed { what: what() })
            }
            _ => Ok(()),
        };
        match op {
            BatchOp::Insert(entity) => {
                let etag = self.next_etag();
                let changed = conn
                    .prepare_cached(
                        "INSERT INTO bifrost_entities (tbl, pk, rk, ts, etag, props) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                         ON CONFLICT DO NOTHING",
                    )
                    .and_then(|mut s| s.execute(params![tbl, pk, rk, now, etag.as_str(), encode(&entity.properties)]))
                    .map_err(sql_err)?;
                if changed == 0 {
                    return Err(StoreError::AlreadyExists { what: what() });
                }
                Ok(Some(etag))
            }
            BatchOp::Upsert(entity, WriteMode::Replace) => {
                let etag = self.next_etag();
                conn.prepare_cached(
                    "INSERT INTO bifrost_entities (tbl, pk, rk, ts, etag, props) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (tbl, pk, rk) DO UPDATE SET ts = excluded.ts, etag = excluded.etag, props = excluded.props",
                )
                .and_then(|mut s| s.execute(params![tbl, pk, rk, now, etag.as_str(), encode(&entity.properties)]))
                .map_err(sql_err)?;
                Ok(Some(etag))
            }
            BatchOp::Upsert(entity, WriteMode::Merge) | BatchOp::Update(entity, _, _) => {
                let existing = current(conn)?;
                let props = match (op, existing) {
                    (BatchOp::Update(..), None) => {
                        return Err(StoreError::NotFound { what: what() });
                    }
                    (BatchOp::Update(_, mode, if_match), Some((stored_etag, stored))) => {
                        check(&stored_etag, if_match)?;
                        match mode {
                            WriteMode::Replace => encode(&entity.properties),
                            WriteMode::Merge => merge(&stored, &entity.properties)?,
                        }
                    }
                    (_, Some((_, stored))) => merge(&stored, &entity.properties)?,
                    (_, None) => encode(&entity.properties),
                };
                let etag = self.next_etag();
                conn.prepare_cached(
                    "INSERT INTO bifrost_entities (tbl, pk, rk, ts, etag, props) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (tbl, pk, rk) DO UPDATE SET ts = excluded.ts, etag = excluded.etag, props = excluded.props",
                )
                .and_then(|mut s| s.execute(params![tbl, pk, rk, now, etag.as_str(), props]))
                .map_err(sql_err)?;
                Ok(Some(etag))
            }
            BatchOp::Delete { if_match, .. } => {
                let Some((stored_etag, _)) = current(conn)? else {
                    return Err(StoreError::NotFound { what: what() });
                };
                check(&stored_etag, if_match)?;
                conn.prepare_cached(
                    "DELETE FROM bifrost_entities WHERE tbl = ?1 AND pk = ?2 AND rk = ?3",
                )
                .and_then(|mut s| s.execute(params![tbl, pk, rk]))
                .map_err(sql_err)?;
                Ok(None)
            }
        }
    }

    /// Applies `ops` in order. Runs as one write of the writer thread, inside its own
    /// savepoint: the first failure returns, and the savepoint's rollback undoes the rest.
    fn apply_all(
        &self,
        conn: &Connection,
        table: &TableName,
        ops: &[BatchOp],
        as_batch: bool,
    ) -> StoreResult<Vec<Option<ETag>>> {
        let tbl = self.ensure_table(conn, table)?;
        let now = datetime_to_ticks(truncate_datetime(OffsetDateTime::now_utc()));
        let mut results = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            match self.apply(conn, &tbl, op, now) {
                Ok(etag) => results.push(etag),
                Err(err) if as_batch => {
                    return Err(StoreError::BatchFailed {
                        index,
                        source: Box::new(err),
                    });
                }
                Err(err) => return Err(err),
            }
        }
        Ok(results)
    }

    fn get(
        &self,
        conn: &Connection,
        table: &TableName,
        pk: &PartitionKey,
        rk: &RowKey,
    ) -> StoreResult<Option<Entity>> {
        let tbl = self.ensure_table(conn, table)?;
        let row = conn
            .prepare_cached("SELECT ts, etag, props FROM bifrost_entities WHERE tbl = ?1 AND pk = ?2 AND rk = ?3")
            .and_then(|mut s| {
                s.query_row(params![tbl, pk.as_str(), rk.as_str()], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
                })
                .optional()
            })
            .map_err(sql_err)?;
        row.map(|(ts, etag, props)| {
            Ok(Entity {
                partition_key: pk.clone(),
                row_key: rk.clone(),
                properties: decode(&props)?,
                timestamp: Some(ticks_to_datetime(ts)?),
                etag: Some(ETag::new(etag)),
            })
        })
        .transpose()
    }

    fn query(&self, conn: &Connection, table: &TableName, query: &Query) -> StoreResult<Page> {
        let tbl = self.ensure_table(conn, table)?;
        let range = match &query.filter {
            Some(filter) => KeyRange::of(filter),
            None => Some(KeyRange::default()),
        };
        let Some(range) = range else {
            return Ok(Page::default());
        };
        let start = query
            .continuation
            .as_ref()
            .map(ContinuationToken::position)
            .transpose()?;

        // Fixed SQL fragments and bound parameters only.
        let mut sql =
            String::from("SELECT pk, rk, ts, etag, props FROM bifrost_entities WHERE tbl = ?");
        let mut args: Vec<String> = vec![tbl];
        let mut push = |sql: &mut String, clause: &str, values: &[&str]| {
            sql.push_str(clause);
            args.extend(values.iter().map(|v| (*v).to_owned()));
        };
        if let Some(pk) = &range.pk_eq {
            push(&mut sql, " AND pk = ?", &[pk]);
            if let Some(lo) = &range.rk_lo {
                push(&mut sql, " AND rk >= ?", &[lo]);
            }
            if let Some(hi) = &range.rk_hi {
                push(&mut sql, " AND rk <= ?", &[hi]);
            }
        } else {
            if let Some(lo) = &range.pk_lo {
                push(&mut sql, " AND pk >= ?", &[lo]);
            }
            if let Some(hi) = &range.pk_hi {
                push(&mut sql, " AND pk <= ?", &[hi]);
            }
        }
        match &start {
            Some((pk, Some(rk))) => push(
                &mut sql,
                " AND (pk > ? OR (pk = ? AND rk >= ?))",
                &[pk, pk, rk],
            ),
            Some((pk, None)) => push(&mut sql, " AND pk >= ?", &[pk]),
            None => {}
        }
        sql.push_str(" ORDER BY pk, rk");

        let page_size = usize::from(query.effective_page_size());
        let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(sql_err)?;
        let mut entities = Vec::new();
        let mut scanned = 0usize;
        let mut continuation = None;
        while let Some(row) = rows.next().map_err(sql_err)? {
            let pk: String = row.get(0).map_err(sql_err)?;
            let rk: String = row.get(1).map_err(sql_err)?;
            if entities.len() >= page_size || scanned >= self.options.max_scan_per_page {
                continuation = Some(ContinuationToken::from_position(&pk, Some(&rk)));
                break;
            }
            scanned += 1;
            let props: Vec<u8> = row.get(4).map_err(sql_err)?;
            let mut entity = Entity {
                partition_key: PartitionKey::new(pk)?,
                row_key: RowKey::new(rk)?,
                properties: decode(&props)?,
                timestamp: Some(ticks_to_datetime(row.get(2).map_err(sql_err)?)?),
                etag: Some(ETag::new(row.get::<_, String>(3).map_err(sql_err)?)),
            };
            if query.filter.as_ref().is_none_or(|f| f.matches(&entity)) {
                if let Some(select) = &query.select {
                    entity
                        .properties
                        .retain(|name, _| select.iter().any(|s| s == name));
                }
                entities.push(entity);
            }
        }
        Ok(Page {
            entities,
            continuation,
        })
    }
}

/// Key bounds implied by the top-level `and` of a filter, used to narrow the SQL scan. The full
/// filter is still evaluated on every row, so these bounds only need to be a superset.
#[derive(Default)]
struct KeyRange {
    pk_eq: Option<String>,
    pk_lo: Option<String>,
    pk_hi: Option<String>,
    rk_lo: Option<String>,
    rk_hi: Option<String>,
}

impl KeyRange {
    /// `None` when the conjuncts contradict each other (two different partition keys).
    fn of(filter: &Filter) -> Option<Self> {
        let mut range = KeyRange::default();
        let mut stack = vec![filter];
        while let Some(f) = stack.pop() {
            match f {
                Filter::And(a, b) => {
                    stack.push(a);
                    stack.push(b);
                }
                Filter::Compare {
                    column,
                    op,
                    value: Value::String(s),
                } => {
                    let (lo, hi) = match column {
                        Column::PartitionKey => (&mut range.pk_lo, &mut range.pk_hi),
                        Column::RowKey => (&mut range.rk_lo, &mut range.rk_hi),
                        _ => continue,
                    };
                    match op {
                        CmpOp::Eq => {
                            if matches!(column, Column::PartitionKey) {
                                match &range.pk_eq {
                                    Some(existing) if existing != s => return None,
                                    _ => range.pk_eq = Some(s.clone()),
                                }
                            } else {
                                tighten_lo(lo, s);
                                tighten_hi(hi, s);
                            }
                        }
                        CmpOp::Gt | CmpOp::Ge => tighten_lo(lo, s),
                        CmpOp::Lt | CmpOp::Le => tighten_hi(hi, s),
                        CmpOp::Ne => {}
                    }
                }
                _ => {}
            }
        }
        Some(range)
    }
}

fn tighten_lo(bound: &mut Option<String>, value: &str) {
    if bound.as_deref().is_none_or(|b| value > b) {
        *bound = Some(value.to_owned());
    }
}

fn tighten_hi(bound: &mut Option<String>, value: &str) {
    if bound.as_deref().is_none_or(|b| value < b) {
        *bound = Some(value.to_owned());
    }
}

// Property encoding: for each property, [name len u8][name][type tag u8][payload], with
// little-endian fixed-size numbers and u32-length-prefixed strings/binaries. Compact, exact for
// every Edm type (Int64 full range, Double bit-exact, DateTime as 100-ns ticks).
const TAG_STRING: u8 = 1;
const TAG_INT32: u8 = 2;
const TAG_INT64: u8 = 3;
const TAG_DOUBLE: u8 = 4;
const TAG_BOOL: u8 = 5;
const TAG_DATETIME: u8 = 6;
const TAG_GUID: u8 = 7;
const TAG_BINARY: u8 = 8;

fn encode(props: &Properties) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * props.len() + 16);
    for (name, value) in props {
        // Validated names are ASCII and at most 255 bytes.
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        match value {
            Value::String(s) => {
                out.push(TAG_STRING);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Int32(v) => {
                out.push(TAG_INT32);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Int64(v) => {
                out.push(TAG_INT64);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Double(v) => {
                out.push(TAG_DOUBLE);
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            Value::Boolean(v) => {
                out.push(TAG_BOOL);
                out.push(u8::from(*v));
            }
            Value::DateTime(v) => {
                out.push(TAG_DATETIME);
                out.extend_from_slice(&datetime_to_ticks(truncate_datetime(*v)).to_le_bytes());
            }
            Value::Guid(v) => {
                out.push(TAG_GUID);
                out.extend_from_slice(v.as_bytes());
            }
            Value::Binary(b) => {
                out.push(TAG_BINARY);
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    out
}

fn decode(mut bytes: &[u8]) -> StoreResult<Properties> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> StoreResult<&'a [u8]> {
        if bytes.len() < n {
            return Err(StoreError::Backend("corrupt stored entity".into()));
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Ok(head)
    }
    fn array<const N: usize>(bytes: &mut &[u8]) -> StoreResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(take(bytes, N)?);
        Ok(out)
    }
    let utf8 = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| StoreError::Backend("corrupt stored entity".into()))
    };
    let mut props = Properties::new();
    while !bytes.is_empty() {
        let name_len = usize::from(take(&mut bytes, 1)?[0]);
        let name = utf8(take(&mut bytes, name_len)?)?;
        let tag = take(&mut bytes, 1)?[0];
        let value = match tag {
            TAG_STRING => {
                let len = u32::from_le_bytes(array(&mut bytes)?) as usize;
                Value::String(utf8(take(&mut bytes, len)?)?)
            }
            TAG_INT32 => Value::Int32(i32::from_le_bytes(array(&mut bytes)?)),
            TAG_INT64 => Value::Int64(i64::from_le_bytes(array(&mut bytes)?)),
            TAG_DOUBLE => Value::Double(f64::from_bits(u64::from_le_bytes(array(&mut bytes)?))),
            TAG_BOOL => Value::Boolean(take(&mut bytes, 1)?[0] != 0),
            TAG_DATETIME => {
                Value::DateTime(ticks_to_datetime(i64::from_le_bytes(array(&mut bytes)?))?)
            }
            TAG_GUID => Value::Guid(uuid::Uuid::from_bytes(array(&mut bytes)?)),
            TAG_BINARY => {
                let len = u32::from_le_bytes(array(&mut bytes)?) as usize;
                Value::Binary(take(&mut bytes, len)?.to_vec())
            }
            _ => return Err(StoreError::Backend("corrupt stored entity".into())),
        };
        props.insert(name, value);
    }
    Ok(props)
}

fn merge(stored: &[u8], update: &Properties) -> StoreResult<Vec<u8>> {
    let mut props = decode(stored)?;
    props.extend(update.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(encode(&props))
}

#[async_trait]
impl TableStore for SqliteTables {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn health(&self) -> StoreResult<()> {
        self.read(|conn, _| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| StoreError::unavailable(format!("sqlite: {e}")))
        })
        .await
    }

    async fn create_table_if_missing(&self, table: &TableName) -> StoreResult<()> {
        let table = table.clone();
        self.write(move |conn, inner| {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO bifrost_tables (name_key, name) VALUES (?1, ?2)",
            )
            .and_then(|mut s| s.execute(params![table.folded(), table.as_str()]))
            .map_err(sql_err)?;
            inner
                .tables
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(table.folded());
            Ok(())
        })
        .await
    }

    async fn insert(&self, table: &TableName, entity: &Entity) -> StoreResult<ETag> {
        validate_entity(entity)?;
        self.single(table, BatchOp::Insert(entity.clone())).await
    }

    async fn upsert(
        &self,
        table: &TableName,
        entity: &Entity,
        mode: WriteMode,
    ) -> StoreResult<ETag> {
        validate_entity(entity)?;
        self.single(table, BatchOp::Upsert(entity.clone(), mode))
            .await
    }

    async fn update(
        &self,
        table: &TableName,
        entity: &Entity,
        mode: WriteMode,
        if_match: &IfMatch,
    ) -> StoreResult<ETag> {
        validate_entity(entity)?;
        self.single(
            table,
            BatchOp::Update(entity.clone(), mode, if_match.clone()),
        )
        .await
    }

    async fn delete(
        &self,
        table: &TableName,
        partition_key: &PartitionKey,
        row_key: &RowKey,
        if_match: &IfMatch,
    ) -> StoreResult<()> {
        let op = BatchOp::Delete {
            partition_key: partition_key.clone(),
            row_key: row_key.clone(),
            if_match: if_match.clone(),
        };
        let table = table.clone();
        self.write(move |conn, inner| {
            inner.apply_all(conn, &table, std::slice::from_ref(&op), false)
        })
        .await
        .map(|_| ())
    }

    async fn get(
        &self,
        table: &TableName,
        partition_key: &PartitionKey,
        row_key: &RowKey,
    ) -> StoreResult<Option<Entity>> {
        let (table, pk, rk) = (table.clone(), partition_key.clone(), row_key.clone());
        self.read(move |conn, inner| inner.get(conn, &table, &pk, &rk))
            .await
    }

    async fn query(&self, table: &TableName, query: &Query) -> StoreResult<Page> {
        validate_query(query)?;
        let (table, query) = (table.clone(), query.clone());
        self.read(move |conn, inner| inner.query(conn, &table, &query))
            .await
    }

    async fn batch(&self, table: &TableName, batch: &Batch) -> StoreResult<Vec<Option<ETag>>> {
        validate_batch(batch)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (table, batch) = (table.clone(), batch.clone());
        self.write(move |conn, inner| inner.apply_all(conn, &table, batch.operations(), true))
            .await
    }
}

impl SqliteTables {
    async fn single(&self, table: &TableName, op: BatchOp) -> StoreResult<ETag> {
        let table = table.clone();
        let results = self
            .write(move |conn, inner| {
                inner.apply_all(conn, &table, std::slice::from_ref(&op), false)
            })
            .await?;
        results
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| StoreError::Backend("write returned no ETag".into()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trips_every_type() {
        let mut props = Properties::new();
        props.insert("s".into(), Value::String("héllo".into()));
        props.insert("i".into(), Value::Int32(i32::MIN));
        props.insert("l".into(), Value::Int64(i64::MAX));
        props.insert("d".into(), Value::Double(-0.1));
        props.insert("b".into(), Value::Boolean(true));
        props.insert(
            "t".into(),
            Value::DateTime(time::macros::datetime!(1601-01-01 00:00:00.000_000_1 UTC)),
        );
        props.insert("g".into(), Value::Guid(uuid::Uuid::new_v4()));
        props.insert("x".into(), Value::Binary(vec![0, 255, 7]));
        assert_eq!(decode(&encode(&props)).unwrap(), props);
        assert!(decode(&[3, b'a']).is_err());
    }
}

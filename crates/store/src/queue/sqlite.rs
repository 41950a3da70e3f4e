//! The embedded queue backend: one SQLite file (WAL mode) holding every queue.
//!
//! Visibility is a `visible_at_ms` timestamp: receiving a message pushes it into the future and
//! stamps a fresh random pop receipt, inside one `IMMEDIATE` transaction, so two receivers can
//! never lease the same visible message and an older receipt can no longer delete or extend it.
//! Messages come out in `(visible_at_ms, seq)` order: FIFO for messages sent without a delay.
//! All SQLite work runs on tokio's blocking pool, never on the async executor.
//! Must not depend on the Azure backend or anything outside this crate.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;

use super::{
    MessageId, PopReceipt, QueueName, QueueStore, ReceivedMessage, lease_lost, validate_batch,
    validate_body, validate_delay,
};
use crate::error::{StoreError, StoreResult};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL REFERENCES queues(name),
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    inserted_at_ms INTEGER NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    dequeue_count INTEGER NOT NULL DEFAULT 0,
    pop_receipt TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages(queue, visible_at_ms, seq);
";

/// Queues in one SQLite database file (e.g. `<data>/queues.sqlite`).
#[derive(Clone)]
pub struct SqliteQueues {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueues").finish_non_exhaustive()
    }
}

impl SqliteQueues {
    /// Opens (creating if needed) the queue database at `path`, creating its parent folder.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Backend(format!("creating queue folder {}: {e}", parent.display()))
            })?;
        }
        let conn = Connection::open(path).map_err(sql_error)?;
        // WAL lets readers run beside the single writer; the busy timeout covers a second
        // process (an admin tool) holding the write lock briefly. `synchronous=NORMAL` in WAL
        // mode survives a process crash; only a power loss can drop the latest commits.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_error)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql_error)?;
        conn.execute_batch(SCHEMA).map_err(sql_error)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with_conn<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Backend("queue database lock poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("queue database task failed: {e}")))?
    }
}

fn sql_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::unavailable(format!("queue database busy: {e}"))
        }
        _ => StoreError::Backend(format!("queue database: {e}")),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn new_receipt() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn require_queue(conn: &Connection, queue: &str) -> StoreResult<()> {
    let exists: Option<i64> = conn
        .query_row("SELECT 1 FROM queues WHERE name = ?1", [queue], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sql_error)?;
    match exists {
        Some(_) => Ok(()),
        None => Err(StoreError::not_found(format!("queue {queue}"))),
    }
}

#[async_trait]
impl QueueStore for SqliteQueues {
    async fn health(&self) -> StoreResult<()> {
        self.with_conn(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn create_queue(&self, queue: &QueueName) -> StoreResult<()> {
        let name = queue.as_str().to_owned();
        self.with_conn(move |conn| {
            conn.execute("INSERT OR IGNORE INTO queues(name) VALUES (?1)", [name])
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn send(
        &self,
        queue: &QueueName,
        body: &str,
        visibility_delay: Duration,
    ) -> StoreResult<MessageId> {
        validate_body(body)?;
        validate_delay("visibilityDelay", visibility_delay, Duration::ZERO)?;
        let name = queue.as_str().to_owned();
        let body = body.to_owned();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            require_queue(&tx, &name)?;
            let id = uuid::Uuid::new_v4().to_string();
            let now = now_ms();
            tx.execute(
                "INSERT INTO messages(queue, id, body, inserted_at_ms, visible_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    name,
                    id,
                    body,
                    now,
                    now.saturating_add(duration_ms(visibility_delay))
                ],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(MessageId(id))
        })
        .await
    }

    async fn receive(
        &self,
        queue: &QueueName,
        max_messages: usize,
        visibility_timeout: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        validate_batch(max_messages)?;
        validate_delay(
            "visibilityTimeout",
            visibility_timeout,
            Duration::from_secs(1),
        )?;
        let name = queue.as_str().to_owned();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            require_queue(&tx, &name)?;
            let now = now_ms();
            let visible_again = now.saturating_add(duration_ms(visibility_timeout));
            let candidates: Vec<(i64, String, String, i64, i64)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT seq, id, body, inserted_at_ms, dequeue_count FROM messages
                         WHERE queue = ?1 AND visible_at_ms <= ?2
                         ORDER BY visible_at_ms, seq LIMIT ?3",
                    )
                    .map_err(sql_error)?;
                let rows = stmt
                    .query_map(params![name, now, max_messages as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(sql_error)?;
                rows.collect::<Result<_, _>>().map_err(sql_error)?
            };
            let mut out = Vec::with_capacity(candidates.len());
            for (seq, id, body, inserted_at_ms, dequeue_count) in candidates {
                let receipt = new_receipt();
                let dequeue_count = dequeue_count.saturating_add(1);
                tx.execute(
                    "UPDATE messages SET visible_at_ms = ?1, pop_receipt = ?2, dequeue_count = ?3
                     WHERE seq = ?4",
                    params![visible_again, receipt, dequeue_count, seq],
                )
                .map_err(sql_error)?;
                out.push(ReceivedMessage {
                    id: MessageId(id),
                    pop_receipt: PopReceipt(receipt),
                    body,
                    dequeue_count: u32::try_from(dequeue_count).unwrap_or(u32::MAX),
                    inserted_at: from_ms(inserted_at_ms),
                    visible_again_at: from_ms(visible_again),
                });
            }
            tx.commit().map_err(sql_error)?;
            Ok(out)
        })
        .await
    }

    async fn delete(
        &self,
        queue: &QueueName,
        id: &MessageId,
        pop_receipt: &PopReceipt,
    ) -> StoreResult<()> {
        let name = queue.as_str().to_owned();
        let id = id.clone();
        let receipt = pop_receipt.0.clone();
        self.with_conn(move |conn| {
            let deleted = conn
                .execute(
                    "DELETE FROM messages WHERE queue = ?1 AND id = ?2 AND pop_receipt = ?3",
                    params![name, id.0, receipt],
                )
                .map_err(sql_error)?;
            if deleted == 0 {
                return Err(lease_lost(&id));
            }
            Ok(())
        })
        .await
    }

    async fn update_visibility(
        &self,
        queue: &QueueName,
        message: &ReceivedMessage,
        visibility_timeout: Duration,
    ) -> StoreResult<PopReceipt> {
        validate_delay("visibilityTimeout", visibility_timeout, Duration::ZERO)?;
        let name = queue.as_str().to_owned();
        let id = message.id.clone();
        let old = message.pop_receipt.0.clone();
        self.with_conn(move |conn| {
            let receipt = new_receipt();
            let visible_at = now_ms().saturating_add(duration_ms(visibility_timeout));
            let updated = conn
                .execute(
                    "UPDATE messages SET visible_at_ms = ?1, pop_receipt = ?2
                     WHERE queue = ?3 AND id = ?4 AND pop_receipt = ?5",
                    params![visible_at, receipt, name, id.0, old],
                )
                .map_err(sql_error)?;
            if updated == 0 {
                return Err(lease_lost(&id));
            }
            Ok(PopReceipt(receipt))
        })
        .await
    }

    async fn approximate_count(&self, queue: &QueueName) -> StoreResult<u64> {
        let name = queue.as_str().to_owned();
        self.with_conn(move |conn| {
            require_queue(conn, &name)?;
            let count: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM messages WHERE queue = ?1",
                    [&name],
                    |r| r.get(0),
                )
                .map_err(sql_error)?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }
}

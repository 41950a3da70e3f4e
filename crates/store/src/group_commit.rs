//! Group commit for an embedded SQLite database: one thread owns the write connection and
//! commits every write that queued up while the previous commit ran in one transaction.
//!
//! Why: SQLite has one writer. Running each write on tokio's blocking pool meant a thread
//! hand-off, a fight over the writer's mutex and a WAL commit (frame write, lock calls) per
//! write. Under concurrency most of a request's storage time went to those, not to SQL. A single
//! writer thread that drains its queue pays one wake-up and one commit for the whole group.
//!
//! Checkpoints (copying the WAL into the database file, then an fsync) run on a checkpointer
//! thread with its own connection, at most every [`CHECKPOINT_PAUSE`] while writes happen: on
//! the writer they stalled every queued write behind the fsync. Only every `REWIND_EVERY` does
//! the writer finish a checkpoint itself (little is left to copy by then), which lets SQLite
//! start the WAL over; without it the WAL of a busy database grows without bound.
//!
//! Invariants:
//! - each write runs inside its own savepoint: a write that fails is rolled back alone and
//!   reports its own error, the rest of the group still commits;
//! - a write's caller hears back only after the group's `COMMIT` returned: a success reported
//!   to a caller is in the database; if the commit fails, every write of the group reports it;
//! - a write that panics is rolled back to its savepoint and its caller gets an error; the
//!   thread and the other writes carry on.
//!
//! Depends on `rusqlite`, tokio's oneshot channel and the store's error type only.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::{StoreError, StoreResult};

/// Most writes committed in one transaction; a bound on how long the first of them waits.
const MAX_GROUP: usize = 128;
/// How often the writer itself finishes a checkpoint so the WAL can start over (see
/// `writer_loop`); bounds the WAL to about this much write traffic.
const REWIND_EVERY: Duration = Duration::from_secs(1);
/// How long the checkpointer lets commits accumulate before it checkpoints them.
pub(crate) const CHECKPOINT_PAUSE: Duration = Duration::from_millis(100);

/// A write handed to the writer thread, type-erased so writes of any result type share one
/// queue. `S` is the state the writes may read besides the connection.
trait Job<S>: Send {
    /// Runs the write in the open transaction and returns how to answer its caller.
    fn run(self: Box<Self>, conn: &Connection, state: &S) -> Box<dyn Answer>;
    /// Answers the caller with `error` without running the write.
    fn refuse(self: Box<Self>, error: StoreError);
}

/// A write's result, held until the group's commit is known.
trait Answer: Send {
    fn succeeded(&self) -> bool;
    /// Answers the caller; `commit` is the group's commit result.
    fn send(self: Box<Self>, commit: &StoreResult<()>);
}

struct Write<F, T> {
    f: F,
    reply: oneshot::Sender<StoreResult<T>>,
}

struct Reply<T> {
    result: StoreResult<T>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<S, F, T> Job<S> for Write<F, T>
where
    F: FnOnce(&Connection, &S) -> StoreResult<T> + Send,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, state: &S) -> Box<dyn Answer> {
        let Write { f, reply } = *self;
        Box::new(Reply {
            result: f(conn, state),
            reply,
        })
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

impl<T: Send> Answer for Reply<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn send(self: Box<Self>, commit: &StoreResult<()>) {
        let result = match (self.result, commit) {
            (Ok(_), Err(e)) => Err(e.clone()),
            (result, _) => result,
        };
        // The caller may have stopped waiting (request cancelled); the write stands either way.
        let _ = self.reply.send(result);
    }
}

/// The handle writes are queued through. Dropping the last handle stops the thread after it
/// has committed what was queued.
pub(crate) struct GroupCommit<S> {
    queue: mpsc::Sender<Box<dyn Job<S>>>,
}

impl<S: Send + Sync + 'static> GroupCommit<S> {
    /// Starts the writer thread, which owns `conn` (opened with `wal_autocheckpoint=0`), and
    /// the checkpointer, which owns `checkpoints` (a second connection to the same file).
    /// `to_error` turns SQLite errors of the transaction statements into the store's error
    /// (busy → unavailable).
    pub(crate) fn start(
        name: &str,
        conn: Connection,
        checkpoints: Connection,
        state: Arc<S>,
        to_error: fn(rusqlite::Error) -> StoreError,
    ) -> StoreResult<Self> {
        let spawn = |thread: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(thread.clone())
                .spawn(f)
                .map(drop)
                .map_err(|e| StoreError::Backend(format!("cannot start the {thread} thread: {e}")))
        };
        let (dirty, commits) = mpsc::sync_channel::<()>(1);
        spawn(
            format!("{name}-ckpt"),
            Box::new(move || checkpoint_loop(&checkpoints, &commits)),
        )?;
        let (queue, jobs) = mpsc::channel::<Box<dyn Job<S>>>();
        spawn(
            name.to_owned(),
            Box::new(move || writer_loop(&conn, state.as_ref(), &jobs, &dirty, to_error)),
        )?;
        Ok(Self { queue })
    }

    /// Runs `f` on the writer connection inside the next group's transaction and returns its
    /// result once that transaction has committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &S) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Box::new(Write { f, reply }))
            .map_err(|_| StoreError::Backend("the sqlite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the sqlite write failed unexpectedly".into()))?
    }
}

fn writer_loop<S>(
    conn: &Connection,
    state: &S,
    jobs: &mpsc::Receiver<Box<dyn Job<S>>>,
    dirty: &mpsc::SyncSender<()>,
    to_error: fn(rusqlite::Error) -> StoreError,
) {
    let mut last_rewind = Instant::now();
    // `recv` fails once every handle is gone: nothing more can arrive.
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(conn, state, group, to_error);
        if last_rewind.elapsed() >= REWIND_EVERY {
            // SQLite only rewinds the WAL when a write begins with every frame checkpointed,
            // which never happens while the checkpointer trails a writer that does not pause:
            // the WAL would grow without end. Checkpointing here, between groups, catches up
            // (the checkpointer did most of the copying) so the next write starts it over.
            if let Err(e) = checkpoint(conn) {
                tracing::debug!(error = %e, "writer checkpoint skipped");
            }
            last_rewind = Instant::now();
        }
        // Full means a checkpoint is already due.
        let _ = dirty.try_send(());
    }
    // Dropping `dirty` tells the checkpointer to make its last checkpoint and stop.
}

/// Checkpoints what was committed, at most every [`CHECKPOINT_PAUSE`], and once more when the
/// writer stops. PASSIVE: it never waits for, or blocks, the writer or readers.
fn checkpoint_loop(conn: &Connection, commits: &mpsc::Receiver<()>) {
    let checkpoint_now = || {
        if let Err(e) = checkpoint(conn) {
            tracing::warn!(error = %e, "sqlite checkpoint failed; the next one catches up");
        }
    };
    while commits.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_PAUSE);
        checkpoint_now();
    }
    checkpoint_now();
}

/// A PASSIVE checkpoint: copies what it can without waiting for, or blocking, anyone.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

fn commit_group<S>(
    conn: &Connection,
    state: &S,
    group: Vec<Box<dyn Job<S>>>,
    to_error: fn(rusqlite::Error) -> StoreError,
) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Typically another process holding the write lock past the busy timeout.
        let error = to_error(e);
        for job in group {
            job.refuse(error.clone());
        }
        return;
    }
    let mut answers = Vec::with_capacity(group.len());
    for job in group {
        if let Err(e) = conn.execute_batch("SAVEPOINT w") {
            job.refuse(to_error(e));
            continue;
        }
        let answer = catch_unwind(AssertUnwindSafe(|| job.run(conn, state)));
        let keep = matches!(&answer, Ok(a) if a.succeeded());
        let end = if keep {
            "RELEASE w"
        } else {
            "ROLLBACK TO w; RELEASE w"
        };
        if let Err(e) = conn.execute_batch(end) {
            tracing::error!(error = %e, "sqlite savepoint release failed");
        }
        // A panicked job dropped its reply sender while unwinding; its caller sees an error.
        if let Ok(answer) = answer {
            answers.push(answer);
        }
    }
    let commit = conn.execute_batch("COMMIT").map_err(to_error);
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for answer in answers {
        answer.send(&commit);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sql_error(e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy) => StoreError::unavailable(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        }
    }

    fn database(dir: &tempfile::TempDir) -> Connection {
        let conn = Connection::open(dir.path().join("db.sqlite")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        conn
    }

    /// The writer and checkpointer threads over a fresh database, set up as the table store does.
    fn started(dir: &tempfile::TempDir) -> GroupCommit<()> {
        let writer = database(dir);
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        let checkpoints = Connection::open(dir.path().join("db.sqlite")).unwrap();
        GroupCommit::start("test-writer", writer, checkpoints, Arc::new(()), sql_error).unwrap()
    }

    type Receiver = oneshot::Receiver<StoreResult<()>>;

    /// A write inserting `v`, then failing if `fail` (after it wrote, so the rollback matters).
    fn insert(v: i64, fail: bool) -> (Box<dyn Job<()>>, Receiver) {
        let (reply, answer) = oneshot::channel();
        let f = move |conn: &Connection, _: &()| -> StoreResult<()> {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [v])
                .map_err(sql_error)?;
            if fail {
                return Err(StoreError::invalid("v", "refused after writing"));
            }
            Ok(())
        };
        (Box::new(Write { f, reply }), answer)
    }

    fn stored(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_failed_write_is_rolled_back_alone_and_the_group_commits() {
        let dir = tempfile::tempdir().unwrap();
        let conn = database(&dir);
        let (a, ra) = insert(1, false);
        let (b, rb) = insert(2, true);
        let (c, rc) = insert(3, false);
        // The same value twice: the second fails on the primary key, inside the group.
        let (d, rd) = insert(3, false);
        commit_group(&conn, &(), vec![a, b, c, d], sql_error);
        assert!(ra.blocking_recv().unwrap().is_ok());
        assert!(matches!(
            rb.blocking_recv().unwrap(),
            Err(StoreError::Invalid { .. })
        ));
        assert!(rc.blocking_recv().unwrap().is_ok());
        assert!(rd.blocking_recv().unwrap().is_err());
        assert_eq!(stored(&conn), vec![1, 3]);
        assert!(conn.is_autocommit(), "the transaction was closed");
    }

    #[test]
    fn a_panicking_write_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let conn = database(&dir);
        let (reply, panicked) = oneshot::channel::<StoreResult<()>>();
        let f = |conn: &Connection, _: &()| -> StoreResult<()> {
            conn.execute("INSERT INTO t (v) VALUES (7)", []).unwrap();
            panic!("a bug in a write");
        };
        let (ok, rok) = insert(8, false);
        commit_group(
            &conn,
            &(),
            vec![Box::new(Write { f, reply }), ok],
            sql_error,
        );
        assert!(panicked.blocking_recv().is_err(), "its sender was dropped");
        assert!(rok.blocking_recv().unwrap().is_ok());
        assert_eq!(stored(&conn), vec![8]);
    }

    #[test]
    fn a_group_that_cannot_begin_reports_the_lock_to_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let conn = database(&dir);
        conn.busy_timeout(std::time::Duration::ZERO).unwrap();
        let other = Connection::open(dir.path().join("db.sqlite")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (a, ra) = insert(1, false);
        let (b, rb) = insert(2, false);
        commit_group(&conn, &(), vec![a, b], sql_error);
        for answer in [ra, rb] {
            let result = answer.blocking_recv().unwrap();
            assert!(
                matches!(result, Err(ref e) if e.is_transient()),
                "{result:?}"
            );
        }
        other.execute_batch("ROLLBACK").unwrap();
        assert!(stored(&conn).is_empty());
    }

    #[tokio::test]
    async fn concurrent_writes_all_land_through_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Arc::new(started(&dir));
        let mut tasks = Vec::new();
        for v in 0..200i64 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                writer
                    .write(move |conn, _| {
                        conn.execute("INSERT INTO t (v) VALUES (?1)", [v])
                            .map_err(sql_error)
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), 1);
        }
        let check = Connection::open(dir.path().join("db.sqlite")).unwrap();
        assert_eq!(stored(&check), (0..200).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn commits_reach_the_database_file_through_the_checkpointer() {
        let dir = tempfile::tempdir().unwrap();
        let writer = started(&dir);
        writer
            .write(|conn, _| {
                conn.execute("INSERT INTO t (v) VALUES (42)", [])
                    .map_err(sql_error)
            })
            .await
            .unwrap();
        // The main file alone (no WAL beside it) shows what was checkpointed.
        let main_file_rows = || {
            let copy = dir.path().join("copy.sqlite");
            std::fs::copy(dir.path().join("db.sqlite"), &copy).unwrap();
            let conn = Connection::open(&copy).unwrap();
            let has_table = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 't'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
                == 1;
            let rows = if has_table { stored(&conn) } else { Vec::new() };
            drop(conn);
            std::fs::remove_file(&copy).unwrap();
            rows
        };
        let deadline = std::time::Instant::now() + 20 * CHECKPOINT_PAUSE;
        while main_file_rows().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never checkpointed");
            tokio::time::sleep(CHECKPOINT_PAUSE / 2).await;
        }
        assert_eq!(main_file_rows(), vec![42]);
    }

    #[tokio::test]
    async fn the_wal_starts_over_while_writes_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let writer = started(&dir);
        // Back-to-back commits (each adds at least one WAL frame) for several rewind periods.
        let until = std::time::Instant::now() + 3 * REWIND_EVERY;
        let mut commits = 0i64;
        while std::time::Instant::now() < until {
            writer
                .write(move |conn, _| {
                    conn.execute("INSERT INTO t (v) VALUES (?1)", [commits])
                        .map_err(sql_error)
                })
                .await
                .unwrap();
            commits += 1;
        }
        // Frames now in the WAL (the second column): fewer than the commits if it started over.
        let check = Connection::open(dir.path().join("db.sqlite")).unwrap();
        let frames: i64 = check
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap();
        assert!(
            frames < commits,
            "{frames} WAL frames after {commits} commits: the WAL never started over"
        );
    }
}

//! The standalone server's timer: fires the platform jobs in-process on their NCRONTAB
//! schedules (under the Functions host the host fires them instead).
//!
//! Each firing is a *slot*: the latest occurrence of the job's schedule at or before now. A slot
//! runs only on the instance that claims it in the `Timers` table (`GLOBAL` partition, one row
//! per job, `{LastSlot}`, ETag-guarded), so several instances never run the same slot twice.
//! An instance that was down over many slots finds the stored `LastSlot` behind and runs the job
//! once for the latest slot: a past-due timer catches up once, not N times.

use std::sync::Arc;
use std::time::Duration;

use bifrost_store::table::{IfMatch, Properties, TableName, Value, WriteMode};
use bifrost_store::{RowKey, Scope, ScopedTable, StoreError, StoreResult, TableStore};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Jobs, TimerJob};
use crate::schedules::Cron;

pub const TIMERS_TABLE: &str = "Timers";
/// How often the timer checks for due slots.
const TICK: Duration = Duration::from_millis(500);
/// Occurrences walked when catching up; beyond this the slot is "now" (the job still runs once).
const MAX_CATCH_UP_STEPS: usize = 100_000;

/// The last slot each job ran for, shared by every instance.
#[derive(Clone)]
pub struct TimerStore {
    table: ScopedTable,
}

impl TimerStore {
    pub fn new(tables: Arc<dyn TableStore>) -> StoreResult<Self> {
        Ok(Self {
            table: ScopedTable::new(tables, TableName::new(TIMERS_TABLE)?, &Scope::Global),
        })
    }

    pub async fn ensure_table(&self) -> StoreResult<()> {
        self.table
            .store()
            .create_table_if_missing(self.table.table())
            .await
    }

    /// The slot the job last ran for, on any instance.
    pub async fn last_slot(&self, job: TimerJob) -> StoreResult<Option<OffsetDateTime>> {
        Ok(self
            .table
            .get(&row_key(job)?)
            .await?
            .and_then(|e| e.get("LastSlot").and_then(Value::as_datetime)))
    }

    /// Claims `slot` for this instance: `true` when nobody ran this slot (or a later one) yet.
    pub async fn claim(&self, job: TimerJob, slot: OffsetDateTime) -> StoreResult<bool> {
        let key = row_key(job)?;
        let mut props = Properties::new();
        props.insert("LastSlot".into(), slot.into());
        match self.table.get(&key).await? {
            None => match self.table.insert(key, props).await {
                Ok(_) => Ok(true),
                Err(StoreError::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(e),
            },
            Some(entity) => {
                let last = entity.get("LastSlot").and_then(Value::as_datetime);
                if last.is_some_and(|last| last >= slot) {
                    return Ok(false);
                }
                let Some(etag) = entity.etag else {
                    return Ok(false);
                };
                match self
                    .table
                    .update(key, props, WriteMode::Merge, &IfMatch::from(etag))
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(StoreError::PreconditionFailed { .. } | StoreError::NotFound { .. }) => {
                        Ok(false)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

fn row_key(job: TimerJob) -> StoreResult<RowKey> {
    RowKey::new(job.function_name())
}

/// The latest occurrence of `cron` after `after` and at or before `now`, if any.
pub fn latest_slot(
    cron: &Cron,
    after: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let mut slot = None;
    let mut cursor = after;
    for _ in 0..MAX_CATCH_UP_STEPS {
        match cron.next_after(cursor) {
            Some(next) if next <= now => {
                slot = Some(next);
                cursor = next;
            }
            _ => return slot,
        }
    }
    // Down for longer than the walk covers: the job is overdue either way; run it once.
    Some(now)
}

/// The in-process timer of a standalone server.
pub struct Scheduler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Starts firing `jobs` on `schedules` (each a six-field NCRONTAB already validated by the
    /// settings).
    pub fn start(jobs: Jobs, store: TimerStore, schedules: Vec<(TimerJob, Cron)>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(jobs, store, schedules, stopped));
        Self { stop, task }
    }

    /// Stops firing; a job in progress finishes first.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(
    jobs: Jobs,
    store: TimerStore,
    schedules: Vec<(TimerJob, Cron)>,
    mut stopped: watch::Receiver<bool>,
) {
    if let Err(e) = store.ensure_table().await {
        tracing::warn!(error = %e, "cannot create the timers table yet");
    }
    // Where each job's walk starts: its last slot anywhere, else now (a job that never ran has
    // nothing to catch up).
    let start = OffsetDateTime::now_utc();
    let mut checked = Vec::with_capacity(schedules.len());
    for (job, _) in &schedules {
        let last = store.last_slot(*job).await.ok().flatten();
        checked.push(last.unwrap_or(start));
    }
    while !*stopped.borrow() {
        let now = OffsetDateTime::now_utc();
        for ((job, cron), after) in schedules.iter().zip(checked.iter_mut()) {
            let Some(slot) = latest_slot(cron, *after, now) else {
                continue;
            };
            match store.claim(*job, slot).await {
                Ok(true) => {
                    *after = slot;
                    let started = std::time::Instant::now();
                    match jobs.run(*job, now).await {
                        Ok(report) => {
                            tracing::info!(job = job.function_name(), %slot, elapsed_ms = started.elapsed().as_millis() as u64, %report, "timer job ran")
                        }
                        Err(e) => {
                            tracing::error!(job = job.function_name(), %slot, error = %e, "timer job failed")
                        }
                    }
                }
                // Another instance ran this slot.
                Ok(false) => *after = slot,
                // Storage is down: try the slot again next tick.
                Err(e) => {
                    tracing::warn!(job = job.function_name(), error = %e, "cannot claim the timer slot")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stopped.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bifrost_store::table::SqliteTables;
    use time::macros::datetime;

    #[test]
    fn a_long_outage_catches_up_to_the_latest_slot_only() {
        let cron = Cron::parse("0 */5 * * * *").unwrap();
        let after = datetime!(2026-01-01 00:00:00 UTC);
        let now = datetime!(2026-01-01 01:02:03 UTC);
        assert_eq!(
            latest_slot(&cron, after, now),
            Some(datetime!(2026-01-01 01:00:00 UTC))
        );
        assert_eq!(
            latest_slot(&cron, datetime!(2026-01-01 01:00:00 UTC), now),
            None
        );
    }

    #[tokio::test]
    async fn each_slot_is_claimed_once_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let tables: Arc<dyn TableStore> =
            Arc::new(SqliteTables::open(&dir.path().join("t.db")).unwrap());
        let a = TimerStore::new(tables.clone()).unwrap();
        let b = TimerStore::new(tables).unwrap();
        a.ensure_table().await.unwrap();
        let slot = datetime!(2026-01-01 01:00:00 UTC);
        let (x, y) = tokio::join!(
            a.claim(TimerJob::Retention, slot),
            b.claim(TimerJob::Retention, slot)
        );
        assert!(x.unwrap() ^ y.unwrap(), "exactly one instance wins");
        assert!(!a.claim(TimerJob::Retention, slot).await.unwrap());
        assert!(
            !b.claim(TimerJob::Retention, slot - time::Duration::minutes(5))
                .await
                .unwrap(),
            "an older slot never runs after a newer one"
        );
        assert!(
            b.claim(TimerJob::Retention, slot + time::Duration::minutes(5))
                .await
                .unwrap()
        );
        assert_eq!(
            a.last_slot(TimerJob::Retention).await.unwrap(),
            Some(slot + time::Duration::minutes(5))
        );
        assert!(
            a.claim(TimerJob::ExecutionCleanup, slot).await.unwrap(),
            "jobs are independent"
        );
    }
}

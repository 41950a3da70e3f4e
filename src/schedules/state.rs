//! Per-workflow schedule state: the rows a timer-driven scheduler reads and advances.
//!
//! One row per scheduled workflow in the `Schedules` table, `GLOBAL` partition (schedules are
//! platform-wide, like the workspace), row key = workflow name: `{workflowName,
//! cronExpression, enabled, disabledReason?, nextRunAt?, lastRunAt?, lastExecutionId?,
//! executionCount}`. Depends on the storage contract and [`super::cron`] only; knows nothing of
//! HTTP or the engine (callers pass the registry's scheduled workflows in).
//!
//! Invariants: every change after the first insert is an ETag-guarded update, so of several
//! instances racing to [`ScheduleStore::claim_due`] the same run exactly one wins (the others
//! see a stale ETag and skip it); a claim moves `nextRunAt` past `now`, so runs missed while no
//! instance was up fire once, not once per missed slot; `enabled` is true only while the
//! workflow is in the registry with a valid expression and no administrator disabled it
//! (`disabledReason` says which of those disabled it, so re-adding a workflow re-enables it
//! but never undoes an administrator's choice).

use std::sync::Arc;

use bifrost_store::table::{ETag, Entity, IfMatch, Properties, Query, TableName, Value, WriteMode};
use bifrost_store::{RowKey, Scope, ScopedTable, StoreError, TableStore};
use time::OffsetDateTime;

use super::cron::{Cron, CronError};

pub const SCHEDULES_TABLE: &str = "Schedules";

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("no schedule for workflow '{0}'")]
    NotFound(String),
    #[error("invalid workflowName: {0}")]
    InvalidName(String),
    #[error("invalid cron expression for workflow '{workflow}': {source}")]
    InvalidExpression {
        workflow: String,
        #[source]
        source: CronError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a schedule is not enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisabledReason {
    /// An administrator disabled it; only an administrator re-enables it.
    Admin,
    /// The workflow (or its `schedule=`) is gone from the workspace.
    Removed,
    /// The workflow's expression does not parse.
    InvalidExpression,
}

impl DisabledReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisabledReason::Admin => "admin",
            DisabledReason::Removed => "removed",
            DisabledReason::InvalidExpression => "invalidExpression",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(DisabledReason::Admin),
            "removed" => Some(DisabledReason::Removed),
            "invalidExpression" => Some(DisabledReason::InvalidExpression),
            _ => None,
        }
    }
}

/// One workflow's schedule row.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleState {
    pub workflow_name: String,
    pub cron_expression: String,
    pub enabled: bool,
    pub disabled_reason: Option<DisabledReason>,
    pub next_run_at: Option<OffsetDateTime>,
    pub last_run_at: Option<OffsetDateTime>,
    pub last_execution_id: Option<String>,
    pub execution_count: i64,
    pub etag: Option<ETag>,
}

impl ScheduleState {
    fn to_properties(&self) -> Properties {
        let mut p = Properties::new();
        p.insert("workflowName".into(), self.workflow_name.clone().into());
        p.insert("cronExpression".into(), self.cron_expression.clone().into());
        p.insert("enabled".into(), self.enabled.into());
        p.insert("executionCount".into(), self.execution_count.into());
        if let Some(reason) = self.disabled_reason {
            p.insert("disabledReason".into(), reason.as_str().into());
        }
        if let Some(t) = self.next_run_at {
            p.insert("nextRunAt".into(), t.into());
        }
        if let Some(t) = self.last_run_at {
            p.insert("lastRunAt".into(), t.into());
        }
        if let Some(id) = &self.last_execution_id {
            p.insert("lastExecutionId".into(), id.clone().into());
        }
        p
    }

    fn from_entity(entity: Entity) -> Self {
        let text = |name: &str| entity.get(name).and_then(Value::as_str).map(str::to_owned);
        let when = |name: &str| entity.get(name).and_then(Value::as_datetime);
        Self {
            workflow_name: text("workflowName")
                .unwrap_or_else(|| entity.row_key.as_str().to_owned()),
            cron_expression: text("cronExpression").unwrap_or_default(),
            enabled: entity
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            disabled_reason: text("disabledReason").and_then(|r| DisabledReason::parse(&r)),
            next_run_at: when("nextRunAt"),
            last_run_at: when("lastRunAt"),
            last_execution_id: text("lastExecutionId"),
            execution_count: entity
                .get("executionCount")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            etag: entity.etag.clone(),
        }
    }
}

/// A run this instance won the right to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub workflow_name: String,
    /// The slot being run (the `nextRunAt` that was due).
    pub scheduled_for: OffsetDateTime,
    /// The row after the claim (its ETag guards [`ScheduleStore::record_execution`]).
    pub state: ScheduleState,
}

/// A scheduled workflow as the registry declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredSchedule {
    pub workflow_name: String,
    pub expression: String,
}

/// What [`ScheduleStore::sync_from_registry`] changed, by workflow name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub disabled: Vec<String>,
    /// Declared with an expression that does not parse (stored disabled).
    pub invalid: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ScheduleStore {
    table: ScopedTable,
}

fn row_key(workflow: &str) -> Result<RowKey, ScheduleError> {
    RowKey::new(workflow).map_err(|e| ScheduleError::InvalidName(e.to_string()))
}

impl ScheduleStore {
    pub fn new(tables: Arc<dyn TableStore>) -> Result<Self, ScheduleError> {
        let name = TableName::new(SCHEDULES_TABLE)?;
        Ok(Self {
            table: ScopedTable::new(tables, name, &Scope::Global),
        })
    }

    pub async fn ensure_table(&self) -> Result<(), ScheduleError> {
        self.table
            .store()
            .create_table_if_missing(self.table.table())
            .await?;
        Ok(())
    }

    pub async fn get(&self, workflow: &str) -> Result<Option<ScheduleState>, ScheduleError> {
        let key = row_key(workflow)?;
        Ok(self.table.get(&key).await?.map(ScheduleState::from_entity))
    }

    /// Every schedule row, ordered by workflow name.
    pub async fn list(&self) -> Result<Vec<ScheduleState>, ScheduleError> {
        let rows = self.table.query_all(&Query::new()).await?;
        Ok(rows.into_iter().map(ScheduleState::from_entity).collect())
    }

    async fn write(&self, state: &ScheduleState) -> Result<ETag, StoreError> {
        let key = RowKey::new(state.workflow_name.as_str())?;
        match &state.etag {
            Some(etag) => {
                self.table
                    .update(
                        key,
                        state.to_properties(),
                        WriteMode::Replace,
                        &IfMatch::ETag(etag.clone()),
                    )
                    .await
            }
            None => self.table.insert(key, state.to_properties()).await,
        }
    }

    /// Brings the rows in line with the registry: new workflows get a row (enabled, next run
    /// computed from `now`), changed expressions are stored with a recomputed next run, rows of
    /// workflows no longer declared are disabled. A concurrent writer makes this fail with
    /// `PreconditionFailed`/`AlreadyExists`; running it again converges.
    pub async fn sync_from_registry(
        &self,
        declared: &[DeclaredSchedule],
        now: OffsetDateTime,
    ) -> Result<SyncReport, ScheduleError> {
        let mut report = SyncReport::default();
        let existing = self.list().await?;
        for decl in declared {
            row_key(&decl.workflow_name)?;
            let parsed = Cron::parse(&decl.expression);
            let current = existing
                .iter()
                .find(|s| s.workflow_name == decl.workflow_name);
            let mut next = match current {
                Some(s) => s.clone(),
                None => ScheduleState {
                    workflow_name: decl.workflow_name.clone(),
                    cron_expression: decl.expression.clone(),
                    enabled: true,
                    disabled_reason: None,
                    next_run_at: None,
                    last_run_at: None,
                    last_execution_id: None,
                    execution_count: 0,
                    etag: None,
                },
            };
            let expression_changed = current.is_some_and(|s| s.cron_expression != decl.expression);
            next.cron_expression = decl.expression.clone();
            match &parsed {
                Ok(cron) => {
                    if matches!(
                        next.disabled_reason,
                        Some(DisabledReason::Removed | DisabledReason::InvalidExpression)
                    ) {
                        next.enabled = true;
                        next.disabled_reason = None;
                    }
                    if current.is_none() || expression_changed || next.next_run_at.is_none() {
                        next.next_run_at = cron.next_after(now);
                    }
                }
                Err(_) => {
                    report.invalid.push(decl.workflow_name.clone());
                    if next.disabled_reason != Some(DisabledReason::Admin) {
                        next.enabled = false;
                        next.disabled_reason = Some(DisabledReason::InvalidExpression);
                    }
                    next.next_run_at = None;
                }
            }
            if current.is_some_and(|s| *s == next) {
                continue;
            }
            self.write(&next).await?;
            if current.is_none() {
                report.added.push(decl.workflow_name.clone());
            } else {
                report.updated.push(decl.workflow_name.clone());
            }
        }
        for state in existing {
            let declared_now = declared
                .iter()
                .any(|d| d.workflow_name == state.workflow_name);
            if declared_now || state.disabled_reason == Some(DisabledReason::Removed) {
                continue;
            }
            let mut next = state.clone();
            next.enabled = false;
            next.disabled_reason = Some(DisabledReason::Removed);
            next.next_run_at = None;
            self.write(&next).await?;
            report.disabled.push(state.workflow_name);
        }
        Ok(report)
    }

    /// An administrator enables or disables a workflow's schedule. Enabling recomputes the next
    /// run from `now` (so a long-disabled schedule does not fire at once for a stale slot);
    /// enabling a workflow that is gone or has an invalid expression is refused.
    pub async fn set_enabled(
        &self,
        workflow: &str,
        enabled: bool,
        now: OffsetDateTime,
    ) -> Result<ScheduleState, ScheduleError> {
        // Retry on a lost race with a claimer: the admin's intent must not be dropped.
        for _ in 0..5 {
            let Some(mut state) = self.get(workflow).await? else {
                return Err(ScheduleError::NotFound(workflow.to_owned()));
            };
            if enabled {
                if state.disabled_reason == Some(DisabledReason::Removed) {
                    return Err(ScheduleError::NotFound(workflow.to_owned()));
                }
                let cron = Cron::parse(&state.cron_expression).map_err(|source| {
                    ScheduleError::InvalidExpression {
                        workflow: workflow.to_owned(),
                        source,
                    }
                })?;
                if state.enabled {
                    return Ok(state);
                }
                state.enabled = true;
                state.disabled_reason = None;
                state.next_run_at = cron.next_after(now);
            } else {
                if !state.enabled && state.disabled_reason == Some(DisabledReason::Admin) {
                    return Ok(state);
                }
                state.enabled = false;
                state.disabled_reason = Some(DisabledReason::Admin);
                state.next_run_at = None;
            }
            match self.write(&state).await {
                Ok(etag) => {
                    state.etag = Some(etag);
                    return Ok(state);
                }
                Err(StoreError::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::unavailable("schedule row kept changing; retry").into())
    }

    /// Claims every enabled schedule whose `nextRunAt <= now`: each claim advances `nextRunAt`
    /// to the first slot after `now`, sets `lastRunAt` to the claimed slot and counts the run,
    /// guarded by the row's ETag. A stale ETag means another instance claimed it: skipped.
    pub async fn claim_due(&self, now: OffsetDateTime) -> Result<Vec<Claim>, ScheduleError> {
        let mut claims = Vec::new();
        for state in self.list().await? {
            let Some(due) = state.next_run_at else {
                continue;
            };
            if !state.enabled || due > now {
                continue;
            }
            let Ok(cron) = Cron::parse(&state.cron_expression) else {
                continue;
            };
            let mut next = state.clone();
            next.next_run_at = cron.next_after(now);
            next.last_run_at = Some(due);
            next.execution_count += 1;
            match self.write(&next).await {
                Ok(etag) => {
                    next.etag = Some(etag);
                    claims.push(Claim {
                        workflow_name: next.workflow_name.clone(),
                        scheduled_for: due,
                        state: next,
                    });
                }
                Err(StoreError::PreconditionFailed { .. } | StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(claims)
    }

    /// Records a run started outside the schedule (trigger-now): it counts as a run, and is
    /// the last one, without moving `nextRunAt`. ETag-guarded, retried on a lost race.
    pub async fn record_manual_run(
        &self,
        workflow: &str,
        execution_id: &str,
        at: OffsetDateTime,
    ) -> Result<(), ScheduleError> {
        for _ in 0..5 {
            let Some(mut state) = self.get(workflow).await? else {
                return Err(ScheduleError::NotFound(workflow.to_owned()));
            };
            state.last_execution_id = Some(execution_id.to_owned());
            state.last_run_at = Some(at);
            state.execution_count += 1;
            match self.write(&state).await {
                Ok(_) => return Ok(()),
                Err(StoreError::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::unavailable("schedule row kept changing; retry").into())
    }

    /// Records the execution a claim started (merge, so a concurrent claim's fields survive).
    pub async fn record_execution(
        &self,
        workflow: &str,
        execution_id: &str,
    ) -> Result<(), ScheduleError> {
        let key = row_key(workflow)?;
        let mut props = Properties::new();
        props.insert("lastExecutionId".into(), execution_id.into());
        match self
            .table
            .update(key, props, WriteMode::Merge, &IfMatch::Any)
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound { .. }) => Err(ScheduleError::NotFound(workflow.to_owned())),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use bifrost_store::table::SqliteTables;
    use time::macros::datetime;

    fn open(path: &std::path::Path) -> ScheduleStore {
        let tables: Arc<dyn TableStore> = Arc::new(SqliteTables::open(path).unwrap());
        ScheduleStore::new(tables).unwrap()
    }

    async fn fresh() -> (tempfile::TempDir, ScheduleStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("tables.db"));
        store.ensure_table().await.unwrap();
        (dir, store)
    }

    fn decl(name: &str, expression: &str) -> DeclaredSchedule {
        DeclaredSchedule {
            workflow_name: name.to_owned(),
            expression: expression.to_owned(),
        }
    }

    const T0: OffsetDateTime = datetime!(2026-03-02 00:00:30 UTC);

    #[tokio::test]
    async fn sync_adds_updates_and_disables() {
        let (_dir, store) = fresh().await;
        let report = store
            .sync_from_registry(
                &[decl("nightly", "0 2 * * *"), decl("bad", "61 * * * *")],
                T0,
            )
            .await
            .unwrap();
        assert_eq!(report.added, vec!["nightly".to_owned(), "bad".to_owned()]);
        assert_eq!(report.invalid, vec!["bad".to_owned()]);
        let nightly = store.get("nightly").await.unwrap().unwrap();
        assert!(nightly.enabled);
        assert_eq!(nightly.next_run_at, Some(datetime!(2026-03-02 02:00 UTC)));
        assert_eq!(nightly.execution_count, 0);
        let bad = store.get("bad").await.unwrap().unwrap();
        assert!(!bad.enabled);
        assert_eq!(bad.disabled_reason, Some(DisabledReason::InvalidExpression));
        assert_eq!(bad.next_run_at, None);

        // Unchanged registry: nothing written.
        let again = store
            .sync_from_registry(
                &[decl("nightly", "0 2 * * *"), decl("bad", "61 * * * *")],
                T0,
            )
            .await
            .unwrap();
        assert_eq!(
            again,
            SyncReport {
                invalid: vec!["bad".into()],
                ..SyncReport::default()
            }
        );

        // Changed expression, fixed expression, removed workflow.
        let report = store
            .sync_from_registry(&[decl("bad", "0 3 * * *")], T0)
            .await
            .unwrap();
        assert_eq!(report.updated, vec!["bad".to_owned()]);
        assert_eq!(report.disabled, vec!["nightly".to_owned()]);
        let bad = store.get("bad").await.unwrap().unwrap();
        assert!(bad.enabled, "a fixed expression re-enables the schedule");
        assert_eq!(bad.next_run_at, Some(datetime!(2026-03-02 03:00 UTC)));
        let nightly = store.get("nightly").await.unwrap().unwrap();
        assert!(!nightly.enabled);
        assert_eq!(nightly.disabled_reason, Some(DisabledReason::Removed));

        // A workflow that comes back is enabled again.
        let report = store
            .sync_from_registry(
                &[decl("bad", "0 3 * * *"), decl("nightly", "0 2 * * *")],
                T0,
            )
            .await
            .unwrap();
        assert_eq!(report.updated, vec!["nightly".to_owned()]);
        assert!(store.get("nightly").await.unwrap().unwrap().enabled);
    }

    #[tokio::test]
    async fn admin_disable_survives_sync_and_enable_recomputes_next_run() {
        let (_dir, store) = fresh().await;
        store
            .sync_from_registry(&[decl("nightly", "0 2 * * *")], T0)
            .await
            .unwrap();
        let disabled = store.set_enabled("nightly", false, T0).await.unwrap();
        assert!(!disabled.enabled);
        assert_eq!(disabled.disabled_reason, Some(DisabledReason::Admin));
        store
            .sync_from_registry(&[decl("nightly", "0 2 * * *")], T0)
            .await
            .unwrap();
        assert!(!store.get("nightly").await.unwrap().unwrap().enabled);
        assert!(
            store
                .claim_due(datetime!(2026-03-09 00:00 UTC))
                .await
                .unwrap()
                .is_empty()
        );

        let later = datetime!(2026-03-05 12:00 UTC);
        let enabled = store.set_enabled("nightly", true, later).await.unwrap();
        assert!(enabled.enabled);
        assert_eq!(enabled.disabled_reason, None);
        assert_eq!(enabled.next_run_at, Some(datetime!(2026-03-06 02:00 UTC)));

        assert!(matches!(
            store.set_enabled("nope", true, T0).await.unwrap_err(),
            ScheduleError::NotFound(_)
        ));
        assert!(matches!(
            store.set_enabled("bad/name", true, T0).await.unwrap_err(),
            ScheduleError::InvalidName(_)
        ));
    }

    #[tokio::test]
    async fn claims_advance_past_now_and_count_runs() {
        let (_dir, store) = fresh().await;
        store
            .sync_from_registry(
                &[decl("nightly", "0 2 * * *"), decl("often", "*/5 * * * *")],
                T0,
            )
            .await
            .unwrap();
        assert!(
            store
                .claim_due(datetime!(2026-03-02 00:04:59 UTC))
                .await
                .unwrap()
                .is_empty()
        );

        let claims = store
            .claim_due(datetime!(2026-03-02 00:05:00 UTC))
            .await
            .unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].workflow_name, "often");
        assert_eq!(claims[0].scheduled_for, datetime!(2026-03-02 00:05 UTC));
        assert_eq!(
            claims[0].state.next_run_at,
            Some(datetime!(2026-03-02 00:10 UTC))
        );

        // Down for two days: each schedule fires once, then resumes after now.
        let now = datetime!(2026-03-04 10:07 UTC);
        let mut claims = store.claim_due(now).await.unwrap();
        claims.sort_by(|a, b| a.workflow_name.cmp(&b.workflow_name));
        assert_eq!(claims.len(), 2);
        assert_eq!(claims[0].workflow_name, "nightly");
        assert_eq!(claims[0].scheduled_for, datetime!(2026-03-02 02:00 UTC));
        assert_eq!(
            claims[0].state.next_run_at,
            Some(datetime!(2026-03-05 02:00 UTC))
        );
        assert_eq!(
            claims[1].state.next_run_at,
            Some(datetime!(2026-03-04 10:10 UTC))
        );
        assert!(store.claim_due(now).await.unwrap().is_empty());

        store.record_execution("often", "exec-123").await.unwrap();
        let often = store.get("often").await.unwrap().unwrap();
        assert_eq!(often.execution_count, 2);
        assert_eq!(often.last_run_at, Some(datetime!(2026-03-02 00:10 UTC)));
        assert_eq!(often.last_execution_id.as_deref(), Some("exec-123"));

        // Trigger-now counts too, and leaves the next slot where it was.
        let manual = datetime!(2026-03-04 10:08 UTC);
        store
            .record_manual_run("often", "exec-456", manual)
            .await
            .unwrap();
        let often = store.get("often").await.unwrap().unwrap();
        assert_eq!(often.execution_count, 3);
        assert_eq!(often.last_run_at, Some(manual));
        assert_eq!(often.last_execution_id.as_deref(), Some("exec-456"));
        assert_eq!(often.next_run_at, Some(datetime!(2026-03-04 10:10 UTC)));
        assert!(matches!(
            store
                .record_manual_run("nope", "x", manual)
                .await
                .unwrap_err(),
            ScheduleError::NotFound(_)
        ));
        assert!(matches!(
            store.record_execution("nope", "x").await.unwrap_err(),
            ScheduleError::NotFound(_)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_never_claim_the_same_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tables.db");
        let a = open(&path);
        a.ensure_table().await.unwrap();
        let b = open(&path);
        let names: Vec<String> = (0..25).map(|i| format!("wf{i:02}")).collect();
        let declared: Vec<DeclaredSchedule> =
            names.iter().map(|n| decl(n, "*/5 * * * *")).collect();
        a.sync_from_registry(&declared, T0).await.unwrap();

        // Several due slots in a row; each must be claimed by exactly one instance.
        let mut now = datetime!(2026-03-02 00:05:00 UTC);
        for round in 1..=4 {
            let (ca, cb) = tokio::join!(
                tokio::spawn({
                    let a = a.clone();
                    async move { a.claim_due(now).await.unwrap() }
                }),
                tokio::spawn({
                    let b = b.clone();
                    async move { b.claim_due(now).await.unwrap() }
                }),
            );
            let (ca, cb) = (ca.unwrap(), cb.unwrap());
            let mut claimed: Vec<&str> = ca
                .iter()
                .chain(cb.iter())
                .map(|c| c.workflow_name.as_str())
                .collect();
            claimed.sort_unstable();
            assert_eq!(
                claimed, names,
                "round {round}: every run claimed exactly once"
            );
            for state in a.list().await.unwrap() {
                assert_eq!(state.execution_count, round);
            }
            now += time::Duration::minutes(5);
        }
    }
}

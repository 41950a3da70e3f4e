//! The async execution worker: takes [`QueuedExecution`] messages off the `workflow-executions`
//! queue and runs them through the shared [`Runner`].
//!
//! [`handle_message`] is the whole per-message logic and does not care how the message arrived:
//! the in-process [`Worker`] (standalone server) polls the queue store (and is woken at once
//! when this instance enqueues a run, so an idle worker adds no poll delay), and on Azure a
//! queue-trigger function can call the same function with the message it was given.
//! May depend on: the runner, the queue store. Not on HTTP.
//!
//! Invariants:
//! - idempotent under redelivery: an execution runs only if this handler moved its record from
//!   `Pending` to `Running` (ETag-guarded); a message for a record in any other status (running
//!   elsewhere, finished, cancelled) or without a record is deleted without running anything;
//! - a message received more than `max_dequeue_count` times goes to `<queue>-poison` and its
//!   execution is marked `Failed` with the reason: no queued execution silently vanishes;
//! - while a workflow runs, its message's lease is extended (heartbeat), so a long run is not
//!   handed to a second worker.

use std::sync::Arc;
use std::time::Duration;

use bifrost_engine::Caller;
use bifrost_store::queue::{DEFAULT_MAX_DEQUEUE_COUNT, QueueName, ReceivedMessage};
use bifrost_store::{Scope, StoreError, StoreResult};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::runner::{QUEUE, QueuedExecution, RunRequest, Runner};
use super::{ExecutionRecord, ExecutionStatus, RunContext, Transition};

/// Worker tuning. `Default` is what the server uses.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Executions run concurrently by this instance.
    pub slots: usize,
    /// Lease taken on a message; renewed every third of it while the workflow runs.
    pub lease: Duration,
    /// Wait between polls of an empty queue.
    pub idle_poll: Duration,
    /// Deliveries after which a message is poison (the Functions host's default, 5).
    pub max_dequeue_count: u32,
    /// Most executions of one organization running at once (0 = no limit). Excess messages
    /// go back to the end of the queue, so one busy organization cannot starve another.
    pub max_running_per_org: usize,
    /// Serializes "count, then start" per organization within this instance.
    pub org_gates: OrgGates,
}

/// One async lock per organization: two workers of this instance cannot both see room for
/// the last slot of the same organization.
#[derive(Clone, Debug, Default)]
pub struct OrgGates(
    Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
);

impl OrgGates {
    fn gate(&self, scope: &Scope) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.entry(scope.to_string()).or_default().clone()
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            slots: 4,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(500),
            max_dequeue_count: DEFAULT_MAX_DEQUEUE_COUNT,
            max_running_per_org: 0,
            org_gates: OrgGates::default(),
        }
    }
}

/// What [`handle_message`] did with a message (it is deleted or moved in every case but an
/// error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The message disagrees with the stored record (it names another workflow or other
    /// rights): refused and audited, the record untouched.
    Rejected(&'static str),
    /// The message is for another attempt than the record's current one: dropped.
    Stale { message: u32, current: u32 },
    /// The execution ran and finished with this status.
    Ran(ExecutionStatus),
    /// The record was not `Pending` (already taken, finished or cancelled): not run again.
    Skipped(ExecutionStatus),
    /// No such execution (or a body that names none): dropped.
    Missing,
    /// Over the delivery limit: moved to the poison queue, execution marked `Failed`.
    Poisoned,
    /// The organization is at its concurrency limit: queued again behind the others.
    Deferred,
}

/// How long a deferred message waits before it is visible again.
const DEFER_DELAY: Duration = Duration::from_secs(1);

/// Handles one message the in-process worker leased. `Err` means storage failed before the
/// outcome was settled; the message stays on the queue and is delivered again (and eventually
/// poisoned).
pub async fn handle_message(
    runner: &Runner,
    queue: &QueueName,
    message: ReceivedMessage,
    config: &WorkerConfig,
) -> StoreResult<Handled> {
    let queues = runner.queues().clone();
    if message.dequeue_count > config.max_dequeue_count {
        let reason = format!(
            "the execution could not be started after {} attempts",
            config.max_dequeue_count
        );
        mark_poisoned(runner, &message.body, &reason).await?;
        match queues.move_to_poison(queue, &message).await {
            Ok(()) | Err(StoreError::PreconditionFailed { .. }) => {}
            Err(e) => return Err(e),
        }
        return Ok(Handled::Poisoned);
    }
    if parse(&message.body).is_none() {
        tracing::error!(message_id = %message.id, "queue message is not an execution; moving it to the poison queue");
        match queues.move_to_poison(queue, &message).await {
            Ok(()) | Err(StoreError::PreconditionFailed { .. }) => {}
            Err(e) => return Err(e),
        }
        return Ok(Handled::Missing);
    }
    let body = message.body.clone();
    let mut leased = message;
    let handled = process(runner, queue, &body, config, Some(&mut leased)).await?;
    match queues.delete(queue, &leased.id, &leased.pop_receipt).await {
        // Our lease ran out and somebody else holds the message; the transition guard keeps
        // them from running it again.
        Ok(()) | Err(StoreError::PreconditionFailed { .. }) => Ok(handled),
        Err(e) => Err(e),
    }
}

/// Handles one message the Functions host delivered through the queue trigger. The host owns
/// the message: it deletes it when this returns `Ok`, redelivers it on `Err`, and moves it to
/// `<queue>-poison` after `maxDequeueCount` failures (where [`mark_poisoned`] settles it).
pub async fn handle_delivered(
    runner: &Runner,
    body: &str,
    config: &WorkerConfig,
) -> StoreResult<Handled> {
    if parse(body).is_none() {
        tracing::error!("queue message is not an execution; dropped");
        return Ok(Handled::Missing);
    }
    let queue = QueueName::new(QUEUE)?;
    process(runner, &queue, body, config, None).await
}

/// The per-message logic shared by both deliveries. `leased`: the in-process worker's message,
/// whose visibility is extended while the workflow runs (the host does that for its own).
async fn process(
    runner: &Runner,
    queue: &QueueName,
    body: &str,
    config: &WorkerConfig,
    mut leased: Option<&mut ReceivedMessage>,
) -> StoreResult<Handled> {
    let queues = runner.queues().clone();
    let Some((job, scope)) = parse(body) else {
        return Ok(Handled::Missing);
    };
    let executions = runner.executions();
    // The record decides what runs and with which rights; a message that says otherwise was
    // not written by us.
    let Some(stored) = executions.get(&scope, &job.execution_id).await? else {
        return Ok(Handled::Missing);
    };
    if let Some(field) = job.disagreement(&stored) {
        runner.reject_message(&scope, &job, field).await;
        return Ok(Handled::Rejected(field));
    }
    if let Some(attempt) = job.attempt
        && attempt != stored.attempt
    {
        // A duplicate of another attempt's message: the current attempt has its own.
        return Ok(Handled::Stale {
            message: attempt,
            current: stored.attempt,
        });
    }
    let gate = (config.max_running_per_org > 0 && scope.org_id().is_some())
        .then(|| config.org_gates.gate(&scope));
    let held = match &gate {
        Some(gate) => Some(gate.lock().await),
        None => None,
    };
    if held.is_some()
        && executions
            .running_count(&scope, time::OffsetDateTime::now_utc())
            .await?
            >= config.max_running_per_org
    {
        // A fresh copy at the back of the queue (a fresh delivery count too: waiting for a
        // slot is not a failed delivery); the caller removes the original.
        queues.send(queue, body, DEFER_DELAY).await?;
        return Ok(Handled::Deferred);
    }
    let moved = executions
        .try_transition(
            &scope,
            &job.execution_id,
            &[ExecutionStatus::Pending],
            ExecutionStatus::Running,
        )
        .await?;
    drop(held);
    match moved {
        Transition::Moved => {}
        Transition::Unchanged(status) => return Ok(Handled::Skipped(status)),
        Transition::Missing => return Ok(Handled::Missing),
    }
    let Some(mut record) = executions.get(&scope, &job.execution_id).await? else {
        return Ok(Handled::Missing);
    };
    if let Some(field) = job.disagreement(&record) {
        // Changed between our check and the move; leave the record for recovery to settle.
        runner.reject_message(&scope, &job, field).await;
        return Ok(Handled::Rejected(field));
    }
    let request = match request_of(runner, &scope, &record) {
        Ok(request) => request,
        Err(reason) => {
            runner
                .fail(&scope, &mut record, "WorkflowNotFound", &reason)
                .await;
            return Ok(Handled::Ran(ExecutionStatus::Failed));
        }
    };

    let run = runner.execute(request, record, false);
    tokio::pin!(run);
    let mut heartbeat = super::runner::every(config.lease / 3);
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            _ = heartbeat.tick(), if leased.is_some() => {
                if let Some(message) = leased.as_deref_mut() {
                    match queues.update_visibility(queue, message, config.lease).await {
                        Ok(receipt) => message.pop_receipt = receipt,
                        Err(e) => tracing::warn!(error = %e, execution_id = %job.execution_id, "could not extend the message lease"),
                    }
                }
            }
        }
    };
    let status = match result {
        Ok(finished)
            if matches!(
                finished.record.status,
                ExecutionStatus::Failed | ExecutionStatus::Timeout
            ) =>
        {
            let why = match &finished.record.error_message {
                Some(m) => format!("ended {}: {m}", finished.record.status),
                None => format!("ended {}", finished.record.status),
            };
            match runner
                .retry(
                    &scope,
                    &finished.record,
                    &[ExecutionStatus::Failed, ExecutionStatus::Timeout],
                    &why,
                )
                .await
            {
                Ok(Some(_)) => ExecutionStatus::Pending,
                Ok(None) => finished.record.status,
                Err(e) => {
                    tracing::error!(error = %e, execution_id = %job.execution_id, "could not queue a retry");
                    finished.record.status
                }
            }
        }
        Ok(finished) => finished.record.status,
        Err(e) => {
            // The runner marked the record failed where it could (or, lease lost, the recovery
            // owns it); retrying would be skipped by the transition guard, so the message is done.
            tracing::error!(error = %e, execution_id = %job.execution_id, "queued execution failed to run");
            ExecutionStatus::Failed
        }
    };
    Ok(Handled::Ran(status))
}

/// Marks the execution a poison message names as `Failed` with `reason`, unless it already
/// finished. For the Azure poison-queue trigger as well as [`handle_message`].
pub async fn mark_poisoned(runner: &Runner, body: &str, reason: &str) -> StoreResult<()> {
    let Some((job, scope)) = parse(body) else {
        return Ok(());
    };
    let Some(mut record) = runner.executions().get(&scope, &job.execution_id).await? else {
        return Ok(());
    };
    if !record.status.is_finished() {
        runner
            .fail(&scope, &mut record, "PoisonMessage", reason)
            .await;
    }
    Ok(())
}

fn parse(body: &str) -> Option<(QueuedExecution, Scope)> {
    let job: QueuedExecution = serde_json::from_str(body).ok()?;
    let scope = Scope::parse(&job.scope).ok()?;
    Some((job, scope))
}

/// The run a stored record describes: its workflow, input, caller and rights.
fn request_of(
    runner: &Runner,
    scope: &Scope,
    record: &ExecutionRecord,
) -> Result<RunRequest, String> {
    let input = match &record.input_data {
        serde_json::Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    // The input was checked when the run was queued; the workspace may have changed since.
    let (workflow, input) = runner
        .prepare(&record.workflow_name, input, super::input::Coercion::Strict)
        .map_err(|e| e.to_string())?;
    let context = RunContext::new(
        Caller::new(
            &record.executed_by,
            &record.executed_by_email,
            &record.executed_by_name,
        ),
        record.executed_by.clone(),
        scope.clone(),
        record.rights,
    );
    Ok(RunRequest {
        execution_id: record.execution_id.clone(),
        workflow,
        input,
        context,
        form_id: record.form_id.clone(),
        timeout: None,
    })
}

/// The in-process worker of a standalone server.
pub struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    /// Creates the queue (before returning, so the first request can enqueue; the poll loop
    /// retries while storage is down) and starts polling it.
    pub async fn start(runner: Runner, config: WorkerConfig) -> Self {
        match QueueName::new(QUEUE) {
            Ok(queue) => {
                if let Err(e) = runner.queues().create_queue(&queue).await {
                    tracing::warn!(error = %e, "cannot create the execution queue yet");
                }
            }
            Err(e) => tracing::error!(error = %e, "invalid execution queue name"),
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(poll(runner, config, stopped));
        Self { stop, task }
    }

    /// Stops taking new messages. Runs in progress finish on their own tasks.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn poll(runner: Runner, config: WorkerConfig, mut stopped: watch::Receiver<bool>) {
    let queue = match QueueName::new(QUEUE) {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(error = %e, "invalid execution queue name; async executions will not run");
            return;
        }
    };
    let queues = runner.queues().clone();
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.slots.max(1)));
    let mut ready = false;
    while !*stopped.borrow() {
        let wait = if !ready {
            match queues.create_queue(&queue).await {
                Ok(()) => {
                    ready = true;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create the execution queue yet");
                    Duration::from_secs(5)
                }
            }
        } else {
            // Wait for a free slot before leasing anything: a leased message nobody runs would
            // only age towards the poison queue.
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let free = slots.available_permits() + 1;
            drop(permit);
            match queues.receive(&queue, free.min(32), config.lease).await {
                Ok(messages) if !messages.is_empty() => {
                    for message in messages {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let (runner, queue, config) =
                            (runner.clone(), queue.clone(), config.clone());
                        tokio::spawn(async move {
                            let id = message.id.clone();
                            if let Err(e) = handle_message(&runner, &queue, message, &config).await
                            {
                                tracing::warn!(error = %e, message_id = %id, "queued execution left for redelivery");
                            }
                            drop(permit);
                        });
                    }
                    continue;
                }
                Ok(_) => config.idle_poll,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the execution queue");
                    Duration::from_secs(5)
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = runner.enqueued().notified(), if ready => {}
            _ = stopped.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;
    use crate::domain::OrgService;
    use crate::executions::Executions;
    use crate::executions::runner::WorkflowEngine;
    use async_trait::async_trait;
    use bifrost_engine::ExecutionStatus as Outcome;
    use bifrost_engine::{
        EngineError, ExecutionMode, ExecutionOutcome, ExecutionRequest, WorkflowInfo,
    };
    use bifrost_store::blob::LocalBlobs;
    use bifrost_store::queue::{QueueStore, SqliteQueues};
    use bifrost_store::table::SqliteTables;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Runs nothing: returns Success and counts calls (the worker's record and queue logic is
    /// what is under test; real runs are covered by tests/integration/run_workflows.rs).
    /// Workflows: `known` (no retry policy), `flaky` (async, 3 attempts, no backoff; its runs
    /// fail while `failures_left` > 0).
    #[derive(Default)]
    struct CountingEngine {
        runs: AtomicUsize,
        /// How long each run takes.
        delay: Duration,
        failures_left: AtomicUsize,
    }

    #[async_trait]
    impl WorkflowEngine for CountingEngine {
        fn workflow(&self, name: &str) -> Option<WorkflowInfo> {
            matches!(name, "known" | "flaky").then(|| WorkflowInfo {
                name: name.into(),
                description: String::new(),
                category: String::new(),
                tags: vec![],
                execution_mode: ExecutionMode::Async,
                timeout_seconds: 60,
                retry_policy: (name == "flaky")
                    .then(|| serde_json::json!({"max_attempts": 3, "backoff_seconds": 0})),
                schedule: None,
                endpoint_enabled: false,
                allowed_methods: vec![],
                disable_global_key: false,
                public_endpoint: false,
                source: None,
                source_file_path: Default::default(),
                parameters: vec![],
                parameters_inferred: false,
                module: String::new(),
                function: String::new(),
                line: 1,
                is_async: true,
            })
        }

        async fn execute(
            &self,
            request: ExecutionRequest,
        ) -> Result<ExecutionOutcome, EngineError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let fail = request.name == "flaky"
                && self
                    .failures_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
            Ok(ExecutionOutcome {
                execution_id: request.execution_id,
                status: if fail {
                    Outcome::Failed
                } else {
                    Outcome::Success
                },
                result: Some(serde_json::json!({"ok": true})),
                result_type: None,
                error: None,
                logs: vec![],
                duration: Duration::from_millis(1),
            })
        }

        fn cancel(&self, _: &str) -> bool {
            false
        }
    }

    async fn setup(dir: &std::path::Path) -> (Runner, Arc<CountingEngine>, QueueName) {
        setup_with(dir, Duration::ZERO).await
    }

    async fn setup_with(
        dir: &std::path::Path,
        delay: Duration,
    ) -> (Runner, Arc<CountingEngine>, QueueName) {
        let tables = Arc::new(SqliteTables::open(&dir.join("t.sqlite")).unwrap());
        let blobs = Arc::new(LocalBlobs::open(&dir.join("blobs")).unwrap());
        let queues: Arc<dyn QueueStore> =
            Arc::new(SqliteQueues::open(&dir.join("q.sqlite")).unwrap());
        let executions = Executions::new(tables.clone(), blobs).with_lease(Duration::from_secs(1));
        executions.ensure_storage().await.unwrap();
        crate::domain::ensure_tables(
            &(tables.clone() as Arc<dyn bifrost_store::table::TableStore>),
        )
        .await
        .unwrap();
        let secrets: Arc<dyn bifrost_secrets::SecretStore> =
            Arc::new(bifrost_secrets::LocalSecrets::open(&dir.join("secrets"), None).unwrap());
        let audit = Arc::new(AuditLog::new(tables.clone(), secrets).unwrap());
        audit.ensure_table().await.unwrap();
        let engine = Arc::new(CountingEngine {
            runs: AtomicUsize::new(0),
            delay,
            failures_left: AtomicUsize::new(0),
        });
        let runner = Runner::new(
            engine.clone(),
            executions,
            audit.clone(),
            OrgService::new(tables, crate::domain::ChangeLog::new(audit)),
            queues.clone(),
        );
        let queue = QueueName::new(QUEUE).unwrap();
        queues.create_queue(&queue).await.unwrap();
        (runner, engine, queue)
    }

    async fn enqueue(runner: &Runner) -> String {
        enqueue_as(runner, "known", Scope::Global).await
    }

    fn request(runner: &Runner, workflow: &str, scope: Scope) -> RunRequest {
        let (workflow, input) = runner
            .prepare(
                workflow,
                serde_json::Map::new(),
                super::super::input::Coercion::Strict,
            )
            .unwrap();
        RunRequest::new(
            workflow,
            input,
            RunContext::new(
                Caller::new("u1", "u1@example.com", "U One"),
                "user:u1",
                scope,
                Default::default(),
            ),
        )
    }

    async fn enqueue_as(runner: &Runner, workflow: &str, scope: Scope) -> String {
        let request = request(runner, workflow, scope);
        runner.enqueue(&request).await.unwrap().execution_id
    }

    /// Handles every message that becomes visible within `for_at_most`, one at a time.
    async fn drain(runner: &Runner, queue: &QueueName, for_at_most: Duration) -> Vec<Handled> {
        let deadline = std::time::Instant::now() + for_at_most;
        let mut handled = Vec::new();
        while std::time::Instant::now() < deadline {
            let got = runner
                .queues()
                .receive(queue, 1, Duration::from_secs(30))
                .await
                .unwrap();
            match got.into_iter().next() {
                Some(m) => handled.push(
                    handle_message(runner, queue, m, &WorkerConfig::default())
                        .await
                        .unwrap(),
                ),
                None if runner.queues().approximate_count(queue).await.unwrap() == 0 => break,
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        handled
    }

    #[tokio::test]
    async fn a_failed_run_is_retried_per_its_policy_with_logs_per_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, engine, queue) = setup(dir.path()).await;
        engine.failures_left.store(2, Ordering::SeqCst);
        let id = enqueue_as(&runner, "flaky", Scope::Global).await;
        let handled = drain(&runner, &queue, Duration::from_secs(10)).await;
        assert_eq!(
            handled,
            [
                Handled::Ran(ExecutionStatus::Pending),
                Handled::Ran(ExecutionStatus::Pending),
                Handled::Ran(ExecutionStatus::Success)
            ]
        );
        let record = runner
            .executions()
            .get(&Scope::Global, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (record.status, record.attempt),
            (ExecutionStatus::Success, 3)
        );
        assert_eq!(
            record.error_message, None,
            "a retry clears the last attempt's outcome"
        );
        let logs = runner
            .executions()
            .logs(&Scope::Global, &id, 0, 100)
            .await
            .unwrap();
        let notes: Vec<_> = logs.entries.iter().map(|l| l.sequence).collect();
        assert_eq!(
            notes,
            [
                super::super::recovery::ATTEMPT_LOG_SPAN,
                2 * super::super::recovery::ATTEMPT_LOG_SPAN
            ]
        );
        assert!(
            logs.entries[0].message.contains("Attempt 2 of 3"),
            "{:?}",
            logs.entries[0]
        );

        // Out of attempts: the last failure stands.
        engine.failures_left.store(5, Ordering::SeqCst);
        let id = enqueue_as(&runner, "flaky", Scope::Global).await;
        drain(&runner, &queue, Duration::from_secs(10)).await;
        let record = runner
            .executions()
            .get(&Scope::Global, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (record.status, record.attempt),
            (ExecutionStatus::Failed, 3)
        );
        assert_eq!(engine.runs.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn an_orphaned_run_is_requeued_or_failed_once_by_one_cleaner() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, engine, queue) = setup(dir.path()).await;
        let retried = enqueue_as(&runner, "flaky", Scope::Global).await;
        let abandoned = enqueue_as(&runner, "known", Scope::Global).await;
        // A worker takes both and dies: records Running, leases never renewed.
        for id in [&retried, &abandoned] {
            runner
                .executions()
                .try_transition(
                    &Scope::Global,
                    id,
                    &[ExecutionStatus::Pending],
                    ExecutionStatus::Running,
                )
                .await
                .unwrap();
        }
        let now = time::OffsetDateTime::now_utc();
        let early = runner.recover_orphans(now).await.unwrap();
        assert_eq!(
            early,
            Default::default(),
            "leases still valid: nothing to recover"
        );

        let later = now + time::Duration::seconds(2);
        let (a, b) = tokio::join!(runner.recover_orphans(later), runner.recover_orphans(later));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.requeued + b.requeued, 1, "{a:?} {b:?}");
        assert_eq!(a.failed + b.failed, 1, "{a:?} {b:?}");
        let failed = runner
            .executions()
            .get(&Scope::Global, &abandoned)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(failed.status, ExecutionStatus::Failed);
        assert_eq!(failed.error_type.as_deref(), Some("Abandoned"));
        let pending = runner
            .executions()
            .get(&Scope::Global, &retried)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (pending.status, pending.attempt),
            (ExecutionStatus::Pending, 2)
        );

        // The original messages (never taken by the dead worker here) and the retry's: the
        // retried run runs once, the failed one not at all.
        let handled = drain(&runner, &queue, Duration::from_secs(5)).await;
        assert!(
            handled.contains(&Handled::Ran(ExecutionStatus::Success)),
            "{handled:?}"
        );
        assert_eq!(engine.runs.load(Ordering::SeqCst), 1);
        assert!(
            runner
                .recover_orphans(later + time::Duration::seconds(5))
                .await
                .unwrap()
                == Default::default()
        );
    }

    #[tokio::test]
    async fn a_pending_run_whose_message_was_lost_is_sent_again_and_runs_once() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, engine, queue) = setup(dir.path()).await;
        // Lost: the instance died between writing the record and sending the message.
        let request = request(&runner, "known", Scope::Global);
        let lost = runner
            .start(&request, ExecutionStatus::Pending)
            .await
            .unwrap()
            .execution_id;
        // Slow: its message is still waiting behind a backlog.
        let slow = enqueue(&runner).await;

        let now = time::OffsetDateTime::now_utc();
        let grace = time::Duration::try_from(super::super::recovery::QUEUED_GRACE).unwrap();
        let within = runner
            .recover_orphans(now + grace - time::Duration::minutes(1))
            .await
            .unwrap();
        assert_eq!(within, Default::default(), "still within the grace period");
        let after = runner
            .recover_orphans(now + grace + time::Duration::minutes(1))
            .await
            .unwrap();
        assert_eq!(after.resent, 2, "{after:?}");
        assert_eq!(
            runner
                .executions()
                .running_count(&Scope::Global, now)
                .await
                .unwrap(),
            0,
            "queued leases are not running runs"
        );

        let mut handled = drain(&runner, &queue, Duration::from_secs(5)).await;
        handled.sort_by_key(|h| format!("{h:?}"));
        assert_eq!(
            handled,
            [
                Handled::Ran(ExecutionStatus::Success),
                Handled::Ran(ExecutionStatus::Success),
                Handled::Skipped(ExecutionStatus::Success),
            ],
            "the slow run's duplicate message is dropped"
        );
        assert_eq!(engine.runs.load(Ordering::SeqCst), 2);
        for id in [&lost, &slow] {
            let record = runner
                .executions()
                .get(&Scope::Global, id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(record.status, ExecutionStatus::Success);
        }
        let again = runner.recover_orphans(now + grace * 3).await.unwrap();
        assert_eq!(again, Default::default(), "finished runs hold no lease");
    }

    #[tokio::test]
    async fn a_busy_organization_waits_in_the_queue_without_blocking_others() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, engine, queue) = setup_with(dir.path(), Duration::from_millis(600)).await;
        let busy = Scope::parse("org-busy").unwrap();
        let other = Scope::parse("org-other").unwrap();
        enqueue_as(&runner, "known", busy.clone()).await;
        enqueue_as(&runner, "known", busy.clone()).await;
        let calm = enqueue_as(&runner, "known", other.clone()).await;
        let config = WorkerConfig {
            max_running_per_org: 1,
            ..Default::default()
        };
        let messages = runner
            .queues()
            .receive(&queue, 3, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(messages.len(), 3);
        let mut tasks = Vec::new();
        for m in messages {
            let (runner, queue, config) = (runner.clone(), queue.clone(), config.clone());
            tasks.push(tokio::spawn(async move {
                handle_message(&runner, &queue, m, &config).await.unwrap()
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        assert_eq!(
            outcomes.iter().filter(|h| **h == Handled::Deferred).count(),
            1,
            "{outcomes:?}"
        );
        assert_eq!(
            engine.runs.load(Ordering::SeqCst),
            2,
            "one per organization"
        );
        let record = runner
            .executions()
            .get(&other, &calm)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, ExecutionStatus::Success);
        // The deferred one is back on the queue and runs once a slot is free.
        let later = drain(&runner, &queue, Duration::from_secs(5)).await;
        assert_eq!(later, [Handled::Ran(ExecutionStatus::Success)]);
    }

    async fn receive(runner: &Runner, queue: &QueueName) -> ReceivedMessage {
        let mut got = runner
            .queues()
            .receive(queue, 1, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "one message expected");
        got.remove(0)
    }

    #[tokio::test]
    async fn a_redelivered_message_does_not_run_the_execution_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, engine, queue) = setup(dir.path()).await;
        let id = enqueue(&runner).await;
        let message = receive(&runner, &queue).await;
        let duplicate = message.clone();
        let config = WorkerConfig::default();
        let first = handle_message(&runner, &queue, message, &config)
            .await
            .unwrap();
        assert_eq!(first, Handled::Ran(ExecutionStatus::Success));
        let again = handle_message(&runner, &queue, duplicate, &config)
            .await
            .unwrap();
        assert_eq!(again, Handled::Skipped(ExecutionStatus::Success));
        assert_eq!(engine.runs.load(Ordering::SeqCst), 1);
        let record = runner
            .executions()
            .get(&Scope::Global, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, ExecutionStatus::Success);
        assert_eq!(record.result, Some(serde_json::json!({"ok": true})));
        assert_eq!(
            runner.queues().approximate_count(&queue).await.unwrap(),
            0,
            "the message is deleted after the run"
        );
    }

    #[tokio::test]
    async fn a_message_over_the_delivery_limit_is_poisoned_and_its_execution_failed() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, engine, queue) = setup(dir.path()).await;
        let id = enqueue(&runner).await;
        let config = WorkerConfig {
            max_dequeue_count: 1,
            ..Default::default()
        };
        let first = receive(&runner, &queue).await;
        // Lost lease: make it visible again without handling it (a crashed worker).
        runner
            .queues()
            .update_visibility(&queue, &first, Duration::ZERO)
            .await
            .unwrap();
        let second = receive(&runner, &queue).await;
        assert_eq!(second.dequeue_count, 2);
        let handled = handle_message(&runner, &queue, second, &config)
            .await
            .unwrap();
        assert_eq!(handled, Handled::Poisoned);
        assert_eq!(engine.runs.load(Ordering::SeqCst), 0);
        let record = runner
            .executions()
            .get(&Scope::Global, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, ExecutionStatus::Failed);
        assert_eq!(record.error_type.as_deref(), Some("PoisonMessage"));
        assert!(record.error_message.unwrap().contains("attempts"));
        assert_eq!(runner.queues().approximate_count(&queue).await.unwrap(), 0);
        assert_eq!(
            runner
                .queues()
                .approximate_count(&queue.poison().unwrap())
                .await
                .unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn a_cancelled_or_unknown_execution_is_dropped_without_running() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, engine, queue) = setup(dir.path()).await;
        let id = enqueue(&runner).await;
        runner
            .executions()
            .transition(
                &Scope::Global,
                &id,
                &[ExecutionStatus::Pending],
                ExecutionStatus::Cancelled,
            )
            .await
            .unwrap();
        let message = receive(&runner, &queue).await;
        let config = WorkerConfig::default();
        assert_eq!(
            handle_message(&runner, &queue, message, &config)
                .await
                .unwrap(),
            Handled::Skipped(ExecutionStatus::Cancelled)
        );
        let body =
            serde_json::json!({"executionId": "nope", "scope": "GLOBAL", "workflowName": "known"});
        runner
            .queues()
            .send(&queue, &body.to_string(), Duration::ZERO)
            .await
            .unwrap();
        let message = receive(&runner, &queue).await;
        assert_eq!(
            handle_message(&runner, &queue, message, &config)
                .await
                .unwrap(),
            Handled::Missing
        );
        assert_eq!(engine.runs.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_long_run_keeps_its_message_leased() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, engine, queue) = setup_with(dir.path(), Duration::from_millis(3500)).await;
        enqueue(&runner).await;
        let config = WorkerConfig {
            lease: Duration::from_secs(2),
            ..Default::default()
        };
        let message = runner
            .queues()
            .receive(&queue, 1, config.lease)
            .await
            .unwrap()
            .remove(0);
        let worker = {
            let (runner, queue, config) = (runner.clone(), queue.clone(), config.clone());
            tokio::spawn(async move { handle_message(&runner, &queue, message, &config).await })
        };
        // Past the first lease: without the heartbeat the message would be visible again.
        tokio::time::sleep(Duration::from_millis(2800)).await;
        let stolen = runner
            .queues()
            .receive(&queue, 1, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(stolen.is_empty(), "the lease was not extended");
        assert_eq!(
            worker.await.unwrap().unwrap(),
            Handled::Ran(ExecutionStatus::Success)
        );
        assert_eq!(engine.runs.load(Ordering::SeqCst), 1);
        assert_eq!(runner.queues().approximate_count(&queue).await.unwrap(), 0);
    }
}

//! The one way a workflow run happens, for every entry point (CLI, `/api/workflows/execute`,
//! `/api/endpoints/{name}`, the queue worker): check the input, record the execution, audit its
//! start, run it in the engine, complete the record and store logs and error detail.
//!
//! May depend on: storage services (`Executions`, `AuditLog`, `OrgService`), the queue store and
//! the engine through [`WorkflowEngine`]. Not on HTTP: callers translate [`RunError`]. The
//! runner is the only way into the engine for everything above it: runs, data providers,
//! cancellation and registry reads.
//! Invariants: input is validated before a record exists (a rejected request leaves no trace but
//! the error); a recorded run always ends in a terminal status, also when the engine refuses it;
//! while a recorded run executes, its record is polled so a `Cancelling` written by any instance
//! stops it (v1's worker did the same, bifrost-v1.md §5.1).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bifrost_engine::{
    Engine, EngineError, ExecutionContextInfo, ExecutionMode, ExecutionOutcome, ExecutionRequest,
    LogEntry, Organization, Registry, WorkflowInfo,
};
use bifrost_store::queue::{QueueName, QueueStore};
use bifrost_store::{Scope, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::context::RunContext;
use super::input::{self, Coercion, InputError};
use super::recovery::{ATTEMPT_LOG_SPAN, CleanupReport, RetryPolicy};
use super::{ExecutionRecord, ExecutionStatus, Executions};
use crate::audit::{AuditEvent, AuditEventType, AuditLog};
use crate::domain::{DomainError, OrgService};

/// The queue async executions go through.
pub const QUEUE: &str = "workflow-executions";
/// How often a running recorded execution checks its record for a cancellation request.
pub const CANCEL_POLL: Duration = Duration::from_secs(1);

/// What the runner needs from the engine; [`Engine`] is the implementation, tests may use a
/// stand-in for the queue and record logic (which never needs Python).
#[async_trait]
pub trait WorkflowEngine: Send + Sync {
    /// The workflow's current metadata, if the workspace has it.
    fn workflow(&self, name: &str) -> Option<WorkflowInfo>;
    /// Every workflow of the workspace (the scheduler reads their `schedule`).
    fn workflows(&self) -> Vec<WorkflowInfo> {
        Vec::new()
    }
    async fn execute(&self, request: ExecutionRequest) -> Result<ExecutionOutcome, EngineError>;
    /// Runs a data provider (the engine validates its options).
    async fn execute_data_provider(
        &self,
        _request: ExecutionRequest,
    ) -> Result<ExecutionOutcome, EngineError> {
        Err(EngineError::InvalidRequest(
            "this engine runs no data providers".into(),
        ))
    }
    /// `true` if the execution was running here and has been asked to stop.
    fn cancel(&self, execution_id: &str) -> bool;
    /// The workspace as of the last scan.
    fn registry(&self) -> Arc<Registry> {
        Arc::new(Registry {
            workflows: self.workflows(),
            data_providers: Vec::new(),
            errors: Vec::new(),
        })
    }
}

#[async_trait]
impl WorkflowEngine for Engine {
    fn workflow(&self, name: &str) -> Option<WorkflowInfo> {
        self.registry().workflow(name).cloned()
    }

    fn workflows(&self) -> Vec<WorkflowInfo> {
        self.registry().workflows.clone()
    }

    async fn execute(&self, request: ExecutionRequest) -> Result<ExecutionOutcome, EngineError> {
        Engine::execute(self, request).await
    }

    async fn execute_data_provider(
        &self,
        request: ExecutionRequest,
    ) -> Result<ExecutionOutcome, EngineError> {
        Engine::execute_data_provider(self, request).await
    }

    fn cancel(&self, execution_id: &str) -> bool {
        Engine::cancel(self, execution_id)
    }

    fn registry(&self) -> Arc<Registry> {
        Engine::registry(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("workflow '{0}' not found")]
    UnknownWorkflow(String),
    #[error("invalid input: {0}")]
    Input(#[from] InputError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("organization lookup failed: {0}")]
    Organization(String),
    #[error("workflow engine: {0}")]
    Engine(#[from] EngineError),
    /// The run's lease was taken over (this instance looked dead to a cleaner); the run was
    /// stopped and its record belongs to the recovery now.
    #[error("execution {0} lost its lease and was stopped here")]
    LeaseLost(String),
}

/// One run, input already checked by [`Runner::prepare`].
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub execution_id: String,
    pub workflow: WorkflowInfo,
    pub input: Map<String, Value>,
    /// Who runs it, where, with which rights.
    pub context: RunContext,
    pub form_id: Option<String>,
    /// Overrides the workflow's `timeout_seconds`.
    pub timeout: Option<Duration>,
}

impl RunRequest {
    /// A request with a fresh execution id, no form and the workflow's own timeout.
    pub fn new(workflow: WorkflowInfo, input: Map<String, Value>, context: RunContext) -> Self {
        Self {
            // Time-ordered (v7): an execution's rows (id pointer, lease, log lines) land next to
            // those of runs started at the same time, so concurrent runs share storage pages
            // instead of each dirtying random ones.
            execution_id: uuid::Uuid::now_v7().to_string(),
            workflow,
            input,
            context,
            form_id: None,
            timeout: None,
        }
    }

    /// The run is a submission of form `form_id`.
    pub fn for_form(mut self, form_id: impl Into<String>) -> Self {
        self.form_id = Some(form_id.into());
        self
    }

    /// Overrides the workflow's timeout.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn scope(&self) -> &Scope {
        &self.context.scope
    }

    /// The record this run starts with.
    pub fn record(&self, status: ExecutionStatus) -> ExecutionRecord {
        ExecutionRecord {
            execution_id: self.execution_id.clone(),
            workflow_name: self.workflow.name.clone(),
            org_id: self.context.org_id().map(ToString::to_string),
            form_id: self.form_id.clone(),
            executed_by: self.context.caller.user_id.clone(),
            executed_by_email: self.context.caller.email.clone(),
            executed_by_name: self.context.caller.name.clone(),
            status,
            input_data: Value::Object(self.input.clone()),
            result: None,
            result_type: None,
            error_type: None,
            error_message: None,
            duration_ms: None,
            started_at: OffsetDateTime::now_utc(),
            completed_at: None,
            attempt: 1,
            rights: self.context.rights,
        }
    }
}

/// A finished run: the record as stored (transient runs: as it would have been) and the
/// engine's outcome with logs and error detail.
#[derive(Clone, Debug)]
pub struct Finished {
    pub record: ExecutionRecord,
    pub outcome: ExecutionOutcome,
    pub transient: bool,
}

/// The message an async execution is queued with: only what locates the stored record and the
/// attempt it is for. Workflow, caller, rights and input are taken from the record, never from
/// the message (whoever can write to the queue must not be able to choose them).
///
/// Messages written before this rule also named the workflow and the rights; they are still
/// read, and refused (audited) when they disagree with the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedExecution {
    pub execution_id: String,
    /// `GLOBAL` or an organization id.
    pub scope: String,
    /// The attempt this message starts (absent in messages of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Earlier versions only: must match the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    /// Earlier versions only: must match the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_platform_admin: Option<bool>,
    /// Earlier versions only: must match the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_function_key: Option<bool>,
}

impl QueuedExecution {
    /// The message of a stored execution's current attempt (its first, or a lost message sent
    /// again).
    pub fn of(scope: &Scope, record: &ExecutionRecord) -> Self {
        Self::attempt(scope, record, record.attempt)
    }

    /// The message of attempt `attempt` of a stored execution.
    pub fn attempt(scope: &Scope, record: &ExecutionRecord, attempt: u32) -> Self {
        Self {
            execution_id: record.execution_id.clone(),
            scope: scope.to_string(),
            attempt: Some(attempt),
            workflow_name: None,
            is_platform_admin: None,
            is_function_key: None,
        }
    }

    /// Why this message may not start `record`, if it may not: a field it names that the
    /// record says otherwise.
    pub fn disagreement(&self, record: &ExecutionRecord) -> Option<&'static str> {
        if self
            .workflow_name
            .as_ref()
            .is_some_and(|w| *w != record.workflow_name)
        {
            return Some("workflowName");
        }
        if self
            .is_platform_admin
            .is_some_and(|a| a != record.rights.is_platform_admin)
        {
            return Some("isPlatformAdmin");
        }
        if self
            .is_function_key
            .is_some_and(|k| k != record.rights.is_function_key)
        {
            return Some("isFunctionKey");
        }
        None
    }
}

/// What the engine is told about a run's context.
fn engine_context(
    context: &RunContext,
    organization: Option<Organization>,
) -> ExecutionContextInfo {
    ExecutionContextInfo {
        caller: context.caller.clone(),
        organization,
        is_platform_admin: context.rights.is_platform_admin,
        is_function_key: context.rights.is_function_key,
    }
}

/// The shared execution service. Cheap to clone (handles only).
#[derive(Clone)]
pub struct Runner {
    engine: Arc<dyn WorkflowEngine>,
    executions: Executions,
    audit: Arc<AuditLog>,
    orgs: OrgService,
    queues: Arc<dyn QueueStore>,
    /// Wakes this instance's idle worker when a message is sent for immediate delivery, so a
    /// queued run starts without waiting for the next poll.
    enqueued: Arc<tokio::sync::Notify>,
}

impl Runner {
    pub fn new(
        engine: Arc<dyn WorkflowEngine>,
        executions: Executions,
        audit: Arc<AuditLog>,
        orgs: OrgService,
        queues: Arc<dyn QueueStore>,
    ) -> Self {
        Self {
            engine,
            executions,
            audit,
            orgs,
            queues,
            enqueued: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Notified whenever a message is sent without delay (see [`Self::enqueued`]'s field).
    pub(crate) fn enqueued(&self) -> &tokio::sync::Notify {
        &self.enqueued
    }

    /// Shares `enqueued` as the wake-up signal (every runner of an application uses one).
    pub fn waking(mut self, enqueued: Arc<tokio::sync::Notify>) -> Self {
        self.enqueued = enqueued;
        self
    }

    /// The workspace's workflows, data providers and import errors, as of the last scan.
    pub fn registry(&self) -> Arc<Registry> {
        self.engine.registry()
    }

    /// Asks the engine to stop a run it is running here; `false` when it is not running here.
    pub fn cancel(&self, execution_id: &str) -> bool {
        self.engine.cancel(execution_id)
    }

    /// Runs data provider `name` for a caller (not recorded: providers fill form fields).
    pub async fn run_data_provider(
        &self,
        name: &str,
        input: Map<String, Value>,
        context: &RunContext,
    ) -> Result<ExecutionOutcome, RunError> {
        let organization = self
            .organization(&context.scope)
            .await
            .map_err(|e| RunError::Organization(e.to_string()))?;
        let request = ExecutionRequest {
            name: name.to_owned(),
            input,
            context: engine_context(context, organization),
            ..Default::default()
        };
        Ok(self.engine.execute_data_provider(request).await?)
    }

    /// The engine's view of the organization a run acts for (`None` = GLOBAL). An organization
    /// that no longer exists is shown inactive, under its id.
    async fn organization(&self, scope: &Scope) -> Result<Option<Organization>, DomainError> {
        let Some(org) = scope.org_id() else {
            return Ok(None);
        };
        Ok(Some(match self.orgs.find(org).await? {
            Some(o) => Organization {
                id: o.id.to_string(),
                name: o.name,
                is_active: o.is_active,
            },
            None => Organization {
                id: org.to_string(),
                name: org.to_string(),
                is_active: false,
            },
        }))
    }

    pub fn executions(&self) -> &Executions {
        &self.executions
    }

    pub fn queues(&self) -> &Arc<dyn QueueStore> {
        &self.queues
    }

    /// The workflow's current metadata.
    pub fn workflow(&self, name: &str) -> Option<WorkflowInfo> {
        self.engine.workflow(name)
    }

    /// Every workflow of the workspace.
    pub fn workflows(&self) -> Vec<WorkflowInfo> {
        self.engine.workflows()
    }

    /// The workflow and its checked input; nothing is written.
    pub fn prepare(
        &self,
        workflow_name: &str,
        input: Map<String, Value>,
        coercion: Coercion,
    ) -> Result<(WorkflowInfo, Map<String, Value>), RunError> {
        let workflow = self
            .engine
            .workflow(workflow_name)
            .ok_or_else(|| RunError::UnknownWorkflow(workflow_name.to_owned()))?;
        let input = input::validate(&workflow.parameters, input, coercion)?;
        Ok((workflow, input))
    }

    /// Whether the workflow asks to be queued.
    pub fn is_async(workflow: &WorkflowInfo) -> bool {
        workflow.execution_mode == ExecutionMode::Async
    }

    /// Records the execution in `status` (`Running` or `Pending`) and audits its start. The two
    /// writes go out together (one storage round trip on the embedded backend's group commit),
    /// so the audit entry records the attempt even when the record could not be written.
    pub async fn start(
        &self,
        request: &RunRequest,
        status: ExecutionStatus,
    ) -> Result<ExecutionRecord, RunError> {
        let record = request.record(status);
        let (created, ()) = tokio::join!(
            self.executions.create(request.scope(), &record),
            self.audit_start(request, false)
        );
        created?;
        Ok(record)
    }

    async fn audit_start(&self, request: &RunRequest, transient: bool) {
        let mut event = AuditEvent::new(
            AuditEventType::ExecutionStarted,
            request.context.actor.clone(),
            request.scope().clone(),
        )
        .detail("execution_id", request.execution_id.clone())
        .detail("workflow", request.workflow.name.clone());
        if transient {
            event = event.detail("transient", true);
        }
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, execution_id = %request.execution_id, "could not audit the execution start");
        }
    }

    /// Records, runs and completes one execution inline (or, `transient`, runs it without a
    /// record, as v1's `transient` flag did).
    pub async fn run(&self, request: RunRequest, transient: bool) -> Result<Finished, RunError> {
        if transient {
            self.audit_start(&request, true).await;
            let record = request.record(ExecutionStatus::Running);
            return self.execute(request, record, true).await;
        }
        let record = self.start(&request, ExecutionStatus::Running).await?;
        self.execute(request, record, false).await
    }

    /// Runs an execution whose record (`record`, status `Running`) exists already, then completes
    /// the record. On an engine refusal the record is marked `Failed` before the error returns.
    pub async fn execute(
        &self,
        request: RunRequest,
        mut record: ExecutionRecord,
        transient: bool,
    ) -> Result<Finished, RunError> {
        let scope = request.scope().clone();
        let id = request.execution_id.clone();
        let organization = match self.organization(&scope).await {
            Ok(organization) => organization,
            Err(e) => {
                let error = RunError::Organization(e.to_string());
                if !transient {
                    self.fail(&scope, &mut record, "StorageError", &error.to_string())
                        .await;
                }
                return Err(error);
            }
        };
        let engine_request = ExecutionRequest {
            execution_id: id.clone(),
            name: request.workflow.name.clone(),
            input: request.input.clone(),
            context: engine_context(&request.context, organization),
            timeout: request.timeout,
            ..Default::default()
        };
        let mut engine_request = engine_request;
        // Lines are stored while the run goes (readable with `?since=` and streamed over SSE);
        // the complete set is written again at the end, idempotently, so a line the writer had
        // not flushed yet is never lost.
        let live_writer = (!transient).then(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            engine_request.live_logs = Some(tx);
            let offset = u64::from(record.attempt.saturating_sub(1)) * ATTEMPT_LOG_SPAN;
            tokio::spawn(write_live_logs(
                self.executions.clone(),
                scope.clone(),
                id.clone(),
                offset,
                rx,
            ))
        });
        let run = self.engine.execute(engine_request);
        tokio::pin!(run);
        let mut poll = every(CANCEL_POLL);
        let mut heartbeat = every(self.executions.lease() / 3);
        let mut lease_lost = false;
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                _ = poll.tick(), if !transient => {
                    // Another instance (or the cancel route before the engine knew the id) may
                    // have asked for cancellation; only the record carries that request.
                    if let Ok(Some(current)) = self.executions.get(&scope, &id).await
                        && current.status == ExecutionStatus::Cancelling
                    {
                        self.engine.cancel(&id);
                    }
                }
                _ = heartbeat.tick(), if !transient && !lease_lost => {
                    match self.executions.renew_lease(&scope, &id).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(execution_id = %id, "lease taken over by a cleaner; stopping the run here");
                            lease_lost = true;
                            self.engine.cancel(&id);
                        }
                        // Storage hiccup: the lease has two more renewals before it runs out.
                        Err(e) => tracing::warn!(error = %e, execution_id = %id, "could not renew the execution lease"),
                    }
                }
            }
        };
        if let Some(writer) = live_writer {
            writer.abort();
        }
        if lease_lost {
            return Err(RunError::LeaseLost(id));
        }
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                if !transient {
                    self.fail(&scope, &mut record, "EngineError", &e.to_string())
                        .await;
                }
                return Err(RunError::Engine(e));
            }
        };
        let mut outcome = outcome;
        if record.attempt > 1 {
            // Each attempt numbers its lines in its own range (see `recovery.rs`).
            let offset = u64::from(record.attempt - 1) * ATTEMPT_LOG_SPAN;
            for line in &mut outcome.logs {
                line.sequence += offset;
            }
        }
        record.complete(&outcome);
        if !transient {
            // Lines and error detail first: whoever sees the finished record (a log stream
            // deciding it is done) finds them stored.
            self.executions.record_outcome(&scope, &outcome).await?;
            self.executions.update(&scope, &record).await?;
        }
        Ok(Finished {
            record,
            outcome,
            transient,
        })
    }

    /// Marks a run that could not run as `Failed` with `reason` (best effort: the caller reports
    /// the original error either way).
    pub async fn fail(
        &self,
        scope: &Scope,
        record: &mut ExecutionRecord,
        error_type: &str,
        reason: &str,
    ) {
        record.status = ExecutionStatus::Failed;
        record.error_type = Some(error_type.to_owned());
        record.error_message = Some(reason.to_owned());
        record.completed_at = Some(OffsetDateTime::now_utc());
        record.duration_ms = Some(
            (OffsetDateTime::now_utc() - record.started_at)
                .whole_milliseconds()
                .max(0) as u64,
        );
        if let Err(e) = self.executions.update(scope, record).await {
            tracing::error!(error = %e, execution_id = %record.execution_id, "could not mark the execution failed");
        }
    }

    /// Records the execution as `Pending` and queues it for a worker. If the queue refuses the
    /// message the record is marked `Failed` (it would otherwise stay `Pending` forever).
    pub async fn enqueue(&self, request: &RunRequest) -> Result<ExecutionRecord, RunError> {
        let mut record = self.start(request, ExecutionStatus::Pending).await?;
        let message = QueuedExecution::of(request.scope(), &record);
        if let Err(e) = self.send(&message, Duration::ZERO).await {
            self.fail(
                request.scope(),
                &mut record,
                "QueueError",
                "the execution could not be queued",
            )
            .await;
            return Err(RunError::Store(e));
        }
        Ok(record)
    }

    /// Queues another attempt of a run that ended in one of `from` (a failure, or an orphaned
    /// `Running`), if its workflow is async and its retry policy allows it. Returns the delay of
    /// the new attempt, or `None` when no retry is due (the record is left as it is).
    pub async fn retry(
        &self,
        scope: &Scope,
        record: &ExecutionRecord,
        from: &[ExecutionStatus],
        reason: &str,
    ) -> Result<Option<Duration>, RunError> {
        let Some(workflow) = self.engine.workflow(&record.workflow_name) else {
            return Ok(None);
        };
        let policy = RetryPolicy::of(&workflow);
        let next = record.attempt + 1;
        if !Self::is_async(&workflow) || !policy.allows(next) {
            return Ok(None);
        }
        let id = &record.execution_id;
        let delay = policy.delay_before(next);
        if !self
            .executions
            .reset_for_retry(scope, id, from, next, delay)
            .await?
        {
            return Ok(None);
        }
        let note = LogEntry {
            sequence: u64::from(next - 1) * ATTEMPT_LOG_SPAN,
            timestamp: OffsetDateTime::now_utc(),
            level: "WARNING".into(),
            message: format!(
                "Attempt {} of {} will start in {:.1} s: attempt {} {reason}",
                next,
                policy.max_attempts,
                delay.as_secs_f64(),
                record.attempt
            ),
            source: "bifrost".into(),
            data: None,
        };
        if let Err(e) = self.executions.append_logs(scope, id, &[note]).await {
            tracing::warn!(error = %e, execution_id = %id, "could not log the retry");
        }
        let message = QueuedExecution::attempt(scope, record, next);
        if let Err(e) = self.send(&message, delay).await {
            let mut current = self
                .executions
                .get(scope, id)
                .await?
                .unwrap_or_else(|| record.clone());
            self.fail(
                scope,
                &mut current,
                "QueueError",
                "the retry could not be queued",
            )
            .await;
            return Err(RunError::Store(e));
        }
        Ok(Some(delay))
    }

    /// Audits a queue message that disagreed with its stored execution (see
    /// [`QueuedExecution::disagreement`]); the message is dropped by the caller.
    pub async fn reject_message(&self, scope: &Scope, message: &QueuedExecution, field: &str) {
        tracing::warn!(execution_id = %message.execution_id, field, "queue message disagrees with the stored execution; refused");
        let event = AuditEvent::new(AuditEventType::QueueMessageRejected, "queue", scope.clone())
            .detail("execution_id", message.execution_id.clone())
            .detail("field", field)
            .detail(
                "workflow",
                message
                    .workflow_name
                    .clone()
                    .map_or(serde_json::Value::Null, serde_json::Value::from),
            );
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, execution_id = %message.execution_id, "could not audit a rejected queue message");
        }
    }

    async fn send(&self, message: &QueuedExecution, delay: Duration) -> Result<(), StoreError> {
        let body = serde_json::to_string(message)
            .map_err(|e| StoreError::Backend(format!("queue message: {e}")))?;
        let queue = QueueName::new(QUEUE)?;
        self.queues.send(&queue, &body, delay).await?;
        if delay.is_zero() {
            self.enqueued.notify_one();
        }
        Ok(())
    }

    /// One `execution_cleanup` pass: recovers every run whose lease ran out (see `recovery.rs`).
    pub async fn recover_orphans(&self, now: OffsetDateTime) -> Result<CleanupReport, RunError> {
        let mut report = CleanupReport::default();
        for lease in self.executions.expired_leases(now).await? {
            if !self.executions.claim_expired(&lease).await? {
                report.skipped += 1;
                continue;
            }
            let scope = &lease.scope;
            let Some(mut record) = self.executions.get(scope, &lease.execution_id).await? else {
                report.stale += 1;
                continue;
            };
            let since = lease
                .lease_until
                .map(|t| t.to_string())
                .unwrap_or_else(|| "its start".into());
            match record.status {
                ExecutionStatus::Cancelling => {
                    self.executions
                        .transition(
                            scope,
                            &record.execution_id,
                            &[ExecutionStatus::Cancelling],
                            ExecutionStatus::Cancelled,
                        )
                        .await?;
                    report.cancelled += 1;
                }
                ExecutionStatus::Running => {
                    let reason = format!(
                        "was abandoned: the instance running it stopped renewing its lease (expired {since})"
                    );
                    match self
                        .retry(scope, &record, &[ExecutionStatus::Running], &reason)
                        .await
                    {
                        Ok(Some(_)) => report.requeued += 1,
                        Ok(None) | Err(RunError::Store(_)) => {
                            let message = format!(
                                "The instance running this execution stopped (no heartbeat since {since}); no attempts left"
                            );
                            if record.status == ExecutionStatus::Running {
                                self.fail(scope, &mut record, "Abandoned", &message).await;
                            }
                            report.failed += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
                ExecutionStatus::Pending if lease.queued => {
                    // The message was lost (the instance died between record and send) or is
                    // only slow; a second copy is harmless, the first `Pending → Running` wins.
                    let message = QueuedExecution::of(scope, &record);
                    self.send(&message, Duration::ZERO).await?;
                    self.executions.renew_queued(scope, &record).await?;
                    tracing::warn!(execution_id = %record.execution_id, waited_until = %since, "queued execution not started in time; its message was sent again");
                    report.resent += 1;
                }
                _ => report.stale += 1,
            }
        }
        Ok(report)
    }
}

/// How often lines of a running execution are flushed to storage.
pub const LIVE_LOG_FLUSH: Duration = Duration::from_millis(250);

/// Stores the live lines of one run in batches until aborted (the run's end).
/// An interval whose first tick is one `period` from now, and which does not burst after a
/// stall. (A plain interval's immediate first tick is not free to await: the timer wheel rounds
/// it up to the next millisecond, which a run of a millisecond or two feels.)
pub(super) fn every(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

async fn write_live_logs(
    executions: Executions,
    scope: Scope,
    execution_id: String,
    offset: u64,
    mut lines: tokio::sync::mpsc::UnboundedReceiver<LogEntry>,
) {
    let mut batch = Vec::new();
    loop {
        match lines.recv().await {
            Some(line) => batch.push(line),
            None => return,
        }
        // Gather what arrives within the flush interval into one write.
        let flush_at = tokio::time::Instant::now() + LIVE_LOG_FLUSH;
        while let Ok(Some(line)) = tokio::time::timeout_at(flush_at, lines.recv()).await {
            batch.push(line);
        }
        for line in &mut batch {
            line.sequence += offset;
        }
        if let Err(e) = executions.append_logs(&scope, &execution_id, &batch).await {
            tracing::warn!(error = %e, execution_id = %execution_id, "could not store live log lines; they are written at the end");
        }
        batch.clear();
    }
}

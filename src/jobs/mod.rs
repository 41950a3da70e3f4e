//! Platform jobs that run on a timer: `execution_cleanup` (orphaned runs), `schedule_processor`
//! (due cron schedules) and `retention` (old executions and logs, expired data-provider cache
//! rows).
//!
//! The same job code runs two ways: on Azure the Functions host fires the `timerTrigger`
//! functions in `functions/` and [`functions`] hands the invocation here; standalone,
//! [`timers::Scheduler`] fires them in-process on the same NCRONTAB schedules. The queue-trigger
//! functions of async executions are registered by [`functions`] too.
//!
//! Every job is safe when several instances run it at once: cleanup claims each orphan with an
//! ETag, the schedule processor claims each due run with an ETag (`ScheduleStore::claim_due`),
//! retention deletes idempotently, and the in-process scheduler claims each timer slot with an
//! ETag ([`timers::TimerStore`]), so a past-due timer fires once, on one instance.
//!
//! May depend on: executions (runner), schedules, domain services. Not on HTTP.

pub mod functions;
pub mod timers;

use std::sync::Arc;

use bifrost_store::Scope;
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::domain::{ConfigService, OrgService};
use crate::executions::input::Coercion;
use crate::executions::{CleanupReport, RunContext, RunError, RunRequest, Runner};
use crate::forms::files::Uploads;
use crate::forms::providers::ProviderCache;
use crate::schedules::{ScheduleError, ScheduleStore};
use crate::sdk_files::SdkFiles;

/// The config key an organization (or GLOBAL) sets to override the retention days.
pub const RETENTION_CONFIG_KEY: &str = "execution_retention_days";

/// One of the platform's timer jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerJob {
    ExecutionCleanup,
    ScheduleProcessor,
    Retention,
}

impl TimerJob {
    pub const ALL: [TimerJob; 3] = [
        TimerJob::ExecutionCleanup,
        TimerJob::ScheduleProcessor,
        TimerJob::Retention,
    ];

    /// The function name (and `functions/<name>/` folder) under the Functions host.
    pub fn function_name(self) -> &'static str {
        match self {
            TimerJob::ExecutionCleanup => "execution_cleanup",
            TimerJob::ScheduleProcessor => "schedule_processor",
            TimerJob::Retention => "retention",
        }
    }

    /// The NCRONTAB schedule its `function.json` declares (a test keeps them equal).
    pub fn default_schedule(self) -> &'static str {
        match self {
            TimerJob::ExecutionCleanup => "0 * * * * *",
            TimerJob::ScheduleProcessor => "0 * * * * *",
            TimerJob::Retention => "0 30 3 * * *",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error("{0}")]
    Domain(String),
}

/// A scheduled run that started (or could not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledRun {
    pub workflow_name: String,
    pub execution_id: Option<String>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionReport {
    pub scopes: usize,
    /// Executions deleted.
    pub purged: usize,
    /// Expired data-provider cache rows deleted.
    pub cache_purged: usize,
    /// Form uploads older than a day deleted (a run that used one has its own copy).
    pub uploads_purged: usize,
    /// Files of the SDK's `temp` location older than the retention deleted.
    pub temp_files_purged: usize,
}

/// How long an uploaded form file is kept: long enough to fill in and submit the form.
pub const UPLOAD_RETENTION: time::Duration = time::Duration::days(1);

/// The timer jobs and what they need. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    runner: Runner,
    schedules: ScheduleStore,
    config: ConfigService,
    orgs: OrgService,
    provider_cache: ProviderCache,
    uploads: Uploads,
    files: SdkFiles,
    retention_days: u32,
}

/// What the timer jobs work on besides the runner.
pub struct JobServices {
    pub schedules: ScheduleStore,
    pub config: ConfigService,
    pub orgs: OrgService,
    pub provider_cache: ProviderCache,
    pub uploads: Uploads,
    pub files: SdkFiles,
}

impl Jobs {
    pub fn new(runner: Runner, services: JobServices, retention_days: u32) -> Self {
        Self {
            runner,
            schedules: services.schedules,
            config: services.config,
            orgs: services.orgs,
            provider_cache: services.provider_cache,
            uploads: services.uploads,
            files: services.files,
            retention_days,
        }
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Runs one job now; the report is JSON for the invocation log and the API.
    pub async fn run(&self, job: TimerJob, now: OffsetDateTime) -> Result<Value, JobError> {
        let report = match job {
            TimerJob::ExecutionCleanup => to_json(&self.cleanup(now).await?),
            TimerJob::ScheduleProcessor => to_json(&self.process_schedules(now).await?),
            TimerJob::Retention => to_json(&self.retention(now).await?),
        };
        Ok(report)
    }

    pub async fn cleanup(&self, now: OffsetDateTime) -> Result<CleanupReport, JobError> {
        Ok(self.runner.recover_orphans(now).await?)
    }

    /// Syncs the schedule rows with the workspace, then starts every due schedule once.
    pub async fn process_schedules(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<ScheduledRun>, JobError> {
        self.sync_schedules(now).await?;
        let mut started = Vec::new();
        for claim in self.schedules.claim_due(now).await? {
            started.push(self.start_scheduled(&claim.workflow_name, None).await);
        }
        Ok(started)
    }

    /// Brings the schedule rows in line with the workspace's declared schedules.
    async fn sync_schedules(&self, now: OffsetDateTime) -> Result<(), JobError> {
        let workflows = self.runner.workflows();
        self.schedules
            .sync_from_registry(&crate::schedules::declared(&workflows), now)
            .await?;
        Ok(())
    }

    /// Trigger-now: brings the schedule rows in line with the workspace first, so the run is
    /// recorded on the workflow's row even before the schedule processor has ever run.
    pub async fn trigger_now(&self, workflow_name: &str, now: OffsetDateTime) -> ScheduledRun {
        if let Err(e) = self.sync_schedules(now).await {
            tracing::warn!(error = %e, "could not sync the schedule rows before trigger-now");
        }
        self.start_scheduled(workflow_name, Some(now)).await
    }

    /// Starts a scheduled workflow now, as the scheduler: queued, GLOBAL scope, no input
    /// (v1's scheduler passed none), recorded on the schedule row. `manual_at`: a trigger-now
    /// at that moment, which the row also counts (a claimed slot was counted by its claim).
    pub async fn start_scheduled(
        &self,
        workflow_name: &str,
        manual_at: Option<OffsetDateTime>,
    ) -> ScheduledRun {
        let outcome = async {
            let (workflow, input) =
                self.runner
                    .prepare(workflow_name, Map::new(), Coercion::Strict)?;
            let request = RunRequest::new(workflow, input, RunContext::scheduler());
            let record = self.runner.enqueue(&request).await?;
            Ok::<_, RunError>(record.execution_id)
        }
        .await;
        match outcome {
            Ok(id) => {
                let recorded = match manual_at {
                    Some(at) => {
                        self.schedules
                            .record_manual_run(workflow_name, &id, at)
                            .await
                    }
                    None => self.schedules.record_execution(workflow_name, &id).await,
                };
                if let Err(e) = recorded {
                    tracing::warn!(error = %e, workflow = workflow_name, "could not record the scheduled run on its schedule");
                }
                tracing::info!(workflow = workflow_name, execution_id = %id, "scheduled run queued");
                ScheduledRun {
                    workflow_name: workflow_name.to_owned(),
                    execution_id: Some(id),
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, workflow = workflow_name, "scheduled run could not start");
                ScheduledRun {
                    workflow_name: workflow_name.to_owned(),
                    execution_id: None,
                    error: Some(e.to_string()),
                }
            }
        }
    }

    /// Deletes finished executions and `temp` files older than each scope's retention, expired
    /// data-provider cache rows, and form uploads older than [`UPLOAD_RETENTION`].
    pub async fn retention(&self, now: OffsetDateTime) -> Result<RetentionReport, JobError> {
        let orgs = self
            .orgs
            .list_all()
            .await
            .map_err(|e| JobError::Domain(e.to_string()))?;
        let mut scopes = vec![Scope::Global];
        scopes.extend(orgs.iter().map(|o| o.scope()));
        let mut report = RetentionReport::default();
        for scope in scopes {
            let days = self.retention_days_of(&scope).await;
            let cutoff = now - time::Duration::days(i64::from(days));
            report.purged += self
                .runner
                .executions()
                .purge_before(&scope, cutoff)
                .await
                .map_err(RunError::from)?;
            report.cache_purged += self
                .provider_cache
                .purge_expired(&scope, now)
                .await
                .map_err(RunError::from)?;
            report.temp_files_purged += self
                .files
                .purge_temp_before(&scope, cutoff)
                .await
                .map_err(RunError::from)?;
            report.scopes += 1;
        }
        report.uploads_purged = self
            .uploads
            .purge_before(now - UPLOAD_RETENTION)
            .await
            .map_err(RunError::from)?;
        Ok(report)
    }

    /// `execution_retention_days` of the scope (falling back to GLOBAL), else the setting.
    async fn retention_days_of(&self, scope: &Scope) -> u32 {
        match self.config.resolve(scope, RETENTION_CONFIG_KEY).await {
            Ok(Some(crate::domain::ConfigValue::Plain(value))) => {
                match value
                    .as_u64()
                    .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                {
                    Some(days) if (1..=36_500).contains(&days) => days as u32,
                    _ => {
                        tracing::warn!(%scope, ?value, "{RETENTION_CONFIG_KEY} is not a number of days (1-36500); using the default");
                        self.retention_days
                    }
                }
            }
            Ok(_) => self.retention_days,
            Err(e) => {
                tracing::warn!(%scope, error = %e, "could not read {RETENTION_CONFIG_KEY}; using the default");
                self.retention_days
            }
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Shared handle for invocation handlers and the scheduler.
pub type SharedJobs = Arc<Jobs>;

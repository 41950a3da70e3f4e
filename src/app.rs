//! Start-up and the shared application state.
//!
//! [`run`] opens the configured backends once (the only code that looks at which backends are
//! configured), builds the route table, binds the port and serves until a shutdown signal:
//! the first SIGTERM/SIGINT drains in-flight requests, a second one exits at once.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use bifrost_engine::{Engine, EngineConfig, EngineError, ImportViolation};
use bifrost_store::Scope;

use crate::audit::{AuditEvent, AuditEventType, AuditLog};
use crate::auth::{FunctionKeys, FunctionKeysOptions, WorkflowKeys, WorkflowKeysOptions};
use crate::domain::{ChangeLog, ConfigService, OrgService, RoleService, UserService};
use crate::executions::Runner;
use crate::executions::worker::{Worker, WorkerConfig};
use crate::jobs::timers::{Scheduler, TimerStore};
use crate::jobs::{Jobs, TimerJob};
use crate::schedules::{Cron, ScheduleStore};

use crate::backends::{Backends, OpenError};
use crate::executions::Executions;
use crate::host::invoke::Invocations;
use crate::http::health::{DependencyHealth, HealthReport, PythonHealth, WorkspaceHealth};
use crate::sdk_files::SdkFiles;
use crate::sdk_host::StorageHost;
use crate::server::{Frontend, serve};
use crate::settings::Settings;

/// What every handler may reach; built once in [`run`].
pub struct AppState {
    pub settings: Arc<Settings>,
    pub backends: Backends,
    pub services: Services,
    pub engine: Engine,
    /// Per-instance identity caches and rate-limit buckets.
    pub identity: crate::http::context::Identity,
}

/// The domain services every entry point (HTTP, CLI, SDK host) shares.
#[derive(Clone)]
pub struct Services {
    pub orgs: OrgService,
    pub users: UserService,
    pub roles: RoleService,
    pub config: ConfigService,
    pub keys: Arc<FunctionKeys>,
    /// `Authorization: Bearer wk_...` keys of `/api/endpoints/*`.
    pub workflow_keys: Arc<WorkflowKeys>,
    pub audit: Arc<AuditLog>,
    pub executions: Executions,
    pub schedules: ScheduleStore,
    /// Forms per scope (`Forms` table, with `*.form.json` files imported from the workspace).
    pub forms: crate::forms::store::FormStore,
    /// Data-provider options shared by every instance (`DataProviderCache` table).
    pub provider_cache: crate::forms::providers::ProviderCache,
    /// Files uploaded for `file` form fields (`form-uploads` container).
    pub uploads: crate::forms::files::Uploads,
    /// Wakes this instance's idle queue worker when a run is queued here.
    pub enqueued: Arc<tokio::sync::Notify>,
    /// The SDK's per-organization file areas (`files.*`, and uploaded files handed to runs).
    pub files: SdkFiles,
}

impl Services {
    /// Builds the services without touching storage.
    pub fn new(backends: &Backends, settings: &Settings) -> Result<Self, StartupError> {
        let tables = &backends.tables;
        let audit = Arc::new(
            AuditLog::new(tables.clone(), backends.secrets.clone())
                .map_err(|e| StartupError::Storage(e.to_string()))?,
        );
        let changes = ChangeLog::new(audit.clone());
        Ok(Self {
            orgs: OrgService::new(tables.clone(), changes.clone()),
            users: UserService::new(tables.clone(), changes.clone()),
            roles: RoleService::new(tables.clone(), changes),
            config: ConfigService::new(tables.clone(), backends.secrets.clone()),
            keys: Arc::new(
                FunctionKeys::new(tables.clone(), FunctionKeysOptions::default())
                    .map_err(|e| StartupError::Storage(e.to_string()))?,
            ),
            workflow_keys: Arc::new(
                WorkflowKeys::new(tables.clone(), WorkflowKeysOptions::default())
                    .map_err(|e| StartupError::Storage(e.to_string()))?,
            ),
            audit,
            executions: Executions::new(tables.clone(), backends.blobs.clone()),
            enqueued: Arc::new(tokio::sync::Notify::new()),
            schedules: ScheduleStore::new(tables.clone())
                .map_err(|e| StartupError::Storage(e.to_string()))?,
            forms: crate::forms::store::FormStore::new(tables.clone())
                .map_err(|e| StartupError::Storage(e.to_string()))?,
            provider_cache: crate::forms::providers::ProviderCache::new(tables.clone())
                .map_err(|e| StartupError::Storage(e.to_string()))?,
            uploads: crate::forms::files::Uploads::new(backends.blobs.clone())
                .map_err(|e| StartupError::Storage(e.to_string()))?,
            files: SdkFiles::new(backends.blobs.clone(), &settings.workspace)
                .map_err(|e| StartupError::Storage(e.to_string()))?,
        })
    }

    /// Creates every table and container the services use. Storage may come up after us (the
    /// Functions host starts us regardless), so a failure is reported, not fatal: `/api/health`
    /// shows the outage and requests answer 503 until storage is back.
    pub async fn prepare_storage(&self, backends: &Backends) {
        let results = [
            crate::domain::ensure_tables(&backends.tables)
                .await
                .map_err(|e| e.to_string()),
            self.keys.ensure_table().await.map_err(|e| e.to_string()),
            self.workflow_keys
                .ensure_table()
                .await
                .map_err(|e| e.to_string()),
            self.audit.ensure_table().await.map_err(|e| e.to_string()),
            self.executions
                .ensure_storage()
                .await
                .map_err(|e| e.to_string()),
            self.schedules
                .ensure_table()
                .await
                .map_err(|e| e.to_string()),
            self.forms.ensure_tables().await.map_err(|e| e.to_string()),
            self.provider_cache
                .ensure_table()
                .await
                .map_err(|e| e.to_string()),
            self.uploads
                .ensure_container()
                .await
                .map_err(|e| e.to_string()),
            self.files
                .ensure_container()
                .await
                .map_err(|e| e.to_string()),
            // Under the Functions host with Azure Storage no in-process worker creates the queue,
            // yet the first async run must be able to enqueue.
            ensure_execution_queue(backends).await,
        ];
        for error in results.into_iter().filter_map(Result::err) {
            tracing::error!(error = %error, "could not prepare storage yet");
        }
    }
}

async fn ensure_execution_queue(backends: &Backends) -> Result<(), String> {
    let queue = bifrost_store::queue::QueueName::new(crate::executions::runner::QUEUE)
        .map_err(|e| e.to_string())?;
    backends
        .queues
        .create_queue(&queue)
        .await
        .map_err(|e| e.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open backends: {0}")]
    Backends(#[from] OpenError),
    #[error("storage: {0}")]
    Storage(String),
    #[error("workflow engine: {0}")]
    Engine(#[from] EngineError),
    #[error("workspace folder {path} does not exist (set {setting} or pass --workspace)")]
    MissingWorkspace {
        path: std::path::PathBuf,
        setting: &'static str,
    },
    #[error("cannot create data folder {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl AppState {
    pub async fn open(settings: Arc<Settings>) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartupError::DataDir {
            path: settings.data_dir.clone(),
            source,
        })?;
        let backends = Backends::open(&settings)?;
        let mut services = Services::new(&backends, &settings)?;
        services.executions = services.executions.with_lease(settings.executions.lease);
        services.prepare_storage(&backends).await;
        let engine = start_engine(&settings, &backends, &services).await?;
        crate::http::forms::import_forms(&services.forms, &settings.workspace).await;
        Ok(Self {
            settings,
            backends,
            services,
            engine,
            identity: crate::http::context::Identity::new(),
        })
    }

    pub async fn health(&self) -> HealthReport {
        let (storage, secrets) = tokio::join!(
            self.backends.storage_health(),
            self.backends.secrets_health()
        );
        let healthy = storage.is_ok() && secrets.is_ok();
        HealthReport {
            status: if healthy { "healthy" } else { "unhealthy" },
            version: env!("CARGO_PKG_VERSION"),
            functions_host: self.settings.under_functions_host,
            storage: DependencyHealth::from_probe(self.settings.storage.name(), storage),
            secrets: DependencyHealth::from_probe(self.settings.secrets.name(), secrets),
            python: PythonHealth {
                version: self.engine.python_version().to_owned(),
                threads: self.settings.python_threads,
            },
            workspace: {
                let registry = self.engine.registry();
                WorkspaceHealth {
                    path: self.settings.workspace.display().to_string(),
                    // Import errors don't make the instance unhealthy: other workflows still run.
                    status: if registry.errors.is_empty() {
                        "ok"
                    } else {
                        "import_errors"
                    },
                    workflows: registry.workflows.len(),
                    data_providers: registry.data_providers.len(),
                    import_errors: registry.errors.len(),
                }
            },
        }
    }
}

/// Starts the embedded Python engine on the configured workspace, backed by real storage.
pub async fn start_engine(
    settings: &Settings,
    backends: &Backends,
    services: &Services,
) -> Result<Engine, StartupError> {
    if !settings.workspace.is_dir() {
        return Err(StartupError::MissingWorkspace {
            path: settings.workspace.clone(),
            setting: crate::settings::WORKSPACE,
        });
    }
    let host = StorageHost::new(
        backends.tables.clone(),
        backends.secrets.clone(),
        services.audit.clone(),
        services.executions.clone(),
        services.forms.clone(),
        services.files.clone(),
    );
    let audit = services.audit.clone();
    let runtime = tokio::runtime::Handle::current();
    let on_violation = {
        let runtime = runtime.clone();
        move |violation: ImportViolation| {
            tracing::warn!(
                ?violation,
                "workspace code tried to import engine internals"
            );
            let audit = audit.clone();
            // Called on a Python thread: record it on the async runtime, never block Python.
            runtime.spawn(async move {
                let event = AuditEvent::new(AuditEventType::ImportGuardViolation, "workspace", Scope::Global)
                    .detail("module", violation.module.clone())
                    .detail("importer", violation.importer.display().to_string())
                    .detail("line", violation.line);
                if let Err(e) = audit.append(event).await {
                    tracing::error!(error = %e, ?violation, "could not record an import-guard violation in the audit log");
                }
            });
        }
    };
    let config = EngineConfig {
        workspace_dirs: vec![settings.workspace.clone()],
        threads: settings.python_threads,
        host: Arc::new(host),
        runtime: Some(runtime),
        on_import_violation: Some(Arc::new(on_violation)),
        hidden_env: crate::settings::HIDDEN_FROM_WORKFLOWS
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
        ..Default::default()
    };
    let engine = tokio::task::spawn_blocking(move || Engine::start(config))
        .await
        .map_err(|e| EngineError::Internal(format!("engine start-up task failed: {e}")))??;
    let registry = engine.registry();
    tracing::info!(
        python = engine.python_version(),
        workflows = registry.workflows.len(),
        data_providers = registry.data_providers.len(),
        import_errors = registry.errors.len(),
        "workflow engine started"
    );
    for error in &registry.errors {
        tracing::warn!(file = %error.file.display(), line = ?error.line, error = %error.message, "workspace import error");
    }
    Ok(engine)
}

/// Opens everything, binds the configured port and serves until shutdown.
pub async fn run(settings: Settings) -> Result<(), StartupError> {
    let settings = Arc::new(settings);
    tracing::info!(settings = %settings.summary(), "starting bifrost {}", env!("CARGO_PKG_VERSION"));
    let state = Arc::new(AppState::open(settings.clone()).await?);
    let worker_config = WorkerConfig {
        slots: settings.executions.worker_slots,
        lease: settings.executions.lease,
        max_running_per_org: settings.executions.max_running_per_org,
        ..WorkerConfig::default()
    };
    // Async executions: under the Functions host with Azure Storage, the host's queue trigger
    // delivers them (and scales out on queue length); otherwise the in-process worker polls. The
    // queue exists before the first request can enqueue.
    let host_delivers = settings.under_functions_host
        && matches!(settings.storage, crate::settings::StorageSettings::Azure(_));
    let worker = if host_delivers {
        None
    } else {
        Some(Worker::start(Runner::for_app(&state), worker_config.clone()).await)
    };
    // Timer jobs: the host fires the timerTrigger functions; standalone, the in-process timer.
    let jobs = Jobs::for_app(&state);
    let scheduler = if settings.under_functions_host {
        None
    } else {
        Some(start_timers(&state, jobs.clone())?)
    };
    // The payload routes exist only under the host (see `server.rs`).
    let invocations = settings.under_functions_host.then(|| {
        let mut invocations = Invocations::default();
        crate::jobs::functions::register(&mut invocations, jobs, worker_config);
        invocations
    });

    let addr = SocketAddr::new(settings.bind, settings.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    // Tests and scripts read this line to find the port when started with --port 0.
    println!("bifrost listening on http://{local}");
    tracing::info!(%local, "listening");

    let frontend = Arc::new(Frontend::new(
        crate::http::routes(state.clone()),
        invocations,
        settings.max_body_bytes,
        crate::server::ClientAddressing {
            trusted_proxies: settings.trusted_proxies.clone(),
            front_door_id: settings.front_door_id.clone(),
        },
    ));
    let watcher = tokio::spawn(watch_workspace(state.engine.clone()));
    let summaries = tokio::spawn(summarize_audit_floods(state.services.audit.clone()));
    let form_watcher = tokio::spawn(crate::http::forms::watch_workspace_forms(state.clone()));
    serve(listener, frontend, shutdown_signal()).await;
    watcher.abort();
    summaries.abort();
    form_watcher.abort();
    if let Some(scheduler) = scheduler {
        scheduler.stop().await;
    }
    if let Some(worker) = worker {
        worker.stop().await;
    }
    state.engine.stop();
    tracing::info!("stopped");
    Ok(())
}

/// Starts the in-process timer with the configured schedules (validated by the settings).
fn start_timers(state: &AppState, jobs: Jobs) -> Result<Scheduler, StartupError> {
    let e = &state.settings.executions;
    let mut schedules = Vec::new();
    for (job, expression) in [
        (TimerJob::ExecutionCleanup, &e.timer_cleanup),
        (TimerJob::ScheduleProcessor, &e.timer_schedules),
        (TimerJob::Retention, &e.timer_retention),
    ] {
        let cron = Cron::parse(expression)
            .map_err(|err| StartupError::Storage(format!("timer {job:?}: {err}")))?;
        schedules.push((job, cron));
    }
    let store = TimerStore::new(state.backends.tables.clone())
        .map_err(|err| StartupError::Storage(err.to_string()))?;
    Ok(Scheduler::start(jobs, store, schedules))
}

/// How often the workspace is checked for changed files. A scan that finds nothing costs a few
/// milliseconds (file metadata only), so polling is cheaper than depending on inotify, which
/// Azure Files mounts do not deliver.
const WORKSPACE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Re-imports changed workspace files while serving; only what changed is reloaded.
async fn watch_workspace(engine: Engine) {
    let mut tick = tokio::time::interval(WORKSPACE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match engine.rescan().await {
            Ok(report) if report.imported.is_empty() && report.removed.is_empty() => {}
            Ok(report) => {
                tracing::info!(
                    imported = ?report.imported,
                    removed = ?report.removed,
                    workflows = report.registry.workflows.len(),
                    import_errors = report.registry.errors.len(),
                    "workspace reloaded"
                );
                for error in &report.registry.errors {
                    tracing::warn!(file = %error.file.display(), line = ?error.line, error = %error.message, "workspace import error");
                }
            }
            Err(e) => tracing::warn!(error = %e, "workspace rescan failed"),
        }
    }
}

/// Writes the summary entries of aggregated audit floods whose window closed (see
/// `audit/flood.rs`), so a flood that stopped is still counted in the log.
async fn summarize_audit_floods(audit: Arc<AuditLog>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = audit.flush_summaries().await {
            tracing::warn!(error = %e, "could not write audit flood summaries");
        }
    }
}

/// Resolves on the first SIGTERM/SIGINT; a second signal ends the process immediately.
async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("shutdown requested; send the signal again to exit immediately");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second shutdown signal: exiting without draining");
        std::process::exit(130);
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

//! The application's shared state, below every entry point: settings, the opened backends, the
//! domain services, the engine behind the one [`Runner`], and their start-up.
//!
//! Built once by [`AppState::open`] (the server, the CLI and tests use the same code). May depend
//! on every service module; must not depend on `http`, `server`, `host` or `app` (the entry
//! points above it), which a tidy test checks.

use std::sync::Arc;

use bifrost_engine::{Engine, EngineConfig, EngineError, ImportViolation};
use bifrost_store::Scope;

use crate::audit::{AuditEvent, AuditEventType, AuditLog};
use crate::auth::{FunctionKeys, FunctionKeysOptions, WorkflowKeys, WorkflowKeysOptions};
use crate::backends::{Backends, OpenError};
use crate::domain::{ChangeLog, ConfigService, OrgService, RoleService, UserService};
use crate::executions::{Executions, Runner};
use crate::jobs::{JobServices, Jobs};
use crate::schedules::ScheduleStore;
use crate::sdk_files::SdkFiles;
use crate::sdk_host::{SdkServices, StorageHost};
use crate::settings::Settings;

/// What every entry point may reach; built once at start-up.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub backends: Backends,
    pub services: Services,
    /// The engine: reached through [`AppState::runner`] by everything but start-up and shutdown.
    engine: Engine,
    /// The one way into the engine (runs, data providers, cancellation, the registry).
    pub runner: Runner,
    /// The embedded interpreter's version, e.g. `3.11.7`.
    pub python_version: String,
}

/// The domain services every entry point (HTTP, CLI, SDK host) shares.
#[derive(Clone)]
pub struct Services {
    pub orgs: OrgService,
    pub users: UserService,
    pub roles: RoleService,
    pub config: ConfigService,
    /// Secrets per scope, for the API and the SDK host alike (scoping, fallback, audit).
    pub secrets: crate::domain::secrets::SecretService,
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
    /// Recent launch-workflow results of forms (this instance's memory).
    pub launches: crate::forms::launch::LaunchResults,
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
            secrets: crate::domain::secrets::SecretService::new(
                backends.secrets.clone(),
                audit.clone(),
            ),
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
            launches: crate::forms::launch::LaunchResults::default(),
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
        addr: std::net::SocketAddr,
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
        let engine = start_engine(&settings, &services).await?;
        crate::forms::import::import_forms(&services.forms, &settings.workspace).await;
        let runner = runner_of(&engine, &backends, &services);
        Ok(Self {
            python_version: engine.python_version().to_owned(),
            settings,
            backends,
            services,
            engine,
            runner,
        })
    }

    /// The engine, for start-up and shutdown (workspace rescans, stop) only.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The timer jobs over this state's services.
    pub fn jobs(&self) -> Jobs {
        let s = &self.services;
        Jobs::new(
            self.runner.clone(),
            JobServices {
                schedules: s.schedules.clone(),
                config: s.config.clone(),
                orgs: s.orgs.clone(),
                provider_cache: s.provider_cache.clone(),
                uploads: s.uploads.clone(),
                files: s.files.clone(),
            },
            self.settings.executions.retention_days,
        )
    }
}

/// Starts the embedded Python engine on the configured workspace, backed by real storage.
pub async fn start_engine(
    settings: &Settings,
    services: &Services,
) -> Result<Engine, StartupError> {
    if !settings.workspace.is_dir() {
        return Err(StartupError::MissingWorkspace {
            path: settings.workspace.clone(),
            setting: crate::settings::WORKSPACE,
        });
    }
    let host = StorageHost::new(SdkServices {
        secrets: services.secrets.clone(),
        config: services.config.clone(),
        orgs: services.orgs.clone(),
        roles: services.roles.clone(),
        executions: services.executions.clone(),
        forms: services.forms.clone(),
        files: services.files.clone(),
    });
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

/// The runner of an application (every runner of it shares one worker wake-up).
pub fn runner_of(engine: &Engine, backends: &Backends, services: &Services) -> Runner {
    Runner::new(
        Arc::new(engine.clone()),
        services.executions.clone(),
        services.audit.clone(),
        services.orgs.clone(),
        backends.queues.clone(),
    )
    .waking(services.enqueued.clone())
}

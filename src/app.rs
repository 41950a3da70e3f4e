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

use crate::backends::{Backends, OpenError};
use crate::executions::Executions;
use crate::host::invoke::Invocations;
use crate::http::health::{DependencyHealth, HealthReport, PythonHealth, WorkspaceHealth};
use crate::sdk_host::StorageHost;
use crate::server::{Frontend, serve};
use crate::settings::Settings;

/// What every handler may reach; built once in [`run`].
pub struct AppState {
    pub settings: Arc<Settings>,
    pub backends: Backends,
    pub engine: Engine,
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
        let engine = start_engine(&settings, &backends).await?;
        Ok(Self {
            settings,
            backends,
            engine,
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
) -> Result<Engine, StartupError> {
    if !settings.workspace.is_dir() {
        return Err(StartupError::MissingWorkspace {
            path: settings.workspace.clone(),
            setting: crate::settings::WORKSPACE,
        });
    }
    let executions = Executions::new(backends.tables.clone(), backends.blobs.clone());
    if let Err(e) = executions.ensure_storage().await {
        // Storage may come up after us (Functions start order); health reports it meanwhile.
        tracing::warn!(error = %e, "could not prepare execution storage yet");
    }
    if let Err(e) = crate::domain::ensure_tables(&backends.tables).await {
        tracing::warn!(error = %e, "could not prepare domain tables yet");
    }
    let host = StorageHost::new(
        backends.tables.clone(),
        backends.secrets.clone(),
        executions,
        settings.workspace.clone(),
        settings.data_dir.join("tmp"),
    );
    let audit = match AuditLog::open(backends.tables.clone()).await {
        Ok(log) => Some(Arc::new(log)),
        Err(e) => {
            tracing::error!(error = %e, "audit log unavailable at start-up: import-guard violations will only be logged");
            None
        }
    };
    let runtime = tokio::runtime::Handle::current();
    let on_violation = {
        let runtime = runtime.clone();
        move |violation: ImportViolation| {
            tracing::warn!(
                ?violation,
                "workspace code tried to import engine internals"
            );
            let Some(audit) = audit.clone() else { return };
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
        Invocations::default(),
        settings.max_body_bytes,
    ));
    serve(listener, frontend, shutdown_signal()).await;
    state.engine.stop();
    tracing::info!("stopped");
    Ok(())
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

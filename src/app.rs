//! Serving: binds the configured port, starts the in-process timers, queue worker and workspace
//! watchers, serves the route table and shuts down gracefully (the first SIGTERM/SIGINT drains
//! in-flight requests, a second one exits at once). The top of the dependency graph: it wires
//! the state ([`crate::state`]) to the entry points (`http`, `server`, `host`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use bifrost_engine::Engine;

use crate::audit::AuditLog;
use crate::executions::worker::{Worker, WorkerConfig};
use crate::host::invoke::Invocations;
use crate::jobs::timers::{Scheduler, TimerStore};
use crate::jobs::{Jobs, TimerJob};
use crate::schedules::Cron;
use crate::server::{Frontend, serve};
use crate::settings::Settings;
use crate::state::{AppState, StartupError};

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
        Some(Worker::start(state.runner.clone(), worker_config.clone()).await)
    };
    // Timer jobs: the host fires the timerTrigger functions; standalone, the in-process timer.
    let jobs = state.jobs();
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
        crate::http::routes(Arc::new(crate::http::ApiState::new(state.clone()))),
        invocations,
        settings.max_body_bytes,
        crate::server::ClientAddressing {
            trusted_proxies: settings.trusted_proxies.clone(),
            front_door_id: settings.front_door_id.clone(),
        },
    ));
    let watcher = tokio::spawn(watch_workspace(state.engine().clone()));
    let summaries = tokio::spawn(summarize_audit_floods(state.services.audit.clone()));
    let form_watcher = tokio::spawn(crate::forms::import::watch_workspace_forms(
        state.services.forms.clone(),
        state.settings.workspace.clone(),
    ));
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
    state.engine().stop();
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

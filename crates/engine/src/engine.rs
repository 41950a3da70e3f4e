//! The engine handle: interpreter start-up, the Python thread pool, dispatch, timeouts and the registry cache.
//!
//! Must not depend on HTTP or storage. Invariants:
//! - tokio tasks never take the GIL: `execute` only pushes to a loop inbox and
//!   awaits a oneshot; only start-up, scans (on a blocking thread) and the
//!   watchdog thread attach to Python.
//! - every submitted execution is tracked (by id and a unique token) until its
//!   outcome arrives; the watchdog only interrupts tracked executions whose
//!   token matches, so a stale deadline never hits a later run with the same id.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::error::EngineError;
use crate::host::{NoHost, SdkHost};
use crate::native::{
    self, Bridge, JobData, JobShared, LoopPort, LoopShared, Msg, REASON_CANCELLED, REASON_TIMEOUT,
    RawOutcome, RunCap, Services, ViolationSink,
};
use crate::types::{
    ExecutionError, ExecutionOutcome, ExecutionRequest, ExecutionStatus, ImportViolation, LogEntry,
    Registry, ReloadReport, ResultType,
};

const KIND_WORKFLOW: u8 = 0;
const KIND_DATA_PROVIDER: u8 = 1;
/// How often the watchdog re-interrupts an execution that ignored the previous interrupt.
const INTERRUPT_RETRY: Duration = Duration::from_secs(1);

const BOOT_PY: &str = include_str!("../python/boot.py");
const SDK_SOURCES: [(&str, &str); 7] = [
    ("__init__", include_str!("../python/bifrost/__init__.py")),
    ("errors", include_str!("../python/bifrost/errors.py")),
    ("models", include_str!("../python/bifrost/models.py")),
    ("context", include_str!("../python/bifrost/context.py")),
    (
        "decorators",
        include_str!("../python/bifrost/decorators.py"),
    ),
    ("_internal", include_str!("../python/bifrost/_internal.py")),
    ("_sdk", include_str!("../python/bifrost/_sdk.py")),
];

static STARTED: AtomicBool = AtomicBool::new(false);

/// Engine settings.
#[derive(Clone)]
pub struct EngineConfig {
    /// Workspace roots scanned for `*.py` (each is put on `sys.path`, plus its `.packages`).
    pub workspace_dirs: Vec<PathBuf>,
    /// Dedicated Python threads, each with its own asyncio loop (default 2).
    pub threads: usize,
    /// Worker threads per loop for plain `def` workflows (default 4).
    pub sync_workers_per_thread: usize,
    /// Timeout for data providers when the request has none (default 60 s).
    pub data_provider_timeout: Duration,
    /// Backs the SDK namespaces (default [`NoHost`]: every call raises `NotImplementedError`).
    pub host: Arc<dyn SdkHost>,
    /// Runtime for host calls; default: the runtime `Engine::start` is called from.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Called (on a Python thread; keep it quick) when workspace code tries to import engine internals.
    pub on_import_violation: Option<Arc<dyn Fn(ImportViolation) + Send + Sync>>,
    /// Environment variables workflow code must not see (`fnmatch` patterns, case-insensitive):
    /// removed from Python's `os.environ` before any workspace code runs.
    pub hidden_env: Vec<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workspace_dirs: Vec::new(),
            threads: 2,
            sync_workers_per_thread: 4,
            data_provider_timeout: Duration::from_secs(60),
            host: Arc::new(NoHost),
            runtime: None,
            on_import_violation: None,
            hidden_env: Vec::new(),
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("workspace_dirs", &self.workspace_dirs)
            .field("threads", &self.threads)
            .field("sync_workers_per_thread", &self.sync_workers_per_thread)
            .field("data_provider_timeout", &self.data_provider_timeout)
            .finish_non_exhaustive()
    }
}

/// The engine handle: cheap to clone, `Send + Sync`, usable from any tokio task.
#[derive(Clone)]
pub struct Engine {
    core: Arc<Core>,
}

struct Snapshot {
    registry: Arc<Registry>,
    workflow_timeouts: HashMap<String, u32>,
}

impl Snapshot {
    fn new(registry: Registry) -> Self {
        let workflow_timeouts = registry
            .workflows
            .iter()
            .map(|w| (w.name.clone(), w.timeout_seconds))
            .collect();
        Self {
            registry: Arc::new(registry),
            workflow_timeouts,
        }
    }
}

struct Tracked {
    token: u64,
    shared: Arc<JobShared>,
}

#[derive(Default)]
struct WatchdogState {
    /// (when, token) → execution id. Retry entries are removed lazily.
    deadlines: BTreeMap<(Instant, u64), String>,
    immediate: Vec<(u64, String)>,
    stop: bool,
}

struct PyRefs {
    internal: Py<PyAny>,
    interrupted: Py<PyAny>,
    current_task: Py<PyAny>,
}

struct Core {
    loops: Vec<Arc<LoopShared>>,
    tracker: Mutex<HashMap<String, Tracked>>,
    watchdog: Mutex<WatchdogState>,
    watchdog_cv: Condvar,
    py: PyRefs,
    snapshot: RwLock<Arc<Snapshot>>,
    scan_lock: Mutex<()>,
    next_token: AtomicU64,
    stopped: AtomicBool,
    python_version: String,
    data_provider_timeout: Duration,
    runtime: tokio::runtime::Handle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent across a panic (plain maps), so keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn py_err(e: PyErr) -> EngineError {
    EngineError::PythonInit(Python::attach(|py| {
        let tb = e
            .traceback(py)
            .and_then(|t| t.format().ok())
            .unwrap_or_default();
        format!("{tb}{e}")
    }))
}

impl Engine {
    /// Starts the interpreter (once per process), the Python threads and the watchdog, and scans the workspace.
    ///
    /// Blocking (interpreter start and the first scan); call it at start-up or from `spawn_blocking`.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        if config.threads == 0 {
            return Err(EngineError::InvalidConfig(
                "threads must be at least 1".into(),
            ));
        }
        if config.sync_workers_per_thread == 0 {
            return Err(EngineError::InvalidConfig(
                "sync_workers_per_thread must be at least 1".into(),
            ));
        }
        let mut roots = Vec::new();
        for dir in &config.workspace_dirs {
            if !dir.is_dir() {
                return Err(EngineError::MissingWorkspace(dir.clone()));
            }
            let real = dir
                .canonicalize()
                .map_err(|_| EngineError::MissingWorkspace(dir.clone()))?;
            roots.push(real.to_string_lossy().into_owned());
        }
        let runtime = match config.runtime.clone() {
            Some(h) => h,
            None => tokio::runtime::Handle::try_current().map_err(|_| {
                EngineError::InvalidConfig(
                    "no tokio runtime: call Engine::start inside one or set EngineConfig.runtime"
                        .into(),
                )
            })?,
        };
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(EngineError::AlreadyStarted);
        }
        native::initialize_interpreter().map_err(EngineError::PythonInit)?;
        let services = Arc::new(Services {
            host: Arc::clone(&config.host),
            runtime: runtime.clone(),
            on_violation: config
                .on_import_violation
                .clone()
                .map(|f| f as ViolationSink),
        });
        let (py_refs, version, snapshot_json) =
            Python::attach(|py| bootstrap(py, &services, &roots, &config.hidden_env))
                .map_err(py_err)?;
        let registry: Registry = serde_json::from_str(&snapshot_json)
            .map_err(|e| EngineError::Internal(format!("registry snapshot: {e}")))?;
        let mut loops = Vec::new();
        for i in 0..config.threads {
            loops.push(Arc::new(
                LoopShared::new(i, config.sync_workers_per_thread)
                    .map_err(|e| EngineError::Internal(format!("engine loop {i}: {e}")))?,
            ));
        }
        let core = Arc::new(Core {
            loops,
            tracker: Mutex::new(HashMap::new()),
            watchdog: Mutex::new(WatchdogState::default()),
            watchdog_cv: Condvar::new(),
            py: py_refs,
            snapshot: RwLock::new(Arc::new(Snapshot::new(registry))),
            scan_lock: Mutex::new(()),
            next_token: AtomicU64::new(1),
            stopped: AtomicBool::new(false),
            python_version: version,
            data_provider_timeout: config.data_provider_timeout,
            runtime,
        });
        for shared in &core.loops {
            start_loop_thread(&core, shared, &services)?;
        }
        let wd = Arc::clone(&core);
        std::thread::Builder::new()
            .name("bifrost-watchdog".into())
            .spawn(move || wd.watchdog_main())
            .map_err(|e| EngineError::Internal(format!("watchdog thread: {e}")))?;
        Ok(Engine { core })
    }

    /// The embedded interpreter's version, e.g. `3.11.7`.
    pub fn python_version(&self) -> &str {
        &self.core.python_version
    }

    /// The cached registry (workflows, data providers, per-file import errors) as of the last scan.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.core.snapshot().registry)
    }

    /// Re-imports new and changed files, drops removed ones. Cheap (one `stat` per file) when nothing changed.
    pub async fn rescan(&self) -> Result<ReloadReport, EngineError> {
        let core = Arc::clone(&self.core);
        tokio::task::spawn_blocking(move || core.scan(None))
            .await
            .map_err(|e| EngineError::Internal(format!("scan task: {e}")))?
    }

    /// Re-imports exactly these files (even if their mtime did not change, as long as content did).
    pub async fn reload(&self, paths: &[PathBuf]) -> Result<ReloadReport, EngineError> {
        let core = Arc::clone(&self.core);
        let paths = paths.to_vec();
        tokio::task::spawn_blocking(move || core.scan(Some(paths)))
            .await
            .map_err(|e| EngineError::Internal(format!("scan task: {e}")))?
    }

    /// Blocking variant of [`Engine::rescan`] for CLI use.
    pub fn rescan_blocking(&self) -> Result<ReloadReport, EngineError> {
        self.core.scan(None)
    }

    /// Runs a workflow and waits for its outcome. Workflow failures are `Ok` outcomes;
    /// `Err` means the request could not run (unknown name, duplicate id, stopped engine).
    ///
    /// Dropping the returned future cancels the execution.
    pub async fn execute(
        &self,
        request: ExecutionRequest,
    ) -> Result<ExecutionOutcome, EngineError> {
        self.submit(request, KIND_WORKFLOW).await
    }

    /// Runs a data provider; a successful result is a validated list of `{label, value, metadata?}`.
    pub async fn execute_data_provider(
        &self,
        request: ExecutionRequest,
    ) -> Result<ExecutionOutcome, EngineError> {
        self.submit(request, KIND_DATA_PROVIDER).await
    }

    /// Requests cancellation of a running execution; `false` if no such execution is running.
    /// The outcome becomes `Cancelled` (at the next `await`, or by interrupting Python code).
    pub fn cancel(&self, execution_id: &str) -> bool {
        let found = lock(&self.core.tracker)
            .get(execution_id)
            .map(|t| (t.token, Arc::clone(&t.shared)));
        match found {
            Some((token, shared)) => {
                let _ = shared.reason.compare_exchange(
                    0,
                    REASON_CANCELLED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                lock(&self.core.watchdog)
                    .immediate
                    .push((token, execution_id.to_owned()));
                self.core.watchdog_cv.notify_one();
                true
            }
            None => false,
        }
    }

    /// Number of executions currently submitted and not finished.
    pub fn running(&self) -> usize {
        lock(&self.core.tracker).len()
    }

    /// Stops accepting work and stops the loops and the watchdog. Pending executions fail with
    /// "engine stopped". The interpreter itself stays loaded until the process exits.
    pub fn stop(&self) {
        if self.core.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        for l in &self.core.loops {
            l.push(Msg::Stop);
        }
        lock(&self.core.watchdog).stop = true;
        self.core.watchdog_cv.notify_all();
    }

    async fn submit(
        &self,
        request: ExecutionRequest,
        kind: u8,
    ) -> Result<ExecutionOutcome, EngineError> {
        let core = &self.core;
        if core.stopped.load(Ordering::Acquire) {
            return Err(EngineError::Stopped);
        }
        let snapshot = core.snapshot();
        let default_timeout = if kind == KIND_WORKFLOW {
            let secs = snapshot
                .workflow_timeouts
                .get(&request.name)
                .ok_or_else(|| EngineError::WorkflowNotFound(request.name.clone()))?;
            Duration::from_secs(u64::from(*secs))
        } else {
            if snapshot.registry.data_provider(&request.name).is_none() {
                return Err(EngineError::DataProviderNotFound(request.name.clone()));
            }
            core.data_provider_timeout
        };
        let timeout = request.timeout.unwrap_or(default_timeout);
        if timeout.is_zero() {
            return Err(EngineError::InvalidRequest(
                "timeout must be greater than zero".into(),
            ));
        }
        let execution_id = if request.execution_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            request.execution_id.clone()
        };
        let input_json = serde_json::to_string(&request.input)
            .map_err(|e| EngineError::InvalidRequest(format!("input: {e}")))?;
        let config_json = if request.config.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&request.config)
                    .map_err(|e| EngineError::InvalidRequest(format!("config: {e}")))?,
            )
        };
        let loop_shared = core.pick_loop().ok_or(EngineError::Stopped)?;
        let token = core.next_token.fetch_add(1, Ordering::Relaxed);
        let ctx = &request.context;
        let org = ctx.organization.as_ref();
        let shared = Arc::new(JobShared {
            reason: AtomicU8::new(0),
            cap: RunCap::new(native::scope_of(
                &execution_id,
                &ctx.caller,
                org.map(|o| o.id.as_str()),
                ctx.is_platform_admin,
                ctx.is_function_key,
            )),
        });
        {
            let mut tracker = lock(&core.tracker);
            if tracker.contains_key(&execution_id) {
                return Err(EngineError::DuplicateExecution(execution_id));
            }
            tracker.insert(
                execution_id.clone(),
                Tracked {
                    token,
                    shared: Arc::clone(&shared),
                },
            );
        }
        let (tx, rx) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        let mut guard = Pending {
            core: Arc::clone(core),
            execution_id: execution_id.clone(),
            token,
            deadline,
            loop_shared: Arc::clone(&loop_shared),
            rx: Some(rx),
        };
        loop_shared.inflight.fetch_add(1, Ordering::Relaxed);
        core.arm(deadline, token, &execution_id);
        loop_shared.push(Msg::Job(Box::new(JobData {
            execution_id: execution_id.clone(),
            name: request.name.clone(),
            kind,
            input_json,
            config_json,
            timeout_seconds: timeout.as_secs_f64(),
            org_name: org.map(|o| o.name.clone()),
            org_active: org.is_none_or(|o| o.is_active),
            mask: request.mask.clone(),
            live: request.live_logs.clone(),
            shared,
            done: tx,
        })));
        let raw = match guard.rx.as_mut() {
            Some(rx) => rx.await.ok(),
            None => None,
        };
        guard.rx = None;
        drop(guard);
        Ok(convert(execution_id, raw))
    }
}

/// Cleans up a submitted execution; if the caller stopped waiting, cancels it first.
struct Pending {
    core: Arc<Core>,
    execution_id: String,
    token: u64,
    deadline: Instant,
    loop_shared: Arc<LoopShared>,
    rx: Option<oneshot::Receiver<RawOutcome>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        match self.rx.take() {
            None => self.core.finish(
                &self.execution_id,
                self.token,
                self.deadline,
                &self.loop_shared,
            ),
            Some(rx) => {
                // The caller's future was dropped: cancel, and clean up once Python reports back.
                if let Some(t) = lock(&self.core.tracker).get(&self.execution_id) {
                    let _ = t.shared.reason.compare_exchange(
                        0,
                        REASON_CANCELLED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
                lock(&self.core.watchdog)
                    .immediate
                    .push((self.token, self.execution_id.clone()));
                self.core.watchdog_cv.notify_one();
                let core = Arc::clone(&self.core);
                let id = std::mem::take(&mut self.execution_id);
                let (token, deadline, ls) =
                    (self.token, self.deadline, Arc::clone(&self.loop_shared));
                self.core.runtime.spawn(async move {
                    let _ = rx.await;
                    core.finish(&id, token, deadline, &ls);
                });
            }
        }
    }
}

fn bootstrap(
    py: Python<'_>,
    services: &Arc<Services>,
    roots: &[String],
    hidden_env: &[String],
) -> PyResult<(PyRefs, String, String)> {
    let version: String = py
        .import("platform")?
        .call_method0("python_version")?
        .extract()?;
    let code = CString::new(BOOT_PY)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let boot = PyModule::from_code(py, &code, c"<bifrost>/boot.py", c"_bifrost_boot")?;
    let sources = PyDict::new(py);
    for (name, src) in SDK_SOURCES {
        sources.set_item(name, src)?;
    }
    // Before any workspace code exists to replace what the rights checks rely on.
    native::install_hooks(py)?;
    let native_mod = py.import("_bifrost_native")?;
    let bridge = Bound::new(py, Bridge::new(Arc::clone(services)))?;
    let internal = boot.call_method1("install", (sources, native_mod, bridge))?;
    internal.call_method1("setup", (roots.to_vec(), hidden_env.to_vec()))?;
    let registry = internal.getattr("registry")?;
    registry.call_method1("rescan", (py.None(),))?;
    let snapshot: String = registry.call_method0("snapshot")?.extract()?;
    let refs = PyRefs {
        interrupted: internal.getattr("ExecutionInterrupted")?.unbind(),
        current_task: py.import("asyncio")?.getattr("current_task")?.unbind(),
        internal: internal.unbind(),
    };
    Ok((refs, version, snapshot))
}

fn start_loop_thread(
    core: &Arc<Core>,
    shared: &Arc<LoopShared>,
    services: &Arc<Services>,
) -> Result<(), EngineError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let internal = Python::attach(|py| core.py.internal.clone_ref(py));
    let port = LoopPort::new(
        Arc::clone(shared),
        Arc::clone(services),
        ready_tx,
        Python::attach(|py| internal.clone_ref(py)),
    );
    let thread_shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name(format!("bifrost-py-{}", shared.index))
        .spawn(move || {
            native::enter_loop_thread(Arc::clone(&thread_shared));
            let result = Python::attach(|py| -> PyResult<()> {
                let port = Bound::new(py, port)?;
                internal.bind(py).call_method1("loop_main", (port,))?;
                Ok(())
            });
            thread_shared.shut();
            if let Err(e) = result {
                tracing::error!(thread = thread_shared.index, error = %e, "engine thread stopped with an error");
            }
        })
        .map_err(|e| EngineError::Internal(format!("engine thread: {e}")))?;
    ready_rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
        EngineError::PythonInit(format!("engine thread {} did not start", shared.index))
    })
}

impl Core {
    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The live loop with the fewest executions in flight.
    fn pick_loop(&self) -> Option<Arc<LoopShared>> {
        let mut best: Option<&Arc<LoopShared>> = None;
        for l in self
            .loops
            .iter()
            .filter(|l| l.alive.load(Ordering::Acquire))
        {
            if best.is_none_or(|b| {
                l.inflight.load(Ordering::Relaxed) < b.inflight.load(Ordering::Relaxed)
            }) {
                best = Some(l);
            }
        }
        best.map(Arc::clone)
    }

    fn arm(&self, when: Instant, token: u64, execution_id: &str) {
        let mut wd = lock(&self.watchdog);
        let earliest = wd.deadlines.keys().next().map(|(t, _)| *t);
        wd.deadlines.insert((when, token), execution_id.to_owned());
        if earliest.is_none_or(|e| when < e) {
            self.watchdog_cv.notify_one();
        }
    }

    fn finish(&self, execution_id: &str, token: u64, deadline: Instant, loop_shared: &LoopShared) {
        let finished = {
            let mut tracker = lock(&self.tracker);
            if tracker.get(execution_id).is_some_and(|t| t.token == token) {
                tracker.remove(execution_id)
            } else {
                None
            }
        };
        // The run is over: whatever of it is left (tasks it started, objects workflow code
        // kept) holds no rights any more.
        if let Some(tracked) = finished {
            tracked.shared.cap.revoke(&self.loops);
        }
        lock(&self.watchdog).deadlines.remove(&(deadline, token));
        loop_shared.inflight.fetch_sub(1, Ordering::Relaxed);
    }

    fn scan(&self, only: Option<Vec<PathBuf>>) -> Result<ReloadReport, EngineError> {
        let _serial = lock(&self.scan_lock);
        let only: Option<Vec<String>> =
            only.map(|v| v.iter().map(|p| p.to_string_lossy().into_owned()).collect());
        let (imported, removed, json) =
            Python::attach(|py| -> PyResult<(Vec<String>, Vec<String>, String)> {
                let registry = self.py.internal.bind(py).getattr("registry")?;
                let (imported, removed): (Vec<String>, Vec<String>) =
                    registry.call_method1("rescan", (only,))?.extract()?;
                let json: String = registry.call_method0("snapshot")?.extract()?;
                Ok((imported, removed, json))
            })
            .map_err(|e| EngineError::Internal(format!("workspace scan failed: {e}")))?;
        let registry: Registry = serde_json::from_str(&json)
            .map_err(|e| EngineError::Internal(format!("registry snapshot: {e}")))?;
        let snapshot = Arc::new(Snapshot::new(registry));
        let registry = Arc::clone(&snapshot.registry);
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = snapshot;
        Ok(ReloadReport {
            imported: imported.into_iter().map(PathBuf::from).collect(),
            removed: removed.into_iter().map(PathBuf::from).collect(),
            registry,
        })
    }

    fn watchdog_main(self: Arc<Self>) {
        let mut st = lock(&self.watchdog);
        loop {
            if st.stop {
                return;
            }
            let now = Instant::now();
            let mut due: Vec<(u64, String)> = std::mem::take(&mut st.immediate);
            while let Some(entry) = st.deadlines.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let ((_, token), id) = entry.remove_entry();
                due.push((token, id));
            }
            if due.is_empty() {
                let wait = st
                    .deadlines
                    .keys()
                    .next()
                    .map_or(Duration::from_secs(3600), |(t, _)| {
                        t.saturating_duration_since(now)
                    });
                st = self
                    .watchdog_cv
                    .wait_timeout(st, wait)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
                continue;
            }
            drop(st);
            for (token, id) in due {
                self.fire(token, &id);
            }
            st = lock(&self.watchdog);
        }
    }

    /// Timeout or cancel one execution: cooperative cancel plus, for code hogging a thread, an async exception.
    fn fire(&self, token: u64, execution_id: &str) {
        let shared = lock(&self.tracker)
            .get(execution_id)
            .filter(|t| t.token == token)
            .map(|t| Arc::clone(&t.shared));
        let Some(shared) = shared else { return };
        let _ =
            shared
                .reason
                .compare_exchange(0, REASON_TIMEOUT, Ordering::AcqRel, Ordering::Acquire);
        let result = Python::attach(|py| self.interrupt(py, execution_id));
        if let Err(e) = result {
            tracing::error!(execution_id, error = %e, "failed to interrupt an execution");
        }
        self.arm(Instant::now() + INTERRUPT_RETRY, token, execution_id);
    }

    fn interrupt(&self, py: Python<'_>, execution_id: &str) -> PyResult<()> {
        let target = self
            .py
            .internal
            .bind(py)
            .call_method1("interrupt_target", (execution_id,))?;
        if target.is_none() {
            return Ok(());
        }
        let (run, event_loop, task, loop_ident): (
            Bound<'_, PyAny>,
            Bound<'_, PyAny>,
            Bound<'_, PyAny>,
            u64,
        ) = target.extract()?;
        // From here on only C-level calls run, so this thread keeps the GIL and the
        // target thread cannot move on between the check and the interrupt.
        let sync_ident = run.getattr("sync_ident")?;
        let ident = if !sync_ident.is_none() {
            Some(sync_ident.extract::<u64>()?)
        } else if self
            .py
            .current_task
            .bind(py)
            .call1((&event_loop,))?
            .is(&task)
        {
            Some(loop_ident)
        } else {
            None
        };
        if let Some(ident) = ident {
            native::set_async_exc(py, ident, self.py.interrupted.bind(py));
        }
        Ok(())
    }
}

fn timestamp(secs: f64) -> OffsetDateTime {
    let nanos = (secs * 1e9) as i128;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn failed(execution_id: String, error_type: &str, message: String) -> ExecutionOutcome {
    ExecutionOutcome {
        execution_id,
        status: ExecutionStatus::Failed,
        result: None,
        result_type: None,
        error: Some(ExecutionError {
            error_type: error_type.to_owned(),
            message,
            traceback: String::new(),
            is_user_error: false,
        }),
        logs: Vec::new(),
        duration: Duration::ZERO,
    }
}

pub(crate) fn log_entry(
    (sequence, ts, level, message, source, data): crate::native::RawLog,
) -> LogEntry {
    LogEntry {
        sequence,
        timestamp: timestamp(ts),
        level,
        message,
        source,
        data: data.and_then(|d| serde_json::from_str(&d).ok()),
    }
}

fn convert(execution_id: String, raw: Option<RawOutcome>) -> ExecutionOutcome {
    let Some(raw) = raw else {
        return failed(
            execution_id,
            "EngineError",
            "the engine stopped before the execution finished".into(),
        );
    };
    let logs = raw.logs.into_iter().map(log_entry).collect();
    let duration = Duration::from_secs_f64((raw.duration_ms / 1000.0).max(0.0));
    let mut status = ExecutionStatus::parse(&raw.status).unwrap_or(ExecutionStatus::Failed);
    let mut error =
        raw.error.map(
            |(error_type, message, traceback, is_user_error)| ExecutionError {
                error_type,
                message,
                traceback,
                is_user_error,
            },
        );
    let result = match raw.result.as_deref().map(serde_json::from_str::<Value>) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            status = ExecutionStatus::Failed;
            error = Some(ExecutionError {
                error_type: "ResultSerializationError".into(),
                message: format!("the result is not valid JSON: {e}"),
                traceback: String::new(),
                is_user_error: false,
            });
            None
        }
    };
    let result_type = match raw.result_type.as_deref() {
        Some("html") => Some(ResultType::Html),
        Some("text") => Some(ResultType::Text),
        Some("json") => Some(ResultType::Json),
        _ => None,
    };
    ExecutionOutcome {
        execution_id,
        status,
        result_type: if result.is_some() { result_type } else { None },
        result,
        error,
        logs,
        duration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_execution_is_a_failure_naming_the_cause() {
        let o = convert("x".into(), None);
        assert_eq!(o.status, ExecutionStatus::Failed);
        assert!(o.error.unwrap().message.contains("engine stopped"));
    }

    #[test]
    fn invalid_result_json_fails() {
        let raw = RawOutcome {
            status: "Success".into(),
            result: Some("{nope".into()),
            result_type: Some("json".into()),
            error: None,
            logs: vec![(
                1,
                1.5,
                "INFO".into(),
                "m".into(),
                "stdout".into(),
                Some("{\"a\":1}".into()),
            )],
            duration_ms: 2.0,
        };
        let o = convert("x".into(), Some(raw));
        assert_eq!(o.status, ExecutionStatus::Failed);
        assert_eq!(o.logs[0].data, Some(serde_json::json!({"a": 1})));
        assert_eq!(o.logs[0].timestamp.unix_timestamp(), 1);
    }
}

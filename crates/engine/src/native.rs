//! The Rust side of the Python boundary: the `_bifrost_native` module, job hand-over and interrupts.
//!
//! Only this module uses `unsafe` (pyo3's `append_to_inittab!` and
//! `PyThreadState_SetAsyncExc` are FFI). It depends on pyo3 and the host trait,
//! never on HTTP or storage.
//!
//! Hand-over design: tokio tasks never take the GIL. A job or a host reply is
//! pushed into a per-loop queue and, if the loop is not already signalled, one
//! byte is written to a socket pair whose other end the loop watches with
//! `loop.add_reader`; the loop drains the queue in one GIL-holding callback.
//! Results come back through a oneshot channel as plain Rust data.
//!
//! Rights (the capability of a run): a host call does not say whose rights it uses; Rust
//! finds them from *where the call comes from*, and Python never holds them. Each run's
//! [`RunCap`] is bound to the asyncio tasks Rust created for it (its root task, and the tasks
//! created while one of its tasks was running, through the loop's task factory) and to the
//! sync worker thread running one of its blocking calls (a Rust-owned thread, see
//! [`SyncPool`]). A call is granted a run's rights only if it runs on that run's sync thread,
//! or on the loop thread inside a task registered for the run whose coroutine is executing
//! at that moment (so naming another task as "current" through asyncio's private tables
//! does not pass). A run's rights are revoked when it completes. Workflow code that walks
//! `gc`, `sys.modules` or the SDK's private names finds Python objects (other runs' `Job`s,
//! contexts, tasks) but no way to make the host act with their rights.
#![allow(unsafe_code)] // FFI: interpreter registration and asynchronous exceptions.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use tokio::sync::oneshot;

use crate::host::{HostError, HostOp, HostScope, SdkHost};
use crate::types::{Caller, ImportViolation};

/// `job.reason()` values, shared with `_internal.py` (`_REASONS`).
pub(crate) const REASON_TIMEOUT: u8 = 1;
pub(crate) const REASON_CANCELLED: u8 = 2;

pub(crate) type ViolationSink = Arc<dyn Fn(ImportViolation) + Send + Sync>;

/// Process-wide services the Python side reaches.
pub(crate) struct Services {
    pub host: Arc<dyn SdkHost>,
    pub runtime: tokio::runtime::Handle,
    pub on_violation: Option<ViolationSink>,
}

/// State shared by Rust and Python for one running execution.
pub(crate) struct JobShared {
    pub reason: AtomicU8,
    /// The run's rights; revoked when it ends.
    pub cap: Arc<RunCap>,
}

/// The rights of one run: what its host calls may do. Held in Rust only (see the module docs).
pub(crate) struct RunCap {
    scope: HostScope,
    alive: AtomicBool,
    /// Tasks registered for this run, as (loop index, task key), to forget them when it ends.
    tasks: Mutex<Vec<(usize, usize)>>,
}

impl RunCap {
    pub(crate) fn new(scope: HostScope) -> Arc<Self> {
        Arc::new(Self {
            scope,
            alive: AtomicBool::new(true),
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Ends the run's rights: no later call is granted them, whatever still refers to the run.
    pub(crate) fn revoke(&self, loops: &[Arc<LoopShared>]) {
        self.alive.store(false, Ordering::Release);
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (index, key) in tasks {
            if let Some(shared) = loops.get(index) {
                shared.forget_task(key, self);
            }
        }
    }

    /// The scope a host call runs in. Only platform admins may act on another organization
    /// than the execution's own.
    fn scope_for(&self, org: Option<String>) -> Result<HostScope, HostError> {
        if org != self.scope.org_id && !self.scope.is_platform_admin {
            return Err(HostError::PermissionDenied(
                "only platform administrators may access another organization".into(),
            ));
        }
        Ok(HostScope {
            org_id: org,
            ..self.scope.clone()
        })
    }
}

/// A task registered for a run.
struct TaskEntry {
    task: Py<PyAny>,
    coro: Py<PyAny>,
    cap: Arc<RunCap>,
}

/// Python objects captured before any workspace code ran, so workspace code cannot swap them.
struct Hooks {
    /// `_asyncio.current_task` (3.12+), or `_asyncio._current_tasks`, the loop → task dict
    /// behind 3.11's `asyncio.current_task`.
    current_task: CurrentTask,
    task_class: Py<PyAny>,
    coroutine_type: Py<PyAny>,
    generator_type: Py<PyAny>,
    future_class: Py<PyAny>,
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// How the task asyncio considers current is found (it differs between Python versions).
enum CurrentTask {
    Function(Py<PyAny>),
    Table(Py<PyAny>),
}

impl CurrentTask {
    fn of<'py>(
        &self,
        py: Python<'py>,
        event_loop: &Bound<'py, PyAny>,
    ) -> Option<Bound<'py, PyAny>> {
        let task = match self {
            CurrentTask::Function(f) => f.bind(py).call1((event_loop,)).ok()?,
            CurrentTask::Table(t) => t.bind(py).call_method1("get", (event_loop,)).ok()?,
        };
        (!task.is_none()).then_some(task)
    }
}

/// Captures [`Hooks`]; call at bootstrap, before the workspace is imported.
pub(crate) fn install_hooks(py: Python<'_>) -> PyResult<()> {
    // `asyncio` first: importing the C accelerator `_asyncio` on its own initializes it
    // half-way through `asyncio.tasks`, which then keeps its pure-Python task table apart from
    // the one C tasks use.
    py.import("asyncio")?;
    let asyncio = py.import("_asyncio")?;
    let types = py.import("types")?;
    let current_task = match asyncio.getattr("current_task") {
        Ok(function) => CurrentTask::Function(function.unbind()),
        Err(_) => CurrentTask::Table(asyncio.getattr("_current_tasks")?.unbind()),
    };
    let hooks = Hooks {
        current_task,
        task_class: asyncio.getattr("Task")?.unbind(),
        coroutine_type: types.getattr("CoroutineType")?.unbind(),
        generator_type: types.getattr("GeneratorType")?.unbind(),
        future_class: py.import("concurrent.futures")?.getattr("Future")?.unbind(),
    };
    let _ = HOOKS.set(hooks);
    Ok(())
}

thread_local! {
    /// On an engine loop thread: its loop.
    static LOOP: RefCell<Option<Arc<LoopShared>>> = const { RefCell::new(None) };
    /// On a sync worker thread, while it runs a run's blocking call: that run.
    static BOUND: RefCell<Option<Arc<RunCap>>> = const { RefCell::new(None) };
}

/// Marks the calling thread as `shared`'s loop thread (before its loop starts).
pub(crate) fn enter_loop_thread(shared: Arc<LoopShared>) {
    LOOP.with(|l| *l.borrow_mut() = Some(shared));
}

/// The run whose rights the code calling right now has (see the module docs).
fn calling_run(py: Python<'_>) -> Option<Arc<RunCap>> {
    if let Some(cap) = BOUND.with(|b| b.borrow().clone()) {
        return cap.alive().then_some(cap);
    }
    let shared = LOOP.with(|l| l.borrow().clone())?;
    let hooks = HOOKS.get()?;
    let event_loop = shared.event_loop.get()?;
    let task = hooks.current_task.of(py, event_loop.bind(py))?;
    let (registered, coro, cap) = {
        let tasks = shared
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = tasks.get(&(task.as_ptr() as usize))?;
        (
            entry.task.clone_ref(py),
            entry.coro.clone_ref(py),
            entry.cap.clone(),
        )
    };
    if !registered.bind(py).is(&task) || !is_executing(py, hooks, coro.bind(py)) {
        return None;
    }
    cap.alive().then_some(cap)
}

/// Whether `coro` (a native coroutine or generator) is executing right now: only then is its
/// task really the one calling, whatever asyncio's tables say.
fn is_executing(py: Python<'_>, hooks: &Hooks, coro: &Bound<'_, PyAny>) -> bool {
    let kind = coro.get_type();
    let attr = if kind.is(hooks.coroutine_type.bind(py)) {
        "cr_running"
    } else if kind.is(hooks.generator_type.bind(py)) {
        "gi_running"
    } else {
        return false;
    };
    coro.getattr(attr)
        .and_then(|v| v.is_truthy())
        .unwrap_or(false)
}

/// Creates a task on `shared`'s loop and registers it for `cap`.
fn spawn_task<'py>(
    py: Python<'py>,
    shared: &Arc<LoopShared>,
    coro: &Bound<'py, PyAny>,
    context: Option<&Bound<'py, PyAny>>,
    cap: Option<Arc<RunCap>>,
) -> PyResult<Bound<'py, PyAny>> {
    let hooks = HOOKS
        .get()
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("engine hooks missing"))?;
    let event_loop = shared
        .event_loop
        .get()
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("engine loop not ready"))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("loop", event_loop.bind(py))?;
    if let Some(context) = context
        && !context.is_none()
    {
        kwargs.set_item("context", context)?;
    }
    let task = hooks.task_class.bind(py).call((coro,), Some(&kwargs))?;
    if let Some(cap) = cap {
        let key = task.as_ptr() as usize;
        shared
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                key,
                TaskEntry {
                    task: task.clone().unbind(),
                    coro: coro.clone().unbind(),
                    cap: cap.clone(),
                },
            );
        cap.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((shared.index, key));
        let cap = Arc::clone(&cap);
        let forget = Bound::new(
            py,
            ForgetTask {
                shared: Arc::clone(shared),
                key,
                cap,
            },
        )?;
        task.call_method1("add_done_callback", (forget,))?;
    }
    Ok(task)
}

/// Done callback of a registered task: it no longer runs, so it no longer holds rights.
#[pyclass(frozen, module = "_bifrost_native")]
struct ForgetTask {
    shared: Arc<LoopShared>,
    key: usize,
    cap: Arc<RunCap>,
}

#[pymethods]
impl ForgetTask {
    fn __call__(&self, _task: &Bound<'_, PyAny>) {
        self.shared.forget_task(self.key, &self.cap);
    }
}

/// The loop's task factory: a task created while one of a run's tasks runs belongs to that run
/// (so `asyncio.gather` and `create_task` keep their creator's rights, and only those).
#[pyclass(frozen, module = "_bifrost_native")]
pub(crate) struct TaskFactory {
    shared: Arc<LoopShared>,
}

#[pymethods]
impl TaskFactory {
    #[pyo3(signature = (_loop, coro, context=None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        _loop: &Bound<'py, PyAny>,
        coro: &Bound<'py, PyAny>,
        context: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        spawn_task(py, &self.shared, coro, context, calling_run(py))
    }
}

/// A blocking call handed to a [`SyncPool`] thread.
struct SyncJob {
    call: Py<PyAny>,
    args: Py<PyAny>,
    kwargs: Option<Py<PyAny>>,
    future: Py<PyAny>,
    cap: Option<Arc<RunCap>>,
}

/// Rust-owned threads that run one loop's blocking calls (its default executor): a thread
/// carries the rights of the run whose call it is running, and of no other.
pub(crate) struct SyncPool {
    sender: Mutex<Option<std::sync::mpsc::Sender<SyncJob>>>,
}

impl SyncPool {
    /// Starts `threads` worker threads for loop `index`.
    pub(crate) fn start(index: usize, threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<SyncJob>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("bifrost-sync-{index}-{n}"))
                .spawn(move || sync_worker(&rx))?;
        }
        Ok(Self {
            sender: Mutex::new(Some(tx)),
        })
    }

    fn submit(&self, job: SyncJob) -> bool {
        match &*self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        }
    }

    /// Lets the worker threads end once the queued calls are done.
    pub(crate) fn stop(&self) {
        self.sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

fn sync_worker(rx: &Mutex<std::sync::mpsc::Receiver<SyncJob>>) {
    Python::attach(|py| {
        loop {
            let next = py.detach(|| {
                rx.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .recv()
            });
            let Ok(job) = next else { return };
            run_sync_job(py, job);
        }
    });
}

fn run_sync_job(py: Python<'_>, job: SyncJob) {
    let future = job.future.bind(py);
    // A cancelled future's call is not run (concurrent.futures' contract).
    if !future
        .call_method0("set_running_or_notify_cancel")
        .and_then(|v| v.is_truthy())
        .unwrap_or(false)
    {
        return;
    }
    BOUND.with(|b| *b.borrow_mut() = job.cap.clone());
    let kwargs = job.kwargs.as_ref().map(|k| k.bind(py).clone());
    let outcome = job
        .args
        .bind(py)
        .cast::<PyTuple>()
        .map_err(PyErr::from)
        .and_then(|args| match &kwargs {
            Some(k) => job.call.bind(py).call(args, Some(k.cast::<PyDict>()?)),
            None => job.call.bind(py).call1(args),
        });
    BOUND.with(|b| *b.borrow_mut() = None);
    // A timeout's interrupt may still be pending for this thread: it must not hit the next call.
    // SAFETY: the GIL is held (`py`); a NULL exception clears any pending async exception of
    // this thread.
    unsafe {
        pyo3::ffi::PyThreadState_SetAsyncExc(
            pyo3::ffi::PyThread_get_thread_ident() as _,
            std::ptr::null_mut(),
        );
    }
    let settled = match outcome {
        Ok(value) => future.call_method1("set_result", (value,)),
        Err(err) => future.call_method1("set_exception", (err.value(py),)),
    };
    if let Err(e) = settled {
        tracing::error!(error = %e, "could not settle a blocking call's future");
    }
}

/// A raw outcome as produced by Python; parsed off the GIL by the caller.
pub(crate) struct RawOutcome {
    pub status: String,
    pub result: Option<String>,
    pub result_type: Option<String>,
    pub error: Option<(String, String, String, bool)>,
    pub logs: Vec<RawLog>,
    pub duration_ms: f64,
}

pub(crate) type RawLog = (u64, f64, String, String, String, Option<String>);

pub(crate) struct JobData {
    pub execution_id: String,
    pub name: String,
    pub kind: u8,
    pub input_json: String,
    pub config_json: Option<String>,
    pub timeout_seconds: f64,
    pub org_name: Option<String>,
    pub org_active: bool,
    pub mask: Vec<String>,
    pub live: Option<crate::types::LiveLogs>,
    pub shared: Arc<JobShared>,
    pub done: oneshot::Sender<RawOutcome>,
}

type HostReply = Result<Option<String>, HostError>;

pub(crate) enum Msg {
    Job(Box<JobData>),
    Reply { id: u64, reply: HostReply },
    Stop,
}

/// One engine thread's inbox.
pub(crate) struct LoopShared {
    pub index: usize,
    queue: Mutex<VecDeque<Msg>>,
    signaled: AtomicBool,
    reader: UnixStream,
    writer: UnixStream,
    /// Python thread ident of the loop thread (for `PyThreadState_SetAsyncExc`).
    pub ident: AtomicU64,
    pub inflight: AtomicUsize,
    pub alive: AtomicBool,
    /// The loop's asyncio event loop, set when it is ready.
    event_loop: OnceLock<Py<PyAny>>,
    /// Tasks registered for runs, by task object address (see the module docs).
    tasks: Mutex<HashMap<usize, TaskEntry>>,
    /// The loop's blocking calls.
    pub sync: SyncPool,
}

impl LoopShared {
    pub(crate) fn new(index: usize, sync_threads: usize) -> std::io::Result<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Self {
            index,
            queue: Mutex::new(VecDeque::new()),
            signaled: AtomicBool::new(false),
            reader,
            writer,
            ident: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            alive: AtomicBool::new(true),
            event_loop: OnceLock::new(),
            tasks: Mutex::new(HashMap::new()),
            sync: SyncPool::start(index, sync_threads)?,
        })
    }

    /// Forgets the task registered at `key` for `owner`. A key is a task's address, which
    /// Python reuses once the task is freed: a run ending late (its rights are revoked from a
    /// tokio thread after its outcome was sent) must not forget the next run's task that now
    /// lives at the same address.
    fn forget_task(&self, key: usize, owner: &RunCap) {
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let removed = match tasks.get(&key) {
            Some(entry) if std::ptr::eq(Arc::as_ptr(&entry.cap), owner) => tasks.remove(&key),
            _ => None,
        };
        drop(tasks);
        // Dropping Python references needs the GIL; pyo3 defers it safely when absent.
        drop(removed);
    }

    pub(crate) fn push(&self, msg: Msg) {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(msg);
        if !self.signaled.swap(true, Ordering::AcqRel) {
            // WouldBlock means wake-up bytes are already pending, which is enough.
            let _ = (&self.writer).write(&[1u8]);
        }
        if !self.alive.load(Ordering::SeqCst) {
            // The loop is gone (or going): drop what it will never drain, which
            // drops the result senders so waiting callers see "engine stopped".
            self.discard();
        }
    }

    /// Marks the loop dead and drops everything queued for it.
    pub(crate) fn shut(&self) {
        self.alive.store(false, Ordering::SeqCst);
        self.discard();
    }

    fn discard(&self) {
        drop(std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ));
    }

    fn take(&self) -> VecDeque<Msg> {
        // Order matters: consume the wake-up bytes, then clear the flag, then
        // take the queue, so a push racing with us either lands in this batch
        // or writes a fresh byte (see the module docs).
        let mut buf = [0u8; 256];
        while let Ok(n) = (&self.reader).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        self.signaled.store(false, Ordering::Release);
        std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// A job as seen from Python.
#[pyclass(frozen, module = "_bifrost_native")]
pub(crate) struct Job {
    #[pyo3(get)]
    execution_id: String,
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    kind: u8,
    #[pyo3(get)]
    input_json: String,
    #[pyo3(get)]
    config_json: Option<String>,
    #[pyo3(get)]
    timeout_seconds: f64,
    org_name: Option<String>,
    org_active: bool,
    #[pyo3(get)]
    has_mask: bool,
    mask: Vec<String>,
    #[pyo3(get)]
    has_live: bool,
    live: Option<crate::types::LiveLogs>,
    shared: Arc<JobShared>,
    done: Mutex<Option<oneshot::Sender<RawOutcome>>>,
}

type ContextFields<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    bool,
    bool,
    bool,
);

#[pymethods]
impl Job {
    fn context_fields(&self) -> ContextFields<'_> {
        let s = &self.shared.cap.scope;
        (
            &s.caller.user_id,
            &s.caller.email,
            &s.caller.name,
            s.org_id.as_deref(),
            self.org_name.as_deref(),
            self.org_active,
            s.is_platform_admin,
            s.is_function_key,
        )
    }

    /// Values to mask from the start (e.g. secrets resolved into the legacy config).
    fn mask(&self) -> Vec<String> {
        self.mask.clone()
    }

    /// One log line as it is written (masked by the caller); dropped if nobody listens, and
    /// ignored unless it comes from this run itself.
    #[allow(clippy::too_many_arguments)]
    fn emit_log(
        &self,
        py: Python<'_>,
        sequence: u64,
        ts: f64,
        level: String,
        message: String,
        source: String,
        data: Option<String>,
    ) {
        if !self.is_calling(py) {
            return;
        }
        if let Some(live) = &self.live {
            let _ = live.send(crate::engine::log_entry((
                sequence, ts, level, message, source, data,
            )));
        }
    }

    /// 0 = none, 1 = timeout, 2 = cancelled.
    fn reason(&self) -> u8 {
        self.shared.reason.load(Ordering::Acquire)
    }

    /// The run's outcome; accepted once, and only from the run itself.
    #[allow(clippy::too_many_arguments)]
    fn complete(
        &self,
        py: Python<'_>,
        status: String,
        result: Option<String>,
        result_type: Option<String>,
        error: Option<(String, String, String, bool)>,
        logs: Vec<RawLog>,
        duration_ms: f64,
    ) -> PyResult<()> {
        if !self.is_calling(py) {
            return Err(pyo3::exceptions::PyPermissionError::new_err(
                "only the run itself can complete it",
            ));
        }
        self.finish(status, result, result_type, error, logs, duration_ms);
        Ok(())
    }
}

impl Job {
    /// Whether the code calling now runs with this job's rights.
    fn is_calling(&self, py: Python<'_>) -> bool {
        calling_run(py).is_some_and(|cap| Arc::ptr_eq(&cap, &self.shared.cap))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        status: String,
        result: Option<String>,
        result_type: Option<String>,
        error: Option<(String, String, String, bool)>,
        logs: Vec<RawLog>,
        duration_ms: f64,
    ) {
        let sender = self
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(tx) = sender {
            let _ = tx.send(RawOutcome {
                status,
                result,
                result_type,
                error,
                logs,
                duration_ms,
            });
        }
    }

    fn from_data(d: JobData) -> Self {
        Self {
            execution_id: d.execution_id,
            name: d.name,
            kind: d.kind,
            input_json: d.input_json,
            config_json: d.config_json,
            timeout_seconds: d.timeout_seconds,
            org_name: d.org_name,
            org_active: d.org_active,
            has_mask: !d.mask.is_empty(),
            mask: d.mask,
            has_live: d.live.is_some(),
            live: d.live,
            shared: d.shared,
            done: Mutex::new(Some(d.done)),
        }
    }
}

fn reply_to_py<'py>(py: Python<'py>, reply: HostReply) -> PyResult<Bound<'py, PyTuple>> {
    match reply {
        Ok(payload) => (true, payload).into_pyobject(py),
        Err(e) => (false, (e.kind(), e.to_string())).into_pyobject(py),
    }
}

async fn run_host(services: &Services, scope: HostScope, op: &str, args: &str) -> HostReply {
    let value = HostOp::parse(op, args)?
        .run(&*services.host, &scope)
        .await?;
    if value.is_null() {
        return Ok(None);
    }
    serde_json::to_string(&value)
        .map(Some)
        .map_err(|e| HostError::Backend(format!("host result: {e}")))
}

/// The per-thread port handed to `loop_main`.
#[pyclass(frozen, module = "_bifrost_native")]
pub(crate) struct LoopPort {
    shared: Arc<LoopShared>,
    services: Arc<Services>,
    ready: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    /// `bifrost._internal`, whose `_prepare` turns a job into the coroutine of its run.
    internal: Py<PyAny>,
}

impl LoopPort {
    pub(crate) fn new(
        shared: Arc<LoopShared>,
        services: Arc<Services>,
        ready: std::sync::mpsc::Sender<()>,
        internal: Py<PyAny>,
    ) -> Self {
        Self {
            shared,
            services,
            ready: Mutex::new(Some(ready)),
            internal,
        }
    }

    /// Starts a job: Python prepares its run and coroutine, Rust creates the run's root task
    /// and binds the run's rights to it (so no Python object ever carries them).
    fn start_job(&self, py: Python<'_>, data: JobData) -> PyResult<()> {
        let cap = Arc::clone(&data.shared.cap);
        let job = Bound::new(py, Job::from_data(data))?;
        let prepared = self
            .internal
            .bind(py)
            .call_method1("_prepare", (job.clone(),))?;
        let (kind, first, second): (String, Bound<'_, PyAny>, Bound<'_, PyAny>) =
            prepared.extract()?;
        if kind != "run" {
            // Nothing to run (an unknown name): the failure is the outcome.
            let (error_type, message): (String, String) = (first.extract()?, second.extract()?);
            job.get().finish(
                "Failed".into(),
                None,
                None,
                Some((error_type, message, String::new(), false)),
                Vec::new(),
                0.0,
            );
            cap.revoke(&[]);
            return Ok(());
        }
        let (run, coro, context) = (first, second.get_item(0)?, second.get_item(1)?);
        let task = spawn_task(py, &self.shared, &coro, Some(&context), Some(cap))?;
        run.setattr("task", task)?;
        Ok(())
    }
}

#[pymethods]
impl LoopPort {
    #[getter]
    fn index(&self) -> usize {
        self.shared.index
    }

    fn wake_fd(&self) -> i32 {
        self.shared.reader.as_raw_fd()
    }

    fn ready(&self, ident: u64, event_loop: Bound<'_, PyAny>) {
        let _ = self.shared.event_loop.set(event_loop.unbind());
        self.shared.ident.store(ident, Ordering::Release);
        if let Some(tx) = self
            .ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = tx.send(());
        }
    }

    /// Everything queued for this loop, jobs already started: `(1, request id, reply)`,
    /// `(2,)` = stop.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for msg in self.shared.take() {
            match msg {
                Msg::Job(data) => {
                    if let Err(e) = self.start_job(py, *data) {
                        tracing::error!(error = %e, "could not start a job");
                    }
                }
                Msg::Reply { id, reply } => out.append((1u8, id, reply_to_py(py, reply)?))?,
                Msg::Stop => out.append((2u8,))?,
            }
        }
        Ok(out)
    }

    /// Starts a host call with the calling run's rights; the reply arrives later through `drain`.
    fn host_call(&self, py: Python<'_>, id: u64, op: String, org: Option<String>, args: String) {
        let services = Arc::clone(&self.services);
        let shared = Arc::clone(&self.shared);
        match granted_scope(py, org) {
            Ok(scope) => {
                self.services.runtime.spawn(async move {
                    let reply = run_host(&services, scope, &op, &args).await;
                    shared.push(Msg::Reply { id, reply });
                });
            }
            Err(denied) => shared.push(Msg::Reply {
                id,
                reply: Err(denied),
            }),
        }
    }

    /// The loop's task factory (see [`TaskFactory`]).
    fn task_factory<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, TaskFactory>> {
        Bound::new(
            py,
            TaskFactory {
                shared: Arc::clone(&self.shared),
            },
        )
    }

    /// Runs `call(*args, **kwargs)` on one of the loop's sync threads with the calling run's
    /// rights (the loop's default executor); returns a `concurrent.futures.Future`.
    #[pyo3(signature = (call, args, kwargs=None))]
    fn submit<'py>(
        &self,
        py: Python<'py>,
        call: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let hooks = HOOKS
            .get()
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("engine hooks missing"))?;
        let future = hooks.future_class.bind(py).call0()?;
        let job = SyncJob {
            call: call.unbind(),
            args: args.into_any().unbind(),
            kwargs: kwargs.map(|k| k.into_any().unbind()),
            future: future.clone().unbind(),
            cap: calling_run(py),
        };
        if !self.shared.sync.submit(job) {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "cannot schedule new calls: the engine is stopping",
            ));
        }
        Ok(future)
    }

    /// Lets the loop's sync threads end.
    fn stop_sync(&self) {
        self.shared.sync.stop();
    }
}

/// The scope of a host call for `org`, with the calling run's rights; refused when the caller
/// is not a run (see the module docs) or may not act on `org`.
fn granted_scope(py: Python<'_>, org: Option<String>) -> Result<HostScope, HostError> {
    let cap = calling_run(py).ok_or_else(|| {
        HostError::PermissionDenied(
            "SDK calls must come from a running workflow's own code: its tasks, or blocking \
             calls it runs through the event loop's executor (asyncio.to_thread, \
             loop.run_in_executor)"
                .into(),
        )
    })?;
    cap.scope_for(org)
}

/// Engine callbacks the Python side may use at any time.
#[pyclass(frozen, module = "_bifrost_native")]
pub(crate) struct Bridge {
    services: Arc<Services>,
}

impl Bridge {
    pub(crate) fn new(services: Arc<Services>) -> Self {
        Self { services }
    }
}

#[pymethods]
impl Bridge {
    fn report_violation(&self, module: String, importer: String, line: u32) {
        tracing::warn!(module = %module, importer = %importer, line, "workspace code tried to import an engine internal");
        if let Some(sink) = &self.services.on_violation {
            sink(ImportViolation {
                module,
                importer: importer.into(),
                line,
            });
        }
    }

    /// Python log records emitted outside any execution (e.g. at import time).
    fn log(&self, level: &str, logger: &str, message: &str) {
        match level {
            "DEBUG" => tracing::debug!(target: "bifrost::python", logger, "{message}"),
            "INFO" => tracing::info!(target: "bifrost::python", logger, "{message}"),
            "WARNING" => tracing::warn!(target: "bifrost::python", logger, "{message}"),
            _ => tracing::error!(target: "bifrost::python", logger, "{message}"),
        }
    }

    /// Blocking host call for synchronous SDK functions (`files.*`) and nested event loops,
    /// with the calling run's rights.
    fn host_call_blocking<'py>(
        &self,
        py: Python<'py>,
        op: String,
        org: Option<String>,
        args: String,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let scope = match granted_scope(py, org) {
            Ok(scope) => scope,
            Err(denied) => return reply_to_py(py, Err(denied)),
        };
        let services = Arc::clone(&self.services);
        let (tx, rx) = std::sync::mpsc::channel();
        self.services.runtime.spawn(async move {
            let _ = tx.send(run_host(&services, scope, &op, &args).await);
        });
        let reply = py.detach(move || {
            rx.recv()
                .unwrap_or_else(|_| Err(HostError::Backend("the host call was dropped".into())))
        });
        reply_to_py(py, reply)
    }
}

/// Clears a pending asynchronous exception of thread `ident` so it cannot fire in the next job.
#[pyfunction]
fn clear_async_exc(_py: Python<'_>, ident: u64) {
    // SAFETY: we hold the GIL (the `Python` token proves it); a NULL exception
    // clears any pending async exception of that thread, unknown idents are ignored.
    unsafe {
        pyo3::ffi::PyThreadState_SetAsyncExc(ident as _, std::ptr::null_mut());
    }
}

/// Raises `exc` asynchronously in thread `ident` (requires the GIL).
pub(crate) fn set_async_exc(_py: Python<'_>, ident: u64, exc: &Bound<'_, PyAny>) -> i32 {
    // SAFETY: the GIL is held (token), `exc` is a live exception type object
    // borrowed for the duration of the call; CPython takes its own reference.
    unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(ident as _, exc.as_ptr()) }
}

#[pymodule]
#[pyo3(name = "_bifrost_native")]
pub(crate) fn bifrost_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(clear_async_exc, m)?)?;
    m.add_class::<Job>()?;
    m.add_class::<LoopPort>()?;
    m.add_class::<Bridge>()?;
    m.add_class::<TaskFactory>()?;
    m.add_class::<ForgetTask>()?;
    Ok(())
}

/// Registers `_bifrost_native` and starts the interpreter. Errors if Python is already running.
pub(crate) fn initialize_interpreter() -> Result<(), String> {
    // SAFETY: Py_IsInitialized may be called at any time, with or without the GIL.
    if unsafe { pyo3::ffi::Py_IsInitialized() } != 0 {
        return Err("a Python interpreter is already running in this process".into());
    }
    // The macro expands to an unsafe FFI call that must precede interpreter start; checked above.
    pyo3::append_to_inittab!(bifrost_native);
    Python::initialize();
    Ok(())
}

/// Builds the scope the host sees for an execution.
pub(crate) fn scope_of(
    execution_id: &str,
    caller: &Caller,
    org_id: Option<&str>,
    admin: bool,
    fk: bool,
) -> HostScope {
    HostScope {
        execution_id: execution_id.to_owned(),
        org_id: org_id.map(str::to_owned),
        caller: caller.clone(),
        is_platform_admin: admin,
        is_function_key: fk,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn cap(execution_id: &str) -> Arc<RunCap> {
        RunCap::new(HostScope {
            execution_id: execution_id.into(),
            org_id: None,
            caller: Caller::default(),
            is_platform_admin: false,
            is_function_key: false,
        })
    }

    /// A finished run's late revoke must leave the next run's task alone when Python has put
    /// that task at the freed address (seen under load: the next run could not complete).
    #[test]
    fn a_late_revoke_does_not_forget_a_reused_address() {
        initialize_interpreter().unwrap();
        let shared = Arc::new(LoopShared::new(0, 0).unwrap());
        let (first, next) = (cap("first"), cap("next"));
        let key = 0x1000;
        first.tasks.lock().unwrap().push((0, key));
        Python::attach(|py| {
            shared.tasks.lock().unwrap().insert(
                key,
                TaskEntry {
                    task: py.None(),
                    coro: py.None(),
                    cap: Arc::clone(&next),
                },
            );
        });
        first.revoke(std::slice::from_ref(&shared));
        assert!(shared.tasks.lock().unwrap().contains_key(&key));
        shared.forget_task(key, &first);
        assert!(shared.tasks.lock().unwrap().contains_key(&key));
        next.revoke(std::slice::from_ref(&shared));
        shared.forget_task(key, &next);
        assert!(!shared.tasks.lock().unwrap().contains_key(&key));
        shared.sync.stop();
    }
}

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
#![allow(unsafe_code)] // FFI: interpreter registration and asynchronous exceptions.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tokio::sync::oneshot;

use crate::host::{HostError, HostOp, HostScope, SdkHost, dispatch};
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
    pub scope: HostScope,
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
}

impl LoopShared {
    pub(crate) fn new(index: usize) -> std::io::Result<Self> {
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
        })
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
    scope: HostScope,
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
        let s = &self.scope;
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

    /// One log line as it is written (masked by the caller); dropped if nobody listens.
    #[allow(clippy::too_many_arguments)]
    fn emit_log(
        &self,
        sequence: u64,
        ts: f64,
        level: String,
        message: String,
        source: String,
        data: Option<String>,
    ) {
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

    #[allow(clippy::too_many_arguments)]
    fn complete(
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
}

impl Job {
    fn from_data(d: JobData) -> Self {
        Self {
            execution_id: d.execution_id,
            name: d.name,
            kind: d.kind,
            input_json: d.input_json,
            config_json: d.config_json,
            timeout_seconds: d.timeout_seconds,
            scope: d.scope,
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

    /// The scope a host call runs in. Checked here, in Rust, and not only in the Python SDK:
    /// workspace code can reach the native bridge directly, and only platform admins may act on
    /// another organization than the execution's own.
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

fn reply_to_py<'py>(py: Python<'py>, reply: HostReply) -> PyResult<Bound<'py, PyTuple>> {
    match reply {
        Ok(payload) => (true, payload).into_pyobject(py),
        Err(e) => (false, (e.kind(), e.to_string())).into_pyobject(py),
    }
}

async fn run_host(services: &Services, scope: HostScope, op: &str, args: &str) -> HostReply {
    let op = HostOp::parse(op, args)?;
    let value = dispatch(&*services.host, &scope, op).await?;
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
}

impl LoopPort {
    pub(crate) fn new(
        shared: Arc<LoopShared>,
        services: Arc<Services>,
        ready: std::sync::mpsc::Sender<()>,
    ) -> Self {
        Self {
            shared,
            services,
            ready: Mutex::new(Some(ready)),
        }
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

    fn ready(&self, ident: u64) {
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

    /// Everything queued for this loop: `(0, job)`, `(1, request id, reply)`, `(2,)` = stop.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for msg in self.shared.take() {
            match msg {
                Msg::Job(data) => out.append((0u8, Bound::new(py, Job::from_data(*data))?))?,
                Msg::Reply { id, reply } => out.append((1u8, id, reply_to_py(py, reply)?))?,
                Msg::Stop => out.append((2u8,))?,
            }
        }
        Ok(out)
    }

    /// Starts a host call; the reply arrives later through `drain`.
    fn host_call(
        &self,
        id: u64,
        job: PyRef<'_, Job>,
        op: String,
        org: Option<String>,
        args: String,
    ) {
        let services = Arc::clone(&self.services);
        let shared = Arc::clone(&self.shared);
        match job.scope_for(org) {
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

    /// Blocking host call for synchronous SDK functions (`files.*`) and foreign threads.
    fn host_call_blocking<'py>(
        &self,
        py: Python<'py>,
        job: PyRef<'_, Job>,
        op: String,
        org: Option<String>,
        args: String,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let scope = match job.scope_for(org) {
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

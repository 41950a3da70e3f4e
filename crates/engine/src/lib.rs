//! Bifrost's embedded CPython workflow engine and the `bifrost` Python SDK it provides.
//!
//! This is the only crate in Bifrost that touches pyo3 and the only place
//! `unsafe` is allowed (in `native`, for FFI, and one `set_var` in `embedded_python`). It must not depend on HTTP
//! (warp), storage or other Bifrost crates: storage-backed SDK calls go through
//! the [`SdkHost`] trait the application implements.
//!
//! Architecture: one interpreter per process; `EngineConfig::threads`
//! dedicated Python threads, each running its own asyncio loop. Callers use
//! the `Send + Sync` [`Engine`] handle from tokio; work and host replies are
//! handed over through queues plus a socket-pair wake-up, so tokio threads never
//! take the GIL. A watchdog std thread enforces timeouts and cancellation.
//! See `README.md` in this crate for the Python-side semantics and limits
//! (what cannot be interrupted, how extra inputs are passed, masking rules).

mod embedded_python;
mod engine;
mod error;
mod host;
mod host_ops;
mod memory_host;
mod native;
mod types;

pub use embedded_python::{
    PACKAGED_PYTHON_DIR, PythonLayout, libpython_in_maps, loaded_libpython, python_layout,
    use_packaged_python,
};
pub use engine::{Engine, EngineConfig};
pub use error::EngineError;
pub use host::{
    ConfigValue, ExecutionFilter, FileLocation, HostError, HostResult, HostScope, NoHost, SdkHost,
};
pub use memory_host::MemoryHost;
pub use types::{
    Caller, DataProviderInfo, DataProviderOption, ExecutionContextInfo, ExecutionError,
    ExecutionMode, ExecutionOutcome, ExecutionRequest, ExecutionStatus, ImportViolation, LiveLogs,
    LogEntry, Organization, ParameterInfo, ParameterOption, Registry, ReloadReport, ResultType,
    WorkflowInfo, WorkspaceError,
};

/// The name of every SDK operation (`"config.get"`, ...) the host serves, as `_sdk.py` passes
/// it to the native bridge; declared once in the operation table of `host.rs`.
pub const SDK_OPERATIONS: &[&str] = host::HostOp::NAMES;

/// IDE stubs for workspace authors (`bifrost.pyi`); serve it for download or copy it into a workspace.
pub const BIFROST_PYI: &str = include_str!("../bifrost.pyi");

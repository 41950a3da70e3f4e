//! The engine's error type. Depends on nothing but `thiserror`; messages name the offending field or item.

use std::path::PathBuf;

/// Errors of engine operations (not of workflow code: those are [`crate::ExecutionOutcome`]s).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid engine configuration: {0}")]
    InvalidConfig(String),
    #[error("workspace directory {0} does not exist or is not a directory")]
    MissingWorkspace(PathBuf),
    #[error(
        "the engine was already started in this process (the Python interpreter is process-global)"
    )]
    AlreadyStarted,
    #[error("failed to start the Python interpreter: {0}")]
    PythonInit(String),
    #[error("the engine has been stopped")]
    Stopped,
    #[error("workflow '{0}' is not registered")]
    WorkflowNotFound(String),
    #[error("data provider '{0}' is not registered")]
    DataProviderNotFound(String),
    #[error("execution '{0}' is already running")]
    DuplicateExecution(String),
    #[error("invalid execution request: {0}")]
    InvalidRequest(String),
    #[error("internal engine error: {0}")]
    Internal(String),
}

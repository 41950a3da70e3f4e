//! The `SdkHost` trait: what the Python SDK namespaces (`config`, `secrets`, `organizations`, ...) call.
//!
//! The SDK's operations are declared once, in the table at the end of this module: each line
//! names the operation as Python sends it (`"config.get"`), the host method that serves it and
//! its arguments. From that table come the [`SdkHost`] trait (every method defaults to
//! [`HostError::Unsupported`], so a host can grow method by method), the parsed form of a call
//! (`HostOp`, a serde-tagged enum) and the dispatch from one to the other
//! ([`host_ops`](crate::host_ops) has the machinery). The application implements the trait over
//! real storage; [`MemoryHost`](crate::MemoryHost) is an in-memory implementation for tests.
//!
//! Must not depend on pyo3: the engine parses the Python call into a `HostOp` and awaits the
//! host on the tokio runtime, never holding the GIL.
//!
//! Invariants: every call carries the [`HostScope`] of the calling execution, built in Rust
//! from the run's rights (never from what Python sends); the host enforces storage-level rules
//! (org → GLOBAL config fallback, tenant isolation). Entities (organizations, roles, forms,
//! executions) are JSON objects in v1's camelCase API shape.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::host_ops::{self, sdk_operations};
use crate::types::Caller;

/// Who is calling and for which organization (`None` = GLOBAL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostScope {
    pub execution_id: String,
    pub org_id: Option<String>,
    pub caller: Caller,
    pub is_platform_admin: bool,
    pub is_function_key: bool,
}

/// Errors a host returns; the SDK raises the matching Python exception.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Raised in Python as `LookupError`.
    #[error("not found: {0}")]
    NotFound(String),
    /// Raised as `PermissionError`.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Raised as `ValueError`.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Raised as `NotImplementedError`; names the capability.
    #[error("{0} is not supported by this host")]
    Unsupported(String),
    /// Raised as `RuntimeError`. The message reaches workflow code: no secrets.
    #[error("{0}")]
    Backend(String),
}

impl HostError {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::PermissionDenied(_) => "permission_denied",
            Self::InvalidInput(_) => "invalid_input",
            Self::Unsupported(_) => "unsupported",
            Self::Backend(_) => "backend",
        }
    }
}

pub type HostResult<T> = Result<T, HostError>;

/// A config value and whether it came from a secret (then it is masked in logs).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigValue {
    pub value: Value,
    pub secret: bool,
}

/// `files.*` location (v1: `temp` or `workspace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileLocation {
    Workspace,
    Temp,
}

/// Filters of `executions.list(...)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionFilter {
    pub workflow_name: Option<String>,
    pub status: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub limit: Option<u32>,
}

/// A host with no capabilities: every SDK call raises `NotImplementedError`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHost;

impl SdkHost for NoHost {}

// ---- the operations ---------------------------------------------------------------------
//
// `"name" => fn method(args) -> result;` — the name is what `_sdk.py` passes to `_i.host`, the
// arguments are the keys of its JSON object (camelCase on the wire, snake_case here), the result
// becomes the Python value (`host_ops::IntoReply`). A test (`tests/sdk_operations.rs`) checks
// that `_sdk.py` calls exactly these names and that `bifrost.pyi` declares each of them.

sdk_operations! {
    /// `config.get`: org value, else GLOBAL value, else `None`.
    "config.get" => fn config_get(key: String) -> Option<ConfigValue>;
    "config.set" => fn config_set(key: String, #[serde(default)] value: Value) -> ();
    "config.list" => fn config_list() -> Map<String, Value>;
    "config.delete" => fn config_delete(key: String) -> bool;
    /// `secrets.get(key)`: `key` is the full secret name; the value is masked in logs.
    "secrets.get" => fn secret_get(key: String) -> Option<String>;
    "secrets.set" => fn secret_set(key: String, value: String) -> ();
    /// Secret names visible to the scope (v1: `{org}--*` and `GLOBAL--*`).
    "secrets.list" => fn secret_list() -> Vec<String>;
    "secrets.delete" => fn secret_delete(key: String) -> bool;
    "organizations.create" => fn organization_create(
        name: String,
        domain: Option<String>,
        #[serde(default = "host_ops::yes", deserialize_with = "host_ops::bool_or_true")]
        is_active: bool,
    ) -> Value;
    "organizations.get" => fn organization_get(org_id: String) -> Option<Value>;
    "organizations.list" => fn organization_list() -> Vec<Value>;
    "organizations.update" => fn organization_update(
        org_id: String,
        #[serde(default, deserialize_with = "host_ops::object_or_empty")]
        updates: Map<String, Value>,
    ) -> Value;
    "organizations.delete" => fn organization_delete(org_id: String) -> bool;
    /// Non-admin callers should only see their own executions (v1 rule).
    "executions.list" => fn execution_list(#[serde(flatten)] filter: ExecutionFilter) -> Vec<Value>;
    "executions.get" => fn execution_get(execution_id: String) -> Option<Value>;
    "roles.create" => fn role_create(
        name: String,
        #[serde(default, deserialize_with = "host_ops::string_or_empty")]
        description: String,
        permissions: Option<Value>,
    ) -> Value;
    "roles.get" => fn role_get(role_id: String) -> Option<Value>;
    "roles.list" => fn role_list() -> Vec<Value>;
    "roles.update" => fn role_update(
        role_id: String,
        #[serde(default, deserialize_with = "host_ops::object_or_empty")]
        updates: Map<String, Value>,
    ) -> Value;
    "roles.delete" => fn role_delete(role_id: String) -> bool;
    "roles.list_users" => fn role_list_users(role_id: String) -> Vec<String>;
    "roles.list_forms" => fn role_list_forms(role_id: String) -> Vec<String>;
    "roles.assign_users" => fn role_assign_users(
        role_id: String,
        #[serde(default, deserialize_with = "host_ops::string_list")]
        ids: Vec<String>,
    ) -> ();
    "roles.assign_forms" => fn role_assign_forms(
        role_id: String,
        #[serde(default, deserialize_with = "host_ops::string_list")]
        ids: Vec<String>,
    ) -> ();
    "forms.list" => fn form_list() -> Vec<Value>;
    "forms.get" => fn form_get(form_id: String) -> Option<Value>;
    /// Paths are relative to the location; the host must keep them inside it.
    "files.read" => fn file_read(
        #[serde(default = "host_ops::workspace", deserialize_with = "host_ops::location")]
        location: FileLocation,
        path: String,
    ) -> Vec<u8>;
    "files.write" => fn file_write(
        #[serde(default = "host_ops::workspace", deserialize_with = "host_ops::location")]
        location: FileLocation,
        path: String,
        #[serde(deserialize_with = "host_ops::base64_bytes")]
        content: Vec<u8>,
    ) -> ();
    /// `path` is the directory; names are relative to it.
    "files.list" => fn file_list(
        #[serde(default = "host_ops::workspace", deserialize_with = "host_ops::location")]
        location: FileLocation,
        path: String,
    ) -> Vec<String>;
    "files.delete" => fn file_delete(
        #[serde(default = "host_ops::workspace", deserialize_with = "host_ops::location")]
        location: FileLocation,
        path: String,
    ) -> bool;
    "files.exists" => fn file_exists(
        #[serde(default = "host_ops::workspace", deserialize_with = "host_ops::location")]
        location: FileLocation,
        path: String,
    ) -> bool;
}

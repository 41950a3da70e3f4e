//! Plain data types of the engine's public API: execution requests and outcomes, registry metadata.
//!
//! This module holds no Python state and must not depend on pyo3, so callers can
//! build requests and read outcomes anywhere. Wire casing is camelCase (v1 API
//! compatible); the HTTP layer may still map these into its own DTOs.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Who started an execution (`context.user_id`, `context.email`, `context.name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Caller {
    pub user_id: String,
    pub email: String,
    pub name: String,
}

impl Caller {
    pub fn new(user_id: &str, email: &str, name: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            email: email.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The v1 scheduler identity.
    pub fn scheduler() -> Self {
        Self::new(
            "system:scheduler",
            "system@scheduler",
            "Scheduled Execution",
        )
    }

    /// The v1 identity of anonymous calls to public webhooks.
    pub fn public_webhook() -> Self {
        Self::new(
            "public:anonymous",
            "public@system.local",
            "Public Access (Webhook)",
        )
    }

    /// The v1 identity of workflow API keys.
    pub fn api_key(key_id: &str) -> Self {
        Self::new(
            &format!("api_key:{key_id}"),
            "api-key@system.local",
            "API Key",
        )
    }
}

/// The organization an execution is scoped to (`None` in [`ExecutionContextInfo`] means GLOBAL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub is_active: bool,
}

/// The fields of the Python `ExecutionContext` that come from the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionContextInfo {
    pub caller: Caller,
    /// `None` = GLOBAL scope.
    pub organization: Option<Organization>,
    pub is_platform_admin: bool,
    pub is_function_key: bool,
}

/// A request to run a workflow or a data provider.
#[derive(Debug, Clone, Default)]
pub struct ExecutionRequest {
    /// Execution id (also the key for [`crate::Engine::cancel`]); empty = the engine generates a UUID.
    pub execution_id: String,
    /// Registered workflow (or data provider) name.
    pub name: String,
    /// The input object; keys matching parameters become keyword arguments.
    pub input: Map<String, Value>,
    pub context: ExecutionContextInfo,
    /// Resolved configuration for the legacy `context.get_config(key)` (Gen A/B workspaces).
    pub config: Map<String, Value>,
    /// Overrides the workflow's `timeout_seconds`.
    pub timeout: Option<Duration>,
    /// Values masked as `***` in this execution's logs, result and error from the start
    /// (e.g. secret values resolved into `config`). `secrets.get` values are added automatically.
    pub mask: Vec<String>,
    /// Receives each log line as it is written (already masked), for live views and progressive
    /// storage. The outcome still carries every line.
    pub live_logs: Option<LiveLogs>,
}

/// Where live log lines of one execution go.
pub type LiveLogs = tokio::sync::mpsc::UnboundedSender<LogEntry>;

/// Final state of an execution (v1 `ExecutionStatus` terminal values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionStatus {
    Success,
    Failed,
    CompletedWithErrors,
    Timeout,
    Cancelled,
}

impl ExecutionStatus {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Success" => Self::Success,
            "Failed" => Self::Failed,
            "CompletedWithErrors" => Self::CompletedWithErrors,
            "Timeout" => Self::Timeout,
            "Cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// How the result should be rendered (v1 §1.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultType {
    Json,
    Html,
    Text,
}

/// Why an execution did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionError {
    /// Python exception class name, or `Timeout` / `Cancelled` / `NotFound`.
    pub error_type: String,
    pub message: String,
    pub traceback: String,
    /// A `bifrost.UserError`: the message may be shown to non-admin users.
    pub is_user_error: bool,
}

/// One captured log line (`logging`, `print`, stderr or the legacy `context.info(...)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// 1-based, in capture order within the execution.
    pub sequence: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL` or `TRACEBACK` (admin-only detail).
    pub level: String,
    pub message: String,
    /// `logging:<logger>`, `stdout`, `stderr`, `context` or `engine`.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// The result of one execution.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionOutcome {
    pub execution_id: String,
    pub status: ExecutionStatus,
    pub result: Option<Value>,
    pub result_type: Option<ResultType>,
    pub error: Option<ExecutionError>,
    pub logs: Vec<LogEntry>,
    #[serde(rename = "durationMs", serialize_with = "ser_millis")]
    pub duration: Duration,
}

fn ser_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ser_arc<S: serde::Serializer, T: Serialize>(
    v: &std::sync::Arc<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    T::serialize(v, s)
}

/// One option returned by a data provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataProviderOption {
    pub label: String,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl ExecutionOutcome {
    /// The options of a successful data-provider execution (validated as a list by the engine).
    pub fn options(&self) -> Option<Vec<DataProviderOption>> {
        serde_json::from_value(self.result.clone()?).ok()
    }
}

/// A choice for a `Literal[...]` or `Enum` parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterOption {
    pub label: String,
    pub value: Value,
}

/// A workflow or data-provider parameter (v1 `WorkflowParameter`, plus `options`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterInfo {
    pub name: String,
    /// `string|int|bool|float|json|list|email`; inferred parameters may also be `datetime` or `date`.
    #[serde(rename = "type")]
    pub kind: String,
    pub label: Option<String>,
    pub required: bool,
    pub validation: Option<Value>,
    pub data_provider: Option<String>,
    pub default_value: Option<Value>,
    pub help_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<ParameterOption>>,
}

/// `sync` (run inline, default for endpoint-enabled workflows) or `async` (queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    Sync,
    Async,
}

/// A discovered workflow (v1 `WorkflowMetadata`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowInfo {
    pub name: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub execution_mode: ExecutionMode,
    pub timeout_seconds: u32,
    pub retry_policy: Option<Value>,
    pub schedule: Option<String>,
    pub endpoint_enabled: bool,
    pub allowed_methods: Vec<String>,
    pub disable_global_key: bool,
    pub public_endpoint: bool,
    pub source: Option<String>,
    pub source_file_path: PathBuf,
    pub parameters: Vec<ParameterInfo>,
    /// True when the parameters come from type hints rather than `@param`.
    pub parameters_inferred: bool,
    pub module: String,
    pub function: String,
    pub line: u32,
    pub is_async: bool,
}

/// A discovered data provider (v1 `DataProviderMetadata`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataProviderInfo {
    pub name: String,
    pub description: String,
    pub category: String,
    pub cache_ttl_seconds: u32,
    /// Declared by the provider: its options do not depend on the caller, so cached answers
    /// are shared across the organization's callers.
    #[serde(default)]
    pub caller_independent: bool,
    pub source: Option<String>,
    pub source_file_path: PathBuf,
    pub parameters: Vec<ParameterInfo>,
    pub parameters_inferred: bool,
    pub module: String,
    pub function: String,
    pub line: u32,
    pub is_async: bool,
}

/// A workspace file that failed to import, or a duplicate name (`errorType: DuplicateName`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceError {
    pub file: PathBuf,
    pub line: Option<u32>,
    pub error_type: String,
    pub message: String,
    pub traceback: String,
}

/// The registry at one point in time (cheap to clone via `Arc`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    pub workflows: Vec<WorkflowInfo>,
    pub data_providers: Vec<DataProviderInfo>,
    pub errors: Vec<WorkspaceError>,
}

impl Registry {
    pub fn workflow(&self, name: &str) -> Option<&WorkflowInfo> {
        self.workflows.iter().find(|w| w.name == name)
    }

    pub fn data_provider(&self, name: &str) -> Option<&DataProviderInfo> {
        self.data_providers.iter().find(|d| d.name == name)
    }
}

/// What a rescan or reload changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadReport {
    /// Files (re-)imported because they are new or their content changed.
    pub imported: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    #[serde(serialize_with = "ser_arc")]
    pub registry: std::sync::Arc<Registry>,
}

/// Workspace code tried to import an engine internal (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportViolation {
    pub module: String,
    pub importer: PathBuf,
    pub line: u32,
}

//! The `SdkHost` trait: what the Python SDK namespaces (`config`, `secrets`, `organizations`, ...) call.
//!
//! The application implements it over real storage; [`MemoryHost`] is an
//! in-memory implementation for tests and local runs. This module must not
//! depend on pyo3: the engine parses the Python call into a [`HostOp`] and
//! awaits the host on the tokio runtime, never holding the GIL.
//!
//! Invariants: every call carries the [`HostScope`] of the calling execution;
//! the host enforces storage-level rules (org → GLOBAL config fallback,
//! tenant isolation). Entities (organizations, roles, forms, executions) are
//! JSON objects in v1's camelCase API shape.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};

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

fn unsupported<T>(what: &str) -> HostResult<T> {
    Err(HostError::Unsupported(what.to_owned()))
}

/// Storage-backed services the Python SDK reaches. Every method defaults to
/// [`HostError::Unsupported`] naming the capability, so a host can grow
/// method by method.
#[async_trait]
pub trait SdkHost: Send + Sync + 'static {
    /// `config.get`: org value, else GLOBAL value, else `None`.
    async fn config_get(&self, _scope: &HostScope, _key: &str) -> HostResult<Option<ConfigValue>> {
        unsupported("config.get")
    }
    async fn config_set(&self, _scope: &HostScope, _key: &str, _value: Value) -> HostResult<()> {
        unsupported("config.set")
    }
    async fn config_list(&self, _scope: &HostScope) -> HostResult<Map<String, Value>> {
        unsupported("config.list")
    }
    async fn config_delete(&self, _scope: &HostScope, _key: &str) -> HostResult<bool> {
        unsupported("config.delete")
    }
    /// `secrets.get(key)`: `key` is the full secret name; the value is masked in logs.
    async fn secret_get(&self, _scope: &HostScope, _key: &str) -> HostResult<Option<String>> {
        unsupported("secrets.get")
    }
    async fn secret_set(&self, _scope: &HostScope, _key: &str, _value: &str) -> HostResult<()> {
        unsupported("secrets.set")
    }
    /// Secret names visible to the scope (v1: `{org}--*` and `GLOBAL--*`).
    async fn secret_list(&self, _scope: &HostScope) -> HostResult<Vec<String>> {
        unsupported("secrets.list")
    }
    async fn secret_delete(&self, _scope: &HostScope, _key: &str) -> HostResult<bool> {
        unsupported("secrets.delete")
    }
    async fn organization_create(
        &self,
        _scope: &HostScope,
        _name: &str,
        _domain: Option<&str>,
        _is_active: bool,
    ) -> HostResult<Value> {
        unsupported("organizations.create")
    }
    async fn organization_get(
        &self,
        _scope: &HostScope,
        _org_id: &str,
    ) -> HostResult<Option<Value>> {
        unsupported("organizations.get")
    }
    async fn organization_list(&self, _scope: &HostScope) -> HostResult<Vec<Value>> {
        unsupported("organizations.list")
    }
    async fn organization_update(
        &self,
        _scope: &HostScope,
        _org_id: &str,
        _updates: Map<String, Value>,
    ) -> HostResult<Value> {
        unsupported("organizations.update")
    }
    async fn organization_delete(&self, _scope: &HostScope, _org_id: &str) -> HostResult<bool> {
        unsupported("organizations.delete")
    }
    /// Non-admin callers should only see their own executions (v1 rule).
    async fn execution_list(
        &self,
        _scope: &HostScope,
        _filter: ExecutionFilter,
    ) -> HostResult<Vec<Value>> {
        unsupported("executions.list")
    }
    async fn execution_get(
        &self,
        _scope: &HostScope,
        _execution_id: &str,
    ) -> HostResult<Option<Value>> {
        unsupported("executions.get")
    }
    async fn role_create(
        &self,
        _scope: &HostScope,
        _name: &str,
        _description: &str,
        _permissions: Option<Value>,
    ) -> HostResult<Value> {
        unsupported("roles.create")
    }
    async fn role_get(&self, _scope: &HostScope, _role_id: &str) -> HostResult<Option<Value>> {
        unsupported("roles.get")
    }
    async fn role_list(&self, _scope: &HostScope) -> HostResult<Vec<Value>> {
        unsupported("roles.list")
    }
    async fn role_update(
        &self,
        _scope: &HostScope,
        _role_id: &str,
        _updates: Map<String, Value>,
    ) -> HostResult<Value> {
        unsupported("roles.update")
    }
    async fn role_delete(&self, _scope: &HostScope, _role_id: &str) -> HostResult<bool> {
        unsupported("roles.delete")
    }
    async fn role_list_users(&self, _scope: &HostScope, _role_id: &str) -> HostResult<Vec<String>> {
        unsupported("roles.list_users")
    }
    async fn role_list_forms(&self, _scope: &HostScope, _role_id: &str) -> HostResult<Vec<String>> {
        unsupported("roles.list_forms")
    }
    async fn role_assign_users(
        &self,
        _scope: &HostScope,
        _role_id: &str,
        _user_ids: Vec<String>,
    ) -> HostResult<()> {
        unsupported("roles.assign_users")
    }
    async fn role_assign_forms(
        &self,
        _scope: &HostScope,
        _role_id: &str,
        _form_ids: Vec<String>,
    ) -> HostResult<()> {
        unsupported("roles.assign_forms")
    }
    async fn form_list(&self, _scope: &HostScope) -> HostResult<Vec<Value>> {
        unsupported("forms.list")
    }
    async fn form_get(&self, _scope: &HostScope, _form_id: &str) -> HostResult<Option<Value>> {
        unsupported("forms.get")
    }
    /// Paths are relative to the location; the host must keep them inside it.
    async fn file_read(
        &self,
        _scope: &HostScope,
        _location: FileLocation,
        _path: &str,
    ) -> HostResult<Vec<u8>> {
        unsupported("files.read")
    }
    async fn file_write(
        &self,
        _scope: &HostScope,
        _location: FileLocation,
        _path: &str,
        _content: Vec<u8>,
    ) -> HostResult<()> {
        unsupported("files.write")
    }
    async fn file_list(
        &self,
        _scope: &HostScope,
        _location: FileLocation,
        _dir: &str,
    ) -> HostResult<Vec<String>> {
        unsupported("files.list")
    }
    async fn file_delete(
        &self,
        _scope: &HostScope,
        _location: FileLocation,
        _path: &str,
    ) -> HostResult<bool> {
        unsupported("files.delete")
    }
    async fn file_exists(
        &self,
        _scope: &HostScope,
        _location: FileLocation,
        _path: &str,
    ) -> HostResult<bool> {
        unsupported("files.exists")
    }
}

/// A host with no capabilities: every SDK call raises `NotImplementedError`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHost;

impl SdkHost for NoHost {}

// ---- parsing Python calls -----------------------------------------------------------

/// One SDK call, parsed from the Python side's `(op, args)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HostOp {
    ConfigGet {
        key: String,
    },
    ConfigSet {
        key: String,
        value: Value,
    },
    ConfigList,
    ConfigDelete {
        key: String,
    },
    SecretGet {
        key: String,
    },
    SecretSet {
        key: String,
        value: String,
    },
    SecretList,
    SecretDelete {
        key: String,
    },
    OrgCreate {
        name: String,
        domain: Option<String>,
        is_active: bool,
    },
    OrgGet {
        id: String,
    },
    OrgList,
    OrgUpdate {
        id: String,
        updates: Map<String, Value>,
    },
    OrgDelete {
        id: String,
    },
    ExecList(ExecutionFilter),
    ExecGet {
        id: String,
    },
    RoleCreate {
        name: String,
        description: String,
        permissions: Option<Value>,
    },
    RoleGet {
        id: String,
    },
    RoleList,
    RoleUpdate {
        id: String,
        updates: Map<String, Value>,
    },
    RoleDelete {
        id: String,
    },
    RoleListUsers {
        id: String,
    },
    RoleListForms {
        id: String,
    },
    RoleAssignUsers {
        id: String,
        ids: Vec<String>,
    },
    RoleAssignForms {
        id: String,
        ids: Vec<String>,
    },
    FormList,
    FormGet {
        id: String,
    },
    FileRead {
        location: FileLocation,
        path: String,
    },
    FileWrite {
        location: FileLocation,
        path: String,
        content: Vec<u8>,
    },
    FileList {
        location: FileLocation,
        path: String,
    },
    FileDelete {
        location: FileLocation,
        path: String,
    },
    FileExists {
        location: FileLocation,
        path: String,
    },
}

fn field_str(args: &Map<String, Value>, op: &str, name: &str) -> HostResult<String> {
    match args.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(HostError::InvalidInput(format!(
            "{op}: '{name}' must be a string, got {other}"
        ))),
        None => Err(HostError::InvalidInput(format!(
            "{op}: '{name}' is required"
        ))),
    }
}

fn field_opt_str(args: &Map<String, Value>, op: &str, name: &str) -> HostResult<Option<String>> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => field_str(args, op, name).map(Some),
    }
}

fn field_map(args: &Map<String, Value>, name: &str) -> Map<String, Value> {
    match args.get(name) {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    }
}

fn field_ids(args: &Map<String, Value>, op: &str) -> HostResult<Vec<String>> {
    let items = args
        .get("ids")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            other => Err(HostError::InvalidInput(format!(
                "{op}: ids must be strings, got {other}"
            ))),
        })
        .collect()
}

fn field_location(args: &Map<String, Value>, op: &str) -> HostResult<FileLocation> {
    match args
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or("workspace")
    {
        "workspace" => Ok(FileLocation::Workspace),
        "temp" => Ok(FileLocation::Temp),
        other => Err(HostError::InvalidInput(format!(
            "{op}: location must be 'workspace' or 'temp', got '{other}'"
        ))),
    }
}

impl HostOp {
    pub(crate) fn parse(op: &str, args: &str) -> HostResult<Self> {
        let args: Map<String, Value> = serde_json::from_str(args).map_err(|e| {
            HostError::InvalidInput(format!("{op}: arguments are not a JSON object: {e}"))
        })?;
        let s = |name: &str| field_str(&args, op, name);
        Ok(match op {
            "config.get" => Self::ConfigGet { key: s("key")? },
            "config.set" => Self::ConfigSet {
                key: s("key")?,
                value: args.get("value").cloned().unwrap_or(Value::Null),
            },
            "config.list" => Self::ConfigList,
            "config.delete" => Self::ConfigDelete { key: s("key")? },
            "secrets.get" => Self::SecretGet { key: s("key")? },
            "secrets.set" => Self::SecretSet {
                key: s("key")?,
                value: s("value")?,
            },
            "secrets.list" => Self::SecretList,
            "secrets.delete" => Self::SecretDelete { key: s("key")? },
            "organizations.create" => Self::OrgCreate {
                name: s("name")?,
                domain: field_opt_str(&args, op, "domain")?,
                is_active: args
                    .get("isActive")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            },
            "organizations.get" => Self::OrgGet { id: s("orgId")? },
            "organizations.list" => Self::OrgList,
            "organizations.update" => Self::OrgUpdate {
                id: s("orgId")?,
                updates: field_map(&args, "updates"),
            },
            "organizations.delete" => Self::OrgDelete { id: s("orgId")? },
            "executions.list" => Self::ExecList(
                serde_json::from_value(Value::Object(args.clone()))
                    .map_err(|e| HostError::InvalidInput(format!("{op}: {e}")))?,
            ),
            "executions.get" => Self::ExecGet {
                id: s("executionId")?,
            },
            "roles.create" => Self::RoleCreate {
                name: s("name")?,
                description: field_opt_str(&args, op, "description")?.unwrap_or_default(),
                permissions: args.get("permissions").filter(|v| !v.is_null()).cloned(),
            },
            "roles.get" => Self::RoleGet { id: s("roleId")? },
            "roles.list" => Self::RoleList,
            "roles.update" => Self::RoleUpdate {
                id: s("roleId")?,
                updates: field_map(&args, "updates"),
            },
            "roles.delete" => Self::RoleDelete { id: s("roleId")? },
            "roles.list_users" => Self::RoleListUsers { id: s("roleId")? },
            "roles.list_forms" => Self::RoleListForms { id: s("roleId")? },
            "roles.assign_users" => Self::RoleAssignUsers {
                id: s("roleId")?,
                ids: field_ids(&args, op)?,
            },
            "roles.assign_forms" => Self::RoleAssignForms {
                id: s("roleId")?,
                ids: field_ids(&args, op)?,
            },
            "forms.list" => Self::FormList,
            "forms.get" => Self::FormGet { id: s("formId")? },
            "files.read" => Self::FileRead {
                location: field_location(&args, op)?,
                path: s("path")?,
            },
            "files.write" => {
                use base64::Engine as _;
                let content = base64::engine::general_purpose::STANDARD
                    .decode(s("content")?)
                    .map_err(|e| {
                        HostError::InvalidInput(format!("{op}: content is not base64: {e}"))
                    })?;
                Self::FileWrite {
                    location: field_location(&args, op)?,
                    path: s("path")?,
                    content,
                }
            }
            "files.list" => Self::FileList {
                location: field_location(&args, op)?,
                path: s("path")?,
            },
            "files.delete" => Self::FileDelete {
                location: field_location(&args, op)?,
                path: s("path")?,
            },
            "files.exists" => Self::FileExists {
                location: field_location(&args, op)?,
                path: s("path")?,
            },
            other => return Err(HostError::Unsupported(other.to_owned())),
        })
    }
}

fn opt(v: Option<Value>) -> Value {
    v.unwrap_or(Value::Null)
}

/// Runs one SDK call against the host and returns its JSON result.
pub(crate) async fn dispatch(
    host: &dyn SdkHost,
    scope: &HostScope,
    op: HostOp,
) -> HostResult<Value> {
    use base64::Engine as _;
    Ok(match op {
        HostOp::ConfigGet { key } => match host.config_get(scope, &key).await? {
            Some(cv) => json!({"value": cv.value, "secret": cv.secret}),
            None => Value::Null,
        },
        HostOp::ConfigSet { key, value } => {
            host.config_set(scope, &key, value).await?;
            Value::Null
        }
        HostOp::ConfigList => Value::Object(host.config_list(scope).await?),
        HostOp::ConfigDelete { key } => Value::Bool(host.config_delete(scope, &key).await?),
        HostOp::SecretGet { key } => host
            .secret_get(scope, &key)
            .await?
            .map_or(Value::Null, Value::String),
        HostOp::SecretSet { key, value } => {
            host.secret_set(scope, &key, &value).await?;
            Value::Null
        }
        HostOp::SecretList => json!(host.secret_list(scope).await?),
        HostOp::SecretDelete { key } => Value::Bool(host.secret_delete(scope, &key).await?),
        HostOp::OrgCreate {
            name,
            domain,
            is_active,
        } => {
            host.organization_create(scope, &name, domain.as_deref(), is_active)
                .await?
        }
        HostOp::OrgGet { id } => opt(host.organization_get(scope, &id).await?),
        HostOp::OrgList => Value::Array(host.organization_list(scope).await?),
        HostOp::OrgUpdate { id, updates } => host.organization_update(scope, &id, updates).await?,
        HostOp::OrgDelete { id } => Value::Bool(host.organization_delete(scope, &id).await?),
        HostOp::ExecList(filter) => Value::Array(host.execution_list(scope, filter).await?),
        HostOp::ExecGet { id } => opt(host.execution_get(scope, &id).await?),
        HostOp::RoleCreate {
            name,
            description,
            permissions,
        } => {
            host.role_create(scope, &name, &description, permissions)
                .await?
        }
        HostOp::RoleGet { id } => opt(host.role_get(scope, &id).await?),
        HostOp::RoleList => Value::Array(host.role_list(scope).await?),
        HostOp::RoleUpdate { id, updates } => host.role_update(scope, &id, updates).await?,
        HostOp::RoleDelete { id } => Value::Bool(host.role_delete(scope, &id).await?),
        HostOp::RoleListUsers { id } => json!(host.role_list_users(scope, &id).await?),
        HostOp::RoleListForms { id } => json!(host.role_list_forms(scope, &id).await?),
        HostOp::RoleAssignUsers { id, ids } => {
            host.role_assign_users(scope, &id, ids).await?;
            Value::Null
        }
        HostOp::RoleAssignForms { id, ids } => {
            host.role_assign_forms(scope, &id, ids).await?;
            Value::Null
        }
        HostOp::FormList => Value::Array(host.form_list(scope).await?),
        HostOp::FormGet { id } => opt(host.form_get(scope, &id).await?),
        HostOp::FileRead { location, path } => Value::String(
            base64::engine::general_purpose::STANDARD
                .encode(host.file_read(scope, location, &path).await?),
        ),
        HostOp::FileWrite {
            location,
            path,
            content,
        } => {
            host.file_write(scope, location, &path, content).await?;
            Value::Null
        }
        HostOp::FileList { location, path } => json!(host.file_list(scope, location, &path).await?),
        HostOp::FileDelete { location, path } => {
            Value::Bool(host.file_delete(scope, location, &path).await?)
        }
        HostOp::FileExists { location, path } => {
            Value::Bool(host.file_exists(scope, location, &path).await?)
        }
    })
}

// ---- in-memory host -------------------------------------------------------------------

const GLOBAL: &str = "GLOBAL";

#[derive(Debug, Default)]
struct MemoryState {
    /// scope ("GLOBAL" or org id) → key → value.
    config: HashMap<String, BTreeMap<String, ConfigValue>>,
    secrets: BTreeMap<String, String>,
    organizations: BTreeMap<String, Value>,
    roles: BTreeMap<String, Value>,
    role_users: HashMap<String, Vec<String>>,
    role_forms: HashMap<String, Vec<String>>,
    forms: BTreeMap<String, Value>,
    executions: Vec<Value>,
    files: BTreeMap<(FileLocation, String), Vec<u8>>,
    next_id: u64,
}

/// An in-memory [`SdkHost`] for tests and local runs.
#[derive(Debug, Default)]
pub struct MemoryHost {
    state: Mutex<MemoryState>,
}

fn scope_key(scope: &HostScope) -> String {
    scope.org_id.clone().unwrap_or_else(|| GLOBAL.to_owned())
}

fn require_admin(scope: &HostScope, what: &str) -> HostResult<()> {
    if scope.is_platform_admin {
        Ok(())
    } else {
        Err(HostError::PermissionDenied(format!(
            "{what} requires a platform administrator"
        )))
    }
}

fn normalize_path(path: &str) -> HostResult<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(HostError::InvalidInput(format!(
                        "path '{path}' escapes its location"
                    )));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

impl MemoryHost {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Seeds a config value (`org_id: None` = GLOBAL).
    pub fn set_config(&self, org_id: Option<&str>, key: &str, value: Value, secret: bool) {
        let scope = org_id.unwrap_or(GLOBAL).to_owned();
        self.lock()
            .config
            .entry(scope)
            .or_default()
            .insert(key.to_owned(), ConfigValue { value, secret });
    }

    /// Seeds a secret by its full name.
    pub fn set_secret(&self, name: &str, value: &str) {
        self.lock()
            .secrets
            .insert(name.to_owned(), value.to_owned());
    }

    /// Seeds an organization record (`id` field required).
    pub fn add_organization(&self, org: Value) {
        if let Some(id) = org.get("id").and_then(Value::as_str) {
            let id = id.to_owned();
            self.lock().organizations.insert(id, org);
        }
    }

    pub fn add_form(&self, form: Value) {
        if let Some(id) = form.get("id").and_then(Value::as_str) {
            let id = id.to_owned();
            self.lock().forms.insert(id, form);
        }
    }

    pub fn add_execution(&self, execution: Value) {
        self.lock().executions.push(execution);
    }

    pub fn file(&self, location: FileLocation, path: &str) -> Option<Vec<u8>> {
        self.lock().files.get(&(location, path.to_owned())).cloned()
    }
}

#[async_trait]
impl SdkHost for MemoryHost {
    async fn config_get(&self, scope: &HostScope, key: &str) -> HostResult<Option<ConfigValue>> {
        let st = self.lock();
        let found = st
            .config
            .get(&scope_key(scope))
            .and_then(|m| m.get(key))
            .or_else(|| st.config.get(GLOBAL).and_then(|m| m.get(key)));
        Ok(found.cloned())
    }

    async fn config_set(&self, scope: &HostScope, key: &str, value: Value) -> HostResult<()> {
        self.lock()
            .config
            .entry(scope_key(scope))
            .or_default()
            .insert(
                key.to_owned(),
                ConfigValue {
                    value,
                    secret: false,
                },
            );
        Ok(())
    }

    async fn config_list(&self, scope: &HostScope) -> HostResult<Map<String, Value>> {
        let st = self.lock();
        let mut out = Map::new();
        for s in [GLOBAL.to_owned(), scope_key(scope)] {
            if let Some(m) = st.config.get(&s) {
                for (k, v) in m {
                    let shown = if v.secret {
                        Value::String("***".into())
                    } else {
                        v.value.clone()
                    };
                    out.insert(k.clone(), shown);
                }
            }
        }
        Ok(out)
    }

    async fn config_delete(&self, scope: &HostScope, key: &str) -> HostResult<bool> {
        Ok(self
            .lock()
            .config
            .get_mut(&scope_key(scope))
            .and_then(|m| m.remove(key))
            .is_some())
    }

    async fn secret_get(&self, _scope: &HostScope, key: &str) -> HostResult<Option<String>> {
        Ok(self.lock().secrets.get(key).cloned())
    }

    async fn secret_set(&self, _scope: &HostScope, key: &str, value: &str) -> HostResult<()> {
        self.lock().secrets.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    async fn secret_list(&self, scope: &HostScope) -> HostResult<Vec<String>> {
        let own = format!("{}--", scope_key(scope));
        let global = format!("{GLOBAL}--");
        Ok(self
            .lock()
            .secrets
            .keys()
            .filter(|k| k.starts_with(&own) || k.starts_with(&global))
            .cloned()
            .collect())
    }

    async fn secret_delete(&self, _scope: &HostScope, key: &str) -> HostResult<bool> {
        Ok(self.lock().secrets.remove(key).is_some())
    }

    async fn organization_create(
        &self,
        scope: &HostScope,
        name: &str,
        domain: Option<&str>,
        is_active: bool,
    ) -> HostResult<Value> {
        require_admin(scope, "organizations.create")?;
        let mut st = self.lock();
        st.next_id += 1;
        let id = format!("org-{}", st.next_id);
        let org = json!({"id": id, "name": name, "domain": domain, "isActive": is_active});
        st.organizations.insert(id, org.clone());
        Ok(org)
    }

    async fn organization_get(
        &self,
        _scope: &HostScope,
        org_id: &str,
    ) -> HostResult<Option<Value>> {
        Ok(self.lock().organizations.get(org_id).cloned())
    }

    async fn organization_list(&self, scope: &HostScope) -> HostResult<Vec<Value>> {
        require_admin(scope, "organizations.list")?;
        Ok(self.lock().organizations.values().cloned().collect())
    }

    async fn organization_update(
        &self,
        scope: &HostScope,
        org_id: &str,
        updates: Map<String, Value>,
    ) -> HostResult<Value> {
        require_admin(scope, "organizations.update")?;
        let mut st = self.lock();
        let org = st
            .organizations
            .get_mut(org_id)
            .ok_or_else(|| HostError::NotFound(format!("organization '{org_id}'")))?;
        if let Value::Object(m) = org {
            m.extend(updates);
        }
        Ok(org.clone())
    }

    async fn organization_delete(&self, scope: &HostScope, org_id: &str) -> HostResult<bool> {
        require_admin(scope, "organizations.delete")?;
        Ok(self.lock().organizations.remove(org_id).is_some())
    }

    async fn execution_list(
        &self,
        scope: &HostScope,
        filter: ExecutionFilter,
    ) -> HostResult<Vec<Value>> {
        let st = self.lock();
        let limit = filter.limit.unwrap_or(50) as usize;
        Ok(st
            .executions
            .iter()
            .filter(|e| {
                scope.is_platform_admin
                    || e.get("executedBy").and_then(Value::as_str) == Some(&scope.caller.user_id)
            })
            .filter(|e| {
                filter
                    .workflow_name
                    .as_deref()
                    .is_none_or(|w| e.get("workflowName").and_then(Value::as_str) == Some(w))
            })
            .filter(|e| {
                filter
                    .status
                    .as_deref()
                    .is_none_or(|s| e.get("status").and_then(Value::as_str) == Some(s))
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn execution_get(
        &self,
        scope: &HostScope,
        execution_id: &str,
    ) -> HostResult<Option<Value>> {
        let st = self.lock();
        Ok(st
            .executions
            .iter()
            .find(|e| e.get("executionId").and_then(Value::as_str) == Some(execution_id))
            .filter(|e| {
                scope.is_platform_admin
                    || e.get("executedBy").and_then(Value::as_str) == Some(&scope.caller.user_id)
            })
            .cloned())
    }

    async fn role_create(
        &self,
        scope: &HostScope,
        name: &str,
        description: &str,
        permissions: Option<Value>,
    ) -> HostResult<Value> {
        let mut st = self.lock();
        st.next_id += 1;
        let id = format!("role-{}", st.next_id);
        let role = json!({"id": id, "name": name, "description": description,
            "permissions": permissions, "orgId": scope_key(scope)});
        st.roles.insert(id, role.clone());
        Ok(role)
    }

    async fn role_get(&self, _scope: &HostScope, role_id: &str) -> HostResult<Option<Value>> {
        Ok(self.lock().roles.get(role_id).cloned())
    }

    async fn role_list(&self, scope: &HostScope) -> HostResult<Vec<Value>> {
        let key = scope_key(scope);
        Ok(self
            .lock()
            .roles
            .values()
            .filter(|r| r.get("orgId").and_then(Value::as_str) == Some(&key))
            .cloned()
            .collect())
    }

    async fn role_update(
        &self,
        _scope: &HostScope,
        role_id: &str,
        updates: Map<String, Value>,
    ) -> HostResult<Value> {
        let mut st = self.lock();
        let role = st
            .roles
            .get_mut(role_id)
            .ok_or_else(|| HostError::NotFound(format!("role '{role_id}'")))?;
        if let Value::Object(m) = role {
            m.extend(updates);
        }
        Ok(role.clone())
    }

    async fn role_delete(&self, _scope: &HostScope, role_id: &str) -> HostResult<bool> {
        Ok(self.lock().roles.remove(role_id).is_some())
    }

    async fn role_list_users(&self, _scope: &HostScope, role_id: &str) -> HostResult<Vec<String>> {
        Ok(self
            .lock()
            .role_users
            .get(role_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn role_list_forms(&self, _scope: &HostScope, role_id: &str) -> HostResult<Vec<String>> {
        Ok(self
            .lock()
            .role_forms
            .get(role_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn role_assign_users(
        &self,
        _scope: &HostScope,
        role_id: &str,
        user_ids: Vec<String>,
    ) -> HostResult<()> {
        self.lock()
            .role_users
            .entry(role_id.to_owned())
            .or_default()
            .extend(user_ids);
        Ok(())
    }

    async fn role_assign_forms(
        &self,
        _scope: &HostScope,
        role_id: &str,
        form_ids: Vec<String>,
    ) -> HostResult<()> {
        self.lock()
            .role_forms
            .entry(role_id.to_owned())
            .or_default()
            .extend(form_ids);
        Ok(())
    }

    async fn form_list(&self, _scope: &HostScope) -> HostResult<Vec<Value>> {
        Ok(self.lock().forms.values().cloned().collect())
    }

    async fn form_get(&self, _scope: &HostScope, form_id: &str) -> HostResult<Option<Value>> {
        Ok(self.lock().forms.get(form_id).cloned())
    }

    async fn file_read(
        &self,
        _scope: &HostScope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<Vec<u8>> {
        let path = normalize_path(path)?;
        self.lock()
            .files
            .get(&(location, path.clone()))
            .cloned()
            .ok_or(HostError::NotFound(format!("file '{path}'")))
    }

    async fn file_write(
        &self,
        _scope: &HostScope,
        location: FileLocation,
        path: &str,
        content: Vec<u8>,
    ) -> HostResult<()> {
        let path = normalize_path(path)?;
        self.lock().files.insert((location, path), content);
        Ok(())
    }

    async fn file_list(
        &self,
        _scope: &HostScope,
        location: FileLocation,
        dir: &str,
    ) -> HostResult<Vec<String>> {
        let dir = normalize_path(dir)?;
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        Ok(self
            .lock()
            .files
            .keys()
            .filter(|(l, p)| *l == location && p.starts_with(&prefix))
            .map(|(_, p)| p[prefix.len()..].to_owned())
            .collect())
    }

    async fn file_delete(
        &self,
        _scope: &HostScope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<bool> {
        let path = normalize_path(path)?;
        Ok(self.lock().files.remove(&(location, path)).is_some())
    }

    async fn file_exists(
        &self,
        _scope: &HostScope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<bool> {
        let path = normalize_path(path)?;
        Ok(self.lock().files.contains_key(&(location, path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_missing_field() {
        let err = HostOp::parse("config.get", "{}").unwrap_err();
        assert_eq!(
            err,
            HostError::InvalidInput("config.get: 'key' is required".into())
        );
        let err = HostOp::parse("files.read", r#"{"path":"a","location":"disk"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("location must be 'workspace' or 'temp'"),
            "{err}"
        );
        assert_eq!(
            HostOp::parse("nope.x", "{}").unwrap_err(),
            HostError::Unsupported("nope.x".into())
        );
    }

    #[test]
    fn normalize_rejects_escape() {
        assert_eq!(normalize_path("a/./b/../c").unwrap(), "a/c");
        assert!(normalize_path("../etc/passwd").is_err());
    }
}

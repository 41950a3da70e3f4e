//! `/api/workflows` and `/api/data-providers`: what the workspace offers, read from the engine's
//! registry (no rescan per request; the workspace watcher keeps the registry current).
//!
//! Source files are shown relative to the workspace folder: absolute server paths are never sent.
//! Import-error tracebacks are shown to platform administrators only (they quote workspace code
//! and server paths). Depends on the engine's registry types, not on storage.

use std::path::{Path, PathBuf};

use bifrost_engine::{
    DataProviderInfo, ExecutionMode, ParameterInfo, WorkflowInfo, WorkspaceError,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use warp::http::StatusCode;

use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::RequestContext;
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};

/// The first listed workflow's name, for the document's links.
const FIRST_WORKFLOW: &str = "$response.body#/workflows/0/name";

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "workflows.list",
            "/api/workflows",
            Access::Authenticated,
            "Metadata of every workflow in the workspace, plus the workspace's import errors",
        )
        .ok::<WorkflowList>("The workflows and import errors")
        .link("GetWorkflow", "workflows.get", "name", FIRST_WORKFLOW)
        .link(
            "WorkflowForm",
            "forms.workflowForm",
            "workflowName",
            FIRST_WORKFLOW,
        )
        .link(
            "CallEndpoint",
            "endpoints.post",
            "workflowName",
            FIRST_WORKFLOW,
        )
        .link(
            "CallEndpointGet",
            "endpoints.get",
            "workflowName",
            FIRST_WORKFLOW,
        )
        .link(
            "CallEndpointPut",
            "endpoints.put",
            "workflowName",
            FIRST_WORKFLOW,
        )
        .link(
            "CallEndpointDelete",
            "endpoints.delete",
            "workflowName",
            FIRST_WORKFLOW,
        )
        .guarded(|state, ctx, _call| async move {
            Ok(json_response(StatusCode::OK, &list(&state, &ctx)))
        }),
        Endpoint::get(
            "workflows.get",
            "/api/workflows/{name}",
            Access::Authenticated,
            "Metadata of one workflow",
        )
        .ok::<WorkflowDto>("The workflow")
        .guarded(|state, _ctx, call| async move {
            Ok(json_response(
                StatusCode::OK,
                &get(&state, call.param("name"))?,
            ))
        }),
        Endpoint::get(
            "dataProviders.list",
            "/api/data-providers",
            Access::Authenticated,
            "Metadata of every data provider in the workspace",
        )
        .ok::<DataProviderList>("The data providers")
        .guarded(|state, _ctx, _call| async move {
            Ok(json_response(StatusCode::OK, &data_providers(&state)))
        }),
    ]
}

/// A workflow's parameter (v1 `WorkflowParameter`).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterDto {
    pub name: String,
    /// `string`, `int`, `bool`, `float`, `json`, `list`, `email`, `datetime` or `date`.
    #[serde(rename = "type")]
    pub kind: String,
    pub label: Option<String>,
    pub required: bool,
    pub validation: Option<Value>,
    pub data_provider: Option<String>,
    pub default_value: Option<Value>,
    pub help_text: Option<String>,
    /// Choices of a `Literal[...]` or `Enum` parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<OptionDto>>,
}

#[derive(Serialize, JsonSchema)]
pub struct OptionDto {
    pub label: String,
    pub value: Value,
}

/// A workflow's metadata (v1 `WorkflowMetadata`).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowDto {
    pub name: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub parameters: Vec<ParameterDto>,
    /// True when the parameters come from type hints rather than `@param`.
    pub parameters_inferred: bool,
    /// `sync` or `async`.
    pub execution_mode: String,
    pub timeout_seconds: u32,
    pub retry_policy: Option<Value>,
    /// A 5-field cron expression.
    pub schedule: Option<String>,
    pub endpoint_enabled: bool,
    pub allowed_methods: Vec<String>,
    pub disable_global_key: bool,
    pub public_endpoint: bool,
    /// The defining file, relative to the workspace folder (`/`-separated).
    pub source_file: String,
    pub line: u32,
    pub is_async: bool,
}

/// A workspace file that failed to import, or a duplicate name.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportErrorDto {
    /// Relative to the workspace folder.
    pub file: String,
    pub line: Option<u32>,
    pub error_type: String,
    pub message: String,
    /// Platform administrators only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowDto>,
    pub import_errors: Vec<ImportErrorDto>,
}

/// A data provider's metadata (v1 `DataProviderMetadata`).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataProviderDto {
    pub name: String,
    pub description: String,
    pub category: String,
    pub cache_ttl_seconds: u32,
    pub parameters: Vec<ParameterDto>,
    pub source_file: String,
    pub line: u32,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataProviderList {
    pub data_providers: Vec<DataProviderDto>,
}

fn list(state: &ApiState, ctx: &RequestContext) -> WorkflowList {
    let registry = state.runner.registry();
    let root = Workspace::new(&state.settings.workspace);
    WorkflowList {
        workflows: registry
            .workflows
            .iter()
            .map(|w| workflow_dto(w, &root))
            .collect(),
        import_errors: registry
            .errors
            .iter()
            .map(|e| import_error_dto(e, &root, ctx.is_platform_admin()))
            .collect(),
    }
}

fn get(state: &ApiState, name: &str) -> Result<WorkflowDto, ApiError> {
    let registry = state.runner.registry();
    registry
        .workflow(name)
        .map(|w| workflow_dto(w, &Workspace::new(&state.settings.workspace)))
        .ok_or_else(|| ApiError::NotFound(format!("workflow {name:?} not found")))
}

fn data_providers(state: &ApiState) -> DataProviderList {
    let registry = state.runner.registry();
    let root = Workspace::new(&state.settings.workspace);
    DataProviderList {
        data_providers: registry
            .data_providers
            .iter()
            .map(|d| data_provider_dto(d, &root))
            .collect(),
    }
}

/// The workspace folder as configured and as resolved (the engine may report either form).
struct Workspace {
    configured: PathBuf,
    resolved: Option<PathBuf>,
}

impl Workspace {
    fn new(path: &Path) -> Self {
        Self {
            configured: path.to_owned(),
            resolved: std::fs::canonicalize(path).ok(),
        }
    }

    /// `text` with every mention of the workspace folder made relative (tracebacks quote files
    /// by absolute path).
    fn strip_from_text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for root in std::iter::once(&self.configured).chain(self.resolved.as_ref()) {
            let prefix = format!("{}/", root.display());
            if prefix.len() > 1 {
                out = out.replace(&prefix, "");
            }
        }
        out
    }

    /// `path` relative to the workspace, `/`-separated; a path outside it (which the engine does
    /// not produce) is reduced to its file name so no server path leaks.
    fn relative(&self, path: &Path) -> String {
        let inside = path
            .strip_prefix(&self.configured)
            .ok()
            .or_else(|| {
                self.resolved
                    .as_deref()
                    .and_then(|root| path.strip_prefix(root).ok())
            })
            .map(Path::to_path_buf)
            .or_else(|| {
                if path.is_relative() {
                    Some(path.to_path_buf())
                } else {
                    path.file_name().map(PathBuf::from)
                }
            })
            .unwrap_or_default();
        inside
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }
}

fn parameter_dto(p: &ParameterInfo) -> ParameterDto {
    ParameterDto {
        name: p.name.clone(),
        kind: p.kind.clone(),
        label: p.label.clone(),
        required: p.required,
        validation: p.validation.clone(),
        data_provider: p.data_provider.clone(),
        default_value: p.default_value.clone(),
        help_text: p.help_text.clone(),
        options: p.options.as_ref().map(|options| {
            options
                .iter()
                .map(|o| OptionDto {
                    label: o.label.clone(),
                    value: o.value.clone(),
                })
                .collect()
        }),
    }
}

fn workflow_dto(w: &WorkflowInfo, root: &Workspace) -> WorkflowDto {
    WorkflowDto {
        name: w.name.clone(),
        description: w.description.clone(),
        category: w.category.clone(),
        tags: w.tags.clone(),
        parameters: w.parameters.iter().map(parameter_dto).collect(),
        parameters_inferred: w.parameters_inferred,
        execution_mode: match w.execution_mode {
            ExecutionMode::Sync => "sync",
            ExecutionMode::Async => "async",
        }
        .to_owned(),
        timeout_seconds: w.timeout_seconds,
        retry_policy: w.retry_policy.clone(),
        schedule: w.schedule.clone(),
        endpoint_enabled: w.endpoint_enabled,
        allowed_methods: w.allowed_methods.clone(),
        disable_global_key: w.disable_global_key,
        public_endpoint: w.public_endpoint,
        source_file: root.relative(&w.source_file_path),
        line: w.line,
        is_async: w.is_async,
    }
}

fn data_provider_dto(d: &DataProviderInfo, root: &Workspace) -> DataProviderDto {
    DataProviderDto {
        name: d.name.clone(),
        description: d.description.clone(),
        category: d.category.clone(),
        cache_ttl_seconds: d.cache_ttl_seconds,
        parameters: d.parameters.iter().map(parameter_dto).collect(),
        source_file: root.relative(&d.source_file_path),
        line: d.line,
    }
}

fn import_error_dto(e: &WorkspaceError, root: &Workspace, admin: bool) -> ImportErrorDto {
    ImportErrorDto {
        file: root.relative(&e.file),
        line: e.line,
        error_type: e.error_type.clone(),
        message: e.message.clone(),
        traceback: admin.then(|| root.strip_from_text(&e.traceback)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shown_relative_to_the_workspace_and_never_absolute() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let root = Workspace::new(dir.path());
        assert_eq!(root.relative(&dir.path().join("sub/a.py")), "sub/a.py");
        let resolved = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(root.relative(&resolved.join("b.py")), "b.py");
        assert_eq!(root.relative(Path::new("/etc/elsewhere/c.py")), "c.py");
        assert_eq!(root.relative(Path::new("rel/d.py")), "rel/d.py");
        let tb = format!("File \"{}/sub/a.py\", line 3", dir.path().display());
        assert_eq!(root.strip_from_text(&tb), "File \"sub/a.py\", line 3");
    }
}

//! `GET /api/health`: is this instance able to serve, and what is it running?
//!
//! Anonymous, cheap, and honest: it pings storage and the secret store, and reports the Python
//! runtime and the workspace (workflow count, import errors). A dependency that is down makes the
//! answer 503 with `Retry-After`, so load balancers and the Functions host stop sending work.

use schemars::JsonSchema;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::http::access::Access;
use crate::http::endpoint::Endpoint;
use crate::http::error::json_response;
use crate::state::AppState;

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "health.get",
            "/api/health",
            Access::Public,
            "Version, storage, secret store, Python runtime and workspace status",
        )
        .ok::<HealthReport>("Healthy")
        .answers::<HealthReport>(503, "A dependency is down; see Retry-After")
        .with_head()
        .public(|state, _call| async move { Ok(handle(&state).await) }),
    ]
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub status: &'static str,
    pub version: &'static str,
    pub functions_host: bool,
    pub storage: DependencyHealth,
    pub secrets: DependencyHealth,
    pub python: PythonHealth,
    pub workspace: WorkspaceHealth,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyHealth {
    pub backend: &'static str,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DependencyHealth {
    /// The probe's outcome; the error text is shown because health is an operator's tool, but it
    /// never contains credentials (storage and secret errors don't carry them).
    pub fn from_probe<E: std::fmt::Display>(backend: &'static str, probe: Result<(), E>) -> Self {
        match probe {
            Ok(()) => Self {
                backend,
                status: "ok",
                error: None,
            },
            Err(e) => Self {
                backend,
                status: "unavailable",
                error: Some(e.to_string()),
            },
        }
    }
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PythonHealth {
    pub version: String,
    pub threads: usize,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceHealth {
    pub path: String,
    pub status: &'static str,
    pub workflows: usize,
    pub data_providers: usize,
    pub import_errors: usize,
}

async fn handle(state: &AppState) -> Response {
    let report = report(state).await;
    let healthy = report.status == "healthy";
    let mut response = json_response(
        if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &report,
    );
    if !healthy {
        response
            .headers_mut()
            .insert("retry-after", warp::http::HeaderValue::from_static("5"));
    }
    response
}

/// The report of this instance: dependencies probed now, the rest from memory.
async fn report(state: &AppState) -> HealthReport {
    let (storage, secrets) = tokio::join!(
        state.backends.storage_health(),
        state.backends.secrets_health()
    );
    let healthy = storage.is_ok() && secrets.is_ok();
    HealthReport {
        status: if healthy { "healthy" } else { "unhealthy" },
        version: env!("CARGO_PKG_VERSION"),
        functions_host: state.settings.under_functions_host,
        storage: DependencyHealth::from_probe(state.settings.storage.name(), storage),
        secrets: DependencyHealth::from_probe(state.settings.secrets.name(), secrets),
        python: PythonHealth {
            version: state.python_version.clone(),
            threads: state.settings.python_threads,
        },
        workspace: {
            let registry = state.runner.registry();
            WorkspaceHealth {
                path: state.settings.workspace.display().to_string(),
                // Import errors don't make the instance unhealthy: other workflows still run.
                status: if registry.errors.is_empty() {
                    "ok"
                } else {
                    "import_errors"
                },
                workflows: registry.workflows.len(),
                data_providers: registry.data_providers.len(),
                import_errors: registry.errors.len(),
            }
        },
    }
}

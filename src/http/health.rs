//! `GET /api/health`: is this instance able to serve, and what is it running?
//!
//! Anonymous, cheap, and honest: it pings storage and the secret store, and reports the Python
//! runtime and the workspace (workflow count, import errors). A dependency that is down makes the
//! answer 503 with `Retry-After`, so load balancers and the Functions host stop sending work.

use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::app::AppState;
use crate::http::access::{Access, Route};
use crate::http::error::json_response;

pub const ROUTES: &[Route] = &[Route {
    id: "health.get",
    method: "GET",
    path: "/api/health",
    access: Access::Public,
    summary: "Version, storage, secret store, Python runtime and workspace status",
}];

#[derive(Serialize)]
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

#[derive(Serialize)]
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PythonHealth {
    pub version: String,
    pub threads: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceHealth {
    pub path: String,
    pub status: &'static str,
    pub workflows: usize,
    pub data_providers: usize,
    pub import_errors: usize,
}

pub async fn handle(state: Arc<AppState>) -> Response {
    let report = state.health().await;
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

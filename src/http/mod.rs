//! The HTTP API: every operation declared once, dispatched by one router, errors mapped in one
//! place.
//!
//! Each resource module lists its operations in `endpoints()` ([`endpoint::Endpoint`]: route,
//! access, OpenAPI description and handler); [`endpoints`] joins them, and that list is the
//! whole API surface: [`router`] dispatches it, [`access::all_routes`] is the permission table
//! the tests walk, [`openapi`] documents it. Handlers return `Result<_, ApiError>`; the error
//! becomes the JSON error body in [`error`]. Only this module (and [`crate::server`]) knows
//! warp.

pub mod access;
pub mod audit;
pub mod body;
pub mod config;
pub mod context;
pub mod endpoint;
pub mod error;
pub mod executions;
pub mod forms;
pub mod health;
pub mod input;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod organizations;
pub mod roles;
pub mod router;
pub mod run;
pub mod schedules;
pub mod secrets;
pub mod users;
pub mod workflow_keys;
pub mod workflows;

/// Every operation of the API, declared once by its module (see [`endpoint`]), in the order
/// they are documented.
pub fn endpoints() -> &'static [endpoint::Endpoint] {
    static ALL: std::sync::OnceLock<Vec<endpoint::Endpoint>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        [
            health::endpoints(),
            organizations::endpoints(),
            users::endpoints(),
            roles::endpoints(),
            config::endpoints(),
            secrets::endpoints(),
            keys::endpoints(),
            workflow_keys::endpoints(),
            workflows::endpoints(),
            executions::endpoints(),
            schedules::endpoints(),
            forms::endpoints(),
            run::endpoints(),
            audit::endpoints(),
            metrics::endpoints(),
            openapi::endpoints(),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
}

use std::sync::Arc;

use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::state::AppState;
use error::json_response;

/// The address of the client a request came from: the socket's peer, or — when that peer is a
/// trusted proxy — the nearest untrusted address its forwarding headers name. The server
/// attaches it to every request as an extension; anonymous rate limits are keyed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// What the API's handlers reach: the application's state (through `Deref`) and the API's own
/// per-instance state — identity caches, rate-limit buckets, open log streams.
pub struct ApiState {
    pub app: Arc<AppState>,
    pub identity: context::Identity,
}

impl ApiState {
    pub fn new(app: Arc<AppState>) -> Self {
        Self {
            app,
            identity: context::Identity::new(),
        }
    }
}

impl std::ops::Deref for ApiState {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.app
    }
}

/// The API as one warp filter: the host's readiness probe at `/` and every endpoint, with the
/// error mapping attached.
pub fn routes(state: Arc<ApiState>) -> BoxedFilter<(Response,)> {
    // The Functions host's readiness probe: any answer means "started".
    let readiness =
        warp::path::end().map(|| json_response(StatusCode::OK, &json!({ "status": "ready" })));
    let router = Arc::new(router::Router::new(endpoints()));
    readiness
        .or(router::filter(state, router))
        .unify()
        .recover(error::recover)
        .unify()
        .boxed()
}

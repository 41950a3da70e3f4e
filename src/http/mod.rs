//! The HTTP API: the one route table, request-shape filters and the error mapping.
//!
//! [`routes`] assembles every route once; it is the single place to read the whole API surface.
//! Handlers return `Result<_, ApiError>` and become responses right at the handler; rejections
//! only mean "not this route" (or a malformed request shape) and are mapped by
//! [`error::recover`]. Only this module (and [`crate::server`]) knows warp.

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
            openapi::endpoints(),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
}

/// Every module's declared routes; [`access::all_routes`] flattens them.
pub const ROUTE_TABLES: &[&[access::Route]] = &[
    roles::ROUTES,
    config::ROUTES,
    secrets::ROUTES,
    keys::ROUTES,
    workflow_keys::ROUTES,
    workflows::ROUTES,
    executions::ROUTES,
    schedules::ROUTES,
    forms::ROUTES,
    run::ROUTES,
    audit::ROUTES,
    metrics::ROUTES,
];

use std::sync::Arc;

use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::state::AppState;
use error::json_response;

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

/// Every route of the API, with the error mapping attached.
pub fn routes(state: Arc<ApiState>) -> BoxedFilter<(Response,)> {
    // The Functions host's readiness probe: any answer means "started".
    let readiness =
        warp::path::end().map(|| json_response(StatusCode::OK, &json!({ "status": "ready" })));

    let router = Arc::new(router::Router::new(endpoints()));
    let api = one_of(
        readiness.boxed(),
        [
            router::filter(state.clone(), router),
            roles::routes(state.clone()),
            config::routes(state.clone()),
            secrets::routes(state.clone()),
            keys::routes(state.clone()),
            workflow_keys::routes(state.clone()),
            workflows::routes(state.clone()),
            executions::routes(state.clone()),
            run::routes(state.clone()),
            schedules::routes(state.clone()),
            forms::routes(state.clone()),
            audit::routes(state.clone()),
            metrics::routes(state.clone()),
        ],
    );
    api.recover(error::recover).unify().boxed()
}

/// The first of `routes` that accepts a request. Boxed at every step: the type of a long
/// `.or().unify()` chain nests once per route, and checking its `Filter` bound grows
/// exponentially with the depth (17 unboxed levels took the compiler nine minutes).
pub(crate) fn one_of(
    first: BoxedFilter<(Response,)>,
    rest: impl IntoIterator<Item = BoxedFilter<(Response,)>>,
) -> BoxedFilter<(Response,)> {
    rest.into_iter()
        .fold(first, |chain, next| chain.or(next).unify().boxed())
}

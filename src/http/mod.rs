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
pub mod run;
pub mod schedules;
pub mod secrets;
pub mod users;
pub mod workflow_keys;
pub mod workflows;

/// Every module's declared routes; [`access::all_routes`] flattens them.
pub const ROUTE_TABLES: &[&[access::Route]] = &[
    health::ROUTES,
    organizations::ROUTES,
    users::ROUTES,
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
    openapi::ROUTES,
];

use std::sync::Arc;

use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::app::AppState;
use error::json_response;

/// Every route of the API, with the error mapping attached.
pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };

    // The Functions host's readiness probe: any answer means "started".
    let readiness =
        warp::path::end().map(|| json_response(StatusCode::OK, &json!({ "status": "ready" })));

    let health = warp::path!("api" / "health")
        .and(warp::get().or(warp::head()).unify())
        .and(with_state.clone())
        .then(health::handle);

    readiness
        .or(health)
        .unify()
        .or(organizations::routes(state.clone()))
        .unify()
        .or(users::routes(state.clone()))
        .unify()
        .or(roles::routes(state.clone()))
        .unify()
        .or(config::routes(state.clone()))
        .unify()
        .or(secrets::routes(state.clone()))
        .unify()
        .or(keys::routes(state.clone()))
        .unify()
        .or(workflow_keys::routes(state.clone()))
        .unify()
        .or(workflows::routes(state.clone()))
        .unify()
        .or(executions::routes(state.clone()))
        .unify()
        .or(run::routes(state.clone()))
        .unify()
        .or(schedules::routes(state.clone()))
        .unify()
        .or(forms::routes(state.clone()))
        .unify()
        .or(audit::routes(state.clone()))
        .unify()
        .or(metrics::routes(state.clone()))
        .unify()
        .or(openapi::routes(state))
        .unify()
        .recover(error::recover)
        .unify()
        .boxed()
}

//! The HTTP API: the one route table, request-shape filters and the error mapping.
//!
//! [`routes`] assembles every route once; it is the single place to read the whole API surface.
//! Handlers return `Result<_, ApiError>` and become responses right at the handler; rejections
//! only mean "not this route" (or a malformed request shape) and are mapped by
//! [`error::recover`]. Only this module (and [`crate::server`]) knows warp.

pub mod body;
pub mod error;
pub mod health;

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
        .recover(error::recover)
        .unify()
        .boxed()
}

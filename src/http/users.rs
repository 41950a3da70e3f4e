//! placeholder: being written

use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::app::AppState;
use crate::http::access::Route;

pub const ROUTES: &[Route] = &[];

pub fn routes(_state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    warp::any()
        .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
        .boxed()
}

//! Dispatch: one warp filter that finds the [`Endpoint`] a request names, authorizes its caller
//! (guarded operations) and runs its handler.
//!
//! Matching is by path template (`/api/organizations/{orgId}`): literal segments win over
//! parameters at the first place two templates differ, so `/api/executions/stream` is not an
//! execution id. A path that matches with another method answers 405 with `Allow`; no match is
//! 404. Parameters are percent-decoded (a segment that does not decode to UTF-8 is a 400 naming
//! the parameter). `HEAD` is served by the `GET` of operations declared `with_head`.
//!
//! Depends on [`endpoint`](super::endpoint) and [`context`](super::context) only; the list of
//! operations comes from [`super::endpoints`].

use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;

use super::ApiState;
use super::access::Access;
use super::body::{self, Deferred};
use super::context::authorize;
use super::endpoint::{Call, Endpoint, body_limit};
use super::error::ApiError;
use crate::http::ClientAddr;

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

/// A path template split once into segments.
struct Template {
    segments: Vec<Segment>,
}

impl Template {
    fn parse(path: &'static str) -> Self {
        let segments = path
            .trim_start_matches('/')
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name),
                    None => Segment::Literal(s),
                },
            )
            .collect();
        Self { segments }
    }

    /// The raw values of the parameters, when `path` (split) fits this template.
    fn fit<'p>(&self, path: &[&'p str]) -> Option<Vec<(&'static str, &'p str)>> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(path) {
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => params.push((*name, *part)),
            }
        }
        Some(params)
    }

    /// Literal before parameter at the first segment where two templates differ: the
    /// lexicographic order of their segment kinds (a total order, as sorting needs).
    fn specificity(&self, other: &Self) -> Ordering {
        self.kinds().cmp(other.kinds())
    }

    /// `false` for a literal segment, `true` for a parameter.
    fn kinds(&self) -> impl Iterator<Item = bool> + '_ {
        self.segments.iter().map(|s| matches!(s, Segment::Param(_)))
    }
}

/// Every endpoint with its parsed template, most specific first.
pub struct Router {
    table: Vec<(Template, &'static Endpoint)>,
}

/// What a request path and method resolved to.
enum Found<'r> {
    Endpoint(&'static Endpoint, Vec<(&'static str, &'r str)>),
    /// The path exists with these methods only.
    OtherMethods(Vec<&'static str>),
    Nothing,
}

impl Router {
    pub fn new(endpoints: &'static [Endpoint]) -> Self {
        let mut table: Vec<_> = endpoints
            .iter()
            .map(|e| (Template::parse(e.route.path), e))
            .collect();
        table.sort_by(|(a, _), (b, _)| a.specificity(b));
        Self { table }
    }

    fn find<'r>(&self, method: &Method, path: &'r str) -> Found<'r> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut allowed = Vec::new();
        let mut matched_path: Option<&Template> = None;
        for (template, endpoint) in &self.table {
            let Some(params) = template.fit(&parts) else {
                continue;
            };
            // A less specific template fitting the same path is a different resource.
            if let Some(first) = matched_path
                && first.specificity(template) != Ordering::Equal
            {
                continue;
            }
            matched_path = Some(template);
            let method_fits = endpoint.route.method == method.as_str()
                || (method == Method::HEAD && endpoint.route.method == "GET" && endpoint.doc.head);
            if method_fits {
                return Found::Endpoint(endpoint, params);
            }
            allowed.push(endpoint.route.method);
            if endpoint.doc.head {
                allowed.push("HEAD");
            }
        }
        if allowed.is_empty() {
            Found::Nothing
        } else {
            Found::OtherMethods(allowed)
        }
    }
}

/// The filter serving every endpoint; a path no endpoint declares is rejected as not found
/// before anything of the request is taken, so other filters may still serve it.
pub fn filter(state: Arc<ApiState>, router: Arc<Router>) -> BoxedFilter<(Response,)> {
    let declared = {
        let router = router.clone();
        warp::method()
            .and(warp::path::full())
            .and_then(move |method: Method, path: warp::path::FullPath| {
                let known = !matches!(router.find(&method, path.as_str()), Found::Nothing);
                async move {
                    if known {
                        Ok((method, path))
                    } else {
                        Err(warp::reject::not_found())
                    }
                }
            })
            .untuple_one()
    };
    declared
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::ext::optional::<ClientAddr>())
        .and(body::deferred())
        .and_then(
            move |method: Method,
                  path: warp::path::FullPath,
                  headers: HeaderMap,
                  query: String,
                  client: Option<ClientAddr>,
                  body: Deferred| {
                let state = state.clone();
                let router = router.clone();
                async move {
                    let request = Request {
                        method,
                        headers,
                        query,
                        client: client.map(|c| c.0),
                        body,
                    };
                    match dispatch(&state, &router, path.as_str(), request).await {
                        Some(response) => Ok(response),
                        None => Err(warp::reject::not_found()),
                    }
                }
            },
        )
        .boxed()
}

struct Request {
    method: Method,
    headers: HeaderMap,
    query: String,
    client: Option<IpAddr>,
    body: Deferred,
}

/// The response of the endpoint `path` names, or `None` when it names none.
async fn dispatch(
    state: &Arc<ApiState>,
    router: &Router,
    path: &str,
    request: Request,
) -> Option<Response> {
    let (endpoint, raw_params) = match router.find(&request.method, path) {
        Found::Endpoint(endpoint, params) => (endpoint, params),
        Found::OtherMethods(allowed) => {
            return Some(method_not_allowed(&request.method, &allowed));
        }
        Found::Nothing => return None,
    };
    let result = async {
        let params = decode_params(&raw_params)?;
        let mut call = Call {
            route: endpoint.route.id,
            method: request.method,
            headers: request.headers,
            query: request.query,
            client: request.client,
            params,
            body: Some(request.body),
            body_limit: state.settings.limits.anonymous_max_body,
        };
        let ctx = if endpoint.route.access == Access::Public {
            None
        } else {
            let ctx = authorize(
                state,
                endpoint.route.id,
                &call.headers,
                &call.query,
                call.client,
            )
            .await?;
            call.body_limit = body_limit(state, &ctx);
            Some(ctx)
        };
        (endpoint.handler)(state.clone(), ctx, call).await
    }
    .await;
    Some(result.unwrap_or_else(ApiError::into_response))
}

fn decode_params(raw: &[(&'static str, &str)]) -> Result<Vec<(&'static str, String)>, ApiError> {
    raw.iter()
        .map(|(name, value)| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map(|v| (*name, v.into_owned()))
                .map_err(|_| {
                    ApiError::bad_request(*name, format!("{name} is not valid UTF-8 once decoded"))
                })
        })
        .collect()
}

fn method_not_allowed(method: &Method, allowed: &[&str]) -> Response {
    let mut response = ApiError::MethodNotAllowed(method.to_string()).into_response();
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert("allow", value);
    }
    debug_assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_win_over_parameters() {
        let a = Template::parse("/api/executions/{id}");
        let b = Template::parse("/api/executions/stream");
        assert_eq!(b.specificity(&a), Ordering::Less);
        // A total order, whatever the mix (sorting panics on one that is not).
        let mut all: Vec<Template> = [
            "/api/{a}/x/{b}",
            "/api/x/{a}/y",
            "/api/{a}/{b}/y",
            "/api/x/y/{a}",
            "/api/x",
            "/api/{a}",
        ]
        .into_iter()
        .map(Template::parse)
        .collect();
        all.sort_by(|a, b| a.specificity(b));
        assert!(matches!(all[0].segments[1], Segment::Literal("x")));
        assert_eq!(
            a.fit(&["api", "executions", "abc"]),
            Some(vec![("id", "abc")])
        );
        assert_eq!(a.fit(&["api", "executions", ""]), None);
        assert_eq!(b.fit(&["api", "executions", "abc"]), None);
    }

    #[test]
    fn parameters_are_percent_decoded() {
        let decoded = decode_params(&[("name", "my%20flow")]).unwrap();
        assert_eq!(decoded, vec![("name", "my flow".to_owned())]);
        assert!(decode_params(&[("name", "%ff")]).is_err());
    }
}

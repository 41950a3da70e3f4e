//! The front door: connections, request ids, request logs, panics, host invocations, shutdown.
//!
//! Every request passes through [`Frontend::handle`], which gives it an `x-request-id`, works
//! out the client's address ([`ClientAddr`], from forwarding headers only behind a trusted
//! proxy), logs one redacted line for it, turns a panic anywhere below into a 500 JSON body
//! without internals, and — under the Functions host only — sends `POST /{FunctionName}`
//! envelopes to [`crate::host::invoke`]. Everything else goes to the HTTP API ([`crate::http`]).
//! Every response says `X-Content-Type-Options: nosniff`, and API answers are `no-store` unless
//! they say otherwise. [`serve`] drains in-flight requests on shutdown.
//!
//! Invariants: this is the only place that accepts connections, and the only place that catches
//! panics, so no handler needs to. The payload routes exist only when the Functions host started
//! us: a standalone server answers 404 for them, because their envelopes carry headers, rights
//! and timer firings that only the host may assert.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use tokio::net::TcpListener;
use tower_service::Service;
use tracing::Instrument;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Request, StatusCode};
use warp::reply::Response;

use crate::host::envelope::InvocationRequest;
use crate::host::invoke::{Dispatch, HttpApi, Invocations};
use crate::http::ClientAddr;
use crate::http::error::{ApiError, json_response};
use crate::settings::TrustedProxies;
use crate::telemetry::redact_query;

/// Who may tell us the client's address: trusted proxies, and a known Front Door.
#[derive(Clone, Debug, Default)]
pub struct ClientAddressing {
    pub trusted_proxies: TrustedProxies,
    /// Lower-cased `X-Azure-FDID` of our Front Door.
    pub front_door_id: Option<String>,
}

pub struct Frontend {
    api: BoxedFilter<(Response,)>,
    /// `None` on a standalone server: the payload routes do not exist there.
    invocations: Option<Invocations>,
    max_body_bytes: u64,
    addressing: ClientAddressing,
}

impl Frontend {
    /// `invocations`: the host's payload-mode functions, only when running under the host.
    pub fn new(
        api: BoxedFilter<(Response,)>,
        invocations: Option<Invocations>,
        max_body_bytes: u64,
        addressing: ClientAddressing,
    ) -> Self {
        Self {
            api,
            invocations,
            max_body_bytes,
            addressing,
        }
    }

    pub async fn handle<B>(self: Arc<Self>, mut request: Request<B>, peer: IpAddr) -> Response
    where
        B: http_body::Body + Send + Sync + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Display,
    {
        let started = Instant::now();
        let request_id = request_id(&request);
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().map(redact_query).unwrap_or_default();
        let client = client_addr(peer, request.headers(), &self.addressing);
        request.extensions_mut().insert(ClientAddr(client));
        let span = tracing::info_span!("request", id = %request_id);

        let work = async {
            match self.invocations.as_ref().zip(invocation_name(&request)) {
                Some((invocations, function)) => self.invoke(invocations, function, request).await,
                None => self.call_api(request).await,
            }
        };
        let mut response = AssertUnwindSafe(work.instrument(span.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let detail = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into());
                let _guard = span.enter();
                ApiError::Internal(format!("handler panicked: {detail}")).into_response()
            });

        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", value);
        }
        let headers = response.headers_mut();
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        // API answers carry tenant data, and some carry raw keys: no cache may keep them.
        if path.starts_with("/api/") && !headers.contains_key(http::header::CACHE_CONTROL) {
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
        }
        let status = response.status().as_u16();
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let _guard = span.enter();
        // The host's readiness probe polls `/` every 25 ms while we start; keep it out of info logs.
        if path == "/" {
            tracing::debug!(target: "bifrost::http", %method, %path, status, elapsed_ms, "request");
        } else {
            tracing::info!(target: "bifrost::http", %method, %path, %query, status, elapsed_ms, "request");
        }
        response
    }

    async fn call_api<B>(&self, request: Request<B>) -> Response
    where
        B: http_body::Body + Send + Sync + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut service = warp::service(self.api.clone());
        match service.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    async fn invoke<B>(
        &self,
        invocations: &Invocations,
        function: String,
        request: Request<B>,
    ) -> Response
    where
        B: http_body::Body + Send + Sync + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let body = match Limited::new(request.into_body(), self.max_body_bytes as usize)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return ApiError::PayloadTooLarge {
                    limit: self.max_body_bytes,
                }
                .into_response();
            }
            Err(e) => {
                return ApiError::BadRequest {
                    field: None,
                    message: format!("invocation body could not be read: {e}"),
                }
                .into_response();
            }
        };
        let envelope: InvocationRequest = match serde_json::from_slice(&body) {
            Ok(envelope) => envelope,
            Err(e) => return ApiError::invalid_json(&e).into_response(),
        };
        match invocations.dispatch(&function, envelope, self).await {
            Dispatch::Done(reply) => json_response(StatusCode::OK, &reply),
            // Non-2xx tells the host the invocation failed (it then retries or poisons).
            Dispatch::Failed(reply) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &reply),
            Dispatch::UnknownFunction => {
                ApiError::NotFound(format!("no function named {function:?} is registered"))
                    .into_response()
            }
        }
    }
}

impl HttpApi for Frontend {
    fn call(&self, request: http::Request<Bytes>) -> BoxFuture<'_, http::Response<Bytes>> {
        Box::pin(async move {
            // A replayed HTTP trigger came through the host, which forwards the client's address.
            let mut request = request.map(Full::new);
            let host = IpAddr::from([127, 0, 0, 1]);
            let addressing = ClientAddressing {
                trusted_proxies: TrustedProxies::loopback(),
                front_door_id: self.addressing.front_door_id.clone(),
            };
            let client = client_addr(host, request.headers(), &addressing);
            request.extensions_mut().insert(ClientAddr(client));
            let response = self.call_api(request).await;
            let (parts, body) = response.into_parts();
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    tracing::error!(error = %e, "response body could not be collected");
                    Bytes::new()
                }
            };
            http::Response::from_parts(parts, bytes)
        })
    }
}

/// `POST /{FunctionName}` from the host: one path segment that is not the API prefix.
fn invocation_name<B>(request: &Request<B>) -> Option<String> {
    if request.method() != http::Method::POST {
        return None;
    }
    let segment = request.uri().path().strip_prefix('/')?;
    if segment.is_empty() || segment.contains('/') || segment.eq_ignore_ascii_case("api") {
        return None;
    }
    Some(segment.to_owned())
}

/// The client behind `peer`: the peer itself unless it is a trusted proxy; then, for a request
/// through our Front Door (its `X-Azure-FDID`), Front Door's `X-Azure-ClientIP`; else the
/// rightmost `X-Forwarded-For` entry that is not a trusted proxy (entries to its left are the
/// client's own claims), else `X-Azure-ClientIP`, else the peer.
fn client_addr(peer: IpAddr, headers: &http::HeaderMap, addressing: &ClientAddressing) -> IpAddr {
    let trusted = &addressing.trusted_proxies;
    if !trusted.contains(peer) {
        return peer;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ours) = &addressing.front_door_id
        && header("x-azure-fdid").is_some_and(|id| id.trim().eq_ignore_ascii_case(ours))
        && let Some(client) = header("x-azure-clientip").and_then(parse_forwarded_addr)
    {
        return client;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(parse_forwarded_addr)
        .collect();
    if let Some(client) = forwarded.iter().rev().find(|ip| !trusted.contains(**ip)) {
        return *client;
    }
    headers
        .get("x-azure-clientip")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_forwarded_addr)
        .unwrap_or(peer)
}

/// `1.2.3.4`, `1.2.3.4:5678` (App Service adds the port), `::1` or `[::1]:5678`.
fn parse_forwarded_addr(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

/// The caller's `x-request-id` when it is sane, else the host's invocation id, else a new one.
fn request_id<B>(request: &Request<B>) -> String {
    let sane = |v: &&str| {
        !v.is_empty()
            && v.len() <= 128
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    for header in ["x-request-id", "x-azure-functions-invocationid"] {
        if let Some(v) = request
            .headers()
            .get(header)
            .and_then(|v| v.to_str().ok())
            .filter(sane)
        {
            return v.to_owned();
        }
    }
    uuid::Uuid::new_v4().to_string()
}

/// Serves `frontend` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    frontend: Arc<Frontend>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually EMFILE; back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let frontend = frontend.clone();
        let peer = peer.ip();
        let service = hyper::service::service_fn(move |request| {
            let frontend = frontend.clone();
            async move { Ok::<_, Infallible>(frontend.handle(request, peer).await) }
        });
        let builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        let connection = builder
            .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[test]
    fn invocations_are_single_segment_posts() {
        assert_eq!(
            invocation_name(&req("POST", "/execution_cleanup")).as_deref(),
            Some("execution_cleanup")
        );
        assert_eq!(invocation_name(&req("POST", "/api/health")), None);
        assert_eq!(invocation_name(&req("POST", "/api")), None);
        assert_eq!(invocation_name(&req("GET", "/execution_cleanup")), None);
        assert_eq!(invocation_name(&req("POST", "/")), None);
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_without_internals() {
        use warp::Filter;
        let api = warp::path!("boom")
            .map(|| -> Response { panic!("secret detail: password=hunter2") })
            .boxed();
        let frontend = Arc::new(Frontend::new(
            api,
            Some(Invocations::default()),
            1024,
            ClientAddressing::default(),
        ));
        let request = Request::get("/boom").body(Full::new(Bytes::new())).unwrap();
        let response = frontend.clone().handle(request, LOCAL).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().contains_key("x-request-id"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "InternalServerError");
        assert!(!body.to_string().contains("hunter2"));
        // The server keeps serving after a panic.
        let again = frontend
            .handle(
                Request::get("/boom").body(Full::new(Bytes::new())).unwrap(),
                LOCAL,
            )
            .await;
        assert_eq!(again.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn payload_routes_exist_only_under_the_host() {
        use warp::Filter;
        let api = warp::any()
            .map(|| json_response(StatusCode::NOT_FOUND, &serde_json::json!({})))
            .boxed();
        let standalone = Arc::new(Frontend::new(api, None, 1024, ClientAddressing::default()));
        let request = Request::post("/retention")
            .body(Full::new(Bytes::from_static(
                b"{\"Data\":{},\"Metadata\":{}}",
            )))
            .unwrap();
        let response = standalone.handle(request, LOCAL).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "every answer says nosniff"
        );
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.9, 203.0.113.5:4431, 10.0.0.2"),
        );
        headers.insert("x-azure-clientip", HeaderValue::from_static("192.0.2.1"));
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let none = ClientAddressing::default();
        assert_eq!(client_addr(peer, &headers, &none), peer);
        let mut proxies = ClientAddressing {
            trusted_proxies: TrustedProxies::parse("10.0.0.0/8").unwrap(),
            front_door_id: None,
        };
        // The rightmost untrusted hop; what the client wrote to its left is not believed.
        assert_eq!(
            client_addr(peer, &headers, &proxies),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        // Through our Front Door, its client header wins over the forwarding chain.
        proxies.front_door_id = Some("fd-1234".into());
        headers.insert("x-azure-fdid", HeaderValue::from_static("FD-1234"));
        assert_eq!(
            client_addr(peer, &headers, &proxies),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-azure-fdid", HeaderValue::from_static("someone-elses"));
        assert_eq!(
            client_addr(peer, &headers, &proxies),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        headers.remove("x-forwarded-for");
        assert_eq!(
            client_addr(peer, &headers, &proxies),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_forwarded_addr("[2001:db8::1]:443"),
            Some("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn request_ids_are_reused_only_when_sane() {
        let mut r = req("GET", "/");
        r.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&r), "abc-123");
        r.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("bad id\"<>"));
        assert_ne!(request_id(&r), "bad id\"<>");
    }
}

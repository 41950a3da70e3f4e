//! A loopback HTTPS double of the Azure Key Vault secrets REST API (no emulator exists).
//!
//! It speaks the documented wire shapes (reference §3): `PUT/GET/DELETE /secrets/{name}[/{version}]`
//! and `GET /secrets` with `nextLink` paging, SecretBundle JSON with epoch-second attributes,
//! `{"error":{"code":..,"message":..,"innererror":..}}` bodies, the 401 challenge with
//! `WWW-Authenticate`, 404 `SecretNotFound`, 409 `ObjectIsDeletedButRecoverable` for soft-deleted
//! names, and scripted 429/503 answers with `Retry-After`. Every request is recorded so tests can
//! assert what the production client sent. Must not depend on the crate under test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The only token the double accepts.
pub const TOKEN: &str = "mock-vault-token-7c1e";
pub const TENANT: &str = "72f988bf-0000-4000-8000-000000000001";
/// Host name the certificate also covers, for tests that resolve a vault-like name to loopback.
pub const VAULT_HOST: &str = "bifrost-test.vault.azure.net";

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body_len: usize,
    pub status: u16,
    pub at: Instant,
}

struct Version {
    id: String,
    value: String,
    created: u64,
}

struct Stored {
    display_name: String,
    versions: Vec<Version>,
}

#[derive(Default)]
struct State {
    secrets: BTreeMap<String, Stored>,
    deleted: HashSet<String>,
    requests: Vec<Recorded>,
    /// name → (remaining 429 answers, Retry-After seconds)
    throttled: HashMap<String, (u32, u64)>,
    /// name → Retry-After seconds of a permanent 503
    unavailable: HashMap<String, u64>,
    forbidden: HashSet<String>,
    get_delay: Duration,
    page_size: usize,
    next_version: u64,
}

pub struct MockVault {
    pub addr: SocketAddr,
    pub url: String,
    pub ca_pem: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for MockVault {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockVault {
    pub async fn start() -> Self {
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            VAULT_HOST.to_owned(),
        ])
        .expect("certificate");
        let ca_pem = cert.cert.pem();
        let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
        let key = PrivateKeyDer::from(cert.signing_key);
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let url = format!("https://127.0.0.1:{}", addr.port());
        let state = Arc::new(Mutex::new(State {
            page_size: 25,
            ..State::default()
        }));

        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    let state = state.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(&state, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            })
        };

        Self {
            addr,
            url,
            ca_pem,
            state,
            task,
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("state"))
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.with_state(|s| s.requests.clone())
    }

    /// Authenticated requests whose path addresses `name` (any version), case-insensitively.
    /// The unauthenticated probe that triggers the 401 challenge is left out: it is protocol
    /// overhead of each new client, not a read or write of the secret.
    pub fn requests_for(&self, method: &str, name: &str) -> Vec<Recorded> {
        let prefix = format!("/secrets/{}", name.to_ascii_lowercase());
        self.requests()
            .into_iter()
            .filter(|r| {
                let path = r.path.to_ascii_lowercase();
                r.method == method
                    && r.authorization.is_some()
                    && (path == prefix || path.starts_with(&format!("{prefix}/")))
            })
            .collect()
    }

    pub fn throttle(&self, name: &str, times: u32, retry_after_secs: u64) {
        self.with_state(|s| {
            s.throttled
                .insert(name.to_ascii_lowercase(), (times, retry_after_secs))
        });
    }

    pub fn make_unavailable(&self, name: &str, retry_after_secs: u64) {
        self.with_state(|s| {
            s.unavailable
                .insert(name.to_ascii_lowercase(), retry_after_secs)
        });
    }

    pub fn forbid(&self, name: &str) {
        self.with_state(|s| s.forbidden.insert(name.to_ascii_lowercase()));
    }

    pub fn set_get_delay(&self, delay: Duration) {
        self.with_state(|s| s.get_delay = delay);
    }

    pub fn set_page_size(&self, size: usize) {
        self.with_state(|s| s.page_size = size);
    }

    pub fn version_count(&self, name: &str) -> usize {
        self.with_state(|s| {
            s.secrets
                .get(&name.to_ascii_lowercase())
                .map_or(0, |st| st.versions.len())
        })
    }

    /// Every stored value (all versions), to check what reached the "vault".
    pub fn stored_values(&self, name: &str) -> Vec<String> {
        self.with_state(|s| {
            s.secrets
                .get(&name.to_ascii_lowercase())
                .map(|st| st.versions.iter().map(|v| v.value.clone()).collect())
                .unwrap_or_default()
        })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    inner: Option<&str>,
) -> Response<Full<Bytes>> {
    let mut error = json!({ "code": code, "message": message });
    if let Some(inner) = inner {
        error["innererror"] = json!({ "code": inner });
    }
    json_response(status, &json!({ "error": error }))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn with_retry_after(mut response: Response<Full<Bytes>>, secs: u64) -> Response<Full<Bytes>> {
    response.headers_mut().insert(
        "retry-after",
        secs.to_string().parse().expect("header value"),
    );
    response
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn attributes(created: u64) -> Value {
    json!({
        "enabled": true,
        "created": created,
        "updated": created,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90
    })
}

async fn handle(state: &Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    let delay = state.lock().expect("state").get_delay;
    if method == "GET" && path.starts_with("/secrets/") && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let response = route(
        state,
        &method,
        &path,
        &query,
        &host,
        authorization.as_deref(),
        &body,
    );
    state.lock().expect("state").requests.push(Recorded {
        method,
        path,
        query,
        authorization,
        body_len: body.len(),
        status: response.status().as_u16(),
        at: arrived,
    });
    response
}

fn route(
    state: &Arc<Mutex<State>>,
    method: &str,
    path: &str,
    query: &str,
    host: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();

    // Key Vault answers any request without a valid bearer token with the challenge.
    if authorization != Some(format!("Bearer {TOKEN}").as_str()) {
        let mut response = error_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
            None,
        );
        response.headers_mut().insert(
            "www-authenticate",
            format!(
                "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\""
            )
            .parse()
            .expect("header"),
        );
        return response;
    }
    let Some(api_version) = params.get("api-version") else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The 'api-version' query parameter is missing.",
            None,
        );
    };

    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let base = format!("https://{host}");
    let mut state = state.lock().expect("state");

    match (method, segments.as_slice()) {
        ("GET", ["secrets"]) => {
            let max = params
                .get("maxresults")
                .and_then(|m| m.parse::<usize>().ok())
                .unwrap_or(25)
                .min(25);
            let page = max.min(state.page_size).max(1);
            let skip = params
                .get("$skiptoken")
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(0);
            let all: Vec<&Stored> = state.secrets.values().collect();
            let items: Vec<Value> = all
                .iter()
                .skip(skip)
                .take(page)
                .map(|s| {
                    json!({
                        "id": format!("{base}/secrets/{}", s.display_name),
                        "attributes": attributes(s.versions.last().map_or(0, |v| v.created)),
                        "tags": {}
                    })
                })
                .collect();
            let next = (skip + page < all.len()).then(|| {
                format!(
                    "{base}/secrets?api-version={api_version}&$skiptoken={}&maxresults={max}",
                    skip + page
                )
            });
            json_response(StatusCode::OK, &json!({ "value": items, "nextLink": next }))
        }
        (_, ["secrets", name, rest @ ..]) if rest.len() <= 1 => {
            let name = (*name).to_owned();
            let key = name.to_ascii_lowercase();
            if !valid_name(&name) {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "The request URI contains an invalid name",
                    None,
                );
            }
            if state.forbidden.contains(&key) {
                return error_response(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "Caller is not authorized to perform action on resource.",
                    Some("ForbiddenByRbac"),
                );
            }
            if let Some(secs) = state.unavailable.get(&key).copied() {
                return with_retry_after(
                    error_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        "The service is temporarily unavailable.",
                        None,
                    ),
                    secs,
                );
            }
            if let Some((remaining, secs)) = state.throttled.get_mut(&key)
                && *remaining > 0
            {
                *remaining -= 1;
                let secs = *secs;
                return with_retry_after(
                    error_response(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Throttled",
                        "Operations per second is over the limit.",
                        None,
                    ),
                    secs,
                );
            }
            match method {
                "PUT" if rest.is_empty() => {
                    if state.deleted.contains(&key) {
                        return error_response(
                            StatusCode::CONFLICT,
                            "Conflict",
                            &format!(
                                "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
                            ),
                            Some("ObjectIsDeletedButRecoverable"),
                        );
                    }
                    let parsed: Value = match serde_json::from_slice(body) {
                        Ok(v) => v,
                        Err(_) => {
                            return error_response(
                                StatusCode::BAD_REQUEST,
                                "BadParameter",
                                "The request body is not valid JSON.",
                                None,
                            );
                        }
                    };
                    let Some(value) = parsed.get("value").and_then(Value::as_str) else {
                        return error_response(
                            StatusCode::BAD_REQUEST,
                            "BadParameter",
                            "Property 'value' is required.",
                            None,
                        );
                    };
                    if value.len() > 25 * 1024 {
                        return error_response(
                            StatusCode::BAD_REQUEST,
                            "BadParameter",
                            "Secret value is too large.",
                            None,
                        );
                    }
                    state.next_version += 1;
                    let version = Version {
                        id: format!("{:032x}", state.next_version),
                        value: value.to_owned(),
                        created: now_secs(),
                    };
                    let bundle = json!({
                        "value": version.value,
                        "id": format!("{base}/secrets/{name}/{}", version.id),
                        "attributes": attributes(version.created),
                        "tags": {}
                    });
                    state
                        .secrets
                        .entry(key)
                        .or_insert_with(|| Stored {
                            display_name: name.clone(),
                            versions: Vec::new(),
                        })
                        .versions
                        .push(version);
                    json_response(StatusCode::OK, &bundle)
                }
                "GET" => {
                    let Some(stored) = state.secrets.get(&key) else {
                        return error_response(
                            StatusCode::NOT_FOUND,
                            "SecretNotFound",
                            &format!(
                                "A secret with (name/id) {name} was not found in this key vault."
                            ),
                            None,
                        );
                    };
                    let version = match rest.first() {
                        Some(v) => stored.versions.iter().find(|x| x.id == *v),
                        None => stored.versions.last(),
                    };
                    let Some(version) = version else {
                        return error_response(
                            StatusCode::NOT_FOUND,
                            "SecretNotFound",
                            "A secret with this version was not found.",
                            None,
                        );
                    };
                    json_response(
                        StatusCode::OK,
                        &json!({
                            "value": version.value,
                            "id": format!("{base}/secrets/{}/{}", stored.display_name, version.id),
                            "attributes": attributes(version.created),
                            "tags": {}
                        }),
                    )
                }
                "DELETE" if rest.is_empty() => {
                    let Some(stored) = state.secrets.remove(&key) else {
                        return error_response(
                            StatusCode::NOT_FOUND,
                            "SecretNotFound",
                            &format!(
                                "A secret with (name/id) {name} was not found in this key vault."
                            ),
                            None,
                        );
                    };
                    state.deleted.insert(key);
                    let now = now_secs();
                    let latest = stored.versions.last().map_or(0, |v| v.created);
                    json_response(
                        StatusCode::OK,
                        &json!({
                            "recoveryId": format!("{base}/deletedsecrets/{}", stored.display_name),
                            "deletedDate": now,
                            "scheduledPurgeDate": now + 90 * 86_400,
                            "id": format!("{base}/secrets/{}", stored.display_name),
                            "attributes": attributes(latest),
                            "tags": {}
                        }),
                    )
                }
                _ => error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "Method not allowed.",
                    None,
                ),
            }
        }
        _ => error_response(StatusCode::NOT_FOUND, "NotFound", "No such route.", None),
    }
}

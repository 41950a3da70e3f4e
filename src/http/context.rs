//! Who is calling, for which organization: resolved once per request by [`authorize`].
//!
//! Order of identity sources: a Bifrost function key (`x-functions-key` header, else `code`
//! query), then Easy Auth (only when `WEBSITE_AUTH_ENABLED`; otherwise the headers are ignored and
//! audited), then the local developer identity (only when explicitly enabled), else anonymous.
//! The scope comes from the principal, and platform admins may switch it with
//! `X-Organization-Id`. The route's declared [`Access`] is enforced here, and so are the rate
//! limits (per organization, per key, and per client address for callers without credentials)
//! and the browser rule against cross-site request forgery ([`check_browser_request`]);
//! handlers receive a ready [`RequestContext`].
//!
//! Public operations (whose rules depend on the form or workflow they name) authorize their
//! caller themselves (`endpoint::Call::authorize`) before reading the body, with the small
//! limit of callers without credentials when that is who is calling.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bifrost_store::{OrgId, Scope};
use warp::http::HeaderMap;

use super::access::{Access, Route, route};
use super::error::ApiError;
use crate::audit::{AuditEvent, AuditEventType};
use crate::auth::{
    AuthError, EasyAuthHeaders, EasyAuthOutcome, LocalDevIdentity, Principal, easy_auth_identity,
    extract_function_key,
};
use crate::cache::Cache;
use crate::domain::{LoginIdentity, ProvisionOutcome, UserType};
use crate::http::ApiState;

/// The caller and the organization a request acts for.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub principal: Principal,
    pub scope: Scope,
    /// The client's address (see [`crate::http::ClientAddr`]), when known.
    pub client: Option<IpAddr>,
}

impl RequestContext {
    pub fn org_id(&self) -> Option<&OrgId> {
        self.scope.org_id()
    }

    pub fn is_platform_admin(&self) -> bool {
        self.principal.is_platform_admin()
    }

    /// The audit log's name for the caller (ids, never secrets).
    pub fn actor(&self) -> String {
        self.principal.audit_actor()
    }

    /// The caller as the author of an audited change made through the API.
    pub fn change_actor(&self) -> crate::domain::Actor {
        crate::domain::Actor::new(self.actor(), crate::domain::Via::Api)
    }
}

/// How long an Easy Auth principal resolves from memory before users are read again.
const PRINCIPAL_CACHE_TTL: Duration = Duration::from_secs(60);
const PRINCIPAL_CACHE_MAX: usize = 10_000;
/// At most one `easy_auth_ignored` audit entry per this interval: forged headers on every
/// request must not flood the log.
const IGNORED_AUDIT_INTERVAL: Duration = Duration::from_secs(60);

/// Easy Auth principals by their headers, for [`PRINCIPAL_CACHE_TTL`].
struct PrincipalCache(Cache<String, Principal>);

impl Default for PrincipalCache {
    fn default() -> Self {
        Self(Cache::new(PRINCIPAL_CACHE_TTL, PRINCIPAL_CACHE_MAX))
    }
}

/// Per-instance state of identity resolution: caches and rate-limit buckets.
#[derive(Default)]
pub struct Identity {
    principals: PrincipalCache,
    buckets: Mutex<HashMap<String, Bucket>>,
    last_ignored_audit: AtomicU64,
    started: Option<Instant>,
    /// Open log streams per caller (see [`Identity::open_stream`]).
    streams: Mutex<HashMap<String, usize>>,
    /// The users' revision last seen, and when it was read (other instances' changes).
    users_revision: Mutex<(u64, Option<Instant>)>,
}

/// How often an instance looks whether another instance changed users, which drops cached
/// principals: a deactivated user is refused within this delay everywhere (at once here).
const USERS_REVISION_POLL: Duration = Duration::from_secs(1);

/// One open log stream of a caller; dropping it frees the slot.
pub struct StreamSlot {
    identity: Arc<crate::http::ApiState>,
    caller: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self
            .identity
            .identity
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = streams.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.caller);
            }
        }
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Identity {
    pub fn new() -> Self {
        Self {
            started: Some(Instant::now()),
            ..Default::default()
        }
    }

    /// Token bucket per caller: `rate` per second, bursts up to twice that. Returns the wait
    /// before a token is available when the bucket is empty.
    fn take(&self, key: &str, rate: u32) -> Result<(), Duration> {
        self.take_burst(key, rate, f64::from(rate) * 2.0)
    }

    /// [`Self::take`] with an explicit burst size.
    fn take_burst(&self, key: &str, rate: u32, burst: f64) -> Result<(), Duration> {
        if rate == 0 {
            return Ok(());
        }
        let rate = f64::from(rate);
        let burst = burst.max(1.0);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| now.duration_since(b.updated) < Duration::from_secs(60));
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    fn cached_principal(&self, token: &str) -> Option<Principal> {
        self.principals.0.get(token)
    }

    /// Read before the users are: [`Self::remember_principal`] then skips a principal that a
    /// [`Self::forget_principals`] made stale while it was being read.
    fn principals_generation(&self) -> u64 {
        self.principals.0.generation()
    }

    fn remember_principal(&self, token: &str, principal: &Principal, generation: u64) {
        self.principals
            .0
            .put_if_current(token.to_owned(), principal.clone(), generation);
    }

    /// Drops every cached principal: a user was changed (deactivated, deleted, moved), and the
    /// next request of any user reads the users again.
    pub fn forget_principals(&self) {
        self.principals.0.clear();
    }

    /// Whether the users' revision should be read again (at most every [`USERS_REVISION_POLL`]).
    fn users_revision_due(&self) -> bool {
        let seen = self
            .users_revision
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        seen.1.is_none_or(|at| at.elapsed() >= USERS_REVISION_POLL)
    }

    /// Records the users' revision just read; a change drops the cached principals.
    fn saw_users_revision(&self, revision: u64) {
        let mut seen = self
            .users_revision
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.1.is_some() && seen.0 != revision {
            self.forget_principals();
        }
        *seen = (revision, Some(Instant::now()));
    }

    /// True at most once per [`IGNORED_AUDIT_INTERVAL`].
    fn should_audit_ignored(&self) -> bool {
        let now = self
            .started
            .map_or(0, |s| s.elapsed().as_secs())
            .saturating_add(IGNORED_AUDIT_INTERVAL.as_secs());
        let last = self.last_ignored_audit.load(Ordering::Relaxed);
        now >= last + IGNORED_AUDIT_INTERVAL.as_secs()
            && self
                .last_ignored_audit
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// Callers without credentials may upload only so fast from one address.
pub(crate) fn take_upload(state: &ApiState, ctx: &RequestContext) -> Result<(), ApiError> {
    if ctx.principal.is_authenticated() {
        return Ok(());
    }
    let key = format!("upload:{}", client_key(ctx.client));
    state
        .identity
        .take_burst(&key, state.settings.limits.uploads_per_second, 5.0)
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after: wait.max(Duration::from_secs(1)),
        })
}

fn bearer(headers: &HeaderMap) -> bool {
    headers
        .get(warp::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
}

/// Takes a token of `bucket` at `rate` per second, or answers 429 with the wait.
pub(crate) fn take_token(state: &ApiState, bucket: &str, rate: u32) -> Result<(), ApiError> {
    state
        .identity
        .take(bucket, rate)
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after: wait.max(Duration::from_secs(1)),
        })
}

/// The bucket of a caller without credentials at `client`.
pub(crate) fn take_anonymous(state: &ApiState, client: Option<IpAddr>) -> Result<(), ApiError> {
    take_token(
        state,
        &format!("anon:{}", client_key(client)),
        state.settings.limits.anonymous_per_second,
    )
}

fn client_key(client: Option<IpAddr>) -> String {
    client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// Resolves and authorizes one request for route `id` (the router calls it before a guarded
/// operation's handler; public operations through `Call::authorize`).
pub async fn authorize(
    state: &ApiState,
    id: &str,
    headers: &HeaderMap,
    query: &str,
    client: Option<IpAddr>,
) -> Result<RequestContext, ApiError> {
    let route =
        route(id).ok_or_else(|| ApiError::Internal(format!("route {id} is not declared")))?;
    let principal = resolve_principal(state, headers, query, client).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scope = match principal.effective_scope(header("x-organization-id")) {
        Ok(scope) => scope,
        Err(AuthError::CrossOrgDenied { home, requested }) => {
            let actor = principal.audit_actor();
            let event = AuditEvent::new(AuditEventType::CrossOrgDenied, actor.clone(), home)
                .detail("requested", requested.to_string())
                .detail("route", route.id);
            // Anyone with a key can repeat this at will: aggregated per caller and org.
            if let Err(e) = state
                .services
                .audit
                .append_aggregated(event, &actor, &requested.to_string())
                .await
            {
                tracing::error!(error = %e, actor = %actor, "could not audit a cross-org denial");
            }
            return Err(ApiError::Forbidden(
                "only platform administrators can act for another organization".into(),
            ));
        }
        Err(AuthError::Unauthenticated) => {
            return Err(ApiError::Unauthorized("authentication required".into()));
        }
        Err(AuthError::InvalidOrgHeader { reason }) => {
            return Err(ApiError::bad_request("X-Organization-Id", reason));
        }
        Err(other) => return Err(auth_error(other)),
    };
    check_access(route, &principal)?;
    check_browser_request(state, route, &principal, headers)?;
    let (bucket, rate) = match (&principal, &scope) {
        (Principal::FunctionKey { key_id, .. }, _) => (
            format!("key:{key_id}"),
            state.settings.rate_limit_per_second,
        ),
        // A workflow key is checked (and its caller limited) by the endpoint itself.
        (Principal::Anonymous, _) if route.id.starts_with("endpoints.") && bearer(headers) => {
            return Ok(RequestContext {
                principal,
                scope,
                client,
            });
        }
        // Callers without credentials are told apart by their address only.
        (Principal::Anonymous, _) => (
            format!("anon:{}", client_key(client)),
            state.settings.limits.anonymous_per_second,
        ),
        (_, Scope::Org(org)) => (format!("org:{org}"), state.settings.rate_limit_per_second),
        (p, Scope::Global) => (
            format!("actor:{}", p.audit_actor()),
            state.settings.rate_limit_per_second,
        ),
    };
    state
        .identity
        .take(&bucket, rate)
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after: wait.max(Duration::from_secs(1)),
        })?;
    Ok(RequestContext {
        principal,
        scope,
        client,
    })
}

/// The rule against cross-site request forgery, for principals a browser carries along by
/// itself: an Easy Auth user whose request carries cookies (the session cookie is what a
/// forged request rides on), and the local developer identity (which needs no credentials at
/// all). Their state-changing requests must come from the app's own origin or an allowed one
/// (`Origin`, which browsers set on every cross-site request and scripts cannot forge), and —
/// cookie sessions — be JSON, which a cross-site form or a "simple" request cannot send
/// without a CORS preflight this server never grants to foreign origins. Function keys, bearer
/// tokens and workflow keys are not sent by browsers on their own and are not affected.
pub fn check_browser_request(
    state: &ApiState,
    route: &Route,
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if matches!(route.method, "GET" | "HEAD") {
        return Ok(());
    }
    let cookie_session = matches!(
        principal,
        Principal::PlatformAdmin { .. } | Principal::OrgUser { .. }
    ) && headers.contains_key(warp::http::header::COOKIE);
    let developer = matches!(principal, Principal::LocalDeveloper);
    if !cookie_session && !developer {
        return Ok(());
    }
    match headers.get(warp::http::header::ORIGIN).map(|v| v.to_str()) {
        Some(Ok(origin)) if origin_allowed(origin, headers, &state.settings.allowed_origins) => {}
        Some(origin) => {
            return Err(ApiError::Forbidden(format!(
                "cross-site request refused: origin {} is not this application's",
                origin.unwrap_or("(unreadable)")
            )));
        }
        None if cookie_session => {
            return Err(ApiError::Forbidden(
                "a browser session's request must carry an Origin header".into(),
            ));
        }
        None => {}
    }
    // Uploads carry the file's own content type; DELETE has no body.
    if cookie_session && route.method != "DELETE" && route.id != "forms.upload" {
        let json = headers
            .get(warp::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::UnsupportedMediaType(
                "a browser session's request must be sent as application/json".into(),
            ));
        }
    }
    Ok(())
}

/// `origin` is the app's own (its authority matches the request's host, as the browser saw
/// it) or one of the configured extra origins.
fn origin_allowed(origin: &str, headers: &HeaderMap, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    ["x-forwarded-host", "x-original-host", "host"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .any(|h| h.eq_ignore_ascii_case(&authority))
}

/// Counts one more open log stream for the caller, or refuses with 429 when they hold
/// [`crate::settings::RequestLimits::streams_per_caller`] already. The slot is freed when the
/// returned guard drops (when the stream ends or its client goes away).
pub fn open_stream(state: &Arc<ApiState>, ctx: &RequestContext) -> Result<StreamSlot, ApiError> {
    let caller = ctx.actor();
    let mut streams = state
        .identity
        .streams
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let open = streams.entry(caller.clone()).or_insert(0);
    if *open >= state.settings.limits.streams_per_caller {
        return Err(ApiError::TooManyRequests {
            retry_after: Duration::from_secs(5),
        });
    }
    *open += 1;
    Ok(StreamSlot {
        identity: state.clone(),
        caller,
    })
}

/// The route's declared access against the principal: 401 for anonymous callers, 403 for
/// authenticated callers without the right.
pub fn check_access(route: &Route, principal: &Principal) -> Result<(), ApiError> {
    match (route.access, principal) {
        (Access::Public, _) => Ok(()),
        (_, Principal::Anonymous) => Err(ApiError::Unauthorized("authentication required".into())),
        (Access::Authenticated, _) => Ok(()),
        (Access::PlatformAdmin, p) if p.is_platform_admin() => Ok(()),
        (Access::PlatformAdmin, _) => Err(ApiError::Forbidden(
            "platform administrator privileges required".into(),
        )),
    }
}

async fn resolve_principal(
    state: &ApiState,
    headers: &HeaderMap,
    query: &str,
    client: Option<IpAddr>,
) -> Result<Principal, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let services = &state.services;

    if let Some(raw) = extract_function_key(header("x-functions-key"), Some(query)) {
        return match services.keys.authenticate(&raw).await {
            Ok(key) => {
                if key.usage_recorded {
                    audit(
                        state,
                        AuditEvent::new(
                            AuditEventType::KeyUsed,
                            format!("key:{}", key.key_id),
                            key.scope.clone(),
                        )
                        .detail("key_id", key.key_id.to_string())
                        .detail("key_name", key.name.clone()),
                    )
                    .await;
                }
                Ok(Principal::from(key))
            }
            Err(AuthError::InvalidKey(rejection)) => {
                let source = client_key(client);
                let mut event =
                    AuditEvent::new(AuditEventType::KeyRejected, "anonymous", Scope::Global)
                        .detail("reason", rejection.reason.as_str())
                        .detail("source", source.clone());
                if let Some(id) = &rejection.key_id {
                    event = event.detail("key_id", id.to_string());
                }
                // Anyone can send bad keys: aggregated per address and reason.
                if let Err(e) = services
                    .audit
                    .append_aggregated(event, &source, rejection.reason.as_str())
                    .await
                {
                    tracing::error!(error = %e, "could not audit a rejected key");
                }
                Err(ApiError::Unauthorized("invalid key".into()))
            }
            Err(other) => Err(auth_error(other)),
        };
    }

    let easy = EasyAuthHeaders::from_lookup(|name| header(name));
    match easy_auth_identity(&easy, state.settings.easy_auth) {
        Ok(EasyAuthOutcome::Authenticated(identity)) => {
            let cache_key = easy.principal.unwrap_or_default().to_owned()
                + "|"
                + easy.principal_id.unwrap_or_default()
                + "|"
                + easy.principal_name.unwrap_or_default();
            if state.identity.users_revision_due() {
                // Another instance may have deactivated a user since we cached them.
                let revision = services.users.revision().await.map_err(ApiError::from)?;
                state.identity.saw_users_revision(revision);
            }
            if let Some(principal) = state.identity.cached_principal(&cache_key) {
                return Ok(principal);
            }
            let generation = state.identity.principals_generation();
            let Some(email) = identity.email.clone() else {
                return Err(ApiError::Forbidden(
                    "the identity provider sent no email address".into(),
                ));
            };
            let login = LoginIdentity {
                entra_object_id: identity.object_id.clone(),
                email,
                display_name: identity.display_name.clone(),
            };
            let outcome = services
                .users
                .provision_on_login(&login)
                .await
                .map_err(ApiError::from)?;
            let Some(user) = outcome.user().cloned() else {
                return Err(ApiError::Forbidden(
                    "your account has no access to Bifrost; ask an administrator".into(),
                ));
            };
            let principal = match &user.user_type {
                UserType::PlatformAdmin => Principal::PlatformAdmin {
                    user_id: user.id.to_string(),
                    email: user.email.clone(),
                    name: user.display_name.clone(),
                },
                UserType::OrgUser(org) => Principal::OrgUser {
                    user_id: user.id.to_string(),
                    email: user.email.clone(),
                    name: user.display_name.clone(),
                    org: org.clone(),
                },
            };
            let how = match outcome {
                ProvisionOutcome::FirstPlatformAdmin(_) => "first_platform_admin",
                ProvisionOutcome::JoinedOrg(_) => "joined_org",
                _ => "existing",
            };
            audit(
                state,
                AuditEvent::new(
                    AuditEventType::Login,
                    principal.audit_actor(),
                    principal.home_scope(),
                )
                .detail("user_id", user.id.to_string())
                .detail("provisioning", how),
            )
            .await;
            state
                .identity
                .remember_principal(&cache_key, &principal, generation);
            Ok(principal)
        }
        Ok(EasyAuthOutcome::Ignored { headers }) => {
            if state.identity.should_audit_ignored() {
                audit(
                    state,
                    AuditEvent::new(AuditEventType::EasyAuthIgnored, "anonymous", Scope::Global)
                        .detail("headers", headers.join(",")),
                )
                .await;
            }
            Ok(dev_or_anonymous(state))
        }
        Ok(EasyAuthOutcome::Absent) => Ok(dev_or_anonymous(state)),
        Err(e) => Err(ApiError::Unauthorized(format!(
            "malformed Easy Auth principal: {e}"
        ))),
    }
}

fn dev_or_anonymous(state: &ApiState) -> Principal {
    Principal::unauthenticated(if state.settings.dev_identity {
        LocalDevIdentity::Enabled
    } else {
        LocalDevIdentity::Disabled
    })
}

fn auth_error(e: AuthError) -> ApiError {
    match e {
        AuthError::Store(store) => ApiError::from(store),
        AuthError::InvalidKey(_) => ApiError::Unauthorized("invalid key".into()),
        AuthError::Unauthenticated => ApiError::Unauthorized("authentication required".into()),
        AuthError::InvalidOrgHeader { reason } => {
            ApiError::bad_request("X-Organization-Id", reason)
        }
        AuthError::CrossOrgDenied { .. } => {
            ApiError::Forbidden("access to that organization is denied".into())
        }
    }
}

/// Appends the record of a grant that has just been made, or undoes the grant: `undo` runs when
/// the entry cannot be written (fail closed: nothing that grants access exists without its
/// audit entry), and the request answers 503.
pub async fn audit_grant<F, Fut>(
    state: &ApiState,
    event: AuditEvent,
    undo: F,
) -> Result<(), ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    match state.services.audit.append(event.clone()).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, event = ?event.event_type, actor = %event.actor, "audit append failed; undoing the grant");
            undo().await;
            Err(ApiError::Unavailable {
                reason: "the audit log cannot record this, so it was not done".into(),
                retry_after: Duration::from_secs(5),
            })
        }
    }
}

/// Appends to the audit log; a failure is logged loudly but does not fail the request (the
/// event is in the error log with its details). For records of events that grant nothing
/// (reads, revocations, denials); grants go through [`audit_grant`].
pub async fn audit(state: &ApiState, event: AuditEvent) {
    if let Err(e) = state.services.audit.append(event.clone()).await {
        tracing::error!(error = %e, event = ?event.event_type, actor = %event.actor, "audit append failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_a_burst_then_asks_to_wait() {
        let identity = Identity::new();
        for _ in 0..20 {
            assert!(identity.take("org:a", 10).is_ok());
        }
        let wait = identity.take("org:a", 10).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(identity.take("org:b", 10).is_ok(), "buckets are per caller");
        assert!(identity.take("org:a", 0).is_ok(), "0 disables the limit");
    }

    #[test]
    fn access_rules() {
        let admin = Principal::LocalDeveloper;
        let user = Principal::OrgUser {
            user_id: "u".into(),
            email: "u@x.com".into(),
            name: "U".into(),
            org: OrgId::parse("org-a").unwrap(),
        };
        let route = |access| Route {
            id: "t",
            method: "GET",
            path: "/api/t",
            access,
            summary: "",
        };
        assert!(check_access(&route(Access::Public), &Principal::Anonymous).is_ok());
        assert_eq!(
            check_access(&route(Access::Authenticated), &Principal::Anonymous)
                .unwrap_err()
                .status(),
            401
        );
        assert!(check_access(&route(Access::Authenticated), &user).is_ok());
        assert_eq!(
            check_access(&route(Access::PlatformAdmin), &user)
                .unwrap_err()
                .status(),
            403
        );
        assert!(check_access(&route(Access::PlatformAdmin), &admin).is_ok());
    }
}

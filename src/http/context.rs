//! Who is calling, for which organization: resolved once per request by [`guard`].
//!
//! Order of identity sources: a Bifrost function key (`x-functions-key` header, else `code`
//! query), then Easy Auth (only when `WEBSITE_AUTH_ENABLED`; otherwise the headers are ignored and
//! audited), then the local developer identity (only when explicitly enabled), else anonymous.
//! The scope comes from the principal, and platform admins may switch it with
//! `X-Organization-Id`. The route's declared [`Access`] is enforced here, and so is the
//! per-organization and per-key rate limit; handlers receive a ready [`RequestContext`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bifrost_store::{OrgId, Scope};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;

use super::access::{Access, Route, route};
use super::error::{ApiError, RequestRejected};
use crate::app::AppState;
use crate::audit::{AuditEvent, AuditEventType};
use crate::auth::{
    AuthError, EasyAuthHeaders, EasyAuthOutcome, LocalDevIdentity, Principal, easy_auth_identity,
    extract_function_key,
};
use crate::domain::{LoginIdentity, ProvisionOutcome, UserType};

/// The caller and the organization a request acts for.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub principal: Principal,
    pub scope: Scope,
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
}

/// How long an Easy Auth principal resolves from memory before users are read again.
const PRINCIPAL_CACHE_TTL: Duration = Duration::from_secs(60);
const PRINCIPAL_CACHE_MAX: usize = 10_000;
/// At most one `easy_auth_ignored` audit entry per this interval: forged headers on every
/// request must not flood the log.
const IGNORED_AUDIT_INTERVAL: Duration = Duration::from_secs(60);

/// Per-instance state of identity resolution: caches and rate-limit buckets.
#[derive(Default)]
pub struct Identity {
    principals: Mutex<HashMap<String, (Principal, Instant)>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    last_ignored_audit: AtomicU64,
    started: Option<Instant>,
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
        if rate == 0 {
            return Ok(());
        }
        let rate = f64::from(rate);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| now.duration_since(b.updated) < Duration::from_secs(60));
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: rate * 2.0,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate * 2.0);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    fn cached_principal(&self, token: &str) -> Option<Principal> {
        let cache = self.principals.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(token)
            .filter(|(_, at)| at.elapsed() < PRINCIPAL_CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    fn remember_principal(&self, token: &str, principal: &Principal) {
        let mut cache = self.principals.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= PRINCIPAL_CACHE_MAX {
            cache.clear();
        }
        cache.insert(token.to_owned(), (principal.clone(), Instant::now()));
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

/// The filter every API route starts with: resolves the caller, enforces route `id`'s access
/// and the rate limit. Rejections carry an [`ApiError`] (401/403/429/503).
pub fn guard(state: Arc<AppState>, id: &'static str) -> BoxedFilter<(RequestContext,)> {
    warp::header::headers_cloned()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(move |headers: HeaderMap, query: String| {
            let state = state.clone();
            async move {
                authorize(&state, id, &headers, &query)
                    .await
                    .map_err(|e| warp::reject::custom(RequestRejected(e)))
            }
        })
        .boxed()
}

/// Resolves and authorizes one request (the body of [`guard`], testable without warp).
pub async fn authorize(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    query: &str,
) -> Result<RequestContext, ApiError> {
    let route =
        route(id).ok_or_else(|| ApiError::Internal(format!("route {id} is not declared")))?;
    let principal = resolve_principal(state, headers, query).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scope = match principal.effective_scope(header("x-organization-id")) {
        Ok(scope) => scope,
        Err(AuthError::CrossOrgDenied { home, requested }) => {
            audit(
                state,
                AuditEvent::new(
                    AuditEventType::CrossOrgDenied,
                    principal.audit_actor(),
                    home,
                )
                .detail("requested", requested.to_string())
                .detail("route", route.id),
            )
            .await;
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
    let bucket = match (&principal, &scope) {
        (Principal::FunctionKey { key_id, .. }, _) => Some(format!("key:{key_id}")),
        (_, Scope::Org(org)) => Some(format!("org:{org}")),
        (Principal::Anonymous, Scope::Global) => None,
        (p, Scope::Global) => Some(format!("actor:{}", p.audit_actor())),
    };
    if let Some(bucket) = bucket {
        state
            .identity
            .take(&bucket, state.settings.rate_limit_per_second)
            .map_err(|wait| ApiError::TooManyRequests {
                retry_after: wait.max(Duration::from_secs(1)),
            })?;
    }
    Ok(RequestContext { principal, scope })
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
    state: &AppState,
    headers: &HeaderMap,
    query: &str,
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
                let mut event =
                    AuditEvent::new(AuditEventType::KeyRejected, "anonymous", Scope::Global)
                        .detail("reason", rejection.reason.as_str());
                if let Some(id) = &rejection.key_id {
                    event = event.detail("key_id", id.to_string());
                }
                audit(state, event).await;
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
            if let Some(principal) = state.identity.cached_principal(&cache_key) {
                return Ok(principal);
            }
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
            state.identity.remember_principal(&cache_key, &principal);
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

fn dev_or_anonymous(state: &AppState) -> Principal {
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

/// Appends to the audit log; a failure is logged loudly but does not fail the request (the
/// event is in the error log with its details).
pub async fn audit(state: &AppState, event: AuditEvent) {
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

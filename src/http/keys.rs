//! `/api/keys`: Bifrost function keys (what `bifrost keys` does on the command line), for
//! platform administrators.
//!
//! Wire shape: `{id, name, scope ("GLOBAL" or the org id), createdAt, createdBy, expiresAt,
//! revoked, revokedAt, lastUsedAt}`; the list is `{keys}` for the request's scope. `POST {name,
//! orgId?, expiresInDays?}` answers 201 with the same fields plus `rawKey`, the only time the key
//! is ever shown. `DELETE /{keyId}` revokes.
//!
//! Depends on [`FunctionKeys`](crate::auth::FunctionKeys) and the audit log. Invariants: the key
//! hash and the raw key (after creation) are never sent, logged or audited — audit entries
//! (`key_created`, `key_revoked`) carry ids and names only; a key is reachable only through its
//! own scope, so revoking another scope's key id is "not found".

use std::sync::Arc;
use std::time::Duration;

use bifrost_store::{OrgId, Scope};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::audit::{AuditEvent, AuditEventType};
use crate::auth::keys::{KeyError, KeyId, KeyRecord};
use crate::http::ApiState;
use crate::http::access::{Access, Route};
use crate::http::body;
use crate::http::context::{RequestContext, audit, audit_grant, guard};
use crate::http::error::{ApiError, json_response};
use crate::http::input::{
    Fields, existing_org, existing_scope, no_content, respond, timestamp, with_state,
};

/// Longest lifetime a key may be given at creation.
pub const MAX_EXPIRES_IN_DAYS: u32 = 3650;

pub const ROUTES: &[Route] = &[
    Route {
        id: "keys.list",
        method: "GET",
        path: "/api/keys",
        access: Access::PlatformAdmin,
        summary: "Function keys of the request's scope (never their values or hashes)",
    },
    Route {
        id: "keys.create",
        method: "POST",
        path: "/api/keys",
        access: Access::PlatformAdmin,
        summary: "Create a function key {name, orgId?, expiresInDays?}; rawKey is shown once",
    },
    Route {
        id: "keys.revoke",
        method: "DELETE",
        path: "/api/keys/{keyId}",
        access: Access::PlatformAdmin,
        summary: "Revoke a function key of the request's scope",
    },
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyDto {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked: bool,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl From<&KeyRecord> for KeyDto {
    fn from(key: &KeyRecord) -> Self {
        Self {
            id: key.id.to_string(),
            name: key.name.clone(),
            scope: key.scope.to_string(),
            created_at: timestamp(key.created_at),
            created_by: key.created_by.clone(),
            expires_at: key.expires_at.map(timestamp),
            revoked: key.is_revoked(),
            revoked_at: key.revoked_at.map(timestamp),
            last_used_at: key.last_used_at.map(timestamp),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedKey {
    #[serde(flatten)]
    key: KeyDto,
    raw_key: String,
}

#[derive(Serialize)]
struct KeyList {
    keys: Vec<KeyDto>,
}

pub fn routes(state: Arc<ApiState>) -> BoxedFilter<(Response,)> {
    let limit = state.settings.max_body_bytes;
    let list = warp::path!("api" / "keys")
        .and(warp::get())
        .and(guard(state.clone(), "keys.list"))
        .and(with_state(state.clone()))
        .then(|ctx, state: Arc<ApiState>| async move { respond(list(&state, &ctx).await) });
    let create = warp::path!("api" / "keys")
        .and(warp::post())
        .and(guard(state.clone(), "keys.create"))
        .and(body::json::<Value>(limit))
        .and(with_state(state.clone()))
        .then(|ctx, body, state: Arc<ApiState>| async move {
            respond(create(&state, &ctx, body).await)
        });
    let revoke = warp::path!("api" / "keys" / String)
        .and(warp::delete())
        .and(guard(state.clone(), "keys.revoke"))
        .and(with_state(state))
        .then(|id: String, ctx, state: Arc<ApiState>| async move {
            respond(revoke(&state, &ctx, &id).await)
        });
    list.or(create).unify().or(revoke).unify().boxed()
}

/// The HTTP answer to a key-management error; fields are named as the API spells them.
fn key_error(err: KeyError) -> ApiError {
    match err {
        KeyError::Invalid { field, reason } => {
            let field = match field {
                "expires_at" => "expiresInDays",
                "id" => "keyId",
                other => other,
            };
            ApiError::bad_request(field, format!("{field} {reason}"))
        }
        e @ KeyError::RotationLimit { .. } => ApiError::Conflict(e.to_string()),
        KeyError::NotFound { id } => ApiError::NotFound(format!("key '{id}' not found")),
        e @ KeyError::AlreadyRevoked { .. } => ApiError::Conflict(e.to_string()),
        e @ KeyError::Contention { .. } => ApiError::Unavailable {
            reason: e.to_string(),
            retry_after: Duration::from_secs(1),
        },
        KeyError::Store(e) => ApiError::from(e),
    }
}

async fn list(state: &ApiState, ctx: &RequestContext) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let keys = state.services.keys.list(&scope).await.map_err(key_error)?;
    Ok(json_response(
        StatusCode::OK,
        &KeyList {
            keys: keys.iter().map(KeyDto::from).collect(),
        },
    ))
}

/// The key's scope: `orgId` if given (it must exist and agree with `X-Organization-Id`), else
/// the request's scope.
async fn target_scope(
    state: &ApiState,
    ctx: &RequestContext,
    org: Option<&str>,
) -> Result<Scope, ApiError> {
    let Some(raw) = org.map(str::trim).filter(|s| !s.is_empty()) else {
        return existing_scope(state, ctx).await;
    };
    let org = OrgId::parse(raw).map_err(|e| match ApiError::from(e) {
        ApiError::BadRequest { message, .. } => ApiError::bad_request("orgId", message),
        other => other,
    })?;
    if let Scope::Org(header_org) = &ctx.scope
        && *header_org != org
    {
        return Err(ApiError::bad_request(
            "orgId",
            "orgId does not match the X-Organization-Id header",
        ));
    }
    existing_org(state, &org).await.map_err(|_| {
        ApiError::bad_request("orgId", format!("organization '{org}' does not exist"))
    })?;
    Ok(Scope::Org(org))
}

async fn create(state: &ApiState, ctx: &RequestContext, body: Value) -> Result<Response, ApiError> {
    let fields = Fields::new(body, &["name", "orgId", "expiresInDays"])?;
    let name = fields.required_str("name")?;
    let days = fields.u32_in("expiresInDays", 1..=MAX_EXPIRES_IN_DAYS)?;
    let scope = target_scope(state, ctx, fields.str("orgId")?).await?;
    let expires_at = days.map(|d| OffsetDateTime::now_utc() + time::Duration::days(i64::from(d)));
    let (record, raw) = state
        .services
        .keys
        .create(name, scope.clone(), expires_at, &ctx.actor())
        .await
        .map_err(key_error)?;
    audit_grant(
        state,
        AuditEvent::new(AuditEventType::KeyCreated, ctx.actor(), scope)
            .detail("key_id", record.id.to_string())
            .detail("key_name", record.name.clone()),
        || async {
            if let Err(e) = state.services.keys.revoke(&record.id, "audit-unavailable").await {
                tracing::error!(error = %e, key_id = %record.id, "could not revoke an unaudited key");
            }
        },
    )
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &CreatedKey {
            key: KeyDto::from(&record),
            raw_key: raw.expose().to_owned(),
        },
    ))
}

async fn revoke(state: &ApiState, ctx: &RequestContext, id: &str) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let id = KeyId::parse(id).map_err(key_error)?;
    let not_found = || ApiError::NotFound(format!("key '{id}' not found"));
    match state.services.keys.get(&id).await.map_err(key_error)? {
        Some(key) if key.scope == scope => {}
        _ => return Err(not_found()),
    }
    let record = state
        .services
        .keys
        .revoke(&id, &ctx.actor())
        .await
        .map_err(key_error)?;
    audit(
        state,
        AuditEvent::new(AuditEventType::KeyRevoked, ctx.actor(), scope)
            .detail("key_id", record.id.to_string())
            .detail("key_name", record.name.clone()),
    )
    .await;
    Ok(no_content())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn key_errors_name_the_api_fields() {
        let field = |e: KeyError| match key_error(e) {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("{other:?}"),
        };
        let invalid = |field: &'static str| KeyError::Invalid {
            field,
            reason: "bad".into(),
        };
        assert_eq!(
            field(invalid("expires_at")).as_deref(),
            Some("expiresInDays")
        );
        assert_eq!(field(invalid("id")).as_deref(), Some("keyId"));
        assert_eq!(field(invalid("name")).as_deref(), Some("name"));
        let id = KeyId::parse("0123456789abcdef").unwrap();
        assert_eq!(
            key_error(KeyError::AlreadyRevoked { id: id.clone() }).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            key_error(KeyError::NotFound { id }).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            key_error(KeyError::Contention { what: "x".into() }).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

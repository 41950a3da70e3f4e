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

use std::time::Duration;

use bifrost_store::{OrgId, Scope};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::audit::{AuditEvent, AuditEventType};
use crate::auth::keys::{KeyError, KeyId, KeyRecord, MAX_NAME_LEN};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::{RequestContext, audit, audit_grant};
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};
use crate::http::input::{ORG_ID_PATTERN, existing_org, existing_scope, no_content, timestamp};

/// Longest lifetime a key may be given at creation.
pub const MAX_EXPIRES_IN_DAYS: u32 = 3650;

/// A key name `FunctionKeys` accepts.
const NAME_PATTERN: &str = r"^[A-Za-z0-9._-]{1,64}$";
/// A key id (`bfk_<id>_...`): 16 lowercase hex characters.
const KEY_ID_PATTERN: &str = r"^[0-9a-f]{16}$";
/// The key id of `/api/keys/{keyId}` links.
const KEY_LINK: &str = "$response.body#/id";

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "keys.list",
            "/api/keys",
            Access::PlatformAdmin,
            "Function keys of the request's scope (never their values or hashes)",
        )
        .ok::<KeyList>("The keys of the request's scope, oldest first")
        .guarded(|state, ctx, _call| async move { list(&state, &ctx).await }),
        Endpoint::post(
            "keys.create",
            "/api/keys",
            Access::PlatformAdmin,
            "Create a function key {name, orgId?, expiresInDays?}; rawKey is shown once",
        )
        .body::<CreateKeyRequest>()
        .created::<CreatedKey>("Created; rawKey is shown this once")
        .errors(&[409])
        .link("RevokeKey", "keys.revoke", "keyId", KEY_LINK)
        .guarded(|state, ctx, mut call| async move {
            create(&state, &ctx, call.json().await?).await
        }),
        Endpoint::delete(
            "keys.revoke",
            "/api/keys/{keyId}",
            Access::PlatformAdmin,
            "Revoke a function key of the request's scope",
        )
        .param(
            "keyId",
            json!({ "type": "string", "pattern": KEY_ID_PATTERN }),
        )
        .empty(204, "Revoked")
        .errors(&[409])
        .guarded(|state, ctx, call| async move { revoke(&state, &ctx, call.param("keyId")).await }),
    ]
}

/// `POST /api/keys`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateKeyRequest {
    /// Letters, digits, `-`, `_` and `.`; at most two active keys share a name in a scope.
    #[schemars(length(min = 1, max = MAX_NAME_LEN), regex(pattern = NAME_PATTERN))]
    name: String,
    /// The organization the key acts for (it must exist and agree with `X-Organization-Id`);
    /// the request's scope when omitted.
    #[schemars(regex(pattern = ORG_ID_PATTERN))]
    org_id: Option<String>,
    /// Lifetime in days from now; omit for a key that does not expire.
    #[schemars(range(min = 1, max = MAX_EXPIRES_IN_DAYS))]
    expires_in_days: Option<u32>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyDto {
    pub id: String,
    pub name: String,
    /// `GLOBAL` or the organization id.
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

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    #[serde(flatten)]
    key: KeyDto,
    /// `bfk_...`: send as `x-functions-key` (or `?code=`). Shown only here, never again.
    raw_key: String,
}

#[derive(Serialize, JsonSchema)]
pub struct KeyList {
    keys: Vec<KeyDto>,
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

async fn create(
    state: &ApiState,
    ctx: &RequestContext,
    body: CreateKeyRequest,
) -> Result<Response, ApiError> {
    let days = body.expires_in_days;
    if days.is_some_and(|d| !(1..=MAX_EXPIRES_IN_DAYS).contains(&d)) {
        return Err(ApiError::bad_request(
            "expiresInDays",
            format!("expiresInDays must be a whole number from 1 to {MAX_EXPIRES_IN_DAYS}"),
        ));
    }
    let scope = target_scope(state, ctx, body.org_id.as_deref()).await?;
    let expires_at = days.map(|d| OffsetDateTime::now_utc() + time::Duration::days(i64::from(d)));
    let (record, raw) = state
        .services
        .keys
        .create(&body.name, scope.clone(), expires_at, &ctx.actor())
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
    use crate::http::endpoint::parse_json;

    #[test]
    fn create_bodies_name_their_bad_fields() {
        let field = |body: &str| match parse_json::<CreateKeyRequest>(body.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(r#"{}"#).as_deref(), Some("name"));
        assert_eq!(field(r#"{"name": 5}"#).as_deref(), Some("name"));
        assert_eq!(
            field(r#"{"name": "ci", "expiresInDays": -1}"#).as_deref(),
            Some("expiresInDays")
        );
        assert_eq!(
            field(r#"{"name": "ci", "orgid": "a"}"#).as_deref(),
            Some("orgid")
        );
        let ok = parse_json::<CreateKeyRequest>(
            br#"{"name": "ci", "orgId": null, "expiresInDays": 30}"#,
        )
        .unwrap();
        assert_eq!(
            (ok.name.as_str(), ok.org_id, ok.expires_in_days),
            ("ci", None, Some(30))
        );
    }

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

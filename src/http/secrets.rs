//! `/api/secrets`: the request scope's secrets (GLOBAL, or the organization chosen with
//! `X-Organization-Id`), for platform administrators. Names in, names out: values are write-only.
//!
//! Wire shape: `{name, secretName}` (the name as the SDK's `secrets.get(name)` uses it, and the
//! full secret-store name); the list is `{secrets, count}`. `POST {name, value}` creates (409 if
//! the name exists), `PUT /{name} {value}` sets or rotates, `DELETE /{name}` removes.
//!
//! Invariants: store names come only from `SecretName::scoped(scope, name)`, so one scope can
//! neither list nor touch another's secrets; values are held as [`SecretValue`] (which prints as
//! `***`) and never appear in a response, a log line or an audit entry; writes are audited as
//! `secret_written`/`secret_deleted` with the names only.
//!
//! Known limit: "409 if it exists" is a check-then-write, so two simultaneous creates of one name
//! may both succeed (the second as a rotation); the store has no create-if-absent.

use std::sync::Arc;

use bifrost_secrets::{SecretName, SecretValue};
use bifrost_store::Scope;
use serde::Serialize;
use serde_json::Value;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::audit::{AuditEvent, AuditEventType};
use crate::http::ApiState;
use crate::http::access::{Access, Route};
use crate::http::body;
use crate::http::context::{RequestContext, audit, guard};
use crate::http::error::{ApiError, json_response};
use crate::http::input::{Fields, existing_scope, no_content, rename_field, respond, with_state};

/// Longest name accepted from a caller (the scoped store name is limited to 127 characters).
pub const MAX_SECRET_NAME: usize = 100;

pub const ROUTES: &[Route] = &[
    Route {
        id: "secrets.list",
        method: "GET",
        path: "/api/secrets",
        access: Access::PlatformAdmin,
        summary: "Names of the request scope's secrets (never values)",
    },
    Route {
        id: "secrets.create",
        method: "POST",
        path: "/api/secrets",
        access: Access::PlatformAdmin,
        summary: "Create a secret {name, value}; 409 if it exists",
    },
    Route {
        id: "secrets.set",
        method: "PUT",
        path: "/api/secrets/{name}",
        access: Access::PlatformAdmin,
        summary: "Set or rotate a secret {value}",
    },
    Route {
        id: "secrets.delete",
        method: "DELETE",
        path: "/api/secrets/{name}",
        access: Access::PlatformAdmin,
        summary: "Delete a secret",
    },
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretDto {
    pub name: String,
    pub secret_name: String,
}

#[derive(Serialize)]
struct SecretList {
    secrets: Vec<SecretDto>,
    count: usize,
}

pub fn routes(state: Arc<ApiState>) -> BoxedFilter<(Response,)> {
    let limit = state.settings.max_body_bytes;
    let list = warp::path!("api" / "secrets")
        .and(warp::get())
        .and(guard(state.clone(), "secrets.list"))
        .and(with_state(state.clone()))
        .then(|ctx, state: Arc<ApiState>| async move { respond(list(&state, &ctx).await) });
    let create = warp::path!("api" / "secrets")
        .and(warp::post())
        .and(guard(state.clone(), "secrets.create"))
        .and(body::json::<Value>(limit))
        .and(with_state(state.clone()))
        .then(|ctx, body, state: Arc<ApiState>| async move {
            respond(create(&state, &ctx, body).await)
        });
    let set = warp::path!("api" / "secrets" / String)
        .and(warp::put())
        .and(guard(state.clone(), "secrets.set"))
        .and(body::json::<Value>(limit))
        .and(with_state(state.clone()))
        .then(|name: String, ctx, body, state: Arc<ApiState>| async move {
            respond(set(&state, &ctx, &name, body).await)
        });
    let delete = warp::path!("api" / "secrets" / String)
        .and(warp::delete())
        .and(guard(state.clone(), "secrets.delete"))
        .and(with_state(state))
        .then(|name: String, ctx, state: Arc<ApiState>| async move {
            respond(delete(&state, &ctx, &name).await)
        });
    list.or(create)
        .unify()
        .or(set)
        .unify()
        .or(delete)
        .unify()
        .boxed()
}

/// Checks a caller's name (field `name`) and maps it into the scope: letters, digits, `-`, `_`
/// and `.`; the store name is lower-cased with other characters folded to `-`, as the SDK does.
fn scoped_name(scope: &Scope, raw: &str) -> Result<SecretName, ApiError> {
    if raw.is_empty() || raw.chars().count() > MAX_SECRET_NAME {
        return Err(ApiError::bad_request(
            "name",
            format!("name must be 1 to {MAX_SECRET_NAME} characters"),
        ));
    }
    if !raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApiError::bad_request(
            "name",
            "name may contain only letters, digits, '-', '_' and '.'",
        ));
    }
    SecretName::scoped(scope, raw).map_err(|e| rename_field(e.into(), "key", "name"))
}

fn dto(scope: &Scope, name: &SecretName) -> SecretDto {
    SecretDto {
        name: name.key_in_scope(scope).unwrap_or(name.as_str()).to_owned(),
        secret_name: name.as_str().to_owned(),
    }
}

/// The value field: a string, checked against the store's size limit (field `value`).
fn secret_value(fields: &Fields) -> Result<SecretValue, ApiError> {
    let value = SecretValue::new(fields.required_str("value")?);
    if value.is_empty() {
        return Err(ApiError::bad_request("value", "value must not be empty"));
    }
    value.validate()?;
    Ok(value)
}

async fn exists(state: &ApiState, name: &SecretName) -> Result<bool, ApiError> {
    // Listing by the full name as prefix answers without reading any value.
    let names = state.backends.secrets.list_names(name.as_str()).await?;
    Ok(names.iter().any(|n| n == name))
}

async fn written(
    state: &ApiState,
    ctx: &RequestContext,
    scope: &Scope,
    name: &SecretName,
    action: &str,
) {
    audit(
        state,
        AuditEvent::new(AuditEventType::SecretWritten, ctx.actor(), scope.clone())
            .detail("secret_name", name.as_str())
            .detail("action", action),
    )
    .await;
}

async fn list(state: &ApiState, ctx: &RequestContext) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let names = state.backends.secrets.list_scope(&scope).await?;
    let secrets: Vec<SecretDto> = names.iter().map(|n| dto(&scope, n)).collect();
    Ok(json_response(
        StatusCode::OK,
        &SecretList {
            count: secrets.len(),
            secrets,
        },
    ))
}

async fn create(state: &ApiState, ctx: &RequestContext, body: Value) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let fields = Fields::new(body, &["name", "value"])?;
    let name = scoped_name(&scope, fields.required_str("name")?)?;
    let value = secret_value(&fields)?;
    if exists(state, &name).await? {
        return Err(ApiError::Conflict(format!(
            "secret '{}' already exists; use PUT to rotate it",
            dto(&scope, &name).name
        )));
    }
    state.backends.secrets.set(&name, &value).await?;
    written(state, ctx, &scope, &name, "created").await;
    Ok(json_response(StatusCode::CREATED, &dto(&scope, &name)))
}

async fn set(
    state: &ApiState,
    ctx: &RequestContext,
    raw_name: &str,
    body: Value,
) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let name = scoped_name(&scope, raw_name)?;
    let fields = Fields::new(body, &["value"])?;
    let value = secret_value(&fields)?;
    let action = if exists(state, &name).await? {
        "updated"
    } else {
        "created"
    };
    state.backends.secrets.set(&name, &value).await?;
    written(state, ctx, &scope, &name, action).await;
    Ok(json_response(StatusCode::OK, &dto(&scope, &name)))
}

async fn delete(
    state: &ApiState,
    ctx: &RequestContext,
    raw_name: &str,
) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let name = scoped_name(&scope, raw_name)?;
    if !state.backends.secrets.delete(&name).await? {
        return Err(ApiError::NotFound(format!("secret '{raw_name}' not found")));
    }
    audit(
        state,
        AuditEvent::new(AuditEventType::SecretDeleted, ctx.actor(), scope.clone())
            .detail("secret_name", name.as_str()),
    )
    .await;
    Ok(no_content())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use bifrost_store::OrgId;

    use super::*;

    #[test]
    fn names_are_checked_and_scoped() {
        let org = Scope::Org(OrgId::parse("6f1c2a5e-0000-4000-8000-000000000001").unwrap());
        let name = scoped_name(&org, "Halo_Client").unwrap();
        assert_eq!(dto(&org, &name).name, "halo-client");
        assert!(name.as_str().starts_with(&SecretName::scope_prefix(&org)));
        assert_eq!(
            dto(&Scope::Global, &scoped_name(&Scope::Global, "x").unwrap()).secret_name,
            "bifrost-global-x"
        );
        for bad in ["", "a b", "a/b", "---", &"a".repeat(MAX_SECRET_NAME + 1)] {
            match scoped_name(&org, bad).unwrap_err() {
                ApiError::BadRequest { field, .. } => {
                    assert_eq!(field.as_deref(), Some("name"), "{bad:?}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}

//! `/api/secrets`: the request scope's secrets (GLOBAL, or the organization chosen with
//! `X-Organization-Id`), for platform administrators. Names in, names out: values are write-only.
//!
//! Wire shape: `{name, secretName}` (the name as the SDK's `secrets.get(name)` uses it, and the
//! full secret-store name); the list is `{secrets, count}`. `POST {name, value}` creates (409 if
//! the name exists), `PUT /{name} {value}` sets or rotates, `DELETE /{name}` removes.
//!
//! The rules (scoping, naming, audit of writes, values never shown) are the
//! [`SecretService`]'s, shared with workflows' `secrets.*`; this module maps them to HTTP. Values
//! are held as [`SecretValue`] (which prints as `***`) from the moment they are parsed, so they
//! never reach a response, a log line or an audit entry.
//!
//! Known limit: "409 if it exists" is a check-then-write, so two simultaneous creates of one name
//! may both succeed (the second as a rotation); the store has no create-if-absent.

use bifrost_secrets::{MAX_VALUE_BYTES, SecretName, SecretValue};
use bifrost_store::Scope;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::secrets::{MAX_SECRET_NAME, SecretAccess, SecretService};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::RequestContext;
use crate::http::endpoint::{Call, Endpoint};
use crate::http::error::{ApiError, json_response};
use crate::http::input::{existing_scope, no_content};

/// A name an administrator may give (`SecretService::checked_name`): letters, digits, `-`, `_`
/// and `.`, with at least one letter or digit.
const NAME_PATTERN: &str = "^[._-]*[A-Za-z0-9][A-Za-z0-9._-]*$";

/// The name of `/api/secrets/{name}` links.
const NAME_LINK: &str = "$response.body#/name";

pub fn endpoints() -> Vec<Endpoint> {
    let name = || {
        json!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_SECRET_NAME,
            "pattern": NAME_PATTERN,
            "description": "Stored lower-case with other characters folded to `-`; in an \
                organization's scope the full store name must also fit Key Vault's 127 characters.",
        })
    };
    vec![
        Endpoint::get(
            "secrets.list",
            "/api/secrets",
            Access::PlatformAdmin,
            "Names of the request scope's secrets (never values)",
        )
        .ok::<SecretList>("The scope's secrets")
        .errors(&[404])
        .guarded(|state, ctx, _call| async move { list(&state, &ctx).await }),
        Endpoint::post(
            "secrets.create",
            "/api/secrets",
            Access::PlatformAdmin,
            "Create a secret {name, value}; 409 if it exists",
        )
        .body::<CreateSecret>()
        .created::<SecretDto>("The new secret's names")
        .errors(&[404, 409])
        .link("SetSecret", "secrets.set", "name", NAME_LINK)
        .link("DeleteSecret", "secrets.delete", "name", NAME_LINK)
        .guarded(|state, ctx, call| async move { create(&state, &ctx, call).await }),
        Endpoint::put(
            "secrets.set",
            "/api/secrets/{name}",
            Access::PlatformAdmin,
            "Set or rotate a secret {value}",
        )
        .param("name", name())
        .body::<SetSecret>()
        .ok::<SecretDto>("The secret's names")
        .guarded(|state, ctx, call| async move { set(&state, &ctx, call).await }),
        Endpoint::delete(
            "secrets.delete",
            "/api/secrets/{name}",
            Access::PlatformAdmin,
            "Delete a secret",
        )
        .param("name", name())
        .empty(204, "Deleted")
        .guarded(|state, ctx, call| async move { delete(&state, &ctx, call.param("name")).await }),
    ]
}

/// `POST /api/secrets`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateSecret {
    /// Stored lower-case with other characters folded to `-` (`Halo_Client` is `halo-client`).
    #[schemars(length(min = 1, max = MAX_SECRET_NAME), regex(pattern = NAME_PATTERN))]
    name: String,
    /// At most 25 KB of UTF-8.
    #[serde(deserialize_with = "secret_value")]
    #[schemars(with = "String", length(min = 1, max = MAX_VALUE_BYTES))]
    value: SecretValue,
}

/// `PUT /api/secrets/{name}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetSecret {
    /// At most 25 KB of UTF-8.
    #[serde(deserialize_with = "secret_value")]
    #[schemars(with = "String", length(min = 1, max = MAX_VALUE_BYTES))]
    value: SecretValue,
}

/// A value is wrapped as soon as it is read, so no `Debug` or log line can show it.
fn secret_value<'de, D: Deserializer<'de>>(d: D) -> Result<SecretValue, D::Error> {
    String::deserialize(d).map(SecretValue::new)
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretDto {
    /// The name in the scope, as `secrets.get(name)` takes it.
    pub name: String,
    /// The full secret-store name.
    pub secret_name: String,
}

#[derive(Serialize, JsonSchema)]
pub struct SecretList {
    secrets: Vec<SecretDto>,
    count: usize,
}

fn dto(scope: &Scope, name: &SecretName) -> SecretDto {
    SecretDto {
        name: name.key_in_scope(scope).unwrap_or(name.as_str()).to_owned(),
        secret_name: name.as_str().to_owned(),
    }
}

async fn list(state: &ApiState, ctx: &RequestContext) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let names = state.services.secrets.list(&scope).await?;
    let secrets: Vec<SecretDto> = names.iter().map(|n| dto(&scope, n)).collect();
    Ok(json_response(
        StatusCode::OK,
        &SecretList {
            count: secrets.len(),
            secrets,
        },
    ))
}

async fn create(
    state: &ApiState,
    ctx: &RequestContext,
    mut call: Call,
) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let body: CreateSecret = call.json().await?;
    let name = SecretService::checked_name(&scope, &body.name)?;
    let actor = ctx.change_actor();
    state
        .services
        .secrets
        .create(&scope, &name, body.value, SecretAccess::api(&actor))
        .await?;
    Ok(json_response(StatusCode::CREATED, &dto(&scope, &name)))
}

async fn set(state: &ApiState, ctx: &RequestContext, mut call: Call) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let name = SecretService::checked_name(&scope, call.param("name"))?;
    let body: SetSecret = call.json().await?;
    let actor = ctx.change_actor();
    state
        .services
        .secrets
        .put(&scope, &name, body.value, SecretAccess::api(&actor))
        .await?;
    Ok(json_response(StatusCode::OK, &dto(&scope, &name)))
}

async fn delete(
    state: &ApiState,
    ctx: &RequestContext,
    raw_name: &str,
) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let name = SecretService::checked_name(&scope, raw_name)?;
    let actor = ctx.change_actor();
    if !state
        .services
        .secrets
        .delete(&scope, &name, SecretAccess::api(&actor))
        .await?
    {
        return Err(ApiError::NotFound(format!("secret '{raw_name}' not found")));
    }
    Ok(no_content())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use bifrost_store::OrgId;

    use super::*;
    use crate::http::endpoint::parse_json;

    #[test]
    fn names_are_checked_and_scoped() {
        let org = Scope::Org(OrgId::parse("6f1c2a5e-0000-4000-8000-000000000001").unwrap());
        let name = SecretService::checked_name(&org, "Halo_Client").unwrap();
        assert_eq!(dto(&org, &name).name, "halo-client");
        assert!(name.as_str().starts_with(&SecretName::scope_prefix(&org)));
        assert_eq!(
            dto(
                &Scope::Global,
                &SecretService::checked_name(&Scope::Global, "x").unwrap()
            )
            .secret_name,
            "bifrost-global-x"
        );
        for bad in ["", "a b", "a/b", "---", &"a".repeat(MAX_SECRET_NAME + 1)] {
            match ApiError::from(SecretService::checked_name(&org, bad).unwrap_err()) {
                ApiError::BadRequest { field, .. } => {
                    assert_eq!(field.as_deref(), Some("name"), "{bad:?}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_documented_pattern_is_the_names_rule() {
        let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
        for name in [
            "halo",
            "Halo_Client",
            "--a",
            "a.b",
            "---",
            "a b",
            "a/b",
            "é",
            "_",
        ] {
            assert_eq!(
                pattern.is_match(name),
                SecretService::checked_name(&Scope::Global, name).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn the_body_schema_is_as_strict_as_the_service() {
        let schema = serde_json::to_value(schemars::schema_for!(CreateSecret)).unwrap();
        let props = &schema["properties"];
        assert_eq!(props["value"]["type"], "string");
        assert_eq!(props["value"]["minLength"], 1);
        assert_eq!(props["value"]["maxLength"], MAX_VALUE_BYTES);
        assert_eq!(props["name"]["maxLength"], MAX_SECRET_NAME);
        assert_eq!(props["name"]["pattern"], NAME_PATTERN);
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn values_never_print() {
        let body: CreateSecret =
            parse_json(br#"{"name": "a", "value": "hunter2-secret"}"#).unwrap();
        assert!(!format!("{body:?}").contains("hunter2"));
        match parse_json::<SetSecret>(br#"{"value": 5}"#) {
            Err(ApiError::BadRequest { field, .. }) => assert_eq!(field.as_deref(), Some("value")),
            other => panic!("{other:?}"),
        }
    }
}

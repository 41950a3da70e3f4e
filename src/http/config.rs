//! `/api/config`: typed settings of the request's scope (GLOBAL, or the organization chosen with
//! `X-Organization-Id`), for platform administrators.
//!
//! Wire shape (camelCase, v1's `Config`): `{key, value, type, scope ("GLOBAL"|"org"), orgId,
//! description, updatedAt, updatedBy}`; the list is `{config}`. An organization's list includes
//! the GLOBAL entries it does not override, marked `scope: "GLOBAL"`. Writes take `{key, value?,
//! secretValue?, type, description?}`: `secretValue` (type `secret_ref` only) is stored in the
//! secret store through [`ConfigService::set_secret`](crate::domain::ConfigService::set_secret)
//! and the row points at it.
//!
//! Invariants: every value leaves through [`ConfigEntry::masked`], so `secret_ref` rows and keys
//! that look secret read as `***`; a `secretValue` is never echoed, logged or audited; every
//! change is audited as `config_changed` with the key, the action and the type, never the value.

use std::borrow::Cow;

use bifrost_secrets::{SecretName, SecretValue};
use bifrost_store::Scope;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use crate::audit::{AuditEvent, AuditEventType};
use crate::domain::config::{MAX_DESCRIPTION, MAX_KEY_LEN};
use crate::domain::{ConfigEntry, ConfigType, ConfigWrite, SetOutcome};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::{RequestContext, audit};
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};
use crate::http::input::{existing_scope, no_content, rename_field, scope_fields, timestamp};

/// A config key (`domain::config::validate_key`).
const KEY_PATTERN: &str = "^[A-Za-z0-9_]{1,128}$";

pub fn endpoints() -> Vec<Endpoint> {
    let key = || json!({ "type": "string", "pattern": KEY_PATTERN });
    vec![
        Endpoint::get(
            "config.list",
            "/api/config",
            Access::PlatformAdmin,
            "Settings of the request's scope (with GLOBAL fallbacks), secret values masked",
        )
        .ok::<ConfigList>("The settings")
        .guarded(|state, ctx, _call| async move { list(&state, &ctx).await }),
        Endpoint::post(
            "config.set",
            "/api/config",
            Access::PlatformAdmin,
            "Create (201) or replace (200) a setting {key, value?, secretValue?, type, description?}",
        )
        .body::<SetConfig>()
        .created::<ConfigDto>("Created")
        .ok::<ConfigDto>("Replaced")
        .errors(&[409])
        .link("GetConfig", "config.get", "key", "$response.body#/key")
        .link("DeleteConfig", "config.delete", "key", "$response.body#/key")
        .guarded(|state, ctx, mut call| async move { set(&state, &ctx, call.json().await?).await }),
        Endpoint::get(
            "config.get",
            "/api/config/{key}",
            Access::PlatformAdmin,
            "One setting (the scope's own, else GLOBAL's), secret values masked",
        )
        .param("key", key())
        .ok::<ConfigDto>("The setting")
        .guarded(|state, ctx, call| async move { get(&state, &ctx, call.param("key")).await }),
        Endpoint::delete(
            "config.delete",
            "/api/config/{key}",
            Access::PlatformAdmin,
            "Delete a setting of the request's scope",
        )
        .param("key", key())
        .empty(204, "Deleted")
        .guarded(|state, ctx, call| async move { delete(&state, &ctx, call.param("key")).await }),
    ]
}

/// `POST /api/config`. The value's shape depends on `type` (see the schema).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetConfig {
    key: String,
    /// A string, or for typed settings a JSON literal; `null` reads as absent.
    value: Option<Value>,
    /// The secret itself (type `secret_ref` only): stored in the secret store.
    secret_value: Option<String>,
    #[serde(rename = "type")]
    value_type: String,
    description: Option<String>,
}

impl JsonSchema for SetConfig {
    fn schema_name() -> Cow<'static, str> {
        "SetConfig".into()
    }

    /// One variant per type, each as strict as `domain::config::canonical_value`.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let no = |field: &str| json!({ "not": { "required": [field] } });
        let variant = |type_name: &str, value: Value| {
            json!({
                "properties": { "type": { "const": type_name }, "value": value },
                "required": ["value"],
                "allOf": [no("secretValue")],
            })
        };
        let max_string = bifrost_store::table::MAX_STRING_UTF16 / 2;
        json_schema!({
            "type": "object",
            "description": "`value` is a string, or for typed settings a JSON literal; for type \
                `secret_ref` either `value` names an existing secret of the request's scope or \
                `secretValue` carries the secret itself.",
            "required": ["key", "type"],
            "additionalProperties": false,
            "properties": {
                "key": { "type": "string", "pattern": KEY_PATTERN, "maxLength": MAX_KEY_LEN },
                "type": { "type": "string", "enum": ["string", "int", "bool", "json", "secret_ref"] },
                "value": {},
                "secretValue": { "type": "string", "minLength": 1, "maxLength": max_string },
                "description": { "type": ["string", "null"], "maxLength": MAX_DESCRIPTION },
            },
            "oneOf": [
                variant("string", json!({ "type": "string", "maxLength": max_string })),
                variant("int", json!({ "anyOf": [
                    { "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX },
                    { "type": "string", "pattern": "^[-+]?[0-9]{1,18}$" },
                ] })),
                variant("bool", json!({ "anyOf": [
                    { "type": "boolean" },
                    { "type": "string", "enum": ["true", "false"] },
                ] })),
                variant("json", json!({ "type": ["object", "array", "number", "boolean"] })),
                variant("secret_ref", json!({ "type": "string", "pattern": "^[A-Za-z0-9-]{1,127}$" })),
                {
                    "properties": {
                        "type": { "const": "secret_ref" },
                        "secretValue": { "type": "string" },
                    },
                    "required": ["secretValue"],
                    "allOf": [no("value")],
                },
            ],
        })
    }
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDto {
    pub key: String,
    /// Masked (`***`) for secret references and keys that look secret.
    pub value: String,
    #[serde(rename = "type")]
    pub value_type: &'static str,
    pub scope: &'static str,
    pub org_id: Option<String>,
    pub description: Option<String>,
    pub updated_at: String,
    pub updated_by: Option<String>,
}

impl From<ConfigEntry> for ConfigDto {
    fn from(entry: ConfigEntry) -> Self {
        // The one door out of this module for values: masking cannot be forgotten.
        let entry = entry.masked();
        let (scope, org_id) = scope_fields(&entry.scope);
        Self {
            key: entry.key,
            value: entry.value,
            value_type: entry.value_type.as_str(),
            scope,
            org_id,
            description: entry.description,
            updated_at: timestamp(entry.updated_at),
            updated_by: entry.updated_by,
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub struct ConfigList {
    config: Vec<ConfigDto>,
}

async fn list(state: &ApiState, ctx: &RequestContext) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let entries = state.services.config.list_effective(&scope).await?;
    Ok(json_response(
        StatusCode::OK,
        &ConfigList {
            config: entries.into_iter().map(ConfigDto::from).collect(),
        },
    ))
}

async fn get(state: &ApiState, ctx: &RequestContext, key: &str) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let config = &state.services.config;
    let mut entry = config.get_raw(&scope, key).await?;
    if entry.is_none() && matches!(scope, Scope::Org(_)) {
        entry = config.get_raw(&Scope::Global, key).await?;
    }
    match entry {
        Some(entry) => Ok(json_response(StatusCode::OK, &ConfigDto::from(entry))),
        None => Err(ApiError::NotFound(format!("config key '{key}' not found"))),
    }
}

/// The value as stored text: strings as they are; for typed settings a JSON number, boolean,
/// object or array is accepted too and written as its JSON text.
fn value_text(value: &Value, value_type: ConfigType) -> Result<String, ApiError> {
    match (value, value_type) {
        (Value::String(s), _) => Ok(s.clone()),
        (Value::Number(_) | Value::Bool(_), ConfigType::Int | ConfigType::Bool)
        | (_, ConfigType::Json) => Ok(value.to_string()),
        _ => Err(ApiError::bad_request(
            "value",
            format!("value must be a string for type {}", value_type.as_str()),
        )),
    }
}

async fn set(
    state: &ApiState,
    ctx: &RequestContext,
    body: SetConfig,
) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    let key = body.key;
    let value_type = ConfigType::parse(&body.value_type)?;
    let description = body.description;
    let secret = body.secret_value.as_deref();
    let value = body.value.as_ref();
    let config = &state.services.config;
    let outcome = match (secret, value) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "secretValue",
                "send either value (a secret name) or secretValue, not both",
            ));
        }
        (Some(_), None) if value_type != ConfigType::SecretRef => {
            return Err(ApiError::bad_request(
                "secretValue",
                "secretValue is only allowed with type secret_ref",
            ));
        }
        (Some(secret), None) => {
            let outcome = config
                .set_secret(
                    &scope,
                    &key,
                    &SecretValue::new(secret),
                    description,
                    Some(ctx.actor()),
                )
                .await
                .map_err(|e| rename_field(e.into(), "value", "secretValue"))?;
            let name = SecretName::scoped(&scope, &key)?;
            audit(
                state,
                AuditEvent::new(AuditEventType::SecretWritten, ctx.actor(), scope.clone())
                    .detail("secret_name", name.as_str())
                    .detail("config_key", key.as_str())
                    .detail("action", action(outcome)),
            )
            .await;
            outcome
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "value",
                "value is required (or secretValue for type secret_ref)",
            ));
        }
        (None, Some(value)) => {
            let write = ConfigWrite {
                key: key.clone(),
                value: value_text(value, value_type)?,
                value_type,
                description,
                updated_by: Some(ctx.actor()),
            };
            config.set(&scope, write).await?
        }
    };
    audit(
        state,
        AuditEvent::new(AuditEventType::ConfigChanged, ctx.actor(), scope.clone())
            .detail("config_key", key.as_str())
            .detail("action", action(outcome))
            .detail("type", value_type.as_str()),
    )
    .await;
    let entry = config
        .get_raw(&scope, &key)
        .await?
        // Only a concurrent delete gets here; say so rather than answer 500.
        .ok_or_else(|| {
            ApiError::Conflict(format!("config key '{key}' was deleted concurrently"))
        })?;
    let status = match outcome {
        SetOutcome::Created => StatusCode::CREATED,
        SetOutcome::Updated => StatusCode::OK,
    };
    Ok(json_response(status, &ConfigDto::from(entry)))
}

fn action(outcome: SetOutcome) -> &'static str {
    match outcome {
        SetOutcome::Created => "created",
        SetOutcome::Updated => "updated",
    }
}

async fn delete(state: &ApiState, ctx: &RequestContext, key: &str) -> Result<Response, ApiError> {
    let scope = existing_scope(state, ctx).await?;
    if !state.services.config.delete(&scope, key).await? {
        return Err(ApiError::NotFound(format!(
            "config key '{key}' not found in this scope"
        )));
    }
    audit(
        state,
        AuditEvent::new(AuditEventType::ConfigChanged, ctx.actor(), scope)
            .detail("config_key", key)
            .detail("action", "deleted"),
    )
    .await;
    Ok(no_content())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn typed_values_accept_json_literals_and_strings_only_as_strings() {
        assert_eq!(value_text(&json!("x"), ConfigType::String).unwrap(), "x");
        assert_eq!(value_text(&json!(3), ConfigType::Int).unwrap(), "3");
        assert_eq!(value_text(&json!(true), ConfigType::Bool).unwrap(), "true");
        assert_eq!(
            value_text(&json!({"a": [1]}), ConfigType::Json).unwrap(),
            r#"{"a":[1]}"#
        );
        for (value, ty) in [
            (json!(3), ConfigType::String),
            (json!({"a": 1}), ConfigType::Int),
            (json!(["n"]), ConfigType::SecretRef),
        ] {
            match value_text(&value, ty).unwrap_err() {
                ApiError::BadRequest { field, .. } => assert_eq!(field.as_deref(), Some("value")),
                other => panic!("{other:?}"),
            }
        }
    }
}

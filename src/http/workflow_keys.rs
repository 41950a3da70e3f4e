//! `/api/workflow-keys`: the API keys that open `/api/endpoints/{workflowName}` (v1's
//! `/workflow-keys`, bifrost-v1.md §3), for platform administrators; and
//! [`authenticate_endpoint`], the `Authorization: Bearer` check the endpoint handler
//! (`run.rs`) calls.
//!
//! Wire shape (camelCase): a key is `{id, workflowName (null = global key), workflowId (v1's
//! name, same value), global, description, disableGlobalKey, createdAt, createdBy, expiresAt,
//! expired, revoked, revokedAt, revokedBy, lastUsedAt}`; the list is `{keys}`, oldest first,
//! optionally `?workflowName=` only. `POST {workflowName? (alias workflowId), expiresInDays?
//! (1..3650), description?, disableGlobalKey?}` answers 201 with the key plus `rawKey`
//! (`wk_...`), the only time it is ever shown. `DELETE /{keyId}` revokes (204; 404 unknown, 409
//! already revoked). Keys act in GLOBAL, whatever `X-Organization-Id` says.
//!
//! Endpoint calls: a missing or malformed key, an unknown one, a wrong secret, a revoked or an
//! expired key answer 401 (the last two say so); a valid key that does not cover the workflow
//! (another workflow's key, or a global key where the workflow refuses global keys) answers
//! 403. Uses are audited as `key_used` (at most once a minute per key, when `LastUsedAt` is
//! written), refusals as `key_rejected`, both with `kind: workflow_key`.
//!
//! Depends on [`WorkflowKeys`](crate::auth::WorkflowKeys), the engine's registry (a key must
//! name an existing workflow) and the audit log. Invariants: the raw key (after creation) and
//! its hash are never sent, logged or audited; the `Authorization` header is never logged.

use std::time::Duration;

use bifrost_engine::WorkflowInfo;
use bifrost_store::Scope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use crate::audit::{AuditEvent, AuditEventType};
use crate::auth::workflow_keys::{MAX_DESCRIPTION_LEN, MAX_EXPIRES_IN_DAYS, MAX_WORKFLOW_NAME_LEN};
use crate::auth::{
    NewWorkflowKey, WorkflowKeyAuthError, WorkflowKeyError, WorkflowKeyId, WorkflowKeyPrincipal,
    WorkflowKeyRecord, bearer_token,
};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::{RequestContext, audit, audit_grant};
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};
use crate::http::input::{TEXT_PATTERN, no_content, timestamp};

/// A key id (`wk_<id>_...`): 16 lowercase hex characters.
const KEY_ID_PATTERN: &str = r"^[0-9a-f]{16}$";
/// The key id of `/api/workflow-keys/{keyId}` links.
const KEY_LINK: &str = "$response.body#/id";

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "workflowKeys.list",
            "/api/workflow-keys",
            Access::PlatformAdmin,
            "Workflow API keys (never their values or hashes); ?workflowName= filters",
        )
        .query::<WorkflowKeysQuery>()
        .ok::<WorkflowKeyList>("The keys, oldest first")
        .guarded(|state, _ctx, call| async move { list(&state, call.query()?).await }),
        Endpoint::post(
            "workflowKeys.create",
            "/api/workflow-keys",
            Access::PlatformAdmin,
            "Create a workflow API key for one workflow or all (global); rawKey is shown once",
        )
        .body::<CreateWorkflowKeyRequest>()
        .created::<CreatedWorkflowKey>("Created; rawKey is shown this once")
        .link(
            "RevokeWorkflowKey",
            "workflowKeys.revoke",
            "keyId",
            KEY_LINK,
        )
        .guarded(|state, ctx, mut call| async move {
            create(&state, &ctx, call.json().await?).await
        }),
        Endpoint::delete(
            "workflowKeys.revoke",
            "/api/workflow-keys/{keyId}",
            Access::PlatformAdmin,
            "Revoke a workflow API key",
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

/// `GET /api/workflow-keys` filter.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowKeysQuery {
    /// Only this workflow's keys.
    #[schemars(length(max = MAX_WORKFLOW_NAME_LEN))]
    workflow_name: Option<String>,
}

/// `POST /api/workflow-keys`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateWorkflowKeyRequest {
    /// The workflow the key opens (it must exist in the workspace); omit for a global key
    /// (every workflow that accepts global keys).
    #[schemars(length(min = 1, max = MAX_WORKFLOW_NAME_LEN), regex(pattern = TEXT_PATTERN))]
    pub workflow_name: Option<String>,
    /// v1's name for `workflowName`; send one of them (or both with the same value).
    #[schemars(length(min = 1, max = MAX_WORKFLOW_NAME_LEN), regex(pattern = TEXT_PATTERN))]
    pub workflow_id: Option<String>,
    /// Lifetime in days from now; omit for a key that does not expire.
    #[schemars(range(min = 1, max = MAX_EXPIRES_IN_DAYS))]
    pub expires_in_days: Option<u32>,
    /// Blank descriptions are dropped.
    #[schemars(length(max = MAX_DESCRIPTION_LEN))]
    pub description: Option<String>,
    /// Workflow keys only: while this key is unrevoked, its workflow refuses global keys.
    pub disable_global_key: Option<bool>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowKeyDto {
    pub id: String,
    /// `null` for a global key.
    pub workflow_name: Option<String>,
    /// v1's name for `workflowName`.
    pub workflow_id: Option<String>,
    pub global: bool,
    pub description: Option<String>,
    pub disable_global_key: bool,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub expired: bool,
    pub revoked: bool,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
    pub last_used_at: Option<String>,
}

impl WorkflowKeyDto {
    fn new(key: &WorkflowKeyRecord, now: OffsetDateTime) -> Self {
        Self {
            id: key.id.to_string(),
            workflow_name: key.workflow_name.clone(),
            workflow_id: key.workflow_name.clone(),
            global: key.is_global(),
            description: key.description.clone(),
            disable_global_key: key.disable_global_key,
            created_at: timestamp(key.created_at),
            created_by: key.created_by.clone(),
            expires_at: key.expires_at.map(timestamp),
            expired: key.is_expired(now),
            revoked: key.is_revoked(),
            revoked_at: key.revoked_at.map(timestamp),
            revoked_by: key.revoked_by.clone(),
            last_used_at: key.last_used_at.map(timestamp),
        }
    }
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWorkflowKey {
    #[serde(flatten)]
    pub key: WorkflowKeyDto,
    /// `wk_...`: send as `Authorization: Bearer <rawKey>`. Shown only here, never again.
    pub raw_key: String,
}

#[derive(Serialize, JsonSchema)]
pub struct WorkflowKeyList {
    pub keys: Vec<WorkflowKeyDto>,
}

/// The HTTP answer to a key-management error; fields are named as the API spells them.
fn key_error(err: WorkflowKeyError) -> ApiError {
    match err {
        WorkflowKeyError::Invalid { field, reason } => {
            let field = match field {
                "workflow_name" => "workflowName",
                "expires_in_days" => "expiresInDays",
                "disable_global_key" => "disableGlobalKey",
                "id" => "keyId",
                other => other,
            };
            ApiError::bad_request(field, format!("{field} {reason}"))
        }
        WorkflowKeyError::NotFound { id } => {
            ApiError::NotFound(format!("workflow key '{id}' not found"))
        }
        // Workflow keys do not rotate in slots; a limit would still be a conflict.
        e @ (WorkflowKeyError::AlreadyRevoked { .. } | WorkflowKeyError::RotationLimit { .. }) => {
            ApiError::Conflict(e.to_string())
        }
        e @ WorkflowKeyError::Contention { .. } => ApiError::Unavailable {
            reason: e.to_string(),
            retry_after: Duration::from_secs(1),
        },
        WorkflowKeyError::Store(e) => ApiError::from(e),
    }
}

async fn list(state: &ApiState, query: WorkflowKeysQuery) -> Result<Response, ApiError> {
    let workflow = query.workflow_name.as_deref();
    if workflow.is_some_and(|w| w.chars().count() > MAX_WORKFLOW_NAME_LEN) {
        return Err(ApiError::bad_request(
            "workflowName",
            format!("must be at most {MAX_WORKFLOW_NAME_LEN} characters"),
        ));
    }
    let keys = state
        .services
        .workflow_keys
        .list(workflow)
        .await
        .map_err(key_error)?;
    let now = OffsetDateTime::now_utc();
    Ok(json_response(
        StatusCode::OK,
        &WorkflowKeyList {
            keys: keys.iter().map(|k| WorkflowKeyDto::new(k, now)).collect(),
        },
    ))
}

/// `workflowName`, or v1's `workflowId`; both may be sent only with the same value.
fn workflow_name(body: &CreateWorkflowKeyRequest) -> Result<Option<String>, ApiError> {
    match (&body.workflow_name, &body.workflow_id) {
        (Some(a), Some(b)) if a != b => Err(ApiError::bad_request(
            "workflowId",
            "workflowId is v1's name for workflowName; send one of them",
        )),
        (Some(a), _) | (None, Some(a)) => Ok(Some(a.clone())),
        (None, None) => Ok(None),
    }
}

async fn create(
    state: &ApiState,
    ctx: &RequestContext,
    body: CreateWorkflowKeyRequest,
) -> Result<Response, ApiError> {
    let workflow_name = workflow_name(&body)?;
    let days = body.expires_in_days;
    if days.is_some_and(|d| !(1..=MAX_EXPIRES_IN_DAYS).contains(&d)) {
        return Err(ApiError::bad_request(
            "expiresInDays",
            format!("expiresInDays must be a whole number from 1 to {MAX_EXPIRES_IN_DAYS}"),
        ));
    }
    let new = NewWorkflowKey {
        expires_in_days: days,
        description: body.description,
        disable_global_key: body.disable_global_key.unwrap_or(false),
        workflow_name,
    };
    if let Some(name) = new
        .workflow_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        && state.runner.registry().workflow(name).is_none()
    {
        return Err(ApiError::bad_request(
            "workflowName",
            format!("workflowName: the workspace has no workflow named '{name}'"),
        ));
    }
    let (record, raw) = state
        .services
        .workflow_keys
        .create(new, &ctx.actor())
        .await
        .map_err(key_error)?;
    audit_grant(
        state,
        key_event(AuditEventType::KeyCreated, ctx.actor(), &record.id)
            .detail(
                "workflow",
                record
                    .workflow_name
                    .clone()
                    .map_or(Value::Null, Value::from),
            )
            .detail("disable_global_key", record.disable_global_key)
            .detail(
                "expires_at",
                record
                    .expires_at
                    .map_or(Value::Null, |t| timestamp(t).into()),
            ),
        || async {
            if let Err(e) = state
                .services
                .workflow_keys
                .revoke(&record.id, "audit-unavailable")
                .await
            {
                tracing::error!(error = %e, key_id = %record.id, "could not revoke an unaudited key");
            }
        },
    )
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &CreatedWorkflowKey {
            key: WorkflowKeyDto::new(&record, OffsetDateTime::now_utc()),
            raw_key: raw.expose().to_owned(),
        },
    ))
}

async fn revoke(state: &ApiState, ctx: &RequestContext, id: &str) -> Result<Response, ApiError> {
    let id = WorkflowKeyId::parse(id).map_err(key_error)?;
    let record = state
        .services
        .workflow_keys
        .revoke(&id, &ctx.actor())
        .await
        .map_err(key_error)?;
    audit(
        state,
        key_event(AuditEventType::KeyRevoked, ctx.actor(), &record.id).detail(
            "workflow",
            record
                .workflow_name
                .clone()
                .map_or(Value::Null, Value::from),
        ),
    )
    .await;
    Ok(no_content())
}

fn key_event(kind: AuditEventType, actor: String, id: &WorkflowKeyId) -> AuditEvent {
    AuditEvent::new(kind, actor, Scope::Global)
        .detail("kind", "workflow_key")
        .detail("key_id", id.to_string())
}

/// The `Authorization: Bearer` check of a non-public `/api/endpoints/{workflow}` call that
/// carried no function key: 401 without a valid key, 403 for a valid key that does not cover
/// this workflow. Audits uses (throttled) and refusals.
pub async fn authenticate_endpoint(
    state: &ApiState,
    workflow: &WorkflowInfo,
    headers: &HeaderMap,
) -> Result<WorkflowKeyPrincipal, ApiError> {
    let header = headers
        .get(warp::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(token) = bearer_token(header) else {
        return Err(ApiError::Unauthorized(
            "this endpoint requires a workflow key (Authorization: Bearer wk_...) or a function \
             key (x-functions-key header or ?code=)"
                .into(),
        ));
    };
    match state
        .services
        .workflow_keys
        .verify(token, &workflow.name, workflow.disable_global_key)
        .await
    {
        Ok(key) => {
            if key.usage_recorded {
                audit(
                    state,
                    key_event(
                        AuditEventType::KeyUsed,
                        format!("workflow_key:{}", key.key_id),
                        &key.key_id,
                    )
                    .detail("workflow", workflow.name.clone()),
                )
                .await;
            }
            Ok(key)
        }
        Err(WorkflowKeyAuthError::Rejected(rejection)) => {
            let mut event =
                AuditEvent::new(AuditEventType::KeyRejected, "anonymous", Scope::Global)
                    .detail("kind", "workflow_key")
                    .detail("reason", rejection.reason.as_str())
                    .detail("workflow", workflow.name.clone());
            if let Some(id) = &rejection.key_id {
                event = event.detail("key_id", id.to_string());
            }
            audit(state, event).await;
            Err(if rejection.reason.is_forbidden() {
                ApiError::Forbidden(rejection.to_string())
            } else {
                ApiError::Unauthorized(rejection.to_string())
            })
        }
        Err(WorkflowKeyAuthError::Store(e)) => Err(ApiError::from(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::http::endpoint::parse_json;

    #[test]
    fn key_errors_name_the_api_fields() {
        let field = |e: WorkflowKeyError| match key_error(e) {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("{other:?}"),
        };
        let invalid = |field: &'static str| WorkflowKeyError::Invalid {
            field,
            reason: "bad".into(),
        };
        assert_eq!(
            field(invalid("workflow_name")).as_deref(),
            Some("workflowName")
        );
        assert_eq!(
            field(invalid("expires_in_days")).as_deref(),
            Some("expiresInDays")
        );
        assert_eq!(
            field(invalid("disable_global_key")).as_deref(),
            Some("disableGlobalKey")
        );
        assert_eq!(
            field(invalid("description")).as_deref(),
            Some("description")
        );
        assert_eq!(field(invalid("id")).as_deref(), Some("keyId"));
        let id = WorkflowKeyId::parse("0123456789abcdef").unwrap();
        assert_eq!(
            key_error(WorkflowKeyError::AlreadyRevoked { id: id.clone() }).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            key_error(WorkflowKeyError::NotFound { id }).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn workflow_id_is_an_alias_of_workflow_name() {
        let name = |body: Value| {
            let body: CreateWorkflowKeyRequest = parse_json(body.to_string().as_bytes())?;
            workflow_name(&body)
        };
        assert_eq!(
            name(json!({"workflowId": "a"})).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            name(json!({"workflowName": "a"})).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            name(json!({"workflowName": "a", "workflowId": "a"}))
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert_eq!(name(json!({})).unwrap(), None);
        match name(json!({"workflowName": "a", "workflowId": "b"})).unwrap_err() {
            ApiError::BadRequest { field, .. } => assert_eq!(field.as_deref(), Some("workflowId")),
            other => panic!("{other:?}"),
        }
        match name(json!({"workflowId": 5})).unwrap_err() {
            ApiError::BadRequest { field, .. } => assert_eq!(field.as_deref(), Some("workflowId")),
            other => panic!("{other:?}"),
        }
    }
}

//! `/api/audit`: the hash-chained audit log, for platform administrators: filtered listing in
//! chain order and a full chain verification.
//!
//! Read-only: nothing here appends to or changes the chain. Details are shown as stored (they
//! hold ids and names, never secret values; the log refuses those on append). Depends on
//! [`crate::audit::AuditLog`] only.

use std::str::FromStr;

use bifrost_store::Scope;
use bifrost_store::table::ContinuationToken;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use warp::http::StatusCode;

use crate::audit::{AuditEntry, AuditError, AuditEventType, AuditQuery, BreakReason};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};
use crate::http::input::{
    continuation_error, date_schema, query_datetime, query_limit, timestamp as rfc3339,
};

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "audit.list",
            "/api/audit",
            Access::PlatformAdmin,
            "Audit log entries in chain order (filters: since, until, eventType, orgId)",
        )
        .query::<AuditListQuery>()
        .ok::<AuditList>("One page of entries")
        .guarded(|state, _ctx, call| async move {
            Ok(json_response(StatusCode::OK, &list(&state, call.query()?).await?))
        }),
        Endpoint::get(
            "audit.verify",
            "/api/audit/verify",
            Access::PlatformAdmin,
            "Verify the hash chain (from the last checkpoint, or ?full=true from the start) and report the first broken link",
        )
        .query::<VerifyQuery>()
        .ok::<VerifyResponse>("The verification report")
        .guarded(|state, _ctx, call| async move {
            Ok(json_response(StatusCode::OK, &verify(&state, call.query()?).await?))
        }),
    ]
}

fn event_type_names() -> Vec<&'static str> {
    AuditEventType::ALL.iter().map(|t| t.as_str()).collect()
}

/// `GET /api/audit` filters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditListQuery {
    /// Entries at or after.
    #[serde(default)]
    #[schemars(schema_with = "date_schema")]
    since: Option<String>,
    /// Entries strictly before.
    #[serde(default)]
    #[schemars(schema_with = "date_schema")]
    until: Option<String>,
    /// Only entries of this type.
    #[schemars(extend("enum" = event_type_names()))]
    event_type: Option<String>,
    /// Only entries recorded in this scope: `GLOBAL` or an organization id.
    #[schemars(regex(pattern = SCOPE_PATTERN))]
    org_id: Option<String>,
    /// Page size (default 100).
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    limit: Option<u16>,
    /// The `continuationToken` of the previous page.
    continuation_token: Option<String>,
}

/// `GLOBAL` or an organization id.
const SCOPE_PATTERN: &str = "^(GLOBAL|[A-Za-z0-9_-]{1,64})$";

/// `GET /api/audit/verify` options.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyQuery {
    /// Walk the whole chain instead of starting at the last signed checkpoint.
    full: Option<bool>,
}

pub const DEFAULT_LIMIT: u16 = 100;
pub const MAX_LIMIT: u16 = 1000;

/// One link of the chain.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryDto {
    /// 1, 2, 3, ... without gaps.
    pub sequence: u64,
    /// RFC 3339, UTC, microsecond precision.
    pub timestamp: String,
    /// e.g. `login`, `key_created`, `secret_read`, `config_changed`, `cross_org_denied`.
    pub event_type: String,
    /// `user:<id>`, `key:<id>`, `local-developer`, `anonymous`, ...
    pub actor: String,
    /// `GLOBAL` or an organization id.
    pub scope: String,
    pub details: Map<String, Value>,
    pub prev_hash: String,
    /// Lowercase hex SHA-256 of the entry's canonical form.
    pub hash: String,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditList {
    pub entries: Vec<AuditEntryDto>,
    /// Pass back as `continuationToken`; `null` on the last page. A page may be short or empty
    /// and still carry a token.
    pub continuation_token: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokenLinkDto {
    pub sequence: u64,
    /// `hash_mismatch` (the entry was edited), `wrong_previous_hash` (an earlier entry was
    /// replaced or entries reordered), `missing_sequence`, `malformed` or `head_mismatch`.
    pub reason: String,
    /// For `malformed`: the field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub ok: bool,
    /// Entries verified before the first break (all of them when `ok`).
    pub checked: u64,
    /// The first sequence number this pass walked: 1 for a full pass, otherwise the entry after
    /// the last signed checkpoint (whose entry is checked against the signature first).
    pub from: u64,
    pub first_broken: Option<BrokenLinkDto>,
}

async fn list(state: &ApiState, q: AuditListQuery) -> Result<AuditList, ApiError> {
    let event_type = q
        .event_type
        .as_deref()
        .map(|v| {
            AuditEventType::from_str(v).map_err(|_| {
                ApiError::bad_request(
                    "eventType",
                    format!("must be one of {}", event_type_names().join(", ")),
                )
            })
        })
        .transpose()?;
    let scope = q
        .org_id
        .as_deref()
        .map(|v| {
            Scope::parse(v)
                .map_err(|_| ApiError::bad_request("orgId", "must be GLOBAL or an organization id"))
        })
        .transpose()?;
    let since = query_datetime("since", q.since.as_deref(), false)?;
    let until = query_datetime("until", q.until.as_deref(), false)?;
    if let (Some(a), Some(b)) = (since, until)
        && a > b
    {
        return Err(ApiError::bad_request("until", "must not be before since"));
    }
    let query = AuditQuery {
        since,
        until,
        event_type,
        scope,
        page_size: Some(query_limit("limit", q.limit, DEFAULT_LIMIT, MAX_LIMIT)?),
        continuation: q.continuation_token.map(ContinuationToken::new),
    };
    let page = state
        .services
        .audit
        .list(&query)
        .await
        .map_err(audit_error)?;
    Ok(AuditList {
        entries: page.entries.iter().map(entry_dto).collect(),
        continuation_token: page.continuation.map(|t| t.as_str().to_owned()),
    })
}

async fn verify(state: &ApiState, q: VerifyQuery) -> Result<VerifyResponse, ApiError> {
    let full = q.full.unwrap_or(false);
    let report = state
        .services
        .audit
        .verify(full)
        .await
        .map_err(audit_error)?;
    Ok(VerifyResponse {
        ok: report.ok,
        checked: report.checked,
        from: report.from,
        first_broken: report.first_broken.map(|b| {
            let (reason, field) = match b.reason {
                BreakReason::HashMismatch => ("hash_mismatch", None),
                BreakReason::WrongPreviousHash => ("wrong_previous_hash", None),
                BreakReason::MissingSequence => ("missing_sequence", None),
                BreakReason::Malformed { field } => ("malformed", Some(field)),
                BreakReason::HeadMismatch => ("head_mismatch", None),
                BreakReason::Unkeyed => ("unkeyed", None),
                BreakReason::UnknownKey => ("unknown_key", None),
                BreakReason::Truncated => ("truncated", None),
                BreakReason::MarkMismatch => ("mark_mismatch", None),
                BreakReason::ForgedMark => ("forged_mark", None),
            };
            BrokenLinkDto {
                sequence: b.sequence,
                reason: reason.to_owned(),
                field,
            }
        }),
    })
}

fn entry_dto(e: &AuditEntry) -> AuditEntryDto {
    AuditEntryDto {
        sequence: e.sequence,
        timestamp: rfc3339(e.timestamp),
        event_type: e.event_type.as_str().to_owned(),
        actor: e.actor.clone(),
        scope: e.scope.to_string(),
        details: e.details.clone(),
        prev_hash: e.prev_hash.clone(),
        hash: e.hash.clone(),
    }
}

fn audit_error(e: AuditError) -> ApiError {
    match e {
        AuditError::Invalid { field, reason } => ApiError::bad_request(field, reason),
        AuditError::Store(store) => continuation_error(store, "continuationToken"),
        other => ApiError::Internal(other.to_string()),
    }
}

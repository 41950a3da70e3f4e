//! `/api/audit`: the hash-chained audit log, for platform administrators: filtered listing in
//! chain order and a full chain verification.
//!
//! Read-only: nothing here appends to or changes the chain. Details are shown as stored (they
//! hold ids and names, never secret values; the log refuses those on append). Depends on
//! [`crate::audit::AuditLog`] only.

use std::str::FromStr;
use std::sync::Arc;

use bifrost_store::Scope;
use bifrost_store::table::ContinuationToken;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::audit::{AuditEntry, AuditError, AuditEventType, AuditQuery, BreakReason};
use crate::http::ApiState;
use crate::http::access::{Access, Route};
use crate::http::context::{RequestContext, guard};
use crate::http::error::{ApiError, reply};
use crate::http::executions::{QueryParams, continuation_error, rfc3339};

pub const ROUTES: &[Route] = &[
    Route {
        id: "audit.list",
        method: "GET",
        path: "/api/audit",
        access: Access::PlatformAdmin,
        summary: "Audit log entries in chain order (filters: since, until, eventType, orgId)",
    },
    Route {
        id: "audit.verify",
        method: "GET",
        path: "/api/audit/verify",
        access: Access::PlatformAdmin,
        summary: "Verify the hash chain (from the last checkpoint, or ?full=true from the start) and report the first broken link",
    },
];

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

pub fn routes(state: Arc<ApiState>) -> BoxedFilter<(Response,)> {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let raw_query = || warp::query::raw().or(warp::any().map(String::new)).unify();
    let list = warp::path!("api" / "audit")
        .and(warp::get())
        .and(guard(state.clone(), "audit.list"))
        .and(raw_query())
        .and(with_state.clone())
        .then(
            |_ctx: RequestContext, query: String, state: Arc<ApiState>| async move {
                reply(StatusCode::OK, list(&state, &query).await)
            },
        );
    let verify = warp::path!("api" / "audit" / "verify")
        .and(warp::get())
        .and(guard(state, "audit.verify"))
        .and(raw_query())
        .and(with_state)
        .then(
            |_ctx: RequestContext, query: String, state: Arc<ApiState>| async move {
                reply(StatusCode::OK, verify(&state, &query).await)
            },
        );
    list.or(verify).unify().boxed()
}

async fn list(state: &ApiState, raw: &str) -> Result<AuditList, ApiError> {
    let q = QueryParams::parse(
        raw,
        &[
            "since",
            "until",
            "eventType",
            "orgId",
            "limit",
            "continuationToken",
        ],
    )?;
    let event_type = q
        .get("eventType")
        .map(|v| {
            AuditEventType::from_str(v).map_err(|_| {
                let names: Vec<&str> = AuditEventType::ALL.iter().map(|t| t.as_str()).collect();
                ApiError::bad_request("eventType", format!("must be one of {}", names.join(", ")))
            })
        })
        .transpose()?;
    let scope = q
        .get("orgId")
        .map(|v| {
            Scope::parse(v)
                .map_err(|_| ApiError::bad_request("orgId", "must be GLOBAL or an organization id"))
        })
        .transpose()?;
    let since = q.datetime("since", false)?;
    let until = q.datetime("until", false)?;
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
        page_size: Some(q.limit("limit", DEFAULT_LIMIT, MAX_LIMIT)?),
        continuation: q.get("continuationToken").map(ContinuationToken::new),
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

async fn verify(state: &ApiState, raw: &str) -> Result<VerifyResponse, ApiError> {
    let q = QueryParams::parse(raw, &["full"])?;
    let full = match q.get("full") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("full", "must be true or false")),
    };
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

//! Request-input helpers shared by the resource modules: the patterns their DTO schemas
//! declare (so the OpenAPI document is as strict as the domain), paging and date query
//! parameters, `If-Match`/`ETag`, the organization a scoped request acts for, and timestamps on
//! the wire. Bodies and queries themselves are typed DTOs read by [`super::endpoint::Call`],
//! whose 400s name the field.
//!
//! Must not depend on domain services beyond the organization lookup of [`existing_scope`].
//! Invariants: request bodies refuse unknown fields (a typo like `isactive` must not be
//! silently ignored); `null` reads as "absent" except where [`nullable`] gives it meaning.

use std::collections::HashMap;

use bifrost_store::table::{ContinuationToken, ETag, IfMatch, MAX_PAGE_SIZE};
use bifrost_store::{OrgId, Scope};
use schemars::JsonSchema;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use crate::domain::PageRequest;
use crate::http::ApiState;
use crate::http::context::RequestContext;
use crate::http::error::ApiError;

/// A display text the domain accepts (`rows::text`): something besides white space, no control
/// characters. Declared in the OpenAPI document so generated requests are valid ones.
pub const TEXT_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";

/// A host name such as `example.com` (`domain::normalize_domain`; IDNs in punycode).
pub const DOMAIN_PATTERN: &str = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";

/// An email address (`domain::normalize_email`): 1-64 characters before the `@`, a host name
/// after it.
pub const EMAIL_PATTERN: &str = r"^[^\s@\u0000-\u001f\u007f-\u009f]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";

/// An id we mint or accept (`OrgId`, `UserId`, `RoleId`, ...): 1-64 of `[A-Za-z0-9_-]`.
pub const ID_PATTERN: &str = r"^[A-Za-z0-9_-]{1,64}$";

/// An organization id: an [`ID_PATTERN`] that is not the reserved `GLOBAL`.
pub const ORG_ID_PATTERN: &str = r"^(?![Gg][Ll][Oo][Bb][Aa][Ll]$)[A-Za-z0-9_-]{1,64}$";

/// The header admins use to choose the organization a request acts for.
pub const ORG_HEADER: &str = "X-Organization-Id";

/// The `If-Match` condition: absent or `*` means unconditional; anything else is compared
/// byte-for-byte with the stored ETag.
pub fn if_match(header: Option<&str>) -> Result<IfMatch, ApiError> {
    match header.map(str::trim) {
        None | Some("*") => Ok(IfMatch::Any),
        Some("") => Err(ApiError::bad_request(
            "If-Match",
            "If-Match must be an ETag or *",
        )),
        Some(etag) => Ok(IfMatch::ETag(ETag::new(etag))),
    }
}

/// `response` with an `ETag` header (skipped if the store produced a value HTTP cannot carry).
pub fn with_etag(mut response: Response, etag: &ETag) -> Response {
    if let Ok(value) = HeaderValue::from_str(etag.as_str()) {
        response.headers_mut().insert("etag", value);
    }
    response
}

/// An empty 204 answer.
pub fn no_content() -> Response {
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The query of an operation that takes no parameters: anything but `code` is a 400 naming it.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

/// The schema of a date query parameter: an RFC 3339 timestamp or a `YYYY-MM-DD` date (UTC).
pub fn date_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "anyOf": [{ "format": "date-time" }, { "format": "date" }],
        "description": "RFC 3339 timestamp or YYYY-MM-DD (UTC)",
    })
}

/// A date query parameter (see [`date_schema`]): a date means its first instant, or its last
/// when `end_of_day`.
pub fn query_datetime(
    name: &str,
    value: Option<&str>,
    end_of_day: bool,
) -> Result<Option<OffsetDateTime>, ApiError> {
    let Some(v) = value else {
        return Ok(None);
    };
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(Some(t));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(v, &format) {
        Ok(date) => {
            let start = date.midnight().assume_utc();
            Ok(Some(if end_of_day {
                start + time::Duration::days(1) - time::Duration::microseconds(1)
            } else {
                start
            }))
        }
        Err(_) => Err(ApiError::bad_request(
            name,
            "must be an RFC 3339 timestamp or a YYYY-MM-DD date",
        )),
    }
}

/// A page size from the query: `default` when absent, else 1 to `max`.
pub fn query_limit(
    name: &str,
    value: Option<u16>,
    default: u16,
    max: u16,
) -> Result<u16, ApiError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            name,
            format!("must be an integer from 1 to {max}"),
        )),
    }
}

/// A continuation token the store did not issue is the caller's mistake: 400 naming the field.
pub fn continuation_error(e: bifrost_store::StoreError, field: &str) -> ApiError {
    match e {
        bifrost_store::StoreError::Invalid { field: f, reason } if f == "continuation" => {
            ApiError::bad_request(field, reason)
        }
        other => ApiError::from(other),
    }
}

/// Paging parameters of a listing. `limit` stays text here so that an empty `limit=` reads as
/// absent, as it always has; [`PageQuery::page`] checks it.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageQuery {
    /// Page size.
    #[schemars(with = "Option<u16>", range(min = 1, max = 1000))]
    pub limit: Option<String>,
    /// The `continuationToken` of the previous page.
    pub continuation_token: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let mut query = HashMap::new();
        if let Some(limit) = &self.limit {
            query.insert("limit".to_owned(), limit.clone());
        }
        if let Some(token) = &self.continuation_token {
            query.insert("continuationToken".to_owned(), token.clone());
        }
        page(&query)
    }
}

/// For `Option<Option<T>>` fields (`#[serde(default, deserialize_with = "nullable")]`):
/// absent → `None` (keep), `null` → `Some(None)` (clear), a value → `Some(Some(..))`.
pub fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// Paging from the query string: `limit` (1..=1000) and `continuationToken`.
pub fn page(query: &HashMap<String, String>) -> Result<PageRequest, ApiError> {
    let size = match query.get("limit").map(|s| s.trim()) {
        None | Some("") => None,
        Some(raw) => {
            let n = raw
                .parse::<u16>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "limit",
                        format!("limit must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                    )
                })?;
            Some(n)
        }
    };
    let continuation = query
        .get("continuationToken")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(ContinuationToken::new);
    Ok(PageRequest { size, continuation })
}

/// Renames the store's `continuation` field to the API's `continuationToken` in a 400.
pub fn paging_error(err: ApiError) -> ApiError {
    match err {
        ApiError::BadRequest {
            field: Some(field),
            message,
        } if field == "continuation" => ApiError::BadRequest {
            field: Some("continuationToken".into()),
            message: format!("continuationToken: {message}"),
        },
        other => other,
    }
}

/// Renames the field of a 400 (domain services name their own parameters).
pub fn rename_field(err: ApiError, from: &str, to: &str) -> ApiError {
    match err {
        ApiError::BadRequest {
            field: Some(field),
            message,
        } if field == from => ApiError::BadRequest {
            field: Some(to.to_owned()),
            message,
        },
        other => other,
    }
}

/// The organization an org-only resource (roles) acts for; GLOBAL is a 400 naming the header.
pub fn org_of(ctx: &RequestContext) -> Result<OrgId, ApiError> {
    ctx.org_id().cloned().ok_or_else(|| {
        ApiError::bad_request(
            ORG_HEADER,
            format!("this resource belongs to an organization; send the {ORG_HEADER} header"),
        )
    })
}

/// The request's scope, after checking that an organization scope names an existing
/// organization (admins may send any well-formed id; data must not be written for an org that
/// does not exist).
pub async fn existing_scope(state: &ApiState, ctx: &RequestContext) -> Result<Scope, ApiError> {
    if let Scope::Org(org) = &ctx.scope {
        existing_org(state, org).await?;
    }
    Ok(ctx.scope.clone())
}

/// `NotFound` unless the organization exists.
pub async fn existing_org(state: &ApiState, org: &OrgId) -> Result<(), ApiError> {
    match state.services.orgs.find(org).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!(
            "organization '{org}' not found"
        ))),
    }
}

/// RFC 3339 on the wire (UTC, as stored).
pub fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// v1's scope fields: `("GLOBAL", None)` or `("org", Some(id))`.
pub fn scope_fields(scope: &Scope) -> (&'static str, Option<String>) {
    match scope {
        Scope::Global => ("GLOBAL", None),
        Scope::Org(org) => ("org", Some(org.to_string())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {

    use super::*;

    fn field_of(err: ApiError) -> Option<String> {
        match err {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn if_match_and_paging() {
        assert_eq!(if_match(None).unwrap(), IfMatch::Any);
        assert_eq!(if_match(Some("*")).unwrap(), IfMatch::Any);
        assert_eq!(
            if_match(Some("W/\"x\"")).unwrap(),
            IfMatch::ETag(ETag::new("W/\"x\""))
        );
        assert_eq!(
            field_of(if_match(Some(" ")).unwrap_err()).as_deref(),
            Some("If-Match")
        );
        let query = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(page(&query(&[])).unwrap(), PageRequest::default());
        assert_eq!(page(&query(&[("limit", "5")])).unwrap().size, Some(5));
        for bad in ["0", "1001", "x", "-1"] {
            assert_eq!(
                field_of(page(&query(&[("limit", bad)])).unwrap_err()).as_deref(),
                Some("limit")
            );
        }
    }
}

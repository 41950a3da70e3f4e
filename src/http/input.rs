//! Request-input helpers of the admin resources: JSON object fields read with errors that name
//! the field, `If-Match`/`ETag`, paging parameters, the organization a scoped request acts for,
//! and timestamps on the wire.
//!
//! Why not serde DTOs for request bodies: serde_json's type errors ("invalid type: integer `5`,
//! expected a string") do not say which field was wrong, and the API promises that every 400
//! names its field. Bodies are therefore parsed as JSON by [`super::body::json`] (which keeps
//! the parser position for malformed JSON) and read here field by field.
//!
//! Must not depend on domain services beyond the organization lookup of [`existing_scope`].
//! Invariants: unknown body fields are refused (a typo like `isactive` must not be silently
//! ignored); `null` reads as "absent" except where [`Fields::nullable_str`] gives it meaning.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bifrost_store::table::{ContinuationToken, ETag, IfMatch, MAX_PAGE_SIZE};
use bifrost_store::{OrgId, Scope};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

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

/// A JSON request body that must be an object with only `allowed` fields.
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Accepts an object whose keys are all in `allowed`; anything else is a 400 naming the
    /// offending field (or the body).
    pub fn new(body: Value, allowed: &[&str]) -> Result<Self, ApiError> {
        let Value::Object(map) = body else {
            return Err(ApiError::BadRequest {
                field: None,
                message: "the request body must be a JSON object".into(),
            });
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request(
                unknown.clone(),
                format!(
                    "unknown field '{unknown}'; expected one of: {}",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Self { map })
    }

    /// The field's value unless absent or `null`.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    pub fn required_str(&self, name: &str) -> Result<&str, ApiError> {
        self.str(name)?
            .ok_or_else(|| ApiError::bad_request(name, format!("{name} is required")))
    }

    /// Absent → `None`; `null` → `Some(None)` (clear the field); a string → `Some(Some(..))`.
    pub fn nullable_str(&self, name: &str) -> Result<Option<Option<&str>>, ApiError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s))),
            Some(other) => Err(wrong_type(name, "a string or null", other)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(name, "true or false", other)),
        }
    }

    /// A whole number within `range`.
    pub fn u32_in(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<Option<u32>, ApiError> {
        let Some(value) = self.value(name) else {
            return Ok(None);
        };
        let out_of_range = || {
            ApiError::bad_request(
                name,
                format!(
                    "{name} must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        };
        match value {
            Value::Number(n) => {
                let n = n.as_u64().ok_or_else(out_of_range)?;
                let n = u32::try_from(n).map_err(|_| out_of_range())?;
                if range.contains(&n) {
                    Ok(Some(n))
                } else {
                    Err(out_of_range())
                }
            }
            other => Err(wrong_type(name, "a whole number", other)),
        }
    }

    /// An array of strings.
    pub fn str_list(&self, name: &str) -> Result<Option<Vec<&str>>, ApiError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.as_str()),
                    other => Err(wrong_type(&format!("{name}[{i}]"), "a string", other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(wrong_type(name, "an array of strings", other)),
        }
    }
}

fn wrong_type(name: &str, expected: &str, got: &Value) -> ApiError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ApiError::bad_request(name, format!("{name} must be {expected}, not {got}"))
}

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

/// Hands the shared state to a handler.
pub fn with_state(
    state: Arc<ApiState>,
) -> impl Filter<Extract = (Arc<ApiState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The raw `If-Match` header (a non-text value is a 400 from the rejection mapping).
pub fn if_match_header() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("if-match")
}

/// Turns a handler's result into the response.
pub fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
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
    use serde_json::json;

    use super::*;

    fn field_of(err: ApiError) -> Option<String> {
        match err {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_and_wrong_types_name_the_field() {
        let err = Fields::new(
            json!({"name": "x", "isactive": true}),
            &["name", "isActive"],
        )
        .err()
        .unwrap();
        assert_eq!(field_of(err).as_deref(), Some("isactive"));

        let fields = Fields::new(
            json!({"name": 5, "flag": "yes", "ids": ["a", 1], "n": -1}),
            &["name", "flag", "ids", "n"],
        )
        .unwrap();
        assert_eq!(
            field_of(fields.str("name").unwrap_err()).as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of(fields.bool("flag").unwrap_err()).as_deref(),
            Some("flag")
        );
        assert_eq!(
            field_of(fields.str_list("ids").unwrap_err()).as_deref(),
            Some("ids[1]")
        );
        assert_eq!(
            field_of(fields.u32_in("n", 1..=10).unwrap_err()).as_deref(),
            Some("n")
        );
        assert_eq!(
            field_of(fields.required_str("missing").unwrap_err()).as_deref(),
            Some("missing")
        );
        assert!(Fields::new(json!([1]), &[]).is_err());
    }

    #[test]
    fn null_is_absent_except_for_nullable_fields() {
        let fields = Fields::new(json!({"domain": null, "n": 3}), &["domain", "n"]).unwrap();
        assert_eq!(fields.str("domain").unwrap(), None);
        assert_eq!(fields.nullable_str("domain").unwrap(), Some(None));
        assert_eq!(fields.nullable_str("other").unwrap(), None);
        assert_eq!(fields.u32_in("n", 1..=10).unwrap(), Some(3));
        assert!(fields.u32_in("n", 5..=10).is_err());
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

//! The API's one error type and its mapping to HTTP, in one place.
//!
//! Every endpoint answers failures with v1's JSON shape
//! `{"error": "<Code>", "message": "...", "details"?: {...}}`. Client errors carry a message meant
//! for the caller and name the offending field; server faults answer a generic message (the
//! detail goes to the log, correlated by `x-request-id`), and storage outages answer 503 with
//! `Retry-After`. What warp still rejects (an unknown path, an unreadable header) is mapped onto
//! the same shape by [`recover`].

use std::convert::Infallible;
use std::time::Duration;

use bifrost_store::StoreError;
use serde::Serialize;
use serde_json::{Value, json};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    /// Several request fields are invalid (a form submission): 400 listing every field with
    /// its message in `details.fields`; `details.field` names the first, as for `BadRequest`.
    #[error("{message}")]
    InvalidFields {
        message: String,
        fields: Vec<FieldMessage>,
    },
    #[error("request body is not valid JSON: {message} at line {line}, column {column}")]
    InvalidJson {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method {0} is not allowed on this route")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests; retry later")]
    TooManyRequests { retry_after: Duration },
    /// Storage or another dependency is unreachable; the reason is logged, not sent.
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
    /// A fault on our side; the detail is logged, never sent.
    #[error("an internal error occurred")]
    Internal(String),
    /// Workspace code the request depends on (a data provider, a form's launch workflow)
    /// failed: 502 with a message fit for this caller (never a traceback).
    #[error("{0}")]
    WorkflowFailed(String),
}

/// One invalid field of an [`ApiError::InvalidFields`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldMessage {
    pub field: String,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A 400 listing every invalid field (`(field, message)` pairs, in order). One field is
    /// the same answer as [`ApiError::bad_request`] plus `details.fields`.
    pub fn invalid_fields(fields: impl IntoIterator<Item = (String, String)>) -> Self {
        let fields: Vec<FieldMessage> = fields
            .into_iter()
            .map(|(field, message)| FieldMessage { field, message })
            .collect();
        let listed = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        let message = match fields.len() {
            0 => "invalid input".to_owned(),
            1 => listed,
            n => format!("{n} fields are invalid: {listed}"),
        };
        ApiError::InvalidFields { message, fields }
    }

    pub fn invalid_json(err: &serde_json::Error) -> Self {
        // serde_json's Display appends " at line L column C"; keep only the description.
        let text = err.to_string();
        let message = match text.rfind(" at line ") {
            Some(pos) => text[..pos].to_owned(),
            None => text,
        };
        ApiError::InvalidJson {
            message,
            line: err.line(),
            column: err.column(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. }
            | ApiError::InvalidFields { .. }
            | ApiError::InvalidJson { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::WorkflowFailed(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The stable machine-readable code in the body's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } | ApiError::InvalidFields { .. } => "BadRequest",
            ApiError::InvalidJson { .. } => "InvalidJson",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound(_) => "NotFound",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::PreconditionFailed(_) => "PreconditionFailed",
            ApiError::PayloadTooLarge { .. } => "PayloadTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
            ApiError::Unavailable { .. } => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalServerError",
            ApiError::WorkflowFailed(_) => "WorkflowFailed",
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApiError::BadRequest { field: Some(f), .. } => Some(json!({ "field": f })),
            ApiError::InvalidFields { fields, .. } => Some(json!({
                "field": fields.first().map(|f| f.field.as_str()),
                "fields": fields,
            })),
            ApiError::InvalidJson { line, column, .. } => {
                Some(json!({ "line": line, "column": column }))
            }
            ApiError::PayloadTooLarge { limit } => Some(json!({ "limitBytes": limit })),
            _ => None,
        }
    }

    pub fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(detail = %detail, "internal error"),
            ApiError::Unavailable { reason, .. } => {
                tracing::warn!(reason = %reason, "dependency unavailable")
            }
            _ => {}
        }
        let body = ErrorBody {
            error: self.code(),
            message: self.to_string(),
            details: self.details(),
        };
        let mut response = json_response(self.status(), &body);
        if let ApiError::Unavailable { retry_after, .. }
        | ApiError::TooManyRequests { retry_after } = &self
        {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert("retry-after", v);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { what } => ApiError::NotFound(format!("{what} not found")),
            StoreError::AlreadyExists { what } => {
                ApiError::Conflict(format!("{what} already exists"))
            }
            StoreError::PreconditionFailed { what } => ApiError::PreconditionFailed(format!(
                "{what} was changed by someone else; reload and retry"
            )),
            StoreError::Invalid { field, reason } => ApiError::bad_request(field, reason),
            StoreError::Unavailable {
                reason,
                retry_after,
            } => ApiError::Unavailable {
                reason,
                retry_after,
            },
            err @ (StoreError::BatchFailed { .. } | StoreError::Backend(_)) => {
                ApiError::Internal(err.to_string())
            }
        }
    }
}

impl From<crate::domain::DomainError> for ApiError {
    fn from(err: crate::domain::DomainError) -> Self {
        use crate::domain::DomainError;
        match err {
            DomainError::Invalid { field, reason } => ApiError::bad_request(field, reason),
            DomainError::NotFound { what } => ApiError::NotFound(format!("{what} not found")),
            DomainError::Conflict { what, reason } => {
                ApiError::Conflict(format!("{what}: {reason}"))
            }
            DomainError::PreconditionFailed { what } => ApiError::PreconditionFailed(format!(
                "{what} was changed by someone else; reload and retry"
            )),
            DomainError::Unavailable {
                reason,
                retry_after,
            } => ApiError::Unavailable {
                reason,
                retry_after,
            },
            DomainError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<crate::forms::store::FormStoreError> for ApiError {
    fn from(e: crate::forms::store::FormStoreError) -> Self {
        use crate::forms::store::FormStoreError;
        match e {
            FormStoreError::Store(e) => e.into(),
            e @ (FormStoreError::ReadOnly { .. } | FormStoreError::Exists(_)) => {
                ApiError::Conflict(e.to_string())
            }
            e @ FormStoreError::TooLarge { .. } => {
                ApiError::bad_request("formSchema", e.to_string())
            }
            e @ FormStoreError::InvalidId(_) => ApiError::bad_request("formId", e.to_string()),
            e @ FormStoreError::Corrupt { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::forms::files::UploadError> for ApiError {
    fn from(e: crate::forms::files::UploadError) -> Self {
        use crate::forms::files::UploadError;
        match e {
            UploadError::Store(e) => e.into(),
            UploadError::Rejected(message) => ApiError::UnsupportedMediaType(message),
            UploadError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
            e @ UploadError::NotAFileField(_) => ApiError::bad_request("field", e.to_string()),
        }
    }
}

impl From<crate::forms::error::FormError> for ApiError {
    fn from(e: crate::forms::error::FormError) -> Self {
        use crate::forms::error::FormError;
        match e {
            FormError::NotFound(m) => ApiError::NotFound(m),
            FormError::SignInRequired(m) => ApiError::Unauthorized(m),
            FormError::Forbidden(m) => ApiError::Forbidden(m),
            FormError::Invalid { field, message } => ApiError::bad_request(field, message),
            FormError::InvalidFields(fields) => ApiError::invalid_fields(fields),
            FormError::WorkspaceFailed(m) => ApiError::WorkflowFailed(m),
            FormError::Run {
                error,
                field_prefix,
            } => crate::http::run::run_error(error, field_prefix),
            FormError::Store(e) => e.into(),
            FormError::Domain(e) => e.into(),
            FormError::Upload(e) => e.into(),
        }
    }
}

impl From<bifrost_secrets::SecretsError> for ApiError {
    fn from(err: bifrost_secrets::SecretsError) -> Self {
        use bifrost_secrets::{SecretsError, SecretsErrorKind};
        match (err.kind(), &err) {
            (SecretsErrorKind::Invalid, SecretsError::Invalid { field, reason }) => {
                ApiError::bad_request(field.clone(), reason.clone())
            }
            (SecretsErrorKind::Conflict, _) => ApiError::Conflict(err.to_string()),
            (SecretsErrorKind::Unavailable, _) => ApiError::Unavailable {
                retry_after: err.retry_after().unwrap_or(Duration::from_secs(5)),
                reason: err.to_string(),
            },
            _ => ApiError::Internal(err.to_string()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
}

/// Serializes `body` as a JSON response with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = Response::new(bytes.into());
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "response serialization failed");
            let mut response = Response::new(
                r#"{"error":"InternalServerError","message":"an internal error occurred"}"#.into(),
            );
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            response
        }
    }
}

/// Turns a handler's result into a response: `Ok` as JSON with `status`, `Err` via the mapping.
pub fn reply<T: Serialize>(status: StatusCode, result: Result<T, ApiError>) -> Response {
    match result {
        Ok(body) => json_response(status, &body),
        Err(e) => e.into_response(),
    }
}

/// Maps what the router leaves to warp (no such path; an unreadable header it extracts) onto
/// the JSON error shape: specific causes first, 404 last.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let error = if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge { limit: 0 }
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::BadRequest {
            field: None,
            message: format!("invalid query string: {e}"),
        }
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::bad_request(e.name(), format!("header {} is required", e.name()))
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(e.name(), format!("header {} is invalid", e.name()))
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        ApiError::UnsupportedMediaType("unsupported content type; send application/json".into())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed("this method".into())
    } else if rejection.is_not_found() {
        ApiError::NotFound("no API route matches this path".into())
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_json_keeps_the_parser_position() {
        let err = serde_json::from_str::<Value>("{\n  \"a\": tru }").unwrap_err();
        let api = ApiError::invalid_json(&err);
        assert_eq!(api.status(), StatusCode::BAD_REQUEST);
        match api {
            ApiError::InvalidJson { line, column, .. } => assert_eq!((line, column), (2, 11)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn storage_outage_becomes_503_with_retry_after() {
        let response =
            ApiError::from(StoreError::unavailable("connection refused")).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "5");
    }

    #[test]
    fn invalid_fields_list_every_field_and_keep_the_single_field_shape() {
        let error = ApiError::invalid_fields([
            ("formData.a".to_owned(), "is required".to_owned()),
            ("formData.b".to_owned(), "must be a number".to_owned()),
        ]);
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.code(), "BadRequest");
        let details = error.details().unwrap();
        assert_eq!(details["field"], "formData.a");
        assert_eq!(details["fields"][1]["message"], "must be a number");
        assert!(error.to_string().starts_with("2 fields are invalid"));
        assert_eq!(
            ApiError::WorkflowFailed("x".into()).status(),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn internal_detail_is_not_sent() {
        let response = ApiError::Internal("db password=hunter2".into()).into_response();
        let body = format!("{:?}", response.body());
        assert!(!body.contains("hunter2"));
    }
}

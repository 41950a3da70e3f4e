//! The one error type of the storage layer.
//!
//! Callers match on the variant, never on message text: the HTTP layer maps `NotFound` to 404,
//! `Conflict`/`PreconditionFailed` to 409/412, the validation variants to 400 and
//! `Unavailable` to 503 with `Retry-After`.

use std::time::Duration;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The entity, message or blob does not exist.
    #[error("{what} not found")]
    NotFound { what: String },

    /// An insert hit an existing entity (Azure `EntityAlreadyExists`).
    #[error("{what} already exists")]
    AlreadyExists { what: String },

    /// The `If-Match` ETag was stale: somebody else wrote first (Azure 412).
    #[error("{what} was changed by another writer (stale ETag)")]
    PreconditionFailed { what: String },

    /// A key, property, name or size rule was broken; checked before any request is sent.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },

    /// An atomic batch was rejected as a whole because operation `index` (zero-based) failed.
    #[error("batch operation {index} failed: {source}")]
    BatchFailed {
        index: usize,
        #[source]
        source: Box<StoreError>,
    },

    /// The backend cannot be reached or is throttling; the caller may retry after the delay.
    #[error("storage unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },

    /// Any other backend failure. The message is for logs, not for clients.
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }

    pub fn unavailable(reason: impl Into<String>) -> Self {
        StoreError::Unavailable {
            reason: reason.into(),
            retry_after: Duration::from_secs(5),
        }
    }

    /// True for errors worth retrying with backoff (throttling, timeouts, unreachable backend).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

//! The one error type of the domain services.
//!
//! Depends on the storage and secret error types only. Callers (the HTTP layer, the SDK host)
//! match on the variant, never on message text. The intended HTTP mapping: `Invalid` → 400,
//! `NotFound` → 404, `Conflict` → 409, `PreconditionFailed` → 412, `Unavailable` → 503 with
//! `Retry-After`, `Internal` → 500. Messages of the client-error variants are written for the
//! user and name the field or the thing concerned; `Internal` carries detail for logs only and
//! must not be echoed to clients. No message ever contains a secret value.

use std::time::Duration;

use bifrost_secrets::{SecretsError, SecretsErrorKind};
use bifrost_store::StoreError;

pub type DomainResult<T> = Result<T, DomainError>;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A field broke a rule; `field` is the API/SDK field name (`name`, `domain`, `key`, ...).
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },

    /// The thing does not exist in the caller's scope, e.g. `role '1234'`.
    #[error("{what} not found")]
    NotFound { what: String },

    /// The write clashes with existing data (a taken domain, email or role name).
    #[error("{what} {reason}")]
    Conflict { what: String, reason: String },

    /// The caller's `If-Match` ETag is stale: somebody else changed the thing first.
    #[error("{what} was changed by someone else; reload it and try again")]
    PreconditionFailed { what: String },

    /// Storage or the secret store is unreachable or throttling; retry after the delay.
    #[error("service temporarily unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },

    /// A server-side fault (backend failure, corrupt stored row). Detail for logs only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        DomainError::NotFound { what: what.into() }
    }

    pub fn conflict(what: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::Conflict {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        DomainError::Internal(detail.into())
    }

    /// The delay to advertise in `Retry-After`, for `Unavailable` only.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DomainError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl From<StoreError> for DomainError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { what } => DomainError::NotFound { what },
            StoreError::AlreadyExists { what } => DomainError::Conflict {
                what,
                reason: "already exists".to_owned(),
            },
            StoreError::PreconditionFailed { what } => DomainError::PreconditionFailed { what },
            StoreError::Invalid { field, reason } => DomainError::Invalid { field, reason },
            // Services inspect batch failures where the failing row matters (a taken domain or
            // email); elsewhere the cause is what the caller needs to see.
            StoreError::BatchFailed { source, .. } => DomainError::from(*source),
            StoreError::Unavailable {
                reason,
                retry_after,
            } => DomainError::Unavailable {
                reason,
                retry_after,
            },
            StoreError::Backend(detail) => DomainError::Internal(detail),
        }
    }
}

impl From<SecretsError> for DomainError {
    fn from(err: SecretsError) -> Self {
        let retry_after = err.retry_after();
        match (err.kind(), err) {
            (_, SecretsError::Invalid { field, reason }) => DomainError::Invalid { field, reason },
            (SecretsErrorKind::Conflict, err) => DomainError::Conflict {
                what: "secret".to_owned(),
                reason: format!("cannot be written: {err}"),
            },
            (SecretsErrorKind::Unavailable, err) => DomainError::Unavailable {
                reason: err.to_string(),
                retry_after: retry_after.unwrap_or(bifrost_secrets::error::DEFAULT_RETRY_AFTER),
            },
            (_, err) => DomainError::Internal(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_domain_variants() {
        let e = DomainError::from(StoreError::BatchFailed {
            index: 1,
            source: Box::new(StoreError::AlreadyExists { what: "row".into() }),
        });
        assert!(matches!(e, DomainError::Conflict { .. }), "{e:?}");
        let e = DomainError::from(StoreError::Unavailable {
            reason: "busy".into(),
            retry_after: Duration::from_secs(7),
        });
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = DomainError::from(StoreError::PreconditionFailed { what: "x".into() });
        assert!(matches!(e, DomainError::PreconditionFailed { .. }));
        let e = DomainError::from(StoreError::Backend("disk".into()));
        assert!(matches!(e, DomainError::Internal(_)));
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn secrets_errors_map_to_domain_variants() {
        let e = DomainError::from(SecretsError::invalid("key", "bad"));
        assert!(matches!(e, DomainError::Invalid { ref field, .. } if field == "key"));
        let e = DomainError::from(SecretsError::unavailable(
            "down",
            Some(Duration::from_secs(3)),
        ));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        let e = DomainError::from(SecretsError::SoftDeleted {
            name: "n".into(),
            code: "Conflict".into(),
        });
        assert!(matches!(e, DomainError::Conflict { .. }));
        let e = DomainError::from(SecretsError::Backend("x".into()));
        assert!(matches!(e, DomainError::Internal(_)));
    }
}

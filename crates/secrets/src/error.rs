//! The one error type of the secret store.
//!
//! Callers match on the variant (or on [`SecretsError::kind`]), never on message text. Messages
//! never contain secret values, master keys or tokens: they name the secret, the field or the
//! HTTP status only. The mapping the HTTP layer should use is given on [`SecretsErrorKind`].

use std::time::Duration;

pub type SecretsResult<T> = Result<T, SecretsError>;

/// How long callers are told to wait when the backend did not say.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A name, key, prefix, value or setting broke a rule; checked before anything is sent.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },

    /// Key Vault keeps deleted names reserved (soft delete) until they are recovered or purged,
    /// so a `set` on such a name fails with 409 until then.
    #[error(
        "secret {name} is deleted but still recoverable (Key Vault soft delete, {code}); recover or purge it before setting it again"
    )]
    SoftDeleted { name: String, code: String },

    /// The backend refused our identity (Key Vault 401/403): a deployment problem (RBAC role,
    /// access policy, firewall), not the caller's fault.
    #[error("access to the secret store was denied (HTTP {status}, {code})")]
    AccessDenied { status: u16, code: String },

    /// No token could be obtained for the backend (managed identity endpoint missing or down).
    #[error("could not obtain a credential for the secret store: {0}")]
    Credential(String),

    /// The backend cannot be reached or is throttling; retry after the delay.
    #[error("secret store unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },

    /// The master key does not open this store (it was created with another key).
    #[error("the master key does not match the secret store at {path}")]
    WrongMasterKey { path: String },

    /// The master key setting or key file is unusable (length, encoding, permissions).
    #[error("master key problem ({source_name}): {reason}")]
    MasterKey { source_name: String, reason: String },

    /// A stored record failed authentication or could not be decoded: tampering, truncation,
    /// or a ciphertext moved from another name.
    #[error("stored secret {name} failed integrity check: {reason}")]
    Corrupt { name: String, reason: String },

    /// A local file operation failed.
    #[error("secret store file error at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// Any other backend failure. The message is for logs, not for clients.
    #[error("secret store backend error: {0}")]
    Backend(String),
}

/// Coarse classes of [`SecretsError`] for the HTTP layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretsErrorKind {
    /// 400, naming the field.
    Invalid,
    /// 409 (a soft-deleted Key Vault name).
    Conflict,
    /// 503 with `Retry-After` ([`SecretsError::retry_after`]).
    Unavailable,
    /// 500: a server-side fault (denied identity, wrong master key, corruption, I/O, backend).
    Internal,
}

impl SecretsError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SecretsError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn unavailable(reason: impl Into<String>, retry_after: Option<Duration>) -> Self {
        SecretsError::Unavailable {
            reason: reason.into(),
            retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
        }
    }

    pub fn kind(&self) -> SecretsErrorKind {
        match self {
            SecretsError::Invalid { .. } => SecretsErrorKind::Invalid,
            SecretsError::SoftDeleted { .. } => SecretsErrorKind::Conflict,
            // A missing token is usually a transient identity-endpoint problem; treating it as
            // unavailable lets callers retry instead of failing hard.
            SecretsError::Unavailable { .. } | SecretsError::Credential(_) => {
                SecretsErrorKind::Unavailable
            }
            SecretsError::AccessDenied { .. }
            | SecretsError::WrongMasterKey { .. }
            | SecretsError::MasterKey { .. }
            | SecretsError::Corrupt { .. }
            | SecretsError::Io { .. }
            | SecretsError::Backend(_) => SecretsErrorKind::Internal,
        }
    }

    /// The delay to advertise in `Retry-After` for errors of kind `Unavailable`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SecretsError::Unavailable { retry_after, .. } => Some(*retry_after),
            SecretsError::Credential(_) => Some(DEFAULT_RETRY_AFTER),
            _ => None,
        }
    }

    /// True for errors worth retrying with backoff.
    pub fn is_transient(&self) -> bool {
        self.kind() == SecretsErrorKind::Unavailable
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        SecretsError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

//! Who is calling: Bifrost's own function keys ([`keys`]), App Service / Static Web Apps Easy
//! Auth headers ([`easy_auth`]), and the one [`Principal`] type every request resolves to, with
//! its scope-selection rule ([`principal`]); and the workflow API keys that open
//! `/api/endpoints/*` ([`workflow_keys`], checked per workflow, not a principal). Both kinds of
//! key are one generic table ([`key_table`]) of one key shape (`raw_key`).
//!
//! Must not depend on warp, `http/` or the domain layer: the HTTP layer hands in header and
//! query values and gets plain results back. Invariants:
//! - a function key is accepted only after its secret hash, revocation and expiry were checked
//!   (v1 never validated keys at all, bifrost-v1.md §3.1);
//! - Easy Auth headers are trusted only when the caller says the platform injected them;
//! - the local developer identity exists only when explicitly enabled;
//! - caller-facing key errors never say *why* a key was refused; the typed reason is kept for
//!   the audit log.
//!   Workflow keys say why (revoked, expired, not for this workflow) only to a caller that
//!   proved the key's secret.

pub mod easy_auth;
pub mod key_table;
pub mod keys;
pub mod principal;
pub(crate) mod raw_key;
pub mod workflow_keys;

use std::fmt;
use std::sync::Arc;

use bifrost_store::{Scope, StoreError};
use time::OffsetDateTime;

pub use easy_auth::{
    EasyAuthError, EasyAuthHeaders, EasyAuthIdentity, EasyAuthOutcome, easy_auth_identity,
};
pub use keys::{
    FunctionKey, FunctionKeyFields, FunctionKeys, FunctionKeysOptions, KeyError, KeyId,
    KeyPrincipal, KeyRecord, KeyRejectReason, KeyRejection, RawKey, extract_function_key,
};
pub use principal::{LocalDevIdentity, Principal};
pub use workflow_keys::{
    NewWorkflowKey, RawWorkflowKey, WorkflowKey, WorkflowKeyAuthError, WorkflowKeyError,
    WorkflowKeyFields, WorkflowKeyId, WorkflowKeyPrincipal, WorkflowKeyRecord,
    WorkflowKeyRejectReason, WorkflowKeyRejection, WorkflowKeys, WorkflowKeysOptions, bearer_token,
};

/// Why a request could not be given an identity or a scope.
///
/// The `Display` text is safe to show to callers: in particular every refused function key reads
/// `invalid key`, whatever the reason (see [`KeyRejection::reason`] for the audit log).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A function key was refused (401). The typed reason is for the audit log only.
    #[error("invalid key")]
    InvalidKey(KeyRejection),

    /// No identity was presented where one is required (401).
    #[error("authentication required")]
    Unauthenticated,

    /// The principal asked for an organization other than its own (to be audited; the HTTP
    /// layer answers 403 or 404).
    #[error("access to the requested organization is denied")]
    CrossOrgDenied {
        /// The principal's own scope.
        home: Scope,
        /// The `X-Organization-Id` value that was asked for (validated org id or `GLOBAL`).
        requested: Scope,
    },

    /// `X-Organization-Id` is not `GLOBAL` or a valid organization id (400).
    #[error("invalid X-Organization-Id header: {reason}")]
    InvalidOrgHeader { reason: String },

    /// The key store could not be read (503 when transient, 500 otherwise).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The source of "now" for expiry and last-used decisions; injectable so tests can move time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    pub fn new(now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.0)()
    }
}

impl Default for Clock {
    /// The system clock (UTC).
    fn default() -> Self {
        Self::new(OffsetDateTime::now_utc)
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

//! What can go wrong opening, validating, launching or submitting a form, in the caller's terms.
//! The HTTP layer maps each variant to a status in one place (`http::error`).

use bifrost_engine::{ExecutionError, ExecutionOutcome, ExecutionStatus};

use super::files::UploadError;
use super::store::FormStoreError;
use crate::domain::DomainError;
use crate::executions::RunError;

#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// The form (or a provider, a field) does not exist for this caller.
    #[error("{0}")]
    NotFound(String),
    /// Anonymous caller, form not public.
    #[error("{0}")]
    SignInRequired(String),
    #[error("{0}")]
    Forbidden(String),
    /// One input is wrong; `field` names it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// Submitted values are wrong: every failing field with its message.
    #[error("{} fields are invalid", .0.len())]
    InvalidFields(Vec<(String, String)>),
    /// Workspace code (a launch workflow, a data provider) failed; the message is fit for the
    /// caller (see [`workspace_failure`]).
    #[error("{0}")]
    WorkspaceFailed(String),
    /// A run could not start; `field_prefix` turns a parameter name into the request field.
    #[error("{error}")]
    Run {
        error: RunError,
        field_prefix: &'static str,
    },
    #[error(transparent)]
    Store(#[from] FormStoreError),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Upload(#[from] UploadError),
}

impl FormError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn run(error: RunError, field_prefix: &'static str) -> Self {
        Self::Run {
            error,
            field_prefix,
        }
    }
}

impl From<bifrost_store::StoreError> for FormError {
    fn from(e: bifrost_store::StoreError) -> Self {
        Self::Store(FormStoreError::Store(e))
    }
}

/// Failed workspace code, told to the caller: administrators see the exception type and
/// message, others a `UserError`'s message or a generic text. Never the traceback.
pub fn workspace_failure(what: &str, outcome: &ExecutionOutcome, admin: bool) -> FormError {
    let error: Option<&ExecutionError> = outcome.error.as_ref();
    if let Some(e) = error {
        tracing::warn!(what, error_type = %e.error_type, message = %e.message, "workspace code failed");
    }
    let detail = match (outcome.status, error) {
        (ExecutionStatus::Timeout, _) => "it timed out".to_owned(),
        (ExecutionStatus::Cancelled, _) => "it was cancelled".to_owned(),
        (_, Some(e)) if admin => format!("{}: {}", e.error_type, e.message),
        (_, Some(e)) if e.is_user_error => e.message.clone(),
        _ => "an error occurred; an administrator can see the details in the logs".to_owned(),
    };
    FormError::WorkspaceFailed(format!("{what} failed: {detail}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn failures_never_show_tracebacks_to_users() {
        let outcome = ExecutionOutcome {
            execution_id: "x".into(),
            status: ExecutionStatus::Failed,
            result: None,
            result_type: None,
            error: Some(ExecutionError {
                error_type: "ValueError".into(),
                message: "db password wrong".into(),
                traceback: "Traceback (most recent call last)".into(),
                is_user_error: false,
            }),
            logs: vec![],
            duration: Duration::ZERO,
        };
        let user = workspace_failure("data provider 'p'", &outcome, false).to_string();
        assert!(
            !user.contains("password") && !user.contains("Traceback"),
            "{user}"
        );
        let admin = workspace_failure("data provider 'p'", &outcome, true).to_string();
        assert!(
            admin.contains("ValueError: db password wrong") && !admin.contains("Traceback"),
            "{admin}"
        );
    }
}

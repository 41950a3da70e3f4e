//! Audited administrative changes: every create, update, delete, promotion, deactivation and
//! grant of organizations, users, roles and role assignments is recorded — who (the [`Actor`]),
//! through which door ([`Via`]: the API, a workflow through the SDK, the CLI, a login), on what
//! target, and the non-secret fields before and after.
//!
//! Fail closed, the way Vault treats its audit devices: the entry is written *before* the
//! change, and when it cannot be written the change is not made (`Unavailable`, 503). A change
//! that fails after its entry was written is followed by an entry saying so (best effort), so
//! the log never claims a change that did not happen without also saying that it failed.
//!
//! Depends on the audit log only.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bifrost_store::Scope;
use serde_json::Value;

use crate::audit::{AuditEvent, AuditEventType, AuditLog};
use crate::domain::error::DomainError;

/// Through which door a change came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Api,
    /// Workflow code, through the Python SDK.
    Sdk,
    Cli,
    /// Provisioning on an identity provider login.
    Login,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Sdk => "sdk",
            Via::Cli => "cli",
            Via::Login => "login",
        }
    }
}

/// Who makes a change: the audit actor string (`user:…`, `key:…`, `local-developer`, ...),
/// the door, and the execution when a workflow made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub via: Via,
    pub execution_id: Option<String>,
}

impl Actor {
    pub fn new(id: impl Into<String>, via: Via) -> Self {
        Self {
            id: id.into(),
            via,
            execution_id: None,
        }
    }

    /// A workflow's change through the SDK.
    pub fn workflow(id: impl Into<String>, execution_id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            via: Via::Sdk,
            execution_id: Some(execution_id.into()),
        }
    }
}

/// One change: what is done to which target, in which scope, from what to what.
#[derive(Clone, Debug)]
pub struct Change<'a> {
    pub by: &'a Actor,
    /// `organization.create`, `user.update`, `role.assign_users`, ...
    pub action: &'static str,
    pub scope: Scope,
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Writes change entries to the audit log.
#[derive(Clone, Debug)]
pub struct ChangeLog {
    audit: Arc<AuditLog>,
}

impl ChangeLog {
    pub fn new(audit: Arc<AuditLog>) -> Self {
        Self { audit }
    }

    /// Records `change`, then runs `write`; the write does not happen when the record cannot
    /// be made (see the module documentation).
    pub async fn apply<T, E: ChangeError>(
        &self,
        change: Change<'_>,
        write: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.audit.append(event(&change, None)).await.map_err(|e| {
            E::from(DomainError::Unavailable {
                reason: format!("the audit log cannot record the change, so it was not made: {e}"),
                retry_after: Duration::from_secs(5),
            })
        })?;
        match write.await {
            Ok(value) => Ok(value),
            Err(error) => {
                if let Err(e) = self.audit.append(event(&change, Some(error.kind()))).await {
                    tracing::error!(error = %e, action = change.action, target = %change.target, "could not record that an audited change failed");
                }
                Err(error)
            }
        }
    }
}

/// An error a change can end with: built from a [`DomainError`] when the change cannot be
/// audited, and named by kind in the audit entry of a failed change.
pub trait ChangeError: From<DomainError> {
    /// A short name of the error's kind (messages may quote input, so they are not recorded).
    fn kind(&self) -> &'static str;
}

impl ChangeError for DomainError {
    fn kind(&self) -> &'static str {
        match self {
            DomainError::Invalid { .. } => "invalid",
            DomainError::NotFound { .. } => "not_found",
            DomainError::Conflict { .. } => "conflict",
            DomainError::PreconditionFailed { .. } => "precondition_failed",
            DomainError::Unavailable { .. } => "unavailable",
            DomainError::Internal(_) => "internal",
        }
    }
}

fn event(change: &Change<'_>, failed: Option<&'static str>) -> AuditEvent {
    let mut event = AuditEvent::new(
        AuditEventType::AdminChange,
        change.by.id.clone(),
        change.scope.clone(),
    )
    .detail("action", change.action)
    .detail("target", change.target.clone())
    .detail("via", change.by.via.as_str());
    if let Some(execution) = &change.by.execution_id {
        event = event.detail("execution_id", execution.clone());
    }
    if let Some(before) = &change.before {
        event = event.detail("before", before.clone());
    }
    if let Some(after) = &change.after {
        event = event.detail("after", after.clone());
    }
    if let Some(kind) = failed {
        event = event.detail("outcome", "failed").detail("error", kind);
    }
    event
}

#[cfg(test)]
mod tests {
    use crate::audit::{AuditEventType, AuditQuery};
    use crate::domain::testutil::{Fixture, tester};
    use crate::domain::{NewOrganization, OrganizationUpdate};
    use bifrost_store::table::IfMatch;

    #[tokio::test]
    async fn a_change_is_recorded_with_its_actor_and_fields_before_and_after() {
        let f = Fixture::new().await;
        let org = f.org("Before", None).await;
        f.orgs
            .update(
                &org.id,
                OrganizationUpdate {
                    name: Some("After".into()),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap();
        let page = f
            .audit
            .list(&AuditQuery {
                event_type: Some(AuditEventType::AdminChange),
                ..Default::default()
            })
            .await
            .unwrap();
        let actions: Vec<_> = page
            .entries
            .iter()
            .map(|e| e.details["action"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(actions, ["organization.create", "organization.update"]);
        let update = &page.entries[1];
        assert_eq!(update.actor, "test:fixture");
        assert_eq!(update.details["before"]["name"], "Before");
        assert_eq!(update.details["after"]["name"], "After");
        assert_eq!(update.details["via"], "api");
        // A failed change is recorded as failed, after its intent.
        let taken = f
            .orgs
            .create(
                NewOrganization {
                    name: "Twin".into(),
                    domain: Some("twin.example".into()),
                    is_active: true,
                    created_by: None,
                },
                &tester(),
            )
            .await;
        assert!(taken.is_ok());
        let twin = f
            .orgs
            .create(
                NewOrganization {
                    name: "Twin 2".into(),
                    domain: Some("twin.example".into()),
                    is_active: true,
                    created_by: None,
                },
                &tester(),
            )
            .await;
        assert!(twin.is_err());
        let page = f.audit.list(&AuditQuery::default()).await.unwrap();
        let last = page.entries.last().unwrap();
        assert_eq!(last.details["outcome"], "failed");
        assert_eq!(last.details["error"], "conflict");
        assert!(f.audit.verify(true).await.unwrap().ok);
    }
}

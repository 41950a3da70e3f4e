//! Secrets per scope: the rules of the secrets API (`/api/secrets`) and of workflows'
//! `secrets.*`, in one place.
//!
//! - Scoping: the secret `key` of a scope (an organization or GLOBAL) is stored as
//!   `SecretName::scoped(scope, key)` and nothing else builds tenant secret names, so one scope
//!   can neither list nor touch another's secrets.
//! - Fallback: a read looks in the scope, then in GLOBAL; never in another organization.
//! - Naming: keys are folded to the store's alphabet (lower case, `-`); a name an administrator
//!   types is checked first ([`SecretService::checked_name`]).
//! - Audit: every read, write and delete is recorded by name, actor (and execution and SDK call
//!   for workflows), never by value. Best effort: a failure to record is logged as an error with
//!   the same details rather than failing the access, which grants nothing new.
//! - Masking: values leave only as [`SecretValue`] (which prints as `***`); the SDK host hands
//!   one to the workflow that asked, whose logs, results and errors mask it.
//!
//! The secret references of configuration (`secret_ref` rows) are resolved by
//! [`ConfigService`](crate::domain::ConfigService); their reads are audited here too
//! ([`SecretService::record_read`]).
//!
//! Depends on the secret-store contract and the audit log; no HTTP, no pyo3.

use std::sync::Arc;

use bifrost_secrets::{SecretName, SecretStore, SecretValue, SecretsError};
use bifrost_store::Scope;

use crate::audit::{AuditEvent, AuditEventType, AuditLog};
use crate::domain::changes::Actor;
use crate::domain::error::{DomainError, DomainResult};

/// Longest name an administrator may give a secret (the scoped store name is limited to 127
/// characters).
pub const MAX_SECRET_NAME: usize = 100;

/// Who touches a secret, as its audit entry records them.
#[derive(Clone, Copy, Debug)]
pub struct SecretAccess<'a> {
    pub actor: &'a Actor,
    /// The SDK call a workflow made (`secrets.get`, `config.get`, ...), recorded as `via`.
    pub call: Option<&'static str>,
}

impl<'a> SecretAccess<'a> {
    /// An administrator through the API.
    pub fn api(actor: &'a Actor) -> Self {
        Self { actor, call: None }
    }

    /// A workflow through the SDK call `call`.
    pub fn sdk(actor: &'a Actor, call: &'static str) -> Self {
        Self {
            actor,
            call: Some(call),
        }
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
}

impl Written {
    fn as_str(self) -> &'static str {
        match self {
            Written::Created => "created",
            Written::Updated => "updated",
        }
    }
}

/// The secrets of every scope, over the secret store; cheap to clone.
#[derive(Clone)]
pub struct SecretService {
    store: Arc<dyn SecretStore>,
    audit: Arc<AuditLog>,
}

impl SecretService {
    pub fn new(store: Arc<dyn SecretStore>, audit: Arc<AuditLog>) -> Self {
        Self { store, audit }
    }

    /// The store name of `key` in `scope` (field `key` when it has no letter or digit, or is
    /// too long for the scope).
    pub fn name(scope: &Scope, key: &str) -> DomainResult<SecretName> {
        Ok(SecretName::scoped(scope, key)?)
    }

    /// A name as an administrator types it (field `name`): 1 to [`MAX_SECRET_NAME`] letters,
    /// digits, `-`, `_` and `.`, then folded into the scope like any key.
    pub fn checked_name(scope: &Scope, raw: &str) -> DomainResult<SecretName> {
        if raw.is_empty() || raw.chars().count() > MAX_SECRET_NAME {
            return Err(DomainError::invalid(
                "name",
                format!("name must be 1 to {MAX_SECRET_NAME} characters"),
            ));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(DomainError::invalid(
                "name",
                "name may contain only letters, digits, '-', '_' and '.'",
            ));
        }
        SecretName::scoped(scope, raw).map_err(|e| match e {
            SecretsError::Invalid { reason, .. } => DomainError::invalid("name", reason),
            other => other.into(),
        })
    }

    /// The names of `scope`'s own secrets (not GLOBAL's for an organization).
    pub async fn list(&self, scope: &Scope) -> DomainResult<Vec<SecretName>> {
        Ok(self.store.list_scope(scope).await?)
    }

    /// Whether `name` exists, answered from the names alone (no value is read).
    pub async fn exists(&self, name: &SecretName) -> DomainResult<bool> {
        let names = self.store.list_names(name.as_str()).await?;
        Ok(names.iter().any(|n| n == name))
    }

    /// The value of `key` for `scope`: the scope's own, else GLOBAL's. A value found is
    /// audited as read (in the reader's scope, under the name it was found by).
    pub async fn read(
        &self,
        scope: &Scope,
        key: &str,
        by: SecretAccess<'_>,
    ) -> DomainResult<Option<SecretValue>> {
        let mut scopes = vec![scope.clone()];
        if *scope != Scope::Global {
            scopes.push(Scope::Global);
        }
        for s in scopes {
            let name = Self::name(&s, key)?;
            if let Some(value) = self.store.get(&name).await? {
                self.record_read(scope, name.as_str(), by).await;
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// Records that `secret` was read for `scope` elsewhere (a config `secret_ref` resolved
    /// by the configuration service).
    pub async fn record_read(&self, scope: &Scope, secret: &str, by: SecretAccess<'_>) {
        self.record(AuditEventType::SecretRead, scope, secret, None, by)
            .await;
    }

    /// Creates `name` with `value`; a conflict if it exists (a check, then a write: two
    /// simultaneous creates may both succeed, the second as a rotation).
    pub async fn create(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: SecretValue,
        by: SecretAccess<'_>,
    ) -> DomainResult<()> {
        let value = checked_value(value)?;
        if self.exists(name).await? {
            let shown = name.key_in_scope(scope).unwrap_or(name.as_str());
            return Err(DomainError::conflict(
                format!("secret '{shown}'"),
                "already exists; use PUT to rotate it",
            ));
        }
        self.write(scope, name, &value, Some(Written::Created), by)
            .await?;
        Ok(())
    }

    /// Sets or rotates `name`, looking first so the audit entry says which.
    pub async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: SecretValue,
        by: SecretAccess<'_>,
    ) -> DomainResult<Written> {
        let value = checked_value(value)?;
        let written = if self.exists(name).await? {
            Written::Updated
        } else {
            Written::Created
        };
        self.write(scope, name, &value, Some(written), by).await?;
        Ok(written)
    }

    /// Sets or rotates `name` without looking first (workflows may write often, and listing
    /// names on Key Vault lists the whole vault); the audit entry says neither.
    pub async fn set(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: SecretValue,
        by: SecretAccess<'_>,
    ) -> DomainResult<()> {
        self.write(scope, name, &value, None, by).await
    }

    /// Deletes `name`; `false` when it did not exist (then nothing is audited).
    pub async fn delete(
        &self,
        scope: &Scope,
        name: &SecretName,
        by: SecretAccess<'_>,
    ) -> DomainResult<bool> {
        let deleted = self.store.delete(name).await?;
        if deleted {
            self.record(
                AuditEventType::SecretDeleted,
                scope,
                name.as_str(),
                None,
                by,
            )
            .await;
        }
        Ok(deleted)
    }

    async fn write(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretValue,
        written: Option<Written>,
        by: SecretAccess<'_>,
    ) -> DomainResult<()> {
        self.store.set(name, value).await?;
        self.record(
            AuditEventType::SecretWritten,
            scope,
            name.as_str(),
            written,
            by,
        )
        .await;
        Ok(())
    }

    async fn record(
        &self,
        kind: AuditEventType,
        scope: &Scope,
        secret: &str,
        written: Option<Written>,
        by: SecretAccess<'_>,
    ) {
        let mut event =
            AuditEvent::new(kind, by.actor.id.clone(), scope.clone()).detail("secret_name", secret);
        if let Some(written) = written {
            event = event.detail("action", written.as_str());
        }
        if let Some(execution) = &by.actor.execution_id {
            event = event.detail("execution_id", execution.clone());
        }
        if let Some(call) = by.call {
            event = event.detail("via", call);
        }
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, ?kind, secret, actor = %by.actor.id, execution_id = ?by.actor.execution_id, "could not audit a secret access");
        }
    }
}

/// A value an administrator sets: not empty, within the store's size limit (field `value`).
fn checked_value(value: SecretValue) -> DomainResult<SecretValue> {
    if value.is_empty() {
        return Err(DomainError::invalid("value", "value must not be empty"));
    }
    value.validate()?;
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use bifrost_store::OrgId;

    use super::*;
    use crate::audit::AuditQuery;
    use crate::domain::testutil::{Fixture, tester};

    fn field(e: DomainError) -> String {
        match e {
            DomainError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn names_are_checked_and_scoped() {
        let org = Scope::Org(OrgId::parse("6f1c2a5e-0000-4000-8000-000000000001").unwrap());
        let name = SecretService::checked_name(&org, "Halo_Client").unwrap();
        assert_eq!(name.key_in_scope(&org), Some("halo-client"));
        assert!(name.as_str().starts_with(&SecretName::scope_prefix(&org)));
        for bad in ["", "a b", "a/b", "---", &"a".repeat(MAX_SECRET_NAME + 1)] {
            assert_eq!(
                field(SecretService::checked_name(&org, bad).unwrap_err()),
                "name",
                "{bad:?}"
            );
        }
        // Workflows' keys are only folded, as the SDK always did.
        assert_eq!(
            SecretService::name(&Scope::Global, "a b").unwrap().as_str(),
            "bifrost-global-a-b"
        );
        assert_eq!(
            field(SecretService::name(&Scope::Global, "---").unwrap_err()),
            "key"
        );
    }

    #[tokio::test]
    async fn reads_fall_back_to_global_only_and_everything_is_audited_by_name() {
        let f = Fixture::new().await;
        let secrets = SecretService::new(f.secrets.clone(), f.audit.clone());
        let admin = tester();
        let workflow = Actor::workflow("user-1", "exec-1");
        let a = Scope::Org(OrgId::parse("org-a").unwrap());
        let b = Scope::Org(OrgId::parse("org-b").unwrap());
        let global = SecretService::checked_name(&Scope::Global, "halo").unwrap();
        secrets
            .create(
                &Scope::Global,
                &global,
                SecretValue::new("global-value-1"),
                SecretAccess::api(&admin),
            )
            .await
            .unwrap();
        let again = secrets
            .create(
                &Scope::Global,
                &global,
                SecretValue::new("x"),
                SecretAccess::api(&admin),
            )
            .await
            .unwrap_err();
        assert!(matches!(again, DomainError::Conflict { .. }), "{again:?}");
        let in_a = SecretService::name(&a, "halo").unwrap();
        secrets
            .set(
                &a,
                &in_a,
                SecretValue::new("a-value-1"),
                SecretAccess::sdk(&workflow, "secrets.set"),
            )
            .await
            .unwrap();
        let read = |scope: Scope| {
            let secrets = secrets.clone();
            let workflow = workflow.clone();
            async move {
                secrets
                    .read(&scope, "halo", SecretAccess::sdk(&workflow, "secrets.get"))
                    .await
                    .unwrap()
                    .map(SecretValue::into_exposed)
            }
        };
        assert_eq!(read(a.clone()).await.as_deref(), Some("a-value-1"));
        assert_eq!(read(b.clone()).await.as_deref(), Some("global-value-1"));
        assert_eq!(
            secrets
                .put(
                    &Scope::Global,
                    &global,
                    SecretValue::new("global-value-2"),
                    SecretAccess::api(&admin)
                )
                .await
                .unwrap(),
            Written::Updated
        );
        assert_eq!(
            field(
                secrets
                    .put(
                        &Scope::Global,
                        &global,
                        SecretValue::new(""),
                        SecretAccess::api(&admin)
                    )
                    .await
                    .unwrap_err()
            ),
            "value"
        );
        assert_eq!(secrets.list(&a).await.unwrap(), std::slice::from_ref(&in_a));
        assert!(
            secrets
                .delete(&a, &in_a, SecretAccess::sdk(&workflow, "secrets.delete"))
                .await
                .unwrap()
        );
        assert!(
            !secrets
                .delete(&a, &in_a, SecretAccess::sdk(&workflow, "secrets.delete"))
                .await
                .unwrap()
        );
        assert_eq!(read(a.clone()).await.as_deref(), Some("global-value-2"));

        let entries = f.audit.list(&AuditQuery::default()).await.unwrap().entries;
        let secret_entries: Vec<_> = entries
            .iter()
            .filter(|e| e.details.get("secret_name").is_some())
            .collect();
        let kinds: Vec<String> = secret_entries
            .iter()
            .map(|e| e.event_type.to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "secret_written",
                "secret_written",
                "secret_read",
                "secret_read",
                "secret_written",
                "secret_deleted",
                "secret_read"
            ]
        );
        let fallback = secret_entries[3];
        assert_eq!(fallback.actor, "user-1");
        assert_eq!(fallback.details["secret_name"], global.as_str());
        assert_eq!(fallback.details["via"], "secrets.get");
        assert_eq!(fallback.details["execution_id"], "exec-1");
        assert_eq!(secret_entries[4].details["action"], "updated");
        assert!(secret_entries[0].details.get("via").is_none());
        let all = format!("{entries:?}");
        assert!(!all.contains("global-value") && !all.contains("a-value"));
    }
}

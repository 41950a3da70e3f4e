//! The [`SecretStore`] contract every backend implements.
//!
//! Callers hold an `Arc<dyn SecretStore>` chosen once at start-up and never ask which backend
//! they have. Listing returns names only, never values. Must not depend on any backend.

use async_trait::async_trait;
use bifrost_store::Scope;

use crate::error::SecretsResult;
use crate::name::SecretName;
use crate::value::SecretValue;

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The current value, or `None` when the name does not exist (or was deleted).
    async fn get(&self, name: &SecretName) -> SecretsResult<Option<SecretValue>>;

    /// Creates or rotates a secret. On Key Vault every call creates a new version; the latest
    /// version is what `get` returns. Values over 25 KB are rejected before anything is sent.
    async fn set(&self, name: &SecretName, value: &SecretValue) -> SecretsResult<()>;

    /// Deletes every version; `false` when the name did not exist. On Key Vault the name then
    /// stays reserved (soft delete) and a later `set` fails with `SecretsError::SoftDeleted`.
    async fn delete(&self, name: &SecretName) -> SecretsResult<bool>;

    /// Names starting with `prefix` (case-insensitive; `""` lists everything), sorted.
    async fn list_names(&self, prefix: &str) -> SecretsResult<Vec<SecretName>>;

    /// A cheap reachability/credential check for readiness probes.
    async fn health(&self) -> SecretsResult<()>;

    /// A short backend label for logs and health output (`"keyvault"`, `"local"`).
    fn backend(&self) -> &'static str;

    /// The names of one scope's secrets, and only that scope's.
    async fn list_scope(&self, scope: &Scope) -> SecretsResult<Vec<SecretName>> {
        self.list_names(&SecretName::scope_prefix(scope)).await
    }
}

//! The domain services: organizations, users (with login provisioning), roles and their
//! assignments, and per-scope configuration.
//!
//! Plain Rust services over the storage contracts: each holds an `Arc<dyn TableStore>` (and
//! config an `Arc<dyn SecretStore>`), is cheap to clone, and is shared by the HTTP API and the
//! Python SDK host. Must not depend on warp, HTTP types, pyo3 or a concrete backend. Domain types
//! are plain structs, not `Serialize`: wire shapes belong to `http/` and the SDK host.
//!
//! Invariants:
//! - tenant rows (roles, assignments, org config) are reached only through `ScopedTable` built
//!   from a `Scope`; no partition string is ever assembled here;
//! - uniqueness rules (org domain, user email and Entra id, role name per org) are enforced by
//!   index rows written in the same atomic batch as the row they index, so they hold under
//!   concurrency on both backends;
//! - read-modify-write updates are guarded by the ETag read, so concurrent writers get
//!   `PreconditionFailed` instead of silently overwriting each other.
//!
//! Layering (each module `use`s only modules listed before it, so there is no import circle):
//! `error`; `changes` (the audit of changes); `rows` (table names, every row-key prefix,
//! row-level helpers); `config`; `orgs`; `users` (looks up orgs by domain); `roles` (checks
//! membership with users). An operation spanning two services is done by the higher one, or by
//! a row-level helper in `rows` that the lower one may call (a user leaving an org drops their
//! role assignments through `rows::remove_user_assignments`).
//!
//! Tables: `Config` (partition = scope), `Entities` (`GLOBAL` for orgs and users, the org for
//! roles), `Relationships` (the org for role assignments). [`ensure_tables`] creates all three.

pub mod changes;
pub mod config;
pub mod error;
pub mod orgs;
pub mod roles;
mod rows;
pub mod secrets;
pub mod users;

#[cfg(test)]
mod testutil;

use std::sync::Arc;

use bifrost_store::TableStore;

pub use changes::{Actor, ChangeLog, Via};
pub use config::{
    ConfigEntry, ConfigService, ConfigType, ConfigValue, ConfigWrite, MASK, SetOutcome,
    is_secret_key,
};
pub use error::{DomainError, DomainResult};
pub use orgs::{
    MAX_ORG_NAME, NewOrganization, OrgService, Organization, OrganizationUpdate, normalize_domain,
};
pub use roles::{NewRole, Role, RoleService, RoleUpdate};
pub use rows::{
    CONFIG_TABLE, ENTITIES_TABLE, FormId, PageRequest, Paged, RELATIONSHIPS_TABLE, RoleId, UserId,
};
pub use users::{
    LoginIdentity, MAX_DISPLAY_NAME, NewUser, NoAccessReason, ProvisionOutcome, User, UserFilter,
    UserKind, UserService, UserType, UserUpdate, normalize_email,
};

/// Creates every table the domain services use (`Config`, `Entities`, `Relationships`).
pub async fn ensure_tables(store: &Arc<dyn TableStore>) -> DomainResult<()> {
    rows::ensure(store, &[CONFIG_TABLE, ENTITIES_TABLE, RELATIONSHIPS_TABLE]).await
}

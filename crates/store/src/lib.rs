//! Bifrost's storage contract and its backends.
//!
//! Three kinds of storage, each one trait with two backends chosen once at start-up:
//! - [`table`]: Azure-Tables-shaped entities (embedded SQLite, or Azure Tables / Azurite),
//! - [`queue`]: at-least-once message queues (embedded SQLite, or Azure Storage Queues),
//! - [`blob`]: named byte objects in containers (a local folder, or Azure Blob Storage).
//!
//! Tenant data is addressed through [`Scope`]: the only way to turn an organization into a
//! partition key. This crate knows nothing about HTTP, Python or the domain model; it may not
//! depend on any other Bifrost crate.

pub mod azure_account;
pub mod blob;
pub mod error;
mod group_commit;
pub mod keys;
pub mod queue;
pub mod scope;
pub mod table;

pub use error::{StoreError, StoreResult};
pub use keys::{PartitionKey, RowKey};
pub use scope::{OrgId, Scope};
pub use table::{ScopedTable, TableStore};

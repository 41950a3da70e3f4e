//! Bifrost's secret store: one contract, two backends chosen once at start-up.
//!
//! - [`KeyVaultSecrets`]: Azure Key Vault through the official `azure_security_keyvault_secrets`
//!   1.x client, with managed identity, a short-lived cache and typed error mapping.
//! - [`LocalSecrets`]: an embedded AES-256-GCM encrypted file for the standalone server.
//!
//! Tenant secrets are named through [`SecretName::scoped`], the only place that turns a
//! [`bifrost_store::Scope`] into a secret name. This crate depends on `bifrost-store` only for
//! `Scope`/`OrgId`, and knows nothing about HTTP, Python or the domain model. Secret values,
//! master keys and tokens are never logged and never appear in error messages.

pub mod error;
pub mod keyvault;
pub mod local;
pub mod name;
pub mod store;
pub mod value;

pub use error::{SecretsError, SecretsErrorKind, SecretsResult};
pub use keyvault::{KeyVaultConfig, KeyVaultCredential, KeyVaultSecrets};
pub use local::LocalSecrets;
pub use name::{MAX_NAME_LEN, SecretName};
pub use store::SecretStore;
pub use value::{MAX_VALUE_BYTES, SecretValue};

//! The audit chain's key: entries, the anchor and verification checkpoints are HMAC-SHA256
//! signed with it, so someone who can rewrite the `AuditLog` table but cannot read the secret
//! store cannot produce a chain that verifies.
//!
//! The key material lives in the secret store under a platform name no tenant scope can spell
//! (`bifrost-platform-audit-key-<id>`; scoped names start with `bifrost-global-` or
//! `bifrost-<digit>`), so neither the secrets API nor workflow code can read it. Which key is
//! current is decided by the `keyring` row of the `AuditAnchor` table, written insert-if-absent:
//! instances that start together each store a candidate key, and the one whose id lands in the
//! row wins for everybody (the losers' candidates stay unused in the store).
//!
//! Depends on the table and secret-store contracts only.

use std::fmt;
use std::sync::Arc;

use bifrost_secrets::{SecretName, SecretStore, SecretValue};
use bifrost_store::table::{ScopedTable, Value};
use bifrost_store::{RowKey, StoreError};
use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use sha2::Sha256;

use super::log::AuditError;

/// The row of the anchor table that names the current key.
const KEYRING_ROW: &str = "keyring";

/// HMAC-SHA256 key of the audit chain. Prints as `AuditKey(<id>)`, never its bytes.
#[derive(Clone)]
pub struct AuditKey {
    id: String,
    bytes: [u8; 32],
    /// The first sequence number signed with this key (entries before it predate keying).
    keyed_from: u64,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey({})", self.id)
    }
}

impl AuditKey {
    /// A key from known material (tests, and a key read back from the store).
    pub fn new(id: impl Into<String>, bytes: [u8; 32], keyed_from: u64) -> Self {
        Self {
            id: id.into(),
            bytes,
            keyed_from,
        }
    }

    fn generate(keyed_from: u64) -> Self {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let mut id = [0u8; 6];
        rand::thread_rng().fill_bytes(&mut id);
        Self::new(crate::auth::raw_key::hex(&id), bytes, keyed_from)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first entry signed with this key; earlier entries are verified unkeyed.
    pub fn keyed_from(&self) -> u64 {
        self.keyed_from
    }

    /// Lowercase hex HMAC-SHA256 of `data`.
    pub fn mac(&self, data: &[u8]) -> String {
        // `new_from_slice` accepts any key length for HMAC, so this cannot fail.
        match Hmac::<Sha256>::new_from_slice(&self.bytes) {
            Ok(mut mac) => {
                mac.update(data);
                crate::auth::raw_key::hex(&mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    /// The `Alg` column of entries signed with this key.
    pub(crate) fn alg(&self) -> String {
        format!("{ALG_PREFIX}{}", self.id)
    }

    fn secret_name(id: &str) -> Result<SecretName, AuditError> {
        SecretName::parse(&format!("bifrost-platform-audit-key-{id}")).map_err(|e| {
            AuditError::Invalid {
                field: "audit key id".into(),
                reason: e.to_string(),
            }
        })
    }
}

/// `Alg` values of keyed entries start with this; the rest is the key id.
const ALG_PREFIX: &str = "hmac-sha256:";

/// Loads the current key, or creates it the first time any instance needs one.
#[derive(Clone)]
pub struct KeySource {
    secrets: Arc<dyn SecretStore>,
    /// The `AuditAnchor` table, GLOBAL partition.
    table: ScopedTable,
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySource").finish_non_exhaustive()
    }
}

impl KeySource {
    pub(crate) fn new(secrets: Arc<dyn SecretStore>, table: ScopedTable) -> Self {
        Self { secrets, table }
    }

    /// The current key, if one was ever created (verification of an old chain needs none).
    pub async fn current(&self) -> Result<Option<AuditKey>, AuditError> {
        let Some(row) = self.table.get(&RowKey::new(KEYRING_ROW)?).await? else {
            return Ok(None);
        };
        let id = row
            .get("KeyId")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("KeyId"))?
            .to_owned();
        let keyed_from = row
            .get("KeyedFrom")
            .and_then(Value::as_i64)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| malformed("KeyedFrom"))?;
        let stored = self
            .secrets
            .get(&AuditKey::secret_name(&id)?)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                AuditError::Store(StoreError::unavailable(format!(
                    "the audit key {id} is missing from the secret store"
                )))
            })?;
        let bytes = unhex(stored.expose()).ok_or_else(|| malformed("key material"))?;
        Ok(Some(AuditKey::new(id, bytes, keyed_from)))
    }

    /// The current key, creating it when there is none. `next_sequence`: the sequence number
    /// the first keyed entry will get (the chain's head + 1 when keying starts).
    pub async fn current_or_create(&self, next_sequence: u64) -> Result<AuditKey, AuditError> {
        if let Some(key) = self.current().await? {
            return Ok(key);
        }
        let candidate = AuditKey::generate(next_sequence);
        // Material first: whoever reads the keyring row must find the key it names.
        self.secrets
            .set(
                &AuditKey::secret_name(candidate.id())?,
                &SecretValue::new(crate::auth::raw_key::hex(&candidate.bytes)),
            )
            .await
            .map_err(unavailable)?;
        let row = bifrost_store::table::Properties::from([
            ("KeyId".to_owned(), Value::from(candidate.id())),
            (
                "KeyedFrom".to_owned(),
                Value::Int64(i64::try_from(next_sequence).unwrap_or(i64::MAX)),
            ),
        ]);
        match self.table.insert(RowKey::new(KEYRING_ROW)?, row).await {
            Ok(_) => {
                tracing::info!(key_id = candidate.id(), "created the audit chain's key");
                Ok(candidate)
            }
            // Another instance got there first: use its key.
            Err(StoreError::AlreadyExists { .. }) => {
                self.current().await?.ok_or_else(|| malformed("keyring"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn malformed(field: &str) -> AuditError {
    AuditError::Malformed {
        row_key: KEYRING_ROW.into(),
        reason: field.to_owned(),
    }
}

fn unavailable(e: bifrost_secrets::SecretsError) -> AuditError {
    AuditError::Store(StoreError::unavailable(format!("secret store: {e}")))
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_prints_its_material() {
        let key = AuditKey::new("abc123", [7u8; 32], 1);
        assert_eq!(format!("{key:?}"), "AuditKey(abc123)");
        assert_eq!(key.mac(b"x").len(), 64);
        assert_ne!(
            key.mac(b"x"),
            AuditKey::new("abc123", [8u8; 32], 1).mac(b"x")
        );
        assert_eq!(
            unhex(&crate::auth::raw_key::hex(&[9u8; 32])),
            Some([9u8; 32])
        );
    }
}

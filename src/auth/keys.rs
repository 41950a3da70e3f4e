//! Bifrost's own function keys: creation (the raw key is shown once), authentication, listing,
//! revocation, two-key rotation per name, and the header-or-query extraction rule.
//!
//! Depends on the table contract only (no HTTP). Invariants:
//! - the raw key is never stored or logged: rows hold the SHA-256 of the 32 random secret bytes,
//!   compared in constant time (the secret is uniformly random, so no salt or stretching is
//!   needed to resist guessing);
//! - a raw key embeds its key id (`bfk_<16 hex id>_<43 char secret>`), so authentication is one
//!   point read, never a scan, and usually no read at all (validated records are cached);
//! - at most [`MAX_ACTIVE_KEYS_PER_NAME`] unrevoked, unexpired keys exist per (scope, name),
//!   enforced across instances by insert-if-absent "slot" rows written in the same atomic batch
//!   as the key row;
//! - every refusal is the same caller-facing `invalid key`; the typed reason goes to the audit log.
//!
//! Table `FunctionKeys`, all rows in partition `GLOBAL` (a system table: a key's scope is a
//! property, because authentication must find a key before it knows the scope):
//! - `key:<id>`: `Name`, `Scope` (`GLOBAL` or org id), `SecretHash` (`sha256:<hex>`),
//!   `CreatedAt`, `CreatedBy`, `Slot`, optional `ExpiresAt`, `RevokedAt`, `RevokedBy`, `LastUsedAt`;
//! - `slot:<scope>:<name>:<0|1>`: `KeyId` of the key occupying that rotation slot.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bifrost_store::table::{
    Column, Entity, IfMatch, Properties, Query, ScopedBatch, ScopedTable, TableName, TableStore,
    Value, WriteMode, prop,
};
use bifrost_store::{RowKey, Scope, StoreError};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

use crate::auth::raw_key::{
    self, HASH_SCHEME, KEY_ID_LEN, SECRET_BYTES, generate_id, hex, is_key_id, truncate_micros,
    unhex32,
};
use crate::auth::{AuthError, Clock};

/// Every raw key starts with this, so leaked keys are recognizable by secret scanners.
pub const KEY_PREFIX: &str = "bfk_";
/// The table holding key records and rotation slots.
pub const FUNCTION_KEYS_TABLE: &str = "FunctionKeys";
/// Rotation: a name may have this many active keys (old and new) at once.
pub const MAX_ACTIVE_KEYS_PER_NAME: u8 = 2;
/// Longest key name accepted.
pub const MAX_NAME_LEN: usize = 64;

#[cfg(test)]
const RAW_KEY_LEN: usize = KEY_PREFIX.len() + KEY_ID_LEN + 1 + raw_key::SECRET_LEN;
const MAX_ACTOR_LEN: usize = 256;
/// Bounded retries for optimistic-concurrency loops; contention beyond this is reported.
const MAX_ATTEMPTS: usize = 16;

/// A key's id: 16 lowercase hex characters (64 random bits; uniqueness is enforced by
/// insert-if-absent, so a collision only costs a retry).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(value: &str) -> Result<Self, KeyError> {
        if is_key_id(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(KeyError::Invalid {
                field: "id",
                reason: format!("must be {KEY_ID_LEN} lowercase hex characters"),
            })
        }
    }

    fn generate() -> Self {
        Self(generate_id())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn row_key(&self) -> Result<RowKey, StoreError> {
        row_key(format!("key:{}", self.0))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A raw key, returned once by [`FunctionKeys::create`]. `Debug`/`Display` are redacted so it
/// cannot reach a log by accident; [`RawKey::expose`] gives the value to hand to the user.
#[derive(Clone, PartialEq, Eq)]
pub struct RawKey(String);

impl RawKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawKey(<redacted>)")
    }
}

/// A stored key's metadata (never its secret or hash).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub name: String,
    pub scope: Scope,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
    /// Updated at most once per [`FunctionKeysOptions::last_used_interval`].
    pub last_used_at: Option<OffsetDateTime>,
}

impl KeyRecord {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Neither revoked nor expired: counts against the rotation limit and authenticates.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        !self.is_revoked() && !self.is_expired(now)
    }
}

/// The identity a valid key grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPrincipal {
    pub key_id: KeyId,
    pub name: String,
    pub scope: Scope,
    /// True when this call recorded the key's last-used time (at most once per interval per
    /// key): the caller may audit `key_used` only then, instead of on every request.
    pub usage_recorded: bool,
}

/// Why a key was refused. For the audit log only: callers see `invalid key` whatever it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRejectReason {
    /// Not `bfk_<16 hex>_<43 base64url>`.
    Malformed,
    /// Well-formed, but no key has this id.
    UnknownKey,
    /// The id exists but the secret does not match its hash.
    WrongSecret,
    Revoked,
    Expired,
}

impl KeyRejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRejectReason::Malformed => "malformed",
            KeyRejectReason::UnknownKey => "unknown_key",
            KeyRejectReason::WrongSecret => "wrong_secret",
            KeyRejectReason::Revoked => "revoked",
            KeyRejectReason::Expired => "expired",
        }
    }
}

/// A refused key: the reason and, when the key was well-formed, the id it claimed (safe to
/// audit; the secret part is never kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRejection {
    pub reason: KeyRejectReason,
    pub key_id: Option<KeyId>,
}

impl KeyRejection {
    pub fn reason(&self) -> KeyRejectReason {
        self.reason
    }
}

/// Errors of key management (create, list, revoke).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    #[error(
        "key name '{name}' already has {MAX_ACTIVE_KEYS_PER_NAME} active keys in scope {scope}; \
         revoke one of them before creating another"
    )]
    RotationLimit { name: String, scope: Scope },

    #[error("key {id} not found")]
    NotFound { id: KeyId },

    #[error("key {id} is already revoked")]
    AlreadyRevoked { id: KeyId },

    #[error("key {what} kept changing under concurrent writers; try again")]
    Contention { what: String },

    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Tuning of [`FunctionKeys`].
#[derive(Clone, Debug)]
pub struct FunctionKeysOptions {
    /// How long a validated key record is reused without a read. A revocation by another
    /// instance takes effect here within this time (this instance's own revocations at once).
    pub cache_ttl: Duration,
    /// Minimum time between two `LastUsedAt` writes for one key.
    pub last_used_interval: Duration,
    pub clock: Clock,
}

impl Default for FunctionKeysOptions {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(30),
            last_used_interval: Duration::from_secs(60),
            clock: Clock::default(),
        }
    }
}

/// Picks the presented key the way the Functions host does: the `x-functions-key` header wins
/// over the `code` query parameter (first occurrence); blank values count as absent.
/// `query` is the raw query string (without `?`), still percent-encoded.
pub fn extract_function_key(header: Option<&str>, query: Option<&str>) -> Option<String> {
    if let Some(value) = header.map(str::trim).filter(|v| !v.is_empty()) {
        return Some(value.to_owned());
    }
    let query = query?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The function-key service. One per process; share it behind an `Arc`.
pub struct FunctionKeys {
    table: ScopedTable,
    options: FunctionKeysOptions,
    cache: RwLock<HashMap<String, Arc<CachedKey>>>,
}

impl fmt::Debug for FunctionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionKeys")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

struct CachedKey {
    record: KeyRecord,
    hash: [u8; 32],
    fetched: Instant,
    /// Unix seconds of the last `LastUsedAt` write (or the stored value), claimed by CAS so
    /// concurrent requests write it once.
    last_used_mark: AtomicI64,
}

/// A key row as read, with what the public record does not carry.
struct StoredKey {
    record: KeyRecord,
    hash: [u8; 32],
    slot: u8,
}

impl FunctionKeys {
    /// Opens the service over `store`, creating the `FunctionKeys` table if missing.
    pub async fn open(
        store: Arc<dyn TableStore>,
        options: FunctionKeysOptions,
    ) -> Result<Self, KeyError> {
        let keys = Self::new(store, options)?;
        keys.ensure_table().await?;
        Ok(keys)
    }

    /// The service without touching storage (start-up must not need storage to be reachable);
    /// call [`FunctionKeys::ensure_table`] before first use.
    pub fn new(store: Arc<dyn TableStore>, options: FunctionKeysOptions) -> Result<Self, KeyError> {
        let name = TableName::new(FUNCTION_KEYS_TABLE)?;
        Ok(Self {
            table: ScopedTable::new(store, name, &Scope::Global),
            options,
            cache: RwLock::new(HashMap::new()),
        })
    }

    pub async fn ensure_table(&self) -> Result<(), KeyError> {
        Ok(self
            .table
            .store()
            .create_table_if_missing(self.table.table())
            .await?)
    }

    /// Creates a key named `name` for `scope`. Returns its record and the raw key, which is not
    /// stored and cannot be shown again. Fails with [`KeyError::RotationLimit`] when the name
    /// already has two active keys in that scope.
    pub async fn create(
        &self,
        name: &str,
        scope: Scope,
        expires_at: Option<OffsetDateTime>,
        created_by: &str,
    ) -> Result<(KeyRecord, RawKey), KeyError> {
        validate_name(name)?;
        validate_actor("created_by", created_by)?;
        let now = self.options.clock.now();
        if let Some(at) = expires_at
            && at <= now
        {
            return Err(KeyError::Invalid {
                field: "expires_at",
                reason: "must be in the future".into(),
            });
        }
        let mut secret = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let hash: [u8; 32] = Sha256::digest(secret).into();
        let secret_text = URL_SAFE_NO_PAD.encode(secret);

        let mut slot = 0u8;
        for _ in 0..MAX_ATTEMPTS {
            if slot >= MAX_ACTIVE_KEYS_PER_NAME {
                return Err(KeyError::RotationLimit {
                    name: name.to_owned(),
                    scope,
                });
            }
            let record = KeyRecord {
                id: KeyId::generate(),
                name: name.to_owned(),
                scope: scope.clone(),
                created_at: truncate_micros(now),
                created_by: created_by.to_owned(),
                expires_at: expires_at.map(truncate_micros),
                revoked_at: None,
                revoked_by: None,
                last_used_at: None,
            };
            let slot_key = slot_row_key(&scope, name, slot)?;
            let mut slot_props = Properties::new();
            slot_props.insert("KeyId".into(), record.id.as_str().into());
            let batch = ScopedBatch::new()
                .insert(slot_key.clone(), slot_props)
                .insert(record.id.row_key()?, key_properties(&record, &hash, slot));
            match self.table.batch(batch).await {
                Ok(_) => {
                    let raw = format!("{KEY_PREFIX}{}_{secret_text}", record.id);
                    return Ok((record, RawKey(raw)));
                }
                Err(StoreError::BatchFailed { index: 0, source })
                    if matches!(*source, StoreError::AlreadyExists { .. }) =>
                {
                    if !self.reclaim_slot(&slot_key, now).await? {
                        slot += 1;
                    }
                }
                // The generated id is taken: try again with a fresh one.
                Err(StoreError::BatchFailed { index: 1, source })
                    if matches!(*source, StoreError::AlreadyExists { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Err(KeyError::Contention {
            what: format!("slots of '{name}'"),
        })
    }

    /// Frees a slot whose key is no longer active (expired, or a leftover of an inconsistent
    /// write). Returns true if the slot may be retried, false if an active key holds it.
    async fn reclaim_slot(&self, slot_key: &RowKey, now: OffsetDateTime) -> Result<bool, KeyError> {
        let Some(slot) = self.table.get(slot_key).await? else {
            return Ok(true);
        };
        let occupant = match slot.get("KeyId").and_then(Value::as_str) {
            Some(id) => match KeyId::parse(id) {
                Ok(id) => self.read(&id).await?,
                Err(_) => None,
            },
            None => None,
        };
        if occupant.is_some_and(|k| k.record.is_active(now)) {
            return Ok(false);
        }
        let if_match = slot.etag.map(IfMatch::ETag).unwrap_or(IfMatch::Any);
        match self.table.delete(slot_key, &if_match).await {
            Ok(()) | Err(StoreError::NotFound { .. } | StoreError::PreconditionFailed { .. }) => {
                Ok(true)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Checks a raw key: format, existence, secret, revocation, expiry. Every refusal is
    /// [`AuthError::InvalidKey`] (displayed as `invalid key`) carrying the typed reason.
    pub async fn authenticate(&self, raw: &str) -> Result<KeyPrincipal, AuthError> {
        let reject = |reason, key_id: Option<&str>| {
            AuthError::InvalidKey(KeyRejection {
                reason,
                key_id: key_id.map(|id| KeyId(id.to_owned())),
            })
        };
        let Some((id, secret)) = split_raw_key(raw) else {
            return Err(reject(KeyRejectReason::Malformed, None));
        };
        let cached = match self.cached(id) {
            Some(cached) => cached,
            None => {
                let key_id = KeyId(id.to_owned());
                let Some(stored) = self.read(&key_id).await? else {
                    return Err(reject(KeyRejectReason::UnknownKey, Some(id)));
                };
                self.remember(stored)
            }
        };
        let presented: [u8; 32] = Sha256::digest(secret).into();
        if !bool::from(presented.ct_eq(&cached.hash)) {
            return Err(reject(KeyRejectReason::WrongSecret, Some(id)));
        }
        let now = self.options.clock.now();
        if cached.record.is_revoked() {
            return Err(reject(KeyRejectReason::Revoked, Some(id)));
        }
        if cached.record.is_expired(now) {
            return Err(reject(KeyRejectReason::Expired, Some(id)));
        }
        let usage_recorded = self.record_use(&cached, now).await;
        Ok(KeyPrincipal {
            key_id: cached.record.id.clone(),
            name: cached.record.name.clone(),
            scope: cached.record.scope.clone(),
            usage_recorded,
        })
    }

    fn cached(&self, id: &str) -> Option<Arc<CachedKey>> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache
            .get(id)
            .filter(|c| c.fetched.elapsed() < self.options.cache_ttl)
            .cloned()
    }

    fn remember(&self, stored: StoredKey) -> Arc<CachedKey> {
        let mark = stored
            .record
            .last_used_at
            .map_or(i64::MIN, OffsetDateTime::unix_timestamp);
        let entry = Arc::new(CachedKey {
            record: stored.record,
            hash: stored.hash,
            fetched: Instant::now(),
            last_used_mark: AtomicI64::new(mark),
        });
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        // Only ids that exist get here, so the map is bounded by the number of stored keys;
        // dropping stale entries on insert keeps it from holding revoked keys forever.
        let ttl = self.options.cache_ttl;
        cache.retain(|_, c| c.fetched.elapsed() < ttl);
        cache.insert(entry.record.id.0.clone(), entry.clone());
        entry
    }

    fn forget(&self, id: &KeyId) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.remove(id.as_str());
    }

    /// Writes `LastUsedAt` if the interval has passed; never fails the request (a lost
    /// last-used update is not worth refusing a valid key).
    async fn record_use(&self, cached: &CachedKey, now: OffsetDateTime) -> bool {
        let interval = i64::try_from(self.options.last_used_interval.as_secs()).unwrap_or(i64::MAX);
        let now_secs = now.unix_timestamp();
        let last = cached.last_used_mark.load(Ordering::Relaxed);
        if now_secs.saturating_sub(last) < interval
            || cached
                .last_used_mark
                .compare_exchange(last, now_secs, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let Ok(row_key) = cached.record.id.row_key() else {
            return false;
        };
        let mut props = Properties::new();
        props.insert("LastUsedAt".into(), Value::DateTime(truncate_micros(now)));
        match self
            .table
            .update(row_key, props, WriteMode::Merge, &IfMatch::Any)
            .await
        {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(key_id = %cached.record.id, error = %err, "could not record key use");
                false
            }
        }
    }

    /// The key's record, read from storage (not the cache).
    pub async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, KeyError> {
        Ok(self.read(id).await?.map(|s| s.record))
    }

    async fn read(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        match self.table.get(&id.row_key()?).await? {
            Some(entity) => parse_key_entity(&entity).map(Some),
            None => Ok(None),
        }
    }

    /// All keys of `scope` (revoked and expired ones included), oldest first.
    pub async fn list(&self, scope: &Scope) -> Result<Vec<KeyRecord>, KeyError> {
        let filter = Column::RowKey
            .ge("key:")
            .and(Column::RowKey.lt("key;"))
            .and(prop("Scope").eq(scope.to_string()));
        let rows = self.table.query_all(&Query::new().filter(filter)).await?;
        let mut records = rows
            .iter()
            .map(|e| parse_key_entity(e).map(|s| s.record))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(records)
    }

    /// Revokes a key and frees its rotation slot. Takes effect on this instance at once and on
    /// others within [`FunctionKeysOptions::cache_ttl`].
    pub async fn revoke(&self, id: &KeyId, revoked_by: &str) -> Result<KeyRecord, KeyError> {
        validate_actor("revoked_by", revoked_by)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some(entity) = self.table.get(&id.row_key()?).await? else {
                return Err(KeyError::NotFound { id: id.clone() });
            };
            let stored = parse_key_entity(&entity)?;
            if stored.record.is_revoked() {
                self.forget(id);
                return Err(KeyError::AlreadyRevoked { id: id.clone() });
            }
            let now = truncate_micros(self.options.clock.now());
            let mut props = Properties::new();
            props.insert("RevokedAt".into(), Value::DateTime(now));
            props.insert("RevokedBy".into(), revoked_by.into());
            let key_match = entity
                .etag
                .clone()
                .map(IfMatch::ETag)
                .unwrap_or(IfMatch::Any);
            let slot_key = slot_row_key(&stored.record.scope, &stored.record.name, stored.slot)?;
            let slot = self.table.get(&slot_key).await?;
            let mut batch =
                ScopedBatch::new().update(id.row_key()?, props, WriteMode::Merge, key_match);
            if let Some(slot) =
                slot.filter(|s| s.get("KeyId").and_then(Value::as_str) == Some(id.as_str()))
            {
                let slot_match = slot.etag.map(IfMatch::ETag).unwrap_or(IfMatch::Any);
                batch = batch.delete(slot_key, slot_match);
            }
            match self.table.batch(batch).await {
                Ok(_) => {
                    self.forget(id);
                    let mut record = stored.record;
                    record.revoked_at = Some(now);
                    record.revoked_by = Some(revoked_by.to_owned());
                    return Ok(record);
                }
                Err(StoreError::BatchFailed { source, .. })
                    if matches!(
                        *source,
                        StoreError::PreconditionFailed { .. } | StoreError::NotFound { .. }
                    ) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Err(KeyError::Contention {
            what: id.to_string(),
        })
    }
}

/// `bfk_<id>_<secret>` → (id, 32 secret bytes).
fn split_raw_key(raw: &str) -> Option<(&str, [u8; SECRET_BYTES])> {
    raw_key::split(KEY_PREFIX, raw)
}

fn validate_name(name: &str) -> Result<(), KeyError> {
    let invalid = |reason: &str| KeyError::Invalid {
        field: "name",
        reason: reason.to_owned(),
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(invalid(&format!("must be 1 to {MAX_NAME_LEN} characters")));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            "may contain only letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

fn validate_actor(field: &'static str, value: &str) -> Result<(), KeyError> {
    if value.trim().is_empty() || value.chars().count() > MAX_ACTOR_LEN {
        return Err(KeyError::Invalid {
            field,
            reason: format!("must be 1 to {MAX_ACTOR_LEN} characters"),
        });
    }
    Ok(())
}

fn slot_row_key(scope: &Scope, name: &str, slot: u8) -> Result<RowKey, StoreError> {
    row_key(format!("slot:{scope}:{name}:{slot}"))
}

/// Row keys built here use only `[A-Za-z0-9:._-]` (validated names, hex ids, scopes), so this
/// cannot fail in practice; it still goes through the store's validation.
fn row_key(value: String) -> Result<RowKey, StoreError> {
    RowKey::new(value)
}

fn key_properties(record: &KeyRecord, hash: &[u8; 32], slot: u8) -> Properties {
    let mut p = Properties::new();
    p.insert("Name".into(), record.name.as_str().into());
    p.insert("Scope".into(), record.scope.to_string().into());
    p.insert(
        "SecretHash".into(),
        format!("{HASH_SCHEME}{}", hex(hash)).into(),
    );
    p.insert("CreatedAt".into(), Value::DateTime(record.created_at));
    p.insert("CreatedBy".into(), record.created_by.as_str().into());
    p.insert("Slot".into(), Value::Int32(i32::from(slot)));
    if let Some(at) = record.expires_at {
        p.insert("ExpiresAt".into(), Value::DateTime(at));
    }
    p
}

fn parse_key_entity(entity: &Entity) -> Result<StoredKey, StoreError> {
    let bad = |field: &str| {
        StoreError::Backend(format!(
            "function key row {} has a missing or invalid {field}",
            entity.row_key
        ))
    };
    let text = |field: &str| -> Result<String, StoreError> {
        entity
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad(field))
    };
    let date = |field: &str| entity.get(field).and_then(Value::as_datetime);
    let id = entity
        .row_key
        .as_str()
        .strip_prefix("key:")
        .and_then(|id| KeyId::parse(id).ok())
        .ok_or_else(|| bad("RowKey"))?;
    let scope = Scope::parse(&text("Scope")?).map_err(|_| bad("Scope"))?;
    let hash_text = text("SecretHash")?;
    let hash = hash_text
        .strip_prefix(HASH_SCHEME)
        .and_then(unhex32)
        .ok_or_else(|| bad("SecretHash"))?;
    let slot = entity
        .get("Slot")
        .and_then(Value::as_i32)
        .and_then(|s| u8::try_from(s).ok())
        .filter(|s| *s < MAX_ACTIVE_KEYS_PER_NAME)
        .ok_or_else(|| bad("Slot"))?;
    Ok(StoredKey {
        record: KeyRecord {
            id,
            name: text("Name")?,
            scope,
            created_at: date("CreatedAt").ok_or_else(|| bad("CreatedAt"))?,
            created_by: text("CreatedBy")?,
            expires_at: date("ExpiresAt"),
            revoked_at: date("RevokedAt"),
            revoked_by: entity
                .get("RevokedBy")
                .and_then(Value::as_str)
                .map(str::to_owned),
            last_used_at: date("LastUsedAt"),
        },
        hash,
        slot,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Mutex;

    use bifrost_store::OrgId;
    use bifrost_store::table::SqliteTables;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn TableStore>,
        keys: FunctionKeys,
        now: Arc<Mutex<OffsetDateTime>>,
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn TableStore> = Arc::new(SqliteTables::open(dir.path()).unwrap());
            let now = Arc::new(Mutex::new(time::macros::datetime!(2025-06-01 12:00 UTC)));
            let keys = FunctionKeys::open(store.clone(), options(&now, Duration::from_secs(30)))
                .await
                .unwrap();
            Self {
                _dir: dir,
                store,
                keys,
                now,
            }
        }

        async fn another_instance(&self, cache_ttl: Duration) -> FunctionKeys {
            FunctionKeys::open(self.store.clone(), options(&self.now, cache_ttl))
                .await
                .unwrap()
        }

        fn advance(&self, by: time::Duration) {
            *self.now.lock().unwrap() += by;
        }

        fn now(&self) -> OffsetDateTime {
            *self.now.lock().unwrap()
        }
    }

    fn options(now: &Arc<Mutex<OffsetDateTime>>, cache_ttl: Duration) -> FunctionKeysOptions {
        let now = now.clone();
        FunctionKeysOptions {
            cache_ttl,
            last_used_interval: Duration::from_secs(60),
            clock: Clock::new(move || *now.lock().unwrap()),
        }
    }

    fn org(id: &str) -> Scope {
        Scope::Org(OrgId::parse(id).unwrap())
    }

    fn rejection(result: Result<KeyPrincipal, AuthError>) -> KeyRejectReason {
        match result {
            Err(err @ AuthError::InvalidKey(_)) => {
                assert_eq!(err.to_string(), "invalid key");
                let AuthError::InvalidKey(rejection) = err else {
                    unreachable!()
                };
                rejection.reason()
            }
            other => panic!("expected a rejected key, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn create_then_authenticate() {
        let f = Fixture::new().await;
        let (record, raw) = f
            .keys
            .create("ci", org("orgA"), None, "user:admin")
            .await
            .unwrap();
        let text = raw.expose();
        assert!(text.starts_with("bfk_"), "{text}");
        assert_eq!(text.len(), RAW_KEY_LEN);
        assert_eq!(&text[4..20], record.id.as_str());
        assert_eq!(format!("{raw:?}"), "RawKey(<redacted>)");
        assert_eq!(record.created_at, f.now());
        assert_eq!(record.created_by, "user:admin");

        let principal = f.keys.authenticate(text).await.unwrap();
        assert_eq!(principal.key_id, record.id);
        assert_eq!(principal.name, "ci");
        assert_eq!(principal.scope, org("orgA"));
        assert!(principal.usage_recorded);
        assert_eq!(
            f.keys.get(&record.id).await.unwrap().unwrap().last_used_at,
            Some(f.now())
        );
    }

    #[tokio::test]
    async fn stores_the_hash_never_the_raw_key() {
        let f = Fixture::new().await;
        let (record, raw) = f
            .keys
            .create("ci", Scope::Global, None, "admin")
            .await
            .unwrap();
        let secret_text = &raw.expose()[KEY_PREFIX.len() + KEY_ID_LEN + 1..];
        let table = TableName::new(FUNCTION_KEYS_TABLE).unwrap();
        let rows = f.store.query_all(&table, &Query::new()).await.unwrap();
        assert_eq!(rows.len(), 2, "one key row and one slot row");
        for row in &rows {
            let dump = format!("{row:?}");
            assert!(!dump.contains(secret_text), "raw secret stored in {dump}");
            assert!(!dump.contains(raw.expose()), "raw key stored in {dump}");
        }
        let key_row = f
            .store
            .get(
                &table,
                &Scope::Global.partition_key(),
                &record.id.row_key().unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        let secret = URL_SAFE_NO_PAD.decode(secret_text).unwrap();
        assert_eq!(
            key_row.get("SecretHash").and_then(Value::as_str).unwrap(),
            format!("sha256:{}", hex(&Sha256::digest(&secret)))
        );
    }

    /// Flips the lowest bit of the last secret character, which encodes no data.
    fn non_canonical(raw: &str) -> String {
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = raw.chars().last().unwrap();
        let index = ALPHABET.find(last).unwrap() ^ 1;
        let mut out = raw[..raw.len() - 1].to_owned();
        out.push(ALPHABET.as_bytes()[index] as char);
        out
    }

    #[tokio::test]
    async fn each_refusal_has_its_own_reason_and_the_same_message() {
        let f = Fixture::new().await;
        let (record, raw) = f
            .keys
            .create("ci", Scope::Global, None, "admin")
            .await
            .unwrap();
        let raw = raw.expose().to_owned();
        let secret_part = &raw[KEY_PREFIX.len() + KEY_ID_LEN + 1..];
        let malformed = [
            String::new(),
            "bfk_".into(),
            raw[..raw.len() - 1].to_owned(),
            format!("{raw}A"),
            raw.replacen("bfk_", "xyz_", 1),
            raw.to_uppercase(),
            format!("bfk_{}-{secret_part}", record.id),
            format!("bfk_{}_{}!", record.id, &secret_part[1..]),
            // Same length, but the last character sets trailing bits: a non-canonical spelling.
            non_canonical(&raw),
            "é".repeat(RAW_KEY_LEN / 2),
        ];
        for bad in &malformed {
            if bad == &raw {
                continue;
            }
            assert_eq!(
                rejection(f.keys.authenticate(bad).await),
                KeyRejectReason::Malformed,
                "{bad:?}"
            );
        }
        let unknown = format!("bfk_{}_{secret_part}", "0".repeat(KEY_ID_LEN));
        assert_eq!(
            rejection(f.keys.authenticate(&unknown).await),
            KeyRejectReason::UnknownKey
        );
        let other_secret = URL_SAFE_NO_PAD.encode([7u8; SECRET_BYTES]);
        let wrong = format!("bfk_{}_{other_secret}", record.id);
        match f.keys.authenticate(&wrong).await {
            Err(AuthError::InvalidKey(r)) => {
                assert_eq!(r.reason, KeyRejectReason::WrongSecret);
                assert_eq!(r.key_id, Some(record.id.clone()));
            }
            other => panic!("{other:?}"),
        }
        assert!(f.keys.authenticate(&raw).await.is_ok());
    }

    #[tokio::test]
    async fn revoke_takes_effect_at_once_on_this_instance() {
        let f = Fixture::new().await;
        let (record, raw) = f
            .keys
            .create("ci", Scope::Global, None, "admin")
            .await
            .unwrap();
        // Warm the cache, then revoke.
        f.keys.authenticate(raw.expose()).await.unwrap();
        let revoked = f.keys.revoke(&record.id, "user:admin").await.unwrap();
        assert_eq!(revoked.revoked_by.as_deref(), Some("user:admin"));
        assert_eq!(revoked.revoked_at, Some(f.now()));
        assert_eq!(
            rejection(f.keys.authenticate(raw.expose()).await),
            KeyRejectReason::Revoked
        );
        assert!(matches!(
            f.keys.revoke(&record.id, "admin").await,
            Err(KeyError::AlreadyRevoked { .. })
        ));
        let missing = KeyId::parse("00000000000000ff").unwrap();
        assert!(matches!(
            f.keys.revoke(&missing, "admin").await,
            Err(KeyError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn other_instances_see_revocation_after_their_cache_ttl() {
        let f = Fixture::new().await;
        let (record, raw) = f
            .keys
            .create("ci", Scope::Global, None, "admin")
            .await
            .unwrap();
        let long_cache = f.another_instance(Duration::from_secs(3600)).await;
        let no_cache = f.another_instance(Duration::ZERO).await;
        long_cache.authenticate(raw.expose()).await.unwrap();
        no_cache.authenticate(raw.expose()).await.unwrap();
        f.keys.revoke(&record.id, "admin").await.unwrap();
        // The documented trade-off: another instance keeps a validated key for its cache TTL.
        assert!(long_cache.authenticate(raw.expose()).await.is_ok());
        assert_eq!(
            rejection(no_cache.authenticate(raw.expose()).await),
            KeyRejectReason::Revoked
        );
    }

    #[tokio::test]
    async fn warm_cache_needs_no_read() {
        let f = Fixture::new().await;
        let (record, raw) = f
            .keys
            .create("ci", Scope::Global, None, "admin")
            .await
            .unwrap();
        f.keys.authenticate(raw.expose()).await.unwrap();
        // Remove the row behind the cache's back: only a cached record can still answer.
        let table = TableName::new(FUNCTION_KEYS_TABLE).unwrap();
        f.store
            .delete(
                &table,
                &Scope::Global.partition_key(),
                &record.id.row_key().unwrap(),
                &IfMatch::Any,
            )
            .await
            .unwrap();
        assert!(f.keys.authenticate(raw.expose()).await.is_ok());
        let uncached = f.another_instance(Duration::ZERO).await;
        assert_eq!(
            rejection(uncached.authenticate(raw.expose()).await),
            KeyRejectReason::UnknownKey
        );
    }

    #[tokio::test]
    async fn expiry() {
        let f = Fixture::new().await;
        let err = f
            .keys
            .create("ci", Scope::Global, Some(f.now()), "admin")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("expires_at"), "{err}");
        let (record, raw) = f
            .keys
            .create(
                "ci",
                Scope::Global,
                Some(f.now() + time::Duration::hours(1)),
                "admin",
            )
            .await
            .unwrap();
        assert!(f.keys.authenticate(raw.expose()).await.is_ok());
        f.advance(time::Duration::hours(1));
        assert_eq!(
            rejection(f.keys.authenticate(raw.expose()).await),
            KeyRejectReason::Expired
        );
        assert!(
            !f.keys
                .get(&record.id)
                .await
                .unwrap()
                .unwrap()
                .is_active(f.now())
        );
    }

    #[tokio::test]
    async fn at_most_two_active_keys_per_name() {
        let f = Fixture::new().await;
        let (first, _) = f
            .keys
            .create("deploy", org("orgA"), None, "admin")
            .await
            .unwrap();
        f.keys
            .create("deploy", org("orgA"), None, "admin")
            .await
            .unwrap();
        let err = f
            .keys
            .create("deploy", org("orgA"), None, "admin")
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::RotationLimit { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("'deploy'") && message.contains("revoke"),
            "{message}"
        );
        // Names are per scope.
        f.keys
            .create("deploy", org("orgB"), None, "admin")
            .await
            .unwrap();
        f.keys
            .create("deploy", Scope::Global, None, "admin")
            .await
            .unwrap();
        // Revoking frees a slot.
        f.keys.revoke(&first.id, "admin").await.unwrap();
        f.keys
            .create("deploy", org("orgA"), None, "admin")
            .await
            .unwrap();
        assert!(matches!(
            f.keys.create("deploy", org("orgA"), None, "admin").await,
            Err(KeyError::RotationLimit { .. })
        ));
        assert_eq!(f.keys.list(&org("orgA")).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn an_expired_key_frees_its_slot() {
        let f = Fixture::new().await;
        let soon = Some(f.now() + time::Duration::minutes(5));
        f.keys
            .create("ci", Scope::Global, soon, "admin")
            .await
            .unwrap();
        f.keys
            .create("ci", Scope::Global, None, "admin")
            .await
            .unwrap();
        assert!(
            f.keys
                .create("ci", Scope::Global, None, "admin")
                .await
                .is_err()
        );
        f.advance(time::Duration::minutes(5));
        f.keys
            .create("ci", Scope::Global, None, "admin")
            .await
            .unwrap();
        assert!(matches!(
            f.keys.create("ci", Scope::Global, None, "admin").await,
            Err(KeyError::RotationLimit { .. })
        ));
    }

    #[tokio::test]
    async fn concurrent_creates_respect_the_limit() {
        let f = Arc::new(Fixture::new().await);
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                f.keys.create("race", Scope::Global, None, "admin").await
            }));
        }
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => created += 1,
                Err(KeyError::RotationLimit { .. }) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(created, 2);
    }

    #[tokio::test]
    async fn list_is_per_scope_and_includes_revoked_keys() {
        let f = Fixture::new().await;
        let (a1, _) = f
            .keys
            .create("a", org("orgA"), None, "admin")
            .await
            .unwrap();
        f.advance(time::Duration::seconds(1));
        let (a2, _) = f
            .keys
            .create("b", org("orgA"), None, "admin")
            .await
            .unwrap();
        let (g, _) = f
            .keys
            .create("a", Scope::Global, None, "admin")
            .await
            .unwrap();
        f.keys.revoke(&a1.id, "admin").await.unwrap();
        let ids = |records: Vec<KeyRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(f.keys.list(&org("orgA")).await.unwrap()),
            vec![a1.id.clone(), a2.id]
        );
        assert_eq!(ids(f.keys.list(&Scope::Global).await.unwrap()), vec![g.id]);
        assert!(f.keys.list(&org("orgC")).await.unwrap().is_empty());
        assert!(f.keys.list(&org("orgA")).await.unwrap()[0].is_revoked());
    }

    #[tokio::test]
    async fn last_used_is_written_at_most_once_per_interval() {
        let f = Fixture::new().await;
        let (record, raw) = f
            .keys
            .create("ci", Scope::Global, None, "admin")
            .await
            .unwrap();
        let first_use = f.now();
        assert!(
            f.keys
                .authenticate(raw.expose())
                .await
                .unwrap()
                .usage_recorded
        );
        f.advance(time::Duration::seconds(59));
        assert!(
            !f.keys
                .authenticate(raw.expose())
                .await
                .unwrap()
                .usage_recorded
        );
        assert_eq!(
            f.keys.get(&record.id).await.unwrap().unwrap().last_used_at,
            Some(first_use)
        );
        f.advance(time::Duration::seconds(1));
        assert!(
            f.keys
                .authenticate(raw.expose())
                .await
                .unwrap()
                .usage_recorded
        );
        assert_eq!(
            f.keys.get(&record.id).await.unwrap().unwrap().last_used_at,
            Some(f.now())
        );
        // A fresh instance starts from the stored time, not from "never used".
        let other = f.another_instance(Duration::from_secs(30)).await;
        assert!(
            !other
                .authenticate(raw.expose())
                .await
                .unwrap()
                .usage_recorded
        );
    }

    #[tokio::test]
    async fn bad_names_and_actors_name_the_field() {
        let f = Fixture::new().await;
        for (name, by, field) in [
            ("", "admin", "name"),
            ("a/b", "admin", "name"),
            ("sp ace", "admin", "name"),
            (&*"n".repeat(MAX_NAME_LEN + 1), "admin", "name"),
            ("ok", " ", "created_by"),
        ] {
            let err = f
                .keys
                .create(name, Scope::Global, None, by)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, KeyError::Invalid { field: f, .. } if *f == field),
                "{name:?}: {err:?}"
            );
        }
        assert!(KeyId::parse("XYZ").unwrap_err().to_string().contains("id"));
    }

    #[test]
    fn header_wins_over_query() {
        assert_eq!(
            extract_function_key(Some("from-header"), Some("code=from-query")).as_deref(),
            Some("from-header")
        );
        assert_eq!(
            extract_function_key(Some("  "), Some("a=1&code=from%2Bquery&code=second")).as_deref(),
            Some("from+query")
        );
        assert_eq!(extract_function_key(None, Some("code=")), None);
        assert_eq!(extract_function_key(None, Some("codes=x&xcode=y")), None);
        assert_eq!(extract_function_key(None, None), None);
        assert_eq!(
            extract_function_key(Some(" k "), None).as_deref(),
            Some("k")
        );
    }
}

//! One table of hashed platform keys, generic over their kind: function keys
//! ([`crate::auth::keys`], `bfk_`) and workflow keys ([`crate::auth::workflow_keys`], `wk_`) are
//! both a [`KeyTable`], and only what truly differs is the kind's ([`KeyKind`]): table name,
//! prefix, the fields a record holds beyond the common ones, and whether keys rotate in slots.
//!
//! Depends on the table contract, the key shape ([`super::raw_key`]) and [`crate::cache`]; no
//! HTTP. Invariants:
//! - the raw key is never stored or logged: rows hold the SHA-256 of the 32 random secret bytes,
//!   compared in constant time (the secret is uniformly random, so no salt or stretching is
//!   needed to resist guessing);
//! - a raw key embeds its key id (`<prefix><16 hex id>_<43 char secret>`), so checking a key is
//!   one point read, never a scan, and usually no read at all: validated records are cached for
//!   [`Options::cache_ttl`] (a revocation by another instance takes effect here within that
//!   time, this instance's own at once);
//! - of kinds that rotate ([`KeyKind::rotation`]), at most [`MAX_ACTIVE_KEYS_PER_NAME`]
//!   unrevoked, unexpired keys exist per (scope, name), enforced across instances by
//!   insert-if-absent "slot" rows written in the same atomic batch as the key row;
//! - `LastUsedAt` is written at most once per [`Options::last_used_interval`] per key and
//!   instance, and a failed write never refuses a valid key.
//!
//! Rows, all in partition `GLOBAL` (authentication must find a key before it knows any scope):
//! - `key:<id>`: the kind's fields, `SecretHash` (`sha256:<hex>`), `CreatedAt`, `CreatedBy`,
//!   optional `ExpiresAt`, `RevokedAt`, `RevokedBy`, `LastUsedAt`; `Slot` for rotating kinds;
//! - `slot:<scope>:<name>:<0|1>` (rotating kinds): `KeyId` of the key occupying that slot.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bifrost_store::table::{
    Column, Entity, Filter, IfMatch, Properties, Query, ScopedBatch, ScopedTable, TableName,
    TableStore, Value, WriteMode,
};
use bifrost_store::{RowKey, Scope, StoreError};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

use crate::auth::Clock;
use crate::auth::raw_key::{
    self, HASH_SCHEME, KEY_ID_LEN, SECRET_BYTES, generate_id, hex, is_key_id, truncate_micros,
    unhex32,
};
use crate::cache::Cache;

/// Rotation: a name may have this many active keys (old and new) at once.
pub const MAX_ACTIVE_KEYS_PER_NAME: u8 = 2;

const MAX_ACTOR_LEN: usize = 256;
/// Bounded retries for id collisions and optimistic-concurrency loops; contention beyond this
/// is reported.
const MAX_ATTEMPTS: usize = 16;
/// Validated keys kept per instance: only ids that exist are cached, so this is reached only
/// with that many keys in use at once.
const VERIFIED_CACHE_MAX: usize = 100_000;

/// What differs between kinds of keys. Implemented by a marker type per kind.
pub trait KeyKind: Copy + fmt::Debug + Eq + Ord + Hash + Send + Sync + 'static {
    /// What a record of this kind holds beyond the common fields; read through
    /// [`Record`]'s `Deref`.
    type Fields: Clone + fmt::Debug + PartialEq + Send + Sync + 'static;
    /// The table of the keys.
    const TABLE: &'static str;
    /// Every raw key starts with this, so leaked keys are recognizable by secret scanners.
    const PREFIX: &'static str;
    /// How management errors name a key (`key`, `workflow key`).
    const NOUN: &'static str;
    /// How logs and unreadable-row errors name a key (`function key`, `workflow key`).
    const NAME: &'static str;
    /// The `Debug` name of a raw key (its value is never printed).
    const RAW_NAME: &'static str;

    /// Writes the kind's fields into a key row.
    fn write(fields: &Self::Fields, props: &mut Properties);

    /// Reads the kind's fields from a key row, or names the property that is missing or invalid.
    fn read(entity: &Entity) -> Result<Self::Fields, &'static str>;

    /// The (name, scope) whose active keys rotate in [`MAX_ACTIVE_KEYS_PER_NAME`] slots, for
    /// kinds that limit them; `None` (the default) for kinds without a limit.
    fn rotation(_fields: &Self::Fields) -> Option<(&str, &Scope)> {
        None
    }
}

/// A key's id: 16 lowercase hex characters (64 random bits; uniqueness is enforced by
/// insert-if-absent, so a collision only costs a retry).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id<K>(String, PhantomData<K>);

impl<K: KeyKind> Id<K> {
    pub fn parse(value: &str) -> Result<Self, Error<K>> {
        if is_key_id(value) {
            Ok(Self::checked(value))
        } else {
            Err(Error::Invalid {
                field: "id",
                reason: format!("must be {KEY_ID_LEN} lowercase hex characters"),
            })
        }
    }

    /// An id already known to be well-formed (from a parsed raw key or row key).
    fn checked(value: &str) -> Self {
        Self(value.to_owned(), PhantomData)
    }

    fn generate() -> Self {
        Self(generate_id(), PhantomData)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn row_key(&self) -> Result<RowKey, StoreError> {
        RowKey::new(format!("key:{}", self.0))
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<K> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyId").field(&self.0).finish()
    }
}

/// A raw key, returned once at creation. `Debug` is redacted so it cannot reach a log by
/// accident; [`Raw::expose`] gives the value to hand to the user.
#[derive(Clone, PartialEq, Eq)]
pub struct Raw<K>(String, PhantomData<K>);

impl<K> Raw<K> {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl<K: KeyKind> fmt::Debug for Raw<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(<redacted>)", K::RAW_NAME)
    }
}

/// A stored key's metadata (never its secret or hash). The kind's fields read as the record's
/// own (`record.name`, `record.workflow_name`) through `Deref`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record<K: KeyKind> {
    pub id: Id<K>,
    pub fields: K::Fields,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
    /// Updated at most once per [`Options::last_used_interval`].
    pub last_used_at: Option<OffsetDateTime>,
}

impl<K: KeyKind> Record<K> {
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

impl<K: KeyKind> Deref for Record<K> {
    type Target = K::Fields;

    fn deref(&self) -> &K::Fields {
        &self.fields
    }
}

/// Why a key was refused by the checks every kind shares. For the audit log; what callers are
/// told is the kind's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// Not `<prefix><16 hex>_<43 base64url>`.
    Malformed,
    /// Well-formed, but no key has this id.
    UnknownKey,
    /// The id exists but the secret does not match its hash.
    WrongSecret,
    Revoked,
    Expired,
}

impl RejectReason {
    /// The audit log's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::WrongSecret => "wrong_secret",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// A refused key: the reason and, when the key was well-formed, the id it claimed (safe to
/// audit; the secret part is never kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection<K> {
    pub reason: RejectReason,
    pub key_id: Option<Id<K>>,
}

impl<K> Rejection<K> {
    pub fn reason(&self) -> RejectReason {
        self.reason
    }
}

/// Why [`KeyTable::check`] did not accept a key.
#[derive(Debug)]
pub(crate) enum Refusal<K> {
    Rejected(Rejection<K>),
    /// The key store could not be read.
    Store(StoreError),
}

/// Errors of key management (create, list, revoke).
#[derive(Debug, thiserror::Error)]
pub enum Error<K: KeyKind> {
    /// `field` uses the key module's names (`name`, `expires_at`, `workflow_name`, ...,
    /// `created_by`, `revoked_by`, `id`); the HTTP layer renames them.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    #[error(
        "key name '{name}' already has {MAX_ACTIVE_KEYS_PER_NAME} active keys in scope {scope}; \
         revoke one of them before creating another"
    )]
    RotationLimit { name: String, scope: Scope },

    #[error("{noun} {id} not found", noun = K::NOUN)]
    NotFound { id: Id<K> },

    #[error("{noun} {id} is already revoked", noun = K::NOUN)]
    AlreadyRevoked { id: Id<K> },

    #[error("{noun} {what} kept changing under concurrent writers; try again", noun = K::NOUN)]
    Contention { what: String },

    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Tuning of a [`KeyTable`].
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a validated key record is reused without a read. A revocation by another
    /// instance takes effect here within this time (this instance's own revocations at once).
    pub cache_ttl: Duration,
    /// Minimum time between two `LastUsedAt` writes for one key.
    pub last_used_interval: Duration,
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(30),
            last_used_interval: Duration::from_secs(60),
            clock: Clock::default(),
        }
    }
}

/// A key that passed [`KeyTable::check`], as cached.
pub(crate) struct Verified<K: KeyKind> {
    pub(crate) record: Record<K>,
    hash: [u8; 32],
    /// Unix seconds of the last `LastUsedAt` write (or the stored value), claimed by CAS so
    /// concurrent requests write it once.
    last_used_mark: AtomicI64,
}

/// A key row as read, with what the public record does not carry.
struct Stored<K: KeyKind> {
    record: Record<K>,
    hash: [u8; 32],
    slot: Option<u8>,
}

/// The keys of one kind. One per process and kind; the kind's service wraps it.
pub(crate) struct KeyTable<K: KeyKind> {
    table: ScopedTable,
    options: Options,
    verified: Cache<String, Arc<Verified<K>>>,
}

impl<K: KeyKind> fmt::Debug for KeyTable<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyTable")
            .field("table", &K::TABLE)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<K: KeyKind> KeyTable<K> {
    /// The table without touching storage (start-up must not need storage to be reachable);
    /// call [`KeyTable::ensure_table`] before first use.
    pub(crate) fn new(store: Arc<dyn TableStore>, options: Options) -> Result<Self, Error<K>> {
        let name = TableName::new(K::TABLE)?;
        Ok(Self {
            table: ScopedTable::new(store, name, &Scope::Global),
            verified: Cache::new(options.cache_ttl, VERIFIED_CACHE_MAX),
            options,
        })
    }

    pub(crate) async fn ensure_table(&self) -> Result<(), Error<K>> {
        Ok(self
            .table
            .store()
            .create_table_if_missing(self.table.table())
            .await?)
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.options.clock.now()
    }

    /// Stores a new key with `fields` (validated by the kind, as is `created_by`), created
    /// `now`. Returns its record and the raw key, which is not stored and cannot be shown again.
    /// Fails with [`Error::RotationLimit`] when a rotating kind's name has no free slot.
    pub(crate) async fn create(
        &self,
        fields: K::Fields,
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
        created_by: &str,
    ) -> Result<(Record<K>, Raw<K>), Error<K>> {
        let mut secret = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let hash: [u8; 32] = Sha256::digest(secret).into();
        let secret_text = URL_SAFE_NO_PAD.encode(secret);
        let rotation = K::rotation(&fields).map(|(name, scope)| (name.to_owned(), scope.clone()));

        let mut slot = 0u8;
        for _ in 0..MAX_ATTEMPTS {
            if let Some((name, scope)) = &rotation
                && slot >= MAX_ACTIVE_KEYS_PER_NAME
            {
                return Err(Error::RotationLimit {
                    name: name.clone(),
                    scope: scope.clone(),
                });
            }
            let record = Record {
                id: Id::generate(),
                fields: fields.clone(),
                created_at: truncate_micros(now),
                created_by: created_by.to_owned(),
                expires_at: expires_at.map(truncate_micros),
                revoked_at: None,
                revoked_by: None,
                last_used_at: None,
            };
            let props = key_properties(&record, &hash, rotation.as_ref().map(|_| slot));
            match &rotation {
                Some((name, scope)) => {
                    let slot_key = slot_row_key(scope, name, slot)?;
                    let mut slot_props = Properties::new();
                    slot_props.insert("KeyId".into(), record.id.as_str().into());
                    let batch = ScopedBatch::new()
                        .insert(slot_key.clone(), slot_props)
                        .insert(record.id.row_key()?, props);
                    match self.table.batch(batch).await {
                        Ok(_) => {}
                        Err(StoreError::BatchFailed { index: 0, source })
                            if matches!(*source, StoreError::AlreadyExists { .. }) =>
                        {
                            if !self.reclaim_slot(&slot_key, now).await? {
                                slot += 1;
                            }
                            continue;
                        }
                        // The generated id is taken: try again with a fresh one.
                        Err(StoreError::BatchFailed { index: 1, source })
                            if matches!(*source, StoreError::AlreadyExists { .. }) =>
                        {
                            continue;
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
                None => match self.table.insert(record.id.row_key()?, props).await {
                    Ok(_) => {}
                    Err(StoreError::AlreadyExists { .. }) => continue,
                    Err(other) => return Err(other.into()),
                },
            }
            let raw = format!("{}{}_{secret_text}", K::PREFIX, record.id);
            return Ok((record, Raw(raw, PhantomData)));
        }
        Err(Error::Contention {
            what: match rotation {
                Some((name, _)) => format!("slots of '{name}'"),
                None => "id generation".into(),
            },
        })
    }

    /// Frees a slot whose key is no longer active (expired, or a leftover of an inconsistent
    /// write). Returns true if the slot may be retried, false if an active key holds it.
    async fn reclaim_slot(&self, slot_key: &RowKey, now: OffsetDateTime) -> Result<bool, Error<K>> {
        let Some(slot) = self.table.get(slot_key).await? else {
            return Ok(true);
        };
        let occupant = match slot.get("KeyId").and_then(Value::as_str) {
            Some(id) if is_key_id(id) => self.read(&Id::checked(id)).await?,
            _ => None,
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

    /// The checks every kind makes on a raw key, as of `now`: format, existence, secret,
    /// revocation, expiry. The hot path: a cached key costs one hash and no allocation beyond
    /// the caller's.
    pub(crate) async fn check(
        &self,
        raw: &str,
        now: OffsetDateTime,
    ) -> Result<Arc<Verified<K>>, Refusal<K>> {
        let reject = |reason, key_id: Option<&str>| {
            Refusal::Rejected(Rejection {
                reason,
                key_id: key_id.map(Id::checked),
            })
        };
        let Some((id, secret)) = raw_key::split(K::PREFIX, raw) else {
            return Err(reject(RejectReason::Malformed, None));
        };
        let verified = match self.verified.get(id) {
            Some(verified) => verified,
            None => {
                let generation = self.verified.generation();
                let Some(stored) = self.read(&Id::checked(id)).await.map_err(Refusal::Store)?
                else {
                    return Err(reject(RejectReason::UnknownKey, Some(id)));
                };
                self.remember(stored, generation)
            }
        };
        let presented: [u8; 32] = Sha256::digest(secret).into();
        if !bool::from(presented.ct_eq(&verified.hash)) {
            return Err(reject(RejectReason::WrongSecret, Some(id)));
        }
        if verified.record.is_revoked() {
            return Err(reject(RejectReason::Revoked, Some(id)));
        }
        if verified.record.is_expired(now) {
            return Err(reject(RejectReason::Expired, Some(id)));
        }
        Ok(verified)
    }

    /// Caches a key just read, unless a revocation on this instance may have come after the
    /// read (`generation` moved): that key must be read again, not served stale for the TTL.
    fn remember(&self, stored: Stored<K>, generation: u64) -> Arc<Verified<K>> {
        let mark = stored
            .record
            .last_used_at
            .map_or(i64::MIN, OffsetDateTime::unix_timestamp);
        let verified = Arc::new(Verified {
            record: stored.record,
            hash: stored.hash,
            last_used_mark: AtomicI64::new(mark),
        });
        self.verified.put_if_current(
            verified.record.id.as_str().to_owned(),
            verified.clone(),
            generation,
        );
        verified
    }

    fn forget(&self, id: &Id<K>) {
        self.verified.invalidate(id.as_str());
    }

    /// Writes `LastUsedAt` as of `now` if the interval has passed; never fails the request (a
    /// lost last-used update is not worth refusing a valid key). True when written: the caller
    /// may audit the use only then, instead of on every request.
    pub(crate) async fn record_use(&self, verified: &Verified<K>, now: OffsetDateTime) -> bool {
        let interval = i64::try_from(self.options.last_used_interval.as_secs()).unwrap_or(i64::MAX);
        let now_secs = now.unix_timestamp();
        let last = verified.last_used_mark.load(Ordering::Relaxed);
        if now_secs.saturating_sub(last) < interval
            || verified
                .last_used_mark
                .compare_exchange(last, now_secs, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let Ok(row_key) = verified.record.id.row_key() else {
            return false;
        };
        let mut props = Properties::new();
        props.insert("LastUsedAt".into(), Value::DateTime(truncate_micros(now)));
        // `IfMatch::Any` on an existing row: a key deleted behind our back is not re-created
        // (update fails with NotFound), and a concurrent revocation's fields are kept (merge).
        match self
            .table
            .update(row_key, props, WriteMode::Merge, &IfMatch::Any)
            .await
        {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(kind = K::NAME, key_id = %verified.record.id, error = %err, "could not record key use");
                false
            }
        }
    }

    /// The key's record, read from storage (not the cache).
    pub(crate) async fn get(&self, id: &Id<K>) -> Result<Option<Record<K>>, Error<K>> {
        Ok(self.read(id).await?.map(|s| s.record))
    }

    async fn read(&self, id: &Id<K>) -> Result<Option<Stored<K>>, StoreError> {
        match self.table.get(&id.row_key()?).await? {
            Some(entity) => parse_key_entity(&entity).map(Some),
            None => Ok(None),
        }
    }

    /// The key rows matching `filter` (all of them without one), unparsed.
    pub(crate) async fn rows(&self, filter: Option<Filter>) -> Result<Vec<Entity>, StoreError> {
        let keys = Column::RowKey.ge("key:").and(Column::RowKey.lt("key;"));
        let filter = match filter {
            Some(filter) => keys.and(filter),
            None => keys,
        };
        self.table.query_all(&Query::new().filter(filter)).await
    }

    /// The keys matching `filter` (revoked and expired ones included), oldest first.
    pub(crate) async fn list(&self, filter: Option<Filter>) -> Result<Vec<Record<K>>, Error<K>> {
        let rows = self.rows(filter).await?;
        let mut records = rows
            .iter()
            .map(|e| parse_key_entity::<K>(e).map(|s| s.record))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(records)
    }

    /// Revokes a key and frees its rotation slot. Takes effect on this instance at once and on
    /// others within [`Options::cache_ttl`].
    pub(crate) async fn revoke(&self, id: &Id<K>, revoked_by: &str) -> Result<Record<K>, Error<K>> {
        validate_actor("revoked_by", revoked_by)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some(entity) = self.table.get(&id.row_key()?).await? else {
                return Err(Error::NotFound { id: id.clone() });
            };
            let stored = parse_key_entity::<K>(&entity)?;
            if stored.record.is_revoked() {
                self.forget(id);
                return Err(Error::AlreadyRevoked { id: id.clone() });
            }
            let now = truncate_micros(self.options.clock.now());
            let mut props = Properties::new();
            props.insert("RevokedAt".into(), Value::DateTime(now));
            props.insert("RevokedBy".into(), revoked_by.into());
            let key_match = entity.etag.map(IfMatch::ETag).unwrap_or(IfMatch::Any);
            // The slot row goes in the same batch, if it is still this key's.
            let mut slot_row = None;
            if let (Some((name, scope)), Some(slot)) =
                (K::rotation(&stored.record.fields), stored.slot)
            {
                let slot_key = slot_row_key(scope, name, slot)?;
                if let Some(row) = self.table.get(&slot_key).await?
                    && row.get("KeyId").and_then(Value::as_str) == Some(id.as_str())
                {
                    slot_row = Some((
                        slot_key,
                        row.etag.map(IfMatch::ETag).unwrap_or(IfMatch::Any),
                    ));
                }
            }
            let written = match slot_row {
                Some((slot_key, slot_match)) => {
                    let batch = ScopedBatch::new()
                        .update(id.row_key()?, props, WriteMode::Merge, key_match)
                        .delete(slot_key, slot_match);
                    self.table.batch(batch).await.map(drop)
                }
                None => self
                    .table
                    .update(id.row_key()?, props, WriteMode::Merge, &key_match)
                    .await
                    .map(drop),
            };
            match written {
                Ok(()) => {
                    self.forget(id);
                    let mut record = stored.record;
                    record.revoked_at = Some(now);
                    record.revoked_by = Some(revoked_by.to_owned());
                    return Ok(record);
                }
                // A concurrent write (a last-used update, another revocation, the slot freed):
                // read again.
                Err(StoreError::PreconditionFailed { .. } | StoreError::NotFound { .. }) => {}
                Err(StoreError::BatchFailed { source, .. })
                    if matches!(
                        *source,
                        StoreError::PreconditionFailed { .. } | StoreError::NotFound { .. }
                    ) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Contention {
            what: id.to_string(),
        })
    }
}

/// Who created or revoked a key: 1 to 256 characters, not blank.
pub(crate) fn validate_actor<K: KeyKind>(field: &'static str, value: &str) -> Result<(), Error<K>> {
    if value.trim().is_empty() || value.chars().count() > MAX_ACTOR_LEN {
        return Err(Error::Invalid {
            field,
            reason: format!("must be 1 to {MAX_ACTOR_LEN} characters"),
        });
    }
    Ok(())
}

/// Row keys built here use only `[A-Za-z0-9:._-]` (validated names, hex ids, scopes), so this
/// cannot fail in practice; it still goes through the store's validation.
fn slot_row_key(scope: &Scope, name: &str, slot: u8) -> Result<RowKey, StoreError> {
    RowKey::new(format!("slot:{scope}:{name}:{slot}"))
}

fn key_properties<K: KeyKind>(record: &Record<K>, hash: &[u8; 32], slot: Option<u8>) -> Properties {
    let mut p = Properties::new();
    K::write(&record.fields, &mut p);
    p.insert(
        "SecretHash".into(),
        format!("{HASH_SCHEME}{}", hex(hash)).into(),
    );
    p.insert("CreatedAt".into(), Value::DateTime(record.created_at));
    p.insert("CreatedBy".into(), record.created_by.as_str().into());
    if let Some(slot) = slot {
        p.insert("Slot".into(), Value::Int32(i32::from(slot)));
    }
    if let Some(at) = record.expires_at {
        p.insert("ExpiresAt".into(), Value::DateTime(at));
    }
    p
}

fn parse_key_entity<K: KeyKind>(entity: &Entity) -> Result<Stored<K>, StoreError> {
    let bad = |field: &str| {
        StoreError::Backend(format!(
            "{} row {} has a missing or invalid {field}",
            K::NAME,
            entity.row_key
        ))
    };
    let text = |field: &str| entity.get(field).and_then(Value::as_str).map(str::to_owned);
    let date = |field: &str| entity.get(field).and_then(Value::as_datetime);
    let id = entity
        .row_key
        .as_str()
        .strip_prefix("key:")
        .filter(|id| is_key_id(id))
        .map(Id::checked)
        .ok_or_else(|| bad("RowKey"))?;
    let fields = K::read(entity).map_err(bad)?;
    let hash = text("SecretHash")
        .as_deref()
        .and_then(|h| h.strip_prefix(HASH_SCHEME))
        .and_then(unhex32)
        .ok_or_else(|| bad("SecretHash"))?;
    let slot = match K::rotation(&fields) {
        Some(_) => Some(
            entity
                .get("Slot")
                .and_then(Value::as_i32)
                .and_then(|s| u8::try_from(s).ok())
                .filter(|s| *s < MAX_ACTIVE_KEYS_PER_NAME)
                .ok_or_else(|| bad("Slot"))?,
        ),
        None => None,
    };
    Ok(Stored {
        record: Record {
            id,
            fields,
            created_at: date("CreatedAt").ok_or_else(|| bad("CreatedAt"))?,
            created_by: text("CreatedBy").ok_or_else(|| bad("CreatedBy"))?,
            expires_at: date("ExpiresAt"),
            revoked_at: date("RevokedAt"),
            revoked_by: text("RevokedBy"),
            last_used_at: date("LastUsedAt"),
        },
        hash,
        slot,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use bifrost_store::OrgId;
    use bifrost_store::table::SqliteTables;

    use super::*;
    use crate::auth::keys::{FUNCTION_KEYS_TABLE, FunctionKey, KEY_PREFIX};
    use crate::auth::workflow_keys::{WORKFLOW_KEY_PREFIX, WORKFLOW_KEYS_TABLE, WorkflowKey};

    const ID: &str = "0123456789abcdef";

    /// A row as the key stores wrote it before they were one table: the same names and types
    /// must read the same (keys already handed out keep working).
    async fn stored_row(
        store: &Arc<dyn TableStore>,
        table: &str,
        extra: &[(&str, Value)],
    ) -> (String, [u8; 32]) {
        let secret = [5u8; SECRET_BYTES];
        let hash: [u8; 32] = Sha256::digest(secret).into();
        let table = TableName::new(table).unwrap();
        store.create_table_if_missing(&table).await.unwrap();
        let mut props = Properties::new();
        props.insert("SecretHash".into(), format!("sha256:{}", hex(&hash)).into());
        let created = time::macros::datetime!(2025-01-01 00:00 UTC);
        props.insert("CreatedAt".into(), Value::DateTime(created));
        props.insert("CreatedBy".into(), "user:admin".into());
        for (name, value) in extra {
            props.insert((*name).into(), value.clone());
        }
        let mut entity = Entity::new(
            Scope::Global.partition_key(),
            RowKey::new(format!("key:{ID}")).unwrap(),
        );
        entity.properties = props;
        store.insert(&table, &entity).await.unwrap();
        (URL_SAFE_NO_PAD.encode(secret), hash)
    }

    fn store() -> (tempfile::TempDir, Arc<dyn TableStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TableStore> = Arc::new(SqliteTables::open(dir.path()).unwrap());
        (dir, store)
    }

    #[tokio::test]
    async fn function_key_rows_of_before_still_read() {
        let (_dir, store) = store();
        let (secret, _) = stored_row(
            &store,
            FUNCTION_KEYS_TABLE,
            &[
                ("Name", "ci".into()),
                ("Scope", "orgA".into()),
                ("Slot", Value::Int32(1)),
            ],
        )
        .await;
        let table = KeyTable::<FunctionKey>::new(store, Options::default()).unwrap();
        let id = Id::parse(ID).unwrap();
        let record = table.get(&id).await.unwrap().unwrap();
        assert_eq!(record.name, "ci");
        assert_eq!(record.scope, Scope::Org(OrgId::parse("orgA").unwrap()));
        assert_eq!(record.created_by, "user:admin");
        let raw = format!("{KEY_PREFIX}{ID}_{secret}");
        let verified = table.check(&raw, table.now()).await.unwrap();
        assert_eq!(verified.record, record);
        // Revocation frees slot 1 of (orgA, ci), the slot the row names.
        table.revoke(&id, "admin").await.unwrap();
        assert!(matches!(
            table.check(&raw, table.now()).await,
            Err(Refusal::Rejected(Rejection {
                reason: RejectReason::Revoked,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn workflow_key_rows_of_before_still_read() {
        let (_dir, store) = store();
        let (secret, _) = stored_row(
            &store,
            WORKFLOW_KEYS_TABLE,
            &[
                ("WorkflowName", "alpha".into()),
                ("DisableGlobalKey", Value::Boolean(true)),
                ("Description", "CI".into()),
            ],
        )
        .await;
        let table = KeyTable::<WorkflowKey>::new(store, Options::default()).unwrap();
        let id = Id::parse(ID).unwrap();
        let record = table.get(&id).await.unwrap().unwrap();
        assert_eq!(record.workflow_name.as_deref(), Some("alpha"));
        assert!(record.disable_global_key);
        assert_eq!(record.description.as_deref(), Some("CI"));
        let raw = format!("{WORKFLOW_KEY_PREFIX}{ID}_{secret}");
        assert!(table.check(&raw, table.now()).await.is_ok());
        // The other kind's prefix is not this kind's key.
        let wrong_kind = format!("{KEY_PREFIX}{ID}_{secret}");
        assert!(matches!(
            table.check(&wrong_kind, table.now()).await,
            Err(Refusal::Rejected(Rejection {
                reason: RejectReason::Malformed,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn unreadable_rows_name_the_property() {
        let (_dir, store) = store();
        stored_row(&store, FUNCTION_KEYS_TABLE, &[("Name", "ci".into())]).await;
        let table = KeyTable::<FunctionKey>::new(store, Options::default()).unwrap();
        let err = table.get(&Id::parse(ID).unwrap()).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("function key row key:0123456789abcdef has a missing or invalid Scope"),
            "{err}"
        );
    }
}

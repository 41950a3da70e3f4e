//! Workflow API keys: the `Authorization: Bearer wk_...` credentials of
//! `/api/endpoints/{workflowName}` (v1's `/workflow-keys`, bifrost-v1.md §3.1), for one workflow
//! or for every workflow (a "global" key), with v1's two defects fixed: expiry is checked, and
//! global keys are really refused by a workflow that opts out of them (its
//! `@workflow(disable_global_key=True)`, or an unrevoked key of that workflow created with
//! `disableGlobalKey`).
//!
//! Depends on the table contract only (no HTTP, no engine): the caller passes the workflow's
//! name and its decorator flag. Invariants:
//! - the raw key is never stored or logged: rows hold the SHA-256 of the 32 random secret bytes,
//!   compared in constant time (uniformly random secrets need no salt or stretching), as for
//!   function keys ([`crate::auth::keys`]);
//! - a raw key embeds its id (`wk_<16 hex id>_<43 char secret>`), so verification is one point
//!   read, and usually none (validated records are cached for [`WorkflowKeysOptions::cache_ttl`];
//!   a revocation on another instance takes effect there within that time, here at once);
//! - a caller learns *why* a key was refused (revoked, expired, other workflow, global keys
//!   disabled) only after proving possession of its secret; unknown ids, wrong secrets and
//!   malformed values all read `invalid workflow key`;
//! - `LastUsedAt` is written at most once per [`WorkflowKeysOptions::last_used_interval`] per key
//!   and instance, and a failed write never refuses a valid key.
//!
//! Table `WorkflowKeys`, all rows in partition `GLOBAL` (keys act in GLOBAL, as in v1), row
//! `key:<id>`: optional `WorkflowName` (absent = global key), `SecretHash` (`sha256:<hex>`),
//! `CreatedAt`, `CreatedBy`, `DisableGlobalKey`, optional `Description`, `ExpiresAt`,
//! `RevokedAt`, `RevokedBy`, `LastUsedAt`. (v1 kept these in `Config` as `workflowkey:{id}` and
//! `systemconfig:globalkey:{id}`; v1 keys cannot be carried over, they have no embedded id and
//! only their hash was stored.)

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bifrost_store::table::{
    Column, Entity, IfMatch, Properties, Query, ScopedTable, TableName, TableStore, Value,
    WriteMode, prop,
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

/// Every raw workflow key starts with this (v1's documented prefix), so leaked keys are
/// recognizable by secret scanners and never confused with function keys (`bfk_`).
pub const WORKFLOW_KEY_PREFIX: &str = "wk_";
/// The table holding workflow key records.
pub const WORKFLOW_KEYS_TABLE: &str = "WorkflowKeys";
/// Longest lifetime a key may be given at creation (ten years, as for function keys).
pub const MAX_EXPIRES_IN_DAYS: u32 = 3650;
/// Longest workflow name a key may name (the executions API's limit).
pub const MAX_WORKFLOW_NAME_LEN: usize = 256;
/// Longest description kept.
pub const MAX_DESCRIPTION_LEN: usize = 500;

#[cfg(test)]
const RAW_KEY_LEN: usize = WORKFLOW_KEY_PREFIX.len() + KEY_ID_LEN + 1 + raw_key::SECRET_LEN;
const MAX_ACTOR_LEN: usize = 256;
/// Bounded retries for id collisions and optimistic-concurrency loops.
const MAX_ATTEMPTS: usize = 16;

/// A workflow key's id: 16 lowercase hex characters (64 random bits; uniqueness is enforced by
/// insert-if-absent, so a collision only costs a retry).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkflowKeyId(String);

impl WorkflowKeyId {
    pub fn parse(value: &str) -> Result<Self, WorkflowKeyError> {
        if is_key_id(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(WorkflowKeyError::Invalid {
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

    /// The id runs are recorded with (`Caller::api_key(..)` → `api_key:wk_<id>`): the `wk_`
    /// marker keeps workflow-key runs apart from function-key runs (`api_key:<id>`).
    pub fn caller_id(&self) -> String {
        format!("{WORKFLOW_KEY_PREFIX}{}", self.0)
    }

    fn row_key(&self) -> Result<RowKey, StoreError> {
        RowKey::new(format!("key:{}", self.0))
    }
}

impl fmt::Display for WorkflowKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A raw workflow key, returned once by [`WorkflowKeys::create`]. `Debug` is redacted so it
/// cannot reach a log by accident; [`RawWorkflowKey::expose`] gives the value for the user.
#[derive(Clone, PartialEq, Eq)]
pub struct RawWorkflowKey(String);

impl RawWorkflowKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawWorkflowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawWorkflowKey(<redacted>)")
    }
}

/// What to create.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewWorkflowKey {
    /// `None`: a global key, valid for every workflow that accepts global keys.
    pub workflow_name: Option<String>,
    /// 1 to [`MAX_EXPIRES_IN_DAYS`], from now; `None` = never expires.
    pub expires_in_days: Option<u32>,
    pub description: Option<String>,
    /// Workflow keys only: while this key is unrevoked, its workflow refuses global keys.
    pub disable_global_key: bool,
}

/// A stored key's metadata (never its secret or hash).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowKeyRecord {
    pub id: WorkflowKeyId,
    /// `None` for a global key.
    pub workflow_name: Option<String>,
    pub description: Option<String>,
    pub disable_global_key: bool,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
    /// Updated at most once per [`WorkflowKeysOptions::last_used_interval`].
    pub last_used_at: Option<OffsetDateTime>,
}

impl WorkflowKeyRecord {
    pub fn is_global(&self) -> bool {
        self.workflow_name.is_none()
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// A key that was accepted for a workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowKeyPrincipal {
    pub key_id: WorkflowKeyId,
    /// `None` when a global key was used.
    pub workflow_name: Option<String>,
    /// True when this call recorded the key's last-used time (at most once per interval): the
    /// caller may audit the use only then, instead of on every request.
    pub usage_recorded: bool,
}

/// Why a key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkflowKeyRejectReason {
    /// Not `wk_<16 hex>_<43 base64url>`.
    Malformed,
    /// Well-formed, but no key has this id.
    UnknownKey,
    /// The id exists but the secret does not match its hash.
    WrongSecret,
    Revoked,
    Expired,
    /// A valid key of another workflow.
    OtherWorkflow,
    /// A valid global key, on a workflow that refuses global keys.
    GlobalKeysDisabled,
}

impl WorkflowKeyRejectReason {
    /// The audit log's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::WrongSecret => "wrong_secret",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::OtherWorkflow => "other_workflow",
            Self::GlobalKeysDisabled => "global_keys_disabled",
        }
    }

    /// True when the caller proved a valid key that does not cover this workflow (403); the
    /// others are bad credentials (401).
    pub fn is_forbidden(self) -> bool {
        matches!(self, Self::OtherWorkflow | Self::GlobalKeysDisabled)
    }
}

/// A refused key. `Display` is the caller-facing message: precise only once the secret matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowKeyRejection {
    pub reason: WorkflowKeyRejectReason,
    /// The id the key claimed, when it was well-formed (safe to audit).
    pub key_id: Option<WorkflowKeyId>,
    /// The workflow that was called.
    pub workflow: String,
}

impl fmt::Display for WorkflowKeyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            WorkflowKeyRejectReason::Malformed
            | WorkflowKeyRejectReason::UnknownKey
            | WorkflowKeyRejectReason::WrongSecret => f.write_str("invalid workflow key"),
            WorkflowKeyRejectReason::Revoked => f.write_str("this workflow key has been revoked"),
            WorkflowKeyRejectReason::Expired => f.write_str("this workflow key has expired"),
            WorkflowKeyRejectReason::OtherWorkflow => write!(
                f,
                "this workflow key is not valid for workflow '{}'",
                self.workflow
            ),
            WorkflowKeyRejectReason::GlobalKeysDisabled => write!(
                f,
                "workflow '{}' does not accept global keys; use a key created for this workflow",
                self.workflow
            ),
        }
    }
}

/// Why [`WorkflowKeys::verify`] did not accept a key.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowKeyAuthError {
    #[error("{0}")]
    Rejected(WorkflowKeyRejection),
    /// The key store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors of key management (create, list, revoke).
#[derive(Debug, thiserror::Error)]
pub enum WorkflowKeyError {
    /// `field` uses this module's names (`workflow_name`, `expires_in_days`, `description`,
    /// `disable_global_key`, `created_by`, `revoked_by`, `id`); the HTTP layer renames them.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    #[error("workflow key {id} not found")]
    NotFound { id: WorkflowKeyId },

    #[error("workflow key {id} is already revoked")]
    AlreadyRevoked { id: WorkflowKeyId },

    #[error("workflow key {what} kept changing under concurrent writers; try again")]
    Contention { what: String },

    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Tuning of [`WorkflowKeys`].
#[derive(Clone, Debug)]
pub struct WorkflowKeysOptions {
    /// How long a validated key record, and a workflow's "global keys disabled by a key" answer,
    /// are reused without a read.
    pub cache_ttl: Duration,
    /// Minimum time between two `LastUsedAt` writes for one key.
    pub last_used_interval: Duration,
    pub clock: Clock,
}

impl Default for WorkflowKeysOptions {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(30),
            last_used_interval: Duration::from_secs(60),
            clock: Clock::default(),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive); `None`
/// for another scheme or a blank token.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The workflow-key service. One per process; share it behind an `Arc`.
pub struct WorkflowKeys {
    table: ScopedTable,
    options: WorkflowKeysOptions,
    cache: RwLock<HashMap<String, Arc<CachedKey>>>,
    /// Workflow name → (an unrevoked key of it has `DisableGlobalKey`, when read).
    policies: RwLock<HashMap<String, (bool, Instant)>>,
}

impl fmt::Debug for WorkflowKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowKeys")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

struct CachedKey {
    record: WorkflowKeyRecord,
    hash: [u8; 32],
    fetched: Instant,
    /// Unix seconds of the last `LastUsedAt` write (or the stored value), claimed by CAS so
    /// concurrent requests write it once.
    last_used_mark: AtomicI64,
}

impl WorkflowKeys {
    /// Opens the service over `store`, creating the table if missing.
    pub async fn open(
        store: Arc<dyn TableStore>,
        options: WorkflowKeysOptions,
    ) -> Result<Self, WorkflowKeyError> {
        let keys = Self::new(store, options)?;
        keys.ensure_table().await?;
        Ok(keys)
    }

    /// The service without touching storage (start-up must not need storage to be reachable);
    /// call [`WorkflowKeys::ensure_table`] before first use.
    pub fn new(
        store: Arc<dyn TableStore>,
        options: WorkflowKeysOptions,
    ) -> Result<Self, WorkflowKeyError> {
        let name = TableName::new(WORKFLOW_KEYS_TABLE)?;
        Ok(Self {
            table: ScopedTable::new(store, name, &Scope::Global),
            options,
            cache: RwLock::new(HashMap::new()),
            policies: RwLock::new(HashMap::new()),
        })
    }

    pub async fn ensure_table(&self) -> Result<(), WorkflowKeyError> {
        Ok(self
            .table
            .store()
            .create_table_if_missing(self.table.table())
            .await?)
    }

    /// Creates a key. Returns its record and the raw key, which is not stored and cannot be
    /// shown again. Whether the named workflow exists is the caller's check (this layer does
    /// not know the workspace).
    pub async fn create(
        &self,
        new: NewWorkflowKey,
        created_by: &str,
    ) -> Result<(WorkflowKeyRecord, RawWorkflowKey), WorkflowKeyError> {
        if let Some(name) = &new.workflow_name {
            validate_workflow_name(name)?;
        } else if new.disable_global_key {
            return Err(WorkflowKeyError::Invalid {
                field: "disable_global_key",
                reason: "applies only to a key for one workflow (name the workflow)".into(),
            });
        }
        validate_actor("created_by", created_by)?;
        let description = validate_description(new.description.as_deref())?;
        let now = truncate_micros(self.options.clock.now());
        let expires_at = match new.expires_in_days {
            None => None,
            Some(days) if (1..=MAX_EXPIRES_IN_DAYS).contains(&days) => {
                Some(now + time::Duration::days(i64::from(days)))
            }
            Some(_) => {
                return Err(WorkflowKeyError::Invalid {
                    field: "expires_in_days",
                    reason: format!("must be a whole number from 1 to {MAX_EXPIRES_IN_DAYS}"),
                });
            }
        };
        let mut secret = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let hash: [u8; 32] = Sha256::digest(secret).into();
        let secret_text = URL_SAFE_NO_PAD.encode(secret);

        for _ in 0..MAX_ATTEMPTS {
            let record = WorkflowKeyRecord {
                id: WorkflowKeyId::generate(),
                workflow_name: new.workflow_name.clone(),
                description: description.clone(),
                disable_global_key: new.disable_global_key,
                created_at: now,
                created_by: created_by.to_owned(),
                expires_at,
                revoked_at: None,
                revoked_by: None,
                last_used_at: None,
            };
            match self
                .table
                .insert(record.id.row_key()?, key_properties(&record, &hash))
                .await
            {
                Ok(_) => {
                    if record.disable_global_key {
                        self.forget_policies();
                    }
                    let raw = format!("{WORKFLOW_KEY_PREFIX}{}_{secret_text}", record.id);
                    return Ok((record, RawWorkflowKey(raw)));
                }
                // The generated id is taken: try again with a fresh one.
                Err(StoreError::AlreadyExists { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Err(WorkflowKeyError::Contention {
            what: "id generation".into(),
        })
    }

    /// Checks a raw key for a call to `workflow`: format, existence, secret, revocation, expiry,
    /// then whether it covers the workflow. `workflow_disables_global` is the workflow's
    /// `disable_global_key` decorator flag.
    pub async fn verify(
        &self,
        raw: &str,
        workflow: &str,
        workflow_disables_global: bool,
    ) -> Result<WorkflowKeyPrincipal, WorkflowKeyAuthError> {
        let reject = |reason, key_id: Option<&str>| {
            WorkflowKeyAuthError::Rejected(WorkflowKeyRejection {
                reason,
                key_id: key_id.map(|id| WorkflowKeyId(id.to_owned())),
                workflow: workflow.to_owned(),
            })
        };
        let Some((id, secret)) = split_raw_key(raw) else {
            return Err(reject(WorkflowKeyRejectReason::Malformed, None));
        };
        let cached = match self.cached(id) {
            Some(cached) => cached,
            None => {
                let key_id = WorkflowKeyId(id.to_owned());
                let Some((record, hash)) = self.read(&key_id).await? else {
                    return Err(reject(WorkflowKeyRejectReason::UnknownKey, Some(id)));
                };
                self.remember(record, hash)
            }
        };
        let presented: [u8; 32] = Sha256::digest(secret).into();
        if !bool::from(presented.ct_eq(&cached.hash)) {
            return Err(reject(WorkflowKeyRejectReason::WrongSecret, Some(id)));
        }
        let now = self.options.clock.now();
        if cached.record.is_revoked() {
            return Err(reject(WorkflowKeyRejectReason::Revoked, Some(id)));
        }
        if cached.record.is_expired(now) {
            return Err(reject(WorkflowKeyRejectReason::Expired, Some(id)));
        }
        match &cached.record.workflow_name {
            Some(name) if name != workflow => {
                return Err(reject(WorkflowKeyRejectReason::OtherWorkflow, Some(id)));
            }
            Some(_) => {}
            None => {
                if workflow_disables_global || self.keys_disable_global(workflow).await? {
                    return Err(reject(
                        WorkflowKeyRejectReason::GlobalKeysDisabled,
                        Some(id),
                    ));
                }
            }
        }
        let usage_recorded = self.record_use(&cached, now).await;
        Ok(WorkflowKeyPrincipal {
            key_id: cached.record.id.clone(),
            workflow_name: cached.record.workflow_name.clone(),
            usage_recorded,
        })
    }

    /// True when an unrevoked key of `workflow` was created with `disableGlobalKey`. Expiry
    /// does not lift it: only an explicit revocation turns global keys back on.
    async fn keys_disable_global(&self, workflow: &str) -> Result<bool, StoreError> {
        {
            let policies = self.policies.read().unwrap_or_else(|p| p.into_inner());
            if let Some((disabled, at)) = policies.get(workflow)
                && at.elapsed() < self.options.cache_ttl
            {
                return Ok(*disabled);
            }
        }
        let filter = key_rows()
            .and(prop("WorkflowName").eq(workflow))
            .and(prop("DisableGlobalKey").eq(true));
        let rows = self.table.query_all(&Query::new().filter(filter)).await?;
        let disabled = rows.iter().any(|row| row.get("RevokedAt").is_none());
        let mut policies = self.policies.write().unwrap_or_else(|p| p.into_inner());
        // Callers only ask for workflows that exist, so the map is bounded by the workspace;
        // stale entries are dropped on insert anyway.
        let ttl = self.options.cache_ttl;
        policies.retain(|_, (_, at)| at.elapsed() < ttl);
        policies.insert(workflow.to_owned(), (disabled, Instant::now()));
        Ok(disabled)
    }

    fn forget_policies(&self) {
        self.policies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn cached(&self, id: &str) -> Option<Arc<CachedKey>> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache
            .get(id)
            .filter(|c| c.fetched.elapsed() < self.options.cache_ttl)
            .cloned()
    }

    fn remember(&self, record: WorkflowKeyRecord, hash: [u8; 32]) -> Arc<CachedKey> {
        let mark = record
            .last_used_at
            .map_or(i64::MIN, OffsetDateTime::unix_timestamp);
        let entry = Arc::new(CachedKey {
            record,
            hash,
            fetched: Instant::now(),
            last_used_mark: AtomicI64::new(mark),
        });
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        // Only ids that exist get here, so the map is bounded by the number of stored keys.
        let ttl = self.options.cache_ttl;
        cache.retain(|_, c| c.fetched.elapsed() < ttl);
        cache.insert(entry.record.id.0.clone(), entry.clone());
        entry
    }

    fn forget(&self, id: &WorkflowKeyId) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.remove(id.as_str());
    }

    /// Writes `LastUsedAt` if the interval has passed; never fails the request.
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
        // `IfMatch::Any` on an existing row: a key deleted behind our back is not re-created
        // (update fails with NotFound), and a concurrent revocation's fields are kept (merge).
        match self
            .table
            .update(row_key, props, WriteMode::Merge, &IfMatch::Any)
            .await
        {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(key_id = %cached.record.id, error = %err, "could not record workflow key use");
                false
            }
        }
    }

    /// The key's record, read from storage (not the cache).
    pub async fn get(
        &self,
        id: &WorkflowKeyId,
    ) -> Result<Option<WorkflowKeyRecord>, WorkflowKeyError> {
        Ok(self.read(id).await?.map(|(record, _)| record))
    }

    async fn read(
        &self,
        id: &WorkflowKeyId,
    ) -> Result<Option<(WorkflowKeyRecord, [u8; 32])>, StoreError> {
        match self.table.get(&id.row_key()?).await? {
            Some(entity) => parse_key_entity(&entity).map(Some),
            None => Ok(None),
        }
    }

    /// Every key (revoked and expired ones included), or only the keys of one workflow, oldest
    /// first.
    pub async fn list(
        &self,
        workflow: Option<&str>,
    ) -> Result<Vec<WorkflowKeyRecord>, WorkflowKeyError> {
        let filter = match workflow {
            Some(name) => key_rows().and(prop("WorkflowName").eq(name)),
            None => key_rows(),
        };
        let rows = self.table.query_all(&Query::new().filter(filter)).await?;
        let mut records = rows
            .iter()
            .map(|e| parse_key_entity(e).map(|(record, _)| record))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(records)
    }

    /// Revokes a key. Takes effect on this instance at once and on others within
    /// [`WorkflowKeysOptions::cache_ttl`].
    pub async fn revoke(
        &self,
        id: &WorkflowKeyId,
        revoked_by: &str,
    ) -> Result<WorkflowKeyRecord, WorkflowKeyError> {
        validate_actor("revoked_by", revoked_by)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some(entity) = self.table.get(&id.row_key()?).await? else {
                return Err(WorkflowKeyError::NotFound { id: id.clone() });
            };
            let (mut record, _) = parse_key_entity(&entity)?;
            if record.is_revoked() {
                self.forget(id);
                return Err(WorkflowKeyError::AlreadyRevoked { id: id.clone() });
            }
            let now = truncate_micros(self.options.clock.now());
            let mut props = Properties::new();
            props.insert("RevokedAt".into(), Value::DateTime(now));
            props.insert("RevokedBy".into(), revoked_by.into());
            let if_match = entity.etag.map(IfMatch::ETag).unwrap_or(IfMatch::Any);
            match self
                .table
                .update(id.row_key()?, props, WriteMode::Merge, &if_match)
                .await
            {
                Ok(_) => {
                    self.forget(id);
                    if record.disable_global_key {
                        self.forget_policies();
                    }
                    record.revoked_at = Some(now);
                    record.revoked_by = Some(revoked_by.to_owned());
                    return Ok(record);
                }
                // A concurrent write (a last-used update, another revocation): read again.
                Err(StoreError::PreconditionFailed { .. }) => {}
                Err(StoreError::NotFound { .. }) => {
                    return Err(WorkflowKeyError::NotFound { id: id.clone() });
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(WorkflowKeyError::Contention {
            what: id.to_string(),
        })
    }
}

fn key_rows() -> bifrost_store::table::Filter {
    Column::RowKey.ge("key:").and(Column::RowKey.lt("key;"))
}

/// `wk_<id>_<secret>` → (id, 32 secret bytes).
fn split_raw_key(raw: &str) -> Option<(&str, [u8; SECRET_BYTES])> {
    raw_key::split(WORKFLOW_KEY_PREFIX, raw)
}

fn validate_workflow_name(name: &str) -> Result<(), WorkflowKeyError> {
    let invalid = |reason: String| WorkflowKeyError::Invalid {
        field: "workflow_name",
        reason,
    };
    if name.trim().is_empty() {
        return Err(invalid(
            "must not be empty (omit it for a global key)".into(),
        ));
    }
    if name.chars().count() > MAX_WORKFLOW_NAME_LEN {
        return Err(invalid(format!(
            "must be at most {MAX_WORKFLOW_NAME_LEN} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters".into()));
    }
    Ok(())
}

/// Blank descriptions are dropped.
fn validate_description(text: Option<&str>) -> Result<Option<String>, WorkflowKeyError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(WorkflowKeyError::Invalid {
            field: "description",
            reason: format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
        });
    }
    Ok(Some(text.to_owned()))
}

fn validate_actor(field: &'static str, value: &str) -> Result<(), WorkflowKeyError> {
    if value.trim().is_empty() || value.chars().count() > MAX_ACTOR_LEN {
        return Err(WorkflowKeyError::Invalid {
            field,
            reason: format!("must be 1 to {MAX_ACTOR_LEN} characters"),
        });
    }
    Ok(())
}

fn key_properties(record: &WorkflowKeyRecord, hash: &[u8; 32]) -> Properties {
    let mut p = Properties::new();
    if let Some(name) = &record.workflow_name {
        p.insert("WorkflowName".into(), name.as_str().into());
    }
    p.insert(
        "SecretHash".into(),
        format!("{HASH_SCHEME}{}", hex(hash)).into(),
    );
    p.insert("CreatedAt".into(), Value::DateTime(record.created_at));
    p.insert("CreatedBy".into(), record.created_by.as_str().into());
    p.insert(
        "DisableGlobalKey".into(),
        Value::Boolean(record.disable_global_key),
    );
    if let Some(text) = &record.description {
        p.insert("Description".into(), text.as_str().into());
    }
    if let Some(at) = record.expires_at {
        p.insert("ExpiresAt".into(), Value::DateTime(at));
    }
    p
}

fn parse_key_entity(entity: &Entity) -> Result<(WorkflowKeyRecord, [u8; 32]), StoreError> {
    let bad = |field: &str| {
        StoreError::Backend(format!(
            "workflow key row {} has a missing or invalid {field}",
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
        .map(|id| WorkflowKeyId(id.to_owned()))
        .ok_or_else(|| bad("RowKey"))?;
    let hash = text("SecretHash")
        .as_deref()
        .and_then(|h| h.strip_prefix(HASH_SCHEME))
        .and_then(unhex32)
        .ok_or_else(|| bad("SecretHash"))?;
    let record = WorkflowKeyRecord {
        id,
        workflow_name: text("WorkflowName"),
        description: text("Description"),
        disable_global_key: entity
            .get("DisableGlobalKey")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        created_at: date("CreatedAt").ok_or_else(|| bad("CreatedAt"))?,
        created_by: text("CreatedBy").ok_or_else(|| bad("CreatedBy"))?,
        expires_at: date("ExpiresAt"),
        revoked_at: date("RevokedAt"),
        revoked_by: text("RevokedBy"),
        last_used_at: date("LastUsedAt"),
    };
    Ok((record, hash))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Mutex;

    use bifrost_store::table::SqliteTables;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn TableStore>,
        keys: WorkflowKeys,
        now: Arc<Mutex<OffsetDateTime>>,
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn TableStore> = Arc::new(SqliteTables::open(dir.path()).unwrap());
            let now = Arc::new(Mutex::new(time::macros::datetime!(2025-06-01 12:00 UTC)));
            let keys = WorkflowKeys::open(store.clone(), options(&now, Duration::from_secs(30)))
                .await
                .unwrap();
            Self {
                _dir: dir,
                store,
                keys,
                now,
            }
        }

        async fn another_instance(&self, cache_ttl: Duration) -> WorkflowKeys {
            WorkflowKeys::open(self.store.clone(), options(&self.now, cache_ttl))
                .await
                .unwrap()
        }

        fn advance(&self, by: time::Duration) {
            *self.now.lock().unwrap() += by;
        }

        fn now(&self) -> OffsetDateTime {
            *self.now.lock().unwrap()
        }

        async fn create(&self, new: NewWorkflowKey) -> (WorkflowKeyRecord, String) {
            let (record, raw) = self.keys.create(new, "user:admin").await.unwrap();
            (record, raw.expose().to_owned())
        }
    }

    fn options(now: &Arc<Mutex<OffsetDateTime>>, cache_ttl: Duration) -> WorkflowKeysOptions {
        let now = now.clone();
        WorkflowKeysOptions {
            cache_ttl,
            last_used_interval: Duration::from_secs(60),
            clock: Clock::new(move || *now.lock().unwrap()),
        }
    }

    fn for_workflow(name: &str) -> NewWorkflowKey {
        NewWorkflowKey {
            workflow_name: Some(name.into()),
            ..Default::default()
        }
    }

    fn rejection(
        result: Result<WorkflowKeyPrincipal, WorkflowKeyAuthError>,
    ) -> WorkflowKeyRejection {
        match result {
            Err(WorkflowKeyAuthError::Rejected(r)) => r,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn reason(
        result: Result<WorkflowKeyPrincipal, WorkflowKeyAuthError>,
    ) -> WorkflowKeyRejectReason {
        rejection(result).reason
    }

    #[test]
    fn bearer_tokens_are_parsed_from_the_authorization_header() {
        assert_eq!(bearer_token(Some("Bearer wk_abc")), Some("wk_abc"));
        assert_eq!(bearer_token(Some("bearer   wk_abc  ")), Some("wk_abc"));
        assert_eq!(bearer_token(Some("BEARER\twk_abc")), Some("wk_abc"));
        assert_eq!(bearer_token(Some("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(Some("wk_abc")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn raw_keys_parse_only_in_their_canonical_form() {
        let secret = URL_SAFE_NO_PAD.encode([9u8; SECRET_BYTES]);
        let good = format!("wk_0123456789abcdef_{secret}");
        assert_eq!(good.len(), RAW_KEY_LEN);
        let (id, bytes) = split_raw_key(&good).unwrap();
        assert_eq!(id, "0123456789abcdef");
        assert_eq!(bytes, [9u8; SECRET_BYTES]);
        // The 43rd character carries 4 bits of the 32 bytes; flipping its lowest bit spells
        // the same bytes non-canonically.
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = good.chars().last().unwrap();
        let index = ALPHABET.find(last).unwrap() ^ 1;
        let mut non_canonical = good[..good.len() - 1].to_owned();
        non_canonical.push(ALPHABET.as_bytes()[index] as char);
        for bad in [
            String::new(),
            "wk_".into(),
            good.replacen("wk_", "bfk", 1),
            good.to_uppercase(),
            format!("{good}A"),
            good[..good.len() - 1].to_owned(),
            good.replacen("0123456789abcdef_", "0123456789abcdeg_", 1),
            good.replacen("f_", "f-", 1),
            non_canonical,
            "é".repeat(RAW_KEY_LEN / 2),
        ] {
            if bad != good {
                assert!(split_raw_key(&bad).is_none(), "{bad:?}");
            }
        }
    }

    #[test]
    fn hashes_round_trip_and_ids_are_checked() {
        let hash: [u8; 32] = Sha256::digest(b"x").into();
        assert_eq!(unhex32(&hex(&hash)), Some(hash));
        assert_eq!(unhex32("zz"), None);
        assert_eq!(unhex32(&"g".repeat(64)), None);
        assert!(WorkflowKeyId::parse("0123456789abcdef").is_ok());
        for bad in [
            "",
            "0123456789ABCDEF",
            "0123456789abcde",
            "0123456789abcdef0",
        ] {
            assert!(WorkflowKeyId::parse(bad).is_err(), "{bad}");
        }
        let id = WorkflowKeyId::parse("0123456789abcdef").unwrap();
        assert_eq!(id.caller_id(), "wk_0123456789abcdef");
    }

    #[tokio::test]
    async fn a_workflow_key_opens_its_workflow_only() {
        let f = Fixture::new().await;
        let (record, raw) = f.create(for_workflow("alpha")).await;
        assert!(raw.starts_with(WORKFLOW_KEY_PREFIX));
        assert_eq!(raw.len(), RAW_KEY_LEN);
        let ok = f.keys.verify(&raw, "alpha", false).await.unwrap();
        assert_eq!(ok.key_id, record.id);
        assert_eq!(ok.workflow_name.as_deref(), Some("alpha"));
        // The decorator's flag concerns global keys only.
        assert!(f.keys.verify(&raw, "alpha", true).await.is_ok());
        let refused = rejection(f.keys.verify(&raw, "beta", false).await);
        assert_eq!(refused.reason, WorkflowKeyRejectReason::OtherWorkflow);
        assert!(refused.reason.is_forbidden());
        assert_eq!(refused.key_id, Some(record.id));
        assert_eq!(
            refused.to_string(),
            "this workflow key is not valid for workflow 'beta'"
        );
    }

    #[tokio::test]
    async fn global_keys_respect_the_decorator_and_per_key_opt_outs() {
        let f = Fixture::new().await;
        let (_, global) = f.create(NewWorkflowKey::default()).await;
        assert!(
            f.keys
                .verify(&global, "alpha", false)
                .await
                .unwrap()
                .workflow_name
                .is_none()
        );
        // @workflow(disable_global_key=True)
        let refused = rejection(f.keys.verify(&global, "alpha", true).await);
        assert_eq!(refused.reason, WorkflowKeyRejectReason::GlobalKeysDisabled);
        assert!(refused.to_string().contains("does not accept global keys"));
        // A key of "beta" created with disableGlobalKey turns global keys off for beta only.
        let (opt_out, _) = f
            .create(NewWorkflowKey {
                workflow_name: Some("beta".into()),
                disable_global_key: true,
                expires_in_days: Some(1),
                ..Default::default()
            })
            .await;
        assert_eq!(
            reason(f.keys.verify(&global, "beta", false).await),
            WorkflowKeyRejectReason::GlobalKeysDisabled
        );
        assert!(f.keys.verify(&global, "alpha", false).await.is_ok());
        // Expiry of the opting-out key does not lift it (seen by an uncached instance too);
        // revocation does.
        f.advance(time::Duration::days(2));
        let uncached = f.another_instance(Duration::ZERO).await;
        assert_eq!(
            reason(uncached.verify(&global, "beta", false).await),
            WorkflowKeyRejectReason::GlobalKeysDisabled
        );
        f.keys.revoke(&opt_out.id, "user:admin").await.unwrap();
        assert!(f.keys.verify(&global, "beta", false).await.is_ok());
        // A global key cannot carry the flag.
        let err = f
            .keys
            .create(
                NewWorkflowKey {
                    disable_global_key: true,
                    ..Default::default()
                },
                "admin",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                WorkflowKeyError::Invalid {
                    field: "disable_global_key",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn another_instance_sees_a_new_opt_out_after_its_cache_ttl() {
        let f = Fixture::new().await;
        let (_, global) = f.create(NewWorkflowKey::default()).await;
        let other = f.another_instance(Duration::ZERO).await;
        assert!(other.verify(&global, "beta", false).await.is_ok());
        f.create(NewWorkflowKey {
            workflow_name: Some("beta".into()),
            disable_global_key: true,
            ..Default::default()
        })
        .await;
        assert_eq!(
            reason(other.verify(&global, "beta", false).await),
            WorkflowKeyRejectReason::GlobalKeysDisabled
        );
    }

    #[tokio::test]
    async fn expired_keys_are_refused() {
        let f = Fixture::new().await;
        let (record, raw) = f
            .create(NewWorkflowKey {
                workflow_name: Some("alpha".into()),
                expires_in_days: Some(1),
                ..Default::default()
            })
            .await;
        assert_eq!(record.expires_at, Some(f.now() + time::Duration::days(1)));
        assert!(f.keys.verify(&raw, "alpha", false).await.is_ok());
        f.advance(time::Duration::days(1) - time::Duration::seconds(1));
        assert!(f.keys.verify(&raw, "alpha", false).await.is_ok());
        f.advance(time::Duration::seconds(1));
        let refused = rejection(f.keys.verify(&raw, "alpha", false).await);
        assert_eq!(refused.reason, WorkflowKeyRejectReason::Expired);
        assert!(!refused.reason.is_forbidden());
        assert_eq!(refused.to_string(), "this workflow key has expired");
        // Global keys expire too.
        let (_, global) = f
            .create(NewWorkflowKey {
                expires_in_days: Some(MAX_EXPIRES_IN_DAYS),
                ..Default::default()
            })
            .await;
        assert!(f.keys.verify(&global, "alpha", false).await.is_ok());
        f.advance(time::Duration::days(i64::from(MAX_EXPIRES_IN_DAYS)));
        assert_eq!(
            reason(f.keys.verify(&global, "alpha", false).await),
            WorkflowKeyRejectReason::Expired
        );
        for days in [0, MAX_EXPIRES_IN_DAYS + 1] {
            let err = f
                .keys
                .create(
                    NewWorkflowKey {
                        expires_in_days: Some(days),
                        ..Default::default()
                    },
                    "admin",
                )
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    WorkflowKeyError::Invalid {
                        field: "expires_in_days",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn revocation_takes_effect_at_once_here_and_after_the_ttl_elsewhere() {
        let f = Fixture::new().await;
        let (record, raw) = f.create(for_workflow("alpha")).await;
        let long_cache = f.another_instance(Duration::from_secs(3600)).await;
        let no_cache = f.another_instance(Duration::ZERO).await;
        f.keys.verify(&raw, "alpha", false).await.unwrap();
        long_cache.verify(&raw, "alpha", false).await.unwrap();
        let revoked = f.keys.revoke(&record.id, "user:admin").await.unwrap();
        assert_eq!(revoked.revoked_at, Some(f.now()));
        assert_eq!(revoked.revoked_by.as_deref(), Some("user:admin"));
        let refused = rejection(f.keys.verify(&raw, "alpha", false).await);
        assert_eq!(refused.reason, WorkflowKeyRejectReason::Revoked);
        assert_eq!(refused.to_string(), "this workflow key has been revoked");
        assert_eq!(
            reason(no_cache.verify(&raw, "alpha", false).await),
            WorkflowKeyRejectReason::Revoked
        );
        // The documented trade-off: another instance keeps a validated key for its cache TTL.
        assert!(long_cache.verify(&raw, "alpha", false).await.is_ok());
        assert!(matches!(
            f.keys.revoke(&record.id, "admin").await,
            Err(WorkflowKeyError::AlreadyRevoked { .. })
        ));
        let missing = WorkflowKeyId::parse("00000000000000ff").unwrap();
        assert!(matches!(
            f.keys.revoke(&missing, "admin").await,
            Err(WorkflowKeyError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn bad_credentials_all_read_invalid_key() {
        let f = Fixture::new().await;
        let (record, raw) = f.create(for_workflow("alpha")).await;
        let secret_part = &raw[WORKFLOW_KEY_PREFIX.len() + KEY_ID_LEN + 1..];
        let unknown = format!("wk_{}_{secret_part}", "0".repeat(KEY_ID_LEN));
        let wrong = format!(
            "wk_{}_{}",
            record.id,
            URL_SAFE_NO_PAD.encode([7u8; SECRET_BYTES])
        );
        let cases = [
            ("not-a-key", WorkflowKeyRejectReason::Malformed),
            (unknown.as_str(), WorkflowKeyRejectReason::UnknownKey),
            (wrong.as_str(), WorkflowKeyRejectReason::WrongSecret),
        ];
        for (value, expected) in cases {
            // Even on another workflow: a key that was not proven says nothing more.
            let refused = rejection(f.keys.verify(value, "beta", false).await);
            assert_eq!(refused.reason, expected, "{value}");
            assert_eq!(refused.to_string(), "invalid workflow key");
            assert!(!refused.reason.is_forbidden());
        }
        assert_eq!(
            rejection(f.keys.verify(&wrong, "alpha", false).await).key_id,
            Some(record.id)
        );
    }

    #[tokio::test]
    async fn last_used_is_written_at_most_once_per_interval() {
        let f = Fixture::new().await;
        let (record, raw) = f.create(for_workflow("alpha")).await;
        let first_use = f.now();
        assert!(
            f.keys
                .verify(&raw, "alpha", false)
                .await
                .unwrap()
                .usage_recorded
        );
        f.advance(time::Duration::seconds(59));
        assert!(
            !f.keys
                .verify(&raw, "alpha", false)
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
                .verify(&raw, "alpha", false)
                .await
                .unwrap()
                .usage_recorded
        );
        assert_eq!(
            f.keys.get(&record.id).await.unwrap().unwrap().last_used_at,
            Some(f.now())
        );
        // Refused calls are not "uses".
        f.advance(time::Duration::minutes(5));
        let before = f.keys.get(&record.id).await.unwrap().unwrap().last_used_at;
        assert!(f.keys.verify(&raw, "beta", false).await.is_err());
        assert_eq!(
            f.keys.get(&record.id).await.unwrap().unwrap().last_used_at,
            before
        );
        // A fresh instance starts from the stored time, not from "never used".
        f.advance(time::Duration::seconds(-299));
        let other = f.another_instance(Duration::from_secs(30)).await;
        assert!(
            !other
                .verify(&raw, "alpha", false)
                .await
                .unwrap()
                .usage_recorded
        );
    }

    #[tokio::test]
    async fn list_filters_by_workflow_and_never_holds_secrets() {
        let f = Fixture::new().await;
        let (a, raw_a) = f
            .create(NewWorkflowKey {
                workflow_name: Some("alpha".into()),
                description: Some("  CI runner  ".into()),
                ..Default::default()
            })
            .await;
        f.advance(time::Duration::seconds(1));
        let (g, _) = f.create(NewWorkflowKey::default()).await;
        f.advance(time::Duration::seconds(1));
        let (b, _) = f.create(for_workflow("beta")).await;
        f.keys.revoke(&b.id, "admin").await.unwrap();
        let ids =
            |records: Vec<WorkflowKeyRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(f.keys.list(None).await.unwrap()),
            vec![a.id.clone(), g.id.clone(), b.id.clone()]
        );
        assert_eq!(
            ids(f.keys.list(Some("alpha")).await.unwrap()),
            vec![a.id.clone()]
        );
        assert!(f.keys.list(Some("gamma")).await.unwrap().is_empty());
        let listed = f.keys.list(None).await.unwrap();
        assert_eq!(listed[0].description.as_deref(), Some("CI runner"));
        assert!(listed[1].is_global());
        assert!(listed[2].is_revoked());
        assert!(
            !format!("{listed:?}").contains(&raw_a[WORKFLOW_KEY_PREFIX.len() + KEY_ID_LEN + 1..])
        );
        // The stored row holds the hash of the secret, not the key.
        let table = TableName::new(WORKFLOW_KEYS_TABLE).unwrap();
        let row = f
            .store
            .get(
                &table,
                &Scope::Global.partition_key(),
                &a.id.row_key().unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        let stored = format!("{:?}", row.properties);
        assert!(!stored.contains(&raw_a[WORKFLOW_KEY_PREFIX.len() + KEY_ID_LEN + 1..]));
        let secret = URL_SAFE_NO_PAD
            .decode(&raw_a[WORKFLOW_KEY_PREFIX.len() + KEY_ID_LEN + 1..])
            .unwrap();
        let expected = format!("{HASH_SCHEME}{}", hex(&Sha256::digest(secret)));
        assert_eq!(
            row.get("SecretHash").and_then(Value::as_str),
            Some(expected.as_str())
        );
    }

    #[tokio::test]
    async fn bad_input_names_the_field() {
        let f = Fixture::new().await;
        let long = "n".repeat(MAX_WORKFLOW_NAME_LEN + 1);
        let long_text = "d".repeat(MAX_DESCRIPTION_LEN + 1);
        let cases: Vec<(NewWorkflowKey, &str, &str)> = vec![
            (for_workflow(""), "admin", "workflow_name"),
            (for_workflow("  "), "admin", "workflow_name"),
            (for_workflow(&long), "admin", "workflow_name"),
            (for_workflow("a\nb"), "admin", "workflow_name"),
            (
                NewWorkflowKey {
                    description: Some(long_text),
                    ..Default::default()
                },
                "admin",
                "description",
            ),
            (for_workflow("ok"), " ", "created_by"),
        ];
        for (new, by, field) in cases {
            let err = f.keys.create(new.clone(), by).await.unwrap_err();
            assert!(
                matches!(&err, WorkflowKeyError::Invalid { field: got, .. } if *got == field),
                "{new:?}: {err:?}"
            );
        }
        let debug = format!(
            "{:?}",
            f.keys.create(for_workflow("ok"), "admin").await.unwrap().1
        );
        assert_eq!(debug, "RawWorkflowKey(<redacted>)");
    }
}

//! Workflow API keys: the `Authorization: Bearer wk_...` credentials of
//! `/api/endpoints/{workflowName}` (v1's `/workflow-keys`, bifrost-v1.md §3.1), for one workflow
//! or for every workflow (a "global" key), with v1's two defects fixed: expiry is checked, and
//! global keys are really refused by a workflow that opts out of them (its
//! `@workflow(disable_global_key=True)`, or an unrevoked key of that workflow created with
//! `disableGlobalKey`).
//!
//! A workflow key is a [`KeyTable`] kind ([`WorkflowKey`]), like function keys
//! ([`crate::auth::keys`]): hashing, the one-read lookup by embedded id, the cache of validated
//! keys ([`WorkflowKeysOptions::cache_ttl`]), expiry, revocation and last-used bookkeeping are
//! the table's. This module adds what is a workflow key's own: the workflow it opens (none for
//! a global key), its description, the per-key opt-out of global keys (cached per workflow for
//! the same TTL), lifetimes in days, and what a refused caller is told.
//!
//! Depends on the table contract only (no HTTP, no engine): the caller passes the workflow's
//! name and its decorator flag. Invariants:
//! - a caller learns *why* a key was refused (revoked, expired, other workflow, global keys
//!   disabled) only after proving possession of its secret; unknown ids, wrong secrets and
//!   malformed values all read `invalid workflow key`;
//! - refused calls are not uses: `LastUsedAt` is written only for accepted keys.
//!
//! Table `WorkflowKeys`, all rows in partition `GLOBAL` (keys act in GLOBAL, as in v1), row
//! `key:<id>`: optional `WorkflowName` (absent = global key), `SecretHash` (`sha256:<hex>`),
//! `CreatedAt`, `CreatedBy`, `DisableGlobalKey`, optional `Description`, `ExpiresAt`,
//! `RevokedAt`, `RevokedBy`, `LastUsedAt`. (v1 kept these in `Config` as `workflowkey:{id}` and
//! `systemconfig:globalkey:{id}`; v1 keys cannot be carried over, they have no embedded id and
//! only their hash was stored.)

use std::fmt;
use std::sync::Arc;

use bifrost_store::StoreError;
use bifrost_store::table::{Entity, Properties, TableStore, Value, prop};

use crate::auth::key_table::{
    self, KeyKind, KeyTable, Options, Record, Refusal, RejectReason, validate_actor,
};
use crate::cache::Cache;

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

/// Workflows whose opt-out answer is kept: callers only ask for workflows that exist, so this
/// is reached only by a workspace that large.
const POLICY_CACHE_MAX: usize = 10_000;

/// The workflow-key kind of [`KeyTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkflowKey;

/// What a workflow key holds beyond what every key does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkflowKeyFields {
    /// `None` for a global key.
    pub workflow_name: Option<String>,
    pub description: Option<String>,
    /// Workflow keys only: while this key is unrevoked, its workflow refuses global keys.
    pub disable_global_key: bool,
}

impl KeyKind for WorkflowKey {
    type Fields = WorkflowKeyFields;
    const TABLE: &'static str = WORKFLOW_KEYS_TABLE;
    const PREFIX: &'static str = WORKFLOW_KEY_PREFIX;
    const NOUN: &'static str = "workflow key";
    const NAME: &'static str = "workflow key";
    const RAW_NAME: &'static str = "RawWorkflowKey";

    fn write(fields: &WorkflowKeyFields, props: &mut Properties) {
        if let Some(name) = &fields.workflow_name {
            props.insert("WorkflowName".into(), name.as_str().into());
        }
        props.insert(
            "DisableGlobalKey".into(),
            Value::Boolean(fields.disable_global_key),
        );
        if let Some(text) = &fields.description {
            props.insert("Description".into(), text.as_str().into());
        }
    }

    fn read(entity: &Entity) -> Result<WorkflowKeyFields, &'static str> {
        let text = |field: &str| entity.get(field).and_then(Value::as_str).map(str::to_owned);
        Ok(WorkflowKeyFields {
            workflow_name: text("WorkflowName"),
            description: text("Description"),
            disable_global_key: entity
                .get("DisableGlobalKey")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// A workflow key's id (16 lowercase hex characters).
pub type WorkflowKeyId = key_table::Id<WorkflowKey>;
/// A raw workflow key, returned once by [`WorkflowKeys::create`] (`Debug` is redacted).
pub type RawWorkflowKey = key_table::Raw<WorkflowKey>;
/// A stored workflow key's metadata (never its secret or hash).
pub type WorkflowKeyRecord = Record<WorkflowKey>;
/// Errors of workflow-key management (create, list, revoke).
pub type WorkflowKeyError = key_table::Error<WorkflowKey>;
/// Tuning of [`WorkflowKeys`]: `cache_ttl` also bounds how long a workflow's "global keys
/// disabled by a key" answer is reused.
pub type WorkflowKeysOptions = Options;

impl WorkflowKeyId {
    /// The id runs are recorded with (`Caller::api_key(..)` → `api_key:wk_<id>`): the `wk_`
    /// marker keeps workflow-key runs apart from function-key runs (`api_key:<id>`).
    pub fn caller_id(&self) -> String {
        format!("{WORKFLOW_KEY_PREFIX}{}", self.as_str())
    }
}

impl WorkflowKeyRecord {
    pub fn is_global(&self) -> bool {
        self.workflow_name.is_none()
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

impl From<RejectReason> for WorkflowKeyRejectReason {
    fn from(reason: RejectReason) -> Self {
        match reason {
            RejectReason::Malformed => Self::Malformed,
            RejectReason::UnknownKey => Self::UnknownKey,
            RejectReason::WrongSecret => Self::WrongSecret,
            RejectReason::Revoked => Self::Revoked,
            RejectReason::Expired => Self::Expired,
        }
    }
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

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive); `None`
/// for another scheme or a blank token.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The workflow-key service. One per process; share it behind an `Arc`.
pub struct WorkflowKeys {
    table: KeyTable<WorkflowKey>,
    /// Workflow name → whether an unrevoked key of it has `DisableGlobalKey`.
    policies: Cache<String, bool>,
}

impl fmt::Debug for WorkflowKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowKeys")
            .field("options", self.table.options())
            .finish_non_exhaustive()
    }
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
        Ok(Self {
            policies: Cache::new(options.cache_ttl, POLICY_CACHE_MAX),
            table: KeyTable::new(store, options)?,
        })
    }

    pub async fn ensure_table(&self) -> Result<(), WorkflowKeyError> {
        self.table.ensure_table().await
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
        let now = self.table.now();
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
        let fields = WorkflowKeyFields {
            workflow_name: new.workflow_name,
            description,
            disable_global_key: new.disable_global_key,
        };
        let created = self
            .table
            .create(fields, now, expires_at, created_by)
            .await?;
        if created.0.disable_global_key {
            self.policies.clear();
        }
        Ok(created)
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
        let reject = |reason, key_id: Option<WorkflowKeyId>| {
            WorkflowKeyAuthError::Rejected(WorkflowKeyRejection {
                reason,
                key_id,
                workflow: workflow.to_owned(),
            })
        };
        let now = self.table.now();
        let key = self.table.check(raw, now).await.map_err(|e| match e {
            Refusal::Rejected(r) => reject(r.reason.into(), r.key_id),
            Refusal::Store(e) => WorkflowKeyAuthError::Store(e),
        })?;
        let id = || Some(key.record.id.clone());
        match &key.record.workflow_name {
            Some(name) if name != workflow => {
                return Err(reject(WorkflowKeyRejectReason::OtherWorkflow, id()));
            }
            Some(_) => {}
            None => {
                if workflow_disables_global || self.keys_disable_global(workflow).await? {
                    return Err(reject(WorkflowKeyRejectReason::GlobalKeysDisabled, id()));
                }
            }
        }
        let usage_recorded = self.table.record_use(&key, now).await;
        Ok(WorkflowKeyPrincipal {
            key_id: key.record.id.clone(),
            workflow_name: key.record.workflow_name.clone(),
            usage_recorded,
        })
    }

    /// True when an unrevoked key of `workflow` was created with `disableGlobalKey`. Expiry
    /// does not lift it: only an explicit revocation turns global keys back on.
    async fn keys_disable_global(&self, workflow: &str) -> Result<bool, StoreError> {
        if let Some(disabled) = self.policies.get(workflow) {
            return Ok(disabled);
        }
        let generation = self.policies.generation();
        let filter = prop("WorkflowName")
            .eq(workflow)
            .and(prop("DisableGlobalKey").eq(true));
        let rows = self.table.rows(Some(filter)).await?;
        let disabled = rows.iter().any(|row| row.get("RevokedAt").is_none());
        self.policies
            .put_if_current(workflow.to_owned(), disabled, generation);
        Ok(disabled)
    }

    /// The key's record, read from storage (not the cache).
    pub async fn get(
        &self,
        id: &WorkflowKeyId,
    ) -> Result<Option<WorkflowKeyRecord>, WorkflowKeyError> {
        self.table.get(id).await
    }

    /// Every key (revoked and expired ones included), or only the keys of one workflow, oldest
    /// first.
    pub async fn list(
        &self,
        workflow: Option<&str>,
    ) -> Result<Vec<WorkflowKeyRecord>, WorkflowKeyError> {
        self.table
            .list(workflow.map(|name| prop("WorkflowName").eq(name)))
            .await
    }

    /// Revokes a key. Takes effect on this instance at once and on others within
    /// [`WorkflowKeysOptions::cache_ttl`].
    pub async fn revoke(
        &self,
        id: &WorkflowKeyId,
        revoked_by: &str,
    ) -> Result<WorkflowKeyRecord, WorkflowKeyError> {
        let record = self.table.revoke(id, revoked_by).await?;
        if record.disable_global_key {
            self.policies.clear();
        }
        Ok(record)
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use bifrost_store::Scope;
    use bifrost_store::table::{SqliteTables, TableName};
    use sha2::{Digest as _, Sha256};
    use time::OffsetDateTime;

    use super::*;
    use crate::auth::Clock;
    use crate::auth::raw_key::{self, HASH_SCHEME, KEY_ID_LEN, SECRET_BYTES, hex, unhex32};

    const RAW_KEY_LEN: usize = WORKFLOW_KEY_PREFIX.len() + KEY_ID_LEN + 1 + raw_key::SECRET_LEN;

    /// `wk_<id>_<secret>` → (id, 32 secret bytes): how the key table splits a workflow key.
    fn split_raw_key(raw: &str) -> Option<(&str, [u8; SECRET_BYTES])> {
        raw_key::split(WORKFLOW_KEY_PREFIX, raw)
    }

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

//! Bifrost's own function keys: creation (the raw key is shown once), authentication, listing,
//! revocation, two-key rotation per name, and the header-or-query extraction rule.
//!
//! A function key is a [`KeyTable`] kind ([`FunctionKey`]): hashing, the one-read lookup by
//! embedded id, the cache of validated keys, expiry, revocation and last-used bookkeeping are
//! the table's; this module adds what is a function key's own: a name and a scope per key,
//! rotation in [`MAX_ACTIVE_KEYS_PER_NAME`] slots per (scope, name), and every refusal reading
//! the same caller-facing `invalid key` (the typed reason goes to the audit log).
//!
//! Depends on the table contract only (no HTTP). Table `FunctionKeys`, all rows in partition
//! `GLOBAL` (a system table: a key's scope is a property, because authentication must find a
//! key before it knows the scope):
//! - `key:<id>`: `Name`, `Scope` (`GLOBAL` or org id), `SecretHash` (`sha256:<hex>`),
//!   `CreatedAt`, `CreatedBy`, `Slot`, optional `ExpiresAt`, `RevokedAt`, `RevokedBy`, `LastUsedAt`;
//! - `slot:<scope>:<name>:<0|1>`: `KeyId` of the key occupying that rotation slot.

use std::fmt;
use std::sync::Arc;

use bifrost_store::Scope;
use bifrost_store::table::{Entity, Properties, TableStore, Value, prop};
use time::OffsetDateTime;

use crate::auth::AuthError;
use crate::auth::key_table::{
    self, KeyKind, KeyTable, Options, Record, Refusal, Rejection, validate_actor,
};

pub use crate::auth::key_table::{MAX_ACTIVE_KEYS_PER_NAME, RejectReason as KeyRejectReason};

/// Every raw key starts with this, so leaked keys are recognizable by secret scanners.
pub const KEY_PREFIX: &str = "bfk_";
/// The table holding key records and rotation slots.
pub const FUNCTION_KEYS_TABLE: &str = "FunctionKeys";
/// Longest key name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// The function-key kind of [`KeyTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionKey;

/// What a function key holds beyond what every key does.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionKeyFields {
    pub name: String,
    /// `GLOBAL` keys act platform-wide, an organization's keys in that organization only.
    pub scope: Scope,
}

impl KeyKind for FunctionKey {
    type Fields = FunctionKeyFields;
    const TABLE: &'static str = FUNCTION_KEYS_TABLE;
    const PREFIX: &'static str = KEY_PREFIX;
    const NOUN: &'static str = "key";
    const NAME: &'static str = "function key";
    const RAW_NAME: &'static str = "RawKey";

    fn write(fields: &FunctionKeyFields, props: &mut Properties) {
        props.insert("Name".into(), fields.name.as_str().into());
        props.insert("Scope".into(), fields.scope.to_string().into());
    }

    fn read(entity: &Entity) -> Result<FunctionKeyFields, &'static str> {
        let scope = entity
            .get("Scope")
            .and_then(Value::as_str)
            .and_then(|s| Scope::parse(s).ok())
            .ok_or("Scope")?;
        let name = entity.get("Name").and_then(Value::as_str).ok_or("Name")?;
        Ok(FunctionKeyFields {
            name: name.to_owned(),
            scope,
        })
    }

    fn rotation(fields: &FunctionKeyFields) -> Option<(&str, &Scope)> {
        Some((&fields.name, &fields.scope))
    }
}

/// A function key's id (16 lowercase hex characters).
pub type KeyId = key_table::Id<FunctionKey>;
/// A raw function key, returned once by [`FunctionKeys::create`] (`Debug` is redacted).
pub type RawKey = key_table::Raw<FunctionKey>;
/// A stored function key's metadata (never its secret or hash).
pub type KeyRecord = Record<FunctionKey>;
/// A refused function key (for the audit log only: callers see `invalid key`).
pub type KeyRejection = Rejection<FunctionKey>;
/// Errors of function-key management (create, list, revoke).
pub type KeyError = key_table::Error<FunctionKey>;
/// Tuning of [`FunctionKeys`].
pub type FunctionKeysOptions = Options;

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
    table: KeyTable<FunctionKey>,
}

impl fmt::Debug for FunctionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionKeys")
            .field("options", self.table.options())
            .finish_non_exhaustive()
    }
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
        Ok(Self {
            table: KeyTable::new(store, options)?,
        })
    }

    pub async fn ensure_table(&self) -> Result<(), KeyError> {
        self.table.ensure_table().await
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
        let now = self.table.now();
        if let Some(at) = expires_at
            && at <= now
        {
            return Err(KeyError::Invalid {
                field: "expires_at",
                reason: "must be in the future".into(),
            });
        }
        let fields = FunctionKeyFields {
            name: name.to_owned(),
            scope,
        };
        self.table.create(fields, now, expires_at, created_by).await
    }

    /// Checks a raw key: format, existence, secret, revocation, expiry. Every refusal is
    /// [`AuthError::InvalidKey`] (displayed as `invalid key`) carrying the typed reason.
    pub async fn authenticate(&self, raw: &str) -> Result<KeyPrincipal, AuthError> {
        let now = self.table.now();
        let key = self.table.check(raw, now).await.map_err(|e| match e {
            Refusal::Rejected(rejection) => AuthError::InvalidKey(rejection),
            Refusal::Store(e) => AuthError::Store(e),
        })?;
        let usage_recorded = self.table.record_use(&key, now).await;
        Ok(KeyPrincipal {
            key_id: key.record.id.clone(),
            name: key.record.name.clone(),
            scope: key.record.scope.clone(),
            usage_recorded,
        })
    }

    /// The key's record, read from storage (not the cache).
    pub async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, KeyError> {
        self.table.get(id).await
    }

    /// All keys of `scope` (revoked and expired ones included), oldest first.
    pub async fn list(&self, scope: &Scope) -> Result<Vec<KeyRecord>, KeyError> {
        self.table
            .list(Some(prop("Scope").eq(scope.to_string())))
            .await
    }

    /// Revokes a key and frees its rotation slot. Takes effect on this instance at once and on
    /// others within [`FunctionKeysOptions::cache_ttl`].
    pub async fn revoke(&self, id: &KeyId, revoked_by: &str) -> Result<KeyRecord, KeyError> {
        self.table.revoke(id, revoked_by).await
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use bifrost_store::OrgId;
    use bifrost_store::table::{IfMatch, Query, SqliteTables, TableName};
    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::auth::Clock;
    use crate::auth::raw_key::{self, KEY_ID_LEN, SECRET_BYTES, hex};

    const RAW_KEY_LEN: usize = KEY_PREFIX.len() + KEY_ID_LEN + 1 + raw_key::SECRET_LEN;

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

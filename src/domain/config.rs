//! Per-scope configuration: typed key/value settings with org → GLOBAL fallback, secret
//! references resolved through the secret store, and masking for API reads.
//!
//! Depends on the table contract and the [`SecretStore`] contract. Layout (table `Config`,
//! partition = the scope: an org id or `GLOBAL`): `config:{key}` — `Value` (the raw string),
//! `Type` (`string`/`int`/`bool`/`json`/`secret_ref`), `Description`, `UpdatedAt`, `UpdatedBy`,
//! as in v1. A `secret_ref` row's `Value` is a secret name; [`ConfigService::set_secret`] names
//! secrets `SecretName::scoped(scope, key)` (v1 appended a random uuid).
//!
//! Invariants:
//! - keys match `^[A-Za-z0-9_]{1,128}$`; `int`, `bool`, `json` and `secret_ref` values are
//!   validated on write, and `int`/`bool` are stored in canonical form;
//! - an org's `secret_ref` may only name a secret of that org's scope (checked on write and again
//!   on resolve), so one tenant's config can never be pointed at another tenant's secret. GLOBAL
//!   rows are platform-owned and may name any secret;
//! - resolution falls back from an org to GLOBAL only, never to another org;
//! - secret values leave this module only inside [`SecretValue`] (which prints as `***`); the
//!   masked reads ([`ConfigService::list_masked`]) replace the stored value of every
//!   `secret_ref` row and of every key that looks secret with exactly [`MASK`] — no prefix is
//!   revealed, because a partial reveal of a short secret is most of it.
//!
//! Deleting or overwriting a `secret_ref` row leaves the secret itself in the store: its
//! lifecycle belongs to the secrets API, and deleting it would, on Key Vault (soft delete),
//! reserve the name and make a later `set_secret` of the same key fail until it is purged.

use std::collections::BTreeMap;
use std::sync::Arc;

use bifrost_secrets::{SecretName, SecretStore, SecretValue};
use bifrost_store::table::{
    Entity, IfMatch, MAX_STRING_UTF16, Properties, Query, Value, WriteMode, prop,
};
use bifrost_store::{RowKey, Scope, ScopedTable, StoreError, TableStore};
use time::OffsetDateTime;

use crate::domain::error::{DomainError, DomainResult};
use crate::domain::rows::{
    CONFIG_TABLE, created_at, ensure, now, opt_str, opt_time, prefix_filter, req_str, row_key,
    scoped,
};

const CONFIG_PREFIX: &str = "config:";
/// Longest key, in characters.
pub const MAX_KEY_LEN: usize = 128;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 1000;
/// What a masked value reads as.
pub const MASK: &str = "***";
/// Substrings (case-insensitive) that make a key's value masked in API reads, as in v1.
pub const SECRET_KEY_MARKERS: [&str; 5] = ["secret", "password", "token", "key", "credential"];

/// The type of a config value; the value itself is always stored as a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigType {
    String,
    Int,
    Bool,
    Json,
    /// The value is the name of a secret in the secret store.
    SecretRef,
}

impl ConfigType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigType::String => "string",
            ConfigType::Int => "int",
            ConfigType::Bool => "bool",
            ConfigType::Json => "json",
            ConfigType::SecretRef => "secret_ref",
        }
    }

    /// Parses v1's type names (field `type`).
    pub fn parse(raw: &str) -> DomainResult<Self> {
        Ok(match raw {
            "string" => ConfigType::String,
            "int" => ConfigType::Int,
            "bool" => ConfigType::Bool,
            "json" => ConfigType::Json,
            "secret_ref" => ConfigType::SecretRef,
            _ => {
                return Err(DomainError::invalid(
                    "type",
                    "must be one of string, int, bool, json, secret_ref",
                ));
            }
        })
    }
}

/// One stored setting, value raw (unresolved, unmasked).
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigEntry {
    /// The scope the row lives in (GLOBAL for fallback rows in [`ConfigService::list_effective`]).
    pub scope: Scope,
    pub key: String,
    pub value: String,
    pub value_type: ConfigType,
    pub description: Option<String>,
    pub updated_at: OffsetDateTime,
    pub updated_by: Option<String>,
}

impl ConfigEntry {
    /// Whether API reads must mask this entry's value.
    pub fn should_mask(&self) -> bool {
        self.value_type == ConfigType::SecretRef || is_secret_key(&self.key)
    }

    /// This entry with its value replaced by [`MASK`] if [`ConfigEntry::should_mask`].
    pub fn masked(mut self) -> Self {
        if self.should_mask() {
            self.value = MASK.to_owned();
        }
        self
    }
}

/// Whether a key looks like it holds a secret (contains secret/password/token/key/credential,
/// case-insensitive).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_MARKERS.iter().any(|m| key.contains(m))
}

/// A write of one setting.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigWrite {
    pub key: String,
    pub value: String,
    pub value_type: ConfigType,
    pub description: Option<String>,
    pub updated_by: Option<String>,
}

impl ConfigWrite {
    /// The SDK's `config.set(key, value)` typing (v1): objects and arrays are `json`, booleans
    /// `bool`, integers `int`, anything else its text as `string`. `null` is refused (field
    /// `value`): deleting a key is `delete`.
    pub fn inferred(key: &str, value: &serde_json::Value) -> DomainResult<Self> {
        let (value, value_type) = match value {
            serde_json::Value::Null => {
                return Err(DomainError::invalid(
                    "value",
                    "must not be null; delete the key instead",
                ));
            }
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                (value.to_string(), ConfigType::Json)
            }
            serde_json::Value::Bool(b) => (b.to_string(), ConfigType::Bool),
            serde_json::Value::Number(n) if n.is_i64() => (n.to_string(), ConfigType::Int),
            serde_json::Value::Number(n) => (n.to_string(), ConfigType::String),
            serde_json::Value::String(s) => (s.clone(), ConfigType::String),
        };
        Ok(Self {
            key: key.to_owned(),
            value,
            value_type,
            description: None,
            updated_by: None,
        })
    }
}

/// Whether a `set` created the key or replaced an existing value (v1 answered 201 vs 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    Created,
    Updated,
}

/// A resolved, typed value.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    /// `string`, `int`, `bool` and `json` values, parsed.
    Plain(serde_json::Value),
    /// A `secret_ref` resolved through the secret store; prints as `***`.
    Secret(SecretValue),
}

impl ConfigValue {
    /// The value as JSON with a secret exposed as a string: only for handing the value to its
    /// consumer (a workflow), never for logs or API responses.
    pub fn into_exposed_json(self) -> serde_json::Value {
        match self {
            ConfigValue::Plain(v) => v,
            ConfigValue::Secret(s) => serde_json::Value::String(s.into_exposed()),
        }
    }
}

/// Checks a config key (field `key`): `^[A-Za-z0-9_]{1,128}$`.
pub fn validate_key(key: &str) -> DomainResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(DomainError::invalid(
            "key",
            format!("must be 1 to {MAX_KEY_LEN} characters"),
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(DomainError::invalid(
            "key",
            "may contain only letters, digits and '_'",
        ));
    }
    Ok(())
}

/// Config over the `Config` table, one partition per scope.
#[derive(Clone)]
pub struct ConfigService {
    tables: Arc<dyn TableStore>,
    secrets: Arc<dyn SecretStore>,
}

impl std::fmt::Debug for ConfigService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigService")
            .field("tables", &self.tables.backend())
            .field("secrets", &self.secrets.backend())
            .finish()
    }
}

impl ConfigService {
    pub fn new(tables: Arc<dyn TableStore>, secrets: Arc<dyn SecretStore>) -> Self {
        Self { tables, secrets }
    }

    /// Creates the `Config` table if missing.
    pub async fn ensure_tables(&self) -> DomainResult<()> {
        ensure(&self.tables, &[CONFIG_TABLE]).await
    }

    /// Validates and stores one setting in `scope`.
    pub async fn set(&self, scope: &Scope, write: ConfigWrite) -> DomainResult<SetOutcome> {
        validate_key(&write.key)?;
        let value = canonical_value(scope, write.value_type, &write.value)?;
        let description = match write.description.as_deref().map(str::trim) {
            Some(d) if d.chars().count() > MAX_DESCRIPTION => {
                return Err(DomainError::invalid(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION} characters"),
                ));
            }
            Some(d) if !d.is_empty() => Some(d.to_owned()),
            _ => None,
        };
        let mut props = Properties::new();
        props.insert("Value".into(), Value::from(value));
        props.insert("Type".into(), Value::from(write.value_type.as_str()));
        if let Some(d) = description {
            props.insert("Description".into(), Value::from(d));
        }
        props.insert("UpdatedAt".into(), Value::from(now()));
        if let Some(by) = write.updated_by {
            props.insert("UpdatedBy".into(), Value::from(by));
        }
        let table = self.table(scope)?;
        let key = config_key(&write.key)?;
        match table.insert(key.clone(), props.clone()).await {
            Ok(_) => Ok(SetOutcome::Created),
            Err(StoreError::AlreadyExists { .. }) => {
                table.upsert(key, props, WriteMode::Replace).await?;
                Ok(SetOutcome::Updated)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stores `value` in the secret store as `SecretName::scoped(scope, key)` and points a
    /// `secret_ref` row at it (the secret is written first, so the row never names a missing
    /// secret). `Conflict` when another key of the scope already refers to the same secret name
    /// (keys differing only in case or `_` runs map to one name).
    pub async fn set_secret(
        &self,
        scope: &Scope,
        key: &str,
        value: &SecretValue,
        description: Option<String>,
        updated_by: Option<String>,
    ) -> DomainResult<SetOutcome> {
        validate_key(key)?;
        value.validate()?;
        let name = SecretName::scoped(scope, key)?;
        let sharing = self
            .table(scope)?
            .query_all(
                &Query::new().filter(
                    prefix_filter(CONFIG_PREFIX)
                        .and(prop("Type").eq(ConfigType::SecretRef.as_str()))
                        .and(prop("Value").eq(name.as_str())),
                ),
            )
            .await?;
        if let Some(other) = sharing
            .iter()
            .filter_map(entry_key)
            .find(|other| *other != key)
        {
            return Err(DomainError::conflict(
                format!("key '{key}'"),
                format!("maps to the same secret name as key '{other}'; choose a different key"),
            ));
        }
        self.secrets.set(&name, value).await?;
        self.set(
            scope,
            ConfigWrite {
                key: key.to_owned(),
                value: name.as_str().to_owned(),
                value_type: ConfigType::SecretRef,
                description,
                updated_by,
            },
        )
        .await
    }

    /// The row stored in exactly `scope` (no fallback), value raw.
    pub async fn get_raw(&self, scope: &Scope, key: &str) -> DomainResult<Option<ConfigEntry>> {
        validate_key(key)?;
        match self.table(scope)?.get(&config_key(key)?).await? {
            Some(entity) => Ok(Some(from_entity(scope, &entity)?)),
            None => Ok(None),
        }
    }

    /// Deletes the key from exactly `scope`; `false` if it was not there.
    pub async fn delete(&self, scope: &Scope, key: &str) -> DomainResult<bool> {
        validate_key(key)?;
        match self
            .table(scope)?
            .delete(&config_key(key)?, &IfMatch::Any)
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The rows of exactly `scope`, by key, values raw.
    pub async fn list(&self, scope: &Scope) -> DomainResult<Vec<ConfigEntry>> {
        self.table(scope)?
            .query_all(&Query::new().filter(prefix_filter(CONFIG_PREFIX)))
            .await?
            .iter()
            .map(|e| from_entity(scope, e))
            .collect()
    }

    /// What `scope` sees: its own rows plus GLOBAL rows it does not override, by key.
    pub async fn list_effective(&self, scope: &Scope) -> DomainResult<Vec<ConfigEntry>> {
        let mut merged: BTreeMap<String, ConfigEntry> = BTreeMap::new();
        if matches!(scope, Scope::Org(_)) {
            for entry in self.list(&Scope::Global).await? {
                merged.insert(entry.key.clone(), entry);
            }
        }
        for entry in self.list(scope).await? {
            merged.insert(entry.key.clone(), entry);
        }
        Ok(merged.into_values().collect())
    }

    /// [`ConfigService::list`] with secret values masked, for API reads.
    pub async fn list_masked(&self, scope: &Scope) -> DomainResult<Vec<ConfigEntry>> {
        Ok(self
            .list(scope)
            .await?
            .into_iter()
            .map(ConfigEntry::masked)
            .collect())
    }

    /// [`ConfigService::get_raw`] with a secret value masked, for API reads.
    pub async fn get_masked(&self, scope: &Scope, key: &str) -> DomainResult<Option<ConfigEntry>> {
        Ok(self.get_raw(scope, key).await?.map(ConfigEntry::masked))
    }

    /// The typed value a workflow in `scope` sees: the scope's row, else GLOBAL's; `secret_ref`
    /// values are read from the secret store. `NotFound` if a referenced secret is missing.
    pub async fn resolve(&self, scope: &Scope, key: &str) -> DomainResult<Option<ConfigValue>> {
        let mut entry = self.get_raw(scope, key).await?;
        if entry.is_none() && matches!(scope, Scope::Org(_)) {
            entry = self.get_raw(&Scope::Global, key).await?;
        }
        let Some(entry) = entry else {
            return Ok(None);
        };
        let corrupt = |what: &str| {
            DomainError::internal(format!(
                "config key '{}' in scope {}: stored {what}",
                entry.key, entry.scope
            ))
        };
        let value = match entry.value_type {
            ConfigType::String => serde_json::Value::String(entry.value.clone()),
            ConfigType::Int => entry
                .value
                .trim()
                .parse::<i64>()
                .map(serde_json::Value::from)
                .map_err(|_| corrupt("int value is not an integer"))?,
            ConfigType::Bool => serde_json::Value::Bool(
                parse_bool_lenient(&entry.value).ok_or_else(|| corrupt("bool value is invalid"))?,
            ),
            ConfigType::Json => serde_json::from_str(&entry.value)
                .map_err(|_| corrupt("json value does not parse"))?,
            ConfigType::SecretRef => {
                let name = SecretName::parse(&entry.value)
                    .map_err(|_| corrupt("secret_ref is not a secret name"))?;
                if !secret_allowed(&entry.scope, &name) {
                    return Err(corrupt("secret_ref names another scope's secret"));
                }
                return match self.secrets.get(&name).await? {
                    Some(secret) => Ok(Some(ConfigValue::Secret(secret))),
                    None => Err(DomainError::not_found(format!(
                        "secret referenced by config key '{}'",
                        entry.key
                    ))),
                };
            }
        };
        Ok(Some(ConfigValue::Plain(value)))
    }

    fn table(&self, scope: &Scope) -> DomainResult<ScopedTable> {
        scoped(&self.tables, CONFIG_TABLE, scope)
    }
}

/// Org rows may reference only their own scope's secrets; GLOBAL rows are platform-owned.
fn secret_allowed(scope: &Scope, name: &SecretName) -> bool {
    match scope {
        Scope::Global => true,
        Scope::Org(_) => name.key_in_scope(scope).is_some(),
    }
}

/// v1 wrote Python's `str(bool)` (`True`/`False`); accept the usual spellings on read.
fn parse_bool_lenient(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Validates `raw` for `value_type` (field `value`) and returns the form to store.
fn canonical_value(scope: &Scope, value_type: ConfigType, raw: &str) -> DomainResult<String> {
    if raw.encode_utf16().count() > MAX_STRING_UTF16 {
        return Err(DomainError::invalid(
            "value",
            format!("must be at most {MAX_STRING_UTF16} UTF-16 code units (64 KiB)"),
        ));
    }
    Ok(match value_type {
        ConfigType::String => raw.to_owned(),
        ConfigType::Int => raw
            .trim()
            .parse::<i64>()
            .map_err(|_| DomainError::invalid("value", "must be a whole number for type int"))?
            .to_string(),
        ConfigType::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => "true".to_owned(),
            "false" => "false".to_owned(),
            _ => {
                return Err(DomainError::invalid(
                    "value",
                    "must be true or false for type bool",
                ));
            }
        },
        ConfigType::Json => {
            serde_json::from_str::<serde_json::Value>(raw).map_err(|e| {
                DomainError::invalid("value", format!("is not valid JSON for type json: {e}"))
            })?;
            raw.to_owned()
        }
        ConfigType::SecretRef => {
            let name = SecretName::parse(raw.trim()).map_err(|_| {
                DomainError::invalid(
                    "value",
                    "must be a secret name (1-127 letters, digits and '-') for type secret_ref",
                )
            })?;
            if !secret_allowed(scope, &name) {
                return Err(DomainError::invalid(
                    "value",
                    format!(
                        "must name a secret of this organization (names starting with {})",
                        SecretName::scope_prefix(scope)
                    ),
                ));
            }
            name.as_str().to_owned()
        }
    })
}

fn config_key(key: &str) -> DomainResult<RowKey> {
    // Validated keys are [A-Za-z0-9_] only.
    row_key(format!("{CONFIG_PREFIX}{key}"))
}

fn entry_key(entity: &Entity) -> Option<&str> {
    entity.row_key.as_str().strip_prefix(CONFIG_PREFIX)
}

fn from_entity(scope: &Scope, entity: &Entity) -> DomainResult<ConfigEntry> {
    let key = entry_key(entity).unwrap_or_default().to_owned();
    let raw_type = opt_str(entity, "Type").unwrap_or_else(|| "string".to_owned());
    let value_type = ConfigType::parse(&raw_type).map_err(|_| {
        DomainError::internal(format!("config key '{key}' has unknown type {raw_type:?}"))
    })?;
    Ok(ConfigEntry {
        scope: scope.clone(),
        value: req_str(entity, "Value")?,
        value_type,
        description: opt_str(entity, "Description").filter(|d| !d.is_empty()),
        updated_at: opt_time(entity, "UpdatedAt").unwrap_or_else(|| created_at(entity)),
        updated_by: opt_str(entity, "UpdatedBy"),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testutil::Fixture;
    use bifrost_store::OrgId;
    use serde_json::json;

    fn field_of(err: &DomainError) -> &str {
        match err {
            DomainError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn write(key: &str, value: &str, value_type: ConfigType) -> ConfigWrite {
        ConfigWrite {
            key: key.to_owned(),
            value: value.to_owned(),
            value_type,
            description: Some("about it".into()),
            updated_by: Some("admin@msp.example".into()),
        }
    }

    fn org_scope() -> Scope {
        Scope::Org(OrgId::generate())
    }

    fn plain(v: Option<ConfigValue>) -> serde_json::Value {
        match v {
            Some(ConfigValue::Plain(v)) => v,
            other => panic!("expected a plain value, got {other:?}"),
        }
    }

    #[test]
    fn keys_and_types_are_validated() {
        for ok in ["a", "A_1", &"k".repeat(128)] {
            validate_key(ok).unwrap();
        }
        for bad in ["", "a-b", "a.b", "a b", "ä", &"k".repeat(129)] {
            assert_eq!(field_of(&validate_key(bad).unwrap_err()), "key", "{bad:?}");
        }
        assert_eq!(
            ConfigType::parse("secret_ref").unwrap(),
            ConfigType::SecretRef
        );
        assert_eq!(field_of(&ConfigType::parse("float").unwrap_err()), "type");
        for t in ["string", "int", "bool", "json", "secret_ref"] {
            assert_eq!(ConfigType::parse(t).unwrap().as_str(), t);
        }
    }

    #[test]
    fn secret_looking_keys() {
        for k in [
            "api_key",
            "ClientSecret",
            "PASSWORD",
            "refresh_token",
            "my_credentials",
            "keyring",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["tenant_id", "url", "timeout_seconds"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn sdk_set_infers_types() {
        let cases = [
            (json!({"a": 1}), ConfigType::Json, r#"{"a":1}"#),
            (json!([1, 2]), ConfigType::Json, "[1,2]"),
            (json!(true), ConfigType::Bool, "true"),
            (json!(-42), ConfigType::Int, "-42"),
            (json!(1.5), ConfigType::String, "1.5"),
            (json!("hi"), ConfigType::String, "hi"),
        ];
        for (value, t, raw) in cases {
            let w = ConfigWrite::inferred("k", &value).unwrap();
            assert_eq!((w.value_type, w.value.as_str()), (t, raw), "{value}");
        }
        let err = ConfigWrite::inferred("k", &json!(null)).unwrap_err();
        assert_eq!(field_of(&err), "value");
    }

    #[tokio::test]
    async fn set_get_list_delete() {
        let fx = Fixture::new().await;
        let c = &fx.config;
        let scope = org_scope();
        assert_eq!(
            c.set(&scope, write("timeout", " 30 ", ConfigType::Int))
                .await
                .unwrap(),
            SetOutcome::Created
        );
        assert_eq!(
            c.set(&scope, write("timeout", "45", ConfigType::Int))
                .await
                .unwrap(),
            SetOutcome::Updated
        );
        let entry = c.get_raw(&scope, "timeout").await.unwrap().unwrap();
        assert_eq!(entry.value, "45");
        assert_eq!(entry.value_type, ConfigType::Int);
        assert_eq!(entry.description.as_deref(), Some("about it"));
        assert_eq!(entry.updated_by.as_deref(), Some("admin@msp.example"));
        assert_eq!(entry.scope, scope);
        c.set(&scope, write("enabled", "TRUE", ConfigType::Bool))
            .await
            .unwrap();
        assert_eq!(
            c.get_raw(&scope, "enabled").await.unwrap().unwrap().value,
            "true"
        );
        c.set(&scope, write("tenant", "contoso", ConfigType::String))
            .await
            .unwrap();
        let keys: Vec<_> = c
            .list(&scope)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["enabled", "tenant", "timeout"]);
        // Case matters in keys.
        assert!(c.get_raw(&scope, "Timeout").await.unwrap().is_none());
        assert!(c.delete(&scope, "timeout").await.unwrap());
        assert!(!c.delete(&scope, "timeout").await.unwrap());
        assert!(c.get_raw(&scope, "timeout").await.unwrap().is_none());
        assert_eq!(
            field_of(&c.delete(&scope, "bad key").await.unwrap_err()),
            "key"
        );
        assert_eq!(field_of(&c.get_raw(&scope, "").await.unwrap_err()), "key");
    }

    #[tokio::test]
    async fn typed_values_are_validated_on_write() {
        let fx = Fixture::new().await;
        let scope = Scope::Global;
        let cases = [
            ("n", "12x", ConfigType::Int),
            ("n", "1.5", ConfigType::Int),
            ("b", "yes", ConfigType::Bool),
            ("j", "{not json", ConfigType::Json),
            ("s", "not a/valid name", ConfigType::SecretRef),
        ];
        for (key, value, t) in cases {
            let err = fx
                .config
                .set(&scope, write(key, value, t))
                .await
                .unwrap_err();
            assert_eq!(field_of(&err), "value", "{value:?} as {t:?}");
        }
        let err = fx
            .config
            .set(&scope, write("bad-key", "1", ConfigType::Int))
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "key");
        let err = fx
            .config
            .set(
                &scope,
                ConfigWrite {
                    description: Some("d".repeat(MAX_DESCRIPTION + 1)),
                    ..write("k", "v", ConfigType::String)
                },
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "description");
        let err = fx
            .config
            .set(
                &scope,
                write("k", &"v".repeat(MAX_STRING_UTF16 + 1), ConfigType::String),
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "value");
        assert!(fx.config.list(&scope).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn resolve_parses_types_and_falls_back_to_global() {
        let fx = Fixture::new().await;
        let c = &fx.config;
        let org = org_scope();
        c.set(&Scope::Global, write("region", "eu", ConfigType::String))
            .await
            .unwrap();
        c.set(&Scope::Global, write("retries", "3", ConfigType::Int))
            .await
            .unwrap();
        c.set(&org, write("retries", "5", ConfigType::Int))
            .await
            .unwrap();
        c.set(&org, write("flag", "false", ConfigType::Bool))
            .await
            .unwrap();
        c.set(&org, write("map", r#"{"a":[1,2]}"#, ConfigType::Json))
            .await
            .unwrap();

        assert_eq!(plain(c.resolve(&org, "retries").await.unwrap()), json!(5));
        assert_eq!(
            plain(c.resolve(&Scope::Global, "retries").await.unwrap()),
            json!(3)
        );
        assert_eq!(plain(c.resolve(&org, "region").await.unwrap()), json!("eu"));
        assert_eq!(plain(c.resolve(&org, "flag").await.unwrap()), json!(false));
        assert_eq!(
            plain(c.resolve(&org, "map").await.unwrap()),
            json!({"a": [1, 2]})
        );
        assert_eq!(c.resolve(&org, "missing").await.unwrap(), None);
        // GLOBAL never falls "down" into an org.
        assert_eq!(c.resolve(&Scope::Global, "flag").await.unwrap(), None);

        let effective: Vec<_> = c
            .list_effective(&org)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value, e.scope == Scope::Global))
            .collect();
        assert_eq!(
            effective,
            [
                ("flag".to_owned(), "false".to_owned(), false),
                ("map".to_owned(), r#"{"a":[1,2]}"#.to_owned(), false),
                ("region".to_owned(), "eu".to_owned(), true),
                ("retries".to_owned(), "5".to_owned(), false),
            ]
        );
    }

    #[tokio::test]
    async fn v1_rows_with_python_bools_resolve() {
        let fx = Fixture::new().await;
        let table = fx.config_table(&Scope::Global);
        table
            .insert(
                RowKey::new("config:legacy").unwrap(),
                Properties::from([
                    ("Value".to_owned(), Value::from("True")),
                    ("Type".to_owned(), Value::from("bool")),
                ]),
            )
            .await
            .unwrap();
        assert_eq!(
            plain(fx.config.resolve(&Scope::Global, "legacy").await.unwrap()),
            json!(true)
        );
        table
            .insert(
                RowKey::new("config:broken").unwrap(),
                Properties::from([
                    ("Value".to_owned(), Value::from("x")),
                    ("Type".to_owned(), Value::from("int")),
                ]),
            )
            .await
            .unwrap();
        let err = fx
            .config
            .resolve(&Scope::Global, "broken")
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Internal(_)), "{err}");
    }

    #[tokio::test]
    async fn secrets_are_resolved_and_masked() {
        let fx = Fixture::new().await;
        let c = &fx.config;
        let org = org_scope();
        let outcome = c
            .set_secret(
                &org,
                "halo_client",
                &SecretValue::new("s3cr3t-value"),
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(outcome, SetOutcome::Created);
        let raw = c.get_raw(&org, "halo_client").await.unwrap().unwrap();
        assert_eq!(raw.value_type, ConfigType::SecretRef);
        assert_eq!(
            raw.value,
            SecretName::scoped(&org, "halo_client").unwrap().as_str()
        );
        match c.resolve(&org, "halo_client").await.unwrap() {
            Some(ConfigValue::Secret(s)) => {
                assert_eq!(s.expose(), "s3cr3t-value");
                assert_eq!(format!("{s:?}"), "SecretValue(***)");
            }
            other => panic!("{other:?}"),
        }
        // Rotation keeps the name and updates the value.
        assert_eq!(
            c.set_secret(
                &org,
                "halo_client",
                &SecretValue::new("rotated"),
                None,
                None
            )
            .await
            .unwrap(),
            SetOutcome::Updated
        );
        assert_eq!(
            c.resolve(&org, "halo_client")
                .await
                .unwrap()
                .unwrap()
                .into_exposed_json(),
            json!("rotated")
        );

        c.set(&org, write("api_key", "abcd1234", ConfigType::String))
            .await
            .unwrap();
        c.set(&org, write("tenant_id", "t-1", ConfigType::String))
            .await
            .unwrap();
        let masked: Vec<_> = c
            .list_masked(&org)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        assert_eq!(
            masked,
            [
                ("api_key".to_owned(), MASK.to_owned()),
                ("halo_client".to_owned(), MASK.to_owned()),
                ("tenant_id".to_owned(), "t-1".to_owned()),
            ]
        );
        assert_eq!(
            c.get_masked(&org, "api_key").await.unwrap().unwrap().value,
            MASK
        );
        // No masked read anywhere contains the secret's value or the stored plaintext.
        let dump = format!("{:?}", c.list_masked(&org).await.unwrap());
        assert!(
            !dump.contains("rotated") && !dump.contains("abcd1234"),
            "{dump}"
        );
    }

    #[tokio::test]
    async fn secret_refs_cannot_point_at_another_orgs_secret() {
        let fx = Fixture::new().await;
        let a = org_scope();
        let b = org_scope();
        fx.config
            .set_secret(&b, "pw", &SecretValue::new("b-only"), None, None)
            .await
            .unwrap();
        let b_name = SecretName::scoped(&b, "pw").unwrap();
        let err = fx
            .config
            .set(&a, write("stolen", b_name.as_str(), ConfigType::SecretRef))
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "value");
        // Even a row written behind the service's back does not resolve.
        fx.config_table(&a)
            .insert(
                RowKey::new("config:stolen").unwrap(),
                Properties::from([
                    ("Value".to_owned(), Value::from(b_name.as_str())),
                    ("Type".to_owned(), Value::from("secret_ref")),
                ]),
            )
            .await
            .unwrap();
        let err = fx.config.resolve(&a, "stolen").await.unwrap_err();
        assert!(matches!(err, DomainError::Internal(_)), "{err}");
        assert!(!err.to_string().contains("b-only"));
        // GLOBAL rows may reference platform secrets by raw name; a dangling one is NotFound.
        fx.config
            .set(
                &Scope::Global,
                write("smtp", "smtp-password", ConfigType::SecretRef),
            )
            .await
            .unwrap();
        let err = fx.config.resolve(&a, "smtp").await.unwrap_err();
        assert!(matches!(err, DomainError::NotFound { .. }), "{err}");
        fx.secrets
            .set(
                &SecretName::parse("smtp-password").unwrap(),
                &SecretValue::new("p"),
            )
            .await
            .unwrap();
        assert!(matches!(
            fx.config.resolve(&a, "smtp").await.unwrap(),
            Some(ConfigValue::Secret(_))
        ));
    }

    #[tokio::test]
    async fn secret_keys_that_share_a_secret_name_conflict() {
        let fx = Fixture::new().await;
        let scope = org_scope();
        fx.config
            .set_secret(&scope, "Api_Key", &SecretValue::new("one"), None, None)
            .await
            .unwrap();
        let err = fx
            .config
            .set_secret(&scope, "api__key", &SecretValue::new("two"), None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict { .. }), "{err}");
        match fx.config.resolve(&scope, "Api_Key").await.unwrap() {
            Some(ConfigValue::Secret(s)) => assert_eq!(s.expose(), "one"),
            other => panic!("{other:?}"),
        }
        let err = fx
            .config
            .set_secret(&scope, "bad key", &SecretValue::new("x"), None, None)
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "key");
    }

    #[tokio::test]
    async fn org_a_can_never_reach_org_b_config() {
        let fx = Fixture::new().await;
        let a = org_scope();
        let b = org_scope();
        fx.config
            .set(&b, write("b_only", "secret-ish", ConfigType::String))
            .await
            .unwrap();
        fx.config
            .set_secret(&b, "b_pw", &SecretValue::new("b-secret"), None, None)
            .await
            .unwrap();
        fx.config
            .set(&a, write("a_only", "1", ConfigType::Int))
            .await
            .unwrap();

        assert!(fx.config.get_raw(&a, "b_only").await.unwrap().is_none());
        assert_eq!(fx.config.resolve(&a, "b_only").await.unwrap(), None);
        assert_eq!(fx.config.resolve(&a, "b_pw").await.unwrap(), None);
        assert!(!fx.config.delete(&a, "b_only").await.unwrap());
        let a_keys: Vec<_> = fx
            .config
            .list_effective(&a)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(a_keys, ["a_only"]);
        // Writing the same key in A creates A's row and leaves B's alone.
        assert_eq!(
            fx.config
                .set(&a, write("b_only", "mine", ConfigType::String))
                .await
                .unwrap(),
            SetOutcome::Created
        );
        assert_eq!(
            fx.config
                .get_raw(&b, "b_only")
                .await
                .unwrap()
                .unwrap()
                .value,
            "secret-ish"
        );
        assert!(fx.config.delete(&a, "b_only").await.unwrap());
        assert!(fx.config.get_raw(&b, "b_only").await.unwrap().is_some());
    }
}

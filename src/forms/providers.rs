//! Data providers behind form dropdowns: which inputs a provider gets (the three modes of a
//! field's `dataProviderInputs`) and the options cache every instance shares through storage.
//!
//! May depend on: `model`, `validate` (`FieldError`), `visibility`, `executions::input` (type
//! checks), the engine's metadata types and the table contract. Not on HTTP; running the
//! provider is the caller's job.
//!
//! Input resolution, for the field whose provider is asked for:
//! - `static` → the configured `value`; `fieldRef` → the named field's value among the submitted
//!   form values; `expression` → the expression's value over `{field, workflow, query}` (the
//!   context of visibility expressions). `null`, an empty string and `undefined` are missing.
//! - Values the caller sends as `inputs` fill parameters the configuration left missing (v1
//!   clients resolve inputs themselves). A configured `static` input is never replaced by a
//!   caller's value, except by an administrator (the form builder's preview).
//! - Only the provider's declared parameters are passed, so stray keys can neither reach the
//!   provider nor split the cache; required parameters without a value or a default are all
//!   reported, as `inputs.{name}`.
//!
//! Cache (`DataProviderCache` table): partition = the scope the provider runs for, row key =
//! SHA-256 of the canonical JSON `[provider, inputs]` (object keys sorted at every level),
//! properties `Provider`, `ExpiresAt` and the options' JSON in `Options0…` (see
//! `store::put_chunked`). A row is served while `ExpiresAt` is in the future; a TTL of 0 means no
//! caching; `noCache` skips the read and refreshes the row. Expired rows are overwritten by the
//! next miss; options too large for one row are not cached.

use std::collections::BTreeMap;
use std::sync::Arc;

use bifrost_engine::{DataProviderInfo, DataProviderOption};
use bifrost_store::table::{
    Entity, IfMatch, Properties, Query, TableName, Value as TableValue, WriteMode, prop,
};
use bifrost_store::{RowKey, Scope, ScopedTable, StoreError, TableStore};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::model::{DataProviderInput, ProviderInputMode};
use super::store::{hex, put_chunked, read_chunked};
use super::validate::FieldError;
use super::visibility::Expression;
use crate::executions::input::{self, Coercion};

pub const CACHE_TABLE: &str = "DataProviderCache";

/// What `fieldRef` and `expression` inputs read.
#[derive(Clone, Copy, Debug)]
pub struct InputContext<'a> {
    /// The form's current values, by field name.
    pub values: &'a Map<String, Value>,
    /// The launch workflow's result (`null` without one).
    pub launch: &'a Value,
    /// The allowed URL query parameters.
    pub query: &'a Map<String, Value>,
}

impl InputContext<'_> {
    fn expression_context(&self) -> Value {
        let mut context = Map::with_capacity(3);
        context.insert("field".into(), Value::Object(self.values.clone()));
        context.insert("workflow".into(), self.launch.clone());
        context.insert("query".into(), Value::Object(self.query.clone()));
        Value::Object(context)
    }
}

/// Whether any input of `config` is an expression that reads `context.workflow` (only then is
/// the launch workflow's result needed).
pub fn needs_launch_result(config: Option<&BTreeMap<String, DataProviderInput>>) -> bool {
    config.into_iter().flatten().any(|(_, input)| {
        input.mode == ProviderInputMode::Expression
            && input
                .expression
                .as_deref()
                .is_some_and(|e| e.contains("workflow"))
    })
}

/// The inputs of one provider call: the field's configuration resolved in `context`, completed
/// with the caller's `supplied` values (see the module rules). `admin` lets `supplied` replace
/// configured values. Errors name `dataProviderInputs.{name}`.
pub fn resolve_inputs(
    config: Option<&BTreeMap<String, DataProviderInput>>,
    context: &InputContext<'_>,
    supplied: &Map<String, Value>,
    admin: bool,
) -> Result<Map<String, Value>, Vec<FieldError>> {
    let mut resolved = Map::new();
    let mut errors = Vec::new();
    let mut expression_context = None;
    for (name, input) in config.into_iter().flatten() {
        let value = match input.mode {
            ProviderInputMode::Static => input.value.clone(),
            ProviderInputMode::FieldRef => input
                .field_name
                .as_deref()
                .and_then(|f| context.values.get(f))
                .cloned(),
            ProviderInputMode::Expression => {
                let Some(source) = input.expression.as_deref() else {
                    errors.push(FieldError::new(
                        &format!("dataProviderInputs.{name}"),
                        "has no expression",
                    ));
                    continue;
                };
                let context =
                    expression_context.get_or_insert_with(|| context.expression_context());
                match Expression::parse(source).and_then(|e| e.evaluate(context)) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        errors.push(FieldError::new(
                            &format!("dataProviderInputs.{name}"),
                            format!("the expression failed: {e}"),
                        ));
                        continue;
                    }
                }
            }
        };
        if let Some(value) = value.filter(|v| !is_missing(v)) {
            resolved.insert(name.clone(), value);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (name, value) in supplied {
        let configured_static = config
            .and_then(|c| c.get(name))
            .is_some_and(|i| i.mode == ProviderInputMode::Static);
        if is_missing(value) || (configured_static && !admin) {
            continue;
        }
        if admin || !resolved.contains_key(name) {
            resolved.insert(name.clone(), value.clone());
        }
    }
    Ok(resolved)
}

fn is_missing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Keeps the provider's declared parameters, reports every required one that is missing, then
/// checks (and converts, strings being accepted for typed parameters) the values. Errors name
/// `inputs.{name}`.
pub fn check_parameters(
    provider: &DataProviderInfo,
    mut inputs: Map<String, Value>,
) -> Result<Map<String, Value>, Vec<FieldError>> {
    inputs.retain(|k, _| provider.parameters.iter().any(|p| p.name == *k));
    let missing: Vec<FieldError> = provider
        .parameters
        .iter()
        .filter(|p| p.required && p.default_value.is_none() && !inputs.contains_key(&p.name))
        .map(|p| {
            FieldError::new(
                &format!("inputs.{}", p.name),
                format!("is required by data provider '{}'", provider.name),
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    input::validate(&provider.parameters, inputs, Coercion::FromStrings)
        .map_err(|e| vec![FieldError::new(&format!("inputs.{}", e.field), e.message)])
}

/// The cache row key of a call: SHA-256 of `[provider, inputs]` in canonical JSON.
pub fn cache_key(provider: &str, inputs: &Map<String, Value>) -> String {
    let canonical = Value::Array(vec![
        Value::String(provider.to_owned()),
        canonical(&Value::Object(inputs.clone())),
    ]);
    hex(&Sha256::digest(canonical.to_string().as_bytes()))
}

/// What a provider can observe about its caller besides the organization (which is the cache
/// partition): the user and whether they are a platform administrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheCaller<'a> {
    pub user_id: &'a str,
    pub is_platform_admin: bool,
}

/// The cache row key of a provider call for `caller`: the same answer is shared only by calls
/// that look the same to the provider. `None` for a provider that declared itself
/// caller-independent (then [`cache_key`]).
pub fn caller_cache_key(
    provider: &str,
    inputs: &Map<String, Value>,
    caller: Option<&CacheCaller<'_>>,
) -> String {
    let Some(caller) = caller else {
        return cache_key(provider, inputs);
    };
    let canonical = Value::Array(vec![
        Value::String(provider.to_owned()),
        canonical(&Value::Object(inputs.clone())),
        Value::String(caller.user_id.to_owned()),
        Value::Bool(caller.is_platform_admin),
    ]);
    hex(&Sha256::digest(canonical.to_string().as_bytes()))
}

/// `value` with object keys sorted at every level (whatever `serde_json`'s map order is).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Options served from the cache.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedOptions {
    pub options: Vec<DataProviderOption>,
    pub expires_at: OffsetDateTime,
}

/// The shared options cache (see the module documentation). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProviderCache {
    tables: Arc<dyn TableStore>,
    table: TableName,
}

impl ProviderCache {
    pub fn new(tables: Arc<dyn TableStore>) -> Result<Self, StoreError> {
        Ok(Self {
            tables,
            table: TableName::new(CACHE_TABLE)?,
        })
    }

    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        self.tables.create_table_if_missing(&self.table).await
    }

    fn partition(&self, scope: &Scope) -> ScopedTable {
        ScopedTable::new(self.tables.clone(), self.table.clone(), scope)
    }

    /// The unexpired options stored under `key` (one table read).
    pub async fn get(
        &self,
        scope: &Scope,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<CachedOptions>, StoreError> {
        let row = match self.partition(scope).get(&RowKey::new(key)?).await {
            Ok(row) => row,
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(row
            .and_then(|row| decode(&row))
            .filter(|c| c.expires_at > now))
    }

    /// Stores `options` under `key` until `expires_at`. Options too large for a row are not
    /// stored (`Ok(false)`).
    pub async fn put(
        &self,
        scope: &Scope,
        key: &str,
        provider: &str,
        options: &[DataProviderOption],
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(options)
            .map_err(|e| StoreError::Backend(format!("provider options: {e}")))?;
        let mut props = Properties::new();
        props.insert("Provider".into(), provider.into());
        props.insert("ExpiresAt".into(), expires_at.into());
        if put_chunked(&mut props, "Options", &json).is_err() {
            tracing::debug!(provider, "data provider options too large to cache");
            return Ok(false);
        }
        self.partition(scope)
            .upsert(RowKey::new(key)?, props, WriteMode::Replace)
            .await?;
        Ok(true)
    }
}

impl ProviderCache {
    /// Deletes the rows of `scope` that expired before `now` (the `retention` job); returns how
    /// many went. Expired rows are never served, only overwritten, so without this the table
    /// keeps one row per input combination ever asked for. A row refreshed meanwhile (its ETag
    /// moved) stays.
    pub async fn purge_expired(
        &self,
        scope: &Scope,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let table = self.partition(scope);
        let query = Query::new()
            .filter(prop("ExpiresAt").lt(now))
            .select(["ExpiresAt"]);
        let expired = match table.query_all(&query).await {
            Ok(rows) => rows,
            // No provider has cached anything yet.
            Err(StoreError::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut purged = 0;
        for row in expired {
            let if_match = row.etag.clone().map_or(IfMatch::Any, IfMatch::ETag);
            match table.delete(&row.row_key, &if_match).await {
                Ok(()) => purged += 1,
                Err(StoreError::NotFound { .. } | StoreError::PreconditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(purged)
    }
}

fn decode(row: &Entity) -> Option<CachedOptions> {
    let expires_at = row.get("ExpiresAt").and_then(TableValue::as_datetime)?;
    let json = read_chunked(row, "Options")?;
    let options = serde_json::from_str(&json).ok()?;
    Some(CachedOptions {
        options,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bifrost_engine::ParameterInfo;
    use bifrost_store::OrgId;
    use bifrost_store::table::SqliteTables;
    use serde_json::json;

    fn config(v: Value) -> BTreeMap<String, DataProviderInput> {
        serde_json::from_value(v).unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn param(name: &str, kind: &str, required: bool) -> ParameterInfo {
        ParameterInfo {
            name: name.into(),
            kind: kind.into(),
            label: None,
            required,
            validation: None,
            data_provider: None,
            default_value: None,
            help_text: None,
            options: None,
        }
    }

    fn provider(params: Vec<ParameterInfo>) -> DataProviderInfo {
        DataProviderInfo {
            name: "p".into(),
            description: String::new(),
            category: String::new(),
            cache_ttl_seconds: 60,
            caller_independent: false,
            source: None,
            source_file_path: Default::default(),
            parameters: params,
            parameters_inferred: false,
            module: String::new(),
            function: String::new(),
            line: 1,
            is_async: true,
        }
    }

    #[test]
    fn the_three_modes_resolve() {
        let c = config(json!({
            "org": {"mode": "static", "value": "acme"},
            "site": {"mode": "fieldRef", "fieldName": "site"},
            "upper": {"mode": "expression", "expression": "context.field.site.toUpperCase()"},
            "who": {"mode": "expression", "expression": "context.workflow.user + '@' + context.query.t"},
            "none": {"mode": "fieldRef", "fieldName": "empty"},
        }));
        let values = obj(json!({"site": "hq", "empty": ""}));
        let launch = json!({"user": "bob"});
        let query = obj(json!({"t": "42"}));
        let ctx = InputContext {
            values: &values,
            launch: &launch,
            query: &query,
        };
        assert!(needs_launch_result(Some(&c)));
        let supplied = obj(json!({"org": "evil", "none": "given", "extra": 1, "site": "other"}));
        let resolved = resolve_inputs(Some(&c), &ctx, &supplied, false).unwrap();
        assert_eq!(
            Value::Object(resolved),
            json!({"org": "acme", "site": "hq", "upper": "HQ", "who": "bob@42",
                   "none": "given", "extra": 1})
        );
        let admin = resolve_inputs(Some(&c), &ctx, &supplied, true).unwrap();
        assert_eq!(admin["org"], "evil");
        assert_eq!(admin["site"], "other");
    }

    #[test]
    fn failing_expressions_are_reported() {
        let c =
            config(json!({"x": {"mode": "expression", "expression": "context.field.n.toFixed("}}));
        let values = Map::new();
        let ctx = InputContext {
            values: &values,
            launch: &Value::Null,
            query: &values,
        };
        let errors = resolve_inputs(Some(&c), &ctx, &Map::new(), false).unwrap_err();
        assert_eq!(errors[0].field, "dataProviderInputs.x");
    }

    #[test]
    fn parameters_are_filtered_required_and_typed() {
        let p = provider(vec![
            param("a", "string", true),
            param("b", "int", true),
            param("c", "int", false),
        ]);
        let errors = check_parameters(&p, obj(json!({"zzz": 1}))).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["inputs.a", "inputs.b"]);
        let ok = check_parameters(&p, obj(json!({"a": "x", "b": "3", "zzz": 1}))).unwrap();
        assert_eq!(Value::Object(ok), json!({"a": "x", "b": 3}));
        let bad = check_parameters(&p, obj(json!({"a": "x", "b": "three"}))).unwrap_err();
        assert_eq!(bad[0].field, "inputs.b");
    }

    #[test]
    fn cache_keys_tell_callers_apart_unless_the_provider_is_caller_independent() {
        let inputs = Map::new();
        let ann = CacheCaller {
            user_id: "ann",
            is_platform_admin: false,
        };
        let bob = CacheCaller {
            user_id: "bob",
            ..ann.clone()
        };
        let admin_ann = CacheCaller {
            is_platform_admin: true,
            ..ann.clone()
        };
        let k = |c| caller_cache_key("p", &inputs, c);
        assert_ne!(k(Some(&ann)), k(Some(&bob)));
        assert_ne!(k(Some(&ann)), k(Some(&admin_ann)));
        assert_eq!(k(None), cache_key("p", &inputs));
    }

    #[test]
    fn cache_keys_ignore_key_order() {
        let a = obj(json!({"x": 1, "y": {"b": 2, "a": [1, {"d": 1, "c": 2}]}}));
        let mut b = Map::new();
        b.insert("y".into(), json!({"a": [1, {"c": 2, "d": 1}], "b": 2}));
        b.insert("x".into(), json!(1));
        assert_eq!(cache_key("p", &a), cache_key("p", &b));
        assert_ne!(cache_key("p", &a), cache_key("q", &a));
        assert_eq!(cache_key("p", &a).len(), 64);
    }

    #[tokio::test]
    async fn cache_round_trip_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let tables: Arc<dyn TableStore> =
            Arc::new(SqliteTables::open(&dir.path().join("t.db")).unwrap());
        let cache = ProviderCache::new(tables).unwrap();
        let scope = Scope::Org(OrgId::parse("o1").unwrap());
        let now = OffsetDateTime::now_utc();
        let key = cache_key("p", &Map::new());
        assert!(
            cache.get(&scope, &key, now).await.unwrap().is_none(),
            "no table yet"
        );
        cache.ensure_table().await.unwrap();
        let options = vec![DataProviderOption {
            label: "A".into(),
            value: json!("a"),
            metadata: Some(obj(json!({"k": 1}))),
        }];
        let expires = now + time::Duration::seconds(60);
        assert!(
            cache
                .put(&scope, &key, "p", &options, expires)
                .await
                .unwrap()
        );
        let hit = cache.get(&scope, &key, now).await.unwrap().unwrap();
        assert_eq!(hit.options, options);
        assert!(
            cache
                .get(&Scope::Global, &key, now)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            cache
                .get(&scope, &key, expires + time::Duration::seconds(1))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn expired_rows_are_purged_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let tables: Arc<dyn TableStore> = Arc::new(SqliteTables::open(dir.path()).unwrap());
        let cache = ProviderCache::new(tables).unwrap();
        let scope = Scope::Org(OrgId::parse("o1").unwrap());
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            cache.purge_expired(&scope, now).await.unwrap(),
            0,
            "no table yet"
        );
        cache.ensure_table().await.unwrap();
        let options = vec![DataProviderOption {
            label: "A".into(),
            value: json!("a"),
            metadata: None,
        }];
        for (key, seconds) in [("old1", -60), ("old2", -1), ("fresh", 60)] {
            let expires = now + time::Duration::seconds(seconds);
            assert!(
                cache
                    .put(&scope, key, "p", &options, expires)
                    .await
                    .unwrap()
            );
        }
        // Another scope's expired row is not this scope's business.
        cache
            .put(
                &Scope::Global,
                "old1",
                "p",
                &options,
                now - time::Duration::seconds(5),
            )
            .await
            .unwrap();
        assert_eq!(cache.purge_expired(&scope, now).await.unwrap(), 2);
        let later = now - time::Duration::seconds(1);
        assert!(cache.get(&scope, "fresh", later).await.unwrap().is_some());
        assert!(
            cache
                .get(&scope, "old2", later - time::Duration::seconds(1))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(cache.purge_expired(&scope, now).await.unwrap(), 0);
        assert_eq!(cache.purge_expired(&Scope::Global, now).await.unwrap(), 1);
    }
}

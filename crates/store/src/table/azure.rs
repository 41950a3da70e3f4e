//! The Azure Tables backend (also Azurite), over the legacy 0.21 Azure SDK's signed request
//! pipeline (`azure_storage::clients::new_pipeline_from_options`: SharedKey or Entra ID auth).
//!
//! Only this module knows the Azure Tables wire protocol. We build the requests ourselves
//! rather than through `azure_data_tables`' builders because those cannot express what the
//! contract needs: they splice keys into entity URLs without doubling `'`, they report a failed
//! batch as `Ok` and drop the failing operation's index, and their filters are raw strings.
//! Invariants: every input is validated (shared `validate.rs`) before a request is sent; values
//! carry `@odata.type` annotations so every Edm type round-trips; `$filter` text comes only from
//! [`Filter::to_odata`]; transient failures (408/429/500/502/503/504, timeouts, connection
//! errors) are retried with exponential backoff and end as `StoreError::Unavailable`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core_legacy::error::ErrorKind;
use azure_core_legacy::headers::{HeaderName, Headers};
use azure_core_legacy::{ClientOptions, Context, Method, Pipeline, RetryOptions, TransportOptions};
use azure_storage::clients::ServiceType;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value as Json, json};
use url::Url;

use crate::azure_account::AzureAccount;
use crate::error::{StoreError, StoreResult};
use crate::keys::{PartitionKey, RowKey};
use crate::table::TableStore;
use crate::table::batch::{Batch, BatchOp};
use crate::table::model::{
    ContinuationToken, ETag, EdmType, Entity, IfMatch, Page, Properties, Query, TableName, Value,
    WriteMode, format_datetime, parse_datetime,
};
use crate::table::validate::{validate_batch, validate_entity, validate_query};

/// Retry and timeout settings of the Azure backend.
#[derive(Clone, Debug)]
pub struct AzureTablesOptions {
    /// Retries after the first attempt for transient failures.
    pub max_retries: u32,
    /// First backoff delay; doubled per retry (with jitter).
    pub initial_backoff: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for AzureTablesOptions {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_backoff: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Azure Tables (or Azurite) table store. Cheap to clone.
#[derive(Clone)]
pub struct AzureTables {
    pipeline: Pipeline,
    endpoint: Url,
    options: AzureTablesOptions,
}

impl std::fmt::Debug for AzureTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureTables")
            .field("endpoint", &self.endpoint.as_str())
            .finish()
    }
}

const ACCEPT_FULL: &str = "application/json;odata=fullmetadata";
const ACCEPT_NONE: &str = "application/json;odata=nometadata";

struct Response {
    headers: Headers,
    body: Bytes,
}

fn header(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

impl AzureTables {
    pub fn new(account: &AzureAccount) -> StoreResult<Self> {
        Self::with_options(account, AzureTablesOptions::default())
    }

    pub fn with_options(account: &AzureAccount, options: AzureTablesOptions) -> StoreResult<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .build()
            .map_err(|e| StoreError::Backend(format!("http client: {e}")))?;
        // Our own loop retries (it must tell 412/409 from 503 and map exhaustion to Unavailable).
        let client_options = ClientOptions::default()
            .transport(TransportOptions::new(Arc::new(http)))
            .retry(RetryOptions::none());
        let pipeline = azure_storage::clients::new_pipeline_from_options(
            client_options,
            account.storage_credentials()?,
        );
        Ok(Self {
            pipeline,
            endpoint: account.table_endpoint.clone(),
            options,
        })
    }

    fn url(&self, segment: &str) -> StoreResult<Url> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| StoreError::invalid("TableEndpoint", "cannot be a base URL"))?
            .pop_if_empty()
            .push(segment);
        Ok(url)
    }

    fn entity_url(&self, table: &TableName, pk: &PartitionKey, rk: &RowKey) -> StoreResult<Url> {
        // Keys are quoted OData literals inside the path: double `'`; `push` percent-encodes
        // the rest (`%`, space, non-ASCII); `/ \ # ?` cannot occur in a valid key.
        self.url(&format!(
            "{}(PartitionKey='{}',RowKey='{}')",
            table.as_str(),
            pk.as_str().replace('\'', "''"),
            rk.as_str().replace('\'', "''")
        ))
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(&'static str, String)],
        body: Option<Bytes>,
        max_retries: u32,
    ) -> StoreResult<Response> {
        let mut attempt = 0u32;
        loop {
            let mut hs = Headers::new();
            for (name, value) in headers {
                hs.insert(header(name), value.clone());
            }
            let mut request = azure_storage::clients::finalize_request(
                url.clone(),
                method,
                hs,
                body.clone().map(Into::into),
            )
            .map_err(|e| StoreError::Backend(format!("building request: {e}")))?;
            let mut ctx = Context::new();
            ctx.insert(ServiceType::Table);
            let failure = match self.pipeline.send(&ctx, &mut request).await {
                Ok(response) => {
                    let (_, headers, body) = response.deconstruct();
                    match body.collect().await {
                        Ok(body) => return Ok(Response { headers, body }),
                        Err(e) => Failure::Transient(format!("reading response: {e}")),
                    }
                }
                Err(e) => classify(&e),
            };
            match failure {
                Failure::Final(err) => return Err(err),
                Failure::Transient(reason) if attempt >= max_retries => {
                    return Err(StoreError::unavailable(format!("azure tables: {reason}")));
                }
                Failure::Transient(reason) => {
                    tracing::debug!(attempt, %reason, "retrying azure tables request");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .options
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(10));
        // Up to 25% jitter so retrying clients spread out.
        let jitter = u64::from(uuid::Uuid::new_v4().as_u128() as u16) % 256;
        base + base.mul_f64(jitter as f64 / 1024.0)
    }

    async fn write_entity(&self, table: &TableName, op: &BatchOp) -> StoreResult<ETag> {
        let (method, url, headers, body) = self.entity_request(table, op)?;
        let response = self
            .send(method, url, &headers, body, self.options.max_retries)
            .await
            .map_err(|e| name_table(e, table))?;
        etag_of(&response.headers)
    }

    /// Method, URL, headers and body of one entity write, as sent alone or inside a batch.
    #[allow(clippy::type_complexity)]
    fn entity_request(
        &self,
        table: &TableName,
        op: &BatchOp,
    ) -> StoreResult<(Method, Url, Vec<(&'static str, String)>, Option<Bytes>)> {
        let mut headers = vec![("accept", ACCEPT_NONE.to_owned())];
        let if_match = |m: &IfMatch| match m {
            IfMatch::Any => "*".to_owned(),
            IfMatch::ETag(e) => e.as_str().to_owned(),
        };
        let body = |e: &Entity| Some(Bytes::from(entity_json(e).to_string()));
        let (method, url, body) = match op {
            BatchOp::Insert(e) => {
                headers.push(("prefer", "return-no-content".to_owned()));
                (Method::Post, self.url(table.as_str())?, body(e))
            }
            BatchOp::Upsert(e, mode) => (
                write_method(*mode),
                self.entity_url(table, &e.partition_key, &e.row_key)?,
                body(e),
            ),
            BatchOp::Update(e, mode, m) => {
                headers.push(("if-match", if_match(m)));
                (
                    write_method(*mode),
                    self.entity_url(table, &e.partition_key, &e.row_key)?,
                    body(e),
                )
            }
            BatchOp::Delete {
                partition_key,
                row_key,
                if_match: m,
            } => {
                headers.push(("if-match", if_match(m)));
                (
                    Method::Delete,
                    self.entity_url(table, partition_key, row_key)?,
                    None,
                )
            }
        };
        if body.is_some() {
            headers.push(("content-type", "application/json".to_owned()));
        }
        headers.push(("dataserviceversion", "3.0".to_owned()));
        Ok((method, url, headers, body))
    }
}

/// `classify` cannot know the table's name; put it into "table not found" errors.
fn name_table(err: StoreError, table: &TableName) -> StoreError {
    match err {
        StoreError::NotFound { what } if what == "table" => {
            StoreError::not_found(format!("table {table}"))
        }
        other => other,
    }
}

fn write_method(mode: WriteMode) -> Method {
    match mode {
        WriteMode::Merge => Method::Merge,
        WriteMode::Replace => Method::Put,
    }
}

enum Failure {
    Transient(String),
    Final(StoreError),
}

fn classify(e: &azure_core_legacy::Error) -> Failure {
    match e.kind() {
        ErrorKind::HttpResponse { status, error_code } => {
            let status = u16::from(*status);
            let code = error_code.clone().unwrap_or_default();
            let what = || {
                e.as_http_error()
                    .and_then(|h| h.error_message())
                    .map(|m| m.lines().next().unwrap_or_default().to_owned())
                    .unwrap_or_else(|| code.clone())
            };
            Failure::Final(match status {
                408 | 429 | 500 | 502 | 503 | 504 => {
                    return Failure::Transient(format!("HTTP {status} {code}"));
                }
                404 => StoreError::not_found(if code == "TableNotFound" {
                    "table".to_owned()
                } else {
                    what()
                }),
                409 if code == "EntityAlreadyExists" || code == "TableAlreadyExists" => {
                    StoreError::AlreadyExists { what: what() }
                }
                412 => StoreError::PreconditionFailed { what: what() },
                400 | 413 => StoreError::invalid(
                    "request",
                    format!("rejected by Azure Tables: {code}: {}", what()),
                ),
                _ => StoreError::Backend(format!("azure tables HTTP {status} {code}")),
            })
        }
        ErrorKind::Io => Failure::Transient(format!("{e}")),
        _ => Failure::Final(StoreError::Backend(format!("azure tables: {e}"))),
    }
}

fn etag_of(headers: &Headers) -> StoreResult<ETag> {
    headers
        .get_optional_str(&header("etag"))
        .map(ETag::new)
        .ok_or_else(|| StoreError::Backend("azure tables: response without ETag".into()))
}

/// The JSON body of an entity, with `@odata.type` annotations for the types JSON cannot carry.
fn entity_json(entity: &Entity) -> Json {
    let mut map = Map::new();
    map.insert("PartitionKey".into(), json!(entity.partition_key.as_str()));
    map.insert("RowKey".into(), json!(entity.row_key.as_str()));
    for (name, value) in &entity.properties {
        let (json_value, annotate) = match value {
            Value::String(s) => (json!(s), false),
            Value::Int32(v) => (json!(v), false),
            Value::Int64(v) => (json!(v.to_string()), true),
            Value::Double(v) if v.is_nan() => (json!("NaN"), true),
            Value::Double(v) if v.is_infinite() => {
                (json!(if *v > 0.0 { "Infinity" } else { "-Infinity" }), true)
            }
            Value::Double(v) => (json!(v), true),
            Value::Boolean(v) => (json!(v), false),
            Value::DateTime(v) => (json!(format_datetime(*v)), true),
            Value::Guid(v) => (json!(v.hyphenated().to_string()), true),
            Value::Binary(b) => (
                json!(base64::engine::general_purpose::STANDARD.encode(b)),
                true,
            ),
        };
        map.insert(name.clone(), json_value);
        if annotate {
            map.insert(
                format!("{name}@odata.type"),
                json!(value.edm_type().odata_name()),
            );
        }
    }
    Json::Object(map)
}

/// Reads an entity from a `fullmetadata` JSON object.
fn parse_entity(obj: &Map<String, Json>, etag_header: Option<&str>) -> StoreResult<Entity> {
    let bad = |what: &str| {
        StoreError::Backend(format!(
            "azure tables returned an unreadable entity ({what})"
        ))
    };
    let key = |name: &str| {
        obj.get(name)
            .and_then(Json::as_str)
            .ok_or_else(|| bad(name))
    };
    let mut entity = Entity::new(
        PartitionKey::new(key("PartitionKey")?)?,
        RowKey::new(key("RowKey")?)?,
    );
    entity.timestamp = obj
        .get("Timestamp")
        .and_then(Json::as_str)
        .and_then(parse_datetime);
    entity.etag = obj
        .get("odata.etag")
        .and_then(Json::as_str)
        .or(etag_header)
        .map(ETag::new);
    let mut props = Properties::new();
    for (name, raw) in obj {
        if name.starts_with("odata.")
            || name.contains('@')
            || matches!(name.as_str(), "PartitionKey" | "RowKey" | "Timestamp")
            || raw.is_null()
        {
            continue;
        }
        let annotation = obj
            .get(&format!("{name}@odata.type"))
            .and_then(Json::as_str)
            .and_then(EdmType::from_odata_name);
        let value = match (annotation, raw) {
            (None | Some(EdmType::String), Json::String(s)) => Value::String(s.clone()),
            (None | Some(EdmType::Boolean), Json::Bool(b)) => Value::Boolean(*b),
            (None | Some(EdmType::Int32), Json::Number(n)) if n.is_i64() => Value::Int32(
                n.as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| bad(name))?,
            ),
            (None | Some(EdmType::Double), Json::Number(n)) => {
                Value::Double(n.as_f64().ok_or_else(|| bad(name))?)
            }
            (Some(EdmType::Double), Json::String(s)) => Value::Double(match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => other.parse().map_err(|_| bad(name))?,
            }),
            (Some(EdmType::Int64), Json::String(s)) => {
                Value::Int64(s.parse().map_err(|_| bad(name))?)
            }
            (Some(EdmType::DateTime), Json::String(s)) => {
                Value::DateTime(parse_datetime(s).ok_or_else(|| bad(name))?)
            }
            (Some(EdmType::Guid), Json::String(s)) => {
                Value::Guid(s.parse().map_err(|_| bad(name))?)
            }
            (Some(EdmType::Binary), Json::String(s)) => Value::Binary(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| bad(name))?,
            ),
            _ => return Err(bad(name)),
        };
        props.insert(name.clone(), value);
    }
    entity.properties = props;
    Ok(entity)
}

/// Query-string encoding: everything but unreserved characters is percent-encoded (spaces as
/// `%20`, which Azure requires in `$filter`).
fn encode_query(pairs: &[(&str, &str)]) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, SET)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses a `$batch` response: the status, headers and body of each inner response, in order.
fn parse_batch_response(body: &str) -> Vec<(u16, Option<String>, String)> {
    let mut parts = Vec::new();
    for chunk in body.split("--changesetresponse_").skip(1) {
        let Some(http_at) = chunk.find("HTTP/1.1 ") else {
            continue;
        };
        let inner = &chunk[http_at..];
        let status = inner
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let (head, rest) = inner
            .split_once("\r\n\r\n")
            .or_else(|| inner.split_once("\n\n"))
            .unwrap_or((inner, ""));
        let etag = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("etag")
                .then(|| value.trim().to_owned())
        });
        parts.push((status, etag, rest.trim().to_owned()));
    }
    parts
}

/// The failing operation's index: Azure prefixes the error message with `<index>:`.
fn failed_index(body: &str) -> Option<usize> {
    let json: Json = serde_json::from_str(body).ok()?;
    let message = json
        .pointer("/odata.error/message/value")
        .and_then(Json::as_str)?;
    message.split_once(':')?.0.trim().parse().ok()
}

fn batch_error(status: u16, body: &str) -> StoreError {
    let code = serde_json::from_str::<Json>(body)
        .ok()
        .and_then(|j| {
            j.pointer("/odata.error/code")
                .and_then(Json::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    match status {
        404 => StoreError::not_found(if code.is_empty() {
            "entity".to_owned()
        } else {
            code
        }),
        409 => StoreError::AlreadyExists {
            what: format!("entity ({code})"),
        },
        412 => StoreError::PreconditionFailed {
            what: format!("entity ({code})"),
        },
        400 | 413 => StoreError::invalid(
            "batch operation",
            format!("rejected by Azure Tables: {code}"),
        ),
        _ => StoreError::Backend(format!("azure tables batch operation HTTP {status} {code}")),
    }
}

#[async_trait]
impl TableStore for AzureTables {
    fn backend(&self) -> &'static str {
        "azure"
    }

    async fn health(&self) -> StoreResult<()> {
        let mut url = self.url("Tables")?;
        url.set_query(Some("$top=1"));
        self.send(
            Method::Get,
            url,
            &[("accept", ACCEPT_NONE.to_owned())],
            None,
            0,
        )
        .await
        .map(|_| ())
    }

    async fn create_table_if_missing(&self, table: &TableName) -> StoreResult<()> {
        let body = Bytes::from(json!({ "TableName": table.as_str() }).to_string());
        let headers = [
            ("accept", ACCEPT_NONE.to_owned()),
            ("content-type", "application/json".to_owned()),
            ("prefer", "return-no-content".to_owned()),
        ];
        match self
            .send(
                Method::Post,
                self.url("Tables")?,
                &headers,
                Some(body),
                self.options.max_retries,
            )
            .await
        {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn insert(&self, table: &TableName, entity: &Entity) -> StoreResult<ETag> {
        validate_entity(entity)?;
        self.write_entity(table, &BatchOp::Insert(entity.clone()))
            .await
    }

    async fn upsert(
        &self,
        table: &TableName,
        entity: &Entity,
        mode: WriteMode,
    ) -> StoreResult<ETag> {
        validate_entity(entity)?;
        self.write_entity(table, &BatchOp::Upsert(entity.clone(), mode))
            .await
    }

    async fn update(
        &self,
        table: &TableName,
        entity: &Entity,
        mode: WriteMode,
        if_match: &IfMatch,
    ) -> StoreResult<ETag> {
        validate_entity(entity)?;
        self.write_entity(
            table,
            &BatchOp::Update(entity.clone(), mode, if_match.clone()),
        )
        .await
    }

    async fn delete(
        &self,
        table: &TableName,
        partition_key: &PartitionKey,
        row_key: &RowKey,
        if_match: &IfMatch,
    ) -> StoreResult<()> {
        let op = BatchOp::Delete {
            partition_key: partition_key.clone(),
            row_key: row_key.clone(),
            if_match: if_match.clone(),
        };
        let (method, url, headers, body) = self.entity_request(table, &op)?;
        self.send(method, url, &headers, body, self.options.max_retries)
            .await
            .map(|_| ())
            .map_err(|e| name_table(e, table))
    }

    async fn get(
        &self,
        table: &TableName,
        partition_key: &PartitionKey,
        row_key: &RowKey,
    ) -> StoreResult<Option<Entity>> {
        let url = self.entity_url(table, partition_key, row_key)?;
        let response = match self
            .send(
                Method::Get,
                url,
                &[("accept", ACCEPT_FULL.to_owned())],
                None,
                self.options.max_retries,
            )
            .await
        {
            Ok(r) => r,
            Err(StoreError::NotFound { what }) if what != "table" => return Ok(None),
            Err(StoreError::NotFound { .. }) => {
                return Err(StoreError::not_found(format!("table {table}")));
            }
            Err(e) => return Err(e),
        };
        let json: Json = serde_json::from_slice(&response.body)
            .map_err(|e| StoreError::Backend(format!("azure tables: bad entity JSON: {e}")))?;
        let obj = json
            .as_object()
            .ok_or_else(|| StoreError::Backend("azure tables: entity is not an object".into()))?;
        parse_entity(obj, response.headers.get_optional_str(&header("etag"))).map(Some)
    }

    async fn query(&self, table: &TableName, query: &Query) -> StoreResult<Page> {
        validate_query(query)?;
        let filter = query.filter.as_ref().map(|f| f.to_odata());
        let select = query.select.as_ref().map(|names| {
            let mut all = vec![
                "PartitionKey".to_owned(),
                "RowKey".to_owned(),
                "Timestamp".to_owned(),
            ];
            all.extend(
                names
                    .iter()
                    .filter(|n| !all.contains(n))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            all.join(",")
        });
        let top = query.effective_page_size().to_string();
        let position = query
            .continuation
            .as_ref()
            .map(ContinuationToken::position)
            .transpose()?;
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(f) = &filter {
            pairs.push(("$filter", f));
        }
        if let Some(s) = &select {
            pairs.push(("$select", s));
        }
        pairs.push(("$top", &top));
        if let Some((npk, nrk)) = &position {
            pairs.push(("NextPartitionKey", npk));
            if let Some(nrk) = nrk {
                pairs.push(("NextRowKey", nrk));
            }
        }
        let mut url = self.url(&format!("{}()", table.as_str()))?;
        url.set_query(Some(&encode_query(&pairs)));
        let response = match self
            .send(
                Method::Get,
                url,
                &[("accept", ACCEPT_FULL.to_owned())],
                None,
                self.options.max_retries,
            )
            .await
        {
            Err(StoreError::NotFound { .. }) => {
                return Err(StoreError::not_found(format!("table {table}")));
            }
            other => other?,
        };
        let json: Json = serde_json::from_slice(&response.body)
            .map_err(|e| StoreError::Backend(format!("azure tables: bad query JSON: {e}")))?;
        let mut entities = Vec::new();
        for item in json
            .get("value")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let obj = item.as_object().ok_or_else(|| {
                StoreError::Backend("azure tables: entity is not an object".into())
            })?;
            entities.push(parse_entity(obj, None)?);
        }
        let next_pk = response
            .headers
            .get_optional_str(&header("x-ms-continuation-nextpartitionkey"));
        let next_rk = response
            .headers
            .get_optional_str(&header("x-ms-continuation-nextrowkey"));
        let continuation = next_pk.map(|pk| ContinuationToken::from_position(pk, next_rk));
        Ok(Page {
            entities,
            continuation,
        })
    }

    async fn batch(&self, table: &TableName, batch: &Batch) -> StoreResult<Vec<Option<ETag>>> {
        validate_batch(batch)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let batch_id = format!("batch_{}", uuid::Uuid::new_v4());
        let changeset_id = format!("changeset_{}", uuid::Uuid::new_v4());
        let mut body = format!(
            "--{batch_id}\r\nContent-Type: multipart/mixed; boundary={changeset_id}\r\n\r\n"
        );
        for op in batch.operations() {
            let (method, url, headers, op_body) = self.entity_request(table, op)?;
            body.push_str(&format!(
                "--{changeset_id}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{} {} HTTP/1.1\r\n",
                method.as_ref(),
                url
            ));
            for (name, value) in &headers {
                body.push_str(&format!("{name}: {value}\r\n"));
            }
            body.push_str("\r\n");
            if let Some(b) = op_body {
                body.push_str(&String::from_utf8_lossy(&b));
            }
            body.push_str("\r\n");
        }
        body.push_str(&format!("--{changeset_id}--\r\n--{batch_id}--\r\n"));
        let headers = [
            (
                "content-type",
                format!("multipart/mixed; boundary={batch_id}"),
            ),
            ("accept", ACCEPT_NONE.to_owned()),
            ("dataserviceversion", "3.0".to_owned()),
            ("maxdataserviceversion", "3.0;NetFx".to_owned()),
        ];
        let response = self
            .send(
                Method::Post,
                self.url("$batch")?,
                &headers,
                Some(Bytes::from(body)),
                self.options.max_retries,
            )
            .await?;
        let text = String::from_utf8_lossy(&response.body);
        let parts = parse_batch_response(&text);
        // Azure answers 202 even when the changeset failed; the failure is one inner response.
        if let Some((status, _, part_body)) = parts.iter().find(|(status, _, _)| *status >= 400) {
            let index = failed_index(part_body).unwrap_or(0);
            return Err(match batch_error(*status, part_body) {
                // Not an operation's fault: the same error as any other write to a missing table.
                StoreError::NotFound { what } if what == "TableNotFound" => {
                    StoreError::not_found(format!("table {table}"))
                }
                source => StoreError::BatchFailed {
                    index,
                    source: Box::new(source),
                },
            });
        }
        if parts.len() != batch.len() {
            return Err(StoreError::Backend(format!(
                "azure tables batch: {} responses for {} operations",
                parts.len(),
                batch.len()
            )));
        }
        Ok(batch
            .operations()
            .iter()
            .zip(parts)
            .map(|(op, (_, etag, _))| match op {
                BatchOp::Delete { .. } => None,
                _ => etag.map(ETag::new),
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn entity_json_annotates_non_json_types_and_round_trips() {
        let e = Entity::new(PartitionKey::new("p").unwrap(), RowKey::new("r").unwrap())
            .with("L", i64::MIN)
            .with("D", 2.0)
            .with("I", 7)
            .with("N", f64::NAN)
            .with("B", vec![1u8, 2]);
        let json = entity_json(&e);
        assert_eq!(json["L"], json!("-9223372036854775808"));
        assert_eq!(json["L@odata.type"], json!("Edm.Int64"));
        assert_eq!(json["D@odata.type"], json!("Edm.Double"));
        assert!(json.get("I@odata.type").is_none());
        let back = parse_entity(json.as_object().unwrap(), Some("W/\"x\"")).unwrap();
        assert_eq!(back.get("L"), Some(&Value::Int64(i64::MIN)));
        assert_eq!(back.get("D"), Some(&Value::Double(2.0)));
        assert_eq!(back.get("I"), Some(&Value::Int32(7)));
        assert!(back.get("N").and_then(Value::as_f64).unwrap().is_nan());
        assert_eq!(back.get("B"), Some(&Value::Binary(vec![1, 2])));
        assert_eq!(back.etag, Some(ETag::new("W/\"x\"")));
    }

    #[test]
    fn batch_failure_index_comes_from_the_error_message() {
        let body = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n\
            --changesetresponse_2\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 409 Conflict\r\n\
            Content-Type: application/json\r\n\r\n{\"odata.error\":{\"code\":\"EntityAlreadyExists\",\
            \"message\":{\"lang\":\"en-US\",\"value\":\"2:The specified entity already exists.\"}}}\r\n\
            --changesetresponse_2--\r\n--batchresponse_1--\r\n";
        let parts = parse_batch_response(body);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].0, 409);
        assert_eq!(failed_index(&parts[0].2), Some(2));
    }

    #[test]
    fn query_strings_percent_encode_everything_reserved() {
        assert_eq!(
            encode_query(&[("$filter", "A eq 'x''&y'")]),
            "$filter=A%20eq%20%27x%27%27%26y%27"
        );
    }
}

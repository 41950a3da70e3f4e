//! [`KeyVaultSecrets`]: the Azure Key Vault backend, built on the official
//! `azure_security_keyvault_secrets` 1.x client (used unmodified) and `azure_identity` 1.x.
//!
//! What this layer adds on top of the SDK:
//! - credentials from configuration: managed identity (system- or user-assigned), developer
//!   tools, or an injected `TokenCredential`;
//! - a short-lived in-memory cache (Key Vault throttles at a few thousand reads per 10 s per
//!   vault), invalidated by `set`/`delete` on this instance, with concurrent misses of one name
//!   coalesced into a single request;
//! - retries: the SDK's exponential policy already retries 408/429/5xx and connection errors and
//!   waits at least the server's `Retry-After`; we bound the attempts and add
//!   [`RetryAfterGuard`] so a `Retry-After` longer than `max_retry_delay` fails fast as
//!   `Unavailable` (the HTTP layer turns it into 503 with that delay) instead of parking a
//!   request for minutes;
//! - typed errors: 404 → `None`/`false`, 409 → `SoftDeleted`, 401/403 → `AccessDenied`,
//!   throttling/5xx/unreachable → `Unavailable { retry_after }`.
//!
//! Must not depend on the local backend. Never logs values or tokens; error texts carry status
//! codes and Key Vault error codes only.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{Headers, RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
use azure_core::http::policies::{Policy, PolicyResult, get_retry_after};
use azure_core::http::{
    ClientOptions, Context, ExponentialRetryOptions, Request, RetryOptions, StatusCode, Transport,
};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};
use azure_security_keyvault_secrets::models::{
    SecretClientListSecretPropertiesOptions, SetSecretParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use futures::TryStreamExt;
use serde::Deserialize;

use crate::error::{SecretsError, SecretsResult};
use crate::name::{SecretName, normalize_prefix};
use crate::store::SecretStore;
use crate::value::SecretValue;

/// Default lifetime of cached values.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// Name read by [`SecretStore::health`]; its absence (404) counts as healthy.
pub const HEALTH_PROBE_NAME: &str = "bifrost-health-probe";

/// Key Vault pages hold at most 25 items.
const LIST_PAGE_SIZE: i32 = 25;
/// Beyond this many entries, expired ones are swept on insert.
const CACHE_SWEEP_THRESHOLD: usize = 1024;

/// Where the backend gets its Entra ID tokens.
#[derive(Clone, Debug, Default)]
pub enum KeyVaultCredential {
    /// The App Service / Functions / VM managed identity: system-assigned, or the user-assigned
    /// identity named by [`KeyVaultConfig::client_id`].
    #[default]
    ManagedIdentity,
    /// Azure CLI, then Azure Developer CLI: for running the server on a developer machine.
    DeveloperTools,
    /// A caller-supplied credential (service principal, workload identity, tests).
    Token(Arc<dyn TokenCredential>),
}

/// Settings of the Key Vault backend. Build with `..Default::default()`.
#[derive(Clone, Debug)]
pub struct KeyVaultConfig {
    /// `https://<vault>.vault.azure.net` (or a sovereign-cloud equivalent).
    pub vault_url: String,
    pub credential: KeyVaultCredential,
    /// Client id of a user-assigned managed identity; only with `KeyVaultCredential::ManagedIdentity`.
    pub client_id: Option<String>,
    /// How long a read value is reused; `Duration::ZERO` disables the cache.
    pub cache_ttl: Duration,
    /// Retries after the first attempt for 408/429/5xx and connection errors.
    pub max_retries: u32,
    /// The longest single wait between attempts, `Retry-After` included. A longer `Retry-After`
    /// ends the call at once with `SecretsError::Unavailable` carrying that delay.
    pub max_retry_delay: Duration,
    /// Total time budget for one call's retries.
    pub max_retry_elapsed: Duration,
    /// Extra root certificate(s), PEM, trusted in addition to the system roots. For private CAs
    /// (TLS-inspecting proxies) and for tests against a loopback Key Vault double.
    pub extra_root_ca_pem: Option<String>,
    /// A complete `azure_core` transport replacing the default HTTP client (custom proxies,
    /// DNS overrides, tests). Cannot be combined with `extra_root_ca_pem`.
    pub transport: Option<Transport>,
    /// Whether the resource in Key Vault's 401 challenge must match the vault's domain (the SDK
    /// default, a guard against token theft by a look-alike host). Turn off only for a vault
    /// reached through a non-Azure host name, e.g. a loopback test double.
    pub verify_challenge_resource: bool,
    /// Overrides the SDK's Key Vault REST `api-version`.
    pub api_version: Option<String>,
}

impl Default for KeyVaultConfig {
    fn default() -> Self {
        Self {
            vault_url: String::new(),
            credential: KeyVaultCredential::default(),
            client_id: None,
            cache_ttl: DEFAULT_CACHE_TTL,
            max_retries: 3,
            max_retry_delay: Duration::from_secs(10),
            max_retry_elapsed: Duration::from_secs(30),
            extra_root_ca_pem: None,
            transport: None,
            verify_challenge_resource: true,
            api_version: None,
        }
    }
}

pub struct KeyVaultSecrets {
    client: SecretClient,
    vault_url: String,
    cache: Cache,
}

impl fmt::Debug for KeyVaultSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVaultSecrets")
            .field("vault_url", &self.vault_url)
            .field("cache_ttl", &self.cache.ttl)
            .finish_non_exhaustive()
    }
}

impl KeyVaultSecrets {
    /// Validates the configuration and builds the client. No request is sent: the first call
    /// performs Key Vault's challenge handshake.
    pub fn new(config: KeyVaultConfig) -> SecretsResult<Self> {
        let url = url::Url::parse(&config.vault_url)
            .map_err(|e| SecretsError::invalid("vaultUrl", format!("is not a URL: {e}")))?;
        if url.scheme() != "https" {
            return Err(SecretsError::invalid(
                "vaultUrl",
                "must use https (Key Vault bearer tokens are never sent over plain http)",
            ));
        }
        if url.host_str().is_none() {
            return Err(SecretsError::invalid("vaultUrl", "must name a host"));
        }
        if config.max_retry_delay.is_zero() {
            return Err(SecretsError::invalid("maxRetryDelay", "must be positive"));
        }

        if config.client_id.is_some()
            && !matches!(config.credential, KeyVaultCredential::ManagedIdentity)
        {
            return Err(SecretsError::invalid(
                "clientId",
                "selects a user-assigned managed identity and applies only to the managed identity credential",
            ));
        }
        let credential: Arc<dyn TokenCredential> = match config.credential {
            KeyVaultCredential::ManagedIdentity => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: config.client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| SecretsError::Credential(e.to_string()))?
            }
            KeyVaultCredential::DeveloperTools => DeveloperToolsCredential::new(None)
                .map_err(|e| SecretsError::Credential(e.to_string()))?,
            KeyVaultCredential::Token(credential) => credential,
        };

        let transport = match (config.transport, config.extra_root_ca_pem) {
            (Some(_), Some(_)) => {
                return Err(SecretsError::invalid(
                    "extraRootCaPem",
                    "cannot be combined with a custom transport; add the CA to that transport",
                ));
            }
            (Some(transport), None) => Some(transport),
            (None, Some(pem)) => Some(transport_with_extra_roots(&pem)?),
            (None, None) => None,
        };

        let retry = RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(200),
            max_retries: config.max_retries,
            max_total_elapsed: to_azure_duration(config.max_retry_elapsed),
            max_delay: to_azure_duration(config.max_retry_delay),
        });
        let guard: Arc<dyn Policy> = Arc::new(RetryAfterGuard {
            max_wait: config.max_retry_delay,
        });
        let client_options = ClientOptions {
            retry,
            transport,
            per_try_policies: vec![guard],
            ..Default::default()
        };
        let mut options = SecretClientOptions {
            client_options,
            verify_challenge_resource: Some(config.verify_challenge_resource),
            ..Default::default()
        };
        if let Some(api_version) = config.api_version {
            options.api_version = api_version;
        }

        let client = SecretClient::new(&config.vault_url, credential, Some(options))
            .map_err(|e| SecretsError::invalid("vaultUrl", e.to_string()))?;
        Ok(Self {
            client,
            vault_url: config.vault_url,
            cache: Cache::new(config.cache_ttl),
        })
    }

    async fn fetch(&self, name: &SecretName) -> SecretsResult<Option<SecretValue>> {
        match self.client.get_secret(name.as_str(), None).await {
            Ok(response) => {
                let secret = response.into_model().map_err(|e| {
                    SecretsError::Backend(format!("unreadable secret bundle for {name}: {e}"))
                })?;
                Ok(secret.value.map(SecretValue::new))
            }
            Err(e) if is_status(&e, StatusCode::NotFound) => Ok(None),
            Err(e) => Err(map_error(&e, Some(name))),
        }
    }
}

#[async_trait]
impl SecretStore for KeyVaultSecrets {
    async fn get(&self, name: &SecretName) -> SecretsResult<Option<SecretValue>> {
        if !self.cache.enabled() {
            return self.fetch(name).await;
        }
        if let Some(hit) = self.cache.lookup(name) {
            return Ok(hit);
        }
        // Single flight: the first miss fetches while later misses of the same name wait on the
        // gate and then find the cache filled.
        let gate = self.cache.gate(name);
        let guard = gate.lock().await;
        let result = match self.cache.lookup(name) {
            Some(hit) => Ok(hit),
            None => {
                let epoch = self.cache.epoch();
                let fetched = self.fetch(name).await;
                if let Ok(value) = &fetched {
                    self.cache.store(name, value.clone(), epoch);
                }
                fetched
            }
        };
        drop(guard);
        self.cache.release_gate(name, gate);
        result
    }

    async fn set(&self, name: &SecretName, value: &SecretValue) -> SecretsResult<()> {
        value.validate()?;
        let parameters = SetSecretParameters {
            value: Some(value.expose().to_owned()),
            ..Default::default()
        };
        let body = parameters
            .try_into()
            .map_err(|e: azure_core::Error| SecretsError::Backend(e.to_string()))?;
        let result = self.client.set_secret(name.as_str(), body, None).await;
        // Invalidate even on failure: the write may have landed before a timeout.
        self.cache.invalidate(name);
        result.map(|_| ()).map_err(|e| map_error(&e, Some(name)))
    }

    async fn delete(&self, name: &SecretName) -> SecretsResult<bool> {
        let result = self.client.delete_secret(name.as_str(), None).await;
        self.cache.invalidate(name);
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, StatusCode::NotFound) => Ok(false),
            Err(e) => Err(map_error(&e, Some(name))),
        }
    }

    async fn list_names(&self, prefix: &str) -> SecretsResult<Vec<SecretName>> {
        let prefix = normalize_prefix(prefix)?;
        let options = SecretClientListSecretPropertiesOptions {
            maxresults: Some(LIST_PAGE_SIZE),
            ..Default::default()
        };
        let mut pager = self
            .client
            .list_secret_properties(Some(options))
            .map_err(|e| map_error(&e, None))?;
        let mut names = Vec::new();
        while let Some(item) = pager.try_next().await.map_err(|e| map_error(&e, None))? {
            let id = item
                .resource_id()
                .map_err(|e| SecretsError::Backend(format!("unreadable secret id in list: {e}")))?;
            let name = SecretName::parse(&id.name).map_err(|e| {
                SecretsError::Backend(format!("Key Vault listed an invalid name: {e}"))
            })?;
            if name.as_str().starts_with(&prefix) {
                names.push(name);
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn health(&self) -> SecretsResult<()> {
        let probe = SecretName::parse(HEALTH_PROBE_NAME)?;
        self.fetch(&probe).await.map(|_| ())
    }

    fn backend(&self) -> &'static str {
        "keyvault"
    }
}

/// Builds the SDK's reqwest transport with extra trusted roots, keeping the SDK's timeouts and
/// its no-redirect rule.
fn transport_with_extra_roots(pem: &str) -> SecretsResult<Transport> {
    let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
        SecretsError::invalid(
            "extraRootCaPem",
            format!("is not a PEM certificate bundle: {e}"),
        )
    })?;
    if certs.is_empty() {
        return Err(SecretsError::invalid(
            "extraRootCaPem",
            "contains no certificate",
        ));
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge(certs)
        .build()
        .map_err(|e| {
            SecretsError::invalid(
                "extraRootCaPem",
                format!("cannot build an HTTPS client: {e}"),
            )
        })?;
    Ok(Transport::new(Arc::new(client)))
}

fn to_azure_duration(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The server's requested delay, parsed exactly as the SDK's retry policy parses it.
fn retry_after(headers: &Headers) -> Option<Duration> {
    get_retry_after(
        headers,
        azure_core::time::OffsetDateTime::now_utc,
        &[X_MS_RETRY_AFTER_MS, RETRY_AFTER_MS, RETRY_AFTER],
    )
    .and_then(|d| Duration::try_from(d).ok())
}

/// Per-attempt policy (it runs inside the SDK's retry loop): turns a throttling answer whose
/// `Retry-After` exceeds `max_wait` into an error, which the retry policy does not retry.
#[derive(Debug)]
struct RetryAfterGuard {
    max_wait: Duration,
}

#[async_trait]
impl Policy for RetryAfterGuard {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let Some((first, rest)) = next.split_first() else {
            return Err(azure_core::Error::with_message(
                ErrorKind::Other,
                "RetryAfterGuard must not be the last policy",
            ));
        };
        let response = first.send(ctx, request, rest).await?;
        let status = response.status();
        if !matches!(
            status,
            StatusCode::TooManyRequests | StatusCode::ServiceUnavailable
        ) {
            return Ok(response);
        }
        match retry_after(response.headers()) {
            Some(wait) if wait > self.max_wait => {
                let raw = response.try_into_raw_response().await?;
                Err(azure_core::Error::with_message(
                    ErrorKind::HttpResponse {
                        status,
                        error_code: None,
                        raw_response: Some(Box::new(raw)),
                    },
                    format!(
                        "Key Vault asked to wait {} s, longer than the configured maximum",
                        wait.as_secs()
                    ),
                ))
            }
            _ => Ok(response),
        }
    }
}

fn is_status(err: &azure_core::Error, expected: StatusCode) -> bool {
    matches!(err.kind(), ErrorKind::HttpResponse { status, .. } if *status == expected)
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
    innererror: Option<Box<ErrorDetail>>,
}

fn map_error(err: &azure_core::Error, name: Option<&SecretName>) -> SecretsError {
    let subject = name.map_or_else(|| "(list)".to_owned(), ToString::to_string);
    match err.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let detail = raw_response
                .as_ref()
                .and_then(|raw| serde_json::from_slice::<ErrorBody>(raw.body().as_ref()).ok())
                .and_then(|body| body.error);
            // The inner code is the specific one (e.g. ObjectIsDeletedButRecoverable).
            let code = detail
                .as_ref()
                .and_then(|d| d.innererror.as_ref().and_then(|i| i.code.clone()))
                .or_else(|| detail.as_ref().and_then(|d| d.code.clone()))
                .or_else(|| error_code.clone())
                .unwrap_or_else(|| status.canonical_reason().into_owned());
            let status_code = u16::from(*status);
            match status_code {
                401 | 403 => SecretsError::AccessDenied {
                    status: status_code,
                    code,
                },
                409 => SecretsError::SoftDeleted {
                    name: subject,
                    code,
                },
                408 | 429 | 500 | 502 | 503 | 504 => SecretsError::unavailable(
                    format!("Key Vault answered HTTP {status_code} ({code})"),
                    raw_response
                        .as_ref()
                        .and_then(|raw| retry_after(raw.headers())),
                ),
                _ => {
                    let message = detail.and_then(|d| d.message).unwrap_or_default();
                    SecretsError::Backend(format!(
                        "Key Vault answered HTTP {status_code} ({code}) for {subject}: {message}"
                    ))
                }
            }
        }
        ErrorKind::Connection | ErrorKind::Io => {
            SecretsError::unavailable(format!("cannot reach Key Vault: {err}"), None)
        }
        ErrorKind::Credential => SecretsError::Credential(err.to_string()),
        _ => SecretsError::Backend(err.to_string()),
    }
}

struct CacheEntry {
    value: Option<SecretValue>,
    fetched: Instant,
}

/// Values (and absences) by name for `ttl`. `epoch` counts local writes so that a read which
/// started before a `set` cannot put the pre-`set` value back after the invalidation.
struct Cache {
    ttl: Duration,
    entries: Mutex<HashMap<SecretName, CacheEntry>>,
    gates: Mutex<HashMap<SecretName, Arc<tokio::sync::Mutex<()>>>>,
    epoch: AtomicU64,
}

impl Cache {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn lookup(&self, name: &SecretName) -> Option<Option<SecretValue>> {
        let entries = lock(&self.entries);
        entries
            .get(name)
            .filter(|e| e.fetched.elapsed() < self.ttl)
            .map(|e| e.value.clone())
    }

    fn store(&self, name: &SecretName, value: Option<SecretValue>, epoch: u64) {
        let mut entries = lock(&self.entries);
        // Checked under the entries lock, which `invalidate` also takes after bumping the epoch.
        if self.epoch() != epoch {
            return;
        }
        if entries.len() >= CACHE_SWEEP_THRESHOLD {
            let ttl = self.ttl;
            entries.retain(|_, e| e.fetched.elapsed() < ttl);
        }
        entries.insert(
            name.clone(),
            CacheEntry {
                value,
                fetched: Instant::now(),
            },
        );
    }

    fn invalidate(&self, name: &SecretName) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        lock(&self.entries).remove(name);
    }

    fn gate(&self, name: &SecretName) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.gates).entry(name.clone()).or_default().clone()
    }

    fn release_gate(&self, name: &SecretName, gate: Arc<tokio::sync::Mutex<()>>) {
        let mut gates = lock(&self.gates);
        // Two references: the map's and ours. More means somebody is still waiting on it.
        if Arc::strong_count(&gate) <= 2 {
            gates.remove(name);
        }
    }
}

/// A poisoned cache lock only means another task panicked mid-update of plain data; the map
/// is still usable, so recover it instead of propagating the panic.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! HTTP plumbing shared by the Azure queue and blob backends (legacy 0.21 SDK crates).
//!
//! One place decides how those clients retry and time out, and how an SDK error becomes a
//! [`StoreError`]. Transient failures (connection errors, timeouts, 408/429/500/502/503/504)
//! are retried by the SDK's pipeline with exponential backoff, bounded so that an unreachable
//! account is reported as `StoreError::Unavailable` within seconds rather than a minute.
//! Error texts never include request URLs (they may carry pop receipts).

use std::sync::Arc;
use std::time::Duration;

use azure_core_legacy::error::ErrorKind;
use azure_core_legacy::{ClientOptions, ExponentialRetryOptions, RetryOptions, TransportOptions};
use azure_storage::CloudLocation;

use crate::azure_account::AzureAccount;
use crate::error::{StoreError, StoreResult};

/// Connection attempts to a dead endpoint fail fast; a stalled transfer is cut off.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Client options for every legacy storage client: bounded exponential retry and timeouts.
pub(crate) fn client_options() -> StoreResult<ClientOptions> {
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        // Same setting as the SDK's default client (hyper#2312: idle pooled connections can hang).
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| StoreError::Backend(format!("building the HTTP client: {e}")))?;
    let retry = RetryOptions::exponential(
        ExponentialRetryOptions::default()
            .initial_delay(Duration::from_millis(200))
            .max_retries(3u32)
            .max_delay(Duration::from_secs(2))
            .max_total_elapsed(Duration::from_secs(15)),
    );
    Ok(ClientOptions::default()
        .retry(retry)
        .transport(TransportOptions::new(Arc::new(http))))
}

/// A custom cloud location for one service endpoint: works for public accounts and for
/// Azurite's path-style URLs (`http://host:port/devstoreaccount1`) alike.
pub(crate) fn cloud_location(account: &AzureAccount, endpoint: &url::Url) -> CloudLocation {
    CloudLocation::Custom {
        account: account.account.clone(),
        uri: endpoint.as_str().trim_end_matches('/').to_owned(),
    }
}

/// Status and Azure error code of an HTTP error response, if that is what `e` is.
pub(crate) fn http_status(e: &azure_core_legacy::Error) -> Option<(u16, &str)> {
    match e.kind() {
        ErrorKind::HttpResponse { status, error_code } => {
            Some((u16::from(*status), error_code.as_deref().unwrap_or("")))
        }
        _ => None,
    }
}

/// Generic mapping of an SDK error about `what` (e.g. "blob c/x") to a [`StoreError`].
pub(crate) fn map_error(what: &str, e: &azure_core_legacy::Error) -> StoreError {
    match http_status(e) {
        Some((404, _)) => StoreError::not_found(what),
        Some((409, _)) => StoreError::AlreadyExists {
            what: what.to_owned(),
        },
        Some((412, _)) => StoreError::PreconditionFailed {
            what: what.to_owned(),
        },
        Some((status @ (408 | 429 | 500 | 502 | 503 | 504), code)) => {
            StoreError::unavailable(format!("{what}: HTTP {status} {code} (after retries)"))
        }
        Some((status, code)) => StoreError::Backend(format!("{what}: HTTP {status} {code}")),
        None => match e.kind() {
            ErrorKind::Io => {
                StoreError::unavailable(format!("{what}: storage account unreachable"))
            }
            ErrorKind::Credential => StoreError::Backend(format!("{what}: credential error: {e}")),
            kind => StoreError::Backend(format!("{what}: {kind}")),
        },
    }
}

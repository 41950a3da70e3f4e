//! Where the Azure Storage account is and how we authenticate to it.
//!
//! Configured the Functions way: from an `AzureWebJobsStorage` connection string (a full one, or
//! `UseDevelopmentStorage=true` for Azurite), or from an account name / service URIs plus managed
//! identity (`AzureWebJobsStorage__accountName`, `__credential=managedidentity`, `__clientId`).
//! The table, queue and blob backends all build their clients from one [`AzureAccount`].
//! Account keys never appear in `Debug` output.

use std::fmt;
use std::sync::Arc;

use url::Url;

use crate::error::{StoreError, StoreResult};

/// Azurite's well-known development account and key (public, documented by Microsoft).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Clone)]
pub enum AzureCredential {
    /// Shared key (base64 account key) from a connection string.
    SharedKey(String),
    /// Managed identity (system-assigned, or user-assigned by client id) via `azure_identity`.
    ManagedIdentity { client_id: Option<String> },
}

impl fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureCredential::SharedKey(_) => f.write_str("SharedKey(<redacted>)"),
            AzureCredential::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AzureAccount {
    pub account: String,
    pub credential: AzureCredential,
    /// Base URL of each service, including the account segment for path-style (Azurite) URLs,
    /// e.g. `http://127.0.0.1:10002/devstoreaccount1`.
    pub table_endpoint: Url,
    pub queue_endpoint: Url,
    pub blob_endpoint: Url,
}

impl AzureAccount {
    /// Parses an Azure Storage connection string (`Key=Value;...`).
    pub fn from_connection_string(conn: &str) -> StoreResult<Self> {
        let field = "AzureWebJobsStorage";
        let mut pairs = std::collections::HashMap::new();
        for part in conn.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                StoreError::invalid(
                    field,
                    format!(
                        "expected Key=Value, found a part without '=' ({} chars)",
                        part.len()
                    ),
                )
            })?;
            pairs.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
        if pairs
            .get("usedevelopmentstorage")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Self::development("127.0.0.1", 10000, 10001, 10002);
        }
        if pairs.contains_key("sharedaccesssignature") {
            return Err(StoreError::invalid(
                field,
                "SAS connection strings are not supported; use an account key or managed identity",
            ));
        }
        let account = pairs
            .get("accountname")
            .cloned()
            .ok_or_else(|| StoreError::invalid(field, "AccountName is missing"))?;
        let key = pairs
            .get("accountkey")
            .cloned()
            .ok_or_else(|| StoreError::invalid(field, "AccountKey is missing"))?;
        let protocol = pairs
            .get("defaultendpointsprotocol")
            .map(String::as_str)
            .unwrap_or("https");
        let suffix = pairs
            .get("endpointsuffix")
            .map(String::as_str)
            .unwrap_or("core.windows.net");
        let endpoint = |name: &str, service: &str| -> StoreResult<Url> {
            let raw = match pairs.get(name) {
                Some(explicit) => explicit.clone(),
                None => format!("{protocol}://{account}.{service}.{suffix}"),
            };
            parse_endpoint(field, &raw)
        };
        Ok(Self {
            credential: AzureCredential::SharedKey(key),
            table_endpoint: endpoint("tableendpoint", "table")?,
            queue_endpoint: endpoint("queueendpoint", "queue")?,
            blob_endpoint: endpoint("blobendpoint", "blob")?,
            account,
        })
    }

    /// Azurite on `host` with the given ports and the well-known development key.
    pub fn development(
        host: &str,
        blob_port: u16,
        queue_port: u16,
        table_port: u16,
    ) -> StoreResult<Self> {
        let url = |port: u16| {
            parse_endpoint(
                "AzureWebJobsStorage",
                &format!("http://{host}:{port}/{DEV_ACCOUNT}"),
            )
        };
        Ok(Self {
            account: DEV_ACCOUNT.to_owned(),
            credential: AzureCredential::SharedKey(DEV_ACCOUNT_KEY.to_owned()),
            table_endpoint: url(table_port)?,
            queue_endpoint: url(queue_port)?,
            blob_endpoint: url(blob_port)?,
        })
    }

    /// Identity-based connection: `https://{account}.{service}.core.windows.net` + managed identity.
    pub fn managed_identity(account: &str, client_id: Option<String>) -> StoreResult<Self> {
        if account.is_empty()
            || !account
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(StoreError::invalid(
                "AzureWebJobsStorage__accountName",
                "must be a storage account name (lower-case letters and digits)",
            ));
        }
        let url = |service: &str| {
            parse_endpoint(
                "AzureWebJobsStorage__accountName",
                &format!("https://{account}.{service}.core.windows.net"),
            )
        };
        Ok(Self {
            account: account.to_owned(),
            credential: AzureCredential::ManagedIdentity { client_id },
            table_endpoint: url("table")?,
            queue_endpoint: url("queue")?,
            blob_endpoint: url("blob")?,
        })
    }

    /// Credentials for the legacy 0.21 storage crates.
    pub fn storage_credentials(&self) -> StoreResult<azure_storage::StorageCredentials> {
        match &self.credential {
            AzureCredential::SharedKey(key) => Ok(azure_storage::StorageCredentials::access_key(
                self.account.clone(),
                key.clone(),
            )),
            AzureCredential::ManagedIdentity { client_id } => {
                let options =
                    client_id
                        .as_ref()
                        .map(|id| azure_identity::ManagedIdentityCredentialOptions {
                            user_assigned_id: Some(azure_identity::UserAssignedId::ClientId(
                                id.clone(),
                            )),
                            ..Default::default()
                        });
                let credential = azure_identity::ManagedIdentityCredential::new(options)
                    .map_err(|e| StoreError::Backend(format!("managed identity: {e}")))?;
                Ok(azure_storage::StorageCredentials::token_credential(
                    Arc::new(LegacyCredential(credential)),
                ))
            }
        }
    }
}

fn parse_endpoint(field: &str, raw: &str) -> StoreResult<Url> {
    let url = Url::parse(raw.trim_end_matches('/'))
        .map_err(|e| StoreError::invalid(field, format!("endpoint is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(StoreError::invalid(field, "endpoint must be http or https"));
    }
    Ok(url)
}

/// Lets the legacy 0.21 storage crates use an `azure_identity` 1.x credential
/// (the 0.21 identity crate is frozen; see stack-notes appendix B).
#[derive(Debug)]
struct LegacyCredential(Arc<dyn azure_core::credentials::TokenCredential>);

#[async_trait::async_trait]
impl azure_core_legacy::auth::TokenCredential for LegacyCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
    ) -> azure_core_legacy::Result<azure_core_legacy::auth::AccessToken> {
        let token = self.0.get_token(scopes, None).await.map_err(|e| {
            azure_core_legacy::Error::full(
                azure_core_legacy::error::ErrorKind::Credential,
                e,
                "token from azure_identity",
            )
        })?;
        let expires = time::OffsetDateTime::from_unix_timestamp(token.expires_on.unix_timestamp())
            .map_err(|e| {
                azure_core_legacy::Error::full(
                    azure_core_legacy::error::ErrorKind::Credential,
                    e,
                    "token expiry out of range",
                )
            })?;
        Ok(azure_core_legacy::auth::AccessToken::new(
            token.token.secret().to_string(),
            expires,
        ))
    }

    async fn clear_cache(&self) -> azure_core_legacy::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_shorthand() {
        let a = AzureAccount::from_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(a.account, DEV_ACCOUNT);
        assert_eq!(
            a.table_endpoint.as_str(),
            "http://127.0.0.1:10002/devstoreaccount1"
        );
    }

    #[test]
    fn full_connection_string_with_explicit_endpoint() {
        let a = AzureAccount::from_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=c2VjcmV0;TableEndpoint=http://127.0.0.1:5/acme;",
        )
        .unwrap();
        assert_eq!(a.table_endpoint.as_str(), "http://127.0.0.1:5/acme");
        assert_eq!(
            a.blob_endpoint.as_str(),
            "https://acme.blob.core.windows.net/"
        );
        assert!(
            !format!("{a:?}").contains("c2VjcmV0"),
            "key must not leak into Debug"
        );
    }

    #[test]
    fn missing_key_names_the_field() {
        let err = AzureAccount::from_connection_string("AccountName=acme").unwrap_err();
        assert!(err.to_string().contains("AccountKey"), "{err}");
    }
}

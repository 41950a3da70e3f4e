//! Opens the configured storage and secret backends.
//!
//! This is the only code that looks at which backend is configured (vaultwarden's pattern):
//! everything else receives trait objects and never asks. Opening sends no request to a remote
//! backend, so an unreachable Azure account or vault does not stop start-up; `/api/health`
//! reports it and requests that need it answer 503 with `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use bifrost_secrets::{KeyVaultConfig, KeyVaultSecrets, LocalSecrets, SecretStore, SecretsError};
use bifrost_store::StoreError;
use bifrost_store::blob::{AzureBlobs, BlobStore, LocalBlobs};
use bifrost_store::queue::{AzureQueues, QueueStore, SqliteQueues};
use bifrost_store::table::{AzureTables, SqliteTables, TableStore};

use crate::settings::{SecretSettings, Settings, StorageSettings};

/// How long a health probe may take before the dependency counts as unavailable.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Backends {
    pub tables: Arc<dyn TableStore>,
    pub queues: Arc<dyn QueueStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub secrets: Arc<dyn SecretStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    #[error("secrets: {0}")]
    Secrets(#[from] SecretsError),
}

impl Backends {
    pub fn open(settings: &Settings) -> Result<Self, OpenError> {
        let data = &settings.data_dir;
        let (tables, queues, blobs): (
            Arc<dyn TableStore>,
            Arc<dyn QueueStore>,
            Arc<dyn BlobStore>,
        ) = match &settings.storage {
            StorageSettings::Embedded => (
                Arc::new(SqliteTables::open(&data.join("tables.sqlite"))?),
                Arc::new(SqliteQueues::open(&data.join("queues.sqlite"))?),
                Arc::new(LocalBlobs::open(&data.join("blobs"))?),
            ),
            StorageSettings::Azure(account) => (
                Arc::new(AzureTables::new(account)?),
                Arc::new(AzureQueues::new(account)?),
                Arc::new(AzureBlobs::new(account)?),
            ),
        };
        let secrets: Arc<dyn SecretStore> = match &settings.secrets {
            SecretSettings::Local { master_key } => {
                Arc::new(LocalSecrets::open(data, master_key.clone())?)
            }
            SecretSettings::KeyVault { url, client_id } => {
                Arc::new(KeyVaultSecrets::new(KeyVaultConfig {
                    vault_url: url.to_string(),
                    client_id: client_id.clone(),
                    ..Default::default()
                })?)
            }
        };
        Ok(Self {
            tables,
            queues,
            blobs,
            secrets,
        })
    }

    /// Probes tables, queues and blobs together; the first failure wins.
    pub async fn storage_health(&self) -> Result<(), StoreError> {
        let probe = async {
            let (t, q, b) = tokio::join!(
                self.tables.health(),
                self.queues.health(),
                self.blobs.health()
            );
            t.and(q).and(b)
        };
        tokio::time::timeout(HEALTH_TIMEOUT, probe)
            .await
            .unwrap_or_else(|_| Err(StoreError::unavailable("health probe timed out")))
    }

    pub async fn secrets_health(&self) -> Result<(), SecretsError> {
        tokio::time::timeout(HEALTH_TIMEOUT, self.secrets.health())
            .await
            .unwrap_or_else(|_| Err(SecretsError::unavailable("health probe timed out", None)))
    }
}

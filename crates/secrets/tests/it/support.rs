//! Fixtures shared by the test modules: backend constructors and a static token credential.
//! The Key Vault fixture uses the production `KeyVaultSecrets` unmodified; only the credential
//! (the identity endpoint is not under test) and the trusted root are supplied by the test.

use std::any::Any;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::time::{Duration, OffsetDateTime};
use bifrost_secrets::{
    KeyVaultConfig, KeyVaultCredential, KeyVaultSecrets, LocalSecrets, SecretStore,
};

use crate::mock_vault::{MockVault, TOKEN};

/// Hands out a fixed token and records the scopes it was asked for.
#[derive(Debug)]
pub struct StaticToken {
    token: String,
    pub scopes: Mutex<Vec<Vec<String>>>,
}

impl StaticToken {
    pub fn new(token: &str) -> Arc<Self> {
        Arc::new(Self {
            token: token.to_owned(),
            scopes: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.scopes
            .lock()
            .unwrap()
            .push(scopes.iter().map(|s| (*s).to_owned()).collect());
        Ok(AccessToken {
            token: Secret::new(self.token.clone()),
            expires_on: OffsetDateTime::now_utc() + Duration::hours(1),
        })
    }
}

/// A store plus whatever must stay alive for it (temp dir, mock server).
pub struct Fixture {
    pub store: Arc<dyn SecretStore>,
    _keep: Box<dyn Any + Send>,
}

/// Key Vault client settings for the loopback double: its self-signed root is trusted through
/// `extra_root_ca_pem`, and the challenge resource (vault.azure.net) cannot match 127.0.0.1.
pub fn kv_config(vault: &MockVault, credential: Arc<dyn TokenCredential>) -> KeyVaultConfig {
    KeyVaultConfig {
        vault_url: vault.url.clone(),
        credential: KeyVaultCredential::Token(credential),
        extra_root_ca_pem: Some(vault.ca_pem.clone()),
        verify_challenge_resource: false,
        ..Default::default()
    }
}

pub async fn keyvault_fixture() -> Fixture {
    let vault = MockVault::start().await;
    let store = KeyVaultSecrets::new(kv_config(&vault, StaticToken::new(TOKEN))).unwrap();
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(vault),
    }
}

pub async fn local_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecrets::open(dir.path(), None).unwrap();
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(dir),
    }
}

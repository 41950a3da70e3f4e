//! Benchmarks of the secret store (run: `cargo bench -p bifrost-secrets`).
//!
//! Measures the local store's set/get cost as the store grows (every set rewrites and fsyncs the
//! whole file), and the Key Vault backend's cached read against an uncached read over loopback
//! TLS to the test double. Plain timing loops; prints one line per measurement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/mock_vault.rs"]
#[allow(dead_code)]
mod mock_vault;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use bifrost_secrets::{
    KeyVaultConfig, KeyVaultCredential, KeyVaultSecrets, LocalSecrets, SecretName, SecretStore,
    SecretValue,
};

#[derive(Debug)]
struct Token;

#[async_trait]
impl TokenCredential for Token {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken {
            token: Secret::new(mock_vault::TOKEN.to_owned()),
            expires_on: azure_core::time::OffsetDateTime::now_utc()
                + azure_core::time::Duration::hours(1),
        })
    }
}

fn report(label: &str, ops: u32, elapsed: Duration) {
    let per_op = elapsed / ops;
    let per_sec = f64::from(ops) / elapsed.as_secs_f64();
    println!("{label:<58} {per_op:>12.2?}/op {per_sec:>12.0} ops/s  (n={ops})");
}

fn name(i: usize) -> SecretName {
    SecretName::parse(&format!("bench-secret-{i}")).unwrap()
}

async fn bench_local(existing: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecrets::open(dir.path(), None).unwrap();
    let value = SecretValue::new("v".repeat(1024));
    for i in 0..existing {
        store.set(&name(i), &value).await.unwrap();
    }
    let ops = 200;
    let start = Instant::now();
    for i in 0..ops {
        store
            .set(&name(i as usize % existing.max(1)), &value)
            .await
            .unwrap();
    }
    report(
        &format!("local set (1 KiB value, {existing} secrets in store)"),
        ops,
        start.elapsed(),
    );
    let ops = 20_000;
    let start = Instant::now();
    for i in 0..ops {
        store
            .get(&name(i as usize % existing.max(1)))
            .await
            .unwrap();
    }
    report(
        &format!("local get (1 KiB value, {existing} secrets in store)"),
        ops,
        start.elapsed(),
    );
}

async fn bench_keyvault() {
    let vault = mock_vault::MockVault::start().await;
    let config = |ttl: Duration| KeyVaultConfig {
        vault_url: vault.url.clone(),
        credential: KeyVaultCredential::Token(Arc::new(Token)),
        extra_root_ca_pem: Some(vault.ca_pem.clone()),
        verify_challenge_resource: false,
        cache_ttl: ttl,
        ..Default::default()
    };
    let cached = KeyVaultSecrets::new(config(Duration::from_secs(300))).unwrap();
    let uncached = KeyVaultSecrets::new(config(Duration::ZERO)).unwrap();
    let n = name(0);
    cached
        .set(&n, &SecretValue::new("v".repeat(1024)))
        .await
        .unwrap();
    uncached.get(&n).await.unwrap();

    let ops = 500;
    let start = Instant::now();
    for _ in 0..ops {
        uncached.get(&n).await.unwrap();
    }
    report(
        "keyvault get, cache off (loopback TLS double, keep-alive)",
        ops,
        start.elapsed(),
    );

    cached.get(&n).await.unwrap();
    let ops = 200_000;
    let start = Instant::now();
    for _ in 0..ops {
        cached.get(&n).await.unwrap();
    }
    report("keyvault get, cache hit", ops, start.elapsed());

    let before = vault.requests().len();
    let fresh = Arc::new(KeyVaultSecrets::new(config(Duration::from_secs(300))).unwrap());
    vault.set_get_delay(Duration::from_millis(50));
    let start = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = fresh.clone();
            let n = n.clone();
            tokio::spawn(async move { store.get(&n).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let elapsed = start.elapsed();
    let sent = vault.requests().len() - before;
    println!(
        "keyvault 64 concurrent cold gets (50 ms server delay): {elapsed:.2?} total, {sent} HTTP requests (incl. 1 challenge probe)"
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for existing in [10, 100, 1000] {
            bench_local(existing).await;
        }
        bench_keyvault().await;
    });
}

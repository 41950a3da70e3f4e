//! Key Vault backend against the loopback HTTPS double: challenge auth, bearer tokens, retries
//! that honour `Retry-After`, error mapping, caching with single-flight, paging, and the
//! configuration surface (extra root CA, injected transport).

use std::sync::Arc;
use std::time::Duration;

use bifrost_secrets::{
    KeyVaultConfig, KeyVaultCredential, KeyVaultSecrets, SecretName, SecretStore, SecretValue,
    SecretsError, SecretsErrorKind,
};

use crate::mock_vault::{MockVault, TOKEN, VAULT_HOST};
use crate::support::{StaticToken, kv_config};

fn name(raw: &str) -> SecretName {
    SecretName::parse(raw).unwrap()
}

async fn start() -> (MockVault, KeyVaultSecrets, Arc<StaticToken>) {
    let vault = MockVault::start().await;
    let token = StaticToken::new(TOKEN);
    let store = KeyVaultSecrets::new(kv_config(&vault, token.clone())).unwrap();
    (vault, store, token)
}

#[tokio::test]
async fn first_request_gets_the_challenge_then_every_request_carries_the_bearer_token() {
    let (vault, store, token) = start().await;
    store
        .set(&name("first"), &SecretValue::new("value-1"))
        .await
        .unwrap();
    store.get(&name("first")).await.unwrap();
    store.list_names("").await.unwrap();

    let requests = vault.requests();
    // The SDK sends the first request without a token and without the body, learns the scope
    // from the 401 challenge, then resends it with the body.
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(requests[0].authorization, None);
    assert_eq!(requests[0].body_len, 0);
    assert_eq!(requests[0].status, 401);
    assert_eq!(requests[1].method, "PUT");
    assert!(requests[1].body_len > 0);
    assert_eq!(requests[1].status, 200);
    for r in &requests[1..] {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert!(r.query.contains("api-version="), "{r:?}");
    }
    assert_eq!(requests.len(), 4, "{requests:?}");
    let scopes = token.scopes.lock().unwrap().clone();
    assert!(!scopes.is_empty());
    assert!(
        scopes
            .iter()
            .all(|s| s == &vec!["https://vault.azure.net/.default".to_owned()])
    );
}

#[tokio::test]
async fn every_set_creates_a_new_version() {
    let (vault, store, _) = start().await;
    let n = name("rotating");
    for v in ["a", "b", "c"] {
        store.set(&n, &SecretValue::new(v)).await.unwrap();
    }
    assert_eq!(vault.version_count("rotating"), 3);
    assert_eq!(store.get(&n).await.unwrap().unwrap().expose(), "c");
}

#[tokio::test]
async fn throttling_is_retried_after_the_advertised_delay() {
    let (vault, store, _) = start().await;
    let n = name("throttled");
    store.set(&n, &SecretValue::new("patience")).await.unwrap();
    vault.throttle("throttled", 1, 1);

    let got = store.get(&n).await.unwrap();
    assert_eq!(got.unwrap().expose(), "patience");

    let gets = vault.requests_for("GET", "throttled");
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].status, 429);
    assert_eq!(gets[1].status, 200);
    let waited = gets[1].at.duration_since(gets[0].at);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
}

#[tokio::test]
async fn a_retry_after_beyond_the_configured_maximum_fails_fast_as_unavailable() {
    let vault = MockVault::start().await;
    let store = KeyVaultSecrets::new(KeyVaultConfig {
        max_retry_delay: Duration::from_secs(2),
        ..kv_config(&vault, StaticToken::new(TOKEN))
    })
    .unwrap();
    let n = name("slow-down");
    store.set(&n, &SecretValue::new("x")).await.unwrap();
    vault.throttle("slow-down", 5, 120);

    let err = store.get(&n).await.unwrap_err();
    assert_eq!(err.kind(), SecretsErrorKind::Unavailable, "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(vault.requests_for("GET", "slow-down").len(), 1);
}

#[tokio::test]
async fn persistent_503_becomes_unavailable_with_the_servers_retry_after() {
    let vault = MockVault::start().await;
    let store = KeyVaultSecrets::new(KeyVaultConfig {
        max_retries: 1,
        ..kv_config(&vault, StaticToken::new(TOKEN))
    })
    .unwrap();
    vault.make_unavailable("down", 1);

    let err = store.get(&name("down")).await.unwrap_err();
    assert!(matches!(err, SecretsError::Unavailable { .. }), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert!(err.is_transient());
    // One retry after the first attempt, as configured.
    assert_eq!(vault.requests_for("GET", "down").len(), 2);
}

#[tokio::test]
async fn missing_secrets_are_none_and_deleting_them_is_false() {
    let (vault, store, _) = start().await;
    assert_eq!(store.get(&name("nope")).await.unwrap(), None);
    assert!(!store.delete(&name("nope")).await.unwrap());
    let statuses: Vec<u16> = vault
        .requests()
        .iter()
        .filter(|r| r.authorization.is_some())
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![404, 404]);
}

#[tokio::test]
async fn setting_a_soft_deleted_name_is_a_typed_conflict() {
    let (_vault, store, _) = start().await;
    let n = name("recycled");
    store.set(&n, &SecretValue::new("one")).await.unwrap();
    assert!(store.delete(&n).await.unwrap());

    let err = store.set(&n, &SecretValue::new("two")).await.unwrap_err();
    match &err {
        SecretsError::SoftDeleted { name, code } => {
            assert_eq!(name, "recycled");
            assert_eq!(code, "ObjectIsDeletedButRecoverable");
        }
        other => panic!("expected SoftDeleted, got {other}"),
    }
    assert_eq!(err.kind(), SecretsErrorKind::Conflict);
    assert!(!err.to_string().contains("two"));
}

#[tokio::test]
async fn forbidden_and_rejected_tokens_are_access_denied() {
    let (vault, store, _) = start().await;
    vault.forbid("locked");
    let err = store.get(&name("locked")).await.unwrap_err();
    assert!(
        matches!(&err, SecretsError::AccessDenied { status: 403, code } if code == "ForbiddenByRbac"),
        "{err}"
    );
    assert_eq!(err.kind(), SecretsErrorKind::Internal);

    let wrong = KeyVaultSecrets::new(kv_config(&vault, StaticToken::new("not-the-token"))).unwrap();
    let err = wrong.get(&name("anything")).await.unwrap_err();
    assert!(
        matches!(err, SecretsError::AccessDenied { status: 401, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_vault_is_unavailable_with_a_retry_after() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let store = KeyVaultSecrets::new(KeyVaultConfig {
        vault_url: format!("https://127.0.0.1:{port}"),
        credential: KeyVaultCredential::Token(StaticToken::new(TOKEN)),
        verify_challenge_resource: false,
        max_retries: 1,
        ..Default::default()
    })
    .unwrap();
    let err = store.get(&name("any")).await.unwrap_err();
    assert_eq!(err.kind(), SecretsErrorKind::Unavailable, "{err}");
    assert!(err.retry_after().is_some());
    assert!(store.health().await.is_err());
}

#[tokio::test]
async fn reads_are_cached_and_invalidated_by_writes_on_this_instance() {
    let (vault, store, _) = start().await;
    let n = name("cached");
    store.set(&n, &SecretValue::new("one")).await.unwrap();
    for _ in 0..3 {
        assert_eq!(store.get(&n).await.unwrap().unwrap().expose(), "one");
    }
    assert_eq!(vault.requests_for("GET", "cached").len(), 1);

    store.set(&n, &SecretValue::new("two")).await.unwrap();
    assert_eq!(store.get(&n).await.unwrap().unwrap().expose(), "two");
    assert_eq!(vault.requests_for("GET", "cached").len(), 2);

    // Absence is cached too, and a delete clears the entry.
    assert!(store.delete(&n).await.unwrap());
    assert_eq!(store.get(&n).await.unwrap(), None);
    assert_eq!(store.get(&n).await.unwrap(), None);
    assert_eq!(vault.requests_for("GET", "cached").len(), 3);
}

#[tokio::test]
async fn concurrent_misses_are_coalesced_into_one_request() {
    let (vault, store, _) = start().await;
    let n = name("popular");
    store.set(&n, &SecretValue::new("shared")).await.unwrap();
    vault.set_get_delay(Duration::from_millis(200));

    let store = Arc::new(store);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let n = n.clone();
            tokio::spawn(async move { store.get(&n).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().unwrap().expose(), "shared");
    }
    assert_eq!(vault.requests_for("GET", "popular").len(), 1);
}

#[tokio::test]
async fn cache_entries_expire_and_a_zero_ttl_disables_the_cache() {
    let vault = MockVault::start().await;
    let short = KeyVaultSecrets::new(KeyVaultConfig {
        cache_ttl: Duration::from_millis(200),
        ..kv_config(&vault, StaticToken::new(TOKEN))
    })
    .unwrap();
    let n = name("ttl");
    short.set(&n, &SecretValue::new("v")).await.unwrap();
    short.get(&n).await.unwrap();
    short.get(&n).await.unwrap();
    assert_eq!(vault.requests_for("GET", "ttl").len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    short.get(&n).await.unwrap();
    assert_eq!(vault.requests_for("GET", "ttl").len(), 2);

    let uncached = KeyVaultSecrets::new(KeyVaultConfig {
        cache_ttl: Duration::ZERO,
        ..kv_config(&vault, StaticToken::new(TOKEN))
    })
    .unwrap();
    uncached.get(&n).await.unwrap();
    uncached.get(&n).await.unwrap();
    assert_eq!(vault.requests_for("GET", "ttl").len(), 4);
}

#[tokio::test]
async fn listing_follows_next_links_and_never_reads_values() {
    let (vault, store, _) = start().await;
    vault.set_page_size(2);
    for i in 0..7 {
        store
            .set(&name(&format!("paged-{i}")), &SecretValue::new("v"))
            .await
            .unwrap();
    }
    store
        .set(&name("other"), &SecretValue::new("v"))
        .await
        .unwrap();

    let names = store.list_names("paged-").await.unwrap();
    let expected: Vec<SecretName> = (0..7).map(|i| name(&format!("paged-{i}"))).collect();
    assert_eq!(names, expected);

    let lists: Vec<_> = vault
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/secrets")
        .collect();
    assert_eq!(lists.len(), 4, "8 names at 2 per page");
    assert!(lists[1..].iter().all(|r| r.query.contains("skiptoken")));
    // Listing touched no individual secret.
    assert!(
        vault
            .requests()
            .iter()
            .all(|r| !(r.method == "GET" && r.path.starts_with("/secrets/")))
    );
}

#[tokio::test]
async fn oversized_values_are_never_sent() {
    let (vault, store, _) = start().await;
    let err = store
        .set(&name("huge"), &SecretValue::new("z".repeat(30_000)))
        .await
        .unwrap_err();
    assert!(matches!(&err, SecretsError::Invalid { field, .. } if field == "value"));
    assert!(vault.requests().is_empty());
}

#[tokio::test]
async fn an_injected_transport_reaches_a_vault_host_name_with_challenge_verification_on() {
    let vault = MockVault::start().await;
    let client = reqwest::Client::builder()
        .resolve(VAULT_HOST, vault.addr)
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(vault.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let store = KeyVaultSecrets::new(KeyVaultConfig {
        vault_url: format!("https://{VAULT_HOST}:{}", vault.addr.port()),
        credential: KeyVaultCredential::Token(StaticToken::new(TOKEN)),
        transport: Some(azure_core::http::Transport::new(Arc::new(client))),
        // The production default: the challenge's resource must match *.vault.azure.net.
        verify_challenge_resource: true,
        ..Default::default()
    })
    .unwrap();
    let n = name("via-transport");
    store.set(&n, &SecretValue::new("ok")).await.unwrap();
    assert_eq!(store.get(&n).await.unwrap().unwrap().expose(), "ok");
    assert_eq!(vault.stored_values("via-transport"), vec!["ok".to_owned()]);
}

#[tokio::test]
async fn the_client_refuses_a_vault_whose_certificate_it_does_not_trust() {
    let vault = MockVault::start().await;
    let store = KeyVaultSecrets::new(KeyVaultConfig {
        extra_root_ca_pem: None,
        max_retries: 0,
        ..kv_config(&vault, StaticToken::new(TOKEN))
    })
    .unwrap();
    assert!(store.get(&name("any")).await.is_err());
    assert!(
        vault.requests().is_empty(),
        "TLS must fail before any request"
    );
}

#[tokio::test]
async fn configuration_errors_name_the_field() {
    let token = StaticToken::new(TOKEN);
    let cases: Vec<(KeyVaultConfig, &str)> = vec![
        (
            KeyVaultConfig {
                vault_url: "not a url".into(),
                credential: KeyVaultCredential::Token(token.clone()),
                ..Default::default()
            },
            "vaultUrl",
        ),
        (
            KeyVaultConfig {
                vault_url: "http://myvault.vault.azure.net".into(),
                credential: KeyVaultCredential::Token(token.clone()),
                ..Default::default()
            },
            "vaultUrl",
        ),
        (
            KeyVaultConfig {
                vault_url: "https://myvault.vault.azure.net".into(),
                credential: KeyVaultCredential::Token(token.clone()),
                client_id: Some("11111111-2222-3333-4444-555555555555".into()),
                ..Default::default()
            },
            "clientId",
        ),
        (
            KeyVaultConfig {
                vault_url: "https://myvault.vault.azure.net".into(),
                credential: KeyVaultCredential::Token(token.clone()),
                extra_root_ca_pem: Some(
                    "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n".into(),
                ),
                ..Default::default()
            },
            "extraRootCaPem",
        ),
    ];
    for (config, field) in cases {
        let err = KeyVaultSecrets::new(config).unwrap_err();
        assert!(
            matches!(&err, SecretsError::Invalid { field: f, .. } if f == field),
            "expected {field}: {err}"
        );
    }
    // Managed identity (optionally user-assigned) is the default and builds without a request.
    KeyVaultSecrets::new(KeyVaultConfig {
        vault_url: "https://myvault.vault.azure.net".into(),
        client_id: Some("11111111-2222-3333-4444-555555555555".into()),
        ..Default::default()
    })
    .unwrap();
}

#[derive(Debug)]
struct NoIdentity;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for NoIdentity {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "no managed identity endpoint",
        ))
    }
}

#[tokio::test]
async fn a_credential_failure_is_typed_and_retryable() {
    let vault = MockVault::start().await;
    let store = KeyVaultSecrets::new(kv_config(&vault, Arc::new(NoIdentity))).unwrap();
    let err = store.get(&name("any")).await.unwrap_err();
    assert!(matches!(err, SecretsError::Credential(_)), "{err}");
    assert_eq!(err.kind(), SecretsErrorKind::Unavailable);
    // Only the unauthenticated challenge probe reached the vault.
    assert_eq!(vault.requests().len(), 1);
    assert_eq!(vault.requests()[0].status, 401);
}

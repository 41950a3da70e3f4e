//! The secret-store contract, written once as generic async functions and expanded for every
//! backend by `secret_store_suite!`. A new `SecretStore` method lands together with its entry here.

use bifrost_secrets::{
    MAX_VALUE_BYTES, SecretName, SecretStore, SecretValue, SecretsError, SecretsErrorKind,
};
use bifrost_store::{OrgId, Scope};

use crate::support::{keyvault_fixture, local_fixture};

fn org(id: &str) -> Scope {
    Scope::Org(OrgId::parse(id).unwrap())
}

fn name(raw: &str) -> SecretName {
    SecretName::parse(raw).unwrap()
}

pub async fn set_get_rotate_delete(store: &dyn SecretStore) {
    let n = name("halo-client-secret");
    assert_eq!(store.get(&n).await.unwrap(), None);

    store.set(&n, &SecretValue::new("v1")).await.unwrap();
    assert_eq!(store.get(&n).await.unwrap().unwrap().expose(), "v1");

    // Rotation: a second set replaces what get returns (a new version on Key Vault).
    store.set(&n, &SecretValue::new("v2")).await.unwrap();
    assert_eq!(store.get(&n).await.unwrap().unwrap().expose(), "v2");

    assert!(store.delete(&n).await.unwrap());
    assert_eq!(store.get(&n).await.unwrap(), None);
    assert!(!store.delete(&n).await.unwrap());
    assert!(store.list_names("").await.unwrap().is_empty());
}

pub async fn names_are_case_insensitive(store: &dyn SecretStore) {
    store
        .set(&name("Mixed-Case-Name"), &SecretValue::new("x"))
        .await
        .unwrap();
    let got = store.get(&name("mixed-case-name")).await.unwrap();
    assert_eq!(got.unwrap().expose(), "x");
    assert_eq!(
        store.list_names("MIXED").await.unwrap(),
        vec![name("mixed-case-name")]
    );
}

pub async fn values_round_trip_exactly(store: &dyn SecretStore) {
    for (i, value) in [
        " leading and trailing spaces ",
        "line1\nline2\r\n\ttab",
        "{\"json\": [1, 2, \"three\"], \"quote\": \"\\\"\"}",
        "unicode: é ü 你好 🔐",
    ]
    .into_iter()
    .enumerate()
    {
        let n = name(&format!("roundtrip-{i}"));
        store.set(&n, &SecretValue::new(value)).await.unwrap();
        assert_eq!(store.get(&n).await.unwrap().unwrap().expose(), value);
    }
}

pub async fn value_size_limit_is_checked_before_writing(store: &dyn SecretStore) {
    let n = name("big");
    let err = store
        .set(&n, &SecretValue::new("x".repeat(MAX_VALUE_BYTES + 1)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SecretsError::Invalid { field, .. } if field == "value"),
        "{err}"
    );
    assert_eq!(err.kind(), SecretsErrorKind::Invalid);
    assert_eq!(store.get(&n).await.unwrap(), None);

    let max = "y".repeat(MAX_VALUE_BYTES);
    store.set(&n, &SecretValue::new(max.clone())).await.unwrap();
    assert_eq!(store.get(&n).await.unwrap().unwrap().expose(), max);
}

pub async fn scoped_names_are_isolated(store: &dyn SecretStore) {
    // Prefix traps: `a` vs `a-b`, case variants, an org id that starts like the global segment.
    let scopes = [
        Scope::Global,
        org("a"),
        org("a-b"),
        org("A"),
        org("global-x"),
        org("6f1c2a5e-0000-4000-8000-000000000001"),
    ];
    for (i, scope) in scopes.iter().enumerate() {
        for key in ["b-c", "c", "token"] {
            let n = SecretName::scoped(scope, key).unwrap();
            store
                .set(&n, &SecretValue::new(format!("scope{i}:{key}")))
                .await
                .unwrap();
        }
    }
    for (i, scope) in scopes.iter().enumerate() {
        let names = store.list_scope(scope).await.unwrap();
        let keys: Vec<&str> = names
            .iter()
            .map(|n| n.key_in_scope(scope).unwrap())
            .collect();
        assert_eq!(keys, vec!["b-c", "c", "token"], "scope {i}: {names:?}");
        for n in &names {
            let value = store.get(n).await.unwrap().unwrap();
            assert!(value.expose().starts_with(&format!("scope{i}:")), "{n}");
        }
    }
    assert_eq!(store.list_names("").await.unwrap().len(), scopes.len() * 3);
    assert_eq!(
        store.list_names("bifrost-").await.unwrap().len(),
        scopes.len() * 3
    );
}

pub async fn listing_validates_the_prefix(store: &dyn SecretStore) {
    let err = store.list_names("bad_prefix").await.unwrap_err();
    assert!(
        matches!(&err, SecretsError::Invalid { field, .. } if field == "prefix"),
        "{err}"
    );
}

pub async fn values_are_masked_in_debug_output(store: &dyn SecretStore) {
    let n = name("masked");
    store
        .set(&n, &SecretValue::new("correct-horse-battery"))
        .await
        .unwrap();
    let got = store.get(&n).await.unwrap();
    let debug = format!("{got:?}");
    assert!(!debug.contains("correct-horse"), "{debug}");
    assert!(debug.contains("***"), "{debug}");
    assert_eq!(format!("{}", got.unwrap()), "***");
}

pub async fn health_is_ok(store: &dyn SecretStore) {
    store.health().await.unwrap();
    assert!(!store.backend().is_empty());
}

macro_rules! secret_store_suite {
    ($backend:ident, $fixture:path, [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $test() {
                    let fixture = $fixture().await;
                    super::$test(fixture.store.as_ref()).await;
                }
            )*
        }
    };
}

macro_rules! all_backends {
    ($($test:ident),* $(,)?) => {
        secret_store_suite!(local, super::local_fixture, [$($test),*]);
        secret_store_suite!(keyvault, super::keyvault_fixture, [$($test),*]);
    };
}

all_backends!(
    set_get_rotate_delete,
    names_are_case_insensitive,
    values_round_trip_exactly,
    value_size_limit_is_checked_before_writing,
    scoped_names_are_isolated,
    listing_validates_the_prefix,
    values_are_masked_in_debug_output,
    health_is_ok,
);

//! The embedded encrypted store against real files: key file creation and checks, wrong keys,
//! tampering, ciphertexts moved between names, and no plaintext on disk.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bifrost_secrets::local::{KEY_FILE_NAME, STORE_FILE_NAME};
use bifrost_secrets::{LocalSecrets, SecretName, SecretStore, SecretValue, SecretsError};
use serde_json::Value;

fn name(raw: &str) -> SecretName {
    SecretName::parse(raw).unwrap()
}

fn key_b64(byte: u8) -> String {
    B64.encode([byte; 32])
}

fn read_store(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join(STORE_FILE_NAME)).unwrap()).unwrap()
}

fn write_store(dir: &Path, value: &Value) {
    fs::write(
        dir.join(STORE_FILE_NAME),
        serde_json::to_vec(value).unwrap(),
    )
    .unwrap();
}

#[tokio::test]
async fn a_generated_key_file_is_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecrets::open(dir.path(), None).unwrap();
    store
        .set(&name("kept"), &SecretValue::new("across restarts"))
        .await
        .unwrap();

    let key_path = dir.path().join(KEY_FILE_NAME);
    let mode = fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key = B64
        .decode(fs::read_to_string(&key_path).unwrap().trim())
        .unwrap();
    assert_eq!(key.len(), 32);
    let store_mode = fs::metadata(dir.path().join(STORE_FILE_NAME))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(store_mode, 0o600);

    drop(store);
    let reopened = LocalSecrets::open(dir.path(), None).unwrap();
    assert_eq!(
        reopened.get(&name("kept")).await.unwrap().unwrap().expose(),
        "across restarts"
    );
    // No temp files are left behind by atomic writes.
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_key_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    LocalSecrets::open(dir.path(), None).unwrap();
    let key_path = dir.path().join(KEY_FILE_NAME);
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();

    let err = LocalSecrets::open(dir.path(), None).unwrap_err();
    match &err {
        SecretsError::MasterKey {
            source_name,
            reason,
        } => {
            assert!(source_name.contains(KEY_FILE_NAME), "{source_name}");
            assert!(reason.contains("0644"), "{reason}");
        }
        other => panic!("expected MasterKey, got {other}"),
    }
}

#[tokio::test]
async fn a_key_file_of_the_wrong_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join(KEY_FILE_NAME);
    fs::write(&key_path, B64.encode([7u8; 16])).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();

    let err = LocalSecrets::open(dir.path(), None).unwrap_err();
    assert!(
        matches!(&err, SecretsError::MasterKey { reason, .. } if reason.contains("16 bytes")),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_master_key_setting_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["not base64!!".to_owned(), B64.encode([1u8; 31])] {
        let err = LocalSecrets::open(dir.path(), Some(bad)).unwrap_err();
        assert!(
            matches!(&err, SecretsError::MasterKey { source_name, .. } if source_name == "masterKey setting"),
            "{err}"
        );
    }
    // A key from the setting never creates a key file.
    LocalSecrets::open(dir.path(), Some(key_b64(1))).unwrap();
    assert!(!dir.path().join(KEY_FILE_NAME).exists());
}

#[tokio::test]
async fn a_wrong_master_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecrets::open(dir.path(), Some(key_b64(1))).unwrap();
    store.set(&name("s"), &SecretValue::new("v")).await.unwrap();
    drop(store);

    let err = LocalSecrets::open(dir.path(), Some(key_b64(2))).unwrap_err();
    assert!(matches!(err, SecretsError::WrongMasterKey { .. }), "{err}");
    // The right key still opens it.
    let store = LocalSecrets::open(dir.path(), Some(key_b64(1))).unwrap();
    assert_eq!(store.get(&name("s")).await.unwrap().unwrap().expose(), "v");
}

#[tokio::test]
async fn tampered_ciphertext_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecrets::open(dir.path(), Some(key_b64(3))).unwrap();
    store
        .set(&name("target"), &SecretValue::new("original"))
        .await
        .unwrap();
    drop(store);

    let mut file = read_store(dir.path());
    let sealed = &mut file["secrets"]["target"]["ciphertext"];
    let mut bytes = B64.decode(sealed.as_str().unwrap()).unwrap();
    bytes[0] ^= 0x01;
    *sealed = Value::String(B64.encode(bytes));
    write_store(dir.path(), &file);

    let store = LocalSecrets::open(dir.path(), Some(key_b64(3))).unwrap();
    let err = store.get(&name("target")).await.unwrap_err();
    assert!(
        matches!(&err, SecretsError::Corrupt { name, .. } if name == "target"),
        "{err}"
    );
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_name_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecrets::open(dir.path(), Some(key_b64(4))).unwrap();
    store
        .set(&name("org-a-token"), &SecretValue::new("token-of-a"))
        .await
        .unwrap();
    store
        .set(&name("org-b-token"), &SecretValue::new("token-of-b"))
        .await
        .unwrap();
    drop(store);

    let mut file = read_store(dir.path());
    let a = file["secrets"]["org-a-token"].clone();
    let b = file["secrets"]["org-b-token"].clone();
    file["secrets"]["org-a-token"] = b;
    file["secrets"]["org-b-token"] = a;
    write_store(dir.path(), &file);

    let store = LocalSecrets::open(dir.path(), Some(key_b64(4))).unwrap();
    for n in ["org-a-token", "org-b-token"] {
        let err = store.get(&name(n)).await.unwrap_err();
        assert!(matches!(err, SecretsError::Corrupt { .. }), "{n}: {err}");
    }
}

#[tokio::test]
async fn values_never_reach_the_disk_in_plaintext_and_nonces_are_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecrets::open(dir.path(), None).unwrap();
    let value = "plaintext-canary-5f0e2b";
    store
        .set(&name("canary"), &SecretValue::new(value))
        .await
        .unwrap();
    let first = read_store(dir.path())["secrets"]["canary"].clone();
    store
        .set(&name("canary"), &SecretValue::new(value))
        .await
        .unwrap();
    let second = read_store(dir.path())["secrets"]["canary"].clone();

    assert_ne!(first["nonce"], second["nonce"]);
    assert_ne!(first["ciphertext"], second["ciphertext"]);
    for entry in fs::read_dir(dir.path()).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(value));
        assert!(!text.contains(&B64.encode(value)));
    }
}

#[tokio::test]
async fn a_corrupt_store_file_is_reported_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    LocalSecrets::open(dir.path(), None).unwrap();
    fs::write(dir.path().join(STORE_FILE_NAME), b"{ not json").unwrap();
    let err = LocalSecrets::open(dir.path(), None).unwrap_err();
    assert!(matches!(err, SecretsError::Corrupt { .. }), "{err}");
    assert_eq!(
        fs::read(dir.path().join(STORE_FILE_NAME)).unwrap(),
        b"{ not json"
    );
}

#[tokio::test]
async fn two_processes_sharing_the_folder_lose_nothing() {
    // The server and the CLI each open the store of one data folder.
    let dir = tempfile::tempdir().unwrap();
    let server = LocalSecrets::open(dir.path(), None).unwrap();
    let cli = LocalSecrets::open(dir.path(), None).unwrap();
    server
        .set(&name("from-server"), &SecretValue::new("s"))
        .await
        .unwrap();
    cli.set(&name("from-cli"), &SecretValue::new("c"))
        .await
        .unwrap();
    // Each sees the other's write, and neither write overwrote the other.
    assert_eq!(
        server
            .get(&name("from-cli"))
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "c"
    );
    assert_eq!(
        cli.get(&name("from-server"))
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "s"
    );
    assert!(server.delete(&name("from-cli")).await.unwrap());
    assert!(cli.get(&name("from-cli")).await.unwrap().is_none());
    let names = server.list_names("").await.unwrap();
    assert_eq!(names, [name("from-server")]);
    // Concurrent writers from both sides all land.
    let (server, cli) = (std::sync::Arc::new(server), std::sync::Arc::new(cli));
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = if n % 2 == 0 {
            server.clone()
        } else {
            cli.clone()
        };
        tasks.push(tokio::spawn(async move {
            store
                .set(&name(&format!("k{n}")), &SecretValue::new("v"))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.list_names("k").await.unwrap().len(), 20);
}

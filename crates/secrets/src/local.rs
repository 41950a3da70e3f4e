//! [`LocalSecrets`]: the embedded encrypted secret store of the standalone server.
//!
//! Layout inside the data folder:
//! - `secrets.key`: the generated master key (base64 of 32 bytes), created atomically with mode
//!   0600 when no master key setting is given. A key file with another length, another encoding
//!   or group/other permissions is refused.
//! - `secrets.json`: `{"format":1,"keyCheck":{..},"secrets":{"<name>":{"nonce":..,"ciphertext":..}}}`.
//!
//! Invariants:
//! - every value is sealed with AES-256-GCM under a fresh random 96-bit nonce per write;
//! - the secret name is the associated data, so a ciphertext moved to another name fails to
//!   open (reported as [`SecretsError::Corrupt`], never as garbage);
//! - `keyCheck` seals a constant under its own associated data (which no secret name can
//!   produce), so a wrong master key is reported as [`SecretsError::WrongMasterKey`] at open;
//! - the store file is replaced atomically (temp file, fsync, rename, fsync of the folder) and
//!   the in-memory copy changes only after the new file is durable.
//!
//! One process owns the store: a second process writing the same folder concurrently would lose
//! updates. This module must not depend on Key Vault or on any network code.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::error::{SecretsError, SecretsResult};
use crate::name::{SecretName, normalize_prefix};
use crate::store::SecretStore;
use crate::value::SecretValue;

/// File name of the generated master key inside the data folder.
pub const KEY_FILE_NAME: &str = "secrets.key";
/// File name of the encrypted store inside the data folder.
pub const STORE_FILE_NAME: &str = "secrets.json";

const FORMAT: u32 = 1;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const KEY_CHECK_AAD: &[u8] = b"bifrost-secrets/v1/key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"bifrost-secrets key check";
const SECRET_AAD_PREFIX: &str = "bifrost-secrets/v1/secret/";

pub struct LocalSecrets {
    store_path: PathBuf,
    cipher: Aes256Gcm,
    state: Mutex<StoreFile>,
}

/// Shows the path only: the cipher holds the master key.
impl std::fmt::Debug for LocalSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSecrets")
            .field("store_path", &self.store_path)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoreFile {
    format: u32,
    key_check: Sealed,
    secrets: BTreeMap<String, Sealed>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

impl LocalSecrets {
    /// Opens (or creates) the store in `data_dir`. `master_key` is the base64 of 32 bytes from
    /// the settings; when `None`, the key comes from `data_dir/secrets.key`, generated on first
    /// use. Blocks briefly on file I/O; call it at start-up.
    pub fn open(data_dir: &Path, master_key: Option<String>) -> SecretsResult<Self> {
        fs::create_dir_all(data_dir).map_err(|e| SecretsError::io(data_dir, e))?;
        let key = match master_key {
            Some(encoded) => decode_key(&encoded, "masterKey setting")?,
            None => load_or_create_key_file(&data_dir.join(KEY_FILE_NAME))?,
        };
        let cipher = Aes256Gcm::new(&key.into());
        let store_path = data_dir.join(STORE_FILE_NAME);

        let state = match fs::read(&store_path) {
            Ok(bytes) => {
                let state: StoreFile =
                    serde_json::from_slice(&bytes).map_err(|e| SecretsError::Corrupt {
                        name: store_path.display().to_string(),
                        reason: format!("not a secret store file: {e}"),
                    })?;
                if state.format != FORMAT {
                    return Err(SecretsError::Corrupt {
                        name: store_path.display().to_string(),
                        reason: format!("unsupported format {}", state.format),
                    });
                }
                if open_sealed(&cipher, &state.key_check, KEY_CHECK_AAD).as_deref()
                    != Some(KEY_CHECK_PLAINTEXT)
                {
                    return Err(SecretsError::WrongMasterKey {
                        path: store_path.display().to_string(),
                    });
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = StoreFile {
                    format: FORMAT,
                    key_check: seal(&cipher, KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)?,
                    secrets: BTreeMap::new(),
                };
                write_atomic(&store_path, &to_json(&state)?)?;
                state
            }
            Err(e) => return Err(SecretsError::io(&store_path, e)),
        };

        Ok(Self {
            store_path,
            cipher,
            state: Mutex::new(state),
        })
    }

    /// Where the encrypted store lives (for logs and diagnostics).
    pub fn store_path(&self) -> &Path {
        &self.store_path
    }

    /// Writes `next` durably, then makes it the in-memory state.
    async fn commit(&self, current: &mut StoreFile, next: StoreFile) -> SecretsResult<()> {
        let bytes = to_json(&next)?;
        let path = self.store_path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|e| SecretsError::Backend(format!("store writer task failed: {e}")))??;
        *current = next;
        Ok(())
    }
}

#[async_trait]
impl SecretStore for LocalSecrets {
    async fn get(&self, name: &SecretName) -> SecretsResult<Option<SecretValue>> {
        let state = self.state.lock().await;
        let Some(sealed) = state.secrets.get(name.as_str()) else {
            return Ok(None);
        };
        let plain = open_sealed(&self.cipher, sealed, &secret_aad(name)).ok_or_else(|| {
            SecretsError::Corrupt {
                name: name.to_string(),
                reason: "authentication failed (tampered, truncated, moved from another name, or sealed with another key)".into(),
            }
        })?;
        let text = String::from_utf8(plain).map_err(|_| SecretsError::Corrupt {
            name: name.to_string(),
            reason: "decrypted value is not UTF-8".into(),
        })?;
        Ok(Some(SecretValue::new(text)))
    }

    async fn set(&self, name: &SecretName, value: &SecretValue) -> SecretsResult<()> {
        value.validate()?;
        let sealed = seal(&self.cipher, value.expose().as_bytes(), &secret_aad(name))?;
        let mut state = self.state.lock().await;
        let mut next = state.clone();
        next.secrets.insert(name.as_str().to_owned(), sealed);
        self.commit(&mut state, next).await
    }

    async fn delete(&self, name: &SecretName) -> SecretsResult<bool> {
        let mut state = self.state.lock().await;
        if !state.secrets.contains_key(name.as_str()) {
            return Ok(false);
        }
        let mut next = state.clone();
        next.secrets.remove(name.as_str());
        self.commit(&mut state, next).await?;
        Ok(true)
    }

    async fn list_names(&self, prefix: &str) -> SecretsResult<Vec<SecretName>> {
        let prefix = normalize_prefix(prefix)?;
        let state = self.state.lock().await;
        state
            .secrets
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .map(|k| SecretName::parse(k))
            .collect()
    }

    async fn health(&self) -> SecretsResult<()> {
        tokio::fs::metadata(&self.store_path)
            .await
            .map(|_| ())
            .map_err(|e| SecretsError::io(&self.store_path, e))
    }

    fn backend(&self) -> &'static str {
        "local"
    }
}

fn secret_aad(name: &SecretName) -> Vec<u8> {
    format!("{SECRET_AAD_PREFIX}{name}").into_bytes()
}

fn seal(cipher: &Aes256Gcm, plaintext: &[u8], aad: &[u8]) -> SecretsResult<Sealed> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SecretsError::Backend("encryption failed".into()))?;
    Ok(Sealed {
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
    })
}

/// `None` on any decoding or authentication failure: callers turn it into the right error.
fn open_sealed(cipher: &Aes256Gcm, sealed: &Sealed, aad: &[u8]) -> Option<Vec<u8>> {
    let nonce = B64.decode(&sealed.nonce).ok()?;
    if nonce.len() != NONCE_LEN {
        return None;
    }
    let ciphertext = B64.decode(&sealed.ciphertext).ok()?;
    cipher
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad,
            },
        )
        .ok()
}

fn to_json(state: &StoreFile) -> SecretsResult<Vec<u8>> {
    serde_json::to_vec_pretty(state)
        .map_err(|e| SecretsError::Backend(format!("cannot encode store: {e}")))
}

fn decode_key(encoded: &str, source_name: &str) -> SecretsResult<[u8; KEY_LEN]> {
    let problem = |reason: String| SecretsError::MasterKey {
        source_name: source_name.to_owned(),
        reason,
    };
    let bytes = B64
        .decode(encoded.trim())
        .map_err(|_| problem("is not valid base64".into()))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        problem(format!(
            "decodes to {} bytes; a master key is base64 of exactly {KEY_LEN} bytes",
            bytes.len()
        ))
    })
}

fn load_or_create_key_file(path: &Path) -> SecretsResult<[u8; KEY_LEN]> {
    match fs::metadata(path) {
        Ok(_) => read_key_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(path),
        Err(e) => Err(SecretsError::io(path, e)),
    }
}

fn read_key_file(path: &Path) -> SecretsResult<[u8; KEY_LEN]> {
    let source_name = format!("key file {}", path.display());
    let meta = fs::metadata(path).map_err(|e| SecretsError::io(path, e))?;
    if !meta.is_file() {
        return Err(SecretsError::MasterKey {
            source_name,
            reason: "is not a regular file".into(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::MasterKey {
            source_name,
            reason: format!(
                "has permissions {mode:04o}; it must not be readable by group or others (chmod 600)"
            ),
        });
    }
    let text = fs::read_to_string(path).map_err(|e| SecretsError::io(path, e))?;
    decode_key(&text, &source_name)
}

/// Creates the key file without ever exposing a partial or world-readable file: the key is
/// written to a private temp file, then hard-linked into place (which, unlike rename, fails if
/// another process created the key first; that key then wins).
fn create_key_file(path: &Path) -> SecretsResult<[u8; KEY_LEN]> {
    let key: [u8; KEY_LEN] = Aes256Gcm::generate_key(&mut OsRng).into();
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(format!("{}\n", B64.encode(key)).as_bytes())?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    match result {
        Ok(()) => {
            sync_parent(path)?;
            tracing::info!(path = %path.display(), "generated a new secret-store master key file");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(e) => Err(SecretsError::io(path, e)),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> SecretsResult<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(SecretsError::io(path, e));
    }
    sync_parent(path)
}

fn temp_path(path: &Path) -> PathBuf {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix: u64 = rand::random();
    path.with_file_name(format!(".{file_name}.{suffix:016x}.tmp"))
}

/// Makes a rename or link durable across a crash.
fn sync_parent(path: &Path) -> SecretsResult<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SecretsError::io(dir, e))
}

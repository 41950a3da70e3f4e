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
//! Several processes may share the folder (the server and the `bifrost` CLI run against the
//! same data folder): every write is a read-modify-write of the file under an exclusive lock of
//! `secrets.lock`, and every read first reloads the file when it changed on disk (its length,
//! modification time or inode differ from what was loaded), so no process loses another's
//! writes or serves a stale value for long. This module must not depend on Key Vault or on any
//! network code.

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
    lock_path: PathBuf,
    cipher: Aes256Gcm,
    state: Mutex<Loaded>,
}

/// The store as last read or written, and the file's identity at that moment.
struct Loaded {
    file: StoreFile,
    stamp: Option<FileStamp>,
}

/// What tells one version of the store file from another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn stamp_of(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    Some(FileStamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: meta.ino(),
    })
}

/// Name of the lock file that serializes writers of the store across processes.
const LOCK_FILE_NAME: &str = "secrets.lock";

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

        let lock_path = data_dir.join(LOCK_FILE_NAME);
        let state = {
            let _lock = lock_exclusive(&lock_path)?;
            match read_store(&store_path, &cipher)? {
                Some(state) => state,
                None => {
                    let state = StoreFile {
                        format: FORMAT,
                        key_check: seal(&cipher, KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)?,
                        secrets: BTreeMap::new(),
                    };
                    write_atomic(&store_path, &to_json(&state)?)?;
                    state
                }
            }
        };
        let stamp = stamp_of(&store_path);
        Ok(Self {
            store_path,
            lock_path,
            cipher,
            state: Mutex::new(Loaded { file: state, stamp }),
        })
    }

    /// Reloads the in-memory copy when another process changed the file.
    async fn refresh(&self, loaded: &mut Loaded) -> SecretsResult<()> {
        let path = self.store_path.clone();
        let now = tokio::task::spawn_blocking(move || stamp_of(&path))
            .await
            .map_err(|e| SecretsError::Backend(format!("store reader task failed: {e}")))?;
        if now == loaded.stamp {
            return Ok(());
        }
        let (path, cipher) = (self.store_path.clone(), self.cipher.clone());
        let reread = tokio::task::spawn_blocking(move || {
            read_store(&path, &cipher).map(|f| (f, stamp_of(&path)))
        })
        .await
        .map_err(|e| SecretsError::Backend(format!("store reader task failed: {e}")))??;
        if let (Some(file), stamp) = reread {
            *loaded = Loaded { file, stamp };
        }
        Ok(())
    }

    /// Applies `change` to the current file under the cross-process lock and writes it
    /// durably; the in-memory copy follows. `change` answers whether it changed anything.
    async fn modify(
        &self,
        change: impl FnOnce(&mut StoreFile) -> bool + Send + 'static,
    ) -> SecretsResult<bool> {
        let mut loaded = self.state.lock().await;
        let (store_path, lock_path, cipher) = (
            self.store_path.clone(),
            self.lock_path.clone(),
            self.cipher.clone(),
        );
        let current = loaded.file.clone();
        let (file, changed, stamp) = tokio::task::spawn_blocking(move || {
            let _lock = lock_exclusive(&lock_path)?;
            let mut file = read_store(&store_path, &cipher)?.unwrap_or(current);
            let changed = change(&mut file);
            if changed {
                write_atomic(&store_path, &to_json(&file)?)?;
            }
            Ok::<_, SecretsError>((file, changed, stamp_of(&store_path)))
        })
        .await
        .map_err(|e| SecretsError::Backend(format!("store writer task failed: {e}")))??;
        *loaded = Loaded { file, stamp };
        Ok(changed)
    }

    /// Where the encrypted store lives (for logs and diagnostics).
    pub fn store_path(&self) -> &Path {
        &self.store_path
    }
}

/// The store file, checked (format, master key); `None` when it does not exist yet.
fn read_store(path: &Path, cipher: &Aes256Gcm) -> SecretsResult<Option<StoreFile>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SecretsError::io(path, e)),
    };
    let state: StoreFile = serde_json::from_slice(&bytes).map_err(|e| SecretsError::Corrupt {
        name: path.display().to_string(),
        reason: format!("not a secret store file: {e}"),
    })?;
    if state.format != FORMAT {
        return Err(SecretsError::Corrupt {
            name: path.display().to_string(),
            reason: format!("unsupported format {}", state.format),
        });
    }
    if open_sealed(cipher, &state.key_check, KEY_CHECK_AAD).as_deref() != Some(KEY_CHECK_PLAINTEXT)
    {
        return Err(SecretsError::WrongMasterKey {
            path: path.display().to_string(),
        });
    }
    Ok(Some(state))
}

/// An exclusive advisory lock on `path` (created if missing), held until the file is dropped.
fn lock_exclusive(path: &Path) -> SecretsResult<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SecretsError::io(path, e))?;
    file.lock().map_err(|e| SecretsError::io(path, e))?;
    Ok(file)
}

#[async_trait]
impl SecretStore for LocalSecrets {
    async fn get(&self, name: &SecretName) -> SecretsResult<Option<SecretValue>> {
        let mut loaded = self.state.lock().await;
        self.refresh(&mut loaded).await?;
        let Some(sealed) = loaded.file.secrets.get(name.as_str()) else {
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
        let key = name.as_str().to_owned();
        self.modify(move |file| {
            file.secrets.insert(key, sealed);
            true
        })
        .await
        .map(drop)
    }

    async fn delete(&self, name: &SecretName) -> SecretsResult<bool> {
        let key = name.as_str().to_owned();
        self.modify(move |file| file.secrets.remove(&key).is_some())
            .await
    }

    async fn list_names(&self, prefix: &str) -> SecretsResult<Vec<SecretName>> {
        let prefix = normalize_prefix(prefix)?;
        let mut loaded = self.state.lock().await;
        self.refresh(&mut loaded).await?;
        loaded
            .file
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

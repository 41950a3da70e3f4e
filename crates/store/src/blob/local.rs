//! The local-folder blob backend used standalone.
//!
//! Layout under the root: `<container>/` per container; a blob `s1/s2/name` is the file
//! `<container>/s1.dir/s2.dir/name.blob`. The distinct suffixes let Azure's flat namespace hold
//! both `a` and `a/b` (file `a.blob` beside folder `a.dir`), and since [`BlobPath`] forbids
//! empty, `.` and `..` segments and backslashes, no blob name can resolve outside its container.
//! Each blob file starts with a two-line header (a magic line, then one JSON line with content
//! type, ETag and write time) followed by the raw bytes, so bytes and properties are replaced
//! together by one `rename` of a fully written, fsynced temp file from `<root>/.tmp` (container
//! names cannot start with a dot). A reader holds the old inode open and never sees a mix.
//! All file I/O runs on tokio's blocking pool. Must not depend on the Azure backend.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{BlobInfo, BlobPath, BlobStore, ContainerName, content_type_or_default};
use crate::error::{StoreError, StoreResult};

const MAGIC: &[u8] = b"BIFROST-BLOB 1\n";
const MAX_HEADER_BYTES: usize = 4096;
const FILE_SUFFIX: &str = ".blob";
const DIR_SUFFIX: &str = ".dir";
const TMP_DIR: &str = ".tmp";
/// Temp files older than this at start-up are leftovers of a crash mid-write.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    content_type: String,
    etag: String,
    last_modified_unix_ns: i64,
}

/// Blobs stored as files under one root folder.
#[derive(Clone, Debug)]
pub struct LocalBlobs {
    root: Arc<PathBuf>,
}

impl LocalBlobs {
    /// Opens (creating if needed) the blob root folder and clears stale temp files.
    pub fn open(root: &Path) -> StoreResult<Self> {
        let tmp = root.join(TMP_DIR);
        fs::create_dir_all(&tmp)
            .map_err(|e| io_error(&format!("blob root {}", root.display()), e))?;
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP_AGE);
                if stale {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(Self {
            root: Arc::new(root.to_path_buf()),
        })
    }

    async fn blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> StoreResult<T> + Send + 'static,
    {
        let root = Arc::clone(&self.root);
        tokio::task::spawn_blocking(move || f(&root))
            .await
            .map_err(|e| StoreError::Backend(format!("blob file task failed: {e}")))?
    }
}

fn io_error(what: &str, e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::not_found(what)
    } else {
        StoreError::Backend(format!("{what}: {e}"))
    }
}

fn blob_what(container: &str, path: &str) -> String {
    format!("blob {container}/{path}")
}

fn container_dir(root: &Path, container: &str) -> PathBuf {
    root.join(container)
}

fn require_container(root: &Path, container: &str) -> StoreResult<PathBuf> {
    let dir = container_dir(root, container);
    match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(dir),
        Ok(_) => Err(StoreError::not_found(format!("container {container}"))),
        Err(e) => Err(io_error(&format!("container {container}"), e)),
    }
}

/// The file of a blob. Safe by construction: every segment is validated by [`BlobPath`].
fn blob_file(container_dir: &Path, path: &BlobPath) -> PathBuf {
    let mut file = container_dir.to_path_buf();
    let segments: Vec<&str> = path.segments().collect();
    if let Some((last, dirs)) = segments.split_last() {
        for dir in dirs {
            file.push(format!("{dir}{DIR_SUFFIX}"));
        }
        file.push(format!("{last}{FILE_SUFFIX}"));
    }
    file
}

fn to_time(ns: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Splits a blob file's leading bytes into its header and the header's length.
fn parse_header(what: &str, prefix: &[u8]) -> StoreResult<(Header, usize)> {
    let corrupt = || StoreError::Backend(format!("{what}: file has no valid blob header"));
    let rest = prefix.strip_prefix(MAGIC).ok_or_else(corrupt)?;
    let end = rest.iter().position(|b| *b == b'\n').ok_or_else(corrupt)?;
    let header: Header = serde_json::from_slice(&rest[..end]).map_err(|_| corrupt())?;
    Ok((header, MAGIC.len() + end + 1))
}

fn read_prefix(file: &mut File) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    file.take(MAX_HEADER_BYTES as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn info_of(name: BlobPath, header: Header, size: u64) -> BlobInfo {
    BlobInfo {
        name,
        size,
        content_type: header.content_type,
        etag: header.etag,
        last_modified: to_time(header.last_modified_unix_ns),
    }
}

fn read_info(what: &str, file_path: &Path, name: BlobPath) -> StoreResult<BlobInfo> {
    let mut file = File::open(file_path).map_err(|e| io_error(what, e))?;
    let len = file.metadata().map_err(|e| io_error(what, e))?.len();
    let prefix = read_prefix(&mut file).map_err(|e| io_error(what, e))?;
    let (header, header_len) = parse_header(what, &prefix)?;
    Ok(info_of(name, header, len.saturating_sub(header_len as u64)))
}

/// Removes now-empty folders from `start` up to (not including) `stop`. Racing writers are
/// safe: `put` recreates missing folders and retries its rename.
fn prune_empty_dirs(start: Option<&Path>, stop: &Path) {
    let mut dir = start;
    while let Some(d) = dir {
        if d == stop || !d.starts_with(stop) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

fn list_dir(
    dir: &Path,
    name_prefix: &str,
    wanted: &str,
    what: &str,
    out: &mut Vec<BlobInfo>,
) -> StoreResult<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A folder pruned by a concurrent delete simply has nothing left to list.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(what, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(what, e))?;
        let file_type = entry.file_type().map_err(|e| io_error(what, e))?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if file_type.is_dir() {
            let Some(segment) = file_name.strip_suffix(DIR_SUFFIX) else {
                continue;
            };
            let sub_prefix = format!("{name_prefix}{segment}/");
            // Descend only where names can still start with `wanted`.
            if sub_prefix.starts_with(wanted) || wanted.starts_with(&sub_prefix) {
                list_dir(&entry.path(), &sub_prefix, wanted, what, out)?;
            }
        } else if file_type.is_file() {
            let Some(segment) = file_name.strip_suffix(FILE_SUFFIX) else {
                continue;
            };
            let name = format!("{name_prefix}{segment}");
            if !name.starts_with(wanted) {
                continue;
            }
            let Ok(path) = BlobPath::new(name) else {
                continue;
            };
            let blob = format!("{what}: blob {path}");
            match read_info(&blob, &entry.path(), path) {
                Ok(info) => out.push(info),
                // Deleted between read_dir and open.
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for LocalBlobs {
    async fn health(&self) -> StoreResult<()> {
        self.blocking(|root| match fs::metadata(root.join(TMP_DIR)) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(StoreError::unavailable(
                "blob root temp folder is not a folder",
            )),
            Err(e) => Err(StoreError::unavailable(format!(
                "blob root unreachable: {e}"
            ))),
        })
        .await
    }

    async fn create_container(&self, container: &ContainerName) -> StoreResult<()> {
        let name = container.as_str().to_owned();
        self.blocking(move |root| {
            fs::create_dir_all(container_dir(root, &name))
                .map_err(|e| io_error(&format!("container {name}"), e))
        })
        .await
    }

    async fn put(
        &self,
        container: &ContainerName,
        path: &BlobPath,
        bytes: Bytes,
        content_type: &str,
    ) -> StoreResult<BlobInfo> {
        let content_type = content_type_or_default(content_type)?;
        let container = container.as_str().to_owned();
        let path = path.clone();
        self.blocking(move |root| {
            let what = blob_what(&container, path.as_str());
            let dir = require_container(root, &container)?;
            let now = OffsetDateTime::now_utc();
            let header = Header {
                content_type,
                etag: format!("\"{}\"", uuid::Uuid::new_v4().simple()),
                last_modified_unix_ns: i64::try_from(now.unix_timestamp_nanos()).unwrap_or(0),
            };
            let json = serde_json::to_vec(&header)
                .map_err(|e| StoreError::Backend(format!("{what}: header: {e}")))?;

            let tmp = root
                .join(TMP_DIR)
                .join(uuid::Uuid::new_v4().simple().to_string());
            let write = || -> io::Result<()> {
                let mut file = File::create(&tmp)?;
                file.write_all(MAGIC)?;
                file.write_all(&json)?;
                file.write_all(b"\n")?;
                file.write_all(&bytes)?;
                file.sync_all()
            };
            if let Err(e) = write() {
                let _ = fs::remove_file(&tmp);
                return Err(io_error(&what, e));
            }

            let target = blob_file(&dir, &path);
            let mut attempts = 0;
            loop {
                attempts += 1;
                let parent_ready = match target.parent() {
                    Some(parent) => fs::create_dir_all(parent),
                    None => Ok(()),
                };
                let renamed = parent_ready.and_then(|()| fs::rename(&tmp, &target));
                match renamed {
                    Ok(()) => break,
                    // A concurrent delete pruned a parent folder between create and rename.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => continue,
                    Err(e) => {
                        let _ = fs::remove_file(&tmp);
                        return Err(io_error(&what, e));
                    }
                }
            }
            Ok(info_of(path, header, bytes.len() as u64))
        })
        .await
    }

    async fn get(
        &self,
        container: &ContainerName,
        path: &BlobPath,
    ) -> StoreResult<(Bytes, BlobInfo)> {
        let container = container.as_str().to_owned();
        let path = path.clone();
        self.blocking(move |root| {
            let what = blob_what(&container, path.as_str());
            let dir = require_container(root, &container)?;
            let content = fs::read(blob_file(&dir, &path)).map_err(|e| io_error(&what, e))?;
            let head = &content[..content.len().min(MAX_HEADER_BYTES)];
            let (header, header_len) = parse_header(&what, head)?;
            let bytes = Bytes::from(content).slice(header_len..);
            let size = bytes.len() as u64;
            Ok((bytes, info_of(path, header, size)))
        })
        .await
    }

    async fn info(&self, container: &ContainerName, path: &BlobPath) -> StoreResult<BlobInfo> {
        let container = container.as_str().to_owned();
        let path = path.clone();
        self.blocking(move |root| {
            let what = blob_what(&container, path.as_str());
            let dir = require_container(root, &container)?;
            read_info(&what, &blob_file(&dir, &path), path)
        })
        .await
    }

    async fn delete(&self, container: &ContainerName, path: &BlobPath) -> StoreResult<bool> {
        let container = container.as_str().to_owned();
        let path = path.clone();
        self.blocking(move |root| {
            let what = blob_what(&container, path.as_str());
            let dir = require_container(root, &container)?;
            let file = blob_file(&dir, &path);
            match fs::remove_file(&file) {
                Ok(()) => {
                    prune_empty_dirs(file.parent(), &dir);
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_error(&what, e)),
            }
        })
        .await
    }

    async fn list(&self, container: &ContainerName, prefix: &str) -> StoreResult<Vec<BlobInfo>> {
        let container = container.as_str().to_owned();
        let prefix = prefix.to_owned();
        self.blocking(move |root| {
            let dir = require_container(root, &container)?;
            let mut out = Vec::new();
            list_dir(
                &dir,
                "",
                &prefix,
                &format!("container {container}"),
                &mut out,
            )?;
            out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
            Ok(out)
        })
        .await
    }
}

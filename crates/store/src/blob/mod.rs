//! Named byte objects in containers: the contract ([`BlobStore`]) and its two backends.
//!
//! Large execution results and logs, and uploaded files, live here: in a local folder
//! ([`LocalBlobs`]) standalone, or in Azure Blob Storage ([`AzureBlobs`]). Both backends obey
//! the same rules, pinned by `tests/blob_conformance.rs`:
//! - names are validated before any I/O ([`ContainerName`], [`BlobPath`]), so a hostile path
//!   such as `../x` can neither escape the local root nor reach another container;
//! - a write replaces the whole blob atomically and gives it a new ETag: a reader sees the old
//!   bytes or the new ones, never a mix;
//! - listings are sorted by name (byte order).
//!
//! This module knows nothing about executions or files; blobs are opaque bytes.

mod azure;
mod local;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::error::{StoreError, StoreResult};

pub use azure::AzureBlobs;
pub use local::LocalBlobs;

/// Longest blob path in characters (Azure's limit).
pub const MAX_BLOB_PATH_CHARS: usize = 1024;

/// Longest path segment in bytes. Azure allows longer ones, but the local backend stores each
/// segment as a file name (255 bytes on common filesystems, minus a 5-byte suffix).
pub const MAX_SEGMENT_BYTES: usize = 250;

/// Content type recorded when the caller gives none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// A blob container name valid on Azure: 3–63 characters of lower-case letters, digits and
/// single hyphens, starting and ending with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerName(String);

impl ContainerName {
    pub fn new(value: impl Into<String>) -> StoreResult<Self> {
        let value = value.into();
        crate::queue::validate_dns_like_name("containerName", &value)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A blob name inside a container: 1–1024 characters of `/`-separated segments, none of them
/// empty, `.` or `..`, with no backslash, no control character and no leading `/`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobPath(String);

impl BlobPath {
    pub fn new(value: impl Into<String>) -> StoreResult<Self> {
        let value = value.into();
        validate_blob_path(&value)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for BlobPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate_blob_path(value: &str) -> StoreResult<()> {
    const FIELD: &str = "blobPath";
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_BLOB_PATH_CHARS {
        return Err(StoreError::invalid(
            FIELD,
            format!("must be 1 to {MAX_BLOB_PATH_CHARS} characters, found {chars}"),
        ));
    }
    if value.starts_with('/') {
        return Err(StoreError::invalid(
            FIELD,
            "must be relative (no leading '/')",
        ));
    }
    if value.contains('\\') {
        return Err(StoreError::invalid(FIELD, "may not contain a backslash"));
    }
    if let Some(bad) = value.chars().find(|c| c.is_control()) {
        return Err(StoreError::invalid(
            FIELD,
            format!("may not contain the control character {bad:?}"),
        ));
    }
    for segment in value.split('/') {
        match segment {
            "" => {
                return Err(StoreError::invalid(
                    FIELD,
                    "may not contain empty segments ('//' or a trailing '/')",
                ));
            }
            "." | ".." => {
                return Err(StoreError::invalid(
                    FIELD,
                    format!("may not contain a {segment:?} segment"),
                ));
            }
            s if s.len() > MAX_SEGMENT_BYTES => {
                return Err(StoreError::invalid(
                    FIELD,
                    format!("segments may be at most {MAX_SEGMENT_BYTES} bytes"),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// What a backend knows about one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: BlobPath,
    pub size: u64,
    pub content_type: String,
    /// Opaque; changes on every write.
    pub etag: String,
    pub last_modified: OffsetDateTime,
}

/// A store of named byte objects grouped in containers.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Cheap reachability probe; `StoreError::Unavailable` when the backend cannot be reached.
    async fn health(&self) -> StoreResult<()>;

    /// Creates the container unless it already exists.
    async fn create_container(&self, container: &ContainerName) -> StoreResult<()>;

    /// Writes (or replaces) a whole blob. An empty `content_type` records
    /// [`DEFAULT_CONTENT_TYPE`]. The container must exist (`NotFound` otherwise).
    async fn put(
        &self,
        container: &ContainerName,
        path: &BlobPath,
        bytes: Bytes,
        content_type: &str,
    ) -> StoreResult<BlobInfo>;

    /// Reads a whole blob; `NotFound` when it (or its container) does not exist.
    async fn get(
        &self,
        container: &ContainerName,
        path: &BlobPath,
    ) -> StoreResult<(Bytes, BlobInfo)>;

    /// The blob's properties without its bytes; `NotFound` when missing.
    async fn info(&self, container: &ContainerName, path: &BlobPath) -> StoreResult<BlobInfo>;

    /// Deletes a blob; returns whether it existed.
    async fn delete(&self, container: &ContainerName, path: &BlobPath) -> StoreResult<bool>;

    /// Every blob whose name starts with `prefix` (plain string prefix, `""` for all), sorted
    /// by name. `NotFound` when the container does not exist.
    async fn list(&self, container: &ContainerName, prefix: &str) -> StoreResult<Vec<BlobInfo>>;
}

pub(crate) fn content_type_or_default(content_type: &str) -> StoreResult<String> {
    let trimmed = content_type.trim();
    if trimmed.is_empty() {
        return Ok(DEFAULT_CONTENT_TYPE.to_owned());
    }
    if trimmed.len() > 256 || trimmed.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(StoreError::invalid(
            "contentType",
            "must be at most 256 printable ASCII characters",
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_rejected_naming_the_field() {
        for bad in [
            "",
            "../x",
            "a/../../x",
            "..",
            ".",
            "./a",
            "a/./b",
            "/abs",
            "a\\b",
            "a//b",
            "a/",
            "a\u{0}b",
            "a\nb",
            &"a".repeat(1025),
            &format!("{}/b", "s".repeat(251)),
        ] {
            let err = BlobPath::new(bad).unwrap_err();
            assert!(err.to_string().contains("blobPath"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn ordinary_paths_are_accepted() {
        for good in [
            "a",
            "logs/2024/01/run.txt",
            "a..b/c.d",
            "ünïcode/名前",
            "with space/x",
        ] {
            assert!(BlobPath::new(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn container_names_follow_azure_rules() {
        assert!(ContainerName::new("results-1").is_ok());
        let err = ContainerName::new("Results").unwrap_err();
        assert!(err.to_string().contains("containerName"), "{err}");
    }

    #[test]
    fn content_type_defaults_and_rejects_header_injection() {
        assert_eq!(content_type_or_default("").unwrap(), DEFAULT_CONTENT_TYPE);
        assert!(content_type_or_default("text/plain\r\nx: y").is_err());
    }
}

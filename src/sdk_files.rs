//! The file area of the SDK's `files.*`: per organization, in the blob store, never the
//! workspace.
//!
//! v1's `files.write(path)` wrote into the shared, hot-reloaded workspace: one organization's
//! output was readable by every other, and a caller-supplied `pwn.py` became server code at the
//! next rescan. Here each scope has its own area in container `sdk-files` (`<scope>/<location>/
//! <path>`: a folder per organization on the embedded backend, a blob prefix on Azure), for both
//! of v1's locations (`workspace` and `temp`). The workspace stays readable — a read of the
//! `workspace` location that the area does not have falls back to the workspace file — but it
//! is never written, listed-for-deletion or deleted through the SDK.
//!
//! Invariants: a path is relative and plain (no `..`, root, NUL, backslash or empty segment) or
//! refused before any I/O; a workspace read resolves symlinks and must stay inside the
//! workspace; nothing here ever names another scope's prefix.
//!
//! Depends on the blob store contract only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bifrost_engine::{FileLocation, HostError, HostResult};
use bifrost_store::blob::{BlobPath, BlobStore, ContainerName};
use bifrost_store::{Scope, StoreError};
use bytes::Bytes;

/// The container of every scope's file area.
pub const FILES_CONTAINER: &str = "sdk-files";

/// The SDK's file areas.
#[derive(Clone)]
pub struct SdkFiles {
    blobs: Arc<dyn BlobStore>,
    container: ContainerName,
    /// The workspace root, canonical (symlinks resolved), read-only to workflows.
    workspace: PathBuf,
}

impl SdkFiles {
    pub fn new(blobs: Arc<dyn BlobStore>, workspace: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            blobs,
            container: ContainerName::new(FILES_CONTAINER)?,
            workspace: workspace
                .canonicalize()
                .unwrap_or_else(|_| workspace.to_owned()),
        })
    }

    pub async fn ensure_container(&self) -> Result<(), StoreError> {
        self.blobs.create_container(&self.container).await
    }

    fn blob(&self, scope: &Scope, location: FileLocation, path: &str) -> HostResult<BlobPath> {
        let clean = plain(path)?;
        BlobPath::new(format!("{}/{}", area(scope, location), clean))
            .map_err(|e| HostError::PermissionDenied(format!("path {path:?}: {e}")))
    }

    pub async fn read(
        &self,
        scope: &Scope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<Vec<u8>> {
        let blob = self.blob(scope, location, path)?;
        match self.blobs.get(&self.container, &blob).await {
            Ok((bytes, _)) => Ok(bytes.to_vec()),
            Err(StoreError::NotFound { .. }) if location == FileLocation::Workspace => {
                let file = self.workspace_file(path)?;
                tokio::fs::read(&file).await.map_err(|e| io_error(path, e))
            }
            Err(StoreError::NotFound { .. }) => Err(HostError::NotFound(format!("file {path:?}"))),
            Err(e) => Err(store_error(e)),
        }
    }

    pub async fn write(
        &self,
        scope: &Scope,
        location: FileLocation,
        path: &str,
        content: Vec<u8>,
    ) -> HostResult<()> {
        let blob = self.blob(scope, location, path)?;
        self.blobs
            .put(&self.container, &blob, Bytes::from(content), "")
            .await
            .map(drop)
            .map_err(store_error)
    }

    /// The names directly inside `dir` (files, and folders as their name), sorted; for the
    /// `workspace` location the area's names and the workspace's together.
    pub async fn list(
        &self,
        scope: &Scope,
        location: FileLocation,
        dir: &str,
    ) -> HostResult<Vec<String>> {
        let dir = plain_dir(dir)?;
        let prefix = match dir.is_empty() {
            true => format!("{}/", area(scope, location)),
            false => format!("{}/{dir}/", area(scope, location)),
        };
        let mut names = std::collections::BTreeSet::new();
        match self.blobs.list(&self.container, &prefix).await {
            Ok(blobs) => {
                for blob in blobs {
                    if let Some(rest) = blob.name.as_str().strip_prefix(&prefix)
                        && let Some(first) = rest.split('/').next()
                    {
                        names.insert(first.to_owned());
                    }
                }
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(store_error(e)),
        }
        if location == FileLocation::Workspace {
            let folder = if dir.is_empty() {
                Some(self.workspace.clone())
            } else {
                match self.workspace_file(&dir) {
                    Ok(folder) => Some(folder),
                    Err(HostError::NotFound(_)) => None,
                    Err(e) => return Err(e),
                }
            };
            if let Some(folder) = folder
                && let Ok(mut entries) = tokio::fs::read_dir(&folder).await
            {
                while let Ok(Some(entry)) = entries.next_entry().await {
                    names.insert(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Deletes a file of the area. A workspace file is refused: the workspace is read-only.
    pub async fn delete(
        &self,
        scope: &Scope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<bool> {
        let blob = self.blob(scope, location, path)?;
        let deleted = self
            .blobs
            .delete(&self.container, &blob)
            .await
            .or_else(|e| match e {
                StoreError::NotFound { .. } => Ok(false),
                e => Err(store_error(e)),
            })?;
        if !deleted
            && location == FileLocation::Workspace
            && self.workspace_file(path).is_ok_and(|f| f.is_file())
        {
            return Err(HostError::PermissionDenied(format!(
                "{path:?} is a workspace file; the workspace is read-only to workflows"
            )));
        }
        Ok(deleted)
    }

    pub async fn exists(
        &self,
        scope: &Scope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<bool> {
        let blob = self.blob(scope, location, path)?;
        match self.blobs.info(&self.container, &blob).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) if location == FileLocation::Workspace => {
                Ok(self.workspace_file(path).is_ok_and(|f| f.exists()))
            }
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Deletes the files of `scope`'s `temp` location written before `cutoff` (the retention
    /// job's); returns how many went.
    pub async fn purge_temp_before(
        &self,
        scope: &Scope,
        cutoff: time::OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let prefix = format!("{}/", area(scope, FileLocation::Temp));
        let blobs = match self.blobs.list(&self.container, &prefix).await {
            Ok(blobs) => blobs,
            Err(StoreError::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut purged = 0;
        for blob in blobs.iter().filter(|b| b.last_modified < cutoff) {
            if self.blobs.delete(&self.container, &blob.name).await? {
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// `path` inside the workspace, symlinks resolved; refused when it leaves the workspace.
    fn workspace_file(&self, path: &str) -> HostResult<PathBuf> {
        let joined = self.workspace.join(plain(path)?);
        let real = match joined.canonicalize() {
            Ok(real) => real,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HostError::NotFound(format!("file {path:?}")));
            }
            Err(e) => return Err(io_error(path, e)),
        };
        if !real.starts_with(&self.workspace) {
            return Err(HostError::PermissionDenied(format!(
                "path {path:?} leaves the workspace"
            )));
        }
        Ok(real)
    }
}

/// `<scope>/<location>`: the prefix of one scope's area for one location.
fn area(scope: &Scope, location: FileLocation) -> String {
    let location = match location {
        FileLocation::Workspace => "workspace",
        FileLocation::Temp => "temp",
    };
    format!("{scope}/{location}")
}

/// A relative path of plain segments (`./` and repeated `/` are dropped); anything that could
/// name something outside its base is refused.
fn plain(path: &str) -> HostResult<String> {
    let clean = plain_dir(path)?;
    if clean.is_empty() {
        return Err(HostError::InvalidInput("a file path is required".into()));
    }
    Ok(clean)
}

fn plain_dir(path: &str) -> HostResult<String> {
    let refuse = |why: &str| {
        Err(HostError::PermissionDenied(format!(
            "path {path:?} {why}; use a relative path inside the file area"
        )))
    };
    if path.starts_with('/') {
        return refuse("is absolute");
    }
    if path.contains('\0') || path.chars().any(char::is_control) {
        return refuse("contains a control character");
    }
    if path.contains('\\') {
        return refuse("contains a backslash");
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return refuse("contains '..'"),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

fn store_error(e: StoreError) -> HostError {
    match e {
        StoreError::Invalid { reason, .. } => HostError::PermissionDenied(reason),
        StoreError::NotFound { what } => HostError::NotFound(what),
        other => HostError::Backend(format!("file storage: {other}")),
    }
}

fn io_error(path: &str, e: std::io::Error) -> HostError {
    match e.kind() {
        std::io::ErrorKind::NotFound => HostError::NotFound(format!("file {path:?}")),
        std::io::ErrorKind::PermissionDenied => {
            HostError::PermissionDenied(format!("file {path:?}"))
        }
        _ => HostError::Backend(format!("file {path:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bifrost_store::OrgId;
    use bifrost_store::blob::LocalBlobs;

    async fn files(dir: &Path) -> (SdkFiles, PathBuf) {
        let ws = dir.join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(ws.join("template.txt"), "from the workspace").unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::open(&dir.join("blobs")).unwrap());
        let files = SdkFiles::new(blobs, &ws).unwrap();
        files.ensure_container().await.unwrap();
        (files, ws)
    }

    fn org(id: &str) -> Scope {
        Scope::Org(OrgId::parse(id).unwrap())
    }

    #[tokio::test]
    async fn each_scope_has_its_own_area_and_the_workspace_is_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let (f, ws) = files(dir.path()).await;
        let (a, b) = (org("org-a"), org("org-b"));
        for loc in [FileLocation::Workspace, FileLocation::Temp] {
            f.write(&a, loc, "out/r.csv", b"a".to_vec()).await.unwrap();
            assert_eq!(f.read(&a, loc, "out/r.csv").await.unwrap(), b"a");
            assert!(matches!(
                f.read(&b, loc, "out/r.csv").await.unwrap_err(),
                HostError::NotFound(_)
            ));
            assert_eq!(f.list(&a, loc, "out").await.unwrap(), ["r.csv"]);
            assert!(f.list(&b, loc, "out").await.unwrap().is_empty());
        }
        // Written files never land in the workspace; workspace files can be read, not deleted.
        f.write(&a, FileLocation::Workspace, "pwn.py", b"x".to_vec())
            .await
            .unwrap();
        assert!(!ws.join("pwn.py").exists());
        assert_eq!(
            f.read(&b, FileLocation::Workspace, "template.txt")
                .await
                .unwrap(),
            b"from the workspace"
        );
        assert!(matches!(
            f.delete(&b, FileLocation::Workspace, "template.txt")
                .await
                .unwrap_err(),
            HostError::PermissionDenied(_)
        ));
        assert!(ws.join("template.txt").exists());
        let listed = f.list(&a, FileLocation::Workspace, "").await.unwrap();
        assert!(
            listed.contains(&"pwn.py".to_owned()) && listed.contains(&"template.txt".to_owned())
        );
    }

    #[tokio::test]
    async fn paths_that_could_leave_their_base_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (f, ws) = files(dir.path()).await;
        std::os::unix::fs::symlink("/etc", ws.join("etc_link")).unwrap();
        let a = org("org-a");
        for bad in [
            "../x",
            "/etc/passwd",
            "a\0b",
            "sub/../../x",
            "a\\b",
            "etc_link/passwd",
        ] {
            for loc in [FileLocation::Workspace, FileLocation::Temp] {
                let read = f.read(&a, loc, bad).await;
                assert!(
                    matches!(
                        read,
                        Err(HostError::PermissionDenied(_) | HostError::NotFound(_))
                    ),
                    "{bad}: {read:?}"
                );
            }
            if bad != "etc_link/passwd" {
                assert!(matches!(
                    f.write(&a, FileLocation::Temp, bad, b"x".to_vec()).await,
                    Err(HostError::PermissionDenied(_))
                ));
            }
        }
        assert!(matches!(
            f.read(&a, FileLocation::Workspace, "etc_link/passwd").await,
            Err(HostError::PermissionDenied(_))
        ));
    }
}

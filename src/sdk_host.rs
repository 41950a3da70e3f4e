//! The storage-backed host of the Python SDK: what `from bifrost import config, secrets, files,
//! organizations, roles, ...` reaches when a workflow awaits it.
//!
//! The engine knows nothing of storage; it calls this [`SdkHost`] with the execution's scope.
//! Every call is confined to that scope: the org comes from the execution, never from workflow
//! arguments (v1 let any workflow read any vault secret by its full name; here `secrets.get(key)`
//! looks in the execution's org, then GLOBAL, and cannot name another org's secret).
//! `files` paths stay inside their location, and the `temp` location is separate per org.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bifrost_engine::{FileLocation, HostError, HostResult, HostScope, SdkHost};
use bifrost_secrets::{SecretName, SecretStore, SecretValue, SecretsError, SecretsErrorKind};
use bifrost_store::{OrgId, Scope};

pub struct StorageHost {
    secrets: Arc<dyn SecretStore>,
    workspace: PathBuf,
    temp: PathBuf,
}

impl StorageHost {
    pub fn new(secrets: Arc<dyn SecretStore>, workspace: PathBuf, temp: PathBuf) -> Self {
        Self {
            secrets,
            workspace,
            temp,
        }
    }

    /// The folder a `files.*` call may touch: the shared workspace, or this org's temp folder.
    fn base(&self, scope: &HostScope, location: FileLocation) -> HostResult<PathBuf> {
        Ok(match location {
            FileLocation::Workspace => self.workspace.clone(),
            FileLocation::Temp => self.temp.join(execution_scope(scope)?.to_string()),
        })
    }

    fn resolve(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<PathBuf> {
        Ok(self.base(scope, location)?.join(sandboxed(path)?))
    }
}

/// The execution's scope as the storage layer's type.
pub fn execution_scope(scope: &HostScope) -> HostResult<Scope> {
    match &scope.org_id {
        None => Ok(Scope::Global),
        Some(id) => OrgId::parse(id)
            .map(Scope::Org)
            .map_err(|e| HostError::InvalidInput(e.to_string())),
    }
}

/// A relative path with no `..`, root or prefix components: it cannot leave its base folder.
fn sandboxed(path: &str) -> HostResult<PathBuf> {
    let candidate = Path::new(path);
    let mut clean = PathBuf::new();
    for component in candidate.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(HostError::PermissionDenied(format!(
                    "path {path:?} must stay inside its location (no absolute paths or '..')"
                )));
            }
        }
    }
    Ok(clean)
}

fn secrets_error(e: SecretsError) -> HostError {
    match e.kind() {
        SecretsErrorKind::Invalid => HostError::InvalidInput(e.to_string()),
        // Workflow code sees the kind of failure, never backend details.
        SecretsErrorKind::Conflict => {
            HostError::Backend("secret store: name is reserved (recently deleted)".into())
        }
        SecretsErrorKind::Unavailable => {
            HostError::Backend("secret store: temporarily unavailable".into())
        }
        _ => HostError::Backend("secret store: internal error".into()),
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

#[async_trait]
impl SdkHost for StorageHost {
    async fn secret_get(&self, scope: &HostScope, key: &str) -> HostResult<Option<String>> {
        let own = execution_scope(scope)?;
        let mut scopes = vec![own.clone()];
        if own != Scope::Global {
            scopes.push(Scope::Global);
        }
        for s in scopes {
            let name = SecretName::scoped(&s, key).map_err(secrets_error)?;
            if let Some(value) = self.secrets.get(&name).await.map_err(secrets_error)? {
                return Ok(Some(value.into_exposed()));
            }
        }
        Ok(None)
    }

    async fn secret_set(&self, scope: &HostScope, key: &str, value: &str) -> HostResult<()> {
        let name = SecretName::scoped(&execution_scope(scope)?, key).map_err(secrets_error)?;
        self.secrets
            .set(&name, &SecretValue::new(value))
            .await
            .map_err(secrets_error)
    }

    async fn secret_list(&self, scope: &HostScope) -> HostResult<Vec<String>> {
        let own = execution_scope(scope)?;
        let names = self.secrets.list_scope(&own).await.map_err(secrets_error)?;
        Ok(names
            .iter()
            .filter_map(|n| n.key_in_scope(&own).map(str::to_owned))
            .collect())
    }

    async fn secret_delete(&self, scope: &HostScope, key: &str) -> HostResult<bool> {
        let name = SecretName::scoped(&execution_scope(scope)?, key).map_err(secrets_error)?;
        self.secrets.delete(&name).await.map_err(secrets_error)
    }

    async fn file_read(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<Vec<u8>> {
        let full = self.resolve(scope, location, path)?;
        tokio::fs::read(&full).await.map_err(|e| io_error(path, e))
    }

    async fn file_write(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: &str,
        content: Vec<u8>,
    ) -> HostResult<()> {
        let full = self.resolve(scope, location, path)?;
        if let Some(parent) = full.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error(path, e))?;
        }
        tokio::fs::write(&full, content)
            .await
            .map_err(|e| io_error(path, e))
    }

    async fn file_list(
        &self,
        scope: &HostScope,
        location: FileLocation,
        dir: &str,
    ) -> HostResult<Vec<String>> {
        let full = self.resolve(scope, location, dir)?;
        let mut entries = match tokio::fs::read_dir(&full).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(dir, e)),
        };
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| io_error(dir, e))? {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    async fn file_delete(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<bool> {
        let full = self.resolve(scope, location, path)?;
        match tokio::fs::remove_file(&full).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(path, e)),
        }
    }

    async fn file_exists(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<bool> {
        let full = self.resolve(scope, location, path)?;
        Ok(tokio::fs::try_exists(&full).await.unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bifrost_engine::Caller;

    fn scope(org: Option<&str>) -> HostScope {
        HostScope {
            execution_id: "e1".into(),
            org_id: org.map(str::to_owned),
            caller: Caller::new("u1", "u1@example.com", "U One"),
            is_platform_admin: false,
            is_function_key: false,
        }
    }

    fn host(dir: &Path) -> StorageHost {
        let secrets = bifrost_secrets::LocalSecrets::open(&dir.join("data"), None).unwrap();
        std::fs::create_dir_all(dir.join("ws")).unwrap();
        StorageHost::new(Arc::new(secrets), dir.join("ws"), dir.join("tmp"))
    }

    #[tokio::test]
    async fn secrets_are_confined_to_the_org_with_global_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path());
        let (a, b, global) = (scope(Some("org-a")), scope(Some("org-b")), scope(None));
        h.secret_set(&global, "halo_key", "global-value")
            .await
            .unwrap();
        h.secret_set(&a, "halo_key", "a-value").await.unwrap();
        assert_eq!(
            h.secret_get(&a, "halo_key").await.unwrap().as_deref(),
            Some("a-value")
        );
        assert_eq!(
            h.secret_get(&b, "halo_key").await.unwrap().as_deref(),
            Some("global-value")
        );
        h.secret_set(&b, "only_b", "b").await.unwrap();
        assert_eq!(h.secret_get(&a, "only_b").await.unwrap(), None);
        assert_eq!(h.secret_list(&a).await.unwrap(), ["halo_key"]);
        assert!(h.secret_delete(&a, "halo_key").await.unwrap());
        assert_eq!(
            h.secret_get(&a, "halo_key").await.unwrap().as_deref(),
            Some("global-value")
        );
    }

    #[tokio::test]
    async fn files_stay_inside_their_location_and_temp_is_per_org() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path());
        let (a, b) = (scope(Some("org-a")), scope(Some("org-b")));
        h.file_write(&a, FileLocation::Temp, "r/out.txt", b"hi".to_vec())
            .await
            .unwrap();
        assert_eq!(
            h.file_read(&a, FileLocation::Temp, "r/out.txt")
                .await
                .unwrap(),
            b"hi"
        );
        assert!(
            !h.file_exists(&b, FileLocation::Temp, "r/out.txt")
                .await
                .unwrap()
        );
        assert_eq!(
            h.file_list(&a, FileLocation::Temp, "r").await.unwrap(),
            ["out.txt"]
        );
        for bad in ["../x", "/etc/passwd", "a/../../x"] {
            let err = h
                .file_read(&a, FileLocation::Workspace, bad)
                .await
                .unwrap_err();
            assert!(
                matches!(err, HostError::PermissionDenied(_)),
                "{bad}: {err:?}"
            );
        }
        assert!(matches!(
            h.file_read(&a, FileLocation::Workspace, "missing.txt")
                .await
                .unwrap_err(),
            HostError::NotFound(_)
        ));
        assert!(
            h.file_delete(&a, FileLocation::Temp, "r/out.txt")
                .await
                .unwrap()
        );
        assert!(
            !h.file_delete(&a, FileLocation::Temp, "r/out.txt")
                .await
                .unwrap()
        );
    }
}

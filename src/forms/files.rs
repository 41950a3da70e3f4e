//! Files for `file` fields: uploaded to blob storage before the form is submitted, referenced
//! from the submission by [`FileRef`], checked again when the form is submitted, and handed to
//! the workflow's sandbox.
//!
//! May depend on: the blob contract, `model` and `validate` (the field's own type and size rules
//! decide what an upload may be). No HTTP.
//!
//! Layout: container `form-uploads`, blob `{scope}/{formId}/{fileId}/{name}` (scope = the
//! organization the form runs for, or `GLOBAL`), the upload's `Content-Type` recorded on the
//! blob. `fileId` is a fresh UUID: knowing it is what lets a submission reference the file, and
//! the scope and form in the path keep one form's or organization's files out of another's
//! submissions.
//!
//! Workflows read the bytes through the SDK's file area: before a submission runs, each of its
//! files is copied to the organization's `temp` location as `form-uploads/{fileId}/{name}`, so
//! `files.read_bytes(f"form-uploads/{f['fileId']}/{f['name']}", location="temp")` works. The
//! area is in the blob store ([`crate::sdk_files`]), so whichever instance runs the workflow
//! finds it.
//!
//! Retention deletes uploads a day old: a submission that used one has its copy by then, and
//! an upload no run used is left-over (or someone filling storage through a public form).
//!
//! Invariants: an upload is at most [`MAX_UPLOAD_BYTES`] and within its field's `maxSizeMB`
//! and `allowedTypes`; stored names are single path segments (no `/`, `\`, control characters,
//! `.` or `..`).

use std::sync::Arc;

use bifrost_engine::FileLocation;
use bifrost_store::blob::{BlobPath, BlobStore, ContainerName};
use bifrost_store::{Scope, StoreError};
use bytes::Bytes;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::error::FormError;
use super::model::{FieldType, Form, FormField};
use super::validate::{FileRef, Validator};
use crate::sdk_files::SdkFiles;

pub const UPLOADS_CONTAINER: &str = "form-uploads";
/// The largest upload, whatever the field allows.
pub const MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;
/// The folder of the `temp` location that submissions' files are copied to.
pub const TEMP_FOLDER: &str = "form-uploads";
const MIB: u64 = 1024 * 1024;
const MAX_NAME_BYTES: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The field's type or size rules refuse the file; the message names the file.
    #[error("{0}")]
    Rejected(String),
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("'{0}' is not a file field of this form")]
    NotAFileField(String),
}

/// The uploads of every form. Cheap to clone.
#[derive(Clone)]
pub struct Uploads {
    blobs: Arc<dyn BlobStore>,
    container: ContainerName,
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads")
            .field("container", &self.container)
            .finish()
    }
}

impl Uploads {
    pub fn new(blobs: Arc<dyn BlobStore>) -> Result<Self, StoreError> {
        Ok(Self {
            blobs,
            container: ContainerName::new(UPLOADS_CONTAINER)?,
        })
    }

    pub async fn ensure_container(&self) -> Result<(), StoreError> {
        self.blobs.create_container(&self.container).await
    }

    /// The largest file `field` accepts: its `maxSizeMB`, capped at [`MAX_UPLOAD_BYTES`].
    pub fn limit(field: &FormField) -> u64 {
        field.max_size_mb.map_or(MAX_UPLOAD_BYTES, |mb| {
            (u64::from(mb) * MIB).min(MAX_UPLOAD_BYTES)
        })
    }

    /// Checks the file against `field`'s rules and stores it; returns the reference a
    /// submission carries.
    pub async fn save(
        &self,
        scope: &Scope,
        form_id: &str,
        field: &FormField,
        file_name: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<FileRef, UploadError> {
        if field.field_type != FieldType::File {
            return Err(UploadError::NotAFileField(field.name.clone()));
        }
        let limit = Self::limit(field);
        if bytes.len() as u64 > limit {
            return Err(UploadError::TooLarge { limit });
        }
        let content_type = match content_type.trim() {
            "" => bifrost_store::blob::DEFAULT_CONTENT_TYPE,
            t => t,
        };
        let file = FileRef {
            file_id: uuid::Uuid::new_v4().to_string(),
            name: safe_name(file_name),
            content_type: content_type.to_owned(),
            size: bytes.len() as u64,
        };
        check_against(field, &file).map_err(UploadError::Rejected)?;
        let path = blob_path(scope, form_id, &file.file_id, &file.name)?;
        self.blobs
            .put(&self.container, &path, bytes, &file.content_type)
            .await?;
        Ok(file)
    }

    /// The stored file `file_id` of `form_id` in `scope`, with its blob path.
    pub async fn find(
        &self,
        scope: &Scope,
        form_id: &str,
        file_id: &str,
    ) -> Result<Option<(FileRef, BlobPath)>, StoreError> {
        if !is_file_id(file_id) {
            return Ok(None);
        }
        let prefix = format!("{scope}/{form_id}/{file_id}/");
        let blobs = match self.blobs.list(&self.container, &prefix).await {
            Ok(blobs) => blobs,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(blobs.into_iter().next().and_then(|info| {
            let name = info.name.segments().last()?.to_owned();
            Some((
                FileRef {
                    file_id: file_id.to_owned(),
                    name,
                    content_type: info.content_type.clone(),
                    size: info.size,
                },
                info.name,
            ))
        }))
    }

    /// Checks that `submitted` is a file uploaded for this form in this scope, exactly as
    /// described. `Err` carries the message for the field.
    pub async fn verify(
        &self,
        scope: &Scope,
        form_id: &str,
        submitted: &FileRef,
    ) -> Result<Result<BlobPath, String>, StoreError> {
        let Some((stored, path)) = self.find(scope, form_id, &submitted.file_id).await? else {
            return Ok(Err(format!(
                "{}: no such upload for this form (upload it with POST /api/forms/{form_id}/files)",
                submitted.name
            )));
        };
        if stored != *submitted {
            return Ok(Err(format!(
                "{}: does not match the uploaded file (name, contentType and size must be as \
                 the upload answered)",
                submitted.name
            )));
        }
        Ok(Ok(path))
    }

    /// Copies an uploaded file to `form-uploads/{fileId}/{name}` of the scope's SDK `temp`
    /// location (nothing is done when the copy exists).
    pub async fn materialize(
        &self,
        files: &SdkFiles,
        scope: &Scope,
        file: &FileRef,
        path: &BlobPath,
    ) -> Result<String, UploadError> {
        let target = format!("{TEMP_FOLDER}/{}/{}", file.file_id, safe_name(&file.name));
        let copy_error = |e: bifrost_engine::HostError| {
            UploadError::Store(StoreError::Backend(format!("copying an upload: {e}")))
        };
        if files
            .exists(scope, FileLocation::Temp, &target)
            .await
            .map_err(copy_error)?
        {
            return Ok(target);
        }
        let (bytes, _) = self.blobs.get(&self.container, path).await?;
        files
            .write(scope, FileLocation::Temp, &target, bytes.to_vec())
            .await
            .map_err(copy_error)?;
        Ok(target)
    }

    /// Deletes every upload written before `cutoff`; returns how many went. A platform job:
    /// it reads every scope's uploads.
    pub async fn purge_before(&self, cutoff: OffsetDateTime) -> Result<usize, StoreError> {
        let blobs = match self.blobs.list(&self.container, "").await {
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
}

impl Uploads {
    /// Checks every file a submission of `form` names against its upload and copies it where
    /// the workflow's SDK reads it. Files that are not this form's uploads in `scope` are
    /// listed, by field, in one [`FormError::InvalidFields`].
    pub async fn hand_over(
        &self,
        files: &SdkFiles,
        scope: &Scope,
        form: &Form,
        values: &Map<String, Value>,
    ) -> Result<(), FormError> {
        let mut errors = Vec::new();
        let mut found = Vec::new();
        for field in form
            .form_schema
            .all_fields()
            .filter(|f| f.field_type == FieldType::File)
        {
            let Some(value) = values.get(&field.name) else {
                continue;
            };
            for file in file_refs(value) {
                match self.verify(scope, &form.id, &file).await? {
                    Ok(path) => found.push((file, path)),
                    Err(message) => errors.push((field.name.clone(), message)),
                }
            }
        }
        if !errors.is_empty() {
            return Err(FormError::InvalidFields(errors));
        }
        for (file, path) in found {
            self.materialize(files, scope, &file, &path).await?;
        }
        Ok(())
    }
}

/// The value's files, as a list (a `multiple` field's array, or the one file).
pub fn file_refs(value: &Value) -> Vec<FileRef> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect(),
        other => serde_json::from_value(other.clone()).into_iter().collect(),
    }
}

/// The field's own rules (`allowedTypes`, `maxSizeMB`) applied to one file, with the messages
/// a submission would get.
fn check_against(field: &FormField, file: &FileRef) -> Result<(), String> {
    let mut single = field.clone();
    single.required = false;
    single.multiple = None;
    single.visibility_expression = None;
    single.default_value = None;
    let validator = Validator::new([&single]).map_err(|e| e.to_string())?;
    let mut values = Map::new();
    values.insert(
        single.name.clone(),
        serde_json::to_value(file).map_err(|e| e.to_string())?,
    );
    validator
        .validate(&values, &Value::Null, &Map::new())
        .map(|_| ())
        .map_err(|errors| {
            errors
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ")
        })
}

fn blob_path(
    scope: &Scope,
    form_id: &str,
    file_id: &str,
    name: &str,
) -> Result<BlobPath, StoreError> {
    BlobPath::new(format!("{scope}/{form_id}/{file_id}/{name}"))
}

fn is_file_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A file name usable as one path segment: separators and control characters become `_`,
/// at most [`MAX_NAME_BYTES`] bytes, never empty, `.` or `..`.
pub fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let mut out = String::new();
    for c in base.chars() {
        let c = if c.is_control() { '_' } else { c };
        if out.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        out.push(c);
    }
    match out.trim() {
        "" | "." | ".." => "file".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bifrost_store::OrgId;
    use bifrost_store::blob::LocalBlobs;

    fn file_field(types: &[&str], max_mb: Option<u32>) -> FormField {
        let mut f = FormField::new("doc", FieldType::File);
        f.label = Some("Doc".into());
        f.allowed_types = Some(types.iter().map(|t| (*t).to_owned()).collect());
        f.max_size_mb = max_mb;
        f
    }

    async fn uploads() -> (Uploads, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::open(dir.path()).unwrap());
        let uploads = Uploads::new(blobs).unwrap();
        uploads.ensure_container().await.unwrap();
        (uploads, dir)
    }

    #[test]
    fn names_are_single_safe_segments() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\x\\report.pdf"), "report.pdf");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name(" a\u{7}b.txt "), "a_b.txt");
        assert_eq!(safe_name(&"é".repeat(300)).len(), 200);
    }

    #[tokio::test]
    async fn uploads_follow_the_field_rules_and_verify() {
        let (uploads, dir) = uploads().await;
        let scope = Scope::Org(OrgId::parse("o1").unwrap());
        let field = file_field(&["application/pdf", ".txt"], Some(1));
        let saved = uploads
            .save(
                &scope,
                "f1",
                &field,
                "notes.txt",
                "text/plain",
                Bytes::from_static(b"hi"),
            )
            .await
            .unwrap();
        assert_eq!((saved.name.as_str(), saved.size), ("notes.txt", 2));
        let refused = uploads
            .save(
                &scope,
                "f1",
                &field,
                "x.png",
                "image/png",
                Bytes::from_static(b"x"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, UploadError::Rejected(m) if m.contains("image/png")),
            "{refused}"
        );
        let big = Bytes::from(vec![0u8; (MIB + 1) as usize]);
        assert!(matches!(
            uploads.save(&scope, "f1", &field, "a.pdf", "application/pdf", big).await,
            Err(UploadError::TooLarge { limit }) if limit == MIB
        ));

        let path = uploads.verify(&scope, "f1", &saved).await.unwrap().unwrap();
        assert!(
            uploads
                .verify(&Scope::Global, "f1", &saved)
                .await
                .unwrap()
                .is_err()
        );
        assert!(uploads.verify(&scope, "f2", &saved).await.unwrap().is_err());
        let mut lying = saved.clone();
        lying.size = 1;
        assert!(uploads.verify(&scope, "f1", &lying).await.unwrap().is_err());
        let mut sneaky = saved.clone();
        sneaky.file_id = String::new();
        assert!(
            uploads
                .verify(&scope, "f1", &sneaky)
                .await
                .unwrap()
                .is_err()
        );

        let ws = dir.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        let files = SdkFiles::new(uploads.blobs.clone(), &ws).unwrap();
        files.ensure_container().await.unwrap();
        let copy = uploads
            .materialize(&files, &scope, &saved, &path)
            .await
            .unwrap();
        assert_eq!(copy, format!("form-uploads/{}/notes.txt", saved.file_id));
        assert_eq!(
            files.read(&scope, FileLocation::Temp, &copy).await.unwrap(),
            b"hi"
        );
        // A day later the upload is gone; the run's copy stays.
        let later = OffsetDateTime::now_utc() + time::Duration::days(1);
        assert_eq!(uploads.purge_before(later).await.unwrap(), 1);
        assert!(
            uploads
                .find(&scope, "f1", &saved.file_id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            files
                .exists(&scope, FileLocation::Temp, &copy)
                .await
                .unwrap()
        );
    }

    #[test]
    fn file_refs_reads_one_or_many() {
        let one = serde_json::json!({"fileId": "a", "name": "n", "contentType": "t", "size": 1});
        assert_eq!(file_refs(&one).len(), 1);
        assert_eq!(file_refs(&Value::Array(vec![one.clone(), one])).len(), 2);
        assert!(file_refs(&Value::Null).is_empty());
    }
}

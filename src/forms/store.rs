//! Stored forms: the `Forms` table, the global id index, a short-lived in-memory cache of parsed
//! and compiled forms, and the import of `*.form.json` workspace files (so forms can live in git).
//!
//! May depend on: the table contract (`bifrost-store`), `model`, `validate` and the domain's
//! `FormId`. No HTTP, no engine.
//!
//! Layout:
//! - `Forms`, partition = the form's scope (`GLOBAL` or its organization), row key = form id:
//!   `Name`, `LinkedWorkflow`, `IsActive`, `AccessLevel`, `Source` (`api` | `workspace`),
//!   `SourceFile` (workspace forms: the file, relative to the workspace), `ContentHash`, and
//!   the form's v1 JSON split over `Json0`, `Json1`, … (`JsonChunks` of them; Azure limits a
//!   string property to 32 K UTF-16 units).
//! - `FormIndex`, partition `GLOBAL`, row key = form id: `Scope`, `Source`, `ContentHash`.
//!   Form ids are unique across scopes; the index says which partition holds a form, so a
//!   public form of an organization can be opened by id from outside it (anonymously, too).
//!
//! Invariants:
//! - A form row exists only while its index row does: writes put the index row first, deletes
//!   remove the form row first, and a reader treats an index row without a form row as "not
//!   found". The index is written by this module only.
//! - API writes are ETag-guarded: a concurrent edit is `PreconditionFailed`, never lost.
//! - Workspace forms are read-only through the API ([`FormStoreError::ReadOnly`]): the file is
//!   the source of truth. An import makes every `*.form.json` (and `form.json`) file's form the
//!   stored form with its id (a file always wins, also over an API-created form with the same
//!   id), and removes imported forms whose file is gone. Files without `orgId` are `GLOBAL`.
//! - A cached form is at most [`FORM_CACHE_TTL`] old. Writes through this store invalidate it
//!   at once on this instance; other instances see a change within the TTL.
//! - Every form handed out passed [`Form::check`] when it was written and carries its compiled
//!   validators; a stored row that no longer parses is reported, never served half-read.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bifrost_store::table::{
    ETag, Entity, IfMatch, Properties, Query, TableName, Value as TableValue, WriteMode,
};
use bifrost_store::{RowKey, Scope, ScopedTable, StoreError, TableStore};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::model::{AccessLevel, FieldIssue, Form, GLOBAL_ORG};
use super::validate::{DefinitionError, Validator};
use crate::domain::FormId;

pub const FORMS_TABLE: &str = "Forms";
pub const FORM_INDEX_TABLE: &str = "FormIndex";
/// How long a form read from storage is served from memory.
pub const FORM_CACHE_TTL: Duration = Duration::from_secs(2);
/// `createdBy` of forms imported from workspace files that do not say.
pub const WORKSPACE_CREATOR: &str = "workspace";
/// Longest workspace form file read.
pub const MAX_FORM_FILE_BYTES: u64 = 1024 * 1024;

/// Azure's Edm.String limit, in UTF-16 code units.
const CHUNK_UNITS: usize = 32 * 1024;
/// At most this many chunks per stored document: 384 K UTF-16 units stay well inside Azure's
/// 1 MiB entity limit (strings count two bytes per unit there).
pub const MAX_CHUNKS: usize = 12;
const CACHE_MAX_ENTRIES: usize = 10_000;

/// Where a stored form came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormSource {
    /// Created through the API; editable through the API.
    Api,
    /// Imported from this workspace file (relative, `/`-separated); read-only through the API.
    Workspace { file: String },
}

impl FormSource {
    fn as_str(&self) -> &'static str {
        match self {
            FormSource::Api => "api",
            FormSource::Workspace { .. } => "workspace",
        }
    }
}

/// A form as stored, with its compiled validators.
#[derive(Debug)]
pub struct StoredForm {
    pub form: Form,
    /// The partition that holds it (`GLOBAL` or the owning organization).
    pub scope: Scope,
    pub source: FormSource,
    /// The row's ETag (absent only for forms not read from storage).
    pub etag: Option<ETag>,
    validator: Validator,
    steps: Vec<Validator>,
}

impl StoredForm {
    /// Compiles the form's validators (the whole form and each step).
    pub fn new(
        form: Form,
        scope: Scope,
        source: FormSource,
        etag: Option<ETag>,
    ) -> Result<Self, DefinitionError> {
        let validator = Validator::for_form(&form)?;
        let steps = (0..form.form_schema.step_count())
            .map(|n| Validator::for_step(&form.form_schema, n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            form,
            scope,
            source,
            etag,
            validator,
            steps,
        })
    }

    /// The checks of a whole submission.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// The checks of step `n` (0-based); a flat form has step 0 only.
    pub fn step_validator(&self, n: usize) -> Option<&Validator> {
        self.steps.get(n)
    }

    /// Read-only through the API (imported from the workspace).
    pub fn is_read_only(&self) -> bool {
        matches!(self.source, FormSource::Workspace { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FormStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("form '{id}' comes from the workspace file {file}; change the file instead")]
    ReadOnly { id: String, file: String },
    #[error("a form with id '{0}' already exists")]
    Exists(String),
    #[error(
        "the form is {units} characters of JSON; at most {} can be stored",
        MAX_CHUNKS * CHUNK_UNITS
    )]
    TooLarge { units: usize },
    #[error("stored form '{id}' cannot be read: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("invalid form id '{0}': 1 to 64 letters, digits, '-' or '_'")]
    InvalidId(String),
}

/// What one workspace import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Form ids written (new or changed files).
    pub imported: Vec<String>,
    /// Files whose form was already stored as it is.
    pub unchanged: usize,
    /// Ids of imported forms removed because their file is gone.
    pub removed: Vec<String>,
    /// Files that could not be imported, and why.
    pub errors: Vec<ImportIssue>,
}

/// One workspace file that was not imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportIssue {
    /// Relative to the workspace folder.
    pub file: String,
    pub message: String,
}

/// The forms of every scope. Cheap to clone; clones share the cache.
#[derive(Clone, Debug)]
pub struct FormStore {
    tables: Arc<dyn TableStore>,
    forms: TableName,
    index: ScopedTable,
    cache: Arc<TtlCache<String, Option<Arc<StoredForm>>>>,
}

impl FormStore {
    pub fn new(tables: Arc<dyn TableStore>) -> Result<Self, StoreError> {
        let index = ScopedTable::new(
            tables.clone(),
            TableName::new(FORM_INDEX_TABLE)?,
            &Scope::Global,
        );
        Ok(Self {
            forms: TableName::new(FORMS_TABLE)?,
            tables,
            index,
            cache: Arc::new(TtlCache::new(FORM_CACHE_TTL, CACHE_MAX_ENTRIES)),
        })
    }

    pub async fn ensure_tables(&self) -> Result<(), StoreError> {
        self.tables.create_table_if_missing(&self.forms).await?;
        self.tables
            .create_table_if_missing(self.index.table())
            .await
    }

    fn partition(&self, scope: &Scope) -> ScopedTable {
        ScopedTable::new(self.tables.clone(), self.forms.clone(), scope)
    }

    /// The form with this id, in whichever scope holds it (callers decide who may see it).
    /// Served from memory for up to [`FORM_CACHE_TTL`].
    pub async fn get(&self, id: &str) -> Result<Option<Arc<StoredForm>>, FormStoreError> {
        if FormId::parse(id).is_err() {
            return Ok(None);
        }
        let key = id.to_owned();
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit);
        }
        let generation = self.cache.generation();
        let found = self.load(id).await?;
        self.cache.put_if_current(key, found.clone(), generation);
        Ok(found)
    }

    /// Reads a form from storage, bypassing the cache.
    pub async fn load(&self, id: &str) -> Result<Option<Arc<StoredForm>>, FormStoreError> {
        let key = row_key(id)?;
        let Some(entry) = absent_is_none(self.index.get(&key).await)? else {
            return Ok(None);
        };
        let scope = index_scope(&entry)?;
        let Some(row) = absent_is_none(self.partition(&scope).get(&key).await)? else {
            return Ok(None);
        };
        decode(row, scope).map(|f| Some(Arc::new(f)))
    }

    /// The forms stored in `scope`, plus the `GLOBAL` ones when `scope` is an organization,
    /// ordered by name. Unreadable rows are logged and left out.
    pub async fn list(&self, scope: &Scope) -> Result<Vec<Arc<StoredForm>>, FormStoreError> {
        let mut scopes = vec![scope.clone()];
        if *scope != Scope::Global {
            scopes.push(Scope::Global);
        }
        let mut forms = Vec::new();
        for scope in scopes {
            let rows = match self.partition(&scope).query_all(&Query::new()).await {
                Ok(rows) => rows,
                Err(StoreError::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            for row in rows {
                match decode(row, scope.clone()) {
                    Ok(form) => forms.push(Arc::new(form)),
                    Err(e) => tracing::error!(error = %e, "skipping an unreadable form row"),
                }
            }
        }
        forms.sort_by(|a, b| {
            a.form
                .name
                .to_lowercase()
                .cmp(&b.form.name.to_lowercase())
                .then_with(|| a.form.id.cmp(&b.form.id))
        });
        Ok(forms)
    }

    /// Stores a new API form in the scope its `orgId` names. `Exists` if the id is taken in
    /// any scope.
    pub async fn create(&self, form: Form) -> Result<Arc<StoredForm>, FormStoreError> {
        let scope = form_scope(&form)?;
        let key = row_key(&form.id)?;
        let source = FormSource::Api;
        let props = encode(&form, &source, None)?;
        let stored = compile(form, scope.clone(), source)?;
        let index = index_props(&scope, &FormSource::Api, None);
        self.index
            .insert(key.clone(), index)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists { .. } => FormStoreError::Exists(key.to_string()),
                other => other.into(),
            })?;
        let etag = match self.partition(&scope).insert(key.clone(), props).await {
            Ok(etag) => etag,
            Err(e) => {
                // Leave no index row behind for a form that was not written.
                if let Err(undo) = self.index.delete(&key, &IfMatch::Any).await {
                    tracing::warn!(error = %undo, form_id = %key, "could not remove the index row of a failed form insert");
                }
                return Err(match e {
                    StoreError::AlreadyExists { .. } => FormStoreError::Exists(key.to_string()),
                    other => other.into(),
                });
            }
        };
        self.cache.invalidate(&key.to_string());
        Ok(Arc::new(StoredForm {
            etag: Some(etag),
            ..stored
        }))
    }

    /// Replaces an API form with `form` (same id and scope), guarded by `current`'s ETag.
    pub async fn replace(
        &self,
        current: &StoredForm,
        form: Form,
    ) -> Result<Arc<StoredForm>, FormStoreError> {
        if let FormSource::Workspace { file } = &current.source {
            return Err(FormStoreError::ReadOnly {
                id: current.form.id.clone(),
                file: file.clone(),
            });
        }
        let key = row_key(&current.form.id)?;
        let form = Form {
            id: current.form.id.clone(),
            org_id: current.form.org_id.clone(),
            ..form
        };
        let props = encode(&form, &FormSource::Api, None)?;
        let stored = compile(form, current.scope.clone(), FormSource::Api)?;
        let if_match = current.etag.clone().map_or(IfMatch::Any, IfMatch::ETag);
        let result = self
            .partition(&current.scope)
            .update(key.clone(), props, WriteMode::Replace, &if_match)
            .await;
        self.cache.invalidate(&current.form.id);
        let etag = result?;
        Ok(Arc::new(StoredForm {
            etag: Some(etag),
            ..stored
        }))
    }

    /// Deletes an API form (its role assignments become inert: no form, no access).
    pub async fn delete(&self, current: &StoredForm) -> Result<(), FormStoreError> {
        if let FormSource::Workspace { file } = &current.source {
            return Err(FormStoreError::ReadOnly {
                id: current.form.id.clone(),
                file: file.clone(),
            });
        }
        let key = row_key(&current.form.id)?;
        let result = self.remove(&current.scope, &key).await;
        self.cache.invalidate(&current.form.id);
        result
    }

    async fn remove(&self, scope: &Scope, key: &RowKey) -> Result<(), FormStoreError> {
        match self.partition(scope).delete(key, &IfMatch::Any).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        match self.index.delete(key, &IfMatch::Any).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Imports every `*.form.json` / `form.json` under `root` (see the module rules). Problems
    /// with single files are reported in the result; storage errors end the import.
    pub async fn import_workspace(&self, root: &Path) -> Result<ImportReport, FormStoreError> {
        let dir = root.to_path_buf();
        let files = tokio::task::spawn_blocking(move || scan_workspace(&dir))
            .await
            .map_err(|e| FormStoreError::Store(StoreError::Backend(format!("form scan: {e}"))))?
            .map_err(|e| {
                FormStoreError::Store(StoreError::Backend(format!(
                    "cannot read the workspace folder: {e}"
                )))
            })?;
        let mut report = ImportReport::default();
        let mut parsed: Vec<(Form, Scope, String, String)> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for file in files {
            let text = match file.text {
                Ok(text) => text,
                Err(message) => {
                    report.errors.push(ImportIssue {
                        file: file.rel,
                        message,
                    });
                    continue;
                }
            };
            match parse_form_file(&file.rel, &text, file.modified) {
                Ok((form, scope)) => {
                    if let Some(other) = seen.get(&form.id) {
                        report.errors.push(ImportIssue {
                            file: file.rel,
                            message: format!("form id '{}' is also used by {other}", form.id),
                        });
                        continue;
                    }
                    seen.insert(form.id.clone(), file.rel.clone());
                    let hash = content_hash(&file.rel, &text);
                    parsed.push((form, scope, file.rel, hash));
                }
                Err(message) => report.errors.push(ImportIssue {
                    file: file.rel,
                    message,
                }),
            }
        }

        let existing: HashMap<String, Entity> = match self.index.query_all(&Query::new()).await {
            Ok(rows) => rows
                .into_iter()
                .map(|r| (r.row_key.as_str().to_owned(), r))
                .collect(),
            Err(StoreError::NotFound { .. }) => HashMap::new(),
            Err(e) => return Err(e.into()),
        };

        for (form, scope, rel, hash) in parsed {
            let key = row_key(&form.id)?;
            let id = form.id.clone();
            let previous = existing.get(&id);
            let previous_scope = previous.map(index_scope).transpose();
            let previous_scope = match previous_scope {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, form_id = %id, "replacing an unreadable form index row");
                    None
                }
            };
            if let Some(prev) = previous
                && previous_scope.as_ref() == Some(&scope)
                && text_prop(prev, "Source") == Some("workspace")
                && text_prop(prev, "ContentHash") == Some(hash.as_str())
            {
                report.unchanged += 1;
                continue;
            }
            let source = FormSource::Workspace { file: rel.clone() };
            let props = match encode(&form, &source, Some(&hash)) {
                Ok(props) => props,
                Err(e) => {
                    report.errors.push(ImportIssue {
                        file: rel,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            if let Some(old) = previous_scope.filter(|s| *s != scope) {
                match self.partition(&old).delete(&key, &IfMatch::Any).await {
                    Ok(()) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            } else if previous.is_some_and(|p| text_prop(p, "Source") == Some("api")) {
                tracing::warn!(form_id = %id, file = %rel, "a workspace form file replaces the API form with the same id");
            }
            self.index
                .upsert(
                    key.clone(),
                    index_props(&scope, &source, Some(&hash)),
                    WriteMode::Replace,
                )
                .await?;
            self.partition(&scope)
                .upsert(key, props, WriteMode::Replace)
                .await?;
            report.imported.push(id);
        }

        for (id, entry) in &existing {
            if text_prop(entry, "Source") != Some("workspace") || seen.contains_key(id) {
                continue;
            }
            let Ok(scope) = index_scope(entry) else {
                continue;
            };
            self.remove(&scope, &entry.row_key).await?;
            report.removed.push(id.clone());
        }
        if !(report.imported.is_empty() && report.removed.is_empty()) {
            self.cache.clear();
        }
        report.imported.sort();
        report.removed.sort();
        Ok(report)
    }
}

/// The storage scope named by a form's `orgId`.
pub fn form_scope(form: &Form) -> Result<Scope, FormStoreError> {
    Scope::parse(&form.org_id).map_err(FormStoreError::Store)
}

fn row_key(id: &str) -> Result<RowKey, FormStoreError> {
    FormId::parse(id).map_err(|_| FormStoreError::InvalidId(id.to_owned()))?;
    RowKey::new(id).map_err(FormStoreError::Store)
}

fn absent_is_none(
    result: Result<Option<Entity>, StoreError>,
) -> Result<Option<Entity>, StoreError> {
    match result {
        // The table does not exist yet: nothing was ever stored.
        Err(StoreError::NotFound { .. }) => Ok(None),
        other => other,
    }
}

fn text_prop<'a>(entity: &'a Entity, name: &str) -> Option<&'a str> {
    entity.get(name).and_then(TableValue::as_str)
}

fn index_scope(entry: &Entity) -> Result<Scope, FormStoreError> {
    let raw = text_prop(entry, "Scope").unwrap_or(GLOBAL_ORG);
    Scope::parse(raw).map_err(|e| FormStoreError::Corrupt {
        id: entry.row_key.to_string(),
        reason: format!("index scope: {e}"),
    })
}

fn index_props(scope: &Scope, source: &FormSource, hash: Option<&str>) -> Properties {
    let mut p = Properties::new();
    p.insert("Scope".into(), scope.to_string().into());
    p.insert("Source".into(), source.as_str().into());
    if let Some(hash) = hash {
        p.insert("ContentHash".into(), hash.into());
    }
    p
}

fn compile(form: Form, scope: Scope, source: FormSource) -> Result<StoredForm, FormStoreError> {
    let id = form.id.clone();
    StoredForm::new(form, scope, source, None).map_err(|e| FormStoreError::Corrupt {
        id,
        reason: e.to_string(),
    })
}

fn encode(
    form: &Form,
    source: &FormSource,
    hash: Option<&str>,
) -> Result<Properties, FormStoreError> {
    let json = serde_json::to_string(form).map_err(|e| FormStoreError::Corrupt {
        id: form.id.clone(),
        reason: e.to_string(),
    })?;
    let mut p = Properties::new();
    p.insert("Name".into(), form.name.clone().into());
    p.insert("LinkedWorkflow".into(), form.linked_workflow.clone().into());
    p.insert("IsActive".into(), form.is_active.into());
    p.insert(
        "AccessLevel".into(),
        match form.access_level {
            AccessLevel::Public => "public",
            AccessLevel::Authenticated => "authenticated",
            AccessLevel::RoleBased => "role_based",
        }
        .into(),
    );
    p.insert("Source".into(), source.as_str().into());
    if let FormSource::Workspace { file } = source {
        p.insert("SourceFile".into(), file.clone().into());
    }
    if let Some(hash) = hash {
        p.insert("ContentHash".into(), hash.into());
    }
    put_chunked(&mut p, "Json", &json).map_err(|units| FormStoreError::TooLarge { units })?;
    Ok(p)
}

fn decode(row: Entity, scope: Scope) -> Result<StoredForm, FormStoreError> {
    let id = row.row_key.to_string();
    let corrupt = |reason: String| FormStoreError::Corrupt {
        id: id.clone(),
        reason,
    };
    let json = read_chunked(&row, "Json").ok_or_else(|| corrupt("no JSON".into()))?;
    let mut form: Form = serde_json::from_str(&json).map_err(|e| corrupt(e.to_string()))?;
    // The keys are authoritative: the JSON cannot move a form to another id or scope.
    form.id = id.clone();
    form.org_id = scope.to_string();
    let source = match text_prop(&row, "Source") {
        Some("workspace") => FormSource::Workspace {
            file: text_prop(&row, "SourceFile").unwrap_or_default().to_owned(),
        },
        _ => FormSource::Api,
    };
    StoredForm::new(form, scope, source, row.etag.clone()).map_err(|e| corrupt(e.to_string()))
}

/// Splits `text` over `{prefix}0`, `{prefix}1`, … (each within Azure's string limit) and
/// records the count in `{prefix}Chunks`. `Err(units)` when it needs more than [`MAX_CHUNKS`].
pub(crate) fn put_chunked(props: &mut Properties, prefix: &str, text: &str) -> Result<(), usize> {
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut units = 0;
    let mut total = 0;
    for c in text.chars() {
        let n = c.len_utf16();
        if units + n > CHUNK_UNITS {
            chunks.push(std::mem::take(&mut current));
            units = 0;
        }
        current.push(c);
        units += n;
        total += n;
    }
    chunks.push(current);
    if chunks.len() > MAX_CHUNKS {
        return Err(total);
    }
    props.insert(format!("{prefix}Chunks"), (chunks.len() as i32).into());
    for (i, chunk) in chunks.into_iter().enumerate() {
        props.insert(format!("{prefix}{i}"), chunk.into());
    }
    Ok(())
}

/// The text [`put_chunked`] stored, if complete.
pub(crate) fn read_chunked(entity: &Entity, prefix: &str) -> Option<String> {
    let count = entity
        .get(&format!("{prefix}Chunks"))
        .and_then(TableValue::as_i32)?;
    let mut text = String::new();
    for i in 0..count {
        text.push_str(text_prop(entity, &format!("{prefix}{i}"))?);
    }
    Some(text)
}

fn content_hash(rel: &str, text: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rel.as_bytes());
    hasher.update([0]);
    hasher.update(text.as_bytes());
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

struct FormFile {
    rel: String,
    text: Result<String, String>,
    modified: Option<OffsetDateTime>,
}

/// Every form file under `root`, sorted by relative path. Hidden folders, `__pycache__` and
/// `node_modules` are skipped.
fn scan_workspace(root: &Path) -> std::io::Result<Vec<FormFile>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    // The root itself must be readable; unreadable subfolders are skipped.
    std::fs::read_dir(root)?;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if !name.starts_with('.') && name != "__pycache__" && name != "node_modules" {
                    stack.push(path);
                }
                continue;
            }
            if !(kind.is_file() && (name.ends_with(".form.json") || name == "form.json")) {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let meta = entry.metadata().ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .map(OffsetDateTime::from);
            let text = if meta.is_some_and(|m| m.len() > MAX_FORM_FILE_BYTES) {
                Err(format!("is larger than {MAX_FORM_FILE_BYTES} bytes"))
            } else {
                std::fs::read_to_string(&path).map_err(|e| format!("cannot be read: {e}"))
            };
            found.push(FormFile {
                rel,
                text,
                modified,
            });
        }
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(found)
}

/// A workspace file's form: v1 JSON, with `id` (default: derived from the path), `orgId`
/// (default `GLOBAL`), `createdBy` and the timestamps (default: the file's modification time)
/// optional. The form must pass [`Form::check`].
pub fn parse_form_file(
    rel: &str,
    text: &str,
    modified: Option<OffsetDateTime>,
) -> Result<(Form, Scope), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("must contain a JSON object (one form)".into());
    };
    let stamp = time::format_description::well_known::Rfc3339;
    let when = modified
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&stamp)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
    let mut default = |key: &str, value: Value| {
        if object.get(key).is_none_or(Value::is_null) {
            object.insert(key.to_owned(), value);
        }
    };
    default("id", Value::String(derived_id(rel)));
    default("orgId", Value::String(GLOBAL_ORG.into()));
    default("createdBy", Value::String(WORKSPACE_CREATOR.into()));
    default("createdAt", Value::String(when.clone()));
    default("updatedAt", Value::String(when));
    let form: Form =
        serde_json::from_value(Value::Object(object)).map_err(|e| format!("is not a form: {e}"))?;
    if FormId::parse(&form.id).is_err() {
        return Err(format!(
            "id '{}' is not valid: 1 to 64 letters, digits, '-' or '_'",
            form.id
        ));
    }
    let scope = Scope::parse(&form.org_id).map_err(|e| format!("orgId: {e}"))?;
    let form = Form {
        org_id: scope.to_string(),
        ..form
    };
    form.check().map_err(|issues| describe(&issues))?;
    Ok((form, scope))
}

fn describe(issues: &[FieldIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A stable id for a form file without one.
fn derived_id(rel: &str) -> String {
    let digest = hex(&Sha256::digest(rel.as_bytes()));
    format!("ws-{}", &digest[..32])
}

/// The forms' cache is the application's one cache type ([`crate::cache::Cache`]), under the
/// name it had here before.
pub(crate) type TtlCache<K, V> = crate::cache::Cache<K, V>;

#[cfg(test)]
mod tests {
    use super::*;
    use bifrost_store::OrgId;
    use bifrost_store::table::SqliteTables;
    use serde_json::{Map, json};

    async fn store() -> (FormStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let tables: Arc<dyn TableStore> =
            Arc::new(SqliteTables::open(&dir.path().join("t.db")).unwrap());
        let store = FormStore::new(tables).unwrap();
        store.ensure_tables().await.unwrap();
        (store, dir)
    }

    fn form(id: &str, org: &str) -> Form {
        serde_json::from_value(json!({
            "id": id, "orgId": org, "name": format!("Form {id}"), "linkedWorkflow": "w",
            "formSchema": {"fields": [{"name": "a", "label": "A", "type": "text", "required": true}]},
            "createdBy": "me", "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn crud_by_id_across_scopes() {
        let (store, _dir) = store().await;
        let org = Scope::Org(OrgId::parse("org-1").unwrap());
        store.create(form("g1", "GLOBAL")).await.unwrap();
        let created = store.create(form("o1", "org-1")).await.unwrap();
        assert_eq!(created.scope, org);
        assert!(matches!(
            store.create(form("o1", "GLOBAL")).await,
            Err(FormStoreError::Exists(_))
        ));
        let got = store.get("o1").await.unwrap().unwrap();
        assert_eq!(got.form, created.form);
        assert!(
            got.validator()
                .validate(&Map::new(), &Value::Null, &Map::new())
                .is_err()
        );

        let names: Vec<_> = store
            .list(&org)
            .await
            .unwrap()
            .iter()
            .map(|f| f.form.id.clone())
            .collect();
        assert_eq!(names, ["g1", "o1"]);
        assert_eq!(store.list(&Scope::Global).await.unwrap().len(), 1);

        let mut changed = got.form.clone();
        changed.name = "Renamed".into();
        let replaced = store.replace(&got, changed.clone()).await.unwrap();
        assert_eq!(store.get("o1").await.unwrap().unwrap().form.name, "Renamed");
        // The old ETag lost.
        assert!(matches!(
            store.replace(&got, changed).await,
            Err(FormStoreError::Store(StoreError::PreconditionFailed { .. }))
        ));
        store.delete(&replaced).await.unwrap();
        assert!(store.get("o1").await.unwrap().is_none());
        assert!(store.get("not a valid id!").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn large_forms_are_chunked() {
        let (store, _dir) = store().await;
        let mut big = form("big", "GLOBAL");
        big.description = Some("é".repeat(100_000));
        store.create(big.clone()).await.unwrap();
        let got = store.load("big").await.unwrap().unwrap();
        assert_eq!(got.form.description, big.description);
        big.id = "huge".into();
        big.description = Some("x".repeat(MAX_CHUNKS * CHUNK_UNITS + 1));
        assert!(matches!(
            store.create(big).await,
            Err(FormStoreError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn workspace_import_adds_updates_and_removes() {
        let (store, _dir) = store().await;
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join("forms/.hidden")).unwrap();
        let write = |rel: &str, v: Value| {
            std::fs::write(ws.path().join(rel), serde_json::to_string(&v).unwrap()).unwrap()
        };
        write(
            "forms/onboard.form.json",
            json!({"id": "onboard", "name": "Onboard", "linkedWorkflow": "w",
                   "formSchema": {"fields": []}, "accessLevel": "authenticated"}),
        );
        write(
            "forms/org.form.json",
            json!({"id": "orgform", "orgId": "org-1", "name": "Org", "linkedWorkflow": "w",
                   "formSchema": {"fields": []}}),
        );
        write(
            "noid.form.json",
            json!({"name": "No id", "linkedWorkflow": "w", "formSchema": {"fields": []}}),
        );
        write(
            "bad.form.json",
            json!({"name": "", "formSchema": {"fields": []}}),
        );
        write(
            "forms/.hidden/x.form.json",
            json!({"id": "hidden", "name": "H", "linkedWorkflow": "w", "formSchema": {"fields": []}}),
        );
        let report = store.import_workspace(ws.path()).await.unwrap();
        assert_eq!(report.imported.len(), 3, "{report:?}");
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert_eq!(report.errors[0].file, "bad.form.json");
        let onboard = store.get("onboard").await.unwrap().unwrap();
        assert_eq!(onboard.scope, Scope::Global);
        assert_eq!(onboard.form.access_level, AccessLevel::Authenticated);
        assert!(onboard.is_read_only());
        assert!(matches!(
            store.delete(&onboard).await,
            Err(FormStoreError::ReadOnly { .. })
        ));
        assert_eq!(
            store.get("orgform").await.unwrap().unwrap().scope,
            Scope::Org(OrgId::parse("org-1").unwrap())
        );

        let again = store.import_workspace(ws.path()).await.unwrap();
        assert_eq!((again.imported.len(), again.unchanged), (0, 3));

        std::fs::remove_file(ws.path().join("forms/org.form.json")).unwrap();
        write(
            "forms/onboard.form.json",
            json!({"id": "onboard", "name": "Onboard v2", "linkedWorkflow": "w",
                   "formSchema": {"fields": []}}),
        );
        let third = store.import_workspace(ws.path()).await.unwrap();
        assert_eq!(third.imported, ["onboard"]);
        assert_eq!(third.removed, ["orgform"]);
        assert!(store.get("orgform").await.unwrap().is_none());
        assert_eq!(
            store.get("onboard").await.unwrap().unwrap().form.name,
            "Onboard v2"
        );
    }

    #[test]
    fn chunks_round_trip_on_char_boundaries() {
        let text = format!("{}{}", "a".repeat(CHUNK_UNITS - 1), "😀".repeat(10));
        let mut p = Properties::new();
        put_chunked(&mut p, "J", &text).unwrap();
        assert_eq!(p.get("JChunks"), Some(&TableValue::Int32(2)));
        let mut e = Entity::new(
            bifrost_store::PartitionKey::new("p").unwrap(),
            RowKey::new("r").unwrap(),
        );
        e.properties = p;
        assert_eq!(read_chunked(&e, "J").unwrap(), text);
    }
}

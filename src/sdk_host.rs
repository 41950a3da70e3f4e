//! The storage-backed host of the Python SDK: what `from bifrost import config, secrets, files,
//! organizations, roles, ...` reaches when a workflow awaits it.
//!
//! The engine knows nothing of storage; it calls this [`SdkHost`] with the execution's scope.
//! Every call is confined to that scope: the org comes from the execution, never from workflow
//! arguments (v1 let any workflow read any vault secret by its full name; here `secrets.get(key)`
//! looks in the execution's org, then GLOBAL, and cannot name another org's secret). Secrets
//! follow the same rules as the secrets API, from one service
//! ([`SecretService`](crate::domain::secrets::SecretService)): scoping, fallback, audit.
//! `files.*` work in the organization's own file area ([`crate::sdk_files`]), never the
//! workspace.

use async_trait::async_trait;
use bifrost_engine::{
    ConfigValue as HostConfigValue, ExecutionFilter, FileLocation, HostError, HostResult,
    HostScope, SdkHost,
};
use bifrost_secrets::SecretValue;
use bifrost_store::table::IfMatch;
use bifrost_store::{OrgId, Scope, StoreError};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::domain::secrets::{SecretAccess, SecretService};
use crate::domain::{
    Actor, ConfigEntry, ConfigService, ConfigType, ConfigValue, ConfigWrite, DomainError, FormId,
    MASK, NewOrganization, NewRole, OrgService, Organization, OrganizationUpdate, Role, RoleId,
    RoleService, RoleUpdate, UserId,
};

use crate::executions::{ExecutionQuery, Executions};
use crate::forms::store::FormStore;
use crate::sdk_files::SdkFiles;

pub struct StorageHost {
    /// The same rules as the secrets API: scoping, org → GLOBAL fallback, audit.
    secrets: SecretService,
    config: ConfigService,
    orgs: OrgService,
    roles: RoleService,
    executions: Executions,
    /// The same forms the API serves (stored, and imported from the workspace's `*.form.json`).
    forms: FormStore,
    /// `files.*`: each organization's own area, never the workspace.
    files: SdkFiles,
}

/// The application's services the SDK reaches: the same instances the API uses, so the
/// rules (scoping, fallback, audit, caches) are one.
pub struct SdkServices {
    pub secrets: SecretService,
    pub config: ConfigService,
    pub orgs: OrgService,
    pub roles: RoleService,
    pub executions: Executions,
    pub forms: FormStore,
    pub files: SdkFiles,
}

impl StorageHost {
    pub fn new(services: SdkServices) -> Self {
        let SdkServices {
            secrets,
            config,
            orgs,
            roles,
            executions,
            forms,
            files,
        } = services;
        Self {
            secrets,
            config,
            orgs,
            roles,
            executions,
            forms,
            files,
        }
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

/// A secret failure as workflow code sees it: the kind, never backend details.
fn secret_error(e: DomainError) -> HostError {
    match e {
        DomainError::Invalid { field, reason } => {
            HostError::InvalidInput(format!("invalid {field}: {reason}"))
        }
        DomainError::Conflict { .. } => {
            HostError::Backend("secret store: name is reserved (recently deleted)".into())
        }
        DomainError::Unavailable { .. } => {
            HostError::Backend("secret store: temporarily unavailable".into())
        }
        _ => HostError::Backend("secret store: internal error".into()),
    }
}

fn domain_error(e: DomainError) -> HostError {
    match e {
        DomainError::Invalid { field, reason } => {
            HostError::InvalidInput(format!("{field}: {reason}"))
        }
        DomainError::NotFound { what } => HostError::NotFound(what),
        DomainError::Conflict { what, reason } => {
            HostError::InvalidInput(format!("{what}: {reason}"))
        }
        DomainError::PreconditionFailed { what } => {
            HostError::Backend(format!("{what} was changed concurrently; retry"))
        }
        DomainError::Unavailable { .. } => {
            HostError::Backend("storage is temporarily unavailable".into())
        }
        DomainError::Internal(_) => HostError::Backend("internal error".into()),
    }
}

/// The workflow run as the author of an audited change.
fn actor(scope: &HostScope) -> Actor {
    Actor::workflow(scope.caller.user_id.clone(), scope.execution_id.clone())
}

fn require_admin(scope: &HostScope, what: &str) -> HostResult<()> {
    if scope.is_platform_admin {
        Ok(())
    } else {
        Err(HostError::PermissionDenied(format!(
            "{what} requires a platform administrator"
        )))
    }
}

/// Roles live inside an organization: GLOBAL executions have none.
fn execution_org(scope: &HostScope) -> HostResult<OrgId> {
    match execution_scope(scope)? {
        Scope::Org(id) => Ok(id),
        Scope::Global => Err(HostError::InvalidInput(
            "roles belong to an organization; this execution runs in GLOBAL scope".into(),
        )),
    }
}

fn parse_org_id(raw: &str) -> HostResult<OrgId> {
    OrgId::parse(raw).map_err(|e| HostError::InvalidInput(e.to_string()))
}

fn parse_role_id(raw: &str) -> HostResult<RoleId> {
    RoleId::parse(raw).map_err(domain_error)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// v1's camelCase organization shape.
fn org_json(o: &Organization) -> Value {
    json!({
        "id": o.id.to_string(),
        "name": o.name,
        "domain": o.domain,
        "isActive": o.is_active,
        "createdAt": rfc3339(o.created_at),
        "createdBy": o.created_by,
        "updatedAt": rfc3339(o.updated_at),
    })
}

fn role_json(r: &Role) -> Value {
    json!({
        "id": r.id.to_string(),
        "orgId": r.org_id.to_string(),
        "name": r.name,
        "description": r.description,
        "isActive": r.is_active,
        "createdAt": rfc3339(r.created_at),
        "createdBy": r.created_by,
        "updatedAt": rfc3339(r.updated_at),
    })
}

fn opt_string(updates: &Map<String, Value>, key: &str) -> HostResult<Option<String>> {
    match updates.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(HostError::InvalidInput(format!("{key} must be a string"))),
    }
}

fn opt_bool(updates: &Map<String, Value>, key: &str) -> HostResult<Option<bool>> {
    match updates.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(HostError::InvalidInput(format!("{key} must be a boolean"))),
    }
}

/// A stored config value parsed by its type, as `config.list` shows it.
fn typed_config_value(entry: &ConfigEntry) -> Value {
    let raw = entry.value.as_str();
    match entry.value_type {
        ConfigType::Int => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(raw)),
        ConfigType::Bool => Value::Bool(raw.eq_ignore_ascii_case("true")),
        ConfigType::Json => serde_json::from_str(raw).unwrap_or_else(|_| Value::from(raw)),
        _ => Value::from(raw),
    }
}

fn store_error(e: StoreError) -> HostError {
    match e {
        StoreError::Invalid { field, reason } => {
            HostError::InvalidInput(format!("{field}: {reason}"))
        }
        StoreError::NotFound { what } => HostError::NotFound(what),
        StoreError::Unavailable { .. } => {
            HostError::Backend("storage is temporarily unavailable".into())
        }
        _ => HostError::Backend("storage error".into()),
    }
}

fn parse_date(field: &str, value: Option<&String>) -> HostResult<Option<OffsetDateTime>> {
    let Some(text) = value else { return Ok(None) };
    let rfc3339 = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339);
    let date_only = time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map(|d| d.midnight().assume_utc());
    rfc3339
        .or(date_only)
        .map(Some)
        .map_err(|_| HostError::InvalidInput(format!("{field}: {text:?} is not an ISO date")))
}

#[async_trait]
impl SdkHost for StorageHost {
    async fn config_get(
        &self,
        scope: &HostScope,
        key: String,
    ) -> HostResult<Option<HostConfigValue>> {
        let own = execution_scope(scope)?;
        let value = self
            .config
            .resolve(&own, &key)
            .await
            .map_err(domain_error)?;
        if matches!(value, Some(ConfigValue::Secret(_))) {
            let by = actor(scope);
            self.secrets
                .record_read(&own, &key, SecretAccess::sdk(&by, "config.get"))
                .await;
        }
        Ok(value.map(|v| {
            let secret = matches!(v, ConfigValue::Secret(_));
            HostConfigValue {
                value: v.into_exposed_json(),
                secret,
            }
        }))
    }

    async fn config_set(&self, scope: &HostScope, key: String, value: Value) -> HostResult<()> {
        let mut write = ConfigWrite::inferred(&key, &value).map_err(domain_error)?;
        write.updated_by = Some(scope.caller.user_id.clone());
        self.config
            .set(&execution_scope(scope)?, write)
            .await
            .map(|_| ())
            .map_err(domain_error)
    }

    /// The scope's effective settings (its own plus GLOBAL ones it does not override); secret
    /// references stay masked: a workflow reads a secret with `config.get`, one key at a time.
    async fn config_list(&self, scope: &HostScope) -> HostResult<Map<String, Value>> {
        let entries = self
            .config
            .list_effective(&execution_scope(scope)?)
            .await
            .map_err(domain_error)?;
        let mut out = Map::new();
        for entry in entries {
            let value = if entry.value_type == ConfigType::SecretRef {
                Value::String(MASK.to_owned())
            } else {
                typed_config_value(&entry)
            };
            out.insert(entry.key, value);
        }
        Ok(out)
    }

    async fn config_delete(&self, scope: &HostScope, key: String) -> HostResult<bool> {
        self.config
            .delete(&execution_scope(scope)?, &key)
            .await
            .map_err(domain_error)
    }

    async fn organization_create(
        &self,
        scope: &HostScope,
        name: String,
        domain: Option<String>,
        is_active: bool,
    ) -> HostResult<Value> {
        require_admin(scope, "organizations.create")?;
        let org = self
            .orgs
            .create(
                NewOrganization {
                    name,
                    domain,
                    is_active,
                    created_by: Some(scope.caller.user_id.clone()),
                },
                &actor(scope),
            )
            .await
            .map_err(domain_error)?;
        Ok(org_json(&org))
    }

    /// Admins may read any organization; others only their own (another id reads as missing).
    async fn organization_get(
        &self,
        scope: &HostScope,
        org_id: String,
    ) -> HostResult<Option<Value>> {
        let id = parse_org_id(&org_id)?;
        if !scope.is_platform_admin && scope.org_id.as_deref() != Some(id.as_str()) {
            return Ok(None);
        }
        let org = self.orgs.find(&id).await.map_err(domain_error)?;
        Ok(org.as_ref().map(org_json))
    }

    async fn organization_list(&self, scope: &HostScope) -> HostResult<Vec<Value>> {
        require_admin(scope, "organizations.list")?;
        let orgs = self.orgs.list_all().await.map_err(domain_error)?;
        Ok(orgs.iter().map(org_json).collect())
    }

    async fn organization_update(
        &self,
        scope: &HostScope,
        org_id: String,
        updates: Map<String, Value>,
    ) -> HostResult<Value> {
        require_admin(scope, "organizations.update")?;
        let domain = match updates.get("domain") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(d)) => Some(Some(d.clone())),
            Some(_) => {
                return Err(HostError::InvalidInput(
                    "domain must be a string or None".into(),
                ));
            }
        };
        let update = OrganizationUpdate {
            name: opt_string(&updates, "name")?,
            domain,
            is_active: opt_bool(&updates, "isActive")?.or(opt_bool(&updates, "is_active")?),
        };
        let org = self
            .orgs
            .update(
                &parse_org_id(&org_id)?,
                update,
                &IfMatch::Any,
                &actor(scope),
            )
            .await
            .map_err(domain_error)?;
        Ok(org_json(&org))
    }

    async fn organization_delete(&self, scope: &HostScope, org_id: String) -> HostResult<bool> {
        require_admin(scope, "organizations.delete")?;
        match self
            .orgs
            .delete(&parse_org_id(&org_id)?, &IfMatch::Any, &actor(scope))
            .await
        {
            Ok(()) => Ok(true),
            Err(DomainError::NotFound { .. }) => Ok(false),
            Err(e) => Err(domain_error(e)),
        }
    }

    /// The forms of the execution's organization and the GLOBAL ones, as the API stores them
    /// (v1's JSON); inactive forms only for platform administrators.
    async fn form_list(&self, scope: &HostScope) -> HostResult<Vec<Value>> {
        let stored = self
            .forms
            .list(&execution_scope(scope)?)
            .await
            .map_err(|e| HostError::Backend(format!("forms: {e}")))?;
        let mut forms = Vec::new();
        for f in stored {
            if f.form.is_active || scope.is_platform_admin {
                forms.push(
                    serde_json::to_value(&f.form)
                        .map_err(|e| HostError::Backend(format!("forms: {e}")))?,
                );
            }
        }
        Ok(forms)
    }

    async fn form_get(&self, scope: &HostScope, form_id: String) -> HostResult<Option<Value>> {
        Ok(self
            .form_list(scope)
            .await?
            .into_iter()
            .find(|f| f["id"] == form_id))
    }

    async fn role_create(
        &self,
        scope: &HostScope,
        name: String,
        description: String,
        _permissions: Option<Value>,
    ) -> HostResult<Value> {
        let role = self
            .roles
            .create(
                &execution_org(scope)?,
                NewRole {
                    name,
                    description: Some(description),
                    created_by: Some(scope.caller.user_id.clone()),
                },
                &actor(scope),
            )
            .await
            .map_err(domain_error)?;
        Ok(role_json(&role))
    }

    async fn role_get(&self, scope: &HostScope, role_id: String) -> HostResult<Option<Value>> {
        let role = self
            .roles
            .find(&execution_org(scope)?, &parse_role_id(&role_id)?)
            .await
            .map_err(domain_error)?;
        Ok(role.as_ref().map(role_json))
    }

    async fn role_list(&self, scope: &HostScope) -> HostResult<Vec<Value>> {
        let roles = self
            .roles
            .list(&execution_org(scope)?)
            .await
            .map_err(domain_error)?;
        Ok(roles.iter().map(role_json).collect())
    }

    async fn role_update(
        &self,
        scope: &HostScope,
        role_id: String,
        updates: Map<String, Value>,
    ) -> HostResult<Value> {
        let update = RoleUpdate {
            name: opt_string(&updates, "name")?,
            description: opt_string(&updates, "description")?,
            is_active: opt_bool(&updates, "isActive")?.or(opt_bool(&updates, "is_active")?),
        };
        let role = self
            .roles
            .update(
                &execution_org(scope)?,
                &parse_role_id(&role_id)?,
                update,
                &IfMatch::Any,
                &actor(scope),
            )
            .await
            .map_err(domain_error)?;
        Ok(role_json(&role))
    }

    async fn role_delete(&self, scope: &HostScope, role_id: String) -> HostResult<bool> {
        match self
            .roles
            .delete(
                &execution_org(scope)?,
                &parse_role_id(&role_id)?,
                &IfMatch::Any,
                &actor(scope),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(DomainError::NotFound { .. }) => Ok(false),
            Err(e) => Err(domain_error(e)),
        }
    }

    async fn role_list_users(&self, scope: &HostScope, role_id: String) -> HostResult<Vec<String>> {
        let users = self
            .roles
            .users_of_role(&execution_org(scope)?, &parse_role_id(&role_id)?)
            .await
            .map_err(domain_error)?;
        Ok(users.iter().map(ToString::to_string).collect())
    }

    async fn role_list_forms(&self, scope: &HostScope, role_id: String) -> HostResult<Vec<String>> {
        let forms = self
            .roles
            .forms_of_role(&execution_org(scope)?, &parse_role_id(&role_id)?)
            .await
            .map_err(domain_error)?;
        Ok(forms.iter().map(ToString::to_string).collect())
    }

    async fn role_assign_users(
        &self,
        scope: &HostScope,
        role_id: String,
        ids: Vec<String>,
    ) -> HostResult<()> {
        let users = ids
            .iter()
            .map(|u| UserId::parse(u).map_err(domain_error))
            .collect::<HostResult<Vec<_>>>()?;
        self.roles
            .assign_users(
                &execution_org(scope)?,
                &parse_role_id(&role_id)?,
                &users,
                &actor(scope),
            )
            .await
            .map_err(domain_error)
    }

    async fn role_assign_forms(
        &self,
        scope: &HostScope,
        role_id: String,
        ids: Vec<String>,
    ) -> HostResult<()> {
        let forms = ids
            .iter()
            .map(|f| FormId::parse(f).map_err(domain_error))
            .collect::<HostResult<Vec<_>>>()?;
        self.roles
            .assign_forms(
                &execution_org(scope)?,
                &parse_role_id(&role_id)?,
                &forms,
                &actor(scope),
            )
            .await
            .map_err(domain_error)
    }

    async fn execution_list(
        &self,
        scope: &HostScope,
        filter: ExecutionFilter,
    ) -> HostResult<Vec<Value>> {
        // A status no run can have matches no run.
        let status = match filter.status.as_deref() {
            None => None,
            Some(name) => match crate::executions::ExecutionStatus::parse(name) {
                Some(status) => Some(status),
                None => return Ok(Vec::new()),
            },
        };
        let query = ExecutionQuery {
            workflow_name: filter.workflow_name,
            status,
            // v1's rule: non-admins only see their own executions.
            executed_by: (!scope.is_platform_admin).then(|| scope.caller.user_id.clone()),
            started_after: parse_date("start_date", filter.start_date.as_ref())?,
            started_before: parse_date("end_date", filter.end_date.as_ref())?,
            limit: Some(filter.limit.unwrap_or(50).clamp(1, 1000) as u16),
            continuation: None,
        };
        let (records, _) = self
            .executions
            .list(&execution_scope(scope)?, &query)
            .await
            .map_err(store_error)?;
        Ok(records
            .into_iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect())
    }

    async fn execution_get(
        &self,
        scope: &HostScope,
        execution_id: String,
    ) -> HostResult<Option<Value>> {
        let record = self
            .executions
            .get(&execution_scope(scope)?, &execution_id)
            .await
            .map_err(store_error)?;
        Ok(record
            .filter(|r| scope.is_platform_admin || r.executed_by == scope.caller.user_id)
            .and_then(|r| serde_json::to_value(r).ok()))
    }

    /// The execution's org's secret, else GLOBAL's: `key` cannot name another org's secret.
    async fn secret_get(&self, scope: &HostScope, key: String) -> HostResult<Option<String>> {
        let by = actor(scope);
        let value = self
            .secrets
            .read(
                &execution_scope(scope)?,
                &key,
                SecretAccess::sdk(&by, "secrets.get"),
            )
            .await
            .map_err(secret_error)?;
        Ok(value.map(SecretValue::into_exposed))
    }

    async fn secret_set(&self, scope: &HostScope, key: String, value: String) -> HostResult<()> {
        let own = execution_scope(scope)?;
        let name = SecretService::name(&own, &key).map_err(secret_error)?;
        let by = actor(scope);
        self.secrets
            .set(
                &own,
                &name,
                SecretValue::new(value),
                SecretAccess::sdk(&by, "secrets.set"),
            )
            .await
            .map_err(secret_error)
    }

    async fn secret_list(&self, scope: &HostScope) -> HostResult<Vec<String>> {
        let own = execution_scope(scope)?;
        let names = self.secrets.list(&own).await.map_err(secret_error)?;
        Ok(names
            .iter()
            .filter_map(|n| n.key_in_scope(&own).map(str::to_owned))
            .collect())
    }

    async fn secret_delete(&self, scope: &HostScope, key: String) -> HostResult<bool> {
        let own = execution_scope(scope)?;
        let name = SecretService::name(&own, &key).map_err(secret_error)?;
        let by = actor(scope);
        self.secrets
            .delete(&own, &name, SecretAccess::sdk(&by, "secrets.delete"))
            .await
            .map_err(secret_error)
    }

    async fn file_read(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: String,
    ) -> HostResult<Vec<u8>> {
        self.files
            .read(&execution_scope(scope)?, location, &path)
            .await
    }

    async fn file_write(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: String,
        content: Vec<u8>,
    ) -> HostResult<()> {
        self.files
            .write(&execution_scope(scope)?, location, &path, content)
            .await
    }

    async fn file_list(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: String,
    ) -> HostResult<Vec<String>> {
        self.files
            .list(&execution_scope(scope)?, location, &path)
            .await
    }

    async fn file_delete(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: String,
    ) -> HostResult<bool> {
        self.files
            .delete(&execution_scope(scope)?, location, &path)
            .await
    }

    async fn file_exists(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: String,
    ) -> HostResult<bool> {
        self.files
            .exists(&execution_scope(scope)?, location, &path)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;
    use crate::domain::ChangeLog;
    use bifrost_engine::Caller;
    use bifrost_secrets::SecretStore;
    use bifrost_store::table::TableStore;
    use std::path::Path;
    use std::sync::Arc;

    fn scope(org: Option<&str>) -> HostScope {
        HostScope {
            execution_id: "e1".into(),
            org_id: org.map(str::to_owned),
            caller: Caller::new("u1", "u1@example.com", "U One"),
            is_platform_admin: false,
            is_function_key: false,
        }
    }

    async fn host(dir: &Path) -> StorageHost {
        let secrets = bifrost_secrets::LocalSecrets::open(&dir.join("data"), None).unwrap();
        std::fs::create_dir_all(dir.join("ws")).unwrap();
        let tables =
            Arc::new(bifrost_store::table::SqliteTables::open(&dir.join("t.sqlite")).unwrap());
        let blobs = Arc::new(bifrost_store::blob::LocalBlobs::open(&dir.join("blobs")).unwrap());
        let dyn_tables: Arc<dyn TableStore> = tables.clone();
        crate::domain::ensure_tables(&dyn_tables).await.unwrap();
        let secrets: Arc<dyn SecretStore> = Arc::new(secrets);
        let audit = Arc::new(
            AuditLog::open(dyn_tables.clone(), secrets.clone())
                .await
                .unwrap(),
        );
        let files = SdkFiles::new(blobs.clone(), &dir.join("ws")).unwrap();
        files.ensure_container().await.unwrap();
        let changes = ChangeLog::new(audit.clone());
        StorageHost::new(SdkServices {
            config: ConfigService::new(tables.clone(), secrets.clone()),
            orgs: OrgService::new(tables.clone(), changes.clone()),
            roles: RoleService::new(tables.clone(), changes),
            secrets: SecretService::new(secrets, audit),
            executions: Executions::new(tables.clone(), blobs),
            forms: FormStore::new(tables).unwrap(),
            files,
        })
    }

    #[tokio::test]
    async fn forms_are_the_stored_ones_of_the_org_and_global() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path()).await;
        h.forms.ensure_tables().await.unwrap();
        let form = |id: &str, org: &str, active: bool| {
            serde_json::from_value::<crate::forms::model::Form>(json!({
                "id": id, "orgId": org, "name": id, "linkedWorkflow": "echo",
                "isActive": active, "isGlobal": org == "GLOBAL", "createdBy": "test",
                "createdAt": "2026-11-26T00:00:00Z", "updatedAt": "2026-11-26T00:00:00Z",
                "formSchema": {"fields": [{"name": "note", "label": "Note", "type": "text"}]}
            }))
            .unwrap()
        };
        for (id, org, active) in [
            ("everyone", "GLOBAL", true),
            ("a-form", "org-a", true),
            ("a-retired", "org-a", false),
            ("b-form", "org-b", true),
        ] {
            h.forms.create(form(id, org, active)).await.unwrap();
        }
        let ids = |forms: Vec<Value>| {
            let mut ids: Vec<String> = forms
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        };
        let a = scope(Some("org-a"));
        assert_eq!(ids(h.form_list(&a).await.unwrap()), ["a-form", "everyone"]);
        let mut admin = scope(Some("org-a"));
        admin.is_platform_admin = true;
        assert_eq!(
            ids(h.form_list(&admin).await.unwrap()),
            ["a-form", "a-retired", "everyone"]
        );
        assert_eq!(ids(h.form_list(&scope(None)).await.unwrap()), ["everyone"]);
        assert!(h.form_get(&a, "b-form".into()).await.unwrap().is_none());
        assert_eq!(
            h.form_get(&a, "a-form".into()).await.unwrap().unwrap()["orgId"],
            "org-a"
        );
    }

    #[tokio::test]
    async fn secrets_are_confined_to_the_org_with_global_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path()).await;
        let (a, b, global) = (scope(Some("org-a")), scope(Some("org-b")), scope(None));
        h.secret_set(&global, "halo_key".into(), "global-value".into())
            .await
            .unwrap();
        h.secret_set(&a, "halo_key".into(), "a-value".into())
            .await
            .unwrap();
        assert_eq!(
            h.secret_get(&a, "halo_key".into())
                .await
                .unwrap()
                .as_deref(),
            Some("a-value")
        );
        assert_eq!(
            h.secret_get(&b, "halo_key".into())
                .await
                .unwrap()
                .as_deref(),
            Some("global-value")
        );
        h.secret_set(&b, "only_b".into(), "b".into()).await.unwrap();
        assert_eq!(h.secret_get(&a, "only_b".into()).await.unwrap(), None);
        // Names are normalized to Key Vault's alphabet (lower-case, `-`), as listed.
        assert_eq!(h.secret_list(&a).await.unwrap(), ["halo-key"]);
        assert!(h.secret_delete(&a, "halo_key".into()).await.unwrap());
        assert_eq!(
            h.secret_get(&a, "halo_key".into())
                .await
                .unwrap()
                .as_deref(),
            Some("global-value")
        );
    }

    #[tokio::test]
    async fn files_are_confined_to_the_executions_org() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path()).await;
        let (a, b) = (scope(Some("org-a")), scope(Some("org-b")));
        h.file_write(&a, FileLocation::Temp, "r/out.txt".into(), b"hi".to_vec())
            .await
            .unwrap();
        assert_eq!(
            h.file_read(&a, FileLocation::Temp, "r/out.txt".into())
                .await
                .unwrap(),
            b"hi"
        );
        assert!(
            !h.file_exists(&b, FileLocation::Temp, "r/out.txt".into())
                .await
                .unwrap()
        );
        assert_eq!(
            h.file_list(&a, FileLocation::Temp, "r".into())
                .await
                .unwrap(),
            ["out.txt"]
        );
        assert!(matches!(
            h.file_read(&a, FileLocation::Workspace, "../x".into())
                .await
                .unwrap_err(),
            HostError::PermissionDenied(_)
        ));
        assert!(
            h.file_delete(&a, FileLocation::Temp, "r/out.txt".into())
                .await
                .unwrap()
        );
    }
}

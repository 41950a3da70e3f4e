//! The storage-backed host of the Python SDK: what `from bifrost import config, secrets, files,
//! organizations, roles, ...` reaches when a workflow awaits it.
//!
//! The engine knows nothing of storage; it calls this [`SdkHost`] with the execution's scope.
//! Every call is confined to that scope: the org comes from the execution, never from workflow
//! arguments (v1 let any workflow read any vault secret by its full name; here `secrets.get(key)`
//! looks in the execution's org, then GLOBAL, and cannot name another org's secret).
//! `files.*` work in the organization's own file area ([`crate::sdk_files`]), never the
//! workspace.

use std::sync::Arc;

use async_trait::async_trait;
use bifrost_engine::{
    ConfigValue as HostConfigValue, ExecutionFilter, FileLocation, HostError, HostResult,
    HostScope, SdkHost,
};
use bifrost_secrets::{SecretName, SecretStore, SecretValue, SecretsError, SecretsErrorKind};
use bifrost_store::table::{IfMatch, TableStore};
use bifrost_store::{OrgId, Scope, StoreError};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditEventType, AuditLog};
use crate::domain::{
    Actor, ChangeLog, ConfigEntry, ConfigService, ConfigType, ConfigValue, ConfigWrite,
    DomainError, FormId, MASK, NewOrganization, NewRole, OrgService, Organization,
    OrganizationUpdate, Role, RoleId, RoleService, RoleUpdate, UserId,
};

use crate::executions::{ExecutionQuery, Executions};
use crate::forms::store::FormStore;
use crate::sdk_files::SdkFiles;

pub struct StorageHost {
    secrets: Arc<dyn SecretStore>,
    audit: Arc<AuditLog>,
    config: ConfigService,
    orgs: OrgService,
    roles: RoleService,
    executions: Executions,
    /// The same forms the API serves (stored, and imported from the workspace's `*.form.json`).
    forms: FormStore,
    /// `files.*`: each organization's own area, never the workspace.
    files: SdkFiles,
}

impl StorageHost {
    pub fn new(
        tables: Arc<dyn TableStore>,
        secrets: Arc<dyn SecretStore>,
        audit: Arc<AuditLog>,
        executions: Executions,
        forms: FormStore,
        files: SdkFiles,
    ) -> Self {
        let changes = ChangeLog::new(audit.clone());
        Self {
            config: ConfigService::new(tables.clone(), secrets.clone()),
            orgs: OrgService::new(tables.clone(), changes.clone()),
            roles: RoleService::new(tables, changes),
            forms,
            secrets,
            audit,
            executions,
            files,
        }
    }

    /// Records a secret access by a workflow: names and ids only, never the value. A failure to
    /// record is logged as an error (with the same details) rather than failing the workflow.
    async fn audit_secret(&self, scope: &HostScope, kind: AuditEventType, secret: &str, via: &str) {
        let Ok(own) = execution_scope(scope) else {
            return;
        };
        let event = AuditEvent::new(kind, scope.caller.user_id.clone(), own)
            .detail("secret_name", secret)
            .detail("execution_id", scope.execution_id.clone())
            .detail("via", via);
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, ?kind, secret, execution_id = %scope.execution_id, "could not audit a secret access");
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
        key: &str,
    ) -> HostResult<Option<HostConfigValue>> {
        let value = self
            .config
            .resolve(&execution_scope(scope)?, key)
            .await
            .map_err(domain_error)?;
        if matches!(value, Some(ConfigValue::Secret(_))) {
            self.audit_secret(scope, AuditEventType::SecretRead, key, "config.get")
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

    async fn config_set(&self, scope: &HostScope, key: &str, value: Value) -> HostResult<()> {
        let mut write = ConfigWrite::inferred(key, &value).map_err(domain_error)?;
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

    async fn config_delete(&self, scope: &HostScope, key: &str) -> HostResult<bool> {
        self.config
            .delete(&execution_scope(scope)?, key)
            .await
            .map_err(domain_error)
    }

    async fn organization_create(
        &self,
        scope: &HostScope,
        name: &str,
        domain: Option<&str>,
        is_active: bool,
    ) -> HostResult<Value> {
        require_admin(scope, "organizations.create")?;
        let org = self
            .orgs
            .create(
                NewOrganization {
                    name: name.to_owned(),
                    domain: domain.map(str::to_owned),
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
    async fn organization_get(&self, scope: &HostScope, org_id: &str) -> HostResult<Option<Value>> {
        let id = parse_org_id(org_id)?;
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
        org_id: &str,
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
            .update(&parse_org_id(org_id)?, update, &IfMatch::Any, &actor(scope))
            .await
            .map_err(domain_error)?;
        Ok(org_json(&org))
    }

    async fn organization_delete(&self, scope: &HostScope, org_id: &str) -> HostResult<bool> {
        require_admin(scope, "organizations.delete")?;
        match self
            .orgs
            .delete(&parse_org_id(org_id)?, &IfMatch::Any, &actor(scope))
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

    async fn form_get(&self, scope: &HostScope, form_id: &str) -> HostResult<Option<Value>> {
        Ok(self
            .form_list(scope)
            .await?
            .into_iter()
            .find(|f| f["id"] == form_id))
    }

    async fn role_create(
        &self,
        scope: &HostScope,
        name: &str,
        description: &str,
        _permissions: Option<Value>,
    ) -> HostResult<Value> {
        let role = self
            .roles
            .create(
                &execution_org(scope)?,
                NewRole {
                    name: name.to_owned(),
                    description: Some(description.to_owned()),
                    created_by: Some(scope.caller.user_id.clone()),
                },
                &actor(scope),
            )
            .await
            .map_err(domain_error)?;
        Ok(role_json(&role))
    }

    async fn role_get(&self, scope: &HostScope, role_id: &str) -> HostResult<Option<Value>> {
        let role = self
            .roles
            .find(&execution_org(scope)?, &parse_role_id(role_id)?)
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
        role_id: &str,
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
                &parse_role_id(role_id)?,
                update,
                &IfMatch::Any,
                &actor(scope),
            )
            .await
            .map_err(domain_error)?;
        Ok(role_json(&role))
    }

    async fn role_delete(&self, scope: &HostScope, role_id: &str) -> HostResult<bool> {
        match self
            .roles
            .delete(
                &execution_org(scope)?,
                &parse_role_id(role_id)?,
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

    async fn role_list_users(&self, scope: &HostScope, role_id: &str) -> HostResult<Vec<String>> {
        let users = self
            .roles
            .users_of_role(&execution_org(scope)?, &parse_role_id(role_id)?)
            .await
            .map_err(domain_error)?;
        Ok(users.iter().map(ToString::to_string).collect())
    }

    async fn role_list_forms(&self, scope: &HostScope, role_id: &str) -> HostResult<Vec<String>> {
        let forms = self
            .roles
            .forms_of_role(&execution_org(scope)?, &parse_role_id(role_id)?)
            .await
            .map_err(domain_error)?;
        Ok(forms.iter().map(ToString::to_string).collect())
    }

    async fn role_assign_users(
        &self,
        scope: &HostScope,
        role_id: &str,
        user_ids: Vec<String>,
    ) -> HostResult<()> {
        let users = user_ids
            .iter()
            .map(|u| UserId::parse(u).map_err(domain_error))
            .collect::<HostResult<Vec<_>>>()?;
        self.roles
            .assign_users(
                &execution_org(scope)?,
                &parse_role_id(role_id)?,
                &users,
                &actor(scope),
            )
            .await
            .map_err(domain_error)
    }

    async fn role_assign_forms(
        &self,
        scope: &HostScope,
        role_id: &str,
        form_ids: Vec<String>,
    ) -> HostResult<()> {
        let forms = form_ids
            .iter()
            .map(|f| FormId::parse(f).map_err(domain_error))
            .collect::<HostResult<Vec<_>>>()?;
        self.roles
            .assign_forms(
                &execution_org(scope)?,
                &parse_role_id(role_id)?,
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
        let query = ExecutionQuery {
            workflow_name: filter.workflow_name,
            status: filter.status,
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
        execution_id: &str,
    ) -> HostResult<Option<Value>> {
        let record = self
            .executions
            .get(&execution_scope(scope)?, execution_id)
            .await
            .map_err(store_error)?;
        Ok(record
            .filter(|r| scope.is_platform_admin || r.executed_by == scope.caller.user_id)
            .and_then(|r| serde_json::to_value(r).ok()))
    }

    async fn secret_get(&self, scope: &HostScope, key: &str) -> HostResult<Option<String>> {
        let own = execution_scope(scope)?;
        let mut scopes = vec![own.clone()];
        if own != Scope::Global {
            scopes.push(Scope::Global);
        }
        for s in scopes {
            let name = SecretName::scoped(&s, key).map_err(secrets_error)?;
            if let Some(value) = self.secrets.get(&name).await.map_err(secrets_error)? {
                self.audit_secret(
                    scope,
                    AuditEventType::SecretRead,
                    name.as_str(),
                    "secrets.get",
                )
                .await;
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
            .map_err(secrets_error)?;
        self.audit_secret(
            scope,
            AuditEventType::SecretWritten,
            name.as_str(),
            "secrets.set",
        )
        .await;
        Ok(())
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
        let deleted = self.secrets.delete(&name).await.map_err(secrets_error)?;
        if deleted {
            self.audit_secret(
                scope,
                AuditEventType::SecretDeleted,
                name.as_str(),
                "secrets.delete",
            )
            .await;
        }
        Ok(deleted)
    }

    async fn file_read(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<Vec<u8>> {
        self.files
            .read(&execution_scope(scope)?, location, path)
            .await
    }

    async fn file_write(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: &str,
        content: Vec<u8>,
    ) -> HostResult<()> {
        self.files
            .write(&execution_scope(scope)?, location, path, content)
            .await
    }

    async fn file_list(
        &self,
        scope: &HostScope,
        location: FileLocation,
        dir: &str,
    ) -> HostResult<Vec<String>> {
        self.files
            .list(&execution_scope(scope)?, location, dir)
            .await
    }

    async fn file_delete(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<bool> {
        self.files
            .delete(&execution_scope(scope)?, location, path)
            .await
    }

    async fn file_exists(
        &self,
        scope: &HostScope,
        location: FileLocation,
        path: &str,
    ) -> HostResult<bool> {
        self.files
            .exists(&execution_scope(scope)?, location, path)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bifrost_engine::Caller;
    use std::path::Path;

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
        StorageHost::new(
            tables.clone(),
            secrets,
            audit,
            Executions::new(tables.clone(), blobs),
            FormStore::new(tables).unwrap(),
            files,
        )
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
        assert!(h.form_get(&a, "b-form").await.unwrap().is_none());
        assert_eq!(
            h.form_get(&a, "a-form").await.unwrap().unwrap()["orgId"],
            "org-a"
        );
    }

    #[tokio::test]
    async fn secrets_are_confined_to_the_org_with_global_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path()).await;
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
        // Names are normalized to Key Vault's alphabet (lower-case, `-`), as listed.
        assert_eq!(h.secret_list(&a).await.unwrap(), ["halo-key"]);
        assert!(h.secret_delete(&a, "halo_key").await.unwrap());
        assert_eq!(
            h.secret_get(&a, "halo_key").await.unwrap().as_deref(),
            Some("global-value")
        );
    }

    #[tokio::test]
    async fn files_are_confined_to_the_executions_org() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path()).await;
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
        assert!(matches!(
            h.file_read(&a, FileLocation::Workspace, "../x")
                .await
                .unwrap_err(),
            HostError::PermissionDenied(_)
        ));
        assert!(
            h.file_delete(&a, FileLocation::Temp, "r/out.txt")
                .await
                .unwrap()
        );
    }
}

//! [`MemoryHost`]: an in-memory [`SdkHost`] for tests and local runs, with seeding helpers
//! (`set_config`, `add_form`, ...).
//!
//! Keeps the storage-level rules the SDK's tests rely on (org → GLOBAL config fallback,
//! administrator checks, paths kept inside their location) without any storage. Must not depend
//! on pyo3 or on the engine's runtime.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::host::{
    ConfigValue, ExecutionFilter, FileLocation, HostError, HostResult, HostScope, SdkHost,
};

const GLOBAL: &str = "GLOBAL";

#[derive(Debug, Default)]
struct MemoryState {
    /// scope ("GLOBAL" or org id) → key → value.
    config: HashMap<String, BTreeMap<String, ConfigValue>>,
    secrets: BTreeMap<String, String>,
    organizations: BTreeMap<String, Value>,
    roles: BTreeMap<String, Value>,
    role_users: HashMap<String, Vec<String>>,
    role_forms: HashMap<String, Vec<String>>,
    forms: BTreeMap<String, Value>,
    executions: Vec<Value>,
    files: BTreeMap<(FileLocation, String), Vec<u8>>,
    next_id: u64,
}

/// An in-memory [`SdkHost`] for tests and local runs.
#[derive(Debug, Default)]
pub struct MemoryHost {
    state: Mutex<MemoryState>,
}

fn scope_key(scope: &HostScope) -> String {
    scope.org_id.clone().unwrap_or_else(|| GLOBAL.to_owned())
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

fn normalize_path(path: &str) -> HostResult<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(HostError::InvalidInput(format!(
                        "path '{path}' escapes its location"
                    )));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

impl MemoryHost {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Seeds a config value (`org_id: None` = GLOBAL).
    pub fn set_config(&self, org_id: Option<&str>, key: &str, value: Value, secret: bool) {
        let scope = org_id.unwrap_or(GLOBAL).to_owned();
        self.lock()
            .config
            .entry(scope)
            .or_default()
            .insert(key.to_owned(), ConfigValue { value, secret });
    }

    /// Seeds a secret by its full name.
    pub fn set_secret(&self, name: &str, value: &str) {
        self.lock()
            .secrets
            .insert(name.to_owned(), value.to_owned());
    }

    /// Seeds an organization record (`id` field required).
    pub fn add_organization(&self, org: Value) {
        if let Some(id) = org.get("id").and_then(Value::as_str) {
            let id = id.to_owned();
            self.lock().organizations.insert(id, org);
        }
    }

    pub fn add_form(&self, form: Value) {
        if let Some(id) = form.get("id").and_then(Value::as_str) {
            let id = id.to_owned();
            self.lock().forms.insert(id, form);
        }
    }

    pub fn add_execution(&self, execution: Value) {
        self.lock().executions.push(execution);
    }

    pub fn file(&self, location: FileLocation, path: &str) -> Option<Vec<u8>> {
        self.lock().files.get(&(location, path.to_owned())).cloned()
    }
}

#[async_trait]
impl SdkHost for MemoryHost {
    async fn config_get(&self, scope: &HostScope, key: String) -> HostResult<Option<ConfigValue>> {
        let st = self.lock();
        let found = st
            .config
            .get(&scope_key(scope))
            .and_then(|m| m.get(&key))
            .or_else(|| st.config.get(GLOBAL).and_then(|m| m.get(&key)));
        Ok(found.cloned())
    }

    async fn config_set(&self, scope: &HostScope, key: String, value: Value) -> HostResult<()> {
        self.lock()
            .config
            .entry(scope_key(scope))
            .or_default()
            .insert(
                key,
                ConfigValue {
                    value,
                    secret: false,
                },
            );
        Ok(())
    }

    async fn config_list(&self, scope: &HostScope) -> HostResult<Map<String, Value>> {
        let st = self.lock();
        let mut out = Map::new();
        for s in [GLOBAL.to_owned(), scope_key(scope)] {
            if let Some(m) = st.config.get(&s) {
                for (k, v) in m {
                    let shown = if v.secret {
                        Value::String("***".into())
                    } else {
                        v.value.clone()
                    };
                    out.insert(k.clone(), shown);
                }
            }
        }
        Ok(out)
    }

    async fn config_delete(&self, scope: &HostScope, key: String) -> HostResult<bool> {
        Ok(self
            .lock()
            .config
            .get_mut(&scope_key(scope))
            .and_then(|m| m.remove(&key))
            .is_some())
    }

    async fn secret_get(&self, _scope: &HostScope, key: String) -> HostResult<Option<String>> {
        Ok(self.lock().secrets.get(&key).cloned())
    }

    async fn secret_set(&self, _scope: &HostScope, key: String, value: String) -> HostResult<()> {
        self.lock().secrets.insert(key, value);
        Ok(())
    }

    async fn secret_list(&self, scope: &HostScope) -> HostResult<Vec<String>> {
        let own = format!("{}--", scope_key(scope));
        let global = format!("{GLOBAL}--");
        Ok(self
            .lock()
            .secrets
            .keys()
            .filter(|k| k.starts_with(&own) || k.starts_with(&global))
            .cloned()
            .collect())
    }

    async fn secret_delete(&self, _scope: &HostScope, key: String) -> HostResult<bool> {
        Ok(self.lock().secrets.remove(&key).is_some())
    }

    async fn organization_create(
        &self,
        scope: &HostScope,
        name: String,
        domain: Option<String>,
        is_active: bool,
    ) -> HostResult<Value> {
        require_admin(scope, "organizations.create")?;
        let mut st = self.lock();
        st.next_id += 1;
        let id = format!("org-{}", st.next_id);
        let org = json!({"id": id, "name": name, "domain": domain, "isActive": is_active});
        st.organizations.insert(id, org.clone());
        Ok(org)
    }

    async fn organization_get(
        &self,
        _scope: &HostScope,
        org_id: String,
    ) -> HostResult<Option<Value>> {
        Ok(self.lock().organizations.get(&org_id).cloned())
    }

    async fn organization_list(&self, scope: &HostScope) -> HostResult<Vec<Value>> {
        require_admin(scope, "organizations.list")?;
        Ok(self.lock().organizations.values().cloned().collect())
    }

    async fn organization_update(
        &self,
        scope: &HostScope,
        org_id: String,
        updates: Map<String, Value>,
    ) -> HostResult<Value> {
        require_admin(scope, "organizations.update")?;
        let mut st = self.lock();
        let org = st
            .organizations
            .get_mut(&org_id)
            .ok_or_else(|| HostError::NotFound(format!("organization '{org_id}'")))?;
        if let Value::Object(m) = org {
            m.extend(updates);
        }
        Ok(org.clone())
    }

    async fn organization_delete(&self, scope: &HostScope, org_id: String) -> HostResult<bool> {
        require_admin(scope, "organizations.delete")?;
        Ok(self.lock().organizations.remove(&org_id).is_some())
    }

    async fn execution_list(
        &self,
        scope: &HostScope,
        filter: ExecutionFilter,
    ) -> HostResult<Vec<Value>> {
        let st = self.lock();
        let limit = filter.limit.unwrap_or(50) as usize;
        Ok(st
            .executions
            .iter()
            .filter(|e| {
                scope.is_platform_admin
                    || e.get("executedBy").and_then(Value::as_str) == Some(&scope.caller.user_id)
            })
            .filter(|e| {
                filter
                    .workflow_name
                    .as_deref()
                    .is_none_or(|w| e.get("workflowName").and_then(Value::as_str) == Some(w))
            })
            .filter(|e| {
                filter
                    .status
                    .as_deref()
                    .is_none_or(|s| e.get("status").and_then(Value::as_str) == Some(s))
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn execution_get(
        &self,
        scope: &HostScope,
        execution_id: String,
    ) -> HostResult<Option<Value>> {
        let st = self.lock();
        Ok(st
            .executions
            .iter()
            .find(|e| e.get("executionId").and_then(Value::as_str) == Some(execution_id.as_str()))
            .filter(|e| {
                scope.is_platform_admin
                    || e.get("executedBy").and_then(Value::as_str) == Some(&scope.caller.user_id)
            })
            .cloned())
    }

    async fn role_create(
        &self,
        scope: &HostScope,
        name: String,
        description: String,
        permissions: Option<Value>,
    ) -> HostResult<Value> {
        let mut st = self.lock();
        st.next_id += 1;
        let id = format!("role-{}", st.next_id);
        let role = json!({"id": id, "name": name, "description": description,
            "permissions": permissions, "orgId": scope_key(scope)});
        st.roles.insert(id, role.clone());
        Ok(role)
    }

    async fn role_get(&self, _scope: &HostScope, role_id: String) -> HostResult<Option<Value>> {
        Ok(self.lock().roles.get(&role_id).cloned())
    }

    async fn role_list(&self, scope: &HostScope) -> HostResult<Vec<Value>> {
        let key = scope_key(scope);
        Ok(self
            .lock()
            .roles
            .values()
            .filter(|r| r.get("orgId").and_then(Value::as_str) == Some(&key))
            .cloned()
            .collect())
    }

    async fn role_update(
        &self,
        _scope: &HostScope,
        role_id: String,
        updates: Map<String, Value>,
    ) -> HostResult<Value> {
        let mut st = self.lock();
        let role = st
            .roles
            .get_mut(&role_id)
            .ok_or_else(|| HostError::NotFound(format!("role '{role_id}'")))?;
        if let Value::Object(m) = role {
            m.extend(updates);
        }
        Ok(role.clone())
    }

    async fn role_delete(&self, _scope: &HostScope, role_id: String) -> HostResult<bool> {
        Ok(self.lock().roles.remove(&role_id).is_some())
    }

    async fn role_list_users(
        &self,
        _scope: &HostScope,
        role_id: String,
    ) -> HostResult<Vec<String>> {
        Ok(self
            .lock()
            .role_users
            .get(&role_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn role_list_forms(
        &self,
        _scope: &HostScope,
        role_id: String,
    ) -> HostResult<Vec<String>> {
        Ok(self
            .lock()
            .role_forms
            .get(&role_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn role_assign_users(
        &self,
        _scope: &HostScope,
        role_id: String,
        ids: Vec<String>,
    ) -> HostResult<()> {
        self.lock()
            .role_users
            .entry(role_id)
            .or_default()
            .extend(ids);
        Ok(())
    }

    async fn role_assign_forms(
        &self,
        _scope: &HostScope,
        role_id: String,
        ids: Vec<String>,
    ) -> HostResult<()> {
        self.lock()
            .role_forms
            .entry(role_id)
            .or_default()
            .extend(ids);
        Ok(())
    }

    async fn form_list(&self, _scope: &HostScope) -> HostResult<Vec<Value>> {
        Ok(self.lock().forms.values().cloned().collect())
    }

    async fn form_get(&self, _scope: &HostScope, form_id: String) -> HostResult<Option<Value>> {
        Ok(self.lock().forms.get(&form_id).cloned())
    }

    async fn file_read(
        &self,
        _scope: &HostScope,
        location: FileLocation,
        path: String,
    ) -> HostResult<Vec<u8>> {
        let path = normalize_path(&path)?;
        self.lock()
            .files
            .get(&(location, path.clone()))
            .cloned()
            .ok_or(HostError::NotFound(format!("file '{path}'")))
    }

    async fn file_write(
        &self,
        _scope: &HostScope,
        location: FileLocation,
        path: String,
        content: Vec<u8>,
    ) -> HostResult<()> {
        let path = normalize_path(&path)?;
        self.lock().files.insert((location, path), content);
        Ok(())
    }

    async fn file_list(
        &self,
        _scope: &HostScope,
        location: FileLocation,
        path: String,
    ) -> HostResult<Vec<String>> {
        let dir = normalize_path(&path)?;
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        Ok(self
            .lock()
            .files
            .keys()
            .filter(|(l, p)| *l == location && p.starts_with(&prefix))
            .map(|(_, p)| p[prefix.len()..].to_owned())
            .collect())
    }

    async fn file_delete(
        &self,
        _scope: &HostScope,
        location: FileLocation,
        path: String,
    ) -> HostResult<bool> {
        let path = normalize_path(&path)?;
        Ok(self.lock().files.remove(&(location, path)).is_some())
    }

    async fn file_exists(
        &self,
        _scope: &HostScope,
        location: FileLocation,
        path: String,
    ) -> HostResult<bool> {
        let path = normalize_path(&path)?;
        Ok(self.lock().files.contains_key(&(location, path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_rejects_escape() {
        assert_eq!(normalize_path("a/./b/../c").unwrap(), "a/c");
        assert!(normalize_path("../etc/passwd").is_err());
    }
}

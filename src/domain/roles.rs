//! Roles: named groups of an organization's users, used to grant access to forms.
//!
//! Depends on the table contract and on [`UserService`] (membership checks); `users` does not
//! depend on this module (the assignment cleanup it needs is row-level, in `rows.rs`). Layout,
//! all in the organization's partition (reached only through `ScopedTable` with `Scope::Org`):
//! - `Entities`: `role:{id}` — `Name`, `Description`, `IsActive`, `CreatedAt`, `CreatedBy`,
//!   `UpdatedAt`; `rolename:{lower-cased name}` — `RoleId`, the uniqueness index of names;
//! - `Relationships`: `roleuser:{role}:{user}` + `userrole:{user}:{role}` and
//!   `roleform:{role}:{form}` + `formrole:{form}:{role}`, each pair written and deleted in one
//!   batch, with `RoleId`, `UserId`/`FormId`, `AssignedAt`, `AssignedBy`.
//!
//! v1 kept the assignment rows in the `GLOBAL` partition, so they were one filter away from
//! another tenant's; here they live in the org's partition, and a role id from org A is simply
//! not found through org B. Invariants: names are unique per org (case-insensitive); only members
//! of the org can be assigned; readers skip assignment rows whose role is gone, so an interrupted
//! role deletion never resurrects access.

use std::sync::Arc;

use bifrost_store::table::{
    ETag, Entity, IfMatch, Properties, Query, ScopedBatch, Value, WriteMode,
};
use bifrost_store::{OrgId, RowKey, Scope, ScopedTable, StoreError, TableStore};
use time::OffsetDateTime;

use crate::domain::changes::{Actor, Change, ChangeLog};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::rows::{
    ENTITIES_TABLE, FORM_ROLE_PREFIX, FormId, RELATIONSHIPS_TABLE, ROLE_FORM_PREFIX,
    ROLE_NAME_PREFIX, ROLE_PREFIX, ROLE_USER_PREFIX, RoleId, USER_ROLE_PREFIX, UserId, bool_or,
    created_at, delete_rows, ensure, etag_of, key_part, linked_rows, now, opt_str, opt_time,
    prefix_filter, req_str, row_key, scoped, text,
};
use crate::domain::users::{UserService, UserType};

/// Longest role name, in characters.
pub const MAX_ROLE_NAME: usize = 100;
/// Longest role description, in characters.
pub const MAX_ROLE_DESCRIPTION: usize = 2000;
/// Most ids one assign call accepts.
pub const MAX_ASSIGN: usize = 500;

#[derive(Clone, Debug, PartialEq)]
pub struct Role {
    pub id: RoleId,
    pub org_id: OrgId,
    pub name: String,
    pub description: String,
    pub is_active: bool,
    pub created_at: OffsetDateTime,
    pub created_by: Option<String>,
    pub updated_at: OffsetDateTime,
    pub etag: ETag,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewRole {
    pub name: String,
    pub description: Option<String>,
    pub created_by: Option<String>,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoleUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
}

/// Roles and their assignments, per organization.
#[derive(Clone, Debug)]
pub struct RoleService {
    store: Arc<dyn TableStore>,
    users: UserService,
    changes: ChangeLog,
}

/// The audited fields of a role.
fn snapshot(role: &Role) -> serde_json::Value {
    serde_json::json!({"name": role.name, "description": role.description, "isActive": role.is_active})
}

fn change<'a>(
    by: &'a Actor,
    action: &'static str,
    org: &OrgId,
    id: &RoleId,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Change<'a> {
    Change {
        by,
        action,
        scope: Scope::Org(org.clone()),
        target: id.to_string(),
        before,
        after,
    }
}

impl RoleService {
    pub fn new(store: Arc<dyn TableStore>, changes: ChangeLog) -> Self {
        Self {
            users: UserService::new(store.clone(), changes.clone()),
            store,
            changes,
        }
    }

    /// Creates `Entities` and `Relationships` if missing.
    pub async fn ensure_tables(&self) -> DomainResult<()> {
        ensure(&self.store, &[ENTITIES_TABLE, RELATIONSHIPS_TABLE]).await
    }

    /// Creates a role; `Conflict` if the org already has a role of that name.
    pub async fn create(&self, org: &OrgId, new: NewRole, by: &Actor) -> DomainResult<Role> {
        let name = text("name", &new.name, MAX_ROLE_NAME)?;
        let description = description(new.description.as_deref())?;
        let now = now();
        let role = Role {
            id: RoleId::generate(),
            org_id: org.clone(),
            name,
            description,
            is_active: true,
            created_at: now,
            created_by: new.created_by,
            updated_at: now,
            etag: ETag::new(""),
        };
        let batch = ScopedBatch::new()
            .insert(role_key(&role.id)?, to_props(&role))
            .insert(name_key(&role.name)?, id_props("RoleId", role.id.as_str()));
        let table = self.entities(org)?;
        let audited = change(
            by,
            "role.create",
            org,
            &role.id,
            None,
            Some(snapshot(&role)),
        );
        let etags = self
            .changes
            .apply(audited, async {
                match table.batch(batch).await {
                    Ok(etags) => Ok(etags),
                    Err(StoreError::BatchFailed { index: 1, source })
                        if matches!(*source, StoreError::AlreadyExists { .. }) =>
                    {
                        Err(name_taken(&role.name))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        Ok(Role {
            etag: first_etag(etags)?,
            ..role
        })
    }

    /// The role, or `NotFound` (also when the id belongs to another org).
    pub async fn get(&self, org: &OrgId, id: &RoleId) -> DomainResult<Role> {
        self.find(org, id)
            .await?
            .ok_or_else(|| DomainError::not_found(format!("role '{id}'")))
    }

    pub async fn find(&self, org: &OrgId, id: &RoleId) -> DomainResult<Option<Role>> {
        match self.entities(org)?.get(&role_key(id)?).await? {
            Some(entity) => Ok(Some(from_entity(org, &entity)?)),
            None => Ok(None),
        }
    }

    /// The org's roles, ordered by id.
    pub async fn list(&self, org: &OrgId) -> DomainResult<Vec<Role>> {
        let query = Query::new().filter(prefix_filter(ROLE_PREFIX));
        self.entities(org)?
            .query_all(&query)
            .await?
            .iter()
            .map(|e| from_entity(org, e))
            .collect()
    }

    /// Applies `update` if the stored version still matches `if_match`.
    pub async fn update(
        &self,
        org: &OrgId,
        id: &RoleId,
        update: RoleUpdate,
        if_match: &IfMatch,
        by: &Actor,
    ) -> DomainResult<Role> {
        let current = self.get(org, id).await?;
        check_if_match(&current.etag, if_match, id)?;
        let mut next = current.clone();
        if let Some(name) = &update.name {
            next.name = text("name", name, MAX_ROLE_NAME)?;
        }
        if let Some(desc) = &update.description {
            next.description = description(Some(desc))?;
        }
        if let Some(active) = update.is_active {
            next.is_active = active;
        }
        next.updated_at = now();
        let table = self.entities(org)?;
        let mut batch = ScopedBatch::new().update(
            role_key(id)?,
            to_props(&next),
            WriteMode::Replace,
            IfMatch::ETag(current.etag.clone()),
        );
        let mut name_at = None;
        if name_key(&next.name)? != name_key(&current.name)? {
            if let Some(etag) = name_index_etag(&table, &current.name, id).await? {
                batch = batch.delete(name_key(&current.name)?, IfMatch::ETag(etag));
            }
            name_at = Some(batch.len());
            batch = batch.insert(name_key(&next.name)?, id_props("RoleId", id.as_str()));
        }
        let audited = change(
            by,
            "role.update",
            org,
            id,
            Some(snapshot(&current)),
            Some(snapshot(&next)),
        );
        let etags = self
            .changes
            .apply(audited, async {
                match table.batch(batch).await {
                    Ok(etags) => Ok(etags),
                    Err(StoreError::BatchFailed { index, source })
                        if Some(index) == name_at
                            && matches!(*source, StoreError::AlreadyExists { .. }) =>
                    {
                        Err(name_taken(&next.name))
                    }
                    Err(e) => Err(role_write_error(e, id)),
                }
            })
            .await?;
        next.etag = first_etag(etags)?;
        Ok(next)
    }

    /// Deletes the role, its name claim and every assignment of it.
    pub async fn delete(
        &self,
        org: &OrgId,
        id: &RoleId,
        if_match: &IfMatch,
        by: &Actor,
    ) -> DomainResult<()> {
        let current = self.get(org, id).await?;
        check_if_match(&current.etag, if_match, id)?;
        let table = self.entities(org)?;
        let mut batch =
            ScopedBatch::new().delete(role_key(id)?, IfMatch::ETag(current.etag.clone()));
        if let Some(etag) = name_index_etag(&table, &current.name, id).await? {
            batch = batch.delete(name_key(&current.name)?, IfMatch::ETag(etag));
        }
        let audited = change(by, "role.delete", org, id, Some(snapshot(&current)), None);
        self.changes
            .apply(audited, async {
                table
                    .batch(batch)
                    .await
                    .map_err(|e| role_write_error(e, id))
            })
            .await?;
        // The role row goes first: from here on readers ignore its assignment rows, so a failure
        // below leaves unreachable rows, never access.
        let rel = self.relationships(org)?;
        let mut keys = Vec::new();
        for row in linked_rows(&rel, &format!("{ROLE_USER_PREFIX}{id}:")).await? {
            let user = req_str(&row, "UserId")?;
            keys.push(row.row_key.clone());
            keys.push(row_key(format!("{USER_ROLE_PREFIX}{user}:{id}"))?);
        }
        for row in linked_rows(&rel, &format!("{ROLE_FORM_PREFIX}{id}:")).await? {
            let form = req_str(&row, "FormId")?;
            keys.push(row.row_key.clone());
            keys.push(row_key(format!("{FORM_ROLE_PREFIX}{form}:{id}"))?);
        }
        delete_rows(&rel, keys).await
    }

    /// Assigns users to the role (idempotent). Every user must exist and be a member of `org`;
    /// otherwise nothing is written and the error names `userIds`.
    pub async fn assign_users(
        &self,
        org: &OrgId,
        id: &RoleId,
        users: &[UserId],
        by: &Actor,
    ) -> DomainResult<()> {
        let assigned_by = Some(by.id.as_str());
        let users = dedup(users, "userIds")?;
        self.get(org, id).await?;
        for user in &users {
            match self.users.find(user).await? {
                Some(u) if u.user_type == UserType::OrgUser(org.clone()) => {}
                Some(_) => {
                    return Err(DomainError::invalid(
                        "userIds",
                        format!("user '{user}' is not a member of organization '{org}'"),
                    ));
                }
                None => {
                    return Err(DomainError::invalid(
                        "userIds",
                        format!("user '{user}' does not exist"),
                    ));
                }
            }
        }
        let now = now();
        let rows = users.iter().map(|user| {
            let props = link_props(id, "UserId", user.as_str(), now, assigned_by);
            (
                row_key(format!("{ROLE_USER_PREFIX}{id}:{user}")),
                row_key(format!("{USER_ROLE_PREFIX}{user}:{id}")),
                props,
            )
        });
        let granted = serde_json::json!({"userIds": users.iter().map(ToString::to_string).collect::<Vec<_>>()});
        let audited = change(by, "role.assign_users", org, id, None, Some(granted));
        let table = self.relationships(org)?;
        self.changes
            .apply(audited, upsert_pairs(&table, rows))
            .await
    }

    /// Removes one user from the role; `false` if they were not assigned.
    pub async fn unassign_user(
        &self,
        org: &OrgId,
        id: &RoleId,
        user: &UserId,
        by: &Actor,
    ) -> DomainResult<bool> {
        self.get(org, id).await?;
        let table = self.relationships(org)?;
        let revoked = serde_json::json!({"userIds": [user.to_string()]});
        let audited = change(by, "role.unassign_user", org, id, Some(revoked), None);
        self.changes
            .apply(
                audited,
                unlink(
                    &table,
                    row_key(format!("{ROLE_USER_PREFIX}{id}:{user}"))?,
                    row_key(format!("{USER_ROLE_PREFIX}{user}:{id}"))?,
                ),
            )
            .await
    }

    /// Links forms to the role (idempotent). Forms live in the workspace, so their existence is
    /// the caller's to check.
    pub async fn assign_forms(
        &self,
        org: &OrgId,
        id: &RoleId,
        forms: &[FormId],
        by: &Actor,
    ) -> DomainResult<()> {
        let assigned_by = Some(by.id.as_str());
        let forms = dedup(forms, "formIds")?;
        self.get(org, id).await?;
        let now = now();
        let rows = forms.iter().map(|form| {
            let props = link_props(id, "FormId", form.as_str(), now, assigned_by);
            (
                row_key(format!("{ROLE_FORM_PREFIX}{id}:{form}")),
                row_key(format!("{FORM_ROLE_PREFIX}{form}:{id}")),
                props,
            )
        });
        let granted = serde_json::json!({"formIds": forms.iter().map(ToString::to_string).collect::<Vec<_>>()});
        let audited = change(by, "role.assign_forms", org, id, None, Some(granted));
        let table = self.relationships(org)?;
        self.changes
            .apply(audited, upsert_pairs(&table, rows))
            .await
    }

    /// Removes one form from the role; `false` if it was not linked.
    pub async fn unassign_form(
        &self,
        org: &OrgId,
        id: &RoleId,
        form: &FormId,
        by: &Actor,
    ) -> DomainResult<bool> {
        self.get(org, id).await?;
        let table = self.relationships(org)?;
        let revoked = serde_json::json!({"formIds": [form.to_string()]});
        let audited = change(by, "role.unassign_form", org, id, Some(revoked), None);
        self.changes
            .apply(
                audited,
                unlink(
                    &table,
                    row_key(format!("{ROLE_FORM_PREFIX}{id}:{form}"))?,
                    row_key(format!("{FORM_ROLE_PREFIX}{form}:{id}"))?,
                ),
            )
            .await
    }

    /// The users assigned to the role; `NotFound` if the role is not in `org`.
    pub async fn users_of_role(&self, org: &OrgId, id: &RoleId) -> DomainResult<Vec<UserId>> {
        self.get(org, id).await?;
        linked_rows(
            &self.relationships(org)?,
            &format!("{ROLE_USER_PREFIX}{id}:"),
        )
        .await?
        .iter()
        .map(|row| stored_id(row, "UserId", UserId::parse))
        .collect()
    }

    /// The forms linked to the role; `NotFound` if the role is not in `org`.
    pub async fn forms_of_role(&self, org: &OrgId, id: &RoleId) -> DomainResult<Vec<FormId>> {
        self.get(org, id).await?;
        linked_rows(
            &self.relationships(org)?,
            &format!("{ROLE_FORM_PREFIX}{id}:"),
        )
        .await?
        .iter()
        .map(|row| stored_id(row, "FormId", FormId::parse))
        .collect()
    }

    /// The org's roles the user is assigned to (empty for users of other orgs).
    pub async fn roles_of_user(&self, org: &OrgId, user: &UserId) -> DomainResult<Vec<Role>> {
        self.roles_linked(org, &format!("{USER_ROLE_PREFIX}{user}:"))
            .await
    }

    /// The org's roles the form is linked to.
    pub async fn roles_of_form(&self, org: &OrgId, form: &FormId) -> DomainResult<Vec<Role>> {
        self.roles_linked(org, &format!("{FORM_ROLE_PREFIX}{form}:"))
            .await
    }

    async fn roles_linked(&self, org: &OrgId, prefix: &str) -> DomainResult<Vec<Role>> {
        let mut roles = Vec::new();
        for row in linked_rows(&self.relationships(org)?, prefix).await? {
            let id = stored_id(&row, "RoleId", RoleId::parse)?;
            if let Some(role) = self.find(org, &id).await? {
                roles.push(role);
            }
        }
        Ok(roles)
    }

    fn entities(&self, org: &OrgId) -> DomainResult<ScopedTable> {
        scoped(&self.store, ENTITIES_TABLE, &Scope::Org(org.clone()))
    }

    fn relationships(&self, org: &OrgId) -> DomainResult<ScopedTable> {
        scoped(&self.store, RELATIONSHIPS_TABLE, &Scope::Org(org.clone()))
    }
}

/// Upserts both rows of each pair, a pair never split across batches.
async fn upsert_pairs(
    table: &ScopedTable,
    pairs: impl Iterator<Item = (DomainResult<RowKey>, DomainResult<RowKey>, Properties)>,
) -> DomainResult<()> {
    let mut batch = ScopedBatch::new();
    for (forward, reverse, props) in pairs {
        if batch.len() + 2 > bifrost_store::table::MAX_BATCH_OPERATIONS {
            table.batch(std::mem::take(&mut batch)).await?;
        }
        batch = batch
            .upsert(forward?, props.clone(), WriteMode::Replace)
            .upsert(reverse?, props, WriteMode::Replace);
    }
    if !batch.is_empty() {
        table.batch(batch).await?;
    }
    Ok(())
}

async fn unlink(table: &ScopedTable, forward: RowKey, reverse: RowKey) -> DomainResult<bool> {
    if table.get(&forward).await?.is_none() {
        return Ok(false);
    }
    delete_rows(table, vec![forward, reverse]).await?;
    Ok(true)
}

fn dedup<T: Clone + Ord>(ids: &[T], field: &str) -> DomainResult<Vec<T>> {
    if ids.len() > MAX_ASSIGN {
        return Err(DomainError::invalid(
            field,
            format!("at most {MAX_ASSIGN} ids per call"),
        ));
    }
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn link_props(
    role: &RoleId,
    other_name: &str,
    other: &str,
    at: OffsetDateTime,
    by: Option<&str>,
) -> Properties {
    let mut p = Properties::new();
    p.insert("RoleId".into(), Value::from(role.as_str()));
    p.insert(other_name.into(), Value::from(other));
    p.insert("AssignedAt".into(), Value::from(at));
    if let Some(by) = by {
        p.insert("AssignedBy".into(), Value::from(by));
    }
    p
}

fn stored_id<T>(row: &Entity, name: &str, parse: fn(&str) -> DomainResult<T>) -> DomainResult<T> {
    parse(&req_str(row, name)?)
        .map_err(|e| DomainError::internal(format!("relationship row {}: {e}", row.row_key)))
}

fn description(raw: Option<&str>) -> DomainResult<String> {
    let desc = raw.unwrap_or_default().trim();
    if desc.chars().count() > MAX_ROLE_DESCRIPTION {
        return Err(DomainError::invalid(
            "description",
            format!("must be at most {MAX_ROLE_DESCRIPTION} characters"),
        ));
    }
    Ok(desc.to_owned())
}

fn role_key(id: &RoleId) -> DomainResult<RowKey> {
    row_key(format!("{ROLE_PREFIX}{id}"))
}

fn name_key(name: &str) -> DomainResult<RowKey> {
    row_key(format!(
        "{ROLE_NAME_PREFIX}{}",
        key_part(&name.to_lowercase())
    ))
}

async fn name_index_etag(
    table: &ScopedTable,
    name: &str,
    id: &RoleId,
) -> DomainResult<Option<ETag>> {
    match table.get(&name_key(name)?).await? {
        Some(row) if opt_str(&row, "RoleId").as_deref() == Some(id.as_str()) => {
            Ok(Some(etag_of(&row)?))
        }
        _ => Ok(None),
    }
}

fn id_props(name: &str, id: &str) -> Properties {
    Properties::from([(name.to_owned(), Value::from(id))])
}

fn first_etag(etags: Vec<Option<ETag>>) -> DomainResult<ETag> {
    etags
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| DomainError::internal("batch returned no ETag for the role row"))
}

fn name_taken(name: &str) -> DomainError {
    DomainError::conflict(
        format!("role name '{name}'"),
        "is already used by another role of this organization",
    )
}

fn role_write_error(e: StoreError, id: &RoleId) -> DomainError {
    match e {
        StoreError::BatchFailed { index: 0, source } => match *source {
            StoreError::PreconditionFailed { .. } => DomainError::PreconditionFailed {
                what: format!("role '{id}'"),
            },
            StoreError::NotFound { .. } => DomainError::not_found(format!("role '{id}'")),
            other => other.into(),
        },
        other => other.into(),
    }
}

fn check_if_match(current: &ETag, if_match: &IfMatch, id: &RoleId) -> DomainResult<()> {
    match if_match {
        IfMatch::ETag(expected) if expected != current => Err(DomainError::PreconditionFailed {
            what: format!("role '{id}'"),
        }),
        _ => Ok(()),
    }
}

fn to_props(role: &Role) -> Properties {
    let mut p = Properties::new();
    p.insert("Name".into(), Value::from(role.name.as_str()));
    p.insert("Description".into(), Value::from(role.description.as_str()));
    p.insert("IsActive".into(), Value::from(role.is_active));
    p.insert("CreatedAt".into(), Value::from(role.created_at));
    if let Some(by) = &role.created_by {
        p.insert("CreatedBy".into(), Value::from(by.as_str()));
    }
    p.insert("UpdatedAt".into(), Value::from(role.updated_at));
    p
}

fn from_entity(org: &OrgId, entity: &Entity) -> DomainResult<Role> {
    let raw_id = entity
        .row_key
        .as_str()
        .strip_prefix(ROLE_PREFIX)
        .unwrap_or_default();
    let id = RoleId::parse(raw_id)
        .map_err(|e| DomainError::internal(format!("stored role row key: {e}")))?;
    Ok(Role {
        id,
        org_id: org.clone(),
        name: req_str(entity, "Name")?,
        description: opt_str(entity, "Description").unwrap_or_default(),
        is_active: bool_or(entity, "IsActive", true),
        created_at: created_at(entity),
        created_by: opt_str(entity, "CreatedBy"),
        updated_at: opt_time(entity, "UpdatedAt").unwrap_or_else(|| created_at(entity)),
        etag: etag_of(entity)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testutil::{Fixture, tester};

    fn role(name: &str) -> NewRole {
        NewRole {
            name: name.to_owned(),
            description: Some("desc".into()),
            created_by: Some("admin".into()),
        }
    }

    fn field_of(err: &DomainError) -> &str {
        match err {
            DomainError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn form(id: &str) -> FormId {
        FormId::parse(id).unwrap()
    }

    #[tokio::test]
    async fn crud_and_unique_names() {
        let fx = Fixture::new().await;
        let org = fx.org("A", None).await.id;
        let r = fx
            .roles
            .create(&org, role(" Helpdesk "), &tester())
            .await
            .unwrap();
        assert_eq!(r.name, "Helpdesk");
        assert_eq!(r.description, "desc");
        assert_eq!(fx.roles.get(&org, &r.id).await.unwrap(), r);
        let err = fx
            .roles
            .create(&org, role("HELPDESK"), &tester())
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict { .. }), "{err}");
        let err = fx
            .roles
            .create(&org, role(""), &tester())
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "name");
        let err = fx
            .roles
            .create(
                &org,
                NewRole {
                    description: Some("d".repeat(MAX_ROLE_DESCRIPTION + 1)),
                    ..role("X")
                },
                &tester(),
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "description");
        // Names with key-forbidden characters are fine.
        let odd = fx
            .roles
            .create(&org, role("Sales/EMEA #1?"), &tester())
            .await
            .unwrap();
        assert_eq!(fx.roles.list(&org).await.unwrap().len(), 2);

        let renamed = fx
            .roles
            .update(
                &org,
                &r.id,
                RoleUpdate {
                    name: Some("Service Desk".into()),
                    is_active: Some(false),
                    ..Default::default()
                },
                &IfMatch::from(&r.etag),
                &tester(),
            )
            .await
            .unwrap();
        assert_eq!(renamed.name, "Service Desk");
        assert!(!renamed.is_active);
        // The old name is free; the new one is taken.
        fx.roles
            .create(&org, role("helpdesk"), &tester())
            .await
            .unwrap();
        let err = fx
            .roles
            .update(
                &org,
                &odd.id,
                RoleUpdate {
                    name: Some("service desk".into()),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict { .. }), "{err}");
        // A case-only rename of the role itself is allowed.
        fx.roles
            .update(
                &org,
                &renamed.id,
                RoleUpdate {
                    name: Some("SERVICE DESK".into()),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap();
        // Stale ETag.
        let err = fx
            .roles
            .update(
                &org,
                &r.id,
                RoleUpdate::default(),
                &IfMatch::from(&r.etag),
                &tester(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, DomainError::PreconditionFailed { .. }),
            "{err}"
        );
        // Same name in another org is fine.
        let other = fx.org("B", None).await.id;
        fx.roles
            .create(&other, role("Helpdesk"), &tester())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn assignments_are_dual_indexed_and_validated() {
        let fx = Fixture::new().await;
        let org = fx.org("A", Some("a.example")).await.id;
        let other = fx.org("B", Some("b.example")).await.id;
        let u1 = fx.org_user("u1@a.example", &org).await.id;
        let u2 = fx.org_user("u2@a.example", &org).await.id;
        let outsider = fx.org_user("x@b.example", &other).await.id;
        let r = fx.roles.create(&org, role("R"), &tester()).await.unwrap();
        let r2 = fx.roles.create(&org, role("R2"), &tester()).await.unwrap();

        fx.roles
            .assign_users(
                &org,
                &r.id,
                &[u1.clone(), u2.clone(), u1.clone()],
                &tester(),
            )
            .await
            .unwrap();
        // Idempotent.
        fx.roles
            .assign_users(&org, &r.id, std::slice::from_ref(&u1), &tester())
            .await
            .unwrap();
        fx.roles
            .assign_users(&org, &r2.id, std::slice::from_ref(&u1), &tester())
            .await
            .unwrap();
        let mut users = fx.roles.users_of_role(&org, &r.id).await.unwrap();
        users.sort();
        let mut expected = vec![u1.clone(), u2.clone()];
        expected.sort();
        assert_eq!(users, expected);
        let of_u1: Vec<_> = fx
            .roles
            .roles_of_user(&org, &u1)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(of_u1.len(), 2);

        for bad in [outsider.clone(), UserId::generate()] {
            let err = fx
                .roles
                .assign_users(&org, &r.id, &[u1.clone(), bad], &tester())
                .await
                .unwrap_err();
            assert_eq!(field_of(&err), "userIds");
        }

        fx.roles
            .assign_forms(&org, &r.id, &[form("f1"), form("f2")], &tester())
            .await
            .unwrap();
        assert_eq!(fx.roles.forms_of_role(&org, &r.id).await.unwrap().len(), 2);
        assert_eq!(
            fx.roles.roles_of_form(&org, &form("f1")).await.unwrap()[0].id,
            r.id
        );

        assert!(
            fx.roles
                .unassign_user(&org, &r.id, &u2, &tester())
                .await
                .unwrap()
        );
        assert!(
            !fx.roles
                .unassign_user(&org, &r.id, &u2, &tester())
                .await
                .unwrap()
        );
        assert_eq!(
            fx.roles.users_of_role(&org, &r.id).await.unwrap(),
            std::slice::from_ref(&u1)
        );
        assert!(fx.roles.roles_of_user(&org, &u2).await.unwrap().is_empty());
        assert!(
            fx.roles
                .unassign_form(&org, &r.id, &form("f2"), &tester())
                .await
                .unwrap()
        );
        assert!(
            !fx.roles
                .unassign_form(&org, &r.id, &form("f2"), &tester())
                .await
                .unwrap()
        );
        assert!(
            fx.roles
                .roles_of_form(&org, &form("f2"))
                .await
                .unwrap()
                .is_empty()
        );

        let too_many: Vec<_> = (0..=MAX_ASSIGN).map(|i| form(&format!("f{i}"))).collect();
        let err = fx
            .roles
            .assign_forms(&org, &r.id, &too_many, &tester())
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "formIds");
    }

    #[tokio::test]
    async fn many_assignments_span_batches_and_delete_cleans_them_all() {
        let fx = Fixture::new().await;
        let org = fx.org("A", None).await.id;
        let r = fx.roles.create(&org, role("Big"), &tester()).await.unwrap();
        let keep = fx
            .roles
            .create(&org, role("Keep"), &tester())
            .await
            .unwrap();
        let forms: Vec<_> = (0..130).map(|i| form(&format!("form{i:03}"))).collect();
        fx.roles
            .assign_forms(&org, &r.id, &forms, &tester())
            .await
            .unwrap();
        fx.roles
            .assign_forms(&org, &keep.id, &forms[..3], &tester())
            .await
            .unwrap();
        assert_eq!(
            fx.roles.forms_of_role(&org, &r.id).await.unwrap().len(),
            130
        );

        let err = fx
            .roles
            .delete(&org, &r.id, &IfMatch::ETag(ETag::new("stale")), &tester())
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::PreconditionFailed { .. }));
        fx.roles
            .delete(&org, &r.id, &IfMatch::from(&r.etag), &tester())
            .await
            .unwrap();
        assert!(fx.roles.find(&org, &r.id).await.unwrap().is_none());
        let err = fx.roles.users_of_role(&org, &r.id).await.unwrap_err();
        assert!(matches!(err, DomainError::NotFound { .. }));
        // Only the other role's links remain, in both directions.
        let rel = fx.relationships(&Scope::Org(org.clone()));
        let rows = rel.query_all(&Query::new()).await.unwrap();
        assert_eq!(
            rows.len(),
            6,
            "{:?}",
            rows.iter().map(|r| &r.row_key).collect::<Vec<_>>()
        );
        assert_eq!(
            fx.roles.roles_of_form(&org, &forms[0]).await.unwrap()[0].id,
            keep.id
        );
        // The name is free again.
        fx.roles.create(&org, role("big"), &tester()).await.unwrap();
    }

    #[tokio::test]
    async fn leaving_the_org_or_being_deleted_removes_assignments() {
        let fx = Fixture::new().await;
        let org = fx.org("A", Some("a.example")).await.id;
        let r = fx.roles.create(&org, role("R"), &tester()).await.unwrap();
        let u1 = fx.org_user("u1@a.example", &org).await;
        let u2 = fx.org_user("u2@a.example", &org).await;
        fx.roles
            .assign_users(&org, &r.id, &[u1.id.clone(), u2.id.clone()], &tester())
            .await
            .unwrap();
        fx.users
            .update(
                &u1.id,
                crate::domain::users::UserUpdate {
                    user_type: Some(UserType::PlatformAdmin),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap();
        fx.users
            .delete(&u2.id, &IfMatch::Any, &tester())
            .await
            .unwrap();
        assert!(
            fx.roles
                .users_of_role(&org, &r.id)
                .await
                .unwrap()
                .is_empty()
        );
        let rel = fx.relationships(&Scope::Org(org.clone()));
        assert!(rel.query_all(&Query::new()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn org_a_can_never_reach_org_b_roles() {
        let fx = Fixture::new().await;
        let a = fx.org("A", Some("a.example")).await.id;
        let b = fx.org("B", Some("b.example")).await.id;
        let b_user = fx.org_user("u@b.example", &b).await.id;
        let b_role = fx
            .roles
            .create(&b, role("B role"), &tester())
            .await
            .unwrap();
        fx.roles
            .assign_users(&b, &b_role.id, std::slice::from_ref(&b_user), &tester())
            .await
            .unwrap();
        fx.roles
            .assign_forms(&b, &b_role.id, &[form("bf")], &tester())
            .await
            .unwrap();
        fx.roles
            .create(&a, role("A role"), &tester())
            .await
            .unwrap();

        let not_found = |r: DomainResult<_>| matches!(r, Err(DomainError::NotFound { .. }));
        assert!(not_found(fx.roles.get(&a, &b_role.id).await.map(|_| ())));
        assert!(not_found(
            fx.roles
                .update(
                    &a,
                    &b_role.id,
                    RoleUpdate {
                        name: Some("pwned".into()),
                        ..Default::default()
                    },
                    &IfMatch::Any,
                    &tester(),
                )
                .await
                .map(|_| ())
        ));
        assert!(not_found(
            fx.roles
                .delete(&a, &b_role.id, &IfMatch::Any, &tester())
                .await
        ));
        assert!(not_found(
            fx.roles.users_of_role(&a, &b_role.id).await.map(|_| ())
        ));
        assert!(not_found(
            fx.roles.forms_of_role(&a, &b_role.id).await.map(|_| ())
        ));
        assert!(not_found(
            fx.roles
                .unassign_user(&a, &b_role.id, &b_user, &tester())
                .await
                .map(|_| ())
        ));
        assert!(not_found(
            fx.roles
                .unassign_form(&a, &b_role.id, &form("bf"), &tester())
                .await
                .map(|_| ())
        ));
        assert!(not_found(
            fx.roles
                .assign_forms(&a, &b_role.id, &[form("x")], &tester())
                .await
        ));
        assert!(not_found(
            fx.roles
                .assign_users(&a, &b_role.id, std::slice::from_ref(&b_user), &tester())
                .await
        ));
        let a_roles = fx.roles.list(&a).await.unwrap();
        assert_eq!(a_roles.len(), 1);
        assert!(a_roles.iter().all(|r| r.id != b_role.id));
        assert!(
            fx.roles
                .roles_of_user(&a, &b_user)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            fx.roles
                .roles_of_form(&a, &form("bf"))
                .await
                .unwrap()
                .is_empty()
        );
        // A's role cannot take B's user either.
        let a_role = &a_roles[0];
        let err = fx
            .roles
            .assign_users(&a, &a_role.id, std::slice::from_ref(&b_user), &tester())
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "userIds");
        // B's data is untouched.
        let b_now = fx.roles.get(&b, &b_role.id).await.unwrap();
        assert_eq!(b_now.name, "B role");
        assert_eq!(
            fx.roles.users_of_role(&b, &b_role.id).await.unwrap(),
            [b_user]
        );
    }
}

//! Client organizations: CRUD, the email-domain rule and lookup by domain (for user
//! auto-provisioning).
//!
//! Depends on the table contract and the change log (every write is audited first,
//! [`crate::domain::changes`]). Layout (table `Entities`, partition `GLOBAL`):
//! - `org:{id}` — `Name`, `Domain` (absent when none), `IsActive`, `CreatedAt`, `CreatedBy`,
//!   `UpdatedAt` (v1's columns);
//! - `orgdomain:{domain}` — `OrgId`: the uniqueness index of domains, written in the same atomic
//!   batch as the org row. v1 had no index, so two orgs could claim one domain and provisioning
//!   picked whichever it scanned first; here the second claim fails with `Conflict`.
//!
//! Invariants: a stored domain is normalized (lower case, no `@`, a valid host name with a dot);
//! every write of an org row is guarded by the ETag read just before it, so concurrent updates
//! never silently overwrite each other; an org that still has users cannot be deleted (their
//! membership would dangle).

use std::sync::Arc;

use bifrost_store::table::{ETag, IfMatch, Properties, Query, ScopedBatch, Value, WriteMode, prop};
use bifrost_store::{OrgId, Scope, StoreError, TableStore};
use time::OffsetDateTime;

use crate::domain::changes::{Actor, Change, ChangeLog};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::rows::{
    ENTITIES_TABLE, ORG_DOMAIN_PREFIX, ORG_PREFIX, PageRequest, Paged, USER_PREFIX, bool_or,
    created_at, ensure, etag_of, now, opt_str, opt_time, prefix_filter, req_str, row_key, scoped,
    text,
};
/// Longest organization name, in characters.
pub const MAX_ORG_NAME: usize = 200;

/// A client organization as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    /// Normalized email domain used to auto-provision users, if any.
    pub domain: Option<String>,
    pub is_active: bool,
    pub created_at: OffsetDateTime,
    pub created_by: Option<String>,
    pub updated_at: OffsetDateTime,
    /// Send back in `IfMatch` to update or delete only this version.
    pub etag: ETag,
}

impl Organization {
    /// The tenant scope of this organization's data.
    pub fn scope(&self) -> Scope {
        Scope::Org(self.id.clone())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewOrganization {
    pub name: String,
    pub domain: Option<String>,
    pub is_active: bool,
    pub created_by: Option<String>,
}

/// Fields to change; `None` leaves a field as it is. `domain: Some(None)` removes the domain.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrganizationUpdate {
    pub name: Option<String>,
    pub domain: Option<Option<String>>,
    pub is_active: Option<bool>,
}

/// Normalizes an email domain: trims, lower-cases, drops a leading `@` and a trailing `.`, and
/// checks it is a host name with at least two labels (`[a-z0-9-]`, 1–63 characters each, no
/// leading/trailing `-`, at most 253 characters). Errors name `field`.
pub fn normalize_domain(field: &str, raw: &str) -> DomainResult<String> {
    let trimmed = raw.trim();
    let trimmed = trimmed.strip_prefix('@').unwrap_or(trimmed);
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let domain = trimmed.to_ascii_lowercase();
    if domain.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if domain.contains('@') {
        return Err(DomainError::invalid(
            field,
            "must be a domain such as example.com, not an email address",
        ));
    }
    if domain.len() > 253 {
        return Err(DomainError::invalid(
            field,
            "must be at most 253 characters",
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(DomainError::invalid(
            field,
            "must contain a dot, e.g. example.com",
        ));
    }
    for label in labels {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(DomainError::invalid(
                field,
                format!(
                    "{domain:?} is not a valid host name (labels of 1-63 letters, digits or '-', separated by dots; IDNs in punycode)"
                ),
            ));
        }
    }
    Ok(domain)
}

/// The audited fields of an organization.
fn snapshot(org: &Organization) -> serde_json::Value {
    serde_json::json!({"name": org.name, "domain": org.domain, "isActive": org.is_active})
}

/// Organization CRUD over `Entities`/`GLOBAL`.
#[derive(Clone, Debug)]
pub struct OrgService {
    store: Arc<dyn TableStore>,
    changes: ChangeLog,
}

impl OrgService {
    pub fn new(store: Arc<dyn TableStore>, changes: ChangeLog) -> Self {
        Self { store, changes }
    }

    fn change<'a>(
        by: &'a Actor,
        action: &'static str,
        id: &OrgId,
        before: Option<&Organization>,
        after: Option<&Organization>,
    ) -> Change<'a> {
        Change {
            by,
            action,
            scope: Scope::Org(id.clone()),
            target: id.to_string(),
            before: before.map(snapshot),
            after: after.map(snapshot),
        }
    }

    /// Creates the `Entities` table if missing.
    pub async fn ensure_tables(&self) -> DomainResult<()> {
        ensure(&self.store, &[ENTITIES_TABLE]).await
    }

    pub async fn create(&self, new: NewOrganization, by: &Actor) -> DomainResult<Organization> {
        let name = text("name", &new.name, MAX_ORG_NAME)?;
        let domain = new
            .domain
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(|d| normalize_domain("domain", d))
            .transpose()?;
        let now = now();
        let org = Organization {
            id: OrgId::generate(),
            name,
            domain,
            is_active: new.is_active,
            created_at: now,
            created_by: new.created_by,
            updated_at: now,
            etag: ETag::new(""),
        };
        let mut batch = ScopedBatch::new().insert(org_key(&org.id)?, to_props(&org));
        if let Some(domain) = &org.domain {
            batch = batch.insert(domain_key(domain)?, domain_props(&org.id));
        }
        let table = self.table()?;
        let change = Self::change(by, "organization.create", &org.id, None, Some(&org));
        let etags = self
            .changes
            .apply(change, async {
                match table.batch(batch).await {
                    Ok(etags) => Ok(etags),
                    Err(StoreError::BatchFailed { index: 1, source })
                        if matches!(*source, StoreError::AlreadyExists { .. }) =>
                    {
                        Err(domain_taken(org.domain.as_deref().unwrap_or_default()))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        let etag = etags
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| DomainError::internal("batch returned no ETag for the org row"))?;
        Ok(Organization { etag, ..org })
    }

    /// The organization, or `NotFound`.
    pub async fn get(&self, id: &OrgId) -> DomainResult<Organization> {
        self.find(id)
            .await?
            .ok_or_else(|| DomainError::not_found(format!("organization '{id}'")))
    }

    /// The organization, or `None`.
    pub async fn find(&self, id: &OrgId) -> DomainResult<Option<Organization>> {
        match self.table()?.get(&org_key(id)?).await? {
            Some(entity) => Ok(Some(from_entity(&entity)?)),
            None => Ok(None),
        }
    }

    /// One page of organizations, ordered by id.
    pub async fn list(&self, page: &PageRequest) -> DomainResult<Paged<Organization>> {
        let query = page.to_query(prefix_filter(ORG_PREFIX))?;
        let result = self.table()?.query(&query).await?;
        Ok(Paged {
            items: result
                .entities
                .iter()
                .map(from_entity)
                .collect::<DomainResult<_>>()?,
            continuation: result.continuation,
        })
    }

    /// Every organization (follows continuations).
    pub async fn list_all(&self) -> DomainResult<Vec<Organization>> {
        let query = Query::new().filter(prefix_filter(ORG_PREFIX));
        self.table()?
            .query_all(&query)
            .await?
            .iter()
            .map(from_entity)
            .collect()
    }

    /// Applies `update` if the stored version still matches `if_match`.
    pub async fn update(
        &self,
        id: &OrgId,
        update: OrganizationUpdate,
        if_match: &IfMatch,
        by: &Actor,
    ) -> DomainResult<Organization> {
        let current = self.get(id).await?;
        check_if_match(&current.etag, if_match, id)?;
        let mut next = current.clone();
        if let Some(name) = &update.name {
            next.name = text("name", name, MAX_ORG_NAME)?;
        }
        if let Some(domain) = &update.domain {
            next.domain = domain
                .as_deref()
                .filter(|d| !d.trim().is_empty())
                .map(|d| normalize_domain("domain", d))
                .transpose()?;
        }
        if let Some(active) = update.is_active {
            next.is_active = active;
        }
        next.updated_at = now();

        let table = self.table()?;
        // Guard with the ETag we read, so an `IfMatch::Any` caller still cannot overwrite a
        // write that landed between our read and this batch.
        let mut batch = ScopedBatch::new().update(
            org_key(id)?,
            to_props(&next),
            WriteMode::Replace,
            IfMatch::ETag(current.etag.clone()),
        );
        let mut new_index_at = None;
        if next.domain != current.domain {
            if let Some(old) = &current.domain
                && let Some(index) = table.get(&domain_key(old)?).await?
                && opt_str(&index, "OrgId").as_deref() == Some(id.as_str())
            {
                batch = batch.delete(domain_key(old)?, IfMatch::ETag(etag_of(&index)?));
            }
            if let Some(new) = &next.domain {
                new_index_at = Some(batch.len());
                batch = batch.insert(domain_key(new)?, domain_props(id));
            }
        }
        let change = Self::change(by, "organization.update", id, Some(&current), Some(&next));
        let etags = self
            .changes
            .apply(change, async {
                match table.batch(batch).await {
                    Ok(etags) => Ok(etags),
                    Err(StoreError::BatchFailed { index, source })
                        if Some(index) == new_index_at
                            && matches!(*source, StoreError::AlreadyExists { .. }) =>
                    {
                        Err(domain_taken(next.domain.as_deref().unwrap_or_default()))
                    }
                    Err(StoreError::BatchFailed { index: 0, source })
                        if matches!(*source, StoreError::PreconditionFailed { .. }) =>
                    {
                        Err(stale(id))
                    }
                    Err(StoreError::BatchFailed { index: 0, source })
                        if matches!(*source, StoreError::NotFound { .. }) =>
                    {
                        Err(DomainError::not_found(format!("organization '{id}'")))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        next.etag = etags
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| DomainError::internal("batch returned no ETag for the org row"))?;
        Ok(next)
    }

    /// Deletes the organization and its domain claim. Refused with `Conflict` while users still
    /// belong to it. The org's roles and config rows are left to the caller's cleanup policy.
    pub async fn delete(&self, id: &OrgId, if_match: &IfMatch, by: &Actor) -> DomainResult<()> {
        let current = self.get(id).await?;
        check_if_match(&current.etag, if_match, id)?;
        if self.has_users(id).await? {
            return Err(DomainError::conflict(
                format!("organization '{id}'"),
                "still has users; delete or move them first",
            ));
        }
        let table = self.table()?;
        let mut batch =
            ScopedBatch::new().delete(org_key(id)?, IfMatch::ETag(current.etag.clone()));
        if let Some(domain) = &current.domain
            && let Some(index) = table.get(&domain_key(domain)?).await?
            && opt_str(&index, "OrgId").as_deref() == Some(id.as_str())
        {
            batch = batch.delete(domain_key(domain)?, IfMatch::ETag(etag_of(&index)?));
        }
        let change = Self::change(by, "organization.delete", id, Some(&current), None);
        self.changes
            .apply(change, async {
                match table.batch(batch).await {
                    Ok(_) => Ok(()),
                    Err(StoreError::BatchFailed { index: 0, source })
                        if matches!(*source, StoreError::PreconditionFailed { .. }) =>
                    {
                        Err(stale(id))
                    }
                    Err(StoreError::BatchFailed { index: 0, source })
                        if matches!(*source, StoreError::NotFound { .. }) =>
                    {
                        Err(DomainError::not_found(format!("organization '{id}'")))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await
    }

    /// The organization claiming `domain` (normalized first; errors name `domain`).
    pub async fn find_by_domain(&self, domain: &str) -> DomainResult<Option<Organization>> {
        let domain = normalize_domain("domain", domain)?;
        let Some(index) = self.table()?.get(&domain_key(&domain)?).await? else {
            return Ok(None);
        };
        let org_id = OrgId::parse(&req_str(&index, "OrgId")?)
            .map_err(|e| DomainError::internal(format!("domain index row: {e}")))?;
        // Re-check the org row: an index left behind by an interrupted write never decides.
        Ok(self
            .find(&org_id)
            .await?
            .filter(|org| org.domain.as_deref() == Some(domain.as_str())))
    }

    async fn has_users(&self, id: &OrgId) -> DomainResult<bool> {
        let mut query = Query::new()
            .filter(prefix_filter(USER_PREFIX).and(prop("OrgId").eq(id.as_str())))
            .page_size(1);
        let table = self.table()?;
        loop {
            let page = table.query(&query).await?;
            if !page.entities.is_empty() {
                return Ok(true);
            }
            match page.continuation {
                Some(token) => query.continuation = Some(token),
                None => return Ok(false),
            }
        }
    }

    fn table(&self) -> DomainResult<bifrost_store::ScopedTable> {
        scoped(&self.store, ENTITIES_TABLE, &Scope::Global)
    }
}

fn org_key(id: &OrgId) -> DomainResult<bifrost_store::RowKey> {
    // OrgId's alphabet ([A-Za-z0-9_-]) needs no escaping.
    row_key(format!("{ORG_PREFIX}{id}"))
}

fn domain_key(domain: &str) -> DomainResult<bifrost_store::RowKey> {
    // Normalized domains are [a-z0-9.-] only.
    row_key(format!("{ORG_DOMAIN_PREFIX}{domain}"))
}

fn domain_props(id: &OrgId) -> Properties {
    Properties::from([("OrgId".to_owned(), Value::from(id.as_str()))])
}

fn domain_taken(domain: &str) -> DomainError {
    DomainError::conflict(
        format!("domain '{domain}'"),
        "is already used by another organization",
    )
}

fn stale(id: &OrgId) -> DomainError {
    DomainError::PreconditionFailed {
        what: format!("organization '{id}'"),
    }
}

fn check_if_match(current: &ETag, if_match: &IfMatch, id: &OrgId) -> DomainResult<()> {
    match if_match {
        IfMatch::ETag(expected) if expected != current => Err(stale(id)),
        _ => Ok(()),
    }
}

fn to_props(org: &Organization) -> Properties {
    let mut p = Properties::new();
    p.insert("Name".into(), Value::from(org.name.as_str()));
    if let Some(domain) = &org.domain {
        p.insert("Domain".into(), Value::from(domain.as_str()));
    }
    p.insert("IsActive".into(), Value::from(org.is_active));
    p.insert("CreatedAt".into(), Value::from(org.created_at));
    if let Some(by) = &org.created_by {
        p.insert("CreatedBy".into(), Value::from(by.as_str()));
    }
    p.insert("UpdatedAt".into(), Value::from(org.updated_at));
    p
}

fn from_entity(entity: &bifrost_store::table::Entity) -> DomainResult<Organization> {
    let raw_id = entity
        .row_key
        .as_str()
        .strip_prefix(ORG_PREFIX)
        .unwrap_or_default();
    let id = OrgId::parse(raw_id)
        .map_err(|e| DomainError::internal(format!("stored org row key: {e}")))?;
    Ok(Organization {
        id,
        name: req_str(entity, "Name")?,
        domain: opt_str(entity, "Domain").filter(|d| !d.is_empty()),
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

    fn new_org(name: &str, domain: Option<&str>) -> NewOrganization {
        NewOrganization {
            name: name.to_owned(),
            domain: domain.map(str::to_owned),
            is_active: true,
            created_by: Some("admin@msp.example".into()),
        }
    }

    fn field_of(err: &DomainError) -> &str {
        match err {
            DomainError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn domains_are_normalized_and_validated() {
        assert_eq!(
            normalize_domain("domain", " @Acme.COM. ").unwrap(),
            "acme.com"
        );
        assert_eq!(
            normalize_domain("domain", "xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "acme",
            "a@b.com",
            "-acme.com",
            "acme-.com",
            "ac me.com",
            "acme..com",
            "bücher.de",
            &format!("{}.com", "a".repeat(64)),
        ] {
            let err = normalize_domain("domain", bad).unwrap_err();
            assert_eq!(field_of(&err), "domain", "{bad:?}");
        }
    }

    #[tokio::test]
    async fn create_get_and_find_by_domain() {
        let fx = Fixture::new().await;
        let orgs = &fx.orgs;
        let org = orgs
            .create(new_org("  Acme  ", Some("@ACME.com")), &tester())
            .await
            .unwrap();
        assert_eq!(org.name, "Acme");
        assert_eq!(org.domain.as_deref(), Some("acme.com"));
        assert!(org.is_active);
        assert_eq!(org.scope(), Scope::Org(org.id.clone()));
        let read = orgs.get(&org.id).await.unwrap();
        assert_eq!(read.etag, org.etag);
        assert_eq!(read.name, "Acme");
        assert_eq!(read.created_by.as_deref(), Some("admin@msp.example"));
        assert_eq!(
            orgs.find_by_domain("Acme.Com").await.unwrap().unwrap().id,
            org.id
        );
        assert!(orgs.find_by_domain("other.com").await.unwrap().is_none());
        let no_domain = orgs.create(new_org("Beta", None), &tester()).await.unwrap();
        assert_eq!(no_domain.domain, None);
        let missing = orgs.get(&OrgId::generate()).await.unwrap_err();
        assert!(matches!(missing, DomainError::NotFound { .. }), "{missing}");
    }

    #[tokio::test]
    async fn create_validates_fields_by_name() {
        let fx = Fixture::new().await;
        let err = fx
            .orgs
            .create(new_org("  ", None), &tester())
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "name");
        let err = fx
            .orgs
            .create(new_org(&"n".repeat(201), None), &tester())
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "name");
        assert!(err.to_string().contains("200"), "{err}");
        let err = fx
            .orgs
            .create(new_org("Acme", Some("not a domain")), &tester())
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "domain");
        assert!(fx.orgs.list_all().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn domains_are_unique_across_orgs() {
        let fx = Fixture::new().await;
        let a = fx
            .orgs
            .create(new_org("A", Some("acme.com")), &tester())
            .await
            .unwrap();
        let err = fx
            .orgs
            .create(new_org("B", Some("ACME.COM")), &tester())
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("acme.com"), "{err}");
        // The failed create left nothing behind.
        assert_eq!(fx.orgs.list_all().await.unwrap().len(), 1);

        // Moving a domain: B cannot take A's, but can once A lets it go.
        let b = fx
            .orgs
            .create(new_org("B", Some("beta.com")), &tester())
            .await
            .unwrap();
        let update = OrganizationUpdate {
            domain: Some(Some("acme.com".into())),
            ..Default::default()
        };
        let err = fx
            .orgs
            .update(&b.id, update.clone(), &IfMatch::Any, &tester())
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict { .. }), "{err}");
        assert_eq!(
            fx.orgs.get(&b.id).await.unwrap().domain.as_deref(),
            Some("beta.com")
        );
        fx.orgs
            .update(
                &a.id,
                OrganizationUpdate {
                    domain: Some(None),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap();
        assert!(fx.orgs.find_by_domain("acme.com").await.unwrap().is_none());
        let b2 = fx
            .orgs
            .update(&b.id, update, &IfMatch::Any, &tester())
            .await
            .unwrap();
        assert_eq!(b2.domain.as_deref(), Some("acme.com"));
        assert_eq!(
            fx.orgs
                .find_by_domain("acme.com")
                .await
                .unwrap()
                .unwrap()
                .id,
            b.id
        );
        // B's old domain is free again.
        assert!(fx.orgs.find_by_domain("beta.com").await.unwrap().is_none());
        fx.orgs
            .create(new_org("C", Some("beta.com")), &tester())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn updates_are_etag_guarded() {
        let fx = Fixture::new().await;
        let org = fx
            .orgs
            .create(new_org("Acme", None), &tester())
            .await
            .unwrap();
        let first = fx
            .orgs
            .update(
                &org.id,
                OrganizationUpdate {
                    name: Some("Acme Ltd".into()),
                    is_active: Some(false),
                    ..Default::default()
                },
                &IfMatch::from(&org.etag),
                &tester(),
            )
            .await
            .unwrap();
        assert_eq!(first.name, "Acme Ltd");
        assert!(!first.is_active);
        assert_ne!(first.etag, org.etag);
        // A second writer holding the original ETag loses.
        let err = fx
            .orgs
            .update(
                &org.id,
                OrganizationUpdate {
                    name: Some("Other".into()),
                    ..Default::default()
                },
                &IfMatch::from(&org.etag),
                &tester(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, DomainError::PreconditionFailed { .. }),
            "{err}"
        );
        let stored = fx.orgs.get(&org.id).await.unwrap();
        assert_eq!(stored.name, "Acme Ltd");
        assert_eq!(stored.etag, first.etag);
        let err = fx
            .orgs
            .update(
                &org.id,
                OrganizationUpdate {
                    name: Some(String::new()),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "name");
        let err = fx
            .orgs
            .update(
                &OrgId::generate(),
                OrganizationUpdate::default(),
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::NotFound { .. }));
    }

    #[tokio::test]
    async fn concurrent_updates_with_the_same_etag_one_wins() {
        let fx = Fixture::new().await;
        let org = fx
            .orgs
            .create(new_org("Acme", None), &tester())
            .await
            .unwrap();
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let orgs = fx.orgs.clone();
                let (id, etag) = (org.id.clone(), org.etag.clone());
                tokio::spawn(async move {
                    orgs.update(
                        &id,
                        OrganizationUpdate {
                            name: Some(format!("writer {i}")),
                            ..Default::default()
                        },
                        &IfMatch::ETag(etag),
                        &tester(),
                    )
                    .await
                })
            })
            .collect();
        let mut ok = 0;
        let mut stale = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(DomainError::PreconditionFailed { .. }) => stale += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((ok, stale), (1, 1));
    }

    #[tokio::test]
    async fn list_pages_through_all_orgs() {
        let fx = Fixture::new().await;
        let mut ids = Vec::new();
        for i in 0..7 {
            ids.push(
                fx.orgs
                    .create(new_org(&format!("Org {i}"), None), &tester())
                    .await
                    .unwrap()
                    .id,
            );
        }
        // Index rows of other kinds in the same partition never show up as orgs.
        fx.orgs
            .create(new_org("With domain", Some("d.example")), &tester())
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut page = PageRequest::first(3);
        let mut pages = 0;
        loop {
            let result = fx.orgs.list(&page).await.unwrap();
            assert!(result.items.len() <= 3);
            pages += 1;
            seen.extend(result.items.into_iter().map(|o| o.id));
            match result.continuation {
                Some(token) => page.continuation = Some(token),
                None => break,
            }
        }
        assert!(pages >= 3, "{pages}");
        assert_eq!(seen.len(), 8);
        for id in &ids {
            assert!(seen.contains(id));
        }
        let err = fx.orgs.list(&PageRequest::first(0)).await.unwrap_err();
        assert_eq!(field_of(&err), "pageSize");
    }

    #[tokio::test]
    async fn delete_removes_org_and_domain_claim() {
        let fx = Fixture::new().await;
        let org = fx
            .orgs
            .create(new_org("Acme", Some("acme.com")), &tester())
            .await
            .unwrap();
        let err = fx
            .orgs
            .delete(&org.id, &IfMatch::ETag(ETag::new("W/\"stale\"")), &tester())
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::PreconditionFailed { .. }));
        fx.orgs
            .delete(&org.id, &IfMatch::from(&org.etag), &tester())
            .await
            .unwrap();
        assert!(fx.orgs.find(&org.id).await.unwrap().is_none());
        assert!(fx.orgs.find_by_domain("acme.com").await.unwrap().is_none());
        let err = fx
            .orgs
            .delete(&org.id, &IfMatch::Any, &tester())
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::NotFound { .. }));
        // The domain can be claimed again.
        fx.orgs
            .create(new_org("Acme 2", Some("acme.com")), &tester())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn org_with_users_cannot_be_deleted() {
        let fx = Fixture::new().await;
        let org = fx
            .orgs
            .create(new_org("Acme", Some("acme.com")), &tester())
            .await
            .unwrap();
        let user = fx.org_user("jo@acme.com", &org.id).await;
        let err = fx
            .orgs
            .delete(&org.id, &IfMatch::Any, &tester())
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict { .. }), "{err}");
        fx.users
            .delete(&user.id, &IfMatch::Any, &tester())
            .await
            .unwrap();
        fx.orgs
            .delete(&org.id, &IfMatch::Any, &tester())
            .await
            .unwrap();
    }
}

//! Shared plumbing of the domain services: table names, the row-key prefixes of every entity,
//! row-key building, prefix queries, property readers, id newtypes, paging types, and the
//! row-level cleanup of role assignments that both users and roles need.
//!
//! The bottom of the domain's layering: depends on the table contract and `error.rs`, never on
//! a service module (`orgs`, `users`, `roles`, `config`), so any of them may use it. The
//! prefixes live here rather than with their service because other services query them
//! (deleting an org counts its `user:` rows; a user leaving an org drops its `userrole:` rows). Invariants: every variable part of a row key goes through
//! [`key_part`], which escapes the key-forbidden characters and the `:` separator, so a caller's
//! text can neither break a key nor shift the boundary between key segments; ids are restricted
//! to `[A-Za-z0-9_-]` and never contain `:`.

use std::fmt;
use std::sync::Arc;

use bifrost_store::table::{
    Column, ContinuationToken, Entity, Filter, IfMatch, MAX_BATCH_OPERATIONS, MAX_PAGE_SIZE, Query,
    ScopedBatch, ScopedTable, TableName,
};
use bifrost_store::{OrgId, RowKey, Scope, StoreError, TableStore};
use time::OffsetDateTime;

use crate::domain::error::{DomainError, DomainResult};

/// Per-scope settings (`config:{key}` rows).
pub const CONFIG_TABLE: &str = "Config";
/// Organizations, users and roles (and their index rows).
pub const ENTITIES_TABLE: &str = "Entities";
/// Dual-indexed relationships (role assignments).
pub const RELATIONSHIPS_TABLE: &str = "Relationships";

// Row-key prefixes of `Entities`, partition `GLOBAL`.
/// `org:{id}`: an organization.
pub(crate) const ORG_PREFIX: &str = "org:";
/// `orgdomain:{domain}`: the uniqueness index of organization domains.
pub(crate) const ORG_DOMAIN_PREFIX: &str = "orgdomain:";
/// `user:{id}`: a user.
pub(crate) const USER_PREFIX: &str = "user:";
/// `useremail:{email}`: the uniqueness index of user emails.
pub(crate) const USER_EMAIL_PREFIX: &str = "useremail:";
/// `userentra:{oid}`: the uniqueness index of Entra object ids.
pub(crate) const USER_ENTRA_PREFIX: &str = "userentra:";
/// The first-admin marker, present once any user exists.
pub(crate) const FIRST_USER_MARKER: &str = "bootstrap:firstuser";
/// Changes on every user update or delete, so every instance drops cached principals promptly.
pub(crate) const USERS_REVISION_ROW: &str = "revision:users";

// Row-key prefixes of `Entities`, the organization's partition.
/// `role:{id}`: a role.
pub(crate) const ROLE_PREFIX: &str = "role:";
/// `rolename:{lower-cased name}`: the uniqueness index of role names.
pub(crate) const ROLE_NAME_PREFIX: &str = "rolename:";

// Row-key prefixes of `Relationships`, the organization's partition: each assignment is a pair
// of rows, one per direction, written and deleted in one batch.
/// `roleuser:{role}:{user}`.
pub(crate) const ROLE_USER_PREFIX: &str = "roleuser:";
/// `userrole:{user}:{role}`.
pub(crate) const USER_ROLE_PREFIX: &str = "userrole:";
/// `roleform:{role}:{form}`.
pub(crate) const ROLE_FORM_PREFIX: &str = "roleform:";
/// `formrole:{form}:{role}`.
pub(crate) const FORM_ROLE_PREFIX: &str = "formrole:";

pub(crate) fn table(name: &str) -> DomainResult<TableName> {
    TableName::new(name).map_err(|e| DomainError::internal(format!("table name {name}: {e}")))
}

pub(crate) fn scoped(
    store: &Arc<dyn TableStore>,
    name: &str,
    scope: &Scope,
) -> DomainResult<ScopedTable> {
    Ok(ScopedTable::new(store.clone(), table(name)?, scope))
}

/// Creates the given tables if they are missing.
pub(crate) async fn ensure(store: &Arc<dyn TableStore>, names: &[&str]) -> DomainResult<()> {
    for name in names {
        store.create_table_if_missing(&table(name)?).await?;
    }
    Ok(())
}

/// A row key built from already-escaped parts. Lengths are checked by the callers' field
/// validation, so a failure here is a bug, reported as internal.
pub(crate) fn row_key(key: String) -> DomainResult<RowKey> {
    RowKey::new(key).map_err(|e| DomainError::internal(format!("row key: {e}")))
}

/// Escapes one variable segment of a row key: `%`, `:`, the characters Azure forbids in keys
/// (`/ \ # ?`) and control characters become `%XX` (UTF-8 bytes). Injective, so two different
/// inputs never share a key.
pub(crate) fn key_part(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let escape = matches!(c, '%' | ':' | '/' | '\\' | '#' | '?')
            || c.is_control()
            || ('\u{7f}'..='\u{9f}').contains(&c);
        if escape {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Rows whose key starts with `prefix` (which must be non-empty): `prefix <= RowKey < next`,
/// where `next` is the prefix with its last character incremented.
pub(crate) fn prefix_filter(prefix: &str) -> Filter {
    let mut upper: Vec<char> = prefix.chars().collect();
    if let Some(last) = upper.pop() {
        let next = char::from_u32(last as u32 + 1).unwrap_or(char::MAX);
        upper.push(next);
    }
    let upper: String = upper.into_iter().collect();
    Column::RowKey.ge(prefix).and(Column::RowKey.lt(upper))
}

pub(crate) fn req_str(entity: &Entity, name: &str) -> DomainResult<String> {
    entity
        .get(name)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            DomainError::internal(format!(
                "stored row {} has no string property {name}",
                entity.row_key
            ))
        })
}

pub(crate) fn opt_str(entity: &Entity, name: &str) -> Option<String> {
    entity.get(name).and_then(|v| v.as_str()).map(str::to_owned)
}

pub(crate) fn bool_or(entity: &Entity, name: &str, default: bool) -> bool {
    entity
        .get(name)
        .and_then(|v| v.as_bool())
        .unwrap_or(default)
}

pub(crate) fn opt_time(entity: &Entity, name: &str) -> Option<OffsetDateTime> {
    entity.get(name).and_then(|v| v.as_datetime())
}

/// The row's `CreatedAt`, falling back to the store's timestamp for rows written by v1.
pub(crate) fn created_at(entity: &Entity) -> OffsetDateTime {
    opt_time(entity, "CreatedAt")
        .or(entity.timestamp)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn etag_of(entity: &Entity) -> DomainResult<bifrost_store::table::ETag> {
    entity
        .etag
        .clone()
        .ok_or_else(|| DomainError::internal(format!("stored row {} has no ETag", entity.row_key)))
}

/// The current time at the precision the table stores (100 ns), so a value returned by a
/// service equals the value read back later.
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 100).unwrap_or(t)
}

/// A trimmed, non-empty text of at most `max` characters, or `Invalid` naming `field`.
pub(crate) fn text(field: &str, raw: &str, max: usize) -> DomainResult<String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// Rows of `table` whose key starts with `prefix`; none when the table was never written.
pub(crate) async fn linked_rows(table: &ScopedTable, prefix: &str) -> DomainResult<Vec<Entity>> {
    match table
        .query_all(&Query::new().filter(prefix_filter(prefix)))
        .await
    {
        Ok(rows) => Ok(rows),
        // No assignment was ever written anywhere: nothing is linked.
        Err(StoreError::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes rows in batches; rows already gone (a concurrent unassign) are fine.
pub(crate) async fn delete_rows(table: &ScopedTable, keys: Vec<RowKey>) -> DomainResult<()> {
    for chunk in keys.chunks(MAX_BATCH_OPERATIONS) {
        let batch = chunk
            .iter()
            .fold(ScopedBatch::new(), |b, k| b.delete(k.clone(), IfMatch::Any));
        match table.batch(batch).await {
            Ok(_) => {}
            Err(StoreError::BatchFailed { source, .. })
                if matches!(*source, StoreError::NotFound { .. }) =>
            {
                for key in chunk {
                    match table.delete(key, &IfMatch::Any).await {
                        Ok(()) | Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Deletes every role assignment of `user` in `org` (the user left the org or was deleted).
/// Row-level, so that `users` can clean up without depending on `roles` (which depends on
/// `users` for membership checks); the caller audits the change that made it necessary.
pub(crate) async fn remove_user_assignments(
    store: &Arc<dyn TableStore>,
    org: &OrgId,
    user: &UserId,
) -> DomainResult<()> {
    let rel = scoped(store, RELATIONSHIPS_TABLE, &Scope::Org(org.clone()))?;
    let mut keys = Vec::new();
    for row in linked_rows(&rel, &format!("{USER_ROLE_PREFIX}{user}:")).await? {
        let role = req_str(&row, "RoleId")?;
        keys.push(row.row_key.clone());
        keys.push(row_key(format!("{ROLE_USER_PREFIX}{role}:{user}"))?);
    }
    delete_rows(&rel, keys).await
}

/// Which page of a listing to return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// 1..=1000; `None` means 1000.
    pub size: Option<u16>,
    /// The token returned with the previous page.
    pub continuation: Option<ContinuationToken>,
}

impl PageRequest {
    pub fn first(size: u16) -> Self {
        Self {
            size: Some(size),
            continuation: None,
        }
    }

    pub(crate) fn to_query(&self, filter: Filter) -> DomainResult<Query> {
        if let Some(size) = self.size
            && !(1..=MAX_PAGE_SIZE).contains(&size)
        {
            return Err(DomainError::invalid(
                "pageSize",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let mut query = Query::new()
            .filter(filter)
            .continuation(self.continuation.clone());
        query.page_size = self.size;
        Ok(query)
    }
}

/// One page of a listing. A page may be short (even empty) and still have a continuation: keep
/// asking until `continuation` is `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub continuation: Option<ContinuationToken>,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Accepts 1–64 characters of `[A-Za-z0-9_-]` (ids are UUIDs when we mint them).
            pub fn parse(value: &str) -> DomainResult<Self> {
                if value.is_empty() || value.len() > 64 {
                    return Err(DomainError::invalid($field, "must be 1 to 64 characters"));
                }
                if !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(DomainError::invalid(
                        $field,
                        "may contain only letters, digits, '-' and '_'",
                    ));
                }
                Ok(Self(value.to_owned()))
            }

            /// A fresh random id (UUID v4).
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> DomainResult<Self> {
                Self::parse(s)
            }
        }
    };
}

id_type!(
    /// A user's stable id; unlike v1 (where the id was the email) it survives an email change.
    UserId,
    "userId"
);
id_type!(
    /// A role's id, unique within its organization.
    RoleId,
    "roleId"
);
id_type!(
    /// A form's id (forms live in the workspace; the domain only links them to roles).
    FormId,
    "formId"
);

#[cfg(test)]
mod tests {
    use super::*;
    use bifrost_store::PartitionKey;

    fn entity(rk: &str) -> Entity {
        Entity::new(PartitionKey::new("p").unwrap(), RowKey::new(rk).unwrap())
    }

    #[test]
    fn key_parts_escape_separators_and_forbidden_characters() {
        assert_eq!(key_part("a.b@c+d-é"), "a.b@c+d-é");
        assert_eq!(key_part("a:b/c#d?e\\f%g"), "a%3Ab%2Fc%23d%3Fe%5Cf%25g");
        assert_eq!(key_part("a\u{85}b\tc"), "a%C2%85b%09c");
        // Escaped output is always a valid row key.
        assert!(RowKey::new(key_part("x/\u{0}#?\u{9f}")).is_ok());
        // `%` itself is escaped, so an escaped-looking input cannot collide with an escape.
        assert_ne!(key_part("%3A"), key_part(":"));
    }

    #[test]
    fn prefix_filters_select_exactly_the_prefix() {
        let f = prefix_filter("role:");
        assert!(f.matches(&entity("role:")));
        assert!(f.matches(&entity("role:abc")));
        assert!(!f.matches(&entity("role;")));
        assert!(!f.matches(&entity("rolename:x")));
        assert!(!f.matches(&entity("rol")));
    }

    #[test]
    fn ids_and_texts_are_validated_naming_the_field() {
        assert!(UserId::parse("6f1c2a5e-0000-4000-8000-000000000001").is_ok());
        for bad in ["", "a:b", "a b", &"x".repeat(65)] {
            let err = RoleId::parse(bad).unwrap_err();
            assert!(
                matches!(&err, DomainError::Invalid { field, .. } if field == "roleId"),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(text("name", "  Acme  ", 10).unwrap(), "Acme");
        for bad in ["", "   ", "a\nb", "elevenchars"] {
            let err = text("name", bad, 10).unwrap_err();
            assert!(matches!(&err, DomainError::Invalid { field, .. } if field == "name"));
        }
    }

    #[test]
    fn page_sizes_are_validated() {
        for bad in [0u16, 1001] {
            let err = PageRequest::first(bad)
                .to_query(prefix_filter("x:"))
                .unwrap_err();
            assert!(matches!(&err, DomainError::Invalid { field, .. } if field == "pageSize"));
        }
        assert_eq!(
            PageRequest::first(5)
                .to_query(prefix_filter("x:"))
                .unwrap()
                .page_size,
            Some(5)
        );
    }
}

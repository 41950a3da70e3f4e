//! Tenant scope: which client organization (or the platform itself) owns a row.
//!
//! Invariant: a tenant-owned partition key is only ever produced by [`Scope::partition_key`].
//! Repositories take a `Scope`, never a raw partition string, so an org id that arrives in a
//! request cannot be spliced into a key or a filter by accident.

use std::fmt;
use std::str::FromStr;

use crate::error::{StoreError, StoreResult};
use crate::keys::PartitionKey;

/// The partition name of platform-wide (non-tenant) data, as in Bifrost v1.
pub const GLOBAL_PARTITION: &str = "GLOBAL";

/// An organization id: 1–64 characters of `[A-Za-z0-9_-]` (v1 used UUIDs), never `GLOBAL`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrgId(String);

impl OrgId {
    pub fn parse(value: &str) -> StoreResult<Self> {
        if value.is_empty() || value.len() > 64 {
            return Err(StoreError::invalid("orgId", "must be 1 to 64 characters"));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(StoreError::invalid(
                "orgId",
                "may contain only letters, digits, '-' and '_'",
            ));
        }
        if value.eq_ignore_ascii_case(GLOBAL_PARTITION) {
            return Err(StoreError::invalid("orgId", "GLOBAL is reserved"));
        }
        Ok(Self(value.to_owned()))
    }

    /// A fresh random id (UUID v4, as v1 generated them).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for OrgId {
    type Err = StoreError;
    fn from_str(s: &str) -> StoreResult<Self> {
        Self::parse(s)
    }
}

/// Who owns a piece of data: the whole platform (`Global`) or one client organization.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Global,
    Org(OrgId),
}

impl Scope {
    /// The partition that holds this scope's rows in every tenant-partitioned table.
    pub fn partition_key(&self) -> PartitionKey {
        let raw = match self {
            Scope::Global => GLOBAL_PARTITION,
            Scope::Org(id) => id.as_str(),
        };
        // Both forms satisfy the key rules by construction (OrgId's alphabet is a subset).
        PartitionKey::trusted(raw)
    }

    pub fn org_id(&self) -> Option<&OrgId> {
        match self {
            Scope::Global => None,
            Scope::Org(id) => Some(id),
        }
    }

    /// Parses `GLOBAL` (any case) or an org id, as found in v1's `scope` fields.
    pub fn parse(value: &str) -> StoreResult<Self> {
        if value.eq_ignore_ascii_case(GLOBAL_PARTITION) {
            Ok(Scope::Global)
        } else {
            OrgId::parse(value).map(Scope::Org)
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str(GLOBAL_PARTITION),
            Scope::Org(id) => id.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids_cannot_smuggle_filter_syntax_or_key_characters() {
        for bad in [
            "",
            "a'b",
            "a b",
            "x' or PartitionKey ne '",
            "a/b",
            "global",
            "GLOBAL",
        ] {
            assert!(OrgId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn partition_keys() {
        assert_eq!(Scope::Global.partition_key().as_str(), "GLOBAL");
        let org = OrgId::parse("6f1c2a5e-0000-4000-8000-000000000001").unwrap();
        assert_eq!(
            Scope::Org(org.clone()).partition_key().as_str(),
            org.as_str()
        );
        assert_eq!(Scope::parse("global").unwrap(), Scope::Global);
    }
}

//! The one identity type every request resolves to, and the rule that picks the scope a request
//! acts in.
//!
//! Pure logic: no I/O, no HTTP. Invariants:
//! - only platform-wide principals (platform admins, GLOBAL-scoped function keys, the explicitly
//!   enabled local developer) may choose an organization with `X-Organization-Id`;
//! - an org-bound principal always acts in its own org; naming another one (or `GLOBAL`) is
//!   [`AuthError::CrossOrgDenied`], never a silent fallback;
//! - [`Principal::LocalDeveloper`] is produced only from [`LocalDevIdentity::Enabled`]; missing
//!   settings give [`Principal::Anonymous`] (v1 implied the bypass, bifrost-v1.md §3.1).

use bifrost_store::{OrgId, Scope};

use crate::auth::AuthError;
use crate::auth::keys::{KeyId, KeyPrincipal};

/// Whether unauthenticated requests act as the local developer. Only an explicit setting turns
/// it on; the default is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LocalDevIdentity {
    #[default]
    Disabled,
    Enabled,
}

/// Who a request acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// MSP staff with platform-wide rights.
    PlatformAdmin {
        user_id: String,
        email: String,
        name: String,
    },
    /// A customer user bound to one organization.
    OrgUser {
        user_id: String,
        email: String,
        name: String,
        org: OrgId,
    },
    /// A Bifrost function key; a GLOBAL key acts platform-wide, an org key in its org only.
    FunctionKey {
        key_id: KeyId,
        name: String,
        scope: Scope,
    },
    /// Unauthenticated calls on a developer machine, when explicitly enabled. Acts platform-wide.
    LocalDeveloper,
    /// No identity (public endpoints only).
    Anonymous,
}

impl Principal {
    /// The principal of a request that presented no credentials.
    pub fn unauthenticated(local_dev: LocalDevIdentity) -> Self {
        match local_dev {
            LocalDevIdentity::Enabled => Principal::LocalDeveloper,
            LocalDevIdentity::Disabled => Principal::Anonymous,
        }
    }

    /// Platform-wide rights: may act in any org and in GLOBAL.
    pub fn is_platform_admin(&self) -> bool {
        match self {
            Principal::PlatformAdmin { .. } | Principal::LocalDeveloper => true,
            Principal::FunctionKey { scope, .. } => *scope == Scope::Global,
            Principal::OrgUser { .. } | Principal::Anonymous => false,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Principal::Anonymous)
    }

    /// The scope used when no `X-Organization-Id` is sent (GLOBAL for anonymous callers, whose
    /// public endpoints run platform-wide as in v1).
    pub fn home_scope(&self) -> Scope {
        match self {
            Principal::OrgUser { org, .. } => Scope::Org(org.clone()),
            Principal::FunctionKey { scope, .. } => scope.clone(),
            Principal::PlatformAdmin { .. } | Principal::LocalDeveloper | Principal::Anonymous => {
                Scope::Global
            }
        }
    }

    /// The scope this request acts in, given the raw `X-Organization-Id` header value.
    ///
    /// Platform-wide principals get the requested scope (`GLOBAL` or an org; absent or blank =
    /// GLOBAL). Org-bound principals get their own org; asking for any other scope is
    /// [`AuthError::CrossOrgDenied`]. Anonymous callers may not send the header at all
    /// ([`AuthError::Unauthenticated`]). A value that is not `GLOBAL` or a valid org id is
    /// [`AuthError::InvalidOrgHeader`].
    pub fn effective_scope(&self, requested_org_header: Option<&str>) -> Result<Scope, AuthError> {
        let requested = match requested_org_header
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => None,
            Some(raw) => Some(Scope::parse(raw).map_err(|e| AuthError::InvalidOrgHeader {
                reason: match e {
                    bifrost_store::StoreError::Invalid { reason, .. } => reason,
                    other => other.to_string(),
                },
            })?),
        };
        match (self, requested) {
            (Principal::Anonymous, None) => Ok(Scope::Global),
            (Principal::Anonymous, Some(_)) => Err(AuthError::Unauthenticated),
            (p, None) => Ok(p.home_scope()),
            (p, Some(requested)) if p.is_platform_admin() => Ok(requested),
            (p, Some(requested)) => {
                let home = p.home_scope();
                if requested == home {
                    Ok(home)
                } else {
                    Err(AuthError::CrossOrgDenied { home, requested })
                }
            }
        }
    }

    /// The actor string the audit log records: `user:<id>`, `key:<id>`, `local-developer` or
    /// `anonymous`. Never contains a secret.
    pub fn audit_actor(&self) -> String {
        match self {
            Principal::PlatformAdmin { user_id, .. } | Principal::OrgUser { user_id, .. } => {
                format!("user:{user_id}")
            }
            Principal::FunctionKey { key_id, .. } => format!("key:{key_id}"),
            Principal::LocalDeveloper => "local-developer".to_owned(),
            Principal::Anonymous => "anonymous".to_owned(),
        }
    }
}

impl From<KeyPrincipal> for Principal {
    fn from(key: KeyPrincipal) -> Self {
        Principal::FunctionKey {
            key_id: key.key_id,
            name: key.name,
            scope: key.scope,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn org(id: &str) -> OrgId {
        OrgId::parse(id).unwrap()
    }

    fn key(scope: Scope) -> Principal {
        Principal::from(KeyPrincipal {
            key_id: KeyId::parse("0123456789abcdef").unwrap(),
            name: "ci".into(),
            scope,
            usage_recorded: false,
        })
    }

    fn admin() -> Principal {
        Principal::PlatformAdmin {
            user_id: "u1".into(),
            email: "a@msp.example".into(),
            name: "A".into(),
        }
    }

    fn org_user(o: &str) -> Principal {
        Principal::OrgUser {
            user_id: "u2".into(),
            email: "b@client.example".into(),
            name: "B".into(),
            org: org(o),
        }
    }

    #[derive(Debug)]
    enum Want {
        Scope(Scope),
        CrossOrg,
        Unauthenticated,
        BadHeader,
    }

    fn check(principal: &Principal, header: Option<&str>, want: Want) {
        let got = principal.effective_scope(header);
        let ok = match (&got, &want) {
            (Ok(s), Want::Scope(w)) => s == w,
            (Err(AuthError::CrossOrgDenied { home, requested }), Want::CrossOrg) => {
                *home == principal.home_scope()
                    && header.is_some_and(|h| Scope::parse(h).is_ok_and(|s| s == *requested))
            }
            (Err(AuthError::Unauthenticated), Want::Unauthenticated) => true,
            (Err(AuthError::InvalidOrgHeader { .. }), Want::BadHeader) => true,
            _ => false,
        };
        assert!(
            ok,
            "{principal:?} with {header:?}: got {got:?}, want {want:?}"
        );
    }

    #[test]
    fn effective_scope_matrix() {
        let a = || Scope::Org(org("orgA"));
        let b = || Scope::Org(org("orgB"));
        // Platform-wide principals choose freely; absent or blank means GLOBAL.
        for p in [admin(), key(Scope::Global), Principal::LocalDeveloper] {
            check(&p, None, Want::Scope(Scope::Global));
            check(&p, Some("  "), Want::Scope(Scope::Global));
            check(&p, Some("GLOBAL"), Want::Scope(Scope::Global));
            check(&p, Some("global"), Want::Scope(Scope::Global));
            check(&p, Some("orgA"), Want::Scope(a()));
            check(&p, Some(" orgB "), Want::Scope(b()));
            check(&p, Some("x' or 1 eq 1"), Want::BadHeader);
        }
        // Org-bound principals stay home.
        for p in [org_user("orgA"), key(a())] {
            check(&p, None, Want::Scope(a()));
            check(&p, Some("orgA"), Want::Scope(a()));
            check(&p, Some("orgB"), Want::CrossOrg);
            check(&p, Some("GLOBAL"), Want::CrossOrg);
            check(&p, Some("orgA/../orgB"), Want::BadHeader);
        }
        check(&Principal::Anonymous, None, Want::Scope(Scope::Global));
        check(&Principal::Anonymous, Some("orgA"), Want::Unauthenticated);
    }

    #[test]
    fn cross_org_error_names_both_scopes() {
        let err = org_user("orgA").effective_scope(Some("orgB")).unwrap_err();
        match err {
            AuthError::CrossOrgDenied { home, requested } => {
                assert_eq!(home, Scope::Org(org("orgA")));
                assert_eq!(requested, Scope::Org(org("orgB")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn admin_rights_and_home_scopes() {
        assert!(admin().is_platform_admin());
        assert!(key(Scope::Global).is_platform_admin());
        assert!(Principal::LocalDeveloper.is_platform_admin());
        assert!(!key(Scope::Org(org("orgA"))).is_platform_admin());
        assert!(!org_user("orgA").is_platform_admin());
        assert!(!Principal::Anonymous.is_platform_admin());
        assert_eq!(org_user("orgA").home_scope(), Scope::Org(org("orgA")));
        assert_eq!(admin().home_scope(), Scope::Global);
        assert!(!Principal::Anonymous.is_authenticated());
    }

    #[test]
    fn local_developer_only_when_enabled() {
        assert_eq!(
            Principal::unauthenticated(LocalDevIdentity::default()),
            Principal::Anonymous
        );
        assert_eq!(
            Principal::unauthenticated(LocalDevIdentity::Enabled),
            Principal::LocalDeveloper
        );
    }

    #[test]
    fn audit_actors_name_ids_only() {
        assert_eq!(admin().audit_actor(), "user:u1");
        assert_eq!(key(Scope::Global).audit_actor(), "key:0123456789abcdef");
        assert_eq!(Principal::LocalDeveloper.audit_actor(), "local-developer");
        assert_eq!(Principal::Anonymous.audit_actor(), "anonymous");
    }
}

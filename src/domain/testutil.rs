//! Test fixture for the domain services: real embedded backends (SQLite tables, the encrypted
//! local secret store) in a temporary folder, with every service wired to them.
//!
//! Test-only; depends on nothing outside the domain services and the two store crates.

use std::sync::Arc;

use bifrost_secrets::{LocalSecrets, SecretStore};
use bifrost_store::table::SqliteTables;
use bifrost_store::{OrgId, Scope, ScopedTable, TableStore};

use crate::audit::AuditLog;
use crate::domain::rows::{CONFIG_TABLE, RELATIONSHIPS_TABLE, RoleId, UserId, scoped};
use crate::domain::{
    Actor, ChangeLog, ConfigService, NewOrganization, NewRole, NewUser, OrgService, Organization,
    RoleService, User, UserService, UserType, Via, ensure_tables,
};

/// The author of changes made by tests.
pub(crate) fn tester() -> Actor {
    Actor::new("test:fixture", Via::Api)
}

pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub tables: Arc<dyn TableStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub orgs: OrgService,
    pub users: UserService,
    pub roles: RoleService,
    pub config: ConfigService,
    pub audit: Arc<AuditLog>,
}

impl Fixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tables: Arc<dyn TableStore> = Arc::new(SqliteTables::open(dir.path()).unwrap());
        let secrets: Arc<dyn SecretStore> =
            Arc::new(LocalSecrets::open(&dir.path().join("secrets"), None).unwrap());
        ensure_tables(&tables).await.unwrap();
        let audit = Arc::new(
            AuditLog::open(tables.clone(), secrets.clone())
                .await
                .unwrap(),
        );
        let changes = ChangeLog::new(audit.clone());
        Self {
            orgs: OrgService::new(tables.clone(), changes.clone()),
            users: UserService::new(tables.clone(), changes.clone()),
            roles: RoleService::new(tables.clone(), changes),
            config: ConfigService::new(tables.clone(), secrets.clone()),
            audit,
            tables,
            secrets,
            _dir: dir,
        }
    }

    pub async fn org(&self, name: &str, domain: Option<&str>) -> Organization {
        self.orgs
            .create(
                NewOrganization {
                    name: name.to_owned(),
                    domain: domain.map(str::to_owned),
                    is_active: true,
                    created_by: None,
                },
                &tester(),
            )
            .await
            .unwrap()
    }

    pub async fn org_user(&self, email: &str, org: &OrgId) -> User {
        self.users
            .create(
                NewUser {
                    email: email.to_owned(),
                    display_name: None,
                    user_type: UserType::OrgUser(org.clone()),
                    is_active: true,
                    entra_object_id: None,
                },
                &tester(),
            )
            .await
            .unwrap()
    }

    /// Creates a role in `org` and assigns `user` to it.
    pub async fn roles_assign(&self, org: &OrgId, user: &UserId) -> RoleId {
        let role = self
            .roles
            .create(
                org,
                NewRole {
                    name: format!("role for {user}"),
                    ..Default::default()
                },
                &tester(),
            )
            .await
            .unwrap();
        self.roles
            .assign_users(org, &role.id, std::slice::from_ref(user), &tester())
            .await
            .unwrap();
        role.id
    }

    pub async fn roles_of(&self, org: &OrgId, user: &UserId) -> usize {
        self.roles.roles_of_user(org, user).await.unwrap().len()
    }

    pub fn relationships(&self, scope: &Scope) -> ScopedTable {
        scoped(&self.tables, RELATIONSHIPS_TABLE, scope).unwrap()
    }

    pub fn config_table(&self, scope: &Scope) -> ScopedTable {
        scoped(&self.tables, CONFIG_TABLE, scope).unwrap()
    }
}

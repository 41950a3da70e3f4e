//! Users: CRUD, lookup by email and by Entra object id, and the login provisioning rule.
//!
//! Depends on the table contract, [`OrgService`] (domain lookup), the row-level
//! role-assignment cleanup of `rows.rs` (not `roles.rs`, which depends on this module for
//! membership checks) and the change log (every write is audited first, [`crate::domain::changes`]). Layout (table `Entities`, partition `GLOBAL`):
//! - `user:{id}` — `Email`, `DisplayName`, `UserType` (`PLATFORM`/`ORG`), `IsPlatformAdmin`,
//!   `OrgId` (org users), `IsActive`, `EntraUserId`, `CreatedAt`, `UpdatedAt`, `LastLogin`;
//! - `useremail:{email}` and `userentra:{oid}` — `UserId`: unique indexes, written in the same
//!   atomic batch as the user row;
//! - `bootstrap:firstuser` — the first-admin marker, present once any user exists.
//!
//! v1 keyed users by email (`user:{email}`), so an email change orphaned the user's history and
//! roles; here the key is a stable id and email is an index. v1 kept org membership in separate
//! `userperm:` rows; here it is a column of the user row, so it changes atomically with the type.
//!
//! Invariants: emails are stored lower-cased; no two users share an email or an Entra object
//! id; a platform admin has no org and an org user has exactly one ([`UserType`]); at most one
//! login ever becomes platform admin by the first-login rule, however many race — the claim is an
//! insert of the marker row in the same batch as the new admin's rows.

use std::sync::Arc;

use bifrost_store::table::{
    ETag, Entity, IfMatch, Properties, Query, ScopedBatch, Value, WriteMode, prop,
};
use bifrost_store::{OrgId, RowKey, Scope, ScopedTable, StoreError, TableStore};
use time::OffsetDateTime;

use crate::domain::changes::{Actor, Change, ChangeLog, Via};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::orgs::{OrgService, normalize_domain};
use crate::domain::rows::{
    ENTITIES_TABLE, FIRST_USER_MARKER, PageRequest, Paged, USER_EMAIL_PREFIX, USER_ENTRA_PREFIX,
    USER_PREFIX, USERS_REVISION_ROW, UserId, bool_or, created_at, ensure, etag_of, key_part, now,
    opt_str, opt_time, prefix_filter, remove_user_assignments, req_str, row_key, scoped, text,
};
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 200;

/// What a user is: MSP staff with full rights, or a customer user of exactly one organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserType {
    PlatformAdmin,
    OrgUser(OrgId),
}

impl UserType {
    pub fn org_id(&self) -> Option<&OrgId> {
        match self {
            UserType::PlatformAdmin => None,
            UserType::OrgUser(org) => Some(org),
        }
    }

    pub fn is_platform_admin(&self) -> bool {
        matches!(self, UserType::PlatformAdmin)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    /// Lower-cased.
    pub email: String,
    pub display_name: String,
    pub user_type: UserType,
    pub is_active: bool,
    pub entra_object_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_login: Option<OffsetDateTime>,
    pub etag: ETag,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewUser {
    pub email: String,
    /// Defaults to the email's local part.
    pub display_name: Option<String>,
    pub user_type: UserType,
    pub is_active: bool,
    pub entra_object_id: Option<String>,
}

/// Fields to change; `None` leaves a field as it is. Changing `user_type` moves the user between
/// platform admin and an org (role assignments in the old org are removed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub user_type: Option<UserType>,
    pub is_active: Option<bool>,
}

/// The kind of user a listing is restricted to (v1's `?type=platform|org`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKind {
    Platform,
    Org,
}

/// Listing filter; `org_id` implies org users.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserFilter {
    pub kind: Option<UserKind>,
    pub org_id: Option<OrgId>,
}

/// Who just signed in, as the identity provider says.
#[derive(Clone, Debug, PartialEq)]
pub struct LoginIdentity {
    /// Entra ID object id (`oid`); stable across email changes.
    pub entra_object_id: Option<String>,
    pub email: String,
    pub display_name: Option<String>,
}

/// The result of [`UserService::provision_on_login`]. `NoAccess` is an answer, not an error.
#[derive(Clone, Debug, PartialEq)]
pub enum ProvisionOutcome {
    /// A known user (login recorded; email updated if the Entra id matched a changed email).
    Existing(User),
    /// The first login ever: created as platform admin.
    FirstPlatformAdmin(User),
    /// A new user whose email domain matched an active organization.
    JoinedOrg(User),
    NoAccess(NoAccessReason),
}

impl ProvisionOutcome {
    pub fn user(&self) -> Option<&User> {
        match self {
            ProvisionOutcome::Existing(u)
            | ProvisionOutcome::FirstPlatformAdmin(u)
            | ProvisionOutcome::JoinedOrg(u) => Some(u),
            ProvisionOutcome::NoAccess(_) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoAccessReason {
    /// Unknown user and no organization claims the email's domain.
    NoMatchingOrganization,
    /// The user's (or the matching) organization is deactivated or gone.
    OrganizationInactive,
    /// The user is deactivated.
    UserInactive,
    /// The email belongs to a user linked to a different Entra object id. Refused rather than
    /// re-linked, so a recycled email address cannot take over someone else's account.
    IdentityMismatch,
}

/// Lower-cases and checks an email address: `local@domain`, local part 1–64 characters without
/// whitespace or control characters, domain as in [`normalize_domain`], 254 characters at most.
pub fn normalize_email(field: &str, raw: &str) -> DomainResult<String> {
    let email = raw.trim().to_lowercase();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(DomainError::invalid(
            field,
            "must be an email address (name@domain)",
        ));
    };
    if local.is_empty() || local.chars().count() > 64 {
        return Err(DomainError::invalid(
            field,
            "the part before '@' must be 1 to 64 characters",
        ));
    }
    if local
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '@')
    {
        return Err(DomainError::invalid(
            field,
            "must contain exactly one '@' and no spaces or control characters",
        ));
    }
    if domain.ends_with('.') || domain.starts_with('@') {
        return Err(DomainError::invalid(field, "has an invalid domain part"));
    }
    let domain = normalize_domain(field, domain)?;
    let email = format!("{local}@{domain}");
    if email.chars().count() > 254 {
        return Err(DomainError::invalid(
            field,
            "must be at most 254 characters",
        ));
    }
    Ok(email)
}

fn normalize_entra_id(raw: &str) -> DomainResult<String> {
    let field = "entraObjectId";
    let oid = raw.trim().to_ascii_lowercase();
    if oid.is_empty() || oid.chars().count() > 128 {
        return Err(DomainError::invalid(field, "must be 1 to 128 characters"));
    }
    if oid.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::invalid(
            field,
            "must not contain spaces or control characters",
        ));
    }
    Ok(oid)
}

fn email_domain(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
}

fn email_local(email: &str) -> &str {
    email.rsplit_once('@').map(|(l, _)| l).unwrap_or(email)
}

/// Why an insert of a new user's rows failed.
enum InsertError {
    FirstUserTaken,
    EmailTaken,
    EntraTaken,
    Other(DomainError),
}

impl crate::domain::changes::ChangeError for InsertError {
    fn kind(&self) -> &'static str {
        match self {
            InsertError::EmailTaken | InsertError::EntraTaken | InsertError::FirstUserTaken => {
                "conflict"
            }
            InsertError::Other(e) => e.kind(),
        }
    }
}

impl From<DomainError> for InsertError {
    fn from(e: DomainError) -> Self {
        InsertError::Other(e)
    }
}

/// Users over `Entities`/`GLOBAL`.
#[derive(Clone, Debug)]
pub struct UserService {
    store: Arc<dyn TableStore>,
    orgs: OrgService,
    changes: ChangeLog,
}

/// The audited fields of a user.
fn snapshot(user: &User) -> serde_json::Value {
    serde_json::json!({
        "email": user.email,
        "displayName": user.display_name,
        "userType": if user.user_type.is_platform_admin() { "PLATFORM" } else { "ORG" },
        "orgId": user.user_type.org_id().map(ToString::to_string),
        "isActive": user.is_active,
        "entraUserId": user.entra_object_id,
    })
}

fn change<'a>(
    by: &'a Actor,
    action: &'static str,
    before: Option<&User>,
    after: Option<&User>,
) -> Change<'a> {
    let user = after.or(before);
    Change {
        by,
        action,
        scope: user
            .and_then(|u| u.user_type.org_id())
            .map_or(Scope::Global, |org| Scope::Org(org.clone())),
        target: user.map(|u| u.id.to_string()).unwrap_or_default(),
        before: before.map(snapshot),
        after: after.map(snapshot),
    }
}

impl UserService {
    pub fn new(store: Arc<dyn TableStore>, changes: ChangeLog) -> Self {
        Self {
            orgs: OrgService::new(store.clone(), changes.clone()),
            store,
            changes,
        }
    }

    /// Inserts a new user after auditing it (see `insert_user` for the errors).
    async fn create_audited(
        &self,
        user: &User,
        claim_first_admin: bool,
        by: &Actor,
    ) -> Result<ETag, InsertError> {
        self.changes
            .apply(
                change(by, "user.create", None, Some(user)),
                self.insert_user(user, claim_first_admin),
            )
            .await
    }

    /// Creates `Entities` and `Relationships` (role cleanup) if missing.
    pub async fn ensure_tables(&self) -> DomainResult<()> {
        ensure(
            &self.store,
            &[ENTITIES_TABLE, crate::domain::rows::RELATIONSHIPS_TABLE],
        )
        .await
    }

    /// Creates a user (administrator action). `Conflict` if the email or Entra id is taken;
    /// `Invalid` (field `orgId`) if the org does not exist.
    pub async fn create(&self, new: NewUser, by: &Actor) -> DomainResult<User> {
        let email = normalize_email("email", &new.email)?;
        let display_name = match new.display_name.as_deref() {
            Some(name) => text("displayName", name, MAX_DISPLAY_NAME)?,
            None => email_local(&email).to_owned(),
        };
        let entra_object_id = new
            .entra_object_id
            .as_deref()
            .map(normalize_entra_id)
            .transpose()?;
        self.check_org_exists(&new.user_type).await?;
        let now = now();
        let user = User {
            id: UserId::generate(),
            email,
            display_name,
            user_type: new.user_type,
            is_active: new.is_active,
            entra_object_id,
            created_at: now,
            updated_at: now,
            last_login: None,
            etag: ETag::new(""),
        };
        match self.create_audited(&user, false, by).await {
            Ok(etag) => Ok(User { etag, ..user }),
            Err(InsertError::EmailTaken) => Err(email_taken(&user.email)),
            Err(InsertError::EntraTaken) => Err(entra_taken()),
            Err(InsertError::FirstUserTaken) => Err(DomainError::internal(
                "first-user marker conflict on an unconditional write",
            )),
            Err(InsertError::Other(e)) => Err(e),
        }
    }

    /// A value that changes whenever a user is updated or deleted (0 before the first change).
    /// Identity caches compare it to drop what they hold about users.
    pub async fn revision(&self) -> DomainResult<u64> {
        Ok(self
            .table()?
            .get(&RowKey::new(USERS_REVISION_ROW)?)
            .await?
            .and_then(|row| row.get("Rev").and_then(Value::as_i64))
            .map_or(0, |n| n as u64))
    }

    async fn bump_revision(&self) -> DomainResult<()> {
        let next = rand::random::<i64>();
        self.table()?
            .upsert(
                RowKey::new(USERS_REVISION_ROW)?,
                Properties::from([("Rev".to_owned(), Value::Int64(next))]),
                WriteMode::Replace,
            )
            .await?;
        Ok(())
    }

    /// The user, or `NotFound`.
    pub async fn get(&self, id: &UserId) -> DomainResult<User> {
        self.find(id)
            .await?
            .ok_or_else(|| DomainError::not_found(format!("user '{id}'")))
    }

    pub async fn find(&self, id: &UserId) -> DomainResult<Option<User>> {
        match self.table()?.get(&user_key(id)?).await? {
            Some(entity) => Ok(Some(from_entity(&entity)?)),
            None => Ok(None),
        }
    }

    /// The user with this email (case-insensitive; errors name `email`).
    pub async fn find_by_email(&self, email: &str) -> DomainResult<Option<User>> {
        let email = normalize_email("email", email)?;
        let user = self.find_indexed(&email_key(&email)?).await?;
        // The user row decides; an index left by an interrupted write is ignored.
        Ok(user.filter(|u| u.email == email))
    }

    /// The user linked to this Entra object id.
    pub async fn find_by_entra_id(&self, oid: &str) -> DomainResult<Option<User>> {
        let oid = normalize_entra_id(oid)?;
        let user = self.find_indexed(&entra_key(&oid)?).await?;
        Ok(user.filter(|u| u.entra_object_id.as_deref() == Some(oid.as_str())))
    }

    /// One page of users matching `filter`, ordered by id.
    pub async fn list(&self, filter: &UserFilter, page: &PageRequest) -> DomainResult<Paged<User>> {
        let mut f = prefix_filter(USER_PREFIX);
        let kind = match (&filter.org_id, filter.kind) {
            (Some(_), Some(UserKind::Platform)) => {
                return Err(DomainError::invalid(
                    "orgId",
                    "cannot be combined with type=platform",
                ));
            }
            (Some(_), _) => Some(UserKind::Org),
            (None, kind) => kind,
        };
        if let Some(kind) = kind {
            f = f.and(prop("UserType").eq(match kind {
                UserKind::Platform => "PLATFORM",
                UserKind::Org => "ORG",
            }));
        }
        if let Some(org) = &filter.org_id {
            f = f.and(prop("OrgId").eq(org.as_str()));
        }
        let result = self.table()?.query(&page.to_query(f)?).await?;
        Ok(Paged {
            items: result
                .entities
                .iter()
                .map(from_entity)
                .collect::<DomainResult<_>>()?,
            continuation: result.continuation,
        })
    }

    /// Applies `update` if the stored version still matches `if_match`.
    pub async fn update(
        &self,
        id: &UserId,
        update: UserUpdate,
        if_match: &IfMatch,
        by: &Actor,
    ) -> DomainResult<User> {
        let current = self.get(id).await?;
        check_if_match(&current.etag, if_match, id)?;
        let mut next = current.clone();
        if let Some(name) = &update.display_name {
            next.display_name = text("displayName", name, MAX_DISPLAY_NAME)?;
        }
        if let Some(email) = &update.email {
            next.email = normalize_email("email", email)?;
        }
        if let Some(user_type) = update.user_type {
            self.check_org_exists(&user_type).await?;
            next.user_type = user_type;
        }
        if let Some(active) = update.is_active {
            next.is_active = active;
        }
        let next = self
            .changes
            .apply(
                change(by, "user.update", Some(&current), Some(&next)),
                self.write_changes(&current, next.clone()),
            )
            .await?;
        self.bump_revision().await?;
        if let Some(old_org) = current.user_type.org_id()
            && next.user_type.org_id() != Some(old_org)
        {
            // Roles are per org: memberships of the org the user left must not linger.
            remove_user_assignments(&self.store, old_org, id).await?;
        }
        Ok(next)
    }

    /// Stamps `LastLogin` with the current time.
    pub async fn record_login(&self, id: &UserId) -> DomainResult<User> {
        let mut user = self.get(id).await?;
        let now = now();
        let props = Properties::from([("LastLogin".to_owned(), Value::from(now))]);
        // A merge touches LastLogin only, so it cannot undo a concurrent update; no ETag needed.
        user.etag = self
            .table()?
            .update(user_key(id)?, props, WriteMode::Merge, &IfMatch::Any)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => DomainError::not_found(format!("user '{id}'")),
                e => e.into(),
            })?;
        user.last_login = Some(now);
        Ok(user)
    }

    /// Deletes the user, its index rows and its role assignments.
    pub async fn delete(&self, id: &UserId, if_match: &IfMatch, by: &Actor) -> DomainResult<()> {
        let current = self.get(id).await?;
        check_if_match(&current.etag, if_match, id)?;
        let table = self.table()?;
        let mut batch =
            ScopedBatch::new().delete(user_key(id)?, IfMatch::ETag(current.etag.clone()));
        if let Some(etag) = self.index_etag(&email_key(&current.email)?, id).await? {
            batch = batch.delete(email_key(&current.email)?, IfMatch::ETag(etag));
        }
        if let Some(oid) = &current.entra_object_id
            && let Some(etag) = self.index_etag(&entra_key(oid)?, id).await?
        {
            batch = batch.delete(entra_key(oid)?, IfMatch::ETag(etag));
        }
        self.changes
            .apply(change(by, "user.delete", Some(&current), None), async {
                table
                    .batch(batch)
                    .await
                    .map_err(|e| user_write_error(e, id))
            })
            .await?;
        self.bump_revision().await?;
        if let Some(org) = current.user_type.org_id() {
            remove_user_assignments(&self.store, org, id).await?;
        }
        Ok(())
    }

    /// The login rule (v1 `shared/user_provisioning.py`, made race-safe):
    /// 1. a user linked to the identity's Entra object id is that user, even if the email
    ///    changed (the email is updated);
    /// 2. else a user with the email is that user (the Entra id is linked if it had none);
    /// 3. else the first login ever becomes platform admin;
    /// 4. else a user whose email domain an active organization claims joins it as org user;
    /// 5. else no access.
    ///
    /// Known users that are inactive, or whose organization is inactive, get `NoAccess`.
    pub async fn provision_on_login(
        &self,
        identity: &LoginIdentity,
    ) -> DomainResult<ProvisionOutcome> {
        let email = normalize_email("email", &identity.email)?;
        let oid = identity
            .entra_object_id
            .as_deref()
            .filter(|o| !o.trim().is_empty())
            .map(normalize_entra_id)
            .transpose()?;

        if let Some(oid) = &oid
            && let Some(user) = self.find_by_entra_id(oid).await?
        {
            let user = if user.email == email {
                user
            } else {
                let mut next = user.clone();
                next.email = email.clone();
                let by = Actor::new(format!("user:{}", user.id), Via::Login);
                self.changes
                    .apply(
                        change(&by, "user.update", Some(&user), Some(&next)),
                        self.write_changes(&user, next.clone()),
                    )
                    .await?
            };
            return self.finish_login(user).await;
        }

        if let Some(user) = self.find_by_email(&email).await? {
            return match (&oid, &user.entra_object_id) {
                (Some(new), Some(linked)) if new != linked => {
                    Ok(ProvisionOutcome::NoAccess(NoAccessReason::IdentityMismatch))
                }
                (Some(new), None) => {
                    let mut next = user.clone();
                    next.entra_object_id = Some(new.clone());
                    let by = Actor::new(format!("user:{}", user.id), Via::Login);
                    let linked = self
                        .changes
                        .apply(
                            change(&by, "user.update", Some(&user), Some(&next)),
                            self.write_changes(&user, next.clone()),
                        )
                        .await?;
                    self.finish_login(linked).await
                }
                _ => self.finish_login(user).await,
            };
        }

        // A display name the identity provider sends is not worth refusing a login over.
        let display_name = identity
            .display_name
            .as_deref()
            .and_then(|d| text("displayName", d, MAX_DISPLAY_NAME).ok())
            .unwrap_or_else(|| email_local(&email).to_owned());
        let now = now();
        let mut user = User {
            id: UserId::generate(),
            email: email.clone(),
            display_name,
            user_type: UserType::PlatformAdmin,
            is_active: true,
            entra_object_id: oid,
            created_at: now,
            updated_at: now,
            last_login: Some(now),
            etag: ETag::new(""),
        };

        let by = Actor::new(format!("user:{}", user.id), Via::Login);
        if !self.any_user_exists().await? {
            match self.create_audited(&user, true, &by).await {
                Ok(etag) => {
                    return Ok(ProvisionOutcome::FirstPlatformAdmin(User { etag, ..user }));
                }
                Err(InsertError::FirstUserTaken) => {}
                Err(InsertError::EmailTaken | InsertError::EntraTaken) => {
                    return self.login_after_race(&email).await;
                }
                Err(InsertError::Other(e)) => return Err(e),
            }
        }

        let Some(org) = self.orgs.find_by_domain(email_domain(&email)).await? else {
            return Ok(ProvisionOutcome::NoAccess(
                NoAccessReason::NoMatchingOrganization,
            ));
        };
        if !org.is_active {
            return Ok(ProvisionOutcome::NoAccess(
                NoAccessReason::OrganizationInactive,
            ));
        }
        user.user_type = UserType::OrgUser(org.id);
        match self.create_audited(&user, false, &by).await {
            Ok(etag) => Ok(ProvisionOutcome::JoinedOrg(User { etag, ..user })),
            Err(InsertError::EmailTaken | InsertError::EntraTaken) => {
                self.login_after_race(&email).await
            }
            Err(InsertError::FirstUserTaken) => Err(DomainError::internal(
                "first-user marker conflict on an unconditional write",
            )),
            Err(InsertError::Other(e)) => Err(e),
        }
    }

    /// A concurrent login of the same person created the user first: that user it is.
    async fn login_after_race(&self, email: &str) -> DomainResult<ProvisionOutcome> {
        match self.find_by_email(email).await? {
            Some(user) => self.finish_login(user).await,
            None => Err(DomainError::conflict(
                format!("user '{email}'"),
                "is being changed concurrently; try signing in again",
            )),
        }
    }

    async fn finish_login(&self, user: User) -> DomainResult<ProvisionOutcome> {
        if !user.is_active {
            return Ok(ProvisionOutcome::NoAccess(NoAccessReason::UserInactive));
        }
        if let Some(org) = user.user_type.org_id() {
            let active = self.orgs.find(org).await?.is_some_and(|o| o.is_active);
            if !active {
                return Ok(ProvisionOutcome::NoAccess(
                    NoAccessReason::OrganizationInactive,
                ));
            }
        }
        Ok(ProvisionOutcome::Existing(
            self.record_login(&user.id).await?,
        ))
    }

    /// Writes `next` over `current` (guarded by `current`'s ETag), moving the email and Entra
    /// index rows in the same batch when those change.
    async fn write_changes(&self, current: &User, mut next: User) -> DomainResult<User> {
        let id = &current.id;
        next.updated_at = now();
        let mut batch = ScopedBatch::new().update(
            user_key(id)?,
            to_props(&next),
            WriteMode::Replace,
            IfMatch::ETag(current.etag.clone()),
        );
        let mut email_at = None;
        let mut entra_at = None;
        if next.email != current.email {
            if let Some(etag) = self.index_etag(&email_key(&current.email)?, id).await? {
                batch = batch.delete(email_key(&current.email)?, IfMatch::ETag(etag));
            }
            email_at = Some(batch.len());
            batch = batch.insert(email_key(&next.email)?, index_props(id));
        }
        if next.entra_object_id != current.entra_object_id {
            if let Some(old) = &current.entra_object_id
                && let Some(etag) = self.index_etag(&entra_key(old)?, id).await?
            {
                batch = batch.delete(entra_key(old)?, IfMatch::ETag(etag));
            }
            if let Some(new) = &next.entra_object_id {
                entra_at = Some(batch.len());
                batch = batch.insert(entra_key(new)?, index_props(id));
            }
        }
        let etags = match self.table()?.batch(batch).await {
            Ok(etags) => etags,
            Err(StoreError::BatchFailed { index, source })
                if matches!(*source, StoreError::AlreadyExists { .. }) =>
            {
                return Err(if Some(index) == email_at {
                    email_taken(&next.email)
                } else if Some(index) == entra_at {
                    entra_taken()
                } else {
                    DomainError::from(*source)
                });
            }
            Err(e) => return Err(user_write_error(e, id)),
        };
        next.etag = etags
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| DomainError::internal("batch returned no ETag for the user row"))?;
        Ok(next)
    }

    /// Inserts a new user's row and index rows atomically. With `claim_first_admin` the batch
    /// also inserts the first-user marker, so it succeeds only for the very first user;
    /// otherwise it upserts the marker, so later first-login claims fail.
    async fn insert_user(&self, user: &User, claim_first_admin: bool) -> Result<ETag, InsertError> {
        let mut batch = ScopedBatch::new()
            .insert(user_key(&user.id)?, to_props(user))
            .insert(email_key(&user.email)?, index_props(&user.id));
        let mut entra_at = None;
        if let Some(oid) = &user.entra_object_id {
            entra_at = Some(batch.len());
            batch = batch.insert(entra_key(oid)?, index_props(&user.id));
        }
        let marker_at = batch.len();
        let marker = row_key(FIRST_USER_MARKER.to_owned())?;
        batch = if claim_first_admin {
            batch.insert(marker, index_props(&user.id))
        } else {
            batch.upsert(marker, Properties::new(), WriteMode::Merge)
        };
        match self.table()?.batch(batch).await {
            Ok(etags) => etags.into_iter().next().flatten().ok_or_else(|| {
                InsertError::Other(DomainError::internal(
                    "batch returned no ETag for the user row",
                ))
            }),
            Err(StoreError::BatchFailed { index, source })
                if matches!(*source, StoreError::AlreadyExists { .. }) =>
            {
                Err(if index == marker_at {
                    InsertError::FirstUserTaken
                } else if index == 1 {
                    InsertError::EmailTaken
                } else if Some(index) == entra_at {
                    InsertError::EntraTaken
                } else {
                    InsertError::Other(DomainError::from(*source))
                })
            }
            Err(e) => Err(InsertError::Other(e.into())),
        }
    }

    /// Whether any user row exists (covers data written before the marker existed).
    async fn any_user_exists(&self) -> DomainResult<bool> {
        let mut query = Query::new().filter(prefix_filter(USER_PREFIX)).page_size(1);
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

    async fn check_org_exists(&self, user_type: &UserType) -> DomainResult<()> {
        if let Some(org) = user_type.org_id()
            && self.orgs.find(org).await?.is_none()
        {
            return Err(DomainError::invalid(
                "orgId",
                format!("organization '{org}' does not exist"),
            ));
        }
        Ok(())
    }

    async fn find_indexed(&self, key: &RowKey) -> DomainResult<Option<User>> {
        let Some(index) = self.table()?.get(key).await? else {
            return Ok(None);
        };
        let id = UserId::parse(&req_str(&index, "UserId")?)
            .map_err(|e| DomainError::internal(format!("user index row {key}: {e}")))?;
        self.find(&id).await
    }

    /// The ETag of an index row if it exists and points at `id`.
    async fn index_etag(&self, key: &RowKey, id: &UserId) -> DomainResult<Option<ETag>> {
        match self.table()?.get(key).await? {
            Some(index) if opt_str(&index, "UserId").as_deref() == Some(id.as_str()) => {
                Ok(Some(etag_of(&index)?))
            }
            _ => Ok(None),
        }
    }

    fn table(&self) -> DomainResult<ScopedTable> {
        scoped(&self.store, ENTITIES_TABLE, &Scope::Global)
    }
}

fn user_key(id: &UserId) -> DomainResult<RowKey> {
    row_key(format!("{USER_PREFIX}{id}"))
}

fn email_key(email: &str) -> DomainResult<RowKey> {
    row_key(format!("{USER_EMAIL_PREFIX}{}", key_part(email)))
}

fn entra_key(oid: &str) -> DomainResult<RowKey> {
    row_key(format!("{USER_ENTRA_PREFIX}{}", key_part(oid)))
}

fn index_props(id: &UserId) -> Properties {
    Properties::from([("UserId".to_owned(), Value::from(id.as_str()))])
}

fn email_taken(email: &str) -> DomainError {
    DomainError::conflict(
        format!("email '{email}'"),
        "is already used by another user",
    )
}

fn entra_taken() -> DomainError {
    DomainError::conflict("entraObjectId", "is already linked to another user")
}

fn user_write_error(e: StoreError, id: &UserId) -> DomainError {
    match e {
        StoreError::BatchFailed { index: 0, source } => match *source {
            StoreError::PreconditionFailed { .. } => DomainError::PreconditionFailed {
                what: format!("user '{id}'"),
            },
            StoreError::NotFound { .. } => DomainError::not_found(format!("user '{id}'")),
            other => other.into(),
        },
        other => other.into(),
    }
}

fn check_if_match(current: &ETag, if_match: &IfMatch, id: &UserId) -> DomainResult<()> {
    match if_match {
        IfMatch::ETag(expected) if expected != current => Err(DomainError::PreconditionFailed {
            what: format!("user '{id}'"),
        }),
        _ => Ok(()),
    }
}

fn to_props(user: &User) -> Properties {
    let mut p = Properties::new();
    p.insert("Email".into(), Value::from(user.email.as_str()));
    p.insert(
        "DisplayName".into(),
        Value::from(user.display_name.as_str()),
    );
    match &user.user_type {
        UserType::PlatformAdmin => {
            p.insert("UserType".into(), Value::from("PLATFORM"));
            p.insert("IsPlatformAdmin".into(), Value::from(true));
        }
        UserType::OrgUser(org) => {
            p.insert("UserType".into(), Value::from("ORG"));
            p.insert("IsPlatformAdmin".into(), Value::from(false));
            p.insert("OrgId".into(), Value::from(org.as_str()));
        }
    }
    p.insert("IsActive".into(), Value::from(user.is_active));
    if let Some(oid) = &user.entra_object_id {
        p.insert("EntraUserId".into(), Value::from(oid.as_str()));
    }
    p.insert("CreatedAt".into(), Value::from(user.created_at));
    p.insert("UpdatedAt".into(), Value::from(user.updated_at));
    if let Some(at) = user.last_login {
        p.insert("LastLogin".into(), Value::from(at));
    }
    p
}

fn from_entity(entity: &Entity) -> DomainResult<User> {
    let raw_id = entity
        .row_key
        .as_str()
        .strip_prefix(USER_PREFIX)
        .unwrap_or_default();
    let id = UserId::parse(raw_id)
        .map_err(|e| DomainError::internal(format!("stored user row key: {e}")))?;
    let user_type = match opt_str(entity, "UserType").as_deref() {
        Some("ORG") => {
            let org = OrgId::parse(&req_str(entity, "OrgId")?)
                .map_err(|e| DomainError::internal(format!("user {id}: {e}")))?;
            UserType::OrgUser(org)
        }
        // A platform user without the admin flag has no defined rights; refuse to guess.
        Some("PLATFORM") if bool_or(entity, "IsPlatformAdmin", false) => UserType::PlatformAdmin,
        other => {
            return Err(DomainError::internal(format!(
                "user {id} has unsupported type {other:?}"
            )));
        }
    };
    Ok(User {
        id,
        email: req_str(entity, "Email")?,
        display_name: req_str(entity, "DisplayName")?,
        user_type,
        is_active: bool_or(entity, "IsActive", true),
        entra_object_id: opt_str(entity, "EntraUserId").filter(|o| !o.is_empty()),
        created_at: created_at(entity),
        updated_at: opt_time(entity, "UpdatedAt").unwrap_or_else(|| created_at(entity)),
        last_login: opt_time(entity, "LastLogin"),
        etag: etag_of(entity)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testutil::{Fixture, tester};

    fn field_of(err: &DomainError) -> &str {
        match err {
            DomainError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn login(oid: Option<&str>, email: &str) -> LoginIdentity {
        LoginIdentity {
            entra_object_id: oid.map(str::to_owned),
            email: email.to_owned(),
            display_name: Some(format!("Name of {email}")),
        }
    }

    fn admin(email: &str) -> NewUser {
        NewUser {
            email: email.to_owned(),
            display_name: None,
            user_type: UserType::PlatformAdmin,
            is_active: true,
            entra_object_id: None,
        }
    }

    #[test]
    fn emails_are_normalized_and_validated() {
        assert_eq!(
            normalize_email("email", " Jo.Smith+x@ACME.com ").unwrap(),
            "jo.smith+x@acme.com"
        );
        for bad in [
            "",
            "jo",
            "@acme.com",
            "jo@",
            "jo@acme",
            "j o@acme.com",
            "jo@@acme.com",
            "jo@acme.com.",
            &format!("{}@acme.com", "a".repeat(65)),
        ] {
            let err = normalize_email("email", bad).unwrap_err();
            assert_eq!(field_of(&err), "email", "{bad:?}");
        }
    }

    #[tokio::test]
    async fn create_get_find_and_validation() {
        let fx = Fixture::new().await;
        let org = fx.org("Acme", Some("acme.com")).await;
        let user = fx
            .users
            .create(
                NewUser {
                    email: "Jo@Acme.com".into(),
                    display_name: Some("Jo".into()),
                    user_type: UserType::OrgUser(org.id.clone()),
                    is_active: true,
                    entra_object_id: Some("OID-1".into()),
                },
                &tester(),
            )
            .await
            .unwrap();
        assert_eq!(user.email, "jo@acme.com");
        assert_eq!(user.entra_object_id.as_deref(), Some("oid-1"));
        assert_eq!(fx.users.get(&user.id).await.unwrap(), user);
        assert_eq!(
            fx.users
                .find_by_email("JO@acme.COM")
                .await
                .unwrap()
                .unwrap()
                .id,
            user.id
        );
        assert_eq!(
            fx.users
                .find_by_entra_id("oid-1")
                .await
                .unwrap()
                .unwrap()
                .id,
            user.id
        );
        assert!(
            fx.users
                .find_by_email("x@acme.com")
                .await
                .unwrap()
                .is_none()
        );
        assert!(fx.users.find_by_entra_id("oid-2").await.unwrap().is_none());
        let defaulted = fx
            .users
            .create(admin("boss@msp.example"), &tester())
            .await
            .unwrap();
        assert_eq!(defaulted.display_name, "boss");
        assert!(defaulted.user_type.is_platform_admin());

        let err = fx
            .users
            .create(admin("not-an-email"), &tester())
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "email");
        let err = fx
            .users
            .create(
                NewUser {
                    display_name: Some(" ".into()),
                    ..admin("a@b.example")
                },
                &tester(),
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "displayName");
        let err = fx
            .users
            .create(
                NewUser {
                    user_type: UserType::OrgUser(OrgId::generate()),
                    ..admin("a@b.example")
                },
                &tester(),
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "orgId");
        let missing = fx.users.get(&UserId::generate()).await.unwrap_err();
        assert!(matches!(missing, DomainError::NotFound { .. }));
    }

    #[tokio::test]
    async fn emails_and_entra_ids_are_unique() {
        let fx = Fixture::new().await;
        fx.users
            .create(
                NewUser {
                    entra_object_id: Some("oid-1".into()),
                    ..admin("a@msp.example")
                },
                &tester(),
            )
            .await
            .unwrap();
        let err = fx
            .users
            .create(admin("A@MSP.example"), &tester())
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("a@msp.example"), "{err}");
        let err = fx
            .users
            .create(
                NewUser {
                    entra_object_id: Some("OID-1".into()),
                    ..admin("b@msp.example")
                },
                &tester(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict { .. }), "{err}");
        // Neither failed create left rows behind.
        let all = fx
            .users
            .list(&UserFilter::default(), &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(all.items.len(), 1);
        assert!(
            fx.users
                .find_by_email("b@msp.example")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn list_filters_by_type_and_org_and_pages() {
        let fx = Fixture::new().await;
        let a = fx.org("A", Some("a.example")).await;
        let b = fx.org("B", Some("b.example")).await;
        fx.users
            .create(admin("root@msp.example"), &tester())
            .await
            .unwrap();
        for i in 0..3 {
            fx.org_user(&format!("u{i}@a.example"), &a.id).await;
        }
        let in_b = fx.org_user("u@b.example", &b.id).await;
        let list = |filter: UserFilter| {
            let users = fx.users.clone();
            async move {
                users
                    .list(&filter, &PageRequest::default())
                    .await
                    .unwrap()
                    .items
            }
        };
        assert_eq!(list(UserFilter::default()).await.len(), 5);
        let platform = list(UserFilter {
            kind: Some(UserKind::Platform),
            org_id: None,
        })
        .await;
        assert_eq!(platform.len(), 1);
        assert!(platform[0].user_type.is_platform_admin());
        assert_eq!(
            list(UserFilter {
                kind: Some(UserKind::Org),
                org_id: None
            })
            .await
            .len(),
            4
        );
        let of_b = list(UserFilter {
            kind: None,
            org_id: Some(b.id.clone()),
        })
        .await;
        assert_eq!(of_b.iter().map(|u| &u.id).collect::<Vec<_>>(), [&in_b.id]);
        let err = fx
            .users
            .list(
                &UserFilter {
                    kind: Some(UserKind::Platform),
                    org_id: Some(a.id.clone()),
                },
                &PageRequest::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "orgId");

        let mut page = PageRequest::first(2);
        let mut seen = 0;
        loop {
            let result = fx.users.list(&UserFilter::default(), &page).await.unwrap();
            assert!(result.items.len() <= 2);
            seen += result.items.len();
            match result.continuation {
                Some(t) => page.continuation = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, 5);
    }

    #[tokio::test]
    async fn update_changes_fields_and_moves_the_email_index() {
        let fx = Fixture::new().await;
        let a = fx.org("A", Some("a.example")).await;
        let user = fx.org_user("jo@a.example", &a.id).await;
        let updated = fx
            .users
            .update(
                &user.id,
                UserUpdate {
                    display_name: Some("Jo Smith".into()),
                    email: Some("JO.SMITH@a.example".into()),
                    is_active: Some(false),
                    ..Default::default()
                },
                &IfMatch::from(&user.etag),
                &tester(),
            )
            .await
            .unwrap();
        assert_eq!(updated.id, user.id);
        assert_eq!(updated.email, "jo.smith@a.example");
        assert_eq!(updated.display_name, "Jo Smith");
        assert!(!updated.is_active);
        assert!(
            fx.users
                .find_by_email("jo@a.example")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            fx.users
                .find_by_email("jo.smith@a.example")
                .await
                .unwrap()
                .unwrap()
                .id,
            user.id
        );
        // The old email is free for someone else.
        fx.org_user("jo@a.example", &a.id).await;

        // Stale ETag loses; the stored row is unchanged.
        let err = fx
            .users
            .update(
                &user.id,
                UserUpdate {
                    display_name: Some("Other".into()),
                    ..Default::default()
                },
                &IfMatch::from(&user.etag),
                &tester(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, DomainError::PreconditionFailed { .. }),
            "{err}"
        );
        assert_eq!(
            fx.users.get(&user.id).await.unwrap().display_name,
            "Jo Smith"
        );

        // Taking another user's email is a conflict.
        let err = fx
            .users
            .update(
                &user.id,
                UserUpdate {
                    email: Some("jo@a.example".into()),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict { .. }), "{err}");

        // Promotion to platform admin drops the org membership.
        let promoted = fx
            .users
            .update(
                &user.id,
                UserUpdate {
                    user_type: Some(UserType::PlatformAdmin),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap();
        assert_eq!(promoted.user_type, UserType::PlatformAdmin);
        let stored = fx.users.get(&user.id).await.unwrap();
        assert_eq!(stored.user_type, UserType::PlatformAdmin);
        let err = fx
            .users
            .update(
                &user.id,
                UserUpdate {
                    user_type: Some(UserType::OrgUser(OrgId::generate())),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "orgId");
    }

    #[tokio::test]
    async fn record_login_and_delete() {
        let fx = Fixture::new().await;
        let user = fx
            .users
            .create(
                NewUser {
                    entra_object_id: Some("oid-9".into()),
                    ..admin("a@msp.example")
                },
                &tester(),
            )
            .await
            .unwrap();
        assert_eq!(user.last_login, None);
        let logged = fx.users.record_login(&user.id).await.unwrap();
        assert!(logged.last_login.is_some());
        assert!(fx.users.get(&user.id).await.unwrap().last_login.is_some());
        let err = fx
            .users
            .delete(&user.id, &IfMatch::from(&user.etag), &tester())
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::PreconditionFailed { .. }));
        fx.users
            .delete(&user.id, &IfMatch::Any, &tester())
            .await
            .unwrap();
        assert!(fx.users.find(&user.id).await.unwrap().is_none());
        assert!(
            fx.users
                .find_by_email("a@msp.example")
                .await
                .unwrap()
                .is_none()
        );
        assert!(fx.users.find_by_entra_id("oid-9").await.unwrap().is_none());
        // Email and Entra id are free again.
        fx.users
            .create(
                NewUser {
                    entra_object_id: Some("oid-9".into()),
                    ..admin("a@msp.example")
                },
                &tester(),
            )
            .await
            .unwrap();
        let err = fx
            .users
            .record_login(&UserId::generate())
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::NotFound { .. }));
    }

    #[tokio::test]
    async fn first_login_becomes_platform_admin_then_domain_join() {
        let fx = Fixture::new().await;
        let acme = fx.org("Acme", Some("acme.com")).await;
        let first = fx
            .users
            .provision_on_login(&login(Some("oid-admin"), "Boss@MSP.example"))
            .await
            .unwrap();
        let ProvisionOutcome::FirstPlatformAdmin(admin_user) = &first else {
            panic!("{first:?}");
        };
        assert_eq!(admin_user.email, "boss@msp.example");
        assert_eq!(admin_user.display_name, "Name of Boss@MSP.example");
        assert!(admin_user.user_type.is_platform_admin());

        // Same person again: existing, login recorded.
        let again = fx
            .users
            .provision_on_login(&login(Some("oid-admin"), "boss@msp.example"))
            .await
            .unwrap();
        assert!(
            matches!(&again, ProvisionOutcome::Existing(u) if u.id == admin_user.id && u.last_login.is_some()),
            "{again:?}"
        );

        let joined = fx
            .users
            .provision_on_login(&login(Some("oid-jo"), "jo@ACME.com"))
            .await
            .unwrap();
        let ProvisionOutcome::JoinedOrg(jo) = &joined else {
            panic!("{joined:?}");
        };
        assert_eq!(jo.user_type, UserType::OrgUser(acme.id.clone()));
        assert_eq!(fx.users.get(&jo.id).await.unwrap().email, "jo@acme.com");

        let stranger = fx
            .users
            .provision_on_login(&login(Some("oid-x"), "x@unknown.example"))
            .await
            .unwrap();
        assert_eq!(
            stranger,
            ProvisionOutcome::NoAccess(NoAccessReason::NoMatchingOrganization)
        );
        assert!(
            fx.users
                .find_by_email("x@unknown.example")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn concurrent_first_logins_make_exactly_one_admin() {
        for _ in 0..5 {
            let fx = Fixture::new().await;
            let tasks: Vec<_> = (0..4)
                .map(|i| {
                    let users = fx.users.clone();
                    tokio::spawn(async move {
                        users
                            .provision_on_login(&login(
                                Some(&format!("oid-{i}")),
                                &format!("user{i}@msp.example"),
                            ))
                            .await
                    })
                })
                .collect();
            let mut admins = 0;
            let mut refused = 0;
            for t in tasks {
                match t.await.unwrap().unwrap() {
                    ProvisionOutcome::FirstPlatformAdmin(_) => admins += 1,
                    ProvisionOutcome::NoAccess(NoAccessReason::NoMatchingOrganization) => {
                        refused += 1
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!((admins, refused), (1, 3));
            let platform = fx
                .users
                .list(
                    &UserFilter {
                        kind: Some(UserKind::Platform),
                        org_id: None,
                    },
                    &PageRequest::default(),
                )
                .await
                .unwrap();
            assert_eq!(platform.items.len(), 1);
        }
    }

    #[tokio::test]
    async fn concurrent_logins_of_one_new_person_create_one_user() {
        let fx = Fixture::new().await;
        fx.users
            .create(admin("root@msp.example"), &tester())
            .await
            .unwrap();
        fx.org("Acme", Some("acme.com")).await;
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let users = fx.users.clone();
                tokio::spawn(async move {
                    users
                        .provision_on_login(&login(Some("oid-jo"), "jo@acme.com"))
                        .await
                })
            })
            .collect();
        let mut ids = Vec::new();
        for t in tasks {
            let outcome = t.await.unwrap().unwrap();
            ids.push(outcome.user().unwrap().id.clone());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
    }

    #[tokio::test]
    async fn users_created_by_an_admin_block_the_first_login_rule() {
        let fx = Fixture::new().await;
        fx.users
            .create(admin("root@msp.example"), &tester())
            .await
            .unwrap();
        let outcome = fx
            .users
            .provision_on_login(&login(None, "someone@msp.example"))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ProvisionOutcome::NoAccess(NoAccessReason::NoMatchingOrganization)
        );
    }

    #[tokio::test]
    async fn email_change_on_a_known_entra_id_keeps_the_user() {
        let fx = Fixture::new().await;
        let acme = fx.org("Acme", Some("acme.com")).await;
        fx.users
            .create(admin("root@msp.example"), &tester())
            .await
            .unwrap();
        let ProvisionOutcome::JoinedOrg(jo) = fx
            .users
            .provision_on_login(&login(Some("oid-jo"), "jo@acme.com"))
            .await
            .unwrap()
        else {
            panic!("expected a join");
        };
        fx.roles_assign(&acme.id, &jo.id).await;

        let outcome = fx
            .users
            .provision_on_login(&login(Some("OID-JO"), "joanna@acme.com"))
            .await
            .unwrap();
        let ProvisionOutcome::Existing(same) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(same.id, jo.id);
        assert_eq!(same.email, "joanna@acme.com");
        assert!(
            fx.users
                .find_by_email("jo@acme.com")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            fx.users
                .find_by_email("joanna@acme.com")
                .await
                .unwrap()
                .unwrap()
                .id,
            jo.id
        );
        // Role assignments follow the id, so they survive the email change.
        assert_eq!(fx.roles_of(&acme.id, &jo.id).await, 1);
    }

    #[tokio::test]
    async fn email_match_links_entra_id_but_refuses_a_different_one() {
        let fx = Fixture::new().await;
        let user = fx
            .users
            .create(admin("root@msp.example"), &tester())
            .await
            .unwrap();
        let outcome = fx
            .users
            .provision_on_login(&login(Some("oid-root"), "root@msp.example"))
            .await
            .unwrap();
        assert!(matches!(&outcome, ProvisionOutcome::Existing(u) if u.id == user.id));
        assert_eq!(
            fx.users
                .find_by_entra_id("oid-root")
                .await
                .unwrap()
                .unwrap()
                .id,
            user.id
        );
        let outcome = fx
            .users
            .provision_on_login(&login(Some("oid-other"), "root@msp.example"))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ProvisionOutcome::NoAccess(NoAccessReason::IdentityMismatch)
        );
    }

    #[tokio::test]
    async fn inactive_users_and_orgs_get_no_access() {
        let fx = Fixture::new().await;
        fx.users
            .create(admin("root@msp.example"), &tester())
            .await
            .unwrap();
        let acme = fx.org("Acme", Some("acme.com")).await;
        let jo = fx.org_user("jo@acme.com", &acme.id).await;
        fx.users
            .update(
                &jo.id,
                UserUpdate {
                    is_active: Some(false),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap();
        let outcome = fx
            .users
            .provision_on_login(&login(None, "jo@acme.com"))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ProvisionOutcome::NoAccess(NoAccessReason::UserInactive)
        );

        fx.orgs
            .update(
                &acme.id,
                crate::domain::orgs::OrganizationUpdate {
                    is_active: Some(false),
                    ..Default::default()
                },
                &IfMatch::Any,
                &tester(),
            )
            .await
            .unwrap();
        for email in ["new@acme.com"] {
            let outcome = fx
                .users
                .provision_on_login(&login(None, email))
                .await
                .unwrap();
            assert_eq!(
                outcome,
                ProvisionOutcome::NoAccess(NoAccessReason::OrganizationInactive)
            );
        }
        let kim = fx.org_user("kim@acme.com", &acme.id).await;
        let outcome = fx
            .users
            .provision_on_login(&login(None, &kim.email))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ProvisionOutcome::NoAccess(NoAccessReason::OrganizationInactive)
        );
        let err = fx
            .users
            .provision_on_login(&login(None, "bad email"))
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "email");
    }
}

//! Who may open a form, and how (the route table cannot know a form's `accessLevel`, so the
//! form routes are public and these rules decide):
//! - managers — platform administrators (all forms), function keys (forms of their scope and
//!   GLOBAL) — see inactive forms and may call any data provider through any form;
//! - everybody else, in this order: an inactive form is "not found"; `public` admits anyone;
//!   any other level needs a signed-in caller, and a form of another organization is "not
//!   found"; `authenticated` then admits the caller, `role_based` only org users holding an
//!   active role the form is assigned to.
//! - The scope a form's runs, provider calls, caches and uploads act in is the form's
//!   organization, or for a GLOBAL form the caller's own scope (anonymous: GLOBAL).
//!
//! Depends on the form store, the role service and the principal; not on HTTP.

use std::collections::HashSet;
use std::sync::Arc;

use bifrost_store::{OrgId, Scope};

use super::error::FormError;
use super::model::{AccessLevel, Form};
use super::store::{FormStore, StoredForm};
use crate::auth::Principal;
use crate::domain::{FormId, RoleService, UserId};
use crate::executions::RunContext;

/// A form the caller may use, and how.
pub struct OpenedForm {
    pub principal: Principal,
    pub stored: Arc<StoredForm>,
    /// The scope this form's runs, provider calls, caches and uploads act in.
    pub run_scope: Scope,
    /// Sees inactive forms and may call any provider.
    pub manager: bool,
}

impl OpenedForm {
    pub fn form(&self) -> &Form {
        &self.stored.form
    }

    /// Shows failures in full (exception type and message).
    pub fn is_admin(&self) -> bool {
        self.principal.is_platform_admin()
    }

    /// The context the form's runs and provider calls have.
    pub fn run_context(&self) -> RunContext {
        RunContext::of_principal(&self.principal, self.run_scope.clone())
    }
}

/// Platform administrators and function keys manage forms (see the module documentation).
pub fn is_manager(principal: &Principal) -> bool {
    principal.is_platform_admin() || matches!(principal, Principal::FunctionKey { .. })
}

/// Loads form `id` for `principal` (acting in `request_scope`) under the module's rules.
pub async fn open(
    forms: &FormStore,
    roles: &RoleService,
    principal: Principal,
    request_scope: &Scope,
    id: &str,
) -> Result<OpenedForm, FormError> {
    let not_found = || FormError::NotFound(format!("form '{id}' not found"));
    let stored = forms.get(id).await?.ok_or_else(not_found)?;
    let form = &stored.form;
    let platform = principal.is_platform_admin();
    let (home, key) = match &principal {
        Principal::OrgUser { org, .. } => (Some(org), false),
        Principal::FunctionKey {
            scope: Scope::Org(org),
            ..
        } => (Some(org), true),
        Principal::FunctionKey { .. } => (None, true),
        _ => (None, false),
    };
    let in_reach = platform
        || match &stored.scope {
            Scope::Global => true,
            Scope::Org(org) => home == Some(org),
        };
    let manager = platform || (key && in_reach);
    if !manager {
        if !form.is_active {
            return Err(not_found());
        }
        if form.access_level != AccessLevel::Public {
            if !principal.is_authenticated() {
                return Err(FormError::SignInRequired(
                    "sign in to open this form".into(),
                ));
            }
            if !in_reach {
                return Err(not_found());
            }
        }
        if form.access_level == AccessLevel::RoleBased {
            let granted = match &principal {
                Principal::OrgUser { org, user_id, .. } => {
                    has_form_role(roles, org, user_id, &form.id).await?
                }
                _ => false,
            };
            if !granted {
                return Err(FormError::Forbidden(
                    "none of your roles grants this form".into(),
                ));
            }
        }
    }
    let run_scope = match &stored.scope {
        Scope::Org(org) => Scope::Org(org.clone()),
        Scope::Global => request_scope.clone(),
    };
    Ok(OpenedForm {
        principal,
        stored,
        run_scope,
        manager,
    })
}

/// The forms of `scope` (and GLOBAL) that `principal` may open: all of them for managers,
/// otherwise the active ones its access level (and, `role_based`, its roles) grant.
pub async fn visible(
    forms: &FormStore,
    roles: &RoleService,
    principal: &Principal,
    scope: &Scope,
) -> Result<Vec<Form>, FormError> {
    let forms = forms.list(scope).await?;
    if is_manager(principal) {
        return Ok(forms.iter().map(|f| f.form.clone()).collect());
    }
    let granted = match principal {
        Principal::OrgUser { org, user_id, .. } => granted_forms(roles, org, user_id).await?,
        _ => HashSet::new(),
    };
    Ok(forms
        .iter()
        .map(|f| &f.form)
        .filter(|f| {
            f.is_active
                && match f.access_level {
                    AccessLevel::Public | AccessLevel::Authenticated => true,
                    AccessLevel::RoleBased => granted.contains(&f.id),
                }
        })
        .cloned()
        .collect())
}

/// Whether one of the user's active roles in `org` is assigned to the form.
async fn has_form_role(
    roles: &RoleService,
    org: &OrgId,
    user_id: &str,
    form_id: &str,
) -> Result<bool, FormError> {
    let (Ok(user), Ok(form)) = (UserId::parse(user_id), FormId::parse(form_id)) else {
        return Ok(false);
    };
    let mine: HashSet<String> = roles
        .roles_of_user(org, &user)
        .await?
        .into_iter()
        .filter(|r| r.is_active)
        .map(|r| r.id.to_string())
        .collect();
    if mine.is_empty() {
        return Ok(false);
    }
    Ok(roles
        .roles_of_form(org, &form)
        .await?
        .iter()
        .any(|r| mine.contains(r.id.as_str())))
}

/// The ids of the forms the user's active roles in `org` grant.
async fn granted_forms(
    roles: &RoleService,
    org: &OrgId,
    user_id: &str,
) -> Result<HashSet<String>, FormError> {
    let Ok(user) = UserId::parse(user_id) else {
        return Ok(HashSet::new());
    };
    let mut granted = HashSet::new();
    for role in roles.roles_of_user(org, &user).await? {
        if role.is_active {
            for form in roles.forms_of_role(org, &role.id).await? {
                granted.insert(form.to_string());
            }
        }
    }
    Ok(granted)
}

//! `/api/roles`: an organization's roles and their user and form assignments, for platform
//! administrators acting in that organization (`X-Organization-Id`).
//!
//! Wire shape (camelCase, v1's `Role`): `{id, orgId, name, description, isActive, createdAt,
//! createdBy, updatedAt, etag}`; lists are `{roles}`, `{userIds}` and `{formIds}`. Assign calls
//! take `{userIds}` / `{formIds}` and answer the full assignment list.
//!
//! Depends on [`RoleService`](crate::domain::RoleService) and the organization lookup.
//! Invariant: every call is bound to the request's organization: roles live in that org's
//! partition, so another org's role id is simply "not found", and a GLOBAL request is a 400
//! naming `X-Organization-Id` (roles have no platform-wide form).

use bifrost_store::OrgId;
use bifrost_store::table::IfMatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::roles::{MAX_ASSIGN, MAX_ROLE_DESCRIPTION, MAX_ROLE_NAME};
use crate::domain::{FormId, NewRole, Role, RoleId, RoleUpdate, UserId};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::RequestContext;
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};
use crate::http::input::{
    ID_PATTERN, TEXT_PATTERN, existing_org, no_content, org_of, timestamp, with_etag,
};

const ROLE_LINK: &str = "$response.body#/id";

pub fn endpoints() -> Vec<Endpoint> {
    let mut endpoints = vec![
        Endpoint::get(
            "roles.list",
            "/api/roles",
            Access::PlatformAdmin,
            "The organization's roles",
        )
        .ok::<RoleList>("The roles")
        .guarded(|state, ctx, _call| async move { list(&state, &ctx).await }),
        Endpoint::post(
            "roles.create",
            "/api/roles",
            Access::PlatformAdmin,
            "Create a role {name, description?}",
        )
        .body::<CreateRole>()
        .created::<RoleDto>("The new role")
        .errors(&[409])
        .link("GetRole", "roles.get", "roleId", ROLE_LINK)
        .link("UpdateRole", "roles.update", "roleId", ROLE_LINK)
        .link("DeleteRole", "roles.delete", "roleId", ROLE_LINK)
        .link("RoleUsers", "roles.users.list", "roleId", ROLE_LINK)
        .link("AssignUsers", "roles.users.assign", "roleId", ROLE_LINK)
        .link("RoleForms", "roles.forms.list", "roleId", ROLE_LINK)
        .link("AssignForms", "roles.forms.assign", "roleId", ROLE_LINK)
        .guarded(|state, ctx, mut call| async move {
            create(&state, &ctx, call.json().await?).await
        }),
        Endpoint::get(
            "roles.get",
            "/api/roles/{roleId}",
            Access::PlatformAdmin,
            "One role, with its ETag",
        )
        .ok::<RoleDto>("The role")
        .guarded(|state, ctx, call| async move { get(&state, &ctx, call.param("roleId")).await }),
        Endpoint::put(
            "roles.update",
            "/api/roles/{roleId}",
            Access::PlatformAdmin,
            "Change name, description or isActive (If-Match honoured)",
        )
        .body::<UpdateRole>()
        .ok::<RoleDto>("The changed role")
        .errors(&[409, 412])
        .guarded(|state, ctx, mut call| async move {
            let condition = call.if_match()?;
            let body = call.json().await?;
            update(&state, &ctx, call.param("roleId"), condition, body).await
        }),
        Endpoint::delete(
            "roles.delete",
            "/api/roles/{roleId}",
            Access::PlatformAdmin,
            "Delete a role and its assignments (If-Match honoured)",
        )
        .empty(204, "Deleted")
        .errors(&[412])
        .guarded(|state, ctx, call| async move {
            delete(&state, &ctx, call.param("roleId"), call.if_match()?).await
        }),
    ];
    endpoints.extend(link_endpoints(Link::Users));
    endpoints.extend(link_endpoints(Link::Forms));
    endpoints
}

/// `GET/POST /api/roles/{roleId}/<users|forms>` and `DELETE .../<users|forms>/{id}`.
fn link_endpoints(link: Link) -> [Endpoint; 3] {
    match link {
        Link::Users => [
            Endpoint::get(
                "roles.users.list",
                "/api/roles/{roleId}/users",
                Access::PlatformAdmin,
                "Ids of the users assigned to the role",
            )
            .ok::<UserIds>("The assigned users")
            .guarded(|state, ctx, call| async move {
                linked(&state, &ctx, call.param("roleId"), Link::Users).await
            }),
            Endpoint::post(
                "roles.users.assign",
                "/api/roles/{roleId}/users",
                Access::PlatformAdmin,
                "Assign users of the organization {userIds}",
            )
            .body::<AssignUsers>()
            .ok::<UserIds>("All users now assigned")
            .link_all(
                "UnassignUser",
                "roles.users.unassign",
                &[
                    ("roleId", "$request.path.roleId"),
                    ("userId", "$response.body#/userIds/0"),
                ],
            )
            .guarded(|state, ctx, mut call| async move {
                let body: AssignUsers = call.json().await?;
                let ids = parse_ids("userIds", &body.user_ids, UserId::parse)?;
                assign(&state, &ctx, call.param("roleId"), Assignment::Users(ids)).await
            }),
            Endpoint::delete(
                "roles.users.unassign",
                "/api/roles/{roleId}/users/{userId}",
                Access::PlatformAdmin,
                "Remove one user from the role",
            )
            .empty(204, "Removed")
            .guarded(|state, ctx, call| async move {
                let (role, user) = (call.param("roleId"), call.param("userId"));
                unassign(&state, &ctx, role, user, Link::Users).await
            }),
        ],
        Link::Forms => [
            Endpoint::get(
                "roles.forms.list",
                "/api/roles/{roleId}/forms",
                Access::PlatformAdmin,
                "Ids of the forms linked to the role",
            )
            .ok::<FormIds>("The linked forms")
            .guarded(|state, ctx, call| async move {
                linked(&state, &ctx, call.param("roleId"), Link::Forms).await
            }),
            Endpoint::post(
                "roles.forms.assign",
                "/api/roles/{roleId}/forms",
                Access::PlatformAdmin,
                "Link forms to the role {formIds}",
            )
            .body::<AssignForms>()
            .ok::<FormIds>("All forms now linked")
            .link_all(
                "UnlinkForm",
                "roles.forms.unassign",
                &[
                    ("roleId", "$request.path.roleId"),
                    ("formId", "$response.body#/formIds/0"),
                ],
            )
            .guarded(|state, ctx, mut call| async move {
                let body: AssignForms = call.json().await?;
                let ids = parse_ids("formIds", &body.form_ids, FormId::parse)?;
                assign(&state, &ctx, call.param("roleId"), Assignment::Forms(ids)).await
            }),
            Endpoint::delete(
                "roles.forms.unassign",
                "/api/roles/{roleId}/forms/{formId}",
                Access::PlatformAdmin,
                "Unlink one form from the role",
            )
            .empty(204, "Unlinked")
            .guarded(|state, ctx, call| async move {
                let (role, form) = (call.param("roleId"), call.param("formId"));
                unassign(&state, &ctx, role, form, Link::Forms).await
            }),
        ],
    }
}

/// `POST /api/roles`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateRole {
    #[schemars(length(min = 1, max = MAX_ROLE_NAME), regex(pattern = TEXT_PATTERN))]
    name: String,
    #[schemars(length(max = MAX_ROLE_DESCRIPTION))]
    description: Option<String>,
}

/// `PUT /api/roles/{roleId}`: absent fields keep their value.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateRole {
    #[schemars(length(min = 1, max = MAX_ROLE_NAME), regex(pattern = TEXT_PATTERN))]
    name: Option<String>,
    #[schemars(length(max = MAX_ROLE_DESCRIPTION))]
    description: Option<String>,
    is_active: Option<bool>,
}

/// `POST /api/roles/{roleId}/users`: users of the role's organization.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AssignUsers {
    #[schemars(length(max = MAX_ASSIGN), inner(regex(pattern = ID_PATTERN)))]
    user_ids: Vec<String>,
}

/// `POST /api/roles/{roleId}/forms`: forms of the role's organization (or global ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AssignForms {
    #[schemars(length(max = MAX_ASSIGN), inner(regex(pattern = ID_PATTERN)))]
    form_ids: Vec<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleDto {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub description: String,
    pub is_active: bool,
    pub created_at: String,
    pub created_by: Option<String>,
    pub updated_at: String,
    pub etag: String,
}

impl From<&Role> for RoleDto {
    fn from(role: &Role) -> Self {
        Self {
            id: role.id.to_string(),
            org_id: role.org_id.to_string(),
            name: role.name.clone(),
            description: role.description.clone(),
            is_active: role.is_active,
            created_at: timestamp(role.created_at),
            created_by: role.created_by.clone(),
            updated_at: timestamp(role.updated_at),
            etag: role.etag.to_string(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub struct RoleList {
    roles: Vec<RoleDto>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserIds {
    user_ids: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormIds {
    form_ids: Vec<String>,
}

/// Which kind of thing an assignment route links to a role.
#[derive(Clone, Copy)]
enum Link {
    Users,
    Forms,
}

/// What an assign call links, parsed.
enum Assignment {
    Users(Vec<UserId>),
    Forms(Vec<FormId>),
}

/// The request's organization, which must exist.
async fn org(state: &ApiState, ctx: &RequestContext) -> Result<OrgId, ApiError> {
    let org = org_of(ctx)?;
    existing_org(state, &org).await?;
    Ok(org)
}

fn role_id(raw: &str) -> Result<RoleId, ApiError> {
    Ok(RoleId::parse(raw)?)
}

fn one(status: StatusCode, role: &Role) -> Response {
    with_etag(json_response(status, &RoleDto::from(role)), &role.etag)
}

async fn list(state: &ApiState, ctx: &RequestContext) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let roles = state.services.roles.list(&org).await?;
    Ok(json_response(
        StatusCode::OK,
        &RoleList {
            roles: roles.iter().map(RoleDto::from).collect(),
        },
    ))
}

async fn create(
    state: &ApiState,
    ctx: &RequestContext,
    body: CreateRole,
) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let new = NewRole {
        name: body.name,
        description: body.description,
        created_by: Some(ctx.actor()),
    };
    let role = state
        .services
        .roles
        .create(&org, new, &ctx.change_actor())
        .await?;
    Ok(one(StatusCode::CREATED, &role))
}

async fn get(state: &ApiState, ctx: &RequestContext, id: &str) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let role = state.services.roles.get(&org, &role_id(id)?).await?;
    Ok(one(StatusCode::OK, &role))
}

async fn update(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    condition: IfMatch,
    body: UpdateRole,
) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let id = role_id(id)?;
    let update = RoleUpdate {
        name: body.name,
        description: body.description,
        is_active: body.is_active,
    };
    let role = state
        .services
        .roles
        .update(&org, &id, update, &condition, &ctx.change_actor())
        .await?;
    Ok(one(StatusCode::OK, &role))
}

async fn delete(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    condition: IfMatch,
) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let id = role_id(id)?;
    state
        .services
        .roles
        .delete(&org, &id, &condition, &ctx.change_actor())
        .await?;
    Ok(no_content())
}

async fn linked_response(
    state: &ApiState,
    org: &OrgId,
    id: &RoleId,
    link: Link,
) -> Result<Response, ApiError> {
    let roles = &state.services.roles;
    Ok(match link {
        Link::Users => json_response(
            StatusCode::OK,
            &UserIds {
                user_ids: roles
                    .users_of_role(org, id)
                    .await?
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            },
        ),
        Link::Forms => json_response(
            StatusCode::OK,
            &FormIds {
                form_ids: roles
                    .forms_of_role(org, id)
                    .await?
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            },
        ),
    })
}

async fn linked(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    link: Link,
) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    linked_response(state, &org, &role_id(id)?, link).await
}

async fn assign(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    assignment: Assignment,
) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let id = role_id(id)?;
    let roles = &state.services.roles;
    let actor = ctx.change_actor();
    let link = match assignment {
        Assignment::Users(ids) => {
            roles.assign_users(&org, &id, &ids, &actor).await?;
            Link::Users
        }
        Assignment::Forms(ids) => {
            roles.assign_forms(&org, &id, &ids, &actor).await?;
            Link::Forms
        }
    };
    linked_response(state, &org, &id, link).await
}

/// Ids of an assign call, each parsed; errors name `field` and the index.
fn parse_ids<T>(
    field: &str,
    raw: &[String],
    parse: impl Fn(&str) -> crate::domain::DomainResult<T>,
) -> Result<Vec<T>, ApiError> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            parse(s).map_err(|e| {
                let reason = match e {
                    crate::domain::DomainError::Invalid { reason, .. } => reason,
                    other => other.to_string(),
                };
                ApiError::bad_request(format!("{field}[{i}]"), format!("{field}[{i}] {reason}"))
            })
        })
        .collect()
}

async fn unassign(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    other: &str,
    link: Link,
) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let id = role_id(id)?;
    let roles = &state.services.roles;
    let removed = match link {
        Link::Users => {
            roles
                .unassign_user(&org, &id, &UserId::parse(other)?, &ctx.change_actor())
                .await?
        }
        Link::Forms => {
            roles
                .unassign_form(&org, &id, &FormId::parse(other)?, &ctx.change_actor())
                .await?
        }
    };
    if removed {
        Ok(no_content())
    } else {
        Err(ApiError::NotFound(match link {
            Link::Users => format!("user '{other}' is not assigned to role '{id}'"),
            Link::Forms => format!("form '{other}' is not linked to role '{id}'"),
        }))
    }
}

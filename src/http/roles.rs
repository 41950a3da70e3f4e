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

use std::sync::Arc;

use bifrost_store::OrgId;
use serde::Serialize;
use serde_json::Value;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::{FormId, NewRole, Role, RoleId, RoleUpdate, UserId};
use crate::http::ApiState;
use crate::http::access::{Access, Route};
use crate::http::body;
use crate::http::context::{RequestContext, guard};
use crate::http::error::{ApiError, json_response};
use crate::http::input::{
    Fields, existing_org, if_match, if_match_header, no_content, org_of, respond, timestamp,
    with_etag, with_state,
};

pub const ROUTES: &[Route] = &[
    Route {
        id: "roles.list",
        method: "GET",
        path: "/api/roles",
        access: Access::PlatformAdmin,
        summary: "The organization's roles",
    },
    Route {
        id: "roles.create",
        method: "POST",
        path: "/api/roles",
        access: Access::PlatformAdmin,
        summary: "Create a role {name, description?}",
    },
    Route {
        id: "roles.get",
        method: "GET",
        path: "/api/roles/{roleId}",
        access: Access::PlatformAdmin,
        summary: "One role, with its ETag",
    },
    Route {
        id: "roles.update",
        method: "PUT",
        path: "/api/roles/{roleId}",
        access: Access::PlatformAdmin,
        summary: "Change name, description or isActive (If-Match honoured)",
    },
    Route {
        id: "roles.delete",
        method: "DELETE",
        path: "/api/roles/{roleId}",
        access: Access::PlatformAdmin,
        summary: "Delete a role and its assignments (If-Match honoured)",
    },
    Route {
        id: "roles.users.list",
        method: "GET",
        path: "/api/roles/{roleId}/users",
        access: Access::PlatformAdmin,
        summary: "Ids of the users assigned to the role",
    },
    Route {
        id: "roles.users.assign",
        method: "POST",
        path: "/api/roles/{roleId}/users",
        access: Access::PlatformAdmin,
        summary: "Assign users of the organization {userIds}",
    },
    Route {
        id: "roles.users.unassign",
        method: "DELETE",
        path: "/api/roles/{roleId}/users/{userId}",
        access: Access::PlatformAdmin,
        summary: "Remove one user from the role",
    },
    Route {
        id: "roles.forms.list",
        method: "GET",
        path: "/api/roles/{roleId}/forms",
        access: Access::PlatformAdmin,
        summary: "Ids of the forms linked to the role",
    },
    Route {
        id: "roles.forms.assign",
        method: "POST",
        path: "/api/roles/{roleId}/forms",
        access: Access::PlatformAdmin,
        summary: "Link forms to the role {formIds}",
    },
    Route {
        id: "roles.forms.unassign",
        method: "DELETE",
        path: "/api/roles/{roleId}/forms/{formId}",
        access: Access::PlatformAdmin,
        summary: "Unlink one form from the role",
    },
];

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

#[derive(Serialize)]
struct RoleList {
    roles: Vec<RoleDto>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserIds {
    user_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FormIds {
    form_ids: Vec<String>,
}

/// Which kind of thing an assignment route links to a role.
#[derive(Clone, Copy)]
enum Link {
    Users,
    Forms,
}

pub fn routes(state: Arc<ApiState>) -> BoxedFilter<(Response,)> {
    let limit = state.settings.max_body_bytes;
    let list = warp::path!("api" / "roles")
        .and(warp::get())
        .and(guard(state.clone(), "roles.list"))
        .and(with_state(state.clone()))
        .then(|ctx, state: Arc<ApiState>| async move { respond(list(&state, &ctx).await) });
    let create = warp::path!("api" / "roles")
        .and(warp::post())
        .and(guard(state.clone(), "roles.create"))
        .and(body::json::<Value>(limit))
        .and(with_state(state.clone()))
        .then(|ctx, body, state: Arc<ApiState>| async move {
            respond(create(&state, &ctx, body).await)
        });
    let get = warp::path!("api" / "roles" / String)
        .and(warp::get())
        .and(guard(state.clone(), "roles.get"))
        .and(with_state(state.clone()))
        .then(|id: String, ctx, state: Arc<ApiState>| async move {
            respond(get(&state, &ctx, &id).await)
        });
    let update = warp::path!("api" / "roles" / String)
        .and(warp::put())
        .and(guard(state.clone(), "roles.update"))
        .and(if_match_header())
        .and(body::json::<Value>(limit))
        .and(with_state(state.clone()))
        .then(
            |id: String, ctx, etag: Option<String>, body, state: Arc<ApiState>| async move {
                respond(update(&state, &ctx, &id, etag.as_deref(), body).await)
            },
        );
    let delete = warp::path!("api" / "roles" / String)
        .and(warp::delete())
        .and(guard(state.clone(), "roles.delete"))
        .and(if_match_header())
        .and(with_state(state.clone()))
        .then(
            |id: String, ctx, etag: Option<String>, state: Arc<ApiState>| async move {
                respond(delete(&state, &ctx, &id, etag.as_deref()).await)
            },
        );
    let crud = list
        .or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .boxed();
    crud.or(link_routes(state.clone(), Link::Users, limit))
        .unify()
        .or(link_routes(state, Link::Forms, limit))
        .unify()
        .boxed()
}

/// `GET/POST /api/roles/{roleId}/<users|forms>` and `DELETE .../<users|forms>/{id}`.
fn link_routes(state: Arc<ApiState>, link: Link, limit: u64) -> BoxedFilter<(Response,)> {
    let (segment, list_id, assign_id, unassign_id) = match link {
        Link::Users => (
            "users",
            "roles.users.list",
            "roles.users.assign",
            "roles.users.unassign",
        ),
        Link::Forms => (
            "forms",
            "roles.forms.list",
            "roles.forms.assign",
            "roles.forms.unassign",
        ),
    };
    let base = warp::path!("api" / "roles" / String / ..).and(warp::path(segment));
    let list = base
        .and(warp::path::end())
        .and(warp::get())
        .and(guard(state.clone(), list_id))
        .and(with_state(state.clone()))
        .then(move |id: String, ctx, state: Arc<ApiState>| async move {
            respond(linked(&state, &ctx, &id, link).await)
        });
    let assign = base
        .and(warp::path::end())
        .and(warp::post())
        .and(guard(state.clone(), assign_id))
        .and(body::json::<Value>(limit))
        .and(with_state(state.clone()))
        .then(
            move |id: String, ctx, body, state: Arc<ApiState>| async move {
                respond(assign(&state, &ctx, &id, link, body).await)
            },
        );
    let unassign = base
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::delete())
        .and(guard(state.clone(), unassign_id))
        .and(with_state(state))
        .then(
            move |id: String, other: String, ctx, state: Arc<ApiState>| async move {
                respond(unassign(&state, &ctx, &id, &other, link).await)
            },
        );
    list.or(assign).unify().or(unassign).unify().boxed()
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

async fn create(state: &ApiState, ctx: &RequestContext, body: Value) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let fields = Fields::new(body, &["name", "description"])?;
    let new = NewRole {
        name: fields.required_str("name")?.to_owned(),
        description: fields.str("description")?.map(str::to_owned),
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
    etag: Option<&str>,
    body: Value,
) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let id = role_id(id)?;
    let condition = if_match(etag)?;
    let fields = Fields::new(body, &["name", "description", "isActive"])?;
    let update = RoleUpdate {
        name: fields.str("name")?.map(str::to_owned),
        description: fields.str("description")?.map(str::to_owned),
        is_active: fields.bool("isActive")?,
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
    etag: Option<&str>,
) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let id = role_id(id)?;
    let condition = if_match(etag)?;
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
    link: Link,
    body: Value,
) -> Result<Response, ApiError> {
    let org = org(state, ctx).await?;
    let id = role_id(id)?;
    let roles = &state.services.roles;
    let actor = ctx.change_actor();
    match link {
        Link::Users => {
            let fields = Fields::new(body, &["userIds"])?;
            let ids = ids_field(&fields, "userIds", UserId::parse)?;
            roles.assign_users(&org, &id, &ids, &actor).await?;
        }
        Link::Forms => {
            let fields = Fields::new(body, &["formIds"])?;
            let ids = ids_field(&fields, "formIds", FormId::parse)?;
            roles.assign_forms(&org, &id, &ids, &actor).await?;
        }
    }
    linked_response(state, &org, &id, link).await
}

/// A required array of ids, each parsed; errors name `field` (and the index).
fn ids_field<T>(
    fields: &Fields,
    field: &str,
    parse: impl Fn(&str) -> crate::domain::DomainResult<T>,
) -> Result<Vec<T>, ApiError> {
    let raw = fields
        .str_list(field)?
        .ok_or_else(|| ApiError::bad_request(field, format!("{field} is required")))?;
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

//! `/api/users`: user administration for platform administrators.
//!
//! Wire shape (camelCase, v1's `User` with a stable id): `{id, email, displayName, userType
//! ("PLATFORM"|"ORG"), isPlatformAdmin, orgId, isActive, entraUserId, createdAt, updatedAt,
//! lastLogin, etag}`; the list is `{users, continuationToken}`. Create takes `{email,
//! displayName?, isPlatformAdmin, orgId?, isActive?}` with `orgId` required exactly when the user
//! is not a platform admin. Updates and deletes honour `If-Match`.
//!
//! Depends on [`UserService`](crate::domain::UserService) and, for a user's roles,
//! [`RoleService`](crate::domain::RoleService). Listing defaults to the request's organization
//! when an admin sends `X-Organization-Id`, so the org switcher also filters this page.

use std::collections::HashMap;
use std::sync::Arc;

use bifrost_store::{OrgId, Scope};
use serde::Serialize;
use serde_json::Value;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::app::AppState;
use crate::domain::{NewUser, User, UserFilter, UserId, UserKind, UserType, UserUpdate};
use crate::http::access::{Access, Route};
use crate::http::body;
use crate::http::context::{RequestContext, guard};
use crate::http::error::{ApiError, json_response};
use crate::http::input::{
    Fields, if_match, if_match_header, no_content, page, paging_error, respond, timestamp,
    with_etag, with_state,
};
use crate::http::roles::RoleDto;

pub const ROUTES: &[Route] = &[
    Route {
        id: "users.list",
        method: "GET",
        path: "/api/users",
        access: Access::PlatformAdmin,
        summary: "List users (?type=platform|org, ?orgId=, limit, continuationToken)",
    },
    Route {
        id: "users.create",
        method: "POST",
        path: "/api/users",
        access: Access::PlatformAdmin,
        summary: "Create a user {email, displayName?, isPlatformAdmin, orgId?}",
    },
    Route {
        id: "users.get",
        method: "GET",
        path: "/api/users/{userId}",
        access: Access::PlatformAdmin,
        summary: "One user, with its ETag",
    },
    Route {
        id: "users.update",
        method: "PATCH",
        path: "/api/users/{userId}",
        access: Access::PlatformAdmin,
        summary: "Change email, displayName, isActive, isPlatformAdmin or orgId (If-Match honoured)",
    },
    Route {
        id: "users.delete",
        method: "DELETE",
        path: "/api/users/{userId}",
        access: Access::PlatformAdmin,
        summary: "Delete a user and their role assignments (If-Match honoured)",
    },
    Route {
        id: "users.roles",
        method: "GET",
        path: "/api/users/{userId}/roles",
        access: Access::PlatformAdmin,
        summary: "The roles a user is assigned to in their organization",
    },
];

const CREATE_FIELDS: &[&str] = &[
    "email",
    "displayName",
    "isPlatformAdmin",
    "orgId",
    "isActive",
];
const UPDATE_FIELDS: &[&str] = &[
    "email",
    "displayName",
    "isPlatformAdmin",
    "orgId",
    "isActive",
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub user_type: &'static str,
    pub is_platform_admin: bool,
    pub org_id: Option<String>,
    pub is_active: bool,
    pub entra_user_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_login: Option<String>,
    pub etag: String,
}

impl From<&User> for UserDto {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            user_type: match user.user_type {
                UserType::PlatformAdmin => "PLATFORM",
                UserType::OrgUser(_) => "ORG",
            },
            is_platform_admin: user.user_type.is_platform_admin(),
            org_id: user.user_type.org_id().map(ToString::to_string),
            is_active: user.is_active,
            entra_user_id: user.entra_object_id.clone(),
            created_at: timestamp(user.created_at),
            updated_at: timestamp(user.updated_at),
            last_login: user.last_login.map(timestamp),
            etag: user.etag.to_string(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserList {
    users: Vec<UserDto>,
    continuation_token: Option<String>,
}

#[derive(Serialize)]
struct RoleList {
    roles: Vec<RoleDto>,
}

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let limit = state.settings.max_body_bytes;
    let list = warp::path!("api" / "users")
        .and(warp::get())
        .and(guard(state.clone(), "users.list"))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state(state.clone()))
        .then(|ctx, query, state: Arc<AppState>| async move {
            respond(list(&state, &ctx, &query).await)
        });
    let create = warp::path!("api" / "users")
        .and(warp::post())
        .and(guard(state.clone(), "users.create"))
        .and(body::json::<Value>(limit))
        .and(with_state(state.clone()))
        .then(
            |ctx: RequestContext, body, state: Arc<AppState>| async move {
                respond(create(&state, &ctx, body).await)
            },
        );
    let get = warp::path!("api" / "users" / String)
        .and(warp::get())
        .and(guard(state.clone(), "users.get"))
        .and(with_state(state.clone()))
        .then(
            |id: String, _ctx, state: Arc<AppState>| async move { respond(get(&state, &id).await) },
        );
    let update = warp::path!("api" / "users" / String)
        .and(warp::patch())
        .and(guard(state.clone(), "users.update"))
        .and(if_match_header())
        .and(body::json::<Value>(limit))
        .and(with_state(state.clone()))
        .then(
            |id: String, ctx, etag: Option<String>, body, state: Arc<AppState>| async move {
                respond(update(&state, &ctx, &id, etag.as_deref(), body).await)
            },
        );
    let delete = warp::path!("api" / "users" / String)
        .and(warp::delete())
        .and(guard(state.clone(), "users.delete"))
        .and(if_match_header())
        .and(with_state(state.clone()))
        .then(
            |id: String, ctx, etag: Option<String>, state: Arc<AppState>| async move {
                respond(delete(&state, &ctx, &id, etag.as_deref()).await)
            },
        );
    let roles =
        warp::path!("api" / "users" / String / "roles")
            .and(warp::get())
            .and(guard(state.clone(), "users.roles"))
            .and(with_state(state))
            .then(|id: String, _ctx, state: Arc<AppState>| async move {
                respond(roles(&state, &id).await)
            });
    list.or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(roles)
        .unify()
        .boxed()
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    Ok(UserId::parse(raw)?)
}

fn org_field(raw: &str) -> Result<OrgId, ApiError> {
    OrgId::parse(raw.trim()).map_err(|e| match ApiError::from(e) {
        ApiError::BadRequest { message, .. } => ApiError::bad_request("orgId", message),
        other => other,
    })
}

fn one(status: StatusCode, user: &User) -> Response {
    with_etag(json_response(status, &UserDto::from(user)), &user.etag)
}

fn not_for_admins() -> ApiError {
    ApiError::bad_request(
        "orgId",
        "orgId must not be set for a platform administrator",
    )
}

async fn list(
    state: &AppState,
    ctx: &RequestContext,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let page = page(query)?;
    let kind = match query.get("type").map(|s| s.trim()) {
        None | Some("") => None,
        Some(t) if t.eq_ignore_ascii_case("platform") => Some(UserKind::Platform),
        Some(t) if t.eq_ignore_ascii_case("org") => Some(UserKind::Org),
        Some(_) => {
            return Err(ApiError::bad_request(
                "type",
                "type must be platform or org",
            ));
        }
    };
    let org_id = match query.get("orgId").map(|s| s.trim()) {
        Some(raw) if !raw.is_empty() => Some(org_field(raw)?),
        // The org switcher filters the listing unless the caller asks for platform users.
        _ => match (&ctx.scope, kind) {
            (Scope::Org(org), None | Some(UserKind::Org)) => Some(org.clone()),
            _ => None,
        },
    };
    let filter = UserFilter { kind, org_id };
    let result = state
        .services
        .users
        .list(&filter, &page)
        .await
        .map_err(|e| paging_error(e.into()))?;
    Ok(json_response(
        StatusCode::OK,
        &UserList {
            users: result.items.iter().map(UserDto::from).collect(),
            continuation_token: result.continuation.map(|t| t.as_str().to_owned()),
        },
    ))
}

async fn create(state: &AppState, ctx: &RequestContext, body: Value) -> Result<Response, ApiError> {
    let fields = Fields::new(body, CREATE_FIELDS)?;
    let email = fields.required_str("email")?.to_owned();
    let display_name = fields.str("displayName")?.map(str::to_owned);
    let is_admin = fields.bool("isPlatformAdmin")?.ok_or_else(|| {
        ApiError::bad_request(
            "isPlatformAdmin",
            "isPlatformAdmin is required (true or false)",
        )
    })?;
    let org = fields.str("orgId")?.map(org_field).transpose()?;
    let user_type = match (is_admin, org) {
        (true, None) => UserType::PlatformAdmin,
        (true, Some(_)) => return Err(not_for_admins()),
        (false, Some(org)) => UserType::OrgUser(org),
        (false, None) => {
            return Err(ApiError::bad_request(
                "orgId",
                "orgId is required for a user who is not a platform administrator",
            ));
        }
    };
    let user = state
        .services
        .users
        .create(
            NewUser {
                email,
                display_name,
                user_type,
                is_active: fields.bool("isActive")?.unwrap_or(true),
                entra_object_id: None,
            },
            &ctx.change_actor(),
        )
        .await?;
    Ok(one(StatusCode::CREATED, &user))
}

async fn get(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let user = state.services.users.get(&user_id(id)?).await?;
    Ok(one(StatusCode::OK, &user))
}

async fn update(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    etag: Option<&str>,
    body: Value,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let condition = if_match(etag)?;
    let fields = Fields::new(body, UPDATE_FIELDS)?;
    let is_admin = fields.bool("isPlatformAdmin")?;
    let org = fields.str("orgId")?.map(org_field).transpose()?;
    let user_type = match (is_admin, org) {
        (None, None) => None,
        (Some(true), None) => Some(UserType::PlatformAdmin),
        (Some(true), Some(_)) => return Err(not_for_admins()),
        (_, Some(org)) => Some(UserType::OrgUser(org)),
        (Some(false), None) => {
            // Demoting an admin needs the org they join; an org user stays where they are.
            let current = state.services.users.get(&id).await?;
            match current.user_type {
                UserType::OrgUser(org) => Some(UserType::OrgUser(org)),
                UserType::PlatformAdmin => {
                    return Err(ApiError::bad_request(
                        "orgId",
                        "orgId is required when isPlatformAdmin becomes false",
                    ));
                }
            }
        }
    };
    let update = UserUpdate {
        display_name: fields.str("displayName")?.map(str::to_owned),
        email: fields.str("email")?.map(str::to_owned),
        user_type,
        is_active: fields.bool("isActive")?,
    };
    let user = state
        .services
        .users
        .update(&id, update, &condition, &ctx.change_actor())
        .await?;
    // The user's cached sign-in on this instance is gone at once (others follow the revision).
    state.identity.forget_principals();
    Ok(one(StatusCode::OK, &user))
}

async fn delete(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    etag: Option<&str>,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let condition = if_match(etag)?;
    state
        .services
        .users
        .delete(&id, &condition, &ctx.change_actor())
        .await?;
    state.identity.forget_principals();
    Ok(no_content())
}

async fn roles(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let user = state.services.users.get(&user_id(id)?).await?;
    let roles = match user.user_type.org_id() {
        Some(org) => state.services.roles.roles_of_user(org, &user.id).await?,
        // Roles belong to organizations; a platform administrator has none.
        None => Vec::new(),
    };
    Ok(json_response(
        StatusCode::OK,
        &RoleList {
            roles: roles.iter().map(RoleDto::from).collect(),
        },
    ))
}

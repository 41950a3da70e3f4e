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

use bifrost_store::table::IfMatch;
use bifrost_store::{OrgId, Scope};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::{
    MAX_DISPLAY_NAME, NewUser, User, UserFilter, UserId, UserKind, UserType, UserUpdate,
};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::RequestContext;
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};
use crate::http::input::{
    EMAIL_PATTERN, ORG_ID_PATTERN, PageQuery, TEXT_PATTERN, no_content, paging_error, timestamp,
    with_etag,
};
use crate::http::roles::RoleDto;

const USER_LINK: &str = "$response.body#/id";

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "users.list",
            "/api/users",
            Access::PlatformAdmin,
            "List users (?type=platform|org, ?orgId=, limit, continuationToken)",
        )
        .query::<UsersQuery>()
        .ok::<UserList>("One page of users")
        .guarded(|state, ctx, call| async move { list(&state, &ctx, call.query()?).await }),
        Endpoint::post(
            "users.create",
            "/api/users",
            Access::PlatformAdmin,
            "Create a user {email, displayName?, isPlatformAdmin, orgId?}",
        )
        .body::<CreateUser>()
        .created::<UserDto>("The new user")
        .errors(&[409])
        .link("GetUser", "users.get", "userId", USER_LINK)
        .link("UpdateUser", "users.update", "userId", USER_LINK)
        .link("DeleteUser", "users.delete", "userId", USER_LINK)
        .link("UserRoles", "users.roles", "userId", USER_LINK)
        .guarded(|state, ctx, mut call| async move {
            create(&state, &ctx, call.json().await?).await
        }),
        Endpoint::get(
            "users.get",
            "/api/users/{userId}",
            Access::PlatformAdmin,
            "One user, with its ETag",
        )
        .ok::<UserDto>("The user")
        .guarded(|state, _ctx, call| async move { get(&state, call.param("userId")).await }),
        Endpoint::patch(
            "users.update",
            "/api/users/{userId}",
            Access::PlatformAdmin,
            "Change email, displayName, isActive, isPlatformAdmin or orgId (If-Match honoured)",
        )
        .body::<UpdateUser>()
        .ok::<UserDto>("The changed user")
        .errors(&[409, 412])
        .guarded(|state, ctx, mut call| async move {
            let condition = call.if_match()?;
            let body = call.json().await?;
            update(&state, &ctx, call.param("userId"), condition, body).await
        }),
        Endpoint::delete(
            "users.delete",
            "/api/users/{userId}",
            Access::PlatformAdmin,
            "Delete a user and their role assignments (If-Match honoured)",
        )
        .empty(204, "Deleted")
        .errors(&[412])
        .guarded(|state, ctx, call| async move {
            delete(&state, &ctx, call.param("userId"), call.if_match()?).await
        }),
        Endpoint::get(
            "users.roles",
            "/api/users/{userId}/roles",
            Access::PlatformAdmin,
            "The roles a user is assigned to in their organization",
        )
        .ok::<RoleList>("The user's roles")
        .guarded(|state, _ctx, call| async move { roles(&state, call.param("userId")).await }),
    ]
}

/// `GET /api/users` filters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsersQuery {
    #[serde(flatten)]
    page: PageQuery,
    /// Only platform administrators or only organization users (case-insensitive).
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["platform", "org"]))]
    kind: Option<String>,
    /// Only this organization's users (the default is the request's organization).
    #[schemars(regex(pattern = ORG_ID_PATTERN))]
    org_id: Option<String>,
}

/// `POST /api/users`: `orgId` exactly when the user is not a platform administrator.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    { "properties": { "isPlatformAdmin": { "const": true } }, "not": { "required": ["orgId"] } },
    { "properties": { "isPlatformAdmin": { "const": false } }, "required": ["orgId"] },
]))]
pub struct CreateUser {
    #[schemars(length(max = 254), regex(pattern = EMAIL_PATTERN))]
    email: String,
    #[schemars(length(min = 1, max = MAX_DISPLAY_NAME), regex(pattern = TEXT_PATTERN))]
    display_name: Option<String>,
    is_platform_admin: bool,
    #[schemars(regex(pattern = ORG_ID_PATTERN))]
    org_id: Option<String>,
    /// Defaults to true.
    is_active: Option<bool>,
}

/// `PATCH /api/users/{userId}`: absent fields keep their value. A platform administrator
/// has no `orgId`; demoting one to an organization user names the organization.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("not" = {
    "properties": { "isPlatformAdmin": { "const": true } },
    "required": ["isPlatformAdmin", "orgId"],
}))]
pub struct UpdateUser {
    #[schemars(length(max = 254), regex(pattern = EMAIL_PATTERN))]
    email: Option<String>,
    #[schemars(length(min = 1, max = MAX_DISPLAY_NAME), regex(pattern = TEXT_PATTERN))]
    display_name: Option<String>,
    is_platform_admin: Option<bool>,
    #[schemars(regex(pattern = ORG_ID_PATTERN))]
    org_id: Option<String>,
    is_active: Option<bool>,
}

#[derive(Serialize, JsonSchema)]
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

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    users: Vec<UserDto>,
    continuation_token: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct RoleList {
    roles: Vec<RoleDto>,
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
    state: &ApiState,
    ctx: &RequestContext,
    query: UsersQuery,
) -> Result<Response, ApiError> {
    let page = query.page.page()?;
    let kind = match query.kind.as_deref().map(str::trim) {
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
    let org_id = match query.org_id.as_deref().map(str::trim) {
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

async fn create(
    state: &ApiState,
    ctx: &RequestContext,
    body: CreateUser,
) -> Result<Response, ApiError> {
    let org = body.org_id.as_deref().map(org_field).transpose()?;
    let user_type = match (body.is_platform_admin, org) {
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
                email: body.email,
                display_name: body.display_name,
                user_type,
                is_active: body.is_active.unwrap_or(true),
                entra_object_id: None,
            },
            &ctx.change_actor(),
        )
        .await?;
    Ok(one(StatusCode::CREATED, &user))
}

async fn get(state: &ApiState, id: &str) -> Result<Response, ApiError> {
    let user = state.services.users.get(&user_id(id)?).await?;
    Ok(one(StatusCode::OK, &user))
}

async fn update(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    condition: IfMatch,
    body: UpdateUser,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let org = body.org_id.as_deref().map(org_field).transpose()?;
    let user_type = match (body.is_platform_admin, org) {
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
        display_name: body.display_name,
        email: body.email,
        user_type,
        is_active: body.is_active,
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
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    condition: IfMatch,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    state
        .services
        .users
        .delete(&id, &condition, &ctx.change_actor())
        .await?;
    state.identity.forget_principals();
    Ok(no_content())
}

async fn roles(state: &ApiState, id: &str) -> Result<Response, ApiError> {
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

//! `/api/organizations`: client organization CRUD for platform administrators.
//!
//! Wire shape (camelCase, v1's `Organization` plus `etag`): `{id, name, domain, isActive,
//! createdAt, createdBy, updatedAt, etag}`; the list is `{organizations, continuationToken}`.
//! Updates and deletes honour `If-Match` (412 when stale) and every single-org answer carries
//! the ETag in both the body and the `ETag` header.
//!
//! Depends on [`OrgService`](crate::domain::OrgService) only; must not touch storage directly.
//! Organizations are platform-level data, so the request's `X-Organization-Id` does not filter
//! them.

use bifrost_store::OrgId;
use bifrost_store::table::IfMatch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;

use crate::domain::{MAX_ORG_NAME, NewOrganization, Organization, OrganizationUpdate};
use crate::http::ApiState;
use crate::http::access::Access;
use crate::http::context::RequestContext;
use crate::http::endpoint::Endpoint;
use crate::http::error::{ApiError, json_response};
use crate::http::input::{
    DOMAIN_PATTERN, PageQuery, TEXT_PATTERN, no_content, nullable, paging_error, timestamp,
    with_etag,
};

/// The organization id of `/api/organizations/{orgId}` links.
const ORG_LINK: &str = "$response.body#/id";

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get(
            "organizations.list",
            "/api/organizations",
            Access::PlatformAdmin,
            "List organizations (paged: limit, continuationToken)",
        )
        .query::<PageQuery>()
        .ok::<OrganizationList>("One page of organizations")
        .guarded(|state, _ctx, call| async move { list(&state, &call.query()?).await }),
        Endpoint::post(
            "organizations.create",
            "/api/organizations",
            Access::PlatformAdmin,
            "Create an organization {name, domain?, isActive?}",
        )
        .body::<CreateOrganization>()
        .created::<OrganizationDto>("The new organization")
        .errors(&[409])
        .link("GetOrganization", "organizations.get", "orgId", ORG_LINK)
        .link(
            "UpdateOrganization",
            "organizations.update",
            "orgId",
            ORG_LINK,
        )
        .link(
            "DeleteOrganization",
            "organizations.delete",
            "orgId",
            ORG_LINK,
        )
        .guarded(|state, ctx, mut call| async move {
            create(&state, &ctx, call.json().await?).await
        }),
        Endpoint::get(
            "organizations.get",
            "/api/organizations/{orgId}",
            Access::PlatformAdmin,
            "One organization, with its ETag",
        )
        .ok::<OrganizationDto>("The organization")
        .guarded(|state, _ctx, call| async move { get(&state, call.param("orgId")).await }),
        Endpoint::patch(
            "organizations.update",
            "/api/organizations/{orgId}",
            Access::PlatformAdmin,
            "Change name, domain or isActive (If-Match honoured)",
        )
        .body::<UpdateOrganization>()
        .ok::<OrganizationDto>("The changed organization")
        .errors(&[409, 412])
        .guarded(|state, ctx, mut call| async move {
            let condition = call.if_match()?;
            let body = call.json().await?;
            update(&state, &ctx, call.param("orgId"), condition, body).await
        }),
        Endpoint::delete(
            "organizations.delete",
            "/api/organizations/{orgId}",
            Access::PlatformAdmin,
            "Delete an organization without users (If-Match honoured)",
        )
        .empty(204, "Deleted")
        .errors(&[409, 412])
        .guarded(|state, ctx, call| async move {
            delete(&state, &ctx, call.param("orgId"), call.if_match()?).await
        }),
    ]
}

/// `POST /api/organizations`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateOrganization {
    #[schemars(length(min = 1, max = MAX_ORG_NAME), regex(pattern = TEXT_PATTERN))]
    name: String,
    /// A host name such as `example.com` (stored lower-case).
    #[schemars(length(max = 253), regex(pattern = DOMAIN_PATTERN))]
    domain: Option<String>,
    /// Defaults to true.
    is_active: Option<bool>,
}

/// `PATCH /api/organizations/{orgId}`: absent fields keep their value; `domain: null` clears it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateOrganization {
    #[schemars(length(min = 1, max = MAX_ORG_NAME), regex(pattern = TEXT_PATTERN))]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(length(max = 253), regex(pattern = DOMAIN_PATTERN))]
    domain: Option<Option<String>>,
    is_active: Option<bool>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationDto {
    pub id: String,
    pub name: String,
    pub domain: Option<String>,
    pub is_active: bool,
    pub created_at: String,
    pub created_by: Option<String>,
    pub updated_at: String,
    pub etag: String,
}

impl From<&Organization> for OrganizationDto {
    fn from(org: &Organization) -> Self {
        Self {
            id: org.id.to_string(),
            name: org.name.clone(),
            domain: org.domain.clone(),
            is_active: org.is_active,
            created_at: timestamp(org.created_at),
            created_by: org.created_by.clone(),
            updated_at: timestamp(org.updated_at),
            etag: org.etag.to_string(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationList {
    organizations: Vec<OrganizationDto>,
    continuation_token: Option<String>,
}

fn org_id(raw: &str) -> Result<OrgId, ApiError> {
    Ok(OrgId::parse(raw)?)
}

fn one(status: StatusCode, org: &Organization) -> Response {
    with_etag(
        json_response(status, &OrganizationDto::from(org)),
        &org.etag,
    )
}

async fn list(state: &ApiState, query: &PageQuery) -> Result<Response, ApiError> {
    let page = query.page()?;
    let result = state
        .services
        .orgs
        .list(&page)
        .await
        .map_err(|e| paging_error(e.into()))?;
    Ok(json_response(
        StatusCode::OK,
        &OrganizationList {
            organizations: result.items.iter().map(OrganizationDto::from).collect(),
            continuation_token: result.continuation.map(|t| t.as_str().to_owned()),
        },
    ))
}

async fn create(
    state: &ApiState,
    ctx: &RequestContext,
    body: CreateOrganization,
) -> Result<Response, ApiError> {
    let new = NewOrganization {
        name: body.name,
        domain: body.domain,
        is_active: body.is_active.unwrap_or(true),
        created_by: Some(ctx.actor()),
    };
    let org = state.services.orgs.create(new, &ctx.change_actor()).await?;
    Ok(one(StatusCode::CREATED, &org))
}

async fn get(state: &ApiState, id: &str) -> Result<Response, ApiError> {
    let org = state.services.orgs.get(&org_id(id)?).await?;
    Ok(one(StatusCode::OK, &org))
}

async fn update(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    condition: IfMatch,
    body: UpdateOrganization,
) -> Result<Response, ApiError> {
    let id = org_id(id)?;
    let update = OrganizationUpdate {
        name: body.name,
        domain: body.domain,
        is_active: body.is_active,
    };
    let org = state
        .services
        .orgs
        .update(&id, update, &condition, &ctx.change_actor())
        .await?;
    Ok(one(StatusCode::OK, &org))
}

async fn delete(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    condition: IfMatch,
) -> Result<Response, ApiError> {
    let id = org_id(id)?;
    state
        .services
        .orgs
        .delete(&id, &condition, &ctx.change_actor())
        .await?;
    Ok(no_content())
}

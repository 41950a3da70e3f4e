//! `/api/organizations`: client organization CRUD for platform administrators.
//!
//! Wire shape (camelCase, v1's `Organization` plus `etag`): `{id, name, domain, isActive,
//! createdAt, createdBy, updatedAt, etag}`; the list is `{organizations, continuationToken}`.
//! Updates and deletes honour `If-Match` (412 when stale) and every single-org answer carries
//! the ETag in both the body and the `ETag` header.
//!
//! Depends on [`OrgService`](crate::domain::OrgService) only; must not touch storage directly.
//! Organizations are platform-level data, so the request's `X-Organization-Id` does not filter
//! them. Request bodies are read through [`crate::http::input`].

use std::collections::HashMap;
use std::sync::Arc;

use bifrost_store::OrgId;
use serde::Serialize;
use serde_json::Value;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::app::AppState;
use crate::domain::{NewOrganization, Organization, OrganizationUpdate};
use crate::http::access::{Access, Route};
use crate::http::body;
use crate::http::context::{RequestContext, guard};
use crate::http::error::{ApiError, json_response};
use crate::http::input::{
    Fields, if_match, if_match_header, no_content, page, paging_error, respond, timestamp,
    with_etag, with_state,
};

pub const ROUTES: &[Route] = &[
    Route {
        id: "organizations.list",
        method: "GET",
        path: "/api/organizations",
        access: Access::PlatformAdmin,
        summary: "List organizations (paged: limit, continuationToken)",
    },
    Route {
        id: "organizations.create",
        method: "POST",
        path: "/api/organizations",
        access: Access::PlatformAdmin,
        summary: "Create an organization {name, domain?, isActive?}",
    },
    Route {
        id: "organizations.get",
        method: "GET",
        path: "/api/organizations/{orgId}",
        access: Access::PlatformAdmin,
        summary: "One organization, with its ETag",
    },
    Route {
        id: "organizations.update",
        method: "PATCH",
        path: "/api/organizations/{orgId}",
        access: Access::PlatformAdmin,
        summary: "Change name, domain or isActive (If-Match honoured)",
    },
    Route {
        id: "organizations.delete",
        method: "DELETE",
        path: "/api/organizations/{orgId}",
        access: Access::PlatformAdmin,
        summary: "Delete an organization without users (If-Match honoured)",
    },
];

#[derive(Serialize)]
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrganizationList {
    organizations: Vec<OrganizationDto>,
    continuation_token: Option<String>,
}

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let limit = state.settings.max_body_bytes;
    let list = warp::path!("api" / "organizations")
        .and(warp::get())
        .and(guard(state.clone(), "organizations.list"))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state(state.clone()))
        .then(
            |_ctx: RequestContext, query, state: Arc<AppState>| async move {
                respond(list(&state, &query).await)
            },
        );
    let create = warp::path!("api" / "organizations")
        .and(warp::post())
        .and(guard(state.clone(), "organizations.create"))
        .and(body::json::<Value>(limit))
        .and(with_state(state.clone()))
        .then(|ctx, body, state: Arc<AppState>| async move {
            respond(create(&state, &ctx, body).await)
        });
    let get = warp::path!("api" / "organizations" / String)
        .and(warp::get())
        .and(guard(state.clone(), "organizations.get"))
        .and(with_state(state.clone()))
        .then(
            |id: String, _ctx, state: Arc<AppState>| async move { respond(get(&state, &id).await) },
        );
    let update = warp::path!("api" / "organizations" / String)
        .and(warp::patch())
        .and(guard(state.clone(), "organizations.update"))
        .and(if_match_header())
        .and(body::json::<Value>(limit))
        .and(with_state(state.clone()))
        .then(
            |id: String, ctx, etag: Option<String>, body, state: Arc<AppState>| async move {
                respond(update(&state, &ctx, &id, etag.as_deref(), body).await)
            },
        );
    let delete = warp::path!("api" / "organizations" / String)
        .and(warp::delete())
        .and(guard(state.clone(), "organizations.delete"))
        .and(if_match_header())
        .and(with_state(state))
        .then(
            |id: String, ctx, etag: Option<String>, state: Arc<AppState>| async move {
                respond(delete(&state, &ctx, &id, etag.as_deref()).await)
            },
        );
    list.or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .boxed()
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

async fn list(state: &AppState, query: &HashMap<String, String>) -> Result<Response, ApiError> {
    let page = page(query)?;
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

async fn create(state: &AppState, ctx: &RequestContext, body: Value) -> Result<Response, ApiError> {
    let fields = Fields::new(body, &["name", "domain", "isActive"])?;
    let new = NewOrganization {
        name: fields.required_str("name")?.to_owned(),
        domain: fields.str("domain")?.map(str::to_owned),
        is_active: fields.bool("isActive")?.unwrap_or(true),
        created_by: Some(ctx.actor()),
    };
    let org = state.services.orgs.create(new, &ctx.change_actor()).await?;
    Ok(one(StatusCode::CREATED, &org))
}

async fn get(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let org = state.services.orgs.get(&org_id(id)?).await?;
    Ok(one(StatusCode::OK, &org))
}

async fn update(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    etag: Option<&str>,
    body: Value,
) -> Result<Response, ApiError> {
    let id = org_id(id)?;
    let condition = if_match(etag)?;
    let fields = Fields::new(body, &["name", "domain", "isActive"])?;
    let update = OrganizationUpdate {
        name: fields.str("name")?.map(str::to_owned),
        domain: fields.nullable_str("domain")?.map(|d| d.map(str::to_owned)),
        is_active: fields.bool("isActive")?,
    };
    let org = state
        .services
        .orgs
        .update(&id, update, &condition, &ctx.change_actor())
        .await?;
    Ok(one(StatusCode::OK, &org))
}

async fn delete(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    etag: Option<&str>,
) -> Result<Response, ApiError> {
    let id = org_id(id)?;
    let condition = if_match(etag)?;
    state
        .services
        .orgs
        .delete(&id, &condition, &ctx.change_actor())
        .await?;
    Ok(no_content())
}

//! One declaration per API operation: where it is, who may call it, what it takes and answers
//! (for the OpenAPI document) and its handler — so the route table, the dispatch and the
//! document cannot drift apart.
//!
//! A resource module lists its operations with [`Endpoint`]'s builder:
//!
//! ```ignore
//! Endpoint::get("organizations.get", "/api/organizations/{orgId}", Access::PlatformAdmin,
//!     "One organization, with its ETag")
//!     .ok::<OrganizationDto>("The organization")
//!     .guarded(|state, ctx, call| async move { get(&state, &ctx, call.param("orgId")).await })
//! ```
//!
//! Guarded operations (everything but [`Access::Public`]) get their caller authorized by the
//! router before the handler runs; public ones authorize inside ([`Call::authorize`]), because
//! their rules depend on the form or workflow they name. Bodies are read only through [`Call`],
//! after authorization, with the limit of who is calling; typed bodies and queries name the
//! offending field in their 400s (`serde_path_to_error`).
//!
//! Must not depend on any resource module; `router.rs` dispatches, `openapi.rs` documents.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::Value;
use warp::http::{HeaderMap, Method};
use warp::reply::Response;

use super::ApiState;
use super::access::{Access, Route};
use super::body::Deferred;
use super::context::{RequestContext, authorize};
use super::error::ApiError;

/// Builds a schema into a generator (request or response side).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// An OpenAPI link from this operation's answer to another operation's parameters.
#[derive(Clone, Debug)]
pub struct Link {
    pub name: &'static str,
    /// The operation id it leads to.
    pub operation: &'static str,
    /// That operation's parameters and where their values are, e.g. `("orgId",
    /// "$response.body#/id")` or `("roleId", "$request.path.roleId")`.
    pub parameters: Vec<(&'static str, &'static str)>,
}

/// What the document says about an operation beyond its route.
#[derive(Clone, Debug, Default)]
pub struct Doc {
    /// Query parameters: the properties of this type's schema.
    pub query: Option<SchemaFn>,
    /// The JSON request body.
    pub request: Option<SchemaFn>,
    /// A body that is not JSON (an upload): its media type.
    pub raw_request: Option<&'static str>,
    /// Success answers.
    pub responses: Vec<(u16, &'static str, Option<SchemaFn>)>,
    /// Error statuses beyond the ones every operation may answer.
    pub errors: Vec<u16>,
    /// Schemas of path parameters beyond a plain string.
    pub params: Vec<(&'static str, Value)>,
    pub links: Vec<Link>,
    /// Answers Server-Sent Events.
    pub event_stream: bool,
    /// `HEAD` is served like `GET`.
    pub head: bool,
}

type Handler = Arc<
    dyn Fn(
            Arc<ApiState>,
            Option<RequestContext>,
            Call,
        ) -> BoxFuture<'static, Result<Response, ApiError>>
        + Send
        + Sync,
>;

/// One operation: its route, its documentation and its handler.
#[derive(Clone)]
pub struct Endpoint {
    pub route: Route,
    pub doc: Doc,
    pub(super) handler: Handler,
}

/// An [`Endpoint`] being declared.
pub struct Builder {
    route: Route,
    doc: Doc,
}

impl Endpoint {
    fn declare(
        method: &'static str,
        id: &'static str,
        path: &'static str,
        access: Access,
        summary: &'static str,
    ) -> Builder {
        Builder {
            route: Route {
                id,
                method,
                path,
                access,
                summary,
            },
            doc: Doc::default(),
        }
    }

    pub fn get(
        id: &'static str,
        path: &'static str,
        access: Access,
        summary: &'static str,
    ) -> Builder {
        Self::declare("GET", id, path, access, summary)
    }

    pub fn post(
        id: &'static str,
        path: &'static str,
        access: Access,
        summary: &'static str,
    ) -> Builder {
        Self::declare("POST", id, path, access, summary)
    }

    pub fn put(
        id: &'static str,
        path: &'static str,
        access: Access,
        summary: &'static str,
    ) -> Builder {
        Self::declare("PUT", id, path, access, summary)
    }

    pub fn patch(
        id: &'static str,
        path: &'static str,
        access: Access,
        summary: &'static str,
    ) -> Builder {
        Self::declare("PATCH", id, path, access, summary)
    }

    pub fn delete(
        id: &'static str,
        path: &'static str,
        access: Access,
        summary: &'static str,
    ) -> Builder {
        Self::declare("DELETE", id, path, access, summary)
    }
}

fn schema_of<T: JsonSchema>() -> SchemaFn {
    |g| g.subschema_for::<T>()
}

impl Builder {
    /// Query parameters, the fields of `Q` (read with [`Call::query`]).
    pub fn query<Q: JsonSchema>(mut self) -> Self {
        // Inline, not a reference: its properties become the operation's parameters.
        self.doc.query = Some(|g| Q::json_schema(g));
        self
    }

    /// A JSON request body of type `B` (read with [`Call::json`]).
    pub fn body<B: JsonSchema>(mut self) -> Self {
        self.doc.request = Some(schema_of::<B>());
        self
    }

    /// A request body that is not JSON (read with [`Call::bytes`]).
    pub fn raw_body(mut self, media_type: &'static str) -> Self {
        self.doc.raw_request = Some(media_type);
        self
    }

    /// Answers `status` with a body of type `T`.
    pub fn answers<T: JsonSchema>(mut self, status: u16, description: &'static str) -> Self {
        self.doc
            .responses
            .push((status, description, Some(schema_of::<T>())));
        self
    }

    pub fn ok<T: JsonSchema>(self, description: &'static str) -> Self {
        self.answers::<T>(200, description)
    }

    pub fn created<T: JsonSchema>(self, description: &'static str) -> Self {
        self.answers::<T>(201, description)
    }

    pub fn accepted<T: JsonSchema>(self, description: &'static str) -> Self {
        self.answers::<T>(202, description)
    }

    /// Answers `status` with no body.
    pub fn empty(mut self, status: u16, description: &'static str) -> Self {
        self.doc.responses.push((status, description, None));
        self
    }

    /// Answers a Server-Sent Events stream.
    pub fn event_stream(mut self, description: &'static str) -> Self {
        self.doc.event_stream = true;
        self.doc.responses.push((200, description, None));
        self
    }

    /// Error statuses beyond the common ones (409, 412, ...).
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        self.doc.errors.extend_from_slice(statuses);
        self
    }

    /// The schema of a path parameter (a plain string otherwise).
    pub fn param(mut self, name: &'static str, schema: Value) -> Self {
        self.doc.params.push((name, schema));
        self
    }

    /// A link: the value at `expression` in this answer fills `operation`'s `parameter`.
    pub fn link(
        self,
        name: &'static str,
        operation: &'static str,
        parameter: &'static str,
        expression: &'static str,
    ) -> Self {
        self.link_all(name, operation, &[(parameter, expression)])
    }

    /// A link filling several of `operation`'s parameters (from this answer or this request).
    pub fn link_all(
        mut self,
        name: &'static str,
        operation: &'static str,
        parameters: &[(&'static str, &'static str)],
    ) -> Self {
        self.doc.links.push(Link {
            name,
            operation,
            parameters: parameters.to_vec(),
        });
        self
    }

    /// Serves `HEAD` like `GET`.
    pub fn with_head(mut self) -> Self {
        self.doc.head = true;
        self
    }

    /// The handler of an operation whose caller the router authorizes first.
    pub fn guarded<F, Fut>(self, handler: F) -> Endpoint
    where
        F: Fn(Arc<ApiState>, RequestContext, Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        Endpoint {
            route: self.route,
            doc: self.doc,
            handler: Arc::new(move |state, ctx, call| {
                let handler = handler.clone();
                Box::pin(async move {
                    let ctx = ctx.ok_or_else(|| {
                        ApiError::Internal("a guarded operation ran without a caller".into())
                    })?;
                    handler(state, ctx, call).await
                })
            }),
        }
    }

    /// The handler of a public operation: it authorizes the caller itself
    /// ([`Call::authorize`]), before reading the body.
    pub fn public<F, Fut>(self, handler: F) -> Endpoint
    where
        F: Fn(Arc<ApiState>, Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        Endpoint {
            route: self.route,
            doc: self.doc,
            handler: Arc::new(move |state, _ctx, call| {
                let handler = handler.clone();
                Box::pin(async move { handler(state, call).await })
            }),
        }
    }
}

/// One request to an operation: its path parameters, query, headers and not-yet-read body.
pub struct Call {
    pub route: &'static str,
    pub method: Method,
    pub headers: HeaderMap,
    /// The raw query string (`""` without one).
    pub query: String,
    pub client: Option<IpAddr>,
    pub(super) params: Vec<(&'static str, String)>,
    pub(super) body: Option<Deferred>,
    /// The body limit of this caller (set once the caller is known).
    pub(super) body_limit: u64,
}

impl Call {
    /// Path parameter `name`, percent-decoded (`""` if the route has no such parameter).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// A request header, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Authorizes the caller of a public operation for route `id` (which may differ from the
    /// operation's own, e.g. one per method), and sets the body limit they are allowed.
    pub async fn authorize(
        &mut self,
        state: &ApiState,
        id: &str,
    ) -> Result<RequestContext, ApiError> {
        let ctx = authorize(state, id, &self.headers, &self.query, self.client).await?;
        self.body_limit = body_limit(state, &ctx);
        Ok(ctx)
    }

    /// The raw body, read now within this caller's limit.
    pub async fn bytes(&mut self) -> Result<Bytes, ApiError> {
        let limit = self.body_limit;
        self.bytes_up_to(limit).await
    }

    /// The raw body, read now within `limit` (uploads, and routes that prove the caller
    /// beyond the principal).
    pub async fn bytes_up_to(&mut self, limit: u64) -> Result<Bytes, ApiError> {
        match self.body.take() {
            Some(body) => body.read(limit).await,
            None => Ok(Bytes::new()),
        }
    }

    /// An upload's body, read now up to `limit`; callers without credentials are also held to
    /// the upload rate of their address.
    pub async fn upload(
        &mut self,
        state: &ApiState,
        ctx: &RequestContext,
        limit: u64,
    ) -> Result<Bytes, ApiError> {
        super::context::take_upload(state, ctx)?;
        self.bytes_up_to(limit).await
    }

    /// A required JSON body of type `T`; a type error names its field.
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let bytes = self.bytes().await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest {
                field: None,
                message: "a JSON request body is required".into(),
            });
        }
        parse_json(&bytes)
    }

    /// An optional JSON body: `T::default()` when there is none.
    pub async fn json_or_default<T: DeserializeOwned + Default>(&mut self) -> Result<T, ApiError> {
        let bytes = self.bytes().await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        parse_json(&bytes)
    }

    /// The query string as `Q`; an unknown or malformed parameter names itself.
    pub fn query<Q: DeserializeOwned>(&self) -> Result<Q, ApiError> {
        parse_query(&self.query)
    }

    /// The `If-Match` header as a write condition.
    pub fn if_match(&self) -> Result<bifrost_store::table::IfMatch, ApiError> {
        super::input::if_match(self.header("if-match"))
    }
}

/// How much body a caller may send: the server's limit, or the small one of callers without
/// credentials.
pub(super) fn body_limit(state: &ApiState, ctx: &RequestContext) -> u64 {
    if ctx.principal.is_authenticated() {
        state.settings.max_body_bytes
    } else {
        state.settings.limits.anonymous_max_body
    }
}

/// JSON into `T`: malformed JSON keeps the parser's position, a type error names the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid_json(&inner);
        }
        field_error(&field, &inner.to_string())
    })?;
    de.end().map_err(|e| ApiError::invalid_json(&e))?;
    Ok(value)
}

/// A query string into `Q`, naming the offending parameter. `code` (the function key's query
/// form) is never a parameter of an operation, and an empty value counts as absent; a
/// parameter given twice is refused by the deserializer (a typo or a repeat must not silently
/// widen a listing: query types that list their parameters `deny_unknown_fields`).
pub fn parse_query<Q: DeserializeOwned>(raw: &str) -> Result<Q, ApiError> {
    let pairs = url::form_urlencoded::parse(raw.as_bytes())
        .filter(|(name, value)| name != "code" && !value.is_empty());
    let cleaned = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(cleaned.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        field_error(&field, &e.into_inner().to_string())
    })
}

/// A 400 naming `path` (serde's `.` path; `?` when unknown), with serde's message made a
/// little friendlier: "unknown field `x`, expected one of ..." names `x` itself.
fn field_error(path: &str, message: &str) -> ApiError {
    // The path of an unknown field ends with it (serde_path_to_error records the key first).
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some(end) = rest.find('`')
    {
        let name = &rest[..end];
        let field = match path {
            "." | "?" | "" => name.to_owned(),
            p if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
            parent => format!("{parent}.{name}"),
        };
        return ApiError::bad_request(field, message.replace('`', "'"));
    }
    if let Some(rest) = message.strip_prefix("duplicate field `")
        && let Some(end) = rest.find('`')
    {
        let name = &rest[..end];
        return ApiError::bad_request(name, format!("{name} is given twice"));
    }
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(end) = rest.find('`')
    {
        let name = &rest[..end];
        let field = match path {
            "." | "?" | "" => name.to_owned(),
            parent => format!("{parent}.{name}"),
        };
        return ApiError::bad_request(field.clone(), format!("{field} is required"));
    }
    let field = match path {
        "." | "?" | "" => None,
        p => Some(p.to_owned()),
    };
    ApiError::BadRequest {
        field,
        message: message.replace('`', "'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Body {
        name: String,
        #[serde(default)]
        is_active: Option<bool>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: u8,
    }

    fn field(e: ApiError) -> Option<String> {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"name": 5}"#).unwrap_err();
        assert_eq!(field(e).as_deref(), Some("name"));
        let e = parse_json::<Body>(br#"{"name": "a", "isactive": true}"#).unwrap_err();
        assert_eq!(field(e).as_deref(), Some("isactive"));
        let e = parse_json::<Body>(br#"{"isActive": true}"#).unwrap_err();
        assert_eq!(field(e).as_deref(), Some("name"));
        let e = parse_json::<Body>(br#"{"name": "a", "inner": {"n": 300}}"#).unwrap_err();
        assert_eq!(field(e).as_deref(), Some("inner.n"));
        let e = parse_json::<Body>(b"{\n \"name\": tru }").unwrap_err();
        assert!(matches!(e, ApiError::InvalidJson { line: 2, .. }), "{e:?}");
        assert!(parse_json::<Body>(br#"{"name": "a", "isActive": null}"#).is_ok());
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Query {
        limit: Option<u16>,
        continuation_token: Option<String>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let q: Query = parse_query("limit=5&continuationToken=abc").unwrap();
        assert_eq!(q.limit, Some(5));
        assert_eq!(
            field(parse_query::<Query>("limit=x").unwrap_err()).as_deref(),
            Some("limit")
        );
        assert_eq!(
            field(parse_query::<Query>("nope=1").unwrap_err()).as_deref(),
            Some("nope")
        );
    }
}

//! Request-body filters: every body is read through one size limit, and JSON errors keep the
//! parser's line and column so the caller can find the mistake.

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use super::error::{ApiError, RequestRejected};

/// The raw body, rejected with 413 as soon as it exceeds `limit` bytes (declared or streamed).
pub fn bytes_limited(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, stream| collect_limited(stream, declared, limit))
}

async fn collect_limited<S, B>(
    stream: S,
    declared: Option<u64>,
    limit: u64,
) -> Result<Bytes, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || warp::reject::custom(RequestRejected(ApiError::PayloadTooLarge { limit }));
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            warp::reject::custom(RequestRejected(ApiError::BadRequest {
                field: None,
                message: format!("request body could not be read: {e}"),
            }))
        })?;
        if body.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            body.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// A body not read yet: public routes authorize the caller first and then read it with the
/// limit that caller is allowed ([`crate::http::context::PublicRequest`]).
pub struct Deferred {
    declared: Option<u64>,
    /// In a mutex only so the request can be shared (`Sync`) while its caller is authorized.
    stream: std::sync::Mutex<BodyStream>,
}

type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

impl Deferred {
    /// Reads the body, refusing with 413 as soon as it exceeds `limit` bytes.
    pub async fn read(self, limit: u64) -> Result<Bytes, super::error::ApiError> {
        let stream = self
            .stream
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        collect_limited(stream, self.declared, limit)
            .await
            .map_err(|rejection| match rejection.find::<RequestRejected>() {
                Some(RequestRejected(e)) => e.clone(),
                None => ApiError::BadRequest {
                    field: None,
                    message: "request body could not be read".into(),
                },
            })
    }
}

/// Extracts the body without reading it.
pub fn deferred() -> impl Filter<Extract = (Deferred,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .map(|declared, stream: _| {
            let stream = futures::StreamExt::map(stream, |chunk: Result<_, warp::Error>| {
                chunk.map(|mut buf| {
                    let n = Buf::remaining(&buf);
                    Buf::copy_to_bytes(&mut buf, n)
                })
            });
            Deferred {
                declared,
                stream: std::sync::Mutex::new(Box::pin(stream) as BodyStream),
            }
        })
}

/// A JSON body of type `T`, within the size limit; malformed JSON is a 400 naming the position.
pub fn json<T: DeserializeOwned + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    bytes_limited(limit).and_then(|bytes: Bytes| async move {
        if bytes.is_empty() {
            return Err(warp::reject::custom(RequestRejected(
                ApiError::BadRequest {
                    field: None,
                    message: "a JSON request body is required".into(),
                },
            )));
        }
        serde_json::from_slice::<T>(&bytes)
            .map_err(|e| warp::reject::custom(RequestRejected(ApiError::invalid_json(&e))))
    })
}

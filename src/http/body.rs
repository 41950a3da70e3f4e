//! Request bodies, taken from the request unread: the router authorizes the caller first, and
//! the operation then reads the body within the limit that caller is allowed (small for callers
//! without credentials), refusing with 413 as soon as it is exceeded, declared or streamed.

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use warp::{Filter, Rejection};

use super::error::ApiError;

/// A body not read yet (see the module documentation).
pub struct Deferred {
    declared: Option<u64>,
    /// In a mutex only so the request can be shared (`Sync`) while its caller is authorized.
    stream: std::sync::Mutex<BodyStream>,
}

type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

impl Deferred {
    /// Reads the body, refusing with 413 as soon as it exceeds `limit` bytes.
    pub async fn read(self, limit: u64) -> Result<Bytes, ApiError> {
        let too_large = || ApiError::PayloadTooLarge { limit };
        if self.declared.is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        let stream = self
            .stream
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut stream = std::pin::pin!(stream);
        let mut body = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest {
                field: None,
                message: format!("request body could not be read: {e}"),
            })?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
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

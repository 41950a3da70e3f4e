//! The Azure Blob Storage backend (also Azurite), on the legacy `azure_storage_blobs` 0.21.
//!
//! Blobs are block blobs written with one Put Blob request, so a write is atomic and gets a new
//! ETag. Reads use one ranged GET covering the whole blob, so bytes and properties come from a
//! single response (never a mix of two versions). Blobs whose names break [`BlobPath`]'s rules
//! (written by other tools) are left out of listings. Must not depend on the local backend.

use std::num::NonZeroU32;

use async_trait::async_trait;
use azure_storage_blobs::prelude::{BlobServiceClient, ClientBuilder, ContainerClient};
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;

use super::{BlobInfo, BlobPath, BlobStore, ContainerName, content_type_or_default};
use crate::azure_account::AzureAccount;
use crate::error::{StoreError, StoreResult};
use crate::queue::azure_http::{client_options, cloud_location, http_status, map_error};

/// One GET asks for this many bytes; far above any blob Bifrost writes, so a read is a single
/// request (the SDK would otherwise fetch 16 MiB chunks, possibly of different versions).
const WHOLE_BLOB_RANGE: u64 = 1 << 40;

/// Blobs in an Azure Storage account (or Azurite).
#[derive(Clone)]
pub struct AzureBlobs {
    service: BlobServiceClient,
}

impl std::fmt::Debug for AzureBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureBlobs")
            .field("endpoint", &self.service.url().map(|u| u.to_string()).ok())
            .finish_non_exhaustive()
    }
}

impl AzureBlobs {
    /// Builds the client from the account's `blob_endpoint`; no request is sent.
    pub fn new(account: &AzureAccount) -> StoreResult<Self> {
        let service = ClientBuilder::with_location(
            cloud_location(account, &account.blob_endpoint),
            account.storage_credentials()?,
        )
        .client_options(client_options()?)
        .blob_service_client();
        Ok(Self { service })
    }

    fn container(&self, container: &ContainerName) -> ContainerClient {
        self.service.container_client(container.as_str())
    }
}

fn blob_what(container: &ContainerName, path: &BlobPath) -> String {
    format!("blob {container}/{path}")
}

/// Distinguishes a missing container from a missing blob, which the caller may expect.
fn map_blob_error(
    container: &ContainerName,
    path: &BlobPath,
    e: &azure_core_legacy::Error,
) -> StoreError {
    match http_status(e) {
        Some((404, "ContainerNotFound")) => StoreError::not_found(format!("container {container}")),
        _ => map_error(&blob_what(container, path), e),
    }
}

fn info_from(name: BlobPath, properties: &azure_storage_blobs::blob::BlobProperties) -> BlobInfo {
    BlobInfo {
        name,
        size: properties.content_length,
        content_type: properties.content_type.clone(),
        etag: properties.etag.to_string(),
        last_modified: properties.last_modified,
    }
}

#[async_trait]
impl BlobStore for AzureBlobs {
    async fn health(&self) -> StoreResult<()> {
        let mut pages = self
            .service
            .list_containers()
            .max_results(NonZeroU32::MIN)
            .into_stream();
        match pages.next().await {
            Some(Err(e)) => Err(map_error("blob service", &e)),
            _ => Ok(()),
        }
    }

    async fn create_container(&self, container: &ContainerName) -> StoreResult<()> {
        match self.container(container).create().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(http_status(&e), Some((409, _))) => Ok(()),
            Err(e) => Err(map_error(&format!("container {container}"), &e)),
        }
    }

    async fn put(
        &self,
        container: &ContainerName,
        path: &BlobPath,
        bytes: Bytes,
        content_type: &str,
    ) -> StoreResult<BlobInfo> {
        let content_type = content_type_or_default(content_type)?;
        let size = bytes.len() as u64;
        let response = self
            .container(container)
            .blob_client(path.as_str())
            .put_block_blob(bytes)
            .content_type(content_type.clone())
            .await
            .map_err(|e| map_blob_error(container, path, &e))?;
        Ok(BlobInfo {
            name: path.clone(),
            size,
            content_type,
            etag: response.etag,
            last_modified: response.last_modified,
        })
    }

    async fn get(
        &self,
        container: &ContainerName,
        path: &BlobPath,
    ) -> StoreResult<(Bytes, BlobInfo)> {
        let mut pages = self
            .container(container)
            .blob_client(path.as_str())
            .get()
            .chunk_size(WHOLE_BLOB_RANGE)
            .into_stream();
        let mut data = BytesMut::new();
        let mut info: Option<BlobInfo> = None;
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // A ranged GET of an empty blob is "416 InvalidRange"; its properties say so.
                Err(e) if matches!(http_status(&e), Some((416, _))) && info.is_none() => {
                    let empty = self.info(container, path).await?;
                    if empty.size == 0 {
                        return Ok((Bytes::new(), empty));
                    }
                    return Err(map_blob_error(container, path, &e));
                }
                Err(e) => return Err(map_blob_error(container, path, &e)),
            };
            if info.is_none() {
                info = Some(info_from(path.clone(), &page.blob.properties));
            }
            let chunk = page
                .data
                .collect()
                .await
                .map_err(|e| map_blob_error(container, path, &e))?;
            data.extend_from_slice(&chunk);
        }
        let mut info = info.ok_or_else(|| StoreError::not_found(blob_what(container, path)))?;
        // On a ranged GET the Content-Length is the range's, which here is the whole blob.
        info.size = data.len() as u64;
        Ok((data.freeze(), info))
    }

    async fn info(&self, container: &ContainerName, path: &BlobPath) -> StoreResult<BlobInfo> {
        let response = self
            .container(container)
            .blob_client(path.as_str())
            .get_properties()
            .await
            .map_err(|e| map_blob_error(container, path, &e))?;
        Ok(info_from(path.clone(), &response.blob.properties))
    }

    async fn delete(&self, container: &ContainerName, path: &BlobPath) -> StoreResult<bool> {
        match self
            .container(container)
            .blob_client(path.as_str())
            .delete()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match http_status(&e) {
                Some((404, "BlobNotFound")) => Ok(false),
                _ => Err(map_blob_error(container, path, &e)),
            },
        }
    }

    async fn list(&self, container: &ContainerName, prefix: &str) -> StoreResult<Vec<BlobInfo>> {
        let mut builder = self.container(container).list_blobs();
        if !prefix.is_empty() {
            builder = builder.prefix(prefix.to_owned());
        }
        let mut pages = builder.into_stream();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| match http_status(&e) {
                Some((404, _)) => StoreError::not_found(format!("container {container}")),
                _ => map_error(&format!("container {container}"), &e),
            })?;
            for blob in page.blobs.blobs() {
                match BlobPath::new(blob.name.clone()) {
                    Ok(name) => out.push(info_from(name, &blob.properties)),
                    Err(_) => tracing::debug!(
                        container = %container,
                        "skipping a blob whose name Bifrost does not accept"
                    ),
                }
            }
        }
        out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok(out)
    }
}

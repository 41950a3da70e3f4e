//! The Azure Storage Queues backend (also Azurite), on the legacy `azure_storage_queues` 0.21.
//!
//! Bodies are base64-encoded on the wire, which is what the Functions queue trigger and
//! Bifrost v1 expect. A message that is not valid base64 UTF-8 (put there by another tool) is
//! delivered verbatim rather than failing the receive, so it can still be poisoned instead of
//! wedging the worker. Azure only knows whole seconds, so visibility durations are rounded up.
//! Messages keep Azure's default time-to-live (7 days); the embedded backend keeps them forever.
//! Must not depend on the SQLite backend.

use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt as _;

use azure_storage_queues::{
    PopReceipt as AzPopReceipt, QueueServiceClient, QueueServiceClientBuilder,
};

use super::azure_http::{client_options, cloud_location, http_status, map_error};
use super::{
    MessageId, PopReceipt, QueueName, QueueStore, ReceivedMessage, lease_lost, validate_batch,
    validate_body, validate_delay,
};
use crate::azure_account::AzureAccount;
use crate::error::{StoreError, StoreResult};

/// Queues in an Azure Storage account (or Azurite).
#[derive(Clone)]
pub struct AzureQueues {
    service: QueueServiceClient,
}

impl std::fmt::Debug for AzureQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureQueues")
            .field("endpoint", &self.service.url().map(|u| u.to_string()).ok())
            .finish_non_exhaustive()
    }
}

impl AzureQueues {
    /// Builds the client from the account's `queue_endpoint`; no request is sent.
    pub fn new(account: &AzureAccount) -> StoreResult<Self> {
        let service = QueueServiceClientBuilder::with_location(
            cloud_location(account, &account.queue_endpoint),
            account.storage_credentials()?,
        )
        .client_options(client_options()?)
        .build();
        Ok(Self { service })
    }
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

fn decode_body(text: String) -> String {
    match BASE64.decode(text.as_bytes()) {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or(text),
        Err(_) => text,
    }
}

fn queue_what(queue: &QueueName) -> String {
    format!("queue {queue}")
}

/// Message-level errors: a missing message or a mismatched receipt means the lease was lost;
/// a missing queue is a plain `NotFound`.
fn map_message_error(
    queue: &QueueName,
    id: &MessageId,
    e: &azure_core_legacy::Error,
) -> StoreError {
    match http_status(e) {
        Some((404, "MessageNotFound")) | Some((400, "PopReceiptMismatch")) => lease_lost(id),
        _ => map_error(&queue_what(queue), e),
    }
}

#[async_trait]
impl QueueStore for AzureQueues {
    async fn health(&self) -> StoreResult<()> {
        let max = NonZeroU32::MIN;
        let mut pages = self.service.list_queues().max_results(max).into_stream();
        match pages.next().await {
            Some(Err(e)) => Err(map_error("queue service", &e)),
            _ => Ok(()),
        }
    }

    async fn create_queue(&self, queue: &QueueName) -> StoreResult<()> {
        match self.service.queue_client(queue.as_str()).create().await {
            Ok(_) => Ok(()),
            // 409 only when it exists with different metadata: it exists, which is all we need.
            Err(e) if matches!(http_status(&e), Some((409, _))) => Ok(()),
            Err(e) => Err(map_error(&queue_what(queue), &e)),
        }
    }

    async fn send(
        &self,
        queue: &QueueName,
        body: &str,
        visibility_delay: Duration,
    ) -> StoreResult<MessageId> {
        validate_body(body)?;
        validate_delay("visibilityDelay", visibility_delay, Duration::ZERO)?;
        let response = self
            .service
            .queue_client(queue.as_str())
            .put_message(BASE64.encode(body.as_bytes()))
            .visibility_timeout(whole_seconds(visibility_delay))
            .await
            .map_err(|e| map_error(&queue_what(queue), &e))?;
        Ok(MessageId(response.queue_message.message_id))
    }

    async fn receive(
        &self,
        queue: &QueueName,
        max_messages: usize,
        visibility_timeout: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        validate_batch(max_messages)?;
        validate_delay(
            "visibilityTimeout",
            visibility_timeout,
            Duration::from_secs(1),
        )?;
        let count = u8::try_from(max_messages)
            .map_err(|_| StoreError::invalid("maxMessages", "must be between 1 and 32"))?;
        let response = self
            .service
            .queue_client(queue.as_str())
            .get_messages()
            .number_of_messages(count)
            .visibility_timeout(whole_seconds(visibility_timeout))
            .await
            .map_err(|e| map_error(&queue_what(queue), &e))?;
        Ok(response
            .messages
            .into_iter()
            .map(|m| ReceivedMessage {
                id: MessageId(m.message_id),
                pop_receipt: PopReceipt(m.pop_receipt),
                body: decode_body(m.message_text),
                dequeue_count: u32::try_from(m.dequeue_count).unwrap_or(u32::MAX),
                inserted_at: m.insertion_time,
                visible_again_at: m.time_next_visible,
            })
            .collect())
    }

    async fn delete(
        &self,
        queue: &QueueName,
        id: &MessageId,
        pop_receipt: &PopReceipt,
    ) -> StoreResult<()> {
        self.service
            .queue_client(queue.as_str())
            .pop_receipt_client(AzPopReceipt::new(id.0.clone(), pop_receipt.0.clone()))
            .delete()
            .await
            .map_err(|e| map_message_error(queue, id, &e))?;
        Ok(())
    }

    async fn update_visibility(
        &self,
        queue: &QueueName,
        message: &ReceivedMessage,
        visibility_timeout: Duration,
    ) -> StoreResult<PopReceipt> {
        validate_delay("visibilityTimeout", visibility_timeout, Duration::ZERO)?;
        // Update Message always rewrites the body, so send the original one back unchanged.
        let response = self
            .service
            .queue_client(queue.as_str())
            .pop_receipt_client(AzPopReceipt::new(
                message.id.0.clone(),
                message.pop_receipt.0.clone(),
            ))
            .update(
                BASE64.encode(message.body.as_bytes()),
                whole_seconds(visibility_timeout),
            )
            .await
            .map_err(|e| map_message_error(queue, &message.id, &e))?;
        Ok(PopReceipt(response.pop_receipt))
    }

    async fn approximate_count(&self, queue: &QueueName) -> StoreResult<u64> {
        let response = self
            .service
            .queue_client(queue.as_str())
            .get_metadata()
            .await
            .map_err(|e| map_error(&queue_what(queue), &e))?;
        Ok(response.approximate_messages_count as u64)
    }
}

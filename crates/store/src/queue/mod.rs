//! At-least-once message queues: the contract ([`QueueStore`]) and its two backends.
//!
//! Async workflow executions travel through a queue. On Azure the Functions host dispatches
//! Azure Storage Queue messages to a queue-trigger function ([`AzureQueues`]); standalone, an
//! in-process worker polls the embedded SQLite queue ([`SqliteQueues`]). Both backends obey the
//! same rules, pinned by `tests/queue_conformance.rs`:
//! - a received message is invisible to other receivers until its visibility timeout passes,
//!   then it reappears with `dequeue_count + 1` and a new pop receipt;
//! - only the latest pop receipt can delete a message or extend its lease; an older one gets
//!   [`StoreError::PreconditionFailed`] (the lease was lost: another receiver may own it now);
//! - bodies are UTF-8 text of at most [`MAX_MESSAGE_BYTES`] bytes, so that their base64 form
//!   fits Azure's 64 KiB message limit; larger bodies are rejected before anything is sent;
//! - messages that keep failing go to `<queue>-poison` ([`QueueStore::move_to_poison`]),
//!   written there first and only then deleted, so a crash in between duplicates, never loses.
//!
//! This module knows nothing about workflows or executions; message bodies are opaque text.

mod azure;
pub(crate) mod azure_http;
mod sqlite;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::{StoreError, StoreResult};

pub use azure::AzureQueues;
pub use sqlite::SqliteQueues;

/// Largest accepted message body in bytes: 48 KiB, which base64-encodes to exactly Azure's
/// 64 KiB message limit.
pub const MAX_MESSAGE_BYTES: usize = 48 * 1024;

/// Most messages one `receive` call may return (Azure's `numofmessages` limit).
pub const MAX_RECEIVE_BATCH: usize = 32;

/// Longest visibility timeout or delay Azure accepts (7 days).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The Functions host's default `maxDequeueCount` before a message is poisoned.
pub const DEFAULT_MAX_DEQUEUE_COUNT: u32 = 5;

/// Suffix of the poison queue, as used by the Azure Functions queue trigger.
pub const POISON_SUFFIX: &str = "-poison";

/// A queue name valid on Azure: 3–63 characters of lower-case letters, digits and single
/// hyphens, starting and ending with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueName(String);

impl QueueName {
    pub fn new(value: impl Into<String>) -> StoreResult<Self> {
        let value = value.into();
        validate_dns_like_name("queueName", &value)?;
        Ok(Self(value))
    }

    /// The poison queue of this queue (`<name>-poison`). Fails when the base name is longer
    /// than 56 characters, because the poison name would exceed 63.
    pub fn poison(&self) -> StoreResult<QueueName> {
        QueueName::new(format!("{}{POISON_SUFFIX}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks Azure's naming rule shared by queues and blob containers.
pub(crate) fn validate_dns_like_name(field: &str, value: &str) -> StoreResult<()> {
    let len = value.chars().count();
    if !(3..=63).contains(&len) {
        return Err(StoreError::invalid(
            field,
            format!("must be 3 to 63 characters long, found {len}"),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(StoreError::invalid(
            field,
            format!("may contain only lower-case letters, digits and '-', found {bad:?}"),
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(StoreError::invalid(
            field,
            "must start and end with a letter or digit",
        ));
    }
    if value.contains("--") {
        return Err(StoreError::invalid(
            field,
            "may not contain consecutive hyphens",
        ));
    }
    Ok(())
}

/// The backend-assigned id of a message (a GUID on Azure, a UUID in SQLite).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageId(pub String);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Proof of the current lease on a received message. It changes on every receive and every
/// visibility update; only the latest one is accepted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PopReceipt(pub String);

impl fmt::Debug for PopReceipt {
    // Receipts are bearer tokens for a message; keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PopReceipt(<redacted>)")
    }
}

/// A message handed to one receiver, invisible to others until `visible_again_at`.
#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    pub id: MessageId,
    pub pop_receipt: PopReceipt,
    pub body: String,
    /// How many times the message has been received, this time included (so ≥ 1).
    pub dequeue_count: u32,
    pub inserted_at: OffsetDateTime,
    /// When the lease ends and the message becomes visible to other receivers.
    pub visible_again_at: OffsetDateTime,
}

/// An at-least-once queue service. Handlers must be idempotent: a message whose lease runs out
/// before it is deleted is delivered again.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Cheap reachability probe; `StoreError::Unavailable` when the backend cannot be reached.
    async fn health(&self) -> StoreResult<()>;

    /// Creates the queue unless it already exists.
    async fn create_queue(&self, queue: &QueueName) -> StoreResult<()>;

    /// Enqueues `body`, invisible for `visibility_delay` (0 to 7 days). The queue must exist.
    async fn send(
        &self,
        queue: &QueueName,
        body: &str,
        visibility_delay: Duration,
    ) -> StoreResult<MessageId>;

    /// Leases up to `max_messages` (1–32) visible messages, oldest first (best effort), for
    /// `visibility_timeout` (1 s to 7 days; Azure rounds sub-second parts up to whole seconds).
    async fn receive(
        &self,
        queue: &QueueName,
        max_messages: usize,
        visibility_timeout: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>>;

    /// Deletes a message under its latest pop receipt. A stale receipt, or a message that is
    /// already gone, yields `StoreError::PreconditionFailed`: the caller's lease was lost.
    async fn delete(
        &self,
        queue: &QueueName,
        id: &MessageId,
        pop_receipt: &PopReceipt,
    ) -> StoreResult<()>;

    /// Extends (or shortens; 0 makes it visible now) the lease of a received message and
    /// returns the new pop receipt, which replaces the old one. Same errors as [`Self::delete`].
    async fn update_visibility(
        &self,
        queue: &QueueName,
        message: &ReceivedMessage,
        visibility_timeout: Duration,
    ) -> StoreResult<PopReceipt>;

    /// Number of messages in the queue, visible or not (approximate on Azure).
    async fn approximate_count(&self, queue: &QueueName) -> StoreResult<u64>;

    /// Copies the message body to `<queue>-poison` (creating it if needed) and then deletes
    /// the original. Write-then-delete means a failure in between leaves a duplicate rather
    /// than losing the message; a lost lease on the delete is reported after the copy exists.
    async fn move_to_poison(
        &self,
        queue: &QueueName,
        message: &ReceivedMessage,
    ) -> StoreResult<()> {
        let poison = queue.poison()?;
        self.create_queue(&poison).await?;
        self.send(&poison, &message.body, Duration::ZERO).await?;
        self.delete(queue, &message.id, &message.pop_receipt).await
    }

    /// [`Self::receive`] with the Functions host's poison policy: messages received more than
    /// `max_dequeue_count` times are moved to `<queue>-poison` instead of being returned, so a
    /// message gets `max_dequeue_count` attempts in all.
    async fn receive_or_poison(
        &self,
        queue: &QueueName,
        max_messages: usize,
        visibility_timeout: Duration,
        max_dequeue_count: u32,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        // Fail before leasing anything if the poison queue's name cannot exist.
        queue.poison()?;
        let received = self
            .receive(queue, max_messages, visibility_timeout)
            .await?;
        let mut keep = Vec::with_capacity(received.len());
        for message in received {
            if message.dequeue_count > max_dequeue_count {
                tracing::warn!(
                    queue = %queue,
                    message_id = %message.id,
                    dequeue_count = message.dequeue_count,
                    "moving message to the poison queue"
                );
                match self.move_to_poison(queue, &message).await {
                    Ok(()) => {}
                    // Someone else already handled it; the poison copy is a harmless duplicate.
                    Err(StoreError::PreconditionFailed { .. }) => {}
                    Err(e) => return Err(e),
                }
            } else {
                keep.push(message);
            }
        }
        Ok(keep)
    }
}

/// Checks a body against the size rule shared by both backends.
pub(crate) fn validate_body(body: &str) -> StoreResult<()> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(StoreError::invalid(
            "message",
            format!(
                "is {} bytes; a queue message may be at most {MAX_MESSAGE_BYTES} bytes \
                 (64 KiB once base64-encoded)",
                body.len()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn validate_delay(field: &str, value: Duration, min: Duration) -> StoreResult<()> {
    if value < min || value > MAX_VISIBILITY {
        return Err(StoreError::invalid(
            field,
            format!(
                "must be between {} s and 7 days, found {:?}",
                min.as_secs(),
                value
            ),
        ));
    }
    Ok(())
}

pub(crate) fn validate_batch(max_messages: usize) -> StoreResult<()> {
    if !(1..=MAX_RECEIVE_BATCH).contains(&max_messages) {
        return Err(StoreError::invalid(
            "maxMessages",
            format!("must be between 1 and {MAX_RECEIVE_BATCH}, found {max_messages}"),
        ));
    }
    Ok(())
}

/// The lease-lost error both backends return for a stale pop receipt.
pub(crate) fn lease_lost(id: &MessageId) -> StoreError {
    StoreError::PreconditionFailed {
        what: format!("queue message {id} (pop receipt)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_azure_rules() {
        for good in ["abc", "a-b-c", "q12", &"a".repeat(63)] {
            assert!(QueueName::new(good).is_ok(), "{good:?} should be accepted");
        }
        for bad in [
            "ab",
            "Abc",
            "a_b",
            "-ab",
            "ab-",
            "a--b",
            "a.b",
            &"a".repeat(64),
            "ab c",
        ] {
            let err = QueueName::new(bad).unwrap_err();
            assert!(err.to_string().contains("queueName"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn poison_name_must_fit() {
        assert_eq!(
            QueueName::new("jobs").unwrap().poison().unwrap().as_str(),
            "jobs-poison"
        );
        assert!(QueueName::new("a".repeat(56)).unwrap().poison().is_ok());
        assert!(QueueName::new("a".repeat(57)).unwrap().poison().is_err());
    }

    #[test]
    fn body_limit_is_inclusive() {
        assert!(validate_body(&"x".repeat(MAX_MESSAGE_BYTES)).is_ok());
        let err = validate_body(&"x".repeat(MAX_MESSAGE_BYTES + 1)).unwrap_err();
        assert!(err.to_string().contains("message"), "{err}");
    }

    #[test]
    fn receipts_do_not_leak_into_debug() {
        assert!(!format!("{:?}", PopReceipt("secret".into())).contains("secret"));
    }
}

//! Queue conformance suite: every case runs against the embedded SQLite backend (temp dir) and
//! the Azure Storage Queues backend (Azurite via `BIFROST_TEST_AZURITE`), so both obey one
//! contract. Each case gets fresh, uniquely named queues. Timing cases sleep past whole-second
//! visibility timeouts because Azure only knows whole seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bifrost_store::StoreError;
use bifrost_store::azure_account::AzureAccount;
use bifrost_store::queue::{
    AzureQueues, MAX_MESSAGE_BYTES, QueueName, QueueStore, ReceivedMessage, SqliteQueues,
};
use tempfile::TempDir;

/// A backend plus whatever must outlive it (the temp dir of the embedded one).
struct Fixture {
    store: Arc<dyn QueueStore>,
    _dir: Option<TempDir>,
}

fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteQueues::open(&dir.path().join("data").join("queues.sqlite")).unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

fn azure() -> Fixture {
    let store = AzureQueues::new(&common::azurite_account()).unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: None,
    }
}

async fn new_queue(store: &dyn QueueStore) -> QueueName {
    let queue = QueueName::new(common::unique("q")).unwrap();
    store.create_queue(&queue).await.unwrap();
    queue
}

/// Sleeps past a lease of `secs` whole seconds, with margin for Azure's second rounding.
async fn outlive_lease(secs: u64) {
    tokio::time::sleep(Duration::from_millis(secs * 1000 + 1300)).await;
}

fn assert_lease_lost(result: Result<impl std::fmt::Debug, StoreError>) {
    match result {
        Err(StoreError::PreconditionFailed { .. }) => {}
        other => panic!("expected a lease-lost PreconditionFailed, got {other:?}"),
    }
}

fn assert_invalid(result: Result<impl std::fmt::Debug, StoreError>, field: &str) {
    match result {
        Err(StoreError::Invalid { field: f, reason }) => {
            assert_eq!(f, field, "wrong field named ({reason})");
        }
        other => panic!("expected Invalid {{ field: {field} }}, got {other:?}"),
    }
}

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_secs(1);

mod cases {
    use super::*;

    pub async fn health_is_ok(store: Arc<dyn QueueStore>) {
        store.health().await.unwrap();
    }

    pub async fn send_receive_delete(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        // XML metacharacters, newlines and non-ASCII must survive the base64 wire format.
        let body = "{\"run\": \"<a & 'b'>\"}\nzażółć 🚀";
        let before = time::OffsetDateTime::now_utc();
        let id = store.send(&queue, body, Duration::ZERO).await.unwrap();

        let got = store.receive(&queue, 1, LONG).await.unwrap();
        assert_eq!(got.len(), 1);
        let msg = &got[0];
        assert_eq!(msg.id, id);
        assert_eq!(msg.body, body);
        assert_eq!(msg.dequeue_count, 1);
        let skew = time::Duration::minutes(2);
        assert!(
            msg.inserted_at > before - skew && msg.inserted_at < before + skew,
            "{msg:?}"
        );
        assert!(msg.visible_again_at > before, "{msg:?}");

        store
            .delete(&queue, &msg.id, &msg.pop_receipt)
            .await
            .unwrap();
        assert!(store.receive(&queue, 32, LONG).await.unwrap().is_empty());
        assert_eq!(store.approximate_count(&queue).await.unwrap(), 0);
        // Deleting again: the lease is gone with the message.
        assert_lease_lost(store.delete(&queue, &msg.id, &msg.pop_receipt).await);
    }

    pub async fn received_message_is_hidden_then_reappears(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        let id = store.send(&queue, "again", Duration::ZERO).await.unwrap();
        let first = store.receive(&queue, 1, SHORT).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            store.receive(&queue, 32, LONG).await.unwrap().is_empty(),
            "a leased message must be invisible to other receivers"
        );
        outlive_lease(1).await;
        let second = store.receive(&queue, 1, LONG).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].id, id);
        assert_eq!(second[0].body, "again");
        assert_eq!(second[0].dequeue_count, 2);
        assert_ne!(second[0].pop_receipt, first[0].pop_receipt);
    }

    pub async fn stale_pop_receipt_cannot_delete(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        store.send(&queue, "x", Duration::ZERO).await.unwrap();
        let old = store.receive(&queue, 1, SHORT).await.unwrap().remove(0);
        outlive_lease(1).await;
        let new = store.receive(&queue, 1, LONG).await.unwrap().remove(0);
        assert_eq!(old.id, new.id);

        assert_lease_lost(store.delete(&queue, &old.id, &old.pop_receipt).await);
        assert_lease_lost(store.update_visibility(&queue, &old, LONG).await);
        // The stale attempts changed nothing: the current holder still owns the message.
        store
            .delete(&queue, &new.id, &new.pop_receipt)
            .await
            .unwrap();
        assert_eq!(store.approximate_count(&queue).await.unwrap(), 0);
    }

    pub async fn update_visibility_extends_and_releases_the_lease(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        store.send(&queue, "lease", Duration::ZERO).await.unwrap();
        let mut msg = store.receive(&queue, 1, SHORT).await.unwrap().remove(0);
        let old_receipt = msg.pop_receipt.clone();
        msg.pop_receipt = store.update_visibility(&queue, &msg, LONG).await.unwrap();
        assert_ne!(msg.pop_receipt, old_receipt);

        outlive_lease(1).await;
        assert!(
            store.receive(&queue, 32, LONG).await.unwrap().is_empty(),
            "the extended lease must outlast the original timeout"
        );
        assert_lease_lost(store.delete(&queue, &msg.id, &old_receipt).await);

        // A zero timeout hands the message back right away, body unchanged.
        store
            .update_visibility(&queue, &msg, Duration::ZERO)
            .await
            .unwrap();
        let again = store.receive(&queue, 1, LONG).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].body, "lease");
        assert_eq!(again[0].dequeue_count, 2);
        store
            .delete(&queue, &again[0].id, &again[0].pop_receipt)
            .await
            .unwrap();
    }

    pub async fn delayed_message_stays_hidden_until_due(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        store.send(&queue, "later", SHORT).await.unwrap();
        assert!(store.receive(&queue, 1, LONG).await.unwrap().is_empty());
        assert_eq!(store.approximate_count(&queue).await.unwrap(), 1);
        outlive_lease(1).await;
        let got = store.receive(&queue, 1, LONG).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, "later");
        assert_eq!(got[0].dequeue_count, 1);
    }

    pub async fn single_producer_order_is_kept(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        let sent: Vec<String> = (0..12).map(|i| format!("m{i:02}")).collect();
        for body in &sent {
            store.send(&queue, body, Duration::ZERO).await.unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..10 {
            let batch = store.receive(&queue, 5, LONG).await.unwrap();
            assert!(batch.len() <= 5, "asked for at most 5, got {}", batch.len());
            got.extend(batch.into_iter().map(|m| m.body));
            if got.len() == sent.len() {
                break;
            }
        }
        assert_eq!(got, sent);
    }

    pub async fn approximate_count_includes_leased_messages(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        assert_eq!(store.approximate_count(&queue).await.unwrap(), 0);
        for i in 0..3 {
            store
                .send(&queue, &format!("{i}"), Duration::ZERO)
                .await
                .unwrap();
        }
        assert_eq!(store.approximate_count(&queue).await.unwrap(), 3);
        let msg = store.receive(&queue, 1, LONG).await.unwrap().remove(0);
        assert_eq!(store.approximate_count(&queue).await.unwrap(), 3);
        store
            .delete(&queue, &msg.id, &msg.pop_receipt)
            .await
            .unwrap();
        assert_eq!(store.approximate_count(&queue).await.unwrap(), 2);
    }

    pub async fn poison_after_max_dequeues(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        let body = "{\"workflow\": \"always-fails\"}";
        store.send(&queue, body, Duration::ZERO).await.unwrap();
        let max = 2;
        for attempt in 1..=max {
            let got = store
                .receive_or_poison(&queue, 1, SHORT, max)
                .await
                .unwrap();
            assert_eq!(got.len(), 1, "attempt {attempt} must still be delivered");
            assert_eq!(got[0].dequeue_count, attempt);
            // The handler "fails": no delete, so the lease runs out.
            outlive_lease(1).await;
        }
        let got = store
            .receive_or_poison(&queue, 1, SHORT, max)
            .await
            .unwrap();
        assert!(
            got.is_empty(),
            "attempt {} must be poisoned, got {got:?}",
            max + 1
        );
        assert_eq!(store.approximate_count(&queue).await.unwrap(), 0);

        let poison = queue.poison().unwrap();
        assert_eq!(poison.as_str(), format!("{queue}-poison"));
        let poisoned = store.receive(&poison, 32, LONG).await.unwrap();
        assert_eq!(poisoned.len(), 1);
        assert_eq!(poisoned[0].body, body);
        assert_eq!(poisoned[0].dequeue_count, 1);
    }

    pub async fn move_to_poison_keeps_the_body(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        store
            .send(&queue, "bad input", Duration::ZERO)
            .await
            .unwrap();
        let msg = store.receive(&queue, 1, LONG).await.unwrap().remove(0);
        store.move_to_poison(&queue, &msg).await.unwrap();
        assert_eq!(store.approximate_count(&queue).await.unwrap(), 0);
        let poisoned = store
            .receive(&queue.poison().unwrap(), 1, LONG)
            .await
            .unwrap();
        assert_eq!(poisoned[0].body, "bad input");
    }

    pub async fn oversize_message_is_rejected_before_sending(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        assert_invalid(
            store
                .send(&queue, &"x".repeat(MAX_MESSAGE_BYTES + 1), Duration::ZERO)
                .await,
            "message",
        );
        // Multi-byte characters count as bytes: 16 385 three-byte characters are too many.
        assert_invalid(
            store
                .send(
                    &queue,
                    &"€".repeat(MAX_MESSAGE_BYTES / 3 + 1),
                    Duration::ZERO,
                )
                .await,
            "message",
        );
        assert_eq!(store.approximate_count(&queue).await.unwrap(), 0);

        // The limit itself is accepted by the backend and round-trips intact.
        let largest = "y".repeat(MAX_MESSAGE_BYTES);
        store.send(&queue, &largest, Duration::ZERO).await.unwrap();
        let got = store.receive(&queue, 1, LONG).await.unwrap();
        assert_eq!(got[0].body, largest);
    }

    pub async fn invalid_arguments_name_the_field(store: Arc<dyn QueueStore>) {
        assert_invalid(QueueName::new("Bad_Queue"), "queueName");
        assert_invalid(QueueName::new("ab"), "queueName");
        let queue = new_queue(&*store).await;
        assert_invalid(store.receive(&queue, 0, LONG).await, "maxMessages");
        assert_invalid(store.receive(&queue, 33, LONG).await, "maxMessages");
        assert_invalid(
            store.receive(&queue, 1, Duration::ZERO).await,
            "visibilityTimeout",
        );
        let eight_days = Duration::from_secs(8 * 24 * 3600);
        assert_invalid(
            store.receive(&queue, 1, eight_days).await,
            "visibilityTimeout",
        );
        assert_invalid(store.send(&queue, "x", eight_days).await, "visibilityDelay");

        // A 60-character queue has no valid poison queue: refused before anything is leased.
        let long = QueueName::new(format!("{}{}", "l".repeat(27), common::unique("q"))).unwrap();
        store.create_queue(&long).await.unwrap();
        store.send(&long, "x", Duration::ZERO).await.unwrap();
        assert_invalid(
            store.receive_or_poison(&long, 1, LONG, 5).await,
            "queueName",
        );
        assert_eq!(
            store.receive(&long, 1, LONG).await.unwrap().len(),
            1,
            "nothing was leased"
        );
    }

    pub async fn missing_queue_is_not_found(store: Arc<dyn QueueStore>) {
        let queue = QueueName::new(common::unique("missing")).unwrap();
        match store.send(&queue, "x", Duration::ZERO).await {
            Err(StoreError::NotFound { what }) => assert!(what.contains(queue.as_str()), "{what}"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert!(matches!(
            store.approximate_count(&queue).await,
            Err(StoreError::NotFound { .. })
        ));
        // Creating twice is fine.
        store.create_queue(&queue).await.unwrap();
        store.create_queue(&queue).await.unwrap();
    }

    pub async fn concurrent_receivers_never_share_a_leased_message(store: Arc<dyn QueueStore>) {
        let queue = new_queue(&*store).await;
        let total = 24;
        for i in 0..total {
            store
                .send(&queue, &format!("job-{i}"), Duration::ZERO)
                .await
                .unwrap();
        }
        let mut workers = Vec::new();
        for _ in 0..6 {
            let store = Arc::clone(&store);
            let queue = queue.clone();
            workers.push(tokio::spawn(async move {
                let mut mine: Vec<ReceivedMessage> = Vec::new();
                loop {
                    let batch = store.receive(&queue, 3, LONG).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch);
                }
            }));
        }
        let mut seen = HashSet::new();
        let mut bodies = HashSet::new();
        for worker in workers {
            for msg in worker.await.unwrap() {
                assert!(seen.insert(msg.id.clone()), "{} was leased twice", msg.id);
                assert_eq!(msg.dequeue_count, 1, "{msg:?}");
                bodies.insert(msg.body);
            }
        }
        assert_eq!(seen.len(), total);
        assert_eq!(bodies.len(), total);
    }
}

/// Expands every case into a `#[tokio::test]` for one backend.
macro_rules! queue_suite {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            use super::*;
            queue_suite!(@cases $fixture;
                health_is_ok,
                send_receive_delete,
                received_message_is_hidden_then_reappears,
                stale_pop_receipt_cannot_delete,
                update_visibility_extends_and_releases_the_lease,
                delayed_message_stays_hidden_until_due,
                single_producer_order_is_kept,
                approximate_count_includes_leased_messages,
                poison_after_max_dequeues,
                move_to_poison_keeps_the_body,
                oversize_message_is_rejected_before_sending,
                invalid_arguments_name_the_field,
                missing_queue_is_not_found,
                concurrent_receivers_never_share_a_leased_message
            );
        }
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: Fixture = $fixture;
                cases::$case(Arc::clone(&fixture.store)).await;
            }
        )*
    };
}

queue_suite!(sqlite_backend, sqlite());
queue_suite!(azure_backend, azure());

/// Backend-specific behaviour that the shared cases cannot express.
mod specific {
    use super::*;

    #[tokio::test]
    async fn embedded_messages_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queues.sqlite");
        let queue = QueueName::new("durable").unwrap();
        {
            let store = SqliteQueues::open(&path).unwrap();
            store.create_queue(&queue).await.unwrap();
            store
                .send(&queue, "persisted", Duration::ZERO)
                .await
                .unwrap();
        }
        let store = SqliteQueues::open(&path).unwrap();
        let got = store.receive(&queue, 1, LONG).await.unwrap();
        assert_eq!(got[0].body, "persisted");
    }

    #[tokio::test]
    async fn azure_unreachable_account_is_unavailable() {
        // Port 1 on loopback refuses connections: nothing listens there.
        let account = AzureAccount::development("127.0.0.1", 1, 1, 1).unwrap();
        let store = AzureQueues::new(&account).unwrap();
        match store.health().await {
            Err(StoreError::Unavailable { .. }) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let queue = QueueName::new("any-queue").unwrap();
        assert!(matches!(
            store.send(&queue, "x", Duration::ZERO).await,
            Err(StoreError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn azure_messages_are_base64_on_the_wire() {
        // The Functions queue trigger decodes base64; read the raw text with the SDK itself.
        let account = common::azurite_account();
        let store = AzureQueues::new(&account).unwrap();
        let queue = new_queue(&store).await;
        store
            .send(&queue, "hello trigger", Duration::ZERO)
            .await
            .unwrap();
        let raw = azure_storage_queues::QueueServiceClientBuilder::with_location(
            azure_storage::CloudLocation::Custom {
                account: account.account.clone(),
                uri: account
                    .queue_endpoint
                    .as_str()
                    .trim_end_matches('/')
                    .to_owned(),
            },
            account.storage_credentials().unwrap(),
        )
        .build()
        .queue_client(queue.as_str())
        .peek_messages()
        .await
        .unwrap();
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode("hello trigger");
        assert_eq!(raw.messages[0].message_text, encoded);
    }
}

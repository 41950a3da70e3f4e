//! Throughput of the queue and blob backends, measured rather than asserted.
//!
//! Run: `cargo bench -p bifrost-store --bench queue_blob` (set `BIFROST_TEST_AZURITE` to also
//! measure the Azure backends against Azurite, which is then the bottleneck). Prints one line
//! per measurement; nothing here is a pass/fail check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_store::azure_account::AzureAccount;
use bifrost_store::blob::{AzureBlobs, BlobPath, BlobStore, ContainerName, LocalBlobs};
use bifrost_store::queue::{AzureQueues, QueueName, QueueStore, SqliteQueues};
use bytes::Bytes;

fn report(what: &str, ops: usize, elapsed: Duration) {
    let per_sec = ops as f64 / elapsed.as_secs_f64();
    let micros = elapsed.as_secs_f64() * 1e6 / ops as f64;
    println!(
        "{what:<58} {ops:>6} ops in {elapsed:>10.3?}  {per_sec:>10.0} ops/s  {micros:>9.1} µs/op"
    );
}

async fn bench_queue(label: &str, store: Arc<dyn QueueStore>, messages: usize, concurrency: usize) {
    let queue = QueueName::new(format!("bench{}", uuid::Uuid::new_v4().simple())).unwrap();
    store.create_queue(&queue).await.unwrap();
    let body = "{\"workflow\":\"bench\",\"parameters\":{\"n\":1}}";

    let start = Instant::now();
    for _ in 0..messages {
        store.send(&queue, body, Duration::ZERO).await.unwrap();
    }
    report(
        &format!("{label}: send (sequential)"),
        messages,
        start.elapsed(),
    );

    let start = Instant::now();
    let mut received = 0;
    while received < messages {
        let batch = store
            .receive(&queue, 32, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "queue drained early");
        for msg in &batch {
            store
                .delete(&queue, &msg.id, &msg.pop_receipt)
                .await
                .unwrap();
        }
        received += batch.len();
    }
    report(
        &format!("{label}: receive(32) + delete each"),
        messages,
        start.elapsed(),
    );

    // Concurrent workers: send + receive + delete per message, the worker loop's shape.
    let per_worker = messages / concurrency;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, queue) = (Arc::clone(&store), queue.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                store.send(&queue, body, Duration::ZERO).await.unwrap();
                for msg in store
                    .receive(&queue, 1, Duration::from_secs(60))
                    .await
                    .unwrap()
                {
                    store
                        .delete(&queue, &msg.id, &msg.pop_receipt)
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    report(
        &format!("{label}: send+receive+delete, {concurrency} workers"),
        per_worker * concurrency,
        start.elapsed(),
    );
}

async fn bench_blobs(label: &str, store: Arc<dyn BlobStore>, small: usize, large: usize) {
    let container = ContainerName::new(format!("bench{}", uuid::Uuid::new_v4().simple())).unwrap();
    store.create_container(&container).await.unwrap();
    let small_body = Bytes::from(vec![b'x'; 4096]);
    let paths: Vec<BlobPath> = (0..small)
        .map(|i| BlobPath::new(format!("runs/{:03}/result-{i}.json", i % 50)).unwrap())
        .collect();

    let start = Instant::now();
    for p in &paths {
        store
            .put(&container, p, small_body.clone(), "application/json")
            .await
            .unwrap();
    }
    report(&format!("{label}: put 4 KiB"), small, start.elapsed());

    let start = Instant::now();
    for p in &paths {
        store.get(&container, p).await.unwrap();
    }
    report(&format!("{label}: get 4 KiB"), small, start.elapsed());

    let start = Instant::now();
    let listed = store.list(&container, "runs/").await.unwrap();
    assert_eq!(listed.len(), small);
    report(
        &format!("{label}: list {small} blobs (one call)"),
        1,
        start.elapsed(),
    );

    let big = Bytes::from(vec![7u8; 5 * 1024 * 1024]);
    let p = BlobPath::new("big/5mib.bin").unwrap();
    let start = Instant::now();
    for _ in 0..large {
        store.put(&container, &p, big.clone(), "").await.unwrap();
    }
    let put = start.elapsed();
    report(&format!("{label}: put 5 MiB"), large, put);
    let start = Instant::now();
    for _ in 0..large {
        store.get(&container, &p).await.unwrap();
    }
    let get = start.elapsed();
    report(&format!("{label}: get 5 MiB"), large, get);
    let mib = (5 * large) as f64;
    println!(
        "{label}: 5 MiB blobs: put {:.0} MiB/s, get {:.0} MiB/s",
        mib / put.as_secs_f64(),
        mib / get.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let queues = SqliteQueues::open(&dir.path().join("queues.sqlite")).unwrap();
    bench_queue("sqlite queue", Arc::new(queues), 4000, 8).await;
    let blobs = LocalBlobs::open(&dir.path().join("blobs")).unwrap();
    bench_blobs("local blobs", Arc::new(blobs), 1000, 10).await;

    if let Ok(conn) = std::env::var("BIFROST_TEST_AZURITE") {
        let account = AzureAccount::from_connection_string(&conn).unwrap();
        bench_queue(
            "azurite queue",
            Arc::new(AzureQueues::new(&account).unwrap()),
            500,
            8,
        )
        .await;
        bench_blobs(
            "azurite blobs",
            Arc::new(AzureBlobs::new(&account).unwrap()),
            300,
            5,
        )
        .await;
    } else {
        println!("BIFROST_TEST_AZURITE not set: Azure backends not measured");
    }
}

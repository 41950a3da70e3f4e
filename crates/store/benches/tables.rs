//! Table-store benchmark: embedded SQLite throughput (batched inserts, point reads, one
//! 1,000-row filtered page) and, when `BIFROST_TEST_AZURITE` is set, the Azure backend's own
//! CPU time against Azurite's for the same insert workload.
//!
//! Run: `cargo bench -p bifrost-store --bench tables`. For the Azure half also export
//! `BIFROST_TEST_AZURITE` (connection string) and `BIFROST_BENCH_AZURITE_PID` (Azurite's pid);
//! `BIFROST_BENCH_ONLY=azure` skips the embedded half.
//! Prints a table; asserts nothing (performance is reported, not tested).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_store::azure_account::AzureAccount;
use bifrost_store::table::{
    AzureTables, Batch, Column, Entity, Query, SqliteTables, TableName, TableStore, prop,
};
use bifrost_store::{PartitionKey, RowKey};

const PARTITIONS: usize = 10;
const ROWS_PER_PARTITION: usize = 10_000;

fn entity(p: usize, r: usize) -> Entity {
    Entity::new(
        PartitionKey::new(format!("org-{p:04}")).unwrap(),
        RowKey::new(format!("row-{r:08}")).unwrap(),
    )
    .with("Name", format!("workflow execution {r}"))
    .with(
        "Status",
        if r.is_multiple_of(3) {
            "Failed"
        } else {
            "Success"
        },
    )
    .with("N", r as i32)
    .with("Big", r as i64 * 1_000_000)
    .with("Duration", r as f64 / 7.0)
    .with(
        "Started",
        time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(r as i64),
    )
}

async fn insert_batches(
    store: &dyn TableStore,
    table: &TableName,
    partitions: usize,
    rows: usize,
) -> usize {
    let mut n = 0;
    for p in 0..partitions {
        for chunk_start in (0..rows).step_by(100) {
            let batch = (chunk_start..(chunk_start + 100).min(rows))
                .fold(Batch::new(), |b, r| b.insert(entity(p, r)));
            n += batch.len();
            store.batch(table, &batch).await.unwrap();
        }
    }
    n
}

fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after "pid (comm) ".
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn ticks_to_secs(ticks: u64) -> f64 {
    // USER_HZ is 100 on Linux x86_64.
    ticks as f64 / 100.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn row(name: &str, value: String, goal: &str) {
    println!("| {name:<46} | {value:>20} | {goal:<16} |");
}

async fn embedded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteTables::open(dir.path()).unwrap());
    let table = TableName::new("bench").unwrap();
    store.create_table_if_missing(&table).await.unwrap();

    let start = Instant::now();
    let n = insert_batches(store.as_ref(), &table, PARTITIONS, ROWS_PER_PARTITION).await;
    let secs = start.elapsed().as_secs_f64();
    row(
        "sqlite: batched inserts (100/batch, 6 props)",
        format!("{:.0} ent/s", n as f64 / secs),
        ">= 50,000/s",
    );

    // Single-entity inserts from 16 concurrent tasks: the shape of many requests each writing
    // a row or two, which the writer thread's group commit serves.
    let per_task = 1_000usize;
    let start = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            let table = table.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let mut e = entity(t, i);
                    e.partition_key = PartitionKey::new(format!("single-{t:02}")).unwrap();
                    store.insert(&table, &e).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    row(
        "sqlite: single inserts, 16 concurrent tasks",
        format!("{:.0} ent/s", (16 * per_task) as f64 / secs),
        "",
    );

    // Point reads: one task, then 8 concurrent tasks.
    let reads = 20_000usize;
    let start = Instant::now();
    for i in 0..reads {
        let (p, r) = (i % PARTITIONS, (i * 7919) % ROWS_PER_PARTITION);
        let got = store
            .get(
                &table,
                &PartitionKey::new(format!("org-{p:04}")).unwrap(),
                &RowKey::new(format!("row-{r:08}")).unwrap(),
            )
            .await
            .unwrap();
        assert!(got.is_some());
    }
    let secs = start.elapsed().as_secs_f64();
    row(
        "sqlite: point reads, sequential",
        format!("{:.0} reads/s", reads as f64 / secs),
        ">= 20,000/s",
    );

    let start = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            let table = table.clone();
            tokio::spawn(async move {
                for i in 0..reads / 8 {
                    let (p, r) = ((i + t) % PARTITIONS, (i * 7919 + t) % ROWS_PER_PARTITION);
                    store
                        .get(
                            &table,
                            &PartitionKey::new(format!("org-{p:04}")).unwrap(),
                            &RowKey::new(format!("row-{r:08}")).unwrap(),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    row(
        "sqlite: point reads, 8 concurrent tasks",
        format!("{:.0} reads/s", reads as f64 / secs),
        ">= 20,000/s",
    );

    // One 1,000-row page out of a 10,000-row partition, with a non-key filter (every row is
    // decoded and evaluated until the page is full: 3,000 rows scanned).
    let q = Query::new().filter(
        Column::PartitionKey.eq("org-0003") & prop("Status").eq("Failed") & prop("N").ge(0),
    );
    let mut times = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        let page = store.query(&table, &q).await.unwrap();
        times.push(start.elapsed());
        assert_eq!(page.entities.len(), 1000);
    }
    row(
        "sqlite: one 1,000-row filtered page (median)",
        format!("{:.2} ms", median(times).as_secs_f64() * 1000.0),
        "< 5 ms",
    );
}

async fn azure(conn: &str) {
    let account = AzureAccount::from_connection_string(conn).unwrap();
    let store = Arc::new(AzureTables::new(&account).unwrap());
    let table = TableName::new(format!("bench{}", uuid::Uuid::new_v4().simple())).unwrap();
    store.create_table_if_missing(&table).await.unwrap();
    let azurite_pid = std::env::var("BIFROST_BENCH_AZURITE_PID").ok();

    // Workload 1: 5,000 entities in batches of 100. Workload 2: 2,000 single inserts from 16
    // concurrent tasks.
    for workload in ["batched", "single x16"] {
        let me_before = cpu_ticks("self").unwrap();
        let azurite_before = azurite_pid.as_deref().and_then(cpu_ticks);
        let start = Instant::now();
        let n = if workload == "batched" {
            insert_batches(store.as_ref(), &table, 1, 5_000).await
        } else {
            let tasks: Vec<_> = (0..16)
                .map(|t| {
                    let store = store.clone();
                    let table = table.clone();
                    tokio::spawn(async move {
                        for i in 0..125 {
                            store.insert(&table, &entity(1 + t, i)).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            2_000
        };
        let wall = start.elapsed().as_secs_f64();
        let me = ticks_to_secs(cpu_ticks("self").unwrap() - me_before);
        let azurite = azurite_before
            .zip(azurite_pid.as_deref().and_then(cpu_ticks))
            .map(|(before, after)| ticks_to_secs(after - before));
        row(
            &format!("azure/azurite: {workload} inserts"),
            format!("{:.0} ent/s", n as f64 / wall),
            "(Azurite-bound)",
        );
        match azurite {
            Some(az) => row(
                &format!("azure/azurite: {workload}: client CPU / Azurite CPU"),
                format!("{me:.2}s / {az:.2}s = {:.1}%", 100.0 * me / az.max(0.01)),
                "<= 10%",
            ),
            None => row(
                &format!("azure/azurite: {workload}: client CPU"),
                format!("{me:.2}s"),
                "set AZURITE_PID",
            ),
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| {:<46} | {:>20} | {:<16} |",
        "measurement", "result", "goal"
    );
    println!("|{:-<48}|{:-<22}|{:-<18}|", "", "", "");
    // BIFROST_BENCH_ONLY=azure skips the embedded half (for profiling the Azure client).
    if std::env::var("BIFROST_BENCH_ONLY").as_deref() != Ok("azure") {
        runtime.block_on(embedded());
    }
    match std::env::var("BIFROST_TEST_AZURITE") {
        Ok(conn) => runtime.block_on(azure(&conn)),
        Err(_) => println!("(BIFROST_TEST_AZURITE not set: Azure backend not measured)"),
    }
}

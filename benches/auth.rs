//! Function-key authentication benchmark: `FunctionKeys::authenticate` with a warm cache (the
//! steady state of every key-authenticated request), against the same call with caching off
//! (one SQLite point read per call), plus one hash-chained audit append for scale.
//!
//! Run: `cargo bench -p bifrost --bench auth`. Prints a table; asserts nothing (performance is
//! reported, not tested). Embedded SQLite in a temp folder; no other services needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost::audit::{AuditEvent, AuditEventType, AuditLog};
use bifrost::auth::{FunctionKeys, FunctionKeysOptions};
use bifrost_store::Scope;
use bifrost_store::table::{SqliteTables, TableStore};

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>, total: Duration) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Stats {
        mean: total / samples.len() as u32,
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn row(name: &str, n: usize, s: &Stats) {
    println!(
        "{name:<44} {n:>8} {:>10.2} {:>10.2} {:>10.2}",
        s.mean.as_secs_f64() * 1e6,
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6
    );
}

async fn measure<F, Fut>(n: usize, mut call: F) -> Stats
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        call().await;
        samples.push(t.elapsed());
    }
    stats(samples, start.elapsed())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TableStore> = Arc::new(SqliteTables::open(dir.path()).unwrap());
        let keys = FunctionKeys::open(store.clone(), FunctionKeysOptions::default())
            .await
            .unwrap();
        let uncached = FunctionKeys::open(
            store.clone(),
            FunctionKeysOptions {
                cache_ttl: Duration::ZERO,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // A realistic population: the looked-up key is one of many.
        for i in 0..200 {
            keys.create(&format!("k{i}"), Scope::Global, None, "bench")
                .await
                .unwrap();
        }
        let (_, raw) = keys
            .create("bench", Scope::Global, None, "bench")
            .await
            .unwrap();
        let raw = raw.expose().to_owned();
        keys.authenticate(&raw).await.unwrap();
        uncached.authenticate(&raw).await.unwrap();

        println!(
            "{:<44} {:>8} {:>10} {:>10} {:>10}",
            "operation", "n", "mean µs", "p50 µs", "p99 µs"
        );
        let warm = measure(200_000, || async {
            keys.authenticate(&raw).await.unwrap();
        })
        .await;
        row("authenticate, warm cache", 200_000, &warm);

        // Same id, another (well-formed) secret: changing the first secret character keeps
        // the encoding canonical.
        let first = raw.len() - 43;
        let swapped = if &raw[first..=first] == "A" { "B" } else { "A" };
        let bad = format!("{}{swapped}{}", &raw[..first], &raw[first + 1..]);
        let rejected = measure(200_000, || async {
            assert!(keys.authenticate(&bad).await.is_err());
        })
        .await;
        row(
            "authenticate, wrong secret (warm cache)",
            200_000,
            &rejected,
        );

        let cold = measure(5_000, || async {
            uncached.authenticate(&raw).await.unwrap();
        })
        .await;
        row("authenticate, no cache (SQLite point read)", 5_000, &cold);

        let secrets = std::sync::Arc::new(
            bifrost_secrets::LocalSecrets::open(&dir.path().join("secrets"), None).unwrap(),
        );
        let audit = AuditLog::open(store.clone(), secrets).await.unwrap();
        let mut n = 0u64;
        let appends = measure(2_000, || {
            n += 1;
            let event =
                AuditEvent::new(AuditEventType::KeyUsed, "key:bench", Scope::Global).detail("n", n);
            let audit = &audit;
            async move {
                audit.append(event).await.unwrap();
            }
        })
        .await;
        row("audit append (SQLite, one instance)", 2_000, &appends);
        let t = Instant::now();
        let report = audit.verify(true).await.unwrap();
        assert!(report.ok);
        println!(
            "audit verify, full: {} entries in {:.1} ms",
            report.checked,
            t.elapsed().as_secs_f64() * 1e3
        );
        // What a periodic check pays as the chain grows: the entries since the last checkpoint.
        for n in 0..100u64 {
            let event =
                AuditEvent::new(AuditEventType::KeyUsed, "key:bench", Scope::Global).detail("n", n);
            audit.append(event).await.unwrap();
        }
        let t = Instant::now();
        let report = audit.verify(false).await.unwrap();
        assert!(report.ok);
        println!(
            "audit verify, from the checkpoint: {} new entries (chain of {}) in {:.1} ms",
            report.checked,
            report.from + report.checked - 1,
            t.elapsed().as_secs_f64() * 1e3
        );
    });
}

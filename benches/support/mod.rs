//! What the HTTP benches share: the release `bifrost serve` on a free loopback port with a
//! platform-wide function key created through the CLI (rate limit off, warnings-only logs), and
//! the small helpers for their settings and percentiles.
#![allow(dead_code)] // each bench uses its own subset

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running server; killed when dropped.
pub struct BenchServer {
    pub port: u16,
    /// Raw platform-wide function key (`x-functions-key`).
    pub key: String,
    child: Child,
}

impl BenchServer {
    /// `BENCH_BINARY` runs another build (an earlier commit's, to compare in one run).
    pub fn start(data: &Path, workspace: &Path) -> Self {
        let bin = std::env::var("BENCH_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_bifrost").to_owned());
        let bin = bin.as_str();
        let key = Command::new(bin)
            .args(["keys", "create", "bench", "--data-dir"])
            .arg(data)
            .output()
            .unwrap();
        assert!(
            key.status.success(),
            "{}",
            String::from_utf8_lossy(&key.stderr)
        );
        let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args(["serve", "--port", &port.to_string(), "--data-dir"])
            .arg(data)
            .arg("--workspace")
            .arg(workspace)
            .env("BIFROST_RATE_LIMIT", "0")
            .env("BIFROST_LOG", "warn")
            .stdout(Stdio::null())
            // BENCH_SERVER_STDERR=1 shows the server's own output (when profiling it).
            .stderr(if std::env::var_os("BENCH_SERVER_STDERR").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        Self { port, key, child }
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A numeric bench setting from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A comma-separated list of numbers from the environment, or `default`.
pub fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.split(',').map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// The `p` quantile (0..1) of sorted latencies.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

//! Execution metrics over a time window: counts by status, success rate, and p50/p95 duration
//! per workflow and per organization.
//!
//! A platform read across every scope (the dashboard is for platform administrators): records
//! are newest-first by row key, so "started since" is one row-key range per partition and only
//! the columns the numbers need are read.

use std::collections::BTreeMap;

use bifrost_store::StoreResult;
use bifrost_store::scope::GLOBAL_PARTITION;
use bifrost_store::table::{Column, Query, Value as TableValue};
use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;

use super::{Executions, table_name};

/// Numbers of one group of executions (all, one workflow, one organization).
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub total: u64,
    /// Executions per status (only statuses that occurred).
    pub by_status: BTreeMap<String, u64>,
    /// `Success` among finished runs (0..1); `None` while nothing finished.
    pub success_rate: Option<f64>,
    /// Duration percentiles of finished runs, in milliseconds.
    pub p50_duration_ms: Option<u64>,
    pub p95_duration_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    #[serde(flatten)]
    pub overall: Stats,
    pub by_workflow: BTreeMap<String, Stats>,
    /// Keyed by organization id; `GLOBAL` for platform-scope runs.
    pub by_org: BTreeMap<String, Stats>,
}

#[derive(Default)]
struct Accumulator {
    by_status: BTreeMap<String, u64>,
    durations: Vec<u64>,
}

impl Accumulator {
    fn add(&mut self, status: &str, duration: Option<u64>) {
        *self.by_status.entry(status.to_owned()).or_default() += 1;
        if let Some(d) = duration {
            self.durations.push(d);
        }
    }

    fn finish(mut self) -> Stats {
        self.durations.sort_unstable();
        let finished: u64 = self
            .by_status
            .iter()
            .filter(|(s, _)| {
                super::ExecutionStatus::parse(s).is_some_and(super::ExecutionStatus::is_finished)
            })
            .map(|(_, n)| n)
            .sum();
        let success = self.by_status.get("Success").copied().unwrap_or(0);
        Stats {
            total: self.by_status.values().sum(),
            success_rate: (finished > 0).then(|| success as f64 / finished as f64),
            p50_duration_ms: percentile(&self.durations, 50),
            p95_duration_ms: percentile(&self.durations, 95),
            by_status: self.by_status,
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

impl Executions {
    /// Metrics of every execution started at or after `since`, in every scope.
    pub async fn metrics(&self, since: OffsetDateTime) -> StoreResult<Metrics> {
        let ms = (since.unix_timestamp_nanos() / 1_000_000).clamp(0, 9_999_999_999_999) as i64;
        // Newest-first keys: everything started at or after `since` sorts at or before this.
        let last = format!("x:{:013}`", 9_999_999_999_999 - ms);
        let rows = self
            .tables
            .query_all(
                &table_name()?,
                &Query::new()
                    .filter(Column::RowKey.ge("x:") & Column::RowKey.lt(last.as_str()))
                    .select(["Status", "WorkflowName", "DurationMs"]),
            )
            .await?;
        let mut overall = Accumulator::default();
        let mut by_workflow: BTreeMap<String, Accumulator> = BTreeMap::new();
        let mut by_org: BTreeMap<String, Accumulator> = BTreeMap::new();
        for row in &rows {
            let status = row.get("Status").and_then(TableValue::as_str).unwrap_or("");
            let workflow = row
                .get("WorkflowName")
                .and_then(TableValue::as_str)
                .unwrap_or("");
            let duration = row
                .get("DurationMs")
                .and_then(TableValue::as_i64)
                .filter(|_| {
                    super::ExecutionStatus::parse(status)
                        .is_some_and(super::ExecutionStatus::is_finished)
                })
                .map(|d| d.max(0) as u64);
            let org = row.partition_key.as_str();
            overall.add(status, duration);
            by_workflow
                .entry(workflow.to_owned())
                .or_default()
                .add(status, duration);
            by_org
                .entry(if org.eq_ignore_ascii_case(GLOBAL_PARTITION) {
                    GLOBAL_PARTITION.to_owned()
                } else {
                    org.to_owned()
                })
                .or_default()
                .add(status, duration);
        }
        Ok(Metrics {
            overall: overall.finish(),
            by_workflow: by_workflow
                .into_iter()
                .map(|(k, v)| (k, v.finish()))
                .collect(),
            by_org: by_org.into_iter().map(|(k, v)| (k, v.finish())).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
    }

    #[test]
    fn success_rate_counts_finished_runs_only() {
        let mut a = Accumulator::default();
        a.add("Success", Some(10));
        a.add("Failed", Some(30));
        a.add("Running", None);
        a.add("Success", Some(20));
        let s = a.finish();
        assert_eq!(s.total, 4);
        assert_eq!(s.success_rate, Some(2.0 / 3.0));
        assert_eq!(s.p50_duration_ms, Some(20));
        assert_eq!(s.by_status["Running"], 1);
    }
}

//! Cron schedules of workflows: the expression evaluator and the per-workflow schedule state.
//!
//! [`cron`] is pure computation (parse, next runs, description, warnings); [`state`] keeps one
//! row per scheduled workflow for a timer-driven scheduler. Neither knows HTTP or the engine:
//! the HTTP module and the scheduler pass registry data in. Invariant: an expression that
//! [`cron::Cron::parse`] rejects is never claimed or run.

pub mod cron;
pub mod state;

pub use cron::{Cron, CronError, INTERVAL_SAMPLES, SHORT_INTERVAL_SECONDS};
/// The schedules the workspace declares (`@workflow(schedule=...)`).
pub fn declared(workflows: &[bifrost_engine::WorkflowInfo]) -> Vec<DeclaredSchedule> {
    workflows
        .iter()
        .filter_map(|w| {
            w.schedule.as_ref().map(|expression| DeclaredSchedule {
                workflow_name: w.name.clone(),
                expression: expression.clone(),
            })
        })
        .collect()
}

pub use state::{
    Claim, DeclaredSchedule, DisabledReason, SCHEDULES_TABLE, ScheduleError, ScheduleState,
    ScheduleStore, SyncReport,
};

//! Every state an execution record can be in (v1's `ExecutionStatus`), stored and sent as v1's
//! names (`"Pending"`, `"Running"`, ...), so records written before this type existed read the
//! same. The engine's outcome (`bifrost_engine::ExecutionStatus`) is the finished subset.
//!
//! Depends on nothing but the engine's outcome type.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The life of a run: `Pending` (queued) → `Running` → a finished state; `Cancelling` while a
/// cancellation is on its way to the instance running it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ExecutionStatus {
    Pending,
    Running,
    Success,
    Failed,
    Timeout,
    CompletedWithErrors,
    Cancelling,
    Cancelled,
}

impl ExecutionStatus {
    /// Every state, in v1's order.
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::Running,
        Self::Success,
        Self::Failed,
        Self::Timeout,
        Self::CompletedWithErrors,
        Self::Cancelling,
        Self::Cancelled,
    ];

    /// The states a run never leaves.
    pub const FINISHED: [Self; 5] = [
        Self::Success,
        Self::Failed,
        Self::Timeout,
        Self::CompletedWithErrors,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Success => "Success",
            Self::Failed => "Failed",
            Self::Timeout => "Timeout",
            Self::CompletedWithErrors => "CompletedWithErrors",
            Self::Cancelling => "Cancelling",
            Self::Cancelled => "Cancelled",
        }
    }

    /// The state named `name` exactly as stored; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn is_finished(self) -> bool {
        Self::FINISHED.contains(&self)
    }

    /// Every state's name (for documents and error messages).
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|s| s.as_str()).collect()
    }
}

impl From<bifrost_engine::ExecutionStatus> for ExecutionStatus {
    fn from(outcome: bifrost_engine::ExecutionStatus) -> Self {
        use bifrost_engine::ExecutionStatus as Outcome;
        match outcome {
            Outcome::Success => Self::Success,
            Outcome::Failed => Self::Failed,
            Outcome::CompletedWithErrors => Self::CompletedWithErrors,
            Outcome::Timeout => Self::Timeout,
            Outcome::Cancelled => Self::Cancelled,
        }
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_v1_s_and_round_trip() {
        for status in ExecutionStatus::ALL {
            assert_eq!(ExecutionStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
        }
        assert_eq!(ExecutionStatus::parse("running"), None);
        assert!(ExecutionStatus::Cancelled.is_finished());
        assert!(!ExecutionStatus::Cancelling.is_finished());
        assert_eq!(
            ExecutionStatus::from(bifrost_engine::ExecutionStatus::Timeout),
            ExecutionStatus::Timeout
        );
    }
}

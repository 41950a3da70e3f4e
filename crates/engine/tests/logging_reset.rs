//! Capture survives workspace code that resets logging (`basicConfig(force=True)` removes root handlers).
//! Its own binary: the reset changes process-wide logging for every later execution.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bifrost_engine::ExecutionStatus;
use common::*;
use serde_json::json;

#[tokio::test]
async fn capture_is_reattached_after_basic_config_force() {
    add(
        "reset_logging.py",
        r#"
import logging
from bifrost import workflow

@workflow(name="reset_force", description="x")
async def reset_force():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(message)s", force=True)
    logging.info("after force")
    return 1

@workflow(name="reset_after", description="x")
async def reset_after():
    logging.getLogger("after").warning("captured again")
    return 2
"#,
    )
    .await;
    let o = run("reset_force", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    // basicConfig's new handler writes to sys.stderr, which is still routed to the run.
    assert!(
        o.logs
            .iter()
            .any(|l| l.source == "stderr" && l.message == "INFO:after force"),
        "{o:?}"
    );
    let o = run("reset_after", json!({})).await;
    assert!(
        o.logs
            .iter()
            .any(|l| l.source == "logging:after" && l.message == "captured again"),
        "{o:?}"
    );
}

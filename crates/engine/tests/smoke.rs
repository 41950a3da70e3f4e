//! First light: the engine starts, reports its Python version and runs sync and async workflows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bifrost_engine::{ExecutionStatus, ResultType};
use common::*;
use serde_json::json;

#[tokio::test]
async fn python_version_is_the_embedded_one() {
    assert_eq!(env().engine.python_version(), "3.11.7");
}

#[tokio::test]
async fn async_and_sync_workflows_run() {
    add(
        "smoke_basic.py",
        r#"
from bifrost import workflow, param

@workflow(name="smoke_async", description="async")
@param("who", "string", default_value="world")
async def smoke_async(context, who="world"):
    return {"hello": who, "org": context.org_name}

@workflow(name="smoke_sync", description="sync")
def smoke_sync(who: str = "x"):
    return f"plain {who}"
"#,
    )
    .await;
    let o = run("smoke_async", json!({"who": "bob"})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(o.result, Some(json!({"hello": "bob", "org": "Contoso"})));
    assert_eq!(o.result_type, Some(ResultType::Json));
    let o = run("smoke_sync", json!({"who": "amy"})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(o.result, Some(json!("plain amy")));
    assert_eq!(o.result_type, Some(ResultType::Text));
}

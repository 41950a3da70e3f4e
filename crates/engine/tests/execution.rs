//! Execution semantics: context-parameter rules, inputs, results and JSON conversion, errors,
//! data providers, log/print capture under concurrency, and secret masking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use bifrost_engine::{EngineError, ExecutionStatus, ResultType};
use common::*;
use serde_json::json;

const CONTEXT_RULES: &str = r#"
from bifrost import workflow, ExecutionContext, OrganizationContext

@workflow(name="ctx_named", description="x")
async def ctx_named(context, a=1):
    return [type(context).__name__, a]

@workflow(name="ctx_annotated", description="x")
async def ctx_annotated(ctx: ExecutionContext, a=1):
    return [ctx.org_id, a]

@workflow(name="ctx_string_annotation", description="x")
async def ctx_string_annotation(_context: "ExecutionContext", a=1):
    return [_context.email, a]

@workflow(name="ctx_legacy_annotation", description="x")
async def ctx_legacy_annotation(c: OrganizationContext):
    return c.caller.name

@workflow(name="ctx_none", description="x")
async def ctx_none(a=1, b=2):
    return [a, b]

@workflow(name="ctx_first_is_data", description="x")
async def ctx_first_is_data(ctx, a=1):
    return [ctx, a]

@workflow(name="ctx_extra", description="x")
async def ctx_extra(context, a=1):
    return {"a": a, "extra": context.extra_inputs, "has_global": "surprise" in globals()}

@workflow(name="ctx_kwargs", description="x")
async def ctx_kwargs(a=1, **rest):
    return {"a": a, "rest": rest}

@workflow(name="ctx_required", description="x")
async def ctx_required(context, needed):
    return needed

@workflow(name="ctx_multiple", description="x")
async def ctx_multiple(context, **rest):
    return sorted(rest)

@workflow(name="ctx_props", description="x")
async def ctx_props(context):
    return {
        "user_id": context.user_id, "email": context.email, "name": context.name, "scope": context.scope,
        "org": [context.organization.id, context.organization.name, context.organization.is_active, context.organization.org_id] if context.organization else None,
        "org_id": context.org_id, "org_name": context.org_name, "global": context.is_global_scope,
        "admin": context.is_platform_admin, "fk": context.is_function_key, "execution_id": context.execution_id,
        "by": [context.executed_by, context.executed_by_email, context.executed_by_name],
    }

@workflow(name="ctx_from_sdk", description="x")
async def ctx_from_sdk():
    import bifrost
    return bifrost.__version__
"#;

#[tokio::test]
async fn context_parameter_rules() {
    add("exec_ctx.py", CONTEXT_RULES).await;
    let ok = |o: bifrost_engine::ExecutionOutcome| {
        assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
        o.result.unwrap()
    };
    assert_eq!(
        ok(run("ctx_named", json!({"a": 5})).await),
        json!(["ExecutionContext", 5])
    );
    assert_eq!(
        ok(run("ctx_annotated", json!({})).await),
        json!(["org-1", 1])
    );
    assert_eq!(
        ok(run("ctx_string_annotation", json!({"a": 2})).await),
        json!(["amy@example.com", 2])
    );
    assert_eq!(
        ok(run("ctx_legacy_annotation", json!({})).await),
        json!("Amy Admin")
    );
    assert_eq!(ok(run("ctx_none", json!({"b": 3})).await), json!([1, 3]));
    assert_eq!(
        ok(run("ctx_first_is_data", json!({"ctx": "data", "a": 2})).await),
        json!(["data", 2])
    );
    // Extra keys are not injected as module globals (v1 did, racing between concurrent runs).
    assert_eq!(
        ok(run("ctx_extra", json!({"a": 2, "surprise": true})).await),
        json!({"a": 2, "extra": {"surprise": true}, "has_global": false})
    );
    assert_eq!(
        ok(run("ctx_kwargs", json!({"a": 2, "x": 1, "y": [1]})).await),
        json!({"a": 2, "rest": {"x": 1, "y": [1]}})
    );
    let o = run("ctx_required", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Failed);
    let err = o.error.unwrap();
    assert_eq!(err.error_type, "TypeError");
    assert!(
        err.message
            .contains("missing 1 required positional argument: 'needed'"),
        "{}",
        err.message
    );
    assert!(err.traceback.contains("Traceback"));
    let o = run("ctx_multiple", json!({"org": 1, "context": 2})).await;
    assert!(
        o.error
            .unwrap()
            .message
            .contains("got multiple values for argument 'context' (hint:"),
        "multiple-values hint"
    );
    assert_eq!(
        ok(run("ctx_multiple", json!({"org": 1})).await),
        json!(["org"])
    );

    let mut req = request("ctx_props", json!({}));
    req.execution_id = "exec-props-1".into();
    req.context.is_platform_admin = true;
    req.context.is_function_key = true;
    let o = env().engine.execute(req).await.unwrap();
    assert_eq!(
        o.result.unwrap(),
        json!({
            "user_id": "user-1", "email": "amy@example.com", "name": "Amy Admin", "scope": "org-1",
            "org": ["org-1", "Contoso", true, "org-1"], "org_id": "org-1", "org_name": "Contoso", "global": false,
            "admin": true, "fk": true, "execution_id": "exec-props-1",
            "by": ["user-1", "amy@example.com", "Amy Admin"],
        })
    );
    let mut req = request("ctx_props", json!({}));
    req.context.organization = None;
    let r = env().engine.execute(req).await.unwrap().result.unwrap();
    assert_eq!(
        (r["scope"].clone(), r["org_id"].clone(), r["global"].clone()),
        (json!("GLOBAL"), json!(null), json!(true))
    );
    assert_eq!(ok(run("ctx_from_sdk", json!({})).await), json!("1.0.0"));
}

#[tokio::test]
async fn results_statuses_and_json_conversion() {
    add(
        "exec_results.py",
        r#"
import datetime, decimal, uuid, enum, dataclasses
from bifrost import workflow, UserError, ValidationError

class Color(enum.Enum):
    RED = "red"

@dataclasses.dataclass
class Point:
    x: int
    y: int

@workflow(name="res_types", description="x")
async def res_types():
    return {
        "dt": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "d": datetime.date(2026, 1, 2),
        "dec": decimal.Decimal("1.5"),
        "dec_int": decimal.Decimal("10"),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "set": {3, 1, 2},
        "bytes": b"hi",
        "enum": Color.RED,
        "tuple": (1, 2),
        "point": Point(1, 2),
        "unicode": "héllo ✓",
    }

@workflow(name="res_bad_type", description="x")
async def res_bad_type():
    return {"ok": 1, "bad": object()}

@workflow(name="res_nan", description="x")
async def res_nan():
    return float("nan")

@workflow(name="res_partial", description="x")
async def res_partial():
    return {"success": False, "error": "half done"}

@workflow(name="res_html", description="x")
async def res_html():
    return "  <p>hi</p>"

@workflow(name="res_text", description="x")
async def res_text():
    return "less < more"

@workflow(name="res_none", description="x")
async def res_none():
    return None

@workflow(name="res_user_error", description="x")
async def res_user_error():
    raise UserError("Mailbox is full")

@workflow(name="res_validation", description="x")
async def res_validation():
    raise ValidationError("bad input")
"#,
    )
    .await;
    let o = run("res_types", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result.unwrap(),
        json!({
            "dt": "2026-01-02T03:04:05+00:00", "d": "2026-01-02", "dec": 1.5, "dec_int": 10,
            "uuid": "12345678-1234-5678-1234-567812345678", "set": [1, 2, 3], "bytes": "aGk=",
            "enum": "red", "tuple": [1, 2], "point": {"x": 1, "y": 2}, "unicode": "héllo ✓",
        })
    );
    let o = run("res_bad_type", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Failed);
    let err = o.error.unwrap();
    assert_eq!(err.error_type, "ResultSerializationError");
    assert!(
        err.message.contains("type 'builtins.object'"),
        "{}",
        err.message
    );
    assert_eq!(
        run("res_nan", json!({})).await.error.unwrap().error_type,
        "ResultSerializationError"
    );
    let o = run("res_partial", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::CompletedWithErrors);
    assert_eq!(o.result.unwrap()["error"], "half done");
    let o = run("res_html", json!({})).await;
    assert_eq!(
        (o.result_type, o.result),
        (Some(ResultType::Html), Some(json!("  <p>hi</p>")))
    );
    assert_eq!(
        run("res_text", json!({})).await.result_type,
        Some(ResultType::Text)
    );
    let o = run("res_none", json!({})).await;
    assert_eq!(
        (o.status, o.result, o.result_type),
        (
            ExecutionStatus::Success,
            Some(json!(null)),
            Some(ResultType::Json)
        )
    );
    let o = run("res_user_error", json!({})).await;
    let err = o.error.clone().unwrap();
    assert!(err.is_user_error);
    assert_eq!(
        (err.error_type.as_str(), err.message.as_str()),
        ("UserError", "Mailbox is full")
    );
    assert_eq!(messages(&o), ["Mailbox is full"]);
    let o = run("res_validation", json!({})).await;
    assert!(!o.error.as_ref().unwrap().is_user_error);
    assert_eq!(o.logs[0].message, "An error occurred during execution");
    assert!(o.logs.iter().skip(1).all(|l| l.level == "TRACEBACK"));
    assert!(
        o.logs
            .iter()
            .any(|l| l.message.contains("ValidationError: bad input"))
    );
}

#[tokio::test]
async fn request_errors() {
    add("exec_req.py", "from bifrost import workflow\n@workflow(name='req_ok', description='x')\nasync def req_ok():\n    import asyncio\n    await asyncio.sleep(0.3)\n").await;
    let engine = &env().engine;
    assert!(
        matches!(engine.execute(request("nope_missing", json!({}))).await, Err(EngineError::WorkflowNotFound(n)) if n == "nope_missing")
    );
    assert!(matches!(
        engine
            .execute_data_provider(request("req_ok", json!({})))
            .await,
        Err(EngineError::DataProviderNotFound(_))
    ));
    let mut a = request("req_ok", json!({}));
    a.execution_id = "dup-1".into();
    let b = a.clone();
    let e2 = engine.clone();
    let first = tokio::spawn(async move { e2.execute(a).await });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        matches!(engine.execute(b).await, Err(EngineError::DuplicateExecution(id)) if id == "dup-1")
    );
    assert_eq!(
        first.await.unwrap().unwrap().status,
        ExecutionStatus::Success
    );
    let mut z = request("req_ok", json!({}));
    z.timeout = Some(std::time::Duration::ZERO);
    assert!(
        matches!(engine.execute(z).await, Err(EngineError::InvalidRequest(m)) if m.contains("timeout"))
    );
}

#[tokio::test]
async fn data_provider_results_are_validated() {
    add(
        "exec_dp.py",
        r#"
from bifrost import data_provider

@data_provider(name="dp_not_list", description="x")
async def dp_not_list():
    return {"label": "a"}

@data_provider(name="dp_no_label", description="x")
async def dp_no_label():
    return [{"label": "a", "value": 1}, {"value": 2}]

@data_provider(name="dp_ok", description="x")
def dp_ok(prefix: str = "p"):
    return [{"label": f"{prefix}{i}", "value": i} for i in range(3)]
"#,
    )
    .await;
    let engine = &env().engine;
    let o = engine
        .execute_data_provider(request("dp_not_list", json!({})))
        .await
        .unwrap();
    assert_eq!(o.status, ExecutionStatus::Failed);
    assert_eq!(
        o.error.unwrap().message,
        "Data provider must return a list, got dict"
    );
    let o = engine
        .execute_data_provider(request("dp_no_label", json!({})))
        .await
        .unwrap();
    assert_eq!(
        o.error.unwrap().message,
        "Data provider option [1]: 'label' must be a string"
    );
    let o = engine
        .execute_data_provider(request("dp_ok", json!({"prefix": "n"})))
        .await
        .unwrap();
    assert_eq!(o.options().unwrap()[2].label, "n2");
}

#[tokio::test]
async fn logs_and_prints_of_concurrent_executions_do_not_mix() {
    add(
        "exec_capture.py",
        r#"
import asyncio, logging, sys
from bifrost import workflow

log = logging.getLogger("capture.test")

@workflow(name="cap_async", description="x")
async def cap_async(tag: str):
    for i in range(5):
        log.info("%s log %d", tag, i)
        print(f"{tag} print {i}")
        await asyncio.sleep(0.002)
    print(f"{tag} partial", end="")
    print(f"{tag} to stderr", file=sys.stderr)
    log.debug("%s debug", tag)
    return tag

@workflow(name="cap_sync", description="x")
def cap_sync(tag: str):
    import time
    for i in range(3):
        logging.warning(f"{tag} warn {i}")
        print(f"{tag} sync print {i}")
        time.sleep(0.002)
    return tag
"#,
    )
    .await;
    let mut handles = Vec::new();
    for i in 0..24 {
        let name = if i % 3 == 0 { "cap_sync" } else { "cap_async" };
        let tag = format!("T{i:02}");
        handles.push(tokio::spawn(async move {
            (tag.clone(), run(name, json!({"tag": tag})).await)
        }));
    }
    for h in handles {
        let (tag, o) = h.await.unwrap();
        assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
        for l in &o.logs {
            assert!(
                l.message.starts_with(&tag),
                "{tag} got foreign line {:?}",
                l.message
            );
        }
        let seqs: Vec<u64> = o.logs.iter().map(|l| l.sequence).collect();
        assert_eq!(seqs, (1..=o.logs.len() as u64).collect::<Vec<_>>());
        assert!(o.logs.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        if o.result == Some(json!(tag)) && o.logs.len() == 6 {
            assert_eq!(o.logs[0].level, "WARNING");
            assert_eq!(o.logs[0].source, "logging:root");
            assert_eq!(o.logs[1].source, "stdout");
        } else {
            let summary: Vec<_> = o
                .logs
                .iter()
                .map(|l| (l.level.as_str(), l.source.as_str()))
                .collect();
            assert_eq!(summary.len(), 13, "{summary:?}");
            assert_eq!(summary[0], ("INFO", "logging:capture.test"));
            assert_eq!(summary[1], ("INFO", "stdout"));
            assert_eq!(summary[10], ("WARNING", "stderr"));
            assert_eq!(summary[11], ("DEBUG", "logging:capture.test"));
            // The unterminated print is flushed at the end.
            assert_eq!(o.logs[12].message, format!("{tag} partial"));
        }
    }
}

#[tokio::test]
async fn secrets_are_masked_in_logs_results_and_errors() {
    let env = env();
    env.host
        .set_secret("org-1--halo-client-secret", "hunter2-very-secret");
    env.host.set_config(
        Some("org-1"),
        "halo_api_key",
        json!("cfg-\"quoted\"-secret"),
        true,
    );
    env.host
        .set_config(None, "plain_setting", json!("visible-value"), false);
    add(
        "exec_mask.py",
        r#"
import logging
from bifrost import workflow, secrets, config

@workflow(name="mask_all", description="x")
async def mask_all(fail: bool = False):
    s = await secrets.get("org-1--halo-client-secret")
    k = await config.get("halo_api_key")
    p = await config.get("plain_setting")
    logging.info(f"using {s} and {k} and {p}")
    print("secret is", s)
    if fail:
        raise RuntimeError(f"auth failed for {s}")
    return {"token": s, "key": k, "plain": p}
"#,
    )
    .await;
    let o = run("mask_all", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(json!({"token": "***", "key": "***", "plain": "visible-value"}))
    );
    assert_eq!(
        messages(&o),
        ["using *** and *** and visible-value", "secret is ***"]
    );
    let o = run("mask_all", json!({"fail": true})).await;
    let err = o.error.clone().unwrap();
    assert_eq!(err.message, "auth failed for ***");
    assert!(!err.traceback.contains("hunter2"), "{}", err.traceback);
    assert!(o.logs.iter().all(|l| !l.message.contains("hunter2")));
    // Masking is per execution: a run that never read the secret is untouched.
    add("exec_mask2.py", "from bifrost import workflow\n@workflow(name='mask_none', description='x')\nasync def mask_none():\n    return 'hunter2-very-secret'\n").await;
    assert_eq!(
        run("mask_none", json!({})).await.result,
        Some(json!("hunter2-very-secret"))
    );
    // Values the caller knows are secret (e.g. resolved into the legacy config) are masked up front.
    let mut req = request("mask_none", json!({}));
    req.mask = vec!["very-secret".into()];
    assert_eq!(
        env.engine.execute(req).await.unwrap().result,
        Some(json!("hunter2-***"))
    );
}

#[tokio::test]
async fn many_concurrent_async_workflows_share_the_loops() {
    add(
        "exec_many.py",
        "import asyncio\nfrom bifrost import workflow\n@workflow(name='many_sleep', description='x')\nasync def many_sleep(i: int):\n    await asyncio.sleep(0.05)\n    return i\n",
    )
    .await;
    let handles: Vec<_> = (0..200)
        .map(|i| tokio::spawn(async move { run("many_sleep", json!({"i": i})).await }))
        .collect();
    let mut seen = HashSet::new();
    for h in handles {
        let o = h.await.unwrap();
        assert_eq!(o.status, ExecutionStatus::Success);
        seen.insert(o.result.unwrap().as_i64().unwrap());
    }
    assert_eq!(seen.len(), 200);
}

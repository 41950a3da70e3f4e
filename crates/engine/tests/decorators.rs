//! `@workflow`, `@param`, `@data_provider`: every argument, defaults, validation errors, and inference.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bifrost_engine::{ExecutionMode, ParameterInfo, WorkspaceError};
use common::*;
use serde_json::json;

fn import_error(file: &std::path::Path) -> WorkspaceError {
    let reg = env().engine.registry();
    reg.errors
        .iter()
        .find(|e| e.file == file)
        .cloned()
        .unwrap_or_else(|| panic!("no error for {file:?}: {:#?}", reg.errors))
}

fn params(name: &str) -> Vec<ParameterInfo> {
    env()
        .engine
        .registry()
        .workflow(name)
        .unwrap_or_else(|| panic!("{name} not registered"))
        .parameters
        .clone()
}

#[tokio::test]
async fn every_workflow_argument_is_recorded() {
    let path = add(
        "dec_all_args.py",
        r#"
from bifrost import workflow

@workflow(
    name="dec_all_args",
    description="All arguments",
    category="Ops",
    tags=["a", "b"],
    execution_mode="sync",
    timeout_seconds=120,
    retry_policy={"max_attempts": 4, "backoffSeconds": 3},
    schedule="*/15 * * * *",
    endpoint_enabled=True,
    allowed_methods=["get", "DELETE"],
    disable_global_key=True,
    public_endpoint=True,
)
async def dec_all_args():
    return 1

@workflow(name="dec_defaults", description="Defaults")
async def dec_defaults():
    return 1

@workflow(name="dec_endpoint_default_mode", description="x", endpoint_enabled=True)
async def dec_endpoint_default_mode():
    return 1

@workflow(name="dec_async_endpoint", description="x", endpoint_enabled=True, execution_mode="async")
async def dec_async_endpoint():
    return 1
"#,
    )
    .await;
    let reg = env().engine.registry();
    let w = reg.workflow("dec_all_args").unwrap();
    assert_eq!(w.description, "All arguments");
    assert_eq!(w.category, "Ops");
    assert_eq!(w.tags, ["a", "b"]);
    assert_eq!(w.execution_mode, ExecutionMode::Sync);
    assert_eq!(w.timeout_seconds, 120);
    assert_eq!(
        w.retry_policy,
        Some(json!({"maxAttempts": 4, "backoffSeconds": 3, "maxBackoffSeconds": 60}))
    );
    assert_eq!(w.schedule.as_deref(), Some("*/15 * * * *"));
    assert!(w.endpoint_enabled && w.disable_global_key && w.public_endpoint);
    assert_eq!(w.allowed_methods, ["GET", "DELETE"]);
    assert_eq!(w.source_file_path, path);
    assert_eq!(w.function, "dec_all_args");
    assert_eq!(w.module, "dec_all_args");
    assert!(w.is_async);

    let d = reg.workflow("dec_defaults").unwrap();
    assert_eq!(d.category, "General");
    assert!(d.tags.is_empty());
    assert_eq!(d.execution_mode, ExecutionMode::Async);
    assert_eq!(d.timeout_seconds, 1800);
    assert_eq!(d.retry_policy, None);
    assert_eq!(d.schedule, None);
    assert!(!d.endpoint_enabled && !d.disable_global_key && !d.public_endpoint);
    assert_eq!(d.allowed_methods, ["POST"]);
    assert!(d.parameters.is_empty());
    assert_eq!(
        reg.workflow("dec_endpoint_default_mode")
            .unwrap()
            .execution_mode,
        ExecutionMode::Sync
    );
    assert_eq!(
        reg.workflow("dec_async_endpoint").unwrap().execution_mode,
        ExecutionMode::Async
    );
}

#[tokio::test]
async fn param_forms_defaults_and_source_order() {
    add(
        "dec_params.py",
        r#"
from bifrost import workflow, param, data_provider

@workflow(name="dec_params", description="params")
@param("first_name", "string", "Given name", True, {"pattern": "^[A-Z]"}, "dp_names", "Ann", "Help")
@param("count", type="int", default_value=3)
@param("ratio", "float")
@param("enabled", "bool")
@param("payload", "json")
@param("items", "list")
@param("contact", "email", label="E-mail")
async def dec_params(first_name, count=3, ratio=0.5, enabled=False, payload=None, items=None, contact=None):
    return 1

@workflow(name="dec_gen_a_param", description="early Gen A form")
@param("name", str, "Name to greet", required=False, default="World")
async def dec_gen_a_param(name="World"):
    return name

@data_provider(name="dec_provider", description="dp", category="Lists", cache_ttl_seconds=0)
@param("filter", "string", required=True)
async def dec_provider(filter):
    return []
"#,
    )
    .await;
    let p = params("dec_params");
    let names: Vec<_> = p
        .iter()
        .map(|p| (p.name.as_str(), p.kind.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("first_name", "string"),
            ("count", "int"),
            ("ratio", "float"),
            ("enabled", "bool"),
            ("payload", "json"),
            ("items", "list"),
            ("contact", "email")
        ]
    );
    let first = &p[0];
    assert_eq!(first.label.as_deref(), Some("Given name"));
    assert!(first.required);
    assert_eq!(first.validation, Some(json!({"pattern": "^[A-Z]"})));
    assert_eq!(first.data_provider.as_deref(), Some("dp_names"));
    assert_eq!(first.default_value, Some(json!("Ann")));
    assert_eq!(first.help_text.as_deref(), Some("Help"));
    assert_eq!(p[1].label.as_deref(), Some("Count"));
    assert!(!p[1].required);
    assert_eq!(p[1].default_value, Some(json!(3)));
    assert_eq!(p[6].label.as_deref(), Some("E-mail"));
    let g = params("dec_gen_a_param");
    assert_eq!(
        (g[0].kind.as_str(), g[0].default_value.clone()),
        ("string", Some(json!("World")))
    );
    let reg = env().engine.registry();
    let dp = reg.data_provider("dec_provider").unwrap();
    assert_eq!((dp.category.as_str(), dp.cache_ttl_seconds), ("Lists", 0));
    assert_eq!(dp.parameters[0].name, "filter");
    assert!(dp.parameters[0].required);
    let plain = add("dec_dp_default.py", "from bifrost import data_provider\n@data_provider(name='dec_dp_default', description='d')\nasync def f():\n    return []\n").await;
    let reg = env().engine.registry();
    let d = reg.data_provider("dec_dp_default").unwrap();
    assert_eq!((d.category.as_str(), d.cache_ttl_seconds), ("General", 300));
    assert_eq!(d.source_file_path, plain);
}

#[tokio::test]
async fn validation_errors_name_file_and_line() {
    let cases: [(&str, &str, u32, &str); 9] = [
        (
            "dec_bad_type.py",
            "@param('x', 'number')",
            3,
            "Invalid type 'number' for parameter 'x'. Must be one of: bool, email, float, int, json, list, string",
        ),
        (
            "dec_bad_name.py",
            "@workflow(name='Bad Name', description='d')",
            3,
            "Invalid workflow name 'Bad Name'",
        ),
        (
            "dec_bad_timeout.py",
            "@workflow(name='dec_t', description='d', timeout_seconds=0)",
            3,
            "Invalid timeout_seconds 0: must be an integer from 1 to 7200",
        ),
        (
            "dec_bad_timeout2.py",
            "@workflow(name='dec_t2', description='d', timeout_seconds=7201)",
            3,
            "from 1 to 7200",
        ),
        (
            "dec_bad_mode.py",
            "@workflow(name='dec_m', description='d', execution_mode='later')",
            3,
            "Invalid execution_mode 'later'",
        ),
        (
            "dec_bad_method.py",
            "@workflow(name='dec_h', description='d', allowed_methods=['FETCH'])",
            3,
            "Invalid HTTP method 'FETCH'",
        ),
        (
            "dec_bad_retry.py",
            "@workflow(name='dec_r', description='d', retry_policy={'maxAttempts': 11})",
            3,
            "retry_policy.maxAttempts 11",
        ),
        (
            "dec_bad_ttl.py",
            "@data_provider(name='dec_ttl', description='d', cache_ttl_seconds=-1)",
            3,
            "Invalid cache_ttl_seconds -1",
        ),
        (
            "dec_bad_kw.py",
            "@workflow(name='dec_k', description='d', colour='red')",
            3,
            "unexpected keyword argument 'colour'",
        ),
    ];
    for (file, decorator, line, msg) in cases {
        let src = format!(
            "from bifrost import workflow, param, data_provider\n\n{decorator}\nasync def f(x=None):\n    return 1\n"
        );
        let path = add(file, &src).await;
        let err = import_error(&path);
        assert_eq!(err.line, Some(line), "{file}: {err:?}");
        assert!(err.message.contains(msg), "{file}: {}", err.message);
        assert!(
            err.error_type == "ValueError" || err.error_type == "TypeError",
            "{file}: {}",
            err.error_type
        );
    }
}

#[tokio::test]
async fn parameters_inferred_from_hints_defaults_and_docstrings() {
    add(
        "dec_infer.py",
        r#"
import datetime, enum
from typing import Literal, Optional, List, Dict
from bifrost import workflow, ExecutionContext

class Tier(enum.Enum):
    GOLD = 1
    SILVER = 2

@workflow(name="dec_infer", description="inferred")
async def dec_infer(
    ctx: ExecutionContext,
    name: str,
    age: int,
    score: float = 1.5,
    active: bool = True,
    tags: list[str] = [],
    legacy_tags: List[int] = None,
    data: dict = None,
    raw: Dict[str, int] = None,
    nickname: Optional[str] = None,
    team: str | None = None,
    mode: Literal["fast", "slow"] = "fast",
    tier: Tier = Tier.GOLD,
    when: datetime.datetime = None,
    day: Optional[datetime.date] = None,
    untyped=7,
    **extra,
):
    """Do things.

    :param name: The user's name.
    :param int age: Age in years.
    """
    return {"when": when, "tier": tier.name, "day": day}

@workflow(name="dec_infer_google", description="google")
def dec_infer_google(context, site: str, limit: int = 10):
    """Summary line.

    Args:
        site (str): The site code,
            continued on the next line.
        limit: Maximum rows.

    Returns:
        Nothing useful.
    """
    return site
"#,
    )
    .await;
    let p = params("dec_infer");
    let summary: Vec<_> = p
        .iter()
        .map(|p| (p.name.as_str(), p.kind.as_str(), p.required))
        .collect();
    assert_eq!(
        summary,
        [
            ("name", "string", true),
            ("age", "int", true),
            ("score", "float", false),
            ("active", "bool", false),
            ("tags", "list", false),
            ("legacy_tags", "list", false),
            ("data", "json", false),
            ("raw", "json", false),
            ("nickname", "string", false),
            ("team", "string", false),
            ("mode", "string", false),
            ("tier", "int", false),
            ("when", "datetime", false),
            ("day", "date", false),
            ("untyped", "int", false),
        ]
    );
    assert_eq!(p[0].help_text.as_deref(), Some("The user's name."));
    assert_eq!(p[1].help_text.as_deref(), Some("Age in years."));
    assert_eq!(p[2].default_value, Some(json!(1.5)));
    assert_eq!(p[2].label.as_deref(), Some("Score"));
    assert_eq!(
        p[10]
            .options
            .as_ref()
            .unwrap()
            .iter()
            .map(|o| o.value.clone())
            .collect::<Vec<_>>(),
        [json!("fast"), json!("slow")]
    );
    assert_eq!(p[11].options.as_ref().unwrap()[0].label, "GOLD");
    assert_eq!(p[11].default_value, Some(json!(1)));
    let g = params("dec_infer_google");
    assert_eq!(
        g[0].help_text.as_deref(),
        Some("The site code, continued on the next line.")
    );
    assert_eq!(g[1].help_text.as_deref(), Some("Maximum rows."));
    assert_eq!(g[1].default_value, Some(json!(10)));

    let o = run("dec_infer", json!({"name": "a", "age": 3, "tier": 2, "when": "2026-01-02T03:04:05Z", "day": "2026-02-03"})).await;
    assert_eq!(o.status, bifrost_engine::ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(json!({"when": "2026-01-02T03:04:05+00:00", "tier": "SILVER", "day": "2026-02-03"}))
    );
}

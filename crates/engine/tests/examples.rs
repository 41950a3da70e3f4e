//! The example workspace (`examples/workspace`, original SDK style: Gen C plus Gen A/B shims) runs unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bifrost_engine::{Caller, ExecutionMode, ExecutionStatus, ResultType};
use common::*;
use serde_json::json;

fn engine() -> &'static bifrost_engine::Engine {
    &env_with(true).engine
}

#[tokio::test]
async fn example_workspace_imports_cleanly() {
    let reg = engine().registry();
    assert!(reg.errors.is_empty(), "{:#?}", reg.errors);
    let mut names: Vec<_> = reg.workflows.iter().map(|w| w.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "device_inventory",
            "gen_a_halo_agents",
            "gen_b_status_check",
            "license_report",
            "nightly_cleanup",
            "simple_greeting",
            "ticket_webhook",
            "user_onboarding"
        ]
    );
    let hook = reg.workflow("ticket_webhook").unwrap();
    assert_eq!(hook.execution_mode, ExecutionMode::Sync);
    assert!(hook.endpoint_enabled && hook.public_endpoint);
    assert_eq!(hook.allowed_methods, ["GET", "POST"]);
    assert_eq!(
        reg.workflow("nightly_cleanup").unwrap().schedule.as_deref(),
        Some("0 3 * * *")
    );
    assert_eq!(
        reg.workflow("gen_a_halo_agents").unwrap().execution_mode,
        ExecutionMode::Sync
    );
    assert_eq!(reg.data_providers.len(), 3);
}

#[tokio::test]
async fn greeting_runs_and_captures_logging_and_print() {
    let o = run("simple_greeting", json!({"name": "Ada"})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(
            json!({"greeting": "Hello, Ada!", "org_id": "org-1", "executed_by": "amy@example.com"})
        )
    );
    assert_eq!(
        messages(&o),
        ["Greeting Ada for org org-1", "composed: Hello, Ada!"]
    );
    assert_eq!(o.logs[0].source, "logging:greeting");
    assert_eq!(o.logs[1].source, "stdout");
}

#[tokio::test]
async fn onboarding_uses_config_and_masks_the_secret() {
    let env = env_with(true);
    env.host
        .set_secret("GLOBAL--graph-client-secret", "s3cr3t-graph-key");
    env.host
        .set_config(None, "default_domain", json!("contoso.com"), false);
    let o = run(
        "user_onboarding",
        json!({"first_name": "Grace", "last_name": "Hopper"}),
    )
    .await;
    // No seats configured: partial failure.
    assert_eq!(o.status, ExecutionStatus::CompletedWithErrors, "{o:?}");
    assert_eq!(
        o.result.as_ref().unwrap()["upn"],
        "grace.hopper@contoso.com"
    );
    let all = messages(&o).join("\n");
    assert!(all.contains("with key ***"), "{all}");
    assert!(!all.contains("s3cr3t-graph-key"));

    env.host
        .set_config(Some("org-1"), "available_seats", json!(3), false);
    let o = run(
        "user_onboarding",
        json!({"first_name": "Grace", "last_name": "Hopper", "manager_email": "m@x.io"}),
    )
    .await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(o.result.as_ref().unwrap()["license"], "ENTERPRISEPACK");

    let o = run(
        "user_onboarding",
        json!({"first_name": " ", "last_name": "X"}),
    )
    .await;
    assert_eq!(o.status, ExecutionStatus::Failed);
    let err = o.error.unwrap();
    assert!(err.is_user_error);
    assert_eq!(err.message, "First and last name are required");
}

#[tokio::test]
async fn html_report_is_typed_html() {
    let o = run("license_report", json!({"max_rows": 2})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(o.result_type, Some(ResultType::Html));
    let html = o.result.unwrap();
    assert!(
        html.as_str()
            .unwrap()
            .starts_with("<h2>Licenses for Contoso</h2>")
    );
    assert_eq!(html.as_str().unwrap().matches("<tr><td>").count(), 2);
}

#[tokio::test]
async fn data_providers_return_options() {
    let o = engine()
        .execute_data_provider(request("get_m365_licenses", json!({})))
        .await
        .unwrap();
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    let opts = o.options().unwrap();
    assert_eq!(opts.len(), 3);
    assert_eq!(opts[0].label, "Microsoft 365 E3");
    assert_eq!(opts[0].metadata.as_ref().unwrap()["vendor"], "Microsoft");
    let o = engine()
        .execute_data_provider(request("get_ticket_priorities", json!({})))
        .await
        .unwrap();
    assert_eq!(o.options().unwrap().len(), 4);
    let o = engine()
        .execute_data_provider(request(
            "get_departments_for_site",
            json!({"site": "HQ", "include_empty": true}),
        ))
        .await
        .unwrap();
    let values: Vec<_> = o.options().unwrap().into_iter().map(|o| o.value).collect();
    assert_eq!(
        values,
        [
            json!("finance"),
            json!("it"),
            json!("sales"),
            json!("(none)")
        ]
    );
    let dp = engine()
        .registry()
        .data_provider("get_departments_for_site")
        .cloned()
        .unwrap();
    assert_eq!(
        dp.parameters
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["site", "include_empty"]
    );
    assert_eq!(
        engine()
            .registry()
            .data_provider("get_m365_licenses")
            .unwrap()
            .cache_ttl_seconds,
        600
    );
}

#[tokio::test]
async fn webhook_passes_extra_fields_through_kwargs() {
    let mut req = request(
        "ticket_webhook",
        json!({"ticket": {"id": 42, "subject": "Printer", "priority": "high"}, "x_sig": "abc"}),
    );
    req.context.caller = Caller::public_webhook();
    let o = engine().execute(req).await.unwrap();
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(
            json!({"accepted": true, "summary": "[HIGH] #42: Printer", "extra_fields": ["x_sig"]})
        )
    );
    assert_eq!(
        messages(&o),
        ["halopsa webhook from Public Access (Webhook): [HIGH] #42: Printer"]
    );
}

#[tokio::test]
async fn scheduled_workflow_runs_in_global_scope() {
    let mut req = request("nightly_cleanup", json!({}));
    req.context.caller = Caller::scheduler();
    req.context.organization = None;
    let o = engine().execute(req).await.unwrap();
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(o.result, Some(json!({"removed": 0, "scope": "GLOBAL"})));
    assert_eq!(
        messages(&o),
        ["Cleanup started by system:scheduler (global=True)"]
    );
}

#[tokio::test]
async fn inferred_parameters_and_conversions() {
    let wf = engine()
        .registry()
        .workflow("device_inventory")
        .cloned()
        .unwrap();
    assert!(wf.parameters_inferred);
    assert!(!wf.is_async);
    let summary: Vec<_> = wf
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), p.kind.as_str(), p.required))
        .collect();
    assert_eq!(
        summary,
        [
            ("kind", "string", true),
            ("since", "date", true),
            ("os_family", "string", false),
            ("tags", "list", false),
            ("limit", "int", false),
            ("include_offline", "bool", false)
        ]
    );
    assert_eq!(
        wf.parameters[0].help_text.as_deref(),
        Some("Which class of device to include.")
    );
    assert_eq!(
        wf.parameters[0].options.as_ref().unwrap()[1].value,
        json!("server")
    );
    assert_eq!(wf.parameters[2].options.as_ref().unwrap().len(), 3);
    assert_eq!(wf.parameters[2].default_value, Some(json!("windows")));
    let o = run(
        "device_inventory",
        json!({"kind": "server", "since": "2025-12-01", "limit": 5}),
    )
    .await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(
            json!({"kind": "server", "days": 31, "os": "windows", "tags": [], "limit": 5, "offline": false})
        )
    );
    let o = run(
        "device_inventory",
        json!({"kind": "spaceship", "since": "2025-12-01"}),
    )
    .await;
    assert_eq!(o.status, ExecutionStatus::Failed);
    let err = o.error.unwrap();
    assert_eq!(err.error_type, "ValidationError");
    assert!(
        err.message.contains("Invalid value for parameter 'kind'"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn gen_b_context_shims_work() {
    let o = run("gen_b_status_check", json!({"target": "dc01"})).await;
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result,
        Some(json!({"target": "dc01", "checked": 3, "org": "Contoso"}))
    );
    assert_eq!(
        messages(&o),
        [
            "Status check started",
            "Caller is amy@example.com",
            "Checkpoint: checked"
        ]
    );
    assert_eq!(o.logs[0].level, "INFO");
    assert_eq!(o.logs[1].level, "WARNING");
    // The legacy sanitizer redacts sensitive keys in log data.
    assert_eq!(
        o.logs[0].data,
        Some(json!({"target": "dc01", "api_token": "[REDACTED]"}))
    );
}

#[tokio::test]
async fn gen_a_context_shims_work() {
    let o = run("gen_a_halo_agents", json!({})).await;
    assert_eq!(o.status, ExecutionStatus::CompletedWithErrors, "{o:?}");
    assert_eq!(o.logs[0].level, "ERROR");
    let mut req = request("gen_a_halo_agents", json!({"include_inactive": true}));
    req.config
        .insert("halopsa_base_url".into(), json!("https://halo.example.com"));
    let o = engine().execute(req).await.unwrap();
    assert_eq!(o.status, ExecutionStatus::Success, "{o:?}");
    assert_eq!(
        o.result.unwrap()["url"],
        "https://halo.example.com/api/Report"
    );
    assert_eq!(o.logs[0].data, Some(json!({"include_inactive": true})));
}

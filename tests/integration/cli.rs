//! The workflow-author commands, run as a workflow author would: `bifrost workflows`,
//! `bifrost validate`, `bifrost run`, against a real workspace and the embedded storage.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{bin, repo_root};

fn bifrost(args: &[&str], workspace: &Path, data: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--workspace")
        .arg(workspace)
        .arg("--data-dir")
        .arg(data)
        .env_remove("BIFROST_STORAGE")
        .output()
        .unwrap()
}

fn examples() -> std::path::PathBuf {
    repo_root().join("examples/workspace")
}

#[test]
fn workflows_lists_the_example_workspace() {
    let data = tempfile::tempdir().unwrap();
    let out = bifrost(&["workflows"], &examples(), data.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let registry: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = registry["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"simple_greeting"), "{names:?}");
    assert!(names.contains(&"user_onboarding"), "{names:?}");
    assert!(registry["errors"].as_array().unwrap().is_empty());
}

#[test]
fn run_prints_logs_and_the_result_and_types_params() {
    let data = tempfile::tempdir().unwrap();
    let out = bifrost(
        &[
            "run",
            "simple_greeting",
            "--param",
            "name=Ada",
            "--param",
            "include_timestamp=false",
        ],
        &examples(),
        data.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "Success");
    assert!(
        summary["result"]["greeting"]
            .as_str()
            .unwrap()
            .contains("Ada"),
        "{summary}"
    );
    assert!(
        stderr.contains("Greeting Ada"),
        "workflow logs go to stderr: {stderr}"
    );

    // A parameter of the wrong type is refused before anything runs, naming it.
    let out = bifrost(
        &["run", "device_inventory", "--param", "limit=lots"],
        &examples(),
        data.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--param limit"));

    // An unknown workflow is a usage error.
    let out = bifrost(&["run", "no_such_workflow"], &examples(), data.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn import_errors_are_reported_with_file_and_line_and_do_not_hide_other_workflows() {
    let ws = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        ws.path().join("good.py"),
        "from bifrost import workflow\n\n@workflow(name=\"good_one\", description=\"ok\")\nasync def good_one():\n    return {\"ok\": True}\n",
    )
    .unwrap();
    std::fs::write(
        ws.path().join("broken.py"),
        "from bifrost import workflow\n\nx = (1 +\n",
    )
    .unwrap();

    let out = bifrost(&["workflows"], ws.path(), data.path());
    assert_eq!(out.status.code(), Some(1), "import errors fail the listing");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.py:3") || stderr.contains("broken.py:4"),
        "{stderr}"
    );
    let registry: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(registry["workflows"][0]["name"], "good_one");

    let out = bifrost(
        &["validate", ws.path().join("broken.py").to_str().unwrap()],
        ws.path(),
        data.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let out = bifrost(
        &["validate", ws.path().join("good.py").to_str().unwrap()],
        ws.path(),
        data.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = bifrost(&["run", "good_one"], ws.path(), data.path());
    assert!(out.status.success());
}

#[test]
fn a_failing_workflow_exits_nonzero_with_its_error() {
    let ws = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        ws.path().join("fails.py"),
        "from bifrost import workflow, UserError\n\n@workflow(name=\"fails\", description=\"x\")\nasync def fails():\n    raise UserError(\"mailbox not found\")\n",
    )
    .unwrap();
    let out = bifrost(&["run", "fails"], ws.path(), data.path());
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "Failed");
    assert!(
        summary["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mailbox not found")
    );
}

#[test]
fn a_missing_workspace_stops_startup_naming_the_setting() {
    let data = tempfile::tempdir().unwrap();
    let out = bifrost(
        &["serve", "--port", "0"],
        &data.path().join("nope"),
        data.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BIFROST_WORKSPACE_LOCATION"));
}

/// The SDK namespaces reach real storage: what one run writes, the next process reads, and each
/// organization sees only its own data.
#[test]
fn sdk_namespaces_persist_in_real_storage_and_stay_per_org() {
    let ws = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        ws.path().join("tenant_setup.py"),
        r#"
import logging
from bifrost import workflow, config, secrets, organizations

@workflow(name="tenant_setup", description="create two orgs and GLOBAL settings")
async def tenant_setup():
    a = await organizations.create("Contoso", domain="contoso.com")
    b = await organizations.create("Fabrikam", domain="fabrikam.com")
    await config.set("halo_url", "https://halo.example.com")
    await secrets.set("halo_key", "s3cr3t-global-key")
    return {"a": a.id, "b": b.id}
"#,
    )
    .unwrap();
    std::fs::write(
        ws.path().join("tenant_use.py"),
        r#"
import logging
from bifrost import workflow, config, secrets, roles, executions, ExecutionContext

@workflow(name="tenant_use", description="read and write inside one org")
async def tenant_use(context: ExecutionContext, write: bool = False):
    key = await secrets.get("halo_key")
    logging.info(f"using key {key}")
    if write:
        await config.set("site_code", "CTS-01")
        await roles.create("Technicians", "field techs")
    runs = await executions.list(workflow_name="tenant_use")
    return {
        "org": context.org_id,
        "halo_url": await config.get("halo_url"),
        "site_code": await config.get("site_code"),
        "key_length": len(key or ""),
        "roles": [r.name for r in await roles.list()],
        "runs_seen": len(runs),
    }
"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = bifrost(args, ws.path(), data.path());
        let stdout: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (status, setup, stderr) = run(&["run", "tenant_setup"]);
    assert!(status.success(), "{stderr}");
    let (a, b) = (
        setup["result"]["a"].as_str().unwrap().to_owned(),
        setup["result"]["b"].as_str().unwrap().to_owned(),
    );

    let (status, first, stderr) = run(&["run", "tenant_use", "--org", &a, "--param", "write=true"]);
    assert!(status.success(), "{stderr}");
    let r = &first["result"];
    assert_eq!(r["org"], a.as_str());
    assert_eq!(r["halo_url"], "https://halo.example.com", "GLOBAL fallback");
    assert_eq!(r["site_code"], "CTS-01");
    assert_eq!(r["key_length"], 17, "GLOBAL secret reachable from the org");
    assert_eq!(r["roles"], serde_json::json!(["Technicians"]));
    assert!(
        stderr.contains("using key ***"),
        "secret masked in logs: {stderr}"
    );
    assert!(!stderr.contains("s3cr3t-global-key"), "{stderr}");

    // A second process sees what the first wrote, including its own execution history.
    let (_, second, _) = run(&["run", "tenant_use", "--org", &a]);
    assert_eq!(second["result"]["site_code"], "CTS-01");
    assert_eq!(second["result"]["runs_seen"], 2);

    // Another organization sees none of org A's settings, roles or runs.
    let (status, other, stderr) = run(&["run", "tenant_use", "--org", &b]);
    assert!(status.success(), "{stderr}");
    let r = &other["result"];
    assert_eq!(r["site_code"], Value::Null);
    assert_eq!(r["roles"], serde_json::json!([]));
    assert_eq!(r["runs_seen"], 1);
    assert_eq!(r["halo_url"], "https://halo.example.com");

    // Workflow secret reads and writes are audited by name, never by value.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let audit = crate::support::audit_log(data.path()).await;
        let page = audit
            .list(&bifrost::audit::AuditQuery::default())
            .await
            .unwrap();
        let kinds: Vec<String> = page
            .entries
            .iter()
            .map(|e| e.event_type.to_string())
            .collect();
        assert!(kinds.contains(&"secret_written".to_owned()), "{kinds:?}");
        assert!(
            kinds.iter().filter(|k| *k == "secret_read").count() >= 3,
            "{kinds:?}"
        );
        assert!(kinds.contains(&"execution_started".to_owned()), "{kinds:?}");
        let all = format!("{:?}", page.entries);
        assert!(
            !all.contains("s3cr3t-global-key"),
            "a secret value reached the audit log"
        );
        assert!(audit.verify(true).await.unwrap().ok);
    });
}

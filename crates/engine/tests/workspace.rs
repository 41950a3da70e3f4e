//! Workspace discovery: reload of changed files, per-file import errors with line numbers,
//! duplicate names, removal, skipped files, helper modules and the import guard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bifrost_engine::ExecutionStatus;
use common::*;
use serde_json::json;

/// Full rescans import files other tests are in the middle of writing; tests that
/// rescan or assert on a report's `imported` list take this lock.
static SCANS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn wf(name: &str, body: &str) -> String {
    format!(
        "from bifrost import workflow\n\n@workflow(name='{name}', description='d')\nasync def {name}():\n    return {body}\n"
    )
}

#[tokio::test]
async fn reload_picks_up_changes_including_same_size_edits() {
    let _scans = SCANS.lock().await;
    let path = add("ws_reload.py", &wf("ws_reload", "'v1'")).await;
    assert_eq!(run("ws_reload", json!({})).await.result, Some(json!("v1")));
    // Same length, same second: detected by content hash, not mtime.
    std::fs::write(&path, wf("ws_reload", "'v2'")).unwrap();
    let report = env()
        .engine
        .reload(std::slice::from_ref(&path))
        .await
        .unwrap();
    assert_eq!(report.imported, std::slice::from_ref(&path));
    assert_eq!(run("ws_reload", json!({})).await.result, Some(json!("v2")));
    // Reloading an unchanged file re-imports nothing.
    let report = env()
        .engine
        .reload(std::slice::from_ref(&path))
        .await
        .unwrap();
    assert!(report.imported.is_empty(), "{:?}", report.imported);
}

#[tokio::test]
async fn rescan_finds_new_changed_and_removed_files() {
    let _scans = SCANS.lock().await;
    let engine = &env().engine;
    let dir = env().dir.join("rescan_pkg");
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("ws_rescan_a.py");
    std::fs::write(&a, wf("ws_rescan_a", "1")).unwrap();
    let report = engine.rescan().await.unwrap();
    assert!(report.imported.contains(&a), "{:?}", report.imported);
    let w = report.registry.workflow("ws_rescan_a").unwrap();
    assert_eq!(w.module, "rescan_pkg.ws_rescan_a");
    std::fs::remove_file(&a).unwrap();
    let report = engine.rescan().await.unwrap();
    assert_eq!(report.removed, [a]);
    assert!(engine.registry().workflow("ws_rescan_a").is_none());
    assert!(matches!(
        engine.execute(request("ws_rescan_a", json!({}))).await,
        Err(bifrost_engine::EngineError::WorkflowNotFound(_))
    ));
}

#[tokio::test]
async fn import_errors_are_reported_per_file_with_line() {
    let syntax = add(
        "ws_err_syntax.py",
        "from bifrost import workflow\n\ndef broken(:\n    pass\n",
    )
    .await;
    let runtime = add(
        "ws_err_runtime.py",
        "import os\n\nx = 1\nraise RuntimeError('boom at import')\n",
    )
    .await;
    let missing = add("ws_err_missing.py", "import definitely_not_a_module_xyz\n").await;
    let good = add("ws_err_neighbour.py", &wf("ws_err_neighbour", "'fine'")).await;
    let reg = env().engine.registry();
    let find = |p: &std::path::Path| reg.errors.iter().find(|e| e.file == p).cloned().unwrap();
    let e = find(&syntax);
    assert_eq!((e.error_type.as_str(), e.line), ("SyntaxError", Some(3)));
    let e = find(&runtime);
    assert_eq!(
        (e.error_type.as_str(), e.line, e.message.as_str()),
        ("RuntimeError", Some(4), "boom at import")
    );
    assert!(e.traceback.contains("ws_err_runtime.py"));
    let e = find(&missing);
    assert_eq!(
        (e.error_type.as_str(), e.line),
        ("ModuleNotFoundError", Some(1))
    );
    assert!(reg.errors.iter().all(|e| e.file != good));
    assert_eq!(
        run("ws_err_neighbour", json!({})).await.result,
        Some(json!("fine"))
    );
    // Fixing the file clears its error.
    std::fs::write(&runtime, wf("ws_err_fixed", "2")).unwrap();
    env()
        .engine
        .reload(std::slice::from_ref(&runtime))
        .await
        .unwrap();
    assert!(
        env()
            .engine
            .registry()
            .errors
            .iter()
            .all(|e| e.file != runtime)
    );
    assert_eq!(run("ws_err_fixed", json!({})).await.result, Some(json!(2)));
}

#[tokio::test]
async fn duplicate_names_are_an_error_naming_both_files() {
    let a = add("ws_dup_a.py", &wf("ws_dup", "'a'")).await;
    let b = add("ws_dup_b.py", &wf("ws_dup", "'b'")).await;
    let reg = env().engine.registry();
    assert!(reg.workflow("ws_dup").is_none());
    let dups: Vec<_> = reg
        .errors
        .iter()
        .filter(|e| e.error_type == "DuplicateName" && e.message.contains("'ws_dup'"))
        .collect();
    assert_eq!(dups.len(), 2);
    for d in &dups {
        assert!(
            d.message.contains(&format!("{}:3", a.display())),
            "{}",
            d.message
        );
        assert!(
            d.message.contains(&format!("{}:3", b.display())),
            "{}",
            d.message
        );
    }
    // Renaming one resolves it.
    std::fs::write(&b, wf("ws_dup_renamed", "'b'")).unwrap();
    env().engine.reload(std::slice::from_ref(&b)).await.unwrap();
    assert_eq!(run("ws_dup", json!({})).await.result, Some(json!("a")));
    assert!(
        env()
            .engine
            .registry()
            .errors
            .iter()
            .all(|e| !e.message.contains("'ws_dup'"))
    );
}

#[tokio::test]
async fn private_files_and_packages_dir_are_skipped_and_helpers_importable() {
    let _scans = SCANS.lock().await;
    let env = env();
    std::fs::write(
        env.dir.join(".packages/ws_hidden.py"),
        wf("ws_hidden_pkg", "1"),
    )
    .unwrap();
    std::fs::write(env.dir.join("_ws_private.py"), wf("ws_private", "1")).unwrap();
    std::fs::create_dir_all(env.dir.join("ws_helpers")).unwrap();
    std::fs::write(
        env.dir.join("ws_helpers/text.py"),
        "def shout(s):\n    return s.upper() + '!'\n",
    )
    .unwrap();
    add(
        "ws_uses_helper.py",
        "from bifrost import workflow\nfrom ws_helpers.text import shout\nimport ws_vendored\n\n@workflow(name='ws_uses_helper', description='d')\nasync def ws_uses_helper():\n    return [shout('hi'), ws_vendored.VALUE]\n",
    )
    .await;
    env.engine.rescan().await.unwrap();
    let reg = env.engine.registry();
    assert!(reg.workflow("ws_hidden_pkg").is_none());
    assert!(reg.workflow("ws_private").is_none());
    // `.packages` (created by the harness before start) is on sys.path.
    assert_eq!(
        run("ws_uses_helper", json!({})).await.result,
        Some(json!(["HI!", "vendored"]))
    );
    // Nothing of ours changed, so nothing of ours is re-imported (other tests may add files concurrently).
    let again = env.engine.rescan().await.unwrap();
    let ours = |p: &std::path::PathBuf| {
        p.starts_with(env.dir.join("ws_helpers")) || p.ends_with("ws_uses_helper.py")
    };
    assert!(!again.imported.iter().any(ours), "{:?}", again.imported);
}

#[tokio::test]
async fn import_guard_blocks_engine_internals_and_reports() {
    let at_import = add("ws_guard_import.py", "import bifrost._internal\n").await;
    let reg = env().engine.registry();
    let e = reg.errors.iter().find(|e| e.file == at_import).unwrap();
    assert_eq!((e.error_type.as_str(), e.line), ("ImportError", Some(1)));
    assert!(
        e.message
            .contains("importing 'bifrost._internal' from workspace code is not allowed"),
        "{}",
        e.message
    );
    add(
        "ws_guard_exec.py",
        r#"
import importlib
from bifrost import workflow

@workflow(name="ws_guard_exec", description="d")
async def ws_guard_exec(how: str):
    if how == "import_module":
        importlib.import_module("_bifrost_native")
    elif how == "from":
        from bifrost import _internal
    else:
        __import__("bifrost._internal")
    return "escaped"
"#,
    )
    .await;
    for how in ["import_module", "from", "dunder"] {
        let o = run("ws_guard_exec", json!({"how": how})).await;
        assert_eq!(o.status, ExecutionStatus::Failed, "{how}: {o:?}");
        assert_eq!(o.error.unwrap().error_type, "ImportError", "{how}");
    }
    let v = env().violations.lock().unwrap().clone();
    assert!(
        v.iter()
            .any(|v| v.module == "bifrost._internal" && v.importer == at_import && v.line == 1),
        "{v:?}"
    );
    assert!(v.iter().any(|v| v.module == "_bifrost_native"), "{v:?}");
    assert!(
        v.iter()
            .filter(|v| v.importer.ends_with("ws_guard_exec.py"))
            .count()
            >= 3,
        "{v:?}"
    );
}

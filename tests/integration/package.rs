//! `bifrost package --with-python`: the package carries its own Python and runs from wherever it
//! is moved, with an empty environment and no Python on `PATH`, on its own libpython.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::json;

use crate::support::{ServerBuilder, bin, client, repo_root};

#[tokio::test]
async fn a_package_with_its_own_python_runs_anywhere_on_its_own_libpython() {
    let tmp = tempfile::tempdir().unwrap();
    let built = tmp.path().join("built");
    // A workspace with its own `.packages`, which ships too.
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(ws.join(".packages/helperlib")).unwrap();
    std::fs::write(
        ws.join(".packages/helperlib/__init__.py"),
        "WORD = 'shipped'\n",
    )
    .unwrap();
    std::fs::write(
        ws.join("flows.py"),
        "import sys, helperlib\nfrom bifrost import workflow\n\n\
         @workflow(name='where', execution_mode='sync')\ndef where():\n    \
         return {'prefix': sys.prefix, 'word': helperlib.WORD}\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["package"])
        .arg(&built)
        .arg("--source")
        .arg(repo_root())
        .arg("--workspace")
        .arg(&ws)
        .arg("--with-python")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("python/lib/libpython"), "{listed}");
    assert!(
        listed.contains("workspace/.packages/helperlib/__init__.py"),
        "{listed}"
    );

    // Move it: nothing may point back at where it was built.
    let moved = tmp.path().join("moved");
    std::fs::rename(&built, &moved).unwrap();
    let no_python = tmp.path().join("empty-bin");
    std::fs::create_dir_all(&no_python).unwrap();
    let server = ServerBuilder::new()
        .binary(&moved.join("bifrost"))
        .env("PATH", no_python.to_str().unwrap())
        .env("HOME", tmp.path().to_str().unwrap())
        .env(
            "BIFROST_WORKSPACE_LOCATION",
            moved.join("workspace").to_str().unwrap(),
        )
        .env("BIFROST_DEV_IDENTITY", "admin")
        .start();
    let health: serde_json::Value = client()
        .get(server.url("/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["workspace"]["workflows"], 1, "{health}");
    let run: serde_json::Value = client()
        .post(server.url("/api/workflows/execute"))
        .json(&json!({"workflowName": "where"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "Success", "{run}");
    assert_eq!(run["result"]["word"], "shipped");
    let prefix = run["result"]["prefix"].as_str().unwrap();
    assert!(
        prefix.starts_with(moved.to_str().unwrap()),
        "the interpreter's prefix is the package's: {prefix}"
    );
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", server.child.id())).unwrap();
    let libpython = bifrost_engine::libpython_in_maps(&maps).expect("libpython is mapped");
    assert!(
        libpython.starts_with(moved.join("python/lib")),
        "the loaded libpython is the package's: {}",
        libpython.display()
    );
}

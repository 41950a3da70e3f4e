//! What the running server records in the hash-chained audit log.

use std::time::{Duration, Instant};

use bifrost::audit::{AuditEventType, AuditQuery};

use crate::support::{ServerBuilder, client};

#[tokio::test]
async fn an_import_guard_violation_is_audited_and_the_chain_verifies() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(
        ws.path().join("sneaky.py"),
        "from bifrost import workflow\nimport bifrost._internal\n\n@workflow(name=\"sneaky\", description=\"x\")\nasync def sneaky():\n    return 1\n",
    )
    .unwrap();
    let server = ServerBuilder::new()
        .env("BIFROST_WORKSPACE_LOCATION", ws.path().to_str().unwrap())
        .start();
    let health: serde_json::Value = client()
        .get(server.url("/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["workspace"]["importErrors"], 1,
        "the guarded import fails that file: {health}"
    );

    let audit = crate::support::audit_log(&server.data.path().join("data")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let entry = loop {
        let page = audit
            .list(&AuditQuery {
                event_type: Some(AuditEventType::ImportGuardViolation),
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(entry) = page.entries.into_iter().next() {
            break entry;
        }
        assert!(
            Instant::now() < deadline,
            "no import_guard_violation entry was recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(entry.details["module"], "bifrost._internal");
    assert!(
        entry.details["importer"]
            .as_str()
            .unwrap()
            .ends_with("sneaky.py")
    );
    assert!(audit.verify(true).await.unwrap().ok);
}

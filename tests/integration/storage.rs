//! The binary against its storage backends: health reports them, and an unreachable backend
//! turns into 503 with Retry-After instead of a hang or a crash.

use serde_json::Value;

use crate::support::{ServerBuilder, client, free_port};

#[tokio::test]
async fn azure_backend_against_azurite_is_healthy() {
    let conn = std::env::var("BIFROST_TEST_AZURITE")
        .expect("BIFROST_TEST_AZURITE is not set: run the suite through scripts/test.sh, which starts Azurite");
    let server = ServerBuilder::new()
        .env("BIFROST_STORAGE", "azure")
        .env("AzureWebJobsStorage", &conn)
        .start();
    let res = client()
        .get(server.url("/api/health"))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["storage"]["backend"], "azure", "{body}");
    assert_eq!(body["storage"]["status"], "ok", "{body}");
    assert!(
        !server
            .stderr()
            .contains("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6"),
        "account key leaked"
    );
}

#[tokio::test]
async fn unreachable_storage_is_reported_and_answers_503_with_retry_after() {
    let dead = free_port();
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;"
    );
    // Start-up does not need the account: the Functions host may start us before storage is up.
    let server = ServerBuilder::new()
        .env("BIFROST_STORAGE", "azure")
        .env("AzureWebJobsStorage", &conn)
        .start();
    let res = client()
        .get(server.url("/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["storage"]["status"], "unavailable", "{body}");
    assert_eq!(body["secrets"]["status"], "ok", "{body}");
}

#[tokio::test]
async fn embedded_backends_live_in_the_data_folder() {
    let server = ServerBuilder::new().start();
    let res = client()
        .get(server.url("/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let data = server.data.path().join("data");
    assert!(
        data.join("tables.sqlite").exists(),
        "tables database in {data:?}"
    );
    assert!(data.join("queues.sqlite").exists());
    let key = data.join("secrets.key");
    assert!(key.exists());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

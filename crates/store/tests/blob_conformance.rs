//! Blob conformance suite: every case runs against the local-folder backend (temp dir) and the
//! Azure Blob backend (Azurite via `BIFROST_TEST_AZURITE`), so both obey one contract. Each
//! case gets a fresh, uniquely named container.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use bifrost_store::StoreError;
use bifrost_store::azure_account::AzureAccount;
use bifrost_store::blob::{
    AzureBlobs, BlobPath, BlobStore, ContainerName, DEFAULT_CONTENT_TYPE, LocalBlobs,
};
use bytes::Bytes;
use tempfile::TempDir;

/// A backend plus whatever must outlive it (the temp dir of the local one).
struct Fixture {
    store: Arc<dyn BlobStore>,
    _dir: Option<TempDir>,
}

fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobs::open(&dir.path().join("blobs")).unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

fn azure() -> Fixture {
    let store = AzureBlobs::new(&common::azurite_account()).unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: None,
    }
}

async fn new_container(store: &dyn BlobStore) -> ContainerName {
    let container = ContainerName::new(common::unique("c")).unwrap();
    store.create_container(&container).await.unwrap();
    container
}

fn path(p: &str) -> BlobPath {
    BlobPath::new(p).unwrap()
}

fn assert_not_found(result: Result<impl std::fmt::Debug, StoreError>, needle: &str) {
    match result {
        Err(StoreError::NotFound { what }) => assert!(what.contains(needle), "{what}"),
        other => panic!("expected NotFound mentioning {needle:?}, got {other:?}"),
    }
}

/// Deterministic pseudo-random bytes (xorshift), so large payloads are not trivially uniform.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

mod cases {
    use super::*;

    pub async fn health_is_ok(store: Arc<dyn BlobStore>) {
        store.health().await.unwrap();
    }

    pub async fn put_get_info_delete(store: Arc<dyn BlobStore>) {
        let c = new_container(&*store).await;
        let p = path("executions/2024/run-1.json");
        let body = Bytes::from_static(b"{\"result\": 42}");
        let put = store
            .put(&c, &p, body.clone(), "application/json")
            .await
            .unwrap();
        assert_eq!(put.name, p);
        assert_eq!(put.size, body.len() as u64);
        assert_eq!(put.content_type, "application/json");
        assert!(!put.etag.is_empty());
        let age = time::OffsetDateTime::now_utc() - put.last_modified;
        assert!(age.abs() < time::Duration::minutes(2), "{put:?}");

        let (got, info) = store.get(&c, &p).await.unwrap();
        assert_eq!(got, body);
        assert_eq!(info.etag, put.etag);
        assert_eq!(info.size, put.size);
        assert_eq!(info.content_type, "application/json");

        let info = store.info(&c, &p).await.unwrap();
        assert_eq!(info.etag, put.etag);
        assert_eq!(info.size, put.size);
        assert_eq!(info.name, p);

        assert!(store.delete(&c, &p).await.unwrap(), "the blob existed");
        assert!(!store.delete(&c, &p).await.unwrap(), "the blob is gone");
        assert_not_found(store.get(&c, &p).await, p.as_str());
        assert_not_found(store.info(&c, &p).await, p.as_str());
        assert!(store.list(&c, "").await.unwrap().is_empty());
    }

    pub async fn list_filters_by_prefix_and_sorts_by_name(store: Arc<dyn BlobStore>) {
        let c = new_container(&*store).await;
        // "logs" is both a blob and a prefix of others: the namespace is flat.
        for name in [
            "logs/2",
            "other",
            "logs/10",
            "logs",
            "logsx",
            "logs/1",
            "logs/a/deep",
        ] {
            store
                .put(&c, &path(name), Bytes::from(name.to_owned()), "text/plain")
                .await
                .unwrap();
        }
        let names = |infos: Vec<bifrost_store::blob::BlobInfo>| -> Vec<String> {
            infos
                .into_iter()
                .map(|i| i.name.as_str().to_owned())
                .collect()
        };
        assert_eq!(
            names(store.list(&c, "logs/").await.unwrap()),
            ["logs/1", "logs/10", "logs/2", "logs/a/deep"]
        );
        assert_eq!(
            names(store.list(&c, "logs").await.unwrap()),
            [
                "logs",
                "logs/1",
                "logs/10",
                "logs/2",
                "logs/a/deep",
                "logsx"
            ]
        );
        assert_eq!(
            names(store.list(&c, "").await.unwrap()),
            [
                "logs",
                "logs/1",
                "logs/10",
                "logs/2",
                "logs/a/deep",
                "logsx",
                "other"
            ]
        );
        assert!(store.list(&c, "nothing").await.unwrap().is_empty());
        let listed = store.list(&c, "logs/10").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size, 7);
        assert_eq!(listed[0].content_type, "text/plain");

        // Deleting a blob keeps its siblings and the blob named like their folder.
        assert!(store.delete(&c, &path("logs/a/deep")).await.unwrap());
        assert_eq!(
            names(store.list(&c, "logs").await.unwrap()),
            ["logs", "logs/1", "logs/10", "logs/2", "logsx"]
        );
    }

    pub async fn overwrite_replaces_bytes_and_etag(store: Arc<dyn BlobStore>) {
        let c = new_container(&*store).await;
        let p = path("result");
        let first = store
            .put(&c, &p, Bytes::from_static(b"v1"), "text/plain")
            .await
            .unwrap();
        let second = store
            .put(&c, &p, Bytes::from_static(b"version 2"), "application/json")
            .await
            .unwrap();
        assert_ne!(first.etag, second.etag);
        let (bytes, info) = store.get(&c, &p).await.unwrap();
        assert_eq!(&bytes[..], b"version 2");
        assert_eq!(info.etag, second.etag);
        assert_eq!(info.size, 9);
        assert_eq!(info.content_type, "application/json");
        assert_eq!(store.list(&c, "").await.unwrap().len(), 1);
    }

    pub async fn missing_blob_or_container_is_not_found(store: Arc<dyn BlobStore>) {
        let c = new_container(&*store).await;
        assert_not_found(store.get(&c, &path("nope")).await, "nope");
        assert_not_found(store.info(&c, &path("a/nope")).await, "a/nope");

        let missing = ContainerName::new(common::unique("missing")).unwrap();
        let p = path("x");
        assert_not_found(
            store.put(&missing, &p, Bytes::from_static(b"x"), "").await,
            missing.as_str(),
        );
        assert_not_found(store.get(&missing, &p).await, missing.as_str());
        assert_not_found(store.list(&missing, "").await, missing.as_str());
        // Creating twice is fine.
        store.create_container(&missing).await.unwrap();
        store.create_container(&missing).await.unwrap();
    }

    pub async fn binary_round_trip(store: Arc<dyn BlobStore>) {
        let c = new_container(&*store).await;
        let all_bytes: Vec<u8> = (0..=255u8).collect();
        let p = path("bin/all-bytes");
        store
            .put(&c, &p, Bytes::from(all_bytes.clone()), "")
            .await
            .unwrap();
        let (got, info) = store.get(&c, &p).await.unwrap();
        assert_eq!(&got[..], &all_bytes[..]);
        assert_eq!(info.content_type, DEFAULT_CONTENT_TYPE);

        let large = noise(5 * 1024 * 1024);
        let p = path("bin/5mib");
        let put = store
            .put(&c, &p, Bytes::from(large.clone()), "")
            .await
            .unwrap();
        assert_eq!(put.size, large.len() as u64);
        let (got, info) = store.get(&c, &p).await.unwrap();
        assert_eq!(got.len(), large.len());
        assert!(got[..] == large[..], "5 MiB blob changed in transit");
        assert_eq!(info.size, large.len() as u64);

        let p = path("bin/empty");
        store.put(&c, &p, Bytes::new(), "text/plain").await.unwrap();
        let (got, info) = store.get(&c, &p).await.unwrap();
        assert!(got.is_empty());
        assert_eq!(info.size, 0);
        assert_eq!(info.content_type, "text/plain");
    }

    pub async fn hostile_paths_are_rejected(store: Arc<dyn BlobStore>) {
        let c = new_container(&*store).await;
        for hostile in [
            "../x",
            "a/../../x",
            "/abs",
            "a\\b",
            "a//b",
            "a/",
            "",
            "./x",
            "a/.",
            "a\u{1}b",
        ] {
            match BlobPath::new(hostile) {
                Err(StoreError::Invalid { field, reason }) => {
                    assert_eq!(field, "blobPath", "{hostile:?}: {reason}");
                }
                other => panic!("{hostile:?} should be rejected, got {other:?}"),
            }
        }
        // Names that merely look odd are fine and stay inside the container.
        for odd in ["..x", "x..", "a/...", ".hidden", "with space/ünï"] {
            let p = path(odd);
            store
                .put(&c, &p, Bytes::from_static(b"ok"), "")
                .await
                .unwrap();
            assert_eq!(&store.get(&c, &p).await.unwrap().0[..], b"ok", "{odd:?}");
        }
        assert_eq!(store.list(&c, "").await.unwrap().len(), 5);
    }

    pub async fn readers_never_see_a_partial_overwrite(store: Arc<dyn BlobStore>) {
        let c = new_container(&*store).await;
        let p = path("hot");
        let size = 256 * 1024;
        store
            .put(&c, &p, Bytes::from(vec![b'a'; size]), "")
            .await
            .unwrap();
        let writer = {
            let (store, c, p) = (Arc::clone(&store), c.clone(), p.clone());
            tokio::spawn(async move {
                for i in 0..20u8 {
                    let fill = b'a' + (i % 26);
                    store
                        .put(&c, &p, Bytes::from(vec![fill; size]), "")
                        .await
                        .unwrap();
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() || reads < 5 {
            let (bytes, info) = store.get(&c, &p).await.unwrap();
            assert_eq!(bytes.len(), size);
            assert_eq!(info.size, size as u64);
            let first = bytes[0];
            assert!(
                bytes.iter().all(|b| *b == first),
                "read a mix of two writes"
            );
            reads += 1;
        }
        writer.await.unwrap();
    }
}

/// Expands every case into a `#[tokio::test]` for one backend.
macro_rules! blob_suite {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            use super::*;
            blob_suite!(@cases $fixture;
                health_is_ok,
                put_get_info_delete,
                list_filters_by_prefix_and_sorts_by_name,
                overwrite_replaces_bytes_and_etag,
                missing_blob_or_container_is_not_found,
                binary_round_trip,
                hostile_paths_are_rejected,
                readers_never_see_a_partial_overwrite
            );
        }
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: Fixture = $fixture;
                cases::$case(Arc::clone(&fixture.store)).await;
            }
        )*
    };
}

blob_suite!(local_backend, local());
blob_suite!(azure_backend, azure());

/// Backend-specific behaviour that the shared cases cannot express.
mod specific {
    use super::*;

    #[tokio::test]
    async fn local_blobs_stay_inside_their_container_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        let store = LocalBlobs::open(&root).unwrap();
        let c = ContainerName::new("results").unwrap();
        store.create_container(&c).await.unwrap();
        for name in ["..x", "a/b/c", ".tmp", "results"] {
            store
                .put(&c, &path(name), Bytes::from_static(b"z"), "")
                .await
                .unwrap();
        }
        // Every file written lives under <root>/results; nothing appeared beside the root.
        let mut stack = vec![root.clone()];
        let mut files = 0;
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                } else {
                    assert!(
                        entry.path().starts_with(root.join("results")),
                        "{:?}",
                        entry.path()
                    );
                    files += 1;
                }
            }
        }
        assert_eq!(files, 4);
        let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(beside.len(), 1, "only the root folder itself: {beside:?}");
    }

    #[tokio::test]
    async fn local_health_reports_a_missing_root_as_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        let store = LocalBlobs::open(&root).unwrap();
        store.health().await.unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(matches!(
            store.health().await,
            Err(StoreError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn azure_unreachable_account_is_unavailable() {
        // Port 1 on loopback refuses connections: nothing listens there.
        let account = AzureAccount::development("127.0.0.1", 1, 1, 1).unwrap();
        let store = AzureBlobs::new(&account).unwrap();
        assert!(matches!(
            store.health().await,
            Err(StoreError::Unavailable { .. })
        ));
        let c = ContainerName::new("any-container").unwrap();
        assert!(matches!(
            store.get(&c, &path("x")).await,
            Err(StoreError::Unavailable { .. })
        ));
    }
}

//! The table contract's conformance suite: every test is one generic async function over
//! `Arc<dyn TableStore>`, expanded per backend by `table_suite!` (embedded SQLite in a temp dir,
//! and Azure Tables on Azurite from `BIFROST_TEST_AZURITE`).
//!
//! Invariant: a behaviour asserted here holds on both backends; a backend-specific assertion
//! lives in its own clearly named test at the bottom.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use bifrost_store::table::{
    AzureTables, Batch, Column, ETag, Entity, Filter, IfMatch, Properties, Query, ScopedBatch,
    ScopedTable, SqliteTables, SqliteTablesOptions, TableName, TableStore, Value, WriteMode, prop,
};
use bifrost_store::{OrgId, PartitionKey, RowKey, Scope, StoreError};
use time::macros::datetime;
use uuid::Uuid;

struct Fixture {
    store: Arc<dyn TableStore>,
    table: TableName,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteTables::open(&dir.path().join("data").join("tables.db")).unwrap();
    let table = TableName::new("conformance").unwrap();
    store.create_table_if_missing(&table).await.unwrap();
    Fixture {
        store: Arc::new(store),
        table,
        _dir: Some(dir),
    }
}

async fn azure_fixture() -> Fixture {
    let store = AzureTables::new(&common::azurite_account()).unwrap();
    let table = TableName::new(common::unique("t")).unwrap();
    store.create_table_if_missing(&table).await.unwrap();
    Fixture {
        store: Arc::new(store),
        table,
        _dir: None,
    }
}

macro_rules! table_suite {
    ($backend:ident, $fixture:ident; $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::$fixture().await).await;
                }
            )*
        }
    };
}

macro_rules! all_tests {
    ($backend:ident, $fixture:ident) => {
        table_suite!($backend, $fixture;
            health_and_create_table_are_idempotent,
            crud_with_awkward_keys,
            missing_table_is_not_found,
            upsert_merge_versus_replace,
            update_merge_versus_replace_with_etags,
            etag_race_has_exactly_one_winner,
            delete_with_stale_etag_is_refused,
            query_operators_and_combinators,
            select_projects_properties,
            paging_past_1000_rows,
            query_loop_follows_continuations_to_the_end,
            typed_values_round_trip,
            batch_is_atomic_and_reports_failing_index,
            batch_mixed_operations_succeed,
            batch_limits_rejected_before_sending,
            bad_entities_rejected_with_clear_errors,
            tenant_isolation_through_scoped_views,
        );
    };
}

all_tests!(sqlite, sqlite_fixture);
all_tests!(azure, azure_fixture);

fn pk(s: &str) -> PartitionKey {
    PartitionKey::new(s).unwrap()
}

fn rk(s: &str) -> RowKey {
    RowKey::new(s).unwrap()
}

fn entity(p: &str, r: &str) -> Entity {
    Entity::new(pk(p), rk(r))
}

fn props(pairs: &[(&str, Value)]) -> Properties {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

async fn row_keys(f: &Fixture, filter: Filter) -> Vec<String> {
    let q = Query::new().filter(Column::PartitionKey.eq("q").and(filter));
    f.store
        .query_all(&f.table, &q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.row_key.into_string())
        .collect()
}

async fn insert_many(f: &Fixture, count: usize, make: impl Fn(usize) -> Entity) {
    let entities: Vec<Entity> = (0..count).map(make).collect();
    for chunk in entities.chunks(100) {
        let batch = chunk.iter().cloned().fold(Batch::new(), Batch::insert);
        f.store.batch(&f.table, &batch).await.unwrap();
    }
}

async fn health_and_create_table_are_idempotent(f: Fixture) {
    f.store.health().await.unwrap();
    f.store.create_table_if_missing(&f.table).await.unwrap();
    f.store.create_table_if_missing(&f.table).await.unwrap();
    let e = entity("p", "r");
    f.store.insert(&f.table, &e).await.unwrap();
    // Re-creating must not wipe the table.
    f.store.create_table_if_missing(&f.table).await.unwrap();
    assert!(
        f.store
            .get(&f.table, &pk("p"), &rk("r"))
            .await
            .unwrap()
            .is_some()
    );
}

async fn crud_with_awkward_keys(f: Fixture) {
    for (p, r) in [
        ("p", "plain"),
        ("O'Brien", "it''s"),
        ("sp ace", "100% é ü"),
        ("", ""),
    ] {
        let e = entity(p, r).with("Name", "Ada").with("Age", 36);
        let etag = f.store.insert(&f.table, &e).await.unwrap();
        let got = f
            .store
            .get(&f.table, &pk(p), &rk(r))
            .await
            .unwrap()
            .expect("inserted entity");
        assert_eq!(got.partition_key.as_str(), p);
        assert_eq!(got.row_key.as_str(), r);
        assert_eq!(got.properties, e.properties);
        assert_eq!(got.etag.as_ref(), Some(&etag));
        assert!(got.timestamp.is_some(), "the store sets Timestamp");

        let err = f.store.insert(&f.table, &e).await.unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");

        let changed = entity(p, r).with("Name", "Grace");
        let etag2 = f
            .store
            .update(
                &f.table,
                &changed,
                WriteMode::Replace,
                &IfMatch::ETag(etag.clone()),
            )
            .await
            .unwrap();
        assert_ne!(etag, etag2, "every write changes the ETag");
        let got = f
            .store
            .get(&f.table, &pk(p), &rk(r))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.properties, changed.properties);

        f.store
            .delete(&f.table, &pk(p), &rk(r), &IfMatch::ETag(etag2))
            .await
            .unwrap();
        assert!(
            f.store
                .get(&f.table, &pk(p), &rk(r))
                .await
                .unwrap()
                .is_none()
        );
        let err = f
            .store
            .delete(&f.table, &pk(p), &rk(r), &IfMatch::Any)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
        let err = f
            .store
            .update(&f.table, &changed, WriteMode::Merge, &IfMatch::Any)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    }
}

async fn missing_table_is_not_found(f: Fixture) {
    let missing = TableName::new(format!("missing{}", Uuid::new_v4().simple())).unwrap();
    let err = f
        .store
        .insert(&missing, &entity("p", "r"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = f.store.get(&missing, &pk("p"), &rk("r")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = f.store.query(&missing, &Query::new()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let batch = Batch::new()
        .insert(entity("p", "r"))
        .insert(entity("p", "s"));
    let err = f.store.batch(&missing, &batch).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(missing.as_str()), "{err}");
}

async fn upsert_merge_versus_replace(f: Fixture) {
    let key = (pk("p"), rk("r"));
    let get = || async {
        f.store
            .get(&f.table, &key.0, &key.1)
            .await
            .unwrap()
            .unwrap()
            .properties
    };
    f.store
        .upsert(&f.table, &entity("p", "r").with("A", 1), WriteMode::Merge)
        .await
        .unwrap();
    assert_eq!(get().await, props(&[("A", Value::Int32(1))]));
    f.store
        .upsert(&f.table, &entity("p", "r").with("B", "b"), WriteMode::Merge)
        .await
        .unwrap();
    assert_eq!(
        get().await,
        props(&[("A", Value::Int32(1)), ("B", "b".into())])
    );
    f.store
        .upsert(
            &f.table,
            &entity("p", "r").with("C", true),
            WriteMode::Replace,
        )
        .await
        .unwrap();
    assert_eq!(get().await, props(&[("C", Value::Boolean(true))]));
    f.store
        .upsert(
            &f.table,
            &entity("p", "new").with("D", 2.5),
            WriteMode::Replace,
        )
        .await
        .unwrap();
    assert!(
        f.store
            .get(&f.table, &pk("p"), &rk("new"))
            .await
            .unwrap()
            .is_some()
    );
}

async fn update_merge_versus_replace_with_etags(f: Fixture) {
    let etag = f
        .store
        .insert(&f.table, &entity("p", "r").with("A", 1).with("B", 2))
        .await
        .unwrap();
    let etag = f
        .store
        .update(
            &f.table,
            &entity("p", "r").with("B", 20).with("C", 3),
            WriteMode::Merge,
            &etag.into(),
        )
        .await
        .unwrap();
    let got = f
        .store
        .get(&f.table, &pk("p"), &rk("r"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.properties,
        props(&[
            ("A", Value::Int32(1)),
            ("B", Value::Int32(20)),
            ("C", Value::Int32(3))
        ])
    );
    assert_eq!(got.etag.as_ref(), Some(&etag));
    f.store
        .update(
            &f.table,
            &entity("p", "r").with("Z", 0),
            WriteMode::Replace,
            &IfMatch::Any,
        )
        .await
        .unwrap();
    let got = f
        .store
        .get(&f.table, &pk("p"), &rk("r"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.properties, props(&[("Z", Value::Int32(0))]));
}

async fn etag_race_has_exactly_one_winner(f: Fixture) {
    f.store
        .insert(&f.table, &entity("p", "r").with("N", 0))
        .await
        .unwrap();
    let seen_a = f
        .store
        .get(&f.table, &pk("p"), &rk("r"))
        .await
        .unwrap()
        .unwrap();
    let seen_b = f
        .store
        .get(&f.table, &pk("p"), &rk("r"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen_a.etag, seen_b.etag);
    let write = |n: i32, etag: Option<ETag>| {
        let store = f.store.clone();
        let table = f.table.clone();
        async move {
            store
                .update(
                    &table,
                    &entity("p", "r").with("N", n),
                    WriteMode::Merge,
                    &IfMatch::ETag(etag.unwrap()),
                )
                .await
        }
    };
    let (a, b) = tokio::join!(write(1, seen_a.etag), write(2, seen_b.etag));
    let winner = match (&a, &b) {
        (Ok(_), Err(StoreError::PreconditionFailed { .. })) => 1,
        (Err(StoreError::PreconditionFailed { .. }), Ok(_)) => 2,
        other => panic!("expected exactly one winner, got {other:?}"),
    };
    let got = f
        .store
        .get(&f.table, &pk("p"), &rk("r"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.get("N"), Some(&Value::Int32(winner)));
}

async fn delete_with_stale_etag_is_refused(f: Fixture) {
    let old = f
        .store
        .insert(&f.table, &entity("p", "r").with("N", 0))
        .await
        .unwrap();
    let new = f
        .store
        .update(
            &f.table,
            &entity("p", "r").with("N", 1),
            WriteMode::Merge,
            &IfMatch::Any,
        )
        .await
        .unwrap();
    let err = f
        .store
        .delete(&f.table, &pk("p"), &rk("r"), &IfMatch::ETag(old))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PreconditionFailed { .. }),
        "{err:?}"
    );
    assert!(
        f.store
            .get(&f.table, &pk("p"), &rk("r"))
            .await
            .unwrap()
            .is_some()
    );
    f.store
        .delete(&f.table, &pk("p"), &rk("r"), &IfMatch::ETag(new))
        .await
        .unwrap();
    assert!(
        f.store
            .get(&f.table, &pk("p"), &rk("r"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn query_operators_and_combinators(f: Fixture) {
    let base = datetime!(2026-01-10 10:00:00 UTC);
    for i in 0..10i32 {
        let e = entity("q", &format!("r{i:02}"))
            .with("N", i)
            .with("L", i64::from(i) * 1_000_000_000_000)
            .with("S", format!("s{i}"))
            .with("D", f64::from(i) + 0.5)
            .with("B", i % 2 == 0)
            .with("T", base + time::Duration::days(i64::from(i)))
            .with("G", Uuid::from_u128(i as u128))
            .with("X", vec![i as u8, 0xff]);
        f.store.insert(&f.table, &e).await.unwrap();
    }
    // A row without the typed properties, and one in another partition.
    f.store
        .insert(&f.table, &entity("q", "r10").with("Other", 1))
        .await
        .unwrap();
    f.store
        .insert(&f.table, &entity("other", "r05").with("N", 5))
        .await
        .unwrap();

    let rs = |v: &[i32]| v.iter().map(|i| format!("r{i:02}")).collect::<Vec<_>>();
    assert_eq!(row_keys(&f, prop("N").eq(3)).await, rs(&[3]));
    assert_eq!(
        row_keys(&f, prop("N").ne(3)).await,
        rs(&[0, 1, 2, 4, 5, 6, 7, 8, 9])
    );
    assert_eq!(row_keys(&f, prop("N").gt(7)).await, rs(&[8, 9]));
    assert_eq!(row_keys(&f, prop("N").ge(7)).await, rs(&[7, 8, 9]));
    assert_eq!(row_keys(&f, prop("N").lt(2)).await, rs(&[0, 1]));
    assert_eq!(row_keys(&f, prop("N").le(2)).await, rs(&[0, 1, 2]));
    assert_eq!(
        row_keys(&f, prop("L").gt(7_000_000_000_000i64)).await,
        rs(&[8, 9])
    );
    assert_eq!(row_keys(&f, prop("S").ge("s8")).await, rs(&[8, 9]));
    assert_eq!(row_keys(&f, prop("D").lt(1.5)).await, rs(&[0]));
    assert_eq!(
        row_keys(&f, prop("B").eq(true).and(prop("N").lt(5))).await,
        rs(&[0, 2, 4])
    );
    assert_eq!(
        row_keys(&f, prop("T").ge(base + time::Duration::days(8))).await,
        rs(&[8, 9])
    );
    assert_eq!(
        row_keys(&f, prop("G").eq(Uuid::from_u128(4))).await,
        rs(&[4])
    );
    assert_eq!(row_keys(&f, prop("X").eq(vec![6u8, 0xff])).await, rs(&[6]));
    assert_eq!(
        row_keys(&f, prop("N").eq(1).or(prop("N").eq(8))).await,
        rs(&[1, 8])
    );
    assert_eq!(
        row_keys(&f, prop("N").ge(2).and(prop("N").le(3).or(prop("N").eq(9)))).await,
        rs(&[2, 3, 9])
    );
    assert_eq!(
        row_keys(&f, prop("N").lt(8).not().and(prop("N").ge(0))).await,
        rs(&[8, 9])
    );
    assert_eq!(
        row_keys(&f, Column::RowKey.ge("r03") & Column::RowKey.lt("r05")).await,
        rs(&[3, 4])
    );
    // A missing property compares false: r10 has no N.
    assert_eq!(row_keys(&f, prop("N").ge(0)).await.len(), 10);
    assert_eq!(
        row_keys(&f, prop("Other").eq(1)).await,
        vec!["r10".to_owned()]
    );
    // Values are escaped, never spliced: quotes are data.
    assert!(row_keys(&f, prop("S").eq("s1' or S ne '")).await.is_empty());
}

async fn select_projects_properties(f: Fixture) {
    f.store
        .insert(
            &f.table,
            &entity("q", "r").with("A", 1).with("B", "b").with("C", true),
        )
        .await
        .unwrap();
    let page = f
        .store
        .query(
            &f.table,
            &Query::new()
                .filter(Column::PartitionKey.eq("q"))
                .select(["A", "C"]),
        )
        .await
        .unwrap();
    assert_eq!(page.entities.len(), 1);
    let e = &page.entities[0];
    assert_eq!(e.row_key.as_str(), "r");
    assert_eq!(
        e.properties,
        props(&[("A", Value::Int32(1)), ("C", Value::Boolean(true))])
    );
    assert!(e.etag.is_some());
}

async fn paging_past_1000_rows(f: Fixture) {
    insert_many(&f, 2500, |i| {
        entity("q", &format!("r{i:05}")).with("N", i as i32)
    })
    .await;
    let mut query = Query::new().filter(Column::PartitionKey.eq("q"));
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    loop {
        let page = f.store.query(&f.table, &query).await.unwrap();
        sizes.push(page.entities.len());
        seen.extend(page.entities.into_iter().map(|e| e.row_key.into_string()));
        match page.continuation {
            Some(token) => query.continuation = Some(token),
            None => break,
        }
    }
    assert_eq!(&sizes[..2], &[1000, 1000], "full pages of 1000: {sizes:?}");
    assert_eq!(seen.len(), 2500);
    let expected: Vec<String> = (0..2500).map(|i| format!("r{i:05}")).collect();
    assert_eq!(seen, expected, "ordered by RowKey, no duplicates or gaps");

    // Small pages with a filter.
    let q = Query::new()
        .filter(Column::PartitionKey.eq("q") & prop("N").ge(2490))
        .page_size(3);
    let first = f.store.query(&f.table, &q).await.unwrap();
    assert!(first.entities.len() <= 3);
    let all = f.store.query_all(&f.table, &q).await.unwrap();
    assert_eq!(all.len(), 10);
    let err = f
        .store
        .query(&f.table, &Query::new().page_size(1001))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("page size"), "{err}");
}

async fn query_loop_follows_continuations_to_the_end(f: Fixture) {
    // Matches sit only at the end of a long partition, after many non-matching rows; a backend
    // may return empty pages with a continuation before it gets there.
    insert_many(&f, 1200, |i| {
        entity("q", &format!("r{i:05}")).with("Hit", i >= 1195)
    })
    .await;
    f.store
        .insert(&f.table, &entity("z", "after").with("Hit", true))
        .await
        .unwrap();
    let q = Query::new().filter(prop("Hit").eq(true)).page_size(2);
    let all = f.store.query_all(&f.table, &q).await.unwrap();
    let keys: Vec<String> = all.iter().map(|e| e.row_key.as_str().to_owned()).collect();
    let mut expected: Vec<String> = (1195..1200).map(|i| format!("r{i:05}")).collect();
    expected.push("after".into());
    assert_eq!(keys, expected);
    let err = f
        .store
        .query(
            &f.table,
            &Query::new().continuation(Some(bifrost_store::table::ContinuationToken::new(
                "garbage!",
            ))),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { ref field, .. } if field == "continuation"),
        "{err:?}"
    );
}

async fn typed_values_round_trip(f: Fixture) {
    let e = entity("p", "types")
        .with("I32min", i32::MIN)
        .with("I32max", i32::MAX)
        .with("I64min", i64::MIN)
        .with("I64max", i64::MAX)
        .with("I64zero", 0i64)
        .with("Dtiny", 5e-324)
        .with("Dhuge", 1.7976931348623157e308)
        .with("Dtwo", 2.0)
        .with("Dfrac", -0.1)
        .with("Dnan", f64::NAN)
        .with("Dinf", f64::NEG_INFINITY)
        .with("T1601", datetime!(1601-01-01 00:00:00 UTC))
        .with("T9999", datetime!(9999-12-31 23:59:59.999_999_9 UTC))
        .with("Tticks", datetime!(2026-03-04 05:06:07.123_456_7 UTC))
        .with(
            "G",
            Uuid::parse_str("c9da6455-213d-42c9-9a79-3e9149a57833").unwrap(),
        )
        .with("Bin", (0..=255u8).collect::<Vec<u8>>())
        .with("BinEmpty", Vec::<u8>::new())
        .with("S", "ünïcödé 🦀 'quoted' \"double\" \\ / # ?")
        .with("Sempty", "")
        .with("Yes", true)
        .with("No", false);
    f.store.insert(&f.table, &e).await.unwrap();
    let got = f
        .store
        .get(&f.table, &pk("p"), &rk("types"))
        .await
        .unwrap()
        .unwrap();
    let mut expected = e.properties.clone();
    let mut actual = got.properties.clone();
    assert!(
        actual
            .remove("Dnan")
            .and_then(|v| v.as_f64())
            .unwrap()
            .is_nan()
    );
    expected.remove("Dnan");
    assert_eq!(actual, expected);
    // And the same through a query.
    let page = f
        .store
        .query(
            &f.table,
            &Query::new().filter(Column::PartitionKey.eq("p") & Column::RowKey.eq("types")),
        )
        .await
        .unwrap();
    let mut actual = page.entities[0].properties.clone();
    actual.remove("Dnan");
    assert_eq!(actual, expected);
    // DateTime keeps 100-ns precision and truncates below it.
    f.store
        .insert(
            &f.table,
            &entity("p", "ns").with("T", datetime!(2026-03-04 05:06:07.123_456_789 UTC)),
        )
        .await
        .unwrap();
    let got = f
        .store
        .get(&f.table, &pk("p"), &rk("ns"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.get("T"),
        Some(&Value::DateTime(
            datetime!(2026-03-04 05:06:07.123_456_7 UTC)
        ))
    );
}

async fn batch_is_atomic_and_reports_failing_index(f: Fixture) {
    f.store
        .insert(&f.table, &entity("b", "r0").with("N", 0))
        .await
        .unwrap();
    let batch = Batch::new()
        .insert(entity("b", "r1"))
        .insert(entity("b", "r2"))
        .insert(entity("b", "r0"))
        .insert(entity("b", "r3"));
    let err = f.store.batch(&f.table, &batch).await.unwrap_err();
    match &err {
        StoreError::BatchFailed { index, source } => {
            assert_eq!(*index, 2, "{err:?}");
            assert!(
                matches!(**source, StoreError::AlreadyExists { .. }),
                "{err:?}"
            );
        }
        other => panic!("expected BatchFailed, got {other:?}"),
    }
    for r in ["r1", "r2", "r3"] {
        assert!(
            f.store
                .get(&f.table, &pk("b"), &rk(r))
                .await
                .unwrap()
                .is_none(),
            "{r} was written"
        );
    }
    // A stale ETag inside a batch fails it too.
    let stale = ETag::new("W/\"datetime'2000-01-01T00%3A00%3A00.0000000Z'\"");
    let batch = Batch::new().insert(entity("b", "r1")).update(
        entity("b", "r0").with("N", 9),
        WriteMode::Merge,
        IfMatch::ETag(stale),
    );
    let err = f.store.batch(&f.table, &batch).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::BatchFailed { index: 1, source } if matches!(**source, StoreError::PreconditionFailed { .. })),
        "{err:?}"
    );
    assert!(
        f.store
            .get(&f.table, &pk("b"), &rk("r1"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn batch_mixed_operations_succeed(f: Fixture) {
    let e0 = f
        .store
        .insert(&f.table, &entity("b", "upd").with("N", 0))
        .await
        .unwrap();
    f.store.insert(&f.table, &entity("b", "del")).await.unwrap();
    let batch = Batch::new()
        .insert(entity("b", "ins").with("N", 1))
        .upsert(entity("b", "ups").with("N", 2), WriteMode::Merge)
        .update(
            entity("b", "upd").with("M", 3),
            WriteMode::Merge,
            IfMatch::ETag(e0),
        )
        .delete(pk("b"), rk("del"), IfMatch::Any);
    let results = f.store.batch(&f.table, &batch).await.unwrap();
    assert_eq!(results.len(), 4);
    assert!(
        results[..3].iter().all(Option::is_some) && results[3].is_none(),
        "{results:?}"
    );
    let upd = f
        .store
        .get(&f.table, &pk("b"), &rk("upd"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        upd.properties,
        props(&[("M", Value::Int32(3)), ("N", Value::Int32(0))])
    );
    assert_eq!(upd.etag, results[2]);
    assert!(
        f.store
            .get(&f.table, &pk("b"), &rk("del"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.store
            .get(&f.table, &pk("b"), &rk("ins"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        f.store
            .batch(&f.table, &Batch::new())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn batch_limits_rejected_before_sending(f: Fixture) {
    let too_many = (0..101).fold(Batch::new(), |b, i| b.insert(entity("b", &format!("r{i}"))));
    let err = f.store.batch(&f.table, &too_many).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid { field, .. } if field == "batch"),
        "{err:?}"
    );
    assert!(err.to_string().contains("100"), "{err}");

    let two_partitions = Batch::new()
        .insert(entity("b", "r1"))
        .insert(entity("c", "r2"));
    let err = f.store.batch(&f.table, &two_partitions).await.unwrap_err();
    assert!(err.to_string().contains("batch[1].PartitionKey"), "{err}");

    let twice = Batch::new()
        .insert(entity("b", "r1"))
        .delete(pk("b"), rk("r1"), IfMatch::Any);
    let err = f.store.batch(&f.table, &twice).await.unwrap_err();
    assert!(err.to_string().contains("batch[1].RowKey"), "{err}");

    let big = "x".repeat(32 * 1024);
    let huge = (0..70).fold(Batch::new(), |b, i| {
        b.insert(entity("b", &format!("r{i}")).with("S", big.as_str()))
    });
    let err = f.store.batch(&f.table, &huge).await.unwrap_err();
    assert!(err.to_string().contains("4 MiB"), "{err}");
    let page = f.store.query(&f.table, &Query::new()).await.unwrap();
    assert!(page.entities.is_empty(), "nothing was written");
}

async fn bad_entities_rejected_with_clear_errors(f: Fixture) {
    for bad in ["a/b", "a\\b", "a#b", "a?b", "tab\there", "nl\n", "\u{7f}"] {
        let err = RowKey::new(bad).unwrap_err();
        assert!(err.to_string().contains("RowKey"), "{bad:?}: {err}");
        let err = PartitionKey::new(bad).unwrap_err();
        assert!(err.to_string().contains("PartitionKey"), "{bad:?}: {err}");
    }
    let err = RowKey::new("k".repeat(1025)).unwrap_err();
    assert!(err.to_string().contains("RowKey"), "{err}");

    let expect_invalid = |err: StoreError, needle: &str| match &err {
        StoreError::Invalid { .. } if err.to_string().contains(needle) => {}
        _ => panic!("expected Invalid mentioning {needle:?}, got {err:?}"),
    };
    // > 1 MiB by Azure's accounting: 17 strings of 32K UTF-16 code units.
    let mut big = entity("p", "big");
    for i in 0..17 {
        big.set(format!("S{i}"), "x".repeat(32 * 1024));
    }
    expect_invalid(f.store.insert(&f.table, &big).await.unwrap_err(), "entity");
    let mut wide = entity("p", "wide");
    for i in 0..253 {
        wide.set(format!("P{i}"), i);
    }
    expect_invalid(
        f.store.insert(&f.table, &wide).await.unwrap_err(),
        "properties",
    );
    wide.properties.remove("P252");
    f.store.insert(&f.table, &wide).await.unwrap();
    assert_eq!(
        f.store
            .get(&f.table, &pk("p"), &rk("wide"))
            .await
            .unwrap()
            .unwrap()
            .properties
            .len(),
        252
    );
    expect_invalid(
        f.store
            .insert(&f.table, &entity("p", "n").with("bad-name", 1))
            .await
            .unwrap_err(),
        "bad-name",
    );
    expect_invalid(
        f.store
            .upsert(
                &f.table,
                &entity("p", "n").with("RowKey", 1),
                WriteMode::Merge,
            )
            .await
            .unwrap_err(),
        "RowKey",
    );
    expect_invalid(
        f.store
            .insert(
                &f.table,
                &entity("p", "n").with("Long", "x".repeat(32 * 1024 + 1)),
            )
            .await
            .unwrap_err(),
        "Long",
    );
    expect_invalid(
        f.store
            .insert(
                &f.table,
                &entity("p", "n").with("Bin", vec![0u8; 64 * 1024 + 1]),
            )
            .await
            .unwrap_err(),
        "Bin",
    );
    expect_invalid(
        f.store
            .insert(
                &f.table,
                &entity("p", "n").with("Old", datetime!(1600-06-01 00:00 UTC)),
            )
            .await
            .unwrap_err(),
        "Old",
    );
    let q = Query::new().filter(prop("x y").eq(1));
    expect_invalid(f.store.query(&f.table, &q).await.unwrap_err(), "x y");
    assert!(
        f.store
            .get(&f.table, &pk("p"), &rk("n"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn tenant_isolation_through_scoped_views(f: Fixture) {
    let org_a = Scope::Org(OrgId::parse("orgA").unwrap());
    let org_b = Scope::Org(OrgId::parse("orgB").unwrap());
    let a = ScopedTable::new(f.store.clone(), f.table.clone(), &org_a);
    let b = ScopedTable::new(f.store.clone(), f.table.clone(), &org_b);
    for view in [&a, &b] {
        for i in 0..3 {
            view.insert(
                rk(&format!("r{i}")),
                props(&[
                    ("Owner", view.partition_key().as_str().into()),
                    ("N", Value::Int32(i)),
                ]),
            )
            .await
            .unwrap();
        }
    }
    let b_before = b.query_all(&Query::new()).await.unwrap();
    assert_eq!(b_before.len(), 3);

    let only_a = |entities: &[Entity]| entities.iter().all(|e| e.partition_key.as_str() == "orgA");
    let hostile = [
        None,
        Some(Column::PartitionKey.eq("orgB")),
        Some(Column::PartitionKey.ne("orgA")),
        Some(Column::PartitionKey.eq("x' or PartitionKey ne '")),
        Some(prop("Owner").eq("x' or PartitionKey ne '")),
        Some(Column::PartitionKey.eq("orgB").or(prop("N").ge(0))),
        Some(Column::PartitionKey.eq("orgA").not()),
    ];
    for filter in hostile {
        let q = Query {
            filter: filter.clone(),
            ..Query::new()
        };
        let rows = a.query_all(&q).await.unwrap();
        assert!(only_a(&rows), "{filter:?} leaked {rows:?}");
    }
    assert_eq!(a.query_all(&Query::new()).await.unwrap().len(), 3);

    // A continuation token taken from B's query cannot reach B's rows through A's view.
    let b_page = b.query(&Query::new().page_size(1)).await.unwrap();
    let token = b_page.continuation.expect("B has more rows");
    let rows = a
        .query_all(&Query::new().continuation(Some(token)))
        .await
        .unwrap();
    assert!(only_a(&rows), "token leaked {rows:?}");

    // Point operations address A's partition only.
    let got = a.get(&rk("r1")).await.unwrap().unwrap();
    assert_eq!(got.partition_key.as_str(), "orgA");
    a.update(
        rk("r1"),
        props(&[("N", Value::Int32(100))]),
        WriteMode::Merge,
        &IfMatch::Any,
    )
    .await
    .unwrap();
    a.upsert(
        rk("r2"),
        props(&[("N", Value::Int32(200))]),
        WriteMode::Replace,
    )
    .await
    .unwrap();
    a.delete(&rk("r0"), &IfMatch::Any).await.unwrap();
    a.batch(
        ScopedBatch::new()
            .insert(rk("r9"), Properties::new())
            .delete(rk("r2"), IfMatch::Any),
    )
    .await
    .unwrap();
    // Deleting what only B has fails in A's view and leaves B alone.
    let b_only = b.insert(rk("bonly"), Properties::new()).await.unwrap();
    let err = a
        .delete(&rk("bonly"), &IfMatch::ETag(b_only))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(a.get(&rk("bonly")).await.unwrap().is_none());

    let mut b_after = b.query_all(&Query::new()).await.unwrap();
    b_after.retain(|e| e.row_key.as_str() != "bonly");
    assert_eq!(
        b_after, b_before,
        "org B's rows changed through org A's view"
    );
    let a_keys: Vec<String> = a
        .query_all(&Query::new())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.row_key.into_string())
        .collect();
    assert_eq!(a_keys, ["r1", "r9"]);
}

// Embedded-backend specifics.

#[tokio::test]
async fn sqlite_returns_empty_pages_with_continuation_when_the_scan_budget_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteTables::open_with(
        dir.path(),
        SqliteTablesOptions {
            max_scan_per_page: 100,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(store.path(), dir.path().join("tables.sqlite3"));
    let table = TableName::new("scan").unwrap();
    store.create_table_if_missing(&table).await.unwrap();
    for chunk in (0..250).collect::<Vec<_>>().chunks(100) {
        let batch = chunk.iter().fold(Batch::new(), |b, i| {
            b.insert(entity("p", &format!("r{i:03}")).with("Hit", *i == 249))
        });
        store.batch(&table, &batch).await.unwrap();
    }
    let mut q = Query::new().filter(prop("Hit").eq(true));
    let mut pages = Vec::new();
    loop {
        let page = store.query(&table, &q).await.unwrap();
        pages.push((page.entities.len(), page.continuation.is_some()));
        match page.continuation {
            Some(token) => q.continuation = Some(token),
            None => break,
        }
    }
    assert_eq!(pages, [(0, true), (0, true), (1, false)]);
    assert_eq!(
        store
            .query_all(&table, &Query::new().filter(prop("Hit").eq(true)))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn sqlite_reopens_with_data_and_tables_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("db.sqlite3");
    let table = TableName::new("persist").unwrap();
    let etag = {
        let store = SqliteTables::open(&path).unwrap();
        store.create_table_if_missing(&table).await.unwrap();
        store
            .insert(&table, &entity("p", "r").with("N", 1i64))
            .await
            .unwrap()
    };
    let store = SqliteTables::open(&path).unwrap();
    let got = store
        .get(&table, &pk("p"), &rk("r"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.etag, Some(etag.clone()));
    let etag2 = store
        .update(
            &table,
            &entity("p", "r"),
            WriteMode::Merge,
            &IfMatch::ETag(etag.clone()),
        )
        .await
        .unwrap();
    assert_ne!(etag, etag2, "ETags stay unique across reopen");
}

#[tokio::test]
async fn azure_unreachable_endpoint_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let account =
        bifrost_store::azure_account::AzureAccount::development("127.0.0.1", port, port, port)
            .unwrap();
    let store = AzureTables::with_options(
        &account,
        bifrost_store::table::AzureTablesOptions {
            max_retries: 2,
            initial_backoff: std::time::Duration::from_millis(10),
            ..Default::default()
        },
    )
    .unwrap();
    let err = store.health().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    let err = store
        .get(&TableName::new("abc").unwrap(), &pk("p"), &rk("r"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

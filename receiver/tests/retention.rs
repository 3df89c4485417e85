//! Retention on a real SQLite file: an erased body is in no byte of the `.db`, `-wal` or `-shm`
//! files and the file shrinks; the pruner runs on the receiver's clock; a redelivery of an
//! erased webhook is answered 200 and neither stored nor handed on.

mod common;

use passfort_clock::{Clock, VirtualClock};
use passfort_receiver::retention::{self, Pruner, Retention};
use passfort_receiver::store::{Lease, SharedStore, SqliteStore, Store};
use passfort_receiver::testing::{self, WebhookBuilder, SECRET};
use passfort_receiver::{Receiver, SecretSet};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tower::ServiceExt;

const DAY: Duration = Duration::from_secs(86_400);

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_643_813_829)
}

/// A `COLLECTED_DATA_UPDATED`-like webhook carrying `name` and a few KiB of personal data (so
/// that some bodies spill into overflow pages).
fn personal(name: &str, i: usize) -> WebhookBuilder {
    let address = format!("{i} {name} Street, ").repeat(120);
    testing::collected_data_updated().data(json!({
        "profile_id": format!("profile-{i}"),
        "collected_data": {"personal_details": {"name": {"given_names": [name], "family_name": format!("{name}-{i}")}},
                           "address_history": [{"address": address}]}
    }))
}

fn files(db: &Path) -> Vec<(String, Vec<u8>)> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            let name = Path::new(&path).display().to_string();
            (name, std::fs::read(&path).unwrap_or_default())
        })
        .collect()
}

fn occurs(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn process_all(store: &SharedStore, now: SystemTime) {
    while let Lease::Acquired(leased) = store
        .lease_next("w", now, Duration::from_secs(60))
        .await
        .unwrap()
    {
        store.complete(leased.seq, "w", now).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_bodies_are_in_no_byte_of_the_files_and_the_file_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("erasure.db");
    let url = format!("sqlite://{}", db.display());
    let store: SharedStore = Arc::new(SqliteStore::open(&url).await.unwrap());

    // 400 webhooks of "Erasable" people, in requests of 20, all processed.
    let erasable: Vec<WebhookBuilder> = (0..400).map(|i| personal("Erasable", i)).collect();
    for request in erasable.chunks(20) {
        store
            .insert(&testing::verified(request), t0())
            .await
            .unwrap();
    }
    process_all(&store, t0()).await;
    // One more person whose webhook is still pending: kept.
    store
        .insert(&testing::verified(&[personal("Keptperson", 0)]), t0())
        .await
        .unwrap();

    // Everything in the database file, the WAL empty: the size to beat.
    store.reclaim_space().await.unwrap();
    let before = std::fs::metadata(&db).unwrap().len();
    let all: Vec<u8> = files(&db).into_iter().flat_map(|(_, b)| b).collect();
    assert!(
        occurs(&all, "Erasable-399"),
        "the search finds what is there"
    );

    let pruned = retention::prune(&*store, &Retention::default(), t0() + 30 * DAY)
        .await
        .unwrap();
    assert_eq!(pruned.bodies_erased, 400);

    // While the store is still open, as in a running receiver.
    for (name, bytes) in files(&db) {
        assert!(
            !occurs(&bytes, "Erasable"),
            "an erased body is still in {name}"
        );
        assert!(
            !occurs(&bytes, "Erasable Street"),
            "an erased address is still in {name}"
        );
    }
    let kept: Vec<u8> = files(&db).into_iter().flat_map(|(_, b)| b).collect();
    assert!(occurs(&kept, "Keptperson-0"), "the pending body is kept");
    let after = std::fs::metadata(&db).unwrap().len();
    assert!(
        after * 4 < before,
        "the file shrinks: {before} bytes before, {after} after"
    );
    let status = store.retention_status().await.unwrap();
    assert_eq!(status.bodies_kept, 1);
    assert_eq!(status.webhooks_stored, 401);
    assert!(
        status.database_bytes >= after,
        "{} counts the file and its WAL",
        status.database_bytes
    );

    // Forgetting the ids erases nothing more and still leaves no trace.
    let pruned = retention::prune(&*store, &Retention::default(), t0() + 90 * DAY)
        .await
        .unwrap();
    assert_eq!(pruned.ids_forgotten, 400);
    for (name, bytes) in files(&db) {
        assert!(
            !occurs(&bytes, erasable[7].get_id()),
            "a forgotten id is still in {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_made_before_retention_is_converted_and_shrinks_too() {
    // A file without incremental auto-vacuum, as every database made before retention existed.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE leftover (x TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO leftover VALUES ('Deleted Before Secure Delete')")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("DELETE FROM leftover")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let url = format!("sqlite://{}", db.display());
    let store = SqliteStore::open(&url).await.unwrap();
    let mode: i64 = {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(mode, 2, "incremental auto-vacuum after the first open");
    store.reclaim_space().await.unwrap();
    for (name, bytes) in files(&db) {
        assert!(
            !occurs(&bytes, "Deleted Before Secure Delete"),
            "content deleted before the conversion is still in {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pruner_runs_on_the_receivers_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = common::sqlite_in(dir.path(), "pruner").await;
    let clock = VirtualClock::starting_at(t0());
    let batch = vec![testing::check_completed(), testing::check_completed()];
    store
        .insert(&testing::verified(&batch), t0())
        .await
        .unwrap();
    process_all(&store, t0()).await;
    let policy = Retention::new(DAY, 2 * DAY).unwrap();
    let pruner = Pruner::new(
        store.clone(),
        Arc::new(clock.clone()),
        policy,
        Duration::from_secs(600),
    )
    .spawn();
    // Waits (without sleeping) until the pruner has finished a turn and waits on the clock.
    let turn_done = || async {
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
    };
    turn_done().await;
    assert_eq!(store.retention_status().await.unwrap().bodies_kept, 2);
    // A day later, at the next turn on or after it, the bodies go.
    while clock.now() < t0() + DAY {
        clock.advance_to_next();
        turn_done().await;
    }
    let status = store.retention_status().await.unwrap();
    assert_eq!(status.bodies_kept, 0);
    assert_eq!(status.webhooks_stored, 2);
    assert_eq!(status.bodies_erased_total, 2);
    pruner.abort();
}

#[tokio::test]
async fn a_redelivered_erased_webhook_is_answered_200_and_not_stored_again() {
    let store: SharedStore = Arc::new(SqliteStore::in_memory().await.unwrap());
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(SECRET).unwrap())
        .shared_store(store.clone())
        .build()
        .unwrap();
    let hook = personal("Erasable", 1);
    let post = || {
        receiver.router().oneshot(testing::signed_request(
            "/webhooks/passfort",
            &hook.json(),
            SECRET,
        ))
    };
    assert_eq!(post().await.unwrap().status(), 200);
    let now = SystemTime::now();
    process_all(&store, now).await;
    retention::prune(&*store, &Retention::default(), now + 31 * DAY)
        .await
        .unwrap();
    let response = post().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["duplicates"], 1, "{answer}");
    assert_eq!(answer["stored"], 0, "{answer}");
    let entries = store.entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].body_erased_at.is_some(), "still erased");
    assert!(
        matches!(
            store
                .lease_next("w", now + 31 * DAY, Duration::from_secs(60))
                .await
                .unwrap(),
            Lease::Empty
        ),
        "nothing is handed on again"
    );
}

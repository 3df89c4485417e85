//! Migrations run from several replicas at once apply each migration exactly once, and running
//! them again changes nothing: real `passfort-receiver migrate` processes racing on a fresh
//! database, then stores opening concurrently in one process.

mod postgres_support;

use passfort_receiver::store::{PostgresStore, Store};
use postgres_support::TestDatabase;
use std::process::Command;
use std::time::SystemTime;

const BIN: &str = env!("CARGO_BIN_EXE_passfort-receiver");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_once_and_are_idempotent() {
    let db = TestDatabase::create().await;
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                Command::new(BIN)
                    .args(["migrate", "--database", &url])
                    .output()
            })
        })
        .collect();
    for racer in racers {
        let out = racer.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "database schema is up to date\n"
        );
    }
    // Again, in process, eight stores opening at the same time.
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move {
                PostgresStore::open_with_connections(&url, Default::default(), 1).await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().unwrap());
    }
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(stores[0].pool())
            .await
            .unwrap();
    let expected: Vec<(i64, bool)> = PostgresStore::migration_versions()
        .into_iter()
        .map(|v| (v, true))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        applied, expected,
        "each migration applied once, successfully"
    );
    // The schema works.
    let status = stores[0].status(SystemTime::now()).await.unwrap();
    assert_eq!(status.queue_depth, 0);
    for store in stores {
        store.close().await;
    }
}

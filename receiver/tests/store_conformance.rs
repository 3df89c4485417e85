//! The SQLite store passes the store conformance suite, each case on a fresh database file.

use passfort_receiver::store::{conformance, SharedStore, SqliteStore};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_meets_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let counter = AtomicUsize::new(0);
    conformance::run_all(|| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let url = format!("sqlite://{}/case-{n}.db", dir.path().display());
        async move { Arc::new(SqliteStore::open(&url).await.unwrap()) as SharedStore }
    })
    .await;
    assert_eq!(counter.load(Ordering::SeqCst), conformance::cases().len());
}

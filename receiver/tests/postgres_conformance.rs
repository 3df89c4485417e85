//! The PostgreSQL store passes the same store conformance suite as the SQLite store
//! (`tests/store_conformance.rs`): one suite, two backends. Each case gets a fresh schema in the
//! test's own fresh database.

mod postgres_support;

use passfort_receiver::store::{conformance, Ordering, PostgresStore, SharedStore};
use postgres_support::TestDatabase;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

async fn run(ordering: Ordering) {
    let db = TestDatabase::create().await;
    let counter = AtomicUsize::new(0);
    let stores: Arc<Mutex<Vec<PostgresStore>>> = Arc::default();
    conformance::run_all(|| {
        let n = counter.fetch_add(1, AtomicOrdering::SeqCst);
        let stores = stores.clone();
        let db = &db;
        async move {
            // The previous case is over: free its connections (the server has only so many).
            let previous = stores.lock().unwrap().last().cloned();
            if let Some(store) = previous {
                store.close().await;
            }
            let url = db.schema(&format!("case_{n}")).await;
            let store = PostgresStore::open_with_connections(&url, ordering, 4)
                .await
                .unwrap();
            stores.lock().unwrap().push(store.clone());
            Arc::new(store) as SharedStore
        }
    })
    .await;
    assert_eq!(
        counter.load(AtomicOrdering::SeqCst),
        conformance::cases().len()
    );
    let last = stores.lock().unwrap().last().cloned();
    if let Some(store) = last {
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_meets_the_store_contract() {
    run(Ordering::Global).await;
}

/// The suite's webhooks all belong to one profile, so the per-profile ordering must behave
/// exactly like the global one on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_profile_store_meets_the_store_contract_on_one_profile() {
    run(Ordering::PerProfile).await;
}

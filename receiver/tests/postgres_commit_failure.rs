//! The PostgreSQL twin of the SQLite full-disk test: a commit the server refuses (here a
//! deferred constraint that fails at COMMIT, as a full disk or a failover would) stores nothing,
//! and the same store, without a restart, stores the next request on every pooled connection.
//! sqlx rolls back a failed PostgreSQL transaction on the connection's next use, and a ROLLBACK
//! outside a transaction is only a warning there, so no connection is left stuck (SQLite needed
//! a fix for that: `store::sqlite`).

mod postgres_support;

use passfort_receiver::store::{Ordering, PostgresStore, Store};
use passfort_receiver::testing::{self};
use postgres_support::TestDatabase;
use sqlx::Connection;
use std::time::{Duration, UNIX_EPOCH};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_stores_nothing_and_the_store_recovers() {
    let db = TestDatabase::create().await;
    let url = db.schema("commit_failure").await;
    let store = PostgresStore::open_with_connections(&url, Ordering::Global, 3)
        .await
        .unwrap();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF NEW.event = 'REFUSED_AT_COMMIT' THEN RAISE EXCEPTION 'refused at commit'; END IF; \
           RETURN NULL; \
         END $$; \
         CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON webhooks \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut stored = Vec::new();
    // More rounds than connections, so every pooled connection meets a refused commit.
    for round in 0..6 {
        let refused = testing::unknown_event("REFUSED_AT_COMMIT");
        let staged = store
            .stage(&testing::verified(&[refused]), at)
            .await
            .unwrap_or_else(|e| panic!("round {round}: staging failed before the commit: {e}"));
        let error = staged
            .commit()
            .await
            .expect_err("the deferred constraint must refuse the commit");
        assert!(error.to_string().contains("refused at commit"), "{error}");

        let fine = testing::check_completed();
        stored.push(fine.get_id().to_owned());
        let outcome = store
            .insert(&testing::verified(&[fine]), at)
            .await
            .unwrap_or_else(|e| panic!("round {round}: no write after a refused commit: {e}"));
        assert_eq!(outcome.stored.len(), 1);
    }
    let ids: Vec<String> = store
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.webhook.id)
        .collect();
    assert_eq!(ids, stored, "a refused commit left a webhook behind");
}

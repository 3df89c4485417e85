//! PostgreSQL going away mid-run: the public endpoint answers 503 and stores nothing, the worker
//! reports the store unavailable, and both recover by themselves, with no restart, once the
//! database is back; then everything is handed on once, in order.
//!
//! Two kinds of outage, neither touching the server other tests share: a proxy in front of it
//! that cuts every connection and refuses new ones (a server down, restarting or failing over),
//! and `pg_terminate_backend` on every session of the test's database (what a restart does to
//! the connections a pool holds).

mod postgres_support;

use passfort_clock::VirtualClock;
use passfort_receiver::store::{PostgresStore, SharedStore, StoreError};
use passfort_receiver::testing::{self, WebhookBuilder};
use postgres_support::{LiveReceiver, TestDatabase};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

async fn post(client: &reqwest::Client, url: &str, hooks: &[WebhookBuilder]) -> u16 {
    client
        .post(url)
        .header("authorization", format!("Bearer {}", testing::SECRET))
        .header("content-type", "application/json")
        .body(testing::batch_body(hooks).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn ids(hooks: &[WebhookBuilder]) -> Vec<String> {
    hooks.iter().map(|h| h.get_id().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_and_recovers_by_itself() {
    let db = TestDatabase::create().await;
    let outage = postgres_support::outage().await;
    let via_proxy = db.url_via(outage.addr);
    let clock = VirtualClock::starting_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let store = PostgresStore::open_with_connections(&via_proxy, Default::default(), 4)
        .await
        .unwrap();
    let LiveReceiver {
        url,
        handler,
        worker,
    } = LiveReceiver::start(store.clone(), clock.clone()).await;
    // Looks at the database directly, past the proxy.
    let direct: SharedStore = Arc::new(
        PostgresStore::open_with_connections(&db.url, Default::default(), 2)
            .await
            .unwrap(),
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let before: Vec<WebhookBuilder> = (0..3).map(|_| testing::check_completed()).collect();
    assert_eq!(post(&client, &url, &before).await, 200);
    assert_eq!(worker.run_until_idle().await.unwrap().done, 3);

    // Down: every request is refused with 503 and leaves nothing behind.
    outage.begin();
    let during: Vec<WebhookBuilder> = (0..4).map(|_| testing::check_completed()).collect();
    assert_eq!(post(&client, &url, &during).await, 503);
    assert_eq!(post(&client, &url, &during[..1]).await, 503);
    assert!(matches!(
        worker.run_until_idle().await,
        Err(StoreError::Unavailable(_))
    ));
    let stored: Vec<String> = direct
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.webhook.id)
        .collect();
    assert_eq!(stored, ids(&before), "a refused request stored something");

    // Back: the same process accepts again (PassFort redelivers what was refused).
    outage.end();
    assert_eq!(post(&client, &url, &during).await, 200);

    // A restart as the pool sees it: every session killed by the server.
    assert!(db.terminate_sessions().await > 0, "no session was cut");
    let after: Vec<WebhookBuilder> = (0..2).map(|_| testing::check_completed()).collect();
    let mut answers = Vec::new();
    for _ in 0..5 {
        let status = post(&client, &url, &after).await;
        answers.push(status);
        if status == 200 {
            break;
        }
    }
    assert_eq!(answers.last(), Some(&200), "never recovered: {answers:?}");
    assert!(
        answers.iter().all(|s| *s == 200 || *s == 503),
        "{answers:?}"
    );

    // The worker recovers too; everything is handed on once, in order.
    let mut drained = 0;
    for _ in 0..5 {
        match worker.run_until_idle().await {
            Ok(d) => {
                drained += d.done;
                break;
            }
            Err(StoreError::Unavailable(_)) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(drained, during.len() + after.len());
    let all = [ids(&before), ids(&during), ids(&after)].concat();
    assert_eq!(handler.ids(), all);
    let stored: Vec<String> = direct
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.webhook.id)
        .collect();
    assert_eq!(stored, all);
    store.close().await;
}

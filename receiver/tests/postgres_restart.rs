//! A real restart of the machine's PostgreSQL cluster under a live receiver and worker: while
//! it is down requests are answered 503 and nothing is stored; after it is back the same
//! receiver and worker carry on by themselves, everything handed on once, in order.
//!
//! It stops the shared cluster (`pg_ctlcluster --skip-systemctl-redirect VERSION main
//! stop|start`), which would break any other PostgreSQL test running at that moment, so it is
//! ignored in plain `cargo test` and run on its own:
//!
//! ```sh
//! cargo test -p passfort-receiver --test postgres_restart -- --ignored
//! ```
//!
//! The cluster is started again in every case (a guard restarts it when the test panics).
//! `postgres_outage` covers the same ground in plain `cargo test` with a simulated outage.

mod postgres_support;

use passfort_clock::VirtualClock;
use passfort_receiver::store::{PostgresStore, SharedStore};
use passfort_receiver::testing::{self, WebhookBuilder};
use postgres_support::{LiveReceiver, TestDatabase};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

fn cluster(action: &str) -> bool {
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut dirs| dirs.next())
        .and_then(|d| d.ok())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .expect("no cluster under /etc/postgresql");
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn ready() -> bool {
    Command::new("pg_isready")
        .args(["-h", "127.0.0.1", "-p", "5432", "-q"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn wait_ready() {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "PostgreSQL did not come back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the cluster again when dropped, whatever happened.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        if !ready() {
            cluster("start");
            wait_ready();
        }
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops and starts the machine's PostgreSQL cluster: run alone with --ignored"]
async fn a_real_cluster_restart_answers_503_then_recovers() {
    let db = TestDatabase::create().await;
    let clock = VirtualClock::starting_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let store = PostgresStore::open_with_connections(&db.url, Default::default(), 4)
        .await
        .unwrap();
    let LiveReceiver {
        url,
        handler,
        worker,
    } = LiveReceiver::start(store.clone(), clock.clone()).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let before: Vec<WebhookBuilder> = (0..3).map(|_| testing::check_completed()).collect();
    assert_eq!(post(&client, &url, &before).await, 200);

    let restore = Restore;
    assert!(cluster("stop"), "could not stop the cluster");
    let during: Vec<WebhookBuilder> = (0..2).map(|_| testing::check_completed()).collect();
    assert_eq!(post(&client, &url, &during).await, 503);
    assert!(
        worker.run_until_idle().await.is_err(),
        "the worker saw a database"
    );
    assert!(cluster("start"), "could not start the cluster");
    wait_ready();
    drop(restore);

    // Same process, no restart: accepted again (PassFort redelivers what was refused).
    let mut answers = Vec::new();
    for _ in 0..5 {
        let status = post(&client, &url, &during).await;
        answers.push(status);
        if status == 200 {
            break;
        }
    }
    assert_eq!(answers.last(), Some(&200), "never recovered: {answers:?}");
    let mut done = 0;
    for _ in 0..5 {
        if let Ok(drained) = worker.run_until_idle().await {
            done = drained.done;
            break;
        }
    }
    assert_eq!(done, before.len() + during.len());
    let all: Vec<String> = before
        .iter()
        .chain(&during)
        .map(|h| h.get_id().to_owned())
        .collect();
    assert_eq!(handler.ids(), all, "handed on once each, in order");
    let direct: SharedStore = Arc::new(PostgresStore::open(&db.url).await.unwrap());
    let stored: Vec<String> = direct
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.webhook.id)
        .collect();
    assert_eq!(
        stored, all,
        "the refused request stored nothing the first time"
    );
    store.close().await;
}

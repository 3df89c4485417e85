//! Two receiver replicas and two workers on one PostgreSQL database, with concurrent,
//! duplicated and out-of-step deliveries: every webhook is stored once, in the order PassFort
//! sent it, and handed on exactly once, in that order (global) or in each profile's order
//! (per-profile). Time is a `VirtualClock` that never moves, so no lease ever expires and
//! no deadline is ever missed: exclusion comes from the leases alone.

mod postgres_support;

use passfort_clock::VirtualClock;
use passfort_receiver::store::{Ordering, PostgresStore, SharedStore, State, Store};
use passfort_receiver::testing::{self, RecordingHandler, WebhookBuilder};
use passfort_receiver::{Receiver, SecretSet, Worker};
use postgres_support::TestDatabase;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const PROFILES: usize = 5;

fn clock() -> VirtualClock {
    VirtualClock::starting_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

/// PassFort's queue for one account: `n` webhooks over `PROFILES` profiles, in send order.
fn queue(n: usize) -> Vec<WebhookBuilder> {
    (0..n)
        .map(|i| {
            testing::check_completed().data(json!({
                "profile_id": format!("profile-{}", i % PROFILES),
                "n": i,
            }))
        })
        .collect()
}

/// The batches PassFort sends: sizes 1, 2, 3, 4, 5, 1, 2, …
fn batches(queue: &[WebhookBuilder]) -> Vec<Vec<WebhookBuilder>> {
    let mut out = Vec::new();
    let mut rest = queue;
    let mut size = 1;
    while !rest.is_empty() {
        let take = size.min(rest.len());
        out.push(rest[..take].to_vec());
        rest = &rest[take..];
        size = size % 5 + 1;
    }
    out
}

struct Replica {
    url: String,
}

async fn replica(url: &str, clock: &VirtualClock) -> Replica {
    let store = PostgresStore::open_with_connections(url, Ordering::Global, 6)
        .await
        .unwrap();
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(testing::SECRET).unwrap())
        .store(store)
        .clock(clock.clone())
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let router = receiver.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Replica {
        url: format!("http://{addr}{}", receiver.path()),
    }
}

async fn deliver(client: &reqwest::Client, replica: &Replica, hooks: &[WebhookBuilder]) -> Value {
    let response = client
        .post(&replica.url)
        .header("authorization", format!("Bearer {}", testing::SECRET))
        .header("content-type", "application/json")
        .body(testing::batch_body(hooks).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "delivery refused: {body}");
    body
}

/// Sends `queue` the way PassFort does through a load balancer that alternates replicas, with
/// every third answer "lost": that batch is then redelivered to both replicas at once (the
/// retry overlapping the first attempt), and once more as the head of a longer batch. After
/// every batch an old batch is replayed concurrently with the next one.
async fn send_like_passfort(replicas: &[Replica; 2], queue: &[WebhookBuilder]) -> usize {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let batches = batches(queue);
    let mut duplicates = 0;
    let mut replayed: Option<Vec<WebhookBuilder>> = None;
    for (k, batch) in batches.iter().enumerate() {
        let here = &replicas[k % 2];
        let there = &replicas[(k + 1) % 2];
        let first = deliver(&client, here, batch);
        let stale = async {
            match &replayed {
                Some(old) => Some(deliver(&client, there, old).await),
                None => None,
            }
        };
        let (answer, stale) = tokio::join!(first, stale);
        if let Some(stale) = stale {
            assert_eq!(stale["stored"], 0, "a replayed batch stored something new");
            duplicates += stale["duplicates"].as_u64().unwrap() as usize;
        }
        if k % 3 == 2 {
            // The answer was lost: PassFort retries while the first attempt may still be in
            // flight, on the other replica, and then again merged with what follows.
            let (a, b) = tokio::join!(
                deliver(&client, here, batch),
                deliver(&client, there, batch)
            );
            for again in [a, b] {
                assert_eq!(again["stored"], 0);
                duplicates += again["duplicates"].as_u64().unwrap() as usize;
            }
            let mut merged = batch.clone();
            if let Some(next) = batches.get(k + 1) {
                merged.extend(next.iter().take(2).cloned());
            }
            let merged_answer = deliver(&client, there, &merged).await;
            duplicates += merged_answer["duplicates"].as_u64().unwrap() as usize;
        }
        let _ = answer;
        replayed = Some(batch.clone());
    }
    duplicates
}

fn ids(hooks: &[WebhookBuilder]) -> Vec<String> {
    hooks.iter().map(|h| h.get_id().to_owned()).collect()
}

fn profile_of(hook: &WebhookBuilder) -> String {
    hook.json()["data"]["profile_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs both workers until every webhook is done; they compete for the same queue throughout.
async fn work_until_done(workers: Vec<Worker>, store: &SharedStore, expected: usize) {
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|worker| {
            let store = store.clone();
            tokio::spawn(async move {
                // A generous bound on rounds, not on time: each round does work or yields.
                for _ in 0..200_000 {
                    worker.run_until_idle().await.unwrap();
                    let status = store.status(UNIX_EPOCH).await.unwrap();
                    if status.done as usize == expected {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
                panic!("{} never saw the queue drained", worker.name());
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn run(ordering: Ordering) {
    let db = TestDatabase::create().await;
    let clock = clock();
    let replicas = [
        replica(&db.url, &clock).await,
        replica(&db.url, &clock).await,
    ];
    let handler = RecordingHandler::new();
    let mut workers = Vec::new();
    for name in ["worker-a", "worker-b"] {
        let store = PostgresStore::open_with_connections(&db.url, ordering, 4)
            .await
            .unwrap();
        workers.push(
            Worker::builder()
                .store(store)
                .handler(handler.clone())
                .clock(clock.clone())
                .name(name)
                .build()
                .unwrap(),
        );
    }
    let observer: SharedStore = Arc::new(PostgresStore::open(&db.url).await.unwrap());
    let queue = queue(120);

    // The workers race the deliveries from the start.
    let sending = send_like_passfort(&replicas, &queue);
    let working = work_until_done(workers, &observer, queue.len());
    let (duplicates, ()) = tokio::join!(sending, working);
    assert!(
        duplicates > queue.len() / 2,
        "the run redelivered too little"
    );

    // Stored once each, in send order, all done.
    let entries = observer.entries().await.unwrap();
    let stored: Vec<String> = entries.iter().map(|e| e.webhook.id.clone()).collect();
    assert_eq!(stored, ids(&queue), "stored in the order PassFort sent");
    assert!(entries.iter().all(|e| e.state == State::Done));
    assert!(
        entries.iter().all(|e| e.attempts == 1),
        "a webhook was leased twice"
    );

    let handled = handler.ids();
    let mut seen = HashMap::new();
    for id in &handled {
        *seen.entry(id.clone()).or_insert(0) += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "handed on twice");
    assert_eq!(seen.len(), queue.len(), "not everything handed on");
    match ordering {
        Ordering::Global => assert_eq!(handled, ids(&queue), "handed on out of order"),
        Ordering::PerProfile => {
            for p in 0..PROFILES {
                let profile = format!("profile-{p}");
                let want: Vec<String> = queue
                    .iter()
                    .filter(|h| profile_of(h) == profile)
                    .map(|h| h.get_id().to_owned())
                    .collect();
                let by_id: HashMap<String, String> = queue
                    .iter()
                    .map(|h| (h.get_id().to_owned(), profile_of(h)))
                    .collect();
                let got: Vec<String> = handled
                    .iter()
                    .filter(|id| by_id[*id] == profile)
                    .cloned()
                    .collect();
                assert_eq!(got, want, "{profile} handed on out of order");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_two_workers_global_order_exactly_once() {
    run(Ordering::Global).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_two_workers_per_profile_order_exactly_once() {
    run(Ordering::PerProfile).await;
}

/// Arrival order is commit order: while one replica's request is staged but not committed,
/// another replica's request waits for it (PostgreSQL shows that session waiting on the
/// staging lock) instead of committing positions that a worker could hand on before the
/// earlier request's. Once the first commits, the second lands wholly behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_request_waits_for_the_staged_one_before_it() {
    let db = TestDatabase::create().await;
    let replica_a = PostgresStore::open_with_connections(&db.url, Ordering::Global, 2)
        .await
        .unwrap();
    let replica_b = PostgresStore::open_with_connections(&db.url, Ordering::Global, 2)
        .await
        .unwrap();
    let first = queue(3);
    let second = queue(2);
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let staged = replica_a
        .stage(&testing::verified(&first), at)
        .await
        .unwrap();
    let verified = testing::verified(&second);
    let later = tokio::spawn(async move {
        let outcome = replica_b.stage(&verified, at).await?.commit().await;
        replica_b.close().await;
        outcome
    });
    // Wait (bounded by rounds) until PostgreSQL shows the later request waiting on the lock;
    // if it committed instead, order would be broken.
    let mut waiting = false;
    for _ in 0..10_000 {
        assert!(
            !later.is_finished(),
            "a later request committed while an earlier one was still staged"
        );
        let sessions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' \
               AND wait_event = 'advisory'",
        )
        .fetch_one(replica_a.pool())
        .await
        .unwrap();
        if sessions == 1 {
            waiting = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(waiting, "the later request never waited for the staged one");
    staged.commit().await.unwrap();
    let outcome = later.await.unwrap().unwrap();
    assert_eq!(outcome.stored, ids(&second));
    let stored: Vec<String> = replica_a
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.webhook.id)
        .collect();
    assert_eq!(stored, [ids(&first), ids(&second)].concat());
    replica_a.close().await;
}

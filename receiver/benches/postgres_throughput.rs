//! Webhooks per second on one PostgreSQL database: acknowledged by 1, 2 and 4 receiver
//! replicas, and handed on by 1 and 4 workers in per-profile order (plus 1 worker in global
//! order, for reference). First it prints issue 13's two PostgreSQL rows against their
//! targets: one replica acknowledging single webhooks from 32 clients (≥ 3,000 requests/s), and
//! one worker in global order handing on to a no-op handler (≥ 5,000 webhooks/s).
//!
//! ```sh
//! cargo bench -p passfort-receiver --bench postgres_throughput
//! cargo bench -p passfort-receiver --bench postgres_throughput -- --quick   # issue rows only
//! ```
//!
//! Needs the PostgreSQL server of the tests (`postgres://postgres@127.0.0.1:5432`, or
//! `PASSFORT_TEST_POSTGRES`); creates and drops its own database. Replicas are in-process
//! `Receiver`s, each with its own connection pool, served over loopback HTTP and fed
//! round-robin by concurrent clients, as a load balancer would. `PF_BENCH_REQUESTS` and
//! `PF_BENCH_WEBHOOKS` change the sizes; `--quick` (or `PF_BENCH_QUICK=1`) measures only the
//! issue's two rows, with a quarter of the requests.

use passfort_receiver::store::{Ordering, PostgresStore, Store};
use passfort_receiver::testing::{self, WebhookBuilder};
use passfort_receiver::{handler_fn, Job, Receiver, SecretSet, Worker};
use serde_json::json;
use sqlx::Connection;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const CLIENTS: usize = 32;
const PROFILES: usize = 64;

fn server() -> String {
    std::env::var("PASSFORT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn admin(sql: &str) {
    let mut conn = sqlx::PgConnection::connect(&format!("{}/postgres", server()))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {}: {e}", server()));
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
}

/// A fresh database for one measurement.
async fn fresh_database(tag: &str) -> (String, String) {
    let name = format!("pf_bench_{tag}_{}", uuid::Uuid::new_v4().simple());
    admin(&format!("CREATE DATABASE {name}")).await;
    (format!("{}/{name}", server()), name)
}

fn hook(i: usize) -> WebhookBuilder {
    testing::check_completed().data(json!({
        "profile_id": format!("profile-{}", i % PROFILES),
        "n": i,
    }))
}

/// Requests of `per_request` webhooks acknowledged per second by `replicas` replicas.
async fn acks(replicas: usize, requests: usize, per_request: usize) -> (f64, f64) {
    let (url, name) = fresh_database(&format!("ack{replicas}")).await;
    let mut urls = Vec::new();
    for _ in 0..replicas {
        let store = PostgresStore::open_with_connections(&url, Ordering::Global, 16)
            .await
            .unwrap();
        let receiver = Receiver::builder()
            .secrets(SecretSet::single(testing::SECRET).unwrap())
            .store(store)
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!(
            "http://{}{}",
            listener.local_addr().unwrap(),
            receiver.path()
        ));
        let router = receiver.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    }
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..requests)
            .map(|r| {
                let hooks: Vec<WebhookBuilder> = (0..per_request)
                    .map(|i| hook(r * per_request + i))
                    .collect();
                if per_request == 1 {
                    hooks[0].json().to_string()
                } else {
                    testing::batch_body(&hooks).to_string()
                }
            })
            .collect(),
    );
    let urls = Arc::new(urls);
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (bodies, urls, next, client) =
                (bodies.clone(), urls.clone(), next.clone(), client.clone());
            tokio::spawn(async move {
                loop {
                    let r = next.fetch_add(1, AtomicOrdering::Relaxed);
                    if r >= bodies.len() {
                        return;
                    }
                    let status = client
                        .post(&urls[r % urls.len()])
                        .header("authorization", format!("Bearer {}", testing::SECRET))
                        .header("content-type", "application/json")
                        .body(bodies[r].clone())
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert_eq!(status, 200, "request {r} not acknowledged");
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    admin(&format!("DROP DATABASE {name} WITH (FORCE)")).await;
    (
        requests as f64 / secs,
        (requests * per_request) as f64 / secs,
    )
}

/// Webhooks handed on per second by `workers` workers, with a handler that takes `handler`
/// (zero: the store's own cost; a few milliseconds: a handler that calls another service).
async fn processing(workers: usize, ordering: Ordering, webhooks: usize, handler: Duration) -> f64 {
    let (url, name) = fresh_database(&format!("work{workers}")).await;
    let loader = PostgresStore::open_with_connections(&url, ordering, 2)
        .await
        .unwrap();
    let all: Vec<WebhookBuilder> = (0..webhooks).map(hook).collect();
    for chunk in all.chunks(100) {
        loader
            .insert(&testing::verified(chunk), SystemTime::now())
            .await
            .unwrap();
    }
    let handled = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (url, handled) = (url.clone(), handled.clone());
            tokio::spawn(async move {
                let store = PostgresStore::open_with_connections(&url, ordering, 2)
                    .await
                    .unwrap();
                let counter = handled.clone();
                let worker = Worker::builder()
                    .store(store)
                    .name(format!("bench-{w}"))
                    .handler(handler_fn(move |_job: Job| {
                        let counter = counter.clone();
                        async move {
                            if !handler.is_zero() {
                                // Stands for the handler's remote call.
                                tokio::time::sleep(handler).await;
                            }
                            counter.fetch_add(1, AtomicOrdering::Relaxed);
                            Ok(())
                        }
                    }))
                    .build()
                    .unwrap();
                while handled.load(AtomicOrdering::Relaxed) < webhooks {
                    let drained = worker.run_until_idle().await.unwrap();
                    if drained.done == 0 {
                        // Every free lane is held by another worker: let them run.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let status = loader.status(SystemTime::now()).await.unwrap();
    assert_eq!(status.done as usize, webhooks, "not everything handed on");
    loader.close().await;
    admin(&format!("DROP DATABASE {name} WITH (FORCE)")).await;
    webhooks as f64 / secs
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("PF_BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
    let scale = if quick { 4 } else { 1 };
    let requests = env_usize("PF_BENCH_REQUESTS", 4000 / scale);
    let webhooks = env_usize("PF_BENCH_WEBHOOKS", 8000 / scale);
    runtime.block_on(async {
        println!("PostgreSQL throughput ({CLIENTS} concurrent clients, {PROFILES} profiles)");
        println!();
        let (single, _) = acks(1, requests, 1).await;
        let noop = processing(1, Ordering::Global, webhooks, Duration::ZERO).await;
        let met = |ok: bool| if ok { "met" } else { "not met" };
        println!("| issue 13 row | measured | target | |");
        println!("|---|---|---|---|");
        println!(
            "| one replica, {CLIENTS} clients, single webhooks ({requests} requests) | {single:.0} req/s | ≥ 3,000 req/s | {} |",
            met(single >= 3000.0)
        );
        println!(
            "| one worker, global order, no-op handler ({webhooks} webhooks) | {noop:.0} webhooks/s | ≥ 5,000 webhooks/s | {} |",
            met(noop >= 5000.0)
        );
        if quick {
            return;
        }
        println!();
        println!("| acknowledged by | single webhooks: requests/s | batches of 10: webhooks/s |");
        println!("|---|---|---|");
        for replicas in [1, 2, 4] {
            let (single, _) = acks(replicas, requests, 1).await;
            let (_, batched) = acks(replicas, requests / 4, 10).await;
            println!("| {replicas} replica(s) | {single:.0} | {batched:.0} |");
        }
        println!();
        println!(
            "| handed on by | ordering | no-op handler: webhooks/s | 5 ms handler: webhooks/s |"
        );
        println!("|---|---|---|---|");
        for (workers, ordering) in [
            (1, Ordering::Global),
            (1, Ordering::PerProfile),
            (4, Ordering::PerProfile),
        ] {
            let noop = processing(workers, ordering, webhooks, Duration::ZERO).await;
            let slow = processing(workers, ordering, webhooks / 4, Duration::from_millis(5)).await;
            println!("| {workers} worker(s) | {ordering} | {noop:.0} | {slow:.0} |");
        }
    });
}

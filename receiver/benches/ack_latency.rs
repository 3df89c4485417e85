//! How fast the receiver answers PassFort, with durable commits (SQLite WAL,
//! `synchronous=FULL`, one fsync per request), over loopback HTTP.
//!
//! `cargo bench -p passfort-receiver` prints p50/p90/p99/max answer latency for batches of 100
//! webhooks and for single webhooks, sent one request at a time the way PassFort sends them,
//! first with the receiver alone, then with the in-process worker draining the queue into a
//! handler at the same time (it competes for the single SQLite writer). Not a test: figures
//! depend on the machine; the README quotes them.

use passfort_receiver::testing::{self, WebhookBuilder};
use passfort_receiver::{handler_fn, Job, Receiver, SecretSet, SqliteStore, Worker};
use std::time::{Duration, Instant};

const WARMUP: usize = 20;
const BATCHES: usize = 300;
const SINGLES: usize = 1000;

fn webhook(i: usize) -> WebhookBuilder {
    match i % 4 {
        0 => testing::check_completed(),
        1 => testing::product_status_changed(),
        2 => testing::manual_action_required(),
        _ => testing::collected_data_updated(),
    }
}

struct Figures {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    Figures {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: *samples.last().unwrap(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn measure(
    url: &str,
    client: &reqwest::Client,
    count: usize,
    size: usize,
    array: bool,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    for n in 0..(WARMUP + count) {
        let hooks: Vec<WebhookBuilder> = (0..size).map(webhook).collect();
        let body = if array {
            testing::batch_body(&hooks).to_string()
        } else {
            hooks[0].json().to_string()
        };
        let started = Instant::now();
        let response = client
            .post(url)
            .header("authorization", format!("Bearer {}", testing::SECRET))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let _ = response.bytes().await.expect("answer");
        let elapsed = started.elapsed();
        assert_eq!(status, 200, "the receiver must answer 200");
        if n >= WARMUP {
            samples.push(elapsed);
        }
    }
    samples
}

async fn scenario(with_worker: bool) -> Vec<(String, Figures)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let store = SqliteStore::open(&url).await.expect("store");
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(testing::SECRET).expect("secret"))
        .store(store)
        .build()
        .expect("receiver");
    let worker = with_worker.then(|| {
        Worker::builder()
            .receiver(&receiver)
            .handler(handler_fn(|_job: Job| async { Ok(()) }))
            .build()
            .expect("worker")
            .spawn()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, receiver.router()).await });
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let endpoint = format!("http://{addr}/webhooks/passfort");
    let batch = measure(&endpoint, &client, BATCHES, 100, true).await;
    let single = measure(&endpoint, &client, SINGLES, 1, false).await;
    if let Some(worker) = worker {
        worker.shutdown().await.expect("worker stop");
    }
    server.abort();
    vec![
        (format!("batch of 100 ({BATCHES} requests)"), figures(batch)),
        (
            format!("single webhook ({SINGLES} requests)"),
            figures(single),
        ),
    ]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("answer latency over loopback, durable commits (SQLite WAL, synchronous=FULL)\n");
    println!("| scenario | request | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    for (label, with_worker) in [
        ("receiver only", false),
        ("with in-process worker draining", true),
    ] {
        for (request, f) in runtime.block_on(scenario(with_worker)) {
            println!(
                "| {label} | {request} | {} | {} | {} | {} |",
                ms(f.p50),
                ms(f.p90),
                ms(f.p99),
                ms(f.max)
            );
        }
    }
}

//! Whether pruning makes PassFort wait: answer latency of single webhooks, sent one at a time
//! over loopback HTTP with durable commits, first with nothing else running, then while a
//! million processed webhooks (`PRUNE_BENCH_ROWS`, default 1 000 000) have their bodies erased
//! and the space handed back. Both phases run in one process, side by side.
//!
//! `cargo bench -p passfort-receiver --bench prune_latency` prints p50/p90/p99/max for both
//! phases, the prune's duration and the file size before and after. `docs/operating.md` quotes
//! the figures.

use passfort_receiver::retention::{self, Retention};
use passfort_receiver::testing::{self, SECRET};
use passfort_receiver::{Receiver, SecretSet, SqliteStore, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const DAY: Duration = Duration::from_secs(86_400);
const BASELINE: usize = 1000;

fn percentiles(mut samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    format!(
        "n={} p50={} p90={} p99={} max={}",
        samples.len(),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO))
    )
}

async fn post_one(client: &reqwest::Client, url: &str) -> Duration {
    let body = testing::check_completed().json().to_string();
    let started = Instant::now();
    let response = client
        .post(url)
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("PRUNE_BENCH_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prune-bench.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url).await.expect("open");

    // A million webhooks processed 40 days ago, ~600 bytes of body each, written in one
    // statement (the bench measures pruning, not receiving them).
    let processed = SystemTime::now() - 40 * DAY;
    let at = passfort_receiver::store::to_millis(processed);
    let fill = Instant::now();
    {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .expect("connect");
        let mut tx = conn.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO requests (seq, received_at_ms, shape, webhooks, stored) \
             VALUES (1, ?, 'array', ?, ?)",
        )
        .bind(at)
        .bind(rows as i64)
        .bind(rows as i64)
        .execute(&mut *tx)
        .await
        .expect("request");
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
             INSERT INTO webhooks (id, request_seq, position, event, body, state, attempts, \
                                   received_at_ms, processed_at_ms) \
             SELECT 'bench-' || i, 1, i, 'COLLECTED_DATA_UPDATED', \
                    '{\"id\":\"bench-' || i || '\",\"event\":\"COLLECTED_DATA_UPDATED\",\"timestamp\":1,\
\"data\":{\"profile_id\":\"' || hex(randomblob(16)) || '\",\"address\":\"' || hex(randomblob(256)) || '\"}}', \
                    'done', 1, ?, ? FROM n",
        )
        .bind(rows as i64)
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await
        .expect("fill");
        tx.commit().await.expect("commit");
    }
    store.reclaim_space().await.expect("checkpoint");
    let size_before = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "filled {rows} processed webhooks in {:.1} s; file {:.1} MiB",
        fill.elapsed().as_secs_f64(),
        size_before as f64 / 1048576.0
    );

    let store: Arc<dyn Store> = Arc::new(store);
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(SECRET).expect("secret"))
        .shared_store(store.clone())
        .build()
        .expect("receiver");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, receiver.router()).await });
    let url = format!("http://{addr}/webhooks/passfort");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    for _ in 0..50 {
        post_one(&client, &url).await;
    }
    let mut baseline = Vec::with_capacity(BASELINE);
    for _ in 0..BASELINE {
        baseline.push(post_one(&client, &url).await);
    }

    let done = Arc::new(AtomicBool::new(false));
    let pruning = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let pruned = retention::prune(&*store, &Retention::default(), SystemTime::now())
                .await
                .expect("prune");
            done.store(true, Ordering::SeqCst);
            (pruned, started.elapsed())
        })
    };
    let mut during = Vec::new();
    while !done.load(Ordering::SeqCst) {
        during.push(post_one(&client, &url).await);
    }
    let (pruned, took) = pruning.await.expect("prune task");
    let size_after = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "pruned: {} bodies erased in {:.1} s ({:.0}/s); file {:.1} MiB -> {:.1} MiB",
        pruned.bodies_erased,
        took.as_secs_f64(),
        pruned.bodies_erased as f64 / took.as_secs_f64(),
        size_before as f64 / 1048576.0,
        size_after as f64 / 1048576.0
    );
    println!(
        "answer latency, nothing else running: {}",
        percentiles(baseline)
    );
    println!(
        "answer latency, while pruning:       {}",
        percentiles(during)
    );
}

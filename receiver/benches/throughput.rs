//! Issue 13's benchmark: in one run, side by side on the same machine, the fsync floor, a naive
//! receiver written the way an integrator would, ours under PassFort's loads, the worker's
//! drain of a backlog to `jsonl:`, and peak memory. It prints one table with the ratios
//! (ours / naive, ours / fsync floor), because on shared machines ratios hold where absolute
//! times do not.
//!
//! ```sh
//! cargo bench -p passfort-receiver --bench throughput               # full run
//! cargo bench -p passfort-receiver --bench throughput -- --quick    # about a tenth
//! ```
//!
//! `PF_BENCH_QUICK=1` is the same as `--quick`; `PF_BENCH_DRAIN=N` sets the backlog drained
//! (200 000 by default, 20 000 quick); `PF_BENCH_DIR` puts the databases and files elsewhere
//! than the system's temporary directory (it must be the filesystem you care about: the fsync
//! floor is measured there).
//!
//! What runs:
//!
//! 1. **fsync floor**: append 4 KiB to a file in the bench directory and `fsync` it; median.
//! 2. **naive**: axum, a `==` on the bearer, one autocommitted SQLite `INSERT OR IGNORE` per
//!    webhook (WAL, `synchronous=FULL`, sqlx's default pool).
//! 3. **ours**: the real [`Receiver`] router over a [`SqliteStore`], with a [`Worker`] draining
//!    to a [`JsonlSink`] in the same process at the same time.
//!
//! Both receivers are served by axum on 127.0.0.1 and loaded by the same reqwest client from
//! the same process, with a bounded number of requests each: one webhook at a time, 16
//! concurrent single webhooks, a batch of 100 at a time, 4 concurrent batches of 100.
//!
//! 4. **drain**: a backlog stored in a fresh database handed to `jsonl:` by one worker until the
//!    queue is empty (what `passfort-receiver work --until-idle --sink jsonl:…` does).
//! 5. **peak RSS**: this bench process's `VmHWM` (from `/proc/self/status`), reset through
//!    `/proc/self/clear_refs` before the phase measured. It includes the load generator and
//!    whatever the allocator kept from earlier phases: an upper bound for the receiver alone.

use passfort_receiver::testing::{self, WebhookBuilder};
use passfort_receiver::{JsonlSink, Receiver, SecretSet, SqliteStore, Store, Worker};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How many requests (or samples) each measurement takes.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    fsyncs: usize,
    singles: usize,
    concurrent_singles: usize,
    batches: usize,
    concurrent_batches: usize,
    drain: usize,
}

impl Sizes {
    fn from_env() -> Self {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("PF_BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let mut sizes = if quick {
            Sizes {
                fsyncs: 50,
                singles: 300,
                concurrent_singles: 1_600,
                batches: 40,
                concurrent_batches: 80,
                drain: 20_000,
            }
        } else {
            Sizes {
                fsyncs: 300,
                singles: 2_000,
                concurrent_singles: 8_000,
                batches: 300,
                concurrent_batches: 400,
                drain: 200_000,
            }
        };
        if let Some(n) = std::env::var("PF_BENCH_DRAIN")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            sizes.drain = n;
        }
        sizes
    }
}

/// A load: `requests` requests of `per_request` webhooks, `concurrency` in flight.
#[derive(Debug, Clone, Copy)]
struct Load {
    name: &'static str,
    requests: usize,
    per_request: usize,
    concurrency: usize,
}

/// What one load measured.
#[derive(Debug, Clone)]
struct Measured {
    requests_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

impl Measured {
    fn webhooks_per_sec(&self, load: &Load) -> f64 {
        self.requests_per_sec * load.per_request as f64
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn webhook(i: usize) -> WebhookBuilder {
    match i % 4 {
        0 => testing::check_completed(),
        1 => testing::product_status_changed(),
        2 => testing::manual_action_required(),
        _ => testing::collected_data_updated(),
    }
}

/// Request bodies with fresh ids, built before the clock starts.
fn bodies(requests: usize, per_request: usize) -> Vec<String> {
    (0..requests)
        .map(|r| {
            let hooks: Vec<WebhookBuilder> = (0..per_request)
                .map(|i| webhook(r * per_request + i))
                .collect();
            if per_request == 1 {
                hooks[0].json().to_string()
            } else {
                testing::batch_body(&hooks).to_string()
            }
        })
        .collect()
}

/// Sends `load` to `url` and times every answer; every answer must be a 200.
async fn drive(client: &reqwest::Client, url: &str, load: Load) -> Measured {
    // A few requests first, so connections are open and caches warm.
    let warmup = bodies(load.concurrency.max(10), load.per_request);
    for body in warmup {
        send(client, url, body).await;
    }
    let bodies = Arc::new(bodies(load.requests, load.per_request));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..load.concurrency)
        .map(|_| {
            let (client, url, bodies, next) =
                (client.clone(), url.to_owned(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let r = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(r) else {
                        return samples;
                    };
                    let sent = Instant::now();
                    send(&client, &url, body.clone()).await;
                    samples.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(load.requests);
    for task in tasks {
        samples.extend(task.await.expect("load task"));
    }
    let secs = started.elapsed().as_secs_f64();
    samples.sort_unstable();
    Measured {
        requests_per_sec: load.requests as f64 / secs,
        p50: quantile(&samples, 0.50),
        p99: quantile(&samples, 0.99),
    }
}

async fn send(client: &reqwest::Client, url: &str, body: String) {
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
    assert_eq!(status, 200, "every request must be acknowledged");
}

/// 1. The median time of a 4 KiB append and `fsync` in `dir`.
fn fsync_floor(dir: &Path, samples: usize) -> Duration {
    let path = dir.join("fsync-floor");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("fsync file");
    let block = [0x5au8; 4096];
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let started = Instant::now();
            file.write_all(&block).expect("write");
            file.sync_all().expect("fsync");
            started.elapsed()
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    times.sort_unstable();
    quantile(&times, 0.5)
}

/// 2. The receiver an integrator writes by hand.
mod naive {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::Router;
    use serde_json::Value;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

    #[derive(Clone)]
    struct App {
        db: SqlitePool,
        secret: String,
    }

    pub async fn router(db_path: &std::path::Path, secret: &str) -> Router {
        let options = SqliteConnectOptions::new()
            .filename(db_path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let db = SqlitePool::connect_with(options).await.expect("naive db");
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS webhooks (id TEXT PRIMARY KEY, event TEXT, body TEXT)",
        )
        .execute(&db)
        .await
        .expect("naive schema");
        Router::new()
            .route("/webhooks/passfort", post(receive))
            .with_state(App {
                db,
                secret: secret.to_owned(),
            })
    }

    async fn receive(State(app): State<App>, headers: HeaderMap, body: String) -> StatusCode {
        let expected = format!("Bearer {}", app.secret);
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return StatusCode::UNAUTHORIZED;
        }
        let Ok(value) = serde_json::from_str::<Value>(&body) else {
            return StatusCode::BAD_REQUEST;
        };
        let webhooks = match value {
            Value::Array(items) => items,
            one => vec![one],
        };
        for webhook in webhooks {
            let id = webhook["id"].as_str().unwrap_or_default().to_owned();
            let event = webhook["event"].as_str().unwrap_or_default().to_owned();
            let stored =
                sqlx::query("INSERT OR IGNORE INTO webhooks (id, event, body) VALUES (?, ?, ?)")
                    .bind(id)
                    .bind(event)
                    .bind(webhook.to_string())
                    .execute(&app.db)
                    .await;
            if stored.is_err() {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
        }
        StatusCode::OK
    }
}

/// Serves `router` on a fresh loopback port and returns its address and server task.
async fn serve(router: axum::Router) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, task)
}

/// Peak resident memory of this process since the last [`reset_peak_rss`], in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak to the current resident size (Linux ≥ 4.0); false where it cannot.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("unknown".to_owned(), |b| {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    })
}

/// 4. Stores `count` webhooks, then times one worker handing them all to `jsonl:`.
async fn drain(dir: &Path, count: usize) -> (f64, Option<u64>, bool) {
    let url = format!("sqlite://{}", dir.join("drain.db").display());
    let store = SqliteStore::open(&url).await.expect("drain store");
    let mut i = 0;
    while i < count {
        let n = 100.min(count - i);
        let hooks: Vec<WebhookBuilder> = (i..i + n).map(webhook).collect();
        store
            .insert(&testing::verified(&hooks), SystemTime::now())
            .await
            .expect("backlog insert");
        i += n;
    }
    let out = dir.join("drain.jsonl");
    let worker = Worker::builder()
        .store(store.clone())
        .handler(JsonlSink::open(&out).expect("jsonl sink"))
        .build()
        .expect("worker");
    let reset = reset_peak_rss();
    let started = Instant::now();
    let mut done = 0;
    loop {
        let drained = worker.run_until_idle().await.expect("drain");
        done += drained.done;
        if drained.done == 0 || done >= count {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss();
    let lines = std::fs::read_to_string(&out)
        .expect("jsonl output")
        .lines()
        .count();
    assert_eq!(done, count, "the worker did not hand on the whole backlog");
    assert_eq!(lines, count, "jsonl: does not hold every webhook once");
    store.close().await;
    (count as f64 / secs, peak, reset)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let sizes = Sizes::from_env();
    let base = std::env::var_os("PF_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("bench directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let loads = [
        Load {
            name: "single webhook, one at a time",
            requests: sizes.singles,
            per_request: 1,
            concurrency: 1,
        },
        Load {
            name: "single webhooks, 16 concurrent",
            requests: sizes.concurrent_singles,
            per_request: 1,
            concurrency: 16,
        },
        Load {
            name: "batch of 100, one at a time",
            requests: sizes.batches,
            per_request: 100,
            concurrency: 1,
        },
        Load {
            name: "batch of 100, 4 concurrent",
            requests: sizes.concurrent_batches,
            per_request: 100,
            concurrency: 4,
        },
    ];
    eprintln!("bench directory: {} ({sizes:?})", dir.path().display());

    let floor = fsync_floor(dir.path(), sizes.fsyncs);
    eprintln!("fsync floor: {}", ms(floor));

    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");

    let (naive, ours, ours_peak, ours_reset) = runtime.block_on(async {
        let (addr, server) =
            serve(naive::router(&dir.path().join("naive.db"), testing::SECRET).await).await;
        let url = format!("http://{addr}/webhooks/passfort");
        let mut naive = Vec::new();
        for load in loads {
            let m = drive(&client, &url, load).await;
            eprintln!(
                "naive  {:<32} {:>8.0} req/s  p50 {}  p99 {}",
                load.name,
                m.requests_per_sec,
                ms(m.p50),
                ms(m.p99)
            );
            naive.push(m);
        }
        server.abort();

        let url_db = format!("sqlite://{}", dir.path().join("ours.db").display());
        let store = SqliteStore::open(&url_db).await.expect("store");
        let receiver = Receiver::builder()
            .secrets(SecretSet::single(testing::SECRET).expect("secret"))
            .store(store)
            .build()
            .expect("receiver");
        let worker = Worker::builder()
            .receiver(&receiver)
            .handler(JsonlSink::open(dir.path().join("ours.jsonl")).expect("jsonl sink"))
            .build()
            .expect("worker")
            .spawn();
        let ours_reset = reset_peak_rss();
        let (addr, server) = serve(receiver.router()).await;
        let url = format!("http://{addr}{}", receiver.path());
        let mut ours = Vec::new();
        for load in loads {
            let m = drive(&client, &url, load).await;
            eprintln!(
                "ours   {:<32} {:>8.0} req/s  p50 {}  p99 {}",
                load.name,
                m.requests_per_sec,
                ms(m.p50),
                ms(m.p99)
            );
            ours.push(m);
        }
        let ours_peak = peak_rss();
        server.abort();
        worker.shutdown().await.expect("worker stop");
        (naive, ours, ours_peak, ours_reset)
    });

    let (drained_per_sec, drain_peak, drain_reset) =
        runtime.block_on(drain(dir.path(), sizes.drain));
    eprintln!("drain: {drained_per_sec:.0} webhooks/s");

    println!();
    println!(
        "fsync floor (4 KiB append + fsync, median of {}): {}",
        sizes.fsyncs,
        ms(floor)
    );
    println!();
    println!("| load | naive req/s | ours req/s | ours / naive | naive p50 | ours p50 | ours p50 / fsync | naive p99 | ours p99 | ours webhooks/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for ((load, n), o) in loads.iter().zip(&naive).zip(&ours) {
        println!(
            "| {} ({} req) | {:.0} | {:.0} | {:.2}× | {} | {} | {:.2}× | {} | {} | {:.0} |",
            load.name,
            load.requests,
            n.requests_per_sec,
            o.requests_per_sec,
            o.requests_per_sec / n.requests_per_sec,
            ms(n.p50),
            ms(o.p50),
            o.p50.as_secs_f64() / floor.as_secs_f64(),
            ms(n.p99),
            ms(o.p99),
            o.webhooks_per_sec(load),
        );
    }
    println!(
        "| drain of {} stored webhooks to jsonl: (one worker) | — | — | — | — | — | — | — | — | {:.0} |",
        sizes.drain, drained_per_sec
    );
    println!();
    let how = |reset: bool| {
        if reset {
            "reset before the phase"
        } else {
            "since process start: clear_refs unavailable"
        }
    };
    println!(
        "peak RSS of this bench process (VmHWM; includes the load generator): ours under the loads {} ({}), drain {} ({})",
        mib(ours_peak),
        how(ours_reset),
        mib(drain_peak),
        how(drain_reset),
    );
}

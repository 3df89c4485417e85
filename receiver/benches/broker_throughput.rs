//! Webhooks per second through each broker sink, side by side in one run: the worker handing
//! stored webhooks on (a SQLite store on disk: lease, handler, mark done), and the sink's
//! publish alone (one webhook at a time, each waiting for the broker's confirmation, as the
//! worker does). The `jsonl:` sink (one `fsync` per webhook) runs beside them for reference.
//!
//! ```sh
//! cargo bench -p passfort-receiver --bench broker_throughput
//! ```
//!
//! Needs the servers of the broker tests (NATS with JetStream at 127.0.0.1:4222, RabbitMQ at
//! 127.0.0.1:5672 as guest/guest, Redis at 127.0.0.1:6379; `bash .ci/brokers` starts them).
//! Makes its own stream, exchange and queue, and key, and removes them. `PF_BENCH_WEBHOOKS`
//! changes the size (default 2000).

use async_nats::jetstream;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use passfort_receiver::sink::Sink;
use passfort_receiver::store::{SqliteStore, Store};
use passfort_receiver::testing;
use passfort_receiver::{Handler, Job, Webhook, Worker};
use std::time::{Instant, SystemTime};

fn webhooks(n: usize) -> Vec<testing::WebhookBuilder> {
    (0..n).map(|_| testing::product_status_changed()).collect()
}

/// The worker over a fresh SQLite store holding `n` webhooks: webhooks handed on per second.
async fn worker_rate(sink: &Sink, n: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&format!("sqlite://{}/bench.db", dir.path().display()))
        .await
        .unwrap();
    store
        .insert(&testing::verified(&webhooks(n)), SystemTime::now())
        .await
        .unwrap();
    let worker = Worker::builder()
        .store(store)
        .handler(sink.open().await.unwrap())
        .build()
        .unwrap();
    let started = Instant::now();
    let drained = worker.run_until_idle().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(drained.done, n, "{drained:?}");
    n as f64 / elapsed.as_secs_f64()
}

/// The sink's `handle` alone, `n` webhooks one after the other: publishes per second.
async fn publish_rate(sink: &Sink, n: usize, first_seq: i64) -> f64 {
    let handler = sink.open().await.unwrap();
    let jobs: Vec<Job> = webhooks(n)
        .iter()
        .enumerate()
        .map(|(i, hook)| {
            let webhook: Webhook = hook.webhook();
            Job {
                event: webhook.event(),
                webhook,
                attempt: 1,
                seq: first_seq + i as i64,
                received_at: SystemTime::now(),
            }
        })
        .collect();
    let started = Instant::now();
    for job in &jobs {
        handler.handle(job).await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("PF_BENCH_WEBHOOKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let name = format!("pf_bench_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();

    // NATS: a file-backed stream on the subject.
    let nats = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("NATS at 127.0.0.1:4222 (bash .ci/brokers)");
    let js = jetstream::new(nats);
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.webhooks")],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    // RabbitMQ: a direct exchange and a durable queue bound to it.
    let amqp = lapin::Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ at 127.0.0.1:5672 (bash .ci/brokers)");
    let channel = amqp.create_channel().await.unwrap();
    channel
        .exchange_declare(
            name.as_str().into(),
            lapin::ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(name.as_str().into(), durable, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            name.as_str().into(),
            name.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let sinks: Vec<(&str, Sink)> = vec![
        (
            "jsonl: (fsync, reference)",
            format!("jsonl:{}/out.jsonl", dir.path().display())
                .parse()
                .unwrap(),
        ),
        (
            "nats://",
            format!("nats://127.0.0.1:4222/{name}.webhooks")
                .parse()
                .unwrap(),
        ),
        (
            "amqp://",
            format!("amqp://guest:guest@127.0.0.1:5672/%2f?exchange={name}&routing_key=k")
                .parse()
                .unwrap(),
        ),
    ];
    let mut rows = Vec::new();
    for (label, sink) in &sinks {
        let worker = worker_rate(sink, n).await;
        let publish = publish_rate(sink, n, 1).await;
        rows.push((label.to_string(), worker, publish));
    }
    // Redis: the worker's run and the publish-only run need streams of their own (entry IDs
    // are arrival positions, which both runs start at 1).
    let redis_worker: Sink = format!("redis://127.0.0.1:6379/0?stream={name}.worker")
        .parse()
        .unwrap();
    let redis_publish: Sink = format!("redis://127.0.0.1:6379/0?stream={name}.publish")
        .parse()
        .unwrap();
    let worker = worker_rate(&redis_worker, n).await;
    let publish = publish_rate(&redis_publish, n, 1).await;
    rows.push(("redis://".to_owned(), worker, publish));

    println!("broker_throughput: {n} webhooks per run, one at a time, each confirmed");
    println!(
        "{:<28} {:>22} {:>22}",
        "sink", "worker (webhooks/s)", "publish only (/s)"
    );
    for (label, worker, publish) in &rows {
        println!("{label:<28} {worker:>22.0} {publish:>22.0}");
    }

    js.delete_stream(&name).await.unwrap();
    channel
        .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    channel
        .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    let redis = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DEL")
        .arg(format!("{name}.worker"))
        .arg(format!("{name}.publish"))
        .query_async::<i64>(&mut connection)
        .await
        .unwrap();
}

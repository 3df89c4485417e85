//! The QA harness (`passfort-harness`) against our own receiver: a real `passfort-receiver`
//! router and worker (SQLite file, the `jsonl:` sink as the observe file) served on loopback.
//! Every scenario must pass — none skipped, none failed.

use passfort_harness::{report, run, Status};
use passfort_receiver::sink::JsonlSink;
use passfort_receiver::{Receiver, SecretSet, SqliteStore, Worker};
use passfort_sender_sim::IdStyle;

const SECRET: &str = "conformance-harness-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_harness_scenario_passes_against_our_receiver() {
    every_scenario_passes_with(IdStyle::default()).await;
}

/// PassFort's ids are opaque strings (spec §2): the whole harness again, with ids that are no
/// UUID, vary in length and sort in no particular order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_harness_scenario_passes_against_our_receiver_with_opaque_ids() {
    every_scenario_passes_with(IdStyle::Opaque).await;
}

async fn every_scenario_passes_with(id_style: IdStyle) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("receiver.db").display());
    let observe = dir.path().join("processed.jsonl");
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(SECRET).unwrap())
        .store(SqliteStore::open(&database).await.unwrap())
        .build()
        .unwrap();
    let worker = Worker::builder()
        .receiver(&receiver)
        .handler(JsonlSink::open(&observe).unwrap())
        .name("harness-worker")
        .build()
        .unwrap()
        .spawn();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/passfort",
        listener.local_addr().unwrap()
    );
    let router = receiver.router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let settings = run::Settings::new(&url, passfort_harness::Secret::new(SECRET).unwrap())
        .observe(&observe)
        .id_style(id_style);
    let outcome = run::run(settings).await.unwrap();
    let table = report::table(&outcome);
    eprintln!("{table}");
    assert!(
        outcome.scenarios.len() >= 12,
        "fewer scenarios than the README lists:\n{table}"
    );
    for scenario in &outcome.scenarios {
        assert!(
            matches!(scenario.status, Status::Passed | Status::Warned),
            "{} {:?}: {}\n{table}",
            scenario.id,
            scenario.status,
            scenario.reason
        );
    }
    assert_eq!(outcome.exit_code(), 0, "{table}");

    let processed = std::fs::read_to_string(&observe).unwrap();
    assert!(
        processed.lines().count() >= 1000,
        "the storm alone is 1000 webhooks"
    );
    assert!(
        !processed.contains(SECRET),
        "the observe file carries the secret"
    );
    if id_style == IdStyle::Opaque {
        let first: serde_json::Value =
            serde_json::from_str(processed.lines().next().unwrap()).unwrap();
        let id = first["id"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_err(), "{id} is a UUID");
    }
    server.abort();
    worker.shutdown().await.unwrap();
}

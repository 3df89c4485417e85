//! How many webhooks per second the engine simulates on the virtual clock.
//!
//! `cargo bench -p passfort-sender-sim --bench engine` (add `-- --quick` for 100 000 webhooks
//! instead of 1 000 000). Not a test: it prints figures for the README.
//!
//! Each scenario: N realistic webhooks (a generated mix of profile lifecycles) queued at once;
//! an in-process receiver that answers 503 for the first simulated day and 200 after; the engine
//! runs until the queue is empty. Generation is timed apart from delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use passfort_sender_sim::prelude::*;

struct Figures {
    name: String,
    webhooks: usize,
    requests: u64,
    simulated: Duration,
    wall: Duration,
}

async fn scenario(name: &str, webhooks: &[Webhook], batched: bool, outage: Duration) -> Figures {
    let clock = VirtualClock::new();
    let start = clock.now();
    let receiver_clock = clock.clone();
    let back_at = start + outage;
    let receiver = FnTransport(move |_request| {
        let status = if receiver_clock.now() < back_at {
            http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            http::StatusCode::OK
        };
        Ok(Answer::status(status))
    });
    let mut settings = AccountSettings::new(
        "http://receiver.bench/webhooks/passfort",
        Secret::new("bench-secret"),
    );
    settings.batching = batched;
    let engine = Engine::with_options(
        settings,
        clock.clone(),
        receiver,
        EngineOptions {
            keep_log: false,
            ..EngineOptions::default()
        },
    )
    .expect("valid settings");
    let queued = webhooks.to_vec();
    let wall = Instant::now();
    engine.enqueue_all(queued);
    let outcome = engine
        .run_until_empty(Duration::from_secs(365 * 86_400))
        .await;
    let wall = wall.elapsed();
    assert_eq!(outcome, RunOutcome::Emptied);
    let status = engine.status();
    assert_eq!(status.delivered as usize, webhooks.len());
    Figures {
        name: name.to_owned(),
        webhooks: webhooks.len(),
        requests: status.attempts,
        simulated: clock.now().duration_since(start).unwrap_or_default(),
        wall,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 100_000 } else { 1_000_000 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let generated = Instant::now();
    let start = VirtualClock::new().now();
    let webhooks: Arc<Vec<Webhook>> = Arc::new(Generator::new(1).mix(n, start));
    let generation = generated.elapsed();
    println!(
        "generated {n} webhooks in {:.2} s ({:.0}/s)",
        generation.as_secs_f64(),
        n as f64 / generation.as_secs_f64()
    );

    let day = Duration::from_secs(86_400);
    let figures = runtime.block_on(async {
        vec![
            scenario("unbatched, receiver up", &webhooks, false, Duration::ZERO).await,
            scenario("unbatched, a day of back-off", &webhooks, false, day).await,
            scenario("batched, a day of back-off", &webhooks, true, day).await,
        ]
    });
    println!(
        "| scenario | webhooks | requests | simulated time | wall time | webhooks/s |\n|---|---:|---:|---:|---:|---:|"
    );
    for f in figures {
        println!(
            "| {} | {} | {} | {:.1} h | {:.2} s | {:.0} |",
            f.name,
            f.webhooks,
            f.requests,
            f.simulated.as_secs_f64() / 3600.0,
            f.wall.as_secs_f64(),
            f.webhooks as f64 / f.wall.as_secs_f64()
        );
    }
}

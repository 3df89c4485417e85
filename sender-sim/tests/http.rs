//! The engine against real HTTP receivers (wiremock), mostly on a virtual clock: real sockets,
//! simulated time.

mod common;

use std::time::Duration;

use common::*;
use passfort_sender_sim::prelude::*;
use passfort_sender_sim::status::QueueState;
use serde_json::Value;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DAY: u64 = 86_400;

async fn server_answering(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webhooks/passfort"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

/// Answers `first` for the first `times` requests, then 200.
async fn server_failing(first: ResponseTemplate, times: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(first)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

fn http_settings(server: &MockServer) -> AccountSettings {
    AccountSettings::new(
        format!("{}/webhooks/passfort", server.uri()),
        Secret::new(SECRET),
    )
}

/// Real HTTP on a virtual clock. A generous `grace`: wiremock answers in milliseconds, and a
/// starved CI machine must not turn a late real answer into a simulated time-out.
fn http_engine(settings: AccountSettings) -> (VirtualClock, Engine) {
    let clock = VirtualClock::new();
    let engine = Engine::with_options(
        settings,
        clock.clone(),
        HttpTransport::new().unwrap(),
        EngineOptions {
            grace: Duration::from_secs(10),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    (clock, engine)
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn headers_and_body_of_each_event_type() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webhooks/passfort"))
        .and(header("authorization", format!("Bearer {SECRET}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (clock, engine) = http_engine(http_settings(&server));
    let mut generator = Generator::new(21);
    let mut events: Vec<EventType> = EventType::KNOWN.to_vec();
    events.push(EventType::Other("CUSTOMER_REQUEST_CHANGED".into()));
    let sent: Vec<Webhook> = events
        .iter()
        .map(|e| generator.webhook(e.clone(), clock.now()))
        .collect();
    engine.enqueue_all(sent.clone());
    assert_eq!(
        engine.run_until_empty(Duration::from_secs(60)).await,
        RunOutcome::Emptied
    );
    // Every attempt matched the mock (right headers) and was answered 200 the first time.
    assert!(engine.attempts().iter().all(|a| a.outcome.is_delivered()));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), sent.len());
    for (request, webhook) in requests.iter().zip(&sent) {
        assert_eq!(request.method, wiremock::http::Method::POST);
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            webhook.to_json(SECRET),
            "one envelope per request, in order"
        );
        assert_eq!(body["secret"], SECRET);
        assert_eq!(body["event"], webhook.event.as_str());
        assert!(body["timestamp"].is_u64());
        if !matches!(webhook.event, EventType::Other(_)) {
            assert_same_shape(&fixture_for(&webhook.event), &body);
        }
    }
}

#[tokio::test]
async fn back_off_over_fourteen_failures_over_http() {
    let server = server_answering(500).await;
    let (clock, engine) = http_engine(http_settings(&server));
    let start = clock.now();
    engine.enqueue(Generator::new(22).webhook(EventType::ProductStatusChanged, start));
    for _ in 0..15 {
        engine.step().await.unwrap();
    }
    let log = engine.attempts();
    assert_eq!(
        gaps(&log),
        vec![30, 60, 120, 240, 480, 960, 1_920, 3_840, 7_680, 15_360, 30_720, 61_440, DAY, DAY]
    );
    assert!(log.iter().all(|a| a.status == Some(500)));
    assert_eq!(server.received_requests().await.unwrap().len(), 15);
}

#[tokio::test]
async fn head_of_line_blocking_over_http() {
    let server = server_failing(ResponseTemplate::new(503), 3).await;
    let (clock, engine) = http_engine(http_settings(&server));
    let sent = Generator::new(23).mix(4, clock.now());
    engine.enqueue_all(sent.clone());
    engine.run_until_empty(Duration::from_secs(3600)).await;
    let ids: Vec<Value> = bodies(&server)
        .await
        .iter()
        .map(|b| b["id"].clone())
        .collect();
    let head = Value::from(sent[0].id.to_string());
    assert_eq!(ids[..4], vec![head.clone(); 4], "the head blocks");
    let rest: Vec<Value> = sent[1..]
        .iter()
        .map(|w| Value::from(w.id.to_string()))
        .collect();
    assert_eq!(ids[4..], rest[..]);
}

#[tokio::test]
async fn batch_head_retained_and_at_most_100_over_http() {
    let server = server_failing(ResponseTemplate::new(500), 2).await;
    let (clock, engine) = http_engine(http_settings(&server).batched());
    let sent = Generator::new(24).mix(250, clock.now());
    engine.enqueue_all(sent.clone());
    engine.run_until_empty(Duration::from_secs(3600)).await;
    let bodies = bodies(&server).await;
    assert_eq!(bodies.len(), 2 + 3);
    let batches: Vec<Vec<String>> = bodies
        .iter()
        .map(|b| {
            b.as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert!(batches.iter().all(|b| b.len() <= 100));
    assert_eq!(batches[0], batches[1]);
    assert_eq!(batches[1], batches[2]);
    let delivered: Vec<String> = batches[2..].concat();
    let expected: Vec<String> = sent.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(delivered, expected);
}

#[tokio::test]
async fn a_204_or_202_is_retried_over_http() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(3)
        .mount(&server)
        .await;
    let (clock, engine) = http_engine(http_settings(&server));
    engine.enqueue(Generator::new(25).webhook(EventType::CheckCompleted, clock.now()));
    engine.run_until_empty(Duration::from_secs(3600)).await;
    let log = engine.attempts();
    let statuses: Vec<_> = log.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![Some(204), Some(202), Some(200)]);
    assert_eq!(gaps(&log), vec![30, 60]);
}

#[tokio::test]
async fn a_slow_answer_is_retried_on_the_real_clock() {
    // Real time: the limit is shortened (a setting) so the test stays quick; the answer is
    // delayed ~7× the limit, so the first attempt times out however fast the machine is.
    let server = server_failing(
        ResponseTemplate::new(200).set_delay(Duration::from_secs(2)),
        1,
    )
    .await;
    let mut settings = http_settings(&server);
    settings.answer_limit_unbatched = Duration::from_millis(300);
    settings.time_scale = 1000.0;
    let engine = Engine::new(settings, SimClock::system(), HttpTransport::new().unwrap()).unwrap();
    engine.enqueue(Generator::new(26).webhook(EventType::CheckCompleted, engine.now()));
    assert_eq!(
        engine.run_until_empty(Duration::from_secs(3600)).await,
        RunOutcome::Emptied
    );
    let log = engine.attempts();
    assert_eq!(log[0].outcome, Outcome::TimedOut);
    // The retry is normally delivered at once; on a starved machine it may time out too, but
    // it is retried until it is.
    let (last, before) = log.split_last().unwrap();
    assert!(last.outcome.is_delivered());
    assert!(before.iter().all(|a| a.outcome == Outcome::TimedOut));
}

#[tokio::test]
async fn a_slow_real_answer_times_out_on_the_virtual_clock() {
    let server = server_failing(
        ResponseTemplate::new(200).set_delay(Duration::from_secs(5)),
        1,
    )
    .await;
    let clock = VirtualClock::new();
    let engine = Engine::with_options(
        http_settings(&server).batched(),
        clock.clone(),
        HttpTransport::new().unwrap(),
        EngineOptions {
            grace: Duration::from_millis(300),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    engine.enqueue(Generator::new(27).webhook(EventType::CheckCompleted, clock.now()));
    engine.run_until_empty(Duration::from_secs(3600)).await;
    let log = engine.attempts();
    assert_eq!(log[0].outcome, Outcome::TimedOut);
    assert_eq!(
        log[0].latency(),
        Duration::from_secs(5),
        "the batched limit"
    );
    assert!(log.last().unwrap().outcome.is_delivered());
}

#[tokio::test]
async fn a_refused_connection_is_a_failed_attempt() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let settings = AccountSettings::new(format!("http://{address}/webhooks"), Secret::new(SECRET));
    let (clock, engine) = http_engine(settings);
    engine.enqueue(Generator::new(28).webhook(EventType::CheckCompleted, clock.now()));
    let attempt = engine.step().await.unwrap();
    assert_eq!(attempt.outcome, Outcome::Refused, "{attempt:?}");
    assert_eq!(engine.status().queue, QueueState::Stalled);
}

#[tokio::test]
async fn retry_now_and_the_status_queue_over_http() {
    let server = server_failing(ResponseTemplate::new(500), 4).await;
    let (clock, engine) = http_engine(http_settings(&server));
    assert_eq!(engine.status().queue, QueueState::Empty);
    engine.enqueue_all(Generator::new(29).mix(2, clock.now()));
    assert_eq!(engine.status().queue, QueueState::Waiting(2));
    for _ in 0..4 {
        engine.step().await.unwrap();
    }
    let status = engine.status();
    assert_eq!(status.queue, QueueState::Stalled);
    assert_eq!(status.failed_attempts, 4);
    assert_eq!(
        status.next_retry,
        Some(clock.now() + Duration::from_secs(240))
    );
    assert_eq!(status.recent_failures.len(), 1);
    engine.retry_now();
    let retried = engine.step().await.unwrap();
    assert_eq!(retried.at, clock.now(), "no 240 s wait");
    assert!(retried.outcome.is_delivered());
    engine.run_until_empty(Duration::from_secs(60)).await;
    let status = engine.status();
    assert_eq!(status.queue, QueueState::Empty);
    assert!(status.recent_failures.is_empty());
}

#[tokio::test]
async fn disable_enable_loss_over_http() {
    let server = server_failing(ResponseTemplate::new(500), 1).await;
    let mut settings = http_settings(&server);
    settings.drop_queue_on_disable = true;
    let (clock, engine) = http_engine(settings);
    engine.enqueue_all(Generator::new(30).mix(5, clock.now()));
    engine.step().await.unwrap();
    engine.set_enabled(false);
    engine.set_enabled(true);
    assert_eq!(
        engine.run_until_empty(Duration::from_secs(60)).await,
        RunOutcome::Emptied
    );
    assert_eq!(engine.status().dropped, 5);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn same_seed_same_log_over_http() {
    async fn run() -> String {
        let server = server_failing(ResponseTemplate::new(502), 3).await;
        let clock = VirtualClock::new();
        let engine = Engine::with_options(
            http_settings(&server).batched(),
            clock.clone(),
            HttpTransport::new().unwrap(),
            EngineOptions {
                seed: 7,
                ..EngineOptions::default()
            },
        )
        .unwrap();
        engine.enqueue_all(Generator::new(7).mix(330, clock.now()));
        engine.run_until_empty(Duration::from_secs(86_400)).await;
        engine.attempt_log_json_lines()
    }
    let a = run().await;
    assert_eq!(a.lines().count(), 3 + 4);
    assert_eq!(a, run().await);
}

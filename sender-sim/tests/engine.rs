//! The delivery engine's rules, on a virtual clock with in-process receivers.

mod common;

use std::time::Duration;

use common::*;
use passfort_sender_sim::prelude::*;
use passfort_sender_sim::status::QueueState;

const DAY: u64 = 86_400;

fn engine_with(settings: AccountSettings, transport: impl Transport) -> (VirtualClock, Engine) {
    let clock = VirtualClock::new();
    let engine = Engine::new(settings, clock.clone(), transport).unwrap();
    (clock, engine)
}

fn webhooks(count: usize, at: std::time::SystemTime) -> Vec<Webhook> {
    Generator::new(1).many(&EventType::CheckCompleted, count, at)
}

#[tokio::test]
async fn back_off_over_fourteen_failures_is_exactly_passforts() {
    let recorder = Recorder::new();
    recorder.answer(500);
    let (clock, engine) = engine_with(settings(), recorder.transport());
    let start = clock.now();
    engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, start));

    for _ in 0..15 {
        engine.step().await.unwrap();
    }
    let log = engine.attempts();
    assert_eq!(log.len(), 15);
    assert_eq!(log[0].at, start, "the first attempt goes at once");
    let expected: Vec<u64> = vec![
        30, 60, 120, 240, 480, 960, 1_920, 3_840, 7_680, 15_360, 30_720, 61_440, DAY, DAY,
    ];
    assert_eq!(gaps(&log), expected);
    for (i, attempt) in log.iter().enumerate() {
        assert_eq!(attempt.try_number, i as u32 + 1);
        assert_eq!(attempt.outcome, Outcome::Rejected);
        assert_eq!(attempt.status, Some(500));
        let wait = attempt
            .next_retry
            .unwrap()
            .duration_since(attempt.at)
            .unwrap();
        assert_eq!(
            wait,
            BackoffSchedule::passfort().delay_after(i as u32 + 1),
            "attempt {i}"
        );
    }
    // The whole sequence is ~34 h + 2 days of virtual time and nothing was dropped.
    assert_eq!(engine.queued(), 1);
    assert_eq!(recorder.seen().len(), 15);
}

#[tokio::test]
async fn unbatched_head_of_line_blocks_and_order_is_kept() {
    let recorder = Recorder::new();
    let clock = VirtualClock::new();
    let faults = FaultyTransport::new(recorder.transport(), clock.clone());
    faults.script([Fault::Status(503), Fault::Refuse, Fault::DropAnswer]);
    let engine = Engine::new(settings(), clock.clone(), faults.clone()).unwrap();
    let queued = webhooks(5, clock.now());
    let ids: Vec<String> = queued.iter().map(|w| w.id.to_string()).collect();
    engine.enqueue_all(queued);

    assert_eq!(
        engine.run_until_empty(Duration::from_secs(3600)).await,
        RunOutcome::Emptied
    );
    let log = engine.attempts();
    // Three failures of the head, then one attempt per webhook.
    assert_eq!(log.len(), 3 + 5);
    for attempt in &log[..4] {
        assert_eq!(attempt.webhook_ids.len(), 1);
        assert_eq!(
            attempt.webhook_ids[0].to_string(),
            ids[0],
            "the head blocks"
        );
    }
    let sent_order: Vec<String> = log
        .iter()
        .map(|a| a.webhook_ids[0].to_string())
        .collect::<Vec<_>>();
    let mut delivered: Vec<String> = log
        .iter()
        .filter(|a| a.outcome.is_delivered())
        .map(|a| a.webhook_ids[0].to_string())
        .collect();
    assert_eq!(delivered, ids, "delivered in queue order");
    delivered.dedup();
    assert!(sent_order.windows(2).all(|w| {
        let a = ids.iter().position(|i| *i == w[0]).unwrap();
        let b = ids.iter().position(|i| *i == w[1]).unwrap();
        b == a || b == a + 1
    }));
    // The receiver saw the head on the dropped-answer attempt too: 4 copies of the head reached
    // it minus the refused and the 503 from the proxy.
    let seen = recorder.seen();
    assert_eq!(
        seen.len(),
        1 + 5,
        "dropped answer still reached the receiver"
    );
    assert_eq!(seen[0].ids(), vec![ids[0].clone()]);
    assert_eq!(seen[1].ids(), vec![ids[0].clone()]);
    assert_eq!(faults.attempts(), 8);
}

#[tokio::test]
async fn a_failed_batch_stays_at_the_head_and_batches_hold_at_most_100() {
    let recorder = Recorder::new();
    let clock = VirtualClock::new();
    let faults = FaultyTransport::new(recorder.transport(), clock.clone());
    faults.script([Fault::Status(500), Fault::Refuse]);
    let (clock, engine) = {
        let engine = Engine::new(settings().batched(), clock.clone(), faults.clone()).unwrap();
        (clock, engine)
    };
    let mut generator = Generator::new(3);
    let first = generator.mix(60, clock.now());
    let first_ids: Vec<_> = first.iter().map(|w| w.id.clone()).collect();
    engine.enqueue_all(first);

    // First batch: the 60 queued, fails.
    let a1 = engine.step().await.unwrap();
    assert_eq!(a1.webhook_ids, first_ids);
    assert!(!a1.outcome.is_delivered());

    // More arrive while the head is failing: the next batch starts with the failed one and
    // carries more behind it, up to 100.
    let more = generator.mix(240, clock.now());
    let more_ids: Vec<_> = more.iter().map(|w| w.id.clone()).collect();
    engine.enqueue_all(more);
    let a2 = engine.step().await.unwrap();
    assert_eq!(a2.webhook_ids.len(), 100);
    assert_eq!(&a2.webhook_ids[..60], &first_ids[..]);
    assert_eq!(&a2.webhook_ids[60..], &more_ids[..40]);
    assert_eq!(
        a2.at.duration_since(a1.at).unwrap(),
        Duration::from_secs(30)
    );

    assert_eq!(
        engine.run_until_empty(Duration::from_secs(3600)).await,
        RunOutcome::Emptied
    );
    let log = engine.attempts();
    let a3 = &log[2];
    assert_eq!(a3.webhook_ids, a2.webhook_ids, "same head after a failure");
    assert!(a3.outcome.is_delivered());
    assert_eq!(
        a3.at.duration_since(a2.at).unwrap(),
        Duration::from_secs(60)
    );
    assert!(log.iter().all(|a| a.webhook_ids.len() <= 100 && a.batched));
    let delivered: Vec<_> = log
        .iter()
        .filter(|a| a.outcome.is_delivered())
        .flat_map(|a| a.webhook_ids.clone())
        .collect();
    let all: Vec<_> = first_ids.iter().chain(&more_ids).cloned().collect();
    assert_eq!(delivered, all, "every webhook once, in order");
    // Batches after a success come 0–10 s apart.
    for pair in log[2..].windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at).unwrap() <= Duration::from_secs(10));
    }
    // The bodies on the wire are JSON arrays.
    for seen in recorder.seen() {
        assert!(seen.json().is_array());
        assert!(seen.ids().len() <= 100);
    }
}

#[tokio::test]
async fn a_204_or_a_202_is_not_success() {
    for code in [204u16, 202, 201] {
        let clock = VirtualClock::new();
        let recorder = Recorder::new();
        let faults = FaultyTransport::new(recorder.transport(), clock.clone());
        faults.script([Fault::Status(code)]);
        let engine = Engine::new(settings(), clock.clone(), faults).unwrap();
        engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, clock.now()));
        engine.run_until_empty(Duration::from_secs(3600)).await;
        let log = engine.attempts();
        assert_eq!(log.len(), 2, "{code} must be retried");
        assert_eq!(log[0].outcome, Outcome::Rejected);
        assert_eq!(log[0].status, Some(code));
        assert_eq!(log[1].webhook_ids, log[0].webhook_ids);
        assert!(log[1].outcome.is_delivered());
    }
}

#[tokio::test]
async fn a_slow_answer_past_the_limit_is_retried() {
    // Unbatched: 10 s. Delayed 11 s → timed out; 9 s → fine.
    let clock = VirtualClock::new();
    let recorder = Recorder::new();
    let faults = FaultyTransport::new(recorder.transport(), clock.clone());
    faults.script([
        Fault::Delay(Duration::from_secs(11)),
        Fault::SlowAnswer(Duration::from_secs(30)),
        Fault::Hang,
        Fault::Delay(Duration::from_secs(9)),
    ]);
    let engine = Engine::new(settings(), clock.clone(), faults).unwrap();
    engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, clock.now()));
    engine.run_until_empty(Duration::from_secs(3600)).await;
    let log = engine.attempts();
    assert_eq!(log.len(), 4);
    for attempt in &log[..3] {
        assert_eq!(attempt.outcome, Outcome::TimedOut, "{attempt:?}");
        assert_eq!(attempt.latency(), Duration::from_secs(10));
    }
    assert!(log[3].outcome.is_delivered());
    assert_eq!(log[3].latency(), Duration::from_secs(9));
    // Back-off counts from when the attempt failed (the end of the 10 s limit).
    assert_eq!(
        log[1].at.duration_since(log[0].at).unwrap(),
        Duration::from_secs(10 + 30)
    );
    // The receiver saw the slow answer's request and the last one; the delayed and the hung
    // requests never reached it.
    assert_eq!(recorder.seen().len(), 2);

    // Batched: 5 s.
    let clock = VirtualClock::new();
    let recorder = Recorder::new();
    let faults = FaultyTransport::new(recorder.transport(), clock.clone());
    faults.script([Fault::Delay(Duration::from_secs(6))]);
    let engine = Engine::new(settings().batched(), clock.clone(), faults).unwrap();
    engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, clock.now()));
    engine.run_until_empty(Duration::from_secs(3600)).await;
    let log = engine.attempts();
    assert_eq!(log[0].outcome, Outcome::TimedOut);
    assert_eq!(log[0].latency(), Duration::from_secs(5));
    assert!(log[1].outcome.is_delivered());
}

#[tokio::test]
async fn an_in_process_receiver_that_moves_the_clock_past_the_limit_is_late() {
    let clock = VirtualClock::new();
    let receiver_clock = clock.clone();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = calls.clone();
    let transport = FnTransport(move |_request| {
        // The first time, the receiver "takes" 12 s of virtual time before answering 200.
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            receiver_clock.advance(Duration::from_secs(12));
        }
        Ok(Answer::status(http::StatusCode::OK))
    });
    let engine = Engine::new(settings(), clock.clone(), transport).unwrap();
    engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, clock.now()));
    engine.run_until_empty(Duration::from_secs(3600)).await;
    let log = engine.attempts();
    assert_eq!(log[0].outcome, Outcome::Late);
    assert_eq!(log[0].status, Some(200));
    assert!(log[1].outcome.is_delivered());
}

#[tokio::test]
async fn answer_limits_and_back_off_are_settings() {
    let clock = VirtualClock::new();
    let recorder = Recorder::new();
    let faults = FaultyTransport::new(recorder.transport(), clock.clone());
    faults.script([Fault::Delay(Duration::from_secs(3)), Fault::Status(500)]);
    let mut s = settings();
    s.answer_limit_unbatched = Duration::from_secs(2);
    s.backoff = BackoffSchedule {
        base: Duration::from_secs(1),
        doublings: 1,
        after: Duration::from_secs(7),
    };
    let engine = Engine::new(s, clock.clone(), faults).unwrap();
    engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, clock.now()));
    engine.run_until_empty(Duration::from_secs(3600)).await;
    let log = engine.attempts();
    assert_eq!(log[0].outcome, Outcome::TimedOut);
    assert_eq!(log[0].latency(), Duration::from_secs(2));
    assert_eq!(gaps(&log), vec![2 + 1, 7]);
}

#[tokio::test]
async fn retry_now_ignores_the_back_off_once() {
    let recorder = Recorder::new();
    recorder.answer(500);
    let (clock, engine) = engine_with(settings(), recorder.transport());
    engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, clock.now()));
    for _ in 0..5 {
        engine.step().await.unwrap();
    }
    let fifth = engine.attempts()[4].clone();
    assert_eq!(
        fifth.next_retry.unwrap().duration_since(fifth.at).unwrap(),
        Duration::from_secs(480)
    );
    // Some time passes, then the Retry button.
    clock.advance(Duration::from_secs(100));
    let pressed = clock.now();
    engine.retry_now();
    assert_eq!(engine.next_due(), Some(pressed));
    let sixth = engine.step().await.unwrap();
    assert_eq!(sixth.at, pressed, "sent at once, not after 480 s");
    assert_eq!(sixth.try_number, 6);
    // The back-off resumes from the failures so far.
    assert_eq!(
        sixth.next_retry.unwrap().duration_since(sixth.at).unwrap(),
        Duration::from_secs(960)
    );
    recorder.answer(200);
    let seventh = engine.step().await.unwrap();
    assert_eq!(seventh.at, sixth.at + Duration::from_secs(960));
    assert!(seventh.outcome.is_delivered());
    assert_eq!(engine.queued(), 0);
}

#[tokio::test]
async fn the_status_queue_goes_empty_waiting_stalled_empty() {
    let recorder = Recorder::new();
    let (clock, engine) = engine_with(settings(), recorder.transport());
    let status = engine.status();
    assert_eq!(status.queue, QueueState::Empty);
    assert_eq!(status.last_processed, None);

    let queued = webhooks(3, clock.now());
    engine.enqueue_all(queued.clone());
    assert_eq!(engine.status().queue, QueueState::Waiting(3));

    recorder.answer(500);
    engine.step().await.unwrap();
    let status = engine.status();
    assert_eq!(status.queue, QueueState::Stalled);
    assert_eq!(status.waiting, 3);
    assert_eq!(status.failed_attempts, 1);
    assert_eq!(
        status.next_retry,
        Some(clock.now() + Duration::from_secs(30))
    );
    assert_eq!(status.recent_failures.len(), 1);
    assert_eq!(status.recent_failures[0].webhook_id, queued[0].id);
    assert!(status.to_string().contains("Stalled"));

    engine.step().await.unwrap();
    let status = engine.status();
    assert_eq!(status.failed_attempts, 2);
    assert_eq!(status.recent_failures.len(), 1, "one webhook, listed once");

    engine.refresh();
    assert!(engine.status().recent_failures.is_empty(), "Refresh clears");
    assert_eq!(
        engine.status().queue,
        QueueState::Stalled,
        "but stays stalled"
    );

    recorder.answer(200);
    engine.step().await.unwrap();
    let status = engine.status();
    assert_eq!(status.queue, QueueState::Waiting(2));
    assert_eq!(status.failed_attempts, 0);
    assert_eq!(status.last_processed, Some(clock.now()));

    engine.run_until_empty(Duration::from_secs(60)).await;
    let status = engine.status();
    assert_eq!(status.queue, QueueState::Empty);
    assert_eq!(status.delivered, 3);
    assert_eq!(status.attempts, 5);
    assert!(status.to_string().contains("Queue:            Empty"));
}

#[tokio::test]
async fn recent_failures_hold_the_ten_most_recent_still_waiting() {
    let recorder = Recorder::new();
    recorder.answer(500);
    let (clock, engine) = engine_with(settings().batched(), recorder.transport());
    let queued = webhooks(30, clock.now());
    engine.enqueue_all(queued.clone());
    engine.step().await.unwrap();
    let failures = engine.status().recent_failures;
    assert_eq!(failures.len(), 10);
    let listed: Vec<_> = failures.iter().map(|f| f.webhook_id.clone()).collect();
    let head: Vec<_> = queued[..10].iter().map(|w| w.id.clone()).collect();
    assert_eq!(listed, head);
    recorder.answer(200);
    engine.step().await.unwrap();
    assert!(
        engine.status().recent_failures.is_empty(),
        "delivered webhooks are no longer listed"
    );
}

#[tokio::test]
async fn disabling_then_enabling_loses_the_queue_when_set_to() {
    for drop_queue in [true, false] {
        let recorder = Recorder::new();
        recorder.answer(500);
        let mut s = settings();
        s.drop_queue_on_disable = drop_queue;
        let (clock, engine) = engine_with(s, recorder.transport());
        engine.enqueue_all(webhooks(3, clock.now()));
        engine.step().await.unwrap();

        engine.set_enabled(false);
        assert_eq!(engine.status().queue, QueueState::Stalled);
        assert!(
            engine.step().await.is_none(),
            "nothing is sent while disabled"
        );
        let late = Generator::new(9).webhook(EventType::CheckCompleted, clock.now());
        assert_eq!(engine.enqueue(late), Enqueued::Disabled);

        engine.set_enabled(true);
        recorder.answer(200);
        let outcome = engine.run_until_empty(Duration::from_secs(3600)).await;
        assert_eq!(outcome, RunOutcome::Emptied);
        let status = engine.status();
        if drop_queue {
            assert_eq!(status.dropped, 3, "the documented loss");
            assert_eq!(status.delivered, 0);
            assert_eq!(recorder.seen().len(), 1);
        } else {
            assert_eq!(status.dropped, 0);
            assert_eq!(status.delivered, 3);
        }
    }
}

#[tokio::test]
async fn events_not_enabled_are_never_queued() {
    let recorder = Recorder::new();
    let mut s = settings();
    s.enabled_events = EnabledEvents::only([EventType::ProductStatusChanged]);
    let (clock, engine) = engine_with(s, recorder.transport());
    let mut generator = Generator::new(4);
    let mix = generator.mix(200, clock.now());
    let wanted = mix
        .iter()
        .filter(|w| w.event == EventType::ProductStatusChanged)
        .count();
    assert!(wanted > 0 && wanted < 200);
    assert_eq!(engine.enqueue_all(mix), wanted);
    engine.run_until_empty(Duration::from_secs(3600)).await;
    assert!(recorder
        .seen()
        .iter()
        .all(|s| s.json()["event"] == "PRODUCT_STATUS_CHANGED"));
}

#[tokio::test]
async fn giving_up_leaves_the_queue_stalled() {
    let recorder = Recorder::new();
    recorder.answer(503);
    let (clock, engine) = engine_with(settings(), recorder.transport());
    let start = clock.now();
    engine.enqueue_all(webhooks(2, start));
    let outcome = engine.run_until_empty(Duration::from_secs(3600)).await;
    assert_eq!(outcome, RunOutcome::GaveUp);
    assert_eq!(clock.now(), start + Duration::from_secs(3600));
    // 0, 30, 90, 210, 450, 930, 1890 s: the next (3810 s) is past the hour.
    assert_eq!(engine.attempts().len(), 7);
    assert_eq!(engine.status().queue, QueueState::Stalled);
}

#[tokio::test]
async fn a_give_up_time_of_ages_is_not_a_panic() {
    // `--give-up-after 500000000000years` parses to a Duration past what SystemTime can add.
    let recorder = Recorder::new();
    let (_clock, engine) = engine_with(settings(), recorder.transport());
    let outcome = engine
        .run_until_empty(Duration::from_secs(500_000_000_000 * 365 * DAY))
        .await;
    assert_eq!(outcome, RunOutcome::Emptied);
}

#[tokio::test]
async fn a_tiny_time_scale_backs_off_for_ever_instead_of_panicking() {
    // `--time-scale 1e-16`: a 30 s back-off divided by it leaves Duration's range.
    let recorder = Recorder::new();
    recorder.answer(503);
    let mut s = settings();
    s.time_scale = 1e-16;
    let (clock, engine) = engine_with(s, recorder.transport());
    engine.enqueue_all(webhooks(1, clock.now()));
    let outcome = engine.run_until_empty(Duration::from_secs(3600)).await;
    assert_eq!(outcome, RunOutcome::GaveUp);
    assert_eq!(engine.status().queue, QueueState::Stalled);
    assert!(engine.status().failed_attempts >= 1);
}

#[tokio::test]
async fn time_scale_divides_back_off_and_cadence_but_not_the_limit() {
    let clock = VirtualClock::new();
    let recorder = Recorder::new();
    let faults = FaultyTransport::new(recorder.transport(), clock.clone());
    faults.script([Fault::Status(500), Fault::Delay(Duration::from_secs(11))]);
    let mut s = settings();
    s.time_scale = 1000.0;
    let engine = Engine::new(s, clock.clone(), faults).unwrap();
    engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, clock.now()));
    // Give-up time is simulated time too: a day is 86.4 s of engine-clock time here.
    engine.run_until_empty(Duration::from_secs(86_400)).await;
    let log = engine.attempts();
    assert_eq!(
        log[1].at.duration_since(log[0].at).unwrap(),
        Duration::from_millis(30)
    );
    assert_eq!(log[1].outcome, Outcome::TimedOut);
    assert_eq!(
        log[1].latency(),
        Duration::from_secs(10),
        "limit not scaled"
    );
    assert_eq!(
        log[2].at.duration_since(log[1].at).unwrap(),
        Duration::from_secs(10) + Duration::from_millis(60)
    );
}

async fn scripted_run(seed: u64) -> String {
    let clock = VirtualClock::new();
    let recorder = Recorder::new();
    let faults = FaultyTransport::new(recorder.transport(), clock.clone());
    faults.script([
        Fault::Status(500),
        Fault::Delay(Duration::from_secs(7)),
        Fault::Refuse,
        Fault::Pass,
        Fault::DropAnswer,
        Fault::Status(204),
    ]);
    let engine = Engine::with_options(
        settings().batched(),
        clock.clone(),
        faults,
        EngineOptions {
            seed,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let mut generator = Generator::new(seed);
    engine.enqueue_all(generator.mix(450, clock.now()));
    assert_eq!(
        engine.run_until_empty(Duration::from_secs(86_400)).await,
        RunOutcome::Emptied
    );
    engine.attempt_log_json_lines()
}

#[tokio::test]
async fn same_seed_same_clock_same_attempt_log_byte_for_byte() {
    let a = scripted_run(42).await;
    let b = scripted_run(42).await;
    assert!(a.lines().count() >= 10);
    assert!(
        !a.contains(SECRET),
        "the secret never reaches the attempt log"
    );
    assert_eq!(a, b);
    let c = scripted_run(43).await;
    assert_ne!(a, c, "a different seed changes ids and cadence");
}

#[tokio::test]
async fn an_axum_router_plugs_in_as_the_receiver() {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};

    let bodies: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let store = bodies.clone();
    let router = axum::Router::new().route(
        "/webhooks/passfort",
        post(
            move |headers: http::HeaderMap, axum::Json(body): axum::Json<serde_json::Value>| {
                let store = store.clone();
                async move {
                    let auth = headers[http::header::AUTHORIZATION]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    store.lock().unwrap().push((auth, body));
                    "ok"
                }
            },
        ),
    );
    let clock = VirtualClock::new();
    let engine = Engine::new(settings(), clock.clone(), ServiceTransport::new(router)).unwrap();
    let mut generator = Generator::new(5);
    let sent: Vec<Webhook> = EventType::KNOWN
        .iter()
        .map(|event| generator.webhook(event.clone(), clock.now()))
        .collect();
    engine.enqueue_all(sent.clone());
    assert_eq!(
        engine.run_until_empty(Duration::from_secs(60)).await,
        RunOutcome::Emptied
    );
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), sent.len());
    for ((auth, body), webhook) in bodies.iter().zip(&sent) {
        assert_eq!(auth, &format!("Bearer {SECRET}"));
        assert_eq!(body, &webhook.to_json(SECRET));
    }
}

#[tokio::test]
async fn the_batch_body_shape_is_a_setting() {
    let recorder = Recorder::new();
    let mut s = settings().batched();
    s.batch_shape = BatchShape::Wrapped {
        field: "webhooks".into(),
    };
    let (clock, engine) = engine_with(s, recorder.transport());
    let queued = webhooks(3, clock.now());
    engine.enqueue_all(queued.clone());
    engine.run_until_empty(Duration::from_secs(60)).await;
    let body = recorder.seen()[0].json();
    let items = body["webhooks"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for (item, webhook) in items.iter().zip(&queued) {
        assert_eq!(item, &webhook.to_json(SECRET));
    }
}

#[tokio::test]
async fn bad_settings_are_refused_with_a_reason() {
    let clock = VirtualClock::new();
    let transport = Recorder::new().transport();
    let bad = AccountSettings::new("not a url", Secret::new(SECRET));
    let error = Engine::new(bad, clock.clone(), Recorder::new().transport()).unwrap_err();
    assert!(error.to_string().contains("not a url"), "{error}");
    let mut bad = settings();
    bad.time_scale = 0.0;
    assert!(Engine::new(bad, clock.clone(), Recorder::new().transport()).is_err());
    let bad = AccountSettings::new("http://ok.test/", Secret::new("line\nbreak"));
    let error = Engine::new(bad, clock.clone(), transport).unwrap_err();
    assert!(
        !error.to_string().contains("line"),
        "the secret is never shown"
    );
}

#[tokio::test]
async fn run_forever_sends_what_other_tasks_enqueue() {
    let recorder = Recorder::new();
    let (clock, engine) = engine_with(settings(), recorder.transport());
    let driver = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run_forever().await }
    });
    let mut generator = Generator::new(8);
    for round in 1..=3u64 {
        engine.enqueue(generator.webhook(EventType::CheckCompleted, clock.now()));
        // Wait for the event (bounded), not for time.
        let mut spins = 0;
        while engine.status().delivered < round {
            tokio::task::yield_now().await;
            spins += 1;
            assert!(spins < 100_000, "the driver never sent round {round}");
        }
    }
    assert_eq!(recorder.seen().len(), 3);
    driver.abort();
}

#[tokio::test]
async fn settings_changes_apply_to_the_next_attempt() {
    let recorder = Recorder::new();
    recorder.answer(500);
    let (clock, engine) = engine_with(settings(), recorder.transport());
    engine.enqueue_all(webhooks(150, clock.now()));
    engine.step().await.unwrap();
    engine
        .update_settings(|s| {
            s.batching = true;
            s.secret = Secret::new("rotated");
        })
        .unwrap();
    recorder.answer(200);
    engine.run_until_empty(Duration::from_secs(3600)).await;
    let seen = recorder.seen();
    assert_eq!(seen[1].authorization.as_deref(), Some("Bearer rotated"));
    assert_eq!(seen[1].ids().len(), 100, "batched from now on");
    assert!(seen[1].json()[0]["secret"] == "rotated");
    assert!(engine
        .update_settings(|s| s.endpoint = "ftp://x".into())
        .is_err());
}

#[tokio::test]
async fn an_abandoned_attempt_does_not_wedge_the_queue() {
    let clock = VirtualClock::new();
    let recorder = Recorder::new();
    let faults = FaultyTransport::new(recorder.transport(), clock.clone());
    faults.script([Fault::Hang]);
    let engine = Engine::new(settings(), clock.clone(), faults).unwrap();
    engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, clock.now()));
    {
        // Poll the step until it is waiting on the hung request, then drop it.
        let step = engine.step();
        let mut step = std::pin::pin!(step);
        let polled = futures::poll!(step.as_mut());
        assert!(polled.is_pending());
    }
    assert_eq!(engine.next_due(), Some(clock.now()), "due again at once");
    let attempt = engine.step().await.unwrap();
    assert!(attempt.outcome.is_delivered());
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let shown = format!("{:?}", settings());
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("Secret(***)"));
}

#[tokio::test]
async fn the_inferred_method_and_content_type_are_settings() {
    let recorder = Recorder::new();
    let (clock, engine) = engine_with(settings(), recorder.transport());
    engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, clock.now()));
    engine.run_until_empty(Duration::from_secs(60)).await;
    let mut s = settings();
    s.method = http::Method::PUT;
    s.content_type = "application/json; charset=utf-8".into();
    let (clock, engine) = engine_with(s, recorder.transport());
    engine.enqueue(Generator::new(1).webhook(EventType::CheckCompleted, clock.now()));
    engine.run_until_empty(Duration::from_secs(60)).await;
    let seen = recorder.seen();
    assert_eq!(seen[0].method, http::Method::POST);
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(seen[0].uri, "http://receiver.test/webhooks/passfort");
    assert_eq!(seen[1].method, http::Method::PUT);
    assert_eq!(
        seen[1].content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
}

/// The batched, faulty run of [`scripted_run`], stopped after `stop_after` attempts: the engine
/// is snapshotted (through JSON, as a file would keep it) and dropped, and a new engine with a
/// different seed restores the snapshot and carries on. Returns both halves of the attempt log.
async fn restarted_run(seed: u64, stop_after: usize) -> String {
    let clock = VirtualClock::new();
    let recorder = Recorder::new();
    let faults = FaultyTransport::new(recorder.transport(), clock.clone());
    faults.script([
        Fault::Status(500),
        Fault::Delay(Duration::from_secs(7)),
        Fault::Refuse,
        Fault::Pass,
        Fault::DropAnswer,
        Fault::Status(204),
    ]);
    let options = |seed| EngineOptions {
        seed,
        ..EngineOptions::default()
    };
    let first = Engine::with_options(
        settings().batched(),
        clock.clone(),
        faults.clone(),
        options(seed),
    )
    .unwrap();
    let mut generator = Generator::new(seed);
    first.enqueue_all(generator.mix(450, clock.now()));
    for _ in 0..stop_after {
        first.step().await.unwrap();
    }
    let before = first.status();
    let saved = serde_json::to_string(&first.snapshot()).unwrap();
    let mut log = first.attempt_log_json_lines();
    drop(first);

    // Another seed: the batch cadence must come from the snapshot, not be drawn afresh.
    let second = Engine::with_options(
        settings().batched(),
        clock.clone(),
        faults,
        options(seed + 1),
    )
    .unwrap();
    second
        .restore(serde_json::from_str(&saved).unwrap())
        .unwrap();
    assert_eq!(
        second.status(),
        before,
        "the status queue survives the restart"
    );
    assert_eq!(
        second.run_until_empty(Duration::from_secs(86_400)).await,
        RunOutcome::Emptied
    );
    log.push_str(&second.attempt_log_json_lines());
    log
}

#[tokio::test]
async fn snapshot_then_restore_continues_exactly_as_never_stopping() {
    let uninterrupted = scripted_run(42).await;
    let total = uninterrupted.lines().count();
    assert!(total >= 10);
    // Stopped mid back-off (1 and 3 failures at the head), right after a delivery, and near the
    // end: the log is the same byte for byte each time.
    for stop_after in [1, 3, 4, total - 1] {
        let restarted = restarted_run(42, stop_after).await;
        assert_eq!(
            restarted, uninterrupted,
            "stopped after {stop_after} attempts"
        );
    }
}

#[tokio::test]
async fn counts_at_their_maximum_in_a_restored_state_do_not_panic() {
    // A `--state` file is read from disk: its counts may be anything serde accepts.
    let recorder = Recorder::new();
    recorder.answer(503);
    let (clock, engine) = engine_with(settings(), recorder.transport());
    engine.enqueue_all(webhooks(2, clock.now()));
    let mut snapshot = engine.snapshot();
    snapshot.failed_attempts = u32::MAX;
    snapshot.totals.enqueued = u64::MAX;
    snapshot.totals.attempts = u64::MAX;
    snapshot.totals.failed_attempts = u64::MAX;
    snapshot.totals.delivered = u64::MAX;
    engine.restore(snapshot).unwrap();
    let failed = engine.step().await.unwrap();
    assert!(!failed.outcome.is_delivered());
    assert_eq!(failed.try_number, u32::MAX);
    assert_eq!(engine.status().failed_attempts, u32::MAX);
    recorder.answer(200);
    assert!(engine.step().await.unwrap().outcome.is_delivered());
    engine.enqueue_all(webhooks(1, clock.now()));
    assert_eq!(engine.status().enqueued, u64::MAX);
}

#[tokio::test]
async fn a_restored_head_keeps_its_failed_attempts_and_back_off() {
    let recorder = Recorder::new();
    recorder.answer(503);
    let (clock, engine) = engine_with(settings(), recorder.transport());
    engine.enqueue_all(webhooks(2, clock.now()));
    engine.step().await.unwrap();
    engine.step().await.unwrap();
    let failed_at = clock.now();
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.failed_attempts, 2);
    assert_eq!(
        snapshot.next_send,
        Some(failed_at + Duration::from_secs(60)),
        "60 s after the second failure"
    );
    assert_eq!(snapshot.recent_failures.len(), 1);
    assert_eq!(snapshot.totals.failed_attempts, 2);

    recorder.answer(200);
    let restored = Engine::new(settings(), clock.clone(), recorder.transport()).unwrap();
    restored.restore(snapshot.clone()).unwrap();
    let status = restored.status();
    assert_eq!(status.queue, QueueState::Stalled);
    assert_eq!(status.failed_attempts, 2);
    assert_eq!(status.next_retry, Some(failed_at + Duration::from_secs(60)));
    assert_eq!(status.recent_failures.len(), 1);

    // Not before the back-off ends, and then as the third try.
    assert!(restored.attempt_if_due().await.is_none());
    let third = restored.step().await.unwrap();
    assert_eq!(third.at, failed_at + Duration::from_secs(60));
    assert_eq!(third.try_number, 3);
    assert_eq!(third.seq, 3, "the log numbering counts on");
    assert!(third.outcome.is_delivered());

    // A snapshot that cannot be read is refused and changes nothing.
    let mut garbled = snapshot;
    garbled.queue.clear();
    garbled.cadence = Some(passfort_sender_sim::CadencePosition {
        seed: "not hex".into(),
        word_pos: "0".into(),
    });
    assert!(restored.restore(garbled).is_err());
    assert_eq!(restored.queued(), 1);
}

#[tokio::test]
async fn a_fault_plan_repeats_past_the_script_and_never_runs_out() {
    let clock = VirtualClock::new();
    let recorder = Recorder::new();
    let faults = FaultyTransport::new(recorder.transport(), clock.clone());
    // The script goes first; after it, attempt n (0-based, scripted ones counted) takes plan(n).
    faults.script([Fault::Status(500)]);
    faults.plan(|attempt| {
        if attempt % 3 == 2 {
            Fault::Refuse
        } else {
            Fault::Pass
        }
    });
    let engine = Engine::new(settings(), clock.clone(), faults.clone()).unwrap();
    engine.enqueue_all(webhooks(60, clock.now()));
    assert_eq!(
        engine.run_until_empty(Duration::from_secs(DAY)).await,
        RunOutcome::Emptied
    );
    let outcomes: Vec<Outcome> = engine.attempts().iter().map(|a| a.outcome).collect();
    assert!(outcomes.len() > 60, "more attempts than any short script");
    for (n, outcome) in outcomes.iter().enumerate() {
        let expected = match n {
            0 => Outcome::Rejected,
            n if n % 3 == 2 => Outcome::Refused,
            _ => Outcome::Delivered,
        };
        assert_eq!(*outcome, expected, "attempt {n}");
    }
    let refused = outcomes.iter().filter(|o| **o == Outcome::Refused).count() as u64;
    assert_eq!(faults.attempts(), outcomes.len() as u64);
    assert_eq!(faults.forwarded(), faults.attempts() - refused - 1);
    assert_eq!(recorder.seen().len() as u64, faults.forwarded());

    // Without the plan, `otherwise` applies again.
    faults.clear_plan().otherwise(Fault::Status(503));
    engine.enqueue_all(webhooks(1, clock.now()));
    assert_eq!(engine.step().await.unwrap().outcome, Outcome::Rejected);
}

#[tokio::test]
async fn the_observer_can_stop_a_run_and_the_queue_stays_as_it_was() {
    let recorder = Recorder::new();
    recorder.answer(500);
    let (clock, engine) = engine_with(settings(), recorder.transport());
    engine.enqueue_all(webhooks(3, clock.now()));
    let mut failures_in_a_row = 0;
    let run = engine
        .run_until_empty_or_break(Duration::from_secs(30 * DAY), |attempt, _| {
            if attempt.outcome.is_delivered() {
                failures_in_a_row = 0;
            } else {
                failures_in_a_row += 1;
            }
            if failures_in_a_row >= 4 {
                std::ops::ControlFlow::Break(attempt.try_number)
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .await;
    assert_eq!(run, std::ops::ControlFlow::Break(4));
    assert_eq!(
        engine.attempts().len(),
        4,
        "stopped right after the fourth failure"
    );
    assert_eq!(engine.queued(), 3);
    assert_eq!(engine.status().failed_attempts, 4);

    // Left to itself, the same run ends as `run_until_empty` does.
    recorder.answer(200);
    engine.retry_now();
    let run = engine
        .run_until_empty_or_break(Duration::from_secs(DAY), |_, _| {
            std::ops::ControlFlow::<()>::Continue(())
        })
        .await;
    assert_eq!(run, std::ops::ControlFlow::Continue(RunOutcome::Emptied));
    assert_eq!(engine.queued(), 0);
}

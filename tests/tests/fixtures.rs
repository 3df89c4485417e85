//! The golden fixtures of `tests/fixtures/` are the single written-down wire format. The
//! receiver's parser and the simulator's generator are both held to them here, in one crate that
//! links both, so that neither can drift from the written format (nor from each other) unseen.

use passfort_conformance::fixture::{self, FIXTURE_SECRET};
use passfort_receiver::{Batch, Event, Receiver, SecretSet, SqliteStore, Webhook, Worker};
use passfort_receiver::{Rejection, Shape};
use passfort_sender_sim::{
    AccountSettings, Answer, Engine, EventType, FnTransport, Generator, Secret,
};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

/// Whether an event is the typed variant a fixture must be read as.
type IsTyped = fn(&Event) -> bool;

/// Each single-webhook fixture and the typed variant the receiver must read it as.
const TYPED: [(&str, IsTyped); 11] = [
    (
        "product_status_changed.json",
        |e| matches!(e, Event::ProductStatusChanged(d) if d.new_status.is_some() && d.product.is_some()),
    ),
    (
        "check_completed.json",
        |e| matches!(e, Event::CheckCompleted(d) if d.check.as_ref().is_some_and(|c| c.result.is_some())),
    ),
    (
        "collected_data_updated.json",
        |e| matches!(e, Event::CollectedDataUpdated(d) if d.old_data.is_some() && d.new_data.is_some()),
    ),
    (
        "manual_action_required.json",
        |e| matches!(e, Event::ManualActionRequired(d) if !d.actions.is_empty()),
    ),
    (
        "product_badge_changed.json",
        |e| matches!(e, Event::ProductBadgeChanged(d) if d.new_flag.is_some()),
    ),
    (
        "risk_level_changed.json",
        |e| matches!(e, Event::RiskLevelChanged(d) if d.new_risk_level.is_some()),
    ),
    (
        "task_state_changed.json",
        |e| matches!(e, Event::TaskStateChanged(d) if d.new_state.is_some() && d.task.is_some()),
    ),
    (
        "form_state_changed.json",
        |e| matches!(e, Event::FormStateChanged(d) if d.new_state.is_some() && d.form.is_some()),
    ),
    (
        "profile_status_changed.json",
        |e| matches!(e, Event::ProfileStatusChanged(d) if d.new_status.is_some()),
    ),
    (
        "task_is_complete_changed.json",
        |e| matches!(e, Event::TaskIsCompleteChanged(d) if d.is_complete.is_some()),
    ),
    ("collection_steps_completed.json", |e| {
        matches!(e, Event::CollectionStepsCompleted(_))
    }),
];

/// Fixtures of the newer events (spec §2: strings inferred, no payload sample): the receiver
/// must accept each, keep its `data` exactly as sent and name it by its `event` string, whether
/// it reads it into a variant of its own or as raw data.
const NEWER: [&str; 6] = [
    "collected_data_changed.json",
    "task_created.json",
    "risk_score_changed.json",
    "customer_request_changed.json",
    "events_created.json",
    "events_updated.json",
];

/// The `event` of `unknown_event.json`: one no PassFort page names.
const UNKNOWN_EVENT: &str = "APPLICANT_PORTAL_VISITED";

fn secrets() -> SecretSet {
    SecretSet::single(FIXTURE_SECRET).unwrap()
}

fn bearer() -> Vec<u8> {
    format!("Bearer {FIXTURE_SECRET}").into_bytes()
}

#[test]
fn every_fixture_file_is_checked_here() {
    let mut expected: Vec<String> = TYPED.iter().map(|(name, _)| (*name).to_owned()).collect();
    expected.extend(NEWER.iter().map(|name| (*name).to_owned()));
    expected.push("batch.json".into());
    expected.push("unknown_event.json".into());
    expected.sort();
    assert_eq!(
        fixture::names(),
        expected,
        "a fixture was added or removed: check it here too"
    );
}

#[test]
fn the_receiver_reads_every_event_fixture_as_its_typed_event() {
    for (name, is_typed) in TYPED {
        let json = fixture::load(name);
        let verified = Batch::verify(&secrets(), Some(&bearer()), &fixture::bytes(name))
            .unwrap_or_else(|e| panic!("{name} refused: {e}"));
        assert_eq!(verified.shape(), Shape::Single, "{name}");
        let webhook = &verified.webhooks()[0];
        assert_eq!(webhook.id, json["id"].as_str().unwrap(), "{name}");
        assert_eq!(webhook.timestamp, json["timestamp"].as_i64(), "{name}");
        assert_eq!(webhook.data, json["data"], "{name}: data kept as sent");
        assert!(
            !webhook.to_json_string().contains(FIXTURE_SECRET),
            "{name}: the secret survived parsing"
        );
        let event = webhook.event();
        assert!(is_typed(&event), "{name} read as {event:?}");
        assert_eq!(event.name(), json["event"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn the_receiver_reads_every_newer_event_fixture_by_name_with_its_data_as_sent() {
    for name in NEWER {
        let json = fixture::load(name);
        let verified = Batch::verify(&secrets(), Some(&bearer()), &fixture::bytes(name))
            .unwrap_or_else(|e| panic!("{name} refused: {e}"));
        let webhook = &verified.webhooks()[0];
        assert_eq!(webhook.data, json["data"], "{name}: data kept as sent");
        assert_eq!(
            webhook.event().name(),
            json["event"].as_str().unwrap(),
            "{name}"
        );
        assert!(!webhook.to_json_string().contains(FIXTURE_SECRET), "{name}");
    }
}

#[test]
fn the_unknown_event_fixture_is_the_unknown_variant_with_its_raw_data() {
    let json = fixture::load("unknown_event.json");
    let webhook = Webhook::from_json(json.clone()).unwrap();
    match webhook.event() {
        Event::Unknown { event, raw } => {
            assert_eq!(event, UNKNOWN_EVENT);
            assert_eq!(raw, json["data"]);
        }
        other => panic!("unknown_event.json read as {other:?}"),
    }
}

#[test]
fn the_batch_fixture_is_read_as_a_batch_in_order() {
    let json = fixture::load("batch.json");
    let batch = Batch::verify(&secrets(), Some(&bearer()), &fixture::bytes("batch.json")).unwrap();
    assert_eq!(batch.shape(), Shape::Array);
    let ids: Vec<&str> = batch.webhooks().iter().map(|w| w.id.as_str()).collect();
    let expected: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, expected);
    for webhook in batch.webhooks() {
        assert!(!webhook.event().is_unknown(), "{webhook:?}");
        assert!(!webhook.to_json_string().contains(FIXTURE_SECRET));
    }
}

#[test]
fn every_fixture_is_refused_with_another_secret() {
    let other = SecretSet::single("not-the-fixture-secret").unwrap();
    for name in fixture::names() {
        let refused = Batch::verify(&other, Some(&bearer()), &fixture::bytes(&name));
        assert!(
            matches!(refused, Err(Rejection::Unauthorized(_))),
            "{name}: {refused:?}"
        );
        let right_bearer = b"Bearer not-the-fixture-secret".to_vec();
        let refused = Batch::verify(&other, Some(&right_bearer), &fixture::bytes(&name));
        assert!(
            matches!(refused, Err(Rejection::Unauthorized(_))),
            "{name}: body secret ignored: {refused:?}"
        );
    }
}

/// Every fixture over the receiver's real router: 200, stored, handed on typed, in order.
#[tokio::test]
async fn every_fixture_is_accepted_over_the_router_and_handed_on() {
    let receiver = Receiver::builder()
        .secrets(secrets())
        .store(SqliteStore::in_memory().await.unwrap())
        .build()
        .unwrap();
    let mut sent = Vec::new();
    for name in fixture::names() {
        let request = http::Request::builder()
            .method("POST")
            .uri("/webhooks/passfort")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {FIXTURE_SECRET}"))
            .body(axum::body::Body::from(fixture::bytes(&name)))
            .unwrap();
        let answer = receiver.router().oneshot(request).await.unwrap();
        assert_eq!(answer.status(), 200, "{name}");
        match fixture::load(&name) {
            Value::Array(items) => sent.extend(items),
            single => sent.push(single),
        }
    }
    let handled = Arc::new(Mutex::new(Vec::new()));
    let sink = handled.clone();
    let worker = Worker::builder()
        .receiver(&receiver)
        .handler(passfort_receiver::handler_fn(
            move |job: passfort_receiver::Job| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(job);
                    Ok(())
                }
            },
        ))
        .build()
        .unwrap();
    worker.run_until_idle().await.unwrap();
    let handled = handled.lock().unwrap();
    let ids: Vec<&str> = handled.iter().map(|j| j.webhook.id.as_str()).collect();
    let expected: Vec<&str> = sent.iter().map(|w| w["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected);
    for job in handled.iter() {
        let newer = NEWER.contains(&fixture::file_for(&job.webhook.event).as_str());
        if !newer {
            let unknown = job.webhook.event == UNKNOWN_EVENT;
            assert_eq!(job.event.is_unknown(), unknown, "{:?}", job.event);
        }
        assert_eq!(job.event.name(), job.webhook.event);
        assert!(!job.webhook.to_json_string().contains(FIXTURE_SECRET));
    }
}

#[test]
fn the_simulator_generates_every_event_in_the_shape_of_its_fixture() {
    let mut generator = Generator::new(4);
    let at = passfort_clock::VirtualClock::new();
    let at = passfort_clock::Clock::now(&at);
    for event in EventType::KNOWN {
        let name = fixture::file_for(event.as_str());
        let expected = fixture::load(&name);
        for _ in 0..40 {
            let generated = generator.webhook(event.clone(), at).to_json(FIXTURE_SECRET);
            fixture::same_shape("$", &expected, &generated)
                .unwrap_or_else(|e| panic!("{event}: generated webhook differs from {name}: {e}"));
        }
    }
    // Whole lifecycles too, where values depend on each other.
    for webhook in generator.mix(300, at) {
        let name = fixture::file_for(webhook.event.as_str());
        fixture::same_shape("$", &fixture::load(&name), &webhook.to_json(FIXTURE_SECRET))
            .unwrap_or_else(|e| panic!("{}: {e}", webhook.event));
    }
}

#[test]
fn the_simulator_carries_unknown_event_data_verbatim() {
    let fixture = fixture::load("unknown_event.json");
    let mut generator = Generator::new(5);
    let event = EventType::parse(fixture["event"].as_str().unwrap());
    let at = passfort_clock::Clock::now(&passfort_clock::VirtualClock::new());
    let webhook = generator.webhook_with_data(event, at, fixture["data"].clone());
    let json = webhook.to_json(FIXTURE_SECRET);
    fixture::same_shape("$", &fixture, &json).unwrap();
    assert_eq!(json["data"], fixture["data"]);
}

/// What the simulator generates, the receiver reads as the typed event (the two crates share no
/// code, so this is where a disagreement between them shows).
#[test]
fn the_receiver_types_everything_the_simulator_generates() {
    let mut generator = Generator::new(6);
    let at = passfort_clock::Clock::now(&passfort_clock::VirtualClock::new());
    for event in EventType::KNOWN {
        for _ in 0..40 {
            let json = generator.webhook(event.clone(), at).to_json("s");
            let webhook = Webhook::from_json(json).unwrap();
            let typed = webhook.event();
            assert!(!typed.is_unknown(), "{event}: {typed:?}");
            assert_eq!(typed.name(), event.as_str());
        }
    }
}

#[tokio::test]
async fn the_simulators_batch_body_has_the_shape_of_the_batch_fixture() {
    let fixture = fixture::load("batch.json");
    let fixture = fixture.as_array().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = bodies.clone();
    let transport = FnTransport(move |request: http::Request<bytes::Bytes>| {
        seen.lock()
            .unwrap()
            .push(serde_json::from_slice(request.body()).unwrap());
        Ok(Answer::status(http::StatusCode::OK))
    });
    let clock = passfort_clock::VirtualClock::new();
    let settings =
        AccountSettings::new("http://receiver.test/hooks", Secret::new(FIXTURE_SECRET)).batched();
    let engine = Engine::new(settings, clock.clone(), transport).unwrap();
    let mut generator = Generator::new(7);
    for item in fixture {
        let event = EventType::parse(item["event"].as_str().unwrap());
        engine.enqueue(generator.webhook(event, passfort_clock::Clock::now(&clock)));
    }
    engine.run_until_empty(Duration::from_secs(60)).await;
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1, "three webhooks, one batch");
    let body = bodies[0].as_array().expect("a batch is a JSON array");
    assert_eq!(body.len(), fixture.len());
    for (expected, actual) in fixture.iter().zip(body) {
        fixture::same_shape("$", expected, actual).unwrap();
        assert_eq!(actual["secret"], FIXTURE_SECRET);
    }
    // And the receiver takes that body as the batch it is.
    let verified = Batch::verify(
        &secrets(),
        Some(&bearer()),
        serde_json::to_vec(&bodies[0]).unwrap().as_slice(),
    )
    .unwrap();
    assert_eq!(verified.shape(), Shape::Array);
    assert_eq!(verified.len(), fixture.len());
}

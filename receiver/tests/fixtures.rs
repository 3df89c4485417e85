//! Every golden fixture (`tests/fixtures/*.json`, hand-written from the spec) parses to its
//! typed variant and is accepted over HTTP, stored without its secret, and handed on.

mod common;

use common::{fixture, fixtures_dir, post, serve, sqlite_in, FIXTURE_SECRET};
use passfort_receiver::testing::RecordingHandler;
use passfort_receiver::{Batch, Event, Receiver, SecretSet, Webhook, Worker};
use serde_json::Value;

fn typed(name: &str) -> Event {
    Webhook::from_json(fixture(name)).unwrap().event()
}

#[test]
fn every_fixture_file_is_covered_here() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "batch.json",
            "check_completed.json",
            "collected_data_changed.json",
            "collected_data_updated.json",
            "collection_steps_completed.json",
            "customer_request_changed.json",
            "events_created.json",
            "events_updated.json",
            "form_state_changed.json",
            "manual_action_required.json",
            "product_badge_changed.json",
            "product_status_changed.json",
            "profile_status_changed.json",
            "risk_level_changed.json",
            "risk_score_changed.json",
            "task_created.json",
            "task_is_complete_changed.json",
            "task_state_changed.json",
            "unknown_event.json",
        ],
        "a fixture was added: give it a typed check below"
    );
}

#[test]
fn product_status_changed() {
    let Event::ProductStatusChanged(d) = typed("product_status_changed.json") else {
        panic!("not typed")
    };
    assert_eq!(d.new_status.as_deref(), Some("APPROVED"));
    assert_eq!(d.product.unwrap().alias.as_deref(), Some("onboarding_kyc"));
    assert_eq!(
        d.user.unwrap().email.as_deref(),
        Some("analyst@example.com")
    );
    assert_eq!(
        d.apikey.unwrap().name.as_deref(),
        Some("Production integration")
    );
    assert_eq!(d.customer_ref.as_deref(), Some("CUST-0042"));
    assert!(d.other.is_empty(), "unexpected extra fields: {:?}", d.other);
}

#[test]
fn check_completed() {
    let Event::CheckCompleted(d) = typed("check_completed.json") else {
        panic!("not typed")
    };
    let check = d.check.unwrap();
    assert_eq!(
        check.check_type.as_deref(),
        Some("PEPS_AND_SANCTIONS_SCREEN")
    );
    assert_eq!(check.decision.as_deref(), Some("PASS"));
    assert_eq!(check.result.as_deref(), Some("Pass"));
    assert_eq!(
        check.variant.unwrap().alias.as_deref(),
        Some("peps_and_sanctions_screen_default")
    );
    assert_eq!(d.customer_ref, None);
    assert_eq!(
        d.profile_id.as_deref(),
        Some("0f6a8c52-2b1d-4a51-9a53-3a4f1c7e9b10")
    );
}

#[test]
fn collected_data_updated() {
    let Event::CollectedDataUpdated(d) = typed("collected_data_updated.json") else {
        panic!("not typed")
    };
    assert!(d.old_data.is_some_and(|v| v.is_object()));
    assert!(d.new_data.is_some_and(|v| v.is_object()));
}

#[test]
fn manual_action_required() {
    let Event::ManualActionRequired(d) = typed("manual_action_required.json") else {
        panic!("not typed")
    };
    assert_eq!(d.actions.len(), 1);
    let action = &d.actions[0];
    assert_eq!(action.action_type.as_deref(), Some("COMPLETE_TASK"));
    assert_eq!(action.applications[0].status.as_deref(), Some("IN_REVIEW"));
    let task = action.task.as_ref().unwrap();
    assert_eq!(task.task_type.as_deref(), Some("VERIFY_IDENTITY"));
    assert_eq!(task.state.as_deref(), Some("INCOMPLETE"));
}

#[test]
fn product_badge_changed() {
    let Event::ProductBadgeChanged(d) = typed("product_badge_changed.json") else {
        panic!("not typed")
    };
    assert_eq!(d.new_flag.as_deref(), Some("READY_FOR_DECISION"));
    assert!(d.other.is_empty(), "{:?}", d.other);
}

#[test]
fn risk_level_changed() {
    let Event::RiskLevelChanged(d) = typed("risk_level_changed.json") else {
        panic!("not typed")
    };
    assert_eq!(d.new_risk_level.as_deref(), Some("HIGH"));
    assert!(d.other.is_empty(), "{:?}", d.other);
}

#[test]
fn task_state_changed() {
    let Event::TaskStateChanged(d) = typed("task_state_changed.json") else {
        panic!("not typed")
    };
    assert_eq!(d.new_state.as_deref(), Some("COMPLETED_PASS"));
    assert_eq!(
        d.task.unwrap().variant.unwrap().alias.as_deref(),
        Some("verify_identity_default")
    );
}

#[test]
fn form_state_changed() {
    let Event::FormStateChanged(d) = typed("form_state_changed.json") else {
        panic!("not typed")
    };
    assert_eq!(d.new_state.as_deref(), Some("SUBMITTED"));
    assert_eq!(d.form.unwrap().alias.as_deref(), Some("source_of_funds"));
}

#[test]
fn profile_status_changed() {
    let Event::ProfileStatusChanged(d) = typed("profile_status_changed.json") else {
        panic!("not typed")
    };
    assert_eq!(d.new_status.as_deref(), Some("SUSPENDED"));
}

#[test]
fn task_is_complete_changed() {
    let Event::TaskIsCompleteChanged(d) = typed("task_is_complete_changed.json") else {
        panic!("not typed")
    };
    assert_eq!(d.is_complete, Some(true));
    assert_eq!(
        d.task.unwrap().task_type.as_deref(),
        Some("VERIFY_IDENTITY")
    );
}

#[test]
fn collection_steps_completed() {
    let Event::CollectionStepsCompleted(d) = typed("collection_steps_completed.json") else {
        panic!("not typed")
    };
    assert_eq!(
        d.application_id.as_deref(),
        Some("b7d1e6a4-3c2f-4e8a-9d1b-5f6a7c8e9d01")
    );
}

#[test]
fn unknown_event_is_unknown_with_its_raw_data() {
    let raw = fixture("unknown_event.json");
    match typed("unknown_event.json") {
        Event::Unknown { event, raw: data } => {
            assert_eq!(event, "APPLICANT_PORTAL_VISITED");
            assert_eq!(data, raw["data"]);
        }
        other => panic!("expected Unknown, got {other:?}"),
    }
}

#[test]
fn the_batch_fixture_verifies_as_an_array() {
    let body = fixture("batch.json").to_string();
    let secrets = SecretSet::single(FIXTURE_SECRET).unwrap();
    let header = format!("Bearer {FIXTURE_SECRET}");
    let batch = Batch::verify(&secrets, Some(header.as_bytes()), body.as_bytes()).unwrap();
    assert_eq!(batch.shape(), passfort_receiver::Shape::Array);
    assert_eq!(batch.len(), 3);
    assert!(batch.webhooks().iter().all(|w| !w.event().is_unknown()));
}

#[tokio::test]
async fn every_fixture_is_accepted_stored_without_secret_and_handed_on() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_in(dir.path(), "fixtures").await;
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(FIXTURE_SECRET).unwrap())
        .shared_store(store.clone())
        .build()
        .unwrap();
    let url = format!(
        "http://{}/webhooks/passfort",
        serve(receiver.router()).await
    );
    let mut names: Vec<_> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let mut expected: Vec<Value> = Vec::new();
    for name in &names {
        let body = fixture(name);
        let response = post(&url, Some(FIXTURE_SECRET), body.to_string()).await;
        assert_eq!(response.status(), 200, "{name}");
        let elements = match body {
            Value::Array(items) => items,
            one => vec![one],
        };
        for mut element in elements {
            element.as_object_mut().unwrap().remove("secret");
            expected.push(element);
        }
    }
    let handler = RecordingHandler::new();
    let worker = Worker::builder()
        .receiver(&receiver)
        .handler(handler.clone())
        .build()
        .unwrap();
    let drained = worker.run_until_idle().await.unwrap();
    assert_eq!(drained.done, expected.len());
    let handed: Vec<Value> = handler
        .handled()
        .iter()
        .map(|j| j.webhook.to_json())
        .collect();
    assert_eq!(
        handed, expected,
        "handed on as received minus secret, in arrival order"
    );
    for entry in store.entries().await.unwrap() {
        assert!(!entry.webhook.to_json_string().contains(FIXTURE_SECRET));
    }
}

#[test]
fn the_newer_events_are_known_by_name_with_their_data_as_sent() {
    for (name, event) in [
        ("task_created.json", "TASK_CREATED"),
        ("risk_score_changed.json", "RISK_SCORE_CHANGED"),
        ("customer_request_changed.json", "CUSTOMER_REQUEST_CHANGED"),
        ("events_created.json", "EVENTS_CREATED"),
        ("events_updated.json", "EVENTS_UPDATED"),
    ] {
        let raw = fixture(name);
        let typed = typed(name);
        assert!(!typed.is_unknown(), "{name}: {typed:?}");
        assert_eq!(typed.name(), event);
        let data = match typed {
            Event::TaskCreated(d) => d.0,
            Event::RiskScoreChanged(d) => d.0,
            Event::CustomerRequestChanged(d) => d.0,
            Event::EventsCreated(d) => d.0,
            Event::EventsUpdated(d) => d.0,
            other => panic!("{name} read as {other:?}"),
        };
        assert_eq!(data, raw["data"], "{name}: data kept raw");
    }
    // COLLECTED_DATA_CHANGED is read with COLLECTED_DATA_UPDATED's shape.
    let Event::CollectedDataChanged(d) = typed("collected_data_changed.json") else {
        panic!("not typed")
    };
    assert!(d.old_data.is_some() && d.new_data.is_some());
}

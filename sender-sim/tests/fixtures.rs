//! The generator's webhooks have the shape of the golden fixtures in `tests/fixtures/`: same keys
//! at every level, same JSON types (values differ, of course).

mod common;

use std::time::Duration;

use common::*;
use passfort_sender_sim::prelude::*;
use serde_json::Value;

#[test]
fn every_spec_event_type_has_a_fixture_and_the_generator_matches_its_shape() {
    let mut generator = Generator::new(11);
    let at = VirtualClock::new().now();
    for event in EventType::KNOWN {
        let fixture = fixture_for(&event);
        assert_eq!(fixture["event"], event.as_str());
        // Many samples, so every random branch (null user, no customer_ref…) is compared.
        for _ in 0..50 {
            let webhook = generator.webhook(event.clone(), at);
            assert_same_shape(&fixture, &webhook.to_json("fixture-shared-secret"));
        }
    }
}

#[test]
fn lifecycle_webhooks_match_their_fixtures_too() {
    let mut generator = Generator::new(12);
    let mix = generator.mix(2_000, VirtualClock::new().now());
    let mut seen = std::collections::BTreeSet::new();
    for webhook in &mix {
        assert_same_shape(&fixture_for(&webhook.event), &webhook.to_json("s"));
        seen.insert(webhook.event.clone());
    }
    // A lifecycle touches every non-deprecated event type and, now and then, deprecated ones.
    for event in EventType::KNOWN {
        assert!(
            seen.contains(&event),
            "{event} never generated in 2000 webhooks"
        );
    }
}

#[test]
fn nullable_fields_are_sometimes_null_and_sometimes_not() {
    let mut generator = Generator::new(13);
    let at = VirtualClock::new().now();
    let samples: Vec<Value> = (0..200)
        .map(|_| generator.webhook(EventType::ProductStatusChanged, at).data)
        .collect();
    assert!(samples.iter().any(|d| d["customer_ref"].is_null()));
    assert!(samples.iter().any(|d| d["customer_ref"].is_string()));
    assert!(samples.iter().any(|d| d["user"].is_null()));
    assert!(samples.iter().any(|d| d["user"].is_object()));
    // Where the fixture has a value, a non-null generated value has its exact shape.
    let fixture = fixture_for(&EventType::ProductStatusChanged);
    let with_user = samples.iter().find(|d| d["user"].is_object()).unwrap();
    assert_same_shape(&fixture["data"]["user"], &with_user["user"]);
}

#[test]
fn unknown_events_carry_custom_data_verbatim() {
    let fixture = fixture("unknown_event.json");
    let mut generator = Generator::new(14);
    let event = EventType::parse(fixture["event"].as_str().unwrap());
    assert_eq!(event, EventType::Other("APPLICANT_PORTAL_VISITED".into()));
    let at = VirtualClock::new().now();
    let webhook = generator.webhook_with_data(event.clone(), at, fixture["data"].clone());
    let json = webhook.to_json("fixture-shared-secret");
    assert_same_shape(&fixture, &json);
    assert_eq!(json["data"], fixture["data"]);
    // Without custom data an unknown event still carries the keys every event has.
    let generated = generator.webhook(event, at);
    assert!(generated.data["profile_id"].is_string());
    assert!(generated.data.get("customer_ref").is_some());
}

#[test]
fn ids_are_uuid_v1_whose_time_is_the_timestamp_like_the_fixtures() {
    for name in ["check_completed.json", "product_status_changed.json"] {
        let fixture = fixture(name);
        let id: uuid::Uuid = fixture["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(id.get_version_num(), 1);
        let (secs, _) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, fixture["timestamp"].as_u64().unwrap());
    }
    let mut generator = Generator::new(15);
    let at = VirtualClock::new().now();
    let many = generator.mix(500, at);
    let mut ids = std::collections::HashSet::new();
    for webhook in &many {
        assert_eq!(
            uuid::Uuid::parse_str(&webhook.id)
                .unwrap()
                .get_version_num(),
            1
        );
        assert_eq!(webhook.id_unix_seconds(), Some(webhook.timestamp));
        assert!(ids.insert(webhook.id.clone()), "ids are unique");
        assert!(webhook.timestamp <= passfort_sender_sim::event::unix_seconds(at));
    }
}

#[tokio::test]
async fn a_batched_body_has_the_shape_of_the_batch_fixture() {
    let batch = fixture("batch.json");
    let batch = batch.as_array().unwrap();
    let recorder = Recorder::new();
    let clock = VirtualClock::new();
    let engine = Engine::new(settings().batched(), clock.clone(), recorder.transport()).unwrap();
    let mut generator = Generator::new(16);
    for item in batch {
        let event = EventType::parse(item["event"].as_str().unwrap());
        engine.enqueue(generator.webhook(event, clock.now()));
    }
    engine.run_until_empty(Duration::from_secs(60)).await;
    let seen = recorder.seen();
    assert_eq!(seen.len(), 1, "three webhooks, one batch");
    let body = seen[0].json();
    let body = body.as_array().unwrap();
    assert_eq!(body.len(), batch.len());
    for (expected, actual) in batch.iter().zip(body) {
        assert_same_shape(expected, actual);
        assert_eq!(actual["secret"], SECRET, "each envelope carries the secret");
    }
}

#[test]
fn the_shape_comparison_can_fail() {
    let fixture = fixture_for(&EventType::CheckCompleted);
    let mut wrong = fixture.clone();
    wrong["data"]["check"]["extra"] = Value::from(1);
    assert!(same_shape("$", &fixture, &wrong).is_err());
    let mut wrong = fixture.clone();
    wrong["timestamp"] = Value::from("1643813836");
    assert!(same_shape("$", &fixture, &wrong).is_err());
}

#[test]
fn each_profile_lives_a_plausible_life_in_trigger_order() {
    let mut generator = Generator::new(17);
    let mix = generator.mix(3_000, VirtualClock::new().now());
    assert!(mix.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    let mut statuses: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for webhook in &mix {
        if webhook.event == EventType::ProductStatusChanged {
            statuses
                .entry(webhook.data["profile_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(webhook.data["new_status"].as_str().unwrap().to_owned());
        }
    }
    let mut decided = 0;
    for (profile, seen) in &statuses {
        // The mix may cut the last lifecycles short, but never reorders one.
        let expected = ["APPLIED", "IN_REVIEW"];
        for (got, want) in seen.iter().zip(expected) {
            assert_eq!(got, want, "profile {profile}: {seen:?}");
        }
        if seen.len() == 3 {
            assert!(seen[2] == "APPROVED" || seen[2] == "REJECTED", "{seen:?}");
            decided += 1;
        }
        assert!(seen.len() <= 3);
    }
    assert!(decided > 100);
}

#[test]
fn ids_can_be_random_uuids_instead() {
    use passfort_sender_sim::IdStyle;
    let at = VirtualClock::new().now();
    let mut generator = Generator::new(18).with_id_style(IdStyle::V4);
    let webhooks = generator.mix(50, at);
    assert!(webhooks
        .iter()
        .all(|w| uuid::Uuid::parse_str(&w.id).unwrap().get_version_num() == 4));
    let again = Generator::new(18).with_id_style(IdStyle::V4).mix(50, at);
    assert_eq!(webhooks, again, "still seeded");
}

#[test]
fn ids_can_be_opaque_strings_that_are_no_uuid_and_in_no_order() {
    use passfort_sender_sim::IdStyle;
    let at = VirtualClock::new().now();
    let webhooks = Generator::new(19)
        .with_id_style(IdStyle::Opaque)
        .mix(500, at);
    let ids: Vec<&str> = webhooks.iter().map(|w| w.id.as_str()).collect();
    assert!(
        ids.iter().all(|id| uuid::Uuid::parse_str(id).is_err()),
        "{ids:?}"
    );
    let unique: std::collections::HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "ids are unique");
    let lengths: std::collections::HashSet<usize> = ids.iter().map(|id| id.len()).collect();
    assert!(lengths.len() > 10, "lengths vary: {lengths:?}");
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_ne!(sorted, ids, "text order is not send order");
    let again = Generator::new(19)
        .with_id_style(IdStyle::Opaque)
        .mix(500, at);
    assert_eq!(webhooks, again, "still seeded");
}

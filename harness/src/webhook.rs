//! The webhooks the harness sends: PassFort envelopes (spec §2) with fresh ids.
//!
//! Every id is new for each run (the observe file outlives runs, and a scenario only looks at the
//! ids it sent). By default it is a version-1 UUID whose embedded time is the `timestamp`, as
//! PassFort's samples look; with `--id-style opaque` it is no UUID at all (spec §2: ids are
//! opaque). Either way text order is not send order, which catches a receiver that sorts by id.

use std::sync::Mutex;
use std::time::SystemTime;

use passfort_sender_sim::{EventType, Generator, IdStyle};
use serde_json::{json, Value};

use crate::target::Secret;

/// Every event type the spec names (§2, "Event types"), confirmed and inferred, as the
/// simulator knows them.
pub fn event_types() -> Vec<EventType> {
    EventType::KNOWN.to_vec()
}

/// The `id` of a webhook built here (empty for anything else).
pub fn id_of(webhook: &Value) -> String {
    webhook
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The ids of a batch, in order.
pub fn ids_of(batch: &[Value]) -> Vec<String> {
    batch.iter().map(id_of).collect()
}

/// A batch body: PassFort's batched request is inferred to be a JSON array of envelopes (§3).
pub fn batch_body(batch: &[Value]) -> Value {
    Value::Array(batch.to_vec())
}

/// Makes fresh, realistic webhooks carrying the shared secret in their body.
///
/// The data comes from the simulator's generator (`passfort-sender-sim`), so the harness sends
/// what the simulator sends; this type adds the secret, fresh seeds and a round-robin over the
/// event types.
#[derive(Debug)]
pub struct Webhooks {
    secret: Secret,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    generator: Generator,
    next_event: usize,
}

impl Webhooks {
    /// A generator whose ids differ from every earlier run's.
    pub fn new(secret: Secret) -> Self {
        Self::seeded(secret, rand::random())
    }

    /// A generator whose output depends only on `seed` (ids included).
    pub fn seeded(secret: Secret, seed: u64) -> Self {
        Self::with_id_style(secret, seed, IdStyle::default())
    }

    /// A generator whose ids look as `style` says: PassFort's ids are opaque (spec §2), so a
    /// run with [`IdStyle::Opaque`] shows that the target assumes no UUID and no order in them.
    pub fn with_id_style(secret: Secret, seed: u64, style: IdStyle) -> Self {
        Self {
            secret,
            state: Mutex::new(State {
                generator: Generator::new(seed).with_id_style(style),
                next_event: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One webhook of `event`, with data shaped as the spec describes for it.
    pub fn of(&self, event: &EventType) -> Value {
        let webhook = self
            .state()
            .generator
            .webhook(event.clone(), SystemTime::now());
        webhook.to_json(self.secret.expose())
    }

    /// One webhook of the next event type in turn.
    pub fn single(&self) -> Value {
        let event = {
            let mut state = self.state();
            let event = EventType::KNOWN[state.next_event % EventType::KNOWN.len()].clone();
            state.next_event += 1;
            event
        };
        self.of(&event)
    }

    /// One webhook of every event type of the spec.
    pub fn every_event_type(&self) -> Vec<Value> {
        EventType::KNOWN
            .iter()
            .map(|event| self.of(event))
            .collect()
    }

    /// `size` webhooks of mixed event types, in queue order.
    pub fn batch(&self, size: usize) -> Vec<Value> {
        (0..size).map(|_| self.single()).collect()
    }

    /// A webhook whose `event` no version of the spec names, with `data` of unusual shape: what a
    /// receiver meets when PassFort adds an event (spec §2: the set is open).
    pub fn unknown(&self) -> Value {
        let data = json!({
            "profile_id": uuid::Uuid::new_v4(),
            "customer_ref": null,
            "request": {"id": uuid::Uuid::new_v4(), "state": ["OPEN", {"since": 1_643_813_829_u64}]},
            "score": 0.73,
            "tags": [],
            "nested": {"deeper": {"deepest": null}},
        });
        let webhook = self.state().generator.webhook_with_data(
            EventType::Other(UNKNOWN_EVENT.to_owned()),
            SystemTime::now(),
            data,
        );
        webhook.to_json(self.secret.expose())
    }
}

/// The `event` string of [`Webhooks::unknown`]: like `CUSTOMER_REQUEST_CHANGED`, which newer
/// PassFort pages list (spec §2), but with a suffix that keeps it unknown to any real receiver.
pub const UNKNOWN_EVENT: &str = "CUSTOMER_REQUEST_CHANGED_V9";

#[cfg(test)]
mod tests {
    use super::*;

    fn webhooks() -> Webhooks {
        Webhooks::seeded(Secret::new("s3cr3t").unwrap(), 7)
    }

    #[test]
    fn every_event_type_has_the_envelope_of_the_spec() {
        for webhook in webhooks().every_event_type() {
            let id = uuid::Uuid::parse_str(&id_of(&webhook)).unwrap();
            assert_eq!(id.get_version_num(), 1);
            let (secs, _) = id.get_timestamp().unwrap().to_unix();
            assert_eq!(Some(secs), webhook["timestamp"].as_u64());
            assert_eq!(webhook["secret"], "s3cr3t");
            assert!(webhook["data"]["profile_id"].is_string());
            assert!(webhook["data"].get("customer_ref").is_some());
        }
    }

    #[test]
    fn ids_never_repeat() {
        let webhooks = webhooks();
        let ids = ids_of(&webhooks.batch(5_000));
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn a_batch_mixes_event_types_in_turn() {
        let batch = webhooks().batch(EventType::KNOWN.len());
        let events: Vec<&str> = batch.iter().map(|w| w["event"].as_str().unwrap()).collect();
        let known: Vec<&str> = EventType::KNOWN.iter().map(EventType::as_str).collect();
        assert_eq!(events, known);
        assert_eq!(known.len(), 17);
    }

    #[test]
    fn the_unknown_event_is_none_of_the_spec() {
        let unknown = webhooks().unknown();
        let event = unknown["event"].as_str().unwrap();
        assert!(!EventType::KNOWN.iter().any(|known| known.as_str() == event));
        assert_eq!(unknown["secret"], "s3cr3t");
    }
}

//! The Trigger form, `POST /api/events`: stands in for activity on profiles in PassFort. Either
//! `count` webhooks of one event type (generated `data`, or the caller's), or `count` profiles
//! going through a realistic lifecycle (7 to 15 webhooks each, in trigger order).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::check_event_name;
use crate::account::AccountSettings;
use crate::event::{EventType, Generator, Webhook};

/// The `event` value that asks for whole profile lifecycles.
pub const LIFECYCLE: &str = "lifecycle";

/// Most webhooks of one event type per trigger.
pub const MAX_COUNT: u32 = 1000;

/// Most profile lifecycles per trigger.
pub const MAX_LIFECYCLES: u32 = 100;

/// A `POST /api/events` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// An event string, or [`LIFECYCLE`].
    pub event: String,
    /// How many webhooks (or lifecycles); 1 when left out.
    #[serde(default = "one")]
    pub count: u32,
    /// The `data` of every webhook, instead of generated data (one event type only).
    #[serde(default)]
    pub data: Option<Value>,
}

fn one() -> u32 {
    1
}

/// A checked trigger.
#[derive(Debug, Clone)]
pub enum Plan {
    /// `count` webhooks of one event.
    Event {
        /// The event.
        event: EventType,
        /// How many.
        count: u32,
        /// The caller's `data`, if any.
        data: Option<Value>,
    },
    /// `count` profile lifecycles.
    Lifecycles(u32),
}

impl TriggerRequest {
    /// Reads a request body; the error is the message for a 400.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(
                r#"expected a JSON object like {"event": "CHECK_COMPLETED", "count": 1}"#.into(),
            );
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("invalid trigger: {e}"))?;
        // serde would also read a struct from a positional array: the API takes objects only.
        if !value.is_object() {
            return Err(
                r#"invalid trigger: expected a JSON object like {"event": "CHECK_COMPLETED", "count": 1}"#
                    .into(),
            );
        }
        serde_json::from_value(value).map_err(|e| format!("invalid trigger: {e}"))
    }

    /// Checks the request; the error is the message for a 400.
    pub fn validate(&self) -> Result<Plan, String> {
        if self.event == LIFECYCLE {
            if self.data.is_some() {
                return Err(
                    "custom data needs one event type, not \"lifecycle\": a lifecycle \
                            generates each event's data"
                        .into(),
                );
            }
            if !(1..=MAX_LIFECYCLES).contains(&self.count) {
                return Err(format!(
                    "count must be between 1 and {MAX_LIFECYCLES} lifecycles, got {}",
                    self.count
                ));
            }
            return Ok(Plan::Lifecycles(self.count));
        }
        check_event_name(&self.event)
            .map_err(|e| format!("{e}, or \"{LIFECYCLE}\" for a realistic profile lifecycle"))?;
        if !(1..=MAX_COUNT).contains(&self.count) {
            return Err(format!(
                "count must be between 1 and {MAX_COUNT}, got {}",
                self.count
            ));
        }
        let data = match &self.data {
            None | Some(Value::Null) => None,
            Some(Value::Object(_)) => self.data.clone(),
            Some(other) => {
                return Err(format!(
                    "data must be a JSON object (the webhook's \"data\"), got {}",
                    kind(other)
                ))
            }
        };
        Ok(Plan::Event {
            event: EventType::parse(&self.event),
            count: self.count,
            data,
        })
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Plan {
    /// The webhooks, in trigger order, all triggered at `at`.
    pub fn webhooks(&self, generator: &mut Generator, at: SystemTime) -> Vec<Webhook> {
        match self {
            Plan::Event {
                event,
                count,
                data: Some(data),
            } => (0..*count)
                .map(|_| generator.webhook_with_data(event.clone(), at, data.clone()))
                .collect(),
            Plan::Event {
                event,
                count,
                data: None,
            } => generator.many(event, *count as usize, at),
            Plan::Lifecycles(count) => (0..*count)
                .flat_map(|_| generator.lifecycle_events())
                .collect::<Vec<_>>()
                .into_iter()
                .map(|(_, event, data)| generator.webhook_with_data(event, at, data))
                .collect(),
        }
    }
}

/// The answer to a trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triggered {
    /// How many webhooks were queued.
    pub queued: usize,
    /// How many were not, because webhooks are disabled or their event is not enabled.
    pub not_queued: usize,
    /// Why some were not queued, for people.
    pub reason: Option<String>,
    /// The ids queued, in queue order.
    pub webhook_ids: Vec<String>,
}

/// Splits `webhooks` into those PassFort would queue under `settings` and an account of the
/// rest.
pub fn admit(settings: &AccountSettings, webhooks: Vec<Webhook>) -> (Vec<Webhook>, Triggered) {
    let total = webhooks.len();
    if !settings.enabled {
        return (
            Vec::new(),
            Triggered {
                queued: 0,
                not_queued: total,
                reason: Some(
                    "webhooks are disabled: PassFort queues nothing until they are enabled".into(),
                ),
                webhook_ids: Vec::new(),
            },
        );
    }
    let (accepted, skipped): (Vec<Webhook>, Vec<Webhook>) = webhooks
        .into_iter()
        .partition(|w| settings.enabled_events.contains(&w.event));
    let reason = if skipped.is_empty() {
        None
    } else {
        let mut names: Vec<&str> = skipped.iter().map(|w| w.event.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        Some(format!(
            "not among the enabled events: {}",
            names.join(", ")
        ))
    };
    let triggered = Triggered {
        queued: accepted.len(),
        not_queued: skipped.len(),
        reason,
        webhook_ids: accepted.iter().map(|w| w.id.clone()).collect(),
    };
    (accepted, triggered)
}

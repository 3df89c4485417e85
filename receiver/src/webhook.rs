//! One PassFort webhook, as stored and handed on: the envelope PassFort sent, minus `secret`.
//!
//! A [`Webhook`] keeps everything PassFort sent except the shared secret: the envelope fields
//! (`id`, `event`, `timestamp`, `data`) and, in [`Webhook::extra`], any top-level field PassFort
//! may add one day. Its JSON form ([`Webhook::to_json`], and its `Serialize` impl) is what the
//! store keeps and what the built-in sinks write. The typed reading of `event` and `data` is
//! [`Webhook::event`], which never fails: an event or a `data` shape this library does not know
//! is [`Event::Unknown`] with the raw JSON.

pub use crate::event::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body field that carries PassFort's shared secret; removed before anything is stored.
pub const SECRET_FIELD: &str = "secret";

/// A webhook as stored: PassFort's envelope with the secret removed.
///
/// `id` is a UUID (version 1 in PassFort's samples) and is **not** sortable: order is the order
/// of arrival, kept by the store. `timestamp` is Unix seconds when PassFort sent an integer.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// PassFort's id of this webhook; the key for deduplication.
    pub id: String,
    /// The event name, e.g. `CHECK_COMPLETED`; an open set (see [`Event`]).
    pub event: String,
    /// Unix seconds, when the webhook carried an integer `timestamp`.
    pub timestamp: Option<i64>,
    /// The event's payload as sent (`null` when absent).
    pub data: Value,
    /// Every other top-level field as sent (never `secret`), including a `timestamp` that was
    /// not an integer, so that nothing PassFort sends is lost.
    pub extra: Map<String, Value>,
}

/// Why a JSON value is not a webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The value is not a JSON object.
    #[error("a webhook must be a JSON object")]
    NotAnObject,
    /// `id` is absent or not a string.
    #[error("a webhook must have a string `id`")]
    MissingId,
    /// `event` is absent or not a string.
    #[error("a webhook must have a string `event`")]
    MissingEvent,
    /// Stored text could not be read back (only when reading a store).
    #[error("stored webhook is not valid JSON: {0}")]
    Stored(String),
}

impl Webhook {
    /// A webhook with the given envelope and no extra fields.
    pub fn new(
        id: impl Into<String>,
        event: impl Into<String>,
        timestamp: Option<i64>,
        data: Value,
    ) -> Self {
        Self {
            id: id.into(),
            event: event.into(),
            timestamp,
            data,
            extra: Map::new(),
        }
    }

    /// Reads a webhook from one JSON object as PassFort sent it, dropping `secret`.
    ///
    /// Only `id` and `event` are required (strings); everything else is kept as it came.
    pub fn from_json(value: Value) -> Result<Self, WebhookError> {
        let Value::Object(mut object) = value else {
            return Err(WebhookError::NotAnObject);
        };
        object.remove(SECRET_FIELD);
        let id = match object.remove("id") {
            Some(Value::String(id)) => id,
            _ => return Err(WebhookError::MissingId),
        };
        let event = match object.remove("event") {
            Some(Value::String(event)) => event,
            _ => return Err(WebhookError::MissingEvent),
        };
        let timestamp = match object.get("timestamp") {
            Some(Value::Number(n)) if n.is_i64() => {
                let t = n.as_i64();
                object.remove("timestamp");
                t
            }
            Some(Value::Null) => {
                object.remove("timestamp");
                None
            }
            _ => None,
        };
        let data = object.remove("data").unwrap_or(Value::Null);
        Ok(Self {
            id,
            event,
            timestamp,
            data,
            extra: object,
        })
    }

    /// Reads a webhook back from the text a store kept ([`Webhook::to_json_string`]).
    pub fn from_stored(text: &str) -> Result<Self, WebhookError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| WebhookError::Stored(e.to_string()))?;
        Self::from_json(value)
    }

    /// The webhook object as received minus `secret`: keys `id`, `event`, `timestamp` (`null`
    /// when absent), `data`, and any extra field PassFort sent.
    pub fn to_json(&self) -> Value {
        let mut object = self.extra.clone();
        object.remove(SECRET_FIELD);
        object.insert("id".into(), Value::String(self.id.clone()));
        object.insert("event".into(), Value::String(self.event.clone()));
        match self.timestamp {
            Some(t) => {
                object.insert("timestamp".into(), Value::from(t));
            }
            None => {
                object.entry("timestamp").or_insert(Value::Null);
            }
        }
        object.insert("data".into(), self.data.clone());
        Value::Object(object)
    }

    /// [`Webhook::to_json`] as compact text: one line, what `stdout` and `jsonl:` sinks write.
    pub fn to_json_string(&self) -> String {
        self.to_json().to_string()
    }

    /// The typed reading of this webhook; never fails (see [`Event::Unknown`]).
    pub fn event(&self) -> Event {
        Event::from_parts(&self.event, &self.data)
    }

    /// Whether `other` carries the same content: how a store tells a harmless redelivery from a
    /// conflicting one. Compares JSON values, so key order and number spelling do not matter.
    pub fn same_content(&self, other: &Webhook) -> bool {
        self.to_json() == other.to_json()
    }
}

impl Serialize for Webhook {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Webhook {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_json(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_the_secret_and_keeps_everything_else() {
        let w = Webhook::from_json(json!({
            "id": "a", "event": "CHECK_COMPLETED", "secret": "s", "timestamp": 5,
            "data": {"x": 1}, "region": "eu"
        }))
        .unwrap();
        assert_eq!(w.id, "a");
        assert_eq!(w.timestamp, Some(5));
        assert_eq!(
            w.to_json(),
            json!({"id": "a", "event": "CHECK_COMPLETED", "timestamp": 5, "data": {"x": 1}, "region": "eu"})
        );
        assert!(!w.to_json_string().contains("secret"));
    }

    #[test]
    fn keeps_an_odd_timestamp_as_sent() {
        let w =
            Webhook::from_json(json!({"id": "a", "event": "E", "timestamp": "yesterday"})).unwrap();
        assert_eq!(w.timestamp, None);
        assert_eq!(w.to_json()["timestamp"], json!("yesterday"));
        let back = Webhook::from_stored(&w.to_json_string()).unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn requires_string_id_and_event() {
        assert_eq!(
            Webhook::from_json(json!([])),
            Err(WebhookError::NotAnObject)
        );
        assert_eq!(
            Webhook::from_json(json!({"event": "E"})),
            Err(WebhookError::MissingId)
        );
        assert_eq!(
            Webhook::from_json(json!({"id": 7, "event": "E"})),
            Err(WebhookError::MissingId)
        );
        assert_eq!(
            Webhook::from_json(json!({"id": "a"})),
            Err(WebhookError::MissingEvent)
        );
    }

    #[test]
    fn same_content_ignores_key_order() {
        let a = Webhook::from_stored(r#"{"id":"a","event":"E","data":{"p":1,"q":2}}"#).unwrap();
        let b = Webhook::from_stored(r#"{"data":{"q":2,"p":1},"event":"E","id":"a"}"#).unwrap();
        let c = Webhook::from_stored(r#"{"id":"a","event":"E","data":{"p":1,"q":3}}"#).unwrap();
        assert!(a.same_content(&b));
        assert!(!a.same_content(&c));
    }
}

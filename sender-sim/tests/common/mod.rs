//! Helpers shared by the integration tests: a recording in-process receiver, fixture loading and
//! the JSON shape comparison.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::StatusCode;
use passfort_sender_sim::prelude::*;
use serde_json::Value;

pub const SECRET: &str = "test-shared-secret";

/// A request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub uri: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The ids in the body, whether it is one envelope or an array.
    pub fn ids(&self) -> Vec<String> {
        match self.json() {
            Value::Array(items) => items
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect(),
            one => vec![one["id"].as_str().unwrap().to_owned()],
        }
    }
}

/// An in-process receiver that records every request and answers with `status` (200 unless
/// changed).
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub status: Arc<Mutex<Option<u16>>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn answer(&self, status: u16) {
        *self.status.lock().unwrap() = Some(status);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn transport(
        &self,
    ) -> FnTransport<
        impl Fn(http::Request<Bytes>) -> Result<Answer, TransportError> + Send + Sync + 'static,
    > {
        let me = self.clone();
        FnTransport(move |request: http::Request<Bytes>| {
            let header = |name| {
                request
                    .headers()
                    .get(name)
                    .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
            };
            me.seen.lock().unwrap().push(Seen {
                method: request.method().clone(),
                uri: request.uri().to_string(),
                authorization: header(http::header::AUTHORIZATION),
                content_type: header(http::header::CONTENT_TYPE),
                body: request.body().clone(),
            });
            let status = me.status.lock().unwrap().unwrap_or(200);
            Ok(Answer::status(StatusCode::from_u16(status).unwrap()))
        })
    }
}

pub fn settings() -> AccountSettings {
    AccountSettings::new(
        "http://receiver.test/webhooks/passfort",
        Secret::new(SECRET),
    )
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures"))
}

pub fn fixture(name: &str) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The fixture file for an event type, by the fixtures' naming convention.
pub fn fixture_for(event: &EventType) -> Value {
    fixture(&format!("{}.json", event.as_str().to_lowercase()))
}

/// Checks that `actual` has the shape of `expected`: the same keys at every level and the same
/// JSON types. `null` on either side matches any type, because the spec makes some fields
/// nullable (`customer_ref`, `user`, `due`). Arrays of the same length compare element by
/// element; otherwise each element must have the shape of the expected array's first element.
pub fn assert_same_shape(expected: &Value, actual: &Value) {
    if let Err(problem) = same_shape("$", expected, actual) {
        panic!(
            "shape differs: {problem}\nexpected: {}\nactual: {}",
            serde_json::to_string_pretty(expected).unwrap(),
            serde_json::to_string_pretty(actual).unwrap()
        );
    }
}

pub fn same_shape(path: &str, expected: &Value, actual: &Value) -> Result<(), String> {
    match (expected, actual) {
        (Value::Null, _) | (_, Value::Null) => Ok(()),
        (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_)) => Ok(()),
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<_> = e.keys().collect();
            let ak: Vec<_> = a.keys().collect();
            if ek != ak {
                return Err(format!("{path}: keys {ek:?} expected, found {ak:?}"));
            }
            for (key, value) in e {
                same_shape(&format!("{path}.{key}"), value, &a[key])?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                same_shape(&format!("{path}[{i}]"), e, a)?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                for (i, item) in a.iter().enumerate() {
                    same_shape(&format!("{path}[{i}]"), first, item)?;
                }
            }
            Ok(())
        }
        (e, a) => Err(format!("{path}: expected {}, found {}", kind(e), kind(a))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Seconds between consecutive attempts.
pub fn gaps(attempts: &[Attempt]) -> Vec<u64> {
    attempts
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at).unwrap().as_secs())
        .collect()
}

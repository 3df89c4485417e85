//! An account's webhook settings: PassFort's "Webhook config" page, plus every inferred fact of
//! the spec as an explicit setting so tests can try the alternatives.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backoff::BackoffSchedule;
use crate::event::EventType;

/// The shared secret. Its `Debug` never shows the value, so settings can be logged safely.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret read from the environment or a file.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the `Authorization` header and each body's `secret`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which events are queued. Events that are not enabled are never queued at all (PassFort's
/// "Enabled events" multi-select).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EnabledEvents {
    /// Every event, including unknown ones: convenient for tests and the CLI.
    #[default]
    All,
    /// Only these.
    Only(BTreeSet<EventType>),
}

impl EnabledEvents {
    /// Enables exactly `events`.
    pub fn only(events: impl IntoIterator<Item = EventType>) -> Self {
        Self::Only(events.into_iter().collect())
    }

    /// Whether a webhook of `event` would be queued.
    pub fn contains(&self, event: &EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(event),
        }
    }
}

/// How a batched request's body is laid out. Not documented by PassFort: a JSON array of
/// envelopes is the inference (and the default); the alternatives let tests show a receiver is
/// tolerant.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "shape")]
pub enum BatchShape {
    /// `[{envelope}, {envelope}, …]`.
    #[default]
    Array,
    /// `{"<field>": [{envelope}, …]}`, e.g. `{"webhooks": […]}`.
    Wrapped {
        /// The key holding the array.
        field: String,
    },
}

/// Everything the engine needs to know about one account.
///
/// Defaults follow the spec: enabled, `POST` with `application/json`, no batching, array batches of at most 100 about every
/// 0–10 s, answer limits 5 s (batched) / 10 s (unbatched), PassFort's back-off, and the queue
/// kept across a disable (set [`AccountSettings::drop_queue_on_disable`] to show the documented
/// loss).
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// "Webhooks enabled": when off nothing is sent and nothing new is queued.
    pub enabled: bool,
    /// "Shared secret": sent as `Authorization: Bearer` and as each body's `secret`.
    pub secret: Secret,
    /// "Endpoint": the URL requests are sent to.
    pub endpoint: String,
    /// The request method. `POST` is inferred (every public consumer found uses a JSON POST).
    pub method: http::Method,
    /// The `Content-Type` header. `application/json` is inferred.
    pub content_type: String,
    /// "Enabled events".
    pub enabled_events: EnabledEvents,
    /// Batching on or off.
    pub batching: bool,
    /// Body layout of a batched request.
    pub batch_shape: BatchShape,
    /// Most webhooks in one batched request (PassFort: the first 100 of the queue).
    pub max_batch: usize,
    /// Batch cadence: each batch is sent a seeded-random wait in `[0, batch_interval_max]`
    /// after the previous one (PassFort: "approximately every 0-10 seconds").
    pub batch_interval_max: Duration,
    /// Answer limit with batching (PassFort: 5 s).
    pub answer_limit_batched: Duration,
    /// Answer limit without batching (PassFort: 10 s).
    pub answer_limit_unbatched: Duration,
    /// The retry schedule after failed attempts.
    pub backoff: BackoffSchedule,
    /// PassFort warns that disabling then re-enabling webhooks "may result in a loss of
    /// webhooks". When true, re-enabling drops everything that was queued.
    pub drop_queue_on_disable: bool,
    /// Divides back-off waits and the batch cadence (not the answer limits), so a QA run can see
    /// a day of back-off in minutes. Must be finite and > 0; 1.0 is PassFort's own pace.
    pub time_scale: f64,
}

impl AccountSettings {
    /// Settings with the spec's defaults for `endpoint` and `secret`.
    pub fn new(endpoint: impl Into<String>, secret: Secret) -> Self {
        Self {
            enabled: true,
            secret,
            endpoint: endpoint.into(),
            method: http::Method::POST,
            content_type: "application/json".to_owned(),
            enabled_events: EnabledEvents::All,
            batching: false,
            batch_shape: BatchShape::Array,
            max_batch: 100,
            batch_interval_max: Duration::from_secs(10),
            answer_limit_batched: Duration::from_secs(5),
            answer_limit_unbatched: Duration::from_secs(10),
            backoff: BackoffSchedule::passfort(),
            drop_queue_on_disable: false,
            time_scale: 1.0,
        }
    }

    /// Turns batching on (builder style).
    pub fn batched(mut self) -> Self {
        self.batching = true;
        self
    }

    /// The answer limit that applies to the current batching mode.
    pub fn answer_limit(&self) -> Duration {
        if self.batching {
            self.answer_limit_batched
        } else {
            self.answer_limit_unbatched
        }
    }

    /// `wait` divided by [`AccountSettings::time_scale`] (back-off and cadence only).
    pub fn scaled(&self, wait: Duration) -> Duration {
        if self.time_scale.is_finite() && self.time_scale > 0.0 && self.time_scale != 1.0 {
            // A tiny scale (a slowed-down run) can leave Duration's range: wait "forever"
            // rather than panic.
            Duration::try_from_secs_f64(wait.as_secs_f64() / self.time_scale)
                .unwrap_or(Duration::MAX)
        } else {
            wait
        }
    }
}

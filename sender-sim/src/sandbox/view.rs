//! The status queue as `GET /api/status` answers it: the engine's [`StatusQueue`](crate::status::StatusQueue) in the words
//! of PassFort's page (`Empty` / `Waiting` / `Stalled`), with "how long ago" already worked out
//! on the sandbox's clock, and each recent failure carrying the endpoint's status or error.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::attempt::{format_time, Attempt, Outcome};
use crate::engine::Engine;
use crate::event::EventType;
use crate::sandbox::RefreshReading;
use crate::status::QueueState;

/// The "Queue" line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Nothing waiting.
    Empty,
    /// Waiting to send `waiting` callbacks, none failing.
    Waiting,
    /// Callbacks are not being sent (the head failed, or webhooks are disabled).
    Stalled,
}

/// One of "Recent failures".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureView {
    /// The webhook.
    pub webhook_id: String,
    /// Its event.
    pub event: EventType,
    /// Its `timestamp`.
    pub timestamp: u64,
    /// When its latest attempt failed.
    pub failed_at: String,
    /// How that attempt ended.
    pub outcome: Outcome,
    /// The endpoint's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The error, when it did not answer 200 (connection refused, time-out, the status).
    pub error: Option<String>,
}

/// Counters since the sandbox started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Webhooks queued.
    pub enqueued: u64,
    /// Webhooks delivered.
    pub delivered: u64,
    /// Requests made.
    pub attempts: u64,
    /// Requests that failed.
    pub failed_attempts: u64,
    /// Webhooks lost by disabling and re-enabling webhooks.
    pub dropped: u64,
}

/// `GET /api/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// `Empty`, `Waiting` or `Stalled`.
    pub state: State,
    /// How many webhooks are queued.
    pub waiting: usize,
    /// "Webhooks enabled".
    pub enabled: bool,
    /// When this was taken (sandbox clock, RFC 3339).
    pub as_of: String,
    /// "Last processed": when a callback was last delivered.
    pub last_processed: Option<String>,
    /// Seconds from `last_processed` to `as_of`.
    pub last_processed_ago_seconds: Option<f64>,
    /// "Failed attempts" at the current head.
    pub failed_attempts: u32,
    /// "Stalled": since when the queue has been stalled (the first failed attempt since the last
    /// delivery), while stalled and something failed.
    pub stalled_since: Option<String>,
    /// "Stalled for": seconds from `stalled_since` to `as_of`.
    pub stalled_for_seconds: Option<f64>,
    /// What the Refresh button does here (PassFort's two pages disagree, spec §5).
    pub refresh: RefreshReading,
    /// "Retry": when the head is next sent, while stalled.
    pub next_retry: Option<String>,
    /// Seconds from `as_of` to `next_retry` (0 when due).
    pub next_retry_in_seconds: Option<f64>,
    /// "Recent failures": at most 10, most recent first, only webhooks still waiting.
    pub recent_failures: Vec<FailureView>,
    /// Counters.
    pub totals: Totals,
    /// `--time-scale`: back-off waits and the batch cadence are divided by it.
    pub time_scale: f64,
    /// Why the last save of `--state` failed, if it did.
    pub state_error: Option<String>,
}

fn seconds_between(earlier: SystemTime, later: SystemTime) -> f64 {
    later
        .duration_since(earlier)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The view of `engine`'s status queue; `attempts` (most recent first) supply each failure's
/// status or error.
pub fn status_view(
    engine: &Engine,
    attempts: &[Attempt],
    state_error: Option<String>,
    refresh: RefreshReading,
) -> StatusView {
    let status = engine.status();
    let state = match status.queue {
        QueueState::Empty => State::Empty,
        QueueState::Waiting(_) => State::Waiting,
        QueueState::Stalled => State::Stalled,
    };
    let recent_failures = status
        .recent_failures
        .iter()
        .map(|failure| {
            let attempt = attempts
                .iter()
                .find(|a| !a.outcome.is_delivered() && a.webhook_ids.contains(&failure.webhook_id));
            let (status, error) = match attempt {
                Some(a) => (a.status, a.error.clone()),
                None => (None, Some(failure.reason.clone())),
            };
            FailureView {
                webhook_id: failure.webhook_id.clone(),
                event: failure.event.clone(),
                timestamp: failure.timestamp,
                failed_at: format_time(failure.failed_at),
                outcome: failure.outcome,
                status,
                error,
            }
        })
        .collect();
    // The failures since the last delivery, most recent first: the earliest is when the queue
    // stalled.
    let stalled_since = (state == State::Stalled)
        .then(|| {
            attempts
                .iter()
                .take_while(|attempt| !attempt.outcome.is_delivered())
                .last()
                .map(|attempt| attempt.at)
        })
        .flatten();
    StatusView {
        state,
        stalled_since: stalled_since.map(format_time),
        stalled_for_seconds: stalled_since.map(|at| seconds_between(at, status.as_of)),
        refresh,
        waiting: status.waiting,
        enabled: status.enabled,
        as_of: format_time(status.as_of),
        last_processed: status.last_processed.map(format_time),
        last_processed_ago_seconds: status
            .last_processed
            .map(|at| seconds_between(at, status.as_of)),
        failed_attempts: status.failed_attempts,
        next_retry: status.next_retry.map(format_time),
        next_retry_in_seconds: status
            .next_retry
            .map(|at| seconds_between(status.as_of, at)),
        recent_failures,
        totals: Totals {
            enqueued: status.enqueued,
            delivered: status.delivered,
            attempts: status.attempts,
            failed_attempts: status.failed_attempts_total,
            dropped: status.dropped,
        },
        time_scale: engine.settings().time_scale,
        state_error,
    }
}

//! The status queue as PassFort's "Webhook config" page shows it.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::attempt::{format_time, Outcome};
use crate::event::EventType;

/// The "Queue" line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "waiting")]
pub enum QueueState {
    /// Nothing waiting: webhooks are working as expected.
    Empty,
    /// Waiting to send this many callbacks, none of them failing yet.
    Waiting(usize),
    /// Callbacks are not being sent: the head has failed and is in back-off, or webhooks are
    /// disabled with callbacks queued.
    Stalled,
}

/// One entry of "Recent failures": a webhook that failed and is still waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentFailure {
    /// The webhook's id.
    pub webhook_id: String,
    /// Its event.
    pub event: EventType,
    /// Its `timestamp`.
    pub timestamp: u64,
    /// When its latest attempt failed.
    #[serde(with = "crate::attempt::rfc3339")]
    pub failed_at: SystemTime,
    /// How that attempt ended.
    pub outcome: Outcome,
    /// The status or error, for people.
    pub reason: String,
}

/// A snapshot of the status queue, taken at `as_of`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusQueue {
    /// When the snapshot was taken (engine clock).
    #[serde(with = "crate::attempt::rfc3339")]
    pub as_of: SystemTime,
    /// "Queue".
    pub queue: QueueState,
    /// How many webhooks are queued.
    pub waiting: usize,
    /// "Webhooks enabled".
    pub enabled: bool,
    /// "Last processed": when a callback was last delivered.
    #[serde(with = "crate::attempt::rfc3339_opt")]
    pub last_processed: Option<SystemTime>,
    /// "Failed attempts": consecutive failed attempts at the current head.
    pub failed_attempts: u32,
    /// "Retry": when the head will next be sent, while stalled.
    #[serde(with = "crate::attempt::rfc3339_opt")]
    pub next_retry: Option<SystemTime>,
    /// "Recent failures": at most 10, most recent first, only webhooks still waiting. Cleared by
    /// `refresh()`.
    pub recent_failures: Vec<RecentFailure>,
    /// Webhooks queued since the engine started.
    pub enqueued: u64,
    /// Webhooks delivered (answered 200).
    pub delivered: u64,
    /// Requests made.
    pub attempts: u64,
    /// Requests that failed.
    pub failed_attempts_total: u64,
    /// Webhooks lost by disabling and re-enabling webhooks.
    pub dropped: u64,
}

impl StatusQueue {
    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue == QueueState::Empty
    }
}

fn ago(as_of: SystemTime, then: SystemTime) -> String {
    match as_of.duration_since(then) {
        Ok(d) => format!(
            "{} ago",
            humantime::format_duration(std::time::Duration::from_secs(d.as_secs()))
        ),
        Err(_) => "just now".to_owned(),
    }
}

impl fmt::Display for StatusQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = match self.queue {
            QueueState::Empty => "Empty".to_owned(),
            QueueState::Waiting(n) => format!("waiting to send {n} callbacks"),
            QueueState::Stalled => format!("Stalled ({} callbacks waiting)", self.waiting),
        };
        writeln!(f, "Queue:            {queue}")?;
        if !self.enabled {
            writeln!(f, "Webhooks enabled: no")?;
        }
        match self.last_processed {
            Some(at) => writeln!(f, "Last processed:   {}", ago(self.as_of, at))?,
            None => writeln!(f, "Last processed:   never")?,
        }
        if self.queue == QueueState::Stalled {
            writeln!(f, "Failed attempts:  {}", self.failed_attempts)?;
            if let Some(retry) = self.next_retry {
                let when = match retry.duration_since(self.as_of) {
                    Ok(d) => format!(
                        "in {}",
                        humantime::format_duration(std::time::Duration::from_secs(d.as_secs()))
                    ),
                    Err(_) => "now".to_owned(),
                };
                writeln!(f, "Retry:            {} ({when})", format_time(retry))?;
            }
        }
        if self.recent_failures.is_empty() {
            writeln!(f, "Recent failures:  none")?;
        } else {
            writeln!(f, "Recent failures:")?;
            for failure in &self.recent_failures {
                writeln!(
                    f,
                    "  {} {} failed {}: {}",
                    failure.webhook_id,
                    failure.event,
                    ago(self.as_of, failure.failed_at),
                    failure.reason
                )?;
            }
        }
        write!(
            f,
            "Totals:           {} queued, {} delivered, {} requests ({} failed), {} dropped",
            self.enqueued, self.delivered, self.attempts, self.failed_attempts_total, self.dropped
        )
    }
}

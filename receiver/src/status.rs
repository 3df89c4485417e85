//! The status report: PassFort's "status queue", seen from the receiving side.
//!
//! Served as JSON on the admin address (`GET /status`) and printed by
//! `passfort-receiver status`.

use crate::store::QueueStatus;
use serde::Serialize;
use std::fmt;
use std::time::SystemTime;

/// The queue in one word, like PassFort's own status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    /// Nothing waiting.
    Empty,
    /// Webhooks waiting and the head has not failed.
    Waiting,
    /// The head has failed and waits for a retry.
    Stalled,
}

/// What `/status` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Empty, waiting or stalled.
    pub queue: QueueState,
    /// Seconds since the oldest webhook not yet handed on arrived (0 when none).
    pub processing_lag_seconds: f64,
    /// The store's figures.
    #[serde(flatten)]
    pub status: QueueStatus,
}

impl Report {
    /// The report for `status` as of `now`.
    pub fn new(status: QueueStatus, now: SystemTime) -> Self {
        let queue = if status.queue_depth == 0 {
            QueueState::Empty
        } else if status.next_retry_at.is_some() {
            QueueState::Stalled
        } else {
            QueueState::Waiting
        };
        let processing_lag_seconds = status
            .oldest_pending_since
            .and_then(|since| now.duration_since(since).ok())
            .map(|lag| lag.as_secs_f64())
            .unwrap_or(0.0);
        Self {
            queue,
            processing_lag_seconds,
            status,
        }
    }
}

fn time(t: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_millis(t)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.status;
        let queue = match self.queue {
            QueueState::Empty => "empty".to_owned(),
            QueueState::Waiting => format!("waiting to hand on {}", s.queue_depth),
            QueueState::Stalled => format!("stalled with {} waiting", s.queue_depth),
        };
        writeln!(f, "queue:           {queue}")?;
        if let Some(at) = s.next_retry_at {
            writeln!(f, "next retry:      {}", time(at))?;
        }
        writeln!(f, "processing lag:  {:.3} s", self.processing_lag_seconds)?;
        match &s.last_received {
            Some(m) => writeln!(f, "last received:   {} at {}", m.id, time(m.at))?,
            None => writeln!(f, "last received:   none")?,
        }
        match &s.last_processed {
            Some(m) => writeln!(f, "last processed:  {} at {}", m.id, time(m.at))?,
            None => writeln!(f, "last processed:  none")?,
        }
        writeln!(f, "done:            {}", s.done)?;
        writeln!(f, "dead letters:    {}", s.dead_letters)?;
        if s.recent_failures.is_empty() {
            writeln!(f, "recent failures: none")?;
        } else {
            writeln!(f, "recent failures:")?;
            for failure in &s.recent_failures {
                writeln!(
                    f,
                    "  {} {} {} attempt {}: {}",
                    time(failure.at),
                    failure.id,
                    failure.event,
                    failure.attempt,
                    failure.error
                )?;
            }
        }
        Ok(())
    }
}

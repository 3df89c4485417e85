//! The status report: PassFort's "status queue", seen from the receiving side.
//!
//! Served as JSON on the admin address (`GET /status`) and printed by
//! `passfort-receiver status`.

use crate::retention::RetentionStatus;
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
    /// The head has failed (it waits for a retry, or is being retried) and the webhooks behind
    /// it wait.
    Stalled,
}

/// What `/status` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// When the report was made, on the receiver's clock: "how long ago" is counted from here.
    #[serde(with = "crate::status::time_format")]
    pub as_of: SystemTime,
    /// Empty, waiting or stalled.
    pub queue: QueueState,
    /// Seconds since the oldest webhook not yet handed on arrived (0 when none).
    pub processing_lag_seconds: f64,
    /// The store's figures.
    #[serde(flatten)]
    pub status: QueueStatus,
    /// What is kept and what retention erased (absent when the store does not keep them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionReport>,
    /// Set while the store cannot write (a full disk, a read-only database): requests are
    /// answered 503 until a write succeeds again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_write_failure: Option<WriteFailure>,
}

/// The retention part of `/status`: how much personal data is kept, and what was erased.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetentionReport {
    /// Webhooks stored (with or without their body).
    pub webhooks_stored: u64,
    /// Of those, how many still have their body.
    pub bodies_kept: u64,
    /// Seconds since the oldest webhook that still has its body arrived (0 when none).
    pub oldest_kept_body_age_seconds: f64,
    /// The database's size on disk, in bytes.
    pub database_bytes: u64,
    /// Bodies erased so far (by every process on this database).
    pub bodies_erased_total: u64,
    /// Ids forgotten so far (by every process on this database).
    pub ids_forgotten_total: u64,
}

impl RetentionReport {
    /// The report of `status` as of `now`.
    pub fn new(status: &RetentionStatus, now: SystemTime) -> Self {
        Self {
            webhooks_stored: status.webhooks_stored,
            bodies_kept: status.bodies_kept,
            oldest_kept_body_age_seconds: status.oldest_kept_body_age(now).as_secs_f64(),
            database_bytes: status.database_bytes,
            bodies_erased_total: status.bodies_erased_total,
            ids_forgotten_total: status.ids_forgotten_total,
        }
    }
}

/// The last store write that failed, and since when writes have been failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteFailure {
    /// The store's error (no secret or payload: database errors name the database only).
    pub error: String,
    /// When the first failing write of this outage happened.
    #[serde(serialize_with = "rfc3339")]
    pub since: SystemTime,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&time(*t))
}

impl Report {
    /// The report for `status` as of `now`.
    pub fn new(status: QueueStatus, now: SystemTime) -> Self {
        let queue = if status.queue_depth == 0 {
            QueueState::Empty
        } else if status.stalled_since.is_some() || status.next_retry_at.is_some() {
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
            as_of: now,
            queue,
            processing_lag_seconds,
            status,
            retention: None,
            store_write_failure: None,
        }
    }

    /// Adds the retention figures as of `now`.
    pub fn with_retention(mut self, retention: &RetentionStatus, now: SystemTime) -> Self {
        self.retention = Some(RetentionReport::new(retention, now));
        self
    }

    /// The same report, saying the store cannot write when `failure` is set.
    pub fn with_write_failure(mut self, failure: Option<WriteFailure>) -> Self {
        self.store_write_failure = failure;
        self
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
        if let Some(since) = s.stalled_since {
            writeln!(f, "stalled since:   {}", time(since))?;
        }
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
        if let Some(r) = &self.retention {
            writeln!(
                f,
                "stored:          {} webhooks, {} with their body (oldest {:.0} s old)",
                r.webhooks_stored, r.bodies_kept, r.oldest_kept_body_age_seconds
            )?;
            writeln!(
                f,
                "erased so far:   {} bodies, {} ids forgotten",
                r.bodies_erased_total, r.ids_forgotten_total
            )?;
            writeln!(f, "database size:   {} bytes", r.database_bytes)?;
        }
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

/// RFC 3339 (UTC, milliseconds) in JSON: how status times are shown.
pub(crate) mod time_format {
    use serde::Serializer;
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub mod option {
        use serde::Serializer;
        use std::time::SystemTime;

        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
                None => s.serialize_none(),
            }
        }
    }
}

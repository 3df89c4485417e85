//! Reading a stored webhook row into the store's types, once for every backend.
//!
//! Both stores keep the same columns (see their migrations); only the SQL dialect and the
//! integer width of `attempts` differ. So each backend says how to read a column, and the
//! mapping from columns to [`Entry`], [`DeadLetter`] and [`Webhook`] lives here, where a new
//! field is added once.

use super::{AfterFailure, DeadLetter, Entry, State, StoreError};
use crate::batch::Shape;
use crate::replay::StoredWebhook;
use crate::retention::RetentionStatus;
use crate::webhook::Webhook;
use serde_json::Value;
use sqlx::Row;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a backend's row gives up the columns the shared mappings read.
pub(super) trait StoredRow {
    /// A `BIGINT`/`INTEGER` column.
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn maybe_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A text column.
    fn text(&self, column: &str) -> Result<String, StoreError>;
    /// A nullable text column.
    fn maybe_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    /// An attempt counter (its SQL width differs between backends).
    fn attempts(&self, column: &str) -> Result<u32, StoreError>;
}

impl StoredRow for sqlx::sqlite::SqliteRow {
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn maybe_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: &str) -> Result<String, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn maybe_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn attempts(&self, column: &str) -> Result<u32, StoreError> {
        let n: i64 = self.try_get(column)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

#[cfg(feature = "postgres")]
impl StoredRow for sqlx::postgres::PgRow {
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn maybe_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: &str) -> Result<String, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn maybe_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn attempts(&self, column: &str) -> Result<u32, StoreError> {
        let n: i32 = self.try_get(column)?;
        Ok(u32::try_from(n).unwrap_or(0))
    }
}

/// How a request's body shape is stored.
pub(super) fn shape_name(shape: Shape) -> &'static str {
    match shape {
        Shape::Single => "single",
        Shape::Array => "array",
    }
}

/// The webhook kept in the `body` column.
pub(super) fn webhook_of(row: &impl StoredRow) -> Result<Webhook, StoreError> {
    let body = row.text("body")?;
    Webhook::from_stored(&body).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The webhook of a row that also has `id`, `event` and `body_erased_at_ms`: `None` once
/// retention erased its body.
pub(super) fn kept_webhook_of(row: &impl StoredRow) -> Result<Option<Webhook>, StoreError> {
    if row.maybe_int("body_erased_at_ms")?.is_some() {
        Ok(None)
    } else {
        webhook_of(row).map(Some)
    }
}

/// A row of `SELECT seq, request_seq, position, id, event, body, state, attempts,
/// received_at_ms, processed_at_ms, body_erased_at_ms FROM webhooks`.
pub(super) fn entry_of(row: &impl StoredRow) -> Result<Entry, StoreError> {
    let state = row.text("state")?;
    let webhook = match kept_webhook_of(row)? {
        Some(webhook) => webhook,
        None => Webhook::new(row.text("id")?, row.text("event")?, None, Value::Null),
    };
    Ok(Entry {
        seq: row.int("seq")?,
        request_seq: row.int("request_seq")?,
        position: row.int("position")?,
        webhook,
        state: State::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown state {state:?}")))?,
        attempts: row.attempts("attempts")?,
        received_at: from_millis(row.int("received_at_ms")?),
        processed_at: row.maybe_int("processed_at_ms")?.map(from_millis),
        body_erased_at: row.maybe_int("body_erased_at_ms")?.map(from_millis),
    })
}

/// A row of `SELECT seq, id, event, body, received_at_ms, body_erased_at_ms FROM webhooks`.
pub(super) fn stored_webhook_of(row: &impl StoredRow) -> Result<StoredWebhook, StoreError> {
    Ok(StoredWebhook {
        seq: row.int("seq")?,
        id: row.text("id")?,
        event: row.text("event")?,
        received_at: from_millis(row.int("received_at_ms")?),
        webhook: kept_webhook_of(row)?,
    })
}

/// A row of the retention status query: `stored`, `kept`, `oldest`, `bodies_erased`,
/// `ids_forgotten`; the size on disk is the backend's to measure.
pub(super) fn retention_status_of(
    row: &impl StoredRow,
    database_bytes: u64,
) -> Result<RetentionStatus, StoreError> {
    Ok(RetentionStatus {
        webhooks_stored: count_of(row, "stored")?,
        bodies_kept: count_of(row, "kept")?,
        oldest_kept_body_received_at: row.maybe_int("oldest")?.map(from_millis),
        database_bytes,
        bodies_erased_total: count_of(row, "bodies_erased")?,
        ids_forgotten_total: count_of(row, "ids_forgotten")?,
    })
}

/// Rows of `SELECT seq, request_seq, body_erased_at_ms` about to be forgotten: their positions,
/// their distinct request positions, and how many still had their body.
pub(super) fn forgotten_of(
    rows: &[impl StoredRow],
) -> Result<(Vec<i64>, Vec<i64>, u64), StoreError> {
    let mut seqs = Vec::with_capacity(rows.len());
    let mut requests = Vec::with_capacity(rows.len());
    let mut with_body = 0;
    for row in rows {
        seqs.push(row.int("seq")?);
        requests.push(row.int("request_seq")?);
        if row.maybe_int("body_erased_at_ms")?.is_none() {
            with_body += 1;
        }
    }
    requests.sort_unstable();
    requests.dedup();
    Ok((seqs, requests, with_body))
}

/// The number of rows a count column holds.
pub(super) fn count_of(row: &impl StoredRow, column: &str) -> Result<u64, StoreError> {
    Ok(u64::try_from(row.int(column)?).unwrap_or(0))
}

/// A row of `SELECT seq, id, event, attempts, last_error, received_at_ms, failed_at_ms FROM
/// webhooks WHERE state = 'dead'`.
pub(super) fn dead_letter_of(row: &impl StoredRow) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        seq: row.int("seq")?,
        id: row.text("id")?,
        event: row.text("event")?,
        attempts: row.attempts("attempts")?,
        last_error: row.maybe_text("last_error")?,
        received_at: from_millis(row.int("received_at_ms")?),
        failed_at: row.maybe_int("failed_at_ms")?.map(from_millis),
    })
}

/// What a failed attempt writes: the new state, when to retry (ms) and when it was
/// dead-lettered (ms).
pub(super) fn after_failure(then: AfterFailure, now_ms: i64) -> (State, Option<i64>, Option<i64>) {
    match then {
        AfterFailure::RetryAt(at) => (State::Pending, Some(to_millis(at)), None),
        AfterFailure::DeadLetter => (State::Dead, None, Some(now_ms)),
    }
}

/// The head of the queue as the status reads it, in SQL both backends speak: when it arrived,
/// when it is next retried, and when its current run of failures began (`stalled_since_ms`).
///
/// The head has failed in its current run when it waits pending after an attempt, or is leased
/// again for a second or later one; the run began at its latest first-attempt failure (a
/// retried dead letter starts a new run at attempt 1). A head leased for its first attempt has
/// not failed yet, and a head being retried is still stalled: the state does not flicker to
/// "waiting" during every retry.
pub(super) const HEAD_STATUS_SQL: &str = "\
    SELECT w.received_at_ms, w.next_attempt_at_ms, \
      CASE WHEN (w.state = 'pending' AND w.attempts >= 1) \
             OR (w.state = 'leased' AND w.attempts >= 2) \
      THEN (SELECT f.failed_at_ms FROM failures f \
            WHERE f.webhook_seq = w.seq AND f.attempt = 1 \
            ORDER BY f.seq DESC LIMIT 1) \
      END AS stalled_since_ms \
    FROM webhooks w WHERE w.state IN ('pending', 'leased') ORDER BY w.seq LIMIT 1";

/// What [`HEAD_STATUS_SQL`] found (all `None` when nothing waits).
#[derive(Debug, Default)]
pub(super) struct HeadStatus {
    /// When the head arrived.
    pub oldest_pending_since: Option<SystemTime>,
    /// When it is next retried.
    pub next_retry_at: Option<SystemTime>,
    /// When its current run of failures began.
    pub stalled_since: Option<SystemTime>,
}

/// Reads a row of [`HEAD_STATUS_SQL`].
pub(super) fn head_status(head: Option<&impl StoredRow>) -> Result<HeadStatus, StoreError> {
    let Some(head) = head else {
        return Ok(HeadStatus::default());
    };
    Ok(HeadStatus {
        oldest_pending_since: Some(from_millis(head.int("received_at_ms")?)),
        next_retry_at: head.maybe_int("next_attempt_at_ms")?.map(from_millis),
        stalled_since: head.maybe_int("stalled_since_ms")?.map(from_millis),
    })
}

/// Milliseconds since the Unix epoch: how stores keep times (before 1970 counts as 0).
pub fn to_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The inverse of [`to_millis`].
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

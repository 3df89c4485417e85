//! Handing stored webhooks on again: after a bug in a handler, a range of what was received is
//! replayed to a sink, in arrival order, without touching the queue, its states or the dedup.
//!
//! [`stored_webhooks`] is the library's ordered stream over a [`Range`]; [`replay`] hands
//! that stream to a [`Handler`] and stops at the first failure, saying where, so that a rerun
//! from that id continues. `passfort-receiver replay` and the admin API both call these.
//!
//! Times are the receiver's acknowledgement times (when the webhook was committed), never the
//! webhook's own `timestamp`. Every bound is inclusive. A webhook in the range whose body was
//! erased by retention is listed and skipped: there is nothing left to hand on.

use crate::handler::{Handler, Job};
use crate::store::{Store, StoreError};
use crate::webhook::Webhook;
use futures::future;
use futures::stream::{self, Stream, StreamExt, TryStreamExt};
use serde::Serialize;
use std::time::SystemTime;

/// Stored webhooks read per store query while streaming.
pub const PAGE: u32 = 500;

/// Which stored webhooks: bounds by acknowledgement time and by id (all inclusive), and events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// Acknowledged at or after this.
    pub since: Option<SystemTime>,
    /// Acknowledged at or before this.
    pub until: Option<SystemTime>,
    /// From this webhook id on (it must be stored).
    pub from_id: Option<String>,
    /// Up to this webhook id (it must be stored).
    pub to_id: Option<String>,
    /// Only these events (all when empty).
    pub events: Vec<String>,
}

/// A [`Range`] resolved to arrival positions, as stores read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Positions {
    /// Lowest arrival position (inclusive).
    pub from_seq: Option<i64>,
    /// Highest arrival position (inclusive).
    pub to_seq: Option<i64>,
    /// Acknowledged at or after this.
    pub since: Option<SystemTime>,
    /// Acknowledged at or before this.
    pub until: Option<SystemTime>,
}

/// One stored webhook as a replay sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhook {
    /// Arrival position.
    pub seq: i64,
    /// PassFort's webhook id.
    pub id: String,
    /// The event name.
    pub event: String,
    /// When the receiver acknowledged it.
    pub received_at: SystemTime,
    /// The webhook, unless retention erased its body.
    pub webhook: Option<Webhook>,
}

/// Why a replay could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A `--from-id` / `--to-id` names an id that is not stored (bad usage).
    #[error("no stored webhook has id {0:?}")]
    UnknownId(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Resolves `range`'s ids to positions.
pub async fn positions(store: &dyn Store, range: &Range) -> Result<Positions, ReplayError> {
    let seq_of = |id: Option<String>| async move {
        match id {
            None => Ok(None),
            Some(id) => match store.seq_of(&id).await? {
                Some(seq) => Ok(Some(seq)),
                None => Err(ReplayError::UnknownId(id)),
            },
        }
    };
    Ok(Positions {
        from_seq: seq_of(range.from_id.clone()).await?,
        to_seq: seq_of(range.to_id.clone()).await?,
        since: range.since,
        until: range.until,
    })
}

/// The stored webhooks in `range`, in arrival order, read page by page (erased ones included,
/// with `webhook: None`). Ids that are not stored are an error before anything is streamed.
pub async fn stored_webhooks<'a>(
    store: &'a dyn Store,
    range: &Range,
) -> Result<impl Stream<Item = Result<StoredWebhook, StoreError>> + 'a, ReplayError> {
    let bounds = positions(store, range).await?;
    let events = range.events.clone();
    let pages = stream::try_unfold(Some(i64::MIN), move |after| async move {
        let Some(after) = after else {
            return Ok(None);
        };
        let page = store.stored_page(&bounds, after, PAGE).await?;
        let next = match page.last() {
            Some(last) if page.len() == PAGE as usize => Some(last.seq),
            _ => None,
        };
        Ok::<_, StoreError>(Some((page, next)))
    });
    Ok(pages
        .map_ok(|page| stream::iter(page.into_iter().map(Ok::<_, StoreError>)))
        .try_flatten()
        .try_filter(move |stored| {
            future::ready(events.is_empty() || events.contains(&stored.event))
        }))
}

/// Why a `--since` / `--until` is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 time (e.g. 2026-12-01T09:30:00Z or 2026-12-01T10:30:00+01:00)")]
pub struct BadTime(pub String);

/// Reads an RFC 3339 time: `Z` or a numeric offset (`+01:00`), fractional seconds allowed.
pub fn parse_time(text: &str) -> Result<SystemTime, BadTime> {
    let bad = || BadTime(text.to_owned());
    let text = text.trim();
    if text.ends_with(['Z', 'z']) {
        return humantime::parse_rfc3339_weak(&text[..text.len() - 1]).map_err(|_| bad());
    }
    // A trailing ±HH:MM offset: parse the local part as UTC, then shift by the offset.
    let split = text.len().checked_sub(6).ok_or_else(bad)?;
    let (local, offset) = (text.get(..split).ok_or_else(bad)?, &text[split..]);
    let sign = match offset.as_bytes().first() {
        Some(b'+') => 1i64,
        Some(b'-') => -1,
        _ => return Err(bad()),
    };
    let (hours, minutes) = offset[1..].split_once(':').ok_or_else(bad)?;
    let hours: u64 = hours.parse().map_err(|_| bad())?;
    let minutes: u64 = minutes.parse().map_err(|_| bad())?;
    if hours > 23
        || minutes > 59
        || !local.contains('T') && !local.contains('t') && !local.contains(' ')
    {
        return Err(bad());
    }
    let at = humantime::parse_rfc3339_weak(local).map_err(|_| bad())?;
    let shift = std::time::Duration::from_secs(hours * 3600 + minutes * 60);
    let utc = if sign > 0 {
        at.checked_sub(shift)
    } else {
        at.checked_add(shift)
    };
    utc.ok_or_else(bad)
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Webhooks handed on (or, dry, that would be).
    pub replayed: u64,
    /// Webhooks in the range whose body was erased: `(seq, id, event)`.
    pub skipped: Vec<(i64, String, String)>,
    /// Where the sink failed, if it did: the webhook's id and the error. Nothing after it was
    /// handed on; rerun with `--from-id` that id.
    pub failed: Option<(String, String)>,
}

impl ReplayReport {
    /// Whether everything in the range was replayed (exit code 0).
    pub fn complete(&self) -> bool {
        self.skipped.is_empty() && self.failed.is_none()
    }
}

/// Hands the webhooks of `range` to `handler` in arrival order (or, with `dry_run`, only counts
/// them), skipping erased ones and stopping at the first failure. `on_each` sees every webhook
/// as it is replayed, skipped or failed, for progress output. Nothing in the store changes.
pub async fn replay(
    store: &dyn Store,
    range: &Range,
    handler: Option<&dyn Handler>,
    mut on_each: impl FnMut(&StoredWebhook, Outcome<'_>),
) -> Result<ReplayReport, ReplayError> {
    let mut report = ReplayReport::default();
    let stream = stored_webhooks(store, range).await?;
    let mut stream = std::pin::pin!(stream);
    while let Some(stored) = stream.next().await {
        let stored = stored?;
        let Some(webhook) = stored.webhook.clone() else {
            on_each(&stored, Outcome::Skipped);
            report
                .skipped
                .push((stored.seq, stored.id.clone(), stored.event.clone()));
            continue;
        };
        if let Some(handler) = handler {
            let job = Job {
                event: webhook.event(),
                webhook,
                attempt: 1,
                seq: stored.seq,
                received_at: stored.received_at,
            };
            if let Err(e) = handler.handle(&job).await {
                let error = e.to_string();
                on_each(&stored, Outcome::Failed(&error));
                report.failed = Some((stored.id.clone(), error));
                return Ok(report);
            }
        }
        on_each(&stored, Outcome::Replayed);
        report.replayed += 1;
    }
    Ok(report)
}

/// What happened to one webhook in a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Handed on (or, dry, would be).
    Replayed,
    /// Its body was erased: skipped.
    Skipped,
    /// The sink failed with this error; the replay stops here.
    Failed(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_times_with_zone_or_offset() {
        let at = UNIX_EPOCH + Duration::from_secs(1_764_581_400); // 2025-12-01T09:30:00Z
        assert_eq!(parse_time("2025-12-01T09:30:00Z"), Ok(at));
        assert_eq!(parse_time("2025-12-01T10:30:00+01:00"), Ok(at));
        assert_eq!(parse_time("2025-12-01T04:00:00-05:30"), Ok(at));
        assert_eq!(
            parse_time("2025-12-01T09:30:00.250Z"),
            Ok(at + Duration::from_millis(250))
        );
        for bad in ["yesterday", "2025-12-01", "2025-12-01T09:30:00+25:00", ""] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}

//! Counters for the admin `/metrics` endpoint, in Prometheus' text format.
//!
//! Hand-rolled on atomics: a dozen series do not justify a metrics registry dependency, and the
//! text format is small and stable. Queue depth and processing lag are read from the store at
//! scrape time, so they are right even when the worker runs in another process.

use crate::retention::RetentionStatus;
use crate::store::QueueStatus;
use crate::trends::{Tally, Trends};
use passfort_clock::{SharedClock, SystemClock};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Upper bounds (seconds) of the answer latency histogram: from 1 ms to PassFort's 10 s limit.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 10.0,
];

/// Why a request was not answered 200: the `reason` label of `rejected_total`.
pub const REJECTION_REASONS: [&str; 7] = [
    "unauthorized",
    "bad_request",
    "too_large",
    "method_not_allowed",
    "store_unavailable",
    "deadline",
    "ip",
];

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    received: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    conflicts: AtomicU64,
    rejected: [AtomicU64; REJECTION_REASONS.len()],
    processed: AtomicU64,
    handler_failures: AtomicU64,
    dead_lettered: AtomicU64,
    last_lag_ms: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    trends: Trends,
}

/// Shared counters; clones count into the same series. Every count also lands in the
/// per-minute [`Trends`] of the last hour, cut on the clock the metrics were made with (the
/// receiver's, so that a test drives the charts with a `VirtualClock`).
#[derive(Clone)]
pub struct Metrics(Arc<Counters>, SharedClock);

impl Default for Metrics {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("requests", &self.0.requests.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Fresh counters, with trends on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fresh counters, with trends cut on `clock`.
    pub fn with_clock(clock: SharedClock) -> Self {
        Self(Arc::default(), clock)
    }

    fn tally(&self, tally: Tally<'_>) {
        self.0.trends.record(self.1.now(), tally);
    }

    /// The last hour per minute, for the admin page's charts.
    pub fn trends(&self) -> &Trends {
        &self.0.trends
    }

    /// An accepted request: how many webhooks it carried, stored, duplicated and conflicted.
    pub fn record_accepted(
        &self,
        received: usize,
        stored: usize,
        duplicates: usize,
        conflicts: usize,
    ) {
        let c = &self.0;
        c.received.fetch_add(received as u64, Ordering::Relaxed);
        c.stored.fetch_add(stored as u64, Ordering::Relaxed);
        c.duplicates.fetch_add(duplicates as u64, Ordering::Relaxed);
        c.conflicts.fetch_add(conflicts as u64, Ordering::Relaxed);
        self.tally(Tally::Accepted {
            received: received as u64,
            stored: stored as u64,
            duplicates: duplicates as u64,
        });
    }

    /// A request answered with something other than 200, by reason (see [`REJECTION_REASONS`]).
    pub fn record_rejected(&self, reason: &str) {
        if let Some(i) = REJECTION_REASONS.iter().position(|r| *r == reason) {
            self.0.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
        self.tally(Tally::Rejected(reason));
    }

    /// How long a request took to answer.
    pub fn record_answer(&self, latency: Duration) {
        let c = &self.0;
        c.requests.fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                c.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        c.latency_count.fetch_add(1, Ordering::Relaxed);
        c.latency_sum_us.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.tally(Tally::Answered(latency));
    }

    /// A webhook handed on successfully, received at `received_at`, done at `now`.
    pub fn record_processed(&self, received_at: SystemTime, now: SystemTime) {
        self.0.processed.fetch_add(1, Ordering::Relaxed);
        let lag = now.duration_since(received_at).unwrap_or_default();
        self.0.last_lag_ms.store(
            u64::try_from(lag.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.0.trends.record(now, Tally::Processed);
    }

    /// A failed handler attempt.
    pub fn record_failure(&self) {
        self.0.handler_failures.fetch_add(1, Ordering::Relaxed);
        self.tally(Tally::Failed);
    }

    /// A webhook moved to the dead-letter list.
    pub fn record_dead_letter(&self) {
        self.0.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.tally(Tally::DeadLettered);
    }

    /// Webhooks received in accepted requests so far.
    pub fn received(&self) -> u64 {
        self.0.received.load(Ordering::Relaxed)
    }

    /// Duplicates skipped so far.
    pub fn duplicates(&self) -> u64 {
        self.0.duplicates.load(Ordering::Relaxed)
    }

    /// Requests rejected so far for `reason`.
    pub fn rejected(&self, reason: &str) -> u64 {
        REJECTION_REASONS
            .iter()
            .position(|r| *r == reason)
            .map(|i| self.0.rejected[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// The Prometheus text exposition, with queue gauges from `status` and retention figures
    /// from `retention` when the store answered.
    pub fn render(
        &self,
        status: Option<&QueueStatus>,
        retention: Option<&RetentionStatus>,
        now: SystemTime,
    ) -> String {
        let c = &self.0;
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "passfort_requests_total",
            "Webhook requests answered.",
            c.requests.load(Ordering::Relaxed),
        );
        counter(
            "passfort_webhooks_received_total",
            "Webhooks in requests answered 200.",
            c.received.load(Ordering::Relaxed),
        );
        counter(
            "passfort_webhooks_stored_total",
            "New webhooks committed to the store.",
            c.stored.load(Ordering::Relaxed),
        );
        counter(
            "passfort_webhooks_duplicate_total",
            "Redelivered webhooks acknowledged and skipped.",
            c.duplicates.load(Ordering::Relaxed),
        );
        counter(
            "passfort_webhooks_conflict_total",
            "Redelivered ids with a different body, kept out.",
            c.conflicts.load(Ordering::Relaxed),
        );
        counter(
            "passfort_webhooks_processed_total",
            "Webhooks handed on successfully.",
            c.processed.load(Ordering::Relaxed),
        );
        counter(
            "passfort_handler_failures_total",
            "Failed handler attempts.",
            c.handler_failures.load(Ordering::Relaxed),
        );
        counter(
            "passfort_webhooks_dead_lettered_total",
            "Webhooks moved to the dead-letter list.",
            c.dead_lettered.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP passfort_requests_rejected_total Requests not answered 200, by reason.\n\
             # TYPE passfort_requests_rejected_total counter"
        );
        for (i, reason) in REJECTION_REASONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "passfort_requests_rejected_total{{reason=\"{reason}\"}} {}",
                c.rejected[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP passfort_answer_latency_seconds Time from request to answer.\n\
             # TYPE passfort_answer_latency_seconds histogram"
        );
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "passfort_answer_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                c.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = c.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "passfort_answer_latency_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             passfort_answer_latency_seconds_sum {}\n\
             passfort_answer_latency_seconds_count {count}",
            c.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        if let Some(status) = status {
            let lag = status
                .oldest_pending_since
                .and_then(|since| now.duration_since(since).ok())
                .unwrap_or_default();
            let stalled = status
                .stalled_since
                .and_then(|since| now.duration_since(since).ok())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "# HELP passfort_queue_depth Webhooks stored and not yet handed on.\n\
                 # TYPE passfort_queue_depth gauge\npassfort_queue_depth {}\n\
                 # HELP passfort_dead_letters Webhooks in the dead-letter list.\n\
                 # TYPE passfort_dead_letters gauge\npassfort_dead_letters {}\n\
                 # HELP passfort_processing_lag_seconds Age of the oldest webhook not yet handed on.\n\
                 # TYPE passfort_processing_lag_seconds gauge\npassfort_processing_lag_seconds {}\n\
                 # HELP passfort_queue_stalled_seconds How long the head of the queue has been failing (0: not stalled).\n\
                 # TYPE passfort_queue_stalled_seconds gauge\npassfort_queue_stalled_seconds {}",
                status.queue_depth,
                status.dead_letters,
                lag.as_secs_f64(),
                stalled.as_secs_f64()
            );
        }
        if let Some(r) = retention {
            let _ = writeln!(
                out,
                "# HELP passfort_store_webhooks Webhooks stored, with or without their body.\n\
                 # TYPE passfort_store_webhooks gauge\npassfort_store_webhooks {}\n\
                 # HELP passfort_store_bodies_kept Stored webhooks that still have their body.\n\
                 # TYPE passfort_store_bodies_kept gauge\npassfort_store_bodies_kept {}\n\
                 # HELP passfort_store_oldest_body_age_seconds Age of the oldest body still kept.\n\
                 # TYPE passfort_store_oldest_body_age_seconds gauge\npassfort_store_oldest_body_age_seconds {}\n\
                 # HELP passfort_store_database_bytes The database's size on disk.\n\
                 # TYPE passfort_store_database_bytes gauge\npassfort_store_database_bytes {}\n\
                 # HELP passfort_bodies_erased_total Webhook bodies erased by retention (all processes).\n\
                 # TYPE passfort_bodies_erased_total counter\npassfort_bodies_erased_total {}\n\
                 # HELP passfort_ids_forgotten_total Webhook ids forgotten by retention (all processes).\n\
                 # TYPE passfort_ids_forgotten_total counter\npassfort_ids_forgotten_total {}",
                r.webhooks_stored,
                r.bodies_kept,
                r.oldest_kept_body_age(now).as_secs_f64(),
                r.database_bytes,
                r.bodies_erased_total,
                r.ids_forgotten_total
            );
        }
        let _ = writeln!(
            out,
            "# HELP passfort_last_processing_lag_seconds Receive-to-done time of the last webhook handed on by this process.\n\
             # TYPE passfort_last_processing_lag_seconds gauge\npassfort_last_processing_lag_seconds {}",
            c.last_lag_ms.load(Ordering::Relaxed) as f64 / 1e3
        );
        out
    }
}

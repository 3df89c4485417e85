//! The last hour, minute by minute, for the admin page's charts.
//!
//! Prometheus keeps history for those who run it; the person who opens the admin page wants
//! "are we keeping up" at a glance without one. So every count [`crate::Metrics`] records is
//! also added to a bounded ring of per-minute buckets held in memory (nothing in the database:
//! a restart starts an empty hour, which the page says). Minutes are cut on the clock the
//! metrics were made with (the receiver's [`passfort_clock::Clock`]), so a test drives the ring
//! with a `VirtualClock`. There is no task: a record or a read rolls the ring forward to the
//! minute it is at.

use crate::metrics::REJECTION_REASONS;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many minutes the ring keeps: the last hour.
pub const MINUTES: usize = 60;

/// Upper bounds (seconds) of the per-minute latency buckets: ten per decade from 0.1 ms to
/// 100 s, so a percentile read from them is at most 26 % above the truth, never below it.
fn latency_bounds() -> &'static [f64] {
    static BOUNDS: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| {
        (0..=60)
            .map(|i| 1e-4 * 10f64.powf(i as f64 / 10.0))
            .collect()
    })
}

/// The counts of one minute.
#[derive(Debug, Clone, Default, PartialEq)]
struct Minute {
    /// Minutes since the Unix epoch.
    index: u64,
    received: u64,
    stored: u64,
    duplicates: u64,
    processed: u64,
    failed: u64,
    dead_lettered: u64,
    rejected: [u64; REJECTION_REASONS.len()],
    /// Answers per latency bucket; the last slot holds answers slower than every bound.
    latency: Vec<u32>,
}

impl Minute {
    fn new(index: u64) -> Self {
        Self {
            index,
            latency: vec![0; latency_bounds().len() + 1],
            ..Self::default()
        }
    }

    /// The latency under which `quantile` of this minute's answers fell (a bucket's upper
    /// bound), or `None` when nothing was answered.
    fn latency_quantile(&self, quantile: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return None;
        }
        // The rank of the answer at `quantile`, 1-based: p99 of 100 answers is the 99th.
        let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        let bounds = latency_bounds();
        for (i, &n) in self.latency.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                // Slower than every bound: report the largest bound, the most we can say.
                return Some(bounds[i.min(bounds.len() - 1)]);
            }
        }
        bounds.last().copied()
    }
}

/// One thing that happened, as the ring counts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tally<'a> {
    /// A request answered 200: webhooks received, newly stored, skipped as duplicates.
    Accepted {
        /// Webhooks in the request.
        received: u64,
        /// Newly stored.
        stored: u64,
        /// Already stored, skipped.
        duplicates: u64,
    },
    /// A request not answered 200, by reason (one of [`REJECTION_REASONS`]).
    Rejected(&'a str),
    /// A request answered, after this long.
    Answered(Duration),
    /// A webhook handed on.
    Processed,
    /// A failed handler attempt.
    Failed,
    /// A webhook moved to the dead-letter list.
    DeadLettered,
}

/// The per-minute ring; cheap to share behind [`crate::Metrics`].
#[derive(Debug, Default)]
pub struct Trends {
    ring: Mutex<VecDeque<Minute>>,
}

fn minute_of(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 60
}

impl Trends {
    /// An empty hour.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Minute>> {
        // A panic while holding the lock cannot leave the counts half-updated in a way that
        // matters more than losing the page's charts: keep counting.
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts `tally` in the minute of `at`. A time older than the hour the ring holds (a
    /// clock stepped back, a late record) is not counted: the ring never grows past
    /// [`MINUTES`].
    pub fn record(&self, at: SystemTime, tally: Tally<'_>) {
        let index = minute_of(at);
        let mut ring = self.lock();
        roll(&mut ring, index);
        let Some(minute) = ring.iter_mut().rev().find(|m| m.index == index) else {
            return;
        };
        match tally {
            Tally::Accepted {
                received,
                stored,
                duplicates,
            } => {
                minute.received += received;
                minute.stored += stored;
                minute.duplicates += duplicates;
            }
            Tally::Rejected(reason) => {
                if let Some(i) = REJECTION_REASONS.iter().position(|r| *r == reason) {
                    minute.rejected[i] += 1;
                }
            }
            Tally::Answered(latency) => {
                let secs = latency.as_secs_f64();
                let bucket = latency_bounds()
                    .iter()
                    .position(|&bound| secs <= bound)
                    .unwrap_or(latency_bounds().len());
                minute.latency[bucket] = minute.latency[bucket].saturating_add(1);
            }
            Tally::Processed => minute.processed += 1,
            Tally::Failed => minute.failed += 1,
            Tally::DeadLettered => minute.dead_lettered += 1,
        }
    }

    /// The last [`MINUTES`] minutes up to and including the one `now` is in, oldest first;
    /// minutes with nothing recorded read as zero.
    pub fn hour(&self, now: SystemTime) -> Hour {
        let last = minute_of(now);
        let first = last.saturating_sub(MINUTES as u64 - 1);
        let ring = self.lock();
        let minutes: Vec<Minute> = (first..=last)
            .map(|index| {
                ring.iter()
                    .find(|m| m.index == index)
                    .cloned()
                    .unwrap_or_else(|| Minute::new(index))
            })
            .collect();
        drop(ring);
        let series = |f: fn(&Minute) -> u64| minutes.iter().map(f).collect::<Vec<u64>>();
        Hour {
            minute_seconds: 60,
            first_minute: UNIX_EPOCH + Duration::from_secs(first * 60),
            received: series(|m| m.received),
            stored: series(|m| m.stored),
            duplicates: series(|m| m.duplicates),
            processed: series(|m| m.processed),
            failed: series(|m| m.failed),
            dead_lettered: series(|m| m.dead_lettered),
            rejected: REJECTION_REASONS
                .iter()
                .enumerate()
                .map(|(i, reason)| RejectedSeries {
                    reason,
                    counts: minutes.iter().map(|m| m.rejected[i]).collect(),
                })
                .collect(),
            answers: minutes
                .iter()
                .map(|m| m.latency.iter().map(|&n| u64::from(n)).sum())
                .collect(),
            latency_p50_seconds: minutes.iter().map(|m| m.latency_quantile(0.5)).collect(),
            latency_p99_seconds: minutes.iter().map(|m| m.latency_quantile(0.99)).collect(),
        }
    }
}

/// Moves the ring forward so that its newest minute is `index` (dropping minutes older than
/// the hour); a time behind the newest minute changes nothing.
fn roll(ring: &mut VecDeque<Minute>, index: u64) {
    if ring.back().is_some_and(|newest| newest.index >= index) {
        return;
    }
    ring.push_back(Minute::new(index));
    let oldest_kept = index.saturating_sub(MINUTES as u64 - 1);
    while ring.front().is_some_and(|m| m.index < oldest_kept) {
        ring.pop_front();
    }
}

/// Requests refused for one reason, per minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedSeries {
    /// The reason, as in `passfort_requests_rejected_total{reason=…}`.
    pub reason: &'static str,
    /// Per minute, oldest first.
    pub counts: Vec<u64>,
}

/// The last hour, per minute, oldest first: what `GET /api/trends` answers. Every series has
/// [`MINUTES`] values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hour {
    /// The length of one step (60).
    pub minute_seconds: u64,
    /// The start of the first minute.
    #[serde(with = "crate::status::time_format")]
    pub first_minute: SystemTime,
    /// Webhooks in requests answered 200.
    pub received: Vec<u64>,
    /// Newly stored.
    pub stored: Vec<u64>,
    /// Redelivered, skipped.
    pub duplicates: Vec<u64>,
    /// Handed on by this process's worker.
    pub processed: Vec<u64>,
    /// Failed handler attempts in this process's worker.
    pub failed: Vec<u64>,
    /// Moved to the dead-letter list by this process's worker.
    pub dead_lettered: Vec<u64>,
    /// Requests refused, by reason.
    pub rejected: Vec<RejectedSeries>,
    /// Requests answered (any status).
    pub answers: Vec<u64>,
    /// Median answer time (a bucket's upper bound), `null` in a minute without requests.
    pub latency_p50_seconds: Vec<Option<f64>>,
    /// 99th percentile answer time (a bucket's upper bound), `null` without requests.
    pub latency_p99_seconds: Vec<Option<f64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u64, second: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 / 60 * 60 + minute * 60 + second)
    }

    #[test]
    fn counts_land_in_their_minute_and_age_out_after_an_hour() {
        let trends = Trends::new();
        let accepted = Tally::Accepted {
            received: 3,
            stored: 2,
            duplicates: 1,
        };
        trends.record(at(0, 5), accepted);
        trends.record(at(0, 59), Tally::Processed);
        trends.record(at(2, 0), Tally::Failed);
        trends.record(at(2, 1), Tally::Rejected("unauthorized"));
        trends.record(at(2, 1), Tally::Rejected("no-such-reason"));

        let hour = trends.hour(at(2, 30));
        assert_eq!(hour.received.len(), MINUTES);
        assert_eq!(hour.first_minute, at(2, 0) - Duration::from_secs(59 * 60));
        assert_eq!(hour.received[MINUTES - 3..], [3, 0, 0]);
        assert_eq!(hour.stored[MINUTES - 3..], [2, 0, 0]);
        assert_eq!(hour.duplicates[MINUTES - 3..], [1, 0, 0]);
        assert_eq!(hour.processed[MINUTES - 3..], [1, 0, 0]);
        assert_eq!(hour.failed[MINUTES - 3..], [0, 0, 1]);
        let unauthorized = hour
            .rejected
            .iter()
            .find(|r| r.reason == "unauthorized")
            .unwrap();
        assert_eq!(unauthorized.counts[MINUTES - 1], 1);
        let all_rejected: u64 = hour.rejected.iter().flat_map(|r| &r.counts).sum();
        assert_eq!(all_rejected, 1, "an unknown reason is not counted");

        // 59 minutes on, minute 0 is the oldest shown; one more and it is gone.
        assert_eq!(trends.hour(at(59, 0)).received[0], 3);
        let later = trends.hour(at(60, 0));
        assert_eq!(later.received.iter().sum::<u64>(), 0);
        assert_eq!(later.failed[1], 1);
    }

    #[test]
    fn the_ring_stays_bounded_and_ignores_times_older_than_it_holds() {
        let trends = Trends::new();
        for minute in 0..500 {
            trends.record(at(minute, 0), Tally::Processed);
        }
        assert_eq!(trends.lock().len(), MINUTES);
        trends.record(at(10, 0), Tally::Processed);
        assert_eq!(trends.lock().len(), MINUTES);
        assert_eq!(trends.hour(at(499, 0)).processed, vec![1; MINUTES]);
        // A late record inside the hour still counts in its own minute.
        trends.record(at(498, 30), Tally::Processed);
        assert_eq!(trends.hour(at(499, 0)).processed[MINUTES - 2], 2);
    }

    #[test]
    fn latency_percentiles_are_bucket_bounds_at_or_above_the_truth() {
        let trends = Trends::new();
        for _ in 0..98 {
            trends.record(at(0, 1), Tally::Answered(Duration::from_millis(2)));
        }
        trends.record(at(0, 2), Tally::Answered(Duration::from_millis(700)));
        trends.record(at(0, 3), Tally::Answered(Duration::from_secs(7)));
        let hour = trends.hour(at(0, 30));
        let p50 = hour.latency_p50_seconds[MINUTES - 1].unwrap();
        let p99 = hour.latency_p99_seconds[MINUTES - 1].unwrap();
        assert!((0.002..0.002 * 1.26).contains(&p50), "{p50}");
        assert!((0.7..0.7 * 1.26).contains(&p99), "{p99}");
        assert_eq!(hour.answers[MINUTES - 1], 100);
        assert_eq!(hour.latency_p99_seconds[MINUTES - 2], None);

        let slow = Trends::new();
        slow.record(at(0, 0), Tally::Answered(Duration::from_secs(1000)));
        let p50 = slow.hour(at(0, 0)).latency_p50_seconds[MINUTES - 1];
        assert_eq!(p50, latency_bounds().last().copied());
    }
}

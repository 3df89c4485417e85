//! After an attempt: a delivered request leaves the queue and the next batch waits one cadence;
//! a failed one keeps the head, counts the failure, schedules the retry by the back-off (or at
//! once after the Retry button) and lists the head's webhooks in "Recent failures".

use std::collections::VecDeque;
use std::time::SystemTime;

use super::exchange::Verdict;
use super::queue::State;
use super::request::InFlight;
use crate::attempt::{Attempt, Outcome};
use crate::status::RecentFailure;
use passfort_clock::after;

/// "Recent failures" keeps this many, most recent first.
pub(super) const RECENT_FAILURES: usize = 10;

impl State {
    /// Applies the answer to `sent` (judged `verdict`, finished at `finished`) and returns the
    /// attempt's record.
    pub(super) fn settle(
        &mut self,
        sent: InFlight,
        verdict: Verdict,
        started: SystemTime,
        finished: SystemTime,
    ) -> Attempt {
        let Verdict {
            outcome,
            status,
            error,
        } = verdict;
        self.in_flight = false;
        self.attempts = self.attempts.saturating_add(1);
        let current = self.generation == sent.generation;
        let mut next_retry = None;
        if outcome.is_delivered() {
            if current {
                self.delivered_head(sent.ids.len(), finished);
            }
        } else {
            self.failed_attempts_total = self.failed_attempts_total.saturating_add(1);
            if current {
                let at = self.failed_head(finished);
                next_retry = Some(at);
                self.record_failures(&sent.ids, finished, outcome, status, &error);
            }
        }
        if !current && !self.queue.is_empty() && self.next_send.is_none() {
            self.next_send = Some(finished);
        }
        self.retry_after_flight = false;
        let latency = finished.duration_since(started).unwrap_or_default();
        let attempt = Attempt {
            seq: self.attempts,
            at: started,
            batched: sent.batched,
            webhook_ids: sent.ids,
            try_number: sent.try_number,
            outcome,
            status,
            error,
            latency_ms: latency.as_secs_f64() * 1000.0,
            next_retry,
        };
        if self.keep_log {
            self.log.push(attempt.clone());
        }
        attempt
    }

    /// The first `count` webhooks were acknowledged: they leave, and the rest wait a cadence.
    fn delivered_head(&mut self, count: usize, finished: SystemTime) {
        let count = count.min(self.queue.len());
        self.queue.drain(..count);
        self.delivered = self.delivered.saturating_add(count as u64);
        self.failures = 0;
        self.last_processed = Some(finished);
        self.next_send = if self.queue.is_empty() {
            None
        } else {
            let wait = self.cadence();
            Some(after(finished, wait))
        };
    }

    /// The head failed once more: count it and return when it is sent next.
    fn failed_head(&mut self, finished: SystemTime) -> SystemTime {
        self.failures = self.failures.saturating_add(1);
        let wait = self
            .settings
            .scaled(self.settings.backoff.delay_after(self.failures));
        let at = if self.retry_after_flight {
            finished
        } else {
            after(finished, wait)
        };
        self.next_send = Some(at);
        at
    }

    fn record_failures(
        &mut self,
        ids: &[String],
        at: SystemTime,
        outcome: Outcome,
        status: Option<u16>,
        error: &Option<String>,
    ) {
        let reason = match (status, error) {
            (_, Some(error)) => error.clone(),
            (Some(status), None) => format!("HTTP {status}"),
            (None, None) => format!("{outcome:?}"),
        };
        let fresh: Vec<(u64, RecentFailure)> = self
            .queue
            .iter()
            .take(ids.len().min(RECENT_FAILURES))
            .map(|q| {
                (
                    q.seq,
                    RecentFailure {
                        webhook_id: q.webhook.id.clone(),
                        event: q.webhook.event.clone(),
                        timestamp: q.webhook.timestamp,
                        failed_at: at,
                        outcome,
                        reason: reason.clone(),
                    },
                )
            })
            .collect();
        let mut merged: VecDeque<(u64, RecentFailure)> = fresh.iter().cloned().collect();
        for old in self.recent_failures.drain(..) {
            if merged.len() >= RECENT_FAILURES {
                break;
            }
            if !fresh.iter().any(|(seq, _)| *seq == old.0) {
                merged.push_back(old);
            }
        }
        self.recent_failures = merged;
    }
}

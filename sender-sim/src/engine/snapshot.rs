//! The delivery state as data and back ([`DeliverySnapshot`]), so the queue and its back-off
//! outlive the process as PassFort's do.

use std::collections::VecDeque;
use std::time::SystemTime;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::queue::{Queued, State};
use super::retry::RECENT_FAILURES;
use crate::snapshot::{CadencePosition, DeliverySnapshot, DeliveryTotals, SnapshotError};
use crate::status::RecentFailure;

impl State {
    pub(super) fn snapshot(&self) -> DeliverySnapshot {
        DeliverySnapshot {
            queue: self.queue.iter().map(|q| q.webhook.clone()).collect(),
            failed_attempts: self.failures,
            next_send: if self.queue.is_empty() {
                None
            } else {
                self.next_send
            },
            last_processed: self.last_processed,
            recent_failures: self.waiting_failures(),
            totals: DeliveryTotals {
                enqueued: self.enqueued,
                delivered: self.delivered,
                attempts: self.attempts,
                failed_attempts: self.failed_attempts_total,
                dropped: self.dropped,
            },
            cadence: Some(CadencePosition::new(
                self.rng.get_seed(),
                self.rng.get_word_pos(),
            )),
        }
    }

    /// Puts `snapshot` in place (settings untouched); a head without a next retry time is due
    /// at `now`. Checks everything before changing anything.
    pub(super) fn restore(
        &mut self,
        snapshot: DeliverySnapshot,
        now: SystemTime,
    ) -> Result<(), SnapshotError> {
        let cadence = match &snapshot.cadence {
            Some(position) => Some(
                position
                    .parse()
                    .ok_or_else(|| SnapshotError::InvalidCadence(position.clone()))?,
            ),
            None => None,
        };
        self.generation += 1;
        self.queue = snapshot
            .queue
            .into_iter()
            .enumerate()
            .map(|(seq, webhook)| Queued {
                seq: seq as u64,
                webhook,
            })
            .collect();
        self.next_seq = self.queue.len() as u64;
        self.failures = snapshot.failed_attempts;
        self.next_send = if self.queue.is_empty() {
            None
        } else {
            Some(snapshot.next_send.unwrap_or(now))
        };
        self.retry_after_flight = false;
        self.last_processed = snapshot.last_processed;
        let recent: VecDeque<(u64, RecentFailure)> = snapshot
            .recent_failures
            .into_iter()
            .filter_map(|failure| {
                let seq = self
                    .queue
                    .iter()
                    .find(|q| q.webhook.id == failure.webhook_id)?
                    .seq;
                Some((seq, failure))
            })
            .take(RECENT_FAILURES)
            .collect();
        self.recent_failures = recent;
        let totals = snapshot.totals;
        self.enqueued = totals.enqueued;
        self.delivered = totals.delivered;
        self.attempts = totals.attempts;
        self.failed_attempts_total = totals.failed_attempts;
        self.dropped = totals.dropped;
        if let Some((seed, word_pos)) = cadence {
            let mut rng = ChaCha8Rng::from_seed(seed);
            rng.set_word_pos(word_pos);
            self.rng = rng;
        }
        Ok(())
    }
}

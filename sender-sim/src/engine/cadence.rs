//! Batching: how many webhooks go in one request, and the seeded 0–10 s wait between batches.

use std::time::Duration;

use rand::Rng;

use super::queue::State;

impl State {
    /// How many webhooks from the head the next request carries: up to `max_batch` when
    /// batching, else one.
    pub(super) fn request_size(&self) -> usize {
        if self.settings.batching {
            self.settings.max_batch.min(self.queue.len())
        } else {
            1
        }
    }

    /// The wait before the next batch: seeded jitter in `[0, batch_interval_max]`, scaled.
    /// Unbatched delivery has no cadence.
    pub(super) fn cadence(&mut self) -> Duration {
        if !self.settings.batching {
            return Duration::ZERO;
        }
        let max = self
            .settings
            .batch_interval_max
            .as_nanos()
            .min(u64::MAX as u128) as u64;
        let wait = Duration::from_nanos(self.rng.gen_range(0..=max));
        self.settings.scaled(wait)
    }
}

//! When a failed webhook is tried again, and when it is given up on (dead-lettered).
//!
//! Exponential back-off measured on the worker's clock; after a number of attempts the webhook
//! moves to the dead-letter list and the queue moves on, unless the policy blocks (keeps
//! retrying the head so nothing is ever handed on out of order).

use crate::store::AfterFailure;
use std::time::{Duration, SystemTime};

/// When to retry a failed webhook and when to give up on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    initial: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    /// 1 s, doubling, at most 5 minutes apart; dead-letter after 10 attempts.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            max_attempts: Some(10),
        }
    }
}

impl RetryPolicy {
    /// Waits `initial` after the first failure, doubling after each further one, never more
    /// than `max_delay`; dead-letters after 10 attempts unless changed.
    pub fn exponential(initial: Duration, max_delay: Duration) -> Self {
        Self {
            initial,
            max_delay: max_delay.max(initial),
            max_attempts: Some(10),
        }
    }

    /// Dead-letters after `attempts` attempts in all (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Never dead-letters: keeps retrying the head, so nothing is ever handed on out of order.
    pub fn block(mut self) -> Self {
        self.max_attempts = None;
        self
    }

    /// How many attempts before dead-lettering; `None` when blocking.
    pub fn attempts_limit(&self) -> Option<u32> {
        self.max_attempts
    }

    /// The wait after the `attempt`-th failed attempt (1-based): `initial × 2^(attempt−1)`,
    /// capped at the maximum delay.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(32);
        self.initial
            .checked_mul(1u32 << exponent.min(31))
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// What to do after the `attempt`-th attempt failed at `now`.
    pub fn after_failure(&self, attempt: u32, now: SystemTime) -> AfterFailure {
        match self.max_attempts {
            Some(limit) if attempt >= limit => AfterFailure::DeadLetter,
            _ => AfterFailure::RetryAt(passfort_clock::after(now, self.delay_after(attempt))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let policy = RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(10));
        let waits: Vec<u64> = (1..=6).map(|n| policy.delay_after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(policy.delay_after(1000), Duration::from_secs(10));
    }

    #[test]
    fn dead_letters_at_the_limit_unless_blocking() {
        let now = SystemTime::UNIX_EPOCH;
        let policy = RetryPolicy::default().max_attempts(3);
        assert_eq!(
            policy.after_failure(2, now),
            AfterFailure::RetryAt(now + Duration::from_secs(2))
        );
        assert_eq!(policy.after_failure(3, now), AfterFailure::DeadLetter);
        let blocking = policy.block();
        assert_eq!(blocking.attempts_limit(), None);
        assert_eq!(
            blocking.after_failure(50, now),
            AfterFailure::RetryAt(now + Duration::from_secs(300))
        );
    }
}

//! PassFort's retry schedule: "for the first 12 attempts, the webhook is retried after
//! 30 seconds * power(2, attempts - 1); after this, the webhook is retried daily."

use std::time::Duration;

/// When the head of the queue (a webhook, or a whole batch) is tried again after failing.
///
/// After the n-th consecutive failed attempt the wait is `base × 2^(n−1)` for n = 1…`doublings`,
/// then `after` for every later failure. The twelve doubling waits add up to 122 850 s (~34 h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffSchedule {
    /// The first wait (PassFort: 30 s).
    pub base: Duration,
    /// How many failures use the doubling formula (PassFort: 12).
    pub doublings: u32,
    /// The wait after every later failure (PassFort: a day).
    pub after: Duration,
}

impl Default for BackoffSchedule {
    fn default() -> Self {
        Self::passfort()
    }
}

impl BackoffSchedule {
    /// The schedule from PassFort's help pages.
    pub const fn passfort() -> Self {
        Self {
            base: Duration::from_secs(30),
            doublings: 12,
            after: Duration::from_secs(24 * 60 * 60),
        }
    }

    /// The wait after the `failed_attempts`-th consecutive failed attempt (1-based). Zero
    /// failures means no wait.
    pub fn delay_after(&self, failed_attempts: u32) -> Duration {
        match failed_attempts {
            0 => Duration::ZERO,
            n if n <= self.doublings => {
                // n ≤ doublings ≤ u32::MAX; saturate rather than overflow for silly settings.
                let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
                self.base.saturating_mul(factor)
            }
            _ => self.after,
        }
    }

    /// The first `count` waits, in order: what a receiver that never answers 200 sees.
    pub fn waits(&self, count: u32) -> Vec<Duration> {
        (1..=count).map(|n| self.delay_after(n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_doublings_then_daily() {
        let s = BackoffSchedule::passfort();
        assert_eq!(s.delay_after(0), Duration::ZERO);
        assert_eq!(s.delay_after(1), Duration::from_secs(30));
        assert_eq!(s.delay_after(2), Duration::from_secs(60));
        assert_eq!(s.delay_after(12), Duration::from_secs(61_440));
        assert_eq!(s.delay_after(13), Duration::from_secs(86_400));
        assert_eq!(s.delay_after(1000), Duration::from_secs(86_400));
        let total: Duration = s.waits(12).into_iter().sum();
        assert_eq!(total, Duration::from_secs(122_850));
    }
}

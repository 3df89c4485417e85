//! Time that tests can drive.
//!
//! Everything in this workspace that waits — the simulator's back-off and batch cadence, the
//! receiver's commit deadline and its worker's retry back-off, lease expiry — asks a [`Clock`]
//! instead of the operating system. Binaries hand in [`SystemClock`]; tests hand in a
//! [`VirtualClock`] and move time themselves, so a day of back-off costs nothing and no test ever
//! sleeps to let time pass.
//!
//! ```
//! use passfort_clock::{Clock, VirtualClock};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let clock = VirtualClock::new();
//! let start = clock.now();
//! let sleeping = tokio::spawn({
//!     let clock = clock.clone();
//!     async move { clock.sleep(Duration::from_secs(86_400)).await }
//! });
//! // Let the task register its timer, then jump straight to it.
//! while clock.next_deadline().is_none() { tokio::task::yield_now().await; }
//! assert_eq!(clock.advance_to_next(), Some(start + Duration::from_secs(86_400)));
//! sleeping.await.unwrap();
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A future that completes when a clock reaches a deadline.
///
/// Boxed so that [`Clock`] stays object safe: components hold an `Arc<dyn Clock>` and never learn
/// whether time is real or driven.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A clock shared between the components that wait on it.
pub type SharedClock = Arc<dyn Clock>;

/// The one source of "now" and of waiting, so that time can be real in production and driven in
/// tests.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// Wall-clock time: PassFort's timestamps and back-off schedules are in wall-clock terms.
    fn now(&self) -> SystemTime;

    /// Completes once [`Clock::now`] is at or past `deadline`.
    fn sleep_until(&self, deadline: SystemTime) -> Sleep;

    /// Completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(after(self.now(), duration))
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
    fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        (**self).sleep_until(deadline)
    }
    fn sleep(&self, duration: Duration) -> Sleep {
        (**self).sleep(duration)
    }
}

/// `instant + duration`, or a point a century past `instant` when the sum is not a representable
/// time: a configured wait of "forever" must mean a very long wait, never a panic.
pub fn after(instant: SystemTime, duration: Duration) -> SystemTime {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    instant
        .checked_add(duration)
        .or_else(|| instant.checked_add(CENTURY))
        .unwrap_or(instant)
}

/// The future given to [`timeout`] did not finish before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    /// How long the future was given.
    pub limit: Duration,
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadline of {:?} elapsed", self.limit)
    }
}

impl std::error::Error for Elapsed {}

/// Runs `future` with a deadline measured on `clock`, so that deadlines are testable with a
/// [`VirtualClock`] exactly like back-off is.
///
/// The future is polled first: a future that is already complete wins even at a zero limit.
pub async fn timeout<C, F>(clock: &C, limit: Duration, future: F) -> Result<F::Output, Elapsed>
where
    C: Clock + ?Sized,
    F: Future,
{
    let deadline = clock.sleep(limit);
    let mut future = std::pin::pin!(future);
    let mut deadline = deadline;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed { limit })),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The operating system's clock, waiting through tokio's timers. What binaries use.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        let wait = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when told to.
///
/// Sleepers register their deadline; [`VirtualClock::advance_to_next`] jumps to the earliest one
/// and wakes it, which is how a discrete-event simulation skips a day of back-off in no time.
/// Clones share one timeline.
#[derive(Clone)]
pub struct VirtualClock {
    inner: Arc<Mutex<Timeline>>,
}

struct Timeline {
    now: SystemTime,
    next_id: u64,
    sleepers: BTreeMap<(SystemTime, u64), Option<Waker>>,
}

impl fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timeline = self.lock();
        f.debug_struct("VirtualClock")
            .field("now", &timeline.now)
            .field("sleepers", &timeline.sleepers.len())
            .finish()
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// The instant a new virtual clock starts at: 2022-02-02T14:57:09Z, the `timestamp` of the one
    /// real-looking PassFort sample, so that generated data looks like PassFort's.
    pub const DEFAULT_START_UNIX_SECS: u64 = 1_643_813_829;

    /// A clock standing at [`VirtualClock::DEFAULT_START_UNIX_SECS`].
    pub fn new() -> Self {
        Self::starting_at(UNIX_EPOCH + Duration::from_secs(Self::DEFAULT_START_UNIX_SECS))
    }

    /// A clock standing at `start`.
    pub fn starting_at(start: SystemTime) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Timeline {
                now: start,
                next_id: 0,
                sleepers: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Timeline> {
        // A panic while holding this lock cannot leave the timeline half-updated in a way that
        // matters (every update is a single assignment or map operation), so poisoning is ignored.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves time forward by `duration`, waking every sleeper whose deadline is reached.
    pub fn advance(&self, duration: Duration) {
        let target = after(self.lock().now, duration);
        self.advance_to(target);
    }

    /// Moves time to `instant` (never backwards), waking every sleeper whose deadline is reached.
    pub fn advance_to(&self, instant: SystemTime) {
        let wakers = {
            let mut timeline = self.lock();
            if instant > timeline.now {
                timeline.now = instant;
            }
            let now = timeline.now;
            let due: Vec<(SystemTime, u64)> = timeline
                .sleepers
                .range(..=(now, u64::MAX))
                .map(|(key, _)| *key)
                .collect();
            due.into_iter()
                .filter_map(|key| timeline.sleepers.remove(&key).flatten())
                .collect::<Vec<_>>()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// The earliest deadline anyone is waiting for, if anyone is.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        self.lock()
            .sleepers
            .keys()
            .next()
            .map(|(deadline, _)| *deadline)
    }

    /// Jumps to the earliest registered deadline and wakes its sleepers; returns the new time, or
    /// `None` (leaving time where it is) when nobody is waiting.
    pub fn advance_to_next(&self) -> Option<SystemTime> {
        let next = self.next_deadline()?;
        self.advance_to(next);
        Some(self.now())
    }

    /// How many sleepers are waiting: lets a test see that a task has reached its timer.
    pub fn sleepers(&self) -> usize {
        self.lock().sleepers.len()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> SystemTime {
        self.lock().now
    }

    fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        let id = {
            let mut timeline = self.lock();
            let id = timeline.next_id;
            timeline.next_id += 1;
            if deadline > timeline.now {
                timeline.sleepers.insert((deadline, id), None);
            }
            id
        };
        Box::pin(VirtualSleep {
            clock: self.clone(),
            key: (deadline, id),
        })
    }
}

struct VirtualSleep {
    clock: VirtualClock,
    key: (SystemTime, u64),
}

impl Future for VirtualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut timeline = self.clock.lock();
        if timeline.now >= self.key.0 {
            timeline.sleepers.remove(&self.key);
            return Poll::Ready(());
        }
        timeline.sleepers.insert(self.key, Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for VirtualSleep {
    fn drop(&mut self) {
        self.clock.lock().sleepers.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_sleep_completes_only_when_time_reaches_it() {
        let clock = VirtualClock::new();
        let start = clock.now();
        let mut sleep = clock.sleep(Duration::from_secs(30));
        assert!(futures_poll_once(&mut sleep).is_pending());
        clock.advance(Duration::from_secs(29));
        assert!(futures_poll_once(&mut sleep).is_pending());
        clock.advance(Duration::from_secs(1));
        assert!(futures_poll_once(&mut sleep).is_ready());
        assert_eq!(clock.now(), start + Duration::from_secs(30));
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn advance_to_next_visits_deadlines_in_order() {
        let clock = VirtualClock::new();
        let start = clock.now();
        let later = clock.sleep(Duration::from_secs(120));
        let sooner = clock.sleep(Duration::from_secs(30));
        assert_eq!(clock.sleepers(), 2);
        assert_eq!(
            clock.advance_to_next(),
            Some(start + Duration::from_secs(30))
        );
        drop(sooner);
        assert_eq!(
            clock.advance_to_next(),
            Some(start + Duration::from_secs(120))
        );
        drop(later);
        assert_eq!(clock.advance_to_next(), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_sleep_unregisters() {
        let clock = VirtualClock::new();
        let mut sleep = clock.sleep(Duration::from_secs(5));
        assert!(futures_poll_once(&mut sleep).is_pending());
        drop(sleep);
        assert_eq!(clock.next_deadline(), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn timeout_fires_on_virtual_time_and_not_before() {
        let clock = VirtualClock::new();
        let task = tokio::spawn({
            let clock = clock.clone();
            async move { timeout(&clock, Duration::from_secs(2), std::future::pending::<()>()).await }
        });
        while clock.next_deadline().is_none() {
            tokio::task::yield_now().await;
        }
        assert!(!task.is_finished());
        clock.advance_to_next();
        assert_eq!(
            task.await.unwrap(),
            Err(Elapsed {
                limit: Duration::from_secs(2)
            })
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn timeout_returns_a_ready_value_even_with_no_time() {
        let clock = VirtualClock::new();
        assert_eq!(timeout(&clock, Duration::ZERO, async { 7 }).await, Ok(7));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn time_never_goes_backwards() {
        let clock = VirtualClock::new();
        let start = clock.now();
        clock.advance_to(start - Duration::from_secs(10));
        assert_eq!(clock.now(), start);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_wait_too_long_to_be_a_time_is_a_far_future_not_a_panic() {
        let clock = VirtualClock::new();
        let start = clock.now();
        let mut sleep = clock.sleep(Duration::MAX);
        assert!(futures_poll_once(&mut sleep).is_pending());
        assert!(clock.next_deadline().is_some_and(|d| d > start));
        clock.advance(Duration::MAX);
        assert!(clock.now() > start);
        assert!(futures_poll_once(&mut sleep).is_ready());
    }

    fn futures_poll_once(sleep: &mut Sleep) -> Poll<()> {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        sleep.as_mut().poll(&mut cx)
    }
}

//! One request and its answer: sent through the transport under PassFort's answer limit, with
//! virtual time moved while it is pending, and judged the way PassFort judges it (exactly 200
//! inside the limit, or a failed attempt with a reason).

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;

use super::Engine;
use crate::attempt::Outcome;
use crate::clock::{Clock, SimClock, SystemClock, VirtualClock};
use crate::transport::{Answer, TransportError};
use passfort_clock::after;

/// What one exchange with the receiver produced.
pub(super) enum Exchange {
    Answer(Answer),
    Failed(TransportError),
    TimedOut,
}

/// An exchange as PassFort sees it: how the attempt ended, the HTTP status if there was one, and
/// the reason when it failed.
pub(super) struct Verdict {
    pub(super) outcome: Outcome,
    pub(super) status: Option<u16>,
    pub(super) error: Option<String>,
}

impl Exchange {
    /// Success is exactly 200 within `limit`; a 200 that took `latency > limit` is late.
    pub(super) fn judge(self, latency: Duration, limit: Duration) -> Verdict {
        let (outcome, status, error) = match self {
            Exchange::Answer(answer) if latency > limit => (
                Outcome::Late,
                Some(answer.status.as_u16()),
                Some(format!(
                    "answered {} after {:?}, past the {:?} limit",
                    answer.status.as_u16(),
                    latency,
                    limit
                )),
            ),
            Exchange::Answer(answer) if answer.status == StatusCode::OK => {
                (Outcome::Delivered, Some(200), None)
            }
            Exchange::Answer(answer) => (
                Outcome::Rejected,
                Some(answer.status.as_u16()),
                Some(format!("answered {}, not 200", answer.status)),
            ),
            Exchange::TimedOut => (
                Outcome::TimedOut,
                None,
                Some(format!("no answer within {limit:?}")),
            ),
            Exchange::Failed(error) => {
                let outcome = match error {
                    TransportError::Refused(_) => Outcome::Refused,
                    TransportError::Dropped(_) => Outcome::Dropped,
                    TransportError::Other(_) => Outcome::Error,
                };
                (outcome, None, Some(error.to_string()))
            }
        };
        Verdict {
            outcome,
            status,
            error,
        }
    }
}

impl Engine {
    /// Sends `request` and waits for the answer, at most `limit` on the engine's clock. On a
    /// virtual clock the engine also moves time while the request is pending, so a fault's delay
    /// or a hung receiver resolves without real waiting.
    pub(super) async fn exchange(
        &self,
        request: http::Request<Bytes>,
        limit: Duration,
    ) -> Exchange {
        let clock = &self.shared.clock;
        let deadline = after(clock.now(), limit);
        let sent = self.shared.transport.send(request);
        let guarded = passfort_clock::timeout(&self.shared.shared_clock, limit, sent);
        let mut guarded = pin!(guarded);
        let result = match clock {
            SimClock::Real(_) => guarded.await,
            SimClock::Virtual(virtual_clock) => {
                self.drive_virtual(virtual_clock, deadline, guarded.as_mut())
                    .await
            }
        };
        match result {
            Ok(Ok(answer)) => Exchange::Answer(answer),
            Ok(Err(error)) => Exchange::Failed(error),
            Err(_elapsed) => Exchange::TimedOut,
        }
    }

    async fn drive_virtual<F: Future>(
        &self,
        clock: &VirtualClock,
        own_deadline: SystemTime,
        mut pending: Pin<&mut F>,
    ) -> F::Output {
        // Fast path: an in-memory receiver answers on the first poll.
        if let Some(out) = poll_once(pending.as_mut()).await {
            return out;
        }
        loop {
            // Let spawned work and real I/O make progress before moving time.
            for _ in 0..32 {
                tokio::task::yield_now().await;
                if let Some(out) = poll_once(pending.as_mut()).await {
                    return out;
                }
            }
            let only_own = clock.sleepers() <= 1
                && clock
                    .next_deadline()
                    .is_none_or(|deadline| deadline >= own_deadline);
            let patience = if only_own {
                self.shared.options.grace
            } else {
                self.shared.options.quiet
            };
            tokio::select! {
                out = pending.as_mut() => return out,
                _ = SystemClock.sleep(patience) => {}
            }
            if clock.advance_to_next().is_none() {
                // Nothing registered on the clock at all: only real progress can finish it.
                return pending.await;
            }
        }
    }
}

async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

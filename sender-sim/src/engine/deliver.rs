//! One delivery attempt: take the head's request under the lock, exchange it with the receiver
//! outside it, and settle the queue with the answer.

use super::exchange::Exchange;
use super::Engine;
use crate::attempt::Attempt;
use crate::transport::TransportError;

impl Engine {
    /// Builds the request for the head, sends it, applies the outcome. `None` when there was
    /// nothing to send after all.
    pub(super) async fn attempt_head(&self) -> Option<Attempt> {
        let started = self.now();
        let (request, sent) = self.lock().take_head_request()?;
        // If this future is dropped mid-request (a driver task aborted, a caller's own timeout),
        // the head must not stay "in flight" forever: the guard puts it back, due at once.
        let guard = InFlightGuard { engine: self };
        let exchange = match request {
            Ok(request) => self.exchange(request, sent.limit).await,
            Err(reason) => Exchange::Failed(TransportError::Other(reason)),
        };
        std::mem::forget(guard);
        let finished = self.now();
        let latency = finished.duration_since(started).unwrap_or_default();
        let verdict = exchange.judge(latency, sent.limit);
        Some(self.lock().settle(sent, verdict, started, finished))
    }
}

/// Clears `in_flight` when an attempt is abandoned before its answer was applied.
struct InFlightGuard<'a> {
    engine: &'a Engine,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let now = self.engine.now();
        let mut state = self.engine.lock();
        state.in_flight = false;
        if !state.queue.is_empty() {
            state.next_send = Some(now);
        }
    }
}

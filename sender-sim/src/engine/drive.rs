//! Driving the engine: the loops that wait (or, on a virtual clock, move time) until the head
//! is due and then attempt it — one step, until the queue empties, or forever.

use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use super::{Engine, RunOutcome};
use crate::attempt::Attempt;
use crate::clock::{Clock, SimClock, VirtualClock};
use passfort_clock::after;

enum Wait {
    Due,
    Idle,
    Limit,
}

impl Engine {
    /// Waits (or, on a virtual clock, moves time) until the next request is due, sends it and
    /// returns its record. `None` when nothing can be sent: the queue is empty or webhooks are
    /// disabled.
    pub async fn step(&self) -> Option<Attempt> {
        let _driver = self.shared.driver.lock().await;
        match self.wait_for_due(None).await {
            Wait::Due => self.attempt_head().await,
            Wait::Idle | Wait::Limit => None,
        }
    }

    /// Sends the head if it is due right now, without waiting or moving time.
    pub async fn attempt_if_due(&self) -> Option<Attempt> {
        let _driver = self.shared.driver.lock().await;
        let due = self.next_due()?;
        if due <= self.now() {
            self.attempt_head().await
        } else {
            None
        }
    }

    /// Runs until the queue is empty ([`RunOutcome::Emptied`]) or until `give_up_after` of
    /// simulated time has passed ([`RunOutcome::GaveUp`]). Simulated time is engine-clock time
    /// multiplied by the time scale, so `--time-scale 1000` gives up after 3.6 s for an hour.
    pub async fn run_until_empty(&self, give_up_after: Duration) -> RunOutcome {
        self.run_until_empty_with(give_up_after, |_, _| {}).await
    }

    /// [`Engine::run_until_empty`], calling `observe` after every attempt (for progress lines
    /// and logs).
    pub async fn run_until_empty_with(
        &self,
        give_up_after: Duration,
        mut observe: impl FnMut(&Attempt, &Engine),
    ) -> RunOutcome {
        let run = self.run_until_empty_or_break(give_up_after, |attempt, engine| {
            observe(attempt, engine);
            ControlFlow::<std::convert::Infallible>::Continue(())
        });
        match run.await {
            ControlFlow::Continue(outcome) => outcome,
            ControlFlow::Break(never) => match never {},
        }
    }

    /// [`Engine::run_until_empty_with`] whose observer can stop the run: when `observe` returns
    /// [`ControlFlow::Break`] the run ends at once (after that attempt, the queue as it stands)
    /// with `Break` and the observer's value; otherwise it ends as `run_until_empty` does, with
    /// `Continue` and the [`RunOutcome`]. For callers with their own reason to stop (too many
    /// failures in a row, a budget) that need no second task to race the run.
    pub async fn run_until_empty_or_break<B>(
        &self,
        give_up_after: Duration,
        mut observe: impl FnMut(&Attempt, &Engine) -> ControlFlow<B>,
    ) -> ControlFlow<B, RunOutcome> {
        use ControlFlow::Continue;
        let _driver = self.shared.driver.lock().await;
        let limit = {
            let settings = self.lock().settings.clone();
            after(self.now(), settings.scaled(give_up_after))
        };
        loop {
            if self.queued() == 0 {
                return Continue(RunOutcome::Emptied);
            }
            match self.wait_for_due(Some(limit)).await {
                Wait::Due => {
                    if let Some(attempt) = self.attempt_head().await {
                        observe(&attempt, self)?;
                    }
                }
                Wait::Limit => {
                    return Continue(if self.queued() == 0 {
                        RunOutcome::Emptied
                    } else {
                        RunOutcome::GaveUp
                    });
                }
                Wait::Idle => {
                    if self.queued() == 0 {
                        return Continue(RunOutcome::Emptied);
                    }
                    // Disabled with webhooks queued: nothing happens until the limit, unless
                    // someone re-enables (woken through `wake`).
                    self.pass_time_until(limit).await;
                    if self.now() >= limit && self.next_due().is_none() {
                        return Continue(RunOutcome::GaveUp);
                    }
                }
            }
        }
    }

    /// Sends whatever becomes due, forever: for a long-running sandbox on the real clock.
    /// Enqueue from other tasks through clones of this handle.
    pub async fn run_forever(&self) {
        let _driver = self.shared.driver.lock().await;
        loop {
            match self.wait_for_due(None).await {
                Wait::Due => {
                    self.attempt_head().await;
                }
                Wait::Idle | Wait::Limit => self.shared.wake.notified().await,
            }
        }
    }

    /// Lets time pass until `target`: moved there on a virtual clock; on the real clock, slept
    /// until then or until something changes (an enqueue, Retry, re-enabling).
    async fn pass_time_until(&self, target: SystemTime) {
        match &self.shared.clock {
            SimClock::Virtual(clock) => advance_virtual_to(clock, target).await,
            SimClock::Real(clock) => {
                let sleep = clock.sleep_until(target);
                tokio::select! {
                    _ = sleep => {}
                    _ = self.shared.wake.notified() => {}
                }
            }
        }
    }

    async fn wait_for_due(&self, limit: Option<SystemTime>) -> Wait {
        loop {
            let due = self.next_due();
            let now = self.now();
            if let Some(due) = due {
                if due <= now {
                    return Wait::Due;
                }
            }
            if let Some(limit) = limit {
                if limit <= now {
                    return Wait::Limit;
                }
            }
            let target = match (due, limit) {
                (None, _) => return Wait::Idle,
                (Some(due), Some(limit)) => due.min(limit),
                (Some(due), None) => due,
            };
            self.pass_time_until(target).await;
        }
    }
}

/// Moves a virtual clock to `target`, visiting every earlier deadline in order so that other
/// components on the same clock (an in-process receiver's timers) see time pass step by step.
async fn advance_virtual_to(clock: &VirtualClock, target: SystemTime) {
    while let Some(deadline) = clock.next_deadline() {
        if deadline > target {
            break;
        }
        clock.advance_to(deadline);
        tokio::task::yield_now().await;
    }
    clock.advance_to(target);
}

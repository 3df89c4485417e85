//! The delivery engine: one ordered queue per account, sent the way PassFort sends it.
//!
//! Rules (each one tested):
//! - nothing leaves the queue out of order, and nothing leaves it without an HTTP 200;
//! - unbatched: one webhook per request; a failing head blocks everything behind it;
//! - batched: the first ≤ `max_batch` webhooks per request, a seeded 0–10 s apart; a failed
//!   batch stays at the head and the next request starts with it;
//! - success is exactly 200 inside the answer limit (5 s batched, 10 s unbatched); anything else
//!   is a failed attempt, followed by the back-off of [`crate::backoff`];
//! - [`Engine::retry_now`] ignores the back-off once;
//! - disabling then re-enabling drops the queue when
//!   [`AccountSettings::drop_queue_on_disable`] is set.
//!
//! An [`Engine`] is a cheap handle (clones share one account): one task drives it
//! ([`Engine::step`], [`Engine::run_until_empty`], [`Engine::run_forever`]) while others enqueue,
//! press Retry or read the status queue.

mod cadence;
mod deliver;
mod drive;
mod exchange;
mod queue;
mod request;
mod retry;
mod snapshot;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::account::AccountSettings;
use crate::attempt::Attempt;
use crate::clock::{SharedClock, SimClock};
use crate::event::Webhook;
use crate::snapshot::{DeliverySnapshot, SnapshotError};
use crate::status::StatusQueue;
use crate::transport::Transport;
use queue::State;
use request::validate;

/// Why an engine could not be built or reconfigured.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The endpoint is not an absolute `http(s)` URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `time_scale` must be finite and > 0.
    #[error("time scale must be a finite number > 0, got {0}")]
    InvalidTimeScale(f64),
    /// `max_batch` must be at least 1.
    #[error("max_batch must be at least 1")]
    InvalidBatchSize,
    /// The secret cannot travel in an HTTP header (control characters).
    #[error("the shared secret must fit in an HTTP header (no control characters)")]
    InvalidSecret,
    /// The content type is not a valid header value.
    #[error("invalid content type {0:?}")]
    InvalidContentType(String),
}

/// Why [`Engine::enqueue`] did not queue a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued at the back.
    Queued,
    /// Webhooks are disabled: PassFort queues nothing.
    Disabled,
    /// The event is not among the account's enabled events.
    EventNotEnabled,
}

/// How [`Engine::run_until_empty`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The queue emptied: everything was delivered.
    Emptied,
    /// The give-up time passed with webhooks still queued.
    GaveUp,
}

/// Knobs that are about the simulation rather than about PassFort.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Seeds the batch-cadence jitter: same seed, same virtual clock ⇒ same attempt log.
    pub seed: u64,
    /// Keep every attempt in memory ([`Engine::attempts`]). Turn off for very long runs.
    pub keep_log: bool,
    /// Virtual clock only: how long (real time) an in-flight request may make no progress before
    /// the engine moves virtual time to the next registered deadline (a fault's delay, an
    /// in-process receiver's timer). Lets real work (a database write) finish first; each
    /// simulated delay costs this much real time. `Duration::ZERO` suits receivers that never
    /// do real I/O (only task switches are then awaited).
    pub quiet: Duration,
    /// Virtual clock only: when the only thing left to wake is the engine's own answer limit,
    /// how long (real time) to let a request over real I/O (e.g. to wiremock) answer before the
    /// limit is declared passed.
    pub grace: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            keep_log: true,
            quiet: Duration::from_millis(50),
            grace: Duration::from_secs(1),
        }
    }
}

struct Shared {
    state: Mutex<State>,
    clock: SimClock,
    /// `clock` as a trait object, made once (the answer-limit timer needs one per attempt).
    shared_clock: SharedClock,
    transport: Box<dyn Transport>,
    wake: Notify,
    driver: tokio::sync::Mutex<()>,
    options: EngineOptions,
}

/// PassFort's sending side for one account. Clones are handles to the same account.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Engine")
            .field("settings", &state.settings)
            .field("queued", &state.queue.len())
            .field("failures", &state.failures)
            .field("next_send", &state.next_send)
            .finish()
    }
}

impl Engine {
    /// An engine for one account with default [`EngineOptions`].
    pub fn new(
        settings: AccountSettings,
        clock: impl Into<SimClock>,
        transport: impl Transport,
    ) -> Result<Self, EngineError> {
        Self::with_options(settings, clock, transport, EngineOptions::default())
    }

    /// An engine for one account.
    pub fn with_options(
        settings: AccountSettings,
        clock: impl Into<SimClock>,
        transport: impl Transport,
        options: EngineOptions,
    ) -> Result<Self, EngineError> {
        let uri = validate(&settings)?;
        let state = State::new(settings, uri, &options);
        let clock: SimClock = clock.into();
        Ok(Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                shared_clock: clock.shared(),
                clock,
                transport: Box::new(transport),
                wake: Notify::new(),
                driver: tokio::sync::Mutex::new(()),
                options,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under this lock is completed before it is released; a panic elsewhere
        // cannot leave it half-done, so poisoning is ignored.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The engine's clock.
    pub fn clock(&self) -> &SimClock {
        &self.shared.clock
    }

    /// Now on the engine's clock.
    pub fn now(&self) -> SystemTime {
        self.shared.clock.now()
    }

    /// The current settings.
    pub fn settings(&self) -> AccountSettings {
        self.lock().settings.clone()
    }

    /// Changes settings (endpoint, secret, batching, limits…). The queue is kept; use
    /// [`Engine::set_enabled`] to enable or disable webhooks.
    pub fn update_settings(
        &self,
        change: impl FnOnce(&mut AccountSettings),
    ) -> Result<(), EngineError> {
        let mut state = self.lock();
        let mut settings = state.settings.clone();
        let enabled = settings.enabled;
        change(&mut settings);
        settings.enabled = enabled;
        state.uri = validate(&settings)?;
        state.settings = settings;
        drop(state);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Queues `webhook` at the back, if webhooks are enabled and its event is.
    pub fn enqueue(&self, webhook: Webhook) -> Enqueued {
        let now = self.now();
        let mut state = self.lock();
        let verdict = state.push(webhook, now);
        drop(state);
        if verdict == Enqueued::Queued {
            self.shared.wake.notify_one();
        }
        verdict
    }

    /// Queues each webhook in order; returns how many were queued.
    pub fn enqueue_all(&self, webhooks: impl IntoIterator<Item = Webhook>) -> usize {
        let now = self.now();
        let mut state = self.lock();
        let queued = webhooks
            .into_iter()
            .map(|webhook| state.push(webhook, now))
            .filter(|verdict| *verdict == Enqueued::Queued)
            .count();
        drop(state);
        if queued > 0 {
            self.shared.wake.notify_one();
        }
        queued
    }

    /// PassFort's Retry button: the head is sent at once, ignoring any back-off in place (once;
    /// a further failure backs off as usual, counting on from the failures so far).
    pub fn retry_now(&self) {
        let now = self.now();
        let mut state = self.lock();
        if state.in_flight {
            state.retry_after_flight = true;
        } else if !state.queue.is_empty() {
            state.next_send = Some(now);
        }
        drop(state);
        self.shared.wake.notify_one();
    }

    /// "Webhooks enabled". While disabled nothing is sent or queued. Re-enabling after a disable
    /// drops the whole queue when [`AccountSettings::drop_queue_on_disable`] is set — the loss
    /// PassFort warns about.
    pub fn set_enabled(&self, enabled: bool) {
        let now = self.now();
        let mut state = self.lock();
        if enabled == state.settings.enabled {
            return;
        }
        state.settings.enabled = enabled;
        if !enabled {
            state.disabled_since_enable = true;
        } else {
            if state.disabled_since_enable && state.settings.drop_queue_on_disable {
                state.drop_queue();
            }
            state.disabled_since_enable = false;
            if !state.queue.is_empty() && state.next_send.is_none() {
                state.next_send = Some(now);
            }
        }
        drop(state);
        self.shared.wake.notify_one();
    }

    /// PassFort's Refresh button: clears "Recent failures".
    pub fn refresh(&self) {
        self.lock().recent_failures.clear();
    }

    /// How many webhooks are queued.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// The queued webhooks, head first.
    pub fn queued_webhooks(&self) -> Vec<Webhook> {
        self.lock()
            .queue
            .iter()
            .map(|q| q.webhook.clone())
            .collect()
    }

    /// When the next request is due, if one is.
    pub fn next_due(&self) -> Option<SystemTime> {
        self.lock().due()
    }

    /// The status queue as PassFort shows it.
    pub fn status(&self) -> StatusQueue {
        let as_of = self.now();
        self.lock().status(as_of)
    }

    /// The delivery state as data (queue, failed attempts at the head, next retry, last
    /// processed, recent failures, totals, cadence position), so it can outlive the process:
    /// PassFort's queue keeps its back-off across anything. Taken in one piece under the lock.
    pub fn snapshot(&self) -> DeliverySnapshot {
        self.lock().snapshot()
    }

    /// Replaces the delivery state with `snapshot`, as [`Engine::snapshot`] took it: the queue
    /// is put back as it was (whatever the enabled switch and events filter say, which apply to
    /// new events only), and the head keeps its failed attempts and next retry time. Settings
    /// are left alone. A request in flight meanwhile no longer changes the queue when it ends.
    pub fn restore(&self, snapshot: DeliverySnapshot) -> Result<(), SnapshotError> {
        let now = self.now();
        self.lock().restore(snapshot, now)?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Every attempt so far (empty when [`EngineOptions::keep_log`] is off).
    pub fn attempts(&self) -> Vec<Attempt> {
        self.lock().log.clone()
    }

    /// Takes the attempts logged so far, leaving the log empty.
    pub fn take_attempts(&self) -> Vec<Attempt> {
        std::mem::take(&mut self.lock().log)
    }

    /// The attempt log as JSON lines.
    pub fn attempt_log_json_lines(&self) -> String {
        let state = self.lock();
        let mut out = String::new();
        for attempt in &state.log {
            out.push_str(&attempt.to_json_line());
            out.push('\n');
        }
        out
    }
}

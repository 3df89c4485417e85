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

use std::collections::VecDeque;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{StatusCode, Uri};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::account::{AccountSettings, BatchShape};
use crate::attempt::{Attempt, Outcome};
use crate::clock::{Clock, SharedClock, SimClock, SystemClock, VirtualClock};
// `at + wait` that turns a give-up time of ages or a tiny time scale into a far future instead
// of a `SystemTime` overflow panic.
use crate::event::Webhook;
use crate::snapshot::{CadencePosition, DeliverySnapshot, DeliveryTotals, SnapshotError};
use crate::status::{QueueState, RecentFailure, StatusQueue};
use crate::transport::{Answer, Transport, TransportError};
use passfort_clock::after;

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

struct Queued {
    seq: u64,
    webhook: Webhook,
}

struct State {
    settings: AccountSettings,
    uri: Uri,
    queue: VecDeque<Queued>,
    next_seq: u64,
    /// Consecutive failed attempts at the current head.
    failures: u32,
    /// When the head may be sent; `None` while there is nothing to send.
    next_send: Option<SystemTime>,
    in_flight: bool,
    retry_after_flight: bool,
    /// Bumped when the queue is dropped, so an answer to a request for a dropped queue changes
    /// nothing.
    generation: u64,
    disabled_since_enable: bool,
    rng: ChaCha8Rng,
    last_processed: Option<SystemTime>,
    /// Most recent first; `seq` tells whether the webhook is still waiting.
    recent_failures: VecDeque<(u64, RecentFailure)>,
    enqueued: u64,
    delivered: u64,
    attempts: u64,
    failed_attempts_total: u64,
    dropped: u64,
    log: Vec<Attempt>,
    keep_log: bool,
}

impl State {
    fn head_seq(&self) -> u64 {
        self.queue.front().map(|q| q.seq).unwrap_or(self.next_seq)
    }

    /// The wait before the next batch: seeded jitter in `[0, batch_interval_max]`, scaled.
    fn cadence(&mut self) -> Duration {
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

    fn due(&self) -> Option<SystemTime> {
        if !self.settings.enabled || self.in_flight || self.queue.is_empty() {
            None
        } else {
            self.next_send
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

fn parse_endpoint(endpoint: &str) -> Result<Uri, EngineError> {
    let invalid = |reason: String| EngineError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let uri: Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.authority().is_some() => Ok(uri),
        _ => Err(invalid(
            "expected an absolute http:// or https:// URL".into(),
        )),
    }
}

fn validate(settings: &AccountSettings) -> Result<Uri, EngineError> {
    if !(settings.time_scale.is_finite() && settings.time_scale > 0.0) {
        return Err(EngineError::InvalidTimeScale(settings.time_scale));
    }
    if settings.max_batch == 0 {
        return Err(EngineError::InvalidBatchSize);
    }
    let secret = settings.secret.expose();
    if http::HeaderValue::from_str(&format!("Bearer {secret}")).is_err() {
        return Err(EngineError::InvalidSecret);
    }
    if http::HeaderValue::from_str(&settings.content_type).is_err() {
        return Err(EngineError::InvalidContentType(
            settings.content_type.clone(),
        ));
    }
    parse_endpoint(&settings.endpoint)
}

/// What one exchange with the receiver produced.
enum Exchange {
    Answer(Answer),
    Failed(TransportError),
    TimedOut,
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
        let state = State {
            settings,
            uri,
            queue: VecDeque::new(),
            next_seq: 0,
            failures: 0,
            next_send: None,
            in_flight: false,
            retry_after_flight: false,
            generation: 0,
            disabled_since_enable: false,
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            last_processed: None,
            recent_failures: VecDeque::new(),
            enqueued: 0,
            delivered: 0,
            attempts: 0,
            failed_attempts_total: 0,
            dropped: 0,
            log: Vec::new(),
            keep_log: options.keep_log,
        };
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
        let verdict = Self::push(&mut state, webhook, now);
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
            .map(|webhook| Self::push(&mut state, webhook, now))
            .filter(|verdict| *verdict == Enqueued::Queued)
            .count();
        drop(state);
        if queued > 0 {
            self.shared.wake.notify_one();
        }
        queued
    }

    fn push(state: &mut State, webhook: Webhook, now: SystemTime) -> Enqueued {
        if !state.settings.enabled {
            return Enqueued::Disabled;
        }
        if !state.settings.enabled_events.contains(&webhook.event) {
            return Enqueued::EventNotEnabled;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.queue.push_back(Queued { seq, webhook });
        state.enqueued = state.enqueued.saturating_add(1);
        if state.next_send.is_none() && !state.in_flight {
            let wait = state.cadence();
            state.next_send = Some(after(now, wait));
        }
        Enqueued::Queued
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
                state.dropped = state.dropped.saturating_add(state.queue.len() as u64);
                state.queue.clear();
                state.generation += 1;
                state.failures = 0;
                state.next_send = None;
                state.recent_failures.clear();
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
        let state = self.lock();
        let waiting = state.queue.len();
        let stalled = waiting > 0 && (state.failures > 0 || !state.settings.enabled);
        let queue = if waiting == 0 {
            QueueState::Empty
        } else if stalled {
            QueueState::Stalled
        } else {
            QueueState::Waiting(waiting)
        };
        let head = state.head_seq();
        StatusQueue {
            as_of,
            queue,
            waiting,
            enabled: state.settings.enabled,
            last_processed: state.last_processed,
            failed_attempts: state.failures,
            next_retry: if stalled { state.next_send } else { None },
            recent_failures: state
                .recent_failures
                .iter()
                .filter(|(seq, _)| *seq >= head)
                .map(|(_, failure)| failure.clone())
                .collect(),
            enqueued: state.enqueued,
            delivered: state.delivered,
            attempts: state.attempts,
            failed_attempts_total: state.failed_attempts_total,
            dropped: state.dropped,
        }
    }

    /// The delivery state as data (queue, failed attempts at the head, next retry, last
    /// processed, recent failures, totals, cadence position), so it can outlive the process:
    /// PassFort's queue keeps its back-off across anything. Taken in one piece under the lock.
    pub fn snapshot(&self) -> DeliverySnapshot {
        let state = self.lock();
        let head = state.head_seq();
        DeliverySnapshot {
            queue: state.queue.iter().map(|q| q.webhook.clone()).collect(),
            failed_attempts: state.failures,
            next_send: if state.queue.is_empty() {
                None
            } else {
                state.next_send
            },
            last_processed: state.last_processed,
            recent_failures: state
                .recent_failures
                .iter()
                .filter(|(seq, _)| *seq >= head)
                .map(|(_, failure)| failure.clone())
                .collect(),
            totals: DeliveryTotals {
                enqueued: state.enqueued,
                delivered: state.delivered,
                attempts: state.attempts,
                failed_attempts: state.failed_attempts_total,
                dropped: state.dropped,
            },
            cadence: Some(CadencePosition::new(
                state.rng.get_seed(),
                state.rng.get_word_pos(),
            )),
        }
    }

    /// Replaces the delivery state with `snapshot`, as [`Engine::snapshot`] took it: the queue
    /// is put back as it was (whatever the enabled switch and events filter say, which apply to
    /// new events only), and the head keeps its failed attempts and next retry time. Settings
    /// are left alone. A request in flight meanwhile no longer changes the queue when it ends.
    pub fn restore(&self, snapshot: DeliverySnapshot) -> Result<(), SnapshotError> {
        let cadence = match &snapshot.cadence {
            Some(position) => Some(
                position
                    .parse()
                    .ok_or_else(|| SnapshotError::InvalidCadence(position.clone()))?,
            ),
            None => None,
        };
        let now = self.now();
        let mut state = self.lock();
        state.generation += 1;
        state.queue = snapshot
            .queue
            .into_iter()
            .enumerate()
            .map(|(seq, webhook)| Queued {
                seq: seq as u64,
                webhook,
            })
            .collect();
        state.next_seq = state.queue.len() as u64;
        state.failures = snapshot.failed_attempts;
        state.next_send = if state.queue.is_empty() {
            None
        } else {
            Some(snapshot.next_send.unwrap_or(now))
        };
        state.retry_after_flight = false;
        state.last_processed = snapshot.last_processed;
        let recent: VecDeque<(u64, RecentFailure)> = snapshot
            .recent_failures
            .into_iter()
            .filter_map(|failure| {
                let seq = state
                    .queue
                    .iter()
                    .find(|q| q.webhook.id == failure.webhook_id)?
                    .seq;
                Some((seq, failure))
            })
            .take(10)
            .collect();
        state.recent_failures = recent;
        let totals = snapshot.totals;
        state.enqueued = totals.enqueued;
        state.delivered = totals.delivered;
        state.attempts = totals.attempts;
        state.failed_attempts_total = totals.failed_attempts;
        state.dropped = totals.dropped;
        if let Some((seed, word_pos)) = cadence {
            let mut rng = ChaCha8Rng::from_seed(seed);
            rng.set_word_pos(word_pos);
            state.rng = rng;
        }
        drop(state);
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
                    self.idle_until(limit).await;
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

    async fn idle_until(&self, limit: SystemTime) {
        match &self.shared.clock {
            SimClock::Virtual(clock) => advance_virtual_to(clock, limit).await,
            SimClock::Real(clock) => {
                let sleep = clock.sleep_until(limit);
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
    }

    /// Builds the request for the head, sends it, applies the outcome. `None` when there was
    /// nothing to send after all.
    async fn attempt_head(&self) -> Option<Attempt> {
        let started = self.now();
        let (request, ids, generation, try_number, limit, batched) = {
            let mut state = self.lock();
            // Nothing to send after all (emptied, disabled or already in flight meanwhile).
            state.due()?;
            let batched = state.settings.batching;
            let count = if batched {
                state.settings.max_batch.min(state.queue.len())
            } else {
                1
            };
            let secret = state.settings.secret.clone();
            let body = build_body(
                state.queue.iter().take(count).map(|q| &q.webhook),
                secret.expose(),
                batched.then_some(&state.settings.batch_shape),
            );
            let ids: Vec<Uuid> = state
                .queue
                .iter()
                .take(count)
                .map(|q| q.webhook.id)
                .collect();
            let request = body.and_then(|body| {
                http::Request::builder()
                    .method(state.settings.method.clone())
                    .uri(state.uri.clone())
                    .header(CONTENT_TYPE, state.settings.content_type.as_str())
                    .header(AUTHORIZATION, format!("Bearer {}", secret.expose()))
                    .body(body)
                    .map_err(|e| e.to_string())
            });
            state.in_flight = true;
            state.retry_after_flight = false;
            let limit = state.settings.answer_limit();
            (
                request,
                ids,
                state.generation,
                // Counts restored from a state file may be at their maximum: saturate.
                state.failures.saturating_add(1),
                limit,
                batched,
            )
        };

        // If this future is dropped mid-request (a driver task aborted, a caller's own timeout),
        // the head must not stay "in flight" forever: the guard puts it back, due at once.
        let guard = InFlightGuard { engine: self };
        let exchange = match request {
            Ok(request) => self.exchange(request, limit).await,
            Err(reason) => Exchange::Failed(TransportError::Other(reason)),
        };
        std::mem::forget(guard);
        let finished = self.now();
        let latency = finished.duration_since(started).unwrap_or_default();

        let (outcome, status, error) = match exchange {
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

        let mut state = self.lock();
        state.in_flight = false;
        state.attempts = state.attempts.saturating_add(1);
        let current = state.generation == generation;
        let mut next_retry = None;
        if outcome.is_delivered() {
            if current {
                let count = ids.len().min(state.queue.len());
                state.queue.drain(..count);
                state.delivered = state.delivered.saturating_add(count as u64);
                state.failures = 0;
                state.last_processed = Some(finished);
                state.next_send = if state.queue.is_empty() {
                    None
                } else {
                    let wait = state.cadence();
                    Some(after(finished, wait))
                };
            }
        } else {
            state.failed_attempts_total = state.failed_attempts_total.saturating_add(1);
            if current {
                state.failures = state.failures.saturating_add(1);
                let wait = state
                    .settings
                    .scaled(state.settings.backoff.delay_after(state.failures));
                let at = if state.retry_after_flight {
                    finished
                } else {
                    after(finished, wait)
                };
                state.next_send = Some(at);
                next_retry = Some(at);
                record_failures(&mut state, &ids, finished, outcome, status, &error);
            }
        }
        if !current && !state.queue.is_empty() && state.next_send.is_none() {
            state.next_send = Some(finished);
        }
        state.retry_after_flight = false;
        let attempt = Attempt {
            seq: state.attempts,
            at: started,
            batched,
            webhook_ids: ids,
            try_number,
            outcome,
            status,
            error,
            latency_ms: latency.as_secs_f64() * 1000.0,
            next_retry,
        };
        if state.keep_log {
            state.log.push(attempt.clone());
        }
        Some(attempt)
    }

    /// Sends `request` and waits for the answer, at most `limit` on the engine's clock. On a
    /// virtual clock the engine also moves time while the request is pending, so a fault's delay
    /// or a hung receiver resolves without real waiting.
    async fn exchange(&self, request: http::Request<Bytes>, limit: Duration) -> Exchange {
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
        mut pending: std::pin::Pin<&mut F>,
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

enum Wait {
    Due,
    Idle,
    Limit,
}

async fn poll_once<F: Future>(mut future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
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

fn record_failures(
    state: &mut State,
    ids: &[Uuid],
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
    let fresh: Vec<(u64, RecentFailure)> = state
        .queue
        .iter()
        .take(ids.len().min(10))
        .map(|q| {
            (
                q.seq,
                RecentFailure {
                    webhook_id: q.webhook.id,
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
    for old in state.recent_failures.drain(..) {
        if merged.len() >= 10 {
            break;
        }
        if !fresh.iter().any(|(seq, _)| *seq == old.0) {
            merged.push_back(old);
        }
    }
    state.recent_failures = merged;
}

/// The request body: one envelope, or a batch in the configured shape.
fn build_body<'a>(
    webhooks: impl Iterator<Item = &'a Webhook>,
    secret: &str,
    batch: Option<&BatchShape>,
) -> Result<Bytes, String> {
    let envelopes: Vec<_> = webhooks.map(|w| w.envelope(secret)).collect();
    let bytes = match batch {
        None => match envelopes.first() {
            Some(envelope) => serde_json::to_vec(envelope),
            None => return Err("nothing to send".into()),
        },
        Some(BatchShape::Array) => serde_json::to_vec(&envelopes),
        Some(BatchShape::Wrapped { field }) => {
            let mut map = serde_json::Map::new();
            let array = serde_json::to_value(&envelopes).map_err(|e| e.to_string())?;
            map.insert(field.clone(), array);
            serde_json::to_vec(&map)
        }
    };
    bytes.map(Bytes::from).map_err(|e| e.to_string())
}

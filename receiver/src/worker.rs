//! Hands stored webhooks to the integrator's [`Handler`], strictly in arrival order.
//!
//! The worker leases the head of the queue, calls the handler, and marks the webhook done only
//! after the handler returned `Ok`. A handler error (or panic, which is caught) is retried with
//! exponential back-off measured on the worker's [`Clock`]; after
//! [`RetryPolicy::max_attempts`] attempts the webhook moves to the dead-letter list and the
//! queue moves on.
//!
//! # What dead-lettering does to order
//!
//! Everything behind a failing webhook waits for it (head-of-line blocking, like PassFort's own
//! queue). When it is dead-lettered, the webhooks behind it are handed on *before* it: a handler
//! that needs strict order end to end must either tolerate that (e.g. compare PassFort
//! timestamps or re-read the profile from PassFort's API when it sees a dead letter retried) or
//! choose [`RetryPolicy::block`], which never dead-letters and keeps retrying the head at the
//! maximum back-off until it succeeds. A retried dead letter
//! (`passfort-receiver dead-letter retry ID`) goes back to its original position and so is the
//! next webhook handed on.
//!
//! # Delivery guarantee
//!
//! At least once, in order. A webhook is handed on again only if the process stopped (or the
//! store failed) after the handler succeeded and before it was marked done; handlers should be
//! idempotent on `webhook.id` (the built-in `jsonl:` sink is).
//!
//! ```no_run
//! use passfort_receiver::{handler_fn, Job, Receiver, RetryPolicy, SecretSet, SqliteStore, Worker};
//! use passfort_receiver::Event;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteStore::open("sqlite://passfort-webhooks.db").await?;
//! let receiver = Receiver::builder()
//!     .secrets(SecretSet::single("change-me")?)
//!     .store(store)
//!     .build()?;
//! let worker = Worker::builder()
//!     .receiver(&receiver)
//!     .retry(RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(300)).max_attempts(8))
//!     .handler(handler_fn(|job: Job| async move {
//!         if let Event::CheckCompleted(check) = job.event {
//!             println!("check done for profile {:?}", check.profile_id);
//!         }
//!         Ok(())
//!     }))
//!     .build()?;
//! let running = worker.spawn();
//! // ... serve receiver.router() ...
//! running.shutdown().await?; // finishes the webhook in hand, then stops
//! # Ok(()) }
//! ```

use crate::handler::{Handler, Job};
use crate::metrics::Metrics;
use crate::retry::RetryPolicy;
use crate::store::{AfterFailure, Lease, SharedStore, Store, StoreError};
use futures::FutureExt;
use passfort_clock::{Clock, SharedClock, SystemClock};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};

/// Wakes a worker as soon as the HTTP side has committed something, so that an in-process
/// worker does not wait for its next poll. Clones share one signal.
#[derive(Debug, Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    /// A new, unshared signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the worker (or the next time it waits, if it is busy).
    pub fn notify(&self) {
        self.0.notify_one();
    }

    async fn notified(&self) {
        self.0.notified().await;
    }
}

/// Why a worker could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkerBuildError {
    /// No store was given (`.store(..)` or `.receiver(..)`).
    #[error("a worker needs a store")]
    MissingStore,
    /// No handler was given.
    #[error("a worker needs a handler")]
    MissingHandler,
}

/// Why a running worker stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The worker's task panicked or was aborted (handler panics are caught and never get here).
    #[error("worker task failed: {0}")]
    Task(String),
}

/// Builds a [`Worker`]; see [`Worker::builder`].
#[derive(Default)]
pub struct WorkerBuilder {
    store: Option<SharedStore>,
    handler: Option<Arc<dyn Handler>>,
    clock: Option<SharedClock>,
    retry: RetryPolicy,
    name: Option<String>,
    lease_for: Option<Duration>,
    poll_interval: Option<Duration>,
    wakeup: Option<Wakeup>,
    metrics: Option<Metrics>,
}

impl WorkerBuilder {
    /// The store to work from.
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The store to work from, already shared.
    pub fn shared_store(mut self, store: SharedStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Takes the store, clock, wake-up signal and metrics of an in-process [`crate::Receiver`],
    /// so the worker wakes the moment a request is committed.
    pub fn receiver(mut self, receiver: &crate::http::Receiver) -> Self {
        self.store = Some(receiver.store());
        self.clock = Some(receiver.clock());
        self.wakeup = Some(receiver.wakeup());
        self.metrics = Some(receiver.metrics());
        self
    }

    /// The integrator's handler.
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// The clock for back-off, polling and leases (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Retry and dead-letter policy (default [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The worker's name in leases: a restarted worker with the same name takes over its own
    /// lease at once; workers with different names exclude each other (default `worker`).
    /// Two workers running at the same time on one store must therefore have different names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long a lease lasts: another worker may take the head over after a crash once it
    /// expires; a handler should finish well within it (default 5 minutes).
    pub fn lease(mut self, lease_for: Duration) -> Self {
        self.lease_for = Some(lease_for);
        self
    }

    /// How often an idle worker looks at the store when nothing wakes it: what a worker in its
    /// own process relies on (default 500 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = Some(every);
        self
    }

    /// The signal that wakes the worker early.
    pub fn wakeup(mut self, wakeup: Wakeup) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// Where to count processed, failed and dead-lettered webhooks.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The worker, or what is missing.
    pub fn build(self) -> Result<Worker, WorkerBuildError> {
        let clock: SharedClock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        Ok(Worker {
            store: self.store.ok_or(WorkerBuildError::MissingStore)?,
            handler: self.handler.ok_or(WorkerBuildError::MissingHandler)?,
            metrics: self
                .metrics
                .unwrap_or_else(|| Metrics::with_clock(clock.clone())),
            clock,
            retry: self.retry,
            name: self.name.unwrap_or_else(|| "worker".to_owned()),
            lease_for: self.lease_for.unwrap_or(Duration::from_secs(300)),
            poll_interval: self.poll_interval.unwrap_or(Duration::from_millis(500)),
            wakeup: self.wakeup.unwrap_or_default(),
        })
    }
}

/// Hands stored webhooks to a [`Handler`] in arrival order. See the [module docs](self).
#[derive(Clone)]
pub struct Worker {
    store: SharedStore,
    handler: Arc<dyn Handler>,
    clock: SharedClock,
    retry: RetryPolicy,
    name: String,
    lease_for: Duration,
    poll_interval: Duration,
    wakeup: Wakeup,
    metrics: Metrics,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("store", &self.store)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What one step of the worker did.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A webhook was handed to the handler.
    Handled {
        /// Its id.
        id: String,
        /// Which attempt it was.
        attempt: u32,
        /// What came of it.
        outcome: Outcome,
    },
    /// Nothing was due.
    Idle(Idle),
}

/// What came of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded; the webhook is done.
    Done,
    /// The handler failed; retried at this time.
    RetryAt(SystemTime),
    /// The handler failed for the last allowed time; the webhook is a dead letter.
    DeadLettered,
    /// The handler ran but the store no longer gave this worker the webhook (its lease was
    /// taken over): the other worker will hand it on.
    LeaseLost,
}

/// Why nothing was due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idle {
    /// The queue is empty.
    Empty,
    /// The head waits for a retry at this time.
    RetryAt(SystemTime),
    /// Another worker holds the head until this time.
    Busy(SystemTime),
}

/// What [`Worker::run_until_idle`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Drained {
    /// Webhooks marked done.
    pub done: usize,
    /// Failed attempts scheduled for retry.
    pub retried: usize,
    /// Webhooks moved to the dead-letter list.
    pub dead_lettered: usize,
    /// Why it stopped (`None` never happens once it returns).
    pub idle: Option<Idle>,
}

impl Worker {
    /// Starts building a worker.
    pub fn builder() -> WorkerBuilder {
        WorkerBuilder::default()
    }

    /// The worker's name in leases.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Leases the head if it is due, hands it to the handler and records the outcome.
    pub async fn step(&self) -> Result<Step, StoreError> {
        let now = self.clock.now();
        let leased = match self
            .store
            .lease_next(&self.name, now, self.lease_for)
            .await?
        {
            Lease::Acquired(leased) => leased,
            Lease::Empty => return Ok(Step::Idle(Idle::Empty)),
            Lease::NotBefore(at) => return Ok(Step::Idle(Idle::RetryAt(at))),
            Lease::Busy { until, .. } => return Ok(Step::Idle(Idle::Busy(until))),
        };
        let job = Job::from_leased(leased);
        let id = job.webhook.id.clone();
        let attempt = job.attempt;
        let result = AssertUnwindSafe(self.handler.handle(&job))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(panic_message(panic).into()));
        let now = self.clock.now();
        let outcome = match result {
            Ok(()) => match self.store.complete(job.seq, &self.name, now).await {
                Ok(()) => {
                    self.metrics.record_processed(job.received_at, now);
                    tracing::debug!(id = %id, event = %job.webhook.event, attempt, "webhook handled");
                    Outcome::Done
                }
                Err(StoreError::LeaseLost { .. }) => Outcome::LeaseLost,
                Err(e) => return Err(e),
            },
            Err(error) => {
                let error = error.to_string();
                let then = self.retry.after_failure(attempt, now);
                match self
                    .store
                    .fail(job.seq, &self.name, now, &error, then)
                    .await
                {
                    Ok(()) => {}
                    Err(StoreError::LeaseLost { .. }) => {
                        return Ok(Step::Handled {
                            id,
                            attempt,
                            outcome: Outcome::LeaseLost,
                        })
                    }
                    Err(e) => return Err(e),
                }
                self.metrics.record_failure();
                match then {
                    AfterFailure::RetryAt(at) => {
                        tracing::warn!(id = %id, event = %job.webhook.event, attempt, error = %error,
                            retry_at = %humantime::format_rfc3339_millis(at), "handler failed; will retry");
                        Outcome::RetryAt(at)
                    }
                    AfterFailure::DeadLetter => {
                        self.metrics.record_dead_letter();
                        tracing::error!(id = %id, event = %job.webhook.event, attempt, error = %error,
                            "handler failed for the last time; moved to the dead-letter list");
                        Outcome::DeadLettered
                    }
                }
            }
        };
        Ok(Step::Handled {
            id,
            attempt,
            outcome,
        })
    }

    /// Works until nothing is due *now* (queue empty, head waiting for a retry, or held by
    /// another worker) and says what it did. Never waits on the clock: tests call it, advance
    /// their `VirtualClock`, and call it again.
    pub async fn run_until_idle(&self) -> Result<Drained, StoreError> {
        let mut drained = Drained::default();
        loop {
            match self.step().await? {
                Step::Handled { outcome, .. } => match outcome {
                    Outcome::Done => drained.done += 1,
                    Outcome::RetryAt(_) => drained.retried += 1,
                    Outcome::DeadLettered => drained.dead_lettered += 1,
                    Outcome::LeaseLost => {}
                },
                Step::Idle(idle) => {
                    drained.idle = Some(idle);
                    return Ok(drained);
                }
            }
        }
    }

    /// Works until `shutdown` completes. Shutdown is only looked at between webhooks: the
    /// webhook in hand is always finished (handled and recorded) first. Store errors are logged
    /// and retried after a second on the clock.
    pub async fn run_until<F>(&self, shutdown: F)
    where
        F: Future<Output = ()>,
    {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        // Announce an empty queue once per stretch of work (and once at start): operators and
        // the binary's tests watch for it.
        let mut handled_since_empty: Option<u64> = Some(0);
        loop {
            if shutdown.as_mut().now_or_never().is_some() {
                return;
            }
            let wait_until = match self.step().await {
                Ok(Step::Handled { .. }) => {
                    *handled_since_empty.get_or_insert(0) += 1;
                    continue;
                }
                Ok(Step::Idle(idle)) => {
                    if idle == Idle::Empty {
                        if let Some(handled) = handled_since_empty.take() {
                            tracing::info!(worker = %self.name, handled, "queue empty");
                        }
                    }
                    let poll = passfort_clock::after(self.clock.now(), self.poll_interval);
                    match idle {
                        Idle::Empty => poll,
                        Idle::RetryAt(at) | Idle::Busy(at) => at.min(poll),
                    }
                }
                Err(error) => {
                    tracing::error!(error = %error, "store error in worker; retrying in 1 s");
                    self.clock.now() + Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = shutdown.as_mut() => return,
                _ = self.wakeup.notified() => {}
                _ = self.clock.sleep_until(wait_until) => {}
            }
        }
    }

    /// Runs the worker on its own task; stop it with [`RunningWorker::shutdown`].
    pub fn spawn(self) -> RunningWorker {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            self.run_until(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await;
        });
        RunningWorker { stop, task }
    }
}

/// A worker running on its own task.
#[derive(Debug)]
pub struct RunningWorker {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    /// Asks the worker to stop after the webhook in hand and waits until it has.
    pub async fn shutdown(self) -> Result<(), WorkerError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| WorkerError::Task(e.to_string()))
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned());
    format!("handler panicked: {detail}")
}

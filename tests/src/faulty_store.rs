//! The store faults of a run, injected around the real SQLite store: slow past the receiver's
//! time budget, and unavailable.
//!
//! "Slow" moves the shared `VirtualClock` from inside `stage`, so the receiver's deadline fires
//! deterministically, with no real waiting.

use async_trait::async_trait;
use passfort_clock::VirtualClock;
use passfort_receiver::store::{
    AfterFailure, DeadLetter, Entry, InsertOutcome, Lease, QueueStatus, Staged,
};
use passfort_receiver::{Batch, Shape, Verified};
use passfort_receiver::{SqliteStore, Store, StoreError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How the store behaves for the request in hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreMode {
    /// The real store, untouched.
    #[default]
    Healthy,
    /// Staging takes the whole budget and more before it starts.
    SlowBeforeStaging,
    /// Staging completes, but past the budget.
    SlowAfterStaging,
    /// Staging fails.
    Unavailable,
}

/// The receiver's time budgets, so "slow" can be just past them.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// For an array body.
    pub batch: Duration,
    /// For a single webhook.
    pub single: Duration,
}

/// A [`SqliteStore`] whose `stage` misbehaves on request. Clones share the mode.
#[derive(Debug, Clone)]
pub struct FaultyStore {
    inner: SqliteStore,
    clock: VirtualClock,
    budgets: Budgets,
    mode: Arc<Mutex<StoreMode>>,
}

/// How far past the budget a slow store finishes.
pub const OVERRUN: Duration = Duration::from_millis(250);

impl FaultyStore {
    /// Wraps `inner`; `mode` is shared with whoever steers the faults.
    pub fn new(
        inner: SqliteStore,
        clock: VirtualClock,
        budgets: Budgets,
        mode: Arc<Mutex<StoreMode>>,
    ) -> Self {
        Self {
            inner,
            clock,
            budgets,
            mode,
        }
    }

    fn mode(&self) -> StoreMode {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn overrun(&self, shape: Shape) -> Duration {
        match shape {
            Shape::Array => self.budgets.batch + OVERRUN,
            Shape::Single => self.budgets.single + OVERRUN,
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn stage(
        &self,
        batch: &Verified<Batch>,
        received_at: SystemTime,
    ) -> Result<Box<dyn Staged>, StoreError> {
        match self.mode() {
            StoreMode::Healthy => self.inner.stage(batch, received_at).await,
            StoreMode::Unavailable => Err(StoreError::Unavailable(
                "injected by the conformance suite: store unavailable".into(),
            )),
            StoreMode::SlowBeforeStaging => {
                self.clock.advance(self.overrun(batch.shape()));
                tokio::task::yield_now().await;
                self.inner.stage(batch, received_at).await
            }
            StoreMode::SlowAfterStaging => {
                let staged = self.inner.stage(batch, received_at).await?;
                self.clock.advance(self.overrun(batch.shape()));
                Ok(staged)
            }
        }
    }
    async fn lease_next(
        &self,
        worker: &str,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Lease, StoreError> {
        self.inner.lease_next(worker, now, lease_for).await
    }
    async fn complete(&self, seq: i64, worker: &str, now: SystemTime) -> Result<(), StoreError> {
        self.inner.complete(seq, worker, now).await
    }
    async fn fail(
        &self,
        seq: i64,
        worker: &str,
        now: SystemTime,
        error: &str,
        then: AfterFailure,
    ) -> Result<(), StoreError> {
        self.inner.fail(seq, worker, now, error, then).await
    }
    async fn status(&self, now: SystemTime) -> Result<QueueStatus, StoreError> {
        self.inner.status(now).await
    }
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters().await
    }
    async fn retry_dead_letter(&self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
        self.inner.retry_dead_letter(id, now).await
    }
    async fn retry_all_dead_letters(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.inner.retry_all_dead_letters(now).await
    }
    async fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        self.inner.entries().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn insert(
        &self,
        batch: &Verified<Batch>,
        received_at: SystemTime,
    ) -> Result<InsertOutcome, StoreError> {
        self.stage(batch, received_at).await?.commit().await
    }
}

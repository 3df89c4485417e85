//! Where acknowledged webhooks live until the worker has handed them on.
//!
//! [`Store`] is the contract every backend keeps ([`SqliteStore`] is the embedded default; a
//! PostgreSQL store follows the same semantics and runs the same behavioural suite,
//! `store::conformance::run_all`, behind the `testing` feature).
//!
//! # Semantics every store keeps
//!
//! **Staging and commit.** [`Store::stage`] writes all webhooks of one request inside one open
//! transaction and returns a [`Staged`] handle; nothing is visible to any reader (the worker,
//! `/status`, another process) until [`Staged::commit`] returns `Ok`. Dropping the handle or
//! calling [`Staged::rollback`] leaves no trace. `commit` returns only when the data is durable
//! (SQLite: WAL with `synchronous=FULL`; PostgreSQL: a synchronous commit). The HTTP layer stages
//! under a deadline and decides before committing, so a missed deadline rolls back and answers
//! 503: a time-out never leaves a stored-but-unacknowledged request behind.
//!
//! **Arrival order.** Every stored webhook gets an arrival position (`seq`, increasing). The new
//! webhooks of one request get increasing positions in body order, and stagings are serialized
//! (SQLite: one writer connection and `BEGIN IMMEDIATE`; PostgreSQL: take a transaction-level
//! advisory lock or a table lock first), so the webhooks of concurrent requests never interleave
//! and a request committed later is wholly after one committed earlier. Webhook ids are UUIDs and
//! are never used for ordering.
//!
//! **Deduplication.** `id` is unique across the whole store, in every state (done and dead
//! included). An id already stored, or seen earlier in the same request, is a *duplicate* when
//! its content is the same ([`Webhook::same_content`]): skipped and acknowledged. With different
//! content it is a *conflict*: kept out (the first version wins), reported in
//! [`InsertOutcome::conflicts`] and logged by the caller. Neither fails the request.
//!
//! **States.** `pending` → `leased` (a worker holds it) → `done`, or back to `pending` with a
//! retry time after a failure, or `dead` (the dead-letter list) after the last allowed attempt.
//! [`Store::retry_dead_letter`] puts a dead letter back to `pending` at its original position,
//! so it is the next to be handed on.
//!
//! **Leasing, strictly in order.** [`Store::lease_next`] only ever offers the *head*: the open
//! (pending or leased) webhook with the lowest position. While the head is leased by another
//! worker (and its lease has not expired) or not yet due for retry, nothing behind it is offered.
//! A worker may take over its own unexpired lease (the same worker name after a restart).
//! Each lease counts as one attempt. [`Store::complete`] and [`Store::fail`] only act on a
//! webhook leased by the same worker, otherwise [`StoreError::LeaseLost`].
//!
//! **Progress.** The store keeps the last received id (the last new webhook committed) and the
//! last processed id (the last one completed), with times, as PassFort advises.
//!
//! Times come from the caller (the receiver's and worker's [`passfort_clock::Clock`]), never from
//! the database server, so tests drive them with a `VirtualClock`.

mod dedup;
mod lease;
mod open;
mod ordering;
#[cfg(feature = "postgres")]
mod postgres;
mod row;
mod sqlite;

#[cfg(feature = "testing")]
pub mod conformance;

pub use open::{migrate, open, open_with, sqlite_path};
pub use ordering::{Ordering, UnknownOrdering};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use row::{from_millis, to_millis};
pub use sqlite::SqliteStore;

use crate::batch::Batch;
use crate::replay::{Positions, StoredWebhook};
use crate::retention::{Cutoffs, Pruned, RetentionStatus};
use crate::verify::Verified;
use crate::webhook::Webhook;
use async_trait::async_trait;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A store shared by the HTTP side, the worker and the admin endpoints.
pub type SharedStore = Arc<dyn Store>;

/// A durable, ordered, deduplicating queue of webhooks. See the [module docs](self) for the
/// semantics every implementation keeps.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Writes the webhooks of one verified request in one open transaction, skipping duplicates
    /// and conflicts; nothing is visible until [`Staged::commit`].
    async fn stage(
        &self,
        batch: &Verified<Batch>,
        received_at: SystemTime,
    ) -> Result<Box<dyn Staged>, StoreError>;

    /// Offers the head of the queue to `worker` for `lease_for`, if it is due.
    async fn lease_next(
        &self,
        worker: &str,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Lease, StoreError>;

    /// Marks the leased webhook at `seq` done (the handler succeeded) and records it as the last
    /// processed.
    async fn complete(&self, seq: i64, worker: &str, now: SystemTime) -> Result<(), StoreError>;

    /// Records a failed attempt on the leased webhook at `seq` and either schedules a retry or
    /// moves it to the dead-letter list.
    async fn fail(
        &self,
        seq: i64,
        worker: &str,
        now: SystemTime,
        error: &str,
        then: AfterFailure,
    ) -> Result<(), StoreError>;

    /// The queue as the status page shows it.
    async fn status(&self, now: SystemTime) -> Result<QueueStatus, StoreError>;

    /// Every dead letter, in arrival order.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError>;

    /// Puts the dead letter with webhook id `id` back in the queue at its original position;
    /// `false` when there is no such dead letter.
    async fn retry_dead_letter(&self, id: &str, now: SystemTime) -> Result<bool, StoreError>;

    /// Puts every dead letter back in the queue; returns how many.
    async fn retry_all_dead_letters(&self, now: SystemTime) -> Result<u64, StoreError>;

    /// Every stored webhook in arrival order with its state: for tests, audits and tools.
    async fn entries(&self) -> Result<Vec<Entry>, StoreError>;

    /// Whether the store answers at all (for `/healthz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// One small pruning transaction: erases the bodies of up to `limit` webhooks processed at
    /// or before `cutoffs.bodies` and forgets up to `limit` processed at or before
    /// `cutoffs.ids` (never pending, leased or dead ones), and adds them to the store's
    /// counters. See [`crate::retention`].
    async fn prune_step(&self, _cutoffs: &Cutoffs, _limit: u32) -> Result<Pruned, StoreError> {
        Err(StoreError::Unsupported("retention"))
    }

    /// What pruning at `cutoffs` would erase and forget, changing nothing.
    async fn prune_preview(&self, _cutoffs: &Cutoffs) -> Result<Pruned, StoreError> {
        Err(StoreError::Unsupported("retention"))
    }

    /// After pruning: gives freed space back to the file system and removes erased content
    /// from the store's own logs, as far as the backend allows (see `docs/operating.md`).
    async fn reclaim_space(&self) -> Result<(), StoreError> {
        Err(StoreError::Unsupported("retention"))
    }

    /// Gives up on the dead letter with webhook id `id`: erases its body now and finishes it,
    /// keeping its id (forgotten after `keep-ids` like a processed one); `false` when there is
    /// no such dead letter.
    async fn drop_dead_letter(&self, _id: &str, _now: SystemTime) -> Result<bool, StoreError> {
        Err(StoreError::Unsupported("dropping dead letters"))
    }

    /// The retention figures of the status page.
    async fn retention_status(&self) -> Result<RetentionStatus, StoreError> {
        Err(StoreError::Unsupported("retention"))
    }

    /// Up to `limit` stored webhooks within `range` with a position above `after_seq`, in
    /// arrival order, erased ones included: the pages of [`crate::replay::stored_webhooks`].
    async fn stored_page(
        &self,
        _range: &Positions,
        _after_seq: i64,
        _limit: u32,
    ) -> Result<Vec<StoredWebhook>, StoreError> {
        Err(StoreError::Unsupported("replay"))
    }

    /// The arrival position of the stored webhook with id `id`.
    async fn seq_of(&self, _id: &str) -> Result<Option<i64>, StoreError> {
        Err(StoreError::Unsupported("replay"))
    }

    /// Stages and commits at once: for tools and tests that have no deadline to meet.
    async fn insert(
        &self,
        batch: &Verified<Batch>,
        received_at: SystemTime,
    ) -> Result<InsertOutcome, StoreError> {
        self.stage(batch, received_at).await?.commit().await
    }
}

/// One request's webhooks written but not yet committed. Dropping it rolls back.
#[async_trait]
pub trait Staged: Send {
    /// What the commit will store.
    fn outcome(&self) -> &InsertOutcome;

    /// Makes the staged webhooks durable and visible; returns only once they are on disk.
    async fn commit(self: Box<Self>) -> Result<InsertOutcome, StoreError>;

    /// Discards everything staged.
    async fn rollback(self: Box<Self>) -> Result<(), StoreError>;
}

/// What inserting one request did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InsertOutcome {
    /// Ids newly stored, in arrival order.
    pub stored: Vec<String>,
    /// Ids already stored with the same content (or repeated within the request): skipped.
    pub duplicates: Vec<String>,
    /// Ids already stored with different content: kept out.
    pub conflicts: Vec<String>,
}

/// What [`Store::lease_next`] found at the head of the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Lease {
    /// The head is now leased to the asking worker.
    Acquired(Leased),
    /// The head waits for a retry at this time.
    NotBefore(SystemTime),
    /// The head is leased by another worker until this time.
    Busy {
        /// When that lease expires.
        until: SystemTime,
        /// The worker holding it.
        owner: String,
    },
    /// Nothing is waiting.
    Empty,
}

/// A webhook leased to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    /// Its arrival position.
    pub seq: i64,
    /// The webhook as stored.
    pub webhook: Webhook,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
    /// When it was received.
    pub received_at: SystemTime,
}

/// What happens to a webhook whose handler failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Back to pending, not offered before this time.
    RetryAt(SystemTime),
    /// Moved to the dead-letter list; the queue moves on past it.
    DeadLetter,
}

/// The state of a stored webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for the worker (possibly for a retry time).
    Pending,
    /// A worker holds it.
    Leased,
    /// Handed on successfully.
    Done,
    /// Gave up after the last allowed attempt.
    Dead,
}

impl State {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Leased => "leased",
            State::Done => "done",
            State::Dead => "dead",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => State::Pending,
            "leased" => State::Leased,
            "done" => State::Done,
            "dead" => State::Dead,
            _ => return None,
        })
    }
}

/// One stored webhook with its place and state.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Arrival position.
    pub seq: i64,
    /// Position of the request it came in.
    pub request_seq: i64,
    /// Its index within that request's body.
    pub position: i64,
    /// The webhook as stored.
    pub webhook: Webhook,
    /// Its state.
    pub state: State,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was received.
    pub received_at: SystemTime,
    /// When it was handed on, if it was.
    pub processed_at: Option<SystemTime>,
    /// When retention erased its body, if it did: then `webhook` keeps only `id` and `event`.
    pub body_erased_at: Option<SystemTime>,
}

/// A webhook the worker gave up on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Arrival position.
    pub seq: i64,
    /// PassFort's webhook id.
    pub id: String,
    /// The event name.
    pub event: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last handler error.
    pub last_error: Option<String>,
    /// When it was received.
    #[serde(with = "crate::status::time_format")]
    pub received_at: SystemTime,
    /// When it was given up on.
    #[serde(with = "crate::status::time_format::option")]
    pub failed_at: Option<SystemTime>,
}

/// A webhook id with a time: "last received", "last processed".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Marker {
    /// PassFort's webhook id.
    pub id: String,
    /// When.
    #[serde(with = "crate::status::time_format")]
    pub at: SystemTime,
}

/// One failed attempt, for the status page's "recent failures".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// PassFort's webhook id.
    pub id: String,
    /// The event name.
    pub event: String,
    /// Which attempt failed.
    pub attempt: u32,
    /// The handler's error.
    pub error: String,
    /// When.
    #[serde(with = "crate::status::time_format")]
    pub at: SystemTime,
}

/// The queue as `/status` and `passfort-receiver status` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStatus {
    /// Webhooks not yet handed on (pending + leased).
    pub queue_depth: u64,
    /// Of those, how many are leased.
    pub leased: u64,
    /// Handed on.
    pub done: u64,
    /// In the dead-letter list.
    pub dead_letters: u64,
    /// The last new webhook committed.
    pub last_received: Option<Marker>,
    /// The last webhook handed on.
    pub last_processed: Option<Marker>,
    /// When the oldest webhook not yet handed on arrived (processing lag = now − this).
    #[serde(with = "crate::status::time_format::option")]
    pub oldest_pending_since: Option<SystemTime>,
    /// When the head waits for a retry, until when.
    #[serde(with = "crate::status::time_format::option")]
    pub next_retry_at: Option<SystemTime>,
    /// When the head first failed in its current run of failures (it is stalled since then and
    /// the webhooks behind it wait), or `None` when it has not failed (or nothing waits).
    #[serde(with = "crate::status::time_format::option")]
    pub stalled_since: Option<SystemTime>,
    /// The 10 most recent failures of webhooks not yet handed on, newest first.
    pub recent_failures: Vec<Failure>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the operation; answered as 503.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The webhook is not (or no longer) leased by this worker.
    #[error("webhook at position {seq} is not leased by this worker")]
    LeaseLost {
        /// Its arrival position.
        seq: i64,
    },
    /// Stored data could not be read back.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The database URL names a backend this build does not have.
    #[error(
        "unsupported database URL (expected sqlite://PATH or postgres://USER@HOST/DATABASE): {0}"
    )]
    UnsupportedUrl(String),
    /// This store does not implement an optional part of the contract.
    #[error("this store does not support {0}")]
    Unsupported(&'static str),
    /// The backend cannot keep the ordering asked for (per-profile needs PostgreSQL).
    #[error("{ordering} ordering is not supported by {backend}")]
    UnsupportedOrdering {
        /// The ordering asked for.
        ordering: Ordering,
        /// The backend that cannot keep it.
        backend: &'static str,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
}

#[async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn stage(
        &self,
        batch: &Verified<Batch>,
        received_at: SystemTime,
    ) -> Result<Box<dyn Staged>, StoreError> {
        (**self).stage(batch, received_at).await
    }
    async fn lease_next(
        &self,
        worker: &str,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Lease, StoreError> {
        (**self).lease_next(worker, now, lease_for).await
    }
    async fn complete(&self, seq: i64, worker: &str, now: SystemTime) -> Result<(), StoreError> {
        (**self).complete(seq, worker, now).await
    }
    async fn fail(
        &self,
        seq: i64,
        worker: &str,
        now: SystemTime,
        error: &str,
        then: AfterFailure,
    ) -> Result<(), StoreError> {
        (**self).fail(seq, worker, now, error, then).await
    }
    async fn status(&self, now: SystemTime) -> Result<QueueStatus, StoreError> {
        (**self).status(now).await
    }
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        (**self).dead_letters().await
    }
    async fn retry_dead_letter(&self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
        (**self).retry_dead_letter(id, now).await
    }
    async fn retry_all_dead_letters(&self, now: SystemTime) -> Result<u64, StoreError> {
        (**self).retry_all_dead_letters(now).await
    }
    async fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        (**self).entries().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        (**self).ping().await
    }
    async fn prune_step(&self, cutoffs: &Cutoffs, limit: u32) -> Result<Pruned, StoreError> {
        (**self).prune_step(cutoffs, limit).await
    }
    async fn prune_preview(&self, cutoffs: &Cutoffs) -> Result<Pruned, StoreError> {
        (**self).prune_preview(cutoffs).await
    }
    async fn reclaim_space(&self) -> Result<(), StoreError> {
        (**self).reclaim_space().await
    }
    async fn drop_dead_letter(&self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
        (**self).drop_dead_letter(id, now).await
    }
    async fn retention_status(&self) -> Result<RetentionStatus, StoreError> {
        (**self).retention_status().await
    }
    async fn stored_page(
        &self,
        range: &Positions,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredWebhook>, StoreError> {
        (**self).stored_page(range, after_seq, limit).await
    }
    async fn seq_of(&self, id: &str) -> Result<Option<i64>, StoreError> {
        (**self).seq_of(id).await
    }
}

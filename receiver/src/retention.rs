//! How long personal data is kept, and how it is erased: where a webhook is erased.
//!
//! A webhook's body carries personal data (`COLLECTED_DATA_*` bodies hold names, dates of birth
//! and addresses). Once the webhook has been **processed** (handed on) for longer than
//! [`Retention::keep_bodies`] (default 30 days), its body is erased; its id, event, arrival
//! position and times stay until [`Retention::keep_ids`] (default 90 days) has passed, so that a
//! late redelivery is still recognised as a duplicate (answered 200, nothing stored, nothing
//! handed on). Then the row goes. Pending, leased and dead-lettered webhooks are never pruned.
//!
//! PassFort retries a failed delivery for about 34 hours (twelve back-offs from 30 s), then once
//! a day for as long as webhooks stay enabled: the defaults keep ids far beyond any redelivery
//! of a webhook that was acknowledged. Once an id is forgotten, a redelivery of it would be
//! stored and handed on again.
//!
//! [`prune`] works in small transactions ([`PRUNE_STEP`] rows each) so that an answer never waits
//! behind it for long, then asks the store to give the freed space back and to remove erased
//! content from its logs ([`Store::reclaim_space`]). [`Pruner`] runs it every `--prune-every` on
//! the receiver's [`Clock`].

use crate::store::{SharedStore, Store, StoreError};
use passfort_clock::{Clock, SharedClock};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// Default `--keep-bodies`: 30 days after processing.
pub const DEFAULT_KEEP_BODIES: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default `--keep-ids`: 90 days after processing.
pub const DEFAULT_KEEP_IDS: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// Default `--prune-every`: 10 minutes.
pub const DEFAULT_PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);
/// Rows erased or forgotten per transaction. An answer that arrives during a step waits for it
/// (SQLite has one writer), so steps are small: the wait is about one step (figures in
/// docs/operating.md), and a prune's total time matters far less than PassFort's answers.
pub const PRUNE_STEP: u32 = 25;

/// Why a retention policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// Ids must outlive bodies: an id forgotten while its body is kept would be a body nobody
    /// can deduplicate against.
    #[error("--keep-ids ({keep_ids}) must not be shorter than --keep-bodies ({keep_bodies})")]
    IdsShorterThanBodies {
        /// `--keep-ids` as given.
        keep_ids: String,
        /// `--keep-bodies` as given.
        keep_bodies: String,
    },
}

/// How long processed webhooks keep their bodies and their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    keep_bodies: Duration,
    keep_ids: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_bodies: DEFAULT_KEEP_BODIES,
            keep_ids: DEFAULT_KEEP_IDS,
        }
    }
}

impl Retention {
    /// Bodies kept `keep_bodies` after processing, ids `keep_ids`; refused if ids would go
    /// first.
    pub fn new(keep_bodies: Duration, keep_ids: Duration) -> Result<Self, RetentionError> {
        if keep_ids < keep_bodies {
            return Err(RetentionError::IdsShorterThanBodies {
                keep_ids: humantime::format_duration(keep_ids).to_string(),
                keep_bodies: humantime::format_duration(keep_bodies).to_string(),
            });
        }
        Ok(Self {
            keep_bodies,
            keep_ids,
        })
    }

    /// How long a processed webhook keeps its body.
    pub fn keep_bodies(&self) -> Duration {
        self.keep_bodies
    }

    /// How long a processed webhook's id is remembered.
    pub fn keep_ids(&self) -> Duration {
        self.keep_ids
    }

    /// What is due at `now`.
    pub fn cutoffs(&self, now: SystemTime) -> Cutoffs {
        let before = |keep: Duration| {
            now.checked_sub(keep)
                .filter(|t| *t >= SystemTime::UNIX_EPOCH)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        Cutoffs {
            now,
            bodies: before(self.keep_bodies),
            ids: before(self.keep_ids),
        }
    }
}

/// What one prune erases and forgets: webhooks processed at or before these times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// When the prune runs (recorded as the erasure time).
    pub now: SystemTime,
    /// Bodies of webhooks processed at or before this are erased.
    pub bodies: SystemTime,
    /// Rows of webhooks processed at or before this are forgotten.
    pub ids: SystemTime,
}

/// What a prune did (or, dry, would do): `{"bodies_erased": N, "ids_forgotten": M}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Bodies erased (including those of rows forgotten with their body still there).
    pub bodies_erased: u64,
    /// Rows forgotten.
    pub ids_forgotten: u64,
}

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, other: Self) {
        self.bodies_erased += other.bodies_erased;
        self.ids_forgotten += other.ids_forgotten;
    }
}

/// The retention figures of `/status`, `status --json` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionStatus {
    /// Webhooks stored (with or without their body).
    pub webhooks_stored: u64,
    /// Of those, how many still have their body.
    pub bodies_kept: u64,
    /// When the oldest webhook that still has its body was received.
    #[serde(skip)]
    pub oldest_kept_body_received_at: Option<SystemTime>,
    /// The database's size on disk, in bytes (SQLite: the file with its `-wal` and `-shm`;
    /// PostgreSQL: `pg_database_size`).
    pub database_bytes: u64,
    /// Bodies erased so far, by every process on this database.
    pub bodies_erased_total: u64,
    /// Ids forgotten so far, by every process on this database.
    pub ids_forgotten_total: u64,
}

impl RetentionStatus {
    /// How old the oldest kept body is at `now` (zero when none is kept).
    pub fn oldest_kept_body_age(&self, now: SystemTime) -> Duration {
        self.oldest_kept_body_received_at
            .and_then(|at| now.duration_since(at).ok())
            .unwrap_or_default()
    }
}

/// Prunes once at `now`: erases and forgets what `retention` says is due, [`PRUNE_STEP`] rows
/// per transaction, then gives the space back ([`Store::reclaim_space`]).
pub async fn prune(
    store: &dyn Store,
    retention: &Retention,
    now: SystemTime,
) -> Result<Pruned, StoreError> {
    let cutoffs = retention.cutoffs(now);
    let mut total = Pruned::default();
    loop {
        let step = store.prune_step(&cutoffs, PRUNE_STEP).await?;
        total += step;
        if step.bodies_erased < u64::from(PRUNE_STEP) && step.ids_forgotten < u64::from(PRUNE_STEP)
        {
            break;
        }
        // Let the requests waiting for the writer go first.
        tokio::task::yield_now().await;
    }
    store.reclaim_space().await?;
    Ok(total)
}

/// What [`prune`] would do at `now`, changing nothing.
pub async fn prune_preview(
    store: &dyn Store,
    retention: &Retention,
    now: SystemTime,
) -> Result<Pruned, StoreError> {
    store.prune_preview(&retention.cutoffs(now)).await
}

/// Prunes every `every` on a clock, in the background of `serve` and `work`.
#[derive(Debug)]
pub struct Pruner {
    store: SharedStore,
    clock: SharedClock,
    retention: Retention,
    every: Duration,
}

impl Pruner {
    /// Prunes `store` by `retention` every `every` on `clock` (a zero `every` never prunes).
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        retention: Retention,
        every: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            retention,
            every,
        }
    }

    /// Prunes at once, then every `every`, until dropped. Failures are logged and retried at
    /// the next turn: pruning is never worth stopping the receiver for.
    pub async fn run(self) {
        if self.every.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let now = self.clock.now();
            match prune(&*self.store, &self.retention, now).await {
                Ok(pruned) if pruned != Pruned::default() => tracing::info!(
                    bodies_erased = pruned.bodies_erased,
                    ids_forgotten = pruned.ids_forgotten,
                    "pruned"
                ),
                Ok(_) => tracing::debug!("nothing to prune"),
                Err(e) => tracing::warn!(error = %e, "prune failed; retrying at the next turn"),
            }
            self.clock.sleep(self.every).await;
        }
    }

    /// Runs [`Pruner::run`] on its own task; abort the handle to stop it.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_may_not_go_before_bodies() {
        let day = Duration::from_secs(86_400);
        assert!(Retention::new(30 * day, 30 * day).is_ok());
        let err = Retention::new(30 * day, 7 * day).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--keep-ids (7days) must not be shorter than --keep-bodies (30days)"
        );
        let defaults = Retention::default();
        assert_eq!(defaults.keep_bodies(), 30 * day);
        assert_eq!(defaults.keep_ids(), 90 * day);
        let now = SystemTime::UNIX_EPOCH + 100 * day;
        let cut = defaults.cutoffs(now);
        assert_eq!(cut.bodies, SystemTime::UNIX_EPOCH + 70 * day);
        assert_eq!(cut.ids, SystemTime::UNIX_EPOCH + 10 * day);
        assert_eq!(
            Retention::default()
                .cutoffs(SystemTime::UNIX_EPOCH + day)
                .ids,
            SystemTime::UNIX_EPOCH
        );
    }
}

//! The shared store: one PostgreSQL database behind any number of receiver replicas and workers.
//!
//! It keeps exactly the semantics of the [module docs](super), across processes and hosts:
//!
//! - **Arrival order is commit order.** A staging first takes a transaction-level advisory lock
//!   (`pg_advisory_xact_lock`, held until its COMMIT or ROLLBACK) and only then reserves its
//!   request position and one consecutive block of webhook positions. So the webhooks of two
//!   requests never interleave, and a request that commits later always has higher positions:
//!   no worker can ever see a position appear *behind* one it has already handed on.
//! - **Deduplication** is the `UNIQUE (id)` constraint with `ON CONFLICT DO NOTHING`, never a
//!   read-then-write.
//! - **Leases** are rows updated by one conditional `UPDATE … WHERE <still available>`; in
//!   READ COMMITTED PostgreSQL re-checks that condition on the newest row version after waiting
//!   for a concurrent writer, so two workers never both win the same webhook, and a worker
//!   whose lease was taken over cannot complete or fail it ([`StoreError::LeaseLost`]). A
//!   worker killed mid-webhook holds its lease until the deadline; then any worker takes over.
//! - **Lanes.** In [`Ordering::Global`] (the default) only the queue's head is ever offered. In
//!   [`Ordering::PerProfile`] the head of every profile's lane is offered: a webhook is leased
//!   only when no earlier webhook of its profile is still open, so each profile is handed on in
//!   order by one worker at a time while different profiles proceed in parallel. Every worker
//!   on one database must use the same ordering.
//! - **Progress** ("last received", "last processed") is read from the webhooks themselves (the
//!   highest position; the latest completion), so completions by parallel workers do not
//!   contend on one progress row.
//! - **Failure.** Every operation is one transaction; when PostgreSQL is down or fails over, it
//!   fails with [`StoreError::Unavailable`] (the HTTP side answers 503 and nothing is stored)
//!   and the pool reconnects by itself once the server is back.
//! - **Migrations** (`migrations/postgres/*.sql`) run at open on a dedicated connection under
//!   sqlx's session advisory lock, so replicas starting together apply each migration once;
//!   the connection is closed afterwards, which releases the lock even if a migration failed.

use super::dedup::sort_outcome;
use super::lease::blocked;
use super::row::{
    after_failure, count_of, dead_letter_of, entry_of, forgotten_of, from_millis, kept_webhook_of,
    retention_status_of, shape_name, stored_webhook_of, to_millis, webhook_of, StoredRow,
};
use super::{
    AfterFailure, DeadLetter, Entry, Failure, InsertOutcome, Lease, Leased, Marker, Ordering,
    QueueStatus, Staged, Store, StoreError,
};
use crate::batch::Batch;
use crate::replay::{Positions, StoredWebhook};
use crate::retention::{Cutoffs, Pruned, RetentionStatus};
use crate::verify::Verified;
use crate::webhook::Webhook;
use async_trait::async_trait;
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Postgres, Row, Transaction};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// The schema, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key that serializes stagings (per database): "passfort" in ASCII.
const STAGING_LOCK: i64 = 0x7061_7373_666f_7274;

/// Connections per process: one per request being staged, plus the worker and status readers.
const DEFAULT_CONNECTIONS: u32 = 16;

/// How long an operation waits for a connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often `lease_next` retries when another worker changed the webhook it picked.
const LEASE_TRIES: usize = 32;

/// Leases the earliest lane head that is due and free (or the asking worker's own) to `$1`
/// until `$2`, at `$3`, looking at the open webhooks of `$candidates`. A lane head is the lowest
/// open position of its lane (one index probe per candidate). The outer condition is
/// re-checked by PostgreSQL on the newest row version if another worker got there first.
macro_rules! lease_lane_head {
    ($candidates:literal, $order:literal, $lock:literal) => {
        concat!(
            "UPDATE webhooks SET state = 'leased', lease_owner = $1, lease_until_ms = $2, \
                    attempts = attempts + 1, next_attempt_at_ms = NULL \
             WHERE seq = (SELECT w.seq FROM ",
            $candidates,
            " AS w \
                 WHERE ((w.state = 'pending' AND COALESCE(w.next_attempt_at_ms, 0) <= $3) \
                     OR (w.state = 'leased' AND (w.lease_owner = $1 \
                                                 OR COALESCE(w.lease_until_ms, 0) <= $3))) \
                   AND w.seq = (SELECT min(e.seq) FROM webhooks e \
                                WHERE e.lane = w.lane AND e.state IN ('pending', 'leased')) \
                 ORDER BY ",
            $order,
            " LIMIT 1 ",
            $lock,
            ") \
               AND ((state = 'pending' AND COALESCE(next_attempt_at_ms, 0) <= $3) \
                 OR (state = 'leased' AND (lease_owner = $1 \
                                           OR COALESCE(lease_until_ms, 0) <= $3))) \
             RETURNING seq, body, attempts, received_at_ms"
        )
    };
}

/// The fast path: only the first open webhooks, in position order, are candidates. The
/// `LIMIT` keeps the subquery apart, so the head probe runs on those few rows whatever plan
/// PostgreSQL picks (before the table has statistics it would otherwise probe every open
/// webhook).
const LEASE_LANE_HEAD: &str = lease_lane_head!(
    "(SELECT seq, lane, state, next_attempt_at_ms, lease_owner, lease_until_ms \
      FROM webhooks WHERE state IN ('pending', 'leased') ORDER BY seq LIMIT 64)",
    "w.seq",
    ""
);

/// After a collision: any free head among the first open webhooks, at random, so that workers
/// racing for the same earliest head spread over lanes instead of queueing behind one another.
const LEASE_ANY_LANE_HEAD: &str = lease_lane_head!(
    "(SELECT seq, lane, state, next_attempt_at_ms, lease_owner, lease_until_ms \
      FROM webhooks WHERE state IN ('pending', 'leased') ORDER BY seq LIMIT 64)",
    "random()",
    ""
);

/// Every open webhook is a candidate, skipping heads other workers are leasing right now (when
/// the first open webhooks all wait, or collisions went on). A skipped head is never replaced by a
/// later webhook of its lane: in this statement's snapshot the skipped head is still open, so
/// nothing behind it counts as a head.
const LEASE_LANE_HEAD_SKIP_LOCKED: &str = lease_lane_head!(
    "(SELECT * FROM webhooks WHERE state IN ('pending', 'leased'))",
    "w.seq",
    "FOR UPDATE OF w SKIP LOCKED"
);

/// A [`Store`] in a PostgreSQL database shared by replicas and workers. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    ordering: Ordering,
    name: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.name)
            .field("ordering", &self.ordering)
            .finish()
    }
}

fn options_of(url: &str) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::UnsupportedUrl(crate::redact::redact_url(url)))?
        .application_name("passfort-receiver")
        // Acknowledged means on disk: never let a server default weaken the commit.
        .options([("synchronous_commit", "on")]);
    Ok(options.disable_statement_logging())
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`), brings the schema
    /// up to date and keeps global order.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Ordering::Global).await
    }

    /// Connects to `url`, brings the schema up to date, and leases webhooks in `ordering`.
    pub async fn open_with(url: &str, ordering: Ordering) -> Result<Self, StoreError> {
        Self::open_with_connections(url, ordering, DEFAULT_CONNECTIONS).await
    }

    /// As [`PostgresStore::open_with`], with at most `connections` connections (default 16):
    /// every replica and worker holds its own pool, and the server's `max_connections` bounds
    /// them all together.
    pub async fn open_with_connections(
        url: &str,
        ordering: Ordering,
        connections: u32,
    ) -> Result<Self, StoreError> {
        Self::migrate(url).await?;
        let options = options_of(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            ordering,
            name: crate::redact::redact_url(url),
        })
    }

    /// Brings the schema at `url` up to date, once, however many processes do it at the same
    /// time (`passfort-receiver migrate`).
    pub async fn migrate(url: &str) -> Result<(), StoreError> {
        let options = options_of(url)?;
        let mut conn = PgConnection::connect_with(&options).await?;
        // `run_direct`, not `run`: `run`'s future is not `Send` for every lifetime, so a store
        // could not be opened inside `tokio::spawn`.
        let result = MIGRATOR.run_direct(&mut conn).await;
        // Closing the session releases sqlx's advisory lock whatever happened.
        let _ = conn.close().await;
        result.map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// The migrations this build applies, by version: for tests and tools.
    pub fn migration_versions() -> Vec<i64> {
        MIGRATOR.iter().map(|m| m.version).collect()
    }

    /// Which webhooks wait for which.
    pub fn ordering(&self) -> Ordering {
        self.ordering
    }

    /// The connection pool, for tools and tests that look at the database directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Leases `seq` to `worker` if it is still available; `None` when another worker changed
    /// it since it was picked.
    async fn try_lease(
        &self,
        seq: i64,
        worker: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<Leased>, StoreError> {
        let row = sqlx::query(
            "UPDATE webhooks SET state = 'leased', lease_owner = $1, lease_until_ms = $2, \
                    attempts = attempts + 1, next_attempt_at_ms = NULL \
             WHERE seq = $3 AND ( \
                   (state = 'pending' AND COALESCE(next_attempt_at_ms, 0) <= $4) \
                OR (state = 'leased' AND (lease_owner = $1 OR COALESCE(lease_until_ms, 0) <= $4))) \
             RETURNING seq, body, attempts, received_at_ms",
        )
        .bind(worker)
        .bind(until_ms)
        .bind(seq)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(leased_of).transpose()
    }

    /// Global order: the head, if `worker` may take it, or why not.
    async fn pick_global(&self, worker: &str, now_ms: i64) -> Result<Pick, StoreError> {
        let head = sqlx::query(
            "SELECT seq, state, next_attempt_at_ms, lease_owner, lease_until_ms FROM webhooks \
             WHERE state IN ('pending', 'leased') ORDER BY seq LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(head) = head else {
            return Ok(Pick::Wait(Lease::Empty));
        };
        let seq: i64 = head.try_get("seq")?;
        Ok(match blocked(&head, worker, now_ms)? {
            Some(lease) => Pick::Wait(lease),
            None => Pick::Take(seq),
        })
    }

    /// Per-profile order: the earliest lane head that is due and free or this worker's own,
    /// else when the next one will be.
    ///
    /// (No separate "my own lease" lookup by owner: every lease leaves an index entry under the
    /// owner's name, so such a lookup slows down with every webhook until a vacuum.)
    async fn pick_per_profile(
        &self,
        worker: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Pick, StoreError> {
        // The earliest lane head that is due and free (or already this worker's: a restarted
        // worker takes its own lease back), leased in the same statement. First among the
        // first open webhooks without row locks (the cheapest when workers do not collide);
        // after a collision any free head there, at random; then among all, with
        // `SKIP LOCKED`.
        for sql in [
            LEASE_LANE_HEAD,
            LEASE_ANY_LANE_HEAD,
            LEASE_ANY_LANE_HEAD,
            LEASE_LANE_HEAD_SKIP_LOCKED,
        ] {
            let row = sqlx::query(sql)
                .bind(worker)
                .bind(until_ms)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                return Ok(Pick::Got(leased_of(&row)?));
            }
        }
        let heads = sqlx::query(
            "SELECT DISTINCT ON (lane) seq, state, next_attempt_at_ms, lease_owner, \
                    lease_until_ms \
             FROM webhooks WHERE state IN ('pending', 'leased') ORDER BY lane, seq",
        )
        .fetch_all(&self.pool)
        .await?;
        if heads.is_empty() {
            return Ok(Pick::Wait(Lease::Empty));
        }
        // Every lane is held or waiting: report the one that frees up first.
        let mut soonest: Option<(i64, Lease)> = None;
        for head in &heads {
            let Some(lease) = blocked(head, worker, now_ms)? else {
                // A head became free since the query above: pick again.
                return Ok(Pick::Again);
            };
            let at = match &lease {
                Lease::NotBefore(at) | Lease::Busy { until: at, .. } => to_millis(*at),
                Lease::Empty | Lease::Acquired(_) => continue,
            };
            if soonest.as_ref().is_none_or(|(best, _)| at < *best) {
                soonest = Some((at, lease));
            }
        }
        Ok(soonest.map_or(Pick::Again, |(_, lease)| Pick::Wait(lease)))
    }
}

/// What leasing found.
enum Pick {
    /// This webhook is available to the worker.
    Take(i64),
    /// Already leased to the worker.
    Got(Leased),
    /// Nothing is available; this says why.
    Wait(Lease),
    /// The picture changed while looking: look again.
    Again,
}

/// The lane of a webhook in the per-profile mode: its `data.profile_id` ('' when absent).
fn lane_of(webhook: &Webhook) -> String {
    match webhook.data.get("profile_id") {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn leased_of(row: &PgRow) -> Result<Leased, StoreError> {
    Ok(Leased {
        seq: row.try_get("seq")?,
        webhook: webhook_of(row)?,
        attempt: row.attempts("attempts")?,
        received_at: from_millis(row.try_get("received_at_ms")?),
    })
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

struct PostgresStaged {
    tx: Transaction<'static, Postgres>,
    outcome: InsertOutcome,
}

#[async_trait]
impl Staged for PostgresStaged {
    fn outcome(&self) -> &InsertOutcome {
        &self.outcome
    }

    async fn commit(self: Box<Self>) -> Result<InsertOutcome, StoreError> {
        let PostgresStaged { tx, outcome } = *self;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn stage(
        &self,
        batch: &Verified<Batch>,
        received_at: SystemTime,
    ) -> Result<Box<dyn Staged>, StoreError> {
        let at = to_millis(received_at);
        // Each id once, at its first place in the body; repeats are sorted out below.
        let mut first_seen: HashSet<&str> = HashSet::new();
        let fresh: Vec<(usize, &Webhook)> = batch
            .webhooks()
            .iter()
            .enumerate()
            .filter(|(_, w)| first_seen.insert(w.id.as_str()))
            .collect();

        let mut tx = self.pool.begin().await?;
        // The lock is held until COMMIT/ROLLBACK: positions are reserved in commit order.
        let n = count(fresh.len());
        let reserved = sqlx::query(
            "SELECT nextval('request_arrival') AS request_seq, \
                    CASE WHEN $2 > 0 \
                         THEN setval('webhook_arrival', nextval('webhook_arrival') + $2 - 1) \
                         ELSE 0 END AS last_seq \
             FROM (SELECT pg_advisory_xact_lock($1)) AS staging_lock",
        )
        .bind(STAGING_LOCK)
        .bind(n)
        .fetch_one(&mut *tx)
        .await?;
        let request_seq: i64 = reserved.try_get("request_seq")?;
        let first_seq = reserved.try_get::<i64, _>("last_seq")? - n + 1;

        let inserted: HashSet<String> = if fresh.is_empty() {
            HashSet::new()
        } else {
            let mut ids = Vec::with_capacity(fresh.len());
            let mut positions = Vec::with_capacity(fresh.len());
            let mut events = Vec::with_capacity(fresh.len());
            let mut lanes = Vec::with_capacity(fresh.len());
            let mut bodies = Vec::with_capacity(fresh.len());
            for (position, webhook) in &fresh {
                ids.push(webhook.id.clone());
                positions.push(count(*position));
                events.push(webhook.event.clone());
                lanes.push(lane_of(webhook));
                bodies.push(webhook.to_json_string());
            }
            sqlx::query_scalar(
                "INSERT INTO webhooks (seq, id, request_seq, position, event, lane, body, \
                                       received_at_ms) \
                 SELECT $1 + u.n - 1, u.id, $2, u.position, u.event, u.lane, u.body, $3 \
                 FROM UNNEST($4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[]) \
                      WITH ORDINALITY AS u (id, position, event, lane, body, n) \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
            )
            .bind(first_seq)
            .bind(request_seq)
            .bind(at)
            .bind(&ids)
            .bind(&positions)
            .bind(&events)
            .bind(&lanes)
            .bind(&bodies)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
        };

        let existing: Vec<String> = fresh
            .iter()
            .filter(|(_, w)| !inserted.contains(&w.id))
            .map(|(_, w)| w.id.clone())
            .collect();
        // `None`: the body was erased by retention; still a duplicate (nothing to compare).
        let mut stored_before: HashMap<String, Option<Webhook>> = HashMap::new();
        if !existing.is_empty() {
            let rows = sqlx::query(
                "SELECT id, event, body, body_erased_at_ms FROM webhooks WHERE id = ANY($1)",
            )
            .bind(&existing)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                stored_before.insert(row.try_get("id")?, kept_webhook_of(row)?);
            }
        }
        let outcome = sort_outcome(batch.webhooks(), |id| inserted.contains(id), &stored_before)?;
        // Deferred foreign key: the request row may follow its webhooks.
        sqlx::query(
            "INSERT INTO requests (seq, received_at_ms, shape, webhooks, stored, duplicates, \
                                   conflicts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(request_seq)
        .bind(at)
        .bind(shape_name(batch.shape()))
        .bind(count(batch.len()))
        .bind(count(outcome.stored.len()))
        .bind(count(outcome.duplicates.len()))
        .bind(count(outcome.conflicts.len()))
        .execute(&mut *tx)
        .await?;
        Ok(Box::new(PostgresStaged { tx, outcome }))
    }

    async fn lease_next(
        &self,
        worker: &str,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Lease, StoreError> {
        let now_ms = to_millis(now);
        let until_ms = to_millis(passfort_clock::after(now, lease_for));
        for _ in 0..LEASE_TRIES {
            let pick = match self.ordering {
                Ordering::Global => self.pick_global(worker, now_ms).await?,
                Ordering::PerProfile => self.pick_per_profile(worker, now_ms, until_ms).await?,
            };
            match pick {
                Pick::Take(seq) => {
                    if let Some(leased) = self.try_lease(seq, worker, now_ms, until_ms).await? {
                        return Ok(Lease::Acquired(leased));
                    }
                }
                Pick::Got(leased) => return Ok(Lease::Acquired(leased)),
                Pick::Wait(lease) => return Ok(lease),
                Pick::Again => {}
            }
        }
        // Other workers kept winning the race: they are making progress; ask again shortly.
        Ok(Lease::Busy {
            until: now,
            owner: String::new(),
        })
    }

    async fn complete(&self, seq: i64, worker: &str, now: SystemTime) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET state = 'done', processed_at_ms = $1, lease_owner = NULL, \
                    lease_until_ms = NULL \
             WHERE seq = $2 AND state = 'leased' AND lease_owner = $3",
        )
        .bind(to_millis(now))
        .bind(seq)
        .bind(worker)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost { seq })
        }
    }

    async fn fail(
        &self,
        seq: i64,
        worker: &str,
        now: SystemTime,
        error: &str,
        then: AfterFailure,
    ) -> Result<(), StoreError> {
        let now_ms = to_millis(now);
        let (state, next, failed_at) = after_failure(then, now_ms);
        let recorded = sqlx::query(
            "WITH failed AS ( \
                 UPDATE webhooks SET state = $1, next_attempt_at_ms = $2, failed_at_ms = $3, \
                        last_error = $4, lease_owner = NULL, lease_until_ms = NULL \
                 WHERE seq = $5 AND state = 'leased' AND lease_owner = $6 \
                 RETURNING seq, attempts) \
             INSERT INTO failures (webhook_seq, attempt, error, failed_at_ms) \
             SELECT seq, attempts, $4, $7 FROM failed",
        )
        .bind(state.as_str())
        .bind(next)
        .bind(failed_at)
        .bind(error)
        .bind(seq)
        .bind(worker)
        .bind(now_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if recorded == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost { seq })
        }
    }

    async fn status(&self, _now: SystemTime) -> Result<QueueStatus, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One snapshot for the whole page.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let counts = sqlx::query(
            "SELECT \
               COUNT(*) FILTER (WHERE state IN ('pending', 'leased')) AS open, \
               COUNT(*) FILTER (WHERE state = 'leased') AS leased, \
               COUNT(*) FILTER (WHERE state = 'done') AS done, \
               COUNT(*) FILTER (WHERE state = 'dead') AS dead \
             FROM webhooks",
        )
        .fetch_one(&mut *tx)
        .await?;
        let number = |name: &str| -> Result<u64, StoreError> {
            let n: i64 = counts.try_get(name)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let marker = |row: Option<PgRow>, at: &str| -> Result<Option<Marker>, StoreError> {
            row.map(|row| {
                Ok(Marker {
                    id: row.try_get("id")?,
                    at: from_millis(row.try_get(at)?),
                })
            })
            .transpose()
        };
        let received =
            sqlx::query("SELECT id, received_at_ms FROM webhooks ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let processed = sqlx::query(
            "SELECT id, processed_at_ms FROM webhooks \
             WHERE state = 'done' AND dropped_at_ms IS NULL \
             ORDER BY processed_at_ms DESC, seq DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let head = sqlx::query(super::row::HEAD_STATUS_SQL)
            .fetch_optional(&mut *tx)
            .await?;
        let super::row::HeadStatus {
            oldest_pending_since,
            next_retry_at,
            stalled_since,
        } = super::row::head_status(head.as_ref())?;
        let failures = sqlx::query(
            "SELECT w.id, w.event, f.attempt, f.error, f.failed_at_ms \
             FROM failures f JOIN webhooks w ON w.seq = f.webhook_seq \
             WHERE w.state <> 'done' ORDER BY f.seq DESC LIMIT 10",
        )
        .fetch_all(&mut *tx)
        .await?;
        let recent_failures = failures
            .iter()
            .map(|row| {
                Ok(Failure {
                    id: row.try_get("id")?,
                    event: row.try_get("event")?,
                    attempt: row.attempts("attempt")?,
                    error: row.try_get("error")?,
                    at: from_millis(row.try_get("failed_at_ms")?),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        tx.commit().await?;
        Ok(QueueStatus {
            queue_depth: number("open")?,
            leased: number("leased")?,
            done: number("done")?,
            dead_letters: number("dead")?,
            last_received: marker(received, "received_at_ms")?,
            last_processed: marker(processed, "processed_at_ms")?,
            oldest_pending_since,
            next_retry_at,
            stalled_since,
            recent_failures,
        })
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, id, event, attempts, last_error, received_at_ms, failed_at_ms \
             FROM webhooks WHERE state = 'dead' ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(dead_letter_of).collect()
    }

    async fn retry_dead_letter(&self, id: &str, _now: SystemTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET state = 'pending', attempts = 0, next_attempt_at_ms = NULL, \
                    failed_at_ms = NULL \
             WHERE id = $1 AND state = 'dead'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn retry_all_dead_letters(&self, _now: SystemTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET state = 'pending', attempts = 0, next_attempt_at_ms = NULL, \
                    failed_at_ms = NULL \
             WHERE state = 'dead'",
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done)
    }

    async fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, request_seq, position, id, event, body, state, attempts, \
                    received_at_ms, processed_at_ms, body_erased_at_ms \
             FROM webhooks ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_of).collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn prune_step(&self, cutoffs: &Cutoffs, limit: u32) -> Result<Pruned, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = to_millis(cutoffs.now);
        let limit = i64::from(limit);
        // SKIP LOCKED: replicas pruning at once share the work instead of counting it twice.
        let erased: Vec<i64> = sqlx::query_scalar(
            "UPDATE webhooks SET body = '', body_erased_at_ms = $1, last_error = NULL \
             WHERE seq IN (SELECT seq FROM webhooks \
                           WHERE state = 'done' AND body_erased_at_ms IS NULL \
                             AND processed_at_ms <= $2 \
                           ORDER BY processed_at_ms LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING seq",
        )
        .bind(now)
        .bind(to_millis(cutoffs.bodies))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut pruned = Pruned {
            bodies_erased: erased.len() as u64,
            ids_forgotten: 0,
        };
        // Handler errors may quote the payload: they go with the body.
        sqlx::query("DELETE FROM failures WHERE webhook_seq = ANY($1)")
            .bind(&erased)
            .execute(&mut *tx)
            .await?;
        let forget = sqlx::query(
            "SELECT seq, request_seq, body_erased_at_ms FROM webhooks \
             WHERE state = 'done' AND processed_at_ms <= $1 \
             ORDER BY processed_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(to_millis(cutoffs.ids))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if !forget.is_empty() {
            let (seqs, requests, with_body) = forgotten_of(&forget)?;
            pruned.bodies_erased += with_body;
            sqlx::query("DELETE FROM failures WHERE webhook_seq = ANY($1)")
                .bind(&seqs)
                .execute(&mut *tx)
                .await?;
            pruned.ids_forgotten = sqlx::query("DELETE FROM webhooks WHERE seq = ANY($1)")
                .bind(&seqs)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // A request row goes with its last webhook.
            sqlx::query(
                "DELETE FROM requests r WHERE r.seq = ANY($1) \
                 AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.request_seq = r.seq)",
            )
            .bind(&requests)
            .execute(&mut *tx)
            .await?;
        }
        // Requests that stored nothing (every webhook a duplicate) go after `keep-ids` too.
        sqlx::query(
            "DELETE FROM requests WHERE seq IN (\
               SELECT seq FROM requests WHERE received_at_ms <= $1 AND stored = 0 \
               ORDER BY received_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(to_millis(cutoffs.ids))
        .bind(limit)
        .execute(&mut *tx)
        .await?;
        if pruned != Pruned::default() {
            sqlx::query(
                "UPDATE retention SET bodies_erased = bodies_erased + $1, \
                        ids_forgotten = ids_forgotten + $2 WHERE singleton = 1",
            )
            .bind(i64::try_from(pruned.bodies_erased).unwrap_or(i64::MAX))
            .bind(i64::try_from(pruned.ids_forgotten).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(pruned)
    }

    async fn prune_preview(&self, cutoffs: &Cutoffs) -> Result<Pruned, StoreError> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM webhooks WHERE state = 'done' \
                  AND body_erased_at_ms IS NULL AND processed_at_ms <= $1) AS bodies, \
               (SELECT COUNT(*) FROM webhooks WHERE state = 'done' \
                  AND processed_at_ms <= $2) AS ids",
        )
        .bind(to_millis(cutoffs.bodies))
        .bind(to_millis(cutoffs.ids))
        .fetch_one(&self.pool)
        .await?;
        Ok(Pruned {
            bodies_erased: count_of(&row, "bodies")?,
            ids_forgotten: count_of(&row, "ids")?,
        })
    }

    async fn reclaim_space(&self) -> Result<(), StoreError> {
        // Marks the erased versions' space reusable and truncates empty pages at the end of
        // each table. It does not overwrite them: see docs/operating.md for what remains where.
        // Outside a transaction (simple protocol), and never FULL: that would lock the table.
        sqlx::raw_sql("VACUUM webhooks, failures, requests")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn drop_dead_letter(&self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
        let now = to_millis(now);
        let mut tx = self.pool.begin().await?;
        let dropped: Option<i64> = sqlx::query_scalar(
            "UPDATE webhooks SET state = 'done', body = '', body_erased_at_ms = $1, \
                    dropped_at_ms = $1, processed_at_ms = $1, last_error = NULL \
             WHERE id = $2 AND state = 'dead' RETURNING seq",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(seq) = dropped {
            sqlx::query("DELETE FROM failures WHERE webhook_seq = $1")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE retention SET bodies_erased = bodies_erased + 1 WHERE singleton = 1",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(dropped.is_some())
    }

    async fn retention_status(&self) -> Result<RetentionStatus, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM webhooks) AS stored, \
                    (SELECT COUNT(*) FROM webhooks WHERE body_erased_at_ms IS NULL) AS kept, \
                    (SELECT received_at_ms FROM webhooks WHERE body_erased_at_ms IS NULL \
                       ORDER BY seq LIMIT 1) AS oldest, \
                    bodies_erased, ids_forgotten, \
                    pg_database_size(current_database()) AS bytes \
             FROM retention WHERE singleton = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        retention_status_of(&row, count_of(&row, "bytes")?)
    }

    async fn stored_page(
        &self,
        range: &Positions,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredWebhook>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, id, event, body, received_at_ms, body_erased_at_ms FROM webhooks \
             WHERE seq > $1 AND seq >= $2 AND seq <= $3 \
               AND received_at_ms >= $4 AND received_at_ms <= $5 \
             ORDER BY seq LIMIT $6",
        )
        .bind(after_seq)
        .bind(range.from_seq.unwrap_or(i64::MIN))
        .bind(range.to_seq.unwrap_or(i64::MAX))
        .bind(range.since.map_or(i64::MIN, to_millis))
        .bind(range.until.map_or(i64::MAX, to_millis))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_webhook_of).collect()
    }

    async fn seq_of(&self, id: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT seq FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_profiles() {
        let with = Webhook::new("a", "E", None, serde_json::json!({"profile_id": "p1"}));
        let without = Webhook::new("b", "E", None, serde_json::json!({"other": 1}));
        let odd = Webhook::new("c", "E", None, serde_json::json!({"profile_id": 7}));
        assert_eq!(lane_of(&with), "p1");
        assert_eq!(lane_of(&without), "");
        assert_eq!(lane_of(&odd), "7");
    }
}

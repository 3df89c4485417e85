//! The embedded default store: one SQLite file, WAL, `synchronous=FULL`.
//!
//! Writes go through a single writer connection and every write transaction starts with
//! `BEGIN IMMEDIATE`, which serializes requests in this process (the pool hands the connection
//! to one transaction at a time) and against other processes on the same file (the `work`
//! process), so the webhooks of one request always get consecutive arrival positions. Reads for
//! the status page use a separate small pool and never wait behind a write (WAL).
//!
//! Queries are checked at run time (`sqlx::query`), not by compile-time macros, so a clean
//! clone builds without a database or an offline cache; `store::conformance` and this module's
//! tests run every query against the migrated schema.

use super::dedup::sort_outcome;
use super::lease::blocked;
use super::row::{
    after_failure, count_of, dead_letter_of, entry_of, forgotten_of, from_millis, kept_webhook_of,
    retention_status_of, shape_name, stored_webhook_of, to_millis, webhook_of, StoredRow,
};
use super::{
    AfterFailure, DeadLetter, Entry, Failure, InsertOutcome, Lease, Leased, Marker, QueueStatus,
    Staged, Store, StoreError,
};
use crate::batch::Batch;
use crate::replay::{Positions, StoredWebhook};
use crate::retention::{Cutoffs, Pruned, RetentionStatus};
use crate::verify::Verified;
use crate::webhook::Webhook;
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqlitePool, Transaction};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows per multi-row statement: 6 parameters each, far under SQLite's 32 766.
const INSERT_CHUNK: usize = 500;

/// How many connections serve reads (status, entries, dead-letter lists).
const READERS: u32 = 2;

/// A [`Store`] in a SQLite file (or in memory, for tests).
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    url: String,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("url", &self.url)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if absent) the database at `url` (`sqlite://PATH` or `sqlite:PATH`;
    /// `sqlite::memory:` for a private in-memory database) and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(url.to_owned()))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full)
            // Erased means erased: deleted and overwritten content is zeroed in the file, not
            // left in free space. Set explicitly: the bundled SQLite's default may differ.
            .pragma("secure_delete", "ON");
        let options = if in_memory {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal)
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // The one writer connection is local and long-lived: pinging it before every
            // transaction would only add a round trip to the answer.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30));
        // A write that fails on a full disk (SQLITE_FULL, SQLITE_IOERR) may make SQLite roll
        // the transaction back by itself; sqlx's own ROLLBACK then fails and the connection
        // believes it is still inside a transaction, refusing every later BEGIN: a disk full
        // for a minute became an outage until restart. Such a connection is closed when it is
        // handed back (closing rolls back whatever SQLite still holds) and the pool opens a
        // fresh one. An in-memory database lives on its one connection, so it keeps it.
        let writer = if in_memory {
            writer
        } else {
            writer.after_release(|conn, _| {
                Box::pin(async move {
                    // The ping runs after the rollback sqlx queued for a dropped transaction.
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
        };
        let writer = writer.connect_with(options.clone()).await?;
        if !in_memory {
            give_space_back_when_freed(&writer).await?;
        }
        sqlx::migrate!("./migrations")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        // An in-memory database exists only on its one connection: reads share the writer.
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?
        };
        Ok(Self {
            writer,
            reader,
            url: url.to_owned(),
        })
    }

    /// A private in-memory store: for tests and examples that need no file.
    pub async fn in_memory() -> Result<Self, StoreError> {
        Self::open("sqlite::memory:").await
    }

    /// Closes both pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    fn is_in_memory(&self) -> bool {
        self.url.contains(":memory:") || self.url.contains("mode=memory")
    }

    /// The database file with its `-wal` and `-shm`, in bytes: what the database takes on disk.
    fn files_size(&self) -> Option<u64> {
        let path = crate::store::sqlite_path(&self.url)?;
        let mut total = std::fs::metadata(&path).ok()?.len();
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            total += std::fs::metadata(side).map(|m| m.len()).unwrap_or(0);
        }
        Some(total)
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Puts the database in `auto_vacuum = INCREMENTAL` mode, so that pages freed by pruning can be
/// handed back to the file system ([`Store::reclaim_space`]). A database created before this
/// (or by another tool) is converted once with a full `VACUUM`, which also rewrites away any
/// content deleted before `secure_delete` was on.
async fn give_space_back_when_freed(writer: &SqlitePool) -> Result<(), StoreError> {
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(writer)
        .await?;
    if mode != 2 {
        tracing::info!("converting the database to incremental auto-vacuum (once)");
        sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
            .execute(writer)
            .await?;
        sqlx::query("VACUUM").execute(writer).await?;
    }
    Ok(())
}

/// Pages handed back per `incremental_vacuum` statement: each is its own short write.
const VACUUM_PAGES: u32 = 1024;

/// `?, ?, …` for `n` values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Erases the bodies of the webhooks at `seqs` (all done), inside `tx`; returns how many.
///
/// Each row is deleted and inserted again without its body (and without its last error and
/// failures, which may quote the payload): an `UPDATE` would leave every page the bodies filled
/// nearly empty but still in the file, while deleted rows let SQLite merge pages, which
/// [`Store::reclaim_space`] then hands back.
async fn erase_bodies(
    tx: &mut Transaction<'static, Sqlite>,
    seqs: &[i64],
    now_ms: i64,
) -> Result<u64, StoreError> {
    const KEPT: &str = "seq, id, request_seq, position, event, state, attempts, received_at_ms, \
                        processed_at_ms, dropped_at_ms";
    let list = placeholders(seqs.len());
    let statements = [
        format!("DELETE FROM failures WHERE webhook_seq IN ({list})"),
        format!("INSERT INTO erasing ({KEPT}) SELECT {KEPT} FROM webhooks WHERE seq IN ({list})"),
        format!("DELETE FROM webhooks WHERE seq IN ({list})"),
    ];
    let mut erased = 0;
    for sql in &statements {
        let mut statement = sqlx::query(sql);
        for seq in seqs {
            statement = statement.bind(seq);
        }
        let rows = statement.execute(&mut **tx).await?.rows_affected();
        if sql.starts_with("INSERT") {
            erased = rows;
        }
    }
    sqlx::query(&format!(
        "INSERT INTO webhooks ({KEPT}, body, body_erased_at_ms) \
         SELECT {KEPT}, '', ? FROM erasing ORDER BY seq"
    ))
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM erasing")
        .execute(&mut **tx)
        .await?;
    Ok(erased)
}

struct SqliteStaged {
    tx: Transaction<'static, Sqlite>,
    outcome: InsertOutcome,
}

#[async_trait]
impl Staged for SqliteStaged {
    fn outcome(&self) -> &InsertOutcome {
        &self.outcome
    }

    async fn commit(self: Box<Self>) -> Result<InsertOutcome, StoreError> {
        let SqliteStaged { tx, outcome } = *self;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn stage(
        &self,
        batch: &Verified<Batch>,
        received_at: SystemTime,
    ) -> Result<Box<dyn Staged>, StoreError> {
        let at = to_millis(received_at);
        let mut tx = self.begin().await?;
        let request_seq: i64 = sqlx::query(
            "INSERT INTO requests (received_at_ms, shape, webhooks) VALUES (?, ?, ?) RETURNING seq",
        )
        .bind(at)
        .bind(shape_name(batch.shape()))
        .bind(i64::try_from(batch.len()).unwrap_or(i64::MAX))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;

        // Ids first seen in this request, so a repeat within the body compares with its twin.
        let mut seen: HashMap<&str, &Webhook> = HashMap::new();
        let mut fresh: Vec<(i64, &Webhook, String)> = Vec::new();
        for (position, webhook) in batch.webhooks().iter().enumerate() {
            if !seen.contains_key(webhook.id.as_str()) {
                seen.insert(webhook.id.as_str(), webhook);
                let position = i64::try_from(position).unwrap_or(i64::MAX);
                fresh.push((position, webhook, webhook.to_json_string()));
            }
        }
        // Multi-row inserts (a few statements per request instead of one per webhook); the
        // unique index on `id` skips what is already stored.
        let mut all_inserted = true;
        for chunk in fresh.chunks(INSERT_CHUNK) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO webhooks (id, request_seq, position, event, body, received_at_ms) ",
            );
            insert.push_values(chunk, |mut row, (position, webhook, body)| {
                row.push_bind(&webhook.id)
                    .push_bind(request_seq)
                    .push_bind(*position)
                    .push_bind(&webhook.event)
                    .push_bind(body)
                    .push_bind(at);
            });
            insert.push(" ON CONFLICT (id) DO NOTHING");
            let rows = insert.build().execute(&mut *tx).await?.rows_affected();
            all_inserted &= rows == chunk.len() as u64;
        }
        // The common case (nothing redelivered) needs no read-back. Otherwise the id index
        // tells, for each id, whether this request stored it or which body was there before.
        let mut inserted: HashSet<&str> = HashSet::new();
        // `None`: the body was erased by retention; still a duplicate (nothing to compare).
        let mut existing: HashMap<String, Option<Webhook>> = HashMap::new();
        if all_inserted {
            inserted.extend(fresh.iter().map(|(_, webhook, _)| webhook.id.as_str()));
        } else {
            for chunk in fresh.chunks(INSERT_CHUNK) {
                let mut select = QueryBuilder::<Sqlite>::new(
                    "SELECT id, request_seq, event, body, body_erased_at_ms FROM webhooks \
                     WHERE id IN (",
                );
                let mut ids = select.separated(", ");
                for (_, webhook, _) in chunk {
                    ids.push_bind(&webhook.id);
                }
                select.push(")");
                for row in select.build().fetch_all(&mut *tx).await? {
                    let owner: i64 = row.try_get("request_seq")?;
                    let id: String = row.try_get("id")?;
                    if owner == request_seq {
                        if let Some((_, webhook, _)) = chunk.iter().find(|(_, w, _)| w.id == id) {
                            inserted.insert(webhook.id.as_str());
                        }
                    } else {
                        existing.insert(id, kept_webhook_of(&row)?);
                    }
                }
            }
        }
        let outcome = sort_outcome(batch.webhooks(), |id| inserted.contains(id), &existing)?;

        sqlx::query("UPDATE requests SET stored = ?, duplicates = ?, conflicts = ? WHERE seq = ?")
            .bind(outcome.stored.len() as i64)
            .bind(outcome.duplicates.len() as i64)
            .bind(outcome.conflicts.len() as i64)
            .bind(request_seq)
            .execute(&mut *tx)
            .await?;
        if let Some(last) = outcome.stored.last() {
            sqlx::query(
                "UPDATE progress SET last_received_id = ?, last_received_at_ms = ? \
                 WHERE singleton = 1",
            )
            .bind(last)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Ok(Box::new(SqliteStaged { tx, outcome }))
    }

    async fn lease_next(
        &self,
        worker: &str,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Lease, StoreError> {
        let now_ms = to_millis(now);
        let mut tx = self.begin().await?;
        let head = sqlx::query(
            "SELECT seq, body, state, attempts, next_attempt_at_ms, lease_owner, lease_until_ms, \
                    received_at_ms \
             FROM webhooks WHERE state IN ('pending', 'leased') ORDER BY seq LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(head) = head else {
            tx.commit().await?;
            return Ok(Lease::Empty);
        };
        let seq: i64 = head.try_get("seq")?;
        if let Some(wait) = blocked(&head, worker, now_ms)? {
            tx.commit().await?;
            return Ok(wait);
        }
        let attempt = head.attempts("attempts")?.saturating_add(1);
        let until = to_millis(passfort_clock::after(now, lease_for));
        sqlx::query(
            "UPDATE webhooks SET state = 'leased', lease_owner = ?, lease_until_ms = ?, \
                    attempts = ?, next_attempt_at_ms = NULL \
             WHERE seq = ?",
        )
        .bind(worker)
        .bind(until)
        .bind(i64::from(attempt))
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        let leased = Leased {
            seq,
            webhook: webhook_of(&head)?,
            attempt,
            received_at: from_millis(head.try_get("received_at_ms")?),
        };
        tx.commit().await?;
        Ok(Lease::Acquired(leased))
    }

    async fn complete(&self, seq: i64, worker: &str, now: SystemTime) -> Result<(), StoreError> {
        let now_ms = to_millis(now);
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE webhooks SET state = 'done', processed_at_ms = ?, lease_owner = NULL, \
                    lease_until_ms = NULL \
             WHERE seq = ? AND state = 'leased' AND lease_owner = ? RETURNING id",
        )
        .bind(now_ms)
        .bind(seq)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::LeaseLost { seq });
        };
        let id: String = row.try_get("id")?;
        sqlx::query(
            "UPDATE progress SET last_processed_id = ?, last_processed_at_ms = ? \
             WHERE singleton = 1",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
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
        let mut tx = self.begin().await?;
        let (state, next, failed_at) = after_failure(then, now_ms);
        let row = sqlx::query(
            "UPDATE webhooks SET state = ?, next_attempt_at_ms = ?, failed_at_ms = ?, \
                    last_error = ?, lease_owner = NULL, lease_until_ms = NULL \
             WHERE seq = ? AND state = 'leased' AND lease_owner = ? RETURNING attempts",
        )
        .bind(state.as_str())
        .bind(next)
        .bind(failed_at)
        .bind(error)
        .bind(seq)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::LeaseLost { seq });
        };
        let attempt: i64 = row.try_get("attempts")?;
        sqlx::query(
            "INSERT INTO failures (webhook_seq, attempt, error, failed_at_ms) VALUES (?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(attempt)
        .bind(error)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn status(&self, _now: SystemTime) -> Result<QueueStatus, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let counts = sqlx::query(
            "SELECT \
               COALESCE(SUM(state IN ('pending', 'leased')), 0) AS open, \
               COALESCE(SUM(state = 'leased'), 0) AS leased, \
               COALESCE(SUM(state = 'done'), 0) AS done, \
               COALESCE(SUM(state = 'dead'), 0) AS dead \
             FROM webhooks",
        )
        .fetch_one(&mut *conn)
        .await?;
        let count = |name: &str| -> Result<u64, StoreError> {
            let n: i64 = counts.try_get(name)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let progress = sqlx::query(
            "SELECT last_received_id, last_received_at_ms, last_processed_id, \
                    last_processed_at_ms FROM progress WHERE singleton = 1",
        )
        .fetch_one(&mut *conn)
        .await?;
        let marker = |id: &str, at: &str| -> Result<Option<Marker>, StoreError> {
            let id: Option<String> = progress.try_get(id)?;
            let at: Option<i64> = progress.try_get(at)?;
            Ok(id.map(|id| Marker {
                id,
                at: from_millis(at.unwrap_or(0)),
            }))
        };
        let head = sqlx::query(super::row::HEAD_STATUS_SQL)
            .fetch_optional(&mut *conn)
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
        .fetch_all(&mut *conn)
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
        Ok(QueueStatus {
            queue_depth: count("open")?,
            leased: count("leased")?,
            done: count("done")?,
            dead_letters: count("dead")?,
            last_received: marker("last_received_id", "last_received_at_ms")?,
            last_processed: marker("last_processed_id", "last_processed_at_ms")?,
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
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(dead_letter_of).collect()
    }

    async fn retry_dead_letter(&self, id: &str, _now: SystemTime) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE webhooks SET state = 'pending', attempts = 0, next_attempt_at_ms = NULL, \
                    failed_at_ms = NULL \
             WHERE id = ? AND state = 'dead'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }

    async fn retry_all_dead_letters(&self, _now: SystemTime) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE webhooks SET state = 'pending', attempts = 0, next_attempt_at_ms = NULL, \
                    failed_at_ms = NULL \
             WHERE state = 'dead'",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done)
    }

    async fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, request_seq, position, id, event, body, state, attempts, \
                    received_at_ms, processed_at_ms, body_erased_at_ms \
             FROM webhooks ORDER BY seq",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(entry_of).collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn prune_step(&self, cutoffs: &Cutoffs, limit: u32) -> Result<Pruned, StoreError> {
        let mut tx = self.begin().await?;
        let now = to_millis(cutoffs.now);
        let mut pruned = Pruned::default();
        let due: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM webhooks \
             WHERE state = 'done' AND body_erased_at_ms IS NULL AND processed_at_ms <= ? \
             ORDER BY processed_at_ms LIMIT ?",
        )
        .bind(to_millis(cutoffs.bodies))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if !due.is_empty() {
            pruned.bodies_erased = erase_bodies(&mut tx, &due, now).await?;
        }
        let forget = sqlx::query(
            "SELECT seq, request_seq, body_erased_at_ms FROM webhooks \
             WHERE state = 'done' AND processed_at_ms <= ? ORDER BY processed_at_ms LIMIT ?",
        )
        .bind(to_millis(cutoffs.ids))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if !forget.is_empty() {
            let (seqs, requests, with_body) = forgotten_of(&forget)?;
            pruned.bodies_erased += with_body;
            let list = placeholders(seqs.len());
            for sql in [
                format!("DELETE FROM failures WHERE webhook_seq IN ({list})"),
                format!("DELETE FROM webhooks WHERE seq IN ({list})"),
            ] {
                let mut delete = sqlx::query(&sql);
                for seq in &seqs {
                    delete = delete.bind(seq);
                }
                let gone = delete.execute(&mut *tx).await?.rows_affected();
                if sql.contains("FROM webhooks") {
                    pruned.ids_forgotten = gone;
                }
            }
            // A request row goes with its last webhook.
            let sql = format!(
                "DELETE FROM requests WHERE seq IN ({}) \
                 AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.request_seq = requests.seq)",
                placeholders(requests.len())
            );
            let mut delete = sqlx::query(&sql);
            for seq in &requests {
                delete = delete.bind(seq);
            }
            delete.execute(&mut *tx).await?;
        }
        // Requests that stored nothing (every webhook a duplicate) go after `keep-ids` too.
        sqlx::query(
            "DELETE FROM requests WHERE seq IN (\
               SELECT r.seq FROM requests r WHERE r.received_at_ms <= ? AND r.stored = 0 \
               ORDER BY r.received_at_ms LIMIT ?)",
        )
        .bind(to_millis(cutoffs.ids))
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
        if pruned != Pruned::default() {
            sqlx::query(
                "UPDATE retention SET bodies_erased = bodies_erased + ?, \
                        ids_forgotten = ids_forgotten + ? WHERE singleton = 1",
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
                  AND body_erased_at_ms IS NULL AND processed_at_ms <= ?) AS bodies, \
               (SELECT COUNT(*) FROM webhooks WHERE state = 'done' \
                  AND processed_at_ms <= ?) AS ids",
        )
        .bind(to_millis(cutoffs.bodies))
        .bind(to_millis(cutoffs.ids))
        .fetch_one(&self.reader)
        .await?;
        Ok(Pruned {
            bodies_erased: count_of(&row, "bodies")?,
            ids_forgotten: count_of(&row, "ids")?,
        })
    }

    async fn reclaim_space(&self) -> Result<(), StoreError> {
        if self.is_in_memory() {
            return Ok(());
        }
        // Hand freed pages back in short writes, so answers interleave.
        loop {
            let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                .fetch_one(&self.writer)
                .await?;
            if free == 0 {
                break;
            }
            sqlx::query(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))
                .execute(&self.writer)
                .await?;
            tokio::task::yield_now().await;
        }
        // Erased bodies are still in WAL frames written before the erasure: copy the WAL into
        // the database file and cut the WAL to zero bytes.
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.writer)
            .await?;
        let busy: i64 = row.try_get(0)?;
        if busy != 0 {
            return Err(StoreError::Unavailable(
                "the WAL could not be truncated (another process is reading); erased bodies \
                 may stay in the -wal file until the next prune"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn drop_dead_letter(&self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
        let now = to_millis(now);
        let mut tx = self.begin().await?;
        let dropped: Option<i64> = sqlx::query_scalar(
            "UPDATE webhooks SET state = 'done', dropped_at_ms = ?, processed_at_ms = ? \
             WHERE id = ? AND state = 'dead' RETURNING seq",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(seq) = dropped {
            erase_bodies(&mut tx, &[seq], now).await?;
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
        let mut conn = self.reader.acquire().await?;
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM webhooks) AS stored, \
                    (SELECT COUNT(*) FROM webhooks WHERE body_erased_at_ms IS NULL) AS kept, \
                    (SELECT received_at_ms FROM webhooks WHERE body_erased_at_ms IS NULL \
                       ORDER BY seq LIMIT 1) AS oldest, \
                    bodies_erased, ids_forgotten, \
                    (SELECT page_count FROM pragma_page_count()) AS pages, \
                    (SELECT page_size FROM pragma_page_size()) AS page_size \
             FROM retention WHERE singleton = 1",
        )
        .fetch_one(&mut *conn)
        .await?;
        let in_file = count_of(&row, "pages")?.saturating_mul(count_of(&row, "page_size")?);
        retention_status_of(&row, self.files_size().unwrap_or(in_file))
    }

    async fn stored_page(
        &self,
        range: &Positions,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredWebhook>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, id, event, body, received_at_ms, body_erased_at_ms FROM webhooks \
             WHERE seq > ? AND seq >= ? AND seq <= ? \
               AND received_at_ms >= ? AND received_at_ms <= ? \
             ORDER BY seq LIMIT ?",
        )
        .bind(after_seq)
        .bind(range.from_seq.unwrap_or(i64::MIN))
        .bind(range.to_seq.unwrap_or(i64::MAX))
        .bind(range.since.map_or(i64::MIN, to_millis))
        .bind(range.until.map_or(i64::MAX, to_millis))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(stored_webhook_of).collect()
    }

    async fn seq_of(&self, id: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT seq FROM webhooks WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::{product_status_changed, verified};
    use std::time::UNIX_EPOCH;

    /// Caps the database at its current size plus `extra` pages: SQLite then answers
    /// `SQLITE_FULL` exactly as on a full disk, without one.
    async fn cap(store: &SqliteStore, extra: i64) {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&store.writer)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query(&format!("PRAGMA max_page_count = {}", pages + extra))
            .execute(&store.writer)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// A full database (or disk) must be an outage only while it lasts: once there is room
    /// again the same store, without a restart, stores again. Before the fix the single writer
    /// connection stayed inside the failed transaction and every later write answered
    /// "attempted to call begin_with at non-zero transaction depth".
    #[tokio::test]
    async fn a_full_database_recovers_without_a_restart() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}", dir.path().join("full.db").display());
        let store = SqliteStore::open(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        cap(&store, 4).await;
        let big = "x".repeat(8 * 1024);
        let mut stored = Vec::new();
        let mut failures = 0;
        for n in 0..64 {
            let webhook = product_status_changed().field("padding", big.clone().into());
            let id = webhook.get_id().to_owned();
            match store.insert(&verified(&[webhook]), at).await {
                Ok(outcome) => {
                    assert_eq!(outcome.stored, vec![id.clone()], "webhook {n}");
                    stored.push(id);
                }
                Err(e) => {
                    failures += 1;
                    assert!(
                        e.to_string().contains("full"),
                        "a full database must say so, got: {e}"
                    );
                }
            }
        }
        assert!(failures > 0, "the cap never filled the database");
        let entries = store.entries().await.unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<String> = entries.iter().map(|e| e.webhook.id.clone()).collect();
        assert_eq!(ids, stored, "a failed write left something behind");

        // Room again: the same store takes writes and the worker's path works.
        cap(&store, 10_000).await;
        let webhook = product_status_changed();
        let id = webhook.get_id().to_owned();
        let outcome = store
            .insert(&verified(&[webhook]), at)
            .await
            .unwrap_or_else(|e| panic!("no recovery once there is room: {e}"));
        assert_eq!(outcome.stored, vec![id]);
        let lease = store
            .lease_next("w", at, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("the worker cannot lease after the outage: {e}"));
        let Lease::Acquired(leased) = lease else {
            panic!("expected the head, got {lease:?}");
        };
        store
            .complete(leased.seq, "w", at)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

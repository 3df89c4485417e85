//! What the `passfort-receiver` binary does, so that its `main.rs` only parses flags. Only the
//! binary needs this: everything here is plumbing between flags and the library.
//!
//! `serve` receives (and, unless told otherwise, works the queue in the same process); `work`
//! only works the queue, against the same database; `status` and `dead-letter` inspect and
//! repair it.

use passfort_clock::{Clock, SystemClock};
use passfort_receiver::admin::{AdminToken, AdminTokenSourceError};
use passfort_receiver::allow_list::{AllowList, TrustedProxies};
use passfort_receiver::connection_limits::ConnectionLimits;
use passfort_receiver::replay::{self, ReplayError};
use passfort_receiver::retention::{self, Pruner, Retention, RetentionError};
use passfort_receiver::secret::SecretSourceError;
use passfort_receiver::serve::{bind, serve_with_limits, Public, ServeError};
use passfort_receiver::sink::{Sink, SinkError};
use passfort_receiver::status::Report;
use passfort_receiver::store::{self, Ordering};
use passfort_receiver::{Receiver, RetryPolicy, SecretSet, SharedStore, StoreError, Worker};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The default database: a SQLite file in the working directory, created if absent.
pub const DEFAULT_DATABASE: &str = "sqlite://passfort-webhooks.db";

/// Why a command failed. Messages are one line and never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The secrets could not be read.
    #[error("{0}")]
    Secrets(#[from] SecretSourceError),
    /// The admin token could not be read or is unusable.
    #[error("{0}")]
    AdminToken(#[from] AdminTokenSourceError),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The sink could not be opened.
    #[error("{0}")]
    Sink(#[from] SinkError),
    /// An address could not be bound, or a server failed.
    #[error("{0}")]
    Serve(#[from] ServeError),
    /// A receiver or worker could not be assembled.
    #[error("{0}")]
    Build(String),
    /// The database to inspect does not exist.
    #[error("no database at {}", .0.display())]
    NoDatabase(PathBuf),
    /// No dead letter has this id.
    #[error("no dead letter with id {0}")]
    NoSuchDeadLetter(String),
    /// The retention flags contradict each other.
    #[error("{0}")]
    Retention(#[from] RetentionError),
    /// A replay could not start (an unknown id is bad usage: exit code 2).
    #[error("{0}")]
    Replay(#[from] ReplayError),
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The public address (webhook path and `/healthz`).
    pub listen: SocketAddr,
    /// The private address (the admin page, its API, `/metrics`, `/status`).
    pub admin_listen: SocketAddr,
    /// The database URL.
    pub database: String,
    /// The webhook path.
    pub path: String,
    /// Where the in-process worker hands webhooks.
    pub sink: Sink,
    /// Whether to run the worker in this process.
    pub worker: bool,
    /// The accepted secrets.
    pub secrets: SecretSet,
    /// Retry and dead-letter policy.
    pub retry: RetryPolicy,
    /// Largest body accepted.
    pub body_limit: usize,
    /// Store deadline for a batch.
    pub batch_deadline: Duration,
    /// Store deadline for a single webhook.
    pub single_deadline: Duration,
    /// Which webhooks the in-process worker keeps in order (per-profile: PostgreSQL only).
    pub ordering: Ordering,
    /// Who may post webhooks (`--allow-from`).
    pub allow_from: AllowList,
    /// Proxies whose forwarding headers name the client (`--trust-proxy`).
    pub trust_proxy: TrustedProxies,
    /// Request time limit, idle time and connection cap of the public address.
    pub limits: ConnectionLimits,
    /// How long processed webhooks keep their bodies and ids.
    pub retention: Retention,
    /// How often to prune (zero: never).
    pub prune_every: Duration,
    /// The token unlocking the admin page's actions; `None`: read-only.
    pub admin_token: Option<AdminToken>,
}

/// Everything `work` needs.
#[derive(Debug, Clone)]
pub struct WorkConfig {
    /// The database URL.
    pub database: String,
    /// Where webhooks are handed.
    pub sink: Sink,
    /// Retry and dead-letter policy.
    pub retry: RetryPolicy,
    /// How often to look for new webhooks.
    pub poll_interval: Duration,
    /// Exit once nothing is due (queue empty, or the head waiting for a retry) instead of
    /// running until a signal: for cron-style processing and scripts.
    pub until_idle: bool,
    /// Which webhooks wait for which (per-profile: PostgreSQL only).
    pub ordering: Ordering,
    /// How long a lease lasts: after a crash another worker takes over once it expires.
    pub lease: Duration,
    /// The worker's name in leases (default: see [`default_worker_name`]).
    pub worker_name: Option<String>,
    /// How long processed webhooks keep their bodies and ids.
    pub retention: Retention,
    /// How often to prune (zero: never).
    pub prune_every: Duration,
}

/// The name a worker of this process leases under. On SQLite (one worker per file, normally)
/// it is fixed (`work`, `serve`), so a restarted worker takes over its own lease at once; on
/// PostgreSQL, where several workers share the queue, it is unique per process, so that two
/// workers never share a lease.
pub fn default_worker_name(role: &str, database: &str) -> String {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        format!("{role}-{}-{}", std::process::id(), &unique[..8])
    } else {
        role.to_owned()
    }
}

/// Brings the database schema up to date and says so (`passfort-receiver migrate`); safe to
/// run from several replicas at once.
pub async fn migrate(database: &str) -> Result<String, CommandError> {
    store::migrate(database).await?;
    Ok("database schema is up to date\n".to_owned())
}

/// Receives until `shutdown` completes, then stops accepting, finishes the requests in flight,
/// lets the worker finish its current webhook, and returns. Prints one readiness line on
/// standard error once both addresses are bound.
pub async fn serve<F>(config: ServeConfig, shutdown: F) -> Result<(), CommandError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let store = store::open_with(&config.database, config.ordering).await?;
    // One sink for the worker and for the admin page's Replay; with --no-worker no sink is
    // opened (a broker would be connected to for nothing) and Replay is not offered.
    let handler = if config.worker {
        Some(config.sink.open().await?)
    } else {
        None
    };
    let mut builder = Receiver::builder();
    if let Some(sink) = &handler {
        builder = builder.replay_to(sink.clone());
    }
    if let Some(token) = config.admin_token.clone() {
        builder = builder.admin_token(token);
    }
    let receiver = builder
        .secrets(config.secrets.clone())
        .shared_store(store.clone())
        .path(config.path.clone())
        .body_limit(config.body_limit)
        .batch_deadline(config.batch_deadline)
        .single_deadline(config.single_deadline)
        .allow_list(config.allow_from.clone())
        .trust_proxies(config.trust_proxy.clone())
        .build()
        .map_err(|e| CommandError::Build(e.to_string()))?;
    let public = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    let public_addr = public
        .local_addr()
        .map_err(|e| CommandError::Serve(ServeError::Serve(e)))?;
    let admin_addr = admin
        .local_addr()
        .map_err(|e| CommandError::Serve(ServeError::Serve(e)))?;

    let worker = match handler {
        Some(handler) => Some(
            Worker::builder()
                .receiver(&receiver)
                .handler(handler)
                .retry(config.retry)
                .name(default_worker_name("serve", &config.database))
                .build()
                .map_err(|e| CommandError::Build(e.to_string()))?
                .spawn(),
        ),
        None => None,
    };

    let pruner = Pruner::new(
        store.clone(),
        receiver.clock(),
        config.retention,
        config.prune_every,
    )
    .spawn();
    let public = Public {
        listener: public,
        router: receiver.router(),
        limits: config.limits,
        clock: receiver.clock(),
    };
    let admin = Some((admin, receiver.admin_router()));
    let served = serve_with_limits("passfort-receiver", public, admin, worker, shutdown, || {
        tracing::info!(
            listen = %public_addr, admin = %admin_addr, path = %config.path,
            database = %passfort_receiver::redact_url(&config.database), sink = %config.sink, worker = config.worker,
            secrets = config.secrets.len(), allow_from = ?config.allow_from,
            admin_actions = config.admin_token.is_some(), "passfort-receiver serving"
        );
        eprintln!(
            "passfort-receiver ready listen={public_addr} admin={admin_addr} path={}",
            config.path
        );
    })
    .await;
    pruner.abort();
    served?;
    Ok(())
}

/// Works the queue until `shutdown` completes (finishing the webhook in hand).
pub async fn work<F>(config: WorkConfig, shutdown: F) -> Result<(), CommandError>
where
    F: Future<Output = ()> + Send,
{
    let store = store::open_with(&config.database, config.ordering).await?;
    let handler = config.sink.open().await?;
    let worker = Worker::builder()
        .shared_store(store.clone())
        .handler(handler)
        .retry(config.retry)
        .poll_interval(config.poll_interval)
        .name(
            config
                .worker_name
                .clone()
                .unwrap_or_else(|| default_worker_name("work", &config.database)),
        )
        .lease(config.lease)
        .build()
        .map_err(|e| CommandError::Build(e.to_string()))?;
    let pruner = Pruner::new(
        store.clone(),
        std::sync::Arc::new(SystemClock),
        config.retention,
        config.prune_every,
    )
    .spawn();
    let _stop_pruning = AbortOnDrop(pruner);
    tracing::info!(database = %passfort_receiver::redact_url(&config.database), sink = %config.sink, "passfort-receiver working");
    eprintln!(
        "passfort-receiver ready worker database={}",
        passfort_receiver::redact_url(&config.database)
    );
    if config.until_idle {
        let drained = worker.run_until_idle().await?;
        tracing::info!(
            done = drained.done,
            retried = drained.retried,
            dead_lettered = drained.dead_lettered,
            "nothing due; exiting"
        );
        return Ok(());
    }
    worker.run_until(shutdown).await;
    tracing::info!("passfort-receiver worker stopped");
    Ok(())
}

/// Opens a database that must already exist: `status` and `dead-letter` inspect, they never
/// create an empty database by mistake (a typo in `--database`).
async fn open_existing(database: &str) -> Result<SharedStore, CommandError> {
    if let Some(path) = store::sqlite_path(database) {
        if !path.exists() {
            return Err(CommandError::NoDatabase(path));
        }
    }
    Ok(store::open(database).await?)
}

/// The status report, as text or as JSON.
pub async fn status(database: &str, json: bool) -> Result<String, CommandError> {
    let store = open_existing(database).await?;
    let now = SystemClock.now();
    let report = Report::new(store.status(now).await?, now)
        .with_retention(&store.retention_status().await?, now);
    Ok(if json {
        serde_json::to_string_pretty(&report).unwrap_or_default()
    } else {
        report.to_string()
    })
}

/// The dead-letter list, one per line: position, id, event, attempts, last error.
pub async fn dead_letter_list(database: &str) -> Result<String, CommandError> {
    let store = open_existing(database).await?;
    let letters = store.dead_letters().await?;
    if letters.is_empty() {
        return Ok("no dead letters\n".to_owned());
    }
    let mut out = String::new();
    for letter in letters {
        out.push_str(&format!(
            "{}\t{}\t{}\tattempts={}\t{}\n",
            letter.seq,
            letter.id,
            letter.event,
            letter.attempts,
            letter.last_error.as_deref().unwrap_or("")
        ));
    }
    Ok(out)
}

/// Puts one dead letter back in the queue (at its original position: it is handed on next).
pub async fn dead_letter_retry(database: &str, id: &str) -> Result<String, CommandError> {
    let store = open_existing(database).await?;
    if store.retry_dead_letter(id, SystemClock.now()).await? {
        Ok(format!("{id} is back in the queue\n"))
    } else {
        Err(CommandError::NoSuchDeadLetter(id.to_owned()))
    }
}

/// Puts every dead letter back in the queue.
pub async fn dead_letter_retry_all(database: &str) -> Result<String, CommandError> {
    let store = open_existing(database).await?;
    let n = store.retry_all_dead_letters(SystemClock.now()).await?;
    Ok(format!("{n} dead letter(s) back in the queue\n"))
}

/// Aborts a background task when the command that started it returns, however it returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Erases a dead letter's body now and takes it off the list, keeping its id
/// (`passfort-receiver dead-letter drop ID`).
pub async fn dead_letter_drop(database: &str, id: &str) -> Result<String, CommandError> {
    let store = open_existing(database).await?;
    if store.drop_dead_letter(id, SystemClock.now()).await? {
        Ok(format!(
            "{id} dropped: its body is erased; its id is kept so a redelivery stays a duplicate\n"
        ))
    } else {
        Err(CommandError::NoSuchDeadLetter(id.to_owned()))
    }
}

/// Prunes once (`passfort-receiver prune`), or with `dry_run` says what a prune would do,
/// as text or as `{"bodies_erased": N, "ids_forgotten": M}`.
pub async fn prune(
    database: &str,
    retention: Retention,
    dry_run: bool,
    json: bool,
) -> Result<String, CommandError> {
    let store = open_existing(database).await?;
    let now = SystemClock.now();
    let pruned = if dry_run {
        retention::prune_preview(&*store, &retention, now).await?
    } else {
        retention::prune(&*store, &retention, now).await?
    };
    Ok(if json {
        format!("{}\n", serde_json::to_string(&pruned).unwrap_or_default())
    } else if dry_run {
        format!(
            "a prune would erase {} bodies and forget {} ids (nothing changed)\n",
            pruned.bodies_erased, pruned.ids_forgotten
        )
    } else {
        format!(
            "erased {} bodies, forgot {} ids\n",
            pruned.bodies_erased, pruned.ids_forgotten
        )
    })
}

/// Everything `replay` needs.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The database URL.
    pub database: String,
    /// Where the webhooks go again.
    pub sink: Sink,
    /// Which webhooks.
    pub range: replay::Range,
    /// Only list what would be replayed.
    pub dry_run: bool,
}

/// Replays a range to a sink (`passfort-receiver replay`), printing one line per webhook on
/// standard error (standard output may be the sink). Returns the report; the binary's exit code
/// is 0 when [`replay::ReplayReport::complete`], else 1.
pub async fn replay(config: ReplayConfig) -> Result<replay::ReplayReport, CommandError> {
    let store = open_existing(&config.database).await?;
    let handler = if config.dry_run {
        None
    } else {
        Some(config.sink.open().await?)
    };
    let verb = if config.dry_run {
        "would replay"
    } else {
        "replayed"
    };
    let report = replay::replay(
        &*store,
        &config.range,
        handler.as_deref(),
        |stored, outcome| match outcome {
            replay::Outcome::Replayed => {
                eprintln!("{verb} {} {} {}", stored.seq, stored.id, stored.event)
            }
            replay::Outcome::Skipped => eprintln!(
                "skipped {} {} {}: its body was erased by retention",
                stored.seq, stored.id, stored.event
            ),
            replay::Outcome::Failed(error) => eprintln!(
                "failed at {} {} {}: {error}; nothing after it was replayed; rerun with --from-id {}",
                stored.seq, stored.id, stored.event, stored.id
            ),
        },
    )
    .await?;
    eprintln!(
        "{verb} {}, skipped {} (erased){}",
        report.replayed,
        report.skipped.len(),
        if report.failed.is_some() {
            ", stopped at a sink failure"
        } else {
            ""
        }
    );
    Ok(report)
}

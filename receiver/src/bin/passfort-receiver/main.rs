//! `passfort-receiver`: receive PassFort webhooks without writing Rust. Parses flags and calls
//! `command`; everything else lives in the library.

mod command;

use anyhow::Result;
use clap::{Parser, Subcommand};
use command::{CommandError, ReplayConfig, ServeConfig, WorkConfig, DEFAULT_DATABASE};
use passfort_receiver::allow_list::{AllowList, TrustedProxies};
use passfort_receiver::connection_limits::ConnectionLimits;
use passfort_receiver::http::{DEFAULT_BODY_LIMIT, DEFAULT_PATH};
use passfort_receiver::replay::{self, ReplayError};
use passfort_receiver::retention::{Retention, RetentionError};
use passfort_receiver::serve::signal;
use passfort_receiver::sink::Sink;
use passfort_receiver::store::Ordering;
use passfort_receiver::RetryPolicy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

#[derive(Parser)]
#[command(
    name = "passfort-receiver",
    version,
    about = "Receive PassFort webhooks: verify, store durably, acknowledge fast, hand on in order."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct RetryArgs {
    /// Attempts before a webhook moves to the dead-letter list.
    #[arg(long, default_value_t = 10)]
    max_attempts: u32,
    /// Never dead-letter: keep retrying the head of the queue (keeps strict order).
    #[arg(long)]
    block: bool,
    /// Wait after the first failure; doubles after each further one.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    retry_initial: Duration,
    /// Longest wait between two attempts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    retry_max: Duration,
}

impl RetryArgs {
    fn policy(&self) -> RetryPolicy {
        let policy = RetryPolicy::exponential(self.retry_initial, self.retry_max)
            .max_attempts(self.max_attempts);
        if self.block {
            policy.block()
        } else {
            policy
        }
    }
}

/// How long processed webhooks keep their bodies and ids (serve, work, prune).
#[derive(clap::Args, Clone)]
struct KeepArgs {
    /// Erase a webhook's body this long after it was processed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
    keep_bodies: Duration,
    /// Forget a processed webhook's id this long after it was processed (a redelivery after
    /// that is processed again); not shorter than --keep-bodies.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "90d")]
    keep_ids: Duration,
}

impl KeepArgs {
    fn retention(&self) -> Result<Retention, RetentionError> {
        Retention::new(self.keep_bodies, self.keep_ids)
    }
}

/// `0` (never), or a duration.
fn prune_every(text: &str) -> Result<Duration, humantime::DurationError> {
    if text.trim() == "0" {
        Ok(Duration::ZERO)
    } else {
        humantime::parse_duration(text)
    }
}

#[derive(Subcommand)]
// Parsed once at start and matched at once: `serve`'s many flags make it the large variant,
// and boxing it would only make clap's derive harder to read.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Receive webhooks (and hand them to the sink, unless --no-worker).
    Serve {
        /// Public address: the webhook path and GET /healthz.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Private address: the admin page (GET /), its JSON API, GET /metrics and GET /status.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
        /// Database URL.
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
        /// Webhook path.
        #[arg(long, default_value = DEFAULT_PATH)]
        path: String,
        /// Where webhooks go: stdout, jsonl:PATH, exec:COMMAND, http:URL, nats://…, amqp://… or
        /// redis://… (a broker's password: in PASSFORT_SINK_PASSWORD, or give the whole URL in
        /// PASSFORT_SINK rather than on the command line).
        #[arg(
            long,
            env = "PASSFORT_SINK",
            hide_env_values = true,
            default_value = "stdout"
        )]
        sink: Sink,
        /// Only receive; run `passfort-receiver work` separately.
        #[arg(long)]
        no_worker: bool,
        /// Read the secret from this file (one per line; the first is current) instead of
        /// PASSFORT_WEBHOOK_SECRET.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// Read the admin token (unlocks the admin page's actions) from this file instead of
        /// PASSFORT_ADMIN_TOKEN; with neither, the admin page is read-only.
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
        /// Largest body accepted, in bytes.
        #[arg(long, default_value_t = DEFAULT_BODY_LIMIT)]
        body_limit: usize,
        /// Store deadline for a batch (array) request.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
        batch_deadline: Duration,
        /// Store deadline for a single-webhook request.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "4s")]
        single_deadline: Duration,
        /// What the in-process worker keeps in order: global, or per-profile (PostgreSQL only).
        #[arg(long, default_value = "global")]
        ordering: Ordering,
        /// Who may post webhooks: comma-separated addresses, CIDRs and the named sets
        /// passfort-eu, passfort-us, passfort-uae, passfort (all three). Default: everyone.
        #[arg(long, default_value = "everyone")]
        allow_from: AllowList,
        /// Comma-separated addresses or CIDRs of proxies whose X-Forwarded-For / Forwarded
        /// headers name the client. Without it those headers are ignored.
        #[arg(long)]
        trust_proxy: Option<TrustedProxies>,
        /// A request's headers and body must arrive within this, or the connection is closed
        /// (PassFort's own limit is 10 s).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        request_timeout: Duration,
        /// Close a keep-alive connection idle for this long.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
        idle_timeout: Duration,
        /// At most this many connections; at the cap a new one evicts the oldest whose request
        /// is not complete, or is refused (503) when all are being answered.
        #[arg(long, default_value_t = passfort_receiver::connection_limits::DEFAULT_MAX_CONNECTIONS)]
        max_connections: usize,
        #[command(flatten)]
        keep: KeepArgs,
        /// How often to erase and forget what is due (0: never; run `prune` yourself).
        #[arg(long, value_parser = prune_every, default_value = "10m")]
        prune_every: Duration,
        #[command(flatten)]
        retry: RetryArgs,
    },
    /// Hand stored webhooks to the sink, in order (a worker in its own process).
    Work {
        /// Database URL.
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
        /// Where webhooks go: stdout, jsonl:PATH, exec:COMMAND, http:URL, nats://…, amqp://… or
        /// redis://… (a broker's password: in PASSFORT_SINK_PASSWORD, or give the whole URL in
        /// PASSFORT_SINK rather than on the command line).
        #[arg(
            long,
            env = "PASSFORT_SINK",
            hide_env_values = true,
            default_value = "stdout"
        )]
        sink: Sink,
        /// How often to look for new webhooks.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
        poll_interval: Duration,
        /// Exit once nothing is due (queue empty or head waiting for a retry).
        #[arg(long)]
        until_idle: bool,
        /// What to keep in order: global (every webhook), or per-profile (each profile's
        /// webhooks; profiles in parallel across workers; PostgreSQL only). Every worker on
        /// one database must use the same.
        #[arg(long, default_value = "global")]
        ordering: Ordering,
        /// How long a worker holds a webhook: if it dies, another takes over after this.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
        lease: Duration,
        /// This worker's name in leases (default: `work` on SQLite, unique per process on
        /// PostgreSQL).
        #[arg(long)]
        worker_name: Option<String>,
        #[command(flatten)]
        keep: KeepArgs,
        /// How often to erase and forget what is due (0: never; run `prune` yourself).
        #[arg(long, value_parser = prune_every, default_value = "10m")]
        prune_every: Duration,
        #[command(flatten)]
        retry: RetryArgs,
    },
    /// Create or update the database schema, then exit (also done by serve and work at
    /// start); safe to run from several replicas at once.
    Migrate {
        /// Database URL.
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
    },
    /// Show the queue: depth, last received/processed, dead letters, recent failures.
    Status {
        /// Database URL.
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Erase the bodies and forget the ids that are due, once, and say how many.
    Prune {
        /// Database URL.
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
        #[command(flatten)]
        keep: KeepArgs,
        /// Only say what a prune would do; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print {"bodies_erased": N, "ids_forgotten": M}.
        #[arg(long)]
        json: bool,
    },
    /// Hand a range of stored webhooks to a sink again, in arrival order, changing nothing in
    /// the queue. Exit code 0: all replayed; 1: some skipped (body erased) or the sink failed;
    /// 2: bad usage.
    Replay {
        /// Where the webhooks go: stdout, jsonl:PATH, exec:COMMAND or http:URL.
        #[arg(long)]
        sink: Sink,
        /// Database URL.
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
        /// Acknowledged at or after this time (RFC 3339).
        #[arg(long, value_parser = replay::parse_time, conflicts_with = "from_id")]
        since: Option<SystemTime>,
        /// From this webhook id on (inclusive).
        #[arg(long)]
        from_id: Option<String>,
        /// Acknowledged at or before this time (RFC 3339).
        #[arg(long, value_parser = replay::parse_time, conflicts_with = "to_id")]
        until: Option<SystemTime>,
        /// Up to this webhook id (inclusive).
        #[arg(long)]
        to_id: Option<String>,
        /// Only this event (repeat for several).
        #[arg(long = "event")]
        events: Vec<String>,
        /// Only list what would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
    /// List, retry or drop dead letters.
    DeadLetter {
        #[command(subcommand)]
        action: DeadLetterAction,
        /// Database URL.
        #[arg(long, default_value = DEFAULT_DATABASE, global = true)]
        database: String,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// List dead letters in arrival order.
    List,
    /// Put one dead letter (by webhook id) back in the queue.
    Retry {
        /// The webhook id.
        id: String,
    },
    /// Put every dead letter back in the queue.
    RetryAll,
    /// Give up on one dead letter (by webhook id): erase its body now, keep its id.
    Drop {
        /// The webhook id.
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    passfort_receiver::process::run_with_exit_code(run(cli))
}

/// Exit code of bad usage (as clap's own).
const USAGE: u8 = 2;

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            listen,
            admin_listen,
            database,
            path,
            sink,
            no_worker,
            secret_file,
            admin_token_file,
            body_limit,
            batch_deadline,
            single_deadline,
            ordering,
            allow_from,
            trust_proxy,
            request_timeout,
            idle_timeout,
            max_connections,
            keep,
            prune_every,
            retry,
        } => {
            let secrets = passfort_receiver::SecretSet::from_env(secret_file.as_deref())?;
            let admin_token = passfort_receiver::AdminToken::from_env(admin_token_file.as_deref())?;
            let config = ServeConfig {
                listen,
                admin_listen,
                database,
                path,
                sink,
                worker: !no_worker,
                secrets,
                retry: retry.policy(),
                body_limit,
                batch_deadline,
                single_deadline,
                ordering,
                allow_from,
                trust_proxy: trust_proxy.unwrap_or_default(),
                limits: ConnectionLimits {
                    request_time: request_timeout,
                    idle_time: idle_timeout,
                    max_connections,
                },
                retention: keep.retention()?,
                prune_every,
                admin_token,
            };
            command::serve(config, signal()).await?;
        }
        Command::Work {
            database,
            sink,
            poll_interval,
            until_idle,
            ordering,
            lease,
            worker_name,
            keep,
            prune_every,
            retry,
        } => {
            let config = WorkConfig {
                database,
                sink,
                retry: retry.policy(),
                poll_interval,
                until_idle,
                ordering,
                lease,
                worker_name,
                retention: keep.retention()?,
                prune_every,
            };
            command::work(config, signal()).await?;
        }
        Command::Migrate { database } => {
            print!("{}", command::migrate(&database).await?);
        }
        Command::Status { database, json } => {
            print!("{}", command::status(&database, json).await?);
        }
        Command::DeadLetter { action, database } => {
            let out = match action {
                DeadLetterAction::List => command::dead_letter_list(&database).await?,
                DeadLetterAction::Retry { id } => {
                    command::dead_letter_retry(&database, &id).await?
                }
                DeadLetterAction::RetryAll => command::dead_letter_retry_all(&database).await?,
                DeadLetterAction::Drop { id } => command::dead_letter_drop(&database, &id).await?,
            };
            print!("{out}");
        }
        Command::Prune {
            database,
            keep,
            dry_run,
            json,
        } => {
            let retention = keep.retention()?;
            print!(
                "{}",
                command::prune(&database, retention, dry_run, json).await?
            );
        }
        Command::Replay {
            sink,
            database,
            since,
            from_id,
            until,
            to_id,
            events,
            dry_run,
        } => {
            let config = ReplayConfig {
                database,
                sink,
                range: replay::Range {
                    since,
                    until,
                    from_id,
                    to_id,
                    events,
                },
                dry_run,
            };
            return match command::replay(config).await {
                Ok(report) if report.complete() => Ok(ExitCode::SUCCESS),
                Ok(_) => Ok(ExitCode::FAILURE),
                Err(CommandError::Replay(ReplayError::UnknownId(id))) => {
                    eprintln!("error: no stored webhook has id {id:?}");
                    Ok(ExitCode::from(USAGE))
                }
                Err(e) => Err(e.into()),
            };
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! Receive PassFort webhooks: verify, store durably, acknowledge in milliseconds, deduplicate,
//! and hand on in order.
//!
//! PassFort retries a delivery until it gets a 200, in order, for up to a day at a time, and
//! gives a receiver 5 s (batch) or 10 s (single webhook) to answer. So this crate answers 200
//! only once a request's new webhooks are durably committed, answers it fast, and leaves the
//! real work to a [`Worker`] that calls your [`Handler`] afterwards, one webhook at a time, in
//! arrival order, with retries and a dead-letter list.
//!
//! Following one webhook from the socket to the handler, one file per step:
//!
//! | step | module |
//! |---|---|
//! | who may post at all (IP allow-list, trusted proxies): 403 | [`allow_list`] |
//! | request time limit, idle time, connection cap | [`connection_limits`] |
//! | one `Authorization`, bearer secret, body size, shape, body secrets: 401 / 413 / 400 | [`verify`] (secrets compared in [`secret`]) |
//! | the request's webhooks, secret stripped | [`batch`], [`webhook`] |
//! | one transaction per request inside its deadline, then wake the worker: 200 / 503 | [`http`] → [`store`] |
//! | durable, ordered, deduplicated storage (SQLite, PostgreSQL) | [`store`] |
//! | next in arrival order → your code | [`worker`] → [`handler`] |
//! | back-off and dead letters after a failure | [`retry`] |
//! | typed reading of `event` + `data` ([`Event`]) | [`event`] |
//! | the built-in handlers (`stdout`, `jsonl:`, `exec:`, `http:`, brokers), one file each | [`sink`] |
//! | bodies erased and ids forgotten on schedule | [`retention`] |
//! | a range of stored webhooks handed on again | [`replay`] |
//! | `/metrics`, `/status`, the admin page and its token-guarded actions | [`metrics`], [`status`], [`trends`], [`admin`] |
//! | serving until SIGINT/SIGTERM, graceful stop | [`serve`] |
//! | a URL with its password removed, for logs and errors | [`redact`] |
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `cli` | yes | the `passfort-receiver` binary and `process` (logs on stderr, exit codes) for binaries built on this crate: clap, anyhow, tracing-subscriber, and the broker sinks |
//! | `postgres` | yes | `store::PostgresStore` (sqlx's PostgreSQL driver) |
//! | `http-sink` | yes | the `http:URL` sink (reqwest) |
//! | `nats`, `amqp`, `redis` | through `cli` | the `nats://`, `amqp://`, `redis://` broker sinks (async-nats, lapin, redis) |
//! | `testing` | no | `testing`: webhook and request builders, test stores and handlers, the store conformance suite |
//!
//! An application embedding the receiver takes `default-features = false` (plus `postgres` if
//! it needs it) and gets the library alone.
//!
//! # Embedding
//!
//! ```no_run
//! use axum::Router;
//! use passfort_receiver::{handler_fn, Event, Job, Receiver, SecretSet, SqliteStore, Worker};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let secrets = SecretSet::new([std::env::var("PASSFORT_WEBHOOK_SECRET")?])?;
//!     let receiver = Receiver::builder()
//!         .secrets(secrets)
//!         .store(SqliteStore::open("sqlite://passfort-webhooks.db").await?)
//!         .build()?;
//!     let worker = Worker::builder()
//!         .receiver(&receiver)
//!         .handler(handler_fn(|job: Job| async move {
//!             match job.event {
//!                 Event::ProductStatusChanged(change) => {
//!                     println!("{:?} is now {:?}", change.application_id, change.new_status)
//!                 }
//!                 other => println!("{} {}", job.webhook.id, other.name()),
//!             }
//!             Ok(())
//!         }))
//!         .build()?
//!         .spawn();
//!     let app = Router::new().nest("/hooks", receiver.router());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     axum::serve(listener, app).await?;
//!     worker.shutdown().await?;
//!     Ok(())
//! }
//! ```
//!
#![warn(missing_docs)]

pub mod admin;
pub mod allow_list;
pub mod batch;
pub mod connection_limits;
pub mod event;
pub mod handler;
pub mod http;
pub mod metrics;
#[cfg(feature = "cli")]
pub mod process;
pub mod redact;
pub mod replay;
pub mod retention;
pub mod retry;
pub mod secret;
pub mod serve;
pub mod sink;
pub mod status;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trends;
pub mod verify;
pub mod webhook;
pub mod worker;

pub use admin::AdminToken;
pub use allow_list::{AllowList, AllowListLayer, TrustedProxies};
pub use batch::{Batch, Shape};
pub use connection_limits::ConnectionLimits;
pub use event::Event;
pub use handler::{handler_fn, Handler, HandlerError, HandlerFn, Job};
pub use http::{Receiver, ReceiverBuilder};
pub use metrics::Metrics;
pub use redact::redact_url;
pub use retention::{Pruned, Retention};
pub use retry::RetryPolicy;
pub use secret::{SecretError, SecretSet, SecretSourceError};
pub use sink::{ExecSink, JsonlSink, Sink, SinkError, StdoutSink};
pub use store::{SharedStore, SqliteStore, Store, StoreError};
pub use verify::{Rejection, Verified};
pub use webhook::Webhook;
pub use worker::{RunningWorker, Wakeup, Worker, WorkerBuilder};

pub use passfort_clock::{Clock, SharedClock, SystemClock};

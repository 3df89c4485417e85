//! Receive PassFort webhooks: verify, store durably, acknowledge in milliseconds, deduplicate,
//! and hand on in order.
//!
//! PassFort retries a delivery until it gets a 200, in order, for up to a day at a time, and
//! gives a receiver 5 s (batch) or 10 s (single webhook) to answer. So this crate answers 200
//! only once a request's new webhooks are durably committed, answers it fast, and leaves the
//! real work to a [`Worker`] that calls your [`Handler`] afterwards, one webhook at a time, in
//! arrival order, with retries and a dead-letter list.
//!
//! Following one webhook from the socket to the handler:
//!
//! | step | module |
//! |---|---|
//! | bearer secret, body shape, body secrets, secret stripped | [`secret`], [`batch`], [`webhook`] |
//! | one transaction per request, dedup by id, deadline, 200/503 | [`http`], [`store`] |
//! | next in arrival order → handler → done / back-off / dead letter | [`worker`] |
//! | typed reading of `event` + `data` ([`Event`]) | [`event`] |
//! | the binary's built-in handlers (`stdout`, `jsonl:`, `exec:`, `http:`) | [`sink`] |
//! | who may post (IP allow-list, trusted proxies) | [`allow_list`] |
//! | request time limit, idle time, connection cap | [`connection_limits`] |
//! | bodies erased and ids forgotten on schedule | [`retention`] |
//! | a range of stored webhooks handed on again | [`replay`] |
//! | `/metrics`, `/status`, the admin page and its token-guarded actions | [`metrics`], [`status`], [`trends`], [`admin`] |
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
//! The `testing` feature adds [`testing`]: builders for PassFort-shaped webhooks and signed
//! requests, test stores and handlers, and the store conformance suite.

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

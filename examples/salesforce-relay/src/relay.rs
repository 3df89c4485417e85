//! The relay assembled: a PassFort receiver in front, a worker that forwards to Salesforce
//! behind it, and the process that serves both.
//!
//! The receiver verifies both PassFort secrets, stores each new webhook durably and answers 200
//! at once, so PassFort's queue never stalls because Salesforce is slow or down. The worker then
//! forwards the stored webhooks one at a time in arrival order with a *blocking* retry policy:
//! a webhook Salesforce does not accept is retried (1 s, 2 s, 4 s … up to the cap) and nothing
//! behind it is forwarded until it is accepted, so Salesforce sees PassFort's order.

use crate::config::SalesforceConfig;
use crate::forward::Forwarder;
use axum::Router;
use passfort_clock::{SharedClock, SystemClock};
use passfort_receiver::serve::{bind, serve_until, ServeError};
use passfort_receiver::{
    store, Receiver, RetryPolicy, RunningWorker, SecretSet, SharedStore, Worker,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The worker's name in the store's leases.
pub const WORKER_NAME: &str = "salesforce-relay";

/// The default back-off: first retry after 1 s, doubling, at most 5 minutes apart.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
/// See [`DEFAULT_RETRY_INITIAL`].
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);

/// Why the relay could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] passfort_receiver::StoreError),
    /// The receiver or worker could not be assembled.
    #[error("{0}")]
    Build(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// An address could not be bound, or a server failed while running: the relay serves the
    /// way `passfort-receiver serve` does, and fails the same way.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The retry policy the relay uses: exponential from `initial`, capped at `max`, and blocking
/// (never dead-letters), so that nothing later is forwarded before an earlier webhook succeeded.
pub fn retry_policy(initial: Duration, max: Duration) -> RetryPolicy {
    RetryPolicy::exponential(initial, max).block()
}

/// A receiver and the worker forwarding what it stored to Salesforce.
#[derive(Debug)]
pub struct Relay {
    receiver: Receiver,
    worker: Worker,
    forwarder: Forwarder,
}

impl Relay {
    /// Assembles the relay on `store`, accepting `secrets`, forwarding per `salesforce`,
    /// retrying per `retry`, with every deadline and back-off on `clock`.
    pub fn new(
        store: SharedStore,
        secrets: SecretSet,
        salesforce: SalesforceConfig,
        retry: RetryPolicy,
        clock: SharedClock,
    ) -> Result<Self, RelayError> {
        let receiver = Receiver::builder()
            .secrets(secrets)
            .shared_store(store)
            .shared_clock(clock.clone())
            .build()
            .map_err(|e| RelayError::Build(e.to_string()))?;
        let forwarder = Forwarder::new(salesforce, clock)?;
        let worker = Worker::builder()
            .receiver(&receiver)
            .handler(forwarder.clone())
            .retry(retry)
            .name(WORKER_NAME)
            .build()
            .map_err(|e| RelayError::Build(e.to_string()))?;
        Ok(Self {
            receiver,
            worker,
            forwarder,
        })
    }

    /// `POST /webhooks/passfort` and `GET /healthz`.
    pub fn router(&self) -> Router {
        self.receiver.router()
    }

    /// The receiver (its store, metrics, admin router).
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }

    /// The worker: [`Worker::spawn`] in production, [`Worker::run_until_idle`] in tests.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// The forwarder the worker calls.
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// Starts forwarding on its own task.
    pub fn spawn_worker(&self) -> RunningWorker {
        self.worker.clone().spawn()
    }
}

/// Everything the `salesforce-relay` binary needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Public address: `POST /webhooks/passfort`, `GET /healthz`.
    pub listen: SocketAddr,
    /// Private address for `GET /metrics` and `GET /status`, if wanted.
    pub admin_listen: Option<SocketAddr>,
    /// Database URL (`sqlite://PATH`).
    pub database: String,
    /// The accepted PassFort secrets.
    pub secrets: SecretSet,
    /// The Salesforce org.
    pub salesforce: SalesforceConfig,
    /// Back-off for webhooks Salesforce did not accept.
    pub retry: RetryPolicy,
}

/// Serves until `shutdown` completes, then finishes the requests in flight and the forward in
/// hand. Prints `salesforce-relay ready listen=ADDR` on standard error once listening.
pub async fn serve<F>(config: ServeConfig, shutdown: F) -> Result<(), RelayError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let store = store::open(&config.database).await?;
    let relay = Relay::new(
        store,
        config.secrets.clone(),
        config.salesforce.clone(),
        config.retry,
        Arc::new(SystemClock),
    )?;
    let public = bind(config.listen).await?;
    let public_addr = public.local_addr().map_err(ServeError::Serve)?;
    let admin = match config.admin_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let admin_addr = match &admin {
        Some(listener) => Some(listener.local_addr().map_err(ServeError::Serve)?),
        None => None,
    };
    let worker = relay.spawn_worker();

    let public = (public, relay.router());
    let admin = admin.map(|listener| (listener, relay.receiver().admin_router()));
    let ready = || {
        tracing::info!(
            listen = %public_addr,
            admin = ?admin_addr,
            database = %passfort_receiver::redact_url(&config.database),
            login_url = %config.salesforce.login_url,
            target_path = %config.salesforce.target_path,
            secrets = config.secrets.len(),
            "salesforce-relay serving"
        );
        match admin_addr {
            Some(admin) => eprintln!("salesforce-relay ready listen={public_addr} admin={admin}"),
            None => eprintln!("salesforce-relay ready listen={public_addr}"),
        }
    };
    serve_until(
        "salesforce-relay",
        public,
        admin,
        Some(worker),
        shutdown,
        ready,
    )
    .await?;
    Ok(())
}

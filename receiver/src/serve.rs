//! Serving a receiver until the process is told to stop: the signal, the bound listeners, and
//! the graceful stop that lets every request in flight finish.
//!
//! `passfort-receiver serve` and binaries that embed the receiver (the examples) share this, so
//! they all stop the same way: on SIGINT (Ctrl-C) or SIGTERM (`kill`, `docker stop`,
//! Kubernetes), they stop accepting, finish the requests in flight (so every webhook answered 200
//! is committed), stop the worker after the webhook in hand, and return. Tests and embedding
//! applications pass any future as the shutdown instead of [`signal`].

use crate::connection_limits::{self, ConnectionLimits};
use crate::worker::RunningWorker;
use passfort_clock::{SharedClock, SystemClock};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Completes on SIGINT or SIGTERM, whichever comes first, and logs that it did.
///
/// A signal that cannot be listened for (no SIGTERM outside Unix, or a handler that cannot be
/// installed) is waited for forever rather than treated as received, so a process never stops
/// by itself because of it.
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// Binds `addr`, or says which address could not be bound and why: binaries bind before they
/// print their readiness line, so that the line gives the address actually bound (port 0 picks
/// one) and a busy port is a clear error rather than a server that never answers.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// The public address as [`serve_with_limits`] serves it.
#[derive(Debug)]
pub struct Public {
    /// The bound listener.
    pub listener: tokio::net::TcpListener,
    /// The webhook path (and `/healthz`).
    pub router: axum::Router,
    /// What keeps the endpoint from being held open.
    pub limits: ConnectionLimits,
    /// The clock the limits are measured on (the receiver's).
    pub clock: SharedClock,
}

/// [`serve_with_limits`] with the default [`ConnectionLimits`] on the system clock.
pub async fn serve_until<F, R>(
    name: &str,
    public: (tokio::net::TcpListener, axum::Router),
    admin: Option<(tokio::net::TcpListener, axum::Router)>,
    worker: Option<RunningWorker>,
    shutdown: F,
    ready: R,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
    R: FnOnce(),
{
    let (listener, router) = public;
    let public = Public {
        listener,
        router,
        limits: ConnectionLimits::default(),
        clock: Arc::new(SystemClock),
    };
    serve_with_limits(name, public, admin, worker, shutdown, ready).await
}

/// Serves `public` (and `admin`, if the process has a private address) on their bound
/// listeners until `shutdown` completes; then stops accepting on both, lets the requests in
/// flight finish (so every webhook answered 200 is committed), stops `worker` after the webhook
/// in hand, logs `{name} stopped` and returns the first server error.
///
/// The public address keeps its [`ConnectionLimits`] (see [`crate::connection_limits`]) and
/// hands every request the client's address (the allow-list reads it); the admin address is
/// private and served plainly.
///
/// `ready` runs once the shutdown is being watched and just before the servers start: it is
/// where a binary prints its readiness line, so that a signal sent as soon as that line appears
/// already stops the process gracefully. `passfort-receiver serve` and binaries that embed the
/// receiver (the Salesforce relay) share this, so they stop the same way.
pub async fn serve_with_limits<F, R>(
    name: &str,
    public: Public,
    admin: Option<(tokio::net::TcpListener, axum::Router)>,
    worker: Option<RunningWorker>,
    shutdown: F,
    ready: R,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
    R: FnOnce(),
{
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let public_server = connection_limits::serve(
        public.listener,
        public.router,
        public.limits,
        public.clock,
        stopped(stop_rx.clone()),
    );
    let admin_server = admin.map(|(listener, router)| {
        axum::serve(listener, router).with_graceful_shutdown(stopped(stop_rx.clone()))
    });

    ready();

    let (public_result, admin_result) = tokio::join!(public_server, async {
        match admin_server {
            Some(server) => server.await,
            None => Ok(()),
        }
    });
    if let Some(worker) = worker {
        if let Err(e) = worker.shutdown().await {
            tracing::error!(error = %e, "worker did not stop cleanly");
        }
    }
    tracing::info!("{name} stopped");
    public_result.map_err(ServeError::Serve)?;
    admin_result.map_err(ServeError::Serve)?;
    Ok(())
}

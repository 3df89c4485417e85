//! When a process should stop: the signal every long-running command waits for.
//!
//! `serve` and `work` take their shutdown as a future, so that tests and embedding
//! applications can stop them however they like; a binary run by an operator or an orchestrator
//! stops on SIGINT (Ctrl-C) or SIGTERM (`kill`, `docker stop`, Kubernetes). One copy of that
//! future keeps every binary built on this crate stopping the same way.

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

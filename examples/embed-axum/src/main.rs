//! `embed-axum`: the customers service with PassFort webhooks at `/webhooks/passfort`.
//! Parses flags, reads the PassFort secret from the environment and serves.

use anyhow::Result;
use clap::Parser;
use embed_axum::App;
use passfort_receiver::command::secrets_from_env;
use passfort_receiver::SystemClock;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

/// A customers service that keeps its customers' KYC status in step with PassFort.
///
/// Environment: PASSFORT_WEBHOOK_SECRET (and optionally PASSFORT_WEBHOOK_SECRET_PREVIOUS).
#[derive(Parser)]
#[command(name = "embed-axum", version)]
struct Cli {
    /// Address to serve the application (and /webhooks/passfort) on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The application's own database.
    #[arg(long, default_value = "sqlite://embed-axum.db")]
    database: String,
    /// The receiver's webhook queue.
    #[arg(long, default_value = "sqlite://embed-axum-webhooks.db")]
    webhook_database: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let secrets = secrets_from_env(None)?;
    let app = App::open(
        &cli.database,
        &cli.webhook_database,
        secrets,
        Arc::new(SystemClock),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    eprintln!("embed-axum ready listen={}", listener.local_addr()?);
    app.serve(listener, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
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

//! `embed-axum`: the customers service with PassFort webhooks at `/webhooks/passfort`.
//! Parses flags, reads the PassFort secret from the environment and serves.

use anyhow::Result;
use clap::Parser;
use embed_axum::App;
use passfort_receiver::serve::signal;
use passfort_receiver::{process, SecretSet, SystemClock};
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
    // `{:#}`: the error with its causes, e.g. why a database could not be opened.
    process::run(async { run(cli).await.map_err(|e| format!("{e:#}")) })
}

async fn run(cli: Cli) -> Result<()> {
    let secrets = SecretSet::from_env(None)?;
    let app = App::open(
        &cli.database,
        &cli.webhook_database,
        secrets,
        Arc::new(SystemClock),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    eprintln!("embed-axum ready listen={}", listener.local_addr()?);
    app.serve(listener, signal()).await?;
    Ok(())
}

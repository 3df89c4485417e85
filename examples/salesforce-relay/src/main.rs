//! `salesforce-relay`: receives PassFort webhooks and forwards them to Salesforce in order.
//! Parses flags and the environment, then calls `salesforce_relay::serve`.

use anyhow::{Context, Result};
use clap::Parser;
use passfort_receiver::serve::signal;
use passfort_receiver::{process, SecretSet};
use salesforce_relay::{retry_policy, serve, SalesforceConfig, ServeConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Receive PassFort webhooks and relay them, in order, to a Salesforce Apex REST endpoint.
///
/// Environment: PASSFORT_WEBHOOK_SECRET (and optionally PASSFORT_WEBHOOK_SECRET_PREVIOUS),
/// SALESFORCE_LOGIN_URL, SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET, and optionally
/// SALESFORCE_TARGET_PATH (default /services/apexrest/passfort/webhooks).
#[derive(Parser)]
#[command(name = "salesforce-relay", version)]
struct Cli {
    /// Public address: POST /webhooks/passfort and GET /healthz.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Database URL: where acknowledged webhooks wait until Salesforce accepted them.
    #[arg(long, default_value = "sqlite://salesforce-relay.db")]
    database: String,
    /// Private address for GET /metrics and GET /status (not served unless given).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Read the PassFort secret from this file (one per line; the first is current) instead of
    /// PASSFORT_WEBHOOK_SECRET.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Wait before the first retry of a webhook Salesforce did not accept; doubles each time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    retry_initial: Duration,
    /// Longest wait between two attempts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    retry_max: Duration,
    /// Limit for one request to Salesforce.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    request_timeout: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `{:#}`: the error with its causes, e.g. which setting the configuration lacks.
    process::run(async { run(cli).await.map_err(|e| format!("{e:#}")) })
}

async fn run(cli: Cli) -> Result<()> {
    let secrets = SecretSet::from_env(cli.secret_file.as_deref())?;
    let salesforce = SalesforceConfig::from_env()
        .context("Salesforce configuration")?
        .with_request_timeout(cli.request_timeout);
    let config = ServeConfig {
        listen: cli.listen,
        admin_listen: cli.admin_listen,
        database: cli.database,
        secrets,
        salesforce,
        retry: retry_policy(cli.retry_initial, cli.retry_max),
    };
    serve(config, signal()).await?;
    Ok(())
}

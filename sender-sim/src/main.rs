//! `passfort-sim`: PassFort's sending side on your laptop. Parses flags and calls the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use passfort_sender_sim::event::EventType;
use passfort_sender_sim::send::{self, Progress, SendOptions};

#[derive(Debug, Parser)]
#[command(
    name = "passfort-sim",
    version,
    about = "Send webhooks exactly the way PassFort does"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deliver generated webhooks to URL with PassFort's ordering, batching, time limits and
    /// back-off, on the real clock. The secret comes from PASSFORT_WEBHOOK_SECRET.
    Send(SendArgs),
    /// A local PassFort sandbox: the Webhook config page, the status queue and a JSON API, with
    /// the delivery engine on the real clock. The secret is set on the page (or through the
    /// API); PASSFORT_WEBHOOK_SECRET may seed it.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address for the page and the API (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = passfort_sender_sim::sandbox::DEFAULT_LISTEN)]
    listen: String,
    /// Divide back-off waits and the batch cadence by F (not the 5 s / 10 s answer limits).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    time_scale: f64,
    /// Keep settings and the queue in this file across restarts.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// What the Refresh button does. PassFort's pages disagree: `clears-failures` (its "About"
    /// page, the default) or `retries-now` (its stalled-queue page: ignore back-off and send).
    #[arg(long, value_name = "READING", default_value = "clears-failures", value_parser = parse_refresh)]
    refresh: passfort_sender_sim::sandbox::RefreshReading,
}

fn parse_id_style(value: &str) -> Result<passfort_sender_sim::IdStyle, String> {
    match value {
        "uuid" => Ok(passfort_sender_sim::IdStyle::V1),
        "opaque" => Ok(passfort_sender_sim::IdStyle::Opaque),
        other => Err(format!("`{other}` is not an id style: uuid or opaque")),
    }
}

fn parse_refresh(value: &str) -> Result<passfort_sender_sim::sandbox::RefreshReading, String> {
    use passfort_sender_sim::sandbox::RefreshReading;
    match value {
        "clears-failures" => Ok(RefreshReading::ClearsFailures),
        "retries-now" => Ok(RefreshReading::RetriesNow),
        other => Err(format!(
            "`{other}` is not a reading of Refresh: clears-failures or retries-now"
        )),
    }
}

#[derive(Debug, Args)]
struct SendArgs {
    /// The receiver's endpoint.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Send N webhooks of this event type (any string; unknown ones are sent verbatim).
    /// Without it, a realistic mix of profile lifecycles.
    #[arg(long, value_name = "EVENT")]
    event: Option<String>,
    /// How many webhooks.
    #[arg(long, value_name = "N", default_value_t = 10)]
    count: usize,
    /// Turn batching on (up to 100 per request, about every 0-10 s).
    #[arg(long)]
    batch: bool,
    /// Seed for generated data, ids and batch jitter.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// What the webhooks' ids look like: `uuid` (version-1 UUIDs, as PassFort's samples look)
    /// or `opaque` (not UUIDs, of varying length, in no order: ids are opaque, spec §2).
    #[arg(long, value_name = "STYLE", default_value = "uuid", value_parser = parse_id_style)]
    id_style: passfort_sender_sim::IdStyle,
    /// JSON file with the `data` of each webhook: one object, or an array used in turn.
    /// Needs --event.
    #[arg(long, value_name = "FILE")]
    data_file: Option<PathBuf>,
    /// Divide back-off waits and the batch cadence by F (not the 5 s / 10 s answer limits).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    time_scale: f64,
    /// Give up (exit 1) after this much simulated time, e.g. 90s, 1h, 2days.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    give_up_after: Duration,
    /// Write every attempt to PATH as JSON lines.
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,
    /// Print the final status queue as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("passfort-sim: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Send(args) => run_send(args),
        Command::Serve(args) => run_serve(args),
    }
}

fn run_send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let secret = send::secret_from_env()?;
    let data = args
        .data_file
        .as_deref()
        .map(send::read_data_file)
        .transpose()?;
    let options = SendOptions {
        to: args.to,
        event: args.event.as_deref().map(EventType::parse),
        count: args.count,
        batch: args.batch,
        seed: args.seed,
        id_style: args.id_style,
        data,
        time_scale: args.time_scale,
        give_up_after: args.give_up_after,
        log: args.log,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let terminal = std::io::stderr().is_terminal();
    eprintln!(
        "passfort-sim: sending {} webhook(s) to {} ({}), seed {}",
        options.count,
        options.to,
        if options.batch {
            "batched"
        } else {
            "unbatched"
        },
        options.seed
    );
    let report = runtime.block_on(send::send(&options, secret, |p| {
        print_progress(p, terminal)
    }))?;
    if terminal {
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.status);
    }
    Ok(if report.emptied() {
        ExitCode::SUCCESS
    } else {
        eprintln!("passfort-sim: gave up with webhooks still queued");
        ExitCode::FAILURE
    })
}

fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    use passfort_sender_sim::sandbox;
    let options = sandbox::SandboxOptions {
        time_scale: args.time_scale,
        state: args.state,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
        initial_secret: send::secret_from_env().ok(),
        refresh: args.refresh,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let sandbox = sandbox::open_real(options)?;
        let listener = sandbox::bind(&args.listen).await?;
        // The readiness line scripts and tests wait for.
        println!(
            "passfort-sim: sandbox listening on {}",
            sandbox::local_url(&listener)?
        );
        sandbox::serve(listener, sandbox).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_progress(progress: &Progress, terminal: bool) {
    let backoff = match progress.backoff {
        Some(wait) => format!(
            "back-off {}",
            humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
        ),
        None => "no back-off".to_owned(),
    };
    let last = match (progress.last.status, &progress.last.error) {
        (Some(200), _) => "200".to_owned(),
        (_, Some(error)) => error.clone(),
        (Some(status), None) => status.to_string(),
        (None, None) => format!("{:?}", progress.last.outcome),
    };
    let line = format!(
        "sent {} request(s), {} acknowledged, {} waiting, {backoff} (last: {last})",
        progress.sent, progress.acknowledged, progress.waiting
    );
    if terminal {
        eprint!("\r\x1b[2K{line}");
    } else {
        eprintln!("{line}");
    }
}

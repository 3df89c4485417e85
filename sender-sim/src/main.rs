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
    // `Serve` (the web sandbox) goes here, backed by a `sandbox` module of the library.
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

//! `passfort-harness`: the command line. It parses flags and hands them to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use passfort_harness::observe::Patience;
use passfort_harness::{report, run, scenarios, ReportSpec, Secret, Settings};
use passfort_sender_sim::IdStyle;

/// Exit code for bad usage, the same clap uses for its own usage errors.
const USAGE: u8 = 2;

/// Runs named PassFort webhook conformance scenarios against any receiver URL.
///
/// The shared secret the target expects is read from PASSFORT_WEBHOOK_SECRET, never from a flag.
#[derive(Debug, Parser)]
#[command(name = "passfort-harness", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every scenario with what it checks.
    List,
    /// Run scenarios against a receiver. Exit 0: all passed (skips allowed); 1: any failed;
    /// 2: bad usage.
    Run {
        /// The receiver's webhook URL, e.g. http://127.0.0.1:8080/webhooks/passfort.
        #[arg(long, value_name = "URL")]
        target: String,
        /// Run only this scenario (repeatable); all of them by default.
        #[arg(long = "scenario", value_name = "ID")]
        scenarios: Vec<String>,
        /// The file the target appends one JSON object (with `id`) per processed webhook to.
        /// Scenarios that need it are skipped without it.
        #[arg(long, value_name = "PATH")]
        observe_jsonl: Option<PathBuf>,
        /// The longest the harness waits for webhooks to appear in the observe file, while the
        /// target keeps processing (e.g. 60s, 2m).
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
        observe_timeout: Duration,
        /// A wait for the observe file ends early once the target has processed nothing new for
        /// this long; raise it above the longest pause of a worker that processes in rounds.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
        observe_quiet: Duration,
        /// Write a report: junit:PATH, json:PATH or html:PATH (repeatable).
        #[arg(long = "report", value_name = "KIND:PATH")]
        reports: Vec<ReportSpec>,
        /// What the ids of the webhooks sent look like: `uuid` (version-1 UUIDs, as PassFort's
        /// samples look) or `opaque` (no UUID, varying length, no order: PassFort's ids are
        /// opaque, so the target must accept these too).
        #[arg(long, value_name = "STYLE", default_value = "uuid", value_parser = parse_id_style)]
        id_style: IdStyle,
        /// Do not draw progress bars.
        #[arg(long)]
        no_progress: bool,
    },
}

fn parse_id_style(value: &str) -> Result<IdStyle, String> {
    match value {
        "uuid" => Ok(IdStyle::V1),
        "opaque" => Ok(IdStyle::Opaque),
        other => Err(format!("`{other}` is not an id style: uuid or opaque")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::List => {
            list();
            ExitCode::SUCCESS
        }
        Command::Run {
            target,
            scenarios,
            observe_jsonl,
            observe_timeout,
            observe_quiet,
            id_style,
            reports,
            no_progress,
        } => {
            let Some(secret) = std::env::var("PASSFORT_WEBHOOK_SECRET")
                .ok()
                .and_then(Secret::new)
            else {
                eprintln!(
                    "error: set PASSFORT_WEBHOOK_SECRET to the shared secret the target expects"
                );
                return ExitCode::from(USAGE);
            };
            let mut settings = Settings::new(target, secret).only(scenarios);
            settings.observe_jsonl = observe_jsonl;
            settings.id_style = id_style;
            settings.limits.observe = Patience {
                timeout: observe_timeout,
                quiet: observe_quiet,
            };
            settings.progress = !no_progress;
            run_scenarios(settings, &reports)
        }
    }
}

fn list() {
    for scenario in scenarios::registry() {
        let needs = if scenario.needs_observer() {
            "  (needs --observe-jsonl)"
        } else {
            ""
        };
        println!("{}{needs}", scenario.id());
        println!("    {}\n", scenario.description());
    }
}

fn run_scenarios(settings: Settings, reports: &[ReportSpec]) -> ExitCode {
    // Fail on bad usage before sending anything.
    if let Err(error) = run::select(&settings.scenarios) {
        eprintln!("error: {error}");
        return ExitCode::from(USAGE);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(run::run(settings)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(USAGE);
        }
    };
    println!("{}", report::table(&report));
    let mut code = u8::try_from(report.exit_code()).unwrap_or(1);
    for spec in reports {
        match spec.write(&report) {
            Ok(()) => println!("{}", report::describe_written(spec)),
            Err(error) => {
                eprintln!("error: {error}");
                code = code.max(1);
            }
        }
    }
    ExitCode::from(code)
}

//! The process a binary built on this crate runs in: logs on standard error, a Tokio runtime,
//! and an exit code.
//!
//! `passfort-receiver` and the example binaries all start the same way, so that an operator
//! configures their logs the same way (`RUST_LOG`, default `info`) and a script reads their
//! failures the same way (one `error: …` line on standard error, a non-zero exit code).

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

/// Runs a binary's `main` future to completion and turns its result into the exit code.
///
/// First it installs the global `tracing` subscriber: filter from `RUST_LOG` (default `info`),
/// written to standard error so that standard output stays for a command's own output (a sink,
/// `status`), coloured only when standard error is a terminal. Then it starts a multi-threaded
/// Tokio runtime and blocks on `main`. A runtime that cannot start, or an `Err`, is printed as
/// one line, `error: {error}`, and exits with failure. To print an error's causes too, format
/// them into `E` (e.g. `anyhow`'s `{:#}`) before returning it.
///
/// Call it once, from `main`: a second global subscriber cannot be installed.
pub fn run<F, E>(main: F) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    run_with_exit_code(async { main.await.map(|()| ExitCode::SUCCESS) })
}

/// [`run`] for a command whose success has several exit codes (`replay`: 0 when everything was
/// replayed, 1 when some were skipped or the sink failed): `main` says which.
pub fn run_with_exit_code<F, E>(main: F) -> ExitCode
where
    F: Future<Output = Result<ExitCode, E>>,
    E: Display,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `passfort-sim send`: generate webhooks and deliver them to a URL with the full engine, on the
//! real clock. The binary only parses flags; everything it does is here, so it can be tested.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::account::{AccountSettings, Secret};
use crate::attempt::Attempt;
use crate::clock::SimClock;
use crate::engine::{Engine, EngineError, EngineOptions, RunOutcome};
use crate::event::{EventType, Generator, IdStyle, Webhook};
use crate::status::StatusQueue;
use crate::transport::{HttpTransport, TransportError};

/// The environment variable the secret is read from (never a flag).
pub const SECRET_ENV: &str = "PASSFORT_WEBHOOK_SECRET";

/// What `send` was asked to do: the flags, parsed.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// `--to`: the endpoint.
    pub to: String,
    /// `--event`: one event type for every webhook; `None` for a realistic mix.
    pub event: Option<EventType>,
    /// `--count`.
    pub count: usize,
    /// `--batch`.
    pub batch: bool,
    /// `--seed`.
    pub seed: u64,
    /// `--id-style`: what the webhooks' ids look like.
    pub id_style: IdStyle,
    /// `--data-file`, already read: the `data` of each webhook, used in turn.
    pub data: Option<Vec<Value>>,
    /// `--time-scale`.
    pub time_scale: f64,
    /// `--give-up-after`, in simulated time.
    pub give_up_after: Duration,
    /// `--log`: where to write the attempt log as JSON lines.
    pub log: Option<PathBuf>,
}

/// The most webhooks one `send` run queues: they are all built in memory first, so a mistyped
/// `--count` must be a clear error, not an allocation failure.
pub const MAX_COUNT: usize = 1_000_000;

/// Why `send` could not run.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The secret environment variable is missing or empty.
    #[error("set the shared secret in the {SECRET_ENV} environment variable")]
    MissingSecret,
    /// Bad settings (endpoint, time scale).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The data file is unreadable or not JSON objects.
    #[error("data file {path}: {reason}")]
    DataFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `--data-file` without `--event`.
    #[error("--data-file needs --event: it supplies the data of webhooks of that one event type")]
    DataWithoutEvent,
    /// `data` given as an empty list: there is no `data` to use in turn.
    #[error("the list of data objects is empty: give at least one, or none to generate data")]
    EmptyData,
    /// `--count` beyond [`MAX_COUNT`]: the webhooks are built in memory before sending.
    #[error("--count {0} is more than {MAX_COUNT}, the most one run queues")]
    TooMany(usize),
    /// The attempt log could not be written.
    #[error("attempt log {path}: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Reads the secret from [`SECRET_ENV`].
pub fn secret_from_env() -> Result<Secret, SendError> {
    match std::env::var(SECRET_ENV) {
        Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
        _ => Err(SendError::MissingSecret),
    }
}

/// Reads `--data-file`: one JSON object (the `data` of every webhook) or an array of objects
/// (used in turn).
pub fn read_data_file(path: &Path) -> Result<Vec<Value>, SendError> {
    let fail = |reason: String| SendError::DataFile {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let items = match value {
        Value::Object(_) => vec![value],
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) => return Err(fail("the array is empty".into())),
        _ => return Err(fail("expected a JSON object or an array of objects".into())),
    };
    if items.iter().any(|item| !item.is_object()) {
        return Err(fail("every element must be a JSON object".into()));
    }
    Ok(items)
}

/// The webhooks `send` delivers, triggered at `at`.
pub fn webhooks_for(
    options: &SendOptions,
    at: std::time::SystemTime,
) -> Result<Vec<Webhook>, SendError> {
    if options.count > MAX_COUNT {
        return Err(SendError::TooMany(options.count));
    }
    let mut generator = Generator::new(options.seed).with_id_style(options.id_style);
    match (&options.event, &options.data) {
        (None, Some(_)) => Err(SendError::DataWithoutEvent),
        (Some(_), Some(data)) if data.is_empty() => Err(SendError::EmptyData),
        (None, None) => Ok(generator.mix(options.count, at)),
        (Some(event), None) => Ok(generator.many(event, options.count, at)),
        (Some(event), Some(data)) => Ok((0..options.count)
            .map(|i| {
                let data = data[i % data.len()].clone();
                generator.webhook_with_data(event.clone(), at, data)
            })
            .collect()),
    }
}

/// What the progress line shows.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// Requests sent so far.
    pub sent: u64,
    /// Webhooks acknowledged with a 200.
    pub acknowledged: u64,
    /// Webhooks still queued.
    pub waiting: usize,
    /// The back-off now in place (engine-clock time until the next retry), if any.
    pub backoff: Option<Duration>,
    /// The latest attempt.
    pub last: Attempt,
}

/// How a `send` run ended.
#[derive(Debug, Clone, Serialize)]
pub struct SendReport {
    /// `emptied` (exit 0) or `gave_up` (exit 1).
    pub outcome: &'static str,
    /// The status queue at the end.
    pub status: StatusQueue,
}

impl SendReport {
    /// Whether the queue emptied.
    pub fn emptied(&self) -> bool {
        self.outcome == "emptied"
    }
}

/// Runs `send`: queues the webhooks, delivers them on the real clock, and reports.
pub async fn send(
    options: &SendOptions,
    secret: Secret,
    mut progress: impl FnMut(&Progress),
) -> Result<SendReport, SendError> {
    let clock = SimClock::system();
    let mut settings = AccountSettings::new(options.to.clone(), secret);
    settings.batching = options.batch;
    settings.time_scale = options.time_scale;
    let engine = Engine::with_options(
        settings,
        clock.clone(),
        HttpTransport::new()?,
        EngineOptions {
            seed: options.seed,
            keep_log: false,
            ..EngineOptions::default()
        },
    )?;
    engine.enqueue_all(webhooks_for(options, clock.now())?);

    let mut log = match &options.log {
        Some(path) => Some((
            path.clone(),
            BufWriter::new(File::create(path).map_err(|source| SendError::Log {
                path: path.clone(),
                source,
            })?),
        )),
        None => None,
    };
    let mut log_error = None;
    let outcome = engine
        .run_until_empty_with(options.give_up_after, |attempt, engine| {
            if let Some((path, out)) = &mut log {
                let written = writeln!(out, "{}", attempt.to_json_line()).and_then(|_| out.flush());
                if let Err(source) = written {
                    log_error.get_or_insert(SendError::Log {
                        path: path.clone(),
                        source,
                    });
                }
            }
            let status = engine.status();
            progress(&Progress {
                sent: status.attempts,
                acknowledged: status.delivered,
                waiting: status.waiting,
                backoff: attempt
                    .next_retry
                    .and_then(|at| at.duration_since(engine.now()).ok()),
                last: attempt.clone(),
            });
        })
        .await;
    if let Some(error) = log_error {
        return Err(error);
    }
    Ok(SendReport {
        outcome: match outcome {
            RunOutcome::Emptied => "emptied",
            RunOutcome::GaveUp => "gave_up",
        },
        status: engine.status(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_data_list_is_an_error_not_a_division_by_zero() {
        let options = SendOptions {
            to: "http://127.0.0.1:9/".into(),
            event: Some(EventType::CheckCompleted),
            count: 3,
            batch: false,
            seed: 1,
            id_style: IdStyle::default(),
            data: Some(Vec::new()),
            time_scale: 1.0,
            give_up_after: Duration::from_secs(3600),
            log: None,
        };
        let result = webhooks_for(&options, std::time::SystemTime::UNIX_EPOCH);
        assert!(matches!(result, Err(SendError::EmptyData)), "{result:?}");
    }

    #[test]
    fn a_count_past_the_maximum_is_an_error_not_an_allocation_panic() {
        let mut options = SendOptions {
            to: "http://127.0.0.1:9/".into(),
            event: None,
            count: usize::MAX,
            batch: false,
            seed: 1,
            id_style: IdStyle::default(),
            data: None,
            time_scale: 1.0,
            give_up_after: Duration::from_secs(3600),
            log: None,
        };
        let at = std::time::SystemTime::UNIX_EPOCH;
        let result = webhooks_for(&options, at);
        assert!(
            matches!(result, Err(SendError::TooMany(usize::MAX))),
            "{result:?}"
        );
        options.count = 3;
        assert_eq!(webhooks_for(&options, at).unwrap().len(), 3);
    }
}

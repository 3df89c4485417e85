//! One run: the selected scenarios, one after the other, against one target.
//!
//! Scenarios run sequentially: they share the target, and `ack-latency` must not time answers
//! while another scenario floods it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use passfort_clock::{SharedClock, SystemClock};
use passfort_sender_sim::IdStyle;

use crate::observe::Observer;
use crate::progress::Bars;
use crate::report::{RunReport, ScenarioReport};
use crate::scenario::{self, Context, Limits, Outcome, Scenario, Status};
use crate::scenarios;
use crate::target::{Secret, Target, TargetError};
use crate::webhook::Webhooks;

/// What to run, against what.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The receiver's URL.
    pub target: String,
    /// The shared secret it expects.
    pub secret: Secret,
    /// The file the target appends processed webhooks to, if it has one.
    pub observe_jsonl: Option<PathBuf>,
    /// Scenario ids to run, in this order; empty for all of them.
    pub scenarios: Vec<String>,
    /// Limits and sizes.
    pub limits: Limits,
    /// Whether to draw progress bars on standard error.
    pub progress: bool,
    /// The clock that times answers and deadlines.
    pub clock: SharedClock,
    /// What the ids of the webhooks sent look like (`--id-style`).
    pub id_style: IdStyle,
}

impl Settings {
    /// Every scenario against `target`, with PassFort's limits, no bars, on the system clock.
    pub fn new(target: impl Into<String>, secret: Secret) -> Self {
        Self {
            target: target.into(),
            secret,
            observe_jsonl: None,
            scenarios: Vec::new(),
            limits: Limits::default(),
            progress: false,
            clock: Arc::new(SystemClock),
            id_style: IdStyle::default(),
        }
    }

    /// Reads processing from this observe file.
    pub fn observe(mut self, path: impl Into<PathBuf>) -> Self {
        self.observe_jsonl = Some(path.into());
        self
    }

    /// Runs only these scenarios.
    pub fn only<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scenarios = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Sends ids that look as `style` says.
    pub fn id_style(mut self, style: IdStyle) -> Self {
        self.id_style = style;
        self
    }

    /// Uses these limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// A run that cannot start: bad usage, reported before anything is sent.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A `--scenario` id that does not exist.
    #[error("unknown scenario `{id}`; `passfort-harness list` shows them: {known}")]
    UnknownScenario {
        /// The id given.
        id: String,
        /// Every known id.
        known: String,
    },
    /// The target URL is unusable.
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// The scenarios `ids` name, in that order (all of them when empty).
pub fn select(ids: &[String]) -> Result<Vec<Box<dyn Scenario>>, RunError> {
    if ids.is_empty() {
        return Ok(scenarios::registry());
    }
    let mut chosen: Vec<Box<dyn Scenario>> = Vec::new();
    for id in ids {
        if chosen.iter().any(|scenario| scenario.id() == id) {
            continue;
        }
        let scenario = scenarios::find(id).ok_or_else(|| RunError::UnknownScenario {
            id: id.clone(),
            known: scenarios::registry()
                .iter()
                .map(|s| s.id())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        chosen.push(scenario);
    }
    Ok(chosen)
}

/// Runs the selected scenarios and reports on each.
pub async fn run(settings: Settings) -> Result<RunReport, RunError> {
    let scenarios = select(&settings.scenarios)?;
    let target = Target::new(
        &settings.target,
        settings.secret.clone(),
        settings.clock.clone(),
    )?;
    let observer = settings.observe_jsonl.as_ref().map(|path| {
        Observer::new(path.clone(), settings.clock.clone())
            .watching_for_secret(settings.secret.expose())
    });
    let bars = if settings.progress {
        Bars::on_stderr()
    } else {
        Bars::hidden()
    };
    let started_at = SystemTime::now();
    let mut reports = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        let progress = bars.start(scenario.id());
        let ctx = Context {
            target: target.clone(),
            observer: observer.clone(),
            limits: settings.limits.clone(),
            webhooks: Webhooks::with_id_style(
                settings.secret.clone(),
                rand::random(),
                settings.id_style,
            ),
            progress: progress.clone(),
            id_style: settings.id_style,
        };
        let began = settings.clock.now();
        let outcome = if scenario.needs_observer() && ctx.observer.is_none() {
            scenario::no_observer()
        } else {
            match scenario.run(&ctx).await {
                Ok(outcome) => outcome,
                Err(failure) => Outcome::failed(failure.0),
            }
        };
        let took = settings
            .clock
            .now()
            .duration_since(began)
            .unwrap_or(Duration::ZERO);
        progress.finish(outcome.status.label());
        reports.push(ScenarioReport {
            id: scenario.id().to_owned(),
            description: scenario.description().to_owned(),
            status: outcome.status,
            reason: outcome.reason,
            details: outcome.details,
            duration: took,
        });
    }
    Ok(RunReport {
        target: target.url().to_owned(),
        observe_jsonl: settings.observe_jsonl,
        started_at,
        scenarios: reports,
    })
}

impl RunReport {
    /// The process exit code the contract asks for: 0 when nothing failed (skips and warnings
    /// allowed), 1 when anything failed. (2, bad usage, never reaches a report.)
    pub fn exit_code(&self) -> i32 {
        if self.count(Status::Failed) > 0 {
            1
        } else {
            0
        }
    }
}

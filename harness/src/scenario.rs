//! A scenario: one named, PassFort-grounded question about the target, and the registry of them.
//!
//! Scenario ids are part of the command-line contract (issue 5): they are how a QA engineer
//! selects what to run and how CI systems track a result from one run to the next, so they never
//! change once published. Each scenario's description says which PassFort behaviour it stands
//! for, citing sections of the spec (`docs/passfort-webhooks.md`, "spec §N").

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::observe::{Ended, Observation, Observer, Patience, Waited};
use crate::progress::Progress;
use crate::target::{millis, Bearer, Delivery, Target};
use crate::webhook::Webhooks;

/// The limits and sizes scenarios work with.
///
/// Defaults are PassFort's own figures; the library lets them be changed so that tests can use a
/// small limit against a deliberately slow receiver instead of waiting out 5 real seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// PassFort's answer limit with batching on (spec §1: 5 s).
    pub batch_answer: Duration,
    /// PassFort's answer limit with batching off (spec §1: 10 s).
    pub single_answer: Duration,
    /// Answer times above this are a warning in `ack-latency`: the spec (§6) asks for "never more
    /// than a fraction" of the limit.
    pub warn_above: Duration,
    /// How long a scenario that expects a refusal waits for it. PassFort does not care how long
    /// a refusal takes (a forged request is not its own), but a run must end.
    pub refusal_wait: Duration,
    /// How long to wait for expected ids to appear in the observe file, and when a target that
    /// shows no progress is given up on.
    pub observe: Patience,
    /// How long `accepts-slow-upload`'s body takes to arrive: well inside the batched limit.
    pub slow_upload: Duration,
    /// How many requests `ack-latency` times.
    pub latency_requests: usize,
    /// How many webhooks `survives-retry-storm` sends.
    pub storm_webhooks: usize,
    /// How much faster than PassFort the storm's back-off and batch cadence run (the simulator's
    /// `time_scale`): 10 000 turns the first 30 s back-off into 3 ms.
    pub storm_time_scale: u32,
    /// After this many failed attempts in a row the storm calls the queue stalled: PassFort's
    /// back-off would by then be hours long (spec §4).
    pub storm_stall_after: u32,
    /// How long (real time) the storm may take at most.
    pub storm_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            batch_answer: Duration::from_secs(5),
            single_answer: Duration::from_secs(10),
            warn_above: Duration::from_secs(1),
            refusal_wait: Duration::from_secs(30),
            observe: Patience::default(),
            slow_upload: Duration::from_secs(3),
            latency_requests: 200,
            storm_webhooks: 1_000,
            storm_time_scale: 10_000,
            storm_stall_after: 8,
            storm_deadline: Duration::from_secs(600),
        }
    }
}

/// How a scenario ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The target behaves as PassFort needs.
    Passed,
    /// It does, but close to a limit: worth a look before go-live.
    Warned,
    /// It does not; the reason says what PassFort would do and what to fix.
    Failed,
    /// Not run, for the reason given (e.g. no observe file).
    Skipped,
}

impl Status {
    /// The word used in the end table and the reports.
    pub fn label(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Warned => "warned",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        }
    }
}

/// A scenario's verdict: its status, a reason a person can act on, and the measurements behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// Why it failed, warned or was skipped; for a pass, what was (or was not) checked.
    pub reason: String,
    /// Measurements and facts gathered on the way (counts, percentiles).
    pub details: Vec<String>,
}

impl Outcome {
    /// A pass, saying what was shown.
    pub fn passed(reason: impl Into<String>) -> Self {
        Self {
            status: Status::Passed,
            reason: reason.into(),
            details: Vec::new(),
        }
    }

    /// A pass with a warning.
    pub fn warned(reason: impl Into<String>) -> Self {
        Self {
            status: Status::Warned,
            reason: reason.into(),
            details: Vec::new(),
        }
    }

    /// A failure.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            status: Status::Failed,
            reason: reason.into(),
            details: Vec::new(),
        }
    }

    /// A skip.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Self {
            status: Status::Skipped,
            reason: reason.into(),
            details: Vec::new(),
        }
    }

    /// Adds a measurement or fact.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.details.push(detail.into());
        self
    }
}

/// A reason to stop a scenario early with a failure; `?` turns it into [`Status::Failed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl Failure {
    /// A failure with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl From<crate::observe::ObserveError> for Failure {
    fn from(error: crate::observe::ObserveError) -> Self {
        Self(error.to_string())
    }
}

/// What a scenario body returns.
pub type Checked = Result<Outcome, Failure>;

/// Everything a scenario may use: the target, the observe file, limits, webhooks, progress.
#[derive(Debug)]
pub struct Context {
    /// The receiver under test.
    pub target: Target,
    /// The observe file, when the user gave one.
    pub observer: Option<Observer>,
    /// Limits and sizes.
    pub limits: Limits,
    /// Fresh webhooks for this scenario.
    pub webhooks: Webhooks,
    /// What their ids look like (the storm's own webhooks too).
    pub id_style: passfort_sender_sim::IdStyle,
    /// This scenario's progress bar.
    pub progress: Progress,
}

impl Context {
    /// PassFort's answer limit for `body` (spec §1): 5 s for a batch (a JSON array), 10 s for a
    /// single webhook. Every request sent as PassFort would send it is judged by it.
    pub fn limit_for(&self, body: &Value) -> Duration {
        if body.is_array() {
            self.limits.batch_answer
        } else {
            self.limits.single_answer
        }
    }

    /// POSTs with the right secrets and fails the scenario unless the answer is exactly 200
    /// within PassFort's limit for the body: a later answer is a failed delivery, as PassFort
    /// counts it.
    pub async fn deliver(&self, body: &Value, what: &str) -> Result<Delivery, Failure> {
        let delivery = self
            .target
            .post(body, Bearer::Right, self.limit_for(body))
            .await;
        self.progress.inc(1);
        if delivery.is_200() {
            Ok(delivery)
        } else {
            Err(Failure(not_200_reason(&delivery, what)))
        }
    }

    /// The observe file, or a skip explaining how to get this scenario run.
    pub fn require_observer(&self) -> Result<&Observer, Outcome> {
        self.observer.as_ref().ok_or_else(no_observer)
    }

    /// Sends one valid webhook after everything else and waits until the target processed it.
    ///
    /// Delivery is in order (spec §4), so once this "sentinel" is processed, anything the target
    /// was going to process from earlier requests has been processed too: negative checks ("never
    /// processed", "processed once") need no timed wait.
    pub async fn settle(&self, observer: &Observer) -> Result<Observation, Failure> {
        let sentinel = self.webhooks.single();
        let id = crate::webhook::id_of(&sentinel);
        let what = "a valid webhook sent last, as a sentinel";
        // Any 2xx will do here: whether the answer is exactly 200 is `answers-exactly-200`'s
        // question; this one only needs the sentinel processed. It must come in time, though:
        // past PassFort's limit the sentinel is a failed delivery like any other.
        let delivery = self
            .target
            .post(&sentinel, Bearer::Right, self.limit_for(&sentinel))
            .await;
        if !matches!(delivery.status(), Some(200..=299)) {
            return Err(Failure(not_200_reason(&delivery, what)));
        }
        let waited = observer
            .wait_for(std::slice::from_ref(&id), self.limits.observe)
            .await?;
        if waited.complete() {
            return Ok(waited.seen);
        }
        Err(Failure(format!(
            "the target answered 200 to webhook {id} ({what}) but {}: an acknowledged webhook \
             must be processed (spec §4, §6)",
            self.not_seen(observer, &waited)
        )))
    }

    /// Waits for `ids` in the observe file, failing with the missing ones named.
    pub async fn processed(
        &self,
        observer: &Observer,
        ids: &[String],
        what: &str,
    ) -> Result<Observation, Failure> {
        let waited = observer.wait_for(ids, self.limits.observe).await?;
        if waited.complete() {
            return Ok(waited.seen);
        }
        let missing = waited.seen.missing(ids);
        Err(Failure(format!(
            "{} of {} {what} answered 200 never appeared in the observe file (first missing: \
             {}): {}; PassFort drops a webhook from its queue once answered 200, so an \
             acknowledged webhook that is not processed is lost (spec §3, §4)",
            missing.len(),
            ids.len(),
            missing.first().copied().unwrap_or_default(),
            self.not_seen(observer, &waited),
        )))
    }

    /// Why a wait ended without the ids, for a failure reason.
    fn not_seen(&self, observer: &Observer, waited: &Waited) -> String {
        let file = observer.path().display();
        let patience = self.limits.observe;
        match waited.ended {
            Ended::Quiet => format!(
                "the target processed nothing new for {} (it appended nothing to the observe \
                 file {file}; --observe-quiet), so it was given up on after {}",
                humantime::format_duration(patience.quiet),
                millis(waited.waited)
            ),
            Ended::TimedOut | Ended::Complete => format!(
                "it was still missing from the observe file {file} after {} \
                 (--observe-timeout), although the target kept processing other webhooks",
                humantime::format_duration(patience.timeout)
            ),
        }
    }
}

/// The skip of a scenario that needs the observe file when none was given.
pub fn no_observer() -> Outcome {
    Outcome::skipped(
        "needs --observe-jsonl: the file the target appends one JSON object (with `id`) per \
         processed webhook to",
    )
}

/// The reason used whenever PassFort needed a 200 and did not get one.
pub fn not_200_reason(delivery: &Delivery, what: &str) -> String {
    match delivery {
        Delivery::Answered { status, .. } if (200..300).contains(status) => format!(
            "{what}: {}; PassFort reads anything but exactly 200 as a failure and retries it \
             forever, stalling the queue behind it (spec §1): answer 200",
            delivery.describe()
        ),
        Delivery::Answered { status: 401, .. } | Delivery::Answered { status: 403, .. } => {
            format!(
                "{what}: {} although both secrets were right: check that the target expects the \
                 secret in PASSFORT_WEBHOOK_SECRET, as `Authorization: Bearer` and as the body's \
                 `secret` (spec §1)",
                delivery.describe()
            )
        }
        Delivery::Answered { .. } => format!(
            "{what}: {}; PassFort needs 200 for an authentic webhook and retries anything else \
             with back-off, stalling the queue (spec §1, §4)",
            delivery.describe()
        ),
        Delivery::NoAnswer { limit } => format!(
            "{what}: no answer within {}, PassFort's limit (5 s for a batch, 10 s for a single \
             webhook); PassFort counts a late answer as a failed delivery and sends the webhook \
             again with back-off, holding back every webhook queued behind it (spec §1, §4): \
             answer 200 as soon as the webhook is stored and process it afterwards",
            millis(*limit)
        ),
        Delivery::Unreachable { .. } => format!("{what}: {}", delivery.describe()),
    }
}

/// One conformance scenario.
#[async_trait]
pub trait Scenario: Send + Sync {
    /// The id used on the command line and in reports; never changes once published.
    fn id(&self) -> &'static str;

    /// What it checks and which PassFort behaviour (spec section) it stands for.
    fn description(&self) -> &'static str;

    /// Whether the scenario means nothing without the observe file (then it is skipped).
    fn needs_observer(&self) -> bool {
        false
    }

    /// Runs the scenario against `ctx.target`.
    async fn run(&self, ctx: &Context) -> Checked;
}

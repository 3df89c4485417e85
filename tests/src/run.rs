//! Plays a [`Case`]: the simulator's engine on a `VirtualClock` drives the receiver through the
//! simulator's fault injection and the [`Wire`], a forger sends its requests alongside, the
//! worker lags and catches up, and everything is recorded for [`crate::property::check`].

use crate::case::{Case, Fault, Forgery, ForgeryKind, HandlerPlan};
use crate::deployment::{Deployment, Node};
use crate::faulty_store::Budgets;
use crate::handler::{Call, Recorder};
use crate::log_capture;
use crate::wire::{self, Exchange, Wire};
use passfort_clock::{Clock, VirtualClock};
use passfort_receiver::status::Report;
use passfort_receiver::store::Entry;
use passfort_receiver::worker::{Idle, Step};
use passfort_receiver::{Job, Store};
use passfort_sender_sim::{
    AccountSettings, Attempt, Engine, EngineOptions, EventType, FaultyTransport, Generator, Secret,
    StatusQueue, Webhook,
};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// The receiver's time budgets in every run (its defaults: well inside 5 s and 10 s).
pub const BUDGETS: Budgets = Budgets {
    batch: passfort_receiver::http::DEFAULT_BATCH_DEADLINE,
    single: passfort_receiver::http::DEFAULT_SINGLE_DEADLINE,
};

/// Fault-free attempts allowed after the last turn before the queue must be empty.
pub const FINAL_ATTEMPTS: usize = 100;

/// One attempt of the simulator, with the turn and fault it was made under.
#[derive(Debug, Clone)]
pub struct Made {
    /// The turn (`None`: a fault-free attempt after the last turn).
    pub turn: Option<usize>,
    /// The fault applied.
    pub fault: Fault,
    /// The simulator's record.
    pub attempt: Attempt,
}

/// One forged request and what the receiver did with it.
#[derive(Debug, Clone)]
pub struct Forged {
    /// The turn.
    pub turn: usize,
    /// The forgery.
    pub forgery: Forgery,
    /// The ids in its body.
    pub ids: Vec<String>,
    /// The receiver's status code.
    pub status: u16,
    /// Ids in the store before and after.
    pub stored_before: Result<Vec<String>, String>,
    /// See `stored_before`.
    pub stored_after: Result<Vec<String>, String>,
}

/// Everything a run observed.
pub struct Observed {
    /// The account's shared secret.
    pub secret: String,
    /// The wrong secrets the forger used.
    pub forged_secrets: Vec<String>,
    /// What PassFort queued, in queue order, with the handler plan of each.
    pub queued: Vec<(Webhook, HandlerPlan)>,
    /// Every attempt of the simulator.
    pub attempts: Vec<Made>,
    /// Every answer the receiver gave to the simulator.
    pub exchanges: Vec<Exchange>,
    /// Every forged request.
    pub forged: Vec<Forged>,
    /// Every call of the handler.
    pub calls: Vec<Call>,
    /// The jobs handled successfully, in order.
    pub handled: Vec<Job>,
    /// The store at the end.
    pub entries: Result<Vec<Entry>, String>,
    /// The receiver's status at the end.
    pub receiver_status: Result<Report, String>,
    /// The simulator's status queue at the end.
    pub sim_status: StatusQueue,
    /// How many times the receiver process started.
    pub starts: usize,
    /// Every log line written during the run.
    pub logs: Result<String, String>,
    /// Every file in the database directory at the end, with its bytes.
    pub stored_files: Vec<(PathBuf, Vec<u8>)>,
    /// Anything that went wrong driving the run (a store error in the worker, a queue that
    /// never emptied).
    pub problems: Vec<String>,
    /// The answer limit the simulator enforced.
    pub limit: Duration,
}

fn wire_fault(fault: Fault) -> passfort_sender_sim::Fault {
    use passfort_sender_sim::Fault as Sim;
    match fault {
        Fault::Refused => Sim::Refuse,
        Fault::AnswerLost => Sim::DropAnswer,
        Fault::Hang => Sim::Hang,
        _ => Sim::Pass,
    }
}

struct Player<'a> {
    case: &'a Case,
    clock: VirtualClock,
    deployment: Arc<Deployment>,
    journal: wire::SharedJournal,
    faults: FaultyTransport<Wire>,
    engine: Engine,
    generator: Generator,
    recorder: Recorder,
    observed: Observed,
}

/// Plays `case` to the end and records everything.
pub async fn play(case: &Case) -> Observed {
    let logs = log_capture::capture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"));
    let database = format!("sqlite://{}", dir.path().join("receiver.db").display());
    let clock = VirtualClock::new();
    let secret = format!("conformance-secret-{:016x}", case.seed);
    let recorder = Recorder::new();
    let deployment = Arc::new(Deployment::new(
        database,
        secret.clone(),
        clock.clone(),
        BUDGETS,
        recorder.clone(),
    ));
    let mut settings = AccountSettings::new(
        "http://receiver.test/webhooks/passfort",
        Secret::new(secret.clone()),
    );
    if let Some(max) = case.batching {
        settings = settings.batched();
        settings.max_batch = max;
    }
    let limit = settings.answer_limit();
    let journal = wire::SharedJournal::default();
    let faults = FaultyTransport::new(
        Wire::new(deployment.clone(), journal.clone(), clock.clone(), limit),
        clock.clone(),
    );
    // Every field is set today; the update keeps this building when the simulator adds one.
    #[allow(clippy::needless_update)]
    let options = EngineOptions {
        seed: case.seed,
        keep_log: true,
        // Real work (a SQLite write) gets this long before virtual time moves under it…
        quiet: Duration::from_millis(100),
        // …and this long before the simulator's own limit is declared passed.
        grace: Duration::from_secs(30),
        ..EngineOptions::default()
    };
    let engine = Engine::with_options(settings, clock.clone(), faults.clone(), options)
        .unwrap_or_else(|e| panic!("the simulator refused the settings: {e}"));
    let sim_status = engine.status();
    let mut player = Player {
        case,
        clock,
        deployment,
        journal,
        faults,
        engine,
        generator: Generator::new(case.seed),
        recorder,
        observed: Observed {
            secret,
            forged_secrets: Vec::new(),
            queued: Vec::new(),
            attempts: Vec::new(),
            exchanges: Vec::new(),
            forged: Vec::new(),
            calls: Vec::new(),
            handled: Vec::new(),
            entries: Err("not read".into()),
            receiver_status: Err("not read".into()),
            sim_status,
            starts: 0,
            logs: Err("not read".into()),
            stored_files: Vec::new(),
            problems: Vec::new(),
            limit,
        },
    };
    player.play().await;
    let mut observed = player.finish().await;
    observed.stored_files = crate::leak::files_under(dir.path());
    observed.logs = logs.map(|capture| capture.text());
    observed
}

impl Player<'_> {
    async fn up(&mut self) -> Option<Node> {
        match self.deployment.start().await {
            Ok(node) => Some(node),
            Err(e) => {
                self.observed
                    .problems
                    .push(format!("the receiver could not (re)start: {e}"));
                None
            }
        }
    }

    async fn play(&mut self) {
        let case = self.case;
        if self.up().await.is_none() {
            return;
        }
        let mut down_for = 0u8;
        for (index, turn) in case.turns.iter().enumerate() {
            if !self.deployment.is_up() {
                if down_for == 0 {
                    self.up().await;
                } else {
                    down_for -= 1;
                }
            }
            for event in &turn.queue {
                let webhook = self
                    .generator
                    .webhook(event.event.clone(), self.clock.now());
                self.recorder.plan(webhook.id.to_string(), event.handler);
                self.observed.queued.push((webhook.clone(), event.handler));
                self.engine.enqueue(webhook);
            }
            if let Some(forgery) = turn.forgery {
                self.forge(index, forgery).await;
            }
            if self.engine.queued() > 0 {
                let failed = self.attempt(Some(index), turn.fault).await;
                if let Fault::CrashAfterCommit { down_for: d } = turn.fault {
                    if !self.deployment.is_up() {
                        down_for = d;
                    }
                }
                if failed && turn.press_retry {
                    self.press_retry_mid_back_off();
                }
            }
            self.worker_steps(turn.worker_steps).await;
        }
        let mut extra = 0;
        while self.engine.queued() > 0 && extra < FINAL_ATTEMPTS {
            if !self.deployment.is_up() {
                self.up().await;
            }
            self.attempt(None, Fault::Pass).await;
            extra += 1;
        }
        if self.engine.queued() > 0 {
            self.observed.problems.push(format!(
                "the simulator's queue still held {} webhooks after {FINAL_ATTEMPTS} fault-free attempts",
                self.engine.queued()
            ));
        }
    }

    /// One attempt of the simulator under `fault`; whether it failed.
    async fn attempt(&mut self, turn: Option<usize>, fault: Fault) -> bool {
        {
            let mut journal = wire::lock(&self.journal);
            journal.turn = turn;
            journal.fault = Some(fault);
        }
        self.faults.script([wire_fault(fault)]);
        let attempt = self.engine.step().await;
        self.faults.clear_script();
        wire::lock(&self.journal).fault = None;
        match attempt {
            Some(attempt) => {
                let failed = !attempt.outcome.is_delivered();
                self.observed.attempts.push(Made {
                    turn,
                    fault,
                    attempt,
                });
                failed
            }
            None => false,
        }
    }

    fn press_retry_mid_back_off(&mut self) {
        let now = self.clock.now();
        if let Some(retry) = self.engine.status().next_retry {
            if let Ok(wait) = retry.duration_since(now) {
                self.clock.advance(wait / 2);
            }
        }
        self.engine.retry_now();
    }

    async fn worker_steps(&mut self, steps: u8) {
        let Some(node) = self.deployment.node() else {
            return;
        };
        for _ in 0..steps {
            match node.worker.step().await {
                Ok(Step::Handled { .. }) => {}
                Ok(Step::Idle(_)) => break,
                Err(e) => {
                    self.observed
                        .problems
                        .push(format!("the worker hit a store error: {e}"));
                    break;
                }
            }
        }
    }

    /// Sends one forged request straight to the receiver's router.
    async fn forge(&mut self, turn: usize, forgery: Forgery) {
        let Some(node) = self.deployment.node() else {
            return;
        };
        let n = self.observed.forged.len();
        let wrong = format!("forged-secret-{n}-{:x}", self.case.seed);
        self.observed.forged_secrets.push(wrong.clone());
        // Forged ids read "f0f0…" in reports.
        let fresh = uuid::Uuid::from_u128(
            ((0xf0f0_0000u128 | n as u128) << 96) | u128::from(self.case.seed),
        );
        let head = self.engine.queued_webhooks().into_iter().next();
        let (id, event) = match (&head, forgery.reuse_queued_id) {
            (Some(head), true) => (head.id.to_string(), head.event.clone()),
            _ => (fresh.to_string(), EventType::ProductStatusChanged),
        };
        let secret = self.observed.secret.clone();
        let element = |id: &str, secret: &str| {
            json!({
                "id": id,
                "event": event.as_str(),
                "secret": secret,
                "timestamp": passfort_sender_sim::event::unix_seconds(self.clock.now()),
                "data": {"profile_id": "00000000-0000-4000-8000-00000000f0f0", "customer_ref": null,
                         "new_status": "APPROVED", "forged": true},
            })
        };
        let (body, bearer): (Value, Option<&str>) = match forgery.kind {
            ForgeryKind::WrongBearer => (element(&id, &secret), Some(&wrong)),
            ForgeryKind::WrongBodySecret => (element(&id, &wrong), Some(&secret)),
            ForgeryKind::OneBadInBatch => {
                let second = uuid::Uuid::from_u128(fresh.as_u128() | (0x0800u128 << 96));
                (
                    json!([element(&id, &secret), element(&second.to_string(), &wrong)]),
                    Some(&secret),
                )
            }
            ForgeryKind::NoAuthorization => (element(&id, &secret), None),
        };
        let (ids, _) = wire::ids_in(body.to_string().as_bytes());
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri("/webhooks/passfort")
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(bearer) = bearer {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        let request = request
            .body(axum::body::Body::from(body.to_string()))
            .unwrap_or_else(|e| panic!("cannot build a forged request: {e}"));
        let stored_before = wire::stored_ids(&node).await;
        let status = match node.router.clone().oneshot(request).await {
            Ok(answer) => answer.status().as_u16(),
            Err(never) => match never {},
        };
        let stored_after = wire::stored_ids(&node).await;
        self.observed.forged.push(Forged {
            turn,
            forgery,
            ids,
            status,
            stored_before,
            stored_after,
        });
    }

    /// Lets the worker hand on everything, moving the clock to each retry time, then reads the
    /// final state.
    async fn finish(mut self) -> Observed {
        if let Some(node) = self.up().await {
            let mut rounds = 0;
            loop {
                rounds += 1;
                if rounds > 10_000 {
                    self.observed
                        .problems
                        .push("the worker never became idle with an empty queue".into());
                    break;
                }
                match node.worker.run_until_idle().await {
                    Ok(drained) => match drained.idle {
                        Some(Idle::RetryAt(at)) | Some(Idle::Busy(at)) => self.clock.advance_to(at),
                        Some(Idle::Empty) | None => break,
                    },
                    Err(e) => {
                        self.observed
                            .problems
                            .push(format!("the worker hit a store error: {e}"));
                        break;
                    }
                }
            }
            let now = self.clock.now();
            self.observed.entries = node.sqlite.entries().await.map_err(|e| e.to_string());
            self.observed.receiver_status = node
                .sqlite
                .status(now)
                .await
                .map(|status| Report::new(status, now))
                .map_err(|e| e.to_string());
        }
        self.observed.sim_status = self.engine.status();
        self.observed.exchanges = std::mem::take(&mut wire::lock(&self.journal).exchanges);
        self.observed.calls = self.recorder.calls();
        self.observed.handled = self.recorder.handled();
        self.observed.starts = self.deployment.starts();
        self.deployment.crash().await;
        self.observed
    }
}

/// Plays `case` on a fresh single-threaded runtime (so a run is one thread's business).
pub fn play_blocking(case: &Case) -> Observed {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build a runtime: {e}"));
    runtime.block_on(play(case))
}

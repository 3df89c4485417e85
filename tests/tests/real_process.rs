//! The smaller set over real HTTP: the real `passfort-receiver` binary on loopback, driven by the
//! simulator's HTTP transport on the real clock (back-off 10 000× faster), SIGKILLed while
//! webhooks flow and restarted on the same database and observe file, with a forger sending
//! requests alongside. Each webhook must come out of the `jsonl:` sink exactly once, in order;
//! every answer inside the limit; both queues empty at the end; no secret in the database
//! files, the sink's file or the process's log output.
//!
//! `CONFORMANCE_REAL_CASES=N` runs more generated cases (default [`DEFAULT_CASES`]).

use futures::future::BoxFuture;
use passfort_clock::SystemClock;
use passfort_conformance::leak;
use passfort_conformance::process::{self, Options, ReceiverProcess};
use passfort_sender_sim::transport::Request;
use passfort_sender_sim::{
    AccountSettings, Answer, Engine, EngineOptions, Fault, FaultyTransport, Generator,
    HttpTransport, Outcome, RunOutcome, Secret, Transport, TransportError,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_CASES: u32 = 3;

/// Upper bound on any wait for the real processes (never a fixed sleep: conditions are polled).
const PATIENCE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct RealCase {
    seed: u64,
    batching: Option<usize>,
    webhooks: usize,
    kills: Vec<Kill>,
    lost_answer_every: u64,
}

/// When the receiver is SIGKILLed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The instant the `n`-th answer 200 (counted from the previous kill) reaches the sender,
    /// before the sender has even read it: whatever was answered 200 must already be on disk.
    RightAfterAnswer200(u64),
    /// Once the sink has handed on a share of the webhooks: mid-request, mid-commit or
    /// mid-handler, wherever the process happens to be.
    WhileHandingOn,
}

fn real_case() -> impl Strategy<Value = RealCase> {
    let kill = prop_oneof![
        (1u64..=5).prop_map(Kill::RightAfterAnswer200),
        Just(Kill::WhileHandingOn),
    ];
    (
        any::<u64>(),
        prop::option::of(2usize..=8),
        60usize..=160,
        prop::collection::vec(kill, 1..=4),
        3u64..=7,
    )
        .prop_map(
            |(seed, batching, webhooks, kills, lost_answer_every)| RealCase {
                seed,
                batching,
                webhooks,
                kills,
                lost_answer_every,
            },
        )
}

/// The receiver process of the moment (`None` while it is dead).
type Slot = Arc<Mutex<Option<ReceiverProcess>>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The simulator's HTTP transport, plus a finger on the receiver's SIGKILL: armed with the
/// ordinal of an answer 200, it kills the receiver as that answer arrives.
#[derive(Clone)]
struct KillOnAnswer {
    inner: Arc<FaultyTransport<HttpTransport>>,
    slot: Slot,
    outputs: Arc<Mutex<Vec<String>>>,
    answered: Arc<AtomicU64>,
    armed: Arc<Mutex<Option<u64>>>,
}

impl Transport for KillOnAnswer {
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Answer, TransportError>> {
        let sent = self.inner.send(request);
        let this = self.clone();
        Box::pin(async move {
            let answer = sent.await;
            if matches!(&answer, Ok(a) if a.status == 200) {
                let n = this.answered.fetch_add(1, Ordering::SeqCst) + 1;
                let mut armed = lock(&this.armed);
                if *armed == Some(n) {
                    *armed = None;
                    if let Some(mut process) = lock(&this.slot).take() {
                        let _ = process.kill();
                        lock(&this.outputs).extend(process.output());
                    }
                }
            }
            answer
        })
    }
}

/// Ids on the complete lines of the observe file, in order.
fn observed_ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

async fn until<F: FnMut() -> bool>(what: &str, mut done: F) -> Result<(), String> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > PATIENCE {
            return Err(format!("gave up after {PATIENCE:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// A forger: right body secret with a wrong bearer, then right bearer with a wrong body secret.
async fn forge(url: &str, secret: &str, wrong: &str, id: &str) -> Result<Vec<u16>, String> {
    let client = reqwest::Client::new();
    let body = |s: &str| {
        json!({"id": id, "event": "PRODUCT_STATUS_CHANGED", "secret": s, "timestamp": 1_643_813_829,
               "data": {"profile_id": "00000000-0000-4000-8000-00000000f0f0", "customer_ref": null, "forged": true}})
    };
    let mut statuses = Vec::new();
    for (bearer, in_body) in [(wrong, secret), (secret, wrong)] {
        let answer = client
            .post(url)
            .bearer_auth(bearer)
            .json(&body(in_body))
            .send()
            .await
            .map_err(|e| format!("forger could not reach the receiver: {e}"))?;
        statuses.push(answer.status().as_u16());
    }
    Ok(statuses)
}

async fn play(case: &RealCase, binary: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let observe = dir.path().join("processed.jsonl");
    let db_dir = dir.path().join("db");
    std::fs::create_dir_all(&db_dir).map_err(|e| e.to_string())?;
    let secret = format!("conformance-real-secret-{:016x}", case.seed);
    let options = Options {
        database: format!("sqlite://{}", db_dir.join("receiver.db").display()),
        sink: format!("jsonl:{}", observe.display()),
        secret: secret.clone(),
        args: Vec::new(),
    };
    let start =
        |options: &Options| ReceiverProcess::start(binary, options).map_err(|e| e.to_string());
    let first = start(&options)?;
    let mut url = first.webhook_url();
    let slot: Slot = Arc::new(Mutex::new(Some(first)));
    let outputs: Arc<Mutex<Vec<String>>> = Arc::default();

    let faults = FaultyTransport::new(
        HttpTransport::new().map_err(|e| e.to_string())?,
        SystemClock,
    );
    // Every n-th answer is lost on the way back (the receiver stored it: redelivered).
    faults.script((1..=400u64).map(|n| {
        if n % case.lost_answer_every == 0 {
            Fault::DropAnswer
        } else {
            Fault::Pass
        }
    }));
    let killer = KillOnAnswer {
        inner: Arc::new(faults),
        slot: slot.clone(),
        outputs: outputs.clone(),
        answered: Arc::default(),
        armed: Arc::default(),
    };
    let mut settings = AccountSettings::new(url.clone(), Secret::new(secret.clone()));
    settings.time_scale = 10_000.0;
    if let Some(max) = case.batching {
        settings = settings.batched();
        settings.max_batch = max;
    }
    let limit = settings.answer_limit();
    let engine = Engine::with_options(
        settings,
        SystemClock,
        killer.clone(),
        EngineOptions {
            seed: case.seed,
            ..EngineOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let mut generator = Generator::new(case.seed);
    let at = passfort_clock::Clock::now(&SystemClock);
    let sent: Vec<String> = generator
        .mix(case.webhooks, at)
        .into_iter()
        .map(|webhook| {
            let id = webhook.id.to_string();
            engine.enqueue(webhook);
            id
        })
        .collect();

    let driver = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run_until_empty(Duration::from_secs(86_400)).await }
    });

    let mut forged_ids = Vec::new();
    let mut wrong_secrets = Vec::new();
    let mut kills_done = 0;
    for (index, kill) in case.kills.iter().enumerate() {
        let wrong = format!("forged-real-secret-{index}-{:x}", case.seed);
        let forged_id = uuid::Uuid::from_u128(
            ((0xf0f0_0000u128 | index as u128) << 96) | u128::from(case.seed),
        )
        .to_string();
        let statuses = forge(&url, &secret, &wrong, &forged_id).await?;
        if statuses.contains(&200) {
            return Err(format!("a forged request was answered 200: {statuses:?}"));
        }
        forged_ids.push(forged_id);
        wrong_secrets.push(wrong);
        match kill {
            Kill::RightAfterAnswer200(n) => {
                let at = killer.answered.load(Ordering::SeqCst) + n;
                *lock(&killer.armed) = Some(at);
                until("the armed kill after an answer 200", || {
                    lock(&slot).is_none() || driver.is_finished()
                })
                .await?;
                *lock(&killer.armed) = None;
            }
            Kill::WhileHandingOn => {
                let threshold = (index + 1) * case.webhooks / (case.kills.len() + 1);
                until("the sink to hand on webhooks before a kill", || {
                    observed_ids(&observe).len() >= threshold || driver.is_finished()
                })
                .await?;
                if let Some(mut process) = lock(&slot).take() {
                    process.kill().map_err(|e| e.to_string())?;
                    lock(&outputs).extend(process.output());
                }
            }
        }
        if lock(&slot).is_some() {
            break; // the simulator finished first: nothing left to kill.
        }
        kills_done += 1;
        let restarted = start(&options)?;
        url = restarted.webhook_url();
        *lock(&slot) = Some(restarted);
        let endpoint = url.clone();
        engine
            .update_settings(|s| s.endpoint = endpoint)
            .map_err(|e| e.to_string())?;
    }

    // A case whose simulator finished before any kill proved nothing about a crash.
    if kills_done == 0 {
        return Err(format!(
            "no SIGKILL happened: the simulator finished before the first planned kill ({:?})",
            case.kills
        ));
    }
    let outcome = driver.await.map_err(|e| e.to_string())?;
    let attempts = engine.attempts();
    let log = || {
        let tail: Vec<String> = attempts
            .iter()
            .rev()
            .take(40)
            .rev()
            .map(|a| a.to_json_line())
            .collect();
        format!("\nlast attempts of the simulator:\n{}", tail.join("\n"))
    };
    if outcome != RunOutcome::Emptied {
        return Err(format!("the simulator's queue never emptied{}", log()));
    }
    let everything = |seen: &[String]| {
        let seen: std::collections::HashSet<&String> = seen.iter().collect();
        sent.iter().all(|id| seen.contains(id))
    };
    // Missing ids are reported below with the rest; a timeout here is not the verdict.
    let _ = until("every webhook in the observe file", || {
        everything(&observed_ids(&observe))
    })
    .await;

    // 1, 2, 3: exactly once, in order, nothing lost.
    let seen = observed_ids(&observe);
    if seen != sent {
        let mut times = std::collections::HashMap::<&String, usize>::new();
        for id in &seen {
            *times.entry(id).or_default() += 1;
        }
        let doubled = times.values().filter(|n| **n > 1).count();
        let missing = sent.iter().filter(|id| !times.contains_key(id)).count();
        let first = seen
            .iter()
            .zip(&sent)
            .position(|(a, b)| a != b)
            .unwrap_or(seen.len().min(sent.len()));
        return Err(format!(
            "the sink holds {} lines for the {} webhooks PassFort sent: {doubled} handed on more \
             than once, {missing} never; first difference from queue order at #{first}: {:?} \
             instead of {:?}{}",
            seen.len(),
            sent.len(),
            seen.get(first),
            sent.get(first),
            log()
        ));
    }
    for forged in &forged_ids {
        if seen.contains(forged) {
            return Err(format!("forged webhook {forged} was handed on"));
        }
    }
    // 5: every answer inside the limit.
    for a in &attempts {
        if matches!(a.outcome, Outcome::Late | Outcome::TimedOut) || a.latency() > limit {
            return Err(format!(
                "attempt #{} ended {:?} after {:?} (limit {limit:?}){}",
                a.seq,
                a.outcome,
                a.latency(),
                log()
            ));
        }
    }
    // 6: both queues empty.
    if !engine.status().is_empty() {
        return Err(format!("the simulator's status: {}", engine.status()));
    }
    let client = reqwest::Client::new();
    let mut last = Value::Null;
    let started = Instant::now();
    loop {
        let status_url = lock(&slot)
            .as_ref()
            .map(ReceiverProcess::status_url)
            .unwrap_or_default();
        last = match client.get(status_url).send().await {
            Ok(answer) => answer.json::<Value>().await.unwrap_or(Value::Null),
            Err(_) => last,
        };
        if last["queue"] == "empty" && last["dead_letters"] == 0 && last["queue_depth"] == 0 {
            break;
        }
        if started.elapsed() > PATIENCE {
            return Err(format!("the receiver's status never emptied: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // 4: no secret in the database files, the observe file or the process output.
    if let Some(mut process) = lock(&slot).take() {
        process.kill().map_err(|e| e.to_string())?;
        lock(&outputs).extend(process.output());
    }
    let mut needles = vec![secret];
    needles.extend(wrong_secrets);
    let mut files = leak::files_under(&db_dir);
    let observed_bytes = std::fs::read(&observe).map_err(|e| e.to_string())?;
    files.push((observe.clone(), observed_bytes));
    let output = lock(&outputs).join("\n");
    files.push(("process output".into(), output.clone().into_bytes()));
    if !files
        .iter()
        .any(|(path, bytes)| path.starts_with(&db_dir) && leak::contains(bytes, &sent[0]))
    {
        return Err(
            "the database files hold no webhook id: the secret scan would prove nothing".into(),
        );
    }
    if !output.contains(process::READY_PREFIX) {
        return Err("the process output was not captured".into());
    }
    for (path, bytes) in &files {
        let leaks = leak::find(&path.display().to_string(), bytes, &needles);
        if let Some(found) = leaks.first() {
            return Err(format!(
                "secret #{} found in {} at byte {}",
                found.needle, found.place, found.offset
            ));
        }
    }
    let failed = |o: Outcome| attempts.iter().filter(|a| a.outcome == o).count();
    eprintln!(
        "{case:?}: {} webhooks through {} attempts ({} refused, {} dropped), {kills_done} SIGKILLs",
        sent.len(),
        attempts.len(),
        failed(Outcome::Refused),
        failed(Outcome::Dropped),
    );
    Ok(())
}

#[test]
fn the_real_binary_keeps_the_contract_across_sigkill_and_restart() {
    let binary = process::receiver_binary().unwrap_or_else(|e| panic!("{e}"));
    let cases = std::env::var("CONFORMANCE_REAL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&real_case(), |case| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(play(&case, &binary))
            .map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => panic!("{reason}\nminimal failing case: {case:?}"),
        Err(TestError::Abort(why)) => panic!("aborted: {why}"),
    }
}

//! Power cuts under the real `passfort-receiver` binary and the real `passfort-sim serve`.
//!
//! Their files live on [`PowerCutFs`], a FUSE filesystem mounted by this test that forgets, at
//! a cut, every write not yet made durable (`fsync`/`fdatasync`, and the directory's `fsync`
//! for a new name), keeping at most a random, possibly torn, prefix of the rest. The power is
//! cut right after an answer 200, as a request leaves the simulator (mid-request), inside the
//! database's commit (a write or the sync of the WAL), and inside the `jsonl:` sink's write
//! (mid-handler). Then the processes are SIGKILLed, the filesystem remounted with what
//! survived, and the receiver restarted on it.
//!
//! After every restart: every webhook answered 200 so far is in the store. At the end: the
//! sink's file holds every webhook exactly once, in queue order, with no torn line. Every
//! planned cut must really have happened. The sandbox's `--state` file, cut while it is being
//! replaced, is after the cut byte for byte the old state or the new one, and loads.
//!
//! Needs root and `/dev/fuse` (the machine and CI have both), so the tests are `#[ignore]`d in a
//! plain `cargo test` and run by `.ci/durability` (`-- --ignored`), which fails when either is
//! missing: never skipped in CI. `POWER_CUT_CASES=N` runs more generated cases (default
//! [`DEFAULT_CASES`]).
#![cfg(target_os = "linux")]

use futures::future::BoxFuture;
use passfort_clock::SystemClock;
use passfort_conformance::power_cut::{Mount, OpKind, PowerCutFs, Survival, Trigger};
use passfort_conformance::process::{self, Options, ReceiverProcess};
use passfort_receiver::{SqliteStore, Store};
use passfort_sender_sim::transport::Request;
use passfort_sender_sim::{
    AccountSettings, Answer, Engine, EngineOptions, Generator, HttpTransport, RunOutcome, Secret,
    Transport, TransportError,
};
use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_CASES: u64 = 4;

/// The database and the sink's file, at the root of the mount.
const DATABASE: &str = "receiver.db";
const SINK: &str = "processed.jsonl";

/// Upper bound on any wait for the real processes (never a fixed sleep: conditions are polled).
const PATIENCE: Duration = Duration::from_secs(120);

/// Where the power is cut.
#[derive(Debug, Clone)]
enum Cut {
    /// The instant the `n`-th answer 200 (from arming) reaches the simulator.
    AfterAnswer200(u64),
    /// As the `n`-th request (from arming) leaves the simulator.
    MidRequest(u64),
    /// Just before an operation on the database's WAL: a frame write or the commit's sync.
    MidCommit(OpKind, u64),
    /// Just before the sink writes or syncs a line.
    MidHandler(OpKind, u64),
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    batching: Option<usize>,
    webhooks: usize,
    cuts: Vec<Cut>,
}

/// splitmix64: cases replay from their seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// Case `index` of a run: every kind of cut in every case, in a seeded order.
fn case(index: u64) -> Case {
    let seed = 0x5eed_0000 + index;
    let mut dice = Dice(seed);
    let op = |dice: &mut Dice| {
        if dice.next().is_multiple_of(2) {
            OpKind::Write
        } else {
            OpKind::Sync
        }
    };
    let mut cuts = vec![
        Cut::AfterAnswer200(dice.range(1, 4)),
        Cut::MidRequest(dice.range(1, 4)),
        Cut::MidCommit(op(&mut dice), dice.range(1, 6)),
        Cut::MidHandler(op(&mut dice), dice.range(1, 6)),
    ];
    let rotate = (dice.next() % 4) as usize;
    cuts.rotate_left(rotate);
    Case {
        seed,
        batching: (index % 2 == 1).then(|| dice.range(2, 6) as usize),
        webhooks: dice.range(50, 90) as usize,
        cuts,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The simulator's HTTP transport with a hand on the power switch, recording which webhooks
/// were answered 200.
#[derive(Clone)]
struct Wire {
    inner: Arc<HttpTransport>,
    fs: PowerCutFs,
    sent: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    cut_at_request: Arc<Mutex<Option<u64>>>,
    cut_at_answer: Arc<Mutex<Option<u64>>>,
    acknowledged: Arc<Mutex<Vec<String>>>,
}

fn ids_in(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items
            .iter()
            .filter_map(|w| w["id"].as_str().map(str::to_owned))
            .collect(),
        Ok(w) => w["id"].as_str().map(str::to_owned).into_iter().collect(),
        Err(_) => Vec::new(),
    }
}

impl Transport for Wire {
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Answer, TransportError>> {
        let ids = ids_in(request.body());
        let n = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        if lock(&self.cut_at_request).take_if(|at| *at == n).is_some() {
            self.fs
                .freeze(&format!("mid-request: as request #{n} left the simulator"));
        }
        let sent = self.inner.send(request);
        let this = self.clone();
        Box::pin(async move {
            let answer = sent.await;
            if matches!(&answer, Ok(a) if a.status == 200) {
                lock(&this.acknowledged).extend(ids);
                let n = this.answered.fetch_add(1, Ordering::SeqCst) + 1;
                if lock(&this.cut_at_answer).take_if(|at| *at == n).is_some() {
                    this.fs.freeze(&format!(
                        "right after answer 200 #{n} reached the simulator"
                    ));
                }
            }
            answer
        })
    }
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

/// The sink's lines: ids in order, or the first line that is not a whole JSON webhook.
///
/// Files on the mount are read through [`PowerCutFs::live_file`], never through the mount:
/// this process serves the filesystem, and a thread of it blocked on its own FUSE mount (SQLite
/// maps its `-shm` file) can deadlock against the serving thread.
fn sink_lines(fs: &PowerCutFs) -> Result<Vec<String>, String> {
    let Some(text) = fs.live_file(Path::new(SINK)) else {
        return Ok(Vec::new());
    };
    let mut ids = Vec::new();
    for (number, line) in text.split_inclusive(|b| *b == b'\n').enumerate() {
        let whole = line.ends_with(b"\n");
        let id = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned));
        match (whole, id) {
            (true, Some(id)) => ids.push(id),
            _ => {
                return Err(format!(
                    "line {} of the sink's file is torn: {:?}",
                    number + 1,
                    String::from_utf8_lossy(line)
                ))
            }
        }
    }
    Ok(ids)
}

/// Ids the store on the mount holds, read from a copy of its files (see [`sink_lines`] for why
/// not through the mount). SQLite rebuilds the WAL index from the WAL, as after any crash.
async fn stored_ids(fs: &PowerCutFs) -> Result<HashSet<String>, String> {
    let copy = tempfile::tempdir().map_err(|e| e.to_string())?;
    for suffix in ["", "-wal"] {
        let name = format!("{DATABASE}{suffix}");
        if let Some(bytes) = fs.live_file(Path::new(&name)) {
            std::fs::write(copy.path().join(&name), bytes).map_err(|e| e.to_string())?;
        }
    }
    let url = format!("sqlite://{}", copy.path().join(DATABASE).display());
    let store = SqliteStore::open(&url)
        .await
        .map_err(|e| format!("the database does not open after the cut: {e}"))?;
    let entries = store.entries().await.map_err(|e| e.to_string());
    store.close().await;
    Ok(entries?.into_iter().map(|e| e.webhook.id).collect())
}

/// Cuts the power (if the trigger has not already) and SIGKILLs `victims`, which may hang in
/// a file operation the dead disk never answers.
fn kill_all(fs: &PowerCutFs, victims: Vec<ReceiverProcess>) -> Result<(), String> {
    fs.freeze("the test's own cut");
    for victim in &victims {
        // SAFETY: kill(2) on a child we spawned and have not reaped: the pid is still ours.
        unsafe {
            libc::kill(victim.pid() as libc::pid_t, libc::SIGKILL);
        }
    }
    fs.release_held();
    for mut victim in victims {
        victim.kill().map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn mount_point(dir: &Path) -> Result<(PowerCutFs, Mount), String> {
    let at = dir.join("disk");
    std::fs::create_dir_all(&at).map_err(|e| e.to_string())?;
    let fs = PowerCutFs::new();
    let mount = fs.mount(&at).map_err(|e| {
        format!(
            "cannot mount the power-cut FUSE filesystem at {} ({e}): this test needs root and \
             /dev/fuse",
            at.display()
        )
    })?;
    Ok((fs, mount))
}

async fn play(case: &Case, binary: &Path) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (fs, mut mount) = mount_point(dir.path())?;
    let disk = mount.path().to_path_buf();
    let sink = disk.join(SINK);
    let database = format!("sqlite://{}", disk.join(DATABASE).display());
    let secret = format!("power-cut-secret-{:016x}", case.seed);
    let options = Options {
        database: database.clone(),
        sink: format!("jsonl:{}", sink.display()),
        secret: secret.clone(),
        args: Vec::new(),
    };
    let start =
        |options: &Options| ReceiverProcess::start(binary, options).map_err(|e| e.to_string());
    let slot: Arc<Mutex<Option<ReceiverProcess>>> = Arc::new(Mutex::new(Some(start(&options)?)));
    let url = lock(&slot)
        .as_ref()
        .map(ReceiverProcess::webhook_url)
        .unwrap_or_default();

    let wire = Wire {
        inner: Arc::new(HttpTransport::new().map_err(|e| e.to_string())?),
        fs: fs.clone(),
        sent: Arc::default(),
        answered: Arc::default(),
        cut_at_request: Arc::default(),
        cut_at_answer: Arc::default(),
        acknowledged: Arc::default(),
    };
    let mut settings = AccountSettings::new(url, Secret::new(secret.clone()));
    settings.time_scale = 10_000.0;
    if let Some(max) = case.batching {
        settings = settings.batched();
        settings.max_batch = max;
    }
    let engine = Engine::with_options(
        settings,
        SystemClock,
        wire.clone(),
        EngineOptions {
            seed: case.seed,
            ..EngineOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let at = passfort_clock::Clock::now(&SystemClock);
    let sent: Vec<String> = Generator::new(case.seed)
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

    let mut report = Vec::new();
    for (index, cut) in case.cuts.iter().enumerate() {
        let survival = if index % 2 == 0 {
            Survival::TornPrefix(case.seed ^ index as u64)
        } else {
            Survival::DurableOnly
        };
        match cut {
            Cut::AfterAnswer200(n) => {
                *lock(&wire.cut_at_answer) = Some(wire.answered.load(Ordering::SeqCst) + n)
            }
            Cut::MidRequest(n) => {
                *lock(&wire.cut_at_request) = Some(wire.sent.load(Ordering::SeqCst) + n)
            }
            Cut::MidCommit(kind, nth) => fs.arm(Trigger {
                suffix: ".db-wal".into(),
                kind: *kind,
                nth: *nth,
            }),
            Cut::MidHandler(kind, nth) => fs.arm(Trigger {
                suffix: ".jsonl".into(),
                kind: *kind,
                nth: *nth,
            }),
        }
        until(&format!("the cut {cut:?}"), || {
            fs.frozen().is_some() || driver.is_finished()
        })
        .await?;
        let Some(what) = fs.frozen() else {
            return Err(format!(
                "cut #{} ({cut:?}) never happened: the simulator finished first; the case \
                 proves nothing about it",
                index + 1
            ));
        };
        *lock(&wire.cut_at_answer) = None;
        *lock(&wire.cut_at_request) = None;
        fs.disarm();
        let victims: Vec<ReceiverProcess> = lock(&slot).take().into_iter().collect();
        kill_all(&fs, victims)?;
        let acknowledged: Vec<String> = lock(&wire.acknowledged).clone();
        mount
            .power_on(survival)
            .map_err(|e| format!("remounting after the cut: {e}"))?;

        // Every webhook answered 200 so far is on the disk that came back.
        let stored = stored_ids(&fs).await?;
        if let Some(lost) = acknowledged.iter().find(|id| !stored.contains(*id)) {
            return Err(format!(
                "webhook {lost} was answered 200 but is not in the store after the cut at \
                 {what} ({survival:?}): {} of {} acknowledged webhooks missing",
                acknowledged
                    .iter()
                    .filter(|id| !stored.contains(*id))
                    .count(),
                acknowledged.len()
            ));
        }
        report.push(format!("{what} [{survival:?}]"));

        let restarted = start(&options)?;
        let endpoint = restarted.webhook_url();
        *lock(&slot) = Some(restarted);
        engine
            .update_settings(|s| s.endpoint = endpoint)
            .map_err(|e| e.to_string())?;
    }

    let outcome = driver.await.map_err(|e| e.to_string())?;
    if outcome != RunOutcome::Emptied {
        return Err("the simulator's queue never emptied".into());
    }
    let everything = |seen: &[String]| {
        let seen: HashSet<&String> = seen.iter().collect();
        sent.iter().all(|id| seen.contains(id))
    };
    // A timeout here is not the verdict: the comparison below says what is missing.
    let _ = until("every webhook in the sink's file", || {
        sink_lines(&fs).is_ok_and(|ids| everything(&ids))
    })
    .await;
    let victims: Vec<ReceiverProcess> = lock(&slot).take().into_iter().collect();
    for mut victim in victims {
        victim.kill().map_err(|e| e.to_string())?;
    }
    let seen = sink_lines(&fs)?;
    if seen != sent {
        let mut counts = std::collections::HashMap::<&String, usize>::new();
        for id in &seen {
            *counts.entry(id).or_default() += 1;
        }
        let doubled = counts.values().filter(|n| **n > 1).count();
        let missing = sent.iter().filter(|id| !counts.contains_key(id)).count();
        let first = seen
            .iter()
            .zip(&sent)
            .position(|(a, b)| a != b)
            .unwrap_or(seen.len().min(sent.len()));
        return Err(format!(
            "the sink holds {} lines for {} webhooks: {doubled} handed on more than once, \
             {missing} never; first difference from queue order at #{first}; cuts: {report:?}",
            seen.len(),
            sent.len(),
        ));
    }
    if fs.syncs() == 0 {
        return Err("no program ever synced a file: the filesystem saw nothing durable".into());
    }
    drop(mount);
    Ok(format!(
        "{} webhooks, {} requests, cuts: {}",
        sent.len(),
        wire.sent.load(Ordering::SeqCst),
        report.join("; ")
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "mounts FUSE: needs root and /dev/fuse; run by .ci/durability"]
fn nothing_answered_200_is_lost_at_a_power_cut() {
    let binary = process::receiver_binary().unwrap_or_else(|e| panic!("{e}"));
    let cases = std::env::var("POWER_CUT_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    for index in 0..cases {
        let case = case(index);
        match runtime().block_on(play(&case, &binary)) {
            Ok(summary) => eprintln!("power cut case {index}: {summary}"),
            Err(failure) => panic!("power cut case {index} failed: {failure}\ncase: {case:?}"),
        }
    }
}

/// `passfort-sim serve` on the power-cut filesystem.
struct Sandbox {
    child: Child,
    url: String,
}

impl Sandbox {
    fn start(binary: &Path, state: &Path) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--state"])
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start passfort-sim: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("passfort-sim: sandbox listening on ") {
                    let _ = tx.send(url.trim().trim_end_matches('/').to_owned());
                }
            }
        });
        match rx.recv_timeout(PATIENCE) {
            Ok(url) => Ok(Self { child, url }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err("passfort-sim serve never said where it listens".into())
            }
        }
    }

    fn kill(mut self, fs: &PowerCutFs) {
        fs.freeze("the test's own cut");
        let _ = self.child.kill();
        fs.release_held();
        let _ = self.child.wait();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn sandbox_case(seed: u64, binary: &Path) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (fs, mut mount) = mount_point(dir.path())?;
    let state = mount.path().join("sandbox.json");
    let relative = PathBuf::from("sandbox.json");
    let client = reqwest::Client::new();
    let mut dice = Dice(seed);
    let mut report = Vec::new();
    let mut sandbox = Sandbox::start(binary, &state)?;
    let config = serde_json::json!({"enabled": false, "secret": "power-cut-sandbox-secret",
        "endpoint": "http://127.0.0.1:9/", "batching": false});
    let answer = client
        .put(format!("{}/api/config", sandbox.url))
        .json(&config)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("PUT /api/config: {}", answer.status()));
    }
    for round in 0..10u64 {
        let old = fs.live_file(&relative);
        // The save: create `sandbox.json.tmp`, write, sync it, rename over `sandbox.json`,
        // sync the directory. Cut before the write, the file's sync, or one of the three
        // directory operations, or once the change was answered (the save complete).
        let armed = match round % 5 {
            0 => Some((".tmp", OpKind::Write, 1)),
            1 => Some((".tmp", OpKind::Sync, 1)),
            2 | 3 => Some(("", OpKind::Directory, dice.range(1, 3))),
            _ => None,
        };
        if let Some((suffix, kind, nth)) = armed {
            fs.arm(Trigger {
                suffix: suffix.into(),
                kind,
                nth,
            });
        }
        // Webhooks stay off (nothing is delivered, so nothing else saves): each round moves
        // the endpoint, a change the state file must keep.
        let change = serde_json::json!({"endpoint": format!("http://127.0.0.1:9/round-{round}")});
        // The answer may never come: the cut stops the sandbox mid-save.
        let request = client
            .put(format!("{}/api/config", sandbox.url))
            .json(&change)
            .timeout(Duration::from_secs(2))
            .send();
        let answered = tokio::time::timeout(Duration::from_secs(3), request).await;
        if armed.is_none() {
            match answered {
                Ok(Ok(answer)) if answer.status().is_success() => {}
                other => return Err(format!("round {round}: the change failed: {other:?}")),
            }
            fs.freeze("once the change was answered");
        }
        let Some(what) = fs.frozen() else {
            return Err(format!(
                "round {round}: the armed cut ({armed:?}) never happened"
            ));
        };
        let new = fs.live_file(&relative);
        sandbox.kill(&fs);
        mount
            .power_on(if round % 2 == 0 {
                Survival::TornPrefix(seed ^ round)
            } else {
                Survival::DurableOnly
            })
            .map_err(|e| e.to_string())?;
        let survived = fs.live_file(&relative);
        if survived != old && survived != new {
            return Err(format!(
                "round {round}: after the cut at {what} the state file is neither the old nor \
                 the new state: {:?}",
                survived.map(|b| String::from_utf8_lossy(&b).into_owned())
            ));
        }
        if armed.is_none() && survived != new {
            return Err(format!(
                "round {round}: a change answered OK (its save complete) did not survive the cut"
            ));
        }
        report.push(format!(
            "{what}: {}",
            if survived == new && new != old {
                "new"
            } else {
                "old"
            }
        ));
        sandbox = Sandbox::start(binary, &state)
            .map_err(|e| format!("round {round}: the sandbox does not start again: {e}"))?;
    }
    drop(sandbox);
    drop(mount);
    Ok(report.join("; "))
}

#[test]
#[ignore = "mounts FUSE: needs root and /dev/fuse; run by .ci/durability"]
fn the_sandbox_state_file_is_the_old_or_the_new_state_after_a_cut() {
    let binary = process::simulator_binary().unwrap_or_else(|e| panic!("{e}"));
    match runtime().block_on(sandbox_case(0x5a4d_b0c5, &binary)) {
        Ok(summary) => eprintln!("sandbox power cuts: {summary}"),
        Err(failure) => panic!("{failure}"),
    }
}

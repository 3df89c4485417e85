//! A full disk under the real `passfort-receiver` binary: its database on one small tmpfs and
//! its `jsonl:` sink on another (4 MiB), both mounted by this test and filled to the last byte.
//!
//! Database disk full: every request is answered 503 and nothing acknowledged is lost;
//! `/healthz` and `/status` say the store cannot write and why; once the space is freed, the
//! same process (no restart) stores the redelivered webhooks. Sink disk full: the webhooks are
//! stored and answered 200, the sink cannot write them, the worker never marks them done (the
//! queue stalls with the error in `/status`, the sink's file keeps no partial line); once the
//! space is freed, each is handed on exactly once, in order.
//!
//! Mounting needs root, so the test is `#[ignore]`d in a plain `cargo test` and run by
//! `.ci/durability`.
#![cfg(target_os = "linux")]

use passfort_conformance::process::{self, Options, ReceiverProcess};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Upper bound on any wait (conditions are polled; never a fixed sleep).
const PATIENCE: Duration = Duration::from_secs(60);

const SECRET: &str = "full-disk-secret-4f1c";

/// A tmpfs of `size`, mounted for the test and unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{e}"));
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            status.success(),
            "mounting a tmpfs at {} failed ({status}): this test needs root",
            path.display()
        );
        Self { path }
    }

    /// Fills the disk with a file until the kernel refuses one more byte; returns the file.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap_or_else(|e| panic!("{e}"));
        let chunk = vec![0x5au8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&[0x5a]).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn webhook(n: usize, padding: usize) -> Value {
    json!({
        "id": format!("00000000-0000-4000-8000-{n:012}"),
        "event": "CHECK_COMPLETED",
        "secret": SECRET,
        "timestamp": 1_643_813_829,
        "data": {"profile_id": format!("profile-{n}"), "padding": "p".repeat(padding)},
    })
}

async fn send(client: &reqwest::Client, url: &str, body: &Value) -> u16 {
    client
        .post(url)
        .bearer_auth(SECRET)
        .json(body)
        .send()
        .await
        .map(|a| a.status().as_u16())
        .unwrap_or_else(|e| panic!("the receiver did not answer: {e}"))
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let answer = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < PATIENCE,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The ids on the sink's complete lines. A reader can see a line while it is being appended
/// (or, on a full disk, before the sink truncates a failed write away): only [`settled`] says
/// there must be no partial line, once the worker has nothing left to write.
fn sink_ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a torn line in the sink's file ({e}): {line:?}"));
            v["id"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// The sink's file once nothing is being written: whole lines only.
fn settled(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the sink's file ends with a partial line"
    );
    sink_ids(path)
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|n| webhook(n, 0)["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "mounts tmpfs: needs root; run by .ci/durability"]
async fn a_full_disk_loses_nothing_and_recovers_without_a_restart() {
    let binary = process::receiver_binary().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Room, once the filler goes, for every large body twice (the WAL and, at its checkpoint,
    // the database file): a smaller disk fills again with the webhooks themselves.
    let db_disk = Tmpfs::mount(dir.path().join("db"), "16m");
    let sink_disk = Tmpfs::mount(dir.path().join("sink"), "4m");
    let sink = sink_disk.path.join("processed.jsonl");
    let options = Options {
        database: format!("sqlite://{}", db_disk.path.join("receiver.db").display()),
        sink: format!("jsonl:{}", sink.display()),
        secret: SECRET.into(),
        args: ["--block", "--retry-initial", "20ms", "--retry-max", "100ms"]
            .map(String::from)
            .to_vec(),
    };
    let mut receiver = ReceiverProcess::start(&binary, &options).unwrap_or_else(|e| panic!("{e}"));
    let pid = receiver.pid();
    let url = receiver.webhook_url();
    let health = format!("http://{}/healthz", receiver.listen);
    let status_url = receiver.status_url();
    let client = reqwest::Client::new();

    // Room on both disks.
    for n in 0..3 {
        assert_eq!(send(&client, &url, &webhook(n, 0)).await, 200);
    }
    until("the first webhooks handed on", || async {
        sink_ids(&sink) == ids(0..3)
    })
    .await;

    // The database's disk fills: nothing more can be stored.
    let filler = db_disk.fill();
    let mut refused = Vec::new();
    for n in 3..8 {
        // Bodies larger than any room SQLite has left in its files.
        match send(&client, &url, &webhook(n, 300 * 1024)).await {
            503 => refused.push(n),
            200 => {}
            other => panic!("webhook {n} on a full disk was answered {other}"),
        }
    }
    assert!(
        !refused.is_empty(),
        "no request was refused: the disk was never full, the test proves nothing"
    );
    let (code, body) = get(&client, &health).await;
    assert_eq!(code, 503, "/healthz on a full disk: {body}");
    let said = body["error"].as_str().unwrap_or_default();
    assert!(
        said.contains("full"),
        "/healthz does not say the disk is full: {body}"
    );
    let (_, status) = get(&client, &status_url).await;
    let why = status["store_write_failure"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains("full"),
        "/status does not say the store cannot write: {status}"
    );

    // Space again: the same process stores the redelivered webhooks.
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    for n in &refused {
        assert_eq!(
            send(&client, &url, &webhook(*n, 300 * 1024)).await,
            200,
            "webhook {n} redelivered once there is room again"
        );
    }
    let (code, body) = get(&client, &health).await;
    assert_eq!(code, 200, "/healthz once there is room: {body}");
    until(
        "every webhook handed on after the database disk recovered",
        || async { sink_ids(&sink) == ids(0..8) },
    )
    .await;

    // The sink's disk fills: stored and answered, but never marked done while unwritten.
    let filler = sink_disk.fill();
    for n in 8..11 {
        // Larger than a page: none fits in the slack of the file's last page.
        assert_eq!(send(&client, &url, &webhook(n, 16 * 1024)).await, 200);
    }
    until("the worker to report the sink's full disk", || async {
        let (_, status) = get(&client, &status_url).await;
        // The head alternates between waiting for its retry (`stalled`) and being retried.
        status["queue_depth"] == 3
            && status["queue"] != "empty"
            && status["recent_failures"].as_array().is_some_and(|f| {
                f.iter().any(|f| {
                    f["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("No space left"))
                })
            })
    })
    .await;
    assert_eq!(
        sink_ids(&sink),
        ids(0..8),
        "a webhook the sink could not write"
    );

    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    until(
        "every webhook handed on after the sink's disk recovered",
        || async { sink_ids(&sink) == ids(0..11) },
    )
    .await;
    until("the queue to empty", || async {
        let (_, status) = get(&client, &status_url).await;
        status["queue"] == "empty"
    })
    .await;
    assert_eq!(settled(&sink), ids(0..11));
    assert_eq!(receiver.pid(), pid, "the receiver was restarted");
    receiver.kill().unwrap_or_else(|e| panic!("{e}"));
}

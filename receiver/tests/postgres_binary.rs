//! The binary against PostgreSQL, as deployed: two `passfort-receiver serve --no-worker`
//! replicas and two `passfort-receiver work --ordering per-profile` processes on one database.
//! Deliveries alternate replicas and are redelivered to the other one; every webhook reaches
//! the sink once, each profile in order; `status` reads the shared queue.
//!
//! Real processes run on the real clock: the test waits for their readiness lines and for the
//! sink file, with a generous upper bound, never for a fixed time.

mod postgres_support;

use passfort_receiver::testing::{self, WebhookBuilder};
use postgres_support::TestDatabase;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_passfort-receiver");

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Log = std::sync::Arc<std::sync::Mutex<String>>;

/// Starts the binary and returns it with its readiness line and everything it logs.
fn start(args: &[&str]) -> (Process, String, Log) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("PASSFORT_WEBHOOK_SECRET", testing::SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Log::default();
    let all = log.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            all.lock().unwrap().push_str(&format!("{line}\n"));
            if !sent && line.starts_with("passfort-receiver ready") {
                let _ = tx.send(line);
                sent = true;
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{args:?} never became ready"));
    (Process(child), ready, log)
}

fn field(ready: &str, name: &str) -> String {
    ready
        .split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {ready:?}"))
        .to_owned()
}

fn sink_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_and_workers_as_processes_on_postgres() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let sink = format!("jsonl:{}", out.display());
    let serve = [
        "serve",
        "--no-worker",
        "--database",
        &db.url,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ];
    let (_r1, ready1, _) = start(&serve);
    let (_r2, ready2, _) = start(&serve);
    let urls =
        [ready1, ready2].map(|r| format!("http://{}{}", field(&r, "listen"), field(&r, "path")));
    // Trust authentication ignores the password: it is there to prove it is never logged.
    let with_password = db
        .url
        .replacen("://postgres@", "://postgres:never-logged@", 1);
    assert_ne!(with_password, db.url);
    let work = [
        "work",
        "--database",
        &with_password,
        "--sink",
        &sink,
        "--ordering",
        "per-profile",
        "--poll-interval",
        "20ms",
    ];
    let (_w1, _, log1) = start(&work);
    let (_w2, _, _) = start(&work);

    let hooks: Vec<WebhookBuilder> = (0..40)
        .map(|i| testing::check_completed().data(json!({"profile_id": format!("p{}", i % 3)})))
        .collect();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (k, batch) in hooks.chunks(4).enumerate() {
        for url in [&urls[k % 2], &urls[(k + 1) % 2]] {
            // Delivered, then redelivered to the other replica (the answer "was lost").
            let response = client
                .post(url)
                .header("authorization", format!("Bearer {}", testing::SECRET))
                .header("content-type", "application/json")
                .body(testing::batch_body(batch).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    }

    let start_wait = Instant::now();
    while sink_ids(&out).len() < hooks.len() {
        assert!(
            start_wait.elapsed() < Duration::from_secs(120),
            "the workers never handed everything on: {} of {}",
            sink_ids(&out).len(),
            hooks.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let handed = sink_ids(&out);
    let mut count: HashMap<&str, usize> = HashMap::new();
    for id in &handed {
        *count.entry(id.as_str()).or_default() += 1;
    }
    assert_eq!(count.len(), hooks.len());
    assert!(count.values().all(|&n| n == 1), "handed on twice");
    for p in 0..3 {
        let want: Vec<&str> = hooks
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == p)
            .map(|(_, h)| h.get_id())
            .collect();
        let got: Vec<&str> = handed
            .iter()
            .map(String::as_str)
            .filter(|id| want.contains(id))
            .collect();
        assert_eq!(got, want, "profile p{p} out of order");
    }

    let logged = log1.lock().unwrap().clone();
    assert!(
        logged.contains("passfort-receiver ready worker"),
        "{logged}"
    );
    assert!(
        !logged.contains("never-logged"),
        "password logged: {logged}"
    );

    let status = Command::new(BIN)
        .args(["status", "--database", &db.url, "--json"])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["done"], hooks.len());
    assert_eq!(status["queue_depth"], 0);
}

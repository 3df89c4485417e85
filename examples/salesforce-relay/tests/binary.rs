//! The `salesforce-relay` binary as an operator runs it: configuration from the environment,
//! `--listen` / `--database`, a readiness line, webhooks relayed over real HTTP, nothing lost
//! when the process is killed while Salesforce is down, and no secret on its output (nor a
//! database password: one test runs on the PostgreSQL server at 127.0.0.1:5432, as the
//! receiver's PostgreSQL tests do).
//!
//! Real processes on the real clock: the tests wait for the readiness line and poll the mock
//! Salesforce for what it received (with a generous upper bound), never a fixed sleep.

mod common;

use common::{ids, MockSalesforce, CLIENT_ID, CLIENT_SECRET};
use passfort_receiver::testing::{self, WebhookBuilder};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_salesforce-relay");
const PATIENCE: Duration = Duration::from_secs(60);

struct Running {
    child: Option<Child>,
    url: String,
    output: Arc<Mutex<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn command(sf: &MockSalesforce, db: &Path) -> Command {
    command_on(sf, &format!("sqlite://{}", db.display()))
}

fn command_on(sf: &MockSalesforce, database: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("RUST_LOG", "debug")
        .env("PASSFORT_WEBHOOK_SECRET", testing::SECRET)
        .env("SALESFORCE_LOGIN_URL", sf.login_url())
        .env("SALESFORCE_CLIENT_ID", CLIENT_ID)
        .env("SALESFORCE_CLIENT_SECRET", CLIENT_SECRET)
        .args(["--listen", "127.0.0.1:0", "--database", database])
        .args(["--retry-initial", "20ms", "--retry-max", "100ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Starts the relay and waits for its readiness line.
fn start(sf: &MockSalesforce, db: &Path) -> Running {
    start_command(command(sf, db))
}

fn start_command(mut command: Command) -> Running {
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sink = output.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("salesforce-relay ready listen=") {
                let _ = ready_tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    let addr = ready_rx
        .recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("no readiness line; output:\n{}", output.lock().unwrap()));
    Running {
        child: Some(child),
        url: format!("http://{addr}"),
        output,
    }
}

async fn post(relay: &Running, body: &serde_json::Value) -> reqwest::StatusCode {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/webhooks/passfort", relay.url))
        .header("authorization", format!("Bearer {}", testing::SECRET))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
}

/// Polls until Salesforce has accepted `count` webhooks (or panics after [`PATIENCE`]).
async fn accepted(sf: &MockSalesforce, count: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let ids = sf.accepted_ids();
        if ids.len() >= count {
            return ids;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "Salesforce got {ids:?}, waiting for {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_no_secrets(output: &str, sf: &MockSalesforce) {
    for secret in [testing::SECRET.to_owned(), CLIENT_SECRET.to_owned()]
        .into_iter()
        .chain(sf.issued())
    {
        assert!(
            !output.contains(&secret),
            "{secret:?} in the relay's output:\n{output}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_over_http_answers_healthz_and_stops_on_sigterm() {
    let sf = MockSalesforce::start().await;
    let dir = tempfile::tempdir().unwrap();
    let relay = start(&sf, &dir.path().join("relay.db"));

    let health = reqwest::get(format!("{}/healthz", relay.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let hooks = vec![
        testing::product_status_changed(),
        testing::check_completed(),
        testing::unknown_event("RISK_SCORE_CHANGED"),
    ];
    assert_eq!(post(&relay, &hooks[0].json()).await, 200);
    assert_eq!(post(&relay, &testing::batch_body(&hooks[1..])).await, 200);
    // A wrong PassFort secret is refused and never relayed.
    let forged = testing::check_completed().secret("guess");
    let refused = reqwest::Client::new()
        .post(format!("{}/webhooks/passfort", relay.url))
        .header("authorization", "Bearer guess")
        .body(forged.json().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    assert_eq!(accepted(&sf, 3).await, ids(&hooks));
    for call in sf.calls() {
        assert!(call.json().get("secret").is_none());
    }
    // SIGTERM: stops accepting, finishes what is in hand, exits 0.
    let mut relay = relay;
    let killed = Command::new("kill")
        .args(["-TERM", &relay.child.as_ref().unwrap().id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (exit_tx, exit_rx) = std::sync::mpsc::channel();
    let mut child = relay.child.take().unwrap();
    std::thread::spawn(move || {
        let _ = exit_tx.send(child.wait().unwrap());
    });
    let status = exit_rx
        .recv_timeout(PATIENCE)
        .expect("the relay did not stop on SIGTERM");
    assert!(status.success(), "{status:?}");

    let output = relay.output.lock().unwrap().clone();
    assert!(
        output.contains("webhook forwarded to Salesforce"),
        "{output}"
    );
    assert_no_secrets(&output, &sf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_relay_loses_nothing_it_acknowledged() {
    let sf = MockSalesforce::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    sf.set_down(true);
    let hooks: Vec<WebhookBuilder> = (0..3).map(|_| testing::check_completed()).collect();
    let first = start(&sf, &db);
    for hook in &hooks {
        assert_eq!(post(&first, &hook.json()).await, 200);
    }
    // Salesforce is down: the relay keeps retrying the first webhook. Wait until it has tried,
    // then kill it without warning.
    let started = Instant::now();
    while sf.calls().is_empty() {
        assert!(started.elapsed() < PATIENCE, "the relay never tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_output = first.output.lock().unwrap().clone();
    drop(first); // SIGKILL

    sf.set_down(false);
    let second = start(&sf, &db);
    assert_eq!(accepted(&sf, 3).await, ids(&hooks));
    let calls = sf.calls();
    assert!(
        calls
            .iter()
            .filter(|c| c.status != 200)
            .all(|c| c.id() == hooks[0].get_id()),
        "only the head was tried while Salesforce was down"
    );
    let output = format!("{first_output}{}", second.output.lock().unwrap());
    assert_no_secrets(&output, &sf);
}

#[test]
fn refuses_to_start_without_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    for missing in [
        "PASSFORT_WEBHOOK_SECRET",
        "SALESFORCE_LOGIN_URL",
        "SALESFORCE_CLIENT_ID",
        "SALESFORCE_CLIENT_SECRET",
    ] {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PASSFORT_WEBHOOK_SECRET", testing::SECRET)
            .env("SALESFORCE_LOGIN_URL", "https://login.example.test")
            .env("SALESFORCE_CLIENT_ID", CLIENT_ID)
            .env("SALESFORCE_CLIENT_SECRET", CLIENT_SECRET)
            .env_remove(missing)
            .args(["--listen", "127.0.0.1:0", "--database"])
            .arg(format!("sqlite://{}/x.db", dir.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "started without {missing}");
        assert!(stderr.contains(missing), "{missing}: {stderr}");
        assert!(!stderr.contains(CLIENT_SECRET), "{stderr}");
    }
}

/// A PostgreSQL database of its own on the test server (trust auth: a password in the URL is
/// accepted and ignored), dropped at the end.
struct PostgresDatabase(String);

impl PostgresDatabase {
    fn create(name: String) -> Self {
        let created = Command::new("createdb")
            .args(["-h", "127.0.0.1", "-U", "postgres", &name])
            .status()
            .unwrap();
        assert!(created.success(), "createdb {name}");
        Self(name)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let _ = Command::new("dropdb")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "--if-exists",
                "--force",
                &self.0,
            ])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_password_never_reaches_the_output() {
    let database = PostgresDatabase::create(format!("relay_password_{}", std::process::id()));
    let sf = MockSalesforce::start().await;
    let password = "db-password-not-for-logs";
    let url = format!(
        "postgres://postgres:{password}@127.0.0.1:5432/{}",
        database.0
    );
    let relay = start_command(command_on(&sf, &url));
    let output = relay.output.lock().unwrap().clone();
    drop(relay);
    assert!(output.contains("salesforce-relay serving"), "{output}");
    assert!(
        output.contains(&database.0),
        "the database is named: {output}"
    );
    assert!(
        !output.contains(password),
        "password in the output:\n{output}"
    );
}

//! The real `passfort-receiver` binary: start-up without a secret, rotation, SIGKILL after a
//! 200 then restart (exactly once, in order), no secret in the database file, the logs or the
//! sink output, graceful SIGTERM, `work`, `status` and `dead-letter`.
//!
//! Nothing here sleeps: tests wait for lines the binary prints (its readiness line on stderr,
//! the worker's "queue empty" log line, sink lines on stdout) or for a process to exit. The
//! receive timeouts below only turn a hang into a failure.

mod common;

use common::post;
use passfort_receiver::testing::{self, WebhookBuilder};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_passfort-receiver");
/// Only a guard against a hung binary; never reached when things work.
const HANG: Duration = Duration::from_secs(120);

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("PASSFORT_WEBHOOK_SECRET")
        .env_remove("PASSFORT_WEBHOOK_SECRET_PREVIOUS")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running binary whose stderr (logs) and stdout (sink lines) are collected as they come.
struct Running {
    child: Child,
    public: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
    log_lines: mpsc::Receiver<String>,
    stdout_lines: mpsc::Receiver<String>,
}

fn pump(
    reader: impl std::io::Read + Send + 'static,
    sink: Option<Arc<Mutex<String>>>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Some(sink) = &sink {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
            if tx.send(line).is_err() {
                // Nobody listens any more; keep draining so the child never blocks.
            }
        }
    });
    rx
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = command(args, env).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let log_lines = pump(child.stderr.take().unwrap(), Some(log.clone()));
        let stdout_lines = pump(child.stdout.take().unwrap(), None);
        let mut running = Running {
            child,
            public: None,
            admin: None,
            log,
            log_lines,
            stdout_lines,
        };
        let ready = running.wait_for_log("passfort-receiver ready");
        for field in ready.split_whitespace() {
            if let Some(addr) = field.strip_prefix("listen=") {
                running.public = Some(addr.parse().unwrap());
            }
            if let Some(addr) = field.strip_prefix("admin=") {
                running.admin = Some(addr.parse().unwrap());
            }
        }
        running
    }

    fn serve(db: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--database",
            db,
        ];
        args.extend_from_slice(extra);
        Self::start(&args, env)
    }

    fn url(&self) -> String {
        format!("http://{}/webhooks/passfort", self.public.unwrap())
    }

    fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.unwrap())
    }

    fn wait_for_log(&mut self, needle: &str) -> String {
        loop {
            match self.log_lines.recv_timeout(HANG) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!(
                    "no log line with {needle:?} ({e}); log so far:\n{}",
                    self.log.lock().unwrap()
                ),
            }
        }
    }

    /// Waits until the worker reports an empty queue after handling something.
    fn wait_until_drained(&mut self) {
        loop {
            let line = self.wait_for_log("queue empty");
            if !line.contains("handled=0") {
                return;
            }
        }
    }

    fn stdout_line(&mut self) -> String {
        self.stdout_lines
            .recv_timeout(HANG)
            .expect("a sink line on stdout")
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        // Let the pump threads see EOF so the log is complete.
        while self.log_lines.recv_timeout(HANG).is_ok() {}
        (status, self.log())
    }

    fn sigkill(mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }
}

impl Drop for Running {
    /// A failing test must not leave its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = command(args, env).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}/receiver.db", dir.display())
}

fn ids(hooks: &[WebhookBuilder]) -> Vec<String> {
    hooks.iter().map(|h| h.get_id().to_owned()).collect()
}

fn signed(secret: &str, n: usize) -> Vec<WebhookBuilder> {
    (0..n)
        .map(|i| {
            match i % 3 {
                0 => testing::check_completed(),
                1 => testing::product_status_changed(),
                _ => testing::unknown_event("APPLICANT_PORTAL_VISITED"),
            }
            .secret(secret)
        })
        .collect()
}

fn jsonl_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn serve_refuses_to_start_without_a_secret_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path());
    let (ok, _, stderr) = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--database",
            &db,
        ],
        &[],
    );
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: no webhook secret"), "{stderr}");
    assert!(
        !dir.path().join("receiver.db").exists(),
        "nothing created without a secret"
    );
    let (ok, _, stderr) = run(&["serve", "--secret", "x"], &[]);
    assert!(
        !ok && stderr.contains("--secret"),
        "a secret is never an argument"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_accepts_both_secrets_and_stdout_has_one_line_per_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path());
    let mut server = Running::serve(
        &db,
        &["--sink", "stdout"],
        &[
            ("PASSFORT_WEBHOOK_SECRET", "new-secret"),
            ("PASSFORT_WEBHOOK_SECRET_PREVIOUS", "old-secret"),
        ],
    );
    let old = testing::check_completed().secret("old-secret");
    let new = testing::manual_action_required().secret("new-secret");
    assert_eq!(
        post(&server.url(), Some("old-secret"), old.json().to_string())
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&server.url(), Some("new-secret"), new.json().to_string())
            .await
            .status(),
        200
    );
    let stale = testing::check_completed().secret("older-secret");
    assert_eq!(
        post(
            &server.url(),
            Some("older-secret"),
            stale.json().to_string()
        )
        .await
        .status(),
        401
    );
    for hook in [&old, &new] {
        let line: Value = serde_json::from_str(&server.stdout_line()).unwrap();
        let mut expected = hook.json();
        expected.as_object_mut().unwrap().remove("secret");
        assert_eq!(line, expected);
    }
    let (status, _) = server.terminate();
    assert!(status.success(), "graceful SIGTERM exits 0: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_file_is_read_and_public_and_admin_endpoints_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path());
    let file = dir.path().join("secret");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let server = Running::serve(
        &db,
        &["--secret-file", file.to_str().unwrap(), "--no-worker"],
        &[],
    );
    let hook = testing::check_completed().secret("from-a-file");
    assert_eq!(
        post(&server.url(), Some("from-a-file"), hook.json().to_string())
            .await
            .status(),
        200
    );
    let client = common::client();
    let public = server.public.unwrap();
    assert_eq!(
        client
            .get(format!("http://{public}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("http://{public}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        client
            .get(format!("http://{public}/status"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(client.get(server.url()).send().await.unwrap().status(), 405);
    let metrics = client
        .get(server.admin("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("passfort_queue_depth 1"), "{metrics}");
    let status: Value = client
        .get(server.admin("/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["last_received"]["id"], hook.get_id());
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_200_loses_nothing_and_a_restart_processes_everything_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path());
    let out = dir.path().join("out.jsonl");
    let sink = format!("jsonl:{}", out.display());
    let env = [("PASSFORT_WEBHOOK_SECRET", "kill-test-secret")];
    let server = Running::serve(&db, &["--sink", &sink], &env);
    let hooks = signed("kill-test-secret", 200);
    for chunk in hooks.chunks(100) {
        let response = post(
            &server.url(),
            Some("kill-test-secret"),
            testing::batch_body(chunk).to_string(),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    // Killed the moment the last 200 arrived: the worker is most likely mid-queue.
    server.sigkill();
    let before = jsonl_ids(&out);
    eprintln!("{} of 200 handed on before SIGKILL", before.len());
    assert!(before.len() <= 200);
    assert_eq!(
        before,
        ids(&hooks)[..before.len()],
        "in order before the crash"
    );

    let mut restarted = Running::serve(&db, &["--sink", &sink], &env);
    restarted.wait_for_log("queue empty");
    assert_eq!(
        jsonl_ids(&out),
        ids(&hooks),
        "every acknowledged webhook exactly once, in order"
    );
    let status: Value = common::client()
        .get(restarted.admin("/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["queue_depth"], 0);
    assert_eq!(status["last_processed"]["id"], hooks[199].get_id());
    assert_eq!(status["done"], 200);
    let (status, _) = restarted.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_reaches_the_database_file_the_logs_or_the_sinks() {
    let secret = "CANARY-s3cr3t-7f1d9e";
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path());
    let out = dir.path().join("out.jsonl");
    let sink = format!("jsonl:{}", out.display());
    let mut server = Running::serve(
        &db,
        &["--sink", &sink],
        &[("PASSFORT_WEBHOOK_SECRET", secret)],
    );
    let hooks = signed(secret, 30);
    let response = post(
        &server.url(),
        Some(secret),
        testing::batch_body(&hooks).to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    // Rejected requests are logged too: make sure they do not leak it either.
    let bad = testing::check_completed().secret("wrong");
    assert_eq!(
        post(&server.url(), Some(secret), bad.json().to_string())
            .await
            .status(),
        401
    );
    assert_eq!(
        post(&server.url(), Some(secret), "not json").await.status(),
        400
    );
    server.wait_until_drained();
    let (status, log) = server.terminate();
    assert!(status.success());
    assert!(
        log.contains("request acknowledged"),
        "logs were captured:\n{log}"
    );
    assert!(!log.contains(secret), "secret in the logs");
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 30);
    assert!(!written.contains(secret), "secret in the sink output");
    assert!(!written.contains("\"secret\""));
    for file in ["receiver.db", "receiver.db-wal", "receiver.db-shm"] {
        let path = dir.path().join(file);
        if let Ok(bytes) = std::fs::read(&path) {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "secret in {file}");
        }
    }
    assert!(dir.path().join("receiver.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sink_children_never_see_the_secret() {
    let secret = "CANARY-exec-5ecret";
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path());
    let dump = dir.path().join("dump");
    std::fs::create_dir(&dump).unwrap();
    let sink = format!(
        "exec:env > {d}/env-$PASSFORT_WEBHOOK_ID.txt && cat > {d}/body-$PASSFORT_WEBHOOK_ID.json",
        d = dump.display()
    );
    let mut server = Running::serve(
        &db,
        &["--sink", &sink],
        &[("PASSFORT_WEBHOOK_SECRET", secret)],
    );
    let hooks = signed(secret, 3);
    assert_eq!(
        post(
            &server.url(),
            Some(secret),
            testing::batch_body(&hooks).to_string()
        )
        .await
        .status(),
        200
    );
    server.wait_until_drained();
    for hook in &hooks {
        let env = std::fs::read_to_string(dump.join(format!("env-{}.txt", hook.get_id()))).unwrap();
        assert!(!env.contains(secret), "secret in the child's environment");
        let body: Value = serde_json::from_str(
            &std::fs::read_to_string(dump.join(format!("body-{}.json", hook.get_id()))).unwrap(),
        )
        .unwrap();
        let mut expected = hook.json();
        expected.as_object_mut().unwrap().remove("secret");
        assert_eq!(body, expected);
    }
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_status_and_dead_letter_commands_against_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path());
    let out: PathBuf = dir.path().join("out.jsonl");
    let jsonl = format!("jsonl:{}", out.display());
    let server = Running::serve(&db, &["--no-worker"], &[("PASSFORT_WEBHOOK_SECRET", "s")]);
    let hooks = signed("s", 3);
    assert_eq!(
        post(
            &server.url(),
            Some("s"),
            testing::batch_body(&hooks).to_string()
        )
        .await
        .status(),
        200
    );

    let missing = format!("sqlite://{}/typo.db", dir.path().display());
    let (ok, _, stderr) = run(&["status", "--database", &missing], &[]);
    assert!(!ok && stderr.contains("no database at"), "{stderr}");
    assert!(
        !dir.path().join("typo.db").exists(),
        "status never creates a database"
    );

    let (ok, stdout, _) = run(&["status", "--database", &db, "--json"], &[]);
    assert!(ok);
    let status: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["queue_depth"], 3);
    assert_eq!(status["queue"], "waiting");

    // A sink that always fails, one attempt allowed: all three become dead letters, in order.
    let (ok, _, stderr) = run(
        &[
            "work",
            "--database",
            &db,
            "--sink",
            "exec:exit 3",
            "--max-attempts",
            "1",
            "--until-idle",
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    let (ok, stdout, _) = run(&["dead-letter", "list", "--database", &db], &[]);
    assert!(ok);
    let listed: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(listed, ids(&hooks));
    assert!(stdout.contains("exit status: 3"), "{stdout}");
    let (ok, stdout, _) = run(&["status", "--database", &db], &[]);
    assert!(ok && stdout.contains("dead letters:    3"), "{stdout}");

    // Retry one: only it is handed on.
    let (ok, stdout, _) = run(
        &["dead-letter", "retry", hooks[1].get_id(), "--database", &db],
        &[],
    );
    assert!(ok, "{stdout}");
    let (ok, _, stderr) = run(
        &["work", "--database", &db, "--sink", &jsonl, "--until-idle"],
        &[],
    );
    assert!(ok, "{stderr}");
    assert_eq!(jsonl_ids(&out), [hooks[1].get_id()]);
    let (ok, _, stderr) = run(
        &["dead-letter", "retry", "no-such-id", "--database", &db],
        &[],
    );
    assert!(
        !ok && stderr.contains("no dead letter with id no-such-id"),
        "{stderr}"
    );

    // Retry the rest.
    let (ok, stdout, _) = run(&["dead-letter", "retry-all", "--database", &db], &[]);
    assert!(ok && stdout.contains('2'), "{stdout}");
    let (ok, _, stderr) = run(
        &["work", "--database", &db, "--sink", &jsonl, "--until-idle"],
        &[],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        jsonl_ids(&out),
        [hooks[1].get_id(), hooks[0].get_id(), hooks[2].get_id()]
    );
    let (ok, stdout, _) = run(&["status", "--database", &db, "--json"], &[]);
    assert!(ok);
    let status: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["queue_depth"], 0);
    assert_eq!(status["dead_letters"], 0);
    assert_eq!(status["done"], 3);
    let (status, _) = server.terminate();
    assert!(status.success());
}

//! The `embed-axum` binary as run: secret from the environment, `--listen` on port 0, a
//! readiness line, the app's routes and PassFort webhooks on one port, and the worker running
//! beside the server. Real process, real clock: the test waits for the readiness line and polls
//! the app's own route for the result (with a generous bound), never a fixed sleep.

use passfort_receiver::testing;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_app_and_applies_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_embed-axum"))
        .env_clear()
        .env("PASSFORT_WEBHOOK_SECRET", testing::SECRET)
        .args(["--listen", "127.0.0.1:0", "--database"])
        .arg(format!("sqlite://{}/app.db", dir.path().display()))
        .arg("--webhook-database")
        .arg(format!("sqlite://{}/webhooks.db", dir.path().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("embed-axum ready listen=") {
                let _ = ready_tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr = ready_rx.recv_timeout(PATIENCE).expect("readiness line");
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let created = client
        .post(format!("{base}/customers"))
        .json(&json!({"customer_ref": "CUST-001", "name": "Ada Lovelace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let hook = testing::product_status_changed();
    let answer = client
        .post(format!("{base}/webhooks/passfort"))
        .header("authorization", format!("Bearer {}", testing::SECRET))
        .header("content-type", "application/json")
        .body(hook.json().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    let started = Instant::now();
    loop {
        let customer: Value = client
            .get(format!("{base}/customers/CUST-001"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if customer["kyc_status"] == "APPROVED" {
            assert_eq!(customer["kyc_status_webhook_id"], hook.get_id());
            break;
        }
        assert!(started.elapsed() < PATIENCE, "never applied: {customer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

//! `passfort-sim send`, run as a real process against wiremock.

use std::process::Output;

use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "cli-shared-secret";

async fn server(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

async fn passfort_sim(args: &[&str], secret: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_passfort-sim"));
    command.args(args).env_remove("PASSFORT_WEBHOOK_SECRET");
    if let Some(secret) = secret {
        command.env("PASSFORT_WEBHOOK_SECRET", secret);
    }
    command.output().await.unwrap()
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    let requests = server.received_requests().await.unwrap();
    for request in &requests {
        assert_eq!(
            request.headers["authorization"].to_str().unwrap(),
            format!("Bearer {SECRET}")
        );
    }
    requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_mix_is_delivered_and_the_exit_code_is_0() {
    let server = server(200).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("attempts.jsonl");
    let url = format!("{}/webhooks/passfort", server.uri());
    let out = passfort_sim(
        &[
            "send",
            "--to",
            &url,
            "--count",
            "25",
            "--seed",
            "3",
            "--json",
            "--log",
            log.to_str().unwrap(),
        ],
        Some(SECRET),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "emptied");
    assert_eq!(report["status"]["queue"]["state"], "empty");
    assert_eq!(report["status"]["delivered"], 25);
    assert!(stderr.contains("acknowledged"), "progress line: {stderr}");
    assert!(!stderr.contains(SECRET) && !String::from_utf8_lossy(&out.stdout).contains(SECRET));

    let bodies = bodies(&server).await;
    assert_eq!(bodies.len(), 25);
    assert!(bodies.iter().all(|b| b["secret"] == SECRET));
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 25);
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["outcome"], "delivered");
    assert_eq!(first["webhook_ids"][0], bodies[0]["id"]);
}

#[tokio::test]
async fn one_event_type_with_a_data_file_in_a_batch() {
    let server = server(200).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.json");
    std::fs::write(
        &data,
        r#"[{"profile_id": "p-1", "customer_ref": null, "new_risk_level": "HIGH"},
            {"profile_id": "p-2", "customer_ref": "C2", "new_risk_level": "LOW"}]"#,
    )
    .unwrap();
    let out = passfort_sim(
        &[
            "send",
            "--to",
            &server.uri(),
            "--event",
            "RISK_LEVEL_CHANGED",
            "--count",
            "3",
            "--batch",
            "--data-file",
            data.to_str().unwrap(),
            "--time-scale",
            "1000",
        ],
        Some(SECRET),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Empty"));
    let bodies = bodies(&server).await;
    assert_eq!(bodies.len(), 1, "one batch");
    let batch = bodies[0].as_array().unwrap();
    assert_eq!(batch.len(), 3);
    let refs: Vec<&str> = batch
        .iter()
        .map(|w| w["data"]["profile_id"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["p-1", "p-2", "p-1"]);
    assert!(batch.iter().all(|w| w["event"] == "RISK_LEVEL_CHANGED"));
}

#[tokio::test]
async fn it_gives_up_with_exit_code_1_and_shows_a_stalled_queue() {
    let server = server(500).await;
    // A day of simulated time at 100 000× is 0.86 s of real time: the first back-off waits are
    // 0.3 ms, 0.6 ms, …, so the head is tried many times before the run gives up.
    let out = passfort_sim(
        &[
            "send",
            "--to",
            &server.uri(),
            "--event",
            "CHECK_COMPLETED",
            "--count",
            "2",
            "--time-scale",
            "100000",
            "--give-up-after",
            "1day",
            "--json",
        ],
        Some(SECRET),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "gave_up");
    assert_eq!(report["status"]["queue"]["state"], "stalled");
    assert_eq!(report["status"]["waiting"], 2);
    let bodies = bodies(&server).await;
    assert!(bodies.len() >= 2);
    assert!(
        bodies.iter().all(|b| b["id"] == bodies[0]["id"]),
        "only the head was tried"
    );
}

#[tokio::test]
async fn the_secret_only_comes_from_the_environment() {
    let server = server(200).await;
    let out = passfort_sim(&["send", "--to", &server.uri()], None).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PASSFORT_WEBHOOK_SECRET"));
    let out = passfort_sim(
        &["send", "--to", &server.uri(), "--secret", "oops"],
        Some(SECRET),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "no --secret flag exists");
    assert!(server.received_requests().await.unwrap().is_empty());
}

//! `passfort-sim serve`'s JSON API, driven as a `tower::Service` on a virtual clock (time moves
//! only when a test moves it), and the `--state` file across a restart, in process and with the
//! real binary killed mid-run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use passfort_sender_sim::prelude::*;
use passfort_sender_sim::sandbox::{RefreshReading, Sandbox, SandboxOptions, StateFile};
use serde_json::{json, Value};
use tower::ServiceExt;

/// An in-process receiver: records the `Authorization` header and ids of every request and
/// answers with the status set by the test.
/// One request as the receiver saw it: its `Authorization` header and the ids in its body.
type Seen = (Option<String>, Vec<String>);

#[derive(Clone)]
struct Receiver {
    answer: Arc<Mutex<u16>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    fn new() -> Self {
        Self {
            answer: Arc::new(Mutex::new(200)),
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn answer(&self, status: u16) {
        *self.answer.lock().unwrap() = status;
    }

    fn ids(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter().flat_map(|(_, ids)| ids.clone()).collect()
    }

    fn authorizations(&self) -> Vec<Option<String>> {
        let seen = self.seen.lock().unwrap();
        seen.iter().map(|(auth, _)| auth.clone()).collect()
    }

    fn transport(&self) -> impl Transport {
        let me = self.clone();
        FnTransport(move |request: http::Request<bytes::Bytes>| {
            let auth = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = serde_json::from_slice(request.body()).unwrap();
            let ids = match body {
                Value::Array(items) => items
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_owned())
                    .collect(),
                one => vec![one["id"].as_str().unwrap().to_owned()],
            };
            me.seen.lock().unwrap().push((auth, ids));
            let status = *me.answer.lock().unwrap();
            Ok(Answer::status(http::StatusCode::from_u16(status).unwrap()))
        })
    }
}

struct Harness {
    clock: VirtualClock,
    receiver: Receiver,
    sandbox: Sandbox,
    app: Router,
}

fn open(state: Option<&Path>) -> Harness {
    open_with(VirtualClock::new(), Receiver::new(), state)
}

fn open_with(clock: VirtualClock, receiver: Receiver, state: Option<&Path>) -> Harness {
    open_reading(clock, receiver, state, RefreshReading::default())
}

fn open_reading(
    clock: VirtualClock,
    receiver: Receiver,
    state: Option<&Path>,
    refresh: RefreshReading,
) -> Harness {
    let options = SandboxOptions {
        time_scale: 1.0,
        state: state.map(Path::to_owned),
        seed: 7,
        initial_secret: None,
        refresh,
    };
    let sandbox = Sandbox::open(options, clock.clone(), receiver.transport()).unwrap();
    let app = sandbox.router();
    Harness {
        clock,
        receiver,
        sandbox,
        app,
    }
}

impl Harness {
    async fn call(&self, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.map(|b| Body::from(b.to_owned())).unwrap_or_default())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, value) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {value}");
        value
    }

    async fn put_config(&self, body: Value) -> Value {
        let (status, value) = self
            .call(Method::PUT, "/api/config", Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::OK, "PUT /api/config {body}: {value}");
        value
    }

    async fn trigger(&self, body: Value) -> Value {
        let (status, value) = self
            .call(Method::POST, "/api/events", Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::OK, "POST /api/events {body}: {value}");
        value
    }

    async fn post(&self, path: &str) -> Value {
        let (status, value) = self.call(Method::POST, path, None).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {value}");
        value
    }

    async fn configure(&self) {
        self.put_config(json!({
            "enabled": true,
            "secret": "sandbox-secret",
            "endpoint": "http://receiver.test/webhooks/passfort",
        }))
        .await;
    }
}

fn ids_of(value: &Value) -> Vec<String> {
    value["webhook_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn page_and_its_assets_are_served() {
    let h = open(None);
    let (status, page) = h.call(Method::GET, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap().to_owned();
    for id in [
        "config-enabled",
        "config-secret",
        "config-endpoint",
        "config-events-list",
        "config-batching",
        "config-save",
        "status-queue",
        "status-last-processed",
        "status-failed-attempts",
        "status-next-retry",
        "status-recent-failures",
        "status-refresh",
        "status-stalled-for",
        "status-refresh-hint",
        "status-retry",
        "trigger-event",
        "trigger-count",
        "trigger-data",
        "attempts-body",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "page lacks #{id}");
    }
    for asset in ["/app.js", "/style.css"] {
        let (status, body) = h.call(Method::GET, asset, None).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(body.as_str().unwrap().len() > 100, "{asset} is empty");
    }
    let catalogue = h.get("/api/events").await;
    let catalogue = catalogue.as_array().unwrap();
    // The sandbox lists every event the simulator knows, the newer inferred ones included.
    assert_eq!(catalogue.len(), EventType::KNOWN.len());
    for newer in [
        "COLLECTED_DATA_CHANGED",
        "TASK_CREATED",
        "RISK_SCORE_CHANGED",
        "CUSTOMER_REQUEST_CHANGED",
        "EVENTS_CREATED",
        "EVENTS_UPDATED",
    ] {
        assert!(
            catalogue
                .iter()
                .any(|e| e["event"] == newer && e["deprecated"] == false),
            "{newer} not listed"
        );
    }
    let deprecated: Vec<&str> = catalogue
        .iter()
        .filter(|e| e["deprecated"] == json!(true))
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        deprecated,
        [
            "COLLECTED_DATA_UPDATED",
            "PROFILE_STATUS_CHANGED",
            "TASK_IS_COMPLETE_CHANGED",
            "COLLECTION_STEPS_COMPLETED"
        ]
    );
    assert_eq!(catalogue[1]["label"], "Check completed");
}

#[tokio::test]
async fn config_round_trip_masks_the_secret_and_keeps_left_out_fields() {
    let h = open(None);
    let initial = h.get("/api/config").await;
    assert_eq!(initial["enabled"], false);
    assert_eq!(initial["secret"], "", "no secret yet");
    assert_eq!(
        initial["enabled_events"].as_array().unwrap().len(),
        EventType::KNOWN.len()
    );

    let saved = h
        .put_config(json!({
            "enabled": true,
            "secret": "s3cret-value",
            "endpoint": "https://example.test/hooks",
            "enabled_events": ["CHECK_COMPLETED", "PRODUCT_STATUS_CHANGED"],
            "batching": true,
        }))
        .await;
    assert_eq!(saved["secret"], "********");
    assert!(!saved.to_string().contains("s3cret-value"));
    let got = h.get("/api/config").await;
    assert_eq!(got, saved);
    assert_eq!(
        got,
        json!({
            "enabled": true,
            "secret": "********",
            "endpoint": "https://example.test/hooks",
            "enabled_events": ["PRODUCT_STATUS_CHANGED", "CHECK_COMPLETED"],
            "batching": true,
        })
    );

    // A field left out keeps its value; the mask sent back keeps the secret.
    h.put_config(json!({"batching": false})).await;
    let mut whole = h.get("/api/config").await;
    assert_eq!(whole["batching"], false);
    assert_eq!(whole["endpoint"], "https://example.test/hooks");
    whole["endpoint"] = json!("http://receiver.test/webhooks/passfort");
    h.put_config(whole).await;
    assert_eq!(
        h.sandbox.engine().settings().secret.expose(),
        "s3cret-value"
    );

    // The secret really is what goes out, in the header.
    h.trigger(json!({"event": "CHECK_COMPLETED"})).await;
    h.sandbox.deliver_due().await;
    assert_eq!(
        h.receiver.authorizations(),
        [Some("Bearer s3cret-value".to_owned())]
    );
}

#[tokio::test]
async fn invalid_config_is_a_400_with_a_reason_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let h = open(Some(&state));
    h.configure().await;
    let before = h.get("/api/config").await;
    let file_before = std::fs::read(&state).unwrap();

    let cases: [(&str, &str); 11] = [
        ("", "expected a JSON object"),
        (
            r#"[false, "positional-secret", "http://x.test/", ["CHECK_COMPLETED"], true]"#,
            "expected a JSON object",
        ),
        ("not json", "invalid config"),
        (
            r#"{"endpiont": "http://x.test/"}"#,
            "unknown field `endpiont`",
        ),
        (r#"{"enabled": "yes"}"#, "invalid type"),
        (
            r#"{"endpoint": "ftp://x.test/hooks", "batching": true}"#,
            "absolute http:// or https:// URL",
        ),
        (r#"{"endpoint": "/relative"}"#, "invalid endpoint"),
        (r#"{"secret": "", "batching": true}"#, "must not be empty"),
        (r#"{"secret": "has space"}"#, "printable ASCII"),
        (
            r#"{"enabled_events": ["CHECK_COMPLETED", "check completed"], "batching": true}"#,
            "invalid event",
        ),
        (r#"[1, 2]"#, "invalid config"),
    ];
    for (body, expected) in cases {
        let (status, answer) = h.call(Method::PUT, "/api/config", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{body}: {message:?} should mention {expected:?}"
        );
        assert_eq!(
            h.get("/api/config").await,
            before,
            "{body} changed the config"
        );
        assert_eq!(std::fs::read(&state).unwrap(), file_before, "{body} wrote");
    }

    // Enabling needs a secret.
    let fresh = open(None);
    let (status, answer) = fresh
        .call(Method::PUT, "/api/config", Some(r#"{"enabled": true}"#))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("shared secret"));
    assert_eq!(fresh.get("/api/config").await["enabled"], false);
}

#[tokio::test]
async fn invalid_triggers_are_a_400_and_queue_nothing() {
    let h = open(None);
    h.configure().await;
    let cases: [(&str, &str); 10] = [
        ("", "expected a JSON object"),
        (r#"["CHECK_COMPLETED", 2, null]"#, "expected a JSON object"),
        (r#"{"count": 2}"#, "missing field `event`"),
        (
            r#"{"event": "CHECK_COMPLETED", "count": 0}"#,
            "between 1 and 1000",
        ),
        (
            r#"{"event": "CHECK_COMPLETED", "count": 5000}"#,
            "between 1 and 1000",
        ),
        (
            r#"{"event": "CHECK_COMPLETED", "count": -1}"#,
            "invalid trigger",
        ),
        (
            r#"{"event": "CHECK_COMPLETED", "data": [1]}"#,
            "data must be a JSON object",
        ),
        (
            r#"{"event": "lifecycle", "data": {}}"#,
            "custom data needs one event type",
        ),
        (
            r#"{"event": "lifecycle", "count": 101}"#,
            "between 1 and 100",
        ),
        (r#"{"event": "", "count": 1}"#, "invalid event"),
    ];
    for (body, expected) in cases {
        let (status, answer) = h.call(Method::POST, "/api/events", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{body}: {message:?} should mention {expected:?}"
        );
    }
    let (status, answer) = h
        .call(
            Method::POST,
            "/api/events",
            Some(r#"{"event": "CHECK_COMPLETED", "cuont": 3}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("unknown field"));
    assert_eq!(h.get("/api/status").await["waiting"], 0);
    assert_eq!(h.sandbox.engine().status().enqueued, 0);
}

#[tokio::test]
async fn events_that_passfort_would_not_queue_are_reported_not_queued() {
    let h = open(None);
    // Disabled (the initial state): nothing is queued.
    let answer = h
        .trigger(json!({"event": "CHECK_COMPLETED", "count": 2}))
        .await;
    assert_eq!(answer["queued"], 0);
    assert_eq!(answer["not_queued"], 2);
    assert!(answer["reason"].as_str().unwrap().contains("disabled"));

    h.configure().await;
    h.put_config(json!({"enabled_events": ["CHECK_COMPLETED"]}))
        .await;
    let answer = h
        .trigger(json!({"event": "RISK_LEVEL_CHANGED", "count": 1}))
        .await;
    assert_eq!(answer["queued"], 0);
    assert!(answer["reason"]
        .as_str()
        .unwrap()
        .contains("RISK_LEVEL_CHANGED"));
    // A lifecycle keeps only its enabled events.
    let answer = h.trigger(json!({"event": "lifecycle", "count": 2})).await;
    let queued = answer["queued"].as_u64().unwrap();
    assert!(
        queued >= 2,
        "every lifecycle has at least one check: {answer}"
    );
    assert!(answer["not_queued"].as_u64().unwrap() > 0);
    assert_eq!(h.get("/api/status").await["waiting"], queued);
}

#[tokio::test]
async fn custom_data_is_sent_verbatim_and_unknown_events_are_allowed() {
    let h = open(None);
    h.configure().await;
    h.put_config(json!({"enabled_events": ["CHECK_COMPLETED", "SOMETHING_NEW"]}))
        .await;
    let data = json!({"profile_id": "p-1", "customer_ref": "CUST-1", "extra": [1, 2]});
    let answer = h
        .trigger(json!({"event": "SOMETHING_NEW", "count": 2, "data": data}))
        .await;
    assert_eq!(answer["queued"], 2);
    let queued = h.sandbox.engine().queued_webhooks();
    assert!(queued.iter().all(|w| w.data == data));
    assert!(queued
        .iter()
        .all(|w| w.event == EventType::parse("SOMETHING_NEW")));
    assert_eq!(
        h.get("/api/config").await["enabled_events"],
        json!(["CHECK_COMPLETED", "SOMETHING_NEW"])
    );
}

#[tokio::test]
async fn status_queue_goes_waiting_stalled_and_back_to_empty_with_retry_and_refresh() {
    let h = open(None);
    h.configure().await;
    let status = h.get("/api/status").await;
    assert_eq!(status["state"], "Empty");
    assert_eq!(status["last_processed"], Value::Null);

    let triggered = h
        .trigger(json!({"event": "PRODUCT_STATUS_CHANGED", "count": 3}))
        .await;
    let ids = ids_of(&triggered);
    assert_eq!(ids.len(), 3);
    let status = h.get("/api/status").await;
    assert_eq!(status["state"], "Waiting");
    assert_eq!(status["waiting"], 3);

    // The endpoint answers 503: the head fails and the queue stalls for 30 s.
    h.receiver.answer(503);
    let sent = h.sandbox.deliver_due().await;
    assert_eq!(sent.len(), 1);
    let status = h.get("/api/status").await;
    assert_eq!(status["state"], "Stalled");
    assert_eq!(status["waiting"], 3);
    assert_eq!(status["failed_attempts"], 1);
    assert_eq!(status["next_retry_in_seconds"], 30.0);
    assert_eq!(status["stalled_for_seconds"], 0.0);
    assert_eq!(
        status["refresh"], "clears-failures",
        "the About page's reading by default"
    );
    let failures = status["recent_failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["webhook_id"], ids[0].as_str());
    assert_eq!(failures[0]["status"], 503);
    assert_eq!(failures[0]["outcome"], "rejected");
    assert!(failures[0]["error"].as_str().unwrap().contains("503"));

    // Nothing is sent before the back-off ends...
    h.clock.advance(Duration::from_secs(29));
    assert!(h.sandbox.deliver_due().await.is_empty());
    // ...unless Retry is pressed: it sends at once, and the next back-off is 60 s.
    let after_retry = h.post("/api/retry").await;
    assert_eq!(after_retry["state"], "Stalled");
    let sent = h.sandbox.deliver_due().await;
    assert_eq!(sent.len(), 1, "Retry ignores the back-off");
    assert_eq!(sent[0].try_number, 2);
    let status = h.get("/api/status").await;
    assert_eq!(status["failed_attempts"], 2);
    assert_eq!(status["next_retry_in_seconds"], 60.0);
    // "Stalled for" counts from the first failure since the last delivery, not the latest.
    assert_eq!(status["stalled_for_seconds"], 29.0);

    // Refresh clears Recent failures and nothing else.
    let refreshed = h.post("/api/refresh").await;
    assert_eq!(refreshed["recent_failures"], json!([]));
    assert_eq!(refreshed["state"], "Stalled");
    assert_eq!(refreshed["failed_attempts"], 2);

    // The endpoint recovers; after the back-off everything goes, in order.
    h.receiver.answer(200);
    h.clock.advance(Duration::from_secs(60));
    let sent = h.sandbox.deliver_due().await;
    assert_eq!(sent.len(), 3);
    let status = h.get("/api/status").await;
    assert_eq!(status["state"], "Empty");
    assert_eq!(status["failed_attempts"], 0);
    assert_eq!(status["stalled_for_seconds"], Value::Null);
    assert_eq!(status["totals"]["delivered"], 3);
    h.clock.advance(Duration::from_secs(90));
    let status = h.get("/api/status").await;
    assert_eq!(status["last_processed_ago_seconds"], 90.0);
    let delivered: Vec<String> = h.receiver.ids().into_iter().skip(2).collect();
    assert_eq!(delivered, ids, "in trigger order");

    // The attempts, most recent first.
    let attempts = h.get("/api/attempts").await;
    let outcomes: Vec<&str> = attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "delivered",
            "delivered",
            "delivered",
            "rejected",
            "rejected"
        ]
    );
    assert_eq!(attempts[4]["webhook_ids"], json!([ids[0]]));
}

#[tokio::test]
async fn batching_sends_the_queue_in_one_request() {
    let h = open(None);
    h.configure().await;
    h.put_config(json!({"batching": true})).await;
    h.trigger(json!({"event": "CHECK_COMPLETED", "count": 5}))
        .await;
    // The first batch goes a seeded 0-10 s after the trigger.
    h.clock.advance(Duration::from_secs(10));
    let sent = h.sandbox.deliver_due().await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].batched);
    assert_eq!(sent[0].webhook_ids.len(), 5);
    assert_eq!(h.get("/api/status").await["state"], "Empty");
}

#[tokio::test]
async fn state_file_keeps_settings_and_queue_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sandbox-state.json");
    let clock = VirtualClock::new();
    let receiver = Receiver::new();
    receiver.answer(500);
    let first = open_with(clock.clone(), receiver.clone(), Some(&state));
    first
        .put_config(json!({
            "enabled": true,
            "secret": "kept-secret",
            "endpoint": "http://receiver.test/kept",
            "enabled_events": ["CHECK_COMPLETED", "TASK_STATE_CHANGED"],
            "batching": false,
        }))
        .await;
    let ids = ids_of(
        &first
            .trigger(json!({"event": "CHECK_COMPLETED", "count": 4}))
            .await,
    );
    // One fails, stays at the head.
    assert_eq!(first.sandbox.deliver_due().await.len(), 1);
    let config_before = first.get("/api/config").await;
    drop(first);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the state file holds the secret: owner only"
        );
    }

    receiver.answer(200);
    let second = open_with(clock.clone(), receiver.clone(), Some(&state));
    assert_eq!(second.get("/api/config").await, config_before);
    let status = second.get("/api/status").await;
    assert_eq!(status["waiting"], 4);
    assert_eq!(
        status["state"], "Stalled",
        "the failed head keeps its back-off"
    );
    clock.advance(Duration::from_secs(30));
    let sent = second.sandbox.deliver_due().await;
    assert_eq!(sent.len(), 4);
    let seen = receiver.ids();
    assert_eq!(seen[1..], ids[..], "the restored queue goes in order");
    assert!(receiver
        .authorizations()
        .iter()
        .all(|a| a.as_deref() == Some("Bearer kept-secret")));
    drop(second);

    // Delivered webhooks are gone from the file too.
    let third = open_with(clock, receiver, Some(&state));
    assert_eq!(third.get("/api/status").await["waiting"], 0);
}

#[tokio::test]
async fn a_restart_keeps_failed_attempts_next_retry_and_last_processed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = VirtualClock::new();
    let receiver = Receiver::new();
    let first = open_with(clock.clone(), receiver.clone(), Some(&state));
    first.configure().await;
    // One delivered, for "Last processed"…
    first
        .trigger(json!({"event": "CHECK_COMPLETED", "count": 1}))
        .await;
    assert!(first.sandbox.deliver_due().await[0].outcome.is_delivered());
    let delivered_at = clock.now();
    // …then the endpoint fails twice: 60 s of back-off after the second failure.
    let ids = ids_of(
        &first
            .trigger(json!({"event": "CHECK_COMPLETED", "count": 2}))
            .await,
    );
    receiver.answer(503);
    clock.advance(Duration::from_secs(5));
    assert_eq!(first.sandbox.deliver_due().await.len(), 1);
    clock.advance(Duration::from_secs(30));
    assert_eq!(first.sandbox.deliver_due().await.len(), 1);
    let before = first.get("/api/status").await;
    assert_eq!(before["failed_attempts"], 2);
    assert_eq!(before["next_retry_in_seconds"], 60.0);
    drop(first);

    clock.advance(Duration::from_secs(20));
    let second = open_with(clock.clone(), receiver.clone(), Some(&state));
    let status = second.get("/api/status").await;
    assert_eq!(status["state"], "Stalled");
    assert_eq!(status["waiting"], 2);
    assert_eq!(status["failed_attempts"], 2, "the failure count survives");
    assert_eq!(
        status["next_retry_in_seconds"], 40.0,
        "the retry time survives: 60 s after the failure, 20 s of which passed while stopped"
    );
    assert_eq!(status["next_retry"], before["next_retry"]);
    assert_eq!(status["last_processed"], before["last_processed"]);
    assert_eq!(
        status["last_processed_ago_seconds"],
        clock
            .now()
            .duration_since(delivered_at)
            .unwrap()
            .as_secs_f64()
    );
    // Recent failures survive; their HTTP status came from the attempt list, which is not
    // kept, so after a restart the reason text carries it.
    let without_status = |failures: &Value| {
        let mut failures = failures.clone();
        for failure in failures.as_array_mut().unwrap() {
            failure.as_object_mut().unwrap().remove("status");
        }
        failures
    };
    assert_eq!(status["recent_failures"].as_array().unwrap().len(), 1);
    assert_eq!(
        without_status(&status["recent_failures"]),
        without_status(&before["recent_failures"])
    );
    assert!(status["recent_failures"][0]["error"]
        .as_str()
        .unwrap()
        .contains("503"));
    assert_eq!(status["totals"], before["totals"]);

    // Nothing goes before the saved retry time; then the head goes as its third try.
    receiver.answer(200);
    clock.advance(Duration::from_secs(39));
    assert!(second.sandbox.deliver_due().await.is_empty());
    clock.advance(Duration::from_secs(1));
    let sent = second.sandbox.deliver_due().await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].try_number, 3);
    assert_eq!(sent[0].webhook_ids[0].to_string(), ids[0]);
    assert_eq!(second.get("/api/status").await["state"], "Empty");

    // Refresh is kept too: cleared Recent failures do not come back after a restart.
    receiver.answer(503);
    second
        .trigger(json!({"event": "CHECK_COMPLETED", "count": 1}))
        .await;
    assert_eq!(second.sandbox.deliver_due().await.len(), 1);
    assert_eq!(
        second.get("/api/status").await["recent_failures"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    second.post("/api/refresh").await;
    drop(second);
    let third = open_with(clock, receiver, Some(&state));
    let status = third.get("/api/status").await;
    assert_eq!(status["recent_failures"], json!([]));
    assert_eq!(status["failed_attempts"], 1);
}

#[tokio::test]
async fn a_state_file_without_delivery_state_still_loads_with_the_head_due() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = VirtualClock::new();
    let receiver = Receiver::new();
    let first = open_with(clock.clone(), receiver.clone(), Some(&state));
    first.configure().await;
    receiver.answer(500);
    first
        .trigger(json!({"event": "CHECK_COMPLETED", "count": 2}))
        .await;
    assert_eq!(first.sandbox.deliver_due().await.len(), 1);
    drop(first);
    // A file as the previous version wrote it: no "delivery".
    let mut saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(saved["delivery"].is_object());
    saved.as_object_mut().unwrap().remove("delivery");
    std::fs::write(&state, serde_json::to_vec(&saved).unwrap()).unwrap();

    receiver.answer(200);
    let second = open_with(clock, receiver, Some(&state));
    let status = second.get("/api/status").await;
    assert_eq!(status["waiting"], 2);
    assert_eq!(status["failed_attempts"], 0);
    assert_eq!(second.sandbox.deliver_due().await.len(), 2);
}

#[tokio::test]
async fn a_disabled_queue_is_kept_across_a_restart_and_dropped_on_re_enable() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = VirtualClock::new();
    let receiver = Receiver::new();
    let first = open_with(clock.clone(), receiver.clone(), Some(&state));
    first.configure().await;
    first
        .trigger(json!({"event": "CHECK_COMPLETED", "count": 2}))
        .await;
    first.put_config(json!({"enabled": false})).await;
    let status = first.get("/api/status").await;
    assert_eq!(status["state"], "Stalled", "disabled with callbacks queued");
    drop(first);

    let second = open_with(clock, receiver.clone(), Some(&state));
    let status = second.get("/api/status").await;
    assert_eq!(status["waiting"], 2, "a restart drops nothing");
    assert_eq!(status["enabled"], false);
    assert!(second.sandbox.deliver_due().await.is_empty());

    // PassFort warns that disabling then re-enabling may lose webhooks: the sandbox shows it.
    second.put_config(json!({"enabled": true})).await;
    let status = second.get("/api/status").await;
    assert_eq!(status["waiting"], 0);
    assert_eq!(status["totals"]["dropped"], 2);
    assert!(receiver.ids().is_empty());
}

#[tokio::test]
async fn an_unreadable_state_file_stops_the_start_instead_of_dropping_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, b"{\"format\": \"something else\"}").unwrap();
    let err = Sandbox::open(
        SandboxOptions {
            state: Some(state.clone()),
            ..SandboxOptions::default()
        },
        VirtualClock::new(),
        Receiver::new().transport(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("state.json"), "{err}");
    assert_eq!(
        std::fs::read(&state).unwrap(),
        b"{\"format\": \"something else\"}",
        "left as it was"
    );
    // And a good file loads through the public type too.
    assert!(StateFile::new(dir.path().join("missing.json"))
        .load()
        .unwrap()
        .is_none());
}

// ---- the real binary -----------------------------------------------------------------------

struct Serving {
    child: Child,
    url: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `passfort-sim serve` on a free port and waits for its readiness line.
fn serve(args: &[&str]) -> Serving {
    let mut child = Command::new(env!("CARGO_BIN_EXE_passfort-sim"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("PASSFORT_WEBHOOK_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("passfort-sim: sandbox listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Serving { child, url }
}

/// Polls `GET /api/status` until `done` holds, for at most a minute.
async fn wait_for_status(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = client
            .get(format!("{url}api/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn binary_killed_mid_run_keeps_settings_and_queue() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state_arg = state.to_str().unwrap();
    // A port nothing listens on: every attempt is refused and the queue stays.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/webhooks", closed.local_addr().unwrap());
    drop(closed);

    let client = reqwest::Client::new();
    let first = serve(&["--time-scale", "1000", "--state", state_arg]);
    let put = client
        .put(format!("{}api/config", first.url))
        .json(&json!({"enabled": true, "secret": "process-secret", "endpoint": endpoint}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let triggered: Value = client
        .post(format!("{}api/events", first.url))
        .json(&json!({"event": "TASK_STATE_CHANGED", "count": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(triggered["queued"], 5);
    wait_for_status(&client, &first.url, "the queue to stall", |s| {
        s["state"] == "Stalled" && s["recent_failures"][0]["outcome"] == "refused"
    })
    .await;
    drop(first); // SIGKILL: no chance to save anything on the way out.

    let second = serve(&["--state", state_arg]);
    let config: Value = client
        .get(format!("{}api/config", second.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["endpoint"], endpoint.as_str());
    assert_eq!(config["secret"], "********");
    assert_eq!(config["enabled"], true);
    let status = wait_for_status(&client, &second.url, "the restored queue", |s| {
        s["waiting"] == 5
    })
    .await;
    assert_eq!(status["waiting"], 5);
    let saved = StateFile::new(&state).load().unwrap().unwrap();
    assert_eq!(saved.config.secret, "process-secret");
    let saved_ids: Vec<String> = saved.queue.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(saved_ids, ids_of(&triggered));
}

#[test]
fn the_secret_is_never_a_command_line_argument() {
    let output = Command::new(env!("CARGO_BIN_EXE_passfort-sim"))
        .args(["serve", "--secret", "nope"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--secret"));
}

#[test]
fn bad_flags_stop_serve_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_passfort-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--time-scale", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("time scale"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_passfort-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state"])
        .arg(dir.path().join("no-such-dir").join("state.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("state file"), "{stderr}");
}

/// The state file holds the shared secret: owner-only even when a stale temporary file (say,
/// copied with the state directory) was readable by others.
#[cfg(unix)]
#[test]
fn a_stale_world_readable_temporary_file_does_not_publish_the_secret() {
    use passfort_sender_sim::sandbox::persist::{SavedConfig, SavedState};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let temp = dir.path().join("state.json.tmp");
    std::fs::write(&temp, "stale").unwrap();
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = SavedConfig {
        enabled: false,
        secret: "owner-only-secret".into(),
        endpoint: "http://receiver.test/".into(),
        enabled_events: vec![EventType::CheckCompleted],
        batching: false,
    };
    StateFile::new(&state)
        .save(&SavedState::new(config, Vec::new()))
        .unwrap();
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "mode {mode:o}: the state file holds the secret"
    );
}

/// PassFort's stalled-queue page reads Refresh as "retry now, ignoring back-off" (spec §5): with
/// that setting the sandbox's Refresh sends the head at once and keeps Recent failures.
#[tokio::test]
async fn refresh_read_as_the_stalled_queue_page_says_retries_now() {
    let h = open_reading(
        VirtualClock::new(),
        Receiver::new(),
        None,
        RefreshReading::RetriesNow,
    );
    h.configure().await;
    h.trigger(json!({"event": "CHECK_COMPLETED", "count": 1}))
        .await;
    h.receiver.answer(503);
    assert_eq!(h.sandbox.deliver_due().await.len(), 1);
    h.clock.advance(Duration::from_secs(5));
    assert!(h.sandbox.deliver_due().await.is_empty(), "30 s back-off");
    let refreshed = h.post("/api/refresh").await;
    assert_eq!(refreshed["refresh"], "retries-now");
    assert_eq!(
        refreshed["recent_failures"].as_array().unwrap().len(),
        1,
        "this reading does not clear the list"
    );
    let sent = h.sandbox.deliver_due().await;
    assert_eq!(sent.len(), 1, "Refresh ignored the back-off");
    assert_eq!(sent[0].try_number, 2);
}

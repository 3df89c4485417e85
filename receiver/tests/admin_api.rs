//! The admin address's JSON API, as a script uses it: every action without a token, with a
//! wrong one and with the right one; bad input; reads; the page's assets; the per-minute
//! trends on a virtual clock; and the metrics the Prometheus alert rules read.

use axum::body::Body;
use axum::Router;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use passfort_clock::VirtualClock;
use passfort_receiver::store::{AfterFailure, Lease, SharedStore};
use passfort_receiver::testing::{self, RecordingHandler, WebhookBuilder};
use passfort_receiver::{AdminToken, Receiver, SecretSet, SqliteStore};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower::ServiceExt;

const TOKEN: &str = "admin-token-for-the-tests-0123456789";

struct Admin {
    receiver: Receiver,
    /// Where Replay hands webhooks.
    replayed: RecordingHandler,
    admin: Router,
    store: SharedStore,
    clock: VirtualClock,
    _dir: tempfile::TempDir,
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

async fn admin(token: Option<&str>) -> Admin {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/admin.db", dir.path().display());
    let store: SharedStore = Arc::new(SqliteStore::open(&url).await.unwrap());
    let clock = VirtualClock::starting_at(t0());
    let replayed = RecordingHandler::new();
    let mut builder = Receiver::builder()
        .replay_to(Arc::new(replayed.clone()))
        .secrets(SecretSet::single(testing::SECRET).unwrap())
        .shared_store(store.clone())
        .clock(clock.clone());
    if let Some(token) = token {
        builder = builder.admin_token(AdminToken::new(token).unwrap());
    }
    let receiver = builder.build().unwrap();
    Admin {
        admin: receiver.admin_router(),
        receiver,
        replayed,
        store,
        clock,
        _dir: dir,
    }
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// `GET /metrics`, as text.
async fn metrics(router: &Router) -> String {
    let response = router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

async fn get(router: &Router, path: &str) -> (StatusCode, Value) {
    call(router, Request::get(path).body(Body::empty()).unwrap()).await
}

fn action(path: &str, body: &str, authorization: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

/// Stores `n` webhooks and dead-letters each of them, as a worker giving up would.
async fn dead_letters(a: &Admin, n: usize) -> Vec<String> {
    let hooks: Vec<WebhookBuilder> = (0..n).map(|_| testing::check_completed()).collect();
    a.store
        .insert(&testing::verified(&hooks), t0())
        .await
        .unwrap();
    for _ in 0..n {
        let Lease::Acquired(leased) = a
            .store
            .lease_next("w", t0(), Duration::from_secs(60))
            .await
            .unwrap()
        else {
            panic!("expected a lease");
        };
        a.store
            .fail(
                leased.seq,
                "w",
                t0(),
                "handler said no",
                AfterFailure::DeadLetter,
            )
            .await
            .unwrap();
    }
    hooks.iter().map(|h| h.get_id().to_owned()).collect()
}

async fn dead_ids(a: &Admin) -> Vec<String> {
    a.store
        .dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect()
}

/// Every action, with what it needs to succeed on a store holding dead letters `ids`.
fn actions(ids: &[String]) -> Vec<(&'static str, String)> {
    vec![
        (
            "/api/dead-letters/retry",
            json!({ "id": ids[0] }).to_string(),
        ),
        ("/api/dead-letters/retry-all", "{}".to_owned()),
        (
            "/api/dead-letters/drop",
            json!({ "id": ids[0] }).to_string(),
        ),
        ("/api/replay", json!({ "from_id": ids[0] }).to_string()),
    ]
}

#[tokio::test]
async fn every_action_refuses_a_missing_or_wrong_token_and_changes_nothing() {
    let a = admin(Some(TOKEN)).await;
    let ids = dead_letters(&a, 2).await;
    let wrong = [
        None,
        Some("Bearer not-the-admin-token-at-all".to_owned()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_owned()),
        Some("Bearer ".to_owned()),
    ];
    for (path, body) in actions(&ids) {
        for authorization in &wrong {
            let (status, answer) =
                call(&a.admin, action(path, &body, authorization.as_deref())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {authorization:?}");
            let expected = if authorization.is_none() {
                "missing"
            } else {
                "wrong"
            };
            assert_eq!(answer["token"], expected, "{path}: {answer}");
            assert!(
                !answer.to_string().contains(TOKEN),
                "the token never comes back"
            );
            assert_eq!(dead_ids(&a).await, ids, "{path}: nothing changed");
            assert!(a.replayed.ids().is_empty(), "{path}: nothing replayed");
        }
        // Two Authorization headers, even both right: refused.
        let mut request = action(path, &body, Some(&format!("Bearer {TOKEN}")));
        request.headers_mut().append(
            header::AUTHORIZATION,
            format!("Bearer {TOKEN}").parse().unwrap(),
        );
        assert_eq!(call(&a.admin, request).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(dead_ids(&a).await, ids);
    }
}

#[tokio::test]
async fn without_a_configured_token_actions_are_off() {
    let a = admin(None).await;
    let ids = dead_letters(&a, 1).await;
    let (_, access) = get(&a.admin, "/api/access").await;
    assert_eq!(access["actions"], "disabled");
    for (path, body) in actions(&ids) {
        for authorization in [None, Some(format!("Bearer {TOKEN}"))] {
            let (status, answer) =
                call(&a.admin, action(path, &body, authorization.as_deref())).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
            assert_eq!(answer["token"], "disabled");
            assert!(answer["error"]
                .as_str()
                .unwrap()
                .contains("PASSFORT_ADMIN_TOKEN"));
        }
    }
    assert_eq!(dead_ids(&a).await, ids, "nothing changed");
    assert!(a.replayed.ids().is_empty(), "nothing replayed");
}

#[tokio::test]
async fn the_right_token_retries_one_dead_letter_then_all() {
    let a = admin(Some(TOKEN)).await;
    let ids = dead_letters(&a, 3).await;
    let bearer = format!("Bearer {TOKEN}");
    let (_, access) = call(
        &a.admin,
        Request::get("/api/access")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(access["actions"], "token");
    assert_eq!(access["token"], "accepted");

    let (status, answer) = call(
        &a.admin,
        action(
            "/api/dead-letters/retry",
            &json!({ "id": ids[1] }).to_string(),
            Some(&bearer),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({ "retried": 1, "id": ids[1] }));
    assert_eq!(dead_ids(&a).await, vec![ids[0].clone(), ids[2].clone()]);
    let (_, status_report) = get(&a.admin, "/status").await;
    assert_eq!(status_report["queue_depth"], 1, "back in the queue");

    // The same id again: no longer a dead letter.
    let (status, _) = call(
        &a.admin,
        action(
            "/api/dead-letters/retry",
            &json!({ "id": ids[1] }).to_string(),
            Some(&bearer),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // retry-all accepts an empty body as well as {}.
    let (status, answer) = call(
        &a.admin,
        action("/api/dead-letters/retry-all", "", Some(&bearer)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({ "retried": 2 }));
    assert!(dead_ids(&a).await.is_empty());
    let (_, list) = get(&a.admin, "/api/dead-letters").await;
    assert_eq!(list, json!({ "total": 0, "dead_letters": [] }));
}

#[tokio::test]
async fn bad_input_is_a_400_and_changes_nothing() {
    let a = admin(Some(TOKEN)).await;
    let ids = dead_letters(&a, 2).await;
    let bearer = format!("Bearer {TOKEN}");
    let long = "x".repeat(257);
    let bad_retry = [
        "".to_owned(),
        "not json".to_owned(),
        "[]".to_owned(),
        json!([ids[0]]).to_string(),
        "{}".to_owned(),
        json!({ "id": 7 }).to_string(),
        json!({ "id": null }).to_string(),
        json!({ "id": "" }).to_string(),
        json!({ "id": long }).to_string(),
        json!({ "id": "a\u{0}b" }).to_string(),
        json!({ "id": ids[0], "all": true }).to_string(),
    ];
    for body in &bad_retry {
        let (status, answer) = call(
            &a.admin,
            action("/api/dead-letters/retry", body, Some(&bearer)),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {answer}");
        assert!(answer["error"].is_string());
        assert_eq!(dead_ids(&a).await, ids, "{body:?}: nothing changed");
    }
    // A script sending an id to retry-all by mistake must not retry them all.
    for body in [
        json!({ "id": ids[0] }).to_string(),
        "[]".to_owned(),
        "x".to_owned(),
    ] {
        let (status, _) = call(
            &a.admin,
            action("/api/dead-letters/retry-all", &body, Some(&bearer)),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(dead_ids(&a).await, ids);
    }
    // Too large a body.
    let huge = json!({ "id": "y".repeat(100_000) }).to_string();
    let (status, _) = call(
        &a.admin,
        action("/api/dead-letters/retry", &huge, Some(&bearer)),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // An id that is no dead letter.
    let (status, _) = call(
        &a.admin,
        action(
            "/api/dead-letters/retry",
            &json!({ "id": "no-such-webhook" }).to_string(),
            Some(&bearer),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(dead_ids(&a).await, ids);
    // Reads do not take actions' methods, and actions not GET.
    let (status, _) = get(&a.admin, "/api/dead-letters/retry").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_page_is_served_self_contained_and_framing_is_refused() {
    let a = admin(None).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/style.css", "text/css"),
        ("/app.js", "text/javascript"),
    ] {
        let response = a
            .admin
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(kind));
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        // Nothing fetched from elsewhere: the only absolute URL is SVG's namespace name.
        let external = text
            .replace("http://www.w3.org/2000/svg", "")
            .contains("://");
        assert!(!external, "{path} refers to another site");
    }
}

#[tokio::test]
async fn trends_count_traffic_per_minute_on_the_receivers_clock() {
    let a = admin(None).await;
    let public = a.receiver.router();
    let hooks = vec![testing::check_completed(), testing::check_completed()];
    let body = testing::batch_body(&hooks);
    let ok = public
        .clone()
        .oneshot(testing::signed_request(
            "/webhooks/passfort",
            &body,
            testing::SECRET,
        ))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // The same again: duplicates. Then a wrong secret: refused (401).
    public
        .clone()
        .oneshot(testing::signed_request(
            "/webhooks/passfort",
            &body,
            testing::SECRET,
        ))
        .await
        .unwrap();
    let refused = public
        .clone()
        .oneshot(testing::signed_request(
            "/webhooks/passfort",
            &body,
            "wrong-secret",
        ))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let (_, hour) = get(&a.admin, "/api/trends").await;
    let last = |name: &str| hour[name].as_array().unwrap().last().unwrap().clone();
    assert_eq!(hour["received"].as_array().unwrap().len(), 60);
    assert_eq!(last("received"), 4);
    assert_eq!(last("stored"), 2);
    assert_eq!(last("duplicates"), 2);
    assert_eq!(last("answers"), 3);
    assert!(last("latency_p99_seconds").is_number());
    let unauthorized = hour["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["reason"] == "unauthorized")
        .unwrap();
    assert_eq!(
        unauthorized["counts"].as_array().unwrap().last().unwrap(),
        1
    );

    // Two minutes on, that minute has moved left; an hour on, it is gone.
    a.clock.advance(Duration::from_secs(120));
    let (_, hour) = get(&a.admin, "/api/trends").await;
    let received = hour["received"].as_array().unwrap();
    assert_eq!(received[57], 4);
    assert_eq!(received[59], 0);
    a.clock.advance(Duration::from_secs(3600));
    let (_, hour) = get(&a.admin, "/api/trends").await;
    assert!(hour["received"].as_array().unwrap().iter().all(|n| n == 0));
}

#[tokio::test]
async fn status_and_metrics_say_how_long_the_queue_has_been_stalled() {
    let a = admin(None).await;
    let hooks = vec![testing::check_completed(), testing::check_completed()];
    a.store
        .insert(&testing::verified(&hooks), t0())
        .await
        .unwrap();
    let Lease::Acquired(head) = a
        .store
        .lease_next("w", t0(), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("expected a lease");
    };
    let retry_at = t0() + Duration::from_secs(3600);
    a.store
        .fail(
            head.seq,
            "w",
            t0(),
            "sink refused",
            AfterFailure::RetryAt(retry_at),
        )
        .await
        .unwrap();
    a.clock.advance(Duration::from_secs(700));
    let (_, status) = get(&a.admin, "/status").await;
    assert_eq!(status["queue"], "stalled");
    assert_eq!(status["queue_depth"], 2);
    assert_eq!(
        status["stalled_since"],
        humantime::format_rfc3339_millis(t0()).to_string()
    );
    assert_eq!(status["recent_failures"][0]["error"], "sink refused");
    let text = metrics(&a.admin).await;
    assert!(
        text.lines()
            .any(|l| l == "passfort_queue_stalled_seconds 700"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "passfort_dead_letters 0"));
}

/// Every metric (and `reason` label) the alert rules read is one `/metrics` exports: a renamed
/// metric would make a rule silently never fire.
#[tokio::test]
async fn the_alert_rules_read_metrics_that_exist() {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/alerts.yml"
    ))
    .unwrap();
    let a = admin(None).await;
    let exported = metrics(&a.admin).await;
    let mut checked = 0;
    for (i, _) in rules.match_indices("passfort_") {
        let name: String = rules[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            exported.contains(&format!("# TYPE {name} ")),
            "alerts.yml reads {name}, which /metrics does not export"
        );
        checked += 1;
    }
    assert!(checked >= 5, "the rules read the receiver's metrics");
    for reason in ["store_unavailable", "deadline", "ip"] {
        assert!(rules.contains(reason));
        assert!(
            exported.contains(&format!(
                "passfort_requests_rejected_total{{reason=\"{reason}\"}}"
            )),
            "no rejected reason {reason}"
        );
    }
}

#[tokio::test]
async fn the_right_token_drops_a_dead_letter_and_replays_a_range() {
    let a = admin(Some(TOKEN)).await;
    let ids = dead_letters(&a, 3).await;
    let bearer = format!("Bearer {TOKEN}");
    let (status, answer) = call(
        &a.admin,
        action(
            "/api/dead-letters/drop",
            &json!({ "id": ids[0] }).to_string(),
            Some(&bearer),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({ "dropped": 1, "id": ids[0] }));
    assert_eq!(dead_ids(&a).await, ids[1..].to_vec());
    let (status, _) = call(
        &a.admin,
        action(
            "/api/dead-letters/drop",
            &json!({ "id": ids[0] }).to_string(),
            Some(&bearer),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "dropped once only");

    // A preview hands nothing on; a replay hands the range on in order, queue untouched.
    let range = json!({ "from_id": ids[1], "to_id": ids[2], "dry_run": true }).to_string();
    let (status, answer) = call(&a.admin, action("/api/replay", &range, Some(&bearer))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["replayed"], 2);
    assert_eq!(answer["dry_run"], true);
    assert!(a.replayed.ids().is_empty());
    let range = json!({ "from_id": ids[0], "to_id": ids[2] }).to_string();
    let (status, answer) = call(&a.admin, action("/api/replay", &range, Some(&bearer))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["replayed"], 2, "{answer}");
    assert_eq!(
        answer["skipped"][0]["id"], ids[0],
        "the dropped one's body is gone"
    );
    assert_eq!(a.replayed.ids(), ids[1..].to_vec());
    assert_eq!(
        dead_ids(&a).await,
        ids[1..].to_vec(),
        "the queue is untouched"
    );
    let since = humantime::format_rfc3339_millis(t0()).to_string();
    let (status, answer) = call(
        &a.admin,
        action(
            "/api/replay",
            &json!({ "since": since, "events": ["CHECK_COMPLETED"] }).to_string(),
            Some(&bearer),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["replayed"], 2);
    let (status, _) = call(
        &a.admin,
        action(
            "/api/replay",
            &json!({ "from_id": "never-stored" }).to_string(),
            Some(&bearer),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_replay_and_drop_input_is_a_400_and_replays_nothing() {
    let a = admin(Some(TOKEN)).await;
    let ids = dead_letters(&a, 2).await;
    let bearer = format!("Bearer {TOKEN}");
    let bad = [
        json!({}),
        json!({ "to_id": ids[1] }),
        json!({ "since": "yesterday" }),
        json!({ "since": "2026-12-01T09:30:00Z", "from_id": ids[0] }),
        json!({ "from_id": ids[0], "until": "2026-12-01T09:30:00Z", "to_id": ids[1] }),
        json!({ "from_id": "" }),
        json!({ "from_id": ids[0], "events": [""] }),
        json!({ "from_id": ids[0], "events": "CHECK_COMPLETED" }),
        json!({ "from_id": ids[0], "dry_run": "yes" }),
        json!({ "from_id": ids[0], "sink": "exec:rm -rf /" }),
        json!([ids[0]]),
    ];
    for body in bad {
        let (status, answer) = call(
            &a.admin,
            action("/api/replay", &body.to_string(), Some(&bearer)),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(a.replayed.ids().is_empty(), "{body}: nothing replayed");
    }
    for body in [
        json!({}),
        json!({ "id": "" }),
        json!({ "id": ids[0], "x": 1 }),
    ] {
        let (status, _) = call(
            &a.admin,
            action("/api/dead-letters/drop", &body.to_string(), Some(&bearer)),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(dead_ids(&a).await, ids, "nothing dropped");
    }
}

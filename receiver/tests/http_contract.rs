//! The wire contract, row by row, over real HTTP on loopback against the built router.

mod common;

use common::{post, serve, sqlite_in};
use passfort_clock::VirtualClock;
use passfort_receiver::store::{SharedStore, State};
use passfort_receiver::testing::{self, SlowStore, UnavailableStore, WebhookBuilder};
use passfort_receiver::{Receiver, SecretSet, SqliteStore};
use serde_json::{json, Value};
use std::time::Duration;

const PATH: &str = "/webhooks/passfort";

struct Target {
    url: String,
    base: String,
    store: SharedStore,
    receiver: Receiver,
    _dir: tempfile::TempDir,
}

async fn target_with(
    configure: impl FnOnce(passfort_receiver::ReceiverBuilder) -> passfort_receiver::ReceiverBuilder,
) -> Target {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_in(dir.path(), "contract").await;
    let receiver = configure(
        Receiver::builder()
            .secrets(SecretSet::single(testing::SECRET).unwrap())
            .shared_store(store.clone()),
    )
    .build()
    .unwrap();
    let addr = serve(receiver.router()).await;
    Target {
        url: format!("http://{addr}{PATH}"),
        base: format!("http://{addr}"),
        store,
        receiver,
        _dir: dir,
    }
}

async fn target() -> Target {
    target_with(|b| b).await
}

async fn stored(store: &SharedStore) -> Vec<String> {
    store
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.webhook.id)
        .collect()
}

fn ids(hooks: &[WebhookBuilder]) -> Vec<String> {
    hooks.iter().map(|h| h.get_id().to_owned()).collect()
}

fn batch(n: usize) -> Vec<WebhookBuilder> {
    (0..n).map(|_| testing::check_completed()).collect()
}

async fn error_of(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_valid_single_webhook_is_stored_then_acknowledged() {
    let t = target().await;
    let hook = testing::check_completed();
    let response = post(&t.url, Some(testing::SECRET), hook.json().to_string()).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"received": 1, "stored": 1, "duplicates": 0, "conflicts": 0})
    );
    let entries = t.store.entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].webhook, hook.webhook());
    assert_eq!(entries[0].state, State::Pending);
}

#[tokio::test]
async fn content_type_is_not_checked() {
    let t = target().await;
    let hook = testing::check_completed();
    let response = common::client()
        .post(&t.url)
        .header("authorization", format!("Bearer {}", testing::SECRET))
        .header("content-type", "text/plain")
        .body(hook.json().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(stored(&t.store).await, ids(&[hook]));
}

#[tokio::test]
async fn a_batch_of_100_is_stored_in_order() {
    let t = target().await;
    let hooks = batch(100);
    let response = post(
        &t.url,
        Some(testing::SECRET),
        testing::batch_body(&hooks).to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(stored(&t.store).await, ids(&hooks));
}

#[tokio::test]
async fn redelivery_with_an_overlapping_head_stores_nothing_twice() {
    let t = target().await;
    let hooks = batch(150);
    let first = post(
        &t.url,
        Some(testing::SECRET),
        testing::batch_body(&hooks[..100]).to_string(),
    )
    .await;
    assert_eq!(first.status(), 200);
    // PassFort did not see the 200: the same head comes again with 50 more behind it.
    let again = post(
        &t.url,
        Some(testing::SECRET),
        testing::batch_body(&hooks[50..]).to_string(),
    )
    .await;
    assert_eq!(again.status(), 200);
    let body: Value = again.json().await.unwrap();
    assert_eq!(
        body,
        json!({"received": 100, "stored": 50, "duplicates": 50, "conflicts": 0})
    );
    assert_eq!(stored(&t.store).await, ids(&hooks));
    assert_eq!(t.receiver.metrics().duplicates(), 50);
}

#[tokio::test]
async fn a_redelivered_id_with_a_different_body_is_kept_out() {
    let t = target().await;
    let original = testing::check_completed();
    assert_eq!(
        post(&t.url, Some(testing::SECRET), original.json().to_string())
            .await
            .status(),
        200
    );
    let changed = original.clone().data(json!({"profile_id": "tampered"}));
    let response = post(&t.url, Some(testing::SECRET), changed.json().to_string()).await;
    assert_eq!(
        response.status(),
        200,
        "a conflict does not stall PassFort's queue"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["conflicts"], 1);
    let entries = t.store.entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].webhook, original.webhook());
}

#[tokio::test]
async fn unknown_events_and_odd_data_are_stored_and_acknowledged() {
    let t = target().await;
    let unknown = testing::unknown_event("SOMETHING_NEW");
    let odd = testing::check_completed().data(json!("not an object"));
    let no_data = testing::product_status_changed().data(Value::Null);
    let hooks = [unknown, odd, no_data];
    let response = post(
        &t.url,
        Some(testing::SECRET),
        testing::batch_body(&hooks).to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let entries = t.store.entries().await.unwrap();
    assert_eq!(entries.len(), 3);
    for entry in &entries {
        assert!(entry.webhook.event().is_unknown(), "{:?}", entry.webhook);
    }
}

#[tokio::test]
async fn a_missing_malformed_or_wrong_bearer_is_401_and_stores_nothing() {
    let t = target().await;
    let body = testing::check_completed().json().to_string();
    let cases: [Option<String>; 5] = [
        None,
        Some(testing::SECRET.to_owned()),
        Some(format!("Basic {}", testing::SECRET)),
        Some("Bearer wrong".to_owned()),
        Some(format!("Bearer {}x", testing::SECRET)),
    ];
    for header in cases {
        let mut request = common::client().post(&t.url).body(body.clone());
        if let Some(h) = &header {
            request = request.header("authorization", h);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{header:?}");
        assert!(!error_of(response).await.contains(testing::SECRET));
    }
    assert!(stored(&t.store).await.is_empty());
    assert_eq!(t.receiver.metrics().rejected("unauthorized"), 5);
}

#[tokio::test]
async fn two_authorization_headers_are_401_whatever_their_order() {
    let t = target().await;
    let body = testing::check_completed().json().to_string();
    let right = format!("Bearer {}", testing::SECRET);
    for pair in [
        [right.as_str(), "Bearer wrong"],
        ["Bearer wrong", right.as_str()],
        [right.as_str(), right.as_str()],
    ] {
        let response = common::client()
            .post(&t.url)
            .header("authorization", pair[0])
            .header("authorization", pair[1])
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{pair:?}");
    }
    assert!(stored(&t.store).await.is_empty());
}

#[tokio::test]
async fn one_element_with_a_bad_body_secret_fails_the_whole_batch_with_401() {
    let t = target().await;
    let mut hooks = batch(5);
    hooks[3] = testing::check_completed().secret("wrong");
    let response = post(
        &t.url,
        Some(testing::SECRET),
        testing::batch_body(&hooks).to_string(),
    )
    .await;
    assert_eq!(response.status(), 401);
    let mut hooks = batch(5);
    hooks[4] = testing::check_completed().without_secret();
    let response = post(
        &t.url,
        Some(testing::SECRET),
        testing::batch_body(&hooks).to_string(),
    )
    .await;
    assert_eq!(response.status(), 401);
    let single = testing::check_completed().secret(format!("{} ", testing::SECRET));
    let response = post(&t.url, Some(testing::SECRET), single.json().to_string()).await;
    assert_eq!(response.status(), 401);
    assert!(stored(&t.store).await.is_empty());
}

#[tokio::test]
async fn bodies_that_are_not_webhooks_are_400_with_a_json_error_and_store_nothing() {
    let t = target().await;
    let good = testing::check_completed().json();
    let no_id = {
        let mut v = testing::check_completed().json();
        v.as_object_mut().unwrap().remove("id");
        v
    };
    let numeric_event = testing::check_completed().field("event", json!(12)).json();
    let cases: Vec<String> = vec![
        "{not json".into(),
        "".into(),
        "42".into(),
        "\"a string\"".into(),
        "null".into(),
        json!([good.clone(), 7]).to_string(),
        json!([good.clone(), no_id]).to_string(),
        json!([good, numeric_event]).to_string(),
    ];
    for body in cases {
        let response = post(&t.url, Some(testing::SECRET), body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let message = error_of(response).await;
        assert!(
            !message.is_empty() && message.len() < 120,
            "short JSON error: {message}"
        );
    }
    assert!(stored(&t.store).await.is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_stores_nothing() {
    let t = target_with(|b| b.body_limit(4 * 1024)).await;
    let big = testing::check_completed().data(json!({"padding": "x".repeat(8 * 1024)}));
    let response = post(&t.url, Some(testing::SECRET), big.json().to_string()).await;
    assert_eq!(response.status(), 413);
    // Without a Content-Length (chunked), the limit still holds.
    let status = chunked_post(&t.base, &big.json().to_string()).await;
    assert_eq!(status, "413");
    let small = testing::check_completed();
    assert_eq!(
        post(&t.url, Some(testing::SECRET), small.json().to_string())
            .await
            .status(),
        200
    );
    assert_eq!(stored(&t.store).await, ids(&[small]));
}

#[tokio::test]
async fn the_default_limit_accepts_a_large_batch() {
    let t = target().await;
    // 100 large collected-data webhooks: about 5 MiB, under the 16 MiB default.
    let hooks: Vec<_> = (0..100)
        .map(|_| {
            testing::collected_data_updated()
                .data(json!({"new_data": {"blob": "y".repeat(50_000)}}))
        })
        .collect();
    let response = post(
        &t.url,
        Some(testing::SECRET),
        testing::batch_body(&hooks).to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(stored(&t.store).await.len(), 100);
}

#[tokio::test]
async fn other_methods_are_405() {
    let t = target().await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let response = common::client()
            .request(method.clone(), &t.url)
            .header("authorization", format!("Bearer {}", testing::SECRET))
            .body(testing::check_completed().json().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
    }
    assert!(stored(&t.store).await.is_empty());
}

#[tokio::test]
async fn an_unavailable_store_is_503() {
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(testing::SECRET).unwrap())
        .store(UnavailableStore)
        .build()
        .unwrap();
    let addr = serve(receiver.router()).await;
    let response = post(
        &format!("http://{addr}{PATH}"),
        Some(testing::SECRET),
        testing::check_completed().json().to_string(),
    )
    .await;
    assert_eq!(response.status(), 503);
    let health = common::client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
}

async fn slow_target(store: SlowStore<SharedStore>, clock: VirtualClock) -> String {
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(testing::SECRET).unwrap())
        .store(store)
        .clock(clock)
        .build()
        .unwrap();
    let addr = serve(receiver.router()).await;
    format!("http://{addr}{PATH}")
}

#[tokio::test]
async fn a_batch_missing_its_deadline_is_503_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let (inner, _) = sqlite_in(dir.path(), "slow").await;
    let clock = VirtualClock::new();
    // Staging takes 3 s of virtual time: past the 2 s batch deadline, inside the 4 s single one.
    let url = slow_target(
        SlowStore::new(inner.clone(), clock.clone(), Duration::from_secs(3)),
        clock,
    )
    .await;
    let hooks = batch(3);
    let response = post(
        &url,
        Some(testing::SECRET),
        testing::batch_body(&hooks).to_string(),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert!(
        stored(&inner).await.is_empty(),
        "nothing stored after a missed deadline"
    );
    let single = testing::check_completed();
    let response = post(&url, Some(testing::SECRET), single.json().to_string()).await;
    assert_eq!(
        response.status(),
        200,
        "a single webhook has the longer deadline"
    );
    assert_eq!(stored(&inner).await, ids(&[single]));
}

/// A body that takes 3 s of (virtual) time to arrive, inside PassFort's 5 s batched limit, is
/// stored and answered 200: the 2 s store deadline counts from when the body was whole, up to
/// PassFort's own limit. (Counted from the arrival alone, the deadline had passed before the
/// body was even read, and a slow network turned every batch into a 503.)
#[tokio::test(flavor = "current_thread")]
async fn a_batch_whose_body_arrives_slowly_within_passforts_limit_is_stored() {
    use futures::StreamExt;
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_in(dir.path(), "slow-upload").await;
    let clock = VirtualClock::new();
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(testing::SECRET).unwrap())
        .shared_store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let hooks = batch(100);
    let body = testing::batch_body(&hooks).to_string().into_bytes();
    let (first, rest) = body.split_at(body.len() / 2);
    let (chunks, receiving) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let (reading_on, read_first) = tokio::sync::oneshot::channel::<()>();
    // The body stream says when it is asked for its second piece: the handler has the first
    // half and is waiting for the rest.
    let stream = futures::stream::unfold(
        (receiving, Some(reading_on), 0),
        |(mut receiving, mut reading_on, polled)| async move {
            if polled == 1 {
                if let Some(signal) = reading_on.take() {
                    let _ = signal.send(());
                }
            }
            let chunk = receiving.recv().await?;
            Some((chunk, (receiving, reading_on, polled + 1)))
        },
    )
    .boxed();
    let request = axum::http::Request::post(PATH)
        .header("authorization", format!("Bearer {}", testing::SECRET))
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(axum::body::Body::from_stream(stream))
        .unwrap();
    chunks.send(Ok(first.to_vec())).await.unwrap();
    let answer = tokio::spawn(receiver.router().oneshot(request));
    read_first.await.unwrap();
    clock.advance(Duration::from_secs(3));
    chunks.send(Ok(rest.to_vec())).await.unwrap();
    drop(chunks);
    let response = answer.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(stored(&store).await, ids(&hooks));
}

#[tokio::test]
async fn staging_that_finishes_past_the_deadline_is_rolled_back_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (inner, _) = sqlite_in(dir.path(), "late").await;
    let clock = VirtualClock::new();
    let slow = SlowStore::after_staging(inner.clone(), clock.clone(), Duration::from_secs(5));
    let url = slow_target(slow, clock).await;
    let hooks = batch(2);
    let response = post(
        &url,
        Some(testing::SECRET),
        testing::batch_body(&hooks).to_string(),
    )
    .await;
    assert_eq!(response.status(), 503);
    let response = post(&url, Some(testing::SECRET), hooks[0].json().to_string()).await;
    assert_eq!(
        response.status(),
        503,
        "5 s is past the single deadline too"
    );
    assert!(stored(&inner).await.is_empty());
    assert_eq!(
        inner
            .status(std::time::SystemTime::now())
            .await
            .unwrap()
            .last_received,
        None
    );
}

#[tokio::test]
async fn rotation_accepts_both_secrets_in_header_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_in(dir.path(), "rotation").await;
    let receiver = Receiver::builder()
        .secrets(SecretSet::new(["new-secret", "old-secret"]).unwrap())
        .shared_store(store.clone())
        .build()
        .unwrap();
    let url = format!("http://{}{PATH}", serve(receiver.router()).await);
    let old = testing::check_completed().secret("old-secret");
    let new = testing::check_completed().secret("new-secret");
    assert_eq!(
        post(&url, Some("old-secret"), old.json().to_string())
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&url, Some("new-secret"), new.json().to_string())
            .await
            .status(),
        200
    );
    let retired = testing::check_completed().secret("retired");
    assert_eq!(
        post(&url, Some("retired"), retired.json().to_string())
            .await
            .status(),
        401
    );
    assert_eq!(stored(&store).await, ids(&[old, new]));
}

#[tokio::test]
async fn concurrent_requests_never_interleave() {
    let t = target().await;
    let requests: Vec<Vec<WebhookBuilder>> = (0..12).map(|_| batch(25)).collect();
    let sends = requests.iter().map(|hooks| {
        let url = t.url.clone();
        let body = testing::batch_body(hooks).to_string();
        async move { post(&url, Some(testing::SECRET), body).await.status() }
    });
    for status in futures::future::join_all(sends).await {
        assert_eq!(status, 200);
    }
    let entries = t.store.entries().await.unwrap();
    assert_eq!(entries.len(), 300);
    for run in entries.chunks(25) {
        let run_ids: Vec<String> = run.iter().map(|e| e.webhook.id.clone()).collect();
        assert!(
            requests.iter().any(|r| ids(r) == run_ids),
            "a request was interleaved or reordered"
        );
    }
}

#[tokio::test]
async fn healthz_and_the_router_nest_at_any_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&format!("sqlite://{}/n.db", dir.path().display()))
        .await
        .unwrap();
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(testing::SECRET).unwrap())
        .store(store)
        .path("/in")
        .build()
        .unwrap();
    let app = axum::Router::new().nest("/integrations/passfort", receiver.router());
    let addr = serve(app).await;
    let health = common::client()
        .get(format!("http://{addr}/integrations/passfort/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let response = post(
        &format!("http://{addr}/integrations/passfort/in"),
        Some(testing::SECRET),
        testing::check_completed().json().to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let not_here = common::client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        not_here.status(),
        404,
        "admin endpoints are not on the public router"
    );
}

#[tokio::test]
async fn admin_router_serves_metrics_and_status() {
    let t = target().await;
    let hooks = batch(3);
    assert_eq!(
        post(
            &t.url,
            Some(testing::SECRET),
            testing::batch_body(&hooks).to_string()
        )
        .await
        .status(),
        200
    );
    assert_eq!(post(&t.url, None, "{}").await.status(), 401);
    assert_eq!(
        post(&t.url, Some(testing::SECRET), "nope").await.status(),
        400
    );
    let admin = serve(t.receiver.admin_router()).await;
    let metrics = common::client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "passfort_webhooks_received_total 3",
        "passfort_webhooks_stored_total 3",
        "passfort_requests_rejected_total{reason=\"unauthorized\"} 1",
        "passfort_requests_rejected_total{reason=\"bad_request\"} 1",
        "passfort_queue_depth 3",
        "passfort_answer_latency_seconds_count 3",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    let status: Value = common::client()
        .get(format!("http://{admin}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["queue"], "waiting");
    assert_eq!(status["queue_depth"], 3);
    assert_eq!(status["last_received"]["id"], hooks[2].get_id());
    assert_eq!(status["last_processed"], Value::Null);
    assert_eq!(status["dead_letters"], 0);
    assert!(status["recent_failures"].as_array().unwrap().is_empty());
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no Content-Length) and returns the status code.
async fn chunked_post(base: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        testing::SECRET
    );
    for chunk in body.as_bytes().chunks(1024) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    request.push_str("0\r\n\r\n");
    // The server may answer 413 and close before reading everything: ignore write errors.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.split_whitespace().nth(1).unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_webhook_path_that_is_a_route_pattern_is_a_build_error_not_a_panic() {
    let build = |path: &str| {
        Receiver::builder()
            .secrets(SecretSet::single(testing::SECRET).unwrap())
            .store(passfort_receiver::testing::UnavailableStore)
            .path(path)
            .build()
    };
    for bad in [
        "/a/*rest", "/a/{x", "/a/{id}", "/a/:id", "/{*all}", "no-slash",
    ] {
        assert_eq!(
            build(bad).unwrap_err(),
            passfort_receiver::http::ReceiverBuildError::BadPath(bad.to_owned()),
            "{bad}"
        );
    }
    for good in [
        "/",
        "/webhooks/passfort",
        "/hooks/v1:passfort",
        "/a-b_c.d~e",
    ] {
        let receiver = build(good).unwrap();
        let _ = receiver.router();
    }
}

#[tokio::test]
async fn a_deadline_too_far_to_be_a_time_is_no_deadline_not_a_panic() {
    let t = target_with(|b| {
        b.single_deadline(Duration::MAX)
            .batch_deadline(Duration::MAX)
    })
    .await;
    let single = testing::check_completed();
    let response = post(&t.url, Some(testing::SECRET), single.json().to_string()).await;
    assert_eq!(response.status(), 200);
    let hooks = batch(2);
    let response = post(
        &t.url,
        Some(testing::SECRET),
        testing::batch_body(&hooks).to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut expected = vec![single.get_id().to_owned()];
    expected.extend(ids(&hooks));
    assert_eq!(stored(&t.store).await, expected);
}

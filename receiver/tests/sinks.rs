//! The built-in sinks hand on the webhook as received minus `secret`, and the `http:` sink
//! never forwards an `Authorization` header.

use passfort_receiver::sink::{HttpSink, JsonlSink, Sink};
use passfort_receiver::testing;
use passfort_receiver::{Handler, Job};
use serde_json::Value;
use std::time::SystemTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn job(hook: &testing::WebhookBuilder) -> Job {
    let webhook = hook.webhook();
    Job {
        event: webhook.event(),
        webhook,
        attempt: 1,
        seq: 1,
        received_at: SystemTime::now(),
    }
}

fn without_secret(hook: &testing::WebhookBuilder) -> Value {
    let mut v = hook.json();
    v.as_object_mut().unwrap().remove("secret");
    v
}

#[tokio::test]
async fn http_sink_posts_the_json_without_authorization_and_needs_a_2xx() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/down"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let hook = testing::product_status_changed();
    let sink: Sink = format!("http:{}/ok", server.uri()).parse().unwrap();
    sink.open()
        .await
        .unwrap()
        .handle(&job(&hook))
        .await
        .unwrap();
    let failing = HttpSink::new(format!("{}/down", server.uri())).unwrap();
    let err = failing.handle(&job(&hook)).await.unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert!(
            request.headers.get("authorization").is_none(),
            "Authorization forwarded"
        );
        assert_eq!(
            request.headers.get("content-type").unwrap(),
            "application/json"
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, without_secret(&hook));
        assert!(!String::from_utf8_lossy(&request.body).contains(testing::SECRET));
    }
}

#[tokio::test]
async fn jsonl_sink_writes_one_line_per_webhook_and_never_the_same_last_one_twice() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let hooks = [
        testing::check_completed(),
        testing::unknown_event("NEW_THING"),
    ];
    let sink = JsonlSink::open(&file).unwrap();
    for hook in &hooks {
        sink.handle(&job(hook)).await.unwrap();
    }
    // A crash after writing the last line but before it was marked done: it comes again.
    drop(sink);
    let reopened = JsonlSink::open(&file).unwrap();
    reopened.handle(&job(&hooks[1])).await.unwrap();
    let next = testing::manual_action_required();
    reopened.handle(&job(&next)).await.unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            without_secret(&hooks[0]),
            without_secret(&hooks[1]),
            without_secret(&next)
        ]
    );
    for line in &lines {
        let mut keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["data", "event", "id", "timestamp"]);
    }
}

#[tokio::test]
async fn exec_sink_success_is_exit_zero() {
    let hook = testing::check_completed();
    let ok: Sink = "exec:cat > /dev/null".parse().unwrap();
    ok.open().await.unwrap().handle(&job(&hook)).await.unwrap();
    let failing: Sink = "exec:cat > /dev/null; exit 1".parse().unwrap();
    assert!(failing
        .open()
        .await
        .unwrap()
        .handle(&job(&hook))
        .await
        .is_err());
}

#[tokio::test]
async fn http_sink_credentials_never_reach_its_errors_or_its_name() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let hook = testing::check_completed();
    let with_credentials =
        |base: &str| base.replacen("http://", "http://relay:sink-password-123@", 1) + "/down";
    let answering = with_credentials(&server.uri());
    // Port 9 (discard) is closed on loopback: a connection error, which names the URL too.
    let refusing = with_credentials("http://127.0.0.1:9");
    for url in [answering, refusing] {
        let sink: Sink = format!("http:{url}").parse().unwrap();
        let shown = sink.to_string();
        assert!(!shown.contains("sink-password-123"), "{shown}");
        assert!(shown.contains("relay@"), "{shown}");
        let err = sink
            .open()
            .await
            .unwrap()
            .handle(&job(&hook))
            .await
            .unwrap_err();
        let message = format!("{err} {err:?}");
        assert!(!message.contains("sink-password-123"), "{message}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

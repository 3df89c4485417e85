//! An endpoint that cannot be held open, over real sockets: more half-sent requests than the
//! cap, then a real webhook, answered 200 without waiting for any limit; the half-sent ones
//! evicted or closed by the request time limit; idle keep-alive connections closed; a new
//! connection shed at once when every connection is being answered.
//!
//! The limits run on a `VirtualClock` the test drives: nothing sleeps and nothing is timed. A
//! connection closed by the server is seen as end-of-file (or a reset) on the client's read.

use axum::routing::post;
use axum::Router;
use passfort_clock::VirtualClock;
use passfort_receiver::connection_limits::{self, ConnectionLimits};
use passfort_receiver::testing::{self, SECRET};
use passfort_receiver::{Receiver, SecretSet, SqliteStore, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

const LIMITS: ConnectionLimits = ConnectionLimits {
    request_time: Duration::from_secs(10),
    idle_time: Duration::from_secs(60),
    max_connections: 4,
};

async fn start(router: Router, clock: &VirtualClock) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let clock = Arc::new(clock.clone());
    tokio::spawn(connection_limits::serve(
        listener,
        router,
        LIMITS,
        clock,
        std::future::pending(),
    ));
    addr
}

/// Headers promising a 1000-byte body, and the start of it: a request that never completes.
async fn half_sent(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /webhooks/passfort HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                 authorization: Bearer {SECRET}\r\ncontent-length: 1000\r\n\r\n{{\"id\": \"half"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream
}

/// Waits until the server has closed `stream` (end of file or reset); panics on data.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    match stream.read(&mut buf).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!(
            "expected the server to close, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

/// Sends one complete request on `stream` (keep-alive) and reads its answer: (status, body).
async fn request(stream: &mut TcpStream, addr: SocketAddr, body: &str) -> (u16, String) {
    stream
        .write_all(
            format!(
                "POST /webhooks/passfort HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                 authorization: Bearer {SECRET}\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    read_response(stream).await
}

async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before a full answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, body.to_owned());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_cannot_keep_a_webhook_out() {
    let clock = VirtualClock::new();
    let store = SqliteStore::in_memory().await.unwrap();
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(SECRET).unwrap())
        .store(store)
        .clock(clock.clone())
        .build()
        .unwrap();
    let addr = start(receiver.router(), &clock).await;

    // Ten half-sent requests against a cap of four: each new one evicts the oldest.
    let mut flood = Vec::new();
    for _ in 0..10 {
        flood.push(half_sent(addr).await);
    }
    for stream in &mut flood[..6] {
        closed_by_server(stream).await;
    }

    // A real webhook: it evicts the oldest half-sent one and is answered at once, with the
    // virtual clock never moved, so no limit had to pass first.
    let hook = testing::check_completed();
    let mut passfort = TcpStream::connect(addr).await.unwrap();
    let (status, answer) = request(&mut passfort, addr, &hook.json().to_string()).await;
    assert_eq!(status, 200, "{answer}");
    closed_by_server(&mut flood[6]).await;
    let stored: Vec<String> = receiver
        .store()
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.webhook.id)
        .collect();
    assert_eq!(stored, vec![hook.get_id().to_owned()]);

    // The three still open are closed by the request time limit.
    clock.advance(LIMITS.request_time);
    for stream in &mut flood[7..] {
        closed_by_server(stream).await;
    }

    // PassFort's keep-alive connection was idle for 10 s only: it still works...
    let second = testing::check_completed();
    let (status, _) = request(&mut passfort, addr, &second.json().to_string()).await;
    assert_eq!(status, 200);
    // ...until it idles past the idle limit.
    clock.advance(LIMITS.idle_time);
    closed_by_server(&mut passfort).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off_even_while_bytes_trickle_in() {
    let clock = VirtualClock::new();
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(SECRET).unwrap())
        .store(SqliteStore::in_memory().await.unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let addr = start(receiver.router(), &clock).await;
    let mut slow = half_sent(addr).await;
    // The server has accepted it once its limit waits on the clock.
    while clock.sleepers() == 0 {
        tokio::task::yield_now().await;
    }
    // A byte now and then does not reset the limit: it counts from the request's first byte.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(3));
        slow.write_all(b" ").await.unwrap();
    }
    clock.advance(Duration::from_secs(1));
    closed_by_server(&mut slow).await;
    assert!(receiver.store().entries().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_with_every_connection_answering_a_new_one_is_shed_at_once() {
    let clock = VirtualClock::new();
    let release = Arc::new(Notify::new());
    let (entered_tx, mut entered) = mpsc::unbounded_channel::<()>();
    let router = Router::new().route(
        "/webhooks/passfort",
        post({
            let release = release.clone();
            // Reads its whole body first, as the receiver does: the request is complete.
            move |_body: String| {
                let release = release.clone();
                let entered = entered_tx.clone();
                async move {
                    let _ = entered.send(());
                    release.notified().await;
                    "done"
                }
            }
        }),
    );
    let addr = start(router, &clock).await;
    let mut busy = Vec::new();
    for _ in 0..LIMITS.max_connections {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("POST /webhooks/passfort HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 2\r\n\r\n{{}}")
                    .as_bytes(),
            )
            .await
            .unwrap();
        entered.recv().await.unwrap();
        busy.push(stream);
    }
    // Every connection has a complete request in the handler: none may be evicted.
    let mut shed = TcpStream::connect(addr).await.unwrap();
    let mut answer = Vec::new();
    shed.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.ends_with("{\"error\":\"too many connections\"}"),
        "{answer}"
    );
    // The ones being answered were not disturbed.
    for _ in 0..LIMITS.max_connections {
        release.notify_one();
    }
    for stream in &mut busy {
        let (status, body) = read_response(stream).await;
        assert_eq!((status, body.as_str()), (200, "done"));
    }
}

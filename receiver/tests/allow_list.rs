//! The IP allow-list over real sockets: clients bound to loopback aliases (127.0.0.2, …), a
//! trusted proxy in front (a client bound to the proxy's address that forwards), and a forged
//! `X-Forwarded-For` from an untrusted peer. A refused request gets 403 before its body is
//! read, stores nothing, and is counted.

mod common;

use passfort_receiver::testing::{self, SECRET};
use passfort_receiver::{AllowList, Receiver, SecretSet, SqliteStore, Store, TrustedProxies};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

async fn start(allow: &str, proxies: Option<&str>) -> (SocketAddr, Receiver) {
    let mut builder = Receiver::builder()
        .secrets(SecretSet::single(SECRET).unwrap())
        .store(SqliteStore::in_memory().await.unwrap())
        .allow_list(allow.parse::<AllowList>().unwrap());
    if let Some(proxies) = proxies {
        builder = builder.trust_proxies(proxies.parse::<TrustedProxies>().unwrap());
    }
    let receiver = builder.build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = receiver
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, receiver)
}

/// A connection to `server` from the loopback alias `from`.
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// Sends `head` (request line and headers, without the blank line) and `body`, reads the whole
/// answer (the request says `connection: close`), returns (status, body).
async fn exchange(stream: &mut TcpStream, head: &str, body: &[u8]) -> (u16, String) {
    stream
        .write_all(format!("{head}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
    read_answer(stream).await
}

async fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn webhook_head(server: SocketAddr, body: &[u8], extra: &str) -> String {
    format!(
        "POST /webhooks/passfort HTTP/1.1\r\nhost: {server}\r\ncontent-type: application/json\r\n\
         authorization: Bearer {SECRET}\r\ncontent-length: {}{extra}",
        body.len()
    )
}

async fn post_from(from: &str, server: SocketAddr, extra: &str) -> (u16, String, String) {
    let hook = testing::check_completed();
    let body = hook.json().to_string().into_bytes();
    let mut stream = connect_from(from, server).await;
    let (status, answer) = exchange(&mut stream, &webhook_head(server, &body, extra), &body).await;
    (status, answer, hook.get_id().to_owned())
}

async fn stored_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .store()
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.webhook.id)
        .collect()
}

#[tokio::test]
async fn only_listed_addresses_may_post_and_refusals_read_no_body() {
    let (server, receiver) = start("127.0.0.2, 127.0.1.0/24", None).await;

    let (status, _, allowed) = post_from("127.0.0.2", server, "").await;
    assert_eq!(status, 200);
    let (status, _, in_cidr) = post_from("127.0.1.77", server, "").await;
    assert_eq!(status, 200);

    let (status, answer, refused) = post_from("127.0.0.4", server, "").await;
    assert_eq!(status, 403);
    let error: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("127.0.0.4"),
        "{answer}"
    );

    // Before the body is read: the refusal comes although only the headers were sent.
    let mut stream = connect_from("127.0.0.4", server).await;
    let head = webhook_head(server, &[0; 4096], "");
    stream
        .write_all(format!("{head}\r\nconnection: close\r\n\r\n{{\"id\":").as_bytes())
        .await
        .unwrap();
    let (status, _) = read_answer(&mut stream).await;
    assert_eq!(status, 403, "answered with 4 KiB of body still unsent");

    assert_eq!(stored_ids(&receiver).await, vec![allowed, in_cidr]);
    assert!(!stored_ids(&receiver).await.contains(&refused));
    assert_eq!(receiver.metrics().rejected("ip"), 2);

    // Load balancers probe from anywhere.
    let mut stream = connect_from("127.0.0.4", server).await;
    let (status, _) = exchange(
        &mut stream,
        &format!("GET /healthz HTTP/1.1\r\nhost: {server}"),
        b"",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_checked() {
    // 127.0.0.3 is the proxy; PassFort (here 127.0.0.2) reaches us through it.
    let (server, receiver) = start("127.0.0.2", Some("127.0.0.3")).await;

    let (status, _, through_proxy) = post_from(
        "127.0.0.3",
        server,
        "\r\nx-forwarded-for: 127.0.0.9, 127.0.0.2",
    )
    .await;
    assert_eq!(
        status, 200,
        "right-most untrusted hop is the allowed client"
    );

    let (status, _, _) = post_from("127.0.0.3", server, "\r\nx-forwarded-for: 127.0.0.9").await;
    assert_eq!(status, 403, "a stranger behind the proxy");

    let (status, _, _) = post_from(
        "127.0.0.3",
        server,
        "\r\nx-forwarded-for: 127.0.0.2, 127.0.0.9",
    )
    .await;
    assert_eq!(status, 403, "a stranger cannot prepend an allowed address");

    let (status, _, _) = post_from(
        "127.0.0.3",
        server,
        "\r\nforwarded: for=127.0.0.2;proto=https",
    )
    .await;
    assert_eq!(status, 200, "RFC 7239 Forwarded");

    let (status, _, _) = post_from("127.0.0.3", server, "").await;
    assert_eq!(
        status, 403,
        "the proxy itself is not PassFort when it forwards nothing"
    );

    assert_eq!(stored_ids(&receiver).await.len(), 2);
    assert!(stored_ids(&receiver).await.contains(&through_proxy));
    assert_eq!(receiver.metrics().rejected("ip"), 3);
}

#[tokio::test]
async fn a_forged_forwarding_header_from_an_untrusted_peer_is_ignored() {
    let (server, receiver) = start("127.0.0.2", Some("127.0.0.3")).await;
    let (status, answer, _) = post_from(
        "127.0.0.4",
        server,
        "\r\nx-forwarded-for: 127.0.0.2\r\nforwarded: for=127.0.0.2",
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer.contains("127.0.0.4"),
        "names the real peer: {answer}"
    );
    assert!(stored_ids(&receiver).await.is_empty());

    // With no trusted proxy at all, the headers are ignored even from an allowed peer's
    // neighbour.
    let (server, _) = start("127.0.0.2", None).await;
    let (status, _, _) = post_from("127.0.0.5", server, "\r\nx-forwarded-for: 127.0.0.2").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn without_the_client_address_an_allow_list_fails_closed() {
    // Served without connect info: the client cannot be known, so nothing gets in.
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(SECRET).unwrap())
        .store(SqliteStore::in_memory().await.unwrap())
        .allow_list(AllowList::passfort())
        .build()
        .unwrap();
    let addr = common::serve(receiver.router()).await;
    let hook = testing::check_completed();
    let response = common::post(
        &format!("http://{addr}/webhooks/passfort"),
        Some(SECRET),
        hook.json().to_string(),
    )
    .await;
    assert_eq!(response.status(), 403);
    assert!(receiver.store().entries().await.unwrap().is_empty());
}

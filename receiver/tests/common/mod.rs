//! Helpers shared by the receiver's integration tests.
#![allow(dead_code)]

use passfort_receiver::store::{SharedStore, SqliteStore};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The golden fixtures, hand-written from the spec.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures"))
}

/// The secret every fixture carries.
pub const FIXTURE_SECRET: &str = "fixture-shared-secret";

pub fn fixture(name: &str) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A fresh SQLite store in `dir`.
pub async fn sqlite_in(dir: &Path, name: &str) -> (SharedStore, String) {
    let url = format!("sqlite://{}/{name}.db", dir.display());
    let store: SharedStore = Arc::new(SqliteStore::open(&url).await.unwrap());
    (store, url)
}

/// Serves `router` on an ephemeral loopback port.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// POSTs `body` with `Authorization: Bearer {bearer}` (when given).
pub async fn post(
    url: &str,
    bearer: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(secret) = bearer {
        request = request.header("authorization", format!("Bearer {secret}"));
    }
    request.send().await.unwrap()
}

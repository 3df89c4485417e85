//! Small axum receivers for the harness's own tests: one correct reference receiver, in memory,
//! writing the observe JSONL, and deliberately broken variants of it, each with one flaw a real
//! integrator's receiver might have.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header::AUTHORIZATION, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use passfort_sender_sim::EventType;
use serde_json::Value;
use subtle::ConstantTimeEq;

/// The shared secret every test receiver expects.
pub const SECRET: &str = "test-shared-secret";

/// The one thing a test receiver gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// None: the reference receiver.
    None,
    /// Never looks at `Authorization` (checks the body secrets only).
    SkipsHeaderCheck,
    /// Answers `202 Accepted` instead of 200 to everything it accepts.
    Answers202,
    /// Answers `202 Accepted` to everything, forgeries included, and processes only what it
    /// verified: the answer alone already says "accepted".
    Answers202EvenToForgeries,
    /// Processes every delivery, redeliveries included.
    ProcessesDuplicates,
    /// Stores and processes a batch, then takes this long per webhook before answering.
    SlowOnBatches(Duration),
    /// Answers 422 to an `event` it does not know.
    RejectsUnknownEvents,
    /// Processes each batch's webhooks in reverse order.
    Reorders,
    /// Hands on (writes to the observe file) the whole webhook, `secret` included.
    ForwardsSecret,
}

struct App {
    flaw: Flaw,
    processed: Mutex<Processed>,
}

struct Processed {
    seen: HashSet<String>,
    file: std::fs::File,
}

/// A running test receiver.
pub struct Receiver {
    /// Its webhook URL.
    pub url: String,
    /// The observe file it appends `{"id", "event"}` to for each webhook it processes.
    pub observe: PathBuf,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts a receiver with `flaw` on a free local port.
pub async fn start(flaw: Flaw) -> Receiver {
    let dir = tempfile::tempdir().unwrap();
    let observe = dir.path().join("processed.jsonl");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&observe)
        .unwrap();
    let app = Arc::new(App {
        flaw,
        processed: Mutex::new(Processed {
            seen: HashSet::new(),
            file,
        }),
    });
    let router = Router::new()
        .route("/webhooks/passfort", post(hook))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Receiver {
        url: format!("http://{addr}/webhooks/passfort"),
        observe,
        _dir: dir,
        server,
    }
}

fn secret_matches(candidate: &str) -> bool {
    candidate.as_bytes().ct_eq(SECRET.as_bytes()).into()
}

async fn hook(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if app.flaw == Flaw::Answers202EvenToForgeries {
        return answer_202_after_verifying(&app, &headers, &body);
    }
    if app.flaw != Flaw::SkipsHeaderCheck {
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !bearer.is_some_and(secret_matches) {
            return StatusCode::UNAUTHORIZED;
        }
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let (mut webhooks, batched) = match value {
        Value::Array(items) => (items, true),
        object @ Value::Object(_) => (vec![object], false),
        _ => return StatusCode::BAD_REQUEST,
    };
    for webhook in &webhooks {
        if !webhook["secret"].as_str().is_some_and(secret_matches) {
            return StatusCode::UNAUTHORIZED;
        }
        if !webhook["id"].is_string() {
            return StatusCode::BAD_REQUEST;
        }
        if app.flaw == Flaw::RejectsUnknownEvents
            && !EventType::KNOWN
                .iter()
                .any(|known| known.as_str() == webhook["event"].as_str().unwrap_or_default())
        {
            return StatusCode::UNPROCESSABLE_ENTITY;
        }
    }
    if app.flaw == Flaw::Reorders && batched {
        webhooks.reverse();
    }
    {
        let mut processed = app.processed.lock().unwrap();
        for webhook in &webhooks {
            let id = webhook["id"].as_str().unwrap_or_default().to_owned();
            let fresh = processed.seen.insert(id.clone());
            if !fresh && app.flaw != Flaw::ProcessesDuplicates {
                continue;
            }
            let line = if app.flaw == Flaw::ForwardsSecret {
                webhook.clone()
            } else {
                serde_json::json!({"id": id, "event": webhook["event"]})
            };
            writeln!(processed.file, "{line}").unwrap();
        }
        processed.file.flush().unwrap();
    }
    if let Flaw::SlowOnBatches(per_webhook) = app.flaw {
        if batched {
            // The flaw itself: per-webhook work before answering, so a batch answers after
            // `per_webhook × len`, well past the small limit the test configures.
            tokio::time::sleep(per_webhook * webhooks.len() as u32).await;
        }
    }
    if app.flaw == Flaw::Answers202 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

/// The [`Flaw::Answers202EvenToForgeries`] receiver: verifies like the reference, processes only
/// what verified, and answers 202 whatever happened.
fn answer_202_after_verifying(app: &App, headers: &HeaderMap, body: &Bytes) -> StatusCode {
    let bearer_ok = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(secret_matches);
    let webhooks = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(object @ Value::Object(_)) => vec![object],
        _ => return StatusCode::ACCEPTED,
    };
    let bodies_ok = webhooks
        .iter()
        .all(|webhook| webhook["secret"].as_str().is_some_and(secret_matches));
    if bearer_ok && bodies_ok {
        let mut processed = app.processed.lock().unwrap();
        for webhook in &webhooks {
            let id = webhook["id"].as_str().unwrap_or_default().to_owned();
            if processed.seen.insert(id.clone()) {
                let line = serde_json::json!({"id": id, "event": webhook["event"]});
                writeln!(processed.file, "{line}").unwrap();
            }
        }
        processed.file.flush().unwrap();
    }
    StatusCode::ACCEPTED
}

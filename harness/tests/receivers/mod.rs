//! Small axum receivers for the harness's own tests: one correct reference receiver, in memory,
//! writing the observe JSONL, and deliberately broken variants of it, each with one flaw a real
//! integrator's receiver might have.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header::AUTHORIZATION, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use passfort_clock::{Clock, Sleep};
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
    /// Stores and processes a single (unbatched) webhook, then takes this long before answering.
    SlowOnSingles(Duration),
    /// Answers 200 to every authentic request and never processes anything.
    NeverProcesses,
    /// Loses one webhook in this many: answers 200 for it, remembers its id, never processes it.
    LosesOneIn(usize),
    /// Deduplicates on the `id` found while the body is still arriving, before the webhook is
    /// whole, so a request cut off halfway makes the whole webhook sent next look like a
    /// redelivery that is skipped.
    RemembersCutRequests,
    /// Gives up on a body that has not fully arrived after this long, answering 408.
    BodyReadTimeout(Duration),
    /// Checks the body `secret` of a batch's first element only.
    ChecksFirstSecretOnly,
    /// Checks no secret at all: answers 200 to a forged request and processes it.
    ProcessesForgeries,
}

struct App {
    flaw: Flaw,
    processed: Mutex<Processed>,
}

struct Processed {
    seen: HashSet<String>,
    /// Ids whose request began to arrive ([`Flaw::RemembersCutRequests`]).
    arrived: HashSet<String>,
    fresh: usize,
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
            arrived: HashSet::new(),
            fresh: 0,
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

/// The body, read as the flaw says; `Err` is the answer when it cannot be read.
async fn read_body(app: &App, body: Body) -> Result<Bytes, StatusCode> {
    match app.flaw {
        Flaw::BodyReadTimeout(limit) => {
            match tokio::time::timeout(limit, axum::body::to_bytes(body, usize::MAX)).await {
                Ok(Ok(bytes)) => Ok(bytes),
                Ok(Err(_)) => Err(StatusCode::BAD_REQUEST),
                Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
            }
        }
        Flaw::RemembersCutRequests => {
            let mut stream = body.into_data_stream();
            let mut read = Vec::new();
            let mut remembered = false;
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else {
                    return Err(StatusCode::BAD_REQUEST);
                };
                read.extend_from_slice(&chunk);
                if !remembered {
                    // The flaw: deduplicating on the id's arrival, before the webhook is whole, let
                    // alone stored: an id that arrived before counts as done.
                    if let Some(id) = id_in_partial_json(&read) {
                        let mut processed = app.processed.lock().unwrap();
                        if !processed.arrived.insert(id.clone()) {
                            processed.seen.insert(id);
                        }
                        remembered = true;
                    }
                }
            }
            Ok(Bytes::from(read))
        }
        _ => axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|_| StatusCode::BAD_REQUEST),
    }
}

/// The value of the first `"id":"…"` in the bytes read so far.
fn id_in_partial_json(read: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(read);
    let start = text.find("\"id\":\"")? + "\"id\":\"".len();
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_owned())
}

async fn hook(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> StatusCode {
    let body = match read_body(&app, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    if app.flaw == Flaw::Answers202EvenToForgeries {
        return answer_202_after_verifying(&app, &headers, &body);
    }
    let forgeries_pass = app.flaw == Flaw::ProcessesForgeries;
    if app.flaw != Flaw::SkipsHeaderCheck && !forgeries_pass {
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
    for (index, webhook) in webhooks.iter().enumerate() {
        let checked = !forgeries_pass && (index == 0 || app.flaw != Flaw::ChecksFirstSecretOnly);
        if checked && !webhook["secret"].as_str().is_some_and(secret_matches) {
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
            processed.fresh += 1;
            if app.flaw == Flaw::NeverProcesses {
                continue;
            }
            if let Flaw::LosesOneIn(n) = app.flaw {
                if processed.fresh % n == 0 {
                    continue;
                }
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
    if let Flaw::SlowOnSingles(wait) = app.flaw {
        if !batched {
            tokio::time::sleep(wait).await;
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

/// A [`Clock`] reading tokio's clock, which `start_paused` tests drive.
#[derive(Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    origin_wall: SystemTime,
}

impl TokioClock {
    /// A clock reading tokio's, starting at the simulator's usual instant.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            origin_wall: SystemTime::UNIX_EPOCH
                + Duration::from_secs(passfort_clock::VirtualClock::DEFAULT_START_UNIX_SECS),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.origin_wall + self.origin.elapsed()
    }

    fn sleep_until(&self, deadline: SystemTime) -> Sleep {
        let wait = deadline
            .duration_since(self.now())
            .unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

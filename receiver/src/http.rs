//! The HTTP side: verify, commit inside a deadline, answer.
//!
//! [`Receiver::router`] is an [`axum::Router`] serving the webhook path (default
//! `/webhooks/passfort`) and `GET /healthz`; `nest` or `merge` it into any app, or use it
//! directly as a `tower::Service`. [`Receiver::admin_router`] serves the admin page, `GET /metrics` and
//! `GET /status`, meant for a separate, private address.
//!
//! # The answer, step by step
//!
//! 1. [`verify`]: 401, 413 or 400 (the body is not even read when the bearer
//!    secret is wrong).
//! 2. The store stages the request in one transaction, on a separate task (a dropped connection
//!    cannot cut a commit in half), with a deadline on the receiver's [`Clock`]: the batch
//!    deadline (default 2 s) for an array, the single deadline (default 4 s) for one object,
//!    both counted from the moment the request arrived. A body that was slow to arrive (a
//!    congested network) moves the deadline to that much after it was whole, but never past
//!    PassFort's own limit (5 s, 10 s) from the request's arrival: a slow upload PassFort still
//!    waits for is stored, not refused. If staging fails or the deadline passes
//!    first, the transaction is rolled back and the answer is 503. Only then is it committed;
//!    the answer is 200 once the commit is on disk. Once the commit has started it is never
//!    abandoned, so there is no stored-but-unacknowledged request either way.
//!
//! ```no_run
//! use axum::Router;
//! use passfort_receiver::{Receiver, SecretSet, SqliteStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = Receiver::builder()
//!     .secrets(SecretSet::new(["new-secret", "previous-secret"])?)
//!     .store(SqliteStore::open("sqlite://passfort-webhooks.db").await?)
//!     .build()?;
//! let app = Router::new()
//!     .nest("/integrations", receiver.router()) // POST /integrations/webhooks/passfort
//!     .route("/", axum::routing::get(|| async { "my app" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

use crate::allow_list::{AllowList, AllowListLayer, TrustedProxies};
use crate::batch::{Batch, Shape};
use crate::metrics::Metrics;
use crate::secret::SecretSet;
use crate::status::WriteFailure;
use crate::store::{InsertOutcome, SharedStore, Store, StoreError};
use crate::verify::{self, Rejection, Verified};
use crate::worker::Wakeup;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use passfort_clock::{timeout, Clock, SharedClock, SystemClock};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The default webhook path.
pub const DEFAULT_PATH: &str = "/webhooks/passfort";
/// The default body size limit: 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Default store deadline for a batch (array): well inside PassFort's 5 s.
pub const DEFAULT_BATCH_DEADLINE: Duration = Duration::from_secs(2);
/// Default store deadline for a single webhook: well inside PassFort's 10 s.
pub const DEFAULT_SINGLE_DEADLINE: Duration = Duration::from_secs(4);

/// Why a receiver could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiverBuildError {
    /// No accepted secrets were given.
    #[error("a receiver needs accepted secrets")]
    MissingSecrets,
    /// No store was given.
    #[error("a receiver needs a store")]
    MissingStore,
    /// The webhook path does not start with `/`, or is not a literal path (a `{…}`, `:…` or
    /// `*…` segment would be a route pattern, which the router refuses).
    #[error(
        "the webhook path must start with '/' and be literal (no {{…}}, :… or *… segment): {0:?}"
    )]
    BadPath(String),
}

/// Builds a [`Receiver`]; see [`Receiver::builder`].
#[derive(Default)]
pub struct ReceiverBuilder {
    secrets: Option<SecretSet>,
    store: Option<SharedStore>,
    clock: Option<SharedClock>,
    body_limit: Option<usize>,
    batch_deadline: Option<Duration>,
    single_deadline: Option<Duration>,
    path: Option<String>,
    metrics: Option<Metrics>,
    wakeup: Option<Wakeup>,
    allow_list: AllowList,
    trusted_proxies: TrustedProxies,
    admin: crate::admin::Settings,
}

impl ReceiverBuilder {
    /// The accepted secrets (several during a rotation).
    pub fn secrets(mut self, secrets: SecretSet) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Where acknowledged webhooks go.
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Where acknowledged webhooks go, already shared (e.g. with a worker).
    pub fn shared_store(mut self, store: SharedStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock deadlines are measured on (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The clock, already shared.
    pub fn shared_clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The largest body accepted, in bytes (default 16 MiB); larger ones get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// The store deadline for an array body (default 2 s; PassFort waits 5 s).
    pub fn batch_deadline(mut self, deadline: Duration) -> Self {
        self.batch_deadline = Some(deadline);
        self
    }

    /// The store deadline for a single-object body (default 4 s; PassFort waits 10 s).
    pub fn single_deadline(mut self, deadline: Duration) -> Self {
        self.single_deadline = Some(deadline);
        self
    }

    /// The webhook path inside [`Receiver::router`] (default `/webhooks/passfort`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Counters to record into (default: fresh ones on the receiver's clock, see
    /// [`Receiver::metrics`]).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The signal to wake an in-process worker with (default: a fresh one, see
    /// [`Receiver::wakeup`]).
    pub fn wakeup(mut self, wakeup: Wakeup) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// Who may post to the webhook path (default: everyone); others get 403 before their
    /// body is read. `GET /healthz` stays open to everyone. See [`crate::allow_list`].
    pub fn allow_list(mut self, allowed: AllowList) -> Self {
        self.allow_list = allowed;
        self
    }

    /// The proxies whose `X-Forwarded-For` / `Forwarded` headers name the client (default:
    /// none, and the headers are ignored).
    pub fn trust_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The token that unlocks the actions of [`Receiver::admin_router`] (retry, drop, replay);
    /// without one the admin page is read-only.
    pub fn admin_token(mut self, token: crate::admin::AdminToken) -> Self {
        self.admin.access = crate::admin::Access::Token(token);
        self
    }

    /// Where the admin page's **Replay** hands stored webhooks (the binary: its `--sink`);
    /// without one, replay is not offered on the admin address.
    pub fn replay_to(mut self, handler: std::sync::Arc<dyn crate::Handler>) -> Self {
        self.admin.replay = Some(handler);
        self
    }

    /// The receiver, or what is missing.
    pub fn build(self) -> Result<Receiver, ReceiverBuildError> {
        let path = self.path.unwrap_or_else(|| DEFAULT_PATH.to_owned());
        if !is_literal_path(&path) {
            return Err(ReceiverBuildError::BadPath(path));
        }
        let clock: SharedClock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        Ok(Receiver {
            inner: Arc::new(Inner {
                secrets: self.secrets.ok_or(ReceiverBuildError::MissingSecrets)?,
                store: self.store.ok_or(ReceiverBuildError::MissingStore)?,
                metrics: self
                    .metrics
                    .unwrap_or_else(|| Metrics::with_clock(clock.clone())),
                clock,
                body_limit: self.body_limit.unwrap_or(DEFAULT_BODY_LIMIT),
                batch_deadline: self.batch_deadline.unwrap_or(DEFAULT_BATCH_DEADLINE),
                single_deadline: self.single_deadline.unwrap_or(DEFAULT_SINGLE_DEADLINE),
                path,
                wakeup: self.wakeup.unwrap_or_default(),
                allow_list: self.allow_list,
                write_failure: Mutex::new(None),
                trusted_proxies: self.trusted_proxies,
                admin: self.admin,
            }),
        })
    }
}

/// Whether `path` is one the router takes as a literal path: axum panics on a pattern it cannot
/// parse (`/a/{x`, `/a/*rest`, `/a/:id`), and a valid pattern would accept paths PassFort is
/// not configured to post to.
fn is_literal_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains(['{', '}'])
        && path
            .split('/')
            .all(|segment| !segment.starts_with([':', '*']))
}

struct Inner {
    secrets: SecretSet,
    store: SharedStore,
    clock: SharedClock,
    body_limit: usize,
    batch_deadline: Duration,
    single_deadline: Duration,
    path: String,
    metrics: Metrics,
    wakeup: Wakeup,
    allow_list: AllowList,
    trusted_proxies: TrustedProxies,
    admin: crate::admin::Settings,
    /// The last store write that failed, until one succeeds: a full disk fails every write
    /// while reads (`ping`) still work, so `/healthz` and `/status` must be told.
    write_failure: Mutex<Option<WriteFailure>>,
}

/// Receives PassFort webhooks over HTTP. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("path", &self.inner.path)
            .field("secrets", &self.inner.secrets)
            .field("store", &self.inner.store)
            .field("body_limit", &self.inner.body_limit)
            .field("batch_deadline", &self.inner.batch_deadline)
            .field("single_deadline", &self.inner.single_deadline)
            .finish()
    }
}

/// The answer to an accepted request (the body of the 200).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Accepted {
    /// Webhooks in the request.
    pub received: usize,
    /// Newly stored.
    pub stored: usize,
    /// Already stored, skipped.
    pub duplicates: usize,
    /// Same id with a different body, kept out.
    pub conflicts: usize,
}

/// Why an authentic request was answered 503.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The store failed.
    #[error("store unavailable")]
    Store(#[source] StoreError),
    /// Staging did not finish inside the deadline; rolled back.
    #[error("store deadline of {0:?} missed")]
    Deadline(Duration),
    /// The task committing the request failed (it panicked); nothing was committed.
    #[error("store unavailable")]
    Task,
}

impl Unavailable {
    /// A short label for metrics and logs (`store_unavailable`, `deadline`).
    pub fn reason(&self) -> &'static str {
        match self {
            Unavailable::Store(_) | Unavailable::Task => "store_unavailable",
            Unavailable::Deadline(_) => "deadline",
        }
    }
}

impl IntoResponse for Unavailable {
    fn into_response(self) -> Response {
        error(StatusCode::SERVICE_UNAVAILABLE, &self.to_string())
    }
}

impl Inner {
    fn write_failure(&self) -> Option<WriteFailure> {
        self.write_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_write_failure(&self, failure: Option<WriteFailure>) {
        let mut current = self.write_failure.lock().unwrap_or_else(|p| p.into_inner());
        match (&*current, failure) {
            // Keep when the outage started.
            (Some(_), Some(_)) => {}
            (_, next) => *current = next,
        }
    }
}

impl Receiver {
    /// Starts building a receiver.
    pub fn builder() -> ReceiverBuilder {
        ReceiverBuilder::default()
    }

    /// The webhook path and `GET /healthz`, to serve, `nest` or `merge`.
    ///
    /// With an allow-list, the webhook path needs the client's address: serve the router with
    /// `into_make_service_with_connect_info::<SocketAddr>()` (as `passfort-receiver serve` does),
    /// or every request is refused.
    pub fn router(&self) -> Router {
        let inner = &self.inner;
        let webhook = if inner.allow_list.is_everyone() {
            any(receive)
        } else {
            any(receive).layer(
                AllowListLayer::new(inner.allow_list.clone())
                    .trust_proxies(inner.trusted_proxies.clone())
                    .metrics(inner.metrics.clone()),
            )
        };
        Router::new()
            .route(&self.inner.path, webhook)
            .route("/healthz", get(healthz))
            .with_state(self.clone())
    }

    /// The admin page (`GET /`), its JSON API, `GET /metrics` (Prometheus text) and
    /// `GET /status` (JSON), for a private address; see [`crate::admin`].
    pub fn admin_router(&self) -> Router {
        crate::admin::router(self.clone(), self.inner.admin.clone())
    }

    /// The store requests are committed to.
    pub fn store(&self) -> SharedStore {
        self.inner.store.clone()
    }

    /// The clock deadlines are measured on.
    pub fn clock(&self) -> SharedClock {
        self.inner.clock.clone()
    }

    /// Set while the store cannot write (a full disk): the last failed write and since when,
    /// cleared by the next write that succeeds. `/healthz` and `/status` report it.
    pub(crate) fn write_failure(&self) -> Option<WriteFailure> {
        self.inner.write_failure()
    }

    /// The signal sent after every commit that stored something new.
    pub fn wakeup(&self) -> Wakeup {
        self.inner.wakeup.clone()
    }

    /// The counters behind `/metrics`.
    pub fn metrics(&self) -> Metrics {
        self.inner.metrics.clone()
    }

    /// The webhook path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Verifies, commits inside the deadline, answers.
    async fn answer(&self, headers: &HeaderMap, body: Body, arrived: SystemTime) -> Response {
        let inner = &self.inner;
        let verified = match verify::request(&inner.secrets, inner.body_limit, headers, body).await
        {
            Ok(verified) => verified,
            Err(rejection) => return self.reject(rejection),
        };
        let received = verified.len();
        match self.commit(verified, arrived).await {
            Ok(outcome) => {
                inner.set_write_failure(None);
                self.accepted(received, outcome)
            }
            Err(unavailable) => {
                if let Unavailable::Store(e) = &unavailable {
                    inner.set_write_failure(Some(WriteFailure {
                        error: e.to_string(),
                        since: inner.clock.now(),
                    }));
                }
                tracing::warn!(error = %unavailable, received, "answered 503; nothing stored");
                inner.metrics.record_rejected(unavailable.reason());
                unavailable.into_response()
            }
        }
    }

    /// Stages and commits a verified request before its deadline (counted from `arrived`), or
    /// rolls it back. On its own task: a client that hangs up cannot cancel a commit half-way,
    /// and graceful shutdown waits for this request's answer.
    async fn commit(
        &self,
        verified: Verified<Batch>,
        arrived: SystemTime,
    ) -> Result<InsertOutcome, Unavailable> {
        let inner = &self.inner;
        let budget = match verified.shape() {
            Shape::Array => inner.batch_deadline,
            Shape::Single => inner.single_deadline,
        };
        let deadline = store_deadline(arrived, inner.clock.now(), budget, verified.shape());
        let store = inner.store.clone();
        let clock = inner.clock.clone();
        let committed = tokio::spawn(async move {
            let staging = store.stage(&verified, arrived);
            let staged = match deadline {
                Some(deadline) => {
                    let remaining = deadline
                        .duration_since(clock.now())
                        .unwrap_or(Duration::ZERO);
                    match timeout(&clock, remaining, staging).await {
                        Ok(staged) => staged,
                        Err(_elapsed) => return Err(Unavailable::Deadline(budget)),
                    }
                }
                None => staging.await,
            };
            let staged = staged.map_err(Unavailable::Store)?;
            // Decide before COMMIT: past the deadline, roll back and let PassFort redeliver.
            if deadline.is_some_and(|deadline| clock.now() >= deadline) {
                if let Err(e) = staged.rollback().await {
                    tracing::warn!(error = %e, "rollback after a missed deadline failed");
                }
                return Err(Unavailable::Deadline(budget));
            }
            staged.commit().await.map_err(Unavailable::Store)
        })
        .await;
        match committed {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(error = %join, "store task failed");
                Err(Unavailable::Task)
            }
        }
    }

    fn accepted(&self, received: usize, outcome: InsertOutcome) -> Response {
        let inner = &self.inner;
        if !outcome.stored.is_empty() {
            inner.wakeup.notify();
        }
        for id in &outcome.conflicts {
            tracing::warn!(id = %id, "redelivered webhook id with a different body: kept out (conflict)");
        }
        inner.metrics.record_accepted(
            received,
            outcome.stored.len(),
            outcome.duplicates.len(),
            outcome.conflicts.len(),
        );
        tracing::info!(
            received,
            stored = outcome.stored.len(),
            duplicates = outcome.duplicates.len(),
            conflicts = outcome.conflicts.len(),
            "request acknowledged"
        );
        let body = Accepted {
            received,
            stored: outcome.stored.len(),
            duplicates: outcome.duplicates.len(),
            conflicts: outcome.conflicts.len(),
        };
        (StatusCode::OK, Json(body)).into_response()
    }

    fn reject(&self, rejection: Rejection) -> Response {
        tracing::info!(reason = rejection.reason(), detail = %rejection, "request rejected");
        self.inner.metrics.record_rejected(rejection.reason());
        rejection.into_response()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// PassFort's answer limit for a body of `shape` (spec §1).
fn passfort_limit(shape: Shape) -> Duration {
    match shape {
        Shape::Array => Duration::from_secs(5),
        Shape::Single => Duration::from_secs(10),
    }
}

/// When staging must be done: `budget` after the request `arrived`, or, for a body still
/// arriving after that, `budget` after it was whole (`read`) but no later than PassFort's own
/// limit from the arrival, past which PassFort has given up and will redeliver anyway. `None`
/// for a budget too far to be a time (e.g. `--single-deadline 300000000000y`): no deadline.
fn store_deadline(
    arrived: SystemTime,
    read: SystemTime,
    budget: Duration,
    shape: Shape,
) -> Option<SystemTime> {
    let from_arrival = arrived.checked_add(budget)?;
    let after_upload = read
        .checked_add(budget)
        .unwrap_or(from_arrival)
        .min(passfort_clock::after(arrived, passfort_limit(shape)));
    Some(from_arrival.max(after_upload))
}

async fn receive(
    State(receiver): State<Receiver>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let clock = receiver.inner.clock.clone();
    let arrived = clock.now();
    let response = if method == Method::POST {
        receiver.answer(&headers, body, arrived).await
    } else {
        receiver.inner.metrics.record_rejected("method_not_allowed");
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        response
    };
    let latency = clock.now().duration_since(arrived).unwrap_or_default();
    receiver.inner.metrics.record_answer(latency);
    response
}

async fn healthz(State(receiver): State<Receiver>) -> Response {
    let inner = &receiver.inner;
    match timeout(&inner.clock, Duration::from_secs(2), inner.store.ping()).await {
        Ok(Ok(())) => match inner.write_failure() {
            // Reads work but the last write failed (a full disk): every webhook is answered
            // 503 until a write succeeds again, which clears this at once.
            Some(failure) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "error": format!("the store cannot write: {}", failure.error),
                    "since": humantime::format_rfc3339_millis(failure.since).to_string(),
                })),
            )
                .into_response(),
            None => (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response(),
        },
        _ => error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_body_moves_the_store_deadline_but_never_past_passforts_limit() {
        let arrived = SystemTime::UNIX_EPOCH + Duration::from_secs(1_643_813_829);
        let at = |secs: f64| arrived + Duration::from_secs_f64(secs);
        let budget = DEFAULT_BATCH_DEADLINE;
        // A body read at once: the budget from the arrival, as before.
        assert_eq!(
            store_deadline(arrived, arrived, budget, Shape::Array),
            Some(at(2.0))
        );
        // Read after 1 s: the budget from there.
        assert_eq!(
            store_deadline(arrived, at(1.0), budget, Shape::Array),
            Some(at(3.0))
        );
        // Read after 3 s (PassFort still waiting until 5 s): until PassFort's 5 s, not 2 s.
        assert_eq!(
            store_deadline(arrived, at(3.0), budget, Shape::Array),
            Some(at(5.0))
        );
        // Read after PassFort gave up: the deadline has passed already.
        assert_eq!(
            store_deadline(arrived, at(6.0), budget, Shape::Array),
            Some(at(5.0))
        );
        // A single webhook's limit is 10 s.
        assert_eq!(
            store_deadline(arrived, at(8.0), DEFAULT_SINGLE_DEADLINE, Shape::Single),
            Some(at(10.0))
        );
        // A budget longer than PassFort's limit is the operator's choice, and kept.
        assert_eq!(
            store_deadline(arrived, at(3.0), Duration::from_secs(30), Shape::Array),
            Some(at(30.0))
        );
        assert_eq!(
            store_deadline(arrived, arrived, Duration::MAX, Shape::Array),
            None
        );
    }
}

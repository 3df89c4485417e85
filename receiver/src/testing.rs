//! Test helpers (feature `testing`): PassFort-shaped webhooks, signed requests, test stores and
//! handlers, so integrators can unit-test their handlers and their wiring without a network.
//!
//! ```
//! use passfort_receiver::testing::{self, RecordingHandler};
//! use passfort_receiver::{Receiver, SecretSet, SqliteStore, Worker};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let receiver = Receiver::builder()
//!     .secrets(SecretSet::single(testing::SECRET).unwrap())
//!     .store(SqliteStore::in_memory().await.unwrap())
//!     .build()
//!     .unwrap();
//! let hook = testing::check_completed().id("4f7c7a4e-8438-11ec-9d3b-0242ac120002");
//! let request = testing::signed_request("/webhooks/passfort", &hook.json(), testing::SECRET);
//! let answer = receiver.router().oneshot(request).await.unwrap();
//! assert_eq!(answer.status(), 200);
//!
//! let handler = RecordingHandler::new();
//! let worker = Worker::builder().receiver(&receiver).handler(handler.clone()).build().unwrap();
//! worker.run_until_idle().await.unwrap();
//! assert_eq!(handler.ids(), ["4f7c7a4e-8438-11ec-9d3b-0242ac120002"]);
//! # }
//! ```

mod outage;

pub use outage::TcpOutage;

use crate::batch::Batch;
use crate::handler::{Handler, HandlerError, Job};
use crate::store::{
    AfterFailure, DeadLetter, Entry, Lease, QueueStatus, Staged, Store, StoreError,
};
use crate::verify::Verified;
use crate::webhook::{Webhook, SECRET_FIELD};
use async_trait::async_trait;
use axum::body::Body;
use passfort_clock::VirtualClock;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The shared secret the helpers sign with by default.
pub const SECRET: &str = "test-shared-secret";

/// The `timestamp` of PassFort's one real-looking sample (2022-02-02T14:57:09Z).
pub const SAMPLE_TIMESTAMP: i64 = 1_643_813_829;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh UUID-shaped id, unique within the process, looking like PassFort's version-1 ids.
pub fn fresh_id() -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-8438-11ec-9d3b-{:012x}",
        (n as u32).wrapping_mul(2_654_435_761),
        n
    )
}

/// Builds one PassFort-shaped webhook (with its `secret`, as PassFort sends it).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookBuilder {
    id: String,
    event: String,
    secret: Option<String>,
    timestamp: Option<Value>,
    data: Value,
    extra: Map<String, Value>,
}

impl WebhookBuilder {
    /// A webhook of `event` with a fresh id, the sample timestamp, `data: {}`, signed with
    /// [`SECRET`].
    pub fn new(event: impl Into<String>) -> Self {
        Self {
            id: fresh_id(),
            event: event.into(),
            secret: Some(SECRET.to_owned()),
            timestamp: Some(json!(SAMPLE_TIMESTAMP)),
            data: json!({}),
            extra: Map::new(),
        }
    }

    /// Sets the id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the body `secret`.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Leaves the body `secret` out.
    pub fn without_secret(mut self) -> Self {
        self.secret = None;
        self
    }

    /// Sets `timestamp` (Unix seconds).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(json!(timestamp));
        self
    }

    /// Sets `data`.
    pub fn data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// Adds (or overrides) a top-level field.
    pub fn field(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// The id.
    pub fn get_id(&self) -> &str {
        &self.id
    }

    /// The JSON object PassFort would send.
    pub fn json(&self) -> Value {
        let mut object = Map::new();
        object.insert("id".into(), json!(self.id));
        object.insert("event".into(), json!(self.event));
        if let Some(secret) = &self.secret {
            object.insert(SECRET_FIELD.into(), json!(secret));
        }
        if let Some(timestamp) = &self.timestamp {
            object.insert("timestamp".into(), timestamp.clone());
        }
        object.insert("data".into(), self.data.clone());
        for (k, v) in &self.extra {
            object.insert(k.clone(), v.clone());
        }
        Value::Object(object)
    }

    /// The webhook as the receiver stores it (secret removed).
    pub fn webhook(&self) -> Webhook {
        match Webhook::from_json(self.json()) {
            Ok(webhook) => webhook,
            Err(e) => panic!("test webhook is not a webhook: {e}"),
        }
    }
}

fn profile() -> Value {
    json!({"profile_id": "0f6a8c52-2b1d-4a51-9a53-3a4f1c7e9b10", "customer_ref": "CUST-001"})
}

fn with_profile(mut data: Value) -> Value {
    if let (Value::Object(target), Value::Object(common)) = (&mut data, profile()) {
        for (k, v) in common {
            target.entry(k).or_insert(v);
        }
    }
    data
}

/// A `CHECK_COMPLETED` webhook shaped like PassFort's sample.
pub fn check_completed() -> WebhookBuilder {
    WebhookBuilder::new("CHECK_COMPLETED").data(with_profile(json!({
        "check": {
            "id": "5b2c0d8e-6f3a-4c1b-8e7d-2a9f4b6c1d30",
            "check_type": "PEPS_AND_SANCTIONS_SCREEN",
            "decision": "PASS",
            "result": "Pass",
            "variant": {"id": "7d1e", "alias": "peps_and_sanctions_screen_default", "name": "Default"}
        }
    })))
}

/// A `PRODUCT_STATUS_CHANGED` webhook.
pub fn product_status_changed() -> WebhookBuilder {
    WebhookBuilder::new("PRODUCT_STATUS_CHANGED").data(with_profile(json!({
        "application_id": "9a0b7c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
        "new_status": "APPROVED",
        "product": {"id": "p1", "alias": "identity_verification", "name": "Identity verification"},
        "apikey": {"name": "integration"},
        "user": null
    })))
}

/// A `COLLECTED_DATA_UPDATED` webhook.
pub fn collected_data_updated() -> WebhookBuilder {
    WebhookBuilder::new("COLLECTED_DATA_UPDATED").data(with_profile(json!({
        "old_data": {"entity_type": "INDIVIDUAL", "personal_details": {"name": {"given_names": ["Ada"], "family_name": "Lovelace"}}},
        "new_data": {"entity_type": "INDIVIDUAL", "personal_details": {"name": {"given_names": ["Ada"], "family_name": "King"}}},
        "apikey": {"name": "integration"}
    })))
}

/// A `MANUAL_ACTION_REQUIRED` webhook.
pub fn manual_action_required() -> WebhookBuilder {
    WebhookBuilder::new("MANUAL_ACTION_REQUIRED").data(with_profile(json!({
        "actions": [{
            "action_type": "COMPLETE_TASK",
            "due": null,
            "applications": [{"id": "a1", "product": {"alias": "kyc"}, "status": "IN_REVIEW"}],
            "task": {"id": "t1", "state": "INCOMPLETE", "type": "VERIFY_IDENTITY", "variant": null}
        }]
    })))
}

/// A webhook with an `event` this library does not know.
pub fn unknown_event(event: &str) -> WebhookBuilder {
    WebhookBuilder::new(event).data(with_profile(json!({"something": "new"})))
}

/// The body of a batched request: a JSON array of the webhooks.
pub fn batch_body(webhooks: &[WebhookBuilder]) -> Value {
    Value::Array(webhooks.iter().map(WebhookBuilder::json).collect())
}

/// A `POST` to `path` with `Authorization: Bearer {secret}` and `body`, as PassFort sends it.
pub fn signed_request(path: &str, body: &Value, secret: &str) -> http::Request<Body> {
    raw_request(
        path,
        body.to_string().into_bytes(),
        Some(&format!("Bearer {secret}")),
    )
}

/// A `POST` to `path` with any body and any (or no) `Authorization` header.
pub fn raw_request(path: &str, body: Vec<u8>, authorization: Option<&str>) -> http::Request<Body> {
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(authorization) = authorization {
        builder = builder.header(http::header::AUTHORIZATION, authorization);
    }
    match builder.body(Body::from(body)) {
        Ok(request) => request,
        Err(e) => panic!("bad test request: {e}"),
    }
}

/// A verified batch of `webhooks` (signed with [`SECRET`] and verified the real way): what store
/// tests insert.
pub fn verified(webhooks: &[WebhookBuilder]) -> Verified<Batch> {
    let body = batch_body(webhooks).to_string();
    match Batch::verify(
        &crate::SecretSet::single(SECRET).unwrap_or_else(|e| panic!("{e}")),
        Some(format!("Bearer {SECRET}").as_bytes()),
        body.as_bytes(),
    ) {
        Ok(batch) => batch,
        Err(e) => panic!("test batch does not verify: {e}"),
    }
}

/// What a [`RecordingHandler`] should do with a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Fail the next `n` attempts, then succeed.
    FailTimes(u32),
    /// Always fail.
    FailAlways,
    /// Panic on every attempt.
    Panic,
}

/// A handler that records every webhook it is given and fails or panics on request.
#[derive(Debug, Clone, Default)]
pub struct RecordingHandler {
    inner: Arc<Mutex<Recording>>,
}

#[derive(Debug, Default)]
struct Recording {
    handled: Vec<Job>,
    attempts: Vec<(String, u32)>,
    plans: HashMap<String, Plan>,
}

impl RecordingHandler {
    /// A handler that succeeds on everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what happens to the webhook with id `id`.
    pub fn plan(&self, id: impl Into<String>, plan: Plan) -> &Self {
        self.lock().plans.insert(id.into(), plan);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recording> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the plan for `id`: it succeeds from now on.
    pub fn clear(&self, id: &str) -> &Self {
        self.lock().plans.remove(id);
        self
    }

    /// Every webhook handled successfully, in order.
    pub fn handled(&self) -> Vec<Job> {
        self.lock().handled.clone()
    }

    /// Ids of the webhooks handled successfully, in order.
    pub fn ids(&self) -> Vec<String> {
        self.lock()
            .handled
            .iter()
            .map(|job| job.webhook.id.clone())
            .collect()
    }

    /// Every attempt `(id, attempt)` including failures, in order.
    pub fn attempts(&self) -> Vec<(String, u32)> {
        self.lock().attempts.clone()
    }
}

#[async_trait]
impl Handler for RecordingHandler {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        let plan = {
            let mut recording = self.lock();
            recording
                .attempts
                .push((job.webhook.id.clone(), job.attempt));
            let id = job.webhook.id.clone();
            let plan = match recording.plans.get(&id).copied() {
                Some(Plan::FailTimes(0)) => {
                    recording.plans.remove(&id);
                    None
                }
                Some(Plan::FailTimes(n)) => {
                    if n == 1 {
                        recording.plans.remove(&id);
                    } else {
                        recording.plans.insert(id, Plan::FailTimes(n - 1));
                    }
                    Some(Plan::FailTimes(n))
                }
                other => other,
            };
            if plan.is_none() {
                recording.handled.push(job.clone());
            }
            plan
        };
        match plan {
            None => Ok(()),
            Some(Plan::FailTimes(_)) | Some(Plan::FailAlways) => {
                Err(format!("planned failure of {}", job.webhook.id).into())
            }
            Some(Plan::Panic) => panic!("planned panic on {}", job.webhook.id),
        }
    }
}

/// Wraps a store so that staging a request takes `delay` of virtual time, so a receiver's
/// deadline can be shown to fire deterministically.
#[derive(Debug, Clone)]
pub struct SlowStore<S> {
    inner: S,
    clock: VirtualClock,
    delay: Duration,
    after: bool,
}

impl<S: Store> SlowStore<S> {
    /// `inner`, with staging costing `delay` on `clock` *before* the inner store is reached:
    /// the deadline fires while staging is still pending.
    pub fn new(inner: S, clock: VirtualClock, delay: Duration) -> Self {
        Self {
            inner,
            clock,
            delay,
            after: false,
        }
    }

    /// `inner`, with the time spent *after* the inner store has staged everything: staging
    /// completes, but past the deadline, so the receiver must roll back instead of committing.
    pub fn after_staging(inner: S, clock: VirtualClock, delay: Duration) -> Self {
        Self {
            after: true,
            ..Self::new(inner, clock, delay)
        }
    }
}

/// A store that is always unavailable: every operation fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnavailableStore;

fn unavailable() -> StoreError {
    StoreError::Unavailable("the test store is unavailable".into())
}

macro_rules! delegate_store {
    ($ty:ty, |$self:ident, $batch:ident, $at:ident| $inner:expr, stage => $stage:expr) => {
        #[async_trait]
        impl<S: Store> Store for $ty {
            async fn stage(
                &$self,
                $batch: &Verified<Batch>,
                $at: SystemTime,
            ) -> Result<Box<dyn Staged>, StoreError> {
                $stage
            }
            async fn lease_next(&$self, worker: &str, now: SystemTime, lease_for: Duration) -> Result<Lease, StoreError> {
                $inner.lease_next(worker, now, lease_for).await
            }
            async fn complete(&$self, seq: i64, worker: &str, now: SystemTime) -> Result<(), StoreError> {
                $inner.complete(seq, worker, now).await
            }
            async fn fail(&$self, seq: i64, worker: &str, now: SystemTime, error: &str, then: AfterFailure) -> Result<(), StoreError> {
                $inner.fail(seq, worker, now, error, then).await
            }
            async fn status(&$self, now: SystemTime) -> Result<QueueStatus, StoreError> {
                $inner.status(now).await
            }
            async fn dead_letters(&$self) -> Result<Vec<DeadLetter>, StoreError> {
                $inner.dead_letters().await
            }
            async fn retry_dead_letter(&$self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
                $inner.retry_dead_letter(id, now).await
            }
            async fn retry_all_dead_letters(&$self, now: SystemTime) -> Result<u64, StoreError> {
                $inner.retry_all_dead_letters(now).await
            }
            async fn entries(&$self) -> Result<Vec<Entry>, StoreError> {
                $inner.entries().await
            }
            async fn ping(&$self) -> Result<(), StoreError> {
                $inner.ping().await
            }
            async fn prune_step(&$self, cutoffs: &crate::retention::Cutoffs, limit: u32) -> Result<crate::retention::Pruned, StoreError> {
                $inner.prune_step(cutoffs, limit).await
            }
            async fn prune_preview(&$self, cutoffs: &crate::retention::Cutoffs) -> Result<crate::retention::Pruned, StoreError> {
                $inner.prune_preview(cutoffs).await
            }
            async fn reclaim_space(&$self) -> Result<(), StoreError> {
                $inner.reclaim_space().await
            }
            async fn drop_dead_letter(&$self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
                $inner.drop_dead_letter(id, now).await
            }
            async fn retention_status(&$self) -> Result<crate::retention::RetentionStatus, StoreError> {
                $inner.retention_status().await
            }
            async fn stored_page(&$self, range: &crate::replay::Positions, after_seq: i64, limit: u32) -> Result<Vec<crate::replay::StoredWebhook>, StoreError> {
                $inner.stored_page(range, after_seq, limit).await
            }
            async fn seq_of(&$self, id: &str) -> Result<Option<i64>, StoreError> {
                $inner.seq_of(id).await
            }
        }
    };
}

delegate_store!(SlowStore<S>, |self, batch, at| self.inner, stage => {
    if !self.after {
        self.clock.advance(self.delay);
        tokio::task::yield_now().await;
    }
    let staged = self.inner.stage(batch, at).await?;
    if self.after {
        self.clock.advance(self.delay);
    }
    Ok(staged)
});

#[async_trait]
impl Store for UnavailableStore {
    async fn stage(
        &self,
        _: &Verified<Batch>,
        _: SystemTime,
    ) -> Result<Box<dyn Staged>, StoreError> {
        Err(unavailable())
    }
    async fn lease_next(&self, _: &str, _: SystemTime, _: Duration) -> Result<Lease, StoreError> {
        Err(unavailable())
    }
    async fn complete(&self, _: i64, _: &str, _: SystemTime) -> Result<(), StoreError> {
        Err(unavailable())
    }
    async fn fail(
        &self,
        _: i64,
        _: &str,
        _: SystemTime,
        _: &str,
        _: AfterFailure,
    ) -> Result<(), StoreError> {
        Err(unavailable())
    }
    async fn status(&self, _: SystemTime) -> Result<QueueStatus, StoreError> {
        Err(unavailable())
    }
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        Err(unavailable())
    }
    async fn retry_dead_letter(&self, _: &str, _: SystemTime) -> Result<bool, StoreError> {
        Err(unavailable())
    }
    async fn retry_all_dead_letters(&self, _: SystemTime) -> Result<u64, StoreError> {
        Err(unavailable())
    }
    async fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        Err(unavailable())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Err(unavailable())
    }
}

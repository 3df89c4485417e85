//! The paths no other test reaches, driven deterministically: a store whose commit blocks until
//! the test releases it (no answer leaves before the commit returns), a store whose commit fails
//! (503, nothing stored, nothing handed on), and the `/status` a handler failure leaves behind
//! (`stalled`, `next_retry_at` on the `VirtualClock`).

mod common;

use async_trait::async_trait;
use common::sqlite_in;
use passfort_clock::{Clock, VirtualClock};
use passfort_receiver::store::{
    AfterFailure, DeadLetter, Entry, InsertOutcome, Lease, QueueStatus, SharedStore, Staged,
};
use passfort_receiver::testing::{self, Plan, RecordingHandler};
use passfort_receiver::{Batch, Verified};
use passfort_receiver::{Receiver, RetryPolicy, SecretSet, Store, StoreError, Worker};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// What the wrapped store's commit does.
#[derive(Debug, Clone)]
enum Commit {
    /// Waits for a permit, then commits; `started` is set when it begins waiting.
    Gated {
        gate: Arc<Semaphore>,
        started: Arc<AtomicBool>,
    },
    /// Fails without committing (the inner transaction is dropped: rolled back).
    Fails,
}

/// The real SQLite store, except for what `commit` does.
#[derive(Debug, Clone)]
struct CommitStore {
    inner: SharedStore,
    commit: Commit,
}

struct CommitStaged {
    inner: Box<dyn Staged>,
    commit: Commit,
}

#[async_trait]
impl Staged for CommitStaged {
    fn outcome(&self) -> &InsertOutcome {
        self.inner.outcome()
    }

    async fn commit(self: Box<Self>) -> Result<InsertOutcome, StoreError> {
        match &self.commit {
            Commit::Gated { gate, started } => {
                started.store(true, Ordering::SeqCst);
                let _permit = gate
                    .acquire()
                    .await
                    .map_err(|_| StoreError::Unavailable("gate closed".into()))?;
                self.inner.commit().await
            }
            Commit::Fails => {
                drop(self.inner);
                Err(StoreError::Unavailable(
                    "the test store's commit failed".into(),
                ))
            }
        }
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.inner.rollback().await
    }
}

#[async_trait]
impl Store for CommitStore {
    async fn stage(
        &self,
        batch: &Verified<Batch>,
        received_at: SystemTime,
    ) -> Result<Box<dyn Staged>, StoreError> {
        Ok(Box::new(CommitStaged {
            inner: self.inner.stage(batch, received_at).await?,
            commit: self.commit.clone(),
        }))
    }
    async fn lease_next(
        &self,
        worker: &str,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Lease, StoreError> {
        self.inner.lease_next(worker, now, lease_for).await
    }
    async fn complete(&self, seq: i64, worker: &str, now: SystemTime) -> Result<(), StoreError> {
        self.inner.complete(seq, worker, now).await
    }
    async fn fail(
        &self,
        seq: i64,
        worker: &str,
        now: SystemTime,
        error: &str,
        then: AfterFailure,
    ) -> Result<(), StoreError> {
        self.inner.fail(seq, worker, now, error, then).await
    }
    async fn status(&self, now: SystemTime) -> Result<QueueStatus, StoreError> {
        self.inner.status(now).await
    }
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters().await
    }
    async fn retry_dead_letter(&self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
        self.inner.retry_dead_letter(id, now).await
    }
    async fn retry_all_dead_letters(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.inner.retry_all_dead_letters(now).await
    }
    async fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        self.inner.entries().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

fn receiver(store: impl Store, clock: &VirtualClock) -> Receiver {
    Receiver::builder()
        .secrets(SecretSet::single(testing::SECRET).unwrap())
        .store(store)
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_leaves_before_the_commit_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (inner, _) = sqlite_in(dir.path(), "gated").await;
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicBool::new(false));
    let clock = VirtualClock::new();
    let store = CommitStore {
        inner: inner.clone(),
        commit: Commit::Gated {
            gate: gate.clone(),
            started: started.clone(),
        },
    };
    let app = receiver(store, &clock).router();
    let hook = testing::check_completed();
    let request = testing::signed_request("/webhooks/passfort", &hook.json(), testing::SECRET);
    let mut answer = tokio::spawn(app.oneshot(request));
    // The request reaches the commit and waits there.
    while !started.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }
    // However long the commit takes (on the real scheduler), no answer leaves: polled many
    // times over, the request is still pending. Time on the clock does not move either.
    for _ in 0..1000 {
        tokio::task::yield_now().await;
        assert!(
            futures::poll!(&mut answer).is_pending(),
            "an answer left before the commit returned"
        );
    }
    assert!(
        inner.entries().await.unwrap().is_empty(),
        "visible before the commit"
    );
    gate.add_permits(1);
    let answer = answer.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    let stored: Vec<String> = inner
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.webhook.id)
        .collect();
    assert_eq!(stored, vec![hook.get_id().to_owned()]);
}

#[tokio::test]
async fn a_failed_commit_answers_503_and_stores_and_hands_on_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (inner, _) = sqlite_in(dir.path(), "fails").await;
    let clock = VirtualClock::new();
    let store = CommitStore {
        inner: inner.clone(),
        commit: Commit::Fails,
    };
    let app = receiver(store, &clock).router();
    let hooks = [
        testing::check_completed(),
        testing::product_status_changed(),
    ];
    for body in [hooks[0].json(), testing::batch_body(&hooks)] {
        let request = testing::signed_request("/webhooks/passfort", &body, testing::SECRET);
        let answer = app.clone().oneshot(request).await.unwrap();
        assert_eq!(answer.status(), 503);
    }
    assert!(
        inner.entries().await.unwrap().is_empty(),
        "a refused request stored something"
    );
    let handler = RecordingHandler::new();
    let drained = Worker::builder()
        .shared_store(inner.clone())
        .clock(clock.clone())
        .handler(handler.clone())
        .build()
        .unwrap()
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!(drained.done, 0);
    assert!(handler.ids().is_empty(), "a refused request was handed on");
    // The same store still takes a request whose commit works.
    let ok = receiver(inner.clone(), &clock).router();
    let request = testing::signed_request("/webhooks/passfort", &hooks[0].json(), testing::SECRET);
    assert_eq!(ok.oneshot(request).await.unwrap().status(), 200);
}

async fn status_json(app: &axum::Router) -> Value {
    let request = http::Request::get("/status")
        .body(axum::body::Body::empty())
        .unwrap();
    let answer = app.clone().oneshot(request).await.unwrap();
    assert_eq!(answer.status(), 200);
    let bytes = http_body_util::BodyExt::collect(answer.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_handler_failure_shows_as_stalled_with_the_next_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_in(dir.path(), "stalled").await;
    let clock = VirtualClock::new();
    let receiver = receiver(store.clone(), &clock);
    let admin = receiver.admin_router();
    let (first, second) = (testing::check_completed(), testing::check_completed());
    store
        .insert(
            &testing::verified(&[first.clone(), second.clone()]),
            clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(status_json(&admin).await["queue"], "waiting");

    let handler = RecordingHandler::new();
    handler.plan(first.get_id(), Plan::FailTimes(1));
    let worker = Worker::builder()
        .shared_store(store.clone())
        .clock(clock.clone())
        .handler(handler.clone())
        .retry(RetryPolicy::exponential(
            Duration::from_secs(30),
            Duration::from_secs(300),
        ))
        .build()
        .unwrap();
    worker.step().await.unwrap();
    let failed_at = clock.now();
    let status = status_json(&admin).await;
    assert_eq!(status["queue"], "stalled", "{status}");
    assert_eq!(status["queue_depth"], 2, "{status}");
    let expected =
        humantime::format_rfc3339_millis(failed_at + Duration::from_secs(30)).to_string();
    let next = status["next_retry_at"].as_str().unwrap_or_default();
    assert_eq!(
        humantime::parse_rfc3339(next).ok(),
        humantime::parse_rfc3339(&expected).ok(),
        "next_retry_at is the failure plus the first back-off: {status}"
    );
    assert_eq!(
        status["recent_failures"][0]["id"],
        first.get_id(),
        "{status}"
    );
    // Nothing behind the head moves while it waits; once due, both go, in order.
    worker.step().await.unwrap();
    assert_eq!(
        handler.attempts().len(),
        1,
        "an attempt before the retry was due"
    );
    assert!(handler.ids().is_empty(), "handed on while the head waited");
    clock.advance(Duration::from_secs(30));
    worker.run_until_idle().await.unwrap();
    assert_eq!(
        handler.ids(),
        vec![first.get_id().to_owned(), second.get_id().to_owned()]
    );
    let status = status_json(&admin).await;
    assert_eq!(status["queue"], "empty", "{status}");
    assert!(status["next_retry_at"].is_null(), "{status}");
}

//! The worker: strict order, back-off on a driven `VirtualClock`, dead letters, blocking,
//! panics, prompt wake-up, graceful stop.

mod common;

use common::sqlite_in;
use passfort_clock::{Clock, VirtualClock};
use passfort_receiver::store::{SharedStore, State};
use passfort_receiver::testing::{self, Plan, RecordingHandler, WebhookBuilder};
use passfort_receiver::worker::{Drained, Idle};
use passfort_receiver::{handler_fn, Job, Receiver, RetryPolicy, SecretSet, Worker};
use std::time::Duration;
use tower::ServiceExt;

struct Setup {
    store: SharedStore,
    clock: VirtualClock,
    handler: RecordingHandler,
    _dir: tempfile::TempDir,
}

async fn setup(hooks: &[WebhookBuilder]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_in(dir.path(), "worker").await;
    let clock = VirtualClock::new();
    store
        .insert(&testing::verified(hooks), clock.now())
        .await
        .unwrap();
    Setup {
        store,
        clock,
        handler: RecordingHandler::new(),
        _dir: dir,
    }
}

fn worker(s: &Setup, retry: RetryPolicy) -> Worker {
    Worker::builder()
        .shared_store(s.store.clone())
        .clock(s.clock.clone())
        .handler(s.handler.clone())
        .retry(retry)
        .build()
        .unwrap()
}

fn hooks(n: usize) -> Vec<WebhookBuilder> {
    (0..n).map(|_| testing::check_completed()).collect()
}

fn ids(hooks: &[WebhookBuilder]) -> Vec<String> {
    hooks.iter().map(|h| h.get_id().to_owned()).collect()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn hands_on_everything_in_arrival_order() {
    let batch = hooks(20);
    let s = setup(&batch).await;
    let drained = worker(&s, RetryPolicy::default())
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!(drained.done, 20);
    assert_eq!(drained.idle, Some(Idle::Empty));
    assert_eq!(s.handler.ids(), ids(&batch));
    assert!(s
        .store
        .entries()
        .await
        .unwrap()
        .iter()
        .all(|e| e.state == State::Done));
    let status = s.store.status(s.clock.now()).await.unwrap();
    assert_eq!(status.last_processed.unwrap().id, batch[19].get_id());
}

#[tokio::test]
async fn back_off_doubles_on_the_clock_and_blocks_the_queue_behind() {
    let batch = hooks(3);
    let s = setup(&batch).await;
    s.handler.plan(batch[0].get_id(), Plan::FailTimes(3));
    let w = worker(
        &s,
        RetryPolicy::exponential(secs(1), secs(60)).max_attempts(10),
    );
    let start = s.clock.now();

    // Attempt 1 fails: retry 1 s later; nothing behind it is handed on.
    let drained = w.run_until_idle().await.unwrap();
    assert_eq!(
        drained,
        Drained {
            retried: 1,
            idle: Some(Idle::RetryAt(start + secs(1))),
            ..Default::default()
        }
    );
    assert!(s.handler.ids().is_empty());

    // Just before the retry time, still nothing.
    s.clock.advance(Duration::from_millis(999));
    let drained = w.run_until_idle().await.unwrap();
    assert_eq!(drained.retried, 0);
    assert_eq!(drained.idle, Some(Idle::RetryAt(start + secs(1))));

    // Attempt 2 at +1 s fails: next wait 2 s; attempt 3 at +3 s fails: next wait 4 s.
    s.clock.advance_to(start + secs(1));
    assert_eq!(
        w.run_until_idle().await.unwrap().idle,
        Some(Idle::RetryAt(start + secs(3)))
    );
    s.clock.advance_to(start + secs(3));
    assert_eq!(
        w.run_until_idle().await.unwrap().idle,
        Some(Idle::RetryAt(start + secs(7)))
    );

    // Attempt 4 at +7 s succeeds and the queue behind it flows, in order.
    s.clock.advance_to(start + secs(7));
    let drained = w.run_until_idle().await.unwrap();
    assert_eq!(drained.done, 3);
    assert_eq!(s.handler.ids(), ids(&batch));
    let attempts: Vec<u32> = s
        .handler
        .attempts()
        .iter()
        .filter(|(id, _)| id == batch[0].get_id())
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
}

#[tokio::test]
async fn the_worker_waits_on_the_clock_for_a_retry() {
    let batch = hooks(2);
    let s = setup(&batch).await;
    s.handler.plan(batch[0].get_id(), Plan::FailTimes(1));
    let w = worker(&s, RetryPolicy::exponential(secs(30), secs(600)));
    let running = w.clone().spawn();
    // The worker fails once, then sleeps until the retry at +30 s (or its poll, at +500 ms).
    let start = s.clock.now();
    while s.handler.ids().len() < 2 {
        if s.clock.sleepers() > 0 {
            s.clock.advance_to_next();
        }
        tokio::task::yield_now().await;
    }
    assert!(
        s.clock.now() >= start + secs(30),
        "retried before its back-off"
    );
    assert!(s.clock.now() < start + secs(31));
    assert_eq!(s.handler.ids(), ids(&batch));
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn after_max_attempts_the_webhook_is_dead_lettered_and_the_queue_moves_on() {
    let batch = hooks(3);
    let s = setup(&batch).await;
    s.handler.plan(batch[1].get_id(), Plan::FailAlways);
    let w = worker(
        &s,
        RetryPolicy::exponential(secs(1), secs(60)).max_attempts(3),
    );
    let mut drained = w.run_until_idle().await.unwrap();
    while let Some(Idle::RetryAt(at)) = drained.idle {
        s.clock.advance_to(at);
        drained = w.run_until_idle().await.unwrap();
    }
    assert_eq!(drained.idle, Some(Idle::Empty));
    assert_eq!(s.handler.ids(), [batch[0].get_id(), batch[2].get_id()]);
    let dead = s.store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, batch[1].get_id());
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("planned failure"));

    // Retried from the dead-letter list, it is handed on next (here: last).
    s.handler.clear(batch[1].get_id());
    assert!(s
        .store
        .retry_dead_letter(batch[1].get_id(), s.clock.now())
        .await
        .unwrap());
    let drained = w.run_until_idle().await.unwrap();
    assert_eq!(drained.done, 1);
    assert_eq!(
        s.handler.ids(),
        [batch[0].get_id(), batch[2].get_id(), batch[1].get_id()]
    );
}

#[tokio::test]
async fn blocking_policy_never_skips_the_head() {
    let batch = hooks(2);
    let s = setup(&batch).await;
    s.handler.plan(batch[0].get_id(), Plan::FailTimes(25));
    let w = worker(
        &s,
        RetryPolicy::exponential(secs(1), secs(10))
            .max_attempts(3)
            .block(),
    );
    let mut waits = Vec::new();
    let mut drained = w.run_until_idle().await.unwrap();
    while let Some(Idle::RetryAt(at)) = drained.idle {
        waits.push(at.duration_since(s.clock.now()).unwrap().as_secs());
        assert!(
            s.handler.ids().is_empty(),
            "something behind the head was handed on"
        );
        s.clock.advance_to(at);
        drained = w.run_until_idle().await.unwrap();
    }
    assert_eq!(waits.len(), 25);
    assert_eq!(&waits[..6], [1, 2, 4, 8, 10, 10]);
    assert!(s.store.dead_letters().await.unwrap().is_empty());
    assert_eq!(s.handler.ids(), ids(&batch));
}

#[tokio::test]
async fn a_panicking_handler_is_a_failure_not_a_crash() {
    let batch = hooks(2);
    let s = setup(&batch).await;
    s.handler.plan(batch[0].get_id(), Plan::Panic);
    let w = worker(&s, RetryPolicy::default().max_attempts(1));
    let drained = w.run_until_idle().await.unwrap();
    assert_eq!(drained.dead_lettered, 1);
    assert_eq!(drained.done, 1);
    let dead = s.store.dead_letters().await.unwrap();
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("handler panicked"));
}

#[tokio::test]
async fn an_in_process_worker_is_woken_by_the_receiver_without_time_passing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = sqlite_in(dir.path(), "wake").await;
    let clock = VirtualClock::new();
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(testing::SECRET).unwrap())
        .shared_store(store)
        .clock(clock.clone())
        .build()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let running = Worker::builder()
        .receiver(&receiver)
        .handler(handler_fn(move |job: Job| {
            let tx = tx.clone();
            async move {
                tx.send(job.webhook.id).map_err(|e| e.to_string())?;
                Ok(())
            }
        }))
        .build()
        .unwrap()
        .spawn();
    let batch = hooks(3);
    let request = testing::signed_request(
        "/webhooks/passfort",
        &testing::batch_body(&batch),
        testing::SECRET,
    );
    let answer = receiver.router().oneshot(request).await.unwrap();
    assert_eq!(answer.status(), 200);
    // The virtual clock never moves: only the wake-up can get the worker going.
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(rx.recv().await.unwrap());
    }
    assert_eq!(got, ids(&batch));
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn graceful_stop_finishes_the_webhook_in_hand() {
    let batch = hooks(2);
    let s = setup(&batch).await;
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let handler_release = release.clone();
    let w = Worker::builder()
        .shared_store(s.store.clone())
        .clock(s.clock.clone())
        .handler(handler_fn(move |job: Job| {
            let started = started_tx.clone();
            let release = handler_release.clone();
            async move {
                started.send(job.webhook.id.clone()).ok();
                release.notified().await;
                Ok(())
            }
        }))
        .build()
        .unwrap();
    let running = w.spawn();
    let first = started_rx.recv().await.unwrap();
    assert_eq!(first, batch[0].get_id());
    let stopping = tokio::spawn(running.shutdown());
    tokio::task::yield_now().await;
    assert!(!stopping.is_finished(), "stopped with a webhook in hand");
    release.notify_one();
    stopping.await.unwrap().unwrap();
    let entries = s.store.entries().await.unwrap();
    assert_eq!(
        entries[0].state,
        State::Done,
        "the webhook in hand was finished and recorded"
    );
    assert_eq!(
        entries[1].state,
        State::Pending,
        "nothing new was started after the stop"
    );
}

#[tokio::test]
async fn a_restarted_worker_of_the_same_name_takes_over_its_own_lease() {
    let batch = hooks(1);
    let s = setup(&batch).await;
    // A worker leased the head and died before finishing.
    let lease = s
        .store
        .lease_next("serve", s.clock.now(), secs(300))
        .await
        .unwrap();
    assert!(matches!(
        lease,
        passfort_receiver::store::Lease::Acquired(_)
    ));
    let other = Worker::builder()
        .shared_store(s.store.clone())
        .clock(s.clock.clone())
        .handler(s.handler.clone())
        .name("someone-else")
        .build()
        .unwrap();
    assert!(matches!(
        other.run_until_idle().await.unwrap().idle,
        Some(Idle::Busy(_))
    ));
    let restarted = Worker::builder()
        .shared_store(s.store.clone())
        .clock(s.clock.clone())
        .handler(s.handler.clone())
        .name("serve")
        .build()
        .unwrap();
    assert_eq!(restarted.run_until_idle().await.unwrap().done, 1);
    assert_eq!(s.handler.handled()[0].attempt, 2);
}

#[tokio::test]
async fn waits_too_long_to_be_a_time_are_a_far_future_not_a_panic() {
    let batch = hooks(2);
    let s = setup(&batch).await;
    s.handler.plan(batch[0].get_id(), Plan::FailTimes(1));
    let worker = Worker::builder()
        .shared_store(s.store.clone())
        .clock(s.clock.clone())
        .handler(s.handler.clone())
        .retry(RetryPolicy::exponential(Duration::MAX, Duration::MAX).block())
        .lease(Duration::MAX)
        .poll_interval(Duration::MAX)
        .build()
        .unwrap();
    let drained = worker.run_until_idle().await.unwrap();
    assert_eq!(drained.retried, 1);
    let Some(Idle::RetryAt(at)) = drained.idle else {
        panic!("{drained:?}")
    };
    assert!(at > s.clock.now() + secs(50 * 365 * 24 * 3600), "{at:?}");
    // Nothing behind the failed head was handed on; after the wait the head goes first.
    assert!(s.handler.ids().is_empty(), "{:?}", s.handler.ids());
    s.clock.advance_to(at);
    assert_eq!(worker.run_until_idle().await.unwrap().done, 2);
    assert_eq!(s.handler.ids(), ids(&batch));
}

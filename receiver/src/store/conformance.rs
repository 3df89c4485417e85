//! The behavioural suite every [`Store`](super::Store) must pass (feature `testing`).
//!
//! A backend runs it with a factory that returns a fresh, empty store each time:
//!
//! ```no_run
//! # async fn demo() {
//! use passfort_receiver::store::{conformance, SharedStore, SqliteStore};
//! use std::sync::Arc;
//! let dir = tempfile::tempdir().unwrap();
//! let counter = std::sync::atomic::AtomicUsize::new(0);
//! conformance::run_all(|| {
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     let url = format!("sqlite://{}/t{n}.db", dir.path().display());
//!     async move { Arc::new(SqliteStore::open(&url).await.unwrap()) as SharedStore }
//! })
//! .await;
//! # }
//! ```
//!
//! Each case panics with a message naming the broken rule. The store must allow concurrent use
//! (readers while a request is staged), so use a file-backed or server database, not a private
//! in-memory one.

use super::{AfterFailure, Lease, SharedStore, State, StoreError};
use crate::testing::{self, WebhookBuilder};
use futures::future::BoxFuture;
use serde_json::json;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fixed "now" for the cases: 2022-02-02T14:57:09Z.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_643_813_829)
}

const LEASE: Duration = Duration::from_secs(60);

type Case = fn(SharedStore) -> BoxFuture<'static, ()>;

/// Every case, by name.
pub fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("stores_in_body_order", |s| {
            Box::pin(stores_in_body_order(s))
        }),
        ("duplicates_are_skipped", |s| {
            Box::pin(duplicates_are_skipped(s))
        }),
        ("conflicts_are_kept_out", |s| {
            Box::pin(conflicts_are_kept_out(s))
        }),
        ("repeats_within_a_request", |s| {
            Box::pin(repeats_within_a_request(s))
        }),
        ("rollback_leaves_nothing", |s| {
            Box::pin(rollback_leaves_nothing(s))
        }),
        ("staged_is_invisible_until_commit", |s| {
            Box::pin(staged_is_invisible_until_commit(s))
        }),
        ("empty_request_is_fine", |s| {
            Box::pin(empty_request_is_fine(s))
        }),
        ("leases_strictly_in_order", |s| {
            Box::pin(leases_strictly_in_order(s))
        }),
        ("leases_exclude_other_workers", |s| {
            Box::pin(leases_exclude_other_workers(s))
        }),
        ("failure_schedules_a_retry", |s| {
            Box::pin(failure_schedules_a_retry(s))
        }),
        ("dead_letters_and_retry", |s| {
            Box::pin(dead_letters_and_retry(s))
        }),
        ("stalled_since_marks_the_head_s_failures", |s| {
            Box::pin(stalled_since_marks_the_head_s_failures(s))
        }),
        ("lost_lease_is_refused", |s| {
            Box::pin(lost_lease_is_refused(s))
        }),
        ("status_reports_progress", |s| {
            Box::pin(status_reports_progress(s))
        }),
        ("concurrent_requests_never_interleave", |s| {
            Box::pin(concurrent_requests_never_interleave(s))
        }),
        ("secret_is_never_stored", |s| {
            Box::pin(secret_is_never_stored(s))
        }),
        ("retention_erases_bodies_then_forgets_ids", |s| {
            Box::pin(retention_erases_bodies_then_forgets_ids(s))
        }),
        ("prune_works_in_small_steps", |s| {
            Box::pin(prune_works_in_small_steps(s))
        }),
        ("dropped_dead_letter_keeps_its_id", |s| {
            Box::pin(dropped_dead_letter_keeps_its_id(s))
        }),
        ("replay_streams_a_range_in_arrival_order", |s| {
            Box::pin(replay_streams_a_range_in_arrival_order(s))
        }),
    ]
}

/// Runs every case, each on a fresh store from `factory`.
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = SharedStore>,
{
    for (name, case) in cases() {
        let store = factory().await;
        tracing::debug!(case = name, "store conformance");
        case(store).await;
    }
}

fn hooks(n: usize) -> Vec<WebhookBuilder> {
    (0..n).map(|_| testing::check_completed()).collect()
}

fn ids(hooks: &[WebhookBuilder]) -> Vec<String> {
    hooks.iter().map(|h| h.get_id().to_owned()).collect()
}

async fn stored_ids(store: &SharedStore) -> Vec<String> {
    store
        .entries()
        .await
        .expect("entries")
        .into_iter()
        .map(|e| e.webhook.id)
        .collect()
}

async fn lease(store: &SharedStore, worker: &str, now: SystemTime) -> Lease {
    store
        .lease_next(worker, now, LEASE)
        .await
        .expect("lease_next")
}

fn acquired(lease: Lease) -> super::Leased {
    match lease {
        Lease::Acquired(leased) => leased,
        other => panic!("expected the head to be leased, got {other:?}"),
    }
}

/// The webhooks of a request are stored in body order, pending, with their content intact.
pub async fn stores_in_body_order(store: SharedStore) {
    let batch = hooks(5);
    let outcome = store
        .insert(&testing::verified(&batch), t0())
        .await
        .expect("insert");
    assert_eq!(outcome.stored, ids(&batch), "stored ids in body order");
    assert!(outcome.duplicates.is_empty() && outcome.conflicts.is_empty());
    let entries = store.entries().await.expect("entries");
    assert_eq!(entries.len(), 5);
    for (i, (entry, hook)) in entries.iter().zip(&batch).enumerate() {
        assert_eq!(entry.webhook, hook.webhook(), "content of entry {i}");
        assert_eq!(entry.state, State::Pending);
        assert_eq!(entry.attempts, 0);
        assert_eq!(entry.position, i as i64);
        assert_eq!(entry.request_seq, entries[0].request_seq, "one request");
        assert_eq!(entry.received_at, t0());
        if i > 0 {
            assert!(entry.seq > entries[i - 1].seq, "arrival order increases");
        }
    }
}

/// A redelivered batch with an overlapping head stores only what is new.
pub async fn duplicates_are_skipped(store: SharedStore) {
    let all = hooks(6);
    store
        .insert(&testing::verified(&all[..4]), t0())
        .await
        .expect("first");
    let outcome = store
        .insert(&testing::verified(&all[2..]), t0())
        .await
        .expect("redelivery");
    assert_eq!(outcome.duplicates, ids(&all[2..4]));
    assert_eq!(outcome.stored, ids(&all[4..]));
    assert_eq!(
        stored_ids(&store).await,
        ids(&all),
        "nothing twice, arrival order kept"
    );
    // A duplicate of a webhook already handed on is still a duplicate.
    let head = acquired(lease(&store, "w", t0()).await);
    store.complete(head.seq, "w", t0()).await.expect("complete");
    let again = store
        .insert(&testing::verified(&all[..1]), t0())
        .await
        .expect("again");
    assert_eq!(again.duplicates, ids(&all[..1]));
    assert_eq!(store.entries().await.expect("entries").len(), 6);
}

/// The same id with a different body is kept out; the first version stays.
pub async fn conflicts_are_kept_out(store: SharedStore) {
    let original = testing::check_completed();
    store
        .insert(&testing::verified(std::slice::from_ref(&original)), t0())
        .await
        .expect("first");
    let changed = original.clone().data(json!({"profile_id": "someone-else"}));
    let fresh = testing::check_completed();
    let outcome = store
        .insert(&testing::verified(&[changed, fresh.clone()]), t0())
        .await
        .expect("second");
    assert_eq!(outcome.conflicts, vec![original.get_id().to_owned()]);
    assert_eq!(outcome.stored, vec![fresh.get_id().to_owned()]);
    let entries = store.entries().await.expect("entries");
    assert_eq!(entries[0].webhook, original.webhook(), "first version wins");
    assert_eq!(entries.len(), 2);
}

/// An id repeated inside one request is stored once (or is a conflict if the bodies differ).
pub async fn repeats_within_a_request(store: SharedStore) {
    let a = testing::check_completed();
    let b = a.clone().data(json!({"other": true}));
    let outcome = store
        .insert(&testing::verified(&[a.clone(), a.clone(), b]), t0())
        .await
        .expect("insert");
    assert_eq!(outcome.stored, vec![a.get_id().to_owned()]);
    assert_eq!(outcome.duplicates, vec![a.get_id().to_owned()]);
    assert_eq!(outcome.conflicts, vec![a.get_id().to_owned()]);
    assert_eq!(stored_ids(&store).await, vec![a.get_id().to_owned()]);
}

/// Rolling back (or dropping) a staged request leaves no trace, and the store stays usable.
pub async fn rollback_leaves_nothing(store: SharedStore) {
    let staged = store
        .stage(&testing::verified(&hooks(3)), t0())
        .await
        .expect("stage");
    assert_eq!(staged.outcome().stored.len(), 3);
    staged.rollback().await.expect("rollback");
    assert!(stored_ids(&store).await.is_empty(), "rolled back");
    let dropped = store
        .stage(&testing::verified(&hooks(2)), t0())
        .await
        .expect("stage");
    drop(dropped);
    assert!(stored_ids(&store).await.is_empty(), "dropped = rolled back");
    let status = store.status(t0()).await.expect("status");
    assert_eq!(status.last_received, None, "progress rolled back too");
    let later = hooks(1);
    store
        .insert(&testing::verified(&later), t0())
        .await
        .expect("usable after rollback");
    assert_eq!(stored_ids(&store).await, ids(&later));
}

/// Nothing staged is visible to readers or the worker before commit.
pub async fn staged_is_invisible_until_commit(store: SharedStore) {
    let batch = hooks(2);
    let staged = store
        .stage(&testing::verified(&batch), t0())
        .await
        .expect("stage");
    assert!(stored_ids(&store).await.is_empty(), "visible before commit");
    assert_eq!(store.status(t0()).await.expect("status").queue_depth, 0);
    let outcome = staged.commit().await.expect("commit");
    assert_eq!(outcome.stored, ids(&batch));
    assert_eq!(stored_ids(&store).await, ids(&batch));
}

/// An empty array is accepted and stores nothing.
pub async fn empty_request_is_fine(store: SharedStore) {
    let outcome = store
        .insert(&testing::verified(&[]), t0())
        .await
        .expect("insert");
    assert_eq!(outcome, Default::default());
    assert_eq!(lease(&store, "w", t0()).await, Lease::Empty);
}

/// Only the head is ever offered, and it moves on only when the head is done.
pub async fn leases_strictly_in_order(store: SharedStore) {
    let first = hooks(2);
    let second = hooks(2);
    store
        .insert(&testing::verified(&first), t0())
        .await
        .expect("first");
    store
        .insert(&testing::verified(&second), t0())
        .await
        .expect("second");
    let mut handed = Vec::new();
    for _ in 0..4 {
        let head = acquired(lease(&store, "w", t0()).await);
        assert_eq!(head.attempt, 1);
        // Asking again while holding it gives the same head (own lease), never the next one.
        let again = acquired(lease(&store, "w", t0()).await);
        assert_eq!(again.seq, head.seq, "the head is offered until it is done");
        handed.push(head.webhook.id.clone());
        store
            .complete(again.seq, "w", t0())
            .await
            .expect("complete");
    }
    assert_eq!(handed, [ids(&first), ids(&second)].concat());
    assert_eq!(lease(&store, "w", t0()).await, Lease::Empty);
    let entries = store.entries().await.expect("entries");
    assert!(entries
        .iter()
        .all(|e| e.state == State::Done && e.processed_at == Some(t0())));
}

/// A head leased by another worker is not offered until the lease expires.
pub async fn leases_exclude_other_workers(store: SharedStore) {
    store
        .insert(&testing::verified(&hooks(2)), t0())
        .await
        .expect("insert");
    let head = acquired(lease(&store, "a", t0()).await);
    match lease(&store, "b", t0() + Duration::from_secs(1)).await {
        Lease::Busy { until, owner } => {
            assert_eq!(until, t0() + LEASE);
            assert_eq!(owner, "a");
        }
        other => panic!("another worker's lease must exclude: {other:?}"),
    }
    let taken = acquired(lease(&store, "b", t0() + LEASE).await);
    assert_eq!(taken.seq, head.seq, "an expired lease is taken over");
    assert_eq!(taken.attempt, 2, "every lease counts as an attempt");
    assert!(matches!(
        store.complete(head.seq, "a", t0() + LEASE).await,
        Err(StoreError::LeaseLost { .. })
    ));
    store
        .complete(taken.seq, "b", t0() + LEASE)
        .await
        .expect("complete");
}

/// A failed attempt goes back to pending and blocks the queue until its retry time.
pub async fn failure_schedules_a_retry(store: SharedStore) {
    let batch = hooks(2);
    store
        .insert(&testing::verified(&batch), t0())
        .await
        .expect("insert");
    let head = acquired(lease(&store, "w", t0()).await);
    let retry_at = t0() + Duration::from_secs(30);
    store
        .fail(head.seq, "w", t0(), "boom", AfterFailure::RetryAt(retry_at))
        .await
        .expect("fail");
    assert_eq!(lease(&store, "w", t0()).await, Lease::NotBefore(retry_at));
    assert_eq!(
        lease(&store, "other", retry_at - Duration::from_millis(1)).await,
        Lease::NotBefore(retry_at),
        "nothing behind a waiting head is offered"
    );
    let again = acquired(lease(&store, "w", retry_at).await);
    assert_eq!(again.seq, head.seq);
    assert_eq!(again.attempt, 2);
    let status = store.status(retry_at).await.expect("status");
    assert_eq!(status.recent_failures.len(), 1);
    assert_eq!(status.recent_failures[0].error, "boom");
    assert_eq!(status.recent_failures[0].attempt, 1);
    assert_eq!(status.recent_failures[0].id, batch[0].get_id());
}

/// A dead letter is passed over; retrying it puts it back at its original position.
pub async fn dead_letters_and_retry(store: SharedStore) {
    let batch = hooks(3);
    store
        .insert(&testing::verified(&batch), t0())
        .await
        .expect("insert");
    let head = acquired(lease(&store, "w", t0()).await);
    store
        .fail(head.seq, "w", t0(), "gave up", AfterFailure::DeadLetter)
        .await
        .expect("dead letter");
    let dead = store.dead_letters().await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, batch[0].get_id());
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("gave up"));
    assert_eq!(dead[0].failed_at, Some(t0()));
    let next = acquired(lease(&store, "w", t0()).await);
    assert_eq!(
        next.webhook.id,
        batch[1].get_id(),
        "the queue moves on past a dead letter"
    );
    store.complete(next.seq, "w", t0()).await.expect("complete");
    assert!(store
        .retry_dead_letter(batch[0].get_id(), t0())
        .await
        .expect("retry"));
    assert!(!store
        .retry_dead_letter(batch[0].get_id(), t0())
        .await
        .expect("retry twice"));
    assert!(!store
        .retry_dead_letter("no-such-id", t0())
        .await
        .expect("retry unknown"));
    let retried = acquired(lease(&store, "w", t0()).await);
    assert_eq!(
        retried.webhook.id,
        batch[0].get_id(),
        "a retried dead letter is next"
    );
    assert_eq!(retried.attempt, 1, "attempts start afresh");
    store
        .fail(retried.seq, "w", t0(), "again", AfterFailure::DeadLetter)
        .await
        .expect("dead again");
    let third = acquired(lease(&store, "w", t0()).await);
    store
        .fail(third.seq, "w", t0(), "too", AfterFailure::DeadLetter)
        .await
        .expect("dead too");
    assert_eq!(store.status(t0()).await.expect("status").dead_letters, 2);
    assert_eq!(
        store.retry_all_dead_letters(t0()).await.expect("retry all"),
        2
    );
    assert!(store.dead_letters().await.expect("dead letters").is_empty());
    let order: Vec<String> = {
        let mut order = Vec::new();
        while let Lease::Acquired(leased) = lease(&store, "w", t0()).await {
            order.push(leased.webhook.id.clone());
            store
                .complete(leased.seq, "w", t0())
                .await
                .expect("complete");
        }
        order
    };
    assert_eq!(
        order,
        vec![batch[0].get_id().to_owned(), batch[2].get_id().to_owned()]
    );
}

/// `stalled_since` is when the head first failed in its current run: not while its first
/// attempt runs, still while it is retried, cleared once it is done, and afresh for a retried
/// dead letter.
pub async fn stalled_since_marks_the_head_s_failures(store: SharedStore) {
    let batch = hooks(2);
    store
        .insert(&testing::verified(&batch), t0())
        .await
        .expect("insert");
    let stalled = |store: SharedStore, now| async move {
        store.status(now).await.expect("status").stalled_since
    };
    assert_eq!(stalled(store.clone(), t0()).await, None, "nothing failed");
    let first = acquired(lease(&store, "w", t0()).await);
    assert_eq!(
        stalled(store.clone(), t0()).await,
        None,
        "first attempt running"
    );
    let t1 = t0() + Duration::from_secs(1);
    let t2 = t0() + Duration::from_secs(2);
    store
        .fail(first.seq, "w", t1, "boom", AfterFailure::RetryAt(t2))
        .await
        .expect("fail");
    assert_eq!(stalled(store.clone(), t1).await, Some(t1));
    let second = acquired(lease(&store, "w", t2).await);
    assert_eq!(
        stalled(store.clone(), t2).await,
        Some(t1),
        "still stalled while retried"
    );
    let t3 = t0() + Duration::from_secs(3);
    store
        .fail(second.seq, "w", t3, "boom", AfterFailure::DeadLetter)
        .await
        .expect("dead letter");
    assert_eq!(
        stalled(store.clone(), t3).await,
        None,
        "the next webhook has not failed"
    );
    let next = acquired(lease(&store, "w", t3).await);
    store.complete(next.seq, "w", t3).await.expect("complete");
    let t4 = t0() + Duration::from_secs(4);
    assert!(store
        .retry_dead_letter(batch[0].get_id(), t4)
        .await
        .expect("retry"));
    assert_eq!(
        stalled(store.clone(), t4).await,
        None,
        "a retried dead letter starts afresh"
    );
    let again = acquired(lease(&store, "w", t4).await);
    let t5 = t0() + Duration::from_secs(5);
    store
        .fail(again.seq, "w", t5, "boom", AfterFailure::RetryAt(t5))
        .await
        .expect("fail again");
    assert_eq!(stalled(store.clone(), t5).await, Some(t5), "its new run");
    let last = acquired(lease(&store, "w", t5).await);
    store.complete(last.seq, "w", t5).await.expect("complete");
    assert_eq!(stalled(store.clone(), t5).await, None, "done: empty");
}

/// Completing or failing a webhook this worker does not hold is refused.
pub async fn lost_lease_is_refused(store: SharedStore) {
    store
        .insert(&testing::verified(&hooks(1)), t0())
        .await
        .expect("insert");
    let head = acquired(lease(&store, "w", t0()).await);
    assert!(matches!(
        store.complete(head.seq, "intruder", t0()).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        store
            .fail(head.seq, "intruder", t0(), "x", AfterFailure::DeadLetter)
            .await,
        Err(StoreError::LeaseLost { .. })
    ));
    store.complete(head.seq, "w", t0()).await.expect("complete");
    assert!(
        matches!(
            store.complete(head.seq, "w", t0()).await,
            Err(StoreError::LeaseLost { .. })
        ),
        "done twice"
    );
}

/// Status: depth, last received and processed ids with times, lag.
pub async fn status_reports_progress(store: SharedStore) {
    let empty = store.status(t0()).await.expect("status");
    assert_eq!(empty.queue_depth, 0);
    assert_eq!(empty.last_received, None);
    assert_eq!(empty.last_processed, None);
    assert_eq!(empty.oldest_pending_since, None);
    let batch = hooks(3);
    let t1 = t0() + Duration::from_secs(5);
    store
        .insert(&testing::verified(&batch), t0())
        .await
        .expect("insert");
    let head = acquired(lease(&store, "w", t1).await);
    let status = store.status(t1).await.expect("status");
    assert_eq!(status.queue_depth, 3);
    assert_eq!(status.leased, 1);
    assert_eq!(status.oldest_pending_since, Some(t0()));
    let received = status.last_received.expect("last received");
    assert_eq!(received.id, batch[2].get_id());
    assert_eq!(received.at, t0());
    store.complete(head.seq, "w", t1).await.expect("complete");
    let status = store.status(t1).await.expect("status");
    assert_eq!(status.queue_depth, 2);
    assert_eq!(status.done, 1);
    let processed = status.last_processed.expect("last processed");
    assert_eq!(processed.id, batch[0].get_id());
    assert_eq!(processed.at, t1);
    // A request of duplicates only does not move "last received".
    store
        .insert(&testing::verified(&batch[..1]), t1)
        .await
        .expect("dup");
    let status = store.status(t1).await.expect("status");
    assert_eq!(
        status.last_received.expect("last received").id,
        batch[2].get_id()
    );
    store.ping().await.expect("ping");
}

/// Requests inserted concurrently each occupy one contiguous run of arrival positions.
pub async fn concurrent_requests_never_interleave(store: SharedStore) {
    let requests: Vec<Vec<WebhookBuilder>> = (0..8).map(|_| hooks(10)).collect();
    let tasks: Vec<_> = requests
        .iter()
        .map(|batch| {
            let store = store.clone();
            let verified = testing::verified(batch);
            tokio::spawn(async move { store.insert(&verified, t0()).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("insert");
    }
    let entries = store.entries().await.expect("entries");
    assert_eq!(entries.len(), 80);
    for run in entries.chunks(10) {
        let request = run[0].request_seq;
        assert!(
            run.iter().all(|e| e.request_seq == request),
            "interleaved requests"
        );
        let run_ids: Vec<String> = run.iter().map(|e| e.webhook.id.clone()).collect();
        assert!(
            requests.iter().any(|batch| ids(batch) == run_ids),
            "a request's webhooks out of body order"
        );
    }
}

/// The body secret never reaches the store.
pub async fn secret_is_never_stored(store: SharedStore) {
    let hook = testing::check_completed().secret(testing::SECRET);
    store
        .insert(&testing::verified(&[hook]), t0())
        .await
        .expect("insert");
    for entry in store.entries().await.expect("entries") {
        let text = entry.webhook.to_json_string();
        assert!(!text.contains(testing::SECRET), "secret stored: {text}");
        assert!(entry.webhook.extra.get("secret").is_none());
    }
}

/// Leases and completes everything due at `now`, in order.
async fn process_all(store: &SharedStore, now: SystemTime) {
    while let Lease::Acquired(leased) = lease(store, "w", now).await {
        store
            .complete(leased.seq, "w", now)
            .await
            .expect("complete");
    }
}

fn erased(entries: &[super::Entry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.body_erased_at.is_some())
        .map(|e| e.webhook.id.clone())
        .collect()
}

/// Bodies of webhooks processed longer than `keep-bodies` ago are erased; rows processed longer
/// than `keep-ids` ago are forgotten; pending and dead ones never; an erased id is still a
/// duplicate, a forgotten one is new again.
pub async fn retention_erases_bodies_then_forgets_ids(store: SharedStore) {
    use crate::retention::{self, Retention};
    let day = Duration::from_secs(86_400);
    let policy = Retention::new(30 * day, 90 * day).expect("policy");
    let batch = hooks(4);
    store
        .insert(&testing::verified(&batch), t0())
        .await
        .expect("insert");
    let hour = Duration::from_secs(3600);
    let processed = t0() + hour;
    // First two handed on, the third dead-lettered, the fourth left pending.
    for _ in 0..2 {
        let leased = acquired(lease(&store, "w", processed).await);
        store
            .complete(leased.seq, "w", processed)
            .await
            .expect("complete");
    }
    let third = acquired(lease(&store, "w", processed).await);
    store
        .fail(third.seq, "w", processed, "down", AfterFailure::DeadLetter)
        .await
        .expect("dead letter");

    let nothing = retention::Pruned::default();
    let early = processed + 30 * day - Duration::from_secs(1);
    assert_eq!(
        retention::prune(&*store, &policy, early)
            .await
            .expect("prune"),
        nothing,
        "nothing is due a second before keep-bodies"
    );
    let due = processed + 30 * day;
    let preview = retention::prune_preview(&*store, &policy, due)
        .await
        .expect("preview");
    assert_eq!(preview.bodies_erased, 2);
    assert_eq!(preview.ids_forgotten, 0);
    assert!(
        erased(&store.entries().await.expect("entries")).is_empty(),
        "a preview changes nothing"
    );
    let pruned = retention::prune(&*store, &policy, due)
        .await
        .expect("prune");
    assert_eq!(pruned, preview, "the prune does what the preview said");
    let entries = store.entries().await.expect("entries");
    assert_eq!(
        erased(&entries),
        ids(&batch[..2]),
        "only processed bodies go"
    );
    assert_eq!(entries.len(), 4, "ids stay");
    assert_eq!(
        entries[0].webhook.event, "CHECK_COMPLETED",
        "the event stays"
    );
    assert_eq!(entries[0].webhook.data, json!(null), "the data goes");
    assert_eq!(entries[0].processed_at, Some(processed));
    assert_eq!(
        entries[2].webhook.data,
        batch[2].webhook().data,
        "dead letters keep their body"
    );
    assert_eq!(
        entries[3].webhook.data,
        batch[3].webhook().data,
        "pending ones keep theirs"
    );

    let status = store.retention_status().await.expect("retention status");
    assert_eq!(status.webhooks_stored, 4);
    assert_eq!(status.bodies_kept, 2);
    assert_eq!(status.oldest_kept_body_received_at, Some(t0()));
    assert_eq!(
        (status.bodies_erased_total, status.ids_forgotten_total),
        (2, 0)
    );
    assert!(status.database_bytes > 0, "the database has a size");

    // A redelivery of an erased webhook is a duplicate, whatever it carries now.
    let again = store
        .insert(&testing::verified(&batch[..1]), due)
        .await
        .expect("redeliver");
    assert_eq!(again.duplicates, ids(&batch[..1]));
    assert!(again.stored.is_empty() && again.conflicts.is_empty());
    let changed = batch[1].clone().data(json!({"profile_id": "other"}));
    let again = store
        .insert(&testing::verified(&[changed]), due)
        .await
        .expect("redeliver changed");
    assert_eq!(
        again.duplicates,
        ids(&batch[1..2]),
        "nothing left to call it a conflict"
    );

    assert_eq!(
        retention::prune(
            &*store,
            &policy,
            processed + 90 * day - Duration::from_secs(1)
        )
        .await
        .expect("prune"),
        nothing
    );
    let pruned = retention::prune(&*store, &policy, processed + 90 * day)
        .await
        .expect("prune");
    assert_eq!(pruned.ids_forgotten, 2);
    assert_eq!(pruned.bodies_erased, 0, "their bodies were already gone");
    assert_eq!(
        stored_ids(&store).await,
        ids(&batch[2..]),
        "dead and pending rows stay"
    );
    let status = store.retention_status().await.expect("retention status");
    assert_eq!(
        (status.bodies_erased_total, status.ids_forgotten_total),
        (2, 2)
    );
    assert_eq!(status.webhooks_stored, 2);

    // Once forgotten, a redelivery is new.
    let again = store
        .insert(&testing::verified(&batch[..1]), processed + 90 * day)
        .await
        .expect("redeliver forgotten");
    assert_eq!(again.stored, ids(&batch[..1]));
}

/// One prune step touches at most `limit` rows, and the counters add up.
pub async fn prune_works_in_small_steps(store: SharedStore) {
    use crate::retention::Retention;
    let day = Duration::from_secs(86_400);
    let batch = hooks(7);
    store
        .insert(&testing::verified(&batch), t0())
        .await
        .expect("insert");
    process_all(&store, t0()).await;
    let cutoffs = Retention::new(day, 2 * day)
        .expect("policy")
        .cutoffs(t0() + 3 * day);
    let mut steps = Vec::new();
    loop {
        let step = store.prune_step(&cutoffs, 3).await.expect("step");
        if step == crate::retention::Pruned::default() {
            break;
        }
        steps.push((step.bodies_erased, step.ids_forgotten));
    }
    // Each step erases at most 3 and forgets at most 3 (a forgotten row may take its body).
    assert!(steps.iter().all(|(b, i)| *b <= 6 && *i <= 3), "{steps:?}");
    let erased: u64 = steps.iter().map(|(b, _)| b).sum();
    let forgotten: u64 = steps.iter().map(|(_, i)| i).sum();
    assert_eq!((erased, forgotten), (7, 7));
    assert!(stored_ids(&store).await.is_empty());
    let status = store.retention_status().await.expect("retention status");
    assert_eq!(
        (status.bodies_erased_total, status.ids_forgotten_total),
        (7, 7)
    );
    assert_eq!(status.oldest_kept_body_received_at, None);
}

/// `dead-letter drop`: the body is erased now, the id stays (a redelivery is a duplicate), it
/// leaves the dead-letter list and cannot be retried; it is forgotten `keep-ids` after the drop.
pub async fn dropped_dead_letter_keeps_its_id(store: SharedStore) {
    use crate::retention::{self, Retention};
    let batch = hooks(2);
    store
        .insert(&testing::verified(&batch), t0())
        .await
        .expect("insert");
    let head = acquired(lease(&store, "w", t0()).await);
    store
        .fail(head.seq, "w", t0(), "bad payload", AfterFailure::DeadLetter)
        .await
        .expect("dead letter");
    let id = batch[0].get_id();
    let later = t0() + Duration::from_secs(600);
    assert!(!store
        .drop_dead_letter("no-such-id", later)
        .await
        .expect("drop unknown"));
    assert!(
        !store
            .drop_dead_letter(batch[1].get_id(), later)
            .await
            .expect("drop pending"),
        "only dead letters can be dropped"
    );
    assert!(store.drop_dead_letter(id, later).await.expect("drop"));
    assert!(store.dead_letters().await.expect("dead letters").is_empty());
    assert!(!store.drop_dead_letter(id, later).await.expect("drop twice"));
    assert!(!store
        .retry_dead_letter(id, later)
        .await
        .expect("retry dropped"));
    let entries = store.entries().await.expect("entries");
    assert_eq!(erased(&entries), vec![id.to_owned()]);
    assert!(
        store
            .status(later)
            .await
            .expect("status")
            .recent_failures
            .is_empty(),
        "its failures (which may quote the payload) go with it"
    );
    let again = store
        .insert(&testing::verified(&batch[..1]), later)
        .await
        .expect("redeliver");
    assert_eq!(again.duplicates, vec![id.to_owned()]);
    let status = store.retention_status().await.expect("retention status");
    assert_eq!(status.bodies_erased_total, 1);
    let day = Duration::from_secs(86_400);
    let policy = Retention::new(day, 2 * day).expect("policy");
    let pruned = retention::prune(&*store, &policy, later + 2 * day)
        .await
        .expect("prune");
    assert_eq!(pruned.ids_forgotten, 1);
    assert_eq!(stored_ids(&store).await, ids(&batch[1..]));
}

/// The replay stream: arrival order, inclusive bounds by acknowledgement time and by id, an
/// event filter, erased ones listed without a body, unknown ids refused; nothing changes.
pub async fn replay_streams_a_range_in_arrival_order(store: SharedStore) {
    use crate::replay::{self, Range, ReplayError, StoredWebhook};
    use futures::TryStreamExt;
    let minute = Duration::from_secs(60);
    let mut all = Vec::new();
    for i in 0..4u32 {
        let request = vec![
            testing::check_completed(),
            testing::product_status_changed(),
        ];
        store
            .insert(&testing::verified(&request), t0() + minute * i)
            .await
            .expect("insert");
        all.extend(request);
    }
    let collect = |range: Range| {
        let store = store.clone();
        async move {
            let stream = replay::stored_webhooks(&*store, &range).await?;
            let found: Vec<StoredWebhook> = stream.try_collect().await?;
            Ok::<_, ReplayError>(found.into_iter().map(|s| s.id).collect::<Vec<_>>())
        }
    };
    assert_eq!(collect(Range::default()).await.expect("all"), ids(&all));
    let window = Range {
        since: Some(t0() + minute),
        until: Some(t0() + minute * 2),
        ..Range::default()
    };
    assert_eq!(collect(window).await.expect("by time"), ids(&all[2..6]));
    let by_id = Range {
        from_id: Some(all[3].get_id().to_owned()),
        to_id: Some(all[6].get_id().to_owned()),
        events: vec!["PRODUCT_STATUS_CHANGED".into()],
        ..Range::default()
    };
    assert_eq!(
        collect(by_id).await.expect("by id"),
        vec![all[3].get_id().to_owned(), all[5].get_id().to_owned()]
    );
    let unknown = Range {
        to_id: Some("no-such-id".into()),
        ..Range::default()
    };
    assert!(matches!(
        collect(unknown).await,
        Err(ReplayError::UnknownId(id)) if id == "no-such-id"
    ));
    // Pages of one: order holds across pages.
    let bounds = replay::positions(&*store, &Range::default())
        .await
        .expect("positions");
    let mut after = i64::MIN;
    let mut paged = Vec::new();
    loop {
        let page = store.stored_page(&bounds, after, 1).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page.into_iter().map(|s| s.id));
    }
    assert_eq!(paged, ids(&all));
    // Erased bodies are listed without the webhook.
    process_all(&store, t0() + minute * 5).await;
    let day = Duration::from_secs(86_400);
    crate::retention::prune(
        &*store,
        &crate::retention::Retention::new(day, 3 * day).expect("policy"),
        t0() + 2 * day,
    )
    .await
    .expect("prune");
    let stream = replay::stored_webhooks(&*store, &Range::default())
        .await
        .expect("stream");
    let found: Vec<StoredWebhook> = stream.try_collect().await.expect("collect");
    assert_eq!(found.len(), 8);
    assert!(found.iter().all(|s| s.webhook.is_none()));
    assert_eq!(found[1].event, "PRODUCT_STATUS_CHANGED");
    assert_eq!(found[1].received_at, t0());
    // A replay (stream) changed nothing in the queue.
    let status = store.status(t0()).await.expect("status");
    assert_eq!(status.done, 8);
    assert_eq!(status.queue_depth, 0);
}

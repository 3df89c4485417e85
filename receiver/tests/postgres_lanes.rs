//! The per-profile ordering of the PostgreSQL store, lease by lease: profiles proceed in
//! parallel, one worker per profile at a time, each profile strictly in order; a failing
//! webhook holds back only its own profile; an expired lease is taken over and the old holder
//! can no longer complete. Time is given to the store explicitly (what a `VirtualClock` does).

mod postgres_support;

use passfort_receiver::store::{
    AfterFailure, Lease, Leased, Ordering, PostgresStore, Store, StoreError,
};
use passfort_receiver::testing::{self, WebhookBuilder};
use postgres_support::TestDatabase;
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LEASE: Duration = Duration::from_secs(60);

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn of(profile: &str) -> WebhookBuilder {
    testing::check_completed().data(json!({ "profile_id": profile }))
}

fn acquired(lease: Lease) -> Leased {
    match lease {
        Lease::Acquired(leased) => leased,
        other => panic!("expected a lease, got {other:?}"),
    }
}

async fn lease(store: &PostgresStore, worker: &str, now: SystemTime) -> Lease {
    store.lease_next(worker, now, LEASE).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_proceed_in_parallel_each_in_order() {
    let db = TestDatabase::create().await;
    let url = db.schema("lanes").await;
    let store = PostgresStore::open_with_connections(&url, Ordering::PerProfile, 4)
        .await
        .unwrap();
    // Arrival: a1 b1 a2 c1 b2 (no profile: n1).
    let (a1, b1, a2, c1, b2) = (of("a"), of("b"), of("a"), of("c"), of("b"));
    let n1 = testing::unknown_event("NO_PROFILE").data(json!({}));
    store
        .insert(
            &testing::verified(&[
                a1.clone(),
                b1.clone(),
                a2.clone(),
                c1.clone(),
                b2.clone(),
                n1.clone(),
            ]),
            t0(),
        )
        .await
        .unwrap();

    // Three workers get the heads of three different profiles at once.
    let w1 = acquired(lease(&store, "w1", t0()).await);
    let w2 = acquired(lease(&store, "w2", t0()).await);
    let w3 = acquired(lease(&store, "w3", t0()).await);
    assert_eq!(w1.webhook.id, a1.get_id());
    assert_eq!(w2.webhook.id, b1.get_id(), "profile b waits for nobody");
    assert_eq!(w3.webhook.id, c1.get_id(), "a2 waits for a1; b2 for b1");
    // Asking again while holding a lease gives the same webhook.
    assert_eq!(acquired(lease(&store, "w1", t0()).await).seq, w1.seq);

    // The no-profile webhooks form a lane of their own.
    let w4 = acquired(lease(&store, "w4", t0()).await);
    assert_eq!(w4.webhook.id, n1.get_id());
    // Every remaining webhook waits behind a held head: the worker hears when one frees up.
    match lease(&store, "w5", t0()).await {
        Lease::Busy { until, .. } => assert_eq!(until, t0() + LEASE),
        other => panic!("expected busy, got {other:?}"),
    }

    // a1 fails: a2 must wait for its retry, but b and c go on.
    let retry_at = t0() + Duration::from_secs(30);
    store
        .fail(w1.seq, "w1", t0(), "boom", AfterFailure::RetryAt(retry_at))
        .await
        .unwrap();
    store.complete(w2.seq, "w2", t0()).await.unwrap();
    let next = acquired(lease(&store, "w1", t0()).await);
    assert_eq!(
        next.webhook.id,
        b2.get_id(),
        "a failing profile holds back only itself"
    );
    store.complete(next.seq, "w1", t0()).await.unwrap();
    store.complete(w3.seq, "w3", t0()).await.unwrap();
    store.complete(w4.seq, "w4", t0()).await.unwrap();
    assert_eq!(lease(&store, "w1", t0()).await, Lease::NotBefore(retry_at));

    // At the retry time a1 comes back (attempt 3: every lease counts, w1 asked twice), then a2.
    let again = acquired(lease(&store, "w2", retry_at).await);
    assert_eq!((again.webhook.id.as_str(), again.attempt), (a1.get_id(), 3));
    assert!(matches!(
        lease(&store, "w1", retry_at).await,
        Lease::Busy { .. }
    ));
    store.complete(again.seq, "w2", retry_at).await.unwrap();
    let last = acquired(lease(&store, "w1", retry_at).await);
    assert_eq!(last.webhook.id, a2.get_id());
    store.complete(last.seq, "w1", retry_at).await.unwrap();
    assert_eq!(lease(&store, "w1", retry_at).await, Lease::Empty);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_the_zombie_cannot_finish() {
    let db = TestDatabase::create().await;
    for ordering in [Ordering::Global, Ordering::PerProfile] {
        let url = db
            .schema(&format!("takeover_{}", ordering.as_str().replace('-', "_")))
            .await;
        let store = PostgresStore::open_with_connections(&url, ordering, 4)
            .await
            .unwrap();
        let hooks = [of("a"), of("a")];
        store
            .insert(&testing::verified(&hooks), t0())
            .await
            .unwrap();
        let first = acquired(lease(&store, "dies", t0()).await);
        // Until the deadline nobody else gets profile a.
        assert!(matches!(
            lease(&store, "heir", t0() + LEASE - Duration::from_millis(1)).await,
            Lease::Busy { .. }
        ));
        let taken = acquired(lease(&store, "heir", t0() + LEASE).await);
        assert_eq!(taken.seq, first.seq, "{ordering}: the head is taken over");
        assert_eq!(taken.attempt, 2);
        assert!(matches!(
            store.complete(first.seq, "dies", t0() + LEASE).await,
            Err(StoreError::LeaseLost { .. })
        ));
        assert!(matches!(
            store
                .fail(
                    first.seq,
                    "dies",
                    t0() + LEASE,
                    "late",
                    AfterFailure::DeadLetter
                )
                .await,
            Err(StoreError::LeaseLost { .. })
        ));
        store
            .complete(taken.seq, "heir", t0() + LEASE)
            .await
            .unwrap();
        let second = acquired(lease(&store, "heir", t0() + LEASE).await);
        assert_eq!(second.webhook.id, hooks[1].get_id());
        store.close().await;
    }
}

/// Many workers racing for leases on one database never get the same webhook, and in
/// per-profile order never two of one profile at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_workers_never_share_a_lane() {
    let db = TestDatabase::create().await;
    let url = db.schema("race").await;
    let hooks: Vec<WebhookBuilder> = (0..40).map(|i| of(&format!("p{}", i % 4))).collect();
    let store = PostgresStore::open_with_connections(&url, Ordering::PerProfile, 8)
        .await
        .unwrap();
    store
        .insert(&testing::verified(&hooks), t0())
        .await
        .unwrap();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.lease_next(&format!("r{i}"), t0(), LEASE).await })
        })
        .collect();
    let mut won = Vec::new();
    for racer in racers {
        if let Lease::Acquired(leased) = racer.await.unwrap().unwrap() {
            won.push(leased);
        }
    }
    let mut profiles: Vec<String> = won
        .iter()
        .map(|l| l.webhook.data["profile_id"].as_str().unwrap().to_owned())
        .collect();
    profiles.sort();
    assert_eq!(
        profiles,
        ["p0", "p1", "p2", "p3"],
        "one lease per profile, every profile served"
    );
    let ids: Vec<&str> = won.iter().map(|l| l.webhook.id.as_str()).collect();
    for leased in &won {
        assert!(
            hooks[..4].iter().any(|h| h.get_id() == leased.webhook.id),
            "not a profile's head: {ids:?}"
        );
    }
    store.close().await;
}

/// A free profile far behind a long busy one is still found (past the first open webhooks the
/// fast path looks at).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_profile_behind_a_long_busy_one_is_found() {
    let db = TestDatabase::create().await;
    let url = db.schema("deep").await;
    let store = PostgresStore::open_with_connections(&url, Ordering::PerProfile, 4)
        .await
        .unwrap();
    let mut hooks: Vec<WebhookBuilder> = (0..150).map(|_| of("busy")).collect();
    hooks.push(of("free"));
    store
        .insert(&testing::verified(&hooks), t0())
        .await
        .unwrap();
    let first = acquired(lease(&store, "w1", t0()).await);
    assert_eq!(first.webhook.id, hooks[0].get_id());
    let deep = acquired(lease(&store, "w2", t0()).await);
    assert_eq!(deep.webhook.id, hooks[150].get_id());
    assert!(matches!(
        lease(&store, "w3", t0()).await,
        Lease::Busy { .. }
    ));
    store.close().await;
}

/// Per-profile ordering is a PostgreSQL feature: asking SQLite for it is a clear error.
#[tokio::test]
async fn sqlite_refuses_per_profile_ordering() {
    let refused =
        passfort_receiver::store::open_with("sqlite::memory:", Ordering::PerProfile).await;
    match refused {
        Err(e @ StoreError::UnsupportedOrdering { .. }) => {
            assert_eq!(
                e.to_string(),
                "per-profile ordering is not supported by SQLite"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

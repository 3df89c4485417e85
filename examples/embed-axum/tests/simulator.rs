//! The application driven by the simulator (`passfort-sender-sim`): PassFort's own order,
//! single requests and batches, lost answers and refused connections (so webhooks arrive twice),
//! against the receiver nested in the app. Afterwards the customers table must say exactly what
//! the webhooks said, each check recorded once, each unknown event kept once.
//!
//! Time is a `VirtualClock` shared by the simulator, the receiver and the worker: the
//! simulator's 30 s back-off after a lost answer costs nothing.

use embed_axum::passfort::{NO_CUSTOMER, UNKNOWN_EVENT};
use embed_axum::{App, Customer, Customers, NewCustomer};
use passfort_receiver::store::State;
use passfort_receiver::worker::Idle;
use passfort_receiver::{SecretSet, SqliteStore};
use passfort_sender_sim::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const SECRET: &str = "embed-axum-shared-secret";

/// What the application must end up with, worked out from the webhooks PassFort sent.
struct Expected {
    /// Every webhook, in send order.
    ids: Vec<String>,
    /// customer_ref → last status.
    statuses: BTreeMap<String, String>,
    /// CHECK_COMPLETED ids in order, with the customer they belong to.
    checks: Vec<(String, Option<String>)>,
    /// Kept webhook ids in order, with why.
    kept: Vec<(String, &'static str)>,
}

/// A PassFort-shaped day: overlapping profile lifecycles with two events the library does not
/// know mixed in.
fn webhooks(clock: &VirtualClock, seed: u64) -> Vec<Webhook> {
    let mut generator = Generator::new(seed);
    let mut hooks = generator.mix(40, clock.now());
    for position in [5, 23] {
        let unknown = generator.webhook_with_data(
            EventType::Other("APPLICANT_PORTAL_VISITED".into()),
            clock.now(),
            json!({"customer_request": {"id": "cr-1", "state": "OPEN"}, "profile_id": null}),
        );
        hooks.insert(position, unknown);
    }
    hooks
}

fn str_field(data: &Value, key: &str) -> Option<String> {
    data.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The application's customers for these webhooks: one per profile, by the webhook's
/// `customer_ref` when it has one (matched by reference), else under a local reference with the
/// profile id (matched by profile). The first profile with a status change is left out, so its
/// status changes must be kept, not lost.
fn customers_for(hooks: &[Webhook]) -> (Vec<NewCustomer>, Expected) {
    let mut customers: Vec<NewCustomer> = Vec::new();
    let mut by_profile: BTreeMap<String, String> = BTreeMap::new();
    let left_out = hooks
        .iter()
        .find(|h| h.event == EventType::ProductStatusChanged)
        .and_then(|h| str_field(&h.data, "profile_id"));
    for hook in hooks {
        let Some(profile_id) = str_field(&hook.data, "profile_id") else {
            continue;
        };
        if Some(&profile_id) == left_out.as_ref() || by_profile.contains_key(&profile_id) {
            continue;
        }
        let customer_ref = str_field(&hook.data, "customer_ref")
            .unwrap_or_else(|| format!("LOCAL-{}", &profile_id[..8]));
        by_profile.insert(profile_id.clone(), customer_ref.clone());
        customers.push(NewCustomer {
            name: format!("Customer {customer_ref}"),
            customer_ref,
            passfort_profile_id: Some(profile_id),
        });
    }
    let mut expected = Expected {
        ids: Vec::new(),
        statuses: BTreeMap::new(),
        checks: Vec::new(),
        kept: Vec::new(),
    };
    for hook in hooks {
        let id = hook.id.to_string();
        expected.ids.push(id.clone());
        let customer =
            str_field(&hook.data, "profile_id").and_then(|p| by_profile.get(&p).cloned());
        match &hook.event {
            EventType::ProductStatusChanged => match customer {
                Some(customer_ref) => {
                    let status = str_field(&hook.data, "new_status").unwrap();
                    expected.statuses.insert(customer_ref, status);
                }
                None => expected.kept.push((id, NO_CUSTOMER)),
            },
            EventType::CheckCompleted => expected.checks.push((id, customer)),
            EventType::Other(_) => expected.kept.push((id, UNKNOWN_EVENT)),
            _ => {}
        }
    }
    assert!(left_out.is_some() && !expected.statuses.is_empty());
    assert!(!expected.checks.is_empty());
    (customers, expected)
}

async fn app(clock: &VirtualClock) -> App {
    App::new(
        Customers::in_memory().await.unwrap(),
        Arc::new(SqliteStore::in_memory().await.unwrap()),
        SecretSet::single(SECRET).unwrap(),
        Arc::new(clock.clone()),
    )
    .unwrap()
}

fn engine_options() -> EngineOptions {
    EngineOptions {
        seed: 11,
        // Generous real-time patience before virtual time moves while a request is in flight,
        // so a slow disk never makes the receiver's store deadline fire.
        quiet: Duration::from_secs(5),
        grace: Duration::from_secs(5),
        ..EngineOptions::default()
    }
}

/// What the app's own `GET /customers` says.
async fn customers_over_the_app(router: axum::Router) -> Vec<Customer> {
    let answer = router
        .oneshot(
            http::Request::get("/customers")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn assert_in_step(
    app_router: axum::Router,
    customers: &Customers,
    app: &AppParts,
    expected: &Expected,
) {
    // The receiver stored each webhook once, in PassFort's order, and handed every one on.
    let entries = app.queue.entries().await.unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.webhook.id.clone())
            .collect::<Vec<_>>(),
        expected.ids
    );
    assert!(entries.iter().all(|e| e.state == State::Done));

    let statuses: BTreeMap<String, String> = customers_over_the_app(app_router)
        .await
        .into_iter()
        .filter_map(|c| c.kyc_status.map(|s| (c.customer_ref, s)))
        .collect();
    assert_eq!(statuses, expected.statuses);

    let checks: Vec<(String, Option<String>)> = customers
        .checks(None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.webhook_id, c.customer_ref))
        .collect();
    assert_eq!(checks, expected.checks);

    let kept = customers.kept().await.unwrap();
    assert_eq!(
        kept.iter()
            .map(|k| (k.webhook_id.clone(), k.reason.as_str()))
            .collect::<Vec<_>>(),
        expected
            .kept
            .iter()
            .map(|(id, reason)| (id.clone(), *reason))
            .collect::<Vec<_>>()
    );
    for event in &kept {
        assert!(
            !event.payload.contains(SECRET),
            "secret kept: {}",
            event.payload
        );
        let payload: Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(payload["id"], event.webhook_id.as_str());
    }
}

struct AppParts {
    queue: passfort_receiver::SharedStore,
}

#[tokio::test]
async fn simulated_passfort_through_the_nested_receiver_keeps_customers_in_step() {
    let clock = VirtualClock::new();
    let app = app(&clock).await;
    let hooks = webhooks(&clock, 7);
    let (new_customers, expected) = customers_for(&hooks);
    // The app's own route creates its customers, as it always has.
    for customer in &new_customers {
        let answer = app
            .router()
            .oneshot(
                http::Request::post("/customers")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(
                        serde_json::to_vec(customer).unwrap(),
                    ))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
    }

    // PassFort, unbatched, through the app's router in-process; some answers are lost (the
    // app stored the webhook, PassFort resends it) and some connections refused.
    let transport = FaultyTransport::new(ServiceTransport::new(app.router()), clock.clone());
    transport.script([
        Fault::Pass,
        Fault::DropAnswer,
        Fault::Pass,
        Fault::Status(503),
        Fault::DropAnswer,
        Fault::Refuse,
        Fault::Pass,
        Fault::DropAnswer,
    ]);
    let settings = AccountSettings::new(
        "http://customers.test/webhooks/passfort",
        Secret::new(SECRET),
    );
    let engine =
        Engine::with_options(settings, clock.clone(), transport.clone(), engine_options()).unwrap();
    engine.enqueue_all(hooks.clone());
    assert_eq!(
        engine
            .run_until_empty(Duration::from_secs(7 * 86_400))
            .await,
        RunOutcome::Emptied
    );
    let attempts = engine.attempts();
    assert!(
        attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Dropped)
            .count()
            >= 3,
        "answers were lost, so webhooks were delivered twice"
    );
    assert_eq!(engine.status().delivered, hooks.len() as u64);

    let drained = app.worker().run_until_idle().await.unwrap();
    assert_eq!(drained.done, hooks.len(), "each webhook handled once");
    assert_eq!(drained.retried, 0);
    assert_eq!(drained.idle, Some(Idle::Empty));

    let parts = AppParts {
        queue: app.receiver().store(),
    };
    assert_in_step(app.router(), app.customers(), &parts, &expected).await;

    // The same webhooks again (PassFort re-enabled with an old queue, say): nothing changes.
    let again = Engine::with_options(
        AccountSettings::new(
            "http://customers.test/webhooks/passfort",
            Secret::new(SECRET),
        ),
        clock.clone(),
        ServiceTransport::new(app.router()),
        engine_options(),
    )
    .unwrap();
    again.enqueue_all(hooks.clone());
    assert_eq!(
        again.run_until_empty(Duration::from_secs(3600)).await,
        RunOutcome::Emptied
    );
    assert_eq!(app.worker().run_until_idle().await.unwrap().done, 0);
    assert_in_step(app.router(), app.customers(), &parts, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_over_loopback_http_with_the_worker_running() {
    let clock = VirtualClock::new();
    let app = app(&clock).await;
    let hooks = webhooks(&clock, 21);
    let (new_customers, expected) = customers_for(&hooks);
    let customers = app.customers().clone();
    let parts = AppParts {
        queue: app.receiver().store(),
    };
    let router = app.router();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for customer in &new_customers {
        let answer = client
            .post(format!("{base}/customers"))
            .json(customer)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
    }
    let health = client
        .get(format!("{base}/webhooks/passfort/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let transport = FaultyTransport::new(HttpTransport::new().unwrap(), clock.clone());
    transport.script([
        Fault::DropAnswer,
        Fault::Pass,
        Fault::Status(500),
        Fault::DropAnswer,
    ]);
    let mut settings =
        AccountSettings::new(format!("{base}/webhooks/passfort"), Secret::new(SECRET)).batched();
    settings.max_batch = 7;
    let engine =
        Engine::with_options(settings, clock.clone(), transport, engine_options()).unwrap();
    engine.enqueue_all(hooks.clone());
    assert_eq!(
        engine
            .run_until_empty(Duration::from_secs(7 * 86_400))
            .await,
        RunOutcome::Emptied
    );
    assert!(engine.attempts().iter().all(|a| a.batched));

    // The worker runs beside the server and is woken by each commit: wait until it has handed
    // on everything (a condition, with a generous bound).
    let started = Instant::now();
    loop {
        let status = parts.queue.status(clock.now()).await.unwrap();
        if status.queue_depth == 0 && status.done == hooks.len() as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker did not finish: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_in_step(router, &customers, &parts, &expected).await;
    let ids: HashSet<_> = expected.ids.iter().collect();
    assert_eq!(ids.len(), hooks.len());

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

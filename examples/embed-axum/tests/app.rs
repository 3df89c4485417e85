//! The application's own routes keep working with the receiver nested in, and the handler does
//! what the README says for each kind of event, idempotently.

use axum::body::Body;
use embed_axum::passfort::{NO_CUSTOMER, NO_STATUS, UNKNOWN_EVENT};
use embed_axum::{App, Customer, CustomerSync, Customers, NewCustomer};
use passfort_clock::VirtualClock;
use passfort_receiver::testing::{self, WebhookBuilder};
use passfort_receiver::{Handler, Job, SecretSet, SqliteStore};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::SystemTime;
use tower::ServiceExt;

async fn app() -> App {
    App::new(
        Customers::in_memory().await.unwrap(),
        Arc::new(SqliteStore::in_memory().await.unwrap()),
        SecretSet::single(testing::SECRET).unwrap(),
        Arc::new(VirtualClock::new()),
    )
    .unwrap()
}

async fn call(app: &App, request: http::Request<Body>) -> (u16, Value) {
    let answer = app.router().oneshot(request).await.unwrap();
    let status = answer.status().as_u16();
    let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

fn get(path: &str) -> http::Request<Body> {
    http::Request::get(path).body(Body::empty()).unwrap()
}

fn post_json(path: &str, body: &Value) -> http::Request<Body> {
    http::Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn job(hook: &WebhookBuilder) -> Job {
    let webhook = hook.webhook();
    Job {
        event: webhook.event(),
        webhook,
        attempt: 1,
        seq: 1,
        received_at: SystemTime::UNIX_EPOCH,
    }
}

#[tokio::test]
async fn the_apps_own_routes_work_beside_the_nested_receiver() {
    let app = app().await;
    let (status, body) = call(
        &app,
        post_json(
            "/customers",
            &json!({"customer_ref": "CUST-001", "name": "Ada Lovelace"}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["customer_ref"], "CUST-001");
    assert_eq!(body["kyc_status"], Value::Null);
    let (status, _) = call(
        &app,
        post_json(
            "/customers",
            &json!({"customer_ref": "CUST-001", "name": "again"}),
        ),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(call(&app, get("/customers/CUST-404")).await.0, 404);
    let (status, list) = call(&app, get("/customers")).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // The receiver answers at the nested path, with PassFort's rules.
    let hook = testing::product_status_changed();
    let (status, _) = call(
        &app,
        testing::signed_request("/webhooks/passfort", &hook.json(), "wrong-secret"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, accepted) = call(
        &app,
        testing::signed_request("/webhooks/passfort", &hook.json(), testing::SECRET),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(accepted["stored"], 1);
    assert_eq!(call(&app, get("/webhooks/passfort/healthz")).await.0, 200);
    // The receiver's routes did not take over the app's.
    assert_eq!(call(&app, get("/")).await.0, 200);

    // testing::product_status_changed is about CUST-001: the worker applies it.
    let drained = app.worker().run_until_idle().await.unwrap();
    assert_eq!(drained.done, 1);
    let (_, customer) = call(&app, get("/customers/CUST-001")).await;
    let customer: Customer = serde_json::from_value(customer).unwrap();
    assert_eq!(customer.kyc_status.as_deref(), Some("APPROVED"));
    assert_eq!(
        customer.kyc_status_webhook_id.as_deref(),
        Some(hook.get_id())
    );
    assert_eq!(
        customer.passfort_profile_id.as_deref(),
        Some("0f6a8c52-2b1d-4a51-9a53-3a4f1c7e9b10"),
        "the profile id was learnt from the webhook"
    );
}

#[tokio::test]
async fn the_handler_acts_on_each_event_kind_once() {
    let customers = Customers::in_memory().await.unwrap();
    customers
        .create(&NewCustomer {
            customer_ref: "CUST-001".into(),
            name: "Ada".into(),
            passfort_profile_id: None,
        })
        .await
        .unwrap();
    let sync = CustomerSync::new(customers.clone());

    let approved = testing::product_status_changed();
    let rejected = testing::product_status_changed().data(json!({
        "customer_ref": null,
        "profile_id": "0f6a8c52-2b1d-4a51-9a53-3a4f1c7e9b10",
        "new_status": "REJECTED",
        "application_id": "app-2"
    }));
    let stranger = testing::product_status_changed().data(json!({
        "customer_ref": "CUST-999", "profile_id": "p-999", "new_status": "APPROVED"
    }));
    let no_status = testing::product_status_changed()
        .data(json!({"customer_ref": "CUST-001", "application_id": "app-3"}));
    let check = testing::check_completed();
    let unknown = testing::unknown_event("APPLICANT_PORTAL_VISITED");
    let other_known = testing::collected_data_updated();

    // Every webhook twice: at least once delivery must not double anything.
    for hook in [
        &approved,
        &check,
        &unknown,
        &stranger,
        &other_known,
        &rejected,
        &no_status,
    ] {
        for _ in 0..2 {
            sync.handle(&job(hook)).await.unwrap();
        }
    }

    let customer = customers.get("CUST-001").await.unwrap().unwrap();
    // Matched by profile id (learnt from the first webhook) when customer_ref is null.
    assert_eq!(customer.kyc_status.as_deref(), Some("REJECTED"));
    assert_eq!(customer.kyc_application_id.as_deref(), Some("app-2"));

    let checks = customers.checks(Some("CUST-001")).await.unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].webhook_id, check.get_id());
    assert_eq!(
        checks[0].check_type.as_deref(),
        Some("PEPS_AND_SANCTIONS_SCREEN")
    );
    assert_eq!(checks[0].result.as_deref(), Some("Pass"));

    let kept = customers.kept().await.unwrap();
    assert_eq!(
        kept.iter()
            .map(|k| (k.webhook_id.as_str(), k.event.as_str(), k.reason.as_str()))
            .collect::<Vec<_>>(),
        [
            (unknown.get_id(), "APPLICANT_PORTAL_VISITED", UNKNOWN_EVENT),
            (stranger.get_id(), "PRODUCT_STATUS_CHANGED", NO_CUSTOMER),
            (no_status.get_id(), "PRODUCT_STATUS_CHANGED", NO_STATUS),
        ]
    );
    let payload: Value = serde_json::from_str(&kept[0].payload).unwrap();
    assert_eq!(payload["data"]["something"], "new");
    assert!(payload.get("secret").is_none());
}

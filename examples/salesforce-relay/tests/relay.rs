//! The relay against a wiremock Salesforce, with time driven by a `VirtualClock`: the receiver's
//! deadlines, the worker's back-off and the Salesforce request limits all run on it, and the
//! worker is stepped with `run_until_idle`, so a back-off costs nothing and nothing is timed.

mod common;

use common::{
    config, ids, passfort_sends, relay, relay_with, retry_at, run, MockSalesforce, APEX_PATH,
    CLIENT_ID, CLIENT_SECRET,
};
use passfort_clock::{Clock, VirtualClock};
use passfort_receiver::testing::{self, WebhookBuilder};
use passfort_receiver::worker::Idle;
use passfort_receiver::{SecretSet, SqliteStore};
use salesforce_relay::{retry_policy, Relay};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The webhook as Salesforce must receive it: PassFort's object minus `secret`.
fn expected_body(hook: &WebhookBuilder) -> Value {
    let mut json = hook.json();
    json.as_object_mut().unwrap().remove("secret");
    json
}

fn assert_no_passfort_secret(sf: &MockSalesforce) {
    for call in sf.calls() {
        assert!(
            call.json().get("secret").is_none(),
            "secret field forwarded: {}",
            call.body
        );
        assert!(
            !call.body.contains(testing::SECRET),
            "secret value forwarded: {}",
            call.body
        );
        for (name, value) in &call.headers {
            assert!(
                !value.contains(testing::SECRET),
                "PassFort secret forwarded in header {name}"
            );
        }
    }
}

#[tokio::test]
async fn salesforce_rejects_a_direct_passfort_request() {
    // Why the relay exists: PassFort's bearer is the shared secret, which Salesforce reads as a
    // session id and refuses.
    let sf = MockSalesforce::start().await;
    let hook = testing::check_completed();
    let answer = reqwest::Client::new()
        .post(sf.apex_url())
        .header("authorization", format!("Bearer {}", testing::SECRET))
        .header("content-type", "application/json")
        .body(hook.json().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    assert!(sf.accepted().is_empty());
}

#[tokio::test]
async fn every_webhook_arrives_once_in_order_without_the_secret() {
    let sf = MockSalesforce::start().await;
    let clock = VirtualClock::new();
    let relay = relay(&sf, &clock).await;

    let singles: Vec<WebhookBuilder> = (0..6)
        .map(|i| match i % 3 {
            0 => testing::product_status_changed(),
            1 => testing::check_completed(),
            _ => testing::unknown_event("APPLICANT_PORTAL_VISITED"),
        })
        .collect();
    let batch: Vec<WebhookBuilder> = (0..5).map(|_| testing::collected_data_updated()).collect();
    for hook in &singles[..3] {
        passfort_sends(&relay, &hook.json()).await;
    }
    // PassFort lost our answer and sends the third one again, then a batch, then the batch
    // again as the head of a longer one.
    let again = passfort_sends(&relay, &singles[2].json()).await;
    assert_eq!(again["duplicates"], 1);
    passfort_sends(&relay, &testing::batch_body(&batch)).await;
    let mut longer = batch.clone();
    longer.extend(singles[3..].iter().cloned());
    let answer = passfort_sends(&relay, &testing::batch_body(&longer)).await;
    assert_eq!(
        (answer["stored"].clone(), answer["duplicates"].clone()),
        (json!(3), json!(5))
    );

    let drained = run(&relay).await;
    assert_eq!(drained.done, 11);
    assert_eq!(drained.retried, 0);
    assert_eq!(drained.idle, Some(Idle::Empty));

    let expected: Vec<&WebhookBuilder> = singles[..3]
        .iter()
        .chain(batch.iter())
        .chain(singles[3..].iter())
        .collect();
    assert_eq!(
        sf.accepted(),
        expected
            .iter()
            .map(|h| expected_body(h))
            .collect::<Vec<_>>(),
        "each webhook once, in PassFort's order, exactly as sent minus the secret"
    );
    assert_no_passfort_secret(&sf);
    for call in sf.calls() {
        assert_eq!(
            call.authorization.as_deref(),
            Some(format!("Bearer {}", sf.issued()[0]).as_str())
        );
    }
    // One token for the whole run, fetched with the client-credentials flow.
    assert_eq!(sf.issued().len(), 1);
    let form = &sf.token_forms()[0];
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
    assert_eq!(relay.forwarder().tokens().fetched(), 1);

    // Nothing is forwarded twice on a later run.
    assert_eq!(run(&relay).await.done, 0);
    assert_eq!(sf.accepted().len(), 11);
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_webhook_sent_again_at_once() {
    let sf = MockSalesforce::start().await;
    let clock = VirtualClock::new();
    let relay = relay(&sf, &clock).await;
    let hooks: Vec<WebhookBuilder> = (0..6).map(|_| testing::check_completed()).collect();

    for hook in &hooks[..3] {
        passfort_sends(&relay, &hook.json()).await;
    }
    assert_eq!(run(&relay).await.done, 3);
    sf.expire_session();
    for hook in &hooks[3..] {
        passfort_sends(&relay, &hook.json()).await;
    }
    let drained = run(&relay).await;
    assert_eq!(drained.done, 3);
    assert_eq!(
        drained.retried, 0,
        "a renewed token is not a failed attempt"
    );

    let issued = sf.issued();
    assert_eq!(issued.len(), 2, "one renewal");
    assert_eq!(sf.accepted_ids(), ids(&hooks));
    let calls = sf.calls();
    let refused: Vec<_> = calls.iter().filter(|c| c.status == 401).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].id(), hooks[3].get_id());
    assert_eq!(
        refused[0].authorization.as_deref(),
        Some(format!("Bearer {}", issued[0]).as_str())
    );
    for call in calls.iter().filter(|c| c.status == 200).skip(3) {
        assert_eq!(
            call.authorization.as_deref(),
            Some(format!("Bearer {}", issued[1]).as_str())
        );
    }
    assert_no_passfort_secret(&sf);
}

#[tokio::test]
async fn a_fresh_token_refused_too_is_one_failed_attempt_not_a_loop() {
    let sf = MockSalesforce::start().await;
    let clock = VirtualClock::new();
    let relay = relay(&sf, &clock).await;
    let hook = testing::check_completed();
    passfort_sends(&relay, &hook.json()).await;
    sf.set_reject_every_session(true);

    let drained = run(&relay).await;
    assert_eq!((drained.done, drained.retried), (0, 1));
    assert_eq!(
        sf.issued().len(),
        2,
        "the first token and exactly one renewal"
    );
    assert_eq!(sf.calls().len(), 2);
    assert_eq!(retry_at(&drained), clock.now() + Duration::from_secs(1));

    sf.set_reject_every_session(false);
    clock.advance(Duration::from_secs(1));
    assert_eq!(run(&relay).await.done, 1);
    assert_eq!(sf.accepted_ids(), [hook.get_id()]);
}

#[tokio::test]
async fn salesforce_down_for_a_while_then_back_keeps_order_and_backs_off() {
    let sf = MockSalesforce::start().await;
    let clock = VirtualClock::new();
    let relay = relay(&sf, &clock).await;
    let hooks: Vec<WebhookBuilder> = (0..4)
        .map(|i| {
            if i % 2 == 0 {
                testing::product_status_changed()
            } else {
                testing::check_completed()
            }
        })
        .collect();
    sf.set_down(true);
    for hook in &hooks[..3] {
        passfort_sends(&relay, &hook.json()).await;
    }

    // Down: the head is retried after 1 s, 2 s, 4 s, 8 s, 16 s; nothing behind it is tried.
    let mut waits = Vec::new();
    for attempt in 1..=5 {
        let drained = run(&relay).await;
        assert_eq!((drained.done, drained.retried), (0, 1), "attempt {attempt}");
        let at = retry_at(&drained);
        waits.push(at.duration_since(clock.now()).unwrap().as_secs());
        if attempt == 3 {
            // PassFort keeps delivering meanwhile, and still gets its 200 at once.
            passfort_sends(&relay, &hooks[3].json()).await;
        }
        clock.advance_to(at);
    }
    assert_eq!(waits, [1, 2, 4, 8, 16]);
    let failed: Vec<_> = sf.calls().iter().map(|c| (c.id(), c.status)).collect();
    assert_eq!(failed.len(), 5);
    assert!(failed
        .iter()
        .all(|(id, status)| id == hooks[0].get_id() && *status == 500));

    // Back: everything goes, in order, once.
    sf.set_down(false);
    let drained = run(&relay).await;
    assert_eq!(drained.done, 4);
    assert_eq!(drained.idle, Some(Idle::Empty));
    assert_eq!(sf.accepted_ids(), ids(&hooks));
    assert_eq!(sf.issued().len(), 1, "a 500 does not renew the token");
    assert_no_passfort_secret(&sf);
}

#[tokio::test]
async fn the_back_off_is_capped_and_never_gives_up() {
    let sf = MockSalesforce::start().await;
    let clock = VirtualClock::new();
    let relay = relay_with(
        &sf,
        &clock,
        retry_policy(Duration::from_secs(1), Duration::from_secs(5)),
    )
    .await;
    let hook = testing::check_completed();
    passfort_sends(&relay, &hook.json()).await;
    sf.set_down(true);
    let mut waits = Vec::new();
    for _ in 0..15 {
        let drained = run(&relay).await;
        assert_eq!(
            drained.dead_lettered, 0,
            "a blocking policy never dead-letters"
        );
        let at = retry_at(&drained);
        waits.push(at.duration_since(clock.now()).unwrap().as_secs());
        clock.advance_to(at);
    }
    assert_eq!(waits, [1, 2, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]);
    sf.set_down(false);
    assert_eq!(run(&relay).await.done, 1);
    assert_eq!(sf.accepted_ids(), [hook.get_id()]);
}

#[tokio::test]
async fn a_refused_token_request_is_retried_and_never_shows_the_client_secret() {
    let sf = MockSalesforce::start().await;
    let clock = VirtualClock::new();
    let relay = relay(&sf, &clock).await;
    let hook = testing::check_completed();
    passfort_sends(&relay, &hook.json()).await;
    sf.set_refuse_tokens(true);

    let drained = run(&relay).await;
    assert_eq!((drained.done, drained.retried), (0, 1));
    assert!(sf.calls().is_empty(), "nothing forwarded without a token");
    let status = relay.receiver().store().status(clock.now()).await.unwrap();
    let error = &status.recent_failures[0].error;
    assert!(error.contains("invalid_client"), "{error}");
    assert!(!error.contains(CLIENT_SECRET), "{error}");

    sf.set_refuse_tokens(false);
    clock.advance_to(retry_at(&drained));
    assert_eq!(run(&relay).await.done, 1);
    assert_eq!(sf.accepted_ids(), [hook.get_id()]);
}

#[tokio::test]
async fn takes_the_target_path_from_the_configuration() {
    let sf = MockSalesforce::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/services/apexrest/kyc/v2"))
        .respond_with(wiremock::ResponseTemplate::new(201))
        .expect(1)
        .mount(&sf.server)
        .await;
    let clock = VirtualClock::new();
    let relay = Relay::new(
        Arc::new(SqliteStore::in_memory().await.unwrap()),
        SecretSet::single(testing::SECRET).unwrap(),
        config(&sf)
            .with_target_path("/services/apexrest/kyc/v2")
            .unwrap(),
        retry_policy(Duration::from_secs(1), Duration::from_secs(60)),
        Arc::new(clock.clone()),
    )
    .unwrap();
    passfort_sends(&relay, &testing::check_completed().json()).await;
    assert_eq!(run(&relay).await.done, 1, "201 is a success");
    assert!(sf.calls().is_empty(), "nothing went to {APEX_PATH}");
    sf.server.verify().await;
}

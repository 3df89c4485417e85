//! A stand-in for Salesforce (wiremock): the OAuth token endpoint and the Apex REST endpoint.
//!
//! It behaves the way the relay depends on: the token endpoint issues a new token to the right
//! client id and secret (client-credentials flow) and answers `invalid_client` otherwise; the
//! Apex endpoint accepts only the currently issued token and answers any other bearer (an
//! expired token, or PassFort's shared secret) with 401 `INVALID_SESSION_ID`, as Salesforce
//! does. Tests can expire the session, take the org down (500) and bring it back.
#![allow(dead_code)]

use passfort_clock::VirtualClock;
use passfort_receiver::testing::{self, WebhookBuilder};
use passfort_receiver::worker::{Drained, Idle};
use passfort_receiver::{RetryPolicy, SecretSet, SqliteStore};
use salesforce_relay::{retry_policy, ClientSecret, Relay, SalesforceConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const CLIENT_ID: &str = "3MVG9-test-consumer-key";
pub const CLIENT_SECRET: &str = "sf-consumer-secret-0f9e8d";
pub const APEX_PATH: &str = "/services/apexrest/passfort/webhooks";

/// One request that reached the Apex endpoint.
#[derive(Debug, Clone)]
pub struct ApexCall {
    pub authorization: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
}

impl ApexCall {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    pub fn id(&self) -> String {
        self.json()["id"].as_str().unwrap().to_owned()
    }
}

#[derive(Debug, Default)]
struct State {
    issued: Vec<String>,
    current: Option<String>,
    token_forms: Vec<HashMap<String, String>>,
    calls: Vec<ApexCall>,
    down: bool,
    refuse_tokens: bool,
    reject_every_session: bool,
}

#[derive(Clone)]
pub struct MockSalesforce {
    pub server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
}

impl MockSalesforce {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(method("POST"))
            .and(path("/services/oauth2/token"))
            .respond_with(TokenEndpoint {
                state: state.clone(),
                instance_url: server.uri(),
            })
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(APEX_PATH))
            .respond_with(ApexEndpoint {
                state: state.clone(),
            })
            .mount(&server)
            .await;
        Self {
            server: Arc::new(server),
            state,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn login_url(&self) -> String {
        self.server.uri()
    }

    pub fn apex_url(&self) -> String {
        format!("{}{APEX_PATH}", self.server.uri())
    }

    /// The session times out: the current token stops working.
    pub fn expire_session(&self) {
        self.lock().current = None;
    }

    /// Every Apex call answers 500 while down.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// The token endpoint answers 400 `invalid_client` while set.
    pub fn set_refuse_tokens(&self, refuse: bool) {
        self.lock().refuse_tokens = refuse;
    }

    /// Every bearer, even a fresh one, is refused as an invalid session while set.
    pub fn set_reject_every_session(&self, reject: bool) {
        self.lock().reject_every_session = reject;
    }

    /// Tokens issued so far, oldest first.
    pub fn issued(&self) -> Vec<String> {
        self.lock().issued.clone()
    }

    /// The form of every token request.
    pub fn token_forms(&self) -> Vec<HashMap<String, String>> {
        self.lock().token_forms.clone()
    }

    /// Every Apex call, in arrival order.
    pub fn calls(&self) -> Vec<ApexCall> {
        self.lock().calls.clone()
    }

    /// The bodies Salesforce accepted (2xx), in order.
    pub fn accepted(&self) -> Vec<Value> {
        self.lock()
            .calls
            .iter()
            .filter(|c| (200..300).contains(&c.status))
            .map(ApexCall::json)
            .collect()
    }

    /// Ids of the accepted webhooks, in order.
    pub fn accepted_ids(&self) -> Vec<String> {
        self.accepted()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

struct TokenEndpoint {
    state: Arc<Mutex<State>>,
    instance_url: String,
}

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form = parse_form(&String::from_utf8_lossy(&request.body));
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.token_forms.push(form.clone());
        let content_type = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let valid = content_type.starts_with("application/x-www-form-urlencoded")
            && form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
        if state.refuse_tokens || !valid {
            return ResponseTemplate::new(400).set_body_json(json!({
                "error": "invalid_client",
                "error_description": "invalid client credentials"
            }));
        }
        let token = format!("00DTEST!token-{}-x7Yq", state.issued.len() + 1);
        state.issued.push(token.clone());
        state.current = Some(token.clone());
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": token,
            "instance_url": self.instance_url,
            "id": format!("{}/id/00DTEST/005TEST", self.instance_url),
            "token_type": "Bearer",
            "issued_at": "1700000000000",
            "signature": "c2lnbmF0dXJl"
        }))
    }
}

struct ApexEndpoint {
    state: Arc<Mutex<State>>,
}

impl Respond for ApexEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let authorization = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let valid = !state.reject_every_session
            && match (&authorization, &state.current) {
                (Some(header), Some(current)) => *header == format!("Bearer {current}"),
                _ => false,
            };
        let status = match (valid, state.down) {
            (false, _) => 401,
            (true, true) => 500,
            (true, false) => 200,
        };
        let answer = if !valid {
            ResponseTemplate::new(401).set_body_json(json!([{
                "errorCode": "INVALID_SESSION_ID",
                "message": "Session expired or invalid"
            }]))
        } else if state.down {
            ResponseTemplate::new(500).set_body_json(json!([{
                "errorCode": "SERVER_ERROR",
                "message": "Salesforce is temporarily unavailable"
            }]))
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"status": "received"}))
        };
        state.calls.push(ApexCall {
            authorization,
            headers: request
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status,
        });
        answer
    }
}

/// `application/x-www-form-urlencoded` into a map (`+` and `%XX` decoded).
fn parse_form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---- the relay under test, on a virtual clock ----

pub fn config(sf: &MockSalesforce) -> SalesforceConfig {
    SalesforceConfig::new(sf.login_url(), CLIENT_ID, ClientSecret::new(CLIENT_SECRET)).unwrap()
}

pub async fn relay_with(sf: &MockSalesforce, clock: &VirtualClock, retry: RetryPolicy) -> Relay {
    Relay::new(
        Arc::new(SqliteStore::in_memory().await.unwrap()),
        SecretSet::single(testing::SECRET).unwrap(),
        config(sf),
        retry,
        Arc::new(clock.clone()),
    )
    .unwrap()
}

pub async fn relay(sf: &MockSalesforce, clock: &VirtualClock) -> Relay {
    relay_with(
        sf,
        clock,
        retry_policy(Duration::from_secs(1), Duration::from_secs(300)),
    )
    .await
}

/// PassFort delivers `body` to the relay; the relay must answer 200.
pub async fn passfort_sends(relay: &Relay, body: &Value) -> Value {
    let answer = relay
        .router()
        .oneshot(testing::signed_request(
            "/webhooks/passfort",
            body,
            testing::SECRET,
        ))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub async fn run(relay: &Relay) -> Drained {
    relay.worker().run_until_idle().await.unwrap()
}

/// The ids of `hooks`, in order: what Salesforce must have accepted once they were relayed.
pub fn ids(hooks: &[WebhookBuilder]) -> Vec<String> {
    hooks.iter().map(|h| h.get_id().to_owned()).collect()
}

pub fn retry_at(drained: &Drained) -> SystemTime {
    match drained.idle {
        Some(Idle::RetryAt(at)) => at,
        ref other => panic!("expected a scheduled retry, got {other:?}"),
    }
}

//! Forwarding one webhook to the Salesforce Apex REST endpoint.
//!
//! The body is the webhook as PassFort sent it minus `secret` (the receiver already stripped it
//! before storing; it is removed again here, so nothing upstream can leak it by mistake). The
//! only `Authorization` header is the Salesforce access token: PassFort's header never reaches
//! this code, because the receiver does not store headers.
//!
//! | Salesforce answers | what happens |
//! |---|---|
//! | any 2xx | done; the worker moves to the next webhook |
//! | 401 `INVALID_SESSION_ID` | the token ran out: fetch a new one (once) and send again at once |
//! | anything else, or no answer | an error: the worker retries the same webhook with back-off, and nothing behind it is forwarded first |

use crate::config::SalesforceConfig;
use crate::token::{shorten, AccessToken, TokenError, TokenSource};
use async_trait::async_trait;
use passfort_clock::{timeout, SharedClock};
use passfort_receiver::webhook::SECRET_FIELD;
use passfort_receiver::{Handler, HandlerError, Job, Webhook};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The `errorCode` Salesforce answers (with a 401) to an expired or unknown session.
pub const INVALID_SESSION_ID: &str = "INVALID_SESSION_ID";

/// Why a webhook was not forwarded. Messages never contain a token or a secret; they end up in
/// logs and in the receiver's failure list.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No access token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The Apex REST endpoint could not be reached.
    #[error("POST {url} failed: {source}")]
    Request {
        /// The endpoint.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// No answer inside the request limit.
    #[error("POST {url} got no answer within {limit:?}")]
    TimedOut {
        /// The endpoint.
        url: String,
        /// The limit.
        limit: Duration,
    },
    /// Salesforce answered something other than a 2xx.
    #[error("POST {url} answered {status}: {detail}")]
    Refused {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        detail: String,
    },
    /// Even a freshly issued token was refused as an invalid session.
    #[error("POST {url}: a freshly issued token was refused with {INVALID_SESSION_ID} too")]
    SessionRefused {
        /// The endpoint.
        url: String,
    },
}

/// What one POST got back.
enum Answer {
    Accepted(u16),
    InvalidSession,
    Refused { status: u16, detail: String },
}

/// Forwards webhooks to Salesforce; as a [`Handler`] it is what the relay's worker calls, one
/// webhook at a time, in arrival order.
#[derive(Debug, Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    config: Arc<SalesforceConfig>,
    tokens: TokenSource,
    clock: SharedClock,
}

impl Forwarder {
    /// A forwarder for `config`; request limits are measured on `clock`.
    pub fn new(config: SalesforceConfig, clock: SharedClock) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("salesforce-relay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let config = Arc::new(config);
        Ok(Self {
            inner: Arc::new(Inner {
                tokens: TokenSource::new(client.clone(), config.clone(), clock.clone()),
                client,
                config,
                clock,
            }),
        })
    }

    /// The token cache (to see how many tokens were fetched).
    pub fn tokens(&self) -> &TokenSource {
        &self.inner.tokens
    }

    /// Forwards one webhook: `Ok` once Salesforce answered 2xx.
    pub async fn forward(&self, webhook: &Webhook) -> Result<(), ForwardError> {
        let body = body_of(webhook);
        let tokens = &self.inner.tokens;
        let token = tokens.token().await?;
        let status = match self.post(&token, &body).await? {
            Answer::Accepted(status) => status,
            Answer::Refused { status, detail } => {
                return Err(ForwardError::Refused {
                    url: self.url(&token),
                    status,
                    detail,
                })
            }
            Answer::InvalidSession => {
                tracing::info!(id = %webhook.id, "Salesforce session expired; fetching a new token");
                let fresh = tokens.renew(&token).await?;
                match self.post(&fresh, &body).await? {
                    Answer::Accepted(status) => status,
                    Answer::InvalidSession => {
                        return Err(ForwardError::SessionRefused {
                            url: self.url(&fresh),
                        })
                    }
                    Answer::Refused { status, detail } => {
                        return Err(ForwardError::Refused {
                            url: self.url(&fresh),
                            status,
                            detail,
                        })
                    }
                }
            }
        };
        tracing::info!(id = %webhook.id, event = %webhook.event, status, "webhook forwarded to Salesforce");
        Ok(())
    }

    fn url(&self, token: &AccessToken) -> String {
        format!("{}{}", token.instance_url(), self.inner.config.target_path)
    }

    async fn post(&self, token: &AccessToken, body: &[u8]) -> Result<Answer, ForwardError> {
        let url = self.url(token);
        let limit = self.inner.config.request_timeout;
        let sent = async {
            let response = self
                .inner
                .client
                .post(&url)
                .header(reqwest::header::AUTHORIZATION, token.authorization())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, "application/json")
                .body(body.to_vec())
                .send()
                .await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let (status, answer) = match timeout(&self.inner.clock, limit, sent).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(source)) => {
                return Err(ForwardError::Request {
                    url,
                    source: source.without_url(),
                })
            }
            Err(_) => return Err(ForwardError::TimedOut { url, limit }),
        };
        Ok(if status.is_success() {
            Answer::Accepted(status.as_u16())
        } else if status == reqwest::StatusCode::UNAUTHORIZED && is_invalid_session(&answer) {
            Answer::InvalidSession
        } else {
            Answer::Refused {
                status: status.as_u16(),
                detail: shorten(&String::from_utf8_lossy(&answer)),
            }
        })
    }
}

#[async_trait]
impl Handler for Forwarder {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        self.forward(&job.webhook).await.map_err(Into::into)
    }
}

/// The JSON forwarded for `webhook`: PassFort's object (`id`, `event`, `timestamp`, `data`,
/// any newer top-level field) without `secret`.
pub fn body_of(webhook: &Webhook) -> Vec<u8> {
    let mut json = webhook.to_json();
    if let Value::Object(object) = &mut json {
        object.remove(SECRET_FIELD);
    }
    json.to_string().into_bytes()
}

/// Whether a 401 body is Salesforce's `[{"errorCode":"INVALID_SESSION_ID", …}]`.
fn is_invalid_session(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct ApiError {
        #[serde(rename = "errorCode")]
        error_code: Option<String>,
    }
    serde_json::from_slice::<Vec<ApiError>>(body)
        .map(|errors| {
            errors
                .iter()
                .any(|e| e.error_code.as_deref() == Some(INVALID_SESSION_ID))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recognises_an_invalid_session() {
        assert!(is_invalid_session(
            br#"[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]"#
        ));
        assert!(!is_invalid_session(
            br#"[{"errorCode":"INSUFFICIENT_ACCESS","message":"no"}]"#
        ));
        assert!(!is_invalid_session(b"Unauthorized"));
        assert!(!is_invalid_session(
            br#"{"errorCode":"INVALID_SESSION_ID"}"#
        ));
    }

    #[test]
    fn the_body_has_no_secret() {
        let mut webhook = Webhook::new("a", "CHECK_COMPLETED", Some(5), json!({"x": 1}));
        webhook
            .extra
            .insert(SECRET_FIELD.into(), json!("should-never-leave"));
        let body: Value = serde_json::from_slice(&body_of(&webhook)).unwrap();
        assert_eq!(
            body,
            json!({"id": "a", "event": "CHECK_COMPLETED", "timestamp": 5, "data": {"x": 1}})
        );
    }
}

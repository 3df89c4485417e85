//! The Salesforce access token: OAuth 2.0 client-credentials flow, cached until Salesforce says
//! the session is no longer valid.
//!
//! Salesforce's client-credentials answer carries no `expires_in`: a token is good until the
//! org's session timeout, and the only reliable sign that it has run out is a 401 with
//! `errorCode` `INVALID_SESSION_ID`. So the token is fetched once, kept, and renewed only when a
//! forward is refused that way ([`TokenSource::renew`]). Neither the token nor the client secret
//! is ever logged: [`AccessToken`]'s `Debug` hides the value.

use crate::config::SalesforceConfig;
use passfort_clock::{timeout, SharedClock};
use serde::Deserialize;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Longest part of an error answer kept in an error message (logs, the status page).
pub(crate) const DETAIL_LIMIT: usize = 300;

/// An access token and the org's instance URL it is valid for.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    value: String,
    instance_url: String,
}

impl AccessToken {
    /// A token for `instance_url` (trailing `/` removed).
    pub fn new(value: impl Into<String>, instance_url: impl Into<String>) -> Self {
        let instance_url: String = instance_url.into();
        Self {
            value: value.into(),
            instance_url: instance_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The org's base URL for REST calls (`https://<my-domain>.my.salesforce.com`).
    pub fn instance_url(&self) -> &str {
        &self.instance_url
    }

    /// The value of the `Authorization` header: only for requests to Salesforce.
    pub(crate) fn authorization(&self) -> String {
        format!("Bearer {}", self.value)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"***")
            .field("instance_url", &self.instance_url)
            .finish()
    }
}

/// Why no token could be had. Messages never contain the client secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint could not be reached.
    #[error("token request to {url} failed: {source}")]
    Request {
        /// The token endpoint.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// No answer inside the request limit.
    #[error("token request to {url} got no answer within {limit:?}")]
    TimedOut {
        /// The token endpoint.
        url: String,
        /// The limit.
        limit: Duration,
    },
    /// Salesforce refused (wrong client id or secret, flow not enabled, no run-as user…).
    #[error("token request refused with {status}: {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Salesforce's `error` / `error_description`, shortened.
        detail: String,
    },
    /// A 200 whose body is not a token answer.
    #[error("token answer without access_token/instance_url: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    instance_url: String,
}

/// Hands out the cached access token and fetches a new one when needed. Shared by every forward.
#[derive(Debug)]
pub struct TokenSource {
    client: reqwest::Client,
    config: Arc<SalesforceConfig>,
    clock: SharedClock,
    cached: Mutex<Option<Arc<AccessToken>>>,
    fetched: AtomicU64,
}

impl TokenSource {
    /// A source that fetches from `config`'s token endpoint, with request limits on `clock`.
    pub fn new(client: reqwest::Client, config: Arc<SalesforceConfig>, clock: SharedClock) -> Self {
        Self {
            client,
            config,
            clock,
            cached: Mutex::new(None),
            fetched: AtomicU64::new(0),
        }
    }

    /// The cached token, fetching one first if there is none.
    pub async fn token(&self) -> Result<Arc<AccessToken>, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let token = Arc::new(self.fetch().await?);
        *cached = Some(token.clone());
        Ok(token)
    }

    /// A new token to replace `rejected`, which Salesforce refused as an invalid session. If the
    /// cache already holds a different token (someone renewed it meanwhile) that one is returned
    /// without a fetch.
    pub async fn renew(&self, rejected: &Arc<AccessToken>) -> Result<Arc<AccessToken>, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref() {
            if !Arc::ptr_eq(token, rejected) {
                return Ok(token.clone());
            }
        }
        *cached = None;
        let token = Arc::new(self.fetch().await?);
        *cached = Some(token.clone());
        Ok(token)
    }

    /// How many tokens were fetched so far (for logs and tests).
    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let url = self.config.token_url();
        let limit = self.config.request_timeout;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose()),
        ];
        let sent = async {
            let response = self
                .client
                .post(&url)
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&form)
                .send()
                .await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let (status, body) = match timeout(&self.clock, limit, sent).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(source)) => {
                return Err(TokenError::Request {
                    url,
                    source: source.without_url(),
                })
            }
            Err(_) => return Err(TokenError::TimedOut { url, limit }),
        };
        if !status.is_success() {
            return Err(TokenError::Refused {
                status: status.as_u16(),
                detail: oauth_error_detail(&body),
            });
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if answer.access_token.is_empty() || answer.instance_url.is_empty() {
            return Err(TokenError::Malformed(
                "empty access_token or instance_url".into(),
            ));
        }
        let n = self.fetched.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(instance_url = %answer.instance_url, tokens_fetched = n, "Salesforce access token obtained");
        Ok(AccessToken::new(answer.access_token, answer.instance_url))
    }
}

/// `error: error_description` from an OAuth error answer, or the start of the body. An OAuth
/// error answer never echoes the client secret, and a refusal carries no token.
fn oauth_error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: Option<String>,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(OAuthError {
            error: Some(error),
            error_description,
        }) => match error_description {
            Some(description) => format!("{error}: {description}"),
            None => error,
        },
        _ => shorten(&String::from_utf8_lossy(body)),
    }
}

/// `text` cut to [`DETAIL_LIMIT`] characters.
pub(crate) fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(DETAIL_LIMIT).collect();
    if text.chars().count() > DETAIL_LIMIT {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_token() {
        let token = AccessToken::new("00Dxx!secret-token", "https://org.my.salesforce.com/");
        let shown = format!("{token:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert_eq!(token.instance_url(), "https://org.my.salesforce.com");
        assert_eq!(token.authorization(), "Bearer 00Dxx!secret-token");
    }

    #[test]
    fn reads_oauth_errors() {
        assert_eq!(
            oauth_error_detail(
                br#"{"error":"invalid_client","error_description":"invalid client credentials"}"#
            ),
            "invalid_client: invalid client credentials"
        );
        assert_eq!(oauth_error_detail(b"gateway down"), "gateway down");
        let long = "x".repeat(1000);
        assert_eq!(
            oauth_error_detail(long.as_bytes()).chars().count(),
            DETAIL_LIMIT + 1
        );
    }
}

//! `http:URL`: `POST`s each webhook's JSON to a URL (feature `http-sink`).

use super::SinkError;
use crate::handler::{Handler, HandlerError, Job};
use async_trait::async_trait;
use std::fmt;
use std::time::Duration;

/// `POST`s each webhook's JSON to a URL; a 2xx answer is success. Never sends an
/// `Authorization` header.
#[derive(Clone)]
pub struct HttpSink {
    url: String,
    client: reqwest::Client,
}

impl HttpSink {
    /// A sink posting to `url`, with a 30 s timeout per request.
    pub fn new(url: impl Into<String>) -> Result<Self, SinkError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            url: url.into(),
            client,
        })
    }
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.shown_url())
            .finish()
    }
}

impl HttpSink {
    /// The URL as errors and logs may show it: without a password.
    fn shown_url(&self) -> String {
        crate::redact::redact_url(&self.url)
    }
}

#[async_trait]
impl Handler for HttpSink {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(job.webhook.to_json_string())
            .send()
            .await
            // reqwest names the URL, credentials included: name it ourselves, without them.
            .map_err(|e| format!("POST {}: {}", self.shown_url(), e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{} answered {status}", self.shown_url()).into())
        }
    }
}

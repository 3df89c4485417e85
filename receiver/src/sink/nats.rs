//! `nats://[USER:PASS@]HOST:PORT/SUBJECT`: each webhook published to a NATS JetStream stream.
//!
//! The message is the webhook's JSON (minus `secret`) with the headers `Nats-Msg-Id: <webhook
//! id>` and `PassFort-Event: <event>`. A webhook is done once the stream's PubAck arrives; a
//! PubAck marked `duplicate` is a success too: it is what a repeat looks like when a worker was
//! killed between the PubAck and marking the webhook done, and the stream dropped it because
//! its `Nats-Msg-Id` was already seen within the stream's duplicate window.
//!
//! At start the sink asks JetStream which stream covers the subject and refuses to start when
//! none does. When the server cannot be reached at start, it starts anyway (so that `serve`
//! still receives and stores webhooks) and the client keeps reconnecting in the background;
//! meanwhile each publish fails and the worker retries it with its back-off.

use super::broker_url::BrokerUrl;
use super::SinkError;
use crate::handler::{Handler, HandlerError, Job};
use async_nats::connection::State;
use async_nats::header::{HeaderValue, NATS_MESSAGE_ID};
use async_nats::jetstream::{self, context::GetStreamByNameErrorKind, message::PublishMessage};
use async_nats::ConnectErrorKind;
use async_trait::async_trait;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The header carrying the webhook's event name.
pub const EVENT_HEADER: &str = "PassFort-Event";

/// How long a publish may wait for its PubAck (or a connection) before it counts as failed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const DEFAULT_PORT: u16 = 4222;

/// Publishes each webhook to a JetStream subject; see the [module docs](self).
pub struct NatsSink {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    subject: String,
    url: BrokerUrl,
    timeout: Duration,
}

impl fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSink")
            .field("url", &self.url.shown)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The subject a `nats://` URL names, or why it names none.
pub(crate) fn subject_of(url: &BrokerUrl) -> Result<String, SinkError> {
    url.reject_params_except(&[])?;
    let subject = url.path.clone();
    let valid = !subject.is_empty()
        && subject
            .split('.')
            .all(|token| !token.is_empty() && token != "*" && token != ">")
        && !subject.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(subject)
    } else {
        Err(url.invalid(
            "the path must be one subject to publish to (no wildcard, space or empty token): \
             nats://[USER:PASS@]HOST:PORT/SUBJECT",
        ))
    }
}

impl NatsSink {
    /// Connects to the server in `url` and checks that a JetStream stream covers its subject.
    ///
    /// Refuses (with a one-line error naming the subject) when no stream does, and when the
    /// server refuses the credentials; starts anyway when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, SinkError> {
        let url = BrokerUrl::parse(url, "nats")?;
        let subject = subject_of(&url)?;
        let timeout = DEFAULT_TIMEOUT;
        let host = if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        };
        let server = format!("nats://{host}:{}", url.port.unwrap_or(DEFAULT_PORT));
        let options = || {
            let options = match (&url.username, &url.password) {
                (Some(user), password) => async_nats::ConnectOptions::with_user_and_password(
                    user.clone(),
                    password
                        .as_ref()
                        .map(|p| p.expose().to_owned())
                        .unwrap_or_default(),
                ),
                (None, Some(token)) => {
                    async_nats::ConnectOptions::with_token(token.expose().to_owned())
                }
                (None, None) => async_nats::ConnectOptions::new(),
            };
            options
                .name("passfort-receiver")
                .connection_timeout(timeout)
                .max_reconnects(None)
        };
        let (client, reachable) = match options().connect(server.as_str()).await {
            Ok(client) => (client, true),
            Err(e) => match e.kind() {
                ConnectErrorKind::AuthorizationViolation
                | ConnectErrorKind::Authentication
                | ConnectErrorKind::ServerParse
                | ConnectErrorKind::Tls => {
                    return Err(SinkError::Refused {
                        url: url.shown.clone(),
                        reason: url.scrub(&e),
                    })
                }
                _ => {
                    tracing::warn!(sink = %url.shown, error = %url.scrub(&e),
                        "NATS unreachable at start: webhooks are still received and stored; \
                         the worker retries each until the server is back");
                    let client = options()
                        .retry_on_initial_connect()
                        .connect(server.as_str())
                        .await
                        .map_err(|e| SinkError::Refused {
                            url: url.shown.clone(),
                            reason: url.scrub(&e),
                        })?;
                    (client, false)
                }
            },
        };
        // Our own timeout bounds every wait (see `handle`); the context's only backs it up.
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(timeout * 6)
            .build(client.clone());
        if reachable {
            match tokio::time::timeout(timeout, jetstream.stream_by_subject(subject.as_str())).await
            {
                Ok(Ok(stream)) => {
                    tracing::info!(sink = %url.shown, %stream, "NATS subject is covered by a stream");
                }
                Ok(Err(e)) if e.kind() == GetStreamByNameErrorKind::NotFound => {
                    return Err(SinkError::NoStream {
                        url: url.shown.clone(),
                        subject,
                    })
                }
                Ok(Err(e)) => {
                    return Err(SinkError::Refused {
                        url: url.shown.clone(),
                        reason: format!(
                            "cannot ask JetStream which stream covers {subject}: {}",
                            url.scrub(&e)
                        ),
                    })
                }
                Err(_) => {
                    return Err(SinkError::Refused {
                        url: url.shown.clone(),
                        reason: format!(
                            "JetStream did not say which stream covers {subject} within {}",
                            humantime::format_duration(timeout)
                        ),
                    })
                }
            }
        }
        Ok(Self {
            client,
            jetstream,
            subject,
            url,
            timeout,
        })
    }

    /// How long a publish may wait for its PubAck before it counts as failed (default
    /// [`DEFAULT_TIMEOUT`]): the worker then retries it with its back-off.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The subject published to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    async fn publish(&self, job: &Job) -> Result<(), String> {
        let webhook = &job.webhook;
        let event = HeaderValue::from_str(&webhook.event)
            .map_err(|_| format!("event {:?} cannot be a NATS header", webhook.event))?;
        let id = HeaderValue::from_str(&webhook.id)
            .map_err(|_| format!("id {:?} cannot be a NATS header", webhook.id))?;
        let message = PublishMessage::build()
            .payload(webhook.to_json_string().into())
            .header(NATS_MESSAGE_ID, id)
            .header(EVENT_HEADER, event);
        let published = async {
            let ack = self
                .jetstream
                .send_publish(self.subject.clone(), message)
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        };
        let ack = match tokio::time::timeout(self.timeout, published).await {
            Ok(Ok(ack)) => ack,
            Ok(Err(e)) => return Err(self.explain(e)),
            Err(_) => return Err(self.explain("no PubAck in time".to_owned())),
        };
        if ack.duplicate {
            tracing::info!(id = %webhook.id, stream = %ack.stream, sequence = ack.sequence,
                "NATS dropped a repeat of a webhook already in the stream (Nats-Msg-Id)");
        }
        Ok(())
    }

    /// A publish error as one line, with what the operator needs to know.
    fn explain(&self, error: String) -> String {
        let state = match self.client.connection_state() {
            State::Connected => "",
            State::Pending | State::Disconnected => " (not connected to the server)",
        };
        let hint = if error.contains("no responders") {
            format!(": no JetStream stream covers subject {}", self.subject)
        } else {
            String::new()
        };
        self.url.scrub(format!(
            "NATS publish to {} via {} failed{state}: {error}{hint}",
            self.subject, self.url.shown
        ))
    }
}

#[async_trait]
impl Handler for NatsSink {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        Ok(self.publish(job).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_one_subject() {
        let subject = |raw: &str| subject_of(&BrokerUrl::parse_with(raw, "nats", None).unwrap());
        assert_eq!(
            subject("nats://127.0.0.1:4222/passfort.webhooks").unwrap(),
            "passfort.webhooks"
        );
        for bad in [
            "nats://h:4222",
            "nats://h:4222/",
            "nats://h/a.*",
            "nats://h/a.>",
            "nats://h/a..b",
            "nats://h/a%20b",
            "nats://h/s?x=1",
        ] {
            assert!(subject(bad).is_err(), "{bad}");
        }
    }
}

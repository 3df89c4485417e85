//! `amqp://USER:PASS@HOST:PORT/VHOST?exchange=EX&routing_key=KEY`: each webhook published to a
//! RabbitMQ (AMQP 0.9.1) exchange.
//!
//! The message is the webhook's JSON (minus `secret`), persistent (`delivery_mode` 2), with
//! `message_id` = webhook id, `type` = event and `content_type` = `application/json`, published
//! `mandatory` on a channel in publisher-confirm mode. A webhook is done once the broker
//! confirms it; a message the broker returns as unroutable, or nacks, is a failure and is
//! retried.
//!
//! The sink declares nothing: the exchange, queues and bindings are the operator's. At start
//! it checks (a passive declare, which creates nothing) that the exchange exists and refuses to
//! start when it does not. When the broker cannot be reached at start, it starts anyway (so that
//! `serve` still receives and stores webhooks) and connects on the first publish; a lost
//! connection is opened again on the next attempt.
//!
//! AMQP has no broker-side deduplication: a worker killed between the broker's confirm and
//! marking the webhook done publishes it again, with the same `message_id`. Consumers
//! deduplicate on `message_id`.

use super::broker_url::BrokerUrl;
use super::SinkError;
use crate::handler::{Handler, HandlerError, Job};
use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{FieldTable, ShortString};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use std::fmt;
use std::time::Duration;

/// How long connecting, or a publish waiting for its confirm, may take before it counts as
/// failed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const DEFAULT_PORT: u16 = 5672;

/// Publishes each webhook to an exchange with publisher confirms; see the [module docs](self).
pub struct AmqpSink {
    url: BrokerUrl,
    uri: AMQPUri,
    exchange: ShortString,
    routing_key: ShortString,
    timeout: Duration,
    link: tokio::sync::Mutex<Option<Link>>,
}

/// An open connection and its confirm-mode channel.
struct Link {
    connection: Connection,
    channel: Channel,
}

impl Link {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Closes the connection without waiting: it may already be gone.
    fn close(self) {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                self.connection.close(200, "passfort-receiver".into()),
            )
            .await;
        });
    }
}

impl fmt::Debug for AmqpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSink")
            .field("url", &self.url.shown)
            .field("exchange", &self.exchange.as_str())
            .field("routing_key", &self.routing_key.as_str())
            .finish_non_exhaustive()
    }
}

/// What an `amqp://` URL names: the connection, the exchange and the routing key.
pub(crate) struct Target {
    pub(crate) uri: AMQPUri,
    pub(crate) exchange: ShortString,
    pub(crate) routing_key: ShortString,
}

pub(crate) fn target_of(url: &BrokerUrl) -> Result<Target, SinkError> {
    url.reject_params_except(&["exchange", "routing_key"])?;
    let short = |what: &str, value: &str| {
        ShortString::try_new(value.to_owned())
            .map_err(|_| url.invalid(format!("{what} is longer than 255 bytes")))
    };
    let exchange = url.param("exchange").ok_or_else(|| {
        url.invalid(
            "no exchange: amqp://USER:PASS@HOST:PORT/VHOST?exchange=EX&routing_key=KEY \
             (exchange= empty for the default exchange)",
        )
    })?;
    let exchange = short("exchange", exchange)?;
    let routing_key = short("routing_key", url.param("routing_key").unwrap_or_default())?;
    // `/%2f` and an empty path both name the default virtual host `/`.
    let vhost = if url.path.is_empty() {
        "/".to_owned()
    } else {
        url.path.clone()
    };
    let uri = AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: url.username.clone().unwrap_or_else(|| "guest".to_owned()),
                password: url
                    .password
                    .as_ref()
                    .map_or_else(|| "guest".to_owned(), |p| p.expose().to_owned()),
            },
            host: url.host.clone(),
            port: url.port.unwrap_or(DEFAULT_PORT),
        },
        vhost,
        query: AMQPQueryString::default(),
    };
    Ok(Target {
        uri,
        exchange,
        routing_key,
    })
}

impl AmqpSink {
    /// Connects to the broker in `url` and checks that its exchange exists.
    ///
    /// Refuses (with a one-line error naming the exchange) when it does not, and when the broker
    /// refuses the credentials or the virtual host; starts anyway when the broker cannot be
    /// reached.
    pub async fn connect(url: &str) -> Result<Self, SinkError> {
        let url = BrokerUrl::parse(url, "amqp")?;
        let Target {
            uri,
            exchange,
            routing_key,
        } = target_of(&url)?;
        let sink = Self {
            url,
            uri,
            exchange,
            routing_key,
            timeout: DEFAULT_TIMEOUT,
            link: tokio::sync::Mutex::new(None),
        };
        match sink.open_link().await {
            Ok(link) => {
                sink.check_exchange(&link).await?;
                *sink.link.lock().await = Some(link);
            }
            Err(OpenError::Refused(reason)) => {
                return Err(SinkError::Refused {
                    url: sink.url.shown.clone(),
                    reason,
                })
            }
            Err(OpenError::Unreachable(reason)) => {
                tracing::warn!(sink = %sink.url.shown, error = %reason,
                    "AMQP broker unreachable at start: webhooks are still received and stored; \
                     the worker retries each until the broker is back");
            }
        }
        Ok(sink)
    }

    /// How long connecting, or a publish waiting for its confirm, may take before it counts as
    /// failed (default [`DEFAULT_TIMEOUT`]): the worker then retries it with its back-off.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The exchange published to.
    pub fn exchange(&self) -> &str {
        self.exchange.as_str()
    }

    async fn open_link(&self) -> Result<Link, OpenError> {
        let opened = async {
            let connection = Connection::connect_uri(
                self.uri.clone(),
                ConnectionProperties::default().with_connection_name("passfort-receiver".into()),
            )
            .await
            .map_err(|e| self.open_error(e))?;
            let channel = connection
                .create_channel()
                .await
                .map_err(|e| self.open_error(e))?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| self.open_error(e))?;
            Ok(Link {
                connection,
                channel,
            })
        };
        tokio::time::timeout(self.timeout, opened)
            .await
            .unwrap_or_else(|_| {
                Err(OpenError::Unreachable(format!(
                    "no connection to {} within {}",
                    self.url.shown,
                    humantime::format_duration(self.timeout)
                )))
            })
    }

    fn open_error(&self, e: lapin::Error) -> OpenError {
        let reason = self.url.scrub(format!("{}: {e}", self.url.shown));
        // The broker answered and said no (credentials, virtual host): a configuration error.
        if e.is_amqp_error() {
            OpenError::Refused(reason)
        } else {
            OpenError::Unreachable(reason)
        }
    }

    /// A passive declare: fails when the exchange does not exist, creates nothing. On its own
    /// channel, since a failed passive declare closes the channel it ran on.
    async fn check_exchange(&self, link: &Link) -> Result<(), SinkError> {
        if self.exchange.as_str().is_empty() {
            return Ok(()); // the default exchange always exists
        }
        let refused = |reason: String| SinkError::Refused {
            url: self.url.shown.clone(),
            reason: self.url.scrub(reason),
        };
        let checked = async {
            let channel = link.connection.create_channel().await?;
            let declared = channel
                .exchange_declare(
                    self.exchange.clone(),
                    lapin::ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await;
            if declared.is_ok() {
                let _ = channel.close(200, "checked".into()).await;
            }
            declared
        };
        match tokio::time::timeout(self.timeout, checked).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => match e.kind() {
                lapin::ErrorKind::ProtocolError(amqp)
                    if amqp.kind() == &AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) =>
                {
                    Err(SinkError::NoExchange {
                        url: self.url.shown.clone(),
                        exchange: self.exchange.to_string(),
                    })
                }
                _ => Err(refused(format!(
                    "cannot check that exchange {:?} exists: {e}",
                    self.exchange.as_str()
                ))),
            },
            Err(_) => Err(refused(format!(
                "the broker did not say whether exchange {:?} exists in time",
                self.exchange.as_str()
            ))),
        }
    }

    async fn publish(&self, job: &Job) -> Result<(), String> {
        let webhook = &job.webhook;
        let message_id = ShortString::try_new(webhook.id.clone())
            .map_err(|_| "the webhook id is longer than an AMQP message_id (255 bytes)")?;
        let kind = ShortString::try_new(webhook.event.clone())
            .map_err(|_| "the event is longer than an AMQP type (255 bytes)")?;
        let properties = BasicProperties::default()
            .with_message_id(message_id)
            .with_type(kind)
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let body = webhook.to_json_string();

        let mut link = self.link.lock().await;
        if !link.as_ref().is_some_and(Link::usable) {
            if let Some(old) = link.take() {
                old.close();
            }
            *link = Some(self.open_link().await.map_err(|e| match e {
                OpenError::Refused(reason) | OpenError::Unreachable(reason) => reason,
            })?);
        }
        let Some(channel) = link.as_ref().map(|l| l.channel.clone()) else {
            return Err(self.explain("no channel"));
        };
        let published = async {
            channel
                .basic_publish(
                    self.exchange.clone(),
                    self.routing_key.clone(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    body.as_bytes(),
                    properties,
                )
                .await?
                .await
        };
        let outcome = match tokio::time::timeout(self.timeout, published).await {
            Ok(Ok(Confirmation::Ack(None))) => return Ok(()),
            Ok(Ok(Confirmation::Ack(Some(returned)))) => format!(
                "returned unroutable ({} {}): no queue is bound for routing key {:?}",
                returned.reply_code,
                returned.reply_text.as_str(),
                self.routing_key.as_str()
            ),
            Ok(Ok(Confirmation::Nack(_))) => "nacked by the broker".to_owned(),
            Ok(Ok(Confirmation::NotRequested)) => "not confirmed (confirm mode is off)".to_owned(),
            Ok(Err(e)) => {
                // The channel or connection may be broken: open a new one next time.
                if let Some(old) = link.take() {
                    old.close();
                }
                e.to_string()
            }
            Err(_) => {
                if let Some(old) = link.take() {
                    old.close();
                }
                "no confirm in time".to_owned()
            }
        };
        Err(self.explain(&outcome))
    }

    fn explain(&self, outcome: &str) -> String {
        self.url.scrub(format!(
            "AMQP publish to exchange {:?} via {} failed: {outcome}",
            self.exchange.as_str(),
            self.url.shown
        ))
    }
}

enum OpenError {
    /// The broker answered and refused (credentials, virtual host).
    Refused(String),
    /// No answer (down, unreachable, timed out).
    Unreachable(String),
}

#[async_trait]
impl Handler for AmqpSink {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        Ok(self.publish(job).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(raw: &str) -> Result<Target, SinkError> {
        target_of(&BrokerUrl::parse_with(raw, "amqp", None).unwrap())
    }

    #[test]
    fn reads_vhost_exchange_and_routing_key() {
        let t = target("amqp://app:pw@rabbit:5673/%2f?exchange=kyc&routing_key=passfort").unwrap();
        assert_eq!(t.uri.vhost, "/");
        assert_eq!(t.uri.authority.port, 5673);
        assert_eq!(t.uri.authority.userinfo.username, "app");
        assert_eq!(t.uri.authority.userinfo.password, "pw");
        assert_eq!(t.exchange.as_str(), "kyc");
        assert_eq!(t.routing_key.as_str(), "passfort");
        let t = target("amqp://rabbit/prod?exchange=").unwrap();
        assert_eq!(t.uri.vhost, "prod");
        assert_eq!(t.uri.authority.port, 5672);
        assert_eq!(t.exchange.as_str(), "");
        assert_eq!(t.routing_key.as_str(), "");
        assert!(target("amqp://rabbit/").is_err(), "no exchange");
        assert!(target("amqp://rabbit/?exchange=x&queue=q").is_err());
        let long = "x".repeat(256);
        assert!(target(&format!("amqp://rabbit/?exchange={long}")).is_err());
    }
}

//! The binary's built-in handlers, for those who do not write Rust.
//!
//! Every sink hands on the webhook object as received minus `secret` (keys `id`, `event`,
//! `timestamp`, `data`), one webhook at a time, in arrival order:
//!
//! | sink | what it does | success |
//! |---|---|---|
//! | `stdout` | one JSON line per webhook on standard output | written and flushed |
//! | `jsonl:PATH` | one JSON line per webhook appended to `PATH` | written and `fsync`ed |
//! | `exec:COMMAND` | runs `sh -c COMMAND` per webhook with the JSON on stdin | exit status 0 |
//! | `http:URL` | `POST`s the JSON to `URL` (`Content-Type: application/json`) | a 2xx answer |
//! | `nats://[USER:PASS@]HOST:PORT/SUBJECT` | JetStream publish, `Nats-Msg-Id` = webhook id ([`nats`]) | the stream's PubAck (a duplicate too) |
//! | `amqp://USER:PASS@HOST:PORT/VHOST?exchange=EX&routing_key=KEY` | RabbitMQ publish, persistent, mandatory, `message_id` = webhook id ([`amqp`]) | the broker's confirm |
//! | `redis://[:PASS@]HOST:PORT/DB?stream=KEY` | `XADD` with the entry ID `<arrival position>-0` ([`redis`]) | Redis's answer, or its refusal of a repeat |
//!
//! No sink ever forwards PassFort's `Authorization` header or the secret: the `exec:` child
//! does not even inherit `PASSFORT_WEBHOOK_SECRET*` from the environment.
//!
//! `jsonl:` is idempotent across crashes: on start it reads the id on the file's last complete
//! line (dropping a torn last line), and skips a webhook whose id is that one. Because webhooks
//! are handed on strictly in order, the only webhook that can be handed on again after a crash
//! is the one whose line was written last, so the file holds every webhook exactly once.
//!
//! The broker sinks each sit behind their cargo feature (`nats`, `amqp`, `redis`; the binary's
//! `cli` feature turns all three on). Their password comes from the URL or
//! `PASSFORT_SINK_PASSWORD` and is never shown ([`broker_url`]). A broker that is down makes the
//! handler fail, so the worker retries with its back-off; the answer to PassFort never waits for
//! a broker. See `docs/brokers.md`.
//!
//! One file per sink. `http:` needs an HTTP client and so sits behind the `http-sink` feature
//! (on by default); a build without it still parses `http:URL` and says which feature is missing
//! when asked to open it. A new sink is one file here, one [`Sink`] variant, one arm in
//! `Sink::from_str` and one in [`Sink::open`].

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(any(feature = "nats", feature = "amqp", feature = "redis"))]
pub mod broker_url;
mod exec;
#[cfg(feature = "http-sink")]
mod http;
mod jsonl;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "redis")]
pub mod redis;
mod stdout;

pub use exec::ExecSink;
#[cfg(feature = "http-sink")]
pub use http::HttpSink;
pub use jsonl::JsonlSink;
pub use stdout::StdoutSink;

use crate::handler::Handler;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// A built-in sink, as named on the command line (`--sink`). `Debug` and `Display` never show a
/// password.
#[derive(Clone, PartialEq, Eq)]
pub enum Sink {
    /// `stdout`
    Stdout,
    /// `jsonl:PATH`
    Jsonl(PathBuf),
    /// `exec:COMMAND`
    Exec(String),
    /// `http:URL` (a bare `http://…` or `https://…` URL is accepted too)
    Http(String),
    /// `nats://[USER:PASS@]HOST:PORT/SUBJECT` (feature `nats`)
    Nats(String),
    /// `amqp://USER:PASS@HOST:PORT/VHOST?exchange=EX&routing_key=KEY` (feature `amqp`)
    Amqp(String),
    /// `redis://[:PASS@]HOST:PORT/DB?stream=KEY` (feature `redis`)
    Redis(String),
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sink({self})")
    }
}

/// Why a sink could not be named or opened.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The `--sink` value is not one of the forms above.
    #[error("unknown sink {0:?}: expected stdout, jsonl:PATH, exec:COMMAND, http:URL, nats://…, amqp://… or redis://…")]
    Unknown(String),
    /// The `jsonl:` file could not be opened or read.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[cfg(feature = "http-sink")]
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The sink needs a cargo feature this build was compiled without.
    #[error(
        "the {sink} sink needs the `{feature}` feature, which this build was compiled without"
    )]
    Disabled {
        /// The sink's kind (`http`, `nats`, `amqp`, `redis`).
        sink: &'static str,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
    /// A broker sink's URL is not of its form (shown without its password).
    #[error("invalid sink URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The broker answered and refused at start: credentials, virtual host, key type…
    #[error("sink {url} refused: {reason}")]
    Refused {
        /// The URL, without its password.
        url: String,
        /// Why (never containing the password).
        reason: String,
    },
    /// No JetStream stream covers the `nats://` sink's subject.
    #[error("sink {url}: no JetStream stream covers subject {subject:?}; create one (e.g. `nats stream add --subjects {subject}`) before starting")]
    NoStream {
        /// The URL, without its password.
        url: String,
        /// The subject.
        subject: String,
    },
    /// The `amqp://` sink's exchange does not exist (the sink declares nothing).
    #[error("sink {url}: exchange {exchange:?} does not exist; declare it (and bind a queue) before starting: the sink declares nothing")]
    NoExchange {
        /// The URL, without its password.
        url: String,
        /// The exchange.
        exchange: String,
    },
}

impl FromStr for Sink {
    type Err = SinkError;

    fn from_str(s: &str) -> Result<Self, SinkError> {
        if s == "stdout" {
            return Ok(Sink::Stdout);
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Sink::Http(s.to_owned()));
        }
        if let Some(broker) = Self::broker(s)? {
            return Ok(broker);
        }
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| SinkError::Unknown(s.to_owned()))?;
        if rest.is_empty() {
            return Err(SinkError::Unknown(s.to_owned()));
        }
        match kind {
            "jsonl" => Ok(Sink::Jsonl(PathBuf::from(rest))),
            "exec" => Ok(Sink::Exec(rest.to_owned())),
            "http" if rest.starts_with("http://") || rest.starts_with("https://") => {
                Ok(Sink::Http(rest.to_owned()))
            }
            _ => Err(SinkError::Unknown(s.to_owned())),
        }
    }
}

impl fmt::Display for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::Stdout => write!(f, "stdout"),
            Sink::Jsonl(path) => write!(f, "jsonl:{}", path.display()),
            Sink::Exec(command) => write!(f, "exec:{command}"),
            // A URL may carry credentials (`https://user:password@host/…`): never shown.
            Sink::Http(url) => write!(f, "http:{}", crate::redact::redact_url(url)),
            Sink::Nats(url) | Sink::Amqp(url) | Sink::Redis(url) => {
                f.write_str(&crate::redact::redact_url(url))
            }
        }
    }
}

impl Sink {
    /// Opens the sink as a [`Handler`]. A broker sink connects and checks its stream, exchange
    /// or key here, so that a wrong one stops `serve`/`work` at start with a one-line error.
    pub async fn open(&self) -> Result<Arc<dyn Handler>, SinkError> {
        Ok(match self {
            Sink::Stdout => Arc::new(StdoutSink),
            Sink::Jsonl(path) => Arc::new(JsonlSink::open(path)?),
            Sink::Exec(command) => Arc::new(ExecSink::new(command.clone())),
            #[cfg(feature = "http-sink")]
            Sink::Http(url) => Arc::new(HttpSink::new(url.clone())?),
            #[cfg(not(feature = "http-sink"))]
            Sink::Http(_) => {
                return Err(SinkError::Disabled {
                    sink: "http",
                    feature: "http-sink",
                })
            }
            #[cfg(feature = "nats")]
            Sink::Nats(url) => Arc::new(nats::NatsSink::connect(url).await?),
            #[cfg(not(feature = "nats"))]
            Sink::Nats(_) => return Err(broker_disabled("nats")),
            #[cfg(feature = "amqp")]
            Sink::Amqp(url) => Arc::new(amqp::AmqpSink::connect(url).await?),
            #[cfg(not(feature = "amqp"))]
            Sink::Amqp(_) => return Err(broker_disabled("amqp")),
            #[cfg(feature = "redis")]
            Sink::Redis(url) => Arc::new(redis::RedisSink::connect(url).await?),
            #[cfg(not(feature = "redis"))]
            Sink::Redis(_) => return Err(broker_disabled("redis")),
        })
    }

    /// A broker sink's URL checked against its form (without reading the environment or
    /// connecting); `None` when `s` is no broker URL.
    fn broker(s: &str) -> Result<Option<Sink>, SinkError> {
        let Some((scheme, _)) = s.split_once("://") else {
            return Ok(None);
        };
        match scheme {
            #[cfg(feature = "nats")]
            "nats" => {
                nats::subject_of(&broker_url::BrokerUrl::parse_with(s, scheme, None)?)?;
                Ok(Some(Sink::Nats(s.to_owned())))
            }
            #[cfg(feature = "amqp")]
            "amqp" => {
                amqp::target_of(&broker_url::BrokerUrl::parse_with(s, scheme, None)?)?;
                Ok(Some(Sink::Amqp(s.to_owned())))
            }
            #[cfg(feature = "redis")]
            "redis" => {
                redis::target_of(&broker_url::BrokerUrl::parse_with(s, scheme, None)?)?;
                Ok(Some(Sink::Redis(s.to_owned())))
            }
            #[cfg(not(feature = "nats"))]
            "nats" => Err(broker_disabled("nats")),
            #[cfg(not(feature = "amqp"))]
            "amqp" => Err(broker_disabled("amqp")),
            #[cfg(not(feature = "redis"))]
            "redis" => Err(broker_disabled("redis")),
            _ => Ok(None),
        }
    }
}

/// The error for a broker sink this build was compiled without: its feature has its name.
#[allow(dead_code)] // every broker feature on: nothing is disabled
fn broker_disabled(sink: &'static str) -> SinkError {
    SinkError::Disabled {
        sink,
        feature: sink,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_sink_form() {
        assert_eq!("stdout".parse::<Sink>().unwrap(), Sink::Stdout);
        assert_eq!(
            "jsonl:/tmp/out.jsonl".parse::<Sink>().unwrap(),
            Sink::Jsonl("/tmp/out.jsonl".into())
        );
        assert_eq!(
            "exec:cat >> x".parse::<Sink>().unwrap(),
            Sink::Exec("cat >> x".into())
        );
        assert_eq!(
            "http:https://example.test/h".parse::<Sink>().unwrap(),
            Sink::Http("https://example.test/h".into())
        );
        assert_eq!(
            "http://127.0.0.1:9/h".parse::<Sink>().unwrap(),
            Sink::Http("http://127.0.0.1:9/h".into())
        );
        for bad in ["", "stderr", "jsonl:", "ftp:x", "http:nope"] {
            assert!(bad.parse::<Sink>().is_err(), "{bad}");
        }
    }
}

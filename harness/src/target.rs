//! The receiver under test, as the harness sees it: a URL that answers HTTP POSTs.
//!
//! The harness is black-box: everything it knows about the target comes through this module (and,
//! optionally, through the observe file of [`crate::observe`]). Requests are shaped exactly as
//! PassFort sends them (spec §1): `POST`, `Content-Type: application/json`,
//! `Authorization: Bearer <shared secret>`.

use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use passfort_clock::SharedClock;
use serde_json::Value;

/// The shared secret PassFort and the target agree on.
///
/// Wrapped so that it never reaches a log, a report or a `Debug` print by accident (CONTRIBUTING:
/// secrets never in logs).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret read from the environment; `None` when it is empty, because an empty shared
    /// secret would make every "wrong secret" scenario meaningless.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        (!value.is_empty()).then_some(Self(value))
    }

    /// The secret itself, for the `Authorization` header and the body's `secret` field.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A different secret of the same length: a receiver that only compares lengths, or stops
    /// at the first bytes, still has to reject it.
    pub fn wrong(&self) -> String {
        self.0
            .chars()
            .map(|c| if c == 'x' { 'y' } else { 'x' })
            .collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What the `Authorization` header of a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer {
    /// `Bearer <the shared secret>`, as PassFort sends it.
    Right,
    /// `Bearer <another secret>`: what a forger who only knows the body format would send.
    Wrong,
    /// No `Authorization` header at all.
    Missing,
}

/// How one request to the target ended.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The target answered; `elapsed` runs from sending the request to receiving the status line.
    Answered {
        /// The HTTP status code of the answer.
        status: u16,
        /// How long the answer took.
        elapsed: Duration,
    },
    /// No answer within the time the caller allowed (or one that was there only after it);
    /// PassFort counts such an attempt as failed.
    NoAnswer {
        /// The time that was allowed.
        limit: Duration,
    },
    /// The request could not be sent or its answer not read (connection refused, reset, …).
    Unreachable {
        /// What went wrong, for a person.
        reason: String,
    },
}

impl Delivery {
    /// `true` for an answer with exactly status 200, the only answer PassFort reads as success.
    pub fn is_200(&self) -> bool {
        matches!(self, Delivery::Answered { status: 200, .. })
    }

    /// The status code, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Delivery::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A short, human account of the delivery, for failure reasons.
    pub fn describe(&self) -> String {
        match self {
            Delivery::Answered { status, elapsed } => {
                format!(
                    "answered {} after {}",
                    status_text(*status),
                    millis(*elapsed)
                )
            }
            Delivery::NoAnswer { limit } => format!("no answer within {}", millis(*limit)),
            Delivery::Unreachable { reason } => format!("request failed: {reason}"),
        }
    }
}

/// `202 Accepted`-style text for a status code.
pub fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// Durations in reports are read by people: milliseconds up to a few seconds, then seconds.
pub fn millis(duration: Duration) -> String {
    if duration < Duration::from_millis(10) {
        format!("{:.1} ms", duration.as_secs_f64() * 1_000.0)
    } else if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// The receiver under test.
#[derive(Debug, Clone)]
pub struct Target {
    url: reqwest::Url,
    secret: Secret,
    client: reqwest::Client,
    clock: SharedClock,
}

/// The target URL given on the command line cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not a URL at all.
    #[error("`{url}` is not a URL: {reason}")]
    NotAUrl {
        /// What was given.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A URL, but not one the harness can POST to.
    #[error("`{0}` is not an http:// or https:// URL")]
    NotHttp(String),
    /// The HTTP client could not be built (TLS backend failure).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The shared secret cannot travel in an `Authorization` header (a control character such as
    /// a newline): PassFort could not send it either, and every scenario would fail for the
    /// harness's sake, not the target's. The message never repeats the secret.
    #[error(
        "PASSFORT_WEBHOOK_SECRET cannot be sent in an HTTP Authorization header (it holds a \
         control character, e.g. a trailing newline); set it to the secret alone"
    )]
    SecretNotAHeader,
}

impl Target {
    /// A target at `url` expecting `secret`, timed by `clock`.
    pub fn new(url: &str, secret: Secret, clock: SharedClock) -> Result<Self, TargetError> {
        let parsed = reqwest::Url::parse(url).map_err(|error| TargetError::NotAUrl {
            url: url.to_owned(),
            reason: error.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TargetError::NotHttp(url.to_owned()));
        }
        if reqwest::header::HeaderValue::from_str(&format!("Bearer {}", secret.expose())).is_err() {
            return Err(TargetError::SecretNotAHeader);
        }
        let client = reqwest::Client::builder()
            // PassFort is not known to follow redirects, and a redirect is not a 200: the
            // harness reports a 301/302/307 as the answer it is.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("passfort-harness/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            url: parsed,
            secret,
            client,
            clock,
        })
    }

    /// The URL under test, for reports.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The shared secret, for building bodies.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The clock that times answers.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// POSTs `body` (one webhook or a batch) with the given `Authorization`, waiting at most
    /// `limit` for the answer.
    pub async fn post(&self, body: &Value, bearer: Bearer, limit: Duration) -> Delivery {
        self.upload(body, bearer, limit, Upload::Whole).await
    }

    /// POSTs `body` sent the way `upload` says, waiting at most `limit` (from the first byte
    /// sent) for the answer.
    pub async fn upload(
        &self,
        body: &Value,
        bearer: Bearer,
        limit: Duration,
        upload: Upload,
    ) -> Delivery {
        let bytes = match serde_json::to_vec(&InPassFortOrder(body)) {
            Ok(bytes) => bytes::Bytes::from(bytes),
            Err(error) => {
                return Delivery::Unreachable {
                    reason: format!("cannot encode the body: {error}"),
                }
            }
        };
        let length = bytes.len();
        let body = match upload {
            Upload::Whole => reqwest::Body::from(bytes),
            Upload::Trickle { over, pieces } => {
                reqwest::Body::wrap_stream(trickle(bytes, over, pieces, self.clock.clone()))
            }
            Upload::HangUpHalfway => {
                reqwest::Body::wrap_stream(hang_up_halfway(bytes, self.clock.clone()))
            }
        };
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            // Announced up front, as for any body PassFort sends: the receiver knows how much
            // is to come even when it comes slowly, or never.
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(body);
        match bearer {
            Bearer::Right => request = request.bearer_auth(self.secret.expose()),
            Bearer::Wrong => request = request.bearer_auth(self.secret.wrong()),
            Bearer::Missing => {}
        }
        let started = self.clock.now();
        match passfort_clock::timeout(&self.clock, limit, request.send()).await {
            Ok(Ok(response)) => {
                let elapsed = self
                    .clock
                    .now()
                    .duration_since(started)
                    .unwrap_or(Duration::ZERO);
                // An answer that was ready only after the limit (the harness was not scheduled
                // in between) is as late as one that never came: PassFort's timer does not wait
                // for anyone.
                if elapsed > limit {
                    return Delivery::NoAnswer { limit };
                }
                Delivery::Answered {
                    status: response.status().as_u16(),
                    elapsed,
                }
            }
            Ok(Err(error)) => Delivery::Unreachable {
                reason: describe_transport_error(&error, self.url.as_str()),
            },
            Err(_) => Delivery::NoAnswer { limit },
        }
    }
}

/// The envelope's fields in the order PassFort writes them (spec §2): `id` first, `data` last.
const ENVELOPE_ORDER: [&str; 5] = ["id", "event", "secret", "timestamp", "data"];

/// A body serialised with each envelope's fields in PassFort's order (any others after them),
/// whatever the order of the `Value`'s map: a receiver reading a body as it arrives meets the
/// `id` first, as it would from PassFort.
struct InPassFortOrder<'a>(&'a Value);

impl serde::Serialize for InPassFortOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Array(items) => serializer.collect_seq(items.iter().map(InPassFortOrder)),
            Value::Object(fields) => serializer.collect_map(
                ENVELOPE_ORDER
                    .iter()
                    .filter_map(|key| fields.get_key_value(*key))
                    .chain(
                        fields
                            .iter()
                            .filter(|(key, _)| !ENVELOPE_ORDER.contains(&key.as_str())),
                    ),
            ),
            other => other.serialize(serializer),
        }
    }
}

/// How a request's body travels to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// All at once, as PassFort sends it on a good network.
    Whole,
    /// In `pieces` equal pieces, one at the start and the rest spread evenly over `over` on the
    /// clock: a slow or congested network between PassFort and the target.
    Trickle {
        /// How long the body takes to arrive.
        over: Duration,
        /// How many pieces it comes in.
        pieces: usize,
    },
    /// The first half of the body, then the connection is dropped: the sender went away (a
    /// deploy, a network cut) and will send the whole webhook again later.
    HangUpHalfway,
}

/// How long the first half stays on the wire before the hang-up, so that it reaches the target
/// rather than dying in a buffer with the connection.
const BEFORE_HANGING_UP: Duration = Duration::from_millis(200);

fn trickle(
    bytes: bytes::Bytes,
    over: Duration,
    pieces: usize,
    clock: SharedClock,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let pieces = pieces.clamp(1, bytes.len().max(1));
    let size = bytes.len().div_ceil(pieces).max(1);
    let gap = over / u32::try_from(pieces.saturating_sub(1).max(1)).unwrap_or(u32::MAX);
    let chunks: Vec<bytes::Bytes> = (0..bytes.len())
        .step_by(size)
        .map(|start| bytes.slice(start..(start + size).min(bytes.len())))
        .collect();
    futures::stream::iter(chunks.into_iter().enumerate()).then(move |(n, chunk)| {
        let clock = clock.clone();
        async move {
            if n > 0 {
                clock.sleep(gap).await;
            }
            Ok(chunk)
        }
    })
}

fn hang_up_halfway(
    bytes: bytes::Bytes,
    clock: SharedClock,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let half = bytes.slice(..bytes.len() / 2);
    let first = futures::stream::once(async move { Ok(half) });
    let hang_up = futures::stream::once(async move {
        clock.sleep(BEFORE_HANGING_UP).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the harness hung up halfway through the body, on purpose",
        ))
    });
    first.chain(hang_up)
}

fn describe_transport_error(error: &reqwest::Error, url: &str) -> String {
    if error.is_connect() {
        format!("cannot connect to {url}: is the receiver running and listening there?")
    } else {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_secret_differs_but_keeps_the_length() {
        for value in ["s", "xxxx", "the-shared-secret"] {
            let secret = Secret::new(value).unwrap();
            assert_ne!(secret.wrong(), value);
            assert_eq!(secret.wrong().len(), value.len());
        }
    }

    #[test]
    fn an_empty_secret_is_refused_and_a_secret_never_prints() {
        assert!(Secret::new("").is_none());
        let secret = Secret::new("hunter2").unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn only_http_urls_are_targets() {
        let clock: SharedClock = std::sync::Arc::new(passfort_clock::SystemClock);
        let secret = Secret::new("s").unwrap();
        assert!(Target::new("http://127.0.0.1:1/hook", secret.clone(), clock.clone()).is_ok());
        assert!(matches!(
            Target::new("ftp://example/", secret.clone(), clock.clone()),
            Err(TargetError::NotHttp(_))
        ));
        assert!(matches!(
            Target::new("not a url", secret, clock),
            Err(TargetError::NotAUrl { .. })
        ));
    }

    #[test]
    fn bodies_carry_the_envelope_fields_in_passfort_order() {
        let webhook = serde_json::json!({
            "data": {"b": 1, "a": 2}, "timestamp": 1, "secret": "s", "event": "E", "id": "x",
            "extra": true
        });
        let text = serde_json::to_string(&InPassFortOrder(&webhook)).unwrap();
        assert_eq!(
            text,
            r#"{"id":"x","event":"E","secret":"s","timestamp":1,"data":{"a":2,"b":1},"extra":true}"#
        );
        let batch = serde_json::to_string(&InPassFortOrder(&Value::Array(vec![webhook]))).unwrap();
        assert!(batch.starts_with(r#"[{"id":"x","#), "{batch}");
    }

    #[test]
    fn statuses_read_like_http() {
        assert_eq!(status_text(202), "202 Accepted");
        assert_eq!(millis(Duration::from_micros(2_340)), "2.3 ms");
        assert_eq!(millis(Duration::from_millis(40)), "40 ms");
        assert_eq!(millis(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(millis(Duration::from_secs(12)), "12.0 s");
    }
}

//! A delivery's body (one webhook or an array of them) and its verification.
//!
//! [`Verified<Batch>`] can only be produced by [`Batch::verify`] (the bearer header and every
//! body secret checked, every element a webhook with a string `id` and `event`, secrets
//! stripped). The store's insert takes a `Verified<Batch>`, so unverified input cannot reach the
//! store by accident: that is a compile-time fact, not a convention.

use crate::secret::SecretSet;
use crate::webhook::{Webhook, WebhookError, SECRET_FIELD};
use http::StatusCode;
use serde_json::Value;
use std::ops::Deref;

/// How the webhooks travelled: PassFort sends one object without batching, an array with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// The body was one webhook object (PassFort's 10 s answer limit applies).
    Single,
    /// The body was a JSON array (PassFort's 5 s answer limit applies).
    Array,
}

/// The webhooks of one request, in the order they were sent, secrets removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    shape: Shape,
    webhooks: Vec<Webhook>,
}

impl Batch {
    /// How the body was shaped.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The webhooks, in the order they were sent.
    pub fn webhooks(&self) -> &[Webhook] {
        &self.webhooks
    }

    /// How many webhooks the request carried.
    pub fn len(&self) -> usize {
        self.webhooks.len()
    }

    /// Whether the request carried no webhook (an empty array).
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty()
    }

    /// Checks a request the way PassFort's contract requires and reads its webhooks.
    ///
    /// `authorization` is the raw `Authorization` header value, if any. Checks run in this order:
    /// the bearer secret (401), the body as JSON of the right shape (400), every element's
    /// `secret` (401; one bad element fails the whole request), every element's `id` and `event`
    /// (400). The body size limit (413) is the HTTP layer's job, before this is called.
    pub fn verify(
        secrets: &SecretSet,
        authorization: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Verified<Batch>, Rejection> {
        let bearer = check_bearer(secrets, authorization)?;
        verify_body(secrets, &bearer, body)
    }
}

/// Proof that the bearer header was checked; only [`check_bearer`] makes one.
#[derive(Debug)]
pub(crate) struct BearerChecked(());

/// Checks `Authorization: Bearer S` (scheme case-insensitive) against the accepted secrets.
pub(crate) fn check_bearer(
    secrets: &SecretSet,
    authorization: Option<&[u8]>,
) -> Result<BearerChecked, Rejection> {
    let header = authorization.ok_or(Rejection::Unauthorized(Unauthorized::MissingHeader))?;
    let header = header.trim_ascii();
    let (scheme, token) = match header.iter().position(|b| *b == b' ') {
        Some(space) => (&header[..space], header[space + 1..].trim_ascii()),
        None => return Err(Rejection::Unauthorized(Unauthorized::NotBearer)),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(Rejection::Unauthorized(Unauthorized::NotBearer));
    }
    if secrets.accepts(token) {
        Ok(BearerChecked(()))
    } else {
        Err(Rejection::Unauthorized(Unauthorized::WrongBearer))
    }
}

/// Reads and checks the body of a request whose bearer header was checked.
pub(crate) fn verify_body(
    secrets: &SecretSet,
    _bearer: &BearerChecked,
    body: &[u8],
) -> Result<Verified<Batch>, Rejection> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| Rejection::BadRequest(BadRequest::NotJson))?;
    let (shape, elements) = match value {
        Value::Object(_) => (Shape::Single, vec![value]),
        Value::Array(elements) => (Shape::Array, elements),
        _ => return Err(Rejection::BadRequest(BadRequest::NotObjectOrArray)),
    };
    for (index, element) in elements.iter().enumerate() {
        let Value::Object(object) = element else {
            return Err(Rejection::BadRequest(BadRequest::Element {
                index,
                problem: WebhookError::NotAnObject,
            }));
        };
        let presented = match object.get(SECRET_FIELD) {
            Some(Value::String(secret)) => secret.as_bytes(),
            _ => return Err(Rejection::Unauthorized(Unauthorized::BodySecret { index })),
        };
        if !secrets.accepts(presented) {
            return Err(Rejection::Unauthorized(Unauthorized::BodySecret { index }));
        }
    }
    let webhooks = elements
        .into_iter()
        .enumerate()
        .map(|(index, element)| {
            Webhook::from_json(element)
                .map_err(|problem| Rejection::BadRequest(BadRequest::Element { index, problem }))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Verified {
        inner: Batch { shape, webhooks },
    })
}

/// Something that passed verification. Only this crate's verification makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified<T> {
    inner: T,
}

impl<T> Verified<T> {
    /// The verified value.
    pub fn get(&self) -> &T {
        &self.inner
    }

    /// Gives up the proof and keeps the value.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

/// Why a request was not accepted; each maps to one answer of the wire contract.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// 401: a secret is missing or wrong.
    #[error("unauthorized: {0}")]
    Unauthorized(Unauthorized),
    /// 400: the body is not a webhook or an array of webhooks.
    #[error("bad request: {0}")]
    BadRequest(BadRequest),
    /// 413: the body is over the configured limit.
    #[error("body over the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Which secret check failed. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    /// No `Authorization` header.
    #[error("missing Authorization header")]
    MissingHeader,
    /// The header is not `Bearer <secret>`.
    #[error("Authorization is not a bearer secret")]
    NotBearer,
    /// More than one `Authorization` header: which one counts would depend on their order, so
    /// none does.
    #[error("more than one Authorization header")]
    SeveralHeaders,
    /// The bearer secret is not accepted.
    #[error("wrong bearer secret")]
    WrongBearer,
    /// The element at `index` has a missing or wrong `secret`.
    #[error("webhook {index} has a missing or wrong secret")]
    BodySecret {
        /// Position of the element in the body (0 for a single webhook).
        index: usize,
    },
}

/// What is wrong with the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// Not JSON at all.
    #[error("body is not JSON")]
    NotJson,
    /// JSON, but neither an object nor an array.
    #[error("body is neither a webhook object nor an array of them")]
    NotObjectOrArray,
    /// An element is not a webhook.
    #[error("webhook {index}: {problem}")]
    Element {
        /// Position of the element in the body (0 for a single webhook).
        index: usize,
        /// What is wrong with it.
        problem: WebhookError,
    },
}

impl Rejection {
    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Rejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// A short label for metrics and logs (`unauthorized`, `bad_request`, `too_large`).
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Unauthorized(_) => "unauthorized",
            Rejection::BadRequest(_) => "bad_request",
            Rejection::TooLarge { .. } => "too_large",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secrets() -> SecretSet {
        SecretSet::new(["s1", "s0"]).unwrap()
    }

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn accepts_an_object_and_an_array() {
        let one = json!({"id": "a", "event": "E", "secret": "s1", "timestamp": 1, "data": {}});
        let batch = Batch::verify(&secrets(), Some(b"Bearer s1"), &body(one.clone())).unwrap();
        assert_eq!(batch.shape(), Shape::Single);
        assert_eq!(batch.webhooks()[0].id, "a");
        let two = json!([one, {"id": "b", "event": "E", "secret": "s0"}]);
        let batch = Batch::verify(&secrets(), Some(b"bearer s0"), &body(two)).unwrap();
        assert_eq!(batch.shape(), Shape::Array);
        assert_eq!(batch.len(), 2);
        assert!(!batch.webhooks()[1].to_json_string().contains("s0"));
    }

    #[test]
    fn rejects_bad_headers_with_401() {
        let ok = body(json!({"id": "a", "event": "E", "secret": "s1"}));
        for header in [
            None,
            Some(&b"s1"[..]),
            Some(b"Basic s1"),
            Some(b"Bearer s2"),
            Some(b"Bearer "),
        ] {
            let err = Batch::verify(&secrets(), header, &ok).unwrap_err();
            assert_eq!(err.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        }
    }

    #[test]
    fn one_bad_body_secret_fails_the_whole_batch() {
        let b = body(json!([
            {"id": "a", "event": "E", "secret": "s1"},
            {"id": "b", "event": "E", "secret": "nope"}
        ]));
        assert_eq!(
            Batch::verify(&secrets(), Some(b"Bearer s1"), &b).unwrap_err(),
            Rejection::Unauthorized(Unauthorized::BodySecret { index: 1 })
        );
        let missing = body(json!({"id": "a", "event": "E"}));
        assert_eq!(
            Batch::verify(&secrets(), Some(b"Bearer s1"), &missing).unwrap_err(),
            Rejection::Unauthorized(Unauthorized::BodySecret { index: 0 })
        );
    }

    #[test]
    fn rejects_bad_bodies_with_400() {
        for b in [
            b"not json".to_vec(),
            body(json!(42)),
            body(json!("x")),
            body(json!([1])),
            body(json!([{"event": "E", "secret": "s1"}])),
            body(json!({"id": "a", "event": 3, "secret": "s1"})),
        ] {
            let err = Batch::verify(&secrets(), Some(b"Bearer s1"), &b).unwrap_err();
            assert_eq!(
                err.status(),
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(&b)
            );
        }
    }
}

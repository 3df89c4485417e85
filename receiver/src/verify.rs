//! Everything that decides whether a request is PassFort's: 401, 400 or 413, before anything
//! is stored.
//!
//! Checks run in this order, and the first failure is the answer:
//!
//! 1. exactly one `Authorization` header ([`authorization`]): several are refused outright,
//!    since which one a proxy keeps is not ours to guess (401);
//! 2. `Bearer S` with `S` an accepted secret, compared in constant time (401); the body is not
//!    even read otherwise;
//! 3. the body within the size limit, by `Content-Length` and while reading (413);
//! 4. JSON, one object or an array (400);
//! 5. every element's `secret` (401; one bad element fails the whole request);
//! 6. every element a webhook with a string `id` and `event` (400); secrets stripped.
//!
//! Only this module makes a [`Verified<Batch>`] (typestate: unverified input cannot reach the
//! store), and every [`Rejection`] is an axum response ([`IntoResponse`]) carrying
//! `{"error": "…"}` and never a secret.

use crate::batch::{Batch, Shape};
use crate::secret::SecretSet;
use crate::webhook::{Webhook, WebhookError, SECRET_FIELD};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;
use std::ops::Deref;

/// Verifies a whole HTTP request: headers first, then the body read up to `body_limit` bytes,
/// then its content (the checks of the [module docs](self), in that order).
pub async fn request(
    secrets: &SecretSet,
    body_limit: usize,
    headers: &HeaderMap,
    body: Body,
) -> Result<Verified<Batch>, Rejection> {
    let bearer = check_bearer(secrets, authorization(headers)?)?;
    let bytes = read_body(headers, body, body_limit).await?;
    verify_body(secrets, &bearer, &bytes)
}

/// The request's one `Authorization` value, if any; several headers are refused, because
/// accepting the first (or any) right one would let a wrong one ride along.
pub fn authorization(headers: &HeaderMap) -> Result<Option<&[u8]>, Rejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next().map(|value| value.as_bytes());
    if values.next().is_some() {
        return Err(Rejection::Unauthorized(Unauthorized::SeveralHeaders));
    }
    Ok(first)
}

/// The body, refused with 413 when its declared or actual length is over `limit`.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, Rejection> {
    let too_large = Rejection::TooLarge { limit };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
        Err(_) => Err(Rejection::BadRequest(BadRequest::Unreadable)),
    }
}

/// Proof that the bearer header was checked; only [`check_bearer`] makes one.
#[derive(Debug)]
pub struct BearerChecked(());

/// Checks `Authorization: Bearer S` (scheme case-insensitive) against the accepted secrets.
pub fn check_bearer(
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
pub fn verify_body(
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
        inner: Batch::new(shape, webhooks),
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
    /// 400: the body is not a webhook or an array of webhooks (or could not be read).
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
    /// The body could not be read (the connection failed mid-body).
    #[error("could not read the request body")]
    Unreadable,
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

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Batch, Shape};
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
    fn several_authorization_headers_are_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(authorization(&headers), Ok(None));
        headers.append(header::AUTHORIZATION, "Bearer s1".parse().unwrap());
        assert_eq!(authorization(&headers), Ok(Some(&b"Bearer s1"[..])));
        headers.append(header::AUTHORIZATION, "Bearer s1".parse().unwrap());
        assert_eq!(
            authorization(&headers),
            Err(Rejection::Unauthorized(Unauthorized::SeveralHeaders))
        );
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

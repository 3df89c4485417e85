//! What goes on the wire: the endpoint and headers checked when settings change, and the HTTP
//! request built for the head of the queue (one envelope, or a batch in the configured shape,
//! with the `Authorization: Bearer` secret).

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::Uri;

use super::queue::State;
use super::EngineError;
use crate::account::{AccountSettings, BatchShape};
use crate::event::Webhook;

/// The request for the head, or why it could not be built (then the attempt fails with that
/// reason).
pub(super) type HeadRequest = Result<http::Request<Bytes>, String>;

/// What is in flight: taken under the lock with the request, handed back to settle its answer.
pub(super) struct InFlight {
    /// The webhooks the request carries, head first.
    pub(super) ids: Vec<String>,
    /// The queue's generation when it was built: an answer for a dropped queue changes nothing.
    pub(super) generation: u64,
    /// 1 for the first attempt at this head.
    pub(super) try_number: u32,
    /// The answer limit: 5 s batched, 10 s unbatched.
    pub(super) limit: Duration,
    pub(super) batched: bool,
}

impl State {
    /// Builds the request for the head and marks it in flight. `None` when nothing is due after
    /// all (emptied, disabled or already in flight meanwhile).
    pub(super) fn take_head_request(&mut self) -> Option<(HeadRequest, InFlight)> {
        self.due()?;
        let batched = self.settings.batching;
        let count = self.request_size();
        let secret = self.settings.secret.clone();
        let body = build_body(
            self.queue.iter().take(count).map(|q| &q.webhook),
            secret.expose(),
            batched.then_some(&self.settings.batch_shape),
        );
        let ids = self
            .queue
            .iter()
            .take(count)
            .map(|q| q.webhook.id.clone())
            .collect();
        let request = body.and_then(|body| {
            http::Request::builder()
                .method(self.settings.method.clone())
                .uri(self.uri.clone())
                .header(CONTENT_TYPE, self.settings.content_type.as_str())
                .header(AUTHORIZATION, format!("Bearer {}", secret.expose()))
                .body(body)
                .map_err(|e| e.to_string())
        });
        self.in_flight = true;
        self.retry_after_flight = false;
        let in_flight = InFlight {
            ids,
            generation: self.generation,
            // Counts restored from a state file may be at their maximum: saturate.
            try_number: self.failures.saturating_add(1),
            limit: self.settings.answer_limit(),
            batched,
        };
        Some((request, in_flight))
    }
}

/// Checks settings before they are used: a sane time scale and batch size, a secret and content
/// type that fit in headers, and an absolute http(s) endpoint (returned parsed).
pub(super) fn validate(settings: &AccountSettings) -> Result<Uri, EngineError> {
    if !(settings.time_scale.is_finite() && settings.time_scale > 0.0) {
        return Err(EngineError::InvalidTimeScale(settings.time_scale));
    }
    if settings.max_batch == 0 {
        return Err(EngineError::InvalidBatchSize);
    }
    let secret = settings.secret.expose();
    if http::HeaderValue::from_str(&format!("Bearer {secret}")).is_err() {
        return Err(EngineError::InvalidSecret);
    }
    if http::HeaderValue::from_str(&settings.content_type).is_err() {
        return Err(EngineError::InvalidContentType(
            settings.content_type.clone(),
        ));
    }
    parse_endpoint(&settings.endpoint)
}

fn parse_endpoint(endpoint: &str) -> Result<Uri, EngineError> {
    let invalid = |reason: String| EngineError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let uri: Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.authority().is_some() => Ok(uri),
        _ => Err(invalid(
            "expected an absolute http:// or https:// URL".into(),
        )),
    }
}

/// The request body: one envelope, or a batch in the configured shape.
fn build_body<'a>(
    webhooks: impl Iterator<Item = &'a Webhook>,
    secret: &str,
    batch: Option<&BatchShape>,
) -> Result<Bytes, String> {
    let envelopes: Vec<_> = webhooks.map(|w| w.envelope(secret)).collect();
    let bytes = match batch {
        None => match envelopes.first() {
            Some(envelope) => serde_json::to_vec(envelope),
            None => return Err("nothing to send".into()),
        },
        Some(BatchShape::Array) => serde_json::to_vec(&envelopes),
        Some(BatchShape::Wrapped { field }) => {
            let mut map = serde_json::Map::new();
            let array = serde_json::to_value(&envelopes).map_err(|e| e.to_string())?;
            map.insert(field.clone(), array);
            serde_json::to_vec(&map)
        }
    };
    bytes.map(Bytes::from).map_err(|e| e.to_string())
}

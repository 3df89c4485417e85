//! The JSON API behind the page, for scripts too: reads are open, actions check the token
//! first, then the input, and only then change anything.

use super::{error, Admin};
use crate::replay::{self, Range, ReplayError};
use crate::store::StoreError;
use crate::trends::Hour;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use passfort_clock::Clock;
use serde::Deserialize;
use serde_json::json;

/// The largest action body read: an id or a few fields, never more.
pub(super) const BODY_LIMIT: usize = 16 * 1024;
/// How many dead letters `GET /api/dead-letters` lists (the total is always given).
const DEAD_LETTERS_SHOWN: usize = 100;
/// The longest webhook id accepted in an action (PassFort's are UUIDs).
const MAX_ID_LEN: usize = 256;

pub(super) async fn trends(State(admin): State<Admin>) -> Json<Hour> {
    let now = admin.receiver.clock().now();
    Json(admin.receiver.metrics().trends().hour(now))
}

/// Whether actions are on (`token`) or off (`disabled`), which exist in this build, and, when
/// the request carries a token, whether it is the right one (so a script can check its token
/// without changing anything).
pub(super) async fn access(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let actions = match *admin.access {
        super::Access::ReadOnly => "disabled",
        super::Access::Token(_) => "token",
    };
    let token = match admin.access.check(&headers) {
        Ok(()) => "accepted",
        Err(refusal) => refusal.code(),
    };
    Json(json!({
        "actions": actions,
        "token": token,
        "available": {
            "retry": true,
            "retry_all": true,
            "drop": true,
            "replay": admin.replay.is_some(),
        },
    }))
    .into_response()
}

pub(super) async fn dead_letters(State(admin): State<Admin>) -> Response {
    match admin.receiver.store().dead_letters().await {
        Ok(mut letters) => {
            let total = letters.len();
            letters.truncate(DEAD_LETTERS_SHOWN);
            Json(json!({ "total": total, "dead_letters": letters })).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "dead letters: store unavailable");
            error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

/// `{"id": "…"}`: the webhook an action is about.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OneWebhook {
    id: String,
}

/// `{}` or nothing: an action on every dead letter takes no argument, and refuses one (a
/// script sending `{"id": …}` to `retry-all` by mistake must not retry them all).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

/// Why an action's input was refused (400); nothing was changed.
#[derive(Debug)]
struct BadInput(String);

impl IntoResponse for BadInput {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, &self.0)
    }
}

/// A JSON object only: serde would also read a struct from an array of its fields in order,
/// which no script means.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BadInput> {
    let invalid = |e: serde_json::Error| BadInput(format!("invalid request body: {e}"));
    let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if !value.is_object() {
        return Err(BadInput(
            "invalid request body: expected a JSON object".to_owned(),
        ));
    }
    serde_json::from_value(value).map_err(invalid)
}

fn webhook_id(body: &[u8]) -> Result<String, BadInput> {
    let OneWebhook { id } = parse(body)?;
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(BadInput(format!(
            "invalid webhook id: expected 1 to {MAX_ID_LEN} printable characters"
        )));
    }
    Ok(id)
}

fn unavailable(e: crate::store::StoreError) -> Response {
    if let StoreError::Unsupported(what) = e {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            &format!("this store does not support {what}"),
        );
    }
    tracing::warn!(error = %e, "admin action: store unavailable; nothing changed");
    error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
}

pub(super) async fn retry(State(admin): State<Admin>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refusal) = admin.access.check(&headers) {
        return refusal.into_response();
    }
    let id = match webhook_id(&body) {
        Ok(id) => id,
        Err(bad) => return bad.into_response(),
    };
    let receiver = &admin.receiver;
    match receiver
        .store()
        .retry_dead_letter(&id, receiver.clock().now())
        .await
    {
        Ok(true) => {
            tracing::info!(id = %id, "admin: dead letter back in the queue");
            receiver.wakeup().notify();
            Json(json!({ "retried": 1, "id": id })).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            &format!("no dead letter with id {id}"),
        ),
        Err(e) => unavailable(e),
    }
}

pub(super) async fn retry_all(
    State(admin): State<Admin>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = admin.access.check(&headers) {
        return refusal.into_response();
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        if let Err(bad) = parse::<Nothing>(&body) {
            return bad.into_response();
        }
    }
    let receiver = &admin.receiver;
    match receiver
        .store()
        .retry_all_dead_letters(receiver.clock().now())
        .await
    {
        Ok(n) => {
            tracing::info!(count = n, "admin: every dead letter back in the queue");
            if n > 0 {
                receiver.wakeup().notify();
            }
            Json(json!({ "retried": n })).into_response()
        }
        Err(e) => unavailable(e),
    }
}

pub(super) async fn drop(State(admin): State<Admin>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refusal) = admin.access.check(&headers) {
        return refusal.into_response();
    }
    let id = match webhook_id(&body) {
        Ok(id) => id,
        Err(bad) => return bad.into_response(),
    };
    let receiver = &admin.receiver;
    match receiver
        .store()
        .drop_dead_letter(&id, receiver.clock().now())
        .await
    {
        Ok(true) => {
            tracing::info!(id = %id, "admin: dead letter dropped (body erased, never handed on)");
            Json(json!({ "dropped": 1, "id": id })).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            &format!("no dead letter with id {id}"),
        ),
        Err(e) => unavailable(e),
    }
}

/// The most event names a replay may filter on.
const MAX_EVENTS: usize = 50;

/// What `POST /api/replay` takes: a lower bound (`since` or `from_id`) is required, so that a
/// click cannot replay everything ever received by accident.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    since: Option<String>,
    from_id: Option<String>,
    until: Option<String>,
    to_id: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

impl ReplayRequest {
    fn range(self) -> Result<(Range, bool), BadInput> {
        let time = |field: &str, text: Option<String>| {
            text.map(|t| {
                replay::parse_time(&t).map_err(|e| BadInput(format!("invalid {field}: {e}")))
            })
            .transpose()
        };
        let id = |field: &str, id: Option<String>| match id {
            Some(id)
                if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) =>
            {
                Err(BadInput(format!(
                    "invalid {field}: expected 1 to {MAX_ID_LEN} printable characters"
                )))
            }
            other => Ok(other),
        };
        if self.since.is_some() && self.from_id.is_some() {
            return Err(BadInput("give since or from_id, not both".to_owned()));
        }
        if self.until.is_some() && self.to_id.is_some() {
            return Err(BadInput("give until or to_id, not both".to_owned()));
        }
        if self.since.is_none() && self.from_id.is_none() {
            return Err(BadInput(
                "a replay needs where to start: since (an RFC 3339 time) or from_id".to_owned(),
            ));
        }
        if self.events.len() > MAX_EVENTS
            || self
                .events
                .iter()
                .any(|e| e.is_empty() || e.len() > MAX_ID_LEN || e.chars().any(char::is_control))
        {
            return Err(BadInput(format!(
                "invalid events: up to {MAX_EVENTS} non-empty event names"
            )));
        }
        let range = Range {
            since: time("since", self.since)?,
            until: time("until", self.until)?,
            from_id: id("from_id", self.from_id)?,
            to_id: id("to_id", self.to_id)?,
            events: self.events,
        };
        Ok((range, self.dry_run))
    }
}

pub(super) async fn replay(
    State(admin): State<Admin>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = admin.access.check(&headers) {
        return refusal.into_response();
    }
    let (range, dry_run) = match parse::<ReplayRequest>(&body).and_then(ReplayRequest::range) {
        Ok(parsed) => parsed,
        Err(bad) => return bad.into_response(),
    };
    let handler = match (&admin.replay, dry_run) {
        (_, true) => None,
        (Some(handler), false) => Some(handler.clone()),
        (None, false) => {
            return error(
                StatusCode::NOT_IMPLEMENTED,
                "replay is not available on this receiver (no sink to replay to)",
            )
        }
    };
    let store = admin.receiver.store();
    // On its own task: a client that hangs up does not cut a replay short half-way.
    let replayed = tokio::spawn(async move {
        replay::replay(&*store, &range, handler.as_deref(), |_, _| {}).await
    })
    .await;
    match replayed {
        Ok(Ok(report)) => {
            tracing::info!(
                replayed = report.replayed,
                skipped = report.skipped.len(),
                failed = report.failed.is_some(),
                dry_run,
                "admin: replay"
            );
            let skipped: Vec<_> = report
                .skipped
                .iter()
                .map(|(seq, id, event)| json!({ "seq": seq, "id": id, "event": event }))
                .collect();
            let failed = report
                .failed
                .as_ref()
                .map(|(id, error)| json!({ "id": id, "error": error }));
            Json(json!({
                "dry_run": dry_run,
                "replayed": report.replayed,
                "skipped": skipped,
                "failed": failed,
            }))
            .into_response()
        }
        Ok(Err(ReplayError::UnknownId(id))) => error(
            StatusCode::NOT_FOUND,
            &format!("no stored webhook has id {id}"),
        ),
        Ok(Err(ReplayError::Store(e))) => unavailable(e),
        Err(join) => {
            tracing::error!(error = %join, "admin: replay task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "replay failed")
        }
    }
}

//! The JSON API the page uses (and scripts may): routes, request bodies read strictly (a
//! malformed or unknown field is a 400 with a clear message, and changes nothing), answers as
//! JSON.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use super::config::{ConfigUpdate, ConfigView};
use super::page;
use super::trigger::TriggerRequest;
use super::{ChangeError, Sandbox};
use crate::event::EventType;

/// The sandbox's routes: the page at `/`, the API under `/api/`.
pub fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/style.css", get(style))
        .route("/app.js", get(script))
        .route("/api/config", get(get_config).put(put_config))
        .route("/api/events", get(catalogue).post(post_events))
        .route("/api/status", get(status))
        .route("/api/retry", post(retry))
        .route("/api/refresh", post(refresh))
        .route("/api/attempts", get(attempts))
        .with_state(sandbox)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", page::INDEX_HTML)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", page::STYLE_CSS)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", page::APP_JS)
}

/// A 400 (or 500) with `{"error": message}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": message })),
    )
        .into_response()
}

fn change_error(e: ChangeError) -> Response {
    match e {
        ChangeError::Invalid(message) => error(StatusCode::BAD_REQUEST, message),
        ChangeError::Save(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn ok<T: Serialize>(value: T) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(value)).into_response()
}

async fn get_config(State(sandbox): State<Sandbox>) -> Response {
    ok(ConfigView::from_settings(&sandbox.engine().settings()))
}

async fn put_config(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let update = match ConfigUpdate::parse(&body) {
        Ok(update) => update,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match sandbox.update_config(update).await {
        Ok(view) => ok(view),
        Err(e) => change_error(e),
    }
}

#[derive(Serialize)]
struct CatalogueEntry {
    event: String,
    label: String,
    deprecated: bool,
}

/// Every known event type with its UI name, deprecated ones marked: what the page's checkboxes
/// and Trigger list are built from.
async fn catalogue() -> Response {
    let entries: Vec<CatalogueEntry> = EventType::KNOWN
        .iter()
        .map(|event| CatalogueEntry {
            event: event.as_str().to_owned(),
            label: event.label(),
            deprecated: event.is_deprecated(),
        })
        .collect();
    ok(entries)
}

async fn post_events(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let request = match TriggerRequest::parse(&body) {
        Ok(request) => request,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match sandbox.trigger(request).await {
        Ok(triggered) => ok(triggered),
        Err(e) => change_error(e),
    }
}

async fn status(State(sandbox): State<Sandbox>) -> Response {
    ok(sandbox.status_view())
}

async fn retry(State(sandbox): State<Sandbox>) -> Response {
    sandbox.retry();
    ok(sandbox.status_view())
}

async fn refresh(State(sandbox): State<Sandbox>) -> Response {
    sandbox.refresh();
    // Recent failures are part of the saved state: a restart must not bring them back.
    sandbox.save_logged().await;
    ok(sandbox.status_view())
}

async fn attempts(State(sandbox): State<Sandbox>) -> Response {
    ok(sandbox.recent_attempts())
}

//! The admin address: `/metrics`, `/status`, the page at `GET /` and the JSON API behind it.
//!
//! Meant for a private address (`--admin-listen`), never the public one PassFort posts to.
//! Reading is open; every action (`POST /api/…`) needs the admin token ([`token`]) and answers
//! 401 (missing or wrong token) or 403 (no token configured) having changed nothing. Input is
//! checked before anything changes: a bad body is a 400, an unknown id a 404.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` , `/style.css`, `/app.js` | the page |
//! | `GET /metrics` | Prometheus text |
//! | `GET /status` | the queue (JSON, as `passfort-receiver status --json`) |
//! | `GET /api/trends` | the last hour per minute ([`crate::trends::Hour`]) |
//! | `GET /api/dead-letters` | `{total, dead_letters: [first 100]}` |
//! | `GET /api/access` | whether actions are on, and which exist |
//! | `POST /api/dead-letters/retry` `{"id": …}` | one dead letter back in the queue |
//! | `POST /api/dead-letters/retry-all` | every dead letter back in the queue |
//! | `POST /api/dead-letters/drop` `{"id": …}` | one dead letter given up: body erased, never handed on |
//! | `POST /api/replay` `{"from_id" or "since", …}` | a stored range handed to the sink again |

mod api;
pub mod page;
pub mod token;

pub use token::{
    Access, AdminToken, AdminTokenError, AdminTokenSourceError, Refusal, ADMIN_TOKEN_ENV,
};

use crate::handler::Handler;
use crate::http::Receiver;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use passfort_clock::Clock;
use serde_json::json;
use std::sync::Arc;

/// How a receiver's admin address is set up (see [`crate::ReceiverBuilder::admin_token`] and
/// [`crate::ReceiverBuilder::replay_to`]).
#[derive(Clone, Default)]
pub struct Settings {
    /// Who may act.
    pub access: Access,
    /// Where Replay hands webhooks; `None`: replay is not offered.
    pub replay: Option<Arc<dyn Handler>>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("access", &self.access)
            .field("replay", &self.replay.is_some())
            .finish()
    }
}

/// What the admin handlers share.
#[derive(Clone)]
struct Admin {
    receiver: Receiver,
    access: Arc<Access>,
    replay: Option<Arc<dyn Handler>>,
}

/// The admin router for `receiver`: read-only unless `settings` hold a token.
pub fn router(receiver: Receiver, settings: Settings) -> Router {
    let state = Admin {
        receiver,
        access: Arc::new(settings.access),
        replay: settings.replay,
    };
    Router::new()
        .route("/", get(index))
        .route("/style.css", get(style))
        .route("/app.js", get(script))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/api/trends", get(api::trends))
        .route("/api/access", get(api::access))
        .route("/api/dead-letters", get(api::dead_letters))
        .route("/api/dead-letters/retry", post(api::retry))
        .route("/api/dead-letters/retry-all", post(api::retry_all))
        .route("/api/dead-letters/drop", post(api::drop))
        .route("/api/replay", post(api::replay))
        .layer(DefaultBodyLimit::max(api::BODY_LIMIT))
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A page asset: never cached (the binary may be upgraded under it), never framed (no
/// click-jacking of the action buttons), and only scripts and styles from this address.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
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

async fn metrics(axum::extract::State(admin): axum::extract::State<Admin>) -> Response {
    let receiver = &admin.receiver;
    let store = receiver.store();
    let now = receiver.clock().now();
    let status = store.status(now).await.ok();
    let retention = store.retention_status().await.ok();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        receiver
            .metrics()
            .render(status.as_ref(), retention.as_ref(), now),
    )
        .into_response()
}

async fn status(axum::extract::State(admin): axum::extract::State<Admin>) -> Response {
    let receiver = &admin.receiver;
    let store = receiver.store();
    let now = receiver.clock().now();
    match store.status(now).await {
        Ok(status) => {
            let mut report = crate::status::Report::new(status, now);
            if let Ok(retention) = store.retention_status().await {
                report = report.with_retention(&retention, now);
            }
            Json(report.with_write_failure(receiver.write_failure())).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "status: store unavailable");
            error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

//! The application: its own routes and state, with the PassFort receiver nested at
//! `/webhooks/passfort` and a worker running [`CustomerSync`] beside the server.
//!
//! ```text
//! GET  /                              what this is
//! GET  /customers                     every customer with its KYC status
//! POST /customers                     {"customer_ref", "name", "passfort_profile_id"?}
//! GET  /customers/{customer_ref}      one customer
//! GET  /customers/{customer_ref}/checks
//! POST /webhooks/passfort             PassFort (the receiver: verify, store, 200)
//! GET  /webhooks/passfort/healthz     the receiver's store answers
//! ```
//!
//! The receiver keeps its queue in its own SQLite file (`--webhook-database`), apart from the
//! application's: each side migrates its own schema, and the queue can be inspected with
//! `passfort-receiver status --database …`.

use crate::customers::{Customers, CustomersError, NewCustomer};
use crate::passfort::CustomerSync;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use passfort_clock::SharedClock;
use passfort_receiver::{store, Receiver, RetryPolicy, SecretSet, SharedStore, Worker};
use serde_json::json;
use std::future::Future;
use std::time::Duration;

/// Where the receiver is nested.
pub const WEBHOOK_PATH: &str = "/webhooks/passfort";

/// Why the application could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The application's database failed.
    #[error(transparent)]
    Customers(#[from] CustomersError),
    /// The webhook queue failed.
    #[error(transparent)]
    Store(#[from] passfort_receiver::StoreError),
    /// The receiver or worker could not be assembled.
    #[error("{0}")]
    Build(String),
    /// The server failed.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// The application's shared state, as its handlers see it.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The customers table.
    pub customers: Customers,
}

/// The application's own routes, with its state applied.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { "customers service: see /customers" }))
        .route("/customers", get(list_customers).post(create_customer))
        .route("/customers/{customer_ref}", get(get_customer))
        .route("/customers/{customer_ref}/checks", get(customer_checks))
        .with_state(state)
}

/// The application with its PassFort receiver, a worker acting on what it receives, and both
/// databases.
#[derive(Debug)]
pub struct App {
    customers: Customers,
    receiver: Receiver,
    worker: Worker,
}

impl App {
    /// Assembles the application: `customers` for its own data, `queue` for the receiver's
    /// webhooks, `secrets` for PassFort, every deadline and back-off on `clock`.
    pub fn new(
        customers: Customers,
        queue: SharedStore,
        secrets: SecretSet,
        clock: SharedClock,
    ) -> Result<Self, AppError> {
        let receiver = Receiver::builder()
            .secrets(secrets)
            .shared_store(queue)
            .shared_clock(clock)
            // Nested at /webhooks/passfort: the receiver's own route is the nest's root.
            .path("/")
            .build()
            .map_err(|e| AppError::Build(e.to_string()))?;
        let worker = Worker::builder()
            .receiver(&receiver)
            .handler(CustomerSync::new(customers.clone()))
            // Statuses must be applied in PassFort's order: never skip a webhook that fails
            // (e.g. the database is briefly locked), retry it until it goes through.
            .retry(
                RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(300)).block(),
            )
            .name("embed-axum")
            .build()
            .map_err(|e| AppError::Build(e.to_string()))?;
        Ok(Self {
            customers,
            receiver,
            worker,
        })
    }

    /// [`App::new`] on the databases at two URLs (`sqlite://…`), created if absent.
    pub async fn open(
        database: &str,
        webhook_database: &str,
        secrets: SecretSet,
        clock: SharedClock,
    ) -> Result<Self, AppError> {
        let customers = Customers::open(database).await?;
        let queue = store::open(webhook_database).await?;
        Self::new(customers, queue, secrets, clock)
    }

    /// The whole HTTP surface: the application's routes and the receiver under
    /// [`WEBHOOK_PATH`].
    pub fn router(&self) -> Router {
        routes(AppState {
            customers: self.customers.clone(),
        })
        .nest(WEBHOOK_PATH, self.receiver.router())
    }

    /// The customers table.
    pub fn customers(&self) -> &Customers {
        &self.customers
    }

    /// The embedded receiver (its store, metrics).
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }

    /// The worker ([`Worker::run_until_idle`] in tests; [`App::serve`] spawns it).
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Serves on `listener` with the worker running beside it until `shutdown` completes; then
    /// finishes the requests in flight and the webhook in hand.
    pub async fn serve<F>(
        self,
        listener: tokio::net::TcpListener,
        shutdown: F,
    ) -> Result<(), AppError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let worker = self.worker.clone().spawn();
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        if let Err(e) = worker.shutdown().await {
            tracing::error!(error = %e, "worker did not stop cleanly");
        }
        served.map_err(AppError::Serve)
    }
}

fn internal(error: CustomersError) -> Response {
    tracing::error!(error = %error, "customers request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "internal error"})),
    )
        .into_response()
}

async fn list_customers(State(state): State<AppState>) -> Response {
    match state.customers.list().await {
        Ok(customers) => Json(customers).into_response(),
        Err(e) => internal(e),
    }
}

async fn create_customer(State(state): State<AppState>, Json(new): Json<NewCustomer>) -> Response {
    match state.customers.create(&new).await {
        Ok(customer) => (StatusCode::CREATED, Json(customer)).into_response(),
        Err(CustomersError::Exists(customer_ref)) => (
            StatusCode::CONFLICT,
            Json(json!({"error": format!("customer {customer_ref} already exists")})),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

async fn get_customer(State(state): State<AppState>, Path(customer_ref): Path<String>) -> Response {
    match state.customers.get(&customer_ref).await {
        Ok(Some(customer)) => Json(customer).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such customer"})),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

async fn customer_checks(
    State(state): State<AppState>,
    Path(customer_ref): Path<String>,
) -> Response {
    match state.customers.checks(Some(&customer_ref)).await {
        Ok(checks) => Json(checks).into_response(),
        Err(e) => internal(e),
    }
}

//! An existing axum application — a small customers service with its own routes and its own
//! SQLite data — that starts receiving PassFort webhooks by adding a few lines:
//!
//! 1. build a [`passfort_receiver::Receiver`] and `nest` its router at `/webhooks/passfort`
//!    ([`app::App::router`]);
//! 2. run a [`passfort_receiver::Worker`] beside the server whose handler matches on the typed
//!    [`passfort_receiver::Event`] ([`passfort::CustomerSync`]): `PRODUCT_STATUS_CHANGED`
//!    updates the customer's status, `CHECK_COMPLETED` records the result, unknown events are
//!    logged and kept.
//!
//! The receiver answers PassFort 200 as soon as a webhook is on disk, so a slow or failing
//! handler never stalls PassFort's queue; the worker retries it instead, in order.

#![warn(missing_docs)]

pub mod app;
pub mod customers;
pub mod passfort;

pub use app::{App, AppError, AppState};
pub use customers::{CheckResult, Customer, Customers, KeptEvent, NewCustomer};
pub use passfort::CustomerSync;

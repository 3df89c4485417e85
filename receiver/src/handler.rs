//! The integrator's side of a webhook's way: the [`Handler`] trait the worker calls, the
//! [`Job`] it is given, and [`handler_fn`] for writing one as a closure.
//!
//! A handler is called for one webhook at a time, in arrival order; `Ok` marks the webhook done,
//! `Err` (or a panic, which the worker catches) hands it to the [`RetryPolicy`](crate::RetryPolicy).
//! Handlers should be idempotent on `webhook.id`: delivery is at least once.

use crate::event::Event;
use crate::store::Leased;
use crate::webhook::Webhook;
use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

/// What a handler returns when it could not handle a webhook; any error type converts into it.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// One webhook handed to a [`Handler`].
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The webhook as stored (secret removed): what to relay if you relay.
    pub webhook: Webhook,
    /// Its typed reading; [`Event::Unknown`] for what this library does not know.
    pub event: Event,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
    /// Its arrival position in the store.
    pub seq: i64,
    /// When the receiver acknowledged it.
    pub received_at: SystemTime,
}

impl Job {
    pub(crate) fn from_leased(leased: Leased) -> Self {
        let event = leased.webhook.event();
        Self {
            webhook: leased.webhook,
            event,
            attempt: leased.attempt,
            seq: leased.seq,
            received_at: leased.received_at,
        }
    }
}

/// The integrator's code that acts on each webhook. `Ok` marks the webhook done; `Err` (or a
/// panic) schedules a retry.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Acts on one webhook. Called for one webhook at a time, in arrival order.
    async fn handle(&self, job: &Job) -> Result<(), HandlerError>;
}

#[async_trait]
impl<H: Handler + ?Sized> Handler for Arc<H> {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        (**self).handle(job).await
    }
}

/// A [`Handler`] from an async closure taking the [`Job`] by value.
pub fn handler_fn<F, Fut>(f: F) -> HandlerFn<F>
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    HandlerFn(f)
}

/// See [`handler_fn`].
#[derive(Clone)]
pub struct HandlerFn<F>(F);

#[async_trait]
impl<F, Fut> Handler for HandlerFn<F>
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        (self.0)(job.clone()).await
    }
}

//! What the application does with each PassFort webhook: the worker's handler.
//!
//! The receiver has already verified, stored and acknowledged the webhook; the worker calls
//! [`CustomerSync`] one webhook at a time, in PassFort's order. The handler matches on the typed
//! [`Event`]:
//!
//! | event | what the application does |
//! |---|---|
//! | `PRODUCT_STATUS_CHANGED` | sets the customer's KYC status (or keeps the webhook if no customer matches, or it has no `new_status`) |
//! | `CHECK_COMPLETED` | records the check's result |
//! | an event this library does not know | logs it and keeps it whole in `kept_events` |
//! | any other known event | logs it at debug level; nothing to do here |
//!
//! Returning `Err` (a database error) makes the worker retry the same webhook with back-off,
//! and nothing behind it is handed on first.

use crate::customers::{CheckResult, Customers, KeptEvent, StatusChange};
use async_trait::async_trait;
use passfort_receiver::{Event, Handler, HandlerError, Job};

/// Why a webhook about no known customer was kept.
pub const NO_CUSTOMER: &str = "no customer with this customer_ref or profile_id";
/// Why a status change without a `new_status` was kept.
pub const NO_STATUS: &str = "status change without new_status";
/// Why an unknown event was kept.
pub const UNKNOWN_EVENT: &str = "event not known to this application";

/// The worker's handler: keeps the customers table in step with PassFort.
#[derive(Debug, Clone)]
pub struct CustomerSync {
    customers: Customers,
}

impl CustomerSync {
    /// A handler writing to `customers`.
    pub fn new(customers: Customers) -> Self {
        Self { customers }
    }
}

#[async_trait]
impl Handler for CustomerSync {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        let webhook = &job.webhook;
        match &job.event {
            Event::ProductStatusChanged(change) => {
                let customer = self
                    .customers
                    .find(change.customer_ref.as_deref(), change.profile_id.as_deref())
                    .await?;
                let Some(customer) = customer else {
                    tracing::warn!(id = %webhook.id, "status change for no known customer; kept");
                    return self.keep(job, NO_CUSTOMER).await;
                };
                let Some(status) = change.new_status.as_deref() else {
                    tracing::warn!(id = %webhook.id, "status change without new_status; kept");
                    return self.keep(job, NO_STATUS).await;
                };
                let product = change.product.as_ref().and_then(|p| p.alias.as_deref());
                self.customers
                    .set_status(
                        &customer.customer_ref,
                        change.profile_id.as_deref(),
                        &StatusChange {
                            webhook_id: &webhook.id,
                            status,
                            application_id: change.application_id.as_deref(),
                            product,
                            at: webhook.timestamp,
                        },
                    )
                    .await?;
                tracing::info!(id = %webhook.id, customer = %customer.customer_ref, status, "KYC status updated");
            }
            Event::CheckCompleted(completed) => {
                let customer = self
                    .customers
                    .find(
                        completed.customer_ref.as_deref(),
                        completed.profile_id.as_deref(),
                    )
                    .await?;
                let check = completed.check.clone().unwrap_or_default();
                self.customers
                    .record_check(&CheckResult {
                        webhook_id: webhook.id.clone(),
                        customer_ref: customer.map(|c| c.customer_ref),
                        profile_id: completed.profile_id.clone(),
                        check_id: check.id,
                        check_type: check.check_type,
                        decision: check.decision,
                        result: check.result,
                        completed_at: webhook.timestamp,
                    })
                    .await?;
                tracing::info!(id = %webhook.id, "check result recorded");
            }
            Event::Unknown { event, .. } => {
                tracing::warn!(id = %webhook.id, event = %event, "unknown PassFort event; kept for later");
                self.keep(job, UNKNOWN_EVENT).await?;
            }
            other => {
                tracing::debug!(id = %webhook.id, event = other.name(), "not used by this application");
            }
        }
        Ok(())
    }
}

impl CustomerSync {
    async fn keep(&self, job: &Job, reason: &str) -> Result<(), HandlerError> {
        self.customers
            .keep(&KeptEvent {
                webhook_id: job.webhook.id.clone(),
                event: job.webhook.event.clone(),
                reason: reason.to_owned(),
                payload: job.webhook.to_json_string(),
            })
            .await?;
        Ok(())
    }
}

//! The scenarios, one file each, named by their id.
//!
//! Shared steps that several scenarios take (sending a forged request and proving it was not
//! processed) live here rather than in a `helpers` module, next to the scenarios that use them.

pub mod accepts_batch;
pub mod accepts_single;
pub mod ack_latency;
pub mod answers_exactly_200;
pub mod dedup_redelivery;
pub mod order_preserved;
pub mod rejects_bad_body_secret;
pub mod rejects_bad_header_secret;
pub mod rejects_bad_secret_in_batch;
pub mod rejects_missing_auth;
pub mod secret_not_forwarded;
pub mod survives_retry_storm;
pub mod unknown_event_accepted;

use serde_json::Value;

use crate::scenario::{Checked, Context, Failure, Outcome};
use crate::target::{status_text, Bearer, Delivery};

/// Sends a request that PassFort would never send (a wrong or missing secret) and checks that
/// the target refuses it and never processes any of `ids`.
///
/// `forgery` says what is wrong with the request, `fix` what the target should do instead.
pub(crate) async fn must_reject(
    ctx: &Context,
    body: &Value,
    bearer: Bearer,
    ids: &[String],
    forgery: &str,
    fix: &str,
) -> Checked {
    ctx.progress.set_length(2);
    let delivery = ctx.target.post(body, bearer, ctx.limits.patience).await;
    ctx.progress.inc(1);
    let status = match &delivery {
        Delivery::Answered { status: 200, .. } => {
            return Err(Failure::new(format!(
                "the target answered 200 to {forgery}: anyone who can reach the endpoint could \
                 forge KYC results; {fix}"
            )))
        }
        Delivery::Answered { status, .. } if (200..300).contains(status) => {
            return Err(Failure::new(format!(
                "the target answered {} to {forgery}: a 2xx says it accepted the request, and \
                 anyone who can reach the endpoint could forge KYC results; {fix}",
                status_text(*status)
            )))
        }
        Delivery::Answered { status, .. } => *status,
        Delivery::NoAnswer { .. } | Delivery::Unreachable { .. } => {
            return Err(Failure::new(format!(
                "{forgery}: {}; a refusal should be quick (401)",
                delivery.describe()
            )))
        }
    };
    let Some(observer) = ctx.observer.as_ref() else {
        // Half of the contract ("never processed") is unverified: say so with a warning rather
        // than a plain pass, so a green table never overstates what was shown.
        return Ok(Outcome::warned(format!(
            "refused with {}; that nothing was processed is not checked without --observe-jsonl",
            status_text(status)
        )));
    };
    let seen = ctx.settle(observer).await?;
    ctx.progress.inc(1);
    if let Some(id) = ids.iter().find(|id| seen.contains(id)) {
        return Err(Failure::new(format!(
            "the target answered {} to {forgery} but processed webhook {id} anyway: a request \
             not answered 200 must store and process nothing (spec §6); {fix}",
            status_text(status)
        )));
    }
    Ok(Outcome::passed(format!(
        "refused with {} and processed nothing",
        status_text(status)
    )))
}

/// Where the `index`-th webhook of a planned sequence of requests was sent, for reasons that
/// point a person at the exact webhook.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    /// The webhook's id.
    pub id: String,
    /// "single request 3 of 100", "batch 2 of 4, element 7 of 25"…
    pub place: String,
}

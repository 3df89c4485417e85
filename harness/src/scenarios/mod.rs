//! The scenarios, one file each, named by their id, and their registry: the one list of every
//! scenario, in the order a run takes them. A scenario's id is written once, in its file; the
//! command line, the reports and the tests take the ids from [`registry`].
//!
//! Shared steps that several scenarios take (sending a forged request and proving it was not
//! processed) live here rather than in a `helpers` module, next to the scenarios that use them.

/// Declares each scenario's module and lists it in [`registry`], in one place.
macro_rules! scenarios {
    ($($module:ident :: $scenario:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// Every scenario, in the order they run: cheap acceptance first, the storm last.
        pub fn registry() -> Vec<Box<dyn Scenario>> {
            vec![$(Box::new($module::$scenario)),+]
        }
    };
}

scenarios! {
    accepts_single::AcceptsSingle,
    accepts_batch::AcceptsBatch,
    answers_exactly_200::AnswersExactly200,
    rejects_bad_header_secret::RejectsBadHeaderSecret,
    rejects_bad_body_secret::RejectsBadBodySecret,
    rejects_missing_auth::RejectsMissingAuth,
    rejects_bad_secret_in_batch::RejectsBadSecretInBatch,
    unknown_event_accepted::UnknownEventAccepted,
    ack_latency::AckLatency,
    dedup_redelivery::DedupRedelivery,
    order_preserved::OrderPreserved,
    survives_retry_storm::SurvivesRetryStorm,
    secret_not_forwarded::SecretNotForwarded,
    survives_disconnect_mid_body::SurvivesDisconnectMidBody,
    accepts_slow_upload::AcceptsSlowUpload,
}

/// The ids of every scenario, in the order they run.
pub fn ids() -> Vec<&'static str> {
    registry().iter().map(|scenario| scenario.id()).collect()
}

/// The scenario with this id.
pub fn find(id: &str) -> Option<Box<dyn Scenario>> {
    registry().into_iter().find(|scenario| scenario.id() == id)
}

use serde_json::Value;

use crate::scenario::{Checked, Context, Failure, Outcome, Scenario};
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
    let delivery = ctx.target.post(body, bearer, ctx.limits.refusal_wait).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case() {
        let ids = ids();
        assert!(!ids.is_empty());
        for id in &ids {
            assert_eq!(ids.iter().filter(|i| *i == id).count(), 1, "{id} twice");
            assert!(
                !id.is_empty()
                    && !id.starts_with('-')
                    && !id.ends_with('-')
                    && id
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{id} is not kebab-case"
            );
        }
    }

    #[test]
    fn find_knows_every_id_and_nothing_else() {
        for id in ids() {
            assert_eq!(find(id).map(|s| s.id()), Some(id));
        }
        assert!(find("no-such-scenario").is_none());
    }

    #[test]
    fn every_description_cites_the_spec() {
        for scenario in registry() {
            assert!(
                scenario.description().contains('§'),
                "{} does not cite a spec section",
                scenario.id()
            );
        }
    }
}

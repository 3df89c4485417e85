//! `accepts-single`: one webhook of each event type, unbatched.

use async_trait::async_trait;

use crate::scenario::{not_200_reason, Checked, Context, Failure, Outcome, Scenario};
use crate::target::{millis, Bearer, Delivery};
use passfort_sender_sim::EventType;

use crate::webhook::id_of;

/// One webhook of every event type of the spec, each alone: 200 inside the unbatched limit.
#[derive(Debug, Clone, Copy)]
pub struct AcceptsSingle;

#[async_trait]
impl Scenario for AcceptsSingle {
    fn id(&self) -> &'static str {
        "accepts-single"
    }

    fn description(&self) -> &'static str {
        "One webhook of each of the spec's 17 event types (§2) — COLLECTED_DATA_CHANGED and the \
         newer TASK_CREATED, RISK_SCORE_CHANGED, CUSTOMER_REQUEST_CHANGED, EVENTS_CREATED and \
         EVENTS_UPDATED (inferred strings) included, the deprecated ones too — sent alone as \
         PassFort does with batching off: each must be answered 200 within 10 s, PassFort's \
         unbatched limit (§1), and, with an observe file, processed."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let webhooks = ctx.webhooks.every_event_type();
        ctx.progress.set_length(webhooks.len() as u64 + 1);
        let mut slowest = std::time::Duration::ZERO;
        for webhook in &webhooks {
            let event = webhook["event"].as_str().unwrap_or_default();
            let delivery = ctx
                .target
                .post(webhook, Bearer::Right, ctx.limits.single_answer)
                .await;
            ctx.progress.inc(1);
            match delivery {
                Delivery::Answered {
                    status: 200,
                    elapsed,
                } => slowest = slowest.max(elapsed),
                Delivery::NoAnswer { limit } => {
                    return Err(Failure::new(format!(
                        "{event} webhook: no answer within {}; past PassFort's unbatched limit \
                         the attempt counts as failed and is retried with back-off (spec §1, \
                         §4): answer 200 as soon as the webhook is stored",
                        millis(limit)
                    )))
                }
                other => {
                    return Err(Failure::new(not_200_reason(
                        &other,
                        &format!("{event} webhook"),
                    )))
                }
            }
        }
        let detail = format!(
            "slowest answer {} (limit {})",
            millis(slowest),
            millis(ctx.limits.single_answer)
        );
        let Some(observer) = ctx.observer.as_ref() else {
            return Ok(Outcome::passed(format!(
                "all {} event types answered 200; processing not checked without \
                 --observe-jsonl",
                EventType::KNOWN.len()
            ))
            .detail(detail));
        };
        let ids: Vec<String> = webhooks.iter().map(id_of).collect();
        ctx.processed(observer, &ids, "single webhooks").await?;
        ctx.progress.inc(1);
        Ok(Outcome::passed(format!(
            "all {} event types answered 200 and were processed",
            EventType::KNOWN.len()
        ))
        .detail(detail))
    }
}

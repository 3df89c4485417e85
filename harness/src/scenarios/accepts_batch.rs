//! `accepts-batch`: a full batch of 100.

use async_trait::async_trait;

use crate::scenario::{not_200_reason, Checked, Context, Failure, Outcome, Scenario};
use crate::target::{millis, Bearer, Delivery};
use crate::webhook::{batch_body, ids_of};

/// How many webhooks PassFort puts in one batch at most (spec §3).
pub const FULL_BATCH: usize = 100;

/// A batch of 100: 200 inside the batched limit.
#[derive(Debug, Clone, Copy)]
pub struct AcceptsBatch;

#[async_trait]
impl Scenario for AcceptsBatch {
    fn id(&self) -> &'static str {
        "accepts-batch"
    }

    fn description(&self) -> &'static str {
        "A batch of 100 webhooks of mixed event types as one JSON array, the largest PassFort \
         sends with batching on (§3): answered 200 within 5 s, PassFort's batched limit (§1), \
         and, with an observe file, every one processed."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        ctx.progress.set_length(2);
        let batch = ctx.webhooks.batch(FULL_BATCH);
        let delivery = ctx
            .target
            .post(&batch_body(&batch), Bearer::Right, ctx.limits.batch_answer)
            .await;
        ctx.progress.inc(1);
        let elapsed = match delivery {
            Delivery::Answered {
                status: 200,
                elapsed,
            } => elapsed,
            Delivery::NoAnswer { limit } => {
                return Err(Failure::new(format!(
                    "batch of {FULL_BATCH}: no answer within {}; past PassFort's batched limit \
                     the whole batch counts as failed and is resent with back-off, so a \
                     receiver this slow never drains the queue (spec §1, §3): store the batch in \
                     one transaction and answer before processing it",
                    millis(limit)
                )))
            }
            other => {
                return Err(Failure::new(not_200_reason(
                    &other,
                    &format!("batch of {FULL_BATCH}"),
                )))
            }
        };
        let detail = format!(
            "answered in {} (limit {})",
            millis(elapsed),
            millis(ctx.limits.batch_answer)
        );
        let Some(observer) = ctx.observer.as_ref() else {
            return Ok(Outcome::passed(format!(
                "a batch of {FULL_BATCH} answered 200; processing not checked without \
                 --observe-jsonl"
            ))
            .detail(detail));
        };
        ctx.processed(observer, &ids_of(&batch), "batched webhooks")
            .await?;
        ctx.progress.inc(1);
        Ok(Outcome::passed(format!(
            "a batch of {FULL_BATCH} answered 200 and all processed"
        ))
        .detail(detail))
    }
}

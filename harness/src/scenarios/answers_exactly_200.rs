//! `answers-exactly-200`: 200, not another 2xx.

use async_trait::async_trait;

use crate::scenario::{Checked, Context, Failure, Outcome, Scenario};
use crate::target::{status_text, Bearer, Delivery};
use crate::webhook::batch_body;

/// A valid single webhook and a valid batch: the answer must be exactly 200.
#[derive(Debug, Clone, Copy)]
pub struct AnswersExactly200;

#[async_trait]
impl Scenario for AnswersExactly200 {
    fn id(&self) -> &'static str {
        "answers-exactly-200"
    }

    fn description(&self) -> &'static str {
        "A valid single webhook and a valid batch of 3 must be answered exactly 200: PassFort \
         retries until it receives a 200, so a 201, 202 or 204 is a failure that is retried \
         forever and stalls the queue behind it (§1, §4)."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        ctx.progress.set_length(2);
        let requests = [
            ("a single webhook", ctx.webhooks.single()),
            ("a batch of 3", batch_body(&ctx.webhooks.batch(3))),
        ];
        for (what, body) in &requests {
            let delivery = ctx
                .target
                .post(body, Bearer::Right, ctx.limit_for(body))
                .await;
            ctx.progress.inc(1);
            match delivery {
                Delivery::Answered { status: 200, .. } => {}
                Delivery::Answered { status, .. } if (200..300).contains(&status) => {
                    return Err(Failure::new(format!(
                        "{what} was answered {}, not 200: PassFort reads every answer but \
                         exactly 200 as a failure, so it would resend this webhook forever with \
                         back-off and hold back every webhook queued behind it (spec §1, §4); \
                         answer `200 OK`",
                        status_text(status)
                    )))
                }
                other => {
                    return Err(Failure::new(crate::scenario::not_200_reason(&other, what)));
                }
            }
        }
        Ok(Outcome::passed(
            "a single webhook and a batch were both answered exactly 200",
        ))
    }
}

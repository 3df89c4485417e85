//! `accepts-slow-upload`: a full batch whose body takes 3 s to arrive.

use async_trait::async_trait;

use crate::scenario::{not_200_reason, Checked, Context, Failure, Outcome, Scenario};
use crate::target::{millis, status_text, Bearer, Delivery, Upload};
use crate::webhook::{batch_body, ids_of};

use super::accepts_batch::FULL_BATCH;

/// How many pieces the slow body comes in.
const PIECES: usize = 30;

/// A batch of 100 trickling in over 3 s, inside the 5 s limit: 200, and processed.
#[derive(Debug, Clone, Copy)]
pub struct AcceptsSlowUpload;

#[async_trait]
impl Scenario for AcceptsSlowUpload {
    fn id(&self) -> &'static str {
        "accepts-slow-upload"
    }

    fn description(&self) -> &'static str {
        "A batch of 100 webhooks whose body trickles in over 3 s, as over a slow or congested \
         network, still inside PassFort's 5 s batched limit (§1, §3): the target must wait for \
         the whole body instead of timing it out, answer 200 within the limit and, with an \
         observe file, process all 100."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        ctx.progress.set_length(2);
        let batch = ctx.webhooks.batch(FULL_BATCH);
        let over = ctx.limits.slow_upload;
        let upload = Upload::Trickle {
            over,
            pieces: PIECES,
        };
        let delivery = ctx
            .target
            .upload(
                &batch_body(&batch),
                Bearer::Right,
                ctx.limits.batch_answer,
                upload,
            )
            .await;
        ctx.progress.inc(1);
        let what = format!(
            "a batch of {FULL_BATCH} whose body took {} to arrive",
            millis(over)
        );
        let elapsed = match delivery {
            Delivery::Answered {
                status: 200,
                elapsed,
            } => elapsed,
            Delivery::Answered { status, .. } if matches!(status, 400 | 408 | 413 | 499) => {
                return Err(Failure::new(format!(
                    "{what}: answered {}; the body was still arriving within PassFort's {} \
                     batched limit, and refusing it makes PassFort resend the whole batch with \
                     back-off, where it is just as slow (spec §1, §3): let a body take as long \
                     as PassFort's limit (raise the server's body read timeout above 5 s)",
                    status_text(status),
                    millis(ctx.limits.batch_answer)
                )))
            }
            Delivery::Unreachable { reason } => {
                return Err(Failure::new(format!(
                    "{what}: the connection broke before an answer ({reason}); a server that \
                     gives up on a body still arriving within PassFort's {} batched limit makes \
                     PassFort resend the batch with back-off, where it is just as slow (spec \
                     §1, §3): raise the server's body read timeout above 5 s",
                    millis(ctx.limits.batch_answer)
                )))
            }
            other => return Err(Failure::new(not_200_reason(&other, &what))),
        };
        let detail = format!(
            "answered {} after the first byte (limit {}), the body arriving over {}",
            millis(elapsed),
            millis(ctx.limits.batch_answer),
            millis(over)
        );
        let Some(observer) = ctx.observer.as_ref() else {
            return Ok(Outcome::warned(format!(
                "the slow batch of {FULL_BATCH} was answered 200; processing not checked \
                 without --observe-jsonl"
            ))
            .detail(detail));
        };
        ctx.processed(observer, &ids_of(&batch), "webhooks of the slow batch")
            .await?;
        ctx.progress.inc(1);
        Ok(Outcome::passed(format!(
            "a batch of {FULL_BATCH} arriving over {} was answered 200 and all processed",
            millis(over)
        ))
        .detail(detail))
    }
}

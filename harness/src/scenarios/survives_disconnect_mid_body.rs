//! `survives-disconnect-mid-body`: the sender hangs up halfway through a body, then sends the
//! whole webhook again.

use async_trait::async_trait;

use crate::scenario::{Checked, Context, Failure, Outcome, Scenario};
use crate::target::{Bearer, Delivery, Upload};
use crate::webhook::id_of;

/// Half a request, a hang-up, then the whole webhook: nothing from the half, the whole once.
#[derive(Debug, Clone, Copy)]
pub struct SurvivesDisconnectMidBody;

#[async_trait]
impl Scenario for SurvivesDisconnectMidBody {
    fn id(&self) -> &'static str {
        "survives-disconnect-mid-body"
    }

    fn description(&self) -> &'static str {
        "A single webhook whose body is cut off halfway by the sender hanging up (a network cut, \
         a restart on PassFort's side), then the whole webhook sent again, as PassFort resends \
         whatever got no 200 (§4): nothing of the half may be processed or remembered, and the \
         whole must be answered 200 within 10 s (§1) and processed exactly once (§4, §6)."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        ctx.progress.set_length(3);
        let webhook = ctx.webhooks.single();
        let id = id_of(&webhook);
        let cut = ctx
            .target
            .upload(
                &webhook,
                Bearer::Right,
                ctx.limit_for(&webhook),
                Upload::HangUpHalfway,
            )
            .await;
        ctx.progress.inc(1);
        if let Delivery::Answered { status: 200, .. } = cut {
            return Err(Failure::new(format!(
                "the target answered 200 to a request whose body was cut off halfway: it cannot \
                 have stored webhook {id}, yet told PassFort it did, so PassFort would drop it \
                 from its queue (spec §4, §6): read the whole body (its Content-Length) before \
                 answering"
            )));
        }
        ctx.deliver(&webhook, "the whole webhook, sent again after the cut")
            .await?;
        let Some(observer) = ctx.observer.as_ref() else {
            return Ok(Outcome::warned(
                "the whole webhook was answered 200 after the cut; that it was processed once, \
                 and the half not at all, is not checked without --observe-jsonl",
            ));
        };
        let seen = ctx.settle(observer).await?;
        ctx.progress.inc(1);
        match seen.count(&id) {
            1 => Ok(Outcome::passed(
                "the cut request left no trace and the whole webhook, sent again, was processed \
                 once",
            )),
            0 => Err(Failure::new(format!(
                "the whole webhook {id}, sent after a request carrying half of it was cut off, \
                 was answered 200 but never processed, though a webhook sent after it was: the \
                 target remembered the id of a request it never finished reading and took the \
                 whole one for a redelivery, so it is lost (spec §4): mark an id as seen only \
                 once its webhook is stored, in the same transaction"
            ))),
            times => Err(Failure::new(format!(
                "webhook {id} was processed {times} times after its first request was cut off \
                 halfway and the whole one sent again: the half request must store and process \
                 nothing (spec §6), and the whole one is processed once (spec §4)"
            ))),
        }
    }
}

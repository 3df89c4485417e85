//! `unknown-event-accepted`: an event the spec does not name, and odd data.

use async_trait::async_trait;
use serde_json::json;

use crate::scenario::{not_200_reason, Checked, Context, Failure, Outcome, Scenario};
use crate::target::{Bearer, Delivery};
use crate::webhook::{batch_body, id_of, ids_of};

/// Unknown events and odd data, alone and in a batch: 200, and processed.
#[derive(Debug, Clone, Copy)]
pub struct UnknownEventAccepted;

#[async_trait]
impl Scenario for UnknownEventAccepted {
    fn id(&self) -> &'static str {
        "unknown-event-accepted"
    }

    fn description(&self) -> &'static str {
        "An authenticated webhook with an `event` no spec names, a known event whose `data` has \
         unexpected fields and types, and a batch with an unknown event in the middle: the event \
         set is open (§2), and a non-200 would stall the whole account's queue for a day at a \
         time (§4, §6), so each must be answered 200 and processed."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let unknown = ctx.webhooks.unknown();
        let mut odd = ctx
            .webhooks
            .of(&passfort_sender_sim::EventType::CheckCompleted);
        odd["data"]["check"] = json!("not-an-object");
        odd["data"]["added_in_a_later_release"] = json!({"list": [1, "two", null]});
        let batch = vec![
            ctx.webhooks.single(),
            ctx.webhooks.unknown(),
            ctx.webhooks.single(),
        ];
        let requests = [
            (
                format!(
                    "a webhook with unknown event `{}`",
                    unknown["event"].as_str().unwrap_or_default()
                ),
                unknown.clone(),
                vec![id_of(&unknown)],
            ),
            (
                "a CHECK_COMPLETED webhook with unexpected `data`".to_owned(),
                odd.clone(),
                vec![id_of(&odd)],
            ),
            (
                "a batch of 3 with an unknown event in the middle".to_owned(),
                batch_body(&batch),
                ids_of(&batch),
            ),
        ];
        ctx.progress.set_length(requests.len() as u64 + 1);
        let mut ids = Vec::new();
        for (what, body, request_ids) in &requests {
            let delivery = ctx
                .target
                .post(body, Bearer::Right, ctx.limit_for(body))
                .await;
            ctx.progress.inc(1);
            match &delivery {
                Delivery::Answered { status: 200, .. } => ids.extend(request_ids.iter().cloned()),
                Delivery::Answered { status, .. } if (400..500).contains(status) => {
                    return Err(Failure::new(format!(
                        "{what}: {}; PassFort adds events over time and retries a refused \
                         webhook forever, in order, so this stalls every later webhook (spec §2, \
                         §4): store unknown events raw and answer 200",
                        delivery.describe()
                    )))
                }
                other => return Err(Failure::new(not_200_reason(other, what))),
            }
        }
        let Some(observer) = ctx.observer.as_ref() else {
            // "processed" is half of this scenario's contract: unverified, so a warning.
            return Ok(Outcome::warned(
                "unknown events and odd data answered 200; processing not checked without \
                 --observe-jsonl",
            ));
        };
        ctx.processed(observer, &ids, "unknown or odd webhooks")
            .await?;
        ctx.progress.inc(1);
        Ok(Outcome::passed(
            "unknown events and odd data answered 200 and were processed",
        ))
    }
}

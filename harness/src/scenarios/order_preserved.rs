//! `order-preserved`: processed in send order, within batches too.

use async_trait::async_trait;
use serde_json::Value;

use super::Sent;
use crate::scenario::{Checked, Context, Failure, Outcome, Scenario};
use crate::webhook::{batch_body, id_of};

const SINGLES: usize = 100;
const BATCHES: usize = 4;
const BATCH: usize = 25;
/// The batch whose answer is "lost", and the webhooks queued behind it.
const LOST: usize = 25;
const BEHIND_LOST: usize = 75;

/// 300 webhooks: processed in the order sent.
#[derive(Debug, Clone, Copy)]
pub struct OrderPreserved;

#[async_trait]
impl Scenario for OrderPreserved {
    fn id(&self) -> &'static str {
        "order-preserved"
    }

    fn description(&self) -> &'static str {
        "300 webhooks: 100 unbatched, 4 batches of 25, then a batch of 25 whose answer is lost \
         and which is resent as the head of a batch of 100 (§3). PassFort guarantees order per \
         account (§4): the target must process them in send order, within each batch too, each \
         at its first delivery."
    }

    fn needs_observer(&self) -> bool {
        true
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let observer = match ctx.require_observer() {
            Ok(observer) => observer,
            Err(skip) => return Ok(skip),
        };
        ctx.progress.set_length((SINGLES + BATCHES + 2 + 1) as u64);
        let mut sent: Vec<Sent> =
            Vec::with_capacity(SINGLES + BATCHES * BATCH + LOST + BEHIND_LOST);
        for n in 0..SINGLES {
            let webhook = ctx.webhooks.single();
            let place = format!("single request {} of {SINGLES}", n + 1);
            ctx.deliver(&webhook, &place).await?;
            sent.push(Sent {
                id: id_of(&webhook),
                place,
            });
        }
        for b in 0..BATCHES {
            let batch = ctx.webhooks.batch(BATCH);
            let what = format!("batch {} of {BATCHES}", b + 1);
            ctx.deliver(&batch_body(&batch), &what).await?;
            record(&mut sent, &batch, &what);
        }
        let lost = ctx.webhooks.batch(LOST);
        let what = "the batch whose answer is dropped";
        ctx.deliver(&batch_body(&lost), what).await?;
        record(&mut sent, &lost, what);
        let mut resent = lost.clone();
        resent.extend(ctx.webhooks.batch(BEHIND_LOST));
        let what = "the batch resent after its answer was dropped";
        ctx.deliver(&batch_body(&resent), what).await?;
        record(&mut sent, &resent, what);

        let ids: Vec<String> = sent.iter().map(|s| s.id.clone()).collect();
        ctx.processed(observer, &ids, "ordered webhooks").await?;
        ctx.progress.inc(1);
        let seen = observer.read()?;
        let order = seen.first_processing_order(&ids);
        if let Some(position) = order.iter().zip(&ids).position(|(got, want)| got != want) {
            let want = &sent[position];
            let got_place = sent
                .iter()
                .find(|s| s.id == order[position])
                .map(|s| s.place.as_str())
                .unwrap_or("unknown");
            let hint = if want.place.contains("element") && got_place.contains("element") {
                "process a batch's webhooks in array order"
            } else {
                "process requests in the order they were acknowledged"
            };
            return Err(Failure::new(format!(
                "webhook {} of 300 was processed out of order: expected {} ({}) but the target \
                 processed {} ({got_place}) there; PassFort sends in the order events happened and \
                 consumers rely on it (spec §3, §4): {hint}, with one worker per account",
                position + 1,
                want.id,
                want.place,
                order[position],
            )));
        }
        Ok(Outcome::passed(
            "all 300 webhooks processed in send order, batches and the resent batch included",
        ))
    }
}

fn record(sent: &mut Vec<Sent>, batch: &[Value], what: &str) {
    for (n, webhook) in batch.iter().enumerate() {
        let id = id_of(webhook);
        // A redelivered webhook keeps the place of its first delivery.
        if sent.iter().any(|s| s.id == id) {
            continue;
        }
        sent.push(Sent {
            id,
            place: format!("{what}, element {} of {}", n + 1, batch.len()),
        });
    }
}

//! `dedup-redelivery`: redelivered webhooks are processed once.

use async_trait::async_trait;

use crate::scenario::{Checked, Context, Failure, Outcome, Scenario};
use crate::webhook::{batch_body, id_of, ids_of};

/// The same webhook twice, and a batch redelivered as the head of a longer one.
#[derive(Debug, Clone, Copy)]
pub struct DedupRedelivery;

#[async_trait]
impl Scenario for DedupRedelivery {
    fn id(&self) -> &'static str {
        "dedup-redelivery"
    }

    fn description(&self) -> &'static str {
        "The same webhook sent twice, then a batch of 10 sent again as the head of a batch of \
         15, as PassFort does when an answer is lost after the target stored the webhooks (§3, \
         §4): every redelivery must be answered 200 and each id processed exactly once."
    }

    fn needs_observer(&self) -> bool {
        true
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let observer = match ctx.require_observer() {
            Ok(observer) => observer,
            Err(skip) => return Ok(skip),
        };
        ctx.progress.set_length(5);
        let single = ctx.webhooks.single();
        ctx.deliver(&single, "a single webhook").await?;
        ctx.deliver(&single, "the same webhook, redelivered")
            .await
            .map_err(|failure| redelivery_refused(failure, "a redelivered single webhook"))?;
        let head = ctx.webhooks.batch(10);
        ctx.deliver(&batch_body(&head), "a batch of 10").await?;
        let mut longer = head.clone();
        longer.extend(ctx.webhooks.batch(5));
        ctx.deliver(
            &batch_body(&longer),
            "the batch of 10 redelivered as the head of a batch of 15",
        )
        .await
        .map_err(|failure| redelivery_refused(failure, "a batch with a redelivered head"))?;
        let seen = ctx.settle(observer).await?;
        let single_id = id_of(&single);
        let mut ids = vec![single_id.clone()];
        ids.extend(ids_of(&longer));
        let doubled: Vec<(&String, usize)> = ids
            .iter()
            .map(|id| (id, seen.count(id)))
            .filter(|(_, count)| *count > 1)
            .collect();
        if let Some((id, count)) = doubled.first() {
            let which = if **id == single_id {
                "the webhook sent twice as a single request".to_owned()
            } else {
                "a webhook of the batch that was redelivered".to_owned()
            };
            return Err(Failure::new(format!(
                "webhook {id} ({which}) was processed {count} times ({} of {} ids processed more \
                 than once): PassFort redelivers whatever it got no 200 for (spec §3, §4); \
                 remember processed ids and skip any id already stored",
                doubled.len(),
                ids.len()
            )));
        }
        if let Some(id) = seen.missing(&ids).first() {
            return Err(Failure::new(format!(
                "webhook {id} was answered 200 but never processed: acknowledged webhooks are \
                 dropped from PassFort's queue, so this one is lost (spec §3)"
            )));
        }
        Ok(Outcome::passed(format!(
            "{} ids, 4 deliveries with 11 redelivered webhooks: each id processed once",
            ids.len()
        )))
    }
}

fn redelivery_refused(failure: Failure, what: &str) -> Failure {
    Failure::new(format!(
        "{} — {what} must get 200 too: refusing it makes PassFort retry it forever (spec §4)",
        failure.0
    ))
}

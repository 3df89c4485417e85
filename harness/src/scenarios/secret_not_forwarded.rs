//! `secret-not-forwarded`: what the target processes no longer carries the shared secret.

use async_trait::async_trait;

use crate::scenario::{Checked, Context, Failure, Outcome, Scenario};
use crate::webhook::{batch_body, id_of, ids_of};

/// The processed records of a single webhook and a batch must not contain the shared secret.
#[derive(Debug, Clone, Copy)]
pub struct SecretNotForwarded;

#[async_trait]
impl Scenario for SecretNotForwarded {
    fn id(&self) -> &'static str {
        "secret-not-forwarded"
    }

    fn description(&self) -> &'static str {
        "A single webhook and a batch of 3, then the observe file's records for them: PassFort \
         puts the shared secret in every body (§1, §2), and it must be stripped before a payload \
         is stored, logged or handed on (§6), so no processed record may contain it."
    }

    fn needs_observer(&self) -> bool {
        true
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let observer = match ctx.require_observer() {
            Ok(observer) => observer,
            Err(skip) => return Ok(skip),
        };
        ctx.progress.set_length(3);
        let single = ctx.webhooks.single();
        ctx.deliver(&single, "a single webhook").await?;
        let batch = ctx.webhooks.batch(3);
        ctx.deliver(&batch_body(&batch), "a batch of 3").await?;
        let mut ids = vec![id_of(&single)];
        ids.extend(ids_of(&batch));
        let seen = ctx.processed(observer, &ids, "webhooks").await?;
        ctx.progress.inc(1);
        let leaked: Vec<&String> = ids.iter().filter(|id| seen.carried_secret(id)).collect();
        if let Some(id) = leaked.first() {
            return Err(Failure::new(format!(
                "the processed record of webhook {id} ({} of {} records) contains the shared \
                 secret: whatever reads the processed webhooks (a log, a queue, a CRM) now holds \
                 the key to forge PassFort webhooks; remove `secret` from each webhook before \
                 storing or handing it on (spec §6)",
                leaked.len(),
                ids.len()
            )));
        }
        Ok(Outcome::passed(format!(
            "none of the {} processed records contains the shared secret",
            ids.len()
        )))
    }
}

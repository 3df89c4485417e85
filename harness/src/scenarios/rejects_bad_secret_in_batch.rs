//! `rejects-bad-secret-in-batch`: one forged element in a batch of 10.

use async_trait::async_trait;

use super::must_reject;
use crate::scenario::{Checked, Context, Scenario};
use crate::target::Bearer;
use crate::webhook::{batch_body, ids_of};

/// The position of the forged element: in the middle, so that neither "check the first" nor
/// "check the last" passes.
const FORGED_AT: usize = 6;

/// A batch of 10 whose 7th element has a wrong body secret: refuse the whole batch.
#[derive(Debug, Clone, Copy)]
pub struct RejectsBadSecretInBatch;

#[async_trait]
impl Scenario for RejectsBadSecretInBatch {
    fn id(&self) -> &'static str {
        "rejects-bad-secret-in-batch"
    }

    fn description(&self) -> &'static str {
        "A batch of 10 with the right bearer whose 7th webhook carries a wrong body `secret`: \
         every element carries its own secret (§3) and a batch is all-or-nothing (§3), so the \
         target must answer something other than 200 and process none of the 10 (§6)."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let mut batch = ctx.webhooks.batch(10);
        batch[FORGED_AT]["secret"] = ctx.target.secret().wrong().into();
        must_reject(
            ctx,
            &batch_body(&batch),
            Bearer::Right,
            &ids_of(&batch),
            "a batch of 10 whose 7th webhook has a wrong body `secret`",
            "check the secret of every element before storing any, and store the batch in one \
             transaction (spec §3, §6)",
        )
        .await
    }
}

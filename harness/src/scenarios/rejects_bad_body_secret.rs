//! `rejects-bad-body-secret`: right bearer, wrong body secret.

use async_trait::async_trait;

use super::must_reject;
use crate::scenario::{Checked, Context, Scenario};
use crate::target::Bearer;
use crate::webhook::id_of;

/// `Authorization: Bearer` is right but the body's `secret` is wrong: refuse, process nothing.
#[derive(Debug, Clone, Copy)]
pub struct RejectsBadBodySecret;

#[async_trait]
impl Scenario for RejectsBadBodySecret {
    fn id(&self) -> &'static str {
        "rejects-bad-body-secret"
    }

    fn description(&self) -> &'static str {
        "A webhook sent with the right `Authorization: Bearer` but a wrong body `secret`: \
         PassFort puts the shared secret in every body (§1, §2), so the target must check it \
         too, answer something other than 200 and never process it (§6)."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let mut webhook = ctx.webhooks.single();
        webhook["secret"] = ctx.target.secret().wrong().into();
        must_reject(
            ctx,
            &webhook,
            Bearer::Right,
            &[id_of(&webhook)],
            "a webhook with the right bearer but a wrong `secret` in its body",
            "compare each body's `secret` with the shared secret too, in constant time (spec \
             §1, §6)",
        )
        .await
    }
}

//! `rejects-bad-header-secret`: right body secret, wrong bearer.

use async_trait::async_trait;

use super::must_reject;
use crate::scenario::{Checked, Context, Scenario};
use crate::target::Bearer;
use crate::webhook::id_of;

/// The body's secret is right but `Authorization: Bearer` is wrong: refuse, process nothing.
#[derive(Debug, Clone, Copy)]
pub struct RejectsBadHeaderSecret;

#[async_trait]
impl Scenario for RejectsBadHeaderSecret {
    fn id(&self) -> &'static str {
        "rejects-bad-header-secret"
    }

    fn description(&self) -> &'static str {
        "A webhook whose body `secret` is right but whose `Authorization: Bearer` is wrong: \
         PassFort always sends the shared secret in both places (§1), so the target must verify \
         both, answer something other than 200 and never process it (§6)."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let webhook = ctx.webhooks.single();
        must_reject(
            ctx,
            &webhook,
            Bearer::Wrong,
            &[id_of(&webhook)],
            "a webhook with the right body secret but a wrong `Authorization: Bearer`",
            "compare the bearer token with the shared secret too, in constant time, before \
             anything else (spec §1, §6)",
        )
        .await
    }
}

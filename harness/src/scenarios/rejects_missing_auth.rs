//! `rejects-missing-auth`: no `Authorization` header at all.

use async_trait::async_trait;

use super::must_reject;
use crate::scenario::{Checked, Context, Scenario};
use crate::target::Bearer;
use crate::webhook::id_of;

/// No `Authorization` header (the body's secret is right): refuse, process nothing.
#[derive(Debug, Clone, Copy)]
pub struct RejectsMissingAuth;

#[async_trait]
impl Scenario for RejectsMissingAuth {
    fn id(&self) -> &'static str {
        "rejects-missing-auth"
    }

    fn description(&self) -> &'static str {
        "A webhook with the right body `secret` and no `Authorization` header at all: PassFort \
         always sends `Authorization: Bearer <secret>` (§1), so a request without it is not \
         PassFort's; it must not get a 200 nor be processed (§6)."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let webhook = ctx.webhooks.single();
        must_reject(
            ctx,
            &webhook,
            Bearer::Missing,
            &[id_of(&webhook)],
            "a webhook without any `Authorization` header",
            "require `Authorization: Bearer <shared secret>` on every request (spec §1)",
        )
        .await
    }
}

//! `ack-latency`: how fast the target answers, over many requests.

use std::time::Duration;

use async_trait::async_trait;

use crate::scenario::{not_200_reason, Checked, Context, Failure, Outcome, Scenario};
use crate::target::{millis, Bearer, Delivery};
use crate::webhook::batch_body;

/// Every other request is a batch of this many: a busy batched account's typical request.
const BATCH: usize = 10;

/// p50/p99 answer times over many requests, single and batched.
#[derive(Debug, Clone, Copy)]
pub struct AckLatency;

#[async_trait]
impl Scenario for AckLatency {
    fn id(&self) -> &'static str {
        "ack-latency"
    }

    fn description(&self) -> &'static str {
        "200 requests, one at a time as PassFort sends them, alternating single webhooks and \
         batches of 10: every answer must be a 200 inside PassFort's limits (5 s batched, 10 s \
         unbatched, §1); p99 above 1 s is a warning, since the target should answer within a \
         fraction of the limit and do its work afterwards (§4, §6)."
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let requests = ctx.limits.latency_requests;
        ctx.progress.set_length(requests as u64);
        let mut single = Vec::with_capacity(requests / 2 + 1);
        let mut batched = Vec::with_capacity(requests / 2 + 1);
        for n in 0..requests {
            let is_batch = n % 2 == 1;
            let (body, limit, kind) = if is_batch {
                (
                    batch_body(&ctx.webhooks.batch(BATCH)),
                    ctx.limits.batch_answer,
                    format!("a batch of {BATCH}"),
                )
            } else {
                (
                    ctx.webhooks.single(),
                    ctx.limits.single_answer,
                    "a single webhook".to_owned(),
                )
            };
            let delivery = ctx.target.post(&body, Bearer::Right, limit).await;
            ctx.progress.inc(1);
            match delivery {
                Delivery::Answered {
                    status: 200,
                    elapsed,
                } if elapsed <= limit => {
                    if is_batch {
                        batched.push(elapsed)
                    } else {
                        single.push(elapsed)
                    }
                }
                Delivery::Answered { elapsed, .. } if elapsed > limit => {
                    return Err(past_limit(n, requests, &kind, limit, Some(elapsed)));
                }
                Delivery::NoAnswer { limit } => {
                    return Err(past_limit(n, requests, &kind, limit, None));
                }
                other => {
                    return Err(Failure::new(not_200_reason(
                        &other,
                        &format!("request {} of {requests} ({kind})", n + 1),
                    )))
                }
            }
        }
        let mut all: Vec<Duration> = single.iter().chain(&batched).copied().collect();
        let overall = Percentiles::of(&mut all);
        let details = vec![
            format!("all {requests} requests: {overall}"),
            format!(
                "single webhooks ({}): {}",
                single.len(),
                Percentiles::of(&mut single)
            ),
            format!(
                "batches of {BATCH} ({}): {}",
                batched.len(),
                Percentiles::of(&mut batched)
            ),
        ];
        let mut outcome = if overall.p99 > ctx.limits.warn_above {
            Outcome::warned(format!(
                "p99 answer time {} is above {}: within PassFort's limits, but with little \
                 margin; answer as soon as the webhook is stored and process it afterwards \
                 (spec §4, §6)",
                millis(overall.p99),
                millis(ctx.limits.warn_above)
            ))
        } else {
            Outcome::passed(format!(
                "p50 {}, p99 {} over {requests} requests, all 200",
                millis(overall.p50),
                millis(overall.p99)
            ))
        };
        for detail in details {
            outcome = outcome.detail(detail);
        }
        Ok(outcome)
    }
}

fn past_limit(
    n: usize,
    requests: usize,
    kind: &str,
    limit: Duration,
    answered_after: Option<Duration>,
) -> Failure {
    let when = match answered_after {
        Some(elapsed) => format!("answered only after {}", millis(elapsed)),
        None => format!("no answer within {}", millis(limit)),
    };
    Failure::new(format!(
        "request {} of {requests} ({kind}): {when}, past the {} limit; PassFort counts the \
         attempt as failed and sends it again with back-off (spec §1, §4): store, answer 200, \
         then process in a separate worker",
        n + 1,
        millis(limit)
    ))
}

/// p50, p99 and max of a set of answer times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Percentiles {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Percentiles {
    /// Nearest-rank percentiles; all zero for no samples.
    fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let rank = |p: usize| -> Duration {
            if samples.is_empty() {
                return Duration::ZERO;
            }
            let index = (p * samples.len()).div_ceil(100).saturating_sub(1);
            samples[index.min(samples.len() - 1)]
        };
        Self {
            p50: rank(50),
            p99: rank(99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {}, p99 {}, max {}",
            millis(self.p50),
            millis(self.p99),
            millis(self.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut samples);
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(Percentiles::of(&mut []).p99, Duration::ZERO);
        let mut one = [Duration::from_millis(7)];
        assert_eq!(Percentiles::of(&mut one).p50, Duration::from_millis(7));
    }
}

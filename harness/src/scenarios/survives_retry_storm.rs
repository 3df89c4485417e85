//! `survives-retry-storm`: the simulator's whole engine, lost answers and back-off included.

use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use passfort_sender_sim::prelude::*;

use crate::scenario::{Checked, Context, Failure, Outcome, Scenario};

/// How many of the storm's webhooks go out unbatched before batching is switched on.
const UNBATCHED_SHARE: usize = 3; // one in three

/// 1 000 webhooks through the simulator's engine, some answers lost: all processed once, in
/// order.
#[derive(Debug, Clone, Copy)]
pub struct SurvivesRetryStorm;

#[async_trait]
impl Scenario for SurvivesRetryStorm {
    fn id(&self) -> &'static str {
        "survives-retry-storm"
    }

    fn description(&self) -> &'static str {
        "1 000 webhooks from realistic profile lifecycles sent by the simulator's engine over real \
         HTTP, first unbatched then in batches of up to 100 (§3), with PassFort's back-off on a \
         fast time scale (§4); every fourth answer is lost after the target got the request and \
         some connections are refused, so redeliveries come as PassFort makes them (§4): the \
         queue must drain and every webhook be processed exactly once, in order."
    }

    fn needs_observer(&self) -> bool {
        true
    }

    async fn run(&self, ctx: &Context) -> Checked {
        let observer = match ctx.require_observer() {
            Ok(observer) => observer,
            Err(skip) => return Ok(skip),
        };
        let total = ctx.limits.storm_webhooks;
        ctx.progress.set_length(total as u64 + 1);
        let clock = SimClock::Real(ctx.target.clock().clone());
        let transport = HttpTransport::new()
            .map_err(|error| Failure::new(format!("cannot build the HTTP client: {error}")))?;
        let faults = FaultyTransport::new(transport, clock.shared());
        faults.plan(fault_for_attempt);
        let mut settings =
            AccountSettings::new(ctx.target.url(), Secret::new(ctx.target.secret().expose()));
        settings.time_scale = f64::from(ctx.limits.storm_time_scale.max(1));
        settings.answer_limit_batched = ctx.limits.batch_answer;
        settings.answer_limit_unbatched = ctx.limits.single_answer;
        let engine = Engine::with_options(
            settings,
            clock,
            faults.clone(),
            EngineOptions {
                seed: rand::random(),
                ..EngineOptions::default()
            },
        )
        .map_err(|error| Failure::new(format!("cannot start the simulator: {error}")))?;

        let webhooks = Generator::new(rand::random())
            .with_id_style(ctx.id_style)
            .mix(total, SystemTime::now());
        let ids: Vec<String> = webhooks.iter().map(|w| w.id.to_string()).collect();
        let unbatched = total / UNBATCHED_SHARE;
        let (first, rest) = webhooks.split_at(unbatched);

        ctx.progress.say("unbatched");
        engine.enqueue_all(first.iter().cloned());
        self.drain(ctx, &engine).await?;
        engine
            .update_settings(|settings| settings.batching = true)
            .map_err(|error| Failure::new(format!("cannot switch batching on: {error}")))?;
        ctx.progress.say("batched");
        engine.enqueue_all(rest.iter().cloned());
        self.drain(ctx, &engine).await?;

        let status = engine.status();
        let attempts = engine.attempts();
        let lost_answers = attempts
            .iter()
            .filter(|a| a.outcome == passfort_sender_sim::Outcome::Dropped)
            .count();
        let details = vec![
            format!(
                "{} attempts: {} delivered, {} failed ({} answers lost after the target got \
                 the request)",
                status.attempts,
                attempts.iter().filter(|a| a.outcome.is_delivered()).count(),
                status.failed_attempts_total,
                lost_answers
            ),
            format!(
                "{unbatched} webhooks unbatched, {} batched; back-off and cadence {}× faster \
                 than PassFort",
                total - unbatched,
                ctx.limits.storm_time_scale
            ),
        ];

        ctx.progress.say("checking the observe file");
        ctx.processed(observer, &ids, "storm webhooks").await?;
        ctx.progress.inc(1);
        let seen = observer.read()?;
        let doubled: Vec<(&String, usize)> = ids
            .iter()
            .map(|id| (id, seen.count(id)))
            .filter(|(_, count)| *count > 1)
            .collect();
        if let Some((id, count)) = doubled.first() {
            return Err(Failure::new(format!(
                "{} of {total} webhooks were processed more than once (e.g. {id}, {count} \
                 times) after their answers were lost: PassFort resends whatever it got no 200 \
                 for (spec §4); skip ids already stored",
                doubled.len()
            )));
        }
        let order = seen.first_processing_order(&ids);
        if let Some(position) = order.iter().zip(&ids).position(|(got, want)| got != want) {
            return Err(Failure::new(format!(
                "webhook {} of {total} was processed out of order: expected {} but the target \
                 processed {} there; PassFort's queue is ordered (spec §4) and redeliveries and \
                 batches keep that order: process in the order first acknowledged",
                position + 1,
                ids[position],
                order[position]
            )));
        }
        let mut outcome = Outcome::passed(format!(
            "{total} webhooks through {} attempts with lost answers: each processed once, in \
             order",
            status.attempts
        ));
        for detail in details {
            outcome = outcome.detail(detail);
        }
        Ok(outcome)
    }
}

impl SurvivesRetryStorm {
    /// Runs the engine until its queue is empty, failing at the target's first failed attempt
    /// (or when the storm takes too long).
    ///
    /// The storm's own faults (lost answers, refused connections) are PassFort's weather and are
    /// retried; an attempt that fails without one of them is the target's own doing: a non-200,
    /// a late answer, a broken connection. PassFort would back off from it for 30 s and more
    /// (spec §4), so that first one is decisive and the storm stops there instead of playing out
    /// the rest of its webhooks.
    async fn drain(&self, ctx: &Context, engine: &Engine) -> Result<(), Failure> {
        let stall_after = ctx.limits.storm_stall_after.max(1);
        let mut failures_in_a_row = 0u32;
        let mut target_failed = false;
        let progress = ctx.progress.clone();
        let run =
            engine.run_until_empty_or_break(Duration::from_secs(30 * 86_400), |attempt, engine| {
                if attempt.outcome.is_delivered() {
                    failures_in_a_row = 0;
                    progress.set_position(engine.status().delivered);
                    return ControlFlow::Continue(());
                }
                if !injected(attempt) {
                    target_failed = true;
                    return ControlFlow::Break(());
                }
                failures_in_a_row += 1;
                if failures_in_a_row >= stall_after {
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
        let ended =
            passfort_clock::timeout(ctx.target.clock(), ctx.limits.storm_deadline, run).await;
        match ended {
            Ok(ControlFlow::Continue(RunOutcome::Emptied)) => Ok(()),
            Ok(ControlFlow::Continue(RunOutcome::GaveUp)) => {
                Err(self.stuck(engine, "the simulator gave up after 30 simulated days"))
            }
            Ok(ControlFlow::Break(())) if target_failed => Err(self.stuck(
                engine,
                "an attempt failed through the target's own doing, not the storm's",
            )),
            Ok(ControlFlow::Break(())) => {
                Err(self.stuck(engine, &format!("{stall_after} attempts in a row failed")))
            }
            Err(_elapsed) => Err(self.stuck(
                engine,
                &format!(
                    "the queue did not drain within {}",
                    humantime::format_duration(ctx.limits.storm_deadline)
                ),
            )),
        }
    }

    fn stuck(&self, engine: &Engine, why: &str) -> Failure {
        let status = engine.status();
        let last = engine
            .attempts()
            .into_iter()
            .rev()
            .find(|attempt| !attempt.outcome.is_delivered());
        let last = match last {
            Some(attempt) => {
                let what = if attempt.batched {
                    format!("a batch of {}", attempt.webhook_ids.len())
                } else {
                    "a single webhook".to_owned()
                };
                let how = match (attempt.status, &attempt.error) {
                    (Some(status), _) => format!("answered {}", crate::target::status_text(status)),
                    (None, Some(error)) => error.clone(),
                    (None, None) => format!("{:?}", attempt.outcome).to_lowercase(),
                };
                format!(
                    "; last failure: {what}, {how} after {:.0} ms",
                    attempt.latency_ms
                )
            }
            None => String::new(),
        };
        Failure::new(format!(
            "the simulated PassFort queue stalled: {why}, {} of {} webhooks delivered{last}. With \
             PassFort the back-off would now be hours long and every later webhook held behind \
             it (spec §4): answer 200 within the limit (spec §1) to every authentic webhook, \
             redeliveries included",
            status.delivered, status.enqueued
        ))
    }
}

/// Whether `attempt` failed only because of the fault the storm put on it: its answer lost, or
/// its connection refused, by plan.
fn injected(attempt: &Attempt) -> bool {
    let fault = fault_for_attempt(attempt.seq.saturating_sub(1));
    matches!(
        (fault, attempt.outcome),
        (Fault::DropAnswer, passfort_sender_sim::Outcome::Dropped)
            | (Fault::Refuse, passfort_sender_sim::Outcome::Refused)
    )
}

/// The fault the storm puts on the `attempt`-th request (0-based): every fourth answer is lost
/// after the target handled the request, and now and then a connection is refused. Never more
/// than two failures in a row, so a correct target always drains the queue.
fn fault_for_attempt(attempt: u64) -> Fault {
    if attempt % 4 == 1 {
        Fault::DropAnswer
    } else if attempt % 13 == 6 {
        Fault::Refuse
    } else {
        Fault::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_never_come_three_in_a_row_and_include_lost_answers() {
        let faults: Vec<Fault> = (0..1_000).map(fault_for_attempt).collect();
        assert!(faults.windows(3).all(|w| w.contains(&Fault::Pass)));
        assert!(faults.iter().filter(|f| **f == Fault::DropAnswer).count() >= 200);
        assert!(faults.contains(&Fault::Refuse));
    }
}

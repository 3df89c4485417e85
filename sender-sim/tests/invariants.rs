//! Whatever the receiver does, the engine keeps PassFort's promises: everything is delivered
//! exactly in queue order, every request starts at the head, batches hold at most `max_batch`,
//! and every failure is followed by exactly the scheduled back-off.

mod common;

use std::time::Duration;

use common::*;
use passfort_sender_sim::prelude::*;
use proptest::prelude::*;

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => Just(Fault::Pass),
        1 => Just(Fault::Refuse),
        1 => Just(Fault::DropAnswer),
        1 => prop::sample::select(vec![201u16, 202, 204, 400, 401, 429, 500, 503]).prop_map(Fault::Status),
        1 => (0u64..15).prop_map(|s| Fault::Delay(Duration::from_secs(s))),
        1 => (0u64..15).prop_map(|s| Fault::SlowAnswer(Duration::from_secs(s))),
        1 => Just(Fault::Hang),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn order_head_batch_size_and_back_off_hold_under_any_faults(
        batched in any::<bool>(),
        max_batch in 1usize..120,
        count in 1usize..260,
        faults in prop::collection::vec(fault(), 0..25),
        seed in any::<u64>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let clock = VirtualClock::new();
            let recorder = Recorder::new();
            let faulty = FaultyTransport::new(recorder.transport(), clock.clone());
            faulty.script(faults.clone());
            let mut s = settings();
            s.batching = batched;
            s.max_batch = max_batch;
            let engine = Engine::with_options(
                s.clone(),
                clock.clone(),
                faulty,
                EngineOptions { seed, quiet: Duration::ZERO, ..EngineOptions::default() },
            )
            .unwrap();
            let queued = Generator::new(seed).mix(count, clock.now());
            let ids: Vec<_> = queued.iter().map(|w| w.id.clone()).collect();
            engine.enqueue_all(queued);
            let outcome = engine.run_until_empty(Duration::from_secs(400 * 86_400)).await;
            prop_assert_eq!(outcome, RunOutcome::Emptied);

            let log = engine.attempts();
            // One scripted fault per attempt, then every attempt passes: each attempt fails
            // exactly when its fault should make it fail.
            let limit = s.answer_limit();
            for (i, attempt) in log.iter().enumerate() {
                let should_fail = match faults.get(i) {
                    None | Some(Fault::Pass) => false,
                    Some(Fault::Delay(d)) | Some(Fault::SlowAnswer(d)) => *d > limit,
                    Some(_) => true,
                };
                prop_assert_eq!(!attempt.outcome.is_delivered(), should_fail, "attempt {}: {:?}", i, attempt);
            }
            let mut head = 0usize;
            let mut delivered = Vec::new();
            for (i, attempt) in log.iter().enumerate() {
                let n = attempt.webhook_ids.len();
                let most = if batched { max_batch } else { 1 };
                prop_assert!(n >= 1 && n <= most);
                prop_assert_eq!(&attempt.webhook_ids[..], &ids[head..head + n], "starts at the head");
                if attempt.outcome.is_delivered() {
                    head += n;
                    delivered.extend_from_slice(&attempt.webhook_ids);
                } else if let Some(next) = log.get(i + 1) {
                    let wait = s.backoff.delay_after(attempt.try_number);
                    prop_assert_eq!(next.at, attempt.at + attempt.latency() + wait);
                    prop_assert_eq!(attempt.next_retry, Some(next.at));
                    prop_assert_eq!(next.try_number, attempt.try_number + 1);
                }
                prop_assert!(attempt.latency() <= s.answer_limit() || attempt.outcome == Outcome::Late);
            }
            prop_assert_eq!(delivered, ids);
            Ok(())
        })?;
    }
}

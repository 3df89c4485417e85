//! The property of issue 4, in process: for any generated run, when the simulator drives the
//! receiver on the virtual clock until its queue is empty, the six guarantees hold (see
//! `passfort_conformance::property`).
//!
//! `PROPTEST_CASES=N` raises the number of generated runs for a long soak (default
//! [`DEFAULT_CASES`], sized so the whole suite stays under 3 minutes on 2 cores).

use passfort_conformance::case::{
    self, Case, Event, Fault, Forgery, ForgeryKind, HandlerPlan, Turn,
};
use passfort_conformance::property::{self, Coverage};
use passfort_conformance::run;
use passfort_sender_sim::EventType;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

/// Generated runs per `cargo test` unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 64;

/// Turns per generated run at most.
const MAX_TURNS: usize = 14;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        max_shrink_iters: 400,
        failure_persistence: None,
        ..Config::default()
    }
}

fn add(total: &mut Coverage, one: &Coverage) {
    total.webhooks += one.webhooks;
    total.attempts += one.attempts;
    total.restarts += one.restarts;
    total.lost_200s += one.lost_200s;
    total.unavailable += one.unavailable;
    total.forgeries += one.forgeries;
    total.handler_failures += one.handler_failures;
    total.refused += one.refused;
    total.timed_out += one.timed_out;
    total.duplicates += one.duplicates;
}

#[test]
fn the_receiver_keeps_passforts_contract_under_generated_faults() {
    let mut runner = TestRunner::new(config());
    let total = std::cell::RefCell::new(Coverage::default());
    let result = runner.run(&case::case(MAX_TURNS), |case| {
        let observed = run::play_blocking(&case);
        match property::check(&observed) {
            Ok(coverage) => {
                add(&mut total.borrow_mut(), &coverage);
                Ok(())
            }
            Err(report) => Err(TestCaseError::fail(report)),
        }
    });
    match result {
        Ok(()) => eprintln!("generated runs covered: {:?}", total.borrow()),
        Err(TestError::Fail(report, case)) => {
            panic!("{report}\nminimal failing case (shrunk):\n{case:?}")
        }
        Err(TestError::Abort(why)) => panic!("proptest aborted: {why}"),
    }
}

fn ev(event: EventType) -> Event {
    Event {
        event,
        handler: HandlerPlan::Succeed,
    }
}

fn turn(queue: Vec<Event>, fault: Fault) -> Turn {
    Turn {
        queue,
        forgery: None,
        fault,
        press_retry: false,
        worker_steps: 1,
    }
}

/// Three turns with `fault` on each attempt, then fault-free to the end.
fn with_fault(seed: u64, batching: Option<usize>, fault: Fault) -> Case {
    let e = |i: usize| ev(EventType::KNOWN[i % EventType::KNOWN.len()].clone());
    Case {
        seed,
        batching,
        turns: vec![
            turn(vec![e(0), e(1), e(2)], fault),
            turn(
                vec![
                    e(3),
                    ev(EventType::Other("APPLICANT_PORTAL_VISITED".into())),
                ],
                fault,
            ),
            turn(vec![e(9), e(10)], fault),
        ],
    }
}

fn assert_holds(case: &Case) -> Coverage {
    let observed = run::play_blocking(case);
    match property::check(&observed) {
        Ok(coverage) => coverage,
        Err(report) => panic!("{report}\ncase:\n{case:?}"),
    }
}

/// Every fault on its own, batched and not: a fixed floor under the random exploration, and proof
/// that each fault does what it says (a lost answer is a 200 the simulator never saw, a crash
/// restarts the receiver, a slow or unavailable store is a 503).
#[test]
fn every_fault_on_its_own_keeps_the_contract_and_takes_effect() {
    let faults = [
        Fault::Pass,
        Fault::Refused,
        Fault::AnswerLost,
        Fault::AnswerLate,
        Fault::Hang,
        Fault::StoreSlow,
        Fault::StoreSlowAfterStaging,
        Fault::StoreUnavailable,
        Fault::CrashAfterCommit { down_for: 1 },
        Fault::Duplicate,
    ];
    for batching in [None, Some(3)] {
        for (i, fault) in faults.iter().enumerate() {
            let coverage = assert_holds(&with_fault(i as u64 + 1, batching, *fault));
            assert_eq!(coverage.webhooks, 7);
            let context = format!("{fault:?} batching {batching:?}: {coverage:?}");
            match fault {
                Fault::Pass => assert_eq!(coverage.lost_200s, 0, "{context}"),
                Fault::AnswerLost | Fault::AnswerLate => {
                    assert!(coverage.lost_200s > 0, "{context}")
                }
                Fault::CrashAfterCommit { .. } => {
                    assert!(coverage.restarts > 0, "{context}");
                    assert!(coverage.lost_200s > 0, "{context}");
                }
                Fault::StoreSlow | Fault::StoreSlowAfterStaging | Fault::StoreUnavailable => {
                    assert!(coverage.unavailable > 0, "{context}")
                }
                Fault::Refused => assert!(coverage.refused > 0, "{context}"),
                Fault::Hang => assert!(coverage.timed_out > 0, "{context}"),
                Fault::Duplicate => assert!(coverage.duplicates > 0, "{context}"),
            }
        }
    }
}

/// The forger, the failing and panicking handler, Retry mid-back-off and a lagging worker, all in
/// one run with faults.
#[test]
fn forgeries_handler_failures_and_retry_presses_keep_the_contract() {
    let kinds = [
        ForgeryKind::WrongBearer,
        ForgeryKind::WrongBodySecret,
        ForgeryKind::OneBadInBatch,
        ForgeryKind::NoAuthorization,
    ];
    for batching in [None, Some(2)] {
        let mut turns = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            turns.push(Turn {
                queue: vec![
                    Event {
                        event: EventType::CheckCompleted,
                        handler: HandlerPlan::Fail(2),
                    },
                    Event {
                        event: EventType::ProductStatusChanged,
                        handler: HandlerPlan::Panic(1),
                    },
                ],
                forgery: Some(Forgery {
                    kind: *kind,
                    reuse_queued_id: i % 2 == 0,
                }),
                fault: if i % 2 == 0 {
                    Fault::Refused
                } else {
                    Fault::AnswerLost
                },
                press_retry: true,
                worker_steps: 0,
            });
        }
        let coverage = assert_holds(&Case {
            seed: 99,
            batching,
            turns,
        });
        assert_eq!(coverage.forgeries, 4, "{coverage:?}");
        assert!(coverage.handler_failures >= 12, "{coverage:?}");
    }
}

/// Found by shrinking against a receiver whose worker took the head by id instead of by arrival:
/// webhooks queued at different times (after refused attempts moved the clock) have ids whose
/// text order is not their queue order, and the worker lags behind.
#[test]
fn regression_webhooks_of_different_seconds_are_handed_on_in_arrival_order() {
    let psc = || ev(EventType::ProductStatusChanged);
    let idle = |queue: Vec<Event>, fault: Fault| Turn {
        queue,
        forgery: None,
        fault,
        press_retry: false,
        worker_steps: 0,
    };
    for seed in 0..4 {
        assert_holds(&Case {
            seed,
            batching: None,
            turns: vec![
                idle(vec![psc()], Fault::Refused),
                idle(vec![], Fault::Refused),
                idle(vec![], Fault::Refused),
                idle(vec![], Fault::Refused),
                idle(vec![psc()], Fault::Pass),
                idle(vec![psc()], Fault::Pass),
                idle(vec![psc(), psc()], Fault::Refused),
                idle(vec![psc()], Fault::Pass),
            ],
        });
    }
}

/// Found by shrinking against a receiver that did not check the body secret: one forged request,
/// nothing else.
#[test]
fn regression_a_lone_forgery_is_refused() {
    for kind in [
        ForgeryKind::WrongBearer,
        ForgeryKind::WrongBodySecret,
        ForgeryKind::OneBadInBatch,
        ForgeryKind::NoAuthorization,
    ] {
        let coverage = assert_holds(&Case {
            seed: 0,
            batching: None,
            turns: vec![Turn {
                queue: vec![],
                forgery: Some(Forgery {
                    kind,
                    reuse_queued_id: false,
                }),
                fault: Fault::Pass,
                press_retry: false,
                worker_steps: 0,
            }],
        });
        assert_eq!(coverage.forgeries, 1);
    }
}

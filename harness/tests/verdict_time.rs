//! How long a whole run takes to judge a flawed receiver (issue 15): every scenario, PassFort's
//! own limits and the default observe waits, against receivers with the flaws that used to take
//! the harness many minutes. Time is tokio's paused clock, driven by the runtime: it jumps to the
//! next timer whenever every task (harness and receiver alike, one thread) waits, so an 11 s
//! answer or a 5 s quiet period costs no real time, and no test sleeps.
//!
//! The figures these runs produce are virtual: waiting only, no computing. The real wall-clock
//! times, release build on loopback, are in `docs/harness-timing.md`.

mod receivers;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use passfort_clock::Clock;
use passfort_harness::{run, RunReport, Secret, Settings, Status};
use receivers::{start, Flaw, TokioClock, SECRET};

/// Runs every scenario against a receiver with `flaw`; returns the report and the run's length
/// on the driven clock.
async fn judge(flaw: Flaw) -> (RunReport, Duration) {
    let receiver = start(flaw).await;
    let clock = Arc::new(TokioClock::new());
    let mut settings =
        Settings::new(&receiver.url, Secret::new(SECRET).unwrap()).observe(&receiver.observe);
    settings.clock = clock.clone();
    let began = clock.now();
    let report = run::run(settings).await.unwrap();
    let took = clock.now().duration_since(began).unwrap();
    (report, took)
}

fn with_status(report: &RunReport, status: Status) -> BTreeSet<&str> {
    report
        .scenarios
        .iter()
        .filter(|s| s.status == status)
        .map(|s| s.id.as_str())
        .collect()
}

fn summary(report: &RunReport, took: Duration) -> String {
    format!(
        "judged in {took:?}\n{}",
        passfort_harness::report::table(report)
    )
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_receiver_answering_single_webhooks_after_11_s_is_judged_within_3_minutes() {
    let (report, took) = judge(Flaw::SlowOnSingles(Duration::from_secs(11))).await;
    let text = summary(&report, took);
    assert!(took <= Duration::from_secs(180), "{text}");
    // Every scenario that needs a single webhook delivered fails, and says the answer was late.
    let failed = with_status(&report, Status::Failed);
    for id in [
        "accepts-single",
        "answers-exactly-200",
        "rejects-bad-header-secret",
        "unknown-event-accepted",
        "ack-latency",
        "dedup-redelivery",
        "order-preserved",
        "survives-retry-storm",
        "secret-not-forwarded",
        "survives-disconnect-mid-body",
    ] {
        assert!(failed.contains(id), "{id} should fail\n{text}");
        let reason = &report.scenarios.iter().find(|s| s.id == id).unwrap().reason;
        assert!(reason.contains("no answer within 10"), "{id}: {reason}");
    }
    // Batches are answered in time: those scenarios still pass.
    assert!(
        with_status(&report, Status::Passed)
            .is_superset(&BTreeSet::from(["accepts-batch", "accepts-slow-upload"])),
        "{text}"
    );
    eprintln!("{text}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_receiver_that_answers_200_and_never_processes_is_judged_within_2_minutes() {
    let (report, took) = judge(Flaw::NeverProcesses).await;
    let text = summary(&report, took);
    assert!(took <= Duration::from_secs(120), "{text}");
    // Only the scenarios that look at answers alone pass; every other one fails because the
    // target processed nothing, and says so.
    assert_eq!(
        with_status(&report, Status::Passed),
        BTreeSet::from(["answers-exactly-200", "ack-latency"]),
        "{text}"
    );
    for scenario in report
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Failed)
    {
        assert!(
            scenario.reason.contains("processed nothing new for 5s"),
            "{}: {}",
            scenario.id,
            scenario.reason
        );
    }
    eprintln!("{text}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_receiver_that_loses_one_webhook_in_50_is_judged_within_2_minutes() {
    let (report, took) = judge(Flaw::LosesOneIn(50)).await;
    let text = summary(&report, took);
    assert!(took <= Duration::from_secs(120), "{text}");
    let failed = with_status(&report, Status::Failed);
    // A batch of 100 always holds a 50th webhook, and so do the 300 and 1 000 webhooks of the
    // order and storm scenarios.
    for id in [
        "accepts-batch",
        "order-preserved",
        "survives-retry-storm",
        "accepts-slow-upload",
    ] {
        assert!(failed.contains(id), "{id} should fail\n{text}");
    }
    for scenario in report
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Failed)
    {
        assert!(
            scenario
                .reason
                .contains("never appeared in the observe file")
                || scenario.reason.contains("never processed")
                || scenario.reason.contains("but it processed nothing new"),
            "{}: {}",
            scenario.id,
            scenario.reason
        );
    }
    eprintln!("{text}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_correct_receiver_is_judged_without_waiting_out_any_limit() {
    let (report, took) = judge(Flaw::None).await;
    let text = summary(&report, took);
    assert_eq!(report.exit_code(), 0, "{text}");
    assert_eq!(with_status(&report, Status::Failed).len(), 0, "{text}");
    // The only waits are the slow upload's 3 s and the observe file's polling: no quiet period
    // (5 s), answer limit or observe timeout is ever waited out.
    assert!(took < Duration::from_secs(8), "{text}");
    eprintln!("{text}");
}

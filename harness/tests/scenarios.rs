//! Every scenario against a correct reference receiver (all pass) and against deliberately
//! broken receivers (exactly the scenarios each flaw breaks fail, with a reason a person can act
//! on).

mod receivers;

use std::collections::BTreeSet;
use std::time::Duration;

use passfort_harness::{run, Limits, RunReport, Secret, Settings, Status};
use receivers::{start, Flaw, TokioClock, SECRET};

async fn run_against(flaw: Flaw, limits: Limits) -> RunReport {
    let receiver = start(flaw).await;
    let settings = Settings::new(&receiver.url, Secret::new(SECRET).unwrap())
        .observe(&receiver.observe)
        .limits(limits);
    run::run(settings).await.unwrap()
}

fn failed(report: &RunReport) -> BTreeSet<&str> {
    report
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Failed)
        .map(|s| s.id.as_str())
        .collect()
}

fn reason<'a>(report: &'a RunReport, id: &str) -> &'a str {
    &report
        .scenarios
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("{id} did not run"))
        .reason
}

/// Checks that exactly `expected` failed, each reason citing the spec and containing its hint.
fn assert_fails_exactly(report: &RunReport, expected: &[(&str, &str)]) {
    let table = passfort_harness::report::table(report);
    assert_eq!(
        report.scenarios.len(),
        passfort_harness::scenarios::ids().len(),
        "{table}"
    );
    let want: BTreeSet<&str> = expected.iter().map(|(id, _)| *id).collect();
    assert_eq!(failed(report), want, "{table}");
    for (id, hint) in expected {
        let reason = reason(report, id);
        assert!(reason.contains(hint), "{id}: {reason:?} lacks {hint:?}");
        assert!(
            reason.contains("spec §"),
            "{id}: {reason:?} cites no spec section"
        );
    }
    assert_eq!(report.count(Status::Skipped), 0, "{table}");
    assert_eq!(report.exit_code(), i32::from(!expected.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_receiver_passes_every_scenario() {
    let report = run_against(Flaw::None, Limits::default()).await;
    let table = passfort_harness::report::table(&report);
    let ids: Vec<&str> = report.scenarios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, passfort_harness::scenarios::ids(), "{table}");
    for scenario in &report.scenarios {
        assert!(
            matches!(scenario.status, Status::Passed | Status::Warned),
            "{table}"
        );
    }
    assert_eq!(report.exit_code(), 0);
    let storm = report
        .scenarios
        .iter()
        .find(|s| s.id == "survives-retry-storm")
        .unwrap();
    assert!(storm.reason.contains("1000 webhooks"), "{}", storm.reason);
    assert!(
        storm.details.iter().any(|d| d.contains("answers lost")),
        "{:?}",
        storm.details
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_skips_the_header_check_fails_the_header_scenarios() {
    let report = run_against(Flaw::SkipsHeaderCheck, Limits::default()).await;
    assert_fails_exactly(
        &report,
        &[
            ("rejects-bad-header-secret", "Authorization: Bearer"),
            ("rejects-missing-auth", "`Authorization` header"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_answers_202_fails_everything_that_needs_a_200() {
    let report = run_against(Flaw::Answers202, Limits::default()).await;
    assert_fails_exactly(
        &report,
        &[
            ("accepts-single", "202 Accepted"),
            ("accepts-batch", "202 Accepted"),
            ("answers-exactly-200", "202 Accepted, not 200"),
            ("unknown-event-accepted", "202 Accepted"),
            ("ack-latency", "202 Accepted"),
            ("dedup-redelivery", "202 Accepted"),
            ("order-preserved", "202 Accepted"),
            ("survives-retry-storm", "202 Accepted"),
            ("secret-not-forwarded", "202 Accepted"),
            ("survives-disconnect-mid-body", "202 Accepted"),
            ("accepts-slow-upload", "202 Accepted"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_processes_duplicates_fails_the_dedup_scenarios() {
    let report = run_against(Flaw::ProcessesDuplicates, Limits::default()).await;
    assert_fails_exactly(
        &report,
        &[
            ("dedup-redelivery", "was processed 2 times"),
            ("survives-retry-storm", "processed more than once"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_slow_on_batches_fails_every_scenario_that_needs_a_batch_delivered() {
    // The receiver takes 20 ms per batched webhook before answering: even a batch of 3 answers
    // after at least 60 ms. The batched limit is 40 ms, so every batch is past it however fast
    // the machine is, and every scenario that needs a batch delivered fails on the late answer,
    // as PassFort would count it. Single webhooks are answered in time.
    let limits = Limits {
        batch_answer: Duration::from_millis(40),
        ..Limits::default()
    };
    let report = run_against(Flaw::SlowOnBatches(Duration::from_millis(20)), limits).await;
    assert_fails_exactly(
        &report,
        &[
            ("accepts-batch", "no answer within 40 ms"),
            ("answers-exactly-200", "no answer within 40 ms"),
            ("unknown-event-accepted", "no answer within 40 ms"),
            ("ack-latency", "no answer within 40 ms"),
            ("dedup-redelivery", "no answer within 40 ms"),
            ("order-preserved", "no answer within 40 ms"),
            ("survives-retry-storm", "stalled"),
            ("secret-not-forwarded", "no answer within 40 ms"),
            ("accepts-slow-upload", "no answer within 40 ms"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_rejects_unknown_events_fails_the_unknown_event_scenario() {
    let report = run_against(Flaw::RejectsUnknownEvents, Limits::default()).await;
    assert_fails_exactly(
        &report,
        &[("unknown-event-accepted", "422 Unprocessable Entity")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_reorders_batches_fails_the_order_scenarios() {
    let report = run_against(Flaw::Reorders, Limits::default()).await;
    assert_fails_exactly(
        &report,
        &[
            (
                "order-preserved",
                "process a batch's webhooks in array order",
            ),
            ("survives-retry-storm", "out of order"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_forwards_the_secret_fails_the_secret_scenario() {
    let report = run_against(Flaw::ForwardsSecret, Limits::default()).await;
    assert_fails_exactly(
        &report,
        &[("secret-not-forwarded", "contains the shared secret")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_observe_file_the_scenarios_that_need_it_are_skipped_with_the_reason() {
    let receiver = start(Flaw::None).await;
    let settings = Settings::new(&receiver.url, Secret::new(SECRET).unwrap());
    let report = run::run(settings).await.unwrap();
    let skipped: BTreeSet<&str> = report
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Skipped)
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        skipped,
        BTreeSet::from([
            "dedup-redelivery",
            "order-preserved",
            "survives-retry-storm",
            "secret-not-forwarded",
        ])
    );
    assert!(reason(&report, "order-preserved").contains("--observe-jsonl"));
    assert!(reason(&report, "rejects-missing-auth").contains("not checked"));
    // Scenarios whose processing half cannot be checked warn instead of passing outright.
    let warned: BTreeSet<&str> = report
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Warned)
        .map(|s| s.id.as_str())
        .collect();
    for id in [
        "rejects-bad-header-secret",
        "rejects-bad-body-secret",
        "rejects-missing-auth",
        "rejects-bad-secret-in-batch",
        "unknown-event-accepted",
        "survives-disconnect-mid-body",
        "accepts-slow-upload",
    ] {
        assert!(
            warned.contains(id),
            "{id} should warn without an observe file"
        );
    }
    assert_eq!(report.exit_code(), 0, "skips and warnings are allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_fails_with_a_reason_naming_the_url() {
    // Bind a port, then free it: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/webhooks/passfort",
        listener.local_addr().unwrap()
    );
    drop(listener);
    let settings = Settings::new(&url, Secret::new(SECRET).unwrap()).only(["accepts-single"]);
    let report = run::run(settings).await.unwrap();
    assert_eq!(report.exit_code(), 1);
    assert!(reason(&report, "accepts-single").contains("cannot connect"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_within_the_limit_but_above_the_warning_threshold_warn_without_failing() {
    // Batches of 10 take at least 100 ms here; the warning threshold is 50 ms and the limits are
    // PassFort's own, so ack-latency warns (p99 is a batch) but passes.
    let receiver = start(Flaw::SlowOnBatches(Duration::from_millis(10))).await;
    let limits = Limits {
        warn_above: Duration::from_millis(50),
        latency_requests: 10,
        ..Limits::default()
    };
    let settings = Settings::new(&receiver.url, Secret::new(SECRET).unwrap())
        .observe(&receiver.observe)
        .limits(limits)
        .only(["ack-latency"]);
    let report = run::run(settings).await.unwrap();
    let latency = &report.scenarios[0];
    assert_eq!(latency.status, Status::Warned, "{}", latency.reason);
    assert!(latency.reason.contains("above 50 ms"), "{}", latency.reason);
    assert!(
        latency
            .details
            .iter()
            .any(|d| d.starts_with("batches of 10 (5)")),
        "{:?}",
        latency.details
    );
    assert_eq!(report.exit_code(), 0, "a warning is not a failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_to_a_forged_request_fails_even_when_nothing_is_processed() {
    let receiver = start(Flaw::Answers202EvenToForgeries).await;
    let settings = Settings::new(&receiver.url, Secret::new(SECRET).unwrap())
        .observe(&receiver.observe)
        .only([
            "rejects-bad-header-secret",
            "rejects-bad-body-secret",
            "rejects-missing-auth",
            "rejects-bad-secret-in-batch",
        ]);
    let report = run::run(settings).await.unwrap();
    for scenario in &report.scenarios {
        assert_eq!(scenario.status, Status::Failed, "{}", scenario.id);
        assert!(
            scenario.reason.contains("answered 202 Accepted to"),
            "{}: {}",
            scenario.id,
            scenario.reason
        );
    }
}

/// Runs `only` against a receiver with `flaw` on tokio's paused clock (the test must be
/// `start_paused`), so seconds of upload or answer time cost nothing.
async fn run_paused(flaw: Flaw, only: &str) -> RunReport {
    let receiver = start(flaw).await;
    let mut settings = Settings::new(&receiver.url, Secret::new(SECRET).unwrap())
        .observe(&receiver.observe)
        .only([only]);
    settings.clock = std::sync::Arc::new(TokioClock::new());
    run::run(settings).await.unwrap()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_receiver_that_remembers_the_id_of_a_cut_request_loses_the_whole_webhook() {
    let report = run_paused(Flaw::RemembersCutRequests, "survives-disconnect-mid-body").await;
    let scenario = &report.scenarios[0];
    assert_eq!(scenario.status, Status::Failed, "{}", scenario.reason);
    assert!(
        scenario.reason.contains("answered 200 but never processed")
            && scenario
                .reason
                .contains("mark an id as seen only once its webhook is stored"),
        "{}",
        scenario.reason
    );
    // The reference receiver, on the same clock, passes: the flaw is what fails it.
    let report = run_paused(Flaw::None, "survives-disconnect-mid-body").await;
    assert_eq!(
        report.scenarios[0].status,
        Status::Passed,
        "{}",
        report.scenarios[0].reason
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_receiver_that_times_out_a_body_after_1_s_fails_the_slow_upload() {
    let report = run_paused(
        Flaw::BodyReadTimeout(Duration::from_secs(1)),
        "accepts-slow-upload",
    )
    .await;
    let scenario = &report.scenarios[0];
    assert_eq!(scenario.status, Status::Failed, "{}", scenario.reason);
    assert!(
        scenario.reason.contains("408 Request Timeout")
            && scenario.reason.contains("body read timeout above 5 s"),
        "{}",
        scenario.reason
    );
    // A body timeout above the 3 s the body takes is fine.
    let report = run_paused(
        Flaw::BodyReadTimeout(Duration::from_secs(4)),
        "accepts-slow-upload",
    )
    .await;
    assert_eq!(
        report.scenarios[0].status,
        Status::Passed,
        "{}",
        report.scenarios[0].reason
    );
}

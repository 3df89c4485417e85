//! The harness against receivers broken in the ways that matter most to a compliance team, each
//! of which must fail the scenario that stands for its flaw: one that checks only the first
//! element's body secret in a batch, one that answers 200 to a forged request and processes it.
//! (`Flaw::LosesEvery`, a receiver that answers 200 and loses webhooks, has no test yet: its
//! run waits out every observe timeout and was not finished before this landed.)

mod receivers;

use std::collections::BTreeSet;

use passfort_harness::{run, Limits, RunReport, Secret, Settings, Status};
use receivers::{start, Flaw, SECRET};

async fn run_against(flaw: Flaw) -> RunReport {
    let receiver = start(flaw).await;
    let settings = Settings::new(&receiver.url, Secret::new(SECRET).unwrap())
        .observe(&receiver.observe)
        .limits(Limits::default());
    run::run(settings).await.unwrap()
}

/// Checks that each of `scenarios` ran and failed, and that the run as a whole fails.
fn assert_fails(report: &RunReport, scenarios: &[&str]) {
    let table = passfort_harness::report::table(report);
    let failed: BTreeSet<&str> = report
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Failed)
        .map(|s| s.id.as_str())
        .collect();
    for id in scenarios {
        assert!(failed.contains(id), "{id} did not fail:\n{table}");
    }
    assert_ne!(report.exit_code(), 0, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_checks_only_the_first_secret_of_a_batch_fails() {
    let report = run_against(Flaw::ChecksFirstSecretOnly).await;
    assert_fails(&report, &["rejects-bad-secret-in-batch"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_processes_what_it_answers_200_to_a_forger_fails() {
    let report = run_against(Flaw::ProcessesForgeries).await;
    assert_fails(
        &report,
        &[
            "rejects-bad-header-secret",
            "rejects-bad-body-secret",
            "rejects-missing-auth",
            "rejects-bad-secret-in-batch",
        ],
    );
}

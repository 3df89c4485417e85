//! The command line as a CI script uses it: a real `passfort-harness` process, its exit codes
//! (0 passed, 1 failed, 2 bad usage) and its report files.

mod receivers;

use std::process::{Command, Output};

use receivers::{start, Flaw, SECRET};

fn harness(args: &[&str], secret: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_passfort-harness"));
    command.args(args).env_remove("PASSFORT_WEBHOOK_SECRET");
    if let Some(secret) = secret {
        command.env("PASSFORT_WEBHOOK_SECRET", secret);
    }
    command
}

async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn list_names_every_scenario_with_its_spec_section() {
    let out = harness(&["list"], None).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    // The ids come from the library's registry: the binary must list every one of them.
    for id in passfort_harness::scenarios::ids() {
        assert!(stdout.lines().any(|l| l.starts_with(id)), "{id}\n{stdout}");
    }
    // Ids published by issue 15, a contract like every other id.
    for id in ["survives-disconnect-mid-body", "accepts-slow-upload"] {
        assert!(stdout.lines().any(|l| l == id), "{id}\n{stdout}");
    }
    assert!(stdout.contains('§'));
}

#[test]
fn bad_usage_exits_2() {
    let cases: [(&[&str], Option<&str>); 6] = [
        (&["run"], Some(SECRET)),
        (&["frobnicate"], Some(SECRET)),
        (&["run", "--target", "http://127.0.0.1:9/"], None),
        (
            &[
                "run",
                "--target",
                "http://127.0.0.1:9/",
                "--scenario",
                "no-such",
            ],
            Some(SECRET),
        ),
        (
            &[
                "run",
                "--target",
                "http://127.0.0.1:9/",
                "--report",
                "xml:a.xml",
            ],
            Some(SECRET),
        ),
        (&["run", "--target", "not a url"], Some(SECRET)),
    ];
    for (args, secret) in cases {
        let out = harness(args, secret).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).is_empty(), "{args:?} says nothing");
    }
}

#[test]
fn a_secret_that_cannot_be_a_header_is_bad_usage_and_is_not_echoed() {
    // `export PASSFORT_WEBHOOK_SECRET="$(cat secret.txt)"` style mistakes: a control character.
    let secret = "hunter2\u{1}tail";
    let out = harness(
        &[
            "run",
            "--target",
            "http://127.0.0.1:9/",
            "--scenario",
            "answers-exactly-200",
            "--no-progress",
        ],
        Some(secret),
    )
    .output()
    .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}{}", text(&out.stdout));
    assert!(stderr.contains("Authorization header"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!text(&out.stdout).contains("hunter2"));
}

#[test]
fn the_secret_comes_from_the_environment_not_a_flag() {
    let out = harness(
        &["run", "--target", "http://127.0.0.1:9/", "--secret", SECRET],
        Some(SECRET),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_run_exits_0_and_writes_every_report() {
    let receiver = start(Flaw::None).await;
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("reports/harness.xml");
    let json = dir.path().join("harness.json");
    let html = dir.path().join("harness.html");
    let args = [
        "run".to_owned(),
        "--target".to_owned(),
        receiver.url.clone(),
        "--observe-jsonl".to_owned(),
        receiver.observe.display().to_string(),
        "--scenario".to_owned(),
        "accepts-single".to_owned(),
        "--scenario".to_owned(),
        "dedup-redelivery".to_owned(),
        "--report".to_owned(),
        format!("junit:{}", junit.display()),
        "--report".to_owned(),
        format!("json:{}", json.display()),
        "--report".to_owned(),
        format!("html:{}", html.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = output(harness(&args, Some(SECRET))).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("2 passed, 0 warned, 0 failed, 0 skipped"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET) && !text(&out.stderr).contains(SECRET));

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 2);
    assert!(xml.contains("failures=\"0\""));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["passed"], 2);
    assert_eq!(report["scenarios"][1]["id"], "dedup-redelivery");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("meets every scenario run"));
    for written in [&xml, &page, &report.to_string()] {
        assert!(!written.contains(SECRET), "a report leaks the secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_exits_1_with_the_reason_in_the_table_and_the_junit_failure() {
    let receiver = start(Flaw::Answers202).await;
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("harness.xml");
    let junit_arg = format!("junit:{}", junit.display());
    let out = output(harness(
        &[
            "run",
            "--target",
            &receiver.url,
            "--scenario",
            "answers-exactly-200",
            "--report",
            &junit_arg,
        ],
        Some(SECRET),
    ))
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("answers-exactly-200"), "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("202 Accepted"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure message=\"a single webhook was answered 202 Accepted"));
}

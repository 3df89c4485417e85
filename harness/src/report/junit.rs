//! JUnit XML: the format CI systems (GitHub Actions test reporters, GitLab, Jenkins) turn into a
//! test list, so each scenario shows up as a test case with its reason.

use std::fmt::Write as _;

use super::{escape, seconds, RunReport};
use crate::scenario::Status;

/// The run as one JUnit test suite, a test case per scenario.
///
/// A warning is a passing test case whose warning is in its `system-out`; a skip is `<skipped>`.
pub fn junit(report: &RunReport) -> String {
    let tests = report.scenarios.len();
    let failures = report.count(Status::Failed);
    let skipped = report.count(Status::Skipped);
    let time = seconds(report.duration());
    let timestamp = humantime::format_rfc3339_seconds(report.started_at).to_string();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"passfort-harness\" tests=\"{tests}\" failures=\"{failures}\" \
         errors=\"0\" skipped=\"{skipped}\" time=\"{time}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"passfort-harness\" tests=\"{tests}\" failures=\"{failures}\" \
         errors=\"0\" skipped=\"{skipped}\" time=\"{time}\" timestamp=\"{}\">",
        escape::attribute(timestamp.trim_end_matches('Z'))
    );
    let _ = writeln!(out, "    <properties>");
    let _ = writeln!(
        out,
        "      <property name=\"target\" value=\"{}\"/>",
        escape::attribute(&report.target)
    );
    if let Some(path) = &report.observe_jsonl {
        let _ = writeln!(
            out,
            "      <property name=\"observe-jsonl\" value=\"{}\"/>",
            escape::attribute(&path.display().to_string())
        );
    }
    let _ = writeln!(out, "    </properties>");
    for scenario in &report.scenarios {
        let _ = write!(
            out,
            "    <testcase classname=\"passfort-harness\" name=\"{}\" time=\"{}\">",
            escape::attribute(&scenario.id),
            seconds(scenario.duration)
        );
        let mut body = String::new();
        match scenario.status {
            Status::Failed => {
                let _ = write!(
                    body,
                    "\n      <failure message=\"{}\" type=\"scenario-failed\">{}</failure>",
                    escape::attribute(&scenario.reason),
                    escape::content(&failure_text(scenario))
                );
            }
            Status::Skipped => {
                let _ = write!(
                    body,
                    "\n      <skipped message=\"{}\"/>",
                    escape::attribute(&scenario.reason)
                );
            }
            Status::Passed | Status::Warned => {}
        }
        let mut system_out = scenario.description.clone();
        if scenario.status == Status::Warned {
            system_out = format!("warning: {}\n{system_out}", scenario.reason);
        } else if scenario.status == Status::Passed {
            system_out = format!("{}\n{system_out}", scenario.reason);
        }
        for detail in &scenario.details {
            system_out.push('\n');
            system_out.push_str(detail);
        }
        let _ = write!(
            body,
            "\n      <system-out>{}</system-out>",
            escape::content(&system_out)
        );
        let _ = writeln!(out, "{body}\n    </testcase>");
    }
    let _ = writeln!(out, "  </testsuite>");
    let _ = writeln!(out, "</testsuites>");
    out
}

fn failure_text(scenario: &super::ScenarioReport) -> String {
    let mut text = format!("{}\n\n{}", scenario.reason, scenario.description);
    for detail in &scenario.details {
        text.push('\n');
        text.push_str(detail);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_test_case_per_scenario_with_failures_and_skips_marked() {
        let xml = junit(&crate::report::tests::sample());
        assert!(xml.starts_with("<?xml"));
        assert_eq!(xml.matches("<testcase ").count(), 4);
        assert_eq!(xml.matches("<failure ").count(), 1);
        assert_eq!(xml.matches("<skipped ").count(), 1);
        assert!(xml.contains("tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"1\""));
        assert!(xml.contains("name=\"answers-exactly-200\""));
        assert!(xml.contains("warning: p99 1.2 s is above 1 s"));
    }

    #[test]
    fn markup_in_reasons_is_escaped() {
        let xml = junit(&crate::report::tests::sample());
        assert!(xml.contains("answered 202 Accepted &quot;oops&quot; &amp; &lt;more&gt;"));
        assert!(!xml.contains("<more>"));
    }
}

//! The end table printed after a run: one row per scenario, the reason wrapped so that a failure
//! can be read whole in a terminal or a CI log.

use std::fmt::Write as _;

use super::RunReport;
use crate::scenario::Status;

const REASON_WIDTH: usize = 72;

/// The end table, followed by a one-line summary.
pub fn table(report: &RunReport) -> String {
    let id_width = report
        .scenarios
        .iter()
        .map(|s| s.id.len())
        .chain(["scenario".len()])
        .max()
        .unwrap_or(8);
    let time_width = 8;
    let result_width = 7;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<id_width$}  {:<result_width$}  {:>time_width$}  reason",
        "scenario", "result", "time"
    );
    let _ = writeln!(
        out,
        "{}  {}  {}  {}",
        "-".repeat(id_width),
        "-".repeat(result_width),
        "-".repeat(time_width),
        "-".repeat(REASON_WIDTH)
    );
    let indent = id_width + result_width + time_width + 6;
    for scenario in &report.scenarios {
        let lines = wrap(&scenario.reason, REASON_WIDTH);
        let time = format!("{:.2} s", scenario.duration.as_secs_f64());
        let _ = writeln!(
            out,
            "{:<id_width$}  {:<result_width$}  {:>time_width$}  {}",
            scenario.id,
            scenario.status.label(),
            time,
            lines.first().map(String::as_str).unwrap_or("")
        );
        for line in lines.iter().skip(1) {
            let _ = writeln!(out, "{:indent$}{line}", "");
        }
    }
    let _ = writeln!(
        out,
        "\n{} passed, {} warned, {} failed, {} skipped in {:.2} s against {}",
        report.count(Status::Passed),
        report.count(Status::Warned),
        report.count(Status::Failed),
        report.count(Status::Skipped),
        report.duration().as_secs_f64(),
        report.target
    );
    out
}

/// Greedy word wrap; a word longer than the width (a URL, an id) gets a line of its own.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_a_row_and_the_summary_counts() {
        let text = table(&crate::report::tests::sample());
        assert!(text.starts_with("scenario"));
        for id in ["accepts-single", "answers-exactly-200", "dedup-redelivery"] {
            assert!(text.lines().any(|l| l.starts_with(id)), "{text}");
        }
        assert!(text.contains("FAILED"));
        assert!(
            text.contains("1 passed, 1 warned, 1 failed, 1 skipped"),
            "{text}"
        );
    }

    #[test]
    fn long_reasons_wrap_without_losing_words() {
        let reason = "word ".repeat(50);
        let lines = wrap(&reason, 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 20));
        assert_eq!(lines.join(" ").split(' ').count(), 50);
    }
}

//! What a run found, for people (the end table, the HTML page) and machines (JUnit XML for CI
//! systems, JSON for scripts).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::scenario::Status;

mod escape;
mod html;
mod junit;
mod table;

pub use html::html;
pub use junit::junit;
pub use table::table;

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioReport {
    /// Its id.
    pub id: String,
    /// What it checks, citing the spec.
    pub description: String,
    /// How it ended.
    pub status: Status,
    /// Why (or, for a pass, what was shown).
    pub reason: String,
    /// Measurements and facts.
    pub details: Vec<String>,
    /// How long it took.
    pub duration: Duration,
}

/// A whole run's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The URL under test.
    pub target: String,
    /// The observe file, when one was given.
    pub observe_jsonl: Option<PathBuf>,
    /// When the run began.
    pub started_at: SystemTime,
    /// Each scenario, in run order.
    pub scenarios: Vec<ScenarioReport>,
}

impl RunReport {
    /// How many scenarios ended with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.scenarios
            .iter()
            .filter(|scenario| scenario.status == status)
            .count()
    }

    /// The whole run's duration.
    pub fn duration(&self) -> Duration {
        self.scenarios
            .iter()
            .map(|scenario| scenario.duration)
            .sum()
    }

    /// The run as JSON: stable field names, durations in seconds, times in RFC 3339.
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Json<'a> {
            target: &'a str,
            observe_jsonl: Option<String>,
            started_at: String,
            duration_secs: f64,
            passed: usize,
            warned: usize,
            failed: usize,
            skipped: usize,
            scenarios: Vec<JsonScenario<'a>>,
        }
        #[derive(Serialize)]
        struct JsonScenario<'a> {
            id: &'a str,
            description: &'a str,
            status: Status,
            reason: &'a str,
            details: &'a [String],
            duration_secs: f64,
        }
        let json = Json {
            target: &self.target,
            observe_jsonl: self
                .observe_jsonl
                .as_ref()
                .map(|path| path.display().to_string()),
            started_at: humantime::format_rfc3339_seconds(self.started_at).to_string(),
            duration_secs: self.duration().as_secs_f64(),
            passed: self.count(Status::Passed),
            warned: self.count(Status::Warned),
            failed: self.count(Status::Failed),
            skipped: self.count(Status::Skipped),
            scenarios: self
                .scenarios
                .iter()
                .map(|s| JsonScenario {
                    id: &s.id,
                    description: &s.description,
                    status: s.status,
                    reason: &s.reason,
                    details: &s.details,
                    duration_secs: s.duration.as_secs_f64(),
                })
                .collect(),
        };
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string_pretty(&json).unwrap_or_default()
    }
}

/// A report format given with `--report KIND:PATH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JUnit XML, which CI systems show as test results.
    Junit,
    /// JSON, for scripts.
    Json,
    /// A self-contained HTML page, for people.
    Html,
}

/// `--report KIND:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSpec {
    /// The format.
    pub kind: Kind,
    /// Where to write it.
    pub path: PathBuf,
}

/// `--report` was given something other than `junit:PATH`, `json:PATH` or `html:PATH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not KIND:PATH with KIND one of junit, json, html (e.g. junit:target/harness.xml)"
)]
pub struct BadReportSpec(pub String);

impl FromStr for ReportSpec {
    type Err = BadReportSpec;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadReportSpec(text.to_owned());
        let (kind, path) = text.split_once(':').ok_or_else(bad)?;
        let kind = match kind {
            "junit" => Kind::Junit,
            "json" => Kind::Json,
            "html" => Kind::Html,
            _ => return Err(bad()),
        };
        if path.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            kind,
            path: PathBuf::from(path),
        })
    }
}

/// A report could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the report {path}: {source}")]
pub struct WriteError {
    /// Where it was to go.
    pub path: PathBuf,
    /// Why it did not.
    pub source: std::io::Error,
}

impl ReportSpec {
    /// Renders `report` in this format.
    pub fn render(&self, report: &RunReport) -> String {
        match self.kind {
            Kind::Junit => junit(report),
            Kind::Json => report.json(),
            Kind::Html => html(report),
        }
    }

    /// Writes `report` to this spec's path, creating its directory.
    pub fn write(&self, report: &RunReport) -> Result<(), WriteError> {
        let error = |source| WriteError {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        std::fs::write(&self.path, self.render(report)).map_err(error)
    }
}

/// Seconds with millisecond precision, as JUnit and people expect.
fn seconds(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64())
}

/// Where a report path points, shown after a run.
pub fn describe_written(spec: &ReportSpec) -> String {
    let kind = match spec.kind {
        Kind::Junit => "JUnit XML",
        Kind::Json => "JSON",
        Kind::Html => "HTML",
    };
    format!("{kind} report: {}", Path::new(&spec.path).display())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> RunReport {
        RunReport {
            target: "http://127.0.0.1:8080/webhooks/passfort".into(),
            observe_jsonl: Some("processed.jsonl".into()),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_643_813_829),
            scenarios: vec![
                ScenarioReport {
                    id: "accepts-single".into(),
                    description: "one of each event type (§2)".into(),
                    status: Status::Passed,
                    reason: "11 event types answered 200".into(),
                    details: vec!["slowest: 4 ms".into()],
                    duration: Duration::from_millis(42),
                },
                ScenarioReport {
                    id: "answers-exactly-200".into(),
                    description: "200 & nothing else <§1>".into(),
                    status: Status::Failed,
                    reason: "answered 202 Accepted \"oops\" & <more>".into(),
                    details: vec![],
                    duration: Duration::from_millis(7),
                },
                ScenarioReport {
                    id: "dedup-redelivery".into(),
                    description: "each id once (§4)".into(),
                    status: Status::Skipped,
                    reason: "needs --observe-jsonl".into(),
                    details: vec![],
                    duration: Duration::ZERO,
                },
                ScenarioReport {
                    id: "ack-latency".into(),
                    description: "p50/p99 (§1)".into(),
                    status: Status::Warned,
                    reason: "p99 1.2 s is above 1 s".into(),
                    details: vec!["p50 3 ms".into()],
                    duration: Duration::from_millis(1500),
                },
            ],
        }
    }

    #[test]
    fn report_specs_parse_and_bad_ones_are_refused() {
        assert_eq!(
            "junit:out/h.xml".parse::<ReportSpec>().unwrap(),
            ReportSpec {
                kind: Kind::Junit,
                path: "out/h.xml".into()
            }
        );
        assert_eq!(
            "json:r.json".parse::<ReportSpec>().unwrap().kind,
            Kind::Json
        );
        assert_eq!(
            "html:r.html".parse::<ReportSpec>().unwrap().kind,
            Kind::Html
        );
        for bad in ["junit", "xml:a", "junit:", ":a"] {
            assert!(bad.parse::<ReportSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn json_counts_and_names_every_scenario() {
        let json: serde_json::Value = serde_json::from_str(&sample().json()).unwrap();
        assert_eq!(json["failed"], 1);
        assert_eq!(json["skipped"], 1);
        assert_eq!(json["warned"], 1);
        assert_eq!(json["passed"], 1);
        assert_eq!(json["scenarios"][1]["status"], "failed");
        assert_eq!(json["scenarios"][1]["id"], "answers-exactly-200");
        assert_eq!(json["started_at"], "2022-02-02T14:57:09Z");
    }

    #[test]
    fn writing_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let spec: ReportSpec = format!("json:{}/a/b/r.json", dir.path().display())
            .parse()
            .unwrap();
        spec.write(&sample()).unwrap();
        assert!(dir.path().join("a/b/r.json").exists());
    }
}

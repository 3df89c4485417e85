//! `passfort-harness`: tells a QA engineer whether a webhook receiver — ours, or one an
//! integrator wrote in any language — meets PassFort's contract before go-live: that it will not
//! lose, double or stall PassFort webhooks.
//!
//! The harness is black-box. It speaks HTTP to the target exactly as PassFort would
//! ([`target`]), and optionally reads the file the target appends one JSON object per processed
//! webhook to ([`observe`]). Each named [`scenario`] (one file per scenario in [`scenarios`])
//! asks one question grounded in a section of the spec; [`run`] runs them and [`report`] renders
//! the answers as an end table, JUnit XML, JSON or an HTML page.
//!
//! Other crates' tests run scenarios in-process:
//!
//! ```no_run
//! # async fn demo() -> Result<(), passfort_harness::run::RunError> {
//! use passfort_harness::{run, Secret, Settings};
//!
//! let secret = Secret::new("the-shared-secret").expect("not empty");
//! let settings = Settings::new("http://127.0.0.1:8080/webhooks/passfort", secret)
//!     .observe("processed.jsonl")
//!     .only(["accepts-single", "dedup-redelivery"]);
//! let report = run::run(settings).await?;
//! assert_eq!(report.exit_code(), 0, "{}", passfort_harness::report::table(&report));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod observe;
pub mod progress;
pub mod report;
pub mod run;
pub mod scenario;
pub mod scenarios;
pub mod target;
pub mod webhook;

pub use report::{ReportSpec, RunReport};
pub use run::Settings;
pub use scenario::{Limits, Outcome, Scenario, Status};
pub use target::Secret;

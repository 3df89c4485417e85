//! Proves that the receiver (`passfort-receiver`) and the simulator of PassFort's sending side
//! (`passfort-sender-sim`) meet PassFort's webhook contract together, whatever the network and the
//! process do.
//!
//! The receiver and the simulator never depend on each other; this crate is where they meet.
//! A generated [`case::Case`] (a seeded stream of events of every type, batching on or off, and
//! a schedule of faults) is played by [`run::play`]: the simulator's engine on a `VirtualClock`
//! drives the receiver's `tower::Service` (an axum `Router` over a real SQLite file, the same
//! clock given to receiver and worker) through the simulator's in-process transport and its
//! fault injection, while a hostile client sends forged requests alongside. [`property::check`]
//! then states the six guarantees of issue 4 over what was observed, and explains any breach
//! with the attempt log.
//!
//! | module | concept |
//! |---|---|
//! | [`case`] | the generated run: events, handler behaviour, faults, forgeries |
//! | [`deployment`] | the receiver "process" in process: receiver + worker on one database file, crash and restart |
//! | [`faulty_store`] | the store faults: slow past the time budget, unavailable |
//! | [`wire`] | the transport between simulator and receiver that records every real answer |
//! | [`handler`] | the recording handler: every input, every outcome, planned failures and panics |
//! | [`run`] | plays a case and records everything |
//! | [`property`] | the six properties, and the failure report |
//! | [`leak`] | looks for secrets in stored bytes, log lines and handler inputs |
//! | [`log_capture`] | the process-wide tracing subscriber whose output [`leak`] reads |
//! | [`fixture`] | the golden fixtures of `tests/fixtures/` and JSON shape comparison |
//! | [`power_cut`] | a FUSE filesystem that forgets what was not synced when the test cuts the power |
//! | [`process`] | the real `passfort-receiver` binary: build, spawn, readiness, SIGKILL |

#![warn(missing_docs)]

pub mod case;
pub mod deployment;
pub mod faulty_store;
pub mod fixture;
pub mod handler;
pub mod leak;
pub mod log_capture;
#[cfg(target_os = "linux")]
pub mod power_cut;
pub mod process;
pub mod property;
pub mod run;
pub mod wire;

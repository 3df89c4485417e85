//! A faithful, deterministic model of how PassFort sends webhooks.
//!
//! PassFort's sending side, reproduced rule by rule from the project's reference, `docs/passfort-webhooks.md`:
//! one ordered queue per account, head-of-line blocking, batches of up to 100 about every
//! 0–10 s, success only on HTTP 200 inside 5 s (batched) / 10 s (unbatched), back-off of
//! 30 s × 2^(n−1) for twelve failures and then daily, the Retry button, the status queue, and the
//! loss on disable/re-enable. Every inferred fact is a setting of [`AccountSettings`].
//!
//! It runs on a [`VirtualClock`](clock::VirtualClock), where time jumps to the next event (a day of
//! back-off costs nothing and the same seed gives the same attempt log byte for byte), or on the
//! real clock (the `passfort-sim` binary).
//!
//! ```
//! use passfort_sender_sim::prelude::*;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let clock = VirtualClock::new();
//! // A receiver that is down for the first two attempts.
//! let receiver = FnTransport(|_request| Ok(Answer::status(http::StatusCode::OK)));
//! let faults = FaultyTransport::new(receiver, clock.clone());
//! faults.script([Fault::Status(503), Fault::Refuse]);
//! let settings = AccountSettings::new("http://receiver.test/webhooks", Secret::new("s3cret"));
//! let engine = Engine::new(settings, clock.clone(), faults.clone()).unwrap();
//!
//! let mut generator = Generator::new(7);
//! engine.enqueue(generator.webhook(EventType::CheckCompleted, clock.now()));
//! assert_eq!(engine.run_until_empty(Duration::from_secs(3600)).await, RunOutcome::Emptied);
//!
//! let log = engine.attempts();
//! assert_eq!(log.len(), 3);
//! // 30 s after the first failure, 60 s after the second.
//! assert_eq!(log[2].at.duration_since(log[0].at).unwrap(), Duration::from_secs(90));
//! # }
//! ```

#![warn(missing_docs)]

pub mod account;
pub mod attempt;
pub mod backoff;
pub mod clock;
pub mod engine;
pub mod event;
#[cfg(feature = "sandbox")]
pub mod sandbox;
#[cfg(feature = "send")]
pub mod send;
pub mod snapshot;
pub mod status;
pub mod transport;

pub use account::{AccountSettings, BatchShape, EnabledEvents, Secret};
pub use attempt::{Attempt, Outcome};
pub use backoff::BackoffSchedule;
pub use clock::SimClock;
pub use engine::{Engine, EngineError, EngineOptions, Enqueued, RunOutcome};
pub use event::{EventType, Generator, IdMinter, IdStyle, Webhook};
pub use snapshot::{CadencePosition, DeliverySnapshot, DeliveryTotals, SnapshotError};
pub use status::{QueueState, RecentFailure, StatusQueue};
pub use transport::{
    Answer, Fault, FaultyTransport, FnTransport, HttpTransport, ServiceTransport, Transport,
    TransportError,
};

/// Everything a test or a tool usually needs, in one `use`.
pub mod prelude {
    pub use crate::account::{AccountSettings, BatchShape, EnabledEvents, Secret};
    pub use crate::attempt::{Attempt, Outcome};
    pub use crate::backoff::BackoffSchedule;
    pub use crate::clock::{Clock, SharedClock, SimClock, SystemClock, VirtualClock};
    pub use crate::engine::{Engine, EngineOptions, Enqueued, RunOutcome};
    pub use crate::event::{EventType, Generator, Webhook};
    pub use crate::snapshot::DeliverySnapshot;
    pub use crate::status::{QueueState, StatusQueue};
    pub use crate::transport::{
        Answer, Fault, FaultyTransport, FnTransport, HttpTransport, ServiceTransport, Transport,
        TransportError,
    };
}

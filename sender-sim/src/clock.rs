//! The engine's time: [`passfort_clock`], plus the one thing the engine must know about it —
//! whether it may move time itself.

use std::sync::Arc;
use std::time::SystemTime;

pub use passfort_clock::{timeout, Clock, Elapsed, SharedClock, SystemClock, VirtualClock};

/// The clock an [`crate::engine::Engine`] runs on.
///
/// On [`SimClock::Virtual`] the engine is a discrete-event simulation: it jumps time to the next
/// due send instead of sleeping, so a day of back-off costs nothing. On [`SimClock::Real`] it
/// waits like PassFort does.
#[derive(Debug, Clone)]
pub enum SimClock {
    /// Driven by the engine (and by whoever else shares it, e.g. an in-process receiver).
    Virtual(VirtualClock),
    /// Any other clock; the engine only waits on it.
    Real(SharedClock),
}

impl SimClock {
    /// The system clock.
    pub fn system() -> Self {
        Self::Real(Arc::new(SystemClock))
    }

    /// The clock as the shared trait object other components take.
    pub fn shared(&self) -> SharedClock {
        match self {
            Self::Virtual(clock) => Arc::new(clock.clone()),
            Self::Real(clock) => Arc::clone(clock),
        }
    }

    /// Now on this clock.
    pub fn now(&self) -> SystemTime {
        match self {
            Self::Virtual(clock) => clock.now(),
            Self::Real(clock) => clock.now(),
        }
    }

    /// Whether the engine drives this clock.
    pub fn is_virtual(&self) -> bool {
        matches!(self, Self::Virtual(_))
    }
}

impl From<VirtualClock> for SimClock {
    fn from(clock: VirtualClock) -> Self {
        Self::Virtual(clock)
    }
}

impl From<SystemClock> for SimClock {
    fn from(clock: SystemClock) -> Self {
        Self::Real(Arc::new(clock))
    }
}

impl From<SharedClock> for SimClock {
    fn from(clock: SharedClock) -> Self {
        Self::Real(clock)
    }
}

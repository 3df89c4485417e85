//! The delivery state of an account's queue, as data: what PassFort keeps across anything (the
//! queue, the failed attempts at its head, the next retry time) so a simulator that stops and
//! starts again carries on where it was instead of retrying at once from a clean slate.
//!
//! [`Engine::snapshot`](crate::Engine::snapshot) takes one, [`Engine::restore`](crate::Engine::restore)
//! puts it back. Restoring into an engine with the same settings, clock time and transport, then
//! continuing, gives the same attempt log as never stopping.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::event::Webhook;
use crate::status::RecentFailure;

/// Why [`Engine::restore`](crate::Engine::restore) refused a snapshot; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The cadence position is not 64 hex digits and a decimal word position.
    #[error("invalid batch-cadence position in the snapshot: {0:?}")]
    InvalidCadence(CadencePosition),
}

/// One account's delivery state at a moment. Settings are not part of it: they belong to
/// whoever configures the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverySnapshot {
    /// The queue, head first, without secrets. Left out of the JSON when empty, so a caller that
    /// stores the queue elsewhere can take it out and put it back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<Webhook>,
    /// Consecutive failed attempts at the head: the next attempt's `try_number` is one more, and
    /// the next back-off counts on from it.
    pub failed_attempts: u32,
    /// When the head may be sent; `None` while nothing is waiting to be sent. A time already
    /// past when restored means "due at once".
    #[serde(with = "exact_time_opt")]
    pub next_send: Option<SystemTime>,
    /// "Last processed": when a callback was last delivered.
    #[serde(with = "exact_time_opt")]
    pub last_processed: Option<SystemTime>,
    /// "Recent failures" still waiting in the queue, most recent first.
    #[serde(default, with = "exact_failures")]
    pub recent_failures: Vec<RecentFailure>,
    /// The running totals of the status queue; `attempts` also numbers the next log entry.
    #[serde(default)]
    pub totals: DeliveryTotals,
    /// Where the batch-cadence jitter stands, so batches keep their seeded spacing. `None`
    /// leaves the restoring engine's own jitter (from its seed) in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence: Option<CadencePosition>,
}

/// The status queue's running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryTotals {
    /// Webhooks queued so far.
    pub enqueued: u64,
    /// Webhooks delivered so far.
    pub delivered: u64,
    /// Requests made so far.
    pub attempts: u64,
    /// Requests that failed so far.
    pub failed_attempts: u64,
    /// Webhooks dropped by a disable and re-enable.
    pub dropped: u64,
}

/// The position of the seeded batch-cadence generator: its seed and how far it has been read.
/// Both as text, so no JSON reader loses precision on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CadencePosition {
    /// The 32-byte seed, as 64 hex digits.
    pub seed: String,
    /// How many 32-bit words have been drawn, in decimal.
    pub word_pos: String,
}

impl CadencePosition {
    pub(crate) fn new(seed: [u8; 32], word_pos: u128) -> Self {
        Self {
            seed: seed.iter().map(|b| format!("{b:02x}")).collect(),
            word_pos: word_pos.to_string(),
        }
    }

    /// The seed and position, or `None` when the text is not what [`CadencePosition::new`]
    /// writes.
    pub(crate) fn parse(&self) -> Option<([u8; 32], u128)> {
        if self.seed.len() != 64 || !self.seed.is_ascii() {
            return None;
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).ok()?;
        }
        let word_pos = self.word_pos.parse().ok()?;
        Some((seed, word_pos))
    }
}

/// Times in a snapshot keep every nanosecond (RFC 3339), so a restored engine is due at exactly
/// the instant the stopped one was: the attempt log stays identical on a virtual clock.
mod exact_time_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(at: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_some(&humantime::format_rfc3339_nanos(*at).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        raw.map(|raw| humantime::parse_rfc3339(&raw).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// [`RecentFailure`]s with their `failed_at` to the nanosecond (the status queue's own JSON
/// rounds it to microseconds, which would make a restored status queue differ).
mod exact_failures {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::SystemTime;

    use crate::attempt::Outcome;
    use crate::event::EventType;
    use crate::status::RecentFailure;

    #[derive(Serialize, Deserialize)]
    struct Exact {
        webhook_id: String,
        event: EventType,
        timestamp: u64,
        #[serde(with = "super::exact_time_opt")]
        failed_at: Option<SystemTime>,
        outcome: Outcome,
        reason: String,
    }

    pub fn serialize<S: Serializer>(failures: &[RecentFailure], s: S) -> Result<S::Ok, S::Error> {
        let exact: Vec<Exact> = failures
            .iter()
            .map(|f| Exact {
                webhook_id: f.webhook_id.clone(),
                event: f.event.clone(),
                timestamp: f.timestamp,
                failed_at: Some(f.failed_at),
                outcome: f.outcome,
                reason: f.reason.clone(),
            })
            .collect();
        exact.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RecentFailure>, D::Error> {
        let exact = Vec::<Exact>::deserialize(d)?;
        exact
            .into_iter()
            .map(|e| {
                Ok(RecentFailure {
                    webhook_id: e.webhook_id,
                    event: e.event,
                    timestamp: e.timestamp,
                    failed_at: e
                        .failed_at
                        .ok_or_else(|| serde::de::Error::missing_field("failed_at"))?,
                    outcome: e.outcome,
                    reason: e.reason,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_position_round_trips_and_rejects_garbage() {
        let seed: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
        let position = CadencePosition::new(seed, u128::MAX - 3);
        assert_eq!(position.parse(), Some((seed, u128::MAX - 3)));
        let bad = CadencePosition {
            seed: "zz".repeat(32),
            word_pos: "1".into(),
        };
        assert_eq!(bad.parse(), None);
        let short = CadencePosition {
            seed: "00".into(),
            word_pos: "1".into(),
        };
        assert_eq!(short.parse(), None);
    }
}

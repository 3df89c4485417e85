//! The attempt log: every request the engine made, as a record that can be written as JSON
//! lines and compared byte for byte between runs.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How an attempt ended. Only [`Outcome::Delivered`] takes webhooks off the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// HTTP 200, inside the answer limit.
    Delivered,
    /// An answer other than exactly 200 (a 202 or 204 too).
    Rejected,
    /// The connection was refused.
    Refused,
    /// The connection broke before the answer.
    Dropped,
    /// No answer inside the limit.
    TimedOut,
    /// An answer came, but after the limit had passed on the engine's clock.
    Late,
    /// The request could not be built or sent for another reason.
    Error,
}

impl Outcome {
    /// Whether the webhooks left the queue.
    pub fn is_delivered(self) -> bool {
        self == Self::Delivered
    }
}

/// One request the engine made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based position in this engine's log.
    pub seq: u64,
    /// When the request was sent (engine clock).
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// Whether this was a batched request.
    pub batched: bool,
    /// The webhooks in the request, in queue order.
    pub webhook_ids: Vec<String>,
    /// Which attempt at this head of the queue this was (1 = first try).
    pub try_number: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// Engine-clock time from sending to the answer (or to giving up), in milliseconds.
    pub latency_ms: f64,
    /// When the head will be tried again, after a failure.
    #[serde(with = "rfc3339_opt")]
    pub next_retry: Option<SystemTime>,
}

impl Attempt {
    /// The latency as a duration.
    pub fn latency(&self) -> Duration {
        Duration::from_secs_f64(self.latency_ms / 1000.0)
    }

    /// One JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Writes `attempts` as JSON lines.
    pub fn write_json_lines<'a, W: Write>(
        mut out: W,
        attempts: impl IntoIterator<Item = &'a Attempt>,
    ) -> io::Result<()> {
        for attempt in attempts {
            serde_json::to_writer(&mut out, attempt)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

/// Formats an instant as RFC 3339 with microseconds, the log's time format.
pub fn format_time(at: SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

pub(crate) mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let raw = String::deserialize(d)?;
        humantime::parse_rfc3339(&raw).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(at: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_some(&super::format_time(*at)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        raw.map(|raw| humantime::parse_rfc3339(&raw).map_err(serde::de::Error::custom))
            .transpose()
    }
}

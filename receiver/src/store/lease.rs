//! Whether a worker may take the head of the queue (or of a lane) now: the rule both backends
//! apply to the row they read, written once.

use super::row::{from_millis, StoredRow};
use super::{Lease, State, StoreError};

/// Why `worker` may not take this open webhook at `now_ms`, or `None` if it may: it is leased
/// to another worker whose lease has not expired ([`Lease::Busy`]), or it waits for a retry
/// ([`Lease::NotBefore`]). A worker may take over its own unexpired lease (the same name after a
/// restart). The row holds `state`, `lease_owner`, `lease_until_ms` and `next_attempt_at_ms`.
pub(super) fn blocked(
    head: &impl StoredRow,
    worker: &str,
    now_ms: i64,
) -> Result<Option<Lease>, StoreError> {
    if head.text("state")? == State::Leased.as_str() {
        let owner = head.maybe_text("lease_owner")?.unwrap_or_default();
        let until = head.maybe_int("lease_until_ms")?.unwrap_or(0);
        if owner != worker && until > now_ms {
            return Ok(Some(Lease::Busy {
                until: from_millis(until),
                owner,
            }));
        }
    } else if let Some(next) = head.maybe_int("next_attempt_at_ms")? {
        if next > now_ms {
            return Ok(Some(Lease::NotBefore(from_millis(next))));
        }
    }
    Ok(None)
}

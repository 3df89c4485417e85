//! Sorting a request's webhooks into stored, duplicate and conflict: the rule both backends
//! apply once their insert has said which ids it stored, written once.

use super::{InsertOutcome, StoreError};
use crate::webhook::Webhook;
use std::collections::HashMap;

/// The outcome of a request, in body order. `inserted(id)` says whether this request's insert
/// stored `id`; `stored_before` holds the body already stored under every other id of the
/// request (`None` when retention erased it: a duplicate, there is nothing to compare). An id
/// seen earlier in the same body is compared with that first copy. Same content: a duplicate;
/// different content: a conflict (the first version wins).
pub(super) fn sort_outcome(
    webhooks: &[Webhook],
    inserted: impl Fn(&str) -> bool,
    stored_before: &HashMap<String, Option<Webhook>>,
) -> Result<InsertOutcome, StoreError> {
    let mut outcome = InsertOutcome::default();
    let mut seen: HashMap<&str, &Webhook> = HashMap::new();
    for webhook in webhooks {
        let id = webhook.id.as_str();
        let first = match seen.get(id) {
            Some(first) => *first,
            None => {
                seen.insert(id, webhook);
                if inserted(id) {
                    outcome.stored.push(webhook.id.clone());
                    continue;
                }
                let stored = stored_before.get(id).ok_or_else(|| {
                    StoreError::Corrupt(format!("webhook {id} was neither inserted nor found"))
                })?;
                match stored {
                    Some(original) => original,
                    None => {
                        outcome.duplicates.push(webhook.id.clone());
                        continue;
                    }
                }
            }
        };
        if first.same_content(webhook) {
            outcome.duplicates.push(webhook.id.clone());
        } else {
            outcome.conflicts.push(webhook.id.clone());
        }
    }
    Ok(outcome)
}

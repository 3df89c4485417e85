//! The account's queue and everything the engine keeps about it: the webhooks waiting in order,
//! the failures at the head, when the head is due, and the totals. One [`State`] sits behind the
//! engine's lock; every method here runs with that lock held.

use std::collections::VecDeque;
use std::time::SystemTime;

use http::Uri;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{EngineOptions, Enqueued};
use crate::account::AccountSettings;
use crate::attempt::Attempt;
use crate::event::Webhook;
use crate::status::{QueueState, RecentFailure, StatusQueue};
use passfort_clock::after;

/// A queued webhook and its place in the account's sequence (which never repeats, so a recent
/// failure can tell whether its webhook still waits).
pub(super) struct Queued {
    pub(super) seq: u64,
    pub(super) webhook: Webhook,
}

pub(super) struct State {
    pub(super) settings: AccountSettings,
    /// The endpoint, parsed and checked.
    pub(super) uri: Uri,
    pub(super) queue: VecDeque<Queued>,
    pub(super) next_seq: u64,
    /// Consecutive failed attempts at the current head.
    pub(super) failures: u32,
    /// When the head may be sent; `None` while there is nothing to send.
    pub(super) next_send: Option<SystemTime>,
    pub(super) in_flight: bool,
    /// Retry was pressed while a request was in flight: if it fails, send again at once.
    pub(super) retry_after_flight: bool,
    /// Bumped when the queue is dropped, so an answer to a request for a dropped queue changes
    /// nothing.
    pub(super) generation: u64,
    pub(super) disabled_since_enable: bool,
    /// The batch cadence's jitter.
    pub(super) rng: ChaCha8Rng,
    pub(super) last_processed: Option<SystemTime>,
    /// Most recent first; `seq` tells whether the webhook is still waiting.
    pub(super) recent_failures: VecDeque<(u64, RecentFailure)>,
    pub(super) enqueued: u64,
    pub(super) delivered: u64,
    pub(super) attempts: u64,
    pub(super) failed_attempts_total: u64,
    pub(super) dropped: u64,
    pub(super) log: Vec<Attempt>,
    pub(super) keep_log: bool,
}

impl State {
    /// An empty queue for an account whose settings were checked (`uri` is their endpoint).
    pub(super) fn new(settings: AccountSettings, uri: Uri, options: &EngineOptions) -> Self {
        State {
            settings,
            uri,
            queue: VecDeque::new(),
            next_seq: 0,
            failures: 0,
            next_send: None,
            in_flight: false,
            retry_after_flight: false,
            generation: 0,
            disabled_since_enable: false,
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            last_processed: None,
            recent_failures: VecDeque::new(),
            enqueued: 0,
            delivered: 0,
            attempts: 0,
            failed_attempts_total: 0,
            dropped: 0,
            log: Vec::new(),
            keep_log: options.keep_log,
        }
    }

    pub(super) fn head_seq(&self) -> u64 {
        self.queue.front().map(|q| q.seq).unwrap_or(self.next_seq)
    }

    /// When the head may be sent, if anything can be sent at all.
    pub(super) fn due(&self) -> Option<SystemTime> {
        if !self.settings.enabled || self.in_flight || self.queue.is_empty() {
            None
        } else {
            self.next_send
        }
    }

    /// Queues `webhook` at the back if webhooks and its event are enabled; the first webhook of
    /// an idle queue is due after one batch cadence.
    pub(super) fn push(&mut self, webhook: Webhook, now: SystemTime) -> Enqueued {
        if !self.settings.enabled {
            return Enqueued::Disabled;
        }
        if !self.settings.enabled_events.contains(&webhook.event) {
            return Enqueued::EventNotEnabled;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(Queued { seq, webhook });
        self.enqueued = self.enqueued.saturating_add(1);
        if self.next_send.is_none() && !self.in_flight {
            let wait = self.cadence();
            self.next_send = Some(after(now, wait));
        }
        Enqueued::Queued
    }

    /// PassFort's loss on disable/re-enable: the whole queue goes, and a request still in flight
    /// for it changes nothing when it ends.
    pub(super) fn drop_queue(&mut self) {
        self.dropped = self.dropped.saturating_add(self.queue.len() as u64);
        self.queue.clear();
        self.generation += 1;
        self.failures = 0;
        self.next_send = None;
        self.recent_failures.clear();
    }

    /// "Recent failures" of webhooks still waiting, most recent first.
    pub(super) fn waiting_failures(&self) -> Vec<RecentFailure> {
        let head = self.head_seq();
        self.recent_failures
            .iter()
            .filter(|(seq, _)| *seq >= head)
            .map(|(_, failure)| failure.clone())
            .collect()
    }

    /// The status queue as PassFort shows it at `as_of`.
    pub(super) fn status(&self, as_of: SystemTime) -> StatusQueue {
        let waiting = self.queue.len();
        let stalled = waiting > 0 && (self.failures > 0 || !self.settings.enabled);
        let queue = if waiting == 0 {
            QueueState::Empty
        } else if stalled {
            QueueState::Stalled
        } else {
            QueueState::Waiting(waiting)
        };
        StatusQueue {
            as_of,
            queue,
            waiting,
            enabled: self.settings.enabled,
            last_processed: self.last_processed,
            failed_attempts: self.failures,
            next_retry: if stalled { self.next_send } else { None },
            recent_failures: self.waiting_failures(),
            enqueued: self.enqueued,
            delivered: self.delivered,
            attempts: self.attempts,
            failed_attempts_total: self.failed_attempts_total,
            dropped: self.dropped,
        }
    }
}

//! One generated run: which webhooks PassFort queues and when, how the integrator's handler
//! behaves on each, and what goes wrong on every attempt.
//!
//! Everything here derives `Debug` in a form meant to be read: when a property fails, proptest
//! shrinks the case and prints it, so the minimal case reads like a script
//! ("turn 0: queue a CHECK_COMPLETED, the answer is lost; turn 1: …").

use passfort_sender_sim::EventType;
use proptest::prelude::*;
use std::fmt;

/// A generated run.
#[derive(Clone)]
pub struct Case {
    /// Seeds the simulator's generator (webhook ids and data) and its batch cadence.
    pub seed: u64,
    /// `None`: one webhook per request (10 s limit). `Some(n)`: batches of at most `n` (5 s).
    pub batching: Option<usize>,
    /// What happens, turn by turn. A turn with nothing queued makes no attempt.
    pub turns: Vec<Turn>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Case {{")?;
        writeln!(f, "  seed: {},", self.seed)?;
        match self.batching {
            None => writeln!(f, "  batching: off,")?,
            Some(n) => writeln!(f, "  batching: at most {n} per request,")?,
        }
        for (i, turn) in self.turns.iter().enumerate() {
            writeln!(f, "  turn {i}: {turn:?}")?;
        }
        write!(f, "}}")
    }
}

/// One turn: queue some webhooks, let a forger try its luck, make one attempt under `fault`
/// (none when nothing is queued), maybe press Retry, let the worker take a few steps.
#[derive(Clone)]
pub struct Turn {
    /// Webhooks PassFort queues before this turn's attempt.
    pub queue: Vec<Event>,
    /// A forged request sent to the receiver just before the attempt.
    pub forgery: Option<Forgery>,
    /// What goes wrong with this turn's attempt.
    pub fault: Fault,
    /// If the attempt failed: advance to the middle of the back-off and press Retry.
    pub press_retry: bool,
    /// How many webhooks the worker may hand on after the attempt (so it lags behind).
    pub worker_steps: u8,
}

impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.queue.is_empty() {
            write!(f, "queue {:?}; ", self.queue)?;
        }
        if let Some(forgery) = &self.forgery {
            write!(f, "forger sends {forgery:?}; ")?;
        }
        write!(f, "attempt {:?}", self.fault)?;
        if self.press_retry {
            write!(f, "; Retry pressed mid-back-off")?;
        }
        write!(f, "; worker steps {}", self.worker_steps)
    }
}

/// One webhook PassFort queues, and how the handler will take it.
#[derive(Clone, PartialEq)]
pub struct Event {
    /// Known, deprecated or unknown.
    pub event: EventType,
    /// How the integrator's handler behaves on it.
    pub handler: HandlerPlan,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.event)?;
        match self.handler {
            HandlerPlan::Succeed => Ok(()),
            HandlerPlan::Fail(n) => write!(f, " (handler fails {n}×)"),
            HandlerPlan::Panic(n) => write!(f, " (handler panics {n}×)"),
        }
    }
}

/// How the handler takes one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerPlan {
    /// Succeeds at once.
    Succeed,
    /// Returns an error this many times, then succeeds: the worker must retry, in order.
    Fail(u8),
    /// Panics this many times, then succeeds: the worker must survive it and retry.
    Panic(u8),
}

/// What goes wrong with one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing.
    Pass,
    /// Connection refused: the receiver is down and never sees the request.
    Refused,
    /// The receiver stores and answers 200, and the answer is lost on the way back.
    AnswerLost,
    /// The receiver stores and answers 200, and the answer arrives after the simulator's limit.
    AnswerLate,
    /// The request never gets an answer (the receiver never sees it); the limit decides.
    Hang,
    /// The store takes longer than the receiver's time budget before staging: 503, nothing
    /// stored.
    StoreSlow,
    /// The store stages everything but finishes past the budget: roll back, 503, nothing stored.
    StoreSlowAfterStaging,
    /// The store refuses: 503, nothing stored.
    StoreUnavailable,
    /// The receiver commits, then its process dies before the answer leaves; it is restarted on
    /// the same database file after refusing connections for `down_for` more attempts.
    CrashAfterCommit {
        /// Attempts refused while it is down.
        down_for: u8,
    },
    /// The network delivers the request twice.
    Duplicate,
}

/// A request from a hostile client that does not know (all of) the shared secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forgery {
    /// Which check the forgery must fail.
    pub kind: ForgeryKind,
    /// Reuse the id of the webhook at the head of PassFort's queue (with forged data), instead
    /// of a fresh id: if it were stored, the real webhook would be shadowed as a "duplicate".
    pub reuse_queued_id: bool,
}

/// How a forged request is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeryKind {
    /// Right secret in the body, wrong bearer.
    WrongBearer,
    /// Right bearer, wrong secret in the body.
    WrongBodySecret,
    /// Right bearer, a batch whose second element has a wrong secret.
    OneBadInBatch,
    /// Right secret in the body, no `Authorization` header.
    NoAuthorization,
}

/// Event names no PassFort page names (the newer ones it does name, such as
/// `CUSTOMER_REQUEST_CHANGED`, the library knows): what a later PassFort release may send.
pub const UNKNOWN_EVENTS: [&str; 4] = [
    "APPLICANT_PORTAL_VISITED",
    "RISK_SCORE_RECALCULATED_V2",
    "TASK_REASSIGNED",
    "EVENTS_ARCHIVED",
];

fn current_events() -> Vec<EventType> {
    EventType::KNOWN
        .into_iter()
        .filter(|e| !e.is_deprecated())
        .collect()
}

fn deprecated_events() -> Vec<EventType> {
    EventType::KNOWN
        .into_iter()
        .filter(EventType::is_deprecated)
        .collect()
}

/// Any event: mostly known ones, some deprecated, some unknown.
pub fn event_type() -> impl Strategy<Value = EventType> {
    prop_oneof![
        6 => proptest::sample::select(current_events()),
        2 => proptest::sample::select(deprecated_events()),
        2 => (0usize..UNKNOWN_EVENTS.len()).prop_map(|i| EventType::Other(UNKNOWN_EVENTS[i].into())),
    ]
}

fn handler_plan() -> impl Strategy<Value = HandlerPlan> {
    prop_oneof![
        8 => Just(HandlerPlan::Succeed),
        2 => (1u8..=3).prop_map(HandlerPlan::Fail),
        1 => (1u8..=2).prop_map(HandlerPlan::Panic),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (event_type(), handler_plan()).prop_map(|(event, handler)| Event { event, handler })
}

/// Faults, `Pass` first so that shrinking heads towards a fault-free attempt.
pub fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::Pass),
        1 => Just(Fault::Refused),
        2 => Just(Fault::AnswerLost),
        1 => Just(Fault::AnswerLate),
        1 => Just(Fault::Hang),
        1 => Just(Fault::StoreSlow),
        1 => Just(Fault::StoreSlowAfterStaging),
        1 => Just(Fault::StoreUnavailable),
        2 => (0u8..=2).prop_map(|down_for| Fault::CrashAfterCommit { down_for }),
        1 => Just(Fault::Duplicate),
    ]
}

fn forgery() -> impl Strategy<Value = Forgery> {
    let kind = prop_oneof![
        Just(ForgeryKind::WrongBearer),
        Just(ForgeryKind::WrongBodySecret),
        Just(ForgeryKind::OneBadInBatch),
        Just(ForgeryKind::NoAuthorization),
    ];
    (kind, any::<bool>()).prop_map(|(kind, reuse_queued_id)| Forgery {
        kind,
        reuse_queued_id,
    })
}

fn turn() -> impl Strategy<Value = Turn> {
    (
        prop::collection::vec(event(), 0..=4),
        prop::option::weighted(0.25, forgery()),
        fault(),
        prop::bool::weighted(0.15),
        0u8..=3,
    )
        .prop_map(|(queue, forgery, fault, press_retry, worker_steps)| Turn {
            queue,
            forgery,
            fault,
            press_retry,
            worker_steps,
        })
}

/// A whole run: up to `max_turns` turns, batching on or off.
pub fn case(max_turns: usize) -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        prop::option::of(1usize..=6),
        prop::collection::vec(turn(), 1..=max_turns.max(1)),
    )
        .prop_map(|(seed, batching, turns)| Case {
            seed,
            batching,
            turns,
        })
}

impl Case {
    /// Every event in queue order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.turns.iter().flat_map(|turn| turn.queue.iter())
    }
}

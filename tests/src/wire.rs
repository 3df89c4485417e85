//! The transport between the simulator's fault injection and the receiver's `tower::Service`.
//!
//! It forwards each request through the simulator's [`ServiceTransport`] to the receiver node
//! that is up (connection refused when none is), applies the receiver-side fault of the attempt
//! in hand (store slow or unavailable, crash after commit, duplicate delivery), and records every
//! answer the receiver really gave — before any wire fault loses or delays it — with the ids it
//! was for, its latency on the virtual clock and what the store held before and after.

use crate::case::Fault;
use crate::deployment::{Deployment, Node};
use crate::faulty_store::StoreMode;
use bytes::Bytes;
use futures::future::BoxFuture;
use passfort_clock::{Clock, VirtualClock};
use passfort_sender_sim::transport::Request;
use passfort_sender_sim::{Answer, ServiceTransport, Transport, TransportError};
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One answer the receiver gave.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The turn of the case (`None`: a fault-free attempt after the last turn).
    pub turn: Option<usize>,
    /// 0, or 1 for the second copy of a duplicated delivery.
    pub copy: u8,
    /// The fault of the attempt.
    pub fault: Fault,
    /// The webhook ids in the body, in body order.
    pub ids: Vec<String>,
    /// Whether the body was an array.
    pub array: bool,
    /// The receiver's status code.
    pub status: u16,
    /// Time from request to answer on the virtual clock.
    pub latency: Duration,
    /// Ids in the store before the request (or why they could not be read).
    pub stored_before: Result<Vec<String>, String>,
    /// Ids in the store right after the answer (or why they could not be read).
    pub stored_after: Result<Vec<String>, String>,
}

/// What the run tells the wire about the attempt in hand, and what the wire recorded.
#[derive(Debug, Default)]
pub struct Journal {
    /// The turn in hand (`None`: after the last turn).
    pub turn: Option<usize>,
    /// The fault of the attempt in hand.
    pub fault: Option<Fault>,
    /// Every answer the receiver gave to the simulator.
    pub exchanges: Vec<Exchange>,
}

/// A shared [`Journal`].
pub type SharedJournal = Arc<Mutex<Journal>>;

/// Locks a journal (ignoring poisoning: every update is one push or assignment).
pub fn lock(journal: &SharedJournal) -> MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(|p| p.into_inner())
}

/// See the [module docs](self).
pub struct Wire {
    deployment: Arc<Deployment>,
    journal: SharedJournal,
    clock: VirtualClock,
    limit: Duration,
}

impl Wire {
    /// A wire to whatever node of `deployment` is up; `limit` is the simulator's answer limit
    /// (a late answer arrives a second after it).
    pub fn new(
        deployment: Arc<Deployment>,
        journal: SharedJournal,
        clock: VirtualClock,
        limit: Duration,
    ) -> Self {
        Self {
            deployment,
            journal,
            clock,
            limit,
        }
    }
}

/// The webhook ids of a request body, and whether it was an array.
pub fn ids_in(body: &[u8]) -> (Vec<String>, bool) {
    let id = |v: &Value| v.get("id").and_then(Value::as_str).map(str::to_owned);
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => (items.iter().filter_map(id).collect(), true),
        Ok(object) => (id(&object).into_iter().collect(), false),
        Err(_) => (Vec::new(), false),
    }
}

/// The ids the store holds, in arrival order.
pub async fn stored_ids(node: &Node) -> Result<Vec<String>, String> {
    use passfort_receiver::Store;
    node.sqlite
        .entries()
        .await
        .map(|entries| entries.into_iter().map(|e| e.webhook.id).collect())
        .map_err(|e| e.to_string())
}

fn copy_request(request: &Request) -> Request {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

struct Forward {
    node: Node,
    journal: SharedJournal,
    clock: VirtualClock,
    turn: Option<usize>,
    fault: Fault,
}

impl Forward {
    async fn send(&self, request: Request, copy: u8) -> Result<Answer, TransportError> {
        let (ids, array) = ids_in(request.body());
        let stored_before = stored_ids(&self.node).await;
        let started = self.clock.now();
        let answer = ServiceTransport::new(self.node.router.clone())
            .send(request)
            .await;
        let latency = self.clock.now().duration_since(started).unwrap_or_default();
        let stored_after = stored_ids(&self.node).await;
        if let Ok(answer) = &answer {
            lock(&self.journal).exchanges.push(Exchange {
                turn: self.turn,
                copy,
                fault: self.fault,
                ids,
                array,
                status: answer.status.as_u16(),
                latency,
                stored_before,
                stored_after,
            });
        }
        answer
    }
}

impl Transport for Wire {
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Answer, TransportError>> {
        let (turn, fault) = {
            let journal = lock(&self.journal);
            (journal.turn, journal.fault.unwrap_or(Fault::Pass))
        };
        let deployment = self.deployment.clone();
        let journal = self.journal.clone();
        let clock = self.clock.clone();
        let late = self.limit + Duration::from_secs(1);
        Box::pin(async move {
            let Some(node) = deployment.node() else {
                return Err(TransportError::Refused(
                    "the receiver process is down".into(),
                ));
            };
            let forward = Forward {
                node,
                journal,
                clock: clock.clone(),
                turn,
                fault,
            };
            let store_mode = match fault {
                Fault::StoreSlow => Some(StoreMode::SlowBeforeStaging),
                Fault::StoreSlowAfterStaging => Some(StoreMode::SlowAfterStaging),
                Fault::StoreUnavailable => Some(StoreMode::Unavailable),
                _ => None,
            };
            match fault {
                _ if store_mode.is_some() => {
                    deployment.set_store_mode(store_mode.unwrap_or_default());
                    let answer = forward.send(request, 0).await;
                    deployment.set_store_mode(StoreMode::Healthy);
                    answer
                }
                Fault::Duplicate => {
                    let twin = copy_request(&request);
                    let _first = forward.send(twin, 0).await;
                    forward.send(request, 1).await
                }
                Fault::CrashAfterCommit { .. } => {
                    let _answer = forward.send(request, 0).await;
                    deployment.crash().await;
                    Err(TransportError::Dropped(
                        "the receiver process died before its answer left".into(),
                    ))
                }
                Fault::AnswerLate => {
                    // The answer leaves at once and crawls over the network past the limit: time
                    // moves here, deterministically, instead of waiting for the simulator's grace.
                    let answer = forward.send(request, 0).await;
                    clock.advance(late);
                    answer
                }
                _ => forward.send(request, 0).await,
            }
        })
    }
}

/// Bytes of a request body, for forged requests built by hand.
pub fn body(value: &Value) -> Bytes {
    Bytes::from(value.to_string())
}

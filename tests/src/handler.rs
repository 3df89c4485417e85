//! The integrator's handler, as a recorder: every input it is given (for the secret scan), every
//! outcome, and the webhooks it handled successfully in the order it handled them. It fails or
//! panics on the webhooks a [`crate::case::HandlerPlan`] says it should.

use crate::case::HandlerPlan;
use async_trait::async_trait;
use passfort_receiver::{Handler, HandlerError, Job};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One call of the handler.
#[derive(Debug, Clone)]
pub struct Call {
    /// The webhook id.
    pub id: String,
    /// The worker's attempt number.
    pub attempt: u32,
    /// Everything the handler was given, as text: `Debug` of the job and the webhook's JSON.
    pub input: String,
    /// What the handler did.
    pub outcome: CallOutcome,
}

/// What one call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Returned `Ok`.
    Handled,
    /// Returned an error (planned).
    Failed,
    /// Panicked (planned).
    Panicked,
}

#[derive(Default)]
struct Recording {
    calls: Vec<Call>,
    handled: Vec<Job>,
    plans: HashMap<String, HandlerPlan>,
}

/// A recording [`Handler`]. Clones share one recording, so it survives a receiver restart.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Recording>>,
}

impl Recorder {
    /// A recorder that succeeds on everything until told otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Recording> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Plans how the handler takes the webhook `id`.
    pub fn plan(&self, id: impl Into<String>, plan: HandlerPlan) {
        if plan != HandlerPlan::Succeed {
            self.lock().plans.insert(id.into(), plan);
        }
    }

    /// Every call, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The jobs handled successfully, in the order they were handled.
    pub fn handled(&self) -> Vec<Job> {
        self.lock().handled.clone()
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        let outcome = {
            let mut recording = self.lock();
            let id = job.webhook.id.clone();
            let outcome = match recording.plans.get(&id).copied() {
                Some(HandlerPlan::Fail(n)) if n > 0 => {
                    recording.plans.insert(id.clone(), HandlerPlan::Fail(n - 1));
                    CallOutcome::Failed
                }
                Some(HandlerPlan::Panic(n)) if n > 0 => {
                    recording
                        .plans
                        .insert(id.clone(), HandlerPlan::Panic(n - 1));
                    CallOutcome::Panicked
                }
                _ => CallOutcome::Handled,
            };
            recording.calls.push(Call {
                id,
                attempt: job.attempt,
                input: format!("{job:?}\n{}", job.webhook.to_json_string()),
                outcome,
            });
            if outcome == CallOutcome::Handled {
                recording.handled.push(job.clone());
            }
            outcome
        };
        match outcome {
            CallOutcome::Handled => Ok(()),
            CallOutcome::Failed => Err(format!("planned failure of {}", job.webhook.id).into()),
            CallOutcome::Panicked => panic!(
                "planned handler panic on {} (the conformance suite checks the worker survives it)",
                job.webhook.id
            ),
        }
    }
}

//! The receiver "process", in process: a [`Receiver`] and its [`Worker`] over one SQLite file,
//! on the run's `VirtualClock`, which can crash and be restarted on the same file.
//!
//! A crash drops the receiver and worker and closes the database; a restart opens the same file
//! again with a fresh receiver and worker (same worker name, as a restarted process would have).
//! The worker is stepped by the run, never mid-handler at a crash: the real-process tests cover
//! a SIGKILL at any instant.

use crate::faulty_store::{Budgets, FaultyStore, StoreMode};
use crate::handler::Recorder;
use axum::Router;
use passfort_clock::VirtualClock;
use passfort_receiver::{Receiver, RetryPolicy, SecretSet, SqliteStore, StoreError, Worker};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One running incarnation of the receiver process.
#[derive(Clone)]
pub struct Node {
    /// The HTTP side.
    pub receiver: Receiver,
    /// `receiver.router()`: the `tower::Service` the simulator talks to.
    pub router: Router,
    /// The database, unwrapped (for reading what is stored).
    pub sqlite: SqliteStore,
    /// The worker, stepped by the run.
    pub worker: Worker,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// The receiver or worker could not be built.
    #[error("cannot build the receiver: {0}")]
    Build(String),
}

/// The receiver process across crashes and restarts.
pub struct Deployment {
    database: String,
    secret: String,
    clock: VirtualClock,
    budgets: Budgets,
    mode: Arc<Mutex<StoreMode>>,
    handler: Recorder,
    node: Mutex<Option<Node>>,
    starts: Mutex<usize>,
}

impl Deployment {
    /// A deployment that is down until [`Deployment::start`].
    pub fn new(
        database: impl Into<String>,
        secret: impl Into<String>,
        clock: VirtualClock,
        budgets: Budgets,
        handler: Recorder,
    ) -> Self {
        Self {
            database: database.into(),
            secret: secret.into(),
            clock,
            budgets,
            mode: Arc::default(),
            handler,
            node: Mutex::new(None),
            starts: Mutex::new(0),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<Node>> {
        self.node.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running node, if the process is up.
    pub fn node(&self) -> Option<Node> {
        self.slot().clone()
    }

    /// Whether the process is up.
    pub fn is_up(&self) -> bool {
        self.slot().is_some()
    }

    /// How many times the process was started.
    pub fn starts(&self) -> usize {
        *self.starts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how the store behaves from now on.
    pub fn set_store_mode(&self, mode: StoreMode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    /// Starts the process on the database file (a no-op when it is up).
    pub async fn start(&self) -> Result<Node, StartError> {
        if let Some(node) = self.node() {
            return Ok(node);
        }
        let sqlite = SqliteStore::open(&self.database).await?;
        let store = FaultyStore::new(
            sqlite.clone(),
            self.clock.clone(),
            self.budgets,
            self.mode.clone(),
        );
        let secrets =
            SecretSet::single(&self.secret).map_err(|e| StartError::Build(e.to_string()))?;
        let receiver = Receiver::builder()
            .secrets(secrets)
            .store(store)
            .clock(self.clock.clone())
            .batch_deadline(self.budgets.batch)
            .single_deadline(self.budgets.single)
            .build()
            .map_err(|e| StartError::Build(e.to_string()))?;
        let worker = Worker::builder()
            .receiver(&receiver)
            .handler(self.handler.clone())
            // Never dead-letter: a dead letter is handed on out of order by design.
            .retry(
                RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(60)).block(),
            )
            .name("conformance-worker")
            .build()
            .map_err(|e| StartError::Build(e.to_string()))?;
        let node = Node {
            router: receiver.router(),
            receiver,
            sqlite,
            worker,
        };
        *self.slot() = Some(node.clone());
        *self.starts.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Ok(node)
    }

    /// The process dies: receiver and worker are gone, the database is closed.
    pub async fn crash(&self) {
        let node = self.slot().take();
        if let Some(node) = node {
            node.sqlite.close().await;
        }
    }
}

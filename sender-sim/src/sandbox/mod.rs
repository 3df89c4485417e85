//! `passfort-sim serve`: a local PassFort sandbox.
//!
//! Integrators and QA drive PassFort's sending side the way they drive the real one: through its
//! "Webhook config" page (settings, the status queue with Refresh and Retry) and a Trigger form
//! that stands in for activity on profiles. The page and scripts use the same JSON API
//! ([`api`]); the delivery engine runs continuously on the sandbox's clock (the real one in the
//! binary), and `--state PATH` keeps the settings, the queue and its back-off (failed attempts,
//! next retry, "Last processed") across restarts ([`persist`]).
//!
//! A [`Sandbox`] is a cheap handle; [`Sandbox::router`] is the web app as a `tower::Service`,
//! [`Sandbox::run`] the delivery loop, and [`Sandbox::deliver_due`] a single step of that loop
//! for tests on a [`VirtualClock`](crate::clock::VirtualClock).

pub mod api;
pub mod config;
pub mod page;
pub mod persist;
pub mod trigger;
pub mod view;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::account::{AccountSettings, EnabledEvents, Secret};
use crate::attempt::Attempt;
use crate::clock::SimClock;
use crate::engine::{Engine, EngineError, EngineOptions};
use crate::event::{EventType, Generator, Webhook};
use crate::transport::{HttpTransport, Transport, TransportError};

pub use config::{ConfigUpdate, ConfigView};
pub use persist::{SavedState, StateFile};
pub use trigger::{TriggerRequest, Triggered};
pub use view::StatusView;

/// Where `serve` listens unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";

/// The endpoint a fresh sandbox points at: the receiver binary's default address, so the two
/// work together out of the box.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080/webhooks/passfort";

/// How many attempts `GET /api/attempts` keeps (most recent first).
pub const ATTEMPTS_KEPT: usize = 200;

/// Most webhooks the sandbox queue holds, so a typo in a count cannot eat the machine's memory.
pub const MAX_QUEUED: usize = 10_000;

/// Why a sandbox could not start or a change could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Settings the engine refuses (endpoint, time scale).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The `--state` file is unreadable, not the sandbox's format, or could not be written.
    #[error("state file {path}: {reason}")]
    StateFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The web server stopped with an error.
    #[error("web server: {0}")]
    Serve(std::io::Error),
}

/// What `serve` was asked for (its flags, parsed) plus what tests set.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// `--time-scale`: divides back-off waits and the batch cadence (not the answer limits).
    pub time_scale: f64,
    /// `--state`: where settings, the queue and its back-off are kept; `None` keeps them in
    /// memory only.
    pub state: Option<PathBuf>,
    /// Seeds generated data and ids. The binary uses the start time so ids never repeat across
    /// restarts; tests fix it.
    pub seed: u64,
    /// The secret to start with when no saved state has one (the binary reads
    /// `PASSFORT_WEBHOOK_SECRET`). Never from a command-line argument.
    pub initial_secret: Option<Secret>,
    /// What the Refresh button does: PassFort's two pages disagree (spec §5).
    pub refresh: RefreshReading,
}

/// What PassFort's Refresh button does. Its "About" page says Refresh clears Recent failures
/// (and Retry sends at once); its page on a stalled queue says Refresh "forces the system to
/// retry webhooks immediately and ignore any exponential backoff" (spec §5). The sandbox
/// follows the "About" page unless told otherwise (`passfort-sim serve --refresh`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefreshReading {
    /// The "About" page: Refresh clears Recent failures, nothing more.
    #[default]
    ClearsFailures,
    /// The stalled-queue page: Refresh sends the queue's head now, ignoring back-off, like
    /// Retry now.
    RetriesNow,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            state: None,
            seed: 0,
            initial_secret: None,
            refresh: RefreshReading::default(),
        }
    }
}

struct Inner {
    engine: Engine,
    generator: Mutex<Generator>,
    store: Option<StateFile>,
    /// Serialises every change that is saved (config, triggers, deliveries), so the file on disk
    /// is always one consistent snapshot and a trigger is saved before it is answered.
    writes: tokio::sync::Mutex<()>,
    attempts: Mutex<VecDeque<Attempt>>,
    /// Wakes [`Sandbox::run`] when it went idle (nothing due) and something may now be due.
    kick: Notify,
    save_error: Mutex<Option<String>>,
    refresh: RefreshReading,
}

/// A running sandbox: one PassFort account, its engine, its page and API.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("engine", &self.inner.engine)
            .field("state", &self.inner.store)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks completes before release; poisoning carries no meaning.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Sandbox {
    /// Opens a sandbox: loads `options.state` if it exists (settings, queue and back-off as
    /// saved), else starts with webhooks disabled, every known event enabled, batching off and
    /// [`DEFAULT_ENDPOINT`].
    pub fn open(
        options: SandboxOptions,
        clock: impl Into<SimClock>,
        transport: impl Transport,
    ) -> Result<Self, SandboxError> {
        let store = options.state.clone().map(StateFile::new);
        let saved = match &store {
            Some(store) => store.load()?,
            None => None,
        };
        let (config, queue, delivery) = match saved {
            Some(saved) => {
                let delivery = saved.delivery_with_queue();
                (saved.config, saved.queue, delivery)
            }
            None => (
                persist::SavedConfig {
                    enabled: false,
                    secret: options
                        .initial_secret
                        .as_ref()
                        .map(|s| s.expose().to_owned())
                        .unwrap_or_default(),
                    endpoint: DEFAULT_ENDPOINT.to_owned(),
                    enabled_events: EventType::KNOWN.to_vec(),
                    batching: false,
                },
                Vec::new(),
                None,
            ),
        };

        // Restore the queue as it was, whatever the saved filter and switch say: both apply to
        // new events only.
        let mut settings = AccountSettings::new(config.endpoint.clone(), Secret::new(""));
        settings.secret = Secret::new(config.secret.clone());
        settings.batching = config.batching;
        settings.time_scale = options.time_scale;
        // PassFort warns that disabling then re-enabling webhooks may lose queued ones: the
        // sandbox shows that loss rather than hiding it.
        settings.drop_queue_on_disable = true;
        settings.enabled = true;
        settings.enabled_events = EnabledEvents::All;
        let engine = Engine::with_options(
            settings,
            clock,
            transport,
            EngineOptions {
                seed: options.seed,
                keep_log: false,
                ..EngineOptions::default()
            },
        )?;
        match delivery {
            // The queue with its back-off, failed attempts and "Last processed" as they were.
            Some(delivery) => {
                engine
                    .restore(delivery)
                    .map_err(|e| SandboxError::StateFile {
                        path: store
                            .as_ref()
                            .map(|store| store.path().to_owned())
                            .unwrap_or_default(),
                        reason: e.to_string(),
                    })?;
            }
            None => {
                engine.enqueue_all(queue);
            }
        }
        engine.update_settings(|s| {
            s.enabled_events = EnabledEvents::only(config.enabled_events.iter().cloned())
        })?;
        engine.set_enabled(config.enabled);

        let sandbox = Self {
            inner: Arc::new(Inner {
                engine,
                generator: Mutex::new(Generator::new(options.seed)),
                store,
                writes: tokio::sync::Mutex::new(()),
                attempts: Mutex::new(VecDeque::new()),
                kick: Notify::new(),
                save_error: Mutex::new(None),
                refresh: options.refresh,
            }),
        };
        // Write the file at once: a bad path shows at start, not at the first trigger.
        sandbox.save_now()?;
        Ok(sandbox)
    }

    /// The account's engine (settings, queue, status queue).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The web app: the page and the JSON API.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// The most recent attempts, most recent first (at most [`ATTEMPTS_KEPT`]).
    pub fn recent_attempts(&self) -> Vec<Attempt> {
        lock(&self.inner.attempts).iter().cloned().collect()
    }

    /// The status queue as the page shows it.
    pub fn status_view(&self) -> StatusView {
        let attempts = self.recent_attempts();
        let save_error = lock(&self.inner.save_error).clone();
        view::status_view(
            &self.inner.engine,
            &attempts,
            save_error,
            self.inner.refresh,
        )
    }

    /// The delivery loop: sends whatever becomes due, for ever, on the engine's clock. The
    /// binary spawns it next to the web server.
    pub async fn run(&self) {
        loop {
            match self.inner.engine.step().await {
                Some(attempt) => {
                    let delivered = attempt.outcome.is_delivered();
                    self.record(attempt);
                    // Save when a burst of deliveries ends (or every 100 requests) rather than
                    // after each one: a crash then resends a few delivered webhooks, which
                    // PassFort does too, instead of losing any. A failure is saved at once: it
                    // starts a back-off, which a restart keeps.
                    let burst_over = self
                        .inner
                        .engine
                        .next_due()
                        .is_none_or(|due| due > self.inner.engine.now());
                    if !delivered
                        || burst_over
                        || self.inner.engine.status().attempts.is_multiple_of(100)
                    {
                        self.save_logged().await;
                    }
                }
                None => self.inner.kick.notified().await,
            }
        }
    }

    /// Sends everything due right now, without waiting or moving time, and saves the queue and
    /// its back-off. For tests on a virtual clock: advance the clock, then call this.
    pub async fn deliver_due(&self) -> Vec<Attempt> {
        let mut sent = Vec::new();
        while let Some(attempt) = self.inner.engine.attempt_if_due().await {
            self.record(attempt.clone());
            sent.push(attempt);
        }
        if !sent.is_empty() {
            self.save_logged().await;
        }
        sent
    }

    fn record(&self, attempt: Attempt) {
        let mut attempts = lock(&self.inner.attempts);
        attempts.push_front(attempt);
        attempts.truncate(ATTEMPTS_KEPT);
    }

    fn kick(&self) {
        self.inner.kick.notify_one();
    }

    /// The saved form of the sandbox as it stands, with `extra` webhooks queued behind.
    fn snapshot(&self, extra: &[Webhook]) -> SavedState {
        let settings = self.inner.engine.settings();
        // One snapshot for the queue and its back-off, so the two always agree.
        let mut delivery = self.inner.engine.snapshot();
        let mut queue = std::mem::take(&mut delivery.queue);
        queue.extend_from_slice(extra);
        SavedState::new(persist::SavedConfig::from_settings(&settings), queue)
            .with_delivery(delivery)
    }

    fn save_now(&self) -> Result<(), SandboxError> {
        match &self.inner.store {
            Some(store) => store.save(&self.snapshot(&[])),
            None => Ok(()),
        }
    }

    /// Writes `state` on a blocking thread (the write ends with an fsync), so the web server
    /// and the delivery loop keep running meanwhile.
    async fn write(&self, state: SavedState) -> Result<(), SandboxError> {
        let Some(store) = self.inner.store.clone() else {
            return Ok(());
        };
        let path = store.path().to_owned();
        tokio::task::spawn_blocking(move || store.save(&state))
            .await
            .unwrap_or_else(|e| {
                Err(SandboxError::StateFile {
                    path,
                    reason: format!("the writer stopped: {e}"),
                })
            })
    }

    async fn save_logged(&self) {
        let _writes = self.inner.writes.lock().await;
        let result = self.write(self.snapshot(&[])).await;
        *lock(&self.inner.save_error) = result.err().map(|e| e.to_string());
    }

    /// Applies a `PUT /api/config`: validated whole before anything changes, then applied and
    /// saved.
    pub async fn update_config(&self, update: ConfigUpdate) -> Result<ConfigView, ChangeError> {
        let _writes = self.inner.writes.lock().await;
        let current = self.inner.engine.settings();
        let next = update.apply_to(&current).map_err(ChangeError::Invalid)?;
        self.inner
            .engine
            .update_settings(|s| {
                s.secret = next.secret.clone();
                s.endpoint = next.endpoint.clone();
                s.enabled_events = next.enabled_events.clone();
                s.batching = next.batching;
            })
            .map_err(|e| ChangeError::Invalid(e.to_string()))?;
        self.inner.engine.set_enabled(next.enabled);
        let saved = self.write(self.snapshot(&[])).await;
        *lock(&self.inner.save_error) = saved.as_ref().err().map(|e| e.to_string());
        self.kick();
        saved.map_err(ChangeError::Save)?;
        Ok(ConfigView::from_settings(&self.inner.engine.settings()))
    }

    /// Applies a `POST /api/events`: builds the webhooks, saves them with the queue, then
    /// queues them, so an answered trigger survives a crash.
    pub async fn trigger(&self, request: TriggerRequest) -> Result<Triggered, ChangeError> {
        let plan = request.validate().map_err(ChangeError::Invalid)?;
        let _writes = self.inner.writes.lock().await;
        let settings = self.inner.engine.settings();
        let now = self.inner.engine.now();
        let webhooks = {
            let mut generator = lock(&self.inner.generator);
            plan.webhooks(&mut generator, now)
        };
        let (accepted, triggered) = trigger::admit(&settings, webhooks);
        let waiting = self.inner.engine.queued();
        if waiting + accepted.len() > MAX_QUEUED {
            return Err(ChangeError::Invalid(format!(
                "the sandbox queue holds at most {MAX_QUEUED} webhooks; {waiting} are waiting \
                 and this would add {}",
                accepted.len()
            )));
        }
        self.write(self.snapshot(&accepted))
            .await
            .map_err(ChangeError::Save)?;
        self.inner.engine.enqueue_all(accepted);
        self.kick();
        Ok(triggered)
    }

    /// PassFort's Retry button: sends the head now, ignoring the back-off.
    pub fn retry(&self) {
        self.inner.engine.retry_now();
        self.kick();
    }

    /// PassFort's Refresh button, read as [`SandboxOptions::refresh`] says: clears Recent
    /// failures (the "About" page, the default), or retries now (the stalled-queue page).
    pub fn refresh(&self) {
        match self.inner.refresh {
            RefreshReading::ClearsFailures => self.inner.engine.refresh(),
            RefreshReading::RetriesNow => self.retry(),
        }
    }
}

/// Why a change asked through the API was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The request is invalid; nothing changed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The change could not be saved to the state file (HTTP 500).
    #[error("{0}")]
    Save(SandboxError),
}

/// Opens a sandbox on the real clock with real HTTP, as `passfort-sim serve` does.
pub fn open_real(options: SandboxOptions) -> Result<Sandbox, SandboxError> {
    Sandbox::open(options, SimClock::system(), HttpTransport::new()?)
}

/// Binds `addr` (port 0 picks a free port) for [`serve`].
pub async fn bind(addr: &str) -> Result<TcpListener, SandboxError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SandboxError::Listen {
            addr: addr.to_owned(),
            source,
        })
}

/// Serves the page and API on `listener` and runs the delivery loop, until the process ends.
/// Every change is saved as it is made, so there is nothing to flush on exit.
pub async fn serve(listener: TcpListener, sandbox: Sandbox) -> Result<(), SandboxError> {
    let driver = sandbox.clone();
    let delivery = tokio::spawn(async move { driver.run().await });
    let served = axum::serve(listener, sandbox.router()).await;
    delivery.abort();
    served.map_err(SandboxError::Serve)
}

/// The address a listener really got (after port 0), for the readiness line.
pub fn local_url(listener: &TcpListener) -> Result<String, SandboxError> {
    let addr: SocketAddr = listener.local_addr().map_err(SandboxError::Serve)?;
    Ok(format!("http://{addr}/"))
}

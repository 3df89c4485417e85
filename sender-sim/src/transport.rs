//! How a request reaches the receiver: real HTTP, an in-process `tower::Service`, a plain
//! function, and a fault-injecting wrapper around any of them.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use passfort_clock::{Clock, SharedClock};
use tower::{Service, ServiceExt};

/// A request as the engine builds it: `POST`, JSON body, bearer secret.
pub type Request = http::Request<Bytes>;

/// The receiver's answer. Only its status matters to PassFort; the body is kept for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status: only exactly 200 counts as delivered.
    pub status: StatusCode,
    /// The answer's body.
    pub body: Bytes,
}

impl Answer {
    /// An answer with an empty body.
    pub fn status(status: StatusCode) -> Self {
        Self {
            status,
            body: Bytes::new(),
        }
    }
}

/// Why no answer arrived. Every variant is a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The connection could not be made; the receiver never saw the request.
    #[error("connection refused: {0}")]
    Refused(String),
    /// The connection broke before the answer arrived (the receiver may have got the request).
    #[error("connection dropped before the answer: {0}")]
    Dropped(String),
    /// Anything else the transport reported.
    #[error("transport error: {0}")]
    Other(String),
}

/// Sends one request and reports the answer. The engine applies the answer limit and decides
/// what counts as delivered; transports only carry bytes.
///
/// The returned future is `'static` so the engine never holds a lock while a request is in
/// flight.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request`.
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Answer, TransportError>>;
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Answer, TransportError>> {
        (**self).send(request)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Answer, TransportError>> {
        (**self).send(request)
    }
}

/// Real HTTP through reqwest: what the binary and the wiremock tests use.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A client with no timeout of its own (the engine applies PassFort's limits on its clock)
    /// and no redirects (PassFort is not known to follow them, and a redirect is not a 200).
    pub fn new() -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("passfort-sender-sim/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Other(e.to_string()))?;
        Ok(Self { client })
    }

    /// Uses a client configured by the caller.
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Answer, TransportError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)
                .map_err(|e| TransportError::Other(e.to_string()))?;
            let response = client.execute(request).await.map_err(classify)?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| TransportError::Dropped(e.to_string()))?;
            Ok(Answer { status, body })
        })
    }
}

fn classify(error: reqwest::Error) -> TransportError {
    // Walk to the innermost cause: reqwest's own message is only "error sending request".
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    if error.is_connect() {
        TransportError::Refused(message)
    } else {
        TransportError::Dropped(message)
    }
}

/// An in-process receiver: any `tower::Service` taking `http::Request<B>` and answering an
/// `http::Response` with any body. An axum `Router` plugs in directly:
/// `ServiceTransport::new(router)`.
pub struct ServiceTransport<S, B = Full<Bytes>> {
    service: S,
    body: PhantomData<fn() -> B>,
}

impl<S: fmt::Debug, B> fmt::Debug for ServiceTransport<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceTransport")
            .field("service", &self.service)
            .finish()
    }
}

impl<S: Clone, B> Clone for ServiceTransport<S, B> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            body: PhantomData,
        }
    }
}

impl<S> ServiceTransport<S, Full<Bytes>> {
    /// Wraps `service`, sending bodies as `Full<Bytes>` (what an axum `Router` accepts).
    pub fn new(service: S) -> Self {
        Self {
            service,
            body: PhantomData,
        }
    }
}

impl<S, B> ServiceTransport<S, B> {
    /// Wraps `service`, sending bodies as `B` (for services that need a particular body type).
    pub fn with_body(service: S) -> Self {
        Self {
            service,
            body: PhantomData,
        }
    }
}

impl<S, B, RB> Transport for ServiceTransport<S, B>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: fmt::Display,
    B: From<Bytes> + Send + 'static,
    RB: http_body::Body + Send + 'static,
    RB::Data: Send,
    RB::Error: fmt::Display,
{
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Answer, TransportError>> {
        let service = self.service.clone();
        Box::pin(async move {
            let response = service
                .oneshot(request.map(B::from))
                .await
                .map_err(|e| TransportError::Other(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| TransportError::Dropped(e.to_string()))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                body,
            })
        })
    }
}

/// A receiver written as a plain function: the cheapest transport, for benchmarks and tests
/// that only care about the sender.
pub struct FnTransport<F>(pub F);

impl<F> fmt::Debug for FnTransport<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnTransport")
    }
}

impl<F> Transport for FnTransport<F>
where
    F: Fn(Request) -> Result<Answer, TransportError> + Send + Sync + 'static,
{
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Answer, TransportError>> {
        let result = (self.0)(request);
        Box::pin(std::future::ready(result))
    }
}

/// What happens to one attempt on its way through a [`FaultyTransport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the receiver untouched.
    Pass,
    /// Connection refused: the receiver never sees the request.
    Refuse,
    /// Answer this status without the receiver seeing the request (a proxy in the way).
    Status(u16),
    /// The receiver gets and handles the request, then the answer is lost: the at-least-once
    /// case a receiver must deduplicate.
    DropAnswer,
    /// Wait this long on the clock, then forward.
    Delay(Duration),
    /// Forward at once, then hold the receiver's answer this long (the receiver already has the
    /// webhook when the sender gives up on it).
    SlowAnswer(Duration),
    /// Never answer: the answer limit decides. Waits on the clock so a virtual clock can skip it.
    Hang,
}

/// A fault for each attempt number (0-based: the number of attempts that reached the wrapper
/// before this one).
type FaultPlan = Arc<dyn Fn(u64) -> Fault + Send + Sync>;

struct FaultState {
    script: VecDeque<Fault>,
    plan: Option<FaultPlan>,
    otherwise: Fault,
    attempts: u64,
    forwarded: u64,
}

impl fmt::Debug for FaultState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultState")
            .field("script", &self.script)
            .field("plan", &self.plan.as_ref().map(|_| "Fn(u64) -> Fault"))
            .field("otherwise", &self.otherwise)
            .field("attempts", &self.attempts)
            .field("forwarded", &self.forwarded)
            .finish()
    }
}

/// Wraps a transport and applies a scripted [`Fault`] to each attempt: the first attempt takes
/// the first scripted fault, and so on; once the script is used up every attempt takes the
/// fault its number gets from the [`plan`](FaultyTransport::plan), if one is set, else the
/// `otherwise` fault ([`Fault::Pass`] unless changed).
///
/// Clones share the script, so a test keeps one clone to steer and counts what got through.
pub struct FaultyTransport<T> {
    inner: Arc<T>,
    clock: SharedClock,
    state: Arc<Mutex<FaultState>>,
}

impl<T> Clone for FaultyTransport<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            clock: Arc::clone(&self.clock),
            state: Arc::clone(&self.state),
        }
    }
}

impl<T> fmt::Debug for FaultyTransport<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyTransport")
            .field("state", &*self.lock())
            .finish()
    }
}

impl<T> FaultyTransport<T> {
    /// Wraps `inner`; delays wait on `clock` (hand in the engine's clock: a `VirtualClock`
    /// clone, a `SharedClock`, or `SystemClock`).
    pub fn new(inner: T, clock: impl Clock) -> Self {
        Self {
            inner: Arc::new(inner),
            clock: Arc::new(clock),
            state: Arc::new(Mutex::new(FaultState {
                script: VecDeque::new(),
                plan: None,
                otherwise: Fault::Pass,
                attempts: 0,
                forwarded: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends faults for the next attempts, in order.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) -> &Self {
        self.lock().script.extend(faults);
        self
    }

    /// A repeating fault plan: every attempt past the script takes `plan(attempt)`, where
    /// `attempt` is 0-based and counts every attempt that reached this wrapper (scripted ones
    /// too). Unlike a script it never runs out, so a long or open-ended run keeps its pattern
    /// (say, every fourth answer lost) without guessing how many attempts it will take.
    /// Replaces any earlier plan; [`FaultyTransport::clear_plan`] goes back to `otherwise`.
    pub fn plan(&self, plan: impl Fn(u64) -> Fault + Send + Sync + 'static) -> &Self {
        self.lock().plan = Some(Arc::new(plan));
        self
    }

    /// Forgets the plan: attempts past the script take the `otherwise` fault again.
    pub fn clear_plan(&self) -> &Self {
        self.lock().plan = None;
        self
    }

    /// The fault for every attempt once the script is used up (and no plan is set).
    pub fn otherwise(&self, fault: Fault) -> &Self {
        self.lock().otherwise = fault;
        self
    }

    /// Forgets the remaining script.
    pub fn clear_script(&self) -> &Self {
        self.lock().script.clear();
        self
    }

    /// Attempts that reached this wrapper.
    pub fn attempts(&self) -> u64 {
        self.lock().attempts
    }

    /// Attempts that were handed to the receiver.
    pub fn forwarded(&self) -> u64 {
        self.lock().forwarded
    }
}

/// About a century: "never" on any clock, yet a finite deadline a virtual clock can register.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

impl<T: Transport> Transport for FaultyTransport<T> {
    fn send(&self, request: Request) -> BoxFuture<'static, Result<Answer, TransportError>> {
        let fault = {
            let mut state = self.lock();
            let number = state.attempts;
            state.attempts += 1;
            let fault = match state.script.pop_front() {
                Some(fault) => fault,
                None => match state.plan.clone() {
                    // Called without the lock, so a plan may read this wrapper's counters.
                    Some(plan) => {
                        drop(state);
                        let fault = plan(number);
                        state = self.lock();
                        fault
                    }
                    None => state.otherwise.clone(),
                },
            };
            if matches!(
                fault,
                Fault::Pass | Fault::DropAnswer | Fault::Delay(_) | Fault::SlowAnswer(_)
            ) {
                state.forwarded += 1;
            }
            fault
        };
        let clock = Arc::clone(&self.clock);
        match fault {
            Fault::Pass => self.inner.send(request),
            Fault::Refuse => Box::pin(std::future::ready(Err(TransportError::Refused(
                "refused by fault injection".into(),
            )))),
            Fault::Status(code) => {
                let answer = StatusCode::from_u16(code)
                    .map(Answer::status)
                    .map_err(|e| TransportError::Other(e.to_string()));
                Box::pin(std::future::ready(answer))
            }
            Fault::DropAnswer => {
                let sent = self.inner.send(request);
                Box::pin(async move {
                    let _ = sent.await;
                    Err(TransportError::Dropped(
                        "answer dropped by fault injection".into(),
                    ))
                })
            }
            Fault::Delay(wait) => {
                let inner = Arc::clone(&self.inner);
                Box::pin(async move {
                    clock.sleep(wait).await;
                    inner.send(request).await
                })
            }
            Fault::SlowAnswer(wait) => {
                let sent = self.inner.send(request);
                Box::pin(async move {
                    let answer = sent.await;
                    clock.sleep(wait).await;
                    answer
                })
            }
            Fault::Hang => Box::pin(async move {
                clock.sleep(FOREVER).await;
                Err(TransportError::Other("hung by fault injection".into()))
            }),
        }
    }
}

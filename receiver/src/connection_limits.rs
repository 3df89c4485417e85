//! An endpoint that cannot be held open: how the public address limits its connections.
//!
//! A client that sends half a request must not hold a connection for ever, and a flood of them
//! must never keep PassFort out. [`serve`] is an HTTP/1.1 server loop (hyper) that enforces,
//! on the receiver's [`Clock`](crate::Clock):
//!
//! - **Request time** ([`ConnectionLimits::request_time`], default PassFort's own 10 s): a
//!   request's headers and body must have arrived this long after its first byte (or after the
//!   connection was accepted), or the connection is closed.
//! - **Idle time** ([`ConnectionLimits::idle_time`], default 60 s): a keep-alive connection
//!   with no request in progress is closed after this.
//! - **A cap** ([`ConnectionLimits::max_connections`], default 512). At the cap, a new
//!   connection first evicts the oldest connection that is not in the middle of being answered
//!   (still sending its request, or idle between requests). Only when every connection has a
//!   complete request in the handler is the new one shed, at once, with a 503. So half-sent
//!   requests can never keep a PassFort request out, and nothing queues ahead of PassFort.
//!
//! Every request gets the peer address as [`axum::extract::ConnectInfo`] (the allow-list reads
//! it). On shutdown the loop stops accepting, closes connections that are not being answered,
//! and lets the others finish.

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use passfort_clock::{after, SharedClock};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// Default [`ConnectionLimits::request_time`]: PassFort's own time limit; none of its requests
/// takes longer to send.
pub const DEFAULT_REQUEST_TIME: Duration = Duration::from_secs(10);
/// Default [`ConnectionLimits::idle_time`].
pub const DEFAULT_IDLE_TIME: Duration = Duration::from_secs(60);
/// Default [`ConnectionLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The answer to a connection shed at the cap.
const SHED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 33\r\nconnection: close\r\n\r\n{\"error\":\"too many connections\"}";

/// How long requests may take to arrive, how long connections may idle, and how many there
/// may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Headers and body of a request must arrive within this.
    pub request_time: Duration,
    /// A keep-alive connection with no request in progress is closed after this.
    pub idle_time: Duration,
    /// At most this many connections at once (at least 1).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            request_time: DEFAULT_REQUEST_TIME,
            idle_time: DEFAULT_IDLE_TIME,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request (or the first one) has been arriving since then.
    Receiving(SystemTime),
    /// A complete request is with the handler: never evicted, no time limit here (the
    /// receiver's own deadlines bound it).
    Answering,
    /// Between requests since then.
    Idle(SystemTime),
}

/// One open connection as the loop and its own task see it.
struct Connection {
    phase: watch::Sender<Phase>,
    evict: Notify,
    clock: SharedClock,
}

impl Connection {
    /// The first byte of a new request arrived (on an idle connection).
    fn request_started(&self) {
        let now = self.clock.now();
        self.phase.send_if_modified(|phase| match phase {
            Phase::Idle(_) => {
                *phase = Phase::Receiving(now);
                true
            }
            _ => false,
        });
    }

    /// The whole request has arrived.
    fn request_complete(&self) {
        self.phase.send_if_modified(|phase| match phase {
            Phase::Receiving(_) => {
                *phase = Phase::Answering;
                true
            }
            _ => false,
        });
    }

    /// The answer is out.
    fn answered(&self) {
        self.phase.send_replace(Phase::Idle(self.clock.now()));
    }

    fn evictable(&self) -> bool {
        *self.phase.borrow() != Phase::Answering
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Registry {
    next: u64,
    open: BTreeMap<u64, Arc<Connection>>,
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves `router` on `listener` with `limits` measured on `clock` until `shutdown` completes;
/// then stops accepting, closes the connections not being answered, and waits for the others.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    clock: SharedClock,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let registry = Arc::new(Mutex::new(Registry::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let cap = limits.max_connections.max(1);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, never spin.
                    tracing::warn!(error = %e, "accept failed");
                    clock.sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let admitted = {
            let mut registry = lock(&registry);
            if registry.open.len() >= cap {
                let victim = registry
                    .open
                    .iter()
                    .find(|(_, connection)| connection.evictable())
                    .map(|(id, _)| *id);
                match victim.and_then(|id| registry.open.remove(&id)) {
                    Some(evicted) => {
                        evicted.evict.notify_one();
                        true
                    }
                    None => false,
                }
            } else {
                true
            }
        };
        if !admitted {
            tracing::warn!(client = %peer, cap, "connection shed: every connection is being answered");
            let _ = stream.try_write(SHED);
            continue;
        }
        let connection = Arc::new(Connection {
            phase: watch::channel(Phase::Receiving(clock.now())).0,
            evict: Notify::new(),
            clock: clock.clone(),
        });
        let id = {
            let mut registry = lock(&registry);
            let id = registry.next;
            registry.next += 1;
            registry.open.insert(id, connection.clone());
            id
        };
        let task = run_connection(
            stream,
            peer,
            connection,
            router.clone(),
            limits,
            clock.clone(),
            stop_rx.clone(),
        );
        let registry = registry.clone();
        tasks.spawn(async move {
            task.await;
            lock(&registry).open.remove(&id);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection until it ends, is evicted, outlives a limit, or (idle) the server
/// stops.
async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    connection: Arc<Connection>,
    router: Router,
    limits: ConnectionLimits,
    clock: SharedClock,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        connection: connection.clone(),
    });
    let service = {
        let connection = connection.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let connection = connection.clone();
            let router = router.clone();
            async move {
                request.extensions_mut().insert(ConnectInfo(peer));
                // A pipelined request whose bytes were read with the previous one.
                connection.request_started();
                if request.body().is_end_stream() {
                    connection.request_complete();
                }
                let request = request.map(|body| CompleteOnEnd {
                    inner: body,
                    connection: connection.clone(),
                });
                let response = router.oneshot(request).await;
                connection.answered();
                response
            }
        })
    };
    let http = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    let mut http = pin!(http);
    let mut limit = pin!(phase_limit(connection.phase.subscribe(), limits, clock));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = http.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(client = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = connection.evict.notified() => {
                tracing::info!(client = %peer, "connection evicted at the cap: its request was not complete");
                return;
            }
            closed = &mut limit => {
                tracing::info!(client = %peer, "{closed}");
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                if connection.evictable() {
                    return;
                }
                stopping = true;
                http.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Completes, saying why, once the connection has been in one phase past its limit.
async fn phase_limit(
    mut phase: watch::Receiver<Phase>,
    limits: ConnectionLimits,
    clock: SharedClock,
) -> &'static str {
    loop {
        let current = *phase.borrow_and_update();
        let (deadline, why) = match current {
            Phase::Receiving(since) => (
                Some(after(since, limits.request_time)),
                "connection closed: its request did not arrive within the request time limit",
            ),
            Phase::Idle(since) => (
                Some(after(since, limits.idle_time)),
                "idle connection closed",
            ),
            Phase::Answering => (None, ""),
        };
        let changed = async {
            if phase.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    () = clock.sleep_until(deadline) => {
                        if *phase.borrow() == current {
                            return why;
                        }
                    }
                    () = changed => {}
                }
            }
            None => changed.await,
        }
    }
}

/// The socket, noticing the first byte of each new request.
struct Watched {
    inner: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.request_started();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that tells its connection when it has all arrived.
struct CompleteOnEnd {
    inner: Incoming,
    connection: Arc<Connection>,
}

impl HttpBody for CompleteOnEnd {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.connection.request_complete();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

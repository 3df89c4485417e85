//! A TCP proxy that a test takes down and brings back: the way to make a database or a broker
//! "go away" under a live receiver without stopping the server other tests share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A TCP proxy in front of `upstream` that can be taken down ([`TcpOutage::begin`]: every open
/// connection is cut and new ones are closed at once, as while a server restarts or fails over)
/// and brought back ([`TcpOutage::end`]).
#[derive(Clone, Debug)]
pub struct TcpOutage {
    /// Where the proxy listens: point the client here instead of at `upstream`.
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl TcpOutage {
    /// Starts a proxy to `upstream` (`host:port`) on a free loopback port, up.
    pub async fn start(upstream: impl Into<String>) -> std::io::Result<Self> {
        let upstream = upstream.into();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let outage = Self {
            addr,
            up: up.clone(),
            generation: generation.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = generation.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(outage)
    }

    /// Cuts every connection and refuses new ones until [`TcpOutage::end`].
    pub fn begin(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Lets connections through again.
    pub fn end(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

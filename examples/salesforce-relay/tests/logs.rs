//! The relay's logs never show PassFort's secret, the Salesforce client secret or a token,
//! through token renewals, downtime and refused token requests. In its own test binary: the
//! captured `tracing` subscriber is scoped to this thread, and `tracing`'s global callsite cache
//! would make it unreliable next to tests running on other threads.

mod common;

use common::{config, passfort_sends, relay, retry_at, run, MockSalesforce, CLIENT_SECRET};
use passfort_clock::VirtualClock;
use passfort_receiver::testing::{self, WebhookBuilder};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_or_token_is_ever_logged() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "trace,hyper=debug,hyper_util=debug,reqwest=trace,h2=debug",
        ))
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sf = MockSalesforce::start().await;
    let clock = VirtualClock::new();
    let relay = relay(&sf, &clock).await;
    tracing::debug!(relay = ?relay, config = ?config(&sf), "relay assembled");
    let hooks: Vec<WebhookBuilder> = (0..4).map(|_| testing::check_completed()).collect();
    passfort_sends(&relay, &hooks[0].json()).await;
    run(&relay).await;
    tracing::debug!(relay = ?relay, "holding a token");
    sf.expire_session();
    sf.set_down(true);
    passfort_sends(&relay, &testing::batch_body(&hooks[1..])).await;
    let drained = run(&relay).await;
    clock.advance_to(retry_at(&drained));
    sf.set_down(false);
    sf.set_refuse_tokens(true);
    sf.expire_session();
    let drained = run(&relay).await;
    clock.advance_to(retry_at(&drained));
    sf.set_refuse_tokens(false);
    assert_eq!(run(&relay).await.done, 3);
    assert_eq!(sf.accepted().len(), 4);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("webhook forwarded to Salesforce"), "{text}");
    assert!(text.contains("Salesforce session expired"), "{text}");
    // The relay's Debug (with its cached token) was logged, redacted.
    assert!(text.contains("AccessToken { value: \"***\""), "{text}");
    let issued = sf.issued();
    assert!(issued.len() >= 2);
    for secret in [testing::SECRET, CLIENT_SECRET]
        .into_iter()
        .chain(issued.iter().map(String::as_str))
    {
        assert!(!text.contains(secret), "{secret:?} appears in the logs");
    }
}

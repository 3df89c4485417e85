//! The broker sinks (`nats://`, `amqp://`, `redis://`) against the real servers: one suite, run
//! against each broker (NATS JetStream at 127.0.0.1:4222, RabbitMQ at 127.0.0.1:5672 as
//! guest/guest, Redis at 127.0.0.1:6379; `PASSFORT_TEST_NATS`, `PASSFORT_TEST_AMQP`,
//! `PASSFORT_TEST_REDIS` give others as `host:port`).
//!
//! A server that cannot be reached fails the tests loudly, with the command that starts it:
//! they never skip. Each test makes its own stream, exchange and queue, or key, and removes it
//! afterwards, pass or fail.
//!
//! For each broker:
//! - the simulator sends 1,000 webhooks, batched, losing answers (so PassFort resends): the
//!   broker gets each webhook once, in send order, without the secret;
//! - a repeat (a worker killed between the broker's confirmation and marking the webhook done)
//!   is refused by the broker (NATS, Redis) or carries the same `message_id` (RabbitMQ);
//! - a real `passfort-receiver work` process SIGKILLed mid-run and restarted loses nothing;
//! - the broker cut mid-run by a TCP proxy that drops every connection: the handler fails, the
//!   worker retries, PassFort's answers never wait, and once it is back everything arrives in
//!   order;
//! - a password in the URL (or in `PASSFORT_SINK_PASSWORD`) is in no log line, no error, no
//!   `status` output and no database file.
//!
//! Real processes and real brokers run on the real clock: waits poll a condition with a
//! generous upper bound ([`PATIENCE`]), never a fixed sleep. The receiver and worker run in
//! process run on a `VirtualClock`.

mod amqp;
mod nats;
mod redis;

use async_trait::async_trait;
use passfort_clock::{Clock, VirtualClock};
use passfort_conformance::leak;
use passfort_conformance::process::{self, WorkerProcess};
use passfort_receiver::store::{SharedStore, SqliteStore, State, Store};
use passfort_receiver::testing::{self, TcpOutage, WebhookBuilder};
use passfort_receiver::{Handler, Job, Receiver, RetryPolicy, SecretSet, Webhook, Worker};
use passfort_sender_sim::prelude::{
    AccountSettings, Engine, EngineOptions, Fault, FaultyTransport, Generator, Outcome, RunOutcome,
    Secret, ServiceTransport,
};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tower::ServiceExt;

/// Upper bound on any wait for a real process or a real broker.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// How long the sinks under test wait for a broker before a publish counts as failed.
pub const SINK_TIMEOUT: Duration = Duration::from_secs(2);

/// One message as a consumer of the broker reads it.
#[derive(Debug, Clone)]
pub struct Published {
    /// The webhook id as the broker carries it apart from the body: `Nats-Msg-Id`, the AMQP
    /// `message_id`, the Redis field `id`.
    pub key: String,
    /// The event as the broker carries it apart from the body: `PassFort-Event`, the AMQP
    /// `type`, the Redis field `event`.
    pub event: String,
    /// The message body.
    pub body: String,
}

/// One broker under test, with its own stream, exchange and queue, or key.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Whether the broker itself refuses a repeat (NATS, Redis); RabbitMQ's consumers must
    /// deduplicate on `message_id` instead.
    const REFUSES_REPEATS: bool;

    /// The real server, `host:port`.
    fn server(&self) -> String;

    /// The `--sink` URL for the server at `addr` (`host:port`), with `password` in the URL's
    /// user part when given.
    fn sink_url(&self, addr: &str, password: Option<&str>) -> String;

    /// Opens the sink as the library does, with [`SINK_TIMEOUT`].
    async fn sink(&self, url: &str) -> Arc<dyn Handler>;

    /// Everything published so far, in the broker's order.
    async fn published(&self) -> Vec<Published>;

    /// How many messages were published so far.
    async fn count(&self) -> usize;
}

/// Fails loudly when `addr` cannot be reached: the tests never skip.
pub async fn reachable(name: &str, addr: &str, start: &str) {
    let connected = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    if !matches!(connected, Ok(Ok(_))) {
        panic!(
            "{name} is not reachable at {addr}: these tests need it. Start it with `{start}` \
             (or run `bash .ci/brokers`)"
        );
    }
}

/// A name unique to one test: `pf_test_<random>`.
pub fn unique_name() -> String {
    format!("pf_test_{}", uuid::Uuid::new_v4().simple())
}

/// Runs `clean` to completion on a runtime of its own: what `Drop` of a test's stream, queue or
/// key uses, whether the test passed or panicked, inside or outside the test's runtime.
pub fn clean_up(
    what: String,
    clean: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
) {
    let done = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), clean)
                .await
                .map_err(|_| "timed out".to_owned())?
        })
    })
    .join();
    if !matches!(done, Ok(Ok(()))) {
        eprintln!("warning: could not remove {what}: {done:?}");
    }
}

/// Checks what the broker holds against the webhooks sent, in order: each exactly once (or,
/// where `repeats_allowed`, a repeat only right where the same webhook was already published and
/// never out of order), with the broker-level id and event matching the body, and without
/// `secret`.
pub fn assert_published(published: &[Published], sent: &[String], repeats_allowed: bool) -> usize {
    for message in published {
        let body: Value = serde_json::from_str(&message.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", message.body));
        assert_eq!(
            body["id"].as_str(),
            Some(message.key.as_str()),
            "{message:?}"
        );
        assert_eq!(
            body["event"].as_str(),
            Some(message.event.as_str()),
            "{message:?}"
        );
        assert!(
            body.get("secret").is_none(),
            "secret forwarded: {message:?}"
        );
        for secret in [testing::SECRET, SIM_SECRET] {
            assert!(
                !message.body.contains(secret),
                "secret forwarded: {message:?}"
            );
        }
    }
    let keys: Vec<&str> = published.iter().map(|m| m.key.as_str()).collect();
    if !repeats_allowed {
        let sent: Vec<&str> = sent.iter().map(String::as_str).collect();
        assert_eq!(keys.len(), sent.len(), "count differs from what was sent");
        assert_eq!(keys, sent, "not each webhook once, in send order");
        return 0;
    }
    let mut seen = HashSet::new();
    let mut firsts = Vec::new();
    let mut repeats = 0;
    for key in &keys {
        if seen.insert(*key) {
            firsts.push(*key);
        } else {
            // A repeat is the webhook in hand when the worker crashed or the broker's answer was
            // lost: the last one published, never an older one.
            assert_eq!(firsts.last(), Some(key), "a repeat out of order: {keys:?}");
            repeats += 1;
        }
    }
    let sent: Vec<&str> = sent.iter().map(String::as_str).collect();
    assert_eq!(firsts, sent, "not every webhook, in send order");
    repeats
}

/// Runs `passfort-receiver work --sink SINK`, which must refuse to start: returns its one
/// `error: …` line.
pub fn refused_at_start(sink: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/r.db", dir.path().display());
    let binary = process::receiver_binary().unwrap();
    let mut worker = WorkerProcess::start(&binary, &database, sink, &[], &[]).unwrap();
    let status = worker.wait(PATIENCE).unwrap();
    let output = worker.output();
    assert!(!status.success(), "it started: {output:?}");
    let errors: Vec<&String> = output.iter().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {output:?}");
    errors[0].clone()
}

const SIM_SECRET: &str = "broker-suite-shared-secret";

fn ids(hooks: &[WebhookBuilder]) -> Vec<String> {
    hooks.iter().map(|h| h.get_id().to_owned()).collect()
}

/// `n` webhooks of several kinds, with fresh ids.
fn webhooks(n: usize) -> Vec<WebhookBuilder> {
    (0..n)
        .map(|i| match i % 4 {
            0 => testing::check_completed(),
            1 => testing::product_status_changed(),
            2 => testing::collected_data_updated(),
            _ => testing::unknown_event("SOMETHING_NEW"),
        })
        .collect()
}

async fn sqlite(dir: &Path) -> (String, SharedStore) {
    let url = format!("sqlite://{}/receiver.db", dir.display());
    let store: SharedStore = Arc::new(SqliteStore::open(&url).await.unwrap());
    (url, store)
}

/// The simulator sends 1,000 webhooks in batches of up to 25 to the receiver (in process, on a
/// virtual clock), losing some answers so that batches arrive twice; the worker hands them to
/// the sink. The broker must hold each once, in send order, without the secret.
pub async fn simulator_batched_with_lost_answers<B: Broker>(broker: &B) {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = sqlite(dir.path()).await;
    let clock = VirtualClock::new();
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(SIM_SECRET).unwrap())
        .shared_store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let transport = FaultyTransport::new(ServiceTransport::new(receiver.router()), clock.clone());
    transport.plan(|attempt| {
        if attempt % 5 == 2 {
            Fault::DropAnswer
        } else {
            Fault::Pass
        }
    });
    let mut settings = AccountSettings::new(
        "http://receiver.test/webhooks/passfort",
        Secret::new(SIM_SECRET),
    )
    .batched();
    settings.max_batch = 25;
    let options = EngineOptions {
        seed: 12,
        quiet: Duration::from_secs(5),
        grace: Duration::from_secs(5),
        ..EngineOptions::default()
    };
    let engine = Engine::with_options(settings, clock.clone(), transport, options).unwrap();
    let hooks = Generator::new(12).mix(1000, clock.now());
    let sent: Vec<String> = hooks.iter().map(|h| h.id.to_string()).collect();
    engine.enqueue_all(hooks);
    assert_eq!(
        engine
            .run_until_empty(Duration::from_secs(7 * 86_400))
            .await,
        RunOutcome::Emptied
    );
    let attempts = engine.attempts();
    assert!(attempts.iter().all(|a| a.batched));
    let lost = attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Dropped)
        .count();
    assert!(
        lost >= 5,
        "answers were lost, so batches arrived twice ({lost})"
    );

    let url = broker.sink_url(&broker.server(), None);
    let worker = Worker::builder()
        .receiver(&receiver)
        .handler(broker.sink(&url).await)
        .build()
        .unwrap();
    let drained = worker.run_until_idle().await.unwrap();
    assert_eq!(drained.done, 1000, "{drained:?}");
    assert_eq!(drained.retried, 0);
    assert_published(&broker.published().await, &sent, false);
}

/// What a worker killed between the broker's confirmation and marking the webhook done does:
/// it hands the same webhook (same arrival position) on again. NATS and Redis refuse the
/// repeat; RabbitMQ takes it, with the same `message_id`.
pub async fn a_repeat_is_refused_or_keeps_its_message_id<B: Broker>(broker: &B) {
    let url = broker.sink_url(&broker.server(), None);
    let sink = broker.sink(&url).await;
    let hooks = webhooks(3);
    let jobs: Vec<Job> = hooks
        .iter()
        .enumerate()
        .map(|(i, hook)| job(hook.webhook(), i as i64 + 1))
        .collect();
    sink.handle(&jobs[0]).await.unwrap();
    sink.handle(&jobs[1]).await.unwrap();
    // Killed after the broker confirmed jobs[1], before it was marked done: handed on again.
    sink.handle(&jobs[1]).await.unwrap();
    sink.handle(&jobs[2]).await.unwrap();
    let published = broker.published().await;
    let repeats = assert_published(&published, &ids(&hooks), !B::REFUSES_REPEATS);
    if B::REFUSES_REPEATS {
        assert_eq!(repeats, 0);
    } else {
        assert_eq!(
            repeats, 1,
            "the broker took the repeat, with the same message_id"
        );
        assert_eq!(published[1].key, published[2].key);
    }
}

/// A job as the worker makes it from the store.
pub fn job(webhook: Webhook, seq: i64) -> Job {
    Job {
        event: webhook.event(),
        webhook,
        attempt: 1,
        seq,
        received_at: SystemTime::now(),
    }
}

/// A real `passfort-receiver work` process on 300 stored webhooks, SIGKILLed once the broker
/// holds 100 of them, then restarted with `--until-idle`: every webhook reaches the broker, in
/// order; NATS and Redis hold no duplicate; RabbitMQ repeats only with the same `message_id`.
pub async fn worker_killed_mid_run_and_restarted<B: Broker>(broker: &B) {
    let dir = tempfile::tempdir().unwrap();
    let (database, store) = sqlite(dir.path()).await;
    let hooks = webhooks(300);
    store
        .insert(&testing::verified(&hooks), SystemTime::now())
        .await
        .unwrap();
    let binary = process::receiver_binary().unwrap();
    let sink = broker.sink_url(&broker.server(), None);
    let fast = [
        "--poll-interval",
        "20ms",
        "--retry-initial",
        "20ms",
        "--retry-max",
        "200ms",
    ];
    let mut first = WorkerProcess::start(&binary, &database, &sink, &fast, &[]).unwrap();
    let started = Instant::now();
    loop {
        let count = broker.count().await;
        if count >= 100 {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the worker published {count}; output:\n{}",
            first.output().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap();
    let killed_at = broker.count().await;
    assert!(killed_at < hooks.len(), "killed too late to be mid-run");

    let mut args = fast.to_vec();
    args.push("--until-idle");
    let mut second = WorkerProcess::start(&binary, &database, &sink, &args, &[]).unwrap();
    let status = second.wait(PATIENCE).unwrap();
    assert!(status.success(), "{status}: {}", second.output().join("\n"));

    let repeats = assert_published(&broker.published().await, &ids(&hooks), !B::REFUSES_REPEATS);
    // How often the broker itself turned a repeat away (NATS, Redis log it at info).
    let refused = second
        .output()
        .iter()
        .filter(|l| l.contains("a repeat, not added twice") || l.contains("dropped a repeat"))
        .count();
    eprintln!(
        "killed with {killed_at} published; {repeats} repeat(s) in the broker, {refused} refused by it"
    );
    let entries = store.entries().await.unwrap();
    assert_eq!(entries.len(), hooks.len());
    assert!(entries.iter().all(|e| e.state == State::Done));
}

/// The broker goes away mid-run (a proxy cuts every connection and refuses new ones) and comes
/// back. Meanwhile PassFort's requests are answered 200 at once, the handler fails and the
/// worker retries with its back-off; once the broker is back everything arrives, in order.
pub async fn broker_cut_mid_run_then_back<B: Broker>(broker: &B) {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = sqlite(dir.path()).await;
    let clock = VirtualClock::new();
    let receiver = Receiver::builder()
        .secrets(SecretSet::single(testing::SECRET).unwrap())
        .shared_store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    // PassFort's requests, answered by the receiver's router while the worker runs beside it.
    let post = |hooks: Vec<WebhookBuilder>| {
        let request = testing::signed_request(
            receiver.path(),
            &testing::batch_body(&hooks),
            testing::SECRET,
        );
        let router = receiver.router();
        async move { router.oneshot(request).await.unwrap().status().as_u16() }
    };

    let proxy = TcpOutage::start(broker.server()).await.unwrap();
    let sink_url = broker.sink_url(&proxy.addr.to_string(), None);
    let worker = Worker::builder()
        .receiver(&receiver)
        .handler(broker.sink(&sink_url).await)
        .retry(RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(30)).block())
        .build()
        .unwrap();

    let before = webhooks(20);
    assert_eq!(post(before.clone()).await, 200);
    assert_eq!(worker.run_until_idle().await.unwrap().done, 20);

    proxy.begin();
    let during = webhooks(20);
    assert_eq!(
        post(during.clone()).await,
        200,
        "an answer waited for the broker"
    );
    let drained = worker.run_until_idle().await.unwrap();
    assert_eq!(drained.done, 0, "{drained:?}");
    assert!(drained.retried >= 1, "{drained:?}");
    let status = store.status(clock.now()).await.unwrap();
    assert_eq!(status.queue_depth, 20);
    let failure = &status.recent_failures[0];
    assert!(
        failure.error.contains(&proxy.addr.to_string()),
        "the failure names the broker: {failure:?}"
    );

    proxy.end();
    let after = webhooks(20);
    assert_eq!(post(after.clone()).await, 200);
    let mut done = 0;
    let started = Instant::now();
    while done < 40 {
        assert!(
            started.elapsed() < PATIENCE,
            "never drained after the broker came back: {:?}",
            store.status(clock.now()).await.unwrap()
        );
        clock.advance(Duration::from_secs(30));
        done += worker.run_until_idle().await.unwrap().done;
    }
    let sent = [ids(&before), ids(&during), ids(&after)].concat();
    let repeats = assert_published(&broker.published().await, &sent, !B::REFUSES_REPEATS);
    eprintln!("{repeats} repeat(s) after the outage");
}

/// A password in the sink URL, or in `PASSFORT_SINK_PASSWORD`, reaches no log line (at debug
/// level), no error, no `status` output and no database file: with the broker unreachable (the
/// worker starts, the publish fails and its error is stored) and with the real server (which
/// takes the password, or refuses it at start with a one-line error).
pub async fn password_never_shown<B: Broker>(broker: &B) {
    let binary = process::receiver_binary().unwrap();
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let nowhere = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    // (what, sink URL, PASSFORT_SINK_PASSWORD)
    let runs: [(&str, String, Option<&str>); 3] = [
        (
            "unreachable, password in the URL",
            broker.sink_url(&nowhere, Some(&password)),
            None,
        ),
        (
            "unreachable, password in PASSFORT_SINK_PASSWORD",
            broker.sink_url(&nowhere, None),
            Some(password.as_str()),
        ),
        (
            "the real server, password in the URL",
            broker.sink_url(&broker.server(), Some(&password)),
            None,
        ),
    ];
    for (what, sink, env_password) in runs {
        let env: Vec<(&str, &str)> = env_password
            .map(|p| ("PASSFORT_SINK_PASSWORD", p))
            .into_iter()
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let (database, store) = sqlite(dir.path()).await;
        store
            .insert(&testing::verified(&webhooks(1)), SystemTime::now())
            .await
            .unwrap();
        let mut worker =
            WorkerProcess::start(&binary, &database, &sink, &["--until-idle"], &env).unwrap();
        let status = worker.wait(PATIENCE).unwrap();
        let output = worker.output().join("\n");
        if status.success() {
            if sink.contains(&nowhere) {
                // The publish failed: its error is in the log and in the database.
                let failures = store
                    .status(SystemTime::now())
                    .await
                    .unwrap()
                    .recent_failures;
                assert!(
                    failures.iter().any(|f| f.error.contains(&nowhere)),
                    "{what}: no failure recorded: {failures:?}\n{output}"
                );
            }
        } else {
            let errors: Vec<&str> = output
                .lines()
                .filter(|l| l.starts_with("error: "))
                .collect();
            assert_eq!(errors.len(), 1, "{what}: one error line:\n{output}");
        }
        let shown = std::process::Command::new(&binary)
            .args(["status", "--json", "--database", &database])
            .output()
            .unwrap();
        assert!(shown.status.success());
        let mut places: Vec<(String, Vec<u8>)> = vec![
            (format!("{what}: output"), output.into_bytes()),
            (format!("{what}: status"), shown.stdout),
        ];
        for (path, bytes) in leak::files_under(dir.path()) {
            places.push((format!("{what}: {}", path.display()), bytes));
        }
        for (place, bytes) in places {
            let leaks = leak::find(&place, &bytes, std::slice::from_ref(&password));
            assert!(leaks.is_empty(), "{leaks:?}");
        }
    }
}

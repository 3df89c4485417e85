//! The suite against NATS JetStream: a stream of its own per test (subject `pf_test_….webhooks`,
//! two-minute duplicate window), deleted afterwards.

use super::*;
use async_nats::jetstream::{self, stream};
use passfort_receiver::sink::nats::NatsSink;

fn server() -> String {
    std::env::var("PASSFORT_TEST_NATS").unwrap_or_else(|_| "127.0.0.1:4222".to_owned())
}

struct Nats {
    jetstream: jetstream::Context,
    stream: String,
    subject: String,
}

impl Nats {
    /// Creates a stream covering a fresh subject.
    async fn new() -> Self {
        reachable(
            "NATS",
            &server(),
            "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
             -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log",
        )
        .await;
        let client = async_nats::connect(format!("nats://{}", server()))
            .await
            .unwrap();
        let jetstream = jetstream::new(client);
        let stream = unique_name();
        let subject = format!("{stream}.webhooks");
        jetstream
            .create_stream(stream::Config {
                name: stream.clone(),
                subjects: vec![subject.clone()],
                duplicate_window: Duration::from_secs(120),
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("cannot create a JetStream stream (is -js on?): {e}"));
        Self {
            jetstream,
            stream,
            subject,
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let (server, stream) = (server(), self.stream.clone());
        clean_up(format!("NATS stream {stream}"), async move {
            let client = async_nats::connect(format!("nats://{server}"))
                .await
                .map_err(|e| e.to_string())?;
            jetstream::new(client)
                .delete_stream(&stream)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    }
}

#[async_trait]
impl Broker for Nats {
    const REFUSES_REPEATS: bool = true;

    fn server(&self) -> String {
        server()
    }

    fn sink_url(&self, addr: &str, password: Option<&str>) -> String {
        match password {
            Some(password) => format!("nats://passfort:{password}@{addr}/{}", self.subject),
            None => format!("nats://{addr}/{}", self.subject),
        }
    }

    async fn sink(&self, url: &str) -> Arc<dyn Handler> {
        Arc::new(NatsSink::connect(url).await.unwrap().timeout(SINK_TIMEOUT))
    }

    async fn published(&self) -> Vec<Published> {
        let mut stream = self.jetstream.get_stream(&self.stream).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return out;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            let message = stream.get_raw_message(sequence).await.unwrap();
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            out.push(Published {
                key: header("Nats-Msg-Id"),
                event: header("PassFort-Event"),
                body: String::from_utf8(message.payload.to_vec()).unwrap(),
            });
        }
        out
    }

    async fn count(&self) -> usize {
        let mut stream = self.jetstream.get_stream(&self.stream).await.unwrap();
        stream.info().await.unwrap().state.messages as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_simulator_batched_with_lost_answers() {
    simulator_batched_with_lost_answers(&Nats::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_repeat_is_dropped_by_the_stream() {
    a_repeat_is_refused_or_keeps_its_message_id(&Nats::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_worker_killed_mid_run_and_restarted() {
    worker_killed_mid_run_and_restarted(&Nats::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cut_mid_run_then_back() {
    broker_cut_mid_run_then_back(&Nats::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_password_never_shown() {
    password_never_shown(&Nats::new().await).await;
}

/// No stream covers the subject: `work` refuses to start, with one line naming the subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_refuses_to_start_when_no_stream_covers_the_subject() {
    let nats = Nats::new().await;
    let subject = format!("{}.nobody", unique_name());
    let error = refused_at_start(&format!("nats://{}/{subject}", nats.server()));
    assert!(
        error.contains(&subject) && error.contains("no JetStream stream covers"),
        "{error}"
    );
}

//! The suite against RabbitMQ: an exchange and a bound queue of their own per test, deleted
//! afterwards. The sink declares nothing; the test, as the operator, declares both.

use super::*;
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use passfort_receiver::sink::amqp::AmqpSink;

const ROUTING_KEY: &str = "passfort";

fn server() -> String {
    std::env::var("PASSFORT_TEST_AMQP").unwrap_or_else(|_| "127.0.0.1:5672".to_owned())
}

async fn channel() -> (Connection, Channel) {
    let connection = Connection::connect(
        &format!("amqp://guest:guest@{}/%2f", server()),
        ConnectionProperties::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to RabbitMQ as guest: {e}"));
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

struct Amqp {
    name: String,
    channel: Channel,
    _connection: Connection,
}

impl Amqp {
    /// Declares an exchange and a durable queue bound to it with [`ROUTING_KEY`].
    async fn new() -> Self {
        reachable("RabbitMQ", &server(), "rabbitmq-server -detached").await;
        let (connection, channel) = channel().await;
        let name = unique_name();
        channel
            .exchange_declare(
                name.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                name.as_str().into(),
                name.as_str().into(),
                ROUTING_KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            name,
            channel,
            _connection: connection,
        }
    }
}

impl Drop for Amqp {
    fn drop(&mut self) {
        let name = self.name.clone();
        clean_up(format!("RabbitMQ exchange and queue {name}"), async move {
            let (connection, channel) = channel().await;
            channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            channel
                .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            let _ = connection.close(200, "done".into()).await;
            Ok(())
        });
    }
}

#[async_trait]
impl Broker for Amqp {
    const REFUSES_REPEATS: bool = false;

    fn server(&self) -> String {
        server()
    }

    fn sink_url(&self, addr: &str, password: Option<&str>) -> String {
        let password = password.unwrap_or("guest");
        format!(
            "amqp://guest:{password}@{addr}/%2f?exchange={}&routing_key={ROUTING_KEY}",
            self.name
        )
    }

    async fn sink(&self, url: &str) -> Arc<dyn Handler> {
        Arc::new(AmqpSink::connect(url).await.unwrap().timeout(SINK_TIMEOUT))
    }

    /// Takes every message off the queue (so it is called once, at the end).
    async fn published(&self) -> Vec<Published> {
        let mut out = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(self.name.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let properties = &message.delivery.properties;
            let text = |value: &Option<lapin::types::ShortString>| {
                value.as_ref().map(|v| v.to_string()).unwrap_or_default()
            };
            assert_eq!(text(properties.content_type()), "application/json");
            assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
            out.push(Published {
                key: text(properties.message_id()),
                event: text(properties.kind()),
                body: String::from_utf8(message.delivery.data.clone()).unwrap(),
            });
        }
        out
    }

    async fn count(&self) -> usize {
        self.channel
            .queue_declare(
                self.name.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count() as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_simulator_batched_with_lost_answers() {
    simulator_batched_with_lost_answers(&Amqp::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_a_repeat_keeps_its_message_id() {
    a_repeat_is_refused_or_keeps_its_message_id(&Amqp::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_worker_killed_mid_run_and_restarted() {
    worker_killed_mid_run_and_restarted(&Amqp::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_cut_mid_run_then_back() {
    broker_cut_mid_run_then_back(&Amqp::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_password_never_shown() {
    password_never_shown(&Amqp::new().await).await;
}

/// The exchange does not exist: `work` refuses to start with one line naming it, and declares
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_refuses_to_start_when_the_exchange_is_missing() {
    reachable("RabbitMQ", &server(), "rabbitmq-server -detached").await;
    let missing = unique_name();
    let error = refused_at_start(&format!(
        "amqp://guest:guest@{}/%2f?exchange={missing}&routing_key=x",
        server()
    ));
    assert!(
        error.contains(&missing) && error.contains("does not exist"),
        "{error}"
    );
    let (_connection, channel) = channel().await;
    let declared = channel
        .exchange_declare(
            missing.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(declared.is_err(), "the sink declared the exchange");
}

/// An unroutable message (no queue bound for the routing key) is returned by the broker: a
/// failure, never a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_an_unroutable_message_is_a_failure() {
    let amqp = Amqp::new().await;
    let url = format!(
        "amqp://guest:guest@{}/%2f?exchange={}&routing_key=nobody-listens",
        server(),
        amqp.name
    );
    let sink = amqp.sink(&url).await;
    let hook = testing::check_completed();
    let error = sink.handle(&job(hook.webhook(), 1)).await.unwrap_err();
    assert!(error.to_string().contains("unroutable"), "{error}");
}

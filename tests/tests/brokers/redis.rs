//! The suite against Redis Streams: a key of its own per test, deleted afterwards.

use super::*;
use ::redis::streams::StreamRangeReply;
use passfort_receiver::sink::redis::RedisSink;

fn server() -> String {
    std::env::var("PASSFORT_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".to_owned())
}

async fn connection() -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(format!("redis://{}/0", server()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to Redis: {e}"))
}

struct Redis {
    key: String,
    connection: ::redis::aio::MultiplexedConnection,
}

impl Redis {
    async fn new() -> Self {
        reachable(
            "Redis",
            &server(),
            "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" \
             --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
        )
        .await;
        Self {
            key: unique_name(),
            connection: connection().await,
        }
    }

    async fn entries(&self) -> StreamRangeReply {
        ::redis::cmd("XRANGE")
            .arg(&self.key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.connection.clone())
            .await
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let key = self.key.clone();
        clean_up(format!("Redis key {key}"), async move {
            ::redis::cmd("DEL")
                .arg(&key)
                .query_async::<i64>(&mut connection().await)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    }
}

#[async_trait]
impl Broker for Redis {
    const REFUSES_REPEATS: bool = true;

    fn server(&self) -> String {
        server()
    }

    fn sink_url(&self, addr: &str, password: Option<&str>) -> String {
        match password {
            Some(password) => format!("redis://:{password}@{addr}/0?stream={}", self.key),
            None => format!("redis://{addr}/0?stream={}", self.key),
        }
    }

    async fn sink(&self, url: &str) -> Arc<dyn Handler> {
        Arc::new(RedisSink::connect(url).await.unwrap().timeout(SINK_TIMEOUT))
    }

    async fn published(&self) -> Vec<Published> {
        self.entries()
            .await
            .ids
            .iter()
            .map(|entry| Published {
                key: entry.get("id").unwrap_or_default(),
                event: entry.get("event").unwrap_or_default(),
                body: entry.get("body").unwrap_or_default(),
            })
            .collect()
    }

    async fn count(&self) -> usize {
        ::redis::cmd("XLEN")
            .arg(&self.key)
            .query_async::<usize>(&mut self.connection.clone())
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_simulator_batched_with_lost_answers() {
    simulator_batched_with_lost_answers(&Redis::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_repeat_is_refused_by_redis() {
    let redis = Redis::new().await;
    a_repeat_is_refused_or_keeps_its_message_id(&redis).await;
    // The entry IDs are the arrival positions.
    let ids: Vec<String> = redis
        .entries()
        .await
        .ids
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["1-0", "2-0", "3-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_worker_killed_mid_run_and_restarted() {
    worker_killed_mid_run_and_restarted(&Redis::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cut_mid_run_then_back() {
    broker_cut_mid_run_then_back(&Redis::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_password_never_shown() {
    password_never_shown(&Redis::new().await).await;
}

/// A webhook handed on after later ones (a dead letter put back in the queue) cannot take its
/// own position as entry ID: it goes after them, as `<top>-N`, and a repeat of it is still
/// refused. An entry deleted by a consumer is not published again either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_late_webhook_goes_after_the_top_once() {
    let redis = Redis::new().await;
    let sink = redis.sink(&redis.sink_url(&server(), None)).await;
    let hooks = webhooks(5);
    let jobs: Vec<Job> = hooks
        .iter()
        .enumerate()
        .map(|(i, h)| job(h.webhook(), i as i64 + 1))
        .collect();
    for i in [0, 2, 3] {
        sink.handle(&jobs[i]).await.unwrap();
    }
    // Position 2 was a dead letter, put back and handed on now; then handed on again after a
    // crash.
    sink.handle(&jobs[1]).await.unwrap();
    sink.handle(&jobs[1]).await.unwrap();
    // Position 5, deleted by a consumer, then handed on again after a crash.
    sink.handle(&jobs[4]).await.unwrap();
    ::redis::cmd("XDEL")
        .arg(&redis.key)
        .arg("5-0")
        .query_async::<i64>(&mut redis.connection.clone())
        .await
        .unwrap();
    sink.handle(&jobs[4]).await.unwrap();
    let entries: Vec<(String, String)> = redis
        .entries()
        .await
        .ids
        .into_iter()
        .map(|e| (e.id.clone(), e.get::<String>("id").unwrap()))
        .collect();
    let id = |i: usize| hooks[i].get_id().to_owned();
    assert_eq!(
        entries,
        [
            ("1-0".to_owned(), id(0)),
            ("3-0".to_owned(), id(2)),
            ("4-0".to_owned(), id(3)),
            ("4-1".to_owned(), id(1)),
        ]
    );
}

/// A stream holding another store's webhooks (a new database behind an old stream): the sink
/// fails, naming the problem, rather than calling the webhook published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_stream_of_another_store_is_a_failure() {
    let redis = Redis::new().await;
    let sink = redis.sink(&redis.sink_url(&server(), None)).await;
    sink.handle(&job(testing::check_completed().webhook(), 1))
        .await
        .unwrap();
    let other = job(testing::check_completed().webhook(), 1);
    let error = sink.handle(&other).await.unwrap_err().to_string();
    assert!(error.contains("another store"), "{error}");
    // Something else wrote to the stream: refused too, not hidden behind a late entry.
    ::redis::cmd("XADD")
        .arg(&redis.key)
        .arg("*")
        .arg("foo")
        .arg("bar")
        .query_async::<String>(&mut redis.connection.clone())
        .await
        .unwrap();
    let error = sink
        .handle(&job(testing::check_completed().webhook(), 2))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("other than passfort-receiver"), "{error}");
}

//! `redis://[:PASS@]HOST:PORT/DB?stream=KEY`: each webhook added to a Redis stream.
//!
//! Each webhook is one `XADD` to the stream `KEY` with the fields `id` (webhook id), `event`
//! and `body` (its JSON, minus `secret`). A webhook is done once Redis has answered the `XADD`.
//!
//! # Idempotent: Redis itself refuses a repeat
//!
//! The entry ID is not left to Redis: it is `<arrival position>-0`, the webhook's position in
//! the receiver's store. Stream IDs only grow, so a webhook published again after a crash (the
//! worker killed between Redis's answer and marking the webhook done) is refused by Redis with
//! "The ID specified in XADD is equal or smaller than the target stream top item". The sink
//! then looks, before calling it a success, at what the stream holds:
//!
//! - the entry `<position>-0` carries this webhook's `id`: already published, done;
//! - it carries another webhook's `id`: the stream holds another store's webhooks (a new
//!   database behind an old stream): a failure, named, never papered over;
//! - there is no such entry and the stream's last generated ID is exactly `<position>-0`:
//!   published, then deleted by a consumer (`XDEL`/`XTRIM`): done;
//! - there is none and the stream is further on: this webhook is being handed on after
//!   webhooks that arrived after it (a dead letter put back in the queue, or per-profile
//!   ordering). It is added as `<top position>-N` (N ≥ 1), after what is there, unless an
//!   entry in that range already carries its `id` (the same repeat, for a late webhook).
//!
//! The stream must therefore be this receiver's own: entries added by anything else (`XADD *`
//! by another producer, say) make later webhooks fail with a message saying so.
//!
//! When Redis cannot be reached at start the sink starts anyway (so that `serve` still
//! receives and stores webhooks); the connection is made, and re-made after a loss, by the
//! client, and each publish meanwhile fails and is retried by the worker with its back-off.

use super::broker_url::BrokerUrl;
use super::SinkError;
use crate::handler::{Handler, HandlerError, Job};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamInfoStreamReply, StreamRangeReply};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use std::fmt;
use std::time::Duration;

/// How long connecting, or waiting for Redis's answer, may take before a publish counts as
/// failed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const DEFAULT_PORT: u16 = 6379;

/// What Redis answers an `XADD` whose explicit ID is not above the stream's last one.
const NOT_ABOVE_TOP: &str = "equal or smaller than the target stream top item";

/// Adds each webhook to a stream, with an entry ID taken from its arrival position; see the
/// [module docs](self).
pub struct RedisSink {
    url: BrokerUrl,
    key: String,
    connection: ConnectionManager,
    timeout: Duration,
}

impl fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSink")
            .field("url", &self.url.shown)
            .field("stream", &self.key)
            .finish_non_exhaustive()
    }
}

/// What a `redis://` URL names: the database and the stream key.
pub(crate) struct Target {
    pub(crate) db: i64,
    pub(crate) key: String,
}

pub(crate) fn target_of(url: &BrokerUrl) -> Result<Target, SinkError> {
    url.reject_params_except(&["stream"])?;
    let key = url
        .param("stream")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| url.invalid("no stream: redis://[:PASS@]HOST:PORT/DB?stream=KEY"))?
        .to_owned();
    let db = if url.path.is_empty() {
        0
    } else {
        url.path
            .parse::<i64>()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or_else(|| url.invalid("the path must be a database number"))?
    };
    Ok(Target { db, key })
}

/// A Redis error as an operator reads it: `kind: detail`.
fn describe(e: &redis::RedisError) -> String {
    e.to_string()
}

impl RedisSink {
    /// Connects to the server in `url` and checks that `KEY` is a stream or does not exist.
    ///
    /// Refuses (with a one-line error) when Redis refuses the credentials or the key holds
    /// something else; starts anyway when Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, SinkError> {
        let url = BrokerUrl::parse(url, "redis")?;
        let Target { db, key } = target_of(&url)?;
        let timeout = DEFAULT_TIMEOUT;
        let mut redis = RedisConnectionInfo::default().set_db(db);
        if let Some(user) = &url.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &url.password {
            redis = redis.set_password(password.expose());
        }
        let refused = |reason: String| SinkError::Refused {
            url: url.shown.clone(),
            reason,
        };
        let info = ConnectionAddr::Tcp(url.host.clone(), url.port.unwrap_or(DEFAULT_PORT))
            .into_connection_info()
            .map_err(|e| refused(url.scrub(describe(&e))))?
            .set_redis_settings(redis);
        let client = redis::Client::open(info).map_err(|e| refused(url.scrub(describe(&e))))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| refused(url.scrub(describe(&e))))?;
        let sink = Self {
            url,
            key,
            connection,
            timeout,
        };
        sink.check_key().await?;
        Ok(sink)
    }

    /// How long connecting, or waiting for Redis's answer, may take before a publish counts as
    /// failed (default [`DEFAULT_TIMEOUT`]): the worker then retries it with its back-off.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The stream written to.
    pub fn stream(&self) -> &str {
        &self.key
    }

    /// `TYPE KEY` must be `stream` or `none`. A server that cannot be reached is only warned
    /// about; one that refuses the credentials stops the start.
    async fn check_key(&self) -> Result<(), SinkError> {
        let mut connection = self.connection.clone();
        let kind = redis::cmd("TYPE").arg(&self.key).to_owned();
        let answer =
            tokio::time::timeout(self.timeout, kind.query_async::<String>(&mut connection)).await;
        let refused = |reason: String| SinkError::Refused {
            url: self.url.shown.clone(),
            reason: self.url.scrub(reason),
        };
        match answer {
            Ok(Ok(kind)) if kind == "stream" || kind == "none" => Ok(()),
            Ok(Ok(kind)) => Err(refused(format!(
                "key {:?} holds a {kind}, not a stream: give the sink a stream of its own",
                self.key
            ))),
            Ok(Err(e))
                if !(e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_refusal()
                    || e.is_connection_dropped()) =>
            {
                Err(refused(describe(&e)))
            }
            Ok(Err(e)) => {
                self.warn_unreachable(describe(&e));
                Ok(())
            }
            Err(_) => {
                self.warn_unreachable("no answer in time".to_owned());
                Ok(())
            }
        }
    }

    fn warn_unreachable(&self, error: String) {
        tracing::warn!(sink = %self.url.shown, error = %self.url.scrub(error),
            "Redis unreachable at start: webhooks are still received and stored; \
             the worker retries each until Redis is back");
    }

    async fn publish(&self, job: &Job) -> Result<(), String> {
        if job.seq < 1 {
            return Err(format!(
                "arrival position {} cannot be a stream entry ID",
                job.seq
            ));
        }
        let entry = format!("{}-0", job.seq);
        let attempt = async {
            match self.xadd(job, &entry).await {
                Ok(_) => Ok(()),
                Err(e) if e.to_string().contains(NOT_ABOVE_TOP) => self.not_above_top(job).await,
                Err(e) => Err(describe(&e)),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.explain(&e)),
            Err(_) => Err(self.explain("no answer in time")),
        }
    }

    async fn xadd(&self, job: &Job, entry: &str) -> redis::RedisResult<String> {
        let mut connection = self.connection.clone();
        redis::cmd("XADD")
            .arg(&self.key)
            .arg(entry)
            .arg("id")
            .arg(&job.webhook.id)
            .arg("event")
            .arg(&job.webhook.event)
            .arg("body")
            .arg(job.webhook.to_json_string())
            .query_async(&mut connection)
            .await
    }

    async fn range(&self, from: &str, to: &str) -> Result<StreamRangeReply, String> {
        let mut connection = self.connection.clone();
        redis::cmd("XRANGE")
            .arg(&self.key)
            .arg(from)
            .arg(to)
            .query_async(&mut connection)
            .await
            .map_err(|e| describe(&e))
    }

    /// Redis refused `<seq>-0` as not above the stream's top: work out whether this webhook is
    /// already there (success) or is being handed on late; see the [module docs](self).
    async fn not_above_top(&self, job: &Job) -> Result<(), String> {
        let id = job.webhook.id.as_str();
        let entry = format!("{}-0", job.seq);
        let holds = |found: &redis::streams::StreamId| found.get::<String>("id");
        let exact = self.range(&entry, &entry).await?;
        if let Some(found) = exact.ids.first() {
            return match holds(found) {
                Some(held) if held == id => {
                    tracing::info!(id, entry = %entry, stream = %self.key,
                        "Redis already holds this webhook: a repeat, not added twice");
                    Ok(())
                }
                held => Err(format!(
                    "entry {entry} of stream {:?} holds webhook {:?}, not {id:?}: the stream \
                     holds another store's webhooks; give this receiver a stream of its own",
                    self.key,
                    held.unwrap_or_default()
                )),
            };
        }
        let mut connection = self.connection.clone();
        let info: StreamInfoStreamReply = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&self.key)
            .query_async(&mut connection)
            .await
            .map_err(|e| describe(&e))?;
        let top = info.last_generated_id;
        if top == entry {
            tracing::info!(id, entry = %entry, stream = %self.key,
                "Redis already took this webhook (since deleted from the stream): not added twice");
            return Ok(());
        }
        let top_position = top
            .split_once('-')
            .and_then(|(ms, _)| ms.parse::<u64>().ok())
            .ok_or_else(|| format!("stream {:?} has an unreadable last ID {top:?}", self.key))?;
        // The top must be one of ours: `<position>-0` written by a receiver (unless a consumer
        // has deleted it since), or a late webhook after it. An entry there without our fields
        // was added by another producer.
        let anchor = format!("{top_position}-0");
        let foreign = self
            .range(&anchor, &anchor)
            .await?
            .ids
            .first()
            .is_some_and(|e| holds(e).is_none() || !e.contains_key("body"));
        if foreign {
            return Err(format!(
                "stream {:?} was last written by something other than passfort-receiver \
                 (last ID {top}): give this receiver a stream of its own",
                self.key
            ));
        }
        let late = self
            .range(
                &format!("{top_position}-1"),
                &format!("{top_position}-{}", u64::MAX),
            )
            .await?;
        if late.ids.iter().any(|e| holds(e).as_deref() == Some(id)) {
            tracing::info!(id, stream = %self.key,
                "Redis already holds this (late) webhook: a repeat, not added twice");
            return Ok(());
        }
        let added = self
            .xadd(job, &format!("{top_position}-*"))
            .await
            .map_err(|e| describe(&e))?;
        tracing::warn!(id, position = job.seq, entry = %added, stream = %self.key,
            "webhook added after webhooks that arrived after it (a dead letter put back, or \
             per-profile ordering): its entry ID is not its arrival position");
        Ok(())
    }

    fn explain(&self, outcome: &str) -> String {
        self.url.scrub(format!(
            "Redis XADD to stream {:?} via {} failed: {outcome}",
            self.key, self.url.shown
        ))
    }
}

#[async_trait]
impl Handler for RedisSink {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        Ok(self.publish(job).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(raw: &str) -> Result<Target, SinkError> {
        target_of(&BrokerUrl::parse_with(raw, "redis", None).unwrap())
    }

    #[test]
    fn reads_database_and_stream() {
        let t = target("redis://:pw@127.0.0.1:6379/3?stream=passfort").unwrap();
        assert_eq!((t.db, t.key.as_str()), (3, "passfort"));
        let t = target("redis://127.0.0.1?stream=a%3Ab").unwrap();
        assert_eq!((t.db, t.key.as_str()), (0, "a:b"));
        for bad in [
            "redis://h/0",
            "redis://h/0?stream=",
            "redis://h/x?stream=s",
            "redis://h/-1?stream=s",
            "redis://h/0?stream=s&maxlen=5",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }
}

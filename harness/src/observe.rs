//! What the target says it processed: the observe file.
//!
//! A black-box harness can see answers, but "processed once, in order" (spec §4) happens behind
//! the answer, in the target's worker. So the target appends one JSON object per webhook it
//! processed to a file, in processing order, each with at least the webhook's `id` (the
//! receiver's `jsonl:` sink writes exactly that). This module reads that file incrementally and
//! waits for the ids a scenario expects.
//!
//! A wait ends as soon as the answer is clear: when every id is there, when the target has
//! processed nothing new for a quiet period (it shows no progress, so what is missing will not
//! come), or at the longest wait allowed. A flawed target is judged in seconds, not minutes,
//! while a correct one that is still working through a backlog keeps the wait going.
//!
//! The file may hold records from earlier runs or scenarios: every scenario sends fresh ids and
//! looks only at its own.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use passfort_clock::SharedClock;

/// The observe file cannot be read or does not hold what the contract says.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// Reading failed for another reason than the file not existing yet.
    #[error("cannot read the observe file {path}: {source}")]
    Io {
        /// The observe file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A complete line is not a JSON object with a string `id`.
    #[error(
        "line {line} of the observe file {path} is not a JSON object with a string `id` \
         (the target must append one such object per processed webhook): {problem}"
    )]
    Malformed {
        /// The observe file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
}

/// Everything read from the observe file so far: processed ids, in file order.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    ids: Vec<String>,
    counts: HashMap<String, usize>,
    records_with_secret: usize,
    ids_with_secret: std::collections::HashSet<String>,
}

impl Observation {
    /// How many times `id` was processed.
    pub fn count(&self, id: &str) -> usize {
        self.counts.get(id).copied().unwrap_or(0)
    }

    /// Whether `id` was processed at all.
    pub fn contains(&self, id: &str) -> bool {
        self.count(id) > 0
    }

    /// Of `ids`, those never processed, in the order given.
    pub fn missing<'a>(&self, ids: &'a [String]) -> Vec<&'a str> {
        ids.iter()
            .filter(|id| !self.contains(id))
            .map(String::as_str)
            .collect()
    }

    /// The ids of `wanted` in the order the target processed them, each at its first processing
    /// (duplicates are [`Observation::count`]'s business, not order's).
    pub fn first_processing_order(&self, wanted: &[String]) -> Vec<String> {
        let wanted: std::collections::HashSet<&str> = wanted.iter().map(String::as_str).collect();
        let mut seen = std::collections::HashSet::new();
        self.ids
            .iter()
            .filter(|id| wanted.contains(id.as_str()) && seen.insert(id.as_str()))
            .cloned()
            .collect()
    }

    /// How many records carried the shared secret verbatim (spec §6: strip it before storing or
    /// forwarding).
    pub fn records_with_secret(&self) -> usize {
        self.records_with_secret
    }

    /// Whether a record of `id` carried the shared secret verbatim.
    pub fn carried_secret(&self, id: &str) -> bool {
        self.ids_with_secret.contains(id)
    }

    /// Every processed id, in file order, duplicates included.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

#[derive(Debug, Default)]
struct Cursor {
    offset: u64,
    lines: usize,
    seen: Observation,
    /// When a read last found a new record: the target's last sign of progress.
    last_progress: Option<SystemTime>,
}

/// How long a wait for processed ids may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// The longest a wait may take, however the target is doing (`--observe-timeout`).
    pub timeout: Duration,
    /// A wait ends once the observe file gained nothing for this long (`--observe-quiet`): a
    /// target that processes nothing more will not process what is missing either. Any new
    /// record counts as progress, an earlier scenario's too, since the target works in order.
    pub quiet: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            quiet: Duration::from_secs(5),
        }
    }
}

/// Why a wait for processed ids ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every id was processed.
    Complete,
    /// Nothing new was processed for [`Patience::quiet`].
    Quiet,
    /// [`Patience::timeout`] passed while the target was still making progress.
    TimedOut,
}

/// Reads the observe file a target appends to.
#[derive(Debug, Clone)]
pub struct Observer {
    path: PathBuf,
    clock: SharedClock,
    poll_every: Duration,
    secret: Option<String>,
    cursor: Arc<Mutex<Cursor>>,
}

impl Observer {
    /// An observer of `path`, polling on `clock`.
    pub fn new(path: impl Into<PathBuf>, clock: SharedClock) -> Self {
        Self {
            path: path.into(),
            clock,
            poll_every: Duration::from_millis(20),
            secret: None,
            cursor: Arc::default(),
        }
    }

    /// Also count records that contain `secret` verbatim.
    pub fn watching_for_secret(mut self, secret: &str) -> Self {
        self.secret = Some(secret.to_owned());
        self
    }

    /// The file observed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads what was appended since the last read and returns everything seen so far.
    ///
    /// A missing file is an empty one (the target creates it on its first webhook); a last line
    /// without its newline is still being written and is left for the next read.
    pub fn read(&self) -> Result<Observation, ObserveError> {
        let mut cursor = self
            .cursor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let io = |source| ObserveError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(cursor.seen.clone())
            }
            Err(error) => return Err(io(error)),
        };
        let len = file.metadata().map_err(io)?.len();
        if len < cursor.offset {
            // Truncated or replaced: start again from the top.
            *cursor = Cursor::default();
        }
        file.seek(SeekFrom::Start(cursor.offset)).map_err(io)?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh).map_err(io)?;
        let complete = match fresh.iter().rposition(|b| *b == b'\n') {
            Some(last_newline) => &fresh[..=last_newline],
            None => return Ok(cursor.seen.clone()),
        };
        // `complete` ends with its newline: every piece before it is one whole line.
        for raw in complete[..complete.len() - 1].split(|b| *b == b'\n') {
            cursor.lines += 1;
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = cursor.lines;
            let id = parse_id(raw).map_err(|problem| ObserveError::Malformed {
                path: self.path.clone(),
                line,
                problem,
            })?;
            if let Some(secret) = &self.secret {
                if String::from_utf8_lossy(raw).contains(secret.as_str()) {
                    cursor.seen.records_with_secret += 1;
                    cursor.seen.ids_with_secret.insert(id.clone());
                }
            }
            *cursor.seen.counts.entry(id.clone()).or_default() += 1;
            cursor.seen.ids.push(id);
            cursor.last_progress = Some(self.clock.now());
        }
        cursor.offset += complete.len() as u64;
        Ok(cursor.seen.clone())
    }

    /// When a read last found a new record, if one ever did.
    pub fn last_progress(&self) -> Option<SystemTime> {
        self.cursor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .last_progress
    }

    /// Waits until every id of `ids` was processed, the target shows no progress for
    /// `patience.quiet`, or `patience.timeout` passes, all on the clock; returns what was seen
    /// and why the wait ended.
    pub async fn wait_for(
        &self,
        ids: &[String],
        patience: Patience,
    ) -> Result<Waited, ObserveError> {
        let started = self.clock.now();
        let give_up = passfort_clock::after(started, patience.timeout);
        loop {
            let seen = self.read()?;
            let now = self.clock.now();
            let waited = now.duration_since(started).unwrap_or(Duration::ZERO);
            let ended = if seen.missing(ids).is_empty() {
                Some(Ended::Complete)
            } else if now >= give_up {
                Some(Ended::TimedOut)
            } else {
                // Quiet since the later of the wait's start and the last new record: what was
                // just sent gets the whole quiet period, and a target still working through
                // earlier webhooks keeps the wait alive.
                let since = self
                    .last_progress()
                    .map_or(started, |last| last.max(started));
                (now >= passfort_clock::after(since, patience.quiet)).then_some(Ended::Quiet)
            };
            if let Some(ended) = ended {
                return Ok(Waited {
                    seen,
                    ended,
                    waited,
                });
            }
            self.clock.sleep(self.poll_every).await;
        }
    }
}

/// The result of [`Observer::wait_for`].
#[derive(Debug, Clone)]
pub struct Waited {
    /// Everything seen when the wait ended.
    pub seen: Observation,
    /// Why it ended.
    pub ended: Ended,
    /// How long it took, on the observer's clock.
    pub waited: Duration,
}

impl Waited {
    /// Whether every expected id was there.
    pub fn complete(&self) -> bool {
        self.ended == Ended::Complete
    }
}

fn parse_id(raw: &[u8]) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_slice(raw).map_err(|error| format!("not JSON ({error})"))?;
    match value.get("id") {
        Some(serde_json::Value::String(id)) => Ok(id.clone()),
        Some(other) => Err(format!("`id` is {other}, not a string")),
        None => Err("no `id` field".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use passfort_clock::Clock;
    use std::io::Write;

    fn observer(dir: &tempfile::TempDir) -> Observer {
        Observer::new(
            dir.path().join("observe.jsonl"),
            Arc::new(passfort_clock::SystemClock),
        )
    }

    fn append(dir: &tempfile::TempDir, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("observe.jsonl"))
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(observer(&dir).read().unwrap().ids().is_empty());
    }

    #[test]
    fn reads_appended_lines_incrementally_and_leaves_a_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let observer = observer(&dir);
        append(
            &dir,
            "{\"id\":\"a\",\"event\":\"X\"}\n{\"id\":\"b\"}\n{\"id\":",
        );
        let seen = observer.read().unwrap();
        assert_eq!(seen.ids(), ["a", "b"]);
        append(&dir, "\"a\"}\n");
        let seen = observer.read().unwrap();
        assert_eq!(seen.ids(), ["a", "b", "a"]);
        assert_eq!(seen.count("a"), 2);
        assert_eq!(
            seen.first_processing_order(&["b".into(), "a".into()]),
            ["a", "b"]
        );
        assert_eq!(seen.missing(&["a".into(), "c".into()]), ["c"]);
    }

    #[test]
    fn a_line_without_an_id_is_named() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir, "{\"id\":\"a\"}\n{\"event\":\"X\"}\n");
        let error = observer(&dir).read().unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(error.to_string().contains("no `id`"), "{error}");
    }

    #[test]
    fn records_holding_the_secret_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        append(
            &dir,
            "{\"id\":\"a\",\"secret\":\"s3cr3t\"}\n{\"id\":\"b\"}\n",
        );
        let seen = observer(&dir).watching_for_secret("s3cr3t").read().unwrap();
        assert_eq!(seen.records_with_secret(), 1);
        assert!(seen.carried_secret("a"));
        assert!(!seen.carried_secret("b"));
    }

    #[tokio::test]
    async fn waiting_ends_when_every_id_is_there() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n");
        let waited = observer(&dir)
            .wait_for(&["b".into(), "a".into()], Patience::default())
            .await
            .unwrap();
        assert!(waited.complete());
    }

    /// Runs a wait for `wanted` on a virtual clock, calling `target(elapsed)` after every step
    /// of time so a test can play a target appending records; returns the wait's result.
    async fn wait_on_virtual_time(
        wanted: &str,
        patience: Patience,
        mut target: impl FnMut(&tempfile::TempDir, Duration),
    ) -> Waited {
        let dir = tempfile::tempdir().unwrap();
        let clock = passfort_clock::VirtualClock::new();
        let start = clock.now();
        let observer = Observer::new(dir.path().join("observe.jsonl"), Arc::new(clock.clone()));
        let wanted = vec![wanted.to_owned()];
        let waiting = tokio::spawn(async move { observer.wait_for(&wanted, patience).await });
        while !waiting.is_finished() {
            if clock.advance_to_next().is_some() {
                target(&dir, clock.now().duration_since(start).unwrap());
            }
            tokio::task::yield_now().await;
        }
        waiting.await.unwrap().unwrap()
    }

    const PATIENCE: Patience = Patience {
        timeout: Duration::from_secs(60),
        quiet: Duration::from_secs(5),
    };

    #[tokio::test(flavor = "current_thread")]
    async fn a_target_that_processes_nothing_is_given_up_on_after_the_quiet_period() {
        let waited = wait_on_virtual_time("never", PATIENCE, |_, _| {}).await;
        assert_eq!(waited.ended, Ended::Quiet);
        assert_eq!(waited.waited, Duration::from_secs(5));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn progress_on_other_webhooks_keeps_the_wait_alive_until_it_stops() {
        // The target processes an earlier webhook every 2 s for 20 s, never the wanted one: the
        // wait lasts until 5 s after its last record.
        let mut next = Duration::from_secs(2);
        let waited = wait_on_virtual_time("never", PATIENCE, |dir, elapsed| {
            if elapsed >= next && next <= Duration::from_secs(20) {
                append(dir, &format!("{{\"id\":\"earlier-{}\"}}\n", next.as_secs()));
                next += Duration::from_secs(2);
            }
        })
        .await;
        assert_eq!(waited.ended, Ended::Quiet);
        assert_eq!(waited.waited, Duration::from_secs(25));
        assert_eq!(waited.seen.ids().len(), 10);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_target_that_keeps_working_is_waited_for_until_the_timeout() {
        let mut next = Duration::from_secs(1);
        let waited = wait_on_virtual_time("never", PATIENCE, |dir, elapsed| {
            if elapsed >= next {
                append(dir, &format!("{{\"id\":\"busy-{}\"}}\n", next.as_secs()));
                next += Duration::from_secs(1);
            }
        })
        .await;
        assert_eq!(waited.ended, Ended::TimedOut);
        assert_eq!(waited.waited, Duration::from_secs(60));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_id_processed_inside_the_quiet_period_completes_the_wait_at_once() {
        let mut written = false;
        let waited = wait_on_virtual_time("late", PATIENCE, |dir, elapsed| {
            if elapsed >= Duration::from_millis(4_900) && !written {
                append(dir, "{\"id\":\"late\"}\n");
                written = true;
            }
        })
        .await;
        assert!(waited.complete(), "{:?}", waited.ended);
        assert!(
            waited.waited < Duration::from_secs(5),
            "{:?}",
            waited.waited
        );
    }
}

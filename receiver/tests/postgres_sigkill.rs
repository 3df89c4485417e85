//! A `passfort-receiver work` process killed with SIGKILL in the middle of a webhook: its lease
//! holds until its deadline (nobody else touches that profile meanwhile), then another worker
//! process takes the webhook over and goes on in order. Nothing is lost and nothing that was
//! committed as done is done again.
//!
//! Real processes run on the real clock, so the workers use a short `--lease` and the test
//! waits for events (a marker file, the sink's log) with a generous upper bound, never for a
//! fixed time. The exclusion before the deadline is checked on the store with explicit times.

mod postgres_support;

use passfort_receiver::store::{Lease, PostgresStore, State, Store};
use passfort_receiver::testing::{self, WebhookBuilder};
use postgres_support::TestDatabase;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_passfort-receiver");

/// The sink: logs `start ID WORKER`, hangs forever on `$BLOCK_ID` (after touching `$MARK`),
/// and logs `done ID WORKER` when it succeeds.
const SINK: &str = "exec:echo \"start $PASSFORT_WEBHOOK_ID $WORKER\" >> \"$LOG\"; \
    if [ \"$PASSFORT_WEBHOOK_ID\" = \"$BLOCK_ID\" ]; then touch \"$MARK\"; \
    while :; do sleep 0.05; done; fi; \
    echo \"done $PASSFORT_WEBHOOK_ID $WORKER\" >> \"$LOG\"";

struct Worker {
    child: Child,
    name: &'static str,
}

impl Worker {
    fn start(db: &str, name: &'static str, dir: &Path, block: &str) -> Self {
        let child = Command::new(BIN)
            .args([
                "work",
                "--database",
                db,
                "--sink",
                SINK,
                "--lease",
                "2s",
                "--poll-interval",
                "50ms",
                "--worker-name",
                name,
            ])
            .env("LOG", dir.join("log"))
            .env("MARK", dir.join("blocked"))
            .env("BLOCK_ID", block)
            .env("WORKER", name)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap())
            // Its own process group, so that the sink's shell dies with it.
            .process_group(0)
            .spawn()
            .unwrap();
        Self { child, name }
    }

    fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (polling, at most `limit`) until `ready` holds; panics with `what` otherwise.
fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn done_ids(dir: &Path) -> Vec<String> {
    log_lines(dir)
        .iter()
        .filter_map(|l| l.strip_prefix("done "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_taken_over_after_its_lease() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = PostgresStore::open_with_connections(&db.url, Default::default(), 2)
        .await
        .unwrap();
    let hooks: Vec<WebhookBuilder> = (0..6).map(|_| testing::check_completed()).collect();
    let ids: Vec<String> = hooks.iter().map(|h| h.get_id().to_owned()).collect();
    store
        .insert(&testing::verified(&hooks), SystemTime::now())
        .await
        .unwrap();
    let victim = ids[2].clone();

    // Worker A hands on the first two, then hangs inside the third; kill it there.
    let mut a = Worker::start(&db.url, "worker-a", dir.path(), &victim);
    let marker: PathBuf = dir.path().join("blocked");
    wait_until(
        Duration::from_secs(60),
        "worker A to reach the third webhook",
        || marker.exists(),
    );
    a.kill();
    assert_eq!(
        done_ids(dir.path()),
        ids[..2],
        "{} did the first two",
        a.name
    );

    // The dead worker still holds the lease until its deadline: nobody else may take it.
    let entries = store.entries().await.unwrap();
    let held = entries.iter().find(|e| e.webhook.id == victim).unwrap();
    assert_eq!((held.state, held.attempts), (State::Leased, 1));
    let deadline = match store
        .lease_next("someone", SystemTime::now(), Duration::from_secs(60))
        .await
        .unwrap()
    {
        Lease::Busy { until, owner } => {
            assert_eq!(owner, "worker-a");
            until
        }
        other => panic!("the dead worker's lease must still exclude: {other:?}"),
    };
    assert!(deadline > UNIX_EPOCH);

    // Worker B takes over once the lease has expired, and carries on in order.
    let _b = Worker::start(&db.url, "worker-b", dir.path(), "none");
    wait_until(
        Duration::from_secs(120),
        "worker B to finish the queue",
        || done_ids(dir.path()).len() >= ids.len(),
    );
    assert_eq!(
        done_ids(dir.path()),
        ids,
        "every webhook done once, in order"
    );
    let starts: Vec<String> = log_lines(dir.path())
        .into_iter()
        .filter(|l| l.starts_with(&format!("start {victim}")))
        .collect();
    assert_eq!(
        starts,
        [
            format!("start {victim} worker-a"),
            format!("start {victim} worker-b")
        ],
        "the killed webhook is retried by the other worker, once"
    );
    // The sink logs "done" just before the worker records it: wait for the store as well.
    let hang = Instant::now() + Duration::from_secs(120);
    let entries = loop {
        let entries = store.entries().await.unwrap();
        if entries.iter().all(|e| e.state == State::Done) || Instant::now() > hang {
            break entries;
        }
        tokio::task::yield_now().await;
    };
    assert!(entries.iter().all(|e| e.state == State::Done));
    let attempts: Vec<u32> = entries.iter().map(|e| e.attempts).collect();
    assert_eq!(attempts, [1, 1, 2, 1, 1, 1]);
    store.close().await;
}

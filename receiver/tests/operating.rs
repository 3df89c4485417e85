//! The real `passfort-receiver` binary, operated for the long run: `prune` (dry, JSON, text),
//! `dead-letter drop`, `status --json` retention figures, `replay` with its exit codes (0, 1,
//! 2), the retention flags refused when contradictory, and `serve --allow-from` with its metrics.
//!
//! The database is prepared through the library with times in the past (the binary runs on the
//! system clock), so nothing waits.

use passfort_receiver::store::{AfterFailure, Lease, SharedStore, SqliteStore, Store};
use passfort_receiver::testing::{self, WebhookBuilder};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_passfort-receiver");
const DAY: Duration = Duration::from_secs(86_400);

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PASSFORT_WEBHOOK_SECRET")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Six webhooks received 50 days ago in three requests a minute apart: the first four processed
/// 40 days ago (due for erasure), the fifth a dead letter, the sixth processed an hour ago.
async fn prepare(dir: &Path) -> (String, Vec<WebhookBuilder>, SystemTime) {
    let url = format!("sqlite://{}/operating.db", dir.display());
    let store: SharedStore = Arc::new(SqliteStore::open(&url).await.unwrap());
    let received = SystemTime::now() - 50 * DAY;
    let hooks: Vec<WebhookBuilder> = vec![
        testing::check_completed(),
        testing::product_status_changed(),
        testing::check_completed(),
        testing::collected_data_updated(),
        testing::check_completed(),
        testing::check_completed(),
    ];
    for (i, request) in hooks.chunks(2).enumerate() {
        let at = received + Duration::from_secs(60) * i as u32;
        store.insert(&testing::verified(request), at).await.unwrap();
    }
    let lease = |now| {
        let store = store.clone();
        async move {
            match store
                .lease_next("w", now, Duration::from_secs(60))
                .await
                .unwrap()
            {
                Lease::Acquired(leased) => leased,
                other => panic!("{other:?}"),
            }
        }
    };
    let processed = SystemTime::now() - 40 * DAY;
    for _ in 0..4 {
        let leased = lease(processed).await;
        store.complete(leased.seq, "w", processed).await.unwrap();
    }
    let dead = lease(processed).await;
    store
        .fail(
            dead.seq,
            "w",
            processed,
            "sink down",
            AfterFailure::DeadLetter,
        )
        .await
        .unwrap();
    let recent = SystemTime::now() - Duration::from_secs(3600);
    let last = lease(recent).await;
    store.complete(last.seq, "w", recent).await.unwrap();
    (url, hooks, received)
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_drop_status_and_replay_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (db, hooks, received) = prepare(dir.path()).await;
    let ids: Vec<String> = hooks.iter().map(|h| h.get_id().to_owned()).collect();

    let refused = run(&[
        "prune",
        "--database",
        &db,
        "--keep-bodies",
        "30d",
        "--keep-ids",
        "7d",
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused)
            .contains("--keep-ids (7days) must not be shorter than --keep-bodies (30days)"),
        "{}",
        stderr(&refused)
    );

    let dry = run(&["prune", "--database", &db, "--dry-run", "--json"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(
        json_of(&stdout(&dry)),
        serde_json::json!({"bodies_erased": 4, "ids_forgotten": 0})
    );
    let again = run(&["prune", "--database", &db, "--dry-run", "--json"]);
    assert_eq!(stdout(&again), stdout(&dry), "a dry run changes nothing");

    // Replay before anything is erased: everything, in arrival order, exit 0.
    let out_path = dir.path().join("all.jsonl");
    let sink = format!("jsonl:{}", out_path.display());
    let all = run(&["replay", "--sink", &sink, "--database", &db]);
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    let replayed: Vec<String> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|line| json_of(line)["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        replayed, ids,
        "every stored webhook, dead letter included, in arrival order"
    );

    let pruned = run(&["prune", "--database", &db, "--json"]);
    assert!(pruned.status.success(), "{}", stderr(&pruned));
    assert_eq!(
        json_of(&stdout(&pruned)),
        json_of(&stdout(&dry)),
        "does what the dry run said"
    );
    let text = run(&["prune", "--database", &db]);
    assert_eq!(stdout(&text), "erased 0 bodies, forgot 0 ids\n");

    let dropped = run(&["dead-letter", "drop", &ids[4], "--database", &db]);
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    let unknown = run(&["dead-letter", "drop", "no-such-id", "--database", &db]);
    assert!(!unknown.status.success());
    assert!(run(&["dead-letter", "list", "--database", &db])
        .stdout
        .starts_with(b"no dead letters"));

    let status = run(&["status", "--database", &db, "--json"]);
    let status = json_of(&stdout(&status));
    let retention = &status["retention"];
    assert_eq!(retention["webhooks_stored"], 6, "{status}");
    assert_eq!(retention["bodies_kept"], 1, "{status}");
    assert_eq!(retention["bodies_erased_total"], 5, "{status}");
    assert_eq!(retention["ids_forgotten_total"], 0, "{status}");
    let age = retention["oldest_kept_body_age_seconds"].as_f64().unwrap();
    assert!(
        age > (49 * DAY).as_secs_f64(),
        "the sixth webhook's body: {age}"
    );
    assert!(retention["database_bytes"].as_u64().unwrap() > 0);

    // Replay: erased ones in the range are listed and skipped: exit 1.
    let out_path = dir.path().join("second.jsonl");
    let sink = format!("jsonl:{}", out_path.display());
    let partial = run(&[
        "replay",
        "--sink",
        &sink,
        "--database",
        &db,
        "--from-id",
        &ids[3],
    ]);
    assert_eq!(partial.status.code(), Some(1), "{}", stderr(&partial));
    assert!(
        stderr(&partial).contains(&format!("skipped 4 {}", ids[3])),
        "{}",
        stderr(&partial)
    );
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap().lines().count(),
        1
    );
    assert!(std::fs::read_to_string(&out_path)
        .unwrap()
        .contains(&ids[5]));

    // Time bounds (inclusive, on the acknowledgement time) and an event filter; exit 0.
    let third_request =
        humantime::format_rfc3339_millis(received + Duration::from_secs(120)).to_string();
    let out_path = dir.path().join("third.jsonl");
    let sink = format!("jsonl:{}", out_path.display());
    let window = run(&[
        "replay",
        "--sink",
        &sink,
        "--database",
        &db,
        "--since",
        &third_request,
        "--until",
        &third_request,
        "--event",
        "CHECK_COMPLETED",
        "--dry-run",
    ]);
    assert_eq!(
        window.status.code(),
        Some(1),
        "the dropped dead letter is in it: {}",
        stderr(&window)
    );
    let window = run(&[
        "replay",
        "--sink",
        &sink,
        "--database",
        &db,
        "--since",
        &third_request,
        "--to-id",
        &ids[5],
        "--event",
        "CHECK_COMPLETED",
        "--event",
        "NOTHING_ELSE",
        "--from-id",
        &ids[4],
    ]);
    assert_eq!(
        window.status.code(),
        Some(2),
        "--since and --from-id together is bad usage"
    );
    let window = run(&[
        "replay",
        "--sink",
        &sink,
        "--database",
        &db,
        "--from-id",
        &ids[5],
        "--to-id",
        &ids[5],
    ]);
    assert_eq!(window.status.code(), Some(0), "{}", stderr(&window));
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap().lines().count(),
        1
    );

    // Bad usage: an id that is not stored, a time that is not RFC 3339.
    let missing = run(&[
        "replay",
        "--sink",
        "stdout",
        "--database",
        &db,
        "--to-id",
        "no-such-id",
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("no-such-id"));
    let bad_time = run(&[
        "replay",
        "--sink",
        "stdout",
        "--database",
        &db,
        "--since",
        "yesterday",
    ]);
    assert_eq!(bad_time.status.code(), Some(2));

    // A failing sink stops at the first webhook and says where to continue.
    let failing = run(&[
        "replay",
        "--sink",
        "exec:exit 3",
        "--database",
        &db,
        "--from-id",
        &ids[5],
    ]);
    assert_eq!(failing.status.code(), Some(1));
    assert!(
        stderr(&failing).contains(&format!("rerun with --from-id {}", ids[5])),
        "{}",
        stderr(&failing)
    );

    // Replays changed nothing in the queue.
    let status = json_of(&stdout(&run(&["status", "--database", &db, "--json"])));
    assert_eq!(status["queue_depth"], 0);
    assert_eq!(status["done"], 6);
}

#[test]
fn serve_refuses_ids_kept_shorter_than_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/refused.db", dir.path().display());
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--database", &db, "--keep-bodies", "2d", "--keep-ids", "1d"])
        .env("PASSFORT_WEBHOOK_SECRET", "s3cret-for-refusal")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("must not be shorter than --keep-bodies"),
        "{}",
        stderr(&out)
    );
}

/// `serve --allow-from`: a refused address gets 403, the admin metrics count it and carry the
/// retention figures.
#[tokio::test]
async fn serve_with_an_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/allow.db", dir.path().display());
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--database",
            &db,
            "--allow-from",
            "127.0.0.2,passfort",
            "--no-worker",
        ])
        .env("PASSFORT_WEBHOOK_SECRET", testing::SECRET)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = loop {
        let line = lines.next().expect("a readiness line").unwrap();
        if line.contains("passfort-receiver ready") {
            break line;
        }
    };
    let field = |name: &str| -> SocketAddr {
        ready
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (public, admin) = (field("listen="), field("admin="));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let hook = testing::check_completed();
    let refused = client
        .post(format!("http://{public}/webhooks/passfort"))
        .bearer_auth(testing::SECRET)
        .body(hook.json().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "127.0.0.1 is not on the list");
    let health = client
        .get(format!("http://{public}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let allowed = reqwest::Client::builder()
        .no_proxy()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap()
        .post(format!("http://{public}/webhooks/passfort"))
        .bearer_auth(testing::SECRET)
        .body(hook.json().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let metrics = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("passfort_requests_rejected_total{reason=\"ip\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("passfort_store_webhooks 1"), "{metrics}");
    assert!(
        metrics.contains("passfort_store_bodies_kept 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("passfort_bodies_erased_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("passfort_store_database_bytes "),
        "{metrics}"
    );
    let logged = loop {
        let line = lines.next().expect("the refusal logged").unwrap();
        if line.contains("allow-list") {
            break line;
        }
    };
    assert!(logged.contains("127.0.0.1"), "{logged}");
    let _ = child.kill();
    let _ = child.wait();
}

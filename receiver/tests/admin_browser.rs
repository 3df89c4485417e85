//! The admin page end to end, as the person on call uses it: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) driven over WebDriver against the real `passfort-receiver`
//! binary, with real webhooks posted to it and a real failing `exec:` sink.
//!
//! Ignored by default so `cargo test --workspace` passes on a machine without Chromium;
//! `.ci/dashboard-browser` installs the packages and runs `cargo test -p passfort-receiver
//! --test admin_browser -- --ignored`. Run that way, a missing browser is a failure, never a
//! skip.
//!
//! Every wait is a bounded poll of the page (the page refreshes itself every two seconds) or of
//! the JSON API: no fixed sleeps, no timed assertions. Screenshots go to
//! `$ARTIFACTS_DIR/admin-screenshots/`, or `target/admin-screenshots/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use passfort_receiver::testing::{self, WebhookBuilder};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ADMIN_TOKEN: &str = "browser-admin-token-0123456789";
/// How long any one condition may take to show on the page before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

// ---- processes -----------------------------------------------------------------------------

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `passfort-receiver serve` and its two base URLs.
struct Receiver {
    _process: Process,
    public: String,
    admin: String,
}

/// Starts `passfort-receiver serve` on free ports with `args`, the test secret, and the admin
/// token when `token` is set; reads both addresses from its readiness line.
fn start_receiver(dir: &Path, token: Option<&str>, args: &[&str]) -> Receiver {
    let mut command = Command::new(env!("CARGO_BIN_EXE_passfort-receiver"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--database")
        .arg(format!("sqlite://{}/queue.db", dir.display()))
        .args(args)
        .env("PASSFORT_WEBHOOK_SECRET", testing::SECRET)
        .env_remove("PASSFORT_ADMIN_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("PASSFORT_ADMIN_TOKEN", token);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let ready = loop {
        let line = lines
            .next()
            .expect("passfort-receiver exited before it was ready")
            .unwrap();
        if line.starts_with("passfort-receiver ready ") {
            break line;
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let field = |name: &str| {
        ready
            .split_whitespace()
            .find_map(|part| part.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {ready:?}"))
            .to_owned()
    };
    Receiver {
        _process: Process(child),
        public: format!("http://{}", field("listen")),
        admin: format!("http://{}", field("admin")),
    }
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install Debian's {package} (`apt-get install -y chromium \
         chromium-driver`); .ci/dashboard-browser does this before running these tests"
    );
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts chromedriver and waits (bounded) until it answers `/status` as ready.
async fn start_chromedriver() -> (Process, String) {
    require(CHROMIUM, "chromium");
    require(CHROMEDRIVER, "chromium-driver");
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
    let process = Process(child);
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(response) = client.get(format!("{url}/status")).send().await {
            if let Ok(status) = response.json::<Value>().await {
                if status["value"]["ready"] == true {
                    return (process, url);
                }
            }
        }
        assert!(Instant::now() < deadline, "chromedriver never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(webdriver: &str, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1366,1900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .unwrap_or_else(|e| panic!("cannot start Chromium through chromedriver: {e}"))
}

// ---- page and API helpers ------------------------------------------------------------------

async fn wait_css(client: &Client, css: &str, what: &str) -> Element {
    client
        .wait()
        .at_most(PATIENCE)
        .every(Duration::from_millis(100))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for {what} ({css}): {e}"))
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn attr(client: &Client, css: &str, name: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .attr(name)
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARTIFACTS_DIR") {
        return PathBuf::from(dir).join("admin-screenshots");
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().join("admin-screenshots")
}

async fn screenshot(client: &Client, name: &str) {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn api(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Posts webhooks as PassFort does; returns the answer's status code.
async fn post(receiver: &Receiver, body: &Value, secret: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/webhooks/passfort", receiver.public))
        .bearer_auth(secret)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls the JSON API until `done` holds (bounded).
async fn wait_api(base: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = api(base, path).await;
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {value}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn dead_ids(receiver: &Receiver) -> Vec<String> {
    api(&receiver.admin, "/api/dead-letters").await["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn nonzero(client: &Client, chart: &str, series: &str) -> u64 {
    attr(
        client,
        &format!("#{chart} path[data-series='{series}']"),
        "data-nonzero",
    )
    .await
    .parse()
    .unwrap()
}

// ---- the scenarios -------------------------------------------------------------------------

/// A handler that always fails, retried later (never dead-lettered): the page shows the queue
/// stalled, for how long, the next retry and the handler's error. No token is configured, so
/// the page says actions are off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver; run by .ci/dashboard-browser with --ignored"]
async fn a_failing_handler_shows_the_queue_stalled_with_its_error() {
    let (_driver, webdriver) = start_chromedriver().await;
    let dir = tempfile::tempdir().unwrap();
    let receiver = start_receiver(
        dir.path(),
        None,
        &[
            "--sink",
            "exec:echo 'CRM said 503' >&2; exit 3",
            "--block",
            "--retry-initial",
            "1h",
        ],
    );
    let client = browser(&webdriver, &dir.path().join("profile")).await;
    client.goto(&receiver.admin).await.unwrap();
    wait_css(&client, "body[data-ready='true']", "the page to load").await;
    assert_eq!(text(&client, "#queue-state").await, "Empty");

    let hooks: Vec<WebhookBuilder> = (0..3).map(|_| testing::check_completed()).collect();
    assert_eq!(
        post(&receiver, &testing::batch_body(&hooks), testing::SECRET).await,
        200
    );
    wait_css(
        &client,
        "#queue-state[data-state='stalled'][data-waiting='3']",
        "the queue to stall",
    )
    .await;
    assert_eq!(text(&client, "#queue-state").await, "Stalled (3 waiting)");
    let failure = wait_css(
        &client,
        &format!(
            "#failures-body tr[data-test='failure'][data-id='{}']",
            hooks[0].get_id()
        ),
        "the head's failure",
    )
    .await;
    let failure = failure.text().await.unwrap();
    assert!(failure.contains("CHECK_COMPLETED"), "{failure}");
    assert!(failure.contains("exit"), "the handler's error: {failure}");
    assert_ne!(
        attr(&client, "#queue-next-retry", "data-next-retry").await,
        ""
    );
    assert_ne!(
        attr(&client, "#queue-stalled-for", "data-stalled-since").await,
        ""
    );
    assert!(text(&client, "#queue-stalled-for").await.contains("since"));
    assert_eq!(
        attr(&client, "#queue-last-received", "data-id").await,
        hooks[2].get_id()
    );
    assert_eq!(text(&client, "#queue-last-processed").await, "none yet");
    // Read-only: no token configured.
    assert_eq!(attr(&client, "#access", "data-actions").await, "disabled");
    assert!(text(&client, "#access-state")
        .await
        .contains("actions are off"));
    let status = api(&receiver.admin, "/status").await;
    assert_eq!(status["queue"], "stalled");
    screenshot(&client, "01-stalled").await;
    client.close().await.unwrap();
}

/// Traffic draws the charts; a dead letter cannot be retried without the token (cancelled, or
/// a wrong one: refused, nothing changed) and is handed on once retried with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver; run by .ci/dashboard-browser with --ignored"]
async fn charts_draw_traffic_and_a_dead_letter_is_retried_with_the_token() {
    let (_driver, webdriver) = start_chromedriver().await;
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("crm-is-up");
    let handed = dir.path().join("handed-on.jsonl");
    let sink = format!(
        "exec:test -e '{}' || {{ echo 'CRM unreachable' >&2; exit 1; }}; cat >> '{}'",
        ok.display(),
        handed.display()
    );
    let handed_on = || -> Vec<String> {
        let text = std::fs::read_to_string(&handed).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap()["id"].to_string())
            .map(|id| id.trim_matches('"').to_owned())
            .collect()
    };
    let receiver = start_receiver(
        dir.path(),
        Some(ADMIN_TOKEN),
        &["--sink", &sink, "--max-attempts", "1"],
    );
    let client = browser(&webdriver, &dir.path().join("profile")).await;
    client.goto(&receiver.admin).await.unwrap();
    wait_css(&client, "body[data-ready='true']", "the page to load").await;

    // -- Traffic: five handed on, two duplicates, one wrong secret, one bad body.
    std::fs::write(&ok, "").unwrap();
    let first: Vec<WebhookBuilder> = (0..5).map(|_| testing::check_completed()).collect();
    assert_eq!(
        post(&receiver, &testing::batch_body(&first), testing::SECRET).await,
        200
    );
    assert_eq!(
        post(
            &receiver,
            &testing::batch_body(&first[..2]),
            testing::SECRET
        )
        .await,
        200
    );
    assert_eq!(
        post(&receiver, &testing::batch_body(&first), "not-the-secret").await,
        401
    );
    assert_eq!(
        post(&receiver, &json!("a string"), testing::SECRET).await,
        400
    );
    wait_api(&receiver.admin, "/status", "five handed on", |s| {
        s["done"] == 5
    })
    .await;

    // -- The CRM goes down: the next three are dead-lettered at once (one attempt allowed).
    std::fs::remove_file(&ok).unwrap();
    let doomed: Vec<WebhookBuilder> = (0..3).map(|_| testing::product_status_changed()).collect();
    assert_eq!(
        post(&receiver, &testing::batch_body(&doomed), testing::SECRET).await,
        200
    );
    wait_api(&receiver.admin, "/status", "three dead letters", |s| {
        s["dead_letters"] == 3
    })
    .await;
    wait_css(
        &client,
        "#dead-body[data-count='3']",
        "three dead letters listed",
    )
    .await;
    wait_css(
        &client,
        "#queue-state[data-state='empty']",
        "the queue to empty",
    )
    .await;
    wait_css(
        &client,
        "#chart-webhooks:not([data-points='0'])",
        "the charts",
    )
    .await;
    // The page refreshes as a whole: once it lists the dead letters, its charts include every
    // request above.
    assert!(nonzero(&client, "chart-webhooks", "received").await >= 1);
    assert!(nonzero(&client, "chart-webhooks", "stored").await >= 1);
    assert!(nonzero(&client, "chart-webhooks", "duplicates").await >= 1);
    assert!(nonzero(&client, "chart-webhooks", "processed").await >= 1);
    assert!(nonzero(&client, "chart-webhooks", "failed").await >= 1);
    assert!(nonzero(&client, "chart-latency", "p50").await >= 1);
    let refused = client
        .find_all(Locator::Css("#chart-rejected rect[data-series]"))
        .await
        .unwrap();
    let mut reasons = Vec::new();
    for bar in refused {
        reasons.push(bar.attr("data-series").await.unwrap().unwrap_or_default());
    }
    assert!(reasons.contains(&"unauthorized".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"bad_request".to_owned()), "{reasons:?}");
    let legend = text(&client, "#chart-webhooks-legend").await;
    let legend = legend.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(legend.contains("received 10"), "{legend}");
    assert!(legend.contains("processed 5"), "{legend}");
    assert!(legend.contains("failed 3"), "{legend}");
    assert_eq!(attr(&client, "#queue-dead", "data-count").await, "3");
    screenshot(&client, "02-dead-letters").await;

    // -- Retry without the token: the page asks for it; cancelling sends nothing.
    let target = doomed[0].get_id();
    let retry = format!("#dead-body tr[data-id='{target}'] button[data-test='retry']");
    click(&client, &retry).await;
    wait_css(&client, "#token-form:not([hidden])", "the token form").await;
    click(&client, "#token-cancel").await;
    wait_css(&client, "#dead-message[data-result='error']", "the refusal").await;
    assert!(text(&client, "#dead-message")
        .await
        .contains("needs the admin token"));
    assert_eq!(dead_ids(&receiver).await.len(), 3, "nothing changed");

    // -- A wrong token: the receiver answers 401 and nothing changes.
    click(&client, &retry).await;
    wait_css(&client, "#token-form:not([hidden])", "the token form").await;
    client
        .find(Locator::Id("token-input"))
        .await
        .unwrap()
        .send_keys("not-the-admin-token-at-all")
        .await
        .unwrap();
    click(&client, "#token-submit").await;
    wait_css(&client, "#dead-message[data-status='401']", "the 401").await;
    assert!(text(&client, "#dead-message").await.starts_with("Refused"));
    assert_eq!(dead_ids(&receiver).await.len(), 3, "nothing changed");
    assert_eq!(
        attr(&client, "#access", "data-token").await,
        "",
        "forgotten"
    );
    screenshot(&client, "03-wrong-token").await;

    // -- The CRM is back; Retry with the right token hands that webhook on.
    std::fs::write(&ok, "").unwrap();
    click(&client, &retry).await;
    wait_css(&client, "#token-form:not([hidden])", "the token form").await;
    client
        .find(Locator::Id("token-input"))
        .await
        .unwrap()
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    click(&client, "#token-submit").await;
    wait_css(&client, "#dead-message[data-status='200']", "the retry").await;
    wait_css(
        &client,
        &format!("#queue-last-processed[data-id='{target}']"),
        "the retried webhook handed on",
    )
    .await;
    assert_eq!(
        dead_ids(&receiver).await,
        vec![doomed[1].get_id().to_owned(), doomed[2].get_id().to_owned()]
    );
    wait_css(
        &client,
        "#dead-body[data-count='2']",
        "two dead letters left",
    )
    .await;
    assert_eq!(attr(&client, "#access", "data-token").await, "accepted");
    assert_eq!(handed_on().last().map(String::as_str), Some(target));

    // -- Drop one: the first press asks for confirmation, the second erases it.
    let drop = format!(
        "#dead-body tr[data-id='{}'] button[data-test='drop']",
        doomed[1].get_id()
    );
    click(&client, &drop).await;
    wait_css(
        &client,
        &format!("{drop}.confirm"),
        "the drop to ask for confirmation",
    )
    .await;
    assert_eq!(
        dead_ids(&receiver).await.len(),
        2,
        "not dropped on the first press"
    );
    click(&client, &drop).await;
    wait_css(&client, "#dead-message[data-status='200']", "the drop").await;
    assert_eq!(
        dead_ids(&receiver).await,
        vec![doomed[2].get_id().to_owned()]
    );
    wait_css(
        &client,
        "#dead-body[data-count='1']",
        "one dead letter left",
    )
    .await;

    // -- Retry all, with the token the tab kept: nothing asked again.
    click(&client, "#dead-retry-all").await;
    wait_css(&client, "#dead-message[data-status='200']", "retry all").await;
    wait_api(&receiver.admin, "/status", "everything handed on", |s| {
        s["dead_letters"] == 0 && s["queue_depth"] == 0
    })
    .await;
    wait_css(&client, "#dead-body[data-count='0']", "no dead letters").await;
    wait_css(
        &client,
        &format!("#queue-last-processed[data-id='{}']", doomed[2].get_id()),
        "the last one handed on",
    )
    .await;
    let mut expected: Vec<String> = first.iter().map(|h| h.get_id().to_owned()).collect();
    expected.push(doomed[0].get_id().to_owned());
    expected.push(doomed[2].get_id().to_owned());
    assert_eq!(handed_on(), expected, "the dropped one was never handed on");
    assert!(
        !client.source().await.unwrap().contains(ADMIN_TOKEN),
        "the token is not written into the page"
    );
    screenshot(&client, "04-retried-and-dropped").await;

    // -- Replay the first two again: a preview hands nothing on, then the replay does.
    let from = client.find(Locator::Id("replay-from")).await.unwrap();
    from.send_keys(first[0].get_id()).await.unwrap();
    let to = client.find(Locator::Id("replay-to")).await.unwrap();
    to.send_keys(first[1].get_id()).await.unwrap();
    click(&client, "#replay-preview").await;
    wait_css(&client, "#replay-message[data-status='200']", "the preview").await;
    assert_eq!(
        text(&client, "#replay-message").await,
        "Would replay 2 webhook(s)."
    );
    assert_eq!(handed_on().len(), 7, "a preview hands nothing on");
    click(&client, "#replay-submit").await;
    wait_css(&client, "#replay-message[data-status='200']", "the replay").await;
    assert_eq!(
        text(&client, "#replay-message").await,
        "Replayed 2 webhook(s)."
    );
    let after = handed_on();
    assert_eq!(after.len(), 9);
    assert_eq!(after[7..], expected[..2], "replayed in arrival order");
    let status = api(&receiver.admin, "/status").await;
    assert_eq!(status["queue_depth"], 0, "the queue is untouched");
    screenshot(&client, "05-replayed").await;
    client.close().await.unwrap();
}

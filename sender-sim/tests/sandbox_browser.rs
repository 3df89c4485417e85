//! `passfort-sim serve` end to end, as a person uses it: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) driven over WebDriver against the real binary, delivering to a real
//! receiver on loopback that the test holds, stops and restarts.
//!
//! Ignored by default so `cargo test --workspace` passes on a machine without Chromium; `.ci/run`
//! installs the packages and runs `cargo test -p passfort-sender-sim --test sandbox_browser --
//! --ignored`. Run that way, a missing browser is a failure, never a skip.
//!
//! Every wait is a bounded poll of the page (WebDriver waits) or of the API for a condition:
//! no fixed sleeps and no timed assertions. Screenshots of each state go to `$ARTIFACTS_DIR`, or
//! to `target/sandbox-screenshots/`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const SECRET: &str = "browser-shared-secret";
/// How long any one condition may take to show on the page before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

// ---- the receiver --------------------------------------------------------------------------

#[derive(Clone)]
struct ReceiverState {
    /// While false, requests are held unanswered (so the page can be seen "waiting").
    gate: watch::Receiver<bool>,
    ids: Arc<Mutex<Vec<String>>>,
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if bearer != format!("Bearer {SECRET}") {
        return StatusCode::UNAUTHORIZED;
    }
    let mut gate = state.gate.clone();
    if gate.wait_for(|open| *open).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    let mut ids = state.ids.lock().unwrap();
    for item in items {
        if item["secret"] != SECRET {
            return StatusCode::UNAUTHORIZED;
        }
        ids.push(item["id"].as_str().unwrap_or_default().to_owned());
    }
    StatusCode::OK
}

/// A receiver on loopback that can be really stopped (its port then refuses connections) and
/// started again on the same address.
struct Receiver {
    addr: SocketAddr,
    gate: watch::Sender<bool>,
    ids: Arc<Mutex<Vec<String>>>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (gate, _) = watch::channel(true);
        let mut receiver = Self {
            addr: listener.local_addr().unwrap(),
            gate,
            ids: Arc::new(Mutex::new(Vec::new())),
            running: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn url(&self) -> String {
        format!("http://{}/webhooks/passfort", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new()
            .route("/webhooks/passfort", post(receive))
            .with_state(ReceiverState {
                gate: self.gate.subscribe(),
                ids: Arc::clone(&self.ids),
            });
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        self.running = Some((stop, handle));
    }

    fn hold(&self) {
        self.gate.send_replace(false);
    }

    fn release(&self) {
        self.gate.send_replace(true);
    }

    /// Stops accepting, closes every connection and releases the port.
    async fn stop(&mut self) {
        self.release();
        let (stop, handle) = self.running.take().expect("receiver is running");
        let _ = stop.send(());
        handle.await.unwrap();
    }

    async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }
}

// ---- processes -----------------------------------------------------------------------------

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install Debian's {package} (`apt-get install -y chromium \
         chromium-driver`); .ci/run does this before running these tests"
    );
}

/// `passfort-sim serve` on a free port; returns it with its base URL, read from its readiness
/// line.
fn start_sandbox(state: &Path) -> (Process, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_passfort-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--time-scale", "500"])
        .arg("--state")
        .arg(state)
        .env_remove("PASSFORT_WEBHOOK_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("passfort-sim: sandbox listening on ")
        .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"))
        .to_owned();
    (Process(child), url)
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
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1366,1700",
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

// ---- page helpers --------------------------------------------------------------------------

async fn wait_css(client: &Client, css: &str, what: &str) -> Element {
    client
        .wait()
        .at_most(PATIENCE)
        .every(Duration::from_millis(100))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for {what} ({css}): {e}"))
}

async fn attr(client: &Client, id: &str, name: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .attr(name)
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Polls `#id`'s attribute `name` until `done` holds (bounded), returning its value.
async fn wait_attr(
    client: &Client,
    id: &str,
    name: &str,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = attr(client, id, name).await;
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {what}: #{id}[{name}] is {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(client: &Client, id: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARTIFACTS_DIR") {
        return PathBuf::from(dir).join("sandbox-screenshots");
    }
    // The test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_owned();
    target.join("sandbox-screenshots")
}

async fn screenshot(client: &Client, name: &str) {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn api(url: &str, path: &str) -> Value {
    reqwest::get(format!("{url}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn trigger(client: &Client, event: &str, count: u32) {
    client
        .find(Locator::Id("trigger-event"))
        .await
        .unwrap()
        .select_by_value(event)
        .await
        .unwrap();
    let input = client.find(Locator::Id("trigger-count")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(&count.to_string()).await.unwrap();
    client
        .find(Locator::Id("trigger-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The status once the next scheduled retry is at least `MARGIN` away, so a button pressed now
/// acts before the back-off would: when the retry is closer, waits (bounded) for it to fail and
/// the next, twice as long, back-off to start.
async fn status_with_margin(url: &str) -> Value {
    const MARGIN: f64 = 1.5;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = api(url, "api/status").await;
        assert_eq!(status["state"], "Stalled", "{status}");
        if status["next_retry_in_seconds"].as_f64().unwrap_or(0.0) >= MARGIN {
            return status;
        }
        let attempts = status["totals"]["attempts"].as_u64().unwrap();
        loop {
            assert!(Instant::now() < deadline, "no margin before the next retry");
            tokio::time::sleep(Duration::from_millis(50)).await;
            if api(url, "api/status").await["totals"]["attempts"].as_u64() > Some(attempts) {
                break;
            }
        }
    }
}

fn parse_time(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

// ---- the scenario --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver; run by .ci/run with --ignored"]
async fn page_configures_delivers_stalls_refreshes_and_retries() {
    let (_driver, webdriver) = start_chromedriver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start().await;
    let (_sandbox, url) = start_sandbox(&dir.path().join("state.json"));
    let client = browser(&webdriver, &dir.path().join("chromium-profile")).await;

    client.goto(&url).await.unwrap();
    wait_css(&client, "body[data-ready='true']", "the page to load").await;
    assert_eq!(text(&client, "status-queue").await, "Empty");

    // -- Webhook config: enable, secret, endpoint, one event off, Save.
    let enabled = client.find(Locator::Id("config-enabled")).await.unwrap();
    assert!(!enabled.is_selected().await.unwrap(), "starts disabled");
    enabled.click().await.unwrap();
    client
        .find(Locator::Id("config-secret"))
        .await
        .unwrap()
        .send_keys(SECRET)
        .await
        .unwrap();
    let endpoint = client.find(Locator::Id("config-endpoint")).await.unwrap();
    endpoint.clear().await.unwrap();
    endpoint.send_keys(&receiver.url()).await.unwrap();
    let deprecated = wait_css(
        &client,
        "[data-test='event-COLLECTION_STEPS_COMPLETED']",
        "the event checkboxes",
    )
    .await;
    assert!(deprecated.is_selected().await.unwrap());
    deprecated.click().await.unwrap();
    let label = text(&client, "config-events-list").await;
    assert!(
        label.contains("Collection steps completed (deprecated)"),
        "{label}"
    );
    client
        .find(Locator::Id("config-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&client, "#config-message[data-result='ok']", "Saved").await;
    let config = api(&url, "api/config").await;
    assert_eq!(config["enabled"], true);
    assert_eq!(config["secret"], "********", "masked");
    assert_eq!(config["endpoint"], receiver.url());
    let events = config["enabled_events"].as_array().unwrap();
    assert_eq!(
        events.len(),
        passfort_sender_sim::EventType::KNOWN.len() - 1,
        "all but the one unticked"
    );
    assert!(!events.contains(&json!("COLLECTION_STEPS_COMPLETED")));
    let secret_field = client.find(Locator::Id("config-secret")).await.unwrap();
    assert_eq!(
        secret_field.prop("value").await.unwrap().as_deref(),
        Some("")
    );
    let page_source = client.source().await.unwrap();
    assert!(!page_source.contains(SECRET), "the secret never comes back");

    // -- Trigger three webhooks while the receiver holds its answer: "waiting to send 3".
    receiver.hold();
    trigger(&client, "CHECK_COMPLETED", 3).await;
    wait_css(
        &client,
        "#status-queue[data-state='Waiting'][data-waiting='3']",
        "the queue to wait",
    )
    .await;
    assert_eq!(
        text(&client, "status-queue").await,
        "waiting to send 3 callbacks"
    );
    screenshot(&client, "01-waiting").await;

    // -- The receiver answers: back to Empty, three deliveries listed.
    receiver.release();
    wait_css(
        &client,
        "#status-queue[data-state='Empty']",
        "the queue to empty",
    )
    .await;
    wait_css(&client, "#attempts-body[data-count='3']", "three attempts").await;
    let delivered = client
        .find_all(Locator::Css("#attempts-body tr[data-outcome='delivered']"))
        .await
        .unwrap();
    assert_eq!(delivered.len(), 3);
    assert!(text(&client, "status-last-processed")
        .await
        .ends_with("ago"));
    assert_eq!(receiver.ids().len(), 3);
    screenshot(&client, "02-empty").await;

    // -- The receiver stops (its port refuses): a lifecycle's webhooks stall at the head.
    receiver.stop().await;
    trigger(&client, "lifecycle", 1).await;
    wait_css(
        &client,
        "#status-queue[data-state='Stalled']",
        "the queue to stall",
    )
    .await;
    // Back-off is 500× faster here: wait for the seventh failure, after which the next retry is
    // several seconds away, long enough to see Refresh and Retry work.
    wait_attr(
        &client,
        "status-failed-attempts",
        "data-failed-attempts",
        "seven failed attempts",
        |v| v.parse::<u32>().unwrap_or(0) >= 7,
    )
    .await;
    wait_css(
        &client,
        "#status-recent-failures tr[data-test='recent-failure'][data-outcome='refused']",
        "a refused attempt among recent failures",
    )
    .await;
    let failures = text(&client, "status-recent-failures").await;
    assert!(failures.contains("connection refused"), "{failures}");
    assert!(text(&client, "status-queue").await.starts_with("Stalled"));
    assert_ne!(
        attr(&client, "status-next-retry", "data-next-retry").await,
        ""
    );
    // "Stalled for", as PassFort's stalled-queue page shows it, and its "Retry now" button.
    assert_ne!(
        attr(&client, "status-stalled-for", "data-stalled-since").await,
        ""
    );
    assert!(
        text(&client, "status-stalled-for").await.contains("since"),
        "{}",
        text(&client, "status-stalled-for").await
    );
    assert_eq!(text(&client, "status-retry").await, "Retry now");
    assert!(text(&client, "status-refresh-hint")
        .await
        .contains("clears Recent failures"));
    screenshot(&client, "03-stalled").await;

    // -- Refresh clears Recent failures; the queue stays stalled.
    status_with_margin(&url).await;
    client
        .find(Locator::Id("status-refresh"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(
        &client,
        "#status-recent-failures[data-count='0']",
        "Recent failures to clear",
    )
    .await;
    assert!(client
        .find(Locator::Id("status-no-failures"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap());
    assert_eq!(
        attr(&client, "status-queue", "data-state").await,
        "Stalled",
        "Refresh only clears the list"
    );
    screenshot(&client, "04-refreshed").await;

    // -- The receiver is back; Retry sends at once instead of at the scheduled retry.
    let before = status_with_margin(&url).await;
    receiver.restart().await;
    let scheduled = parse_time(before["next_retry"].as_str().unwrap());
    let failed_seq = before["totals"]["attempts"].as_u64().unwrap();
    client
        .find(Locator::Id("status-retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(
        &client,
        "#status-queue[data-state='Empty']",
        "Retry to empty the queue",
    )
    .await;
    assert_eq!(text(&client, "status-failed-attempts").await, "0");
    let attempts = api(&url, "api/attempts").await;
    let first_after = attempts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["seq"].as_u64().unwrap() > failed_seq)
        .min_by_key(|a| a["seq"].as_u64().unwrap())
        .expect("an attempt after Retry");
    assert_eq!(first_after["outcome"], "delivered");
    assert!(
        parse_time(first_after["at"].as_str().unwrap()) < scheduled,
        "Retry sent before the back-off ended: {first_after} vs {before}"
    );
    let status = api(&url, "api/status").await;
    assert_eq!(status["totals"]["delivered"], status["totals"]["enqueued"]);
    assert_eq!(
        receiver.ids().len() as u64,
        status["totals"]["delivered"].as_u64().unwrap()
    );
    screenshot(&client, "05-retried").await;

    client.close().await.unwrap();
}

//! The binary's built-in handlers, for those who do not write Rust.
//!
//! Every sink hands on the webhook object as received minus `secret` (keys `id`, `event`,
//! `timestamp`, `data`), one webhook at a time, in arrival order:
//!
//! | sink | what it does | success |
//! |---|---|---|
//! | `stdout` | one JSON line per webhook on standard output | written and flushed |
//! | `jsonl:PATH` | one JSON line per webhook appended to `PATH` | written and `fsync`ed |
//! | `exec:COMMAND` | runs `sh -c COMMAND` per webhook with the JSON on stdin | exit status 0 |
//! | `http:URL` | `POST`s the JSON to `URL` (`Content-Type: application/json`) | a 2xx answer |
//!
//! No sink ever forwards PassFort's `Authorization` header or the secret: the `exec:` child
//! does not even inherit `PASSFORT_WEBHOOK_SECRET*` from the environment.
//!
//! `jsonl:` is idempotent across crashes: on start it reads the id on the file's last complete
//! line (dropping a torn last line), and skips a webhook whose id is that one. Because webhooks
//! are handed on strictly in order, the only webhook that can be handed on again after a crash
//! is the one whose line was written last, so the file holds every webhook exactly once.

use crate::worker::{Handler, HandlerError, Job};
use async_trait::async_trait;
use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Environment variables a sink's child process must never see.
pub const SECRET_ENV_VARS: [&str; 2] = [
    "PASSFORT_WEBHOOK_SECRET",
    "PASSFORT_WEBHOOK_SECRET_PREVIOUS",
];

/// A built-in sink, as named on the command line (`--sink`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// `stdout`
    Stdout,
    /// `jsonl:PATH`
    Jsonl(PathBuf),
    /// `exec:COMMAND`
    Exec(String),
    /// `http:URL` (a bare `http://…` or `https://…` URL is accepted too)
    Http(String),
}

/// Why a sink could not be named or opened.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The `--sink` value is not one of the forms above.
    #[error("unknown sink {0:?}: expected stdout, jsonl:PATH, exec:COMMAND or http:URL")]
    Unknown(String),
    /// The `jsonl:` file could not be opened or read.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl FromStr for Sink {
    type Err = SinkError;

    fn from_str(s: &str) -> Result<Self, SinkError> {
        if s == "stdout" {
            return Ok(Sink::Stdout);
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Sink::Http(s.to_owned()));
        }
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| SinkError::Unknown(s.to_owned()))?;
        if rest.is_empty() {
            return Err(SinkError::Unknown(s.to_owned()));
        }
        match kind {
            "jsonl" => Ok(Sink::Jsonl(PathBuf::from(rest))),
            "exec" => Ok(Sink::Exec(rest.to_owned())),
            "http" if rest.starts_with("http://") || rest.starts_with("https://") => {
                Ok(Sink::Http(rest.to_owned()))
            }
            _ => Err(SinkError::Unknown(s.to_owned())),
        }
    }
}

impl fmt::Display for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::Stdout => write!(f, "stdout"),
            Sink::Jsonl(path) => write!(f, "jsonl:{}", path.display()),
            Sink::Exec(command) => write!(f, "exec:{command}"),
            // A URL may carry credentials (`https://user:password@host/…`): never shown.
            Sink::Http(url) => write!(f, "http:{}", crate::store::display_url(url)),
        }
    }
}

impl Sink {
    /// Opens the sink as a [`Handler`].
    pub fn open(&self) -> Result<Arc<dyn Handler>, SinkError> {
        Ok(match self {
            Sink::Stdout => Arc::new(StdoutSink),
            Sink::Jsonl(path) => Arc::new(JsonlSink::open(path)?),
            Sink::Exec(command) => Arc::new(ExecSink::new(command.clone())),
            Sink::Http(url) => Arc::new(HttpSink::new(url.clone())?),
        })
    }
}

/// Writes one JSON line per webhook to standard output.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

#[async_trait]
impl Handler for StdoutSink {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        let mut line = job.webhook.to_json_string();
        line.push('\n');
        let mut out = tokio::io::stdout();
        out.write_all(line.as_bytes()).await?;
        out.flush().await?;
        Ok(())
    }
}

/// Appends one JSON line per webhook to a file, `fsync`ed before the webhook counts as done.
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
    state: Arc<Mutex<JsonlState>>,
}

#[derive(Debug)]
struct JsonlState {
    file: std::fs::File,
    last_id: Option<String>,
}

impl JsonlSink {
    /// Opens (creating if absent) `path` for appending, repairing a torn last line.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SinkError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |source| SinkError::Open {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(open_err)?;
        let last_id = repair_and_read_last_id(&mut file).map_err(open_err)?;
        Ok(Self {
            path,
            state: Arc::new(Mutex::new(JsonlState { file, last_id })),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Truncates an incomplete last line (a write cut by a crash) and returns the id on the last
/// complete line.
fn repair_and_read_last_id(file: &mut std::fs::File) -> std::io::Result<Option<String>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let last_newline = rfind_newline(file, len)?;
    let complete = last_newline.map(|n| n + 1).unwrap_or(0);
    if complete != len {
        file.set_len(complete)?;
        file.sync_data()?;
    }
    let Some(line_end) = last_newline else {
        return Ok(None);
    };
    let line_start = rfind_newline(file, line_end)?.map(|n| n + 1).unwrap_or(0);
    let mut line = vec![0u8; usize::try_from(line_end - line_start).unwrap_or(0)];
    file.seek(SeekFrom::Start(line_start))?;
    file.read_exact(&mut line)?;
    Ok(serde_json::from_slice::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned)))
}

/// The offset of the last `\n` before `before`, scanning backwards in chunks.
fn rfind_newline(file: &mut std::fs::File, before: u64) -> std::io::Result<Option<u64>> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = before;
    while end > 0 {
        let from = end.saturating_sub(CHUNK);
        let mut buf = vec![0u8; usize::try_from(end - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut buf)?;
        if let Some(i) = buf.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(from + i as u64));
        }
        end = from;
    }
    Ok(None)
}

#[async_trait]
impl Handler for JsonlSink {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        let state = self.state.clone();
        let id = job.webhook.id.clone();
        let mut line = job.webhook.to_json_string();
        line.push('\n');
        tokio::task::spawn_blocking(move || -> Result<(), HandlerError> {
            let mut state = state.lock().map_err(|_| "jsonl sink poisoned")?;
            if state.last_id.as_deref() == Some(id.as_str()) {
                // Written just before a crash, not marked done: do not write it twice.
                return Ok(());
            }
            let before = state.file.metadata()?.len();
            let written = state
                .file
                .write_all(line.as_bytes())
                .and_then(|()| state.file.sync_data());
            if let Err(e) = written {
                // Leave no partial or unsynced line behind: the retry writes it whole.
                let _ = state.file.set_len(before);
                return Err(e.into());
            }
            state.last_id = Some(id);
            Ok(())
        })
        .await?
    }
}

/// Runs `sh -c COMMAND` per webhook with its JSON on stdin; exit status 0 is success.
#[derive(Debug, Clone)]
pub struct ExecSink {
    command: String,
}

impl ExecSink {
    /// A sink running `command` through `sh -c`.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
        }
    }
}

#[async_trait]
impl Handler for ExecSink {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            .stdin(std::process::Stdio::piped())
            .env("PASSFORT_WEBHOOK_ID", &job.webhook.id)
            .env("PASSFORT_WEBHOOK_EVENT", &job.webhook.event)
            .kill_on_drop(true);
        for var in SECRET_ENV_VARS {
            command.env_remove(var);
        }
        let mut child = command.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            let body = job.webhook.to_json_string();
            // A command that does not read its stdin is not an error.
            let _ = stdin.write_all(body.as_bytes()).await;
            let _ = stdin.write_all(b"\n").await;
            drop(stdin);
        }
        let status = child.wait().await?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("command exited with {status}").into())
        }
    }
}

/// `POST`s each webhook's JSON to a URL; a 2xx answer is success. Never sends an
/// `Authorization` header.
#[derive(Clone)]
pub struct HttpSink {
    url: String,
    client: reqwest::Client,
}

impl HttpSink {
    /// A sink posting to `url`, with a 30 s timeout per request.
    pub fn new(url: impl Into<String>) -> Result<Self, SinkError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            url: url.into(),
            client,
        })
    }
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.shown_url())
            .finish()
    }
}

impl HttpSink {
    /// The URL as errors and logs may show it: without a password.
    fn shown_url(&self) -> String {
        crate::store::display_url(&self.url)
    }
}

#[async_trait]
impl Handler for HttpSink {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(job.webhook.to_json_string())
            .send()
            .await
            // reqwest names the URL, credentials included: name it ourselves, without them.
            .map_err(|e| format!("POST {}: {}", self.shown_url(), e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{} answered {status}", self.shown_url()).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_sink_form() {
        assert_eq!("stdout".parse::<Sink>().unwrap(), Sink::Stdout);
        assert_eq!(
            "jsonl:/tmp/out.jsonl".parse::<Sink>().unwrap(),
            Sink::Jsonl("/tmp/out.jsonl".into())
        );
        assert_eq!(
            "exec:cat >> x".parse::<Sink>().unwrap(),
            Sink::Exec("cat >> x".into())
        );
        assert_eq!(
            "http:https://example.test/h".parse::<Sink>().unwrap(),
            Sink::Http("https://example.test/h".into())
        );
        assert_eq!(
            "http://127.0.0.1:9/h".parse::<Sink>().unwrap(),
            Sink::Http("http://127.0.0.1:9/h".into())
        );
        for bad in ["", "stderr", "jsonl:", "ftp:x", "http:nope"] {
            assert!(bad.parse::<Sink>().is_err(), "{bad}");
        }
    }

    #[test]
    fn jsonl_repair_drops_a_torn_line_and_finds_the_last_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\",\"da").unwrap();
        let sink = JsonlSink::open(&path).unwrap();
        assert_eq!(sink.state.lock().unwrap().last_id.as_deref(), Some("b"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":\"a\"}\n{\"id\":\"b\"}\n"
        );
        std::fs::write(&path, "{\"id\":\"only\"}\n").unwrap();
        let sink = JsonlSink::open(&path).unwrap();
        assert_eq!(sink.state.lock().unwrap().last_id.as_deref(), Some("only"));
        std::fs::write(&path, "torn").unwrap();
        let sink = JsonlSink::open(&path).unwrap();
        assert_eq!(sink.state.lock().unwrap().last_id, None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn jsonl_finds_the_last_id_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        let big = "x".repeat(200_000);
        std::fs::write(
            &path,
            format!("{{\"id\":\"first\",\"d\":\"{big}\"}}\n{{\"id\":\"last\",\"d\":\"{big}\"}}\n"),
        )
        .unwrap();
        let sink = JsonlSink::open(&path).unwrap();
        assert_eq!(sink.state.lock().unwrap().last_id.as_deref(), Some("last"));
    }
}

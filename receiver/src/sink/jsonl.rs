//! `jsonl:PATH`: one JSON line per webhook appended to a file and `fsync`ed, exactly once across
//! crashes (see the [module docs](super)).

use super::SinkError;
use crate::handler::{Handler, HandlerError, Job};
use async_trait::async_trait;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
        // A file just created exists after a power cut only once its directory entry is on
        // disk: without this, lines synced one by one (and marked done in the store) vanished
        // with the whole file when the power went out (found by tests/tests/power_cut.rs).
        file.sync_all()
            .and_then(|()| sync_directory_of(&path))
            .map_err(open_err)?;
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

/// Makes the directory entry of `path` durable.
fn sync_directory_of(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
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

#[cfg(test)]
mod tests {
    use super::*;

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
